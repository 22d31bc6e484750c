//! Structured logs: one JSON object per line on standard error, filtered
//! by `D4C_LOG` (`info` by default; e.g. `D4C_LOG=d4c_runtime=debug`).

/// Installs the subscriber; a second call does nothing.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("D4C_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().json().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
