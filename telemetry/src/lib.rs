//! What the coordinator and the worker report about themselves, set up in one place.
//!
//! [`init`] installs the `tracing` subscriber both binaries use: the compact stderr log they always
//! had, plus, when an OTLP endpoint is configured (`--otlp-endpoint` or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`), a `tracing-opentelemetry` layer that exports spans over OTLP
//! ([`traces`]); and, when `--metrics-listen` is given, a Prometheus endpoint ([`metrics`]). With
//! neither, nothing but the stderr log is installed and [`traces_on`] is false, so callers skip
//! building the spans that only the exporter would read. The returned [`Telemetry`] flushes the
//! exporter when it is shut down or dropped: call [`Telemetry::shutdown`] before
//! `std::process::exit`, which runs no destructors.
//!
//! [`propagation`] carries W3C trace context across gRPC metadata and the worker stream's
//! messages; [`phases`] records spans whose times were measured elsewhere (the engine's phases).

pub mod metrics;
pub mod phases;
pub mod propagation;
pub mod traces;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub use traces::TracesConfig;

/// Set once the OTLP layer is installed; read by every span-building call site.
static TRACES_ON: AtomicBool = AtomicBool::new(false);

/// Set once the Prometheus recorder is installed.
static METRICS_ON: AtomicBool = AtomicBool::new(false);

/// Whether metrics are served: code that must read a clock or walk state to produce a metric
/// (rather than bump a counter, which is free without a recorder) checks this first.
pub fn metrics_on() -> bool {
    METRICS_ON.load(Ordering::Relaxed)
}

/// Whether spans are exported. False means no OTLP layer exists: building a span only to drop it
/// would be pure cost, so the per-job span code checks this first.
pub fn traces_on() -> bool {
    TRACES_ON.load(Ordering::Relaxed)
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("otlp exporter: {0}")]
    Exporter(String),
    #[error("metrics endpoint on {addr}: {reason}")]
    Metrics { addr: SocketAddr, reason: String },
}

/// How one process reports.
#[derive(Debug, Clone)]
pub struct Options {
    /// `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one.
    pub service: &'static str,
    /// The log filter when `RUST_LOG` is unset.
    pub default_filter: String,
    /// Timestamps on stderr lines (off in the engine host, whose lines the worker re-logs).
    pub timestamps: bool,
    /// `--otlp-endpoint`; `None` falls back to the `OTEL_EXPORTER_OTLP_*` variables.
    pub otlp_endpoint: Option<String>,
    /// `--metrics-listen`: serve Prometheus text on `http://ADDR/metrics`.
    pub metrics_listen: Option<SocketAddr>,
}

impl Options {
    /// Logs only: what client verbs and helper processes use.
    pub fn logs(service: &'static str, default_filter: &str) -> Options {
        Options {
            service,
            default_filter: default_filter.to_string(),
            timestamps: true,
            otlp_endpoint: None,
            metrics_listen: None,
        }
    }
}

/// The installed exporters; flushes them on [`Telemetry::shutdown`] or drop.
#[derive(Debug, Default)]
pub struct Telemetry {
    tracer: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    /// Where the Prometheus endpoint listens, when it does.
    pub metrics_addr: Option<SocketAddr>,
}

/// Installs the subscriber and the configured exporters. A second call in one process keeps the
/// first subscriber (tests start several servers in one process) and installs nothing more.
///
/// Must run inside a tokio runtime when an OTLP endpoint is configured: the gRPC exporter's
/// channel lives on it. The metrics endpoint is spawned on the current runtime too.
pub fn init(options: Options) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(&options.default_filter));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .compact();
    let fmt = if options.timestamps {
        fmt.boxed()
    } else {
        fmt.without_time().with_ansi(false).boxed()
    };
    let config = TracesConfig::from_env(options.otlp_endpoint.as_deref());
    let mut telemetry = Telemetry::default();
    let otel = match &config {
        Some(config) => {
            let provider = traces::provider(config, options.service)?;
            let layer = traces::layer(&provider).with_filter(traces::own_spans());
            telemetry.tracer = Some(provider);
            Some(layer)
        }
        None => None,
    };
    let installed = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel)
        .try_init()
        .is_ok();
    if installed && let Some(config) = &config {
        TRACES_ON.store(true, Ordering::Relaxed);
        tracing::info!(endpoint = %config.endpoint, protocol = config.protocol.name(),
                       "exporting traces over otlp");
    }
    if !installed {
        // Someone else's subscriber is in place: an exporter nobody feeds would only cost.
        if let Some(provider) = telemetry.tracer.take() {
            let _ = provider.shutdown();
        }
    }
    if let Some(addr) = options.metrics_listen {
        telemetry.metrics_addr = Some(metrics::serve(addr)?);
        METRICS_ON.store(true, Ordering::Relaxed);
    }
    Ok(telemetry)
}

impl Telemetry {
    /// Flushes every span not yet exported, then stops the exporter. Blocking (at most the
    /// exporter's timeout): call it off the async runtime's worker threads or at the very end.
    pub fn shutdown(mut self) {
        self.flush_and_stop();
    }

    fn flush_and_stop(&mut self) {
        if let Some(provider) = self.tracer.take() {
            TRACES_ON.store(false, Ordering::Relaxed);
            if let Err(err) = provider.force_flush() {
                eprintln!("telemetry: flushing spans failed: {err}");
            }
            if let Err(err) = provider.shutdown() {
                eprintln!("telemetry: stopping the span exporter failed: {err}");
            }
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.flush_and_stop();
    }
}
