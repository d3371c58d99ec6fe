//! The coordinator's spans and metrics, made from the core's events ([`super::observe`]).
//!
//! Spans: a run's span covers its submit ([`run_span`], in the gRPC layer); each attempt gets a
//! `job` span from its assignment to its end, child of the run's span, with the job's model, task,
//! repetition, attempt, worker and hardware class, and at its end the verdict and the timings the
//! worker measured. The span's `traceparent` travels in the assignment, so the worker's spans hang
//! under it. Spans live in a map keyed by (job, attempt) while open: a coordinator restart drops
//! them unfinished (they are not exported), and the attempts' stored `trace_parent` still names
//! the trace that the worker's spans join.
//!
//! Metrics (Prometheus names, base units; labels are bounded sets — hardware class, model, state,
//! verdict, a live run id — never a job id):
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `benchfarm_workers_connected` | gauge | `hardware_class` |
//! | `benchfarm_jobs` (live jobs) | gauge | `state` = queued, assigned, running |
//! | `benchfarm_jobs_total` (jobs that ended) | counter | `state` = done, failed, cancelled |
//! | `benchfarm_queue_depth` | gauge | `run` (running runs only) |
//! | `benchfarm_job_duration_seconds` | histogram | `model`, `hardware_class` |
//! | `benchfarm_job_ttft_seconds` | histogram | `model`, `hardware_class` |
//! | `benchfarm_generation_tokens_per_second` | histogram | `model`, `hardware_class` |
//! | `benchfarm_results_total` (counted results) | counter | `model`, `hardware_class`, `verdict` |
//! | `benchfarm_results_ingested_total` | counter | `counted` |
//! | `benchfarm_attempts_ended_total` (without an answer) | counter | `reason` |
//! | `benchfarm_job_retries_total` | counter | |
//! | `benchfarm_workers_lost_total` | counter | `hardware_class` |
//! | `benchfarm_worker_quarantines_total` | counter | `hardware_class` |
//! | `benchfarm_scheduler_step_seconds` | histogram | |
//! | `benchfarm_store_flush_seconds` | histogram | (recorded by the store) |

use std::collections::HashMap;
use std::time::Duration;

use benchfarm_telemetry::propagation;
use metrics::{counter, gauge, histogram};
use tracing::Span;
use tracing::field::Empty;

use super::observe::{Assigned, Ended, Gauges, Observer};
use crate::records::{AttemptEnd, JobRecord, RunRecord};

/// The span of a run's submit; its `traceparent` is stored with the run.
pub fn run_span(run: &RunRecord) -> Span {
    if !benchfarm_telemetry::traces_on() {
        return Span::none();
    }
    tracing::info_span!("run", run.id = %run.id, suite = %run.suite_name,
                        suite.version = %run.suite_version, repetitions = i64::from(run.repetitions),
                        models = run.models.len() as i64, jobs = Empty)
}

/// Spans of the attempts in flight, and the model and class of each (the labels of the metrics
/// recorded when it ends).
#[derive(Default)]
pub struct JobTelemetry {
    open: HashMap<(String, u32), Open>,
}

struct Open {
    span: Span,
    model: String,
    class: String,
}

impl std::fmt::Debug for JobTelemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobTelemetry")
            .field("open", &self.open.len())
            .finish()
    }
}

impl Observer for JobTelemetry {
    fn assigned(&mut self, a: Assigned<'_>) -> String {
        let span = if benchfarm_telemetry::traces_on() {
            // No contextual parent: the run's span, from the store, is the parent.
            let span = tracing::info_span!(parent: None, "job",
                job.id = %a.job.id, run.id = %a.job.run_id, model = %a.model,
                task = %a.job.task_id, repetition = i64::from(a.job.repetition),
                attempt = i64::from(a.attempt),
                worker.id = %a.worker_id, worker.name = %a.worker_name,
                hardware_class = %a.hardware_class,
                verdict = Empty, score = Empty, end = Empty, retried = Empty,
                load_ms = Empty, cold = Empty, prompt_tokens = Empty, prompt_ms = Empty,
                ttft_ms = Empty, gen_tokens = Empty, gen_ms = Empty, wall_ms = Empty,
                decode_tokens = Empty, decode_ms = Empty, tokens_per_second = Empty,
                otel.status_code = Empty);
            propagation::set_parent(&span, a.run_trace_parent);
            span
        } else {
            Span::none()
        };
        let traceparent = propagation::traceparent(&span);
        self.open.insert(
            (a.job.id.clone(), a.attempt),
            Open {
                span,
                model: a.model.to_string(),
                class: a.hardware_class.to_string(),
            },
        );
        traceparent
    }

