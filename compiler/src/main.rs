//! `d4cc`: the d4c policy compiler's command line.
//!
//! Exit status: 0 clean, 1 findings (errors, or warnings under
//! `--deny-warnings`), 2 usage or I/O problems.

use clap::{Parser, Subcommand, ValueEnum};
use d4c_artifact::display::{escape_control, escape_control_lines};
use d4cc::codes::Code;
use d4cc::diag::tidy;
use d4cc::fix::fix_source;
use d4cc::lint::{lint_bytes, LintOutput};
use d4cc::render::{self, FileReport};
use d4cc::source::SourceFile;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "d4cc", version, about = "Lint and compile d4c (Defend for Containers) policies")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check policies and report every problem found.
    Lint(LintArgs),
    /// Apply the mechanical fixes (legacy keys, quoting, list syntax) in place,
    /// then report what is left. The same as `lint --fix`.
    Fix(LintArgs),
    /// Explain a diagnostic code, with a bad and a good example.
    Explain {
        /// A code (`D4C0007`) or its name (`duplicate-key`); omit to list all codes.
        code: Option<String>,
    },
    /// Print the JSON Schema of the policy format (for yaml-language-server).
    Schema,
    /// Lint a policy and compile it to an artifact (`*.d4c`).
    Compile(CompileArgs),
    /// Show what an artifact holds: header, sections, limits used, tables.
    Inspect {
        /// The artifact.
        artifact: PathBuf,
        /// Output format (`json` includes every table in full).
        #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
        format: ReportFormat,
    },
    /// Show what promoting NEW over OLD changes: selectors, responses, and
    /// example operations whose verdict changes. Each is an artifact or a
    /// policy (plain, Elastic Agent configuration or Fleet export), compiled
    /// in memory.
    Diff {
        /// The artifact (or policy) in force.
        old: PathBuf,
        /// The artifact (or policy) to promote.
        new: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
        format: ReportFormat,
        /// Most example operations to show.
        #[arg(long, default_value_t = 20)]
        examples: usize,
    },
    /// Run scenario files (`*.d4ct`) against their compiled policies.
    Test {
        /// Scenario files, or directories walked for `*.d4ct`.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// When to colour the output.
        #[arg(long, value_enum, default_value_t = Color::Auto)]
        color: Color,
    },
    /// Make an Ed25519 key pair for signing artifacts (PKCS#8 / SPKI PEM).
    Keygen {
        /// Where to write the secret key (mode 0600; never overwritten).
        #[arg(long)]
        secret: PathBuf,
        /// Where to write the public key.
        #[arg(long)]
        public: PathBuf,
    },
    /// Sign an artifact (in place, or to `--output`).
    Sign {
        /// The artifact.
        artifact: PathBuf,
        /// The secret key (PEM).
        #[arg(long)]
        key: PathBuf,
        /// Write the signed artifact here instead of in place.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Check an artifact's integrity and its signature by a public key.
    Verify {
        /// The artifact.
        artifact: PathBuf,
        /// The public key (PEM) whose signature is required.
        #[arg(long)]
        key: PathBuf,
    },
}

#[derive(clap::Args)]
struct CompileArgs {
    /// The policy.
    policy: PathBuf,
    /// Where to write the artifact (default: the policy's path with `.d4c`).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The policy name recorded in the artifact (default: the package
    /// policy id of an agent configuration or Fleet export, else the file's stem).
    #[arg(long)]
    name: Option<String>,
    /// The policy revision recorded in the artifact, at most 32767 (default:
    /// the revision of an agent configuration or Fleet export, else 1).
    #[arg(long)]
    revision: Option<u64>,
    /// When to colour diagnostics.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    color: Color,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    /// Text for people.
    Human,
    /// JSON for scripts.
    Json,
}

#[derive(clap::Args)]
struct LintArgs {
    /// Policy files, directories (walked for *.yaml and *.yml), or `-` for standard input.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    deny_warnings: bool,
    /// Apply mechanical fixes in place before reporting.
    #[arg(long)]
    fix: bool,
    /// When to colour human output.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    color: Color,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// Rendered diagnostics with source excerpts.
    Human,
    /// One JSON document with every diagnostic.
    Json,
    /// SARIF 2.1.0, for code-scanning uploads.
    Sarif,
}

