//! Log output: `tracing` events to stderr, as text or one JSON object a line.
//!
//! Stderr is what systemd's journal and container runtimes collect. The
//! filter takes `RUST_LOG` syntax, so `info` or `compliance_proxy=debug` work.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `filter` was checked by `config`.
pub fn init(format: &str, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not in the journal or a file.
        .with_ansi(std::io::stderr().is_terminal());

    // A second init (tests start several servers) keeps the first subscriber.
    let _ = match format {
        "json" => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        _ => builder.try_init(),
    };
}
