//! The worker's spans and metrics.
//!
//! Spans: each job's `load_model` (when the job loaded it), `prompt_eval`, `generate`, `grade` and
//! `report` are children of the coordinator's `job` span, whose `traceparent` the assignment
//! carries. The engine's three phases are measured by the engine (in its own process, see
//! docs/timings.md) and placed on the worker's clock: the load from the moment the slot called the
//! engine, generation ending when the call returned, prompt evaluation just before it.
//!
//! Metrics (Prometheus names; labels bounded: model names, never job ids):
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `benchfarm_worker_running_jobs` (the current jobs) | gauge | `model`, `task` |
//! | `benchfarm_worker_model_loaded` (slots holding it) | gauge | `model` |
//! | `benchfarm_worker_last_tokens_per_second` | gauge | `model` |
//! | `benchfarm_worker_jobs_total` | counter | `outcome` = succeeded, failed, returned |
//! | `benchfarm_worker_resident_memory_bytes` | gauge | `process` = worker, engines |
//! | `benchfarm_worker_engine_restarts_total` | counter | |
//! | `benchfarm_worker_connected` | gauge | |
//! | `benchfarm_worker_model_fetches_total` | counter | `outcome` = fetched, corrupt, failed |
//! | `benchfarm_worker_model_fetch_bytes_total` | counter | |
//! | `benchfarm_worker_model_fetch_seconds` (whole transfers) | histogram | |
//! | `benchfarm_worker_cache_bytes`, `benchfarm_worker_cache_capacity_bytes` | gauge | |
//! | `benchfarm_worker_cache_evictions_total` | counter | |
//!
//! A fetch before a job is the `fetch_model` span, a child of the job's span.

use std::time::{Duration, SystemTime};

use benchfarm_engine::Timings;
use benchfarm_telemetry::phases::{self, KeyValue};
use benchfarm_telemetry::propagation;
use metrics::{counter, gauge};
use tracing::Span;
use tracing::field::Empty;

/// How often the memory gauges are sampled.
const MEMORY_EVERY: Duration = Duration::from_secs(5);

/// Records the engine's phases of one job under the job's span.
pub fn engine_phases(
    traceparent: &str,
    model: &str,
    started: SystemTime,
    ended: SystemTime,
    t: &Timings,
) {
    if !benchfarm_telemetry::traces_on() || traceparent.is_empty() {
        return;
    }
    let ms = |v: f64| Duration::from_secs_f64((v.max(0.0)) / 1000.0);
    if t.cold {
        phases::record(
            traceparent,
            "load_model",
            started,
            started + ms(t.load_ms),
            vec![
                KeyValue::new("model", model.to_string()),
                KeyValue::new("load_ms", t.load_ms),
            ],
        );
    }
    let gen_start = ended.checked_sub(ms(t.gen_ms)).unwrap_or(started);
    let prompt_start = gen_start.checked_sub(ms(t.prompt_ms)).unwrap_or(started);
    phases::record(
        traceparent,
        "prompt_eval",
        prompt_start,
        gen_start,
        vec![
            KeyValue::new("prompt_tokens", i64::from(t.prompt_tokens)),
            KeyValue::new("prompt_ms", t.prompt_ms),
            KeyValue::new("ttft_ms", t.ttft_ms),
        ],
    );
    let mut generate = vec![
        KeyValue::new("model", model.to_string()),
        KeyValue::new("gen_tokens", i64::from(t.gen_tokens)),
        KeyValue::new("gen_ms", t.gen_ms),
        KeyValue::new("decode_tokens", i64::from(t.decode_tokens)),
        KeyValue::new("decode_ms", t.decode_ms),
    ];
    if t.gen_ms > 0.0 {
        generate.push(KeyValue::new(
            "tokens_per_second",
            f64::from(t.gen_tokens) * 1000.0 / t.gen_ms,
        ));
    }
    phases::record(traceparent, "generate", gen_start, ended, generate);
}

/// The span of grading one answer.
pub fn grade_span(traceparent: &str, task: &str) -> Span {
    child_of(
        traceparent,
        tracing::info_span!(parent: None, "grade", task = %task, verdict = Empty, score = Empty),
    )
}

/// The span of reporting one job's end to the coordinator (outbox write and send).
pub fn report_span(traceparent: &str, job_id: &str, attempt: u32, outcome: &str) -> Span {
    child_of(
        traceparent,
        tracing::info_span!(parent: None, "report", job.id = %job_id,
                           attempt = i64::from(attempt), outcome = %outcome),
    )
}