    fn ended(&mut self, job: &JobRecord, attempt: u32, how: Ended<'_>) {
        let open = self.open.remove(&(job.id.clone(), attempt));
        match how {
            Ended::Succeeded(result) => {
                let t = &result.timings;
                let verdict = result.grade.verdict.to_string();
                let (model, class) = match &open {
                    Some(o) => (o.model.clone(), o.class.clone()),
                    None => (String::new(), result.hardware_class.clone()),
                };
                let speed = (t.gen_ms > 0.0).then(|| f64::from(t.gen_tokens) * 1000.0 / t.gen_ms);
                let labels = [("model", model.clone()), ("hardware_class", class.clone())];
                histogram!("benchfarm_job_duration_seconds", &labels).record(t.wall_ms / 1000.0);
                histogram!("benchfarm_job_ttft_seconds", &labels).record(t.ttft_ms / 1000.0);
                if let Some(speed) = speed {
                    histogram!("benchfarm_generation_tokens_per_second", &labels).record(speed);
                }
                counter!("benchfarm_results_total", "model" => model, "hardware_class" => class,
                         "verdict" => verdict.clone())
                .increment(1);
                counter!("benchfarm_jobs_total", "state" => "done").increment(1);
                if let Some(Open { span, .. }) = open {
                    span.record("verdict", verdict.as_str());
                    span.record("score", result.grade.score);
                    span.record("end", "succeeded");
                    span.record("load_ms", t.load_ms);
                    span.record("cold", t.cold);
                    span.record("prompt_tokens", i64::from(t.prompt_tokens));
                    span.record("prompt_ms", t.prompt_ms);
                    span.record("ttft_ms", t.ttft_ms);
                    span.record("gen_tokens", i64::from(t.gen_tokens));
                    span.record("gen_ms", t.gen_ms);
                    span.record("wall_ms", t.wall_ms);
                    span.record("decode_tokens", i64::from(t.decode_tokens));
                    span.record("decode_ms", t.decode_ms);
                    if let Some(speed) = speed {
                        span.record("tokens_per_second", speed);
                    }
                }
            }
            Ended::Without {
                end,
                retried,
                failed,
            } => {
                let (reason, why) = match end {
                    AttemptEnd::Succeeded => ("succeeded", String::new()),
                    AttemptEnd::Failed(why) => ("failed", why.clone()),
                    AttemptEnd::Lost(why) => ("lost", why.clone()),
                    AttemptEnd::Cancelled => ("cancelled", String::new()),
                    AttemptEnd::Returned(why) => ("returned", why.clone()),
                };
                counter!("benchfarm_attempts_ended_total", "reason" => reason).increment(1);
                if retried && end.is_try() {
                    counter!("benchfarm_job_retries_total").increment(1);
                }
                if failed {
                    counter!("benchfarm_jobs_total", "state" => "failed").increment(1);
                }
                if let Some(Open { span, .. }) = open {
                    span.record("end", reason);
                    span.record("retried", retried);
                    if matches!(end, AttemptEnd::Failed(_) | AttemptEnd::Lost(_)) {
                        span.record("otel.status_code", "ERROR");
                        tracing::warn!(parent: &span, reason = %why, "attempt ended without an answer");
                    }
                }
            }
        }
    }

    fn result_ingested(&mut self, counted: bool) {
        counter!("benchfarm_results_ingested_total", "counted" => if counted { "true" } else { "false" })
            .increment(1);
    }

    fn worker_joined(&mut self, hardware_class: &str) {
        // Zero series per class, so "lost" and "quarantined" read 0, not "no data", until they
        // happen.
        let class = hardware_class.to_string();
        counter!("benchfarm_workers_lost_total", "hardware_class" => class.clone()).increment(0);
        counter!("benchfarm_worker_quarantines_total", "hardware_class" => class).increment(0);
    }

    fn worker_lost(&mut self, hardware_class: &str) {
        counter!("benchfarm_workers_lost_total", "hardware_class" => hardware_class.to_string())
            .increment(1);
    }

    fn quarantined(&mut self, hardware_class: &str) {
        counter!("benchfarm_worker_quarantines_total", "hardware_class" => hardware_class.to_string())
            .increment(1);
    }

