//! Spans whose start and end were measured elsewhere.
//!
//! The engine reports how long a job spent loading the model, evaluating the prompt and generating
//! (`benchfarm_engine::Timings`, measured in the engine's own process, which exports nothing).
//! `tracing` spans take their times from the moments they are entered and closed, so these are
//! built with the OpenTelemetry API instead, with explicit timestamps, as children of the remote
//! span a `traceparent` names (the coordinator's `job` span).

use std::time::SystemTime;

pub use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer as _};

use crate::propagation::context_of;
use crate::traces_on;

/// Records a finished span `name` from `start` to `end`, child of the span `traceparent` names.
/// Nothing with traces off or without a parent.
pub fn record(
    traceparent: &str,
    name: &'static str,
    start: SystemTime,
    end: SystemTime,
    attributes: Vec<KeyValue>,
) {
    if !traces_on() {
        return;
    }
    let Some(cx) = context_of(traceparent) else {
        return;
    };
    let tracer = opentelemetry::global::tracer("benchfarm");
    let mut span = tracer
        .span_builder(name)
        .with_start_time(start)
        .with_attributes(attributes)
        .start_with_context(&tracer, &cx);
    span.end_with_timestamp(end.max(start));
}
