//! OTLP trace export: which endpoint and protocol, the resource, the sampler, the layer.
//!
//! The standard variables decide, as in every OpenTelemetry SDK: `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or `--otlp-endpoint`, which wins) switches export on;
//! `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc`, the default, or `http/protobuf`) picks the transport;
//! `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` name the process; `OTEL_TRACES_SAMPLER` and
//! `OTEL_TRACES_SAMPLER_ARG` pick the sampler (read by the SDK itself); `OTEL_SDK_DISABLED=true`
//! or `OTEL_TRACES_EXPORTER=none` switch export off whatever else is set.
//!
//! Only this workspace's own spans are exported ([`own_spans`]): the exporter's transport (tonic,
//! h2, hyper) has spans of its own, and exporting those would trace the exporting, forever.

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::FilterFn;

use crate::TelemetryError;

/// The transport spans travel over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// Where spans go, when they go anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracesConfig {
    /// The endpoint as configured (for HTTP, `/v1/traces` is appended to a bare
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` or `--otlp-endpoint`, as the specification says).
    pub endpoint: String,
    pub protocol: Protocol,
}

impl TracesConfig {
    /// The configuration the environment and `flag` (`--otlp-endpoint`) describe; `None` when
    /// traces are not to be exported.
    pub fn from_env(flag: Option<&str>) -> Option<TracesConfig> {
        Self::from_lookup(flag, |name| std::env::var(name).ok())
    }

    /// [`TracesConfig::from_env`] over any variable lookup (tests pass a map).
    pub fn from_lookup(
        flag: Option<&str>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Option<TracesConfig> {
        let set = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
        {
            return None;
        }
        let protocol = match set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| set("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .as_deref()
        {
            Some(p) if p.eq_ignore_ascii_case("http/protobuf") => Protocol::HttpProtobuf,
            _ => Protocol::Grpc,
        };
        let bare = |base: String| match protocol {
            Protocol::Grpc => base,
            Protocol::HttpProtobuf => format!("{}/v1/traces", base.trim_end_matches('/')),
        };
        let endpoint = match flag.map(str::trim).filter(|f| !f.is_empty()) {
            Some(flag) => bare(flag.to_string()),
            // The per-signal variable is used as it is; the general one gets the signal's path.
            None => set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT").map(bare))?,
        };
        Some(TracesConfig { endpoint, protocol })
    }
}

/// The SDK's tracer provider for `config`, with a batch exporter. `service` is the
/// `service.name` unless the environment names one.
pub fn provider(
    config: &TracesConfig,
    service: &'static str,
) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = match config.protocol {
        Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(config.endpoint.clone())
            .build(),
        Protocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(config.endpoint.clone())
            .build(),
    }
    .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    // The builder's own detectors read OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; the default
    // name applies only when neither gives one (an attribute added last would override them).
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    let mut resource = Resource::builder();
    if !named {
        resource = resource.with_service_name(service);
    }
    let resource = resource
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    // The sampler is left to the SDK, which reads OTEL_TRACES_SAMPLER(_ARG) (default:
    // parent-based, always on).
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of `provider`.
pub fn layer<S>(
    provider: &SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::SdkTracer>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    opentelemetry::global::set_tracer_provider(provider.clone());
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("benchfarm"))
        .with_threads(false)
        .with_location(false)
        .with_target(false)
        // busy/idle nanoseconds per span: noise beside the timings the spans carry.
        .with_tracked_inactivity(false)
}

/// Spans and events of this workspace's crates at info level or above: the ones worth a trace.
pub fn own_spans() -> FilterFn<impl Fn(&Metadata<'_>) -> bool + Clone> {
    FilterFn::new(|meta: &Metadata<'_>| {
        meta.target().starts_with("benchfarm") && *meta.level() <= Level::INFO
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(flag: Option<&str>, vars: &[(&str, &str)]) -> Option<TracesConfig> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TracesConfig::from_lookup(flag, |name| vars.get(name).cloned())
    }

    #[test]
    fn nothing_is_exported_without_an_endpoint() {
        assert_eq!(config(None, &[]), None);
        assert_eq!(config(Some(" "), &[("OTEL_SERVICE_NAME", "x")]), None);
    }

    #[test]
    fn grpc_is_the_default_and_the_flag_wins() {
        let c = config(
            Some("http://127.0.0.1:4317"),
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://elsewhere:4317")],
        )
        .expect("on");
        assert_eq!(c.protocol, Protocol::Grpc);
        assert_eq!(c.endpoint, "http://127.0.0.1:4317");
    }

    #[test]
    fn http_protobuf_gets_the_signal_path_on_a_bare_endpoint_only() {
        let c = config(
            None,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ],
        )
        .expect("on");
        assert_eq!(c.protocol, Protocol::HttpProtobuf);
        assert_eq!(c.endpoint, "http://127.0.0.1:4318/v1/traces");
        let c = config(
            None,
            &[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://h:4318/custom"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ],
        )
        .expect("on");
        assert_eq!(c.endpoint, "http://h:4318/custom");
    }

    #[test]
    fn the_sdk_switches_win_over_an_endpoint() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317");
        assert_eq!(
            config(None, &[endpoint, ("OTEL_SDK_DISABLED", "true")]),
            None
        );
        assert_eq!(
            config(Some("http://x:1"), &[("OTEL_TRACES_EXPORTER", "none")]),
            None
        );
    }
}