/// The span of a model fetch before a job (a child of the job's span: the transfer is part of the
/// job's trace, though not of its timings).
pub fn fetch_span(traceparent: &str, model: &str, bytes: u64) -> Span {
    child_of(
        traceparent,
        tracing::info_span!(parent: None, "fetch_model", model = %model,
                           bytes = i64::try_from(bytes).unwrap_or(i64::MAX)),
    )
}

fn child_of(traceparent: &str, span: Span) -> Span {
    if !benchfarm_telemetry::traces_on() || traceparent.is_empty() {
        return Span::none();
    }
    propagation::set_parent(&span, traceparent);
    span
}

/// A graded job's speed.
pub fn job_ran(model: &str, t: &Timings) {
    if t.gen_ms > 0.0 {
        gauge!("benchfarm_worker_last_tokens_per_second", "model" => model.to_string())
            .set(f64::from(t.gen_tokens) * 1000.0 / t.gen_ms);
    }
}

/// A slot starts (`+1`) or ends (`-1`) a job.
pub fn running(model: &str, task: &str, delta: f64) {
    gauge!("benchfarm_worker_running_jobs", "model" => model.to_string(), "task" => task.to_string())
        .increment(delta);
}

/// A slot's engine now holds `now` (None: a fresh engine, nothing loaded) instead of `*held`.
pub fn slot_holds(held: &mut Option<String>, now: Option<&str>) {
    if held.as_deref() == now {
        return;
    }
    if let Some(old) = held.take() {
        gauge!("benchfarm_worker_model_loaded", "model" => old).decrement(1.0);
    }
    if let Some(now) = now {
        gauge!("benchfarm_worker_model_loaded", "model" => now.to_string()).increment(1.0);
        *held = Some(now.to_string());
    }
}

/// How a job ended on this worker.
pub fn job_ended(outcome: &'static str) {
    counter!("benchfarm_worker_jobs_total", "outcome" => outcome).increment(1);
}

/// Whether the worker's stream to the coordinator is up.
pub fn connected(up: bool) {
    gauge!("benchfarm_worker_connected").set(if up { 1.0 } else { 0.0 });
}

/// Describes the worker's metrics (HELP lines) and starts its counters at zero.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_gauge!(
        "benchfarm_worker_running_jobs",
        "Jobs this worker is running now, by model and task."
    );
    describe_gauge!(
        "benchfarm_worker_model_loaded",
        "Slots whose engine holds the model (loaded by the last job)."
    );
    describe_gauge!(
        "benchfarm_worker_last_tokens_per_second",
        "Generation speed of the last job, by model."
    );
    describe_counter!(
        "benchfarm_worker_jobs_total",
        "Jobs this worker ended, by outcome."
    );
    describe_gauge!(
        "benchfarm_worker_resident_memory_bytes",
        Unit::Bytes,
        "Resident memory of the worker process and of its engine processes."
    );
    describe_counter!(
        "benchfarm_worker_engine_restarts_total",
        "Engines lost (a crash, an abort, a kill) and started afresh."
    );
    describe_gauge!(
        "benchfarm_worker_connected",
        "1 while the stream to the coordinator is up."
    );
    counter!("benchfarm_worker_engine_restarts_total").increment(0);
    for outcome in ["succeeded", "failed", "returned"] {
        counter!("benchfarm_worker_jobs_total", "outcome" => outcome).increment(0);
    }
    connected(false);
}

/// With metrics served: describes them, and samples the resident memory of this process and of
/// its engine processes (its children) until the runtime stops.
pub fn start() {
    if !benchfarm_telemetry::metrics_on() {
        return;
    }
    describe();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(MEMORY_EVERY);
        loop {
            every.tick().await;
            let (own, children) = tokio::task::spawn_blocking(resident_bytes)
                .await
                .unwrap_or((0, 0));
            gauge!("benchfarm_worker_resident_memory_bytes", "process" => "worker").set(own as f64);
            gauge!("benchfarm_worker_resident_memory_bytes", "process" => "engines")
                .set(children as f64);
        }
    });
}

/// (this process, its direct children) resident set sizes in bytes, from /proc.
fn resident_bytes() -> (u64, u64) {
    let own = std::process::id();
    let rss = |pid: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024)
    };
    let mut children = 0;
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            // The fields after the command name (which may hold spaces) start with state, ppid.
            let parent = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = stat.rsplit_once(')')?.1.to_string();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                });
            if parent == Some(own) {
                children += rss(pid);
            }
        }
    }
    (rss(&own.to_string()), children)
}