#[derive(Clone, Copy, ValueEnum)]
enum Color {
    /// Colour when standard output is a terminal and `NO_COLOR` is unset.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// A failure that ends the run with status 2.
struct Fatal(String);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Lint(args) => lint(&args, args.fix),
        Command::Fix(args) => lint(&args, true),
        Command::Explain { code } => explain(code.as_deref()),
        Command::Schema => print(&format!("{:#}\n", d4cc::schema::policy_schema())).map(|()| ExitCode::SUCCESS),
        Command::Compile(args) => compile(&args),
        Command::Inspect { artifact, format } => inspect(&artifact, format),
        Command::Diff { old, new, format, examples } => diff(&old, &new, format, examples),
        Command::Test { paths, color } => test(&paths, color),
        Command::Keygen { secret, public } => keygen(&secret, &public),
        Command::Sign { artifact, key, output } => sign(&artifact, &key, output.as_deref()),
        Command::Verify { artifact, key } => verify(&artifact, &key),
    };
    match result {
        Ok(code) => code,
        Err(Fatal(message)) => {
            let _ = writeln!(std::io::stderr(), "d4cc: {}", escape_control_lines(&message));
            ExitCode::from(2)
        }
    }
}

fn print(text: &str) -> Result<(), Fatal> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`d4cc ... | head`) is not an error of ours.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Fatal(format!("cannot write to standard output: {e}"))),
    }
}

fn explain(code: Option<&str>) -> Result<ExitCode, Fatal> {
    let Some(text) = code else {
        let mut list = String::new();
        for code in Code::ALL {
            list.push_str(&format!(
                "{}  {:<8} {:<24} {}\n",
                code.id(),
                code.severity().as_str(),
                code.name(),
                code.summary()
            ));
        }
        print(&list)?;
        return Ok(ExitCode::SUCCESS);
    };
    match Code::lookup(text) {
        Some(code) => {
            print(code.explanation())?;
            Ok(ExitCode::SUCCESS)
        }
        None => Err(Fatal(format!("unknown code `{text}`; `d4cc explain` lists them all"))),
    }
}

