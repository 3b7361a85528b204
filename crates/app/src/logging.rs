//! Logging for the example servers: `tracing` to stderr, so stdout carries only
//! the `listening on` line that scripts and tests read.

/// Installs a subscriber that writes to stderr. `RUST_LOG` chooses what is shown
/// (default: `info`). Calling it twice is harmless.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