    fn cancelled(&mut self, jobs: u32) {
        counter!("benchfarm_jobs_total", "state" => "cancelled").increment(u64::from(jobs));
    }
}

/// Describes every coordinator metric (Prometheus' HELP lines) and starts the counters that have
/// no per-event labels at zero, so a scrape lists them before the first event.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        "benchfarm_workers_connected",
        "Workers connected now, by hardware class."
    );
    describe_gauge!(
        "benchfarm_jobs",
        "Live jobs by state (queued, assigned, running)."
    );
    describe_counter!(
        "benchfarm_jobs_total",
        "Jobs that ended, by final state (done, failed, cancelled)."
    );
    describe_gauge!("benchfarm_queue_depth", "Queued jobs of each running run.");
    describe_histogram!(
        "benchfarm_job_duration_seconds",
        Unit::Seconds,
        "Wall time of a job's generation on its worker (load included), by model and hardware class."
    );
    describe_histogram!(
        "benchfarm_job_ttft_seconds",
        Unit::Seconds,
        "Time to first token of a job, by model and hardware class."
    );
    describe_histogram!(
        "benchfarm_generation_tokens_per_second",
        "End-to-end generation speed of a job (gen_tokens / gen_ms), by model and hardware class."
    );
    describe_counter!(
        "benchfarm_results_total",
        "Counted results by model, hardware class and verdict."
    );
    describe_counter!(
        "benchfarm_results_ingested_total",
        "Results stored, counted or not (superseded attempts)."
    );
    describe_counter!(
        "benchfarm_attempts_ended_total",
        "Attempts that ended without an answer, by reason."
    );
    describe_counter!(
        "benchfarm_job_retries_total",
        "Attempts that ended without an answer and sent their job back to the queue."
    );
    describe_counter!(
        "benchfarm_workers_lost_total",
        "Workers whose lease expired, by hardware class."
    );
    describe_counter!(
        "benchfarm_worker_quarantines_total",
        "Workers quarantined after failing jobs in a row, by hardware class."
    );
    describe_histogram!(
        "benchfarm_scheduler_step_seconds",
        Unit::Seconds,
        "One scheduler step: a batch of commands, placement and the group commit."
    );
    describe_histogram!(
        "benchfarm_store_flush_seconds",
        Unit::Seconds,
        "One store flush (fsync)."
    );
    for state in ["done", "failed", "cancelled"] {
        counter!("benchfarm_jobs_total", "state" => state).increment(0);
    }
    for reason in ["failed", "lost", "returned", "cancelled"] {
        counter!("benchfarm_attempts_ended_total", "reason" => reason).increment(0);
    }
    counter!("benchfarm_job_retries_total").increment(0);
    for kind in ["true", "false"] {
        counter!("benchfarm_results_ingested_total", "counted" => kind).increment(0);
    }
}

/// Records one scheduler step's latency.
pub fn step_took(elapsed: Duration) {
    histogram!("benchfarm_scheduler_step_seconds").record(elapsed.as_secs_f64());
}

/// Sets the live-count gauges. A class or run that disappeared is set to zero once (the exporter
/// drops gauges idle for 5 minutes).
pub fn gauges(g: &Gauges) {
    use std::sync::Mutex;
    static LAST: Mutex<Option<Gauges>> = Mutex::new(None);
    let Ok(mut last) = LAST.lock() else {
        return;
    };
    if let Some(previous) = last.as_ref() {
        for class in previous.workers_connected.keys() {
            if !g.workers_connected.contains_key(class) {
                gauge!("benchfarm_workers_connected", "hardware_class" => class.clone()).set(0.0);
            }
        }
        for run in previous.queue_depth.keys() {
            if !g.queue_depth.contains_key(run) {
                gauge!("benchfarm_queue_depth", "run" => run.clone()).set(0.0);
            }
        }
    }
    for (class, n) in &g.workers_connected {
        gauge!("benchfarm_workers_connected", "hardware_class" => class.clone()).set(f64::from(*n));
    }
    for (run, n) in &g.queue_depth {
        gauge!("benchfarm_queue_depth", "run" => run.clone()).set(f64::from(*n));
    }
    gauge!("benchfarm_jobs", "state" => "queued").set(g.queued as f64);
    gauge!("benchfarm_jobs", "state" => "assigned").set(g.assigned as f64);
    gauge!("benchfarm_jobs", "state" => "running").set(g.running as f64);
    *last = Some(g.clone());
}