fn lint(args: &LintArgs, fix: bool) -> Result<ExitCode, Fatal> {
    let files = collect(&args.paths)?;
    let mut results: Vec<(SourceFile, LintOutput)> = Vec::with_capacity(files.len());
    let mut refused = false;
    for path in &files {
        let bytes = read(path)?;
        let name = display_name(path);
        let (source, output) = lint_bytes(name.clone(), bytes);
        if !fix {
            results.push((source, output));
            continue;
        }
        let outcome = fix_source(source, output);
        for skip in &outcome.skipped {
            let _ = writeln!(
                std::io::stderr(),
                "d4cc: {}: not fixed at {}:{}: {}: {}\n  help: make this change by hand",
                escape_control(&name),
                skip.line,
                skip.column,
                tidy(&skip.description),
                tidy(&skip.reason)
            );
        }
        if let Some(reason) = &outcome.refused {
            refused = true;
            let _ = writeln!(
                std::io::stderr(),
                "d4cc: {}: no fix was written: {}\n  help: the file is left as it was; fix it by hand, and report the fix that broke it",
                escape_control(&name),
                tidy(reason)
            );
        }
        if let Some(text) = &outcome.text {
            write_back(path, text)?;
        }
        results.push((outcome.source, outcome.output));
    }
    let reports: Vec<FileReport> =
        results.iter().map(|(source, output)| FileReport { source, diagnostics: &output.diagnostics }).collect();
    let failed = results.iter().any(|(_, o)| {
        o.diagnostics.iter().any(|d| {
            d.severity == d4cc::codes::Severity::Error
                || (args.deny_warnings && d.severity == d4cc::codes::Severity::Warning)
        })
    });
    match args.format {
        Format::Human => {
            let color = use_color(args.color);
            let mut text = String::new();
            for report in reports.iter().filter(|r| !r.diagnostics.is_empty()) {
                text.push_str(&render::human::render(report, color));
            }
            if reports.iter().any(|r| !r.diagnostics.is_empty()) {
                text.push_str(&render::human::summary(&reports));
                text.push('\n');
            }
            print(&text)?;
        }
        Format::Json => print(&format!("{:#}\n", render::json::render(&reports)))?,
        Format::Sarif => print(&format!("{:#}\n", render::sarif::render(&reports, env!("CARGO_PKG_VERSION"))))?,
    }
    Ok(if failed || refused { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Expands directories into their `*.yaml` / `*.yml` files, sorted; keeps
/// files and `-` as given. Symbolic links to directories are not followed,
/// so a link loop cannot hang the walk.
fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Fatal> {
    let mut out = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            out.push(path.clone());
            continue;
        }
        let meta = std::fs::metadata(path).map_err(|e| Fatal(format!("cannot read `{}`: {e}", path.display())))?;
        if meta.is_dir() {
            let before = out.len();
            walk(path, &mut out)?;
            if out.len() == before {
                return Err(Fatal(format!(
                    "no policy files (*.yaml, *.yml) found in `{}`\n  help: name a policy file, or a directory that holds some",
                    path.display()
                )));
            }
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Fatal> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Fatal(format!("cannot read directory `{}`: {e}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            if !hidden {
                walk(&path, out)?;
            }
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>, Fatal> {
    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        // Read one byte past the limit so that an oversized input is reported
        // by the front end, without buffering an unbounded stream.
        let limit = d4cc::limits::MAX_SOURCE_BYTES as u64 + 1;
        std::io::stdin()
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| Fatal(format!("cannot read standard input: {e}")))?;
        return Ok(bytes);
    }
    // A regular file only (a FIFO would block), read one byte past the
    // limit as above.
    d4c_artifact::input::open_regular(path)
        .and_then(|file| d4c_artifact::input::read_up_to(file, d4cc::limits::MAX_SOURCE_BYTES as u64))
        .map_err(|e| Fatal(format!("cannot read `{}`: {e}", path.display())))
}

fn write_back(path: &Path, text: &str) -> Result<(), Fatal> {
    if path.as_os_str() == "-" {
        // Fixing standard input writes the fixed text to standard output.
        return print(text);
    }
    std::fs::write(path, text).map_err(|e| Fatal(format!("cannot write `{}`: {e}", path.display())))
}

fn display_name(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    }
}

fn use_color(color: Color) -> bool {
    match color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, Fatal> {
    d4c_artifact::input::read_regular(path, d4c_artifact::MAX_ARTIFACT_BYTES)
        .map_err(|e| Fatal(format!("cannot read `{}`: {e}", path.display())))
}

/// Reads and checks an artifact; a bad one is a finding (exit 1), said plainly.
fn load_artifact(path: &Path) -> Result<d4c_artifact::AlignedBytes, Fatal> {
    Ok(d4c_artifact::aligned_copy(&read_file(path)?))
}

fn parse_artifact<'a>(
    path: &Path,
    bytes: &'a [u8],
) -> Result<(d4c_artifact::Artifact<'a>, d4c_artifact::eval::Tables), String> {
    let artifact = d4c_artifact::Artifact::parse(bytes)
        .map_err(|e| format!("`{}` is not a valid artifact: {e}", path.display()))?;
    let tables = d4c_artifact::eval::Tables::read(&artifact)
        .map_err(|e| format!("`{}` holds unusable tables: {e}", path.display()))?;
    Ok((artifact, tables))
}

fn refuse(message: String) -> Result<ExitCode, Fatal> {
    let _ = writeln!(std::io::stderr(), "d4cc: {}", escape_control_lines(&message));
    Ok(ExitCode::from(1))
}

fn compile(args: &CompileArgs) -> Result<ExitCode, Fatal> {
    let bytes = read(&args.policy)?;
    let name = display_name(&args.policy);
    let (source, output) = lint_bytes(name, bytes.clone());
    if !output.diagnostics.is_empty() {
        let report = FileReport { source: &source, diagnostics: &output.diagnostics };
        // Diagnostics go to standard error: standard output stays clean for scripts.
        let _ = write!(std::io::stderr(), "{}", render::human::render(&report, use_color(args.color)));
    }
    let has_errors = output.has_errors();
    let Some(checked) = output.checked.filter(|_| !has_errors) else {
        return refuse(format!("`{}` has errors: nothing was written", args.policy.display()));
    };
    let from_file = output.metadata.id.as_ref().map(|id| id.value.clone());
    let policy_name = args.name.clone().or(from_file).unwrap_or_else(|| {
        args.policy.file_stem().map_or_else(|| "policy".to_string(), |s| s.to_string_lossy().into_owned())
    });
    if let Err(problem) = d4cc::compile::check_policy_name(&policy_name) {
        let from = if args.name.is_some() { "`--name`" } else { "the policy name" };
        let what = if policy_name.is_empty() {
            format!("{from} {problem}")
        } else {
            format!(
                "{from} `{}` {problem}",
                d4c_artifact::display::shorten(&policy_name, d4c_artifact::display::MAX_ECHOED_CHARS)
            )
        };
        return Err(Fatal(format!(
            "{what}\n  help: give the artifact a name with `--name NAME`: not blank, and without control characters"
        )));
    }
    let revision = args.revision.or(output.metadata.revision.as_ref().map(|r| r.value)).unwrap_or(1);
    // Reproducible unless the build asks for a time stamp.
    let created_unix = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => Some(
            v.trim()
                .parse::<u64>()
                .map_err(|_| Fatal(format!("SOURCE_DATE_EPOCH `{v}` is not a number of seconds")))?,
        ),
        Err(_) => None,
    };
    let form = output.form;
    let options = d4cc::compile::CompileOptions { policy_name, revision, created_unix };
    let artifact = match d4cc::compile::compile(&bytes, &checked, &options) {
        Ok(a) => a,
        Err(e) => return refuse(format!("`{}` cannot be compiled: {e}", args.policy.display())),
    };
    let out = args.output.clone().unwrap_or_else(|| args.policy.with_extension("d4c"));
    std::fs::write(&out, &artifact).map_err(|e| Fatal(format!("cannot write `{}`: {e}", out.display())))?;
    let from = match form {
        d4cc::locate::Form::Policy => String::new(),
        other => format!(", the policy of {}", other.describe()),
    };
    let _ = writeln!(
        std::io::stderr(),
        "wrote {} ({} bytes{from}: policy `{}`, revision {})",
        out.display(),
        artifact.len(),
        options.policy_name,
        options.revision
    );
    Ok(ExitCode::SUCCESS)
}

fn inspect(path: &Path, format: ReportFormat) -> Result<ExitCode, Fatal> {
    let bytes = load_artifact(path)?;
    let (artifact, tables) = match parse_artifact(path, &bytes) {
        Ok(x) => x,
        Err(message) => return refuse(message),
    };
    let text = match format {
        ReportFormat::Human => d4cc::inspect::render_human(&path.display().to_string(), &artifact, &tables),
        ReportFormat::Json => format!("{:#}\n", d4cc::inspect::report(&artifact, &tables)),
    };
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// An artifact, or a policy in any form (plain, agent configuration, Fleet
/// export) compiled in memory with its own id and revision; a policy with
/// errors is a finding, its diagnostics on standard error.
fn artifact_or_policy(path: &Path) -> Result<Result<d4c_artifact::AlignedBytes, String>, Fatal> {
    let bytes = read_file(path)?;
    if bytes.starts_with(&d4c_artifact::MAGIC) {
        return Ok(Ok(d4c_artifact::aligned_copy(&bytes)));
    }
    let (source, output) = lint_bytes(display_name(path), bytes.clone());
    if output.has_errors() {
        let report = FileReport { source: &source, diagnostics: &output.diagnostics };
        let _ = write!(std::io::stderr(), "{}", render::human::render(&report, false));
        return Ok(Err(format!("`{}` is neither an artifact nor a policy without errors", path.display())));
    }
    let Some(checked) = output.checked else {
        return Ok(Err(format!("`{}` holds no policy", path.display())));
    };
    let options = d4cc::compile::CompileOptions {
        policy_name: output.metadata.id.map(|id| id.value).unwrap_or_else(|| {
            path.file_stem().map_or_else(|| "policy".to_string(), |s| s.to_string_lossy().into_owned())
        }),
        revision: output.metadata.revision.map_or(1, |r| r.value),
        created_unix: None,
    };
    Ok(d4cc::compile::compile(&bytes, &checked, &options)
        .map(|artifact| d4c_artifact::aligned_copy(&artifact))
        .map_err(|e| format!("`{}` cannot be compiled: {e}", path.display())))
}

fn diff(old: &Path, new: &Path, format: ReportFormat, examples: usize) -> Result<ExitCode, Fatal> {
    let old_bytes = match artifact_or_policy(old)? {
        Ok(bytes) => bytes,
        Err(message) => return refuse(message),
    };
    let new_bytes = match artifact_or_policy(new)? {
        Ok(bytes) => bytes,
        Err(message) => return refuse(message),
    };
    let (old_artifact, old_tables) = match parse_artifact(old, &old_bytes) {
        Ok(x) => x,
        Err(message) => return refuse(message),
    };
    let (new_artifact, new_tables) = match parse_artifact(new, &new_bytes) {
        Ok(x) => x,
        Err(message) => return refuse(message),
    };
    let report = d4cc::diff::diff(&old_artifact, &old_tables, &new_artifact, &new_tables, examples);
    let text = match format {
        ReportFormat::Human => d4cc::diff::render_human(&report),
        ReportFormat::Json => format!("{:#}\n", serde_json::to_value(&report).map_err(|e| Fatal(e.to_string()))?),
    };
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn test(paths: &[PathBuf], color: Color) -> Result<ExitCode, Fatal> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| Fatal(format!("cannot read `{}`: {e}", path.display())))?;
        if meta.is_dir() {
            let before = files.len();
            walk_ext(path, "d4ct", &mut files)?;
            if files.len() == before {
                return Err(Fatal(format!(
                    "no scenario files (*.d4ct) found in `{}`\n  help: name a scenario file, or a directory that holds some",
                    path.display()
                )));
            }
        } else {
            files.push(path.clone());
        }
    }
    let color = use_color(color);
    let (mut steps, mut failed, mut broken) = (0, 0, 0);
    let mut text = String::new();
    for path in &files {
        let name = path.display().to_string();
        let outcome = d4cc::scenario::test_file(path, &name).map_err(Fatal)?;
        steps += outcome.steps;
        failed += outcome.failed;
        let problems = outcome.diagnostics.len() - outcome.failed;
        broken += problems;
        let status = if outcome.diagnostics.is_empty() { "ok" } else { "FAILED" };
        text.push_str(&format!("{status:<6} {name} ({} steps)\n", outcome.steps));
        if !outcome.diagnostics.is_empty() {
            let report = FileReport { source: &outcome.source, diagnostics: &outcome.diagnostics };
            text.push_str(&render::human::render(&report, color));
        }
    }
    text.push_str(&format!(
        "{} passed, {failed} failed; {broken} scenario problem(s) in {} file(s)\n",
        steps - failed,
        files.len()
    ));
    print(&text)?;
    Ok(if failed > 0 || broken > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn walk_ext(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) -> Result<(), Fatal> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Fatal(format!("cannot read directory `{}`: {e}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.is_dir() {
            walk_ext(&path, ext, out)?;
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
    Ok(())
}

fn keygen(secret: &Path, public: &Path) -> Result<ExitCode, Fatal> {
    let key = d4c_artifact::keys::generate().map_err(|e| Fatal(e.to_string()))?;
    d4c_artifact::keys::write_secret_key(secret, &key).map_err(|e| Fatal(e.to_string()))?;
    d4c_artifact::keys::write_public_key(public, &key.verifying_key()).map_err(|e| Fatal(e.to_string()))?;
    let id = d4c_artifact::to_hex(&d4c_artifact::keys::key_id(&key.verifying_key()));
    let _ = writeln!(std::io::stderr(), "wrote {} and {} (key {id})", secret.display(), public.display());
    Ok(ExitCode::SUCCESS)
}

fn sign(path: &Path, key: &Path, output: Option<&Path>) -> Result<ExitCode, Fatal> {
    let key = d4c_artifact::keys::read_secret_key(key).map_err(|e| Fatal(e.to_string()))?;
    let bytes = load_artifact(path)?;
    // Only what the runtime would load is signed: the tables are read too.
    if let Err(e) = parse_artifact(path, &bytes) {
        return refuse(format!("{e}; not signed"));
    }
    let signed = match d4c_artifact::sign(&bytes, &key) {
        Ok(s) => s,
        Err(e) => return refuse(format!("`{}` cannot be signed: {e}", path.display())),
    };
    let out = output.unwrap_or(path);
    std::fs::write(out, &signed).map_err(|e| Fatal(format!("cannot write `{}`: {e}", out.display())))?;
    let id = d4c_artifact::to_hex(&d4c_artifact::keys::key_id(&key.verifying_key()));
    let _ = writeln!(std::io::stderr(), "signed {} with key {id}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn verify(path: &Path, key: &Path) -> Result<ExitCode, Fatal> {
    let key = d4c_artifact::keys::read_public_key(key).map_err(|e| Fatal(e.to_string()))?;
    let bytes = load_artifact(path)?;
    // Intact means usable: the tables are read and checked, as the runtime
    // reads them, not only the digests.
    let artifact = match parse_artifact(path, &bytes) {
        Ok((artifact, _)) => artifact,
        Err(e) => return refuse(e),
    };
    let id = d4c_artifact::to_hex(&d4c_artifact::keys::key_id(&key));
    match artifact.verify_signature(&key) {
        Ok(()) => {
            print(&format!(
                "ok: `{}` is intact and signed by key {id} (policy `{}`, revision {})\n",
                path.display(),
                escape_control(artifact.policy_name()),
                artifact.header().revision
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refuse(format!("`{}`: {e}", path.display())),
    }
}
