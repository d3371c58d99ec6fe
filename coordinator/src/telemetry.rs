//! Logging setup for both binaries' coordinator side.
//!
//! One place that installs the tracing subscriber, so the observability work (OpenTelemetry export,
//! Prometheus metrics) has a single seam to extend. `RUST_LOG` overrides the default filter.

use tracing_subscriber::EnvFilter;

/// Installs a compact stderr subscriber; `default` is the filter used when `RUST_LOG` is unset.
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .compact()
        .try_init();
}
