//! W3C trace context across process boundaries: the `traceparent` of a span as a string (carried
//! in a stream message, stored with a result), and in gRPC metadata on unary calls.
//!
//! Everything here is a no-op returning empty values while [`crate::traces_on`] is false, so the
//! callers need no second code path. The propagator is used directly rather than through the
//! global one, so what is injected does not depend on who set up the process.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tonic::codegen::http;
use tonic::metadata::MetadataMap;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::traces_on;

const TRACEPARENT: &str = "traceparent";

/// `span`'s context as a `traceparent` header value; empty when traces are off or the span is
/// disabled. Reading it starts the span's OpenTelemetry side: set its parent before this.
pub fn traceparent(span: &Span) -> String {
    if !traces_on() || span.is_disabled() {
        return String::new();
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove(TRACEPARENT).unwrap_or_default()
}

/// The trace id (32 hex digits) in a `traceparent`; `None` for an empty or malformed one.
pub fn trace_id_of(traceparent: &str) -> Option<String> {
    let cx = context_of(traceparent)?;
    let span = cx.span();
    let id = span.span_context();
    id.is_valid().then(|| id.trace_id().to_string())
}

/// The remote parent a `traceparent` describes; `None` when there is none.
pub(crate) fn context_of(traceparent: &str) -> Option<Context> {
    if traceparent.is_empty() {
        return None;
    }
    let carrier = HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// Makes `span` a child of the remote span `traceparent` describes. Call it before the span is
/// first entered (or its context read): tracing-opentelemetry builds the span then, and a parent
/// set later is ignored. Nothing happens for an empty `traceparent` or with traces off.
pub fn set_parent(span: &Span, traceparent: &str) {
    if !traces_on() {
        return;
    }
    if let Some(cx) = context_of(traceparent) {
        let _ = span.set_parent(cx);
    }
}

/// Adds the current span's context to outgoing gRPC metadata: a tonic client interceptor.
pub fn inject_current(
    mut request: tonic::Request<()>,
) -> Result<tonic::Request<()>, tonic::Status> {
    if traces_on() {
        let cx = Span::current().context();
        TraceContextPropagator::new()
            .inject_context(&cx, &mut MetadataInjector(request.metadata_mut()));
    }
    Ok(request)
}

/// The server's span for one gRPC call (tonic's `Server::trace_fn`), child of the caller's span
/// when the metadata carries one. The worker's `Connect` stream gets none: it stays open for
/// hours, and each job it carries has a span of its own instead.
pub fn server_span(request: &http::Request<()>) -> Span {
    if !traces_on() {
        return Span::none();
    }
    let path = request.uri().path();
    if path.ends_with("/Connect") {
        return Span::none();
    }
    let span = tracing::info_span!("grpc", otel.name = %path.trim_start_matches('/'),
                                   otel.kind = "server", rpc.system = "grpc");
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
    span
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_yields_its_trace_id() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            trace_id_of(tp).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id_of(""), None);
        assert_eq!(trace_id_of("00-zz-yy-01"), None);
    }

    #[test]
    fn with_traces_off_nothing_is_injected() {
        assert_eq!(traceparent(&tracing::info_span!("job")), "");
        let request = inject_current(tonic::Request::new(())).expect("interceptor");
        assert!(request.metadata().get(TRACEPARENT).is_none());
    }
}
