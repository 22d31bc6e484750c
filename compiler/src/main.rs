//! `d4cc`: the d4c policy compiler's command line.
//!
//! Exit status: 0 clean, 1 findings (errors, or warnings under
//! `--deny-warnings`), 2 usage or I/O problems.

use clap::{Parser, Subcommand, ValueEnum};
use d4cc::codes::Code;
use d4cc::fix::apply_fixes;
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
    };
    match result {
        Ok(code) => code,
        Err(Fatal(message)) => {
            let _ = writeln!(std::io::stderr(), "d4cc: {message}");
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
    for path in &files {
        let bytes = read(path)?;
        let name = display_name(path);
        let (mut source, mut output) = lint_bytes(name.clone(), bytes);
        if fix {
            // Fixes can enable others (a renamed key gets its value checked):
            // apply until nothing changes, at most a few rounds.
            for _ in 0..4 {
                let (fixed, applied) = apply_fixes(&source.text, &output.diagnostics);
                if applied == 0 {
                    break;
                }
                write_back(path, &fixed)?;
                (source, output) = lint_bytes(name.clone(), fixed.into_bytes());
            }
        }
        results.push((source, output));
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
            let color = match args.color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            };
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
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
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
            walk(path, &mut out)?;
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
    let file = std::fs::File::open(path).map_err(|e| Fatal(format!("cannot read `{}`: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(d4cc::limits::MAX_SOURCE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Fatal(format!("cannot read `{}`: {e}", path.display())))?;
    Ok(bytes)
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
