//! `d4c-runtime`: the node daemon. See the crate documentation of
//! `d4c_runtime` and `runtime/README.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Protects a node's containers: loads a compiled d4c policy into the
/// kernel, registers containers as they appear, and delivers ECS events.
#[derive(Debug, Parser)]
#[command(name = "d4c-runtime", version)]
struct Cli {
    /// The compiled policy (`d4cc compile` output).
    #[arg(long, value_name = "PATH")]
    artifact: Option<PathBuf>,
    /// The configuration file (TOML); environment variables `D4C_*`
    /// override it, and flags override both.
    /// (`D4C_CONFIG` when the flag is not given.)
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Refuse artifacts not signed by this public key (PEM).
    #[arg(long, value_name = "PATH")]
    trusted_key: Option<PathBuf>,
    /// Report only: blocking responses do not refuse operations.
    #[arg(long)]
    audit: bool,
    /// Set a configuration key: `--set key.path=value` (TOML value, or a
    /// string). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Remove the pinned probes (enforcement ends) and exit.
    #[arg(long)]
    uninstall: bool,
    /// Check the artifact and the configuration, print what would run, and
    /// exit without touching the kernel.
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    d4c_runtime::memory::one_arena();
    let cli = Cli::parse();
    d4c_runtime::logging::init();
    let mut overrides = Vec::new();
    if let Some(path) = &cli.artifact {
        overrides.push(("artifact".to_owned(), toml_string(&path.to_string_lossy())));
    }
    if let Some(path) = &cli.trusted_key {
        overrides.push(("trusted_key".to_owned(), toml_string(&path.to_string_lossy())));
    }
    if cli.audit {
        overrides.push(("enforce".to_owned(), "false".to_owned()));
    }
    for pair in &cli.set {
        let Some((key, value)) = pair.split_once('=') else {
            eprintln!("error: --set `{pair}`: expected KEY=VALUE");
            return ExitCode::from(2);
        };
        overrides.push((key.trim().to_owned(), value.to_owned()));
    }
    let file = cli.config.clone().or_else(|| std::env::var_os("D4C_CONFIG").map(PathBuf::from));
    let config = match d4c_runtime::config::read(file.as_deref(), std::env::vars(), &overrides) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    if cli.uninstall {
        return match d4c_runtime::daemon::uninstall(&config) {
            Ok(n) => {
                println!("removed {n} pinned probe link(s) from {}", config.pin_dir.display());
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if cli.check {
        return match d4c_runtime::check(&config) {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        };
    }
    match d4c_runtime::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `text` as a TOML string literal.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}
