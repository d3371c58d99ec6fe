//! The Prometheus endpoint (`--metrics-listen ADDR`, off by default).
//!
//! Metrics are recorded through the `metrics` facade (`metrics::counter!` and friends) where the
//! events happen; until [`serve`] installs the recorder every such call is a no-op costing one
//! atomic load. [`serve`] installs `metrics-exporter-prometheus` with its own HTTP listener, which
//! answers every path with the text exposition format (Prometheus scrapes `/metrics`).
//!
//! Why this exporter and not OpenTelemetry's Prometheus exporter: the OpenTelemetry one is no
//! longer released beside the SDK (the SDK's Prometheus story is OTLP into a collector), and the
//! one thing it could add, exemplars carrying trace ids on histogram buckets, needs the OpenMetrics
//! format *and* a Prometheus run with `--enable-feature=exemplar-storage`, which Debian's 2.42 has
//! off by default. The dashboards link a slow job to its trace by a trace search on the job's
//! attributes instead (dashboards/README.md), which works with any Prometheus.
//!
//! Histograms get explicit buckets (without them this exporter renders summaries, which cannot be
//! aggregated across workers or classes): [`SECONDS_BUCKETS`] for job durations,
//! [`FAST_SECONDS_BUCKETS`] for the coordinator's internal latencies, [`TOKENS_PER_SECOND_BUCKETS`].

use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use metrics_util::MetricKindMask;

use crate::TelemetryError;

/// Job-sized durations: 50 ms to 30 min.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];
/// Latencies of one scheduler step or store flush: 50 µs to 5 s.
pub const FAST_SECONDS_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    5.0,
];
/// Generation speed, from a board's 1 tok/s to a GPU's thousands.
pub const TOKENS_PER_SECOND_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 35.0, 50.0, 75.0, 100.0, 150.0, 200.0, 350.0, 500.0, 1000.0,
    2500.0,
];

/// Metric names (suffix) whose histograms use [`FAST_SECONDS_BUCKETS`].
const FAST: &[&str] = &[
    "benchfarm_scheduler_step_seconds",
    "benchfarm_store_flush_seconds",
];

/// Installs the Prometheus recorder and serves it on `addr` (port 0: a free port). Returns the
/// address it listens on. Must run inside a tokio runtime (the listener is a task on it).
pub fn serve(addr: SocketAddr) -> Result<SocketAddr, TelemetryError> {
    let err = |reason: String| TelemetryError::Metrics { addr, reason };
    // The exporter binds the address itself and does not say which port it got: resolve port 0
    // here (bound and released a moment before the exporter binds it).
    let addr = if addr.port() == 0 {
        std::net::TcpListener::bind(addr)
            .and_then(|l| l.local_addr())
            .map_err(|e| err(e.to_string()))?
    } else {
        addr
    };
    // A gauge nobody sets any more (a finished run's queue depth) leaves the page after a while
    // instead of showing its last value forever.
    let mut builder = PrometheusBuilder::new()
        .with_http_listener(addr)
        .idle_timeout(MetricKindMask::GAUGE, Some(Duration::from_secs(300)));
    for name in FAST {
        builder = builder
            .set_buckets_for_metric(Matcher::Full((*name).to_string()), FAST_SECONDS_BUCKETS)
            .map_err(|e| err(e.to_string()))?;
    }
    builder = builder
        .set_buckets_for_metric(
            Matcher::Suffix("_tokens_per_second".into()),
            TOKENS_PER_SECOND_BUCKETS,
        )
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS))
        .map_err(|e| err(e.to_string()))?;
    builder.install().map_err(|e| err(e.to_string()))?;
    tracing::info!(addr = %addr, "serving prometheus metrics");
    Ok(addr)
}
