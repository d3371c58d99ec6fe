//! Builds a run's report from the store: records in, `benchfarm-report` inputs out.
//!
//! Every stored result becomes an outcome with its `counted` flag (a superseded attempt's answer is
//! shown in jsonl and the HTML drill-down, and never scored twice: aggregation skips it); every
//! attempt that ended without an answer becomes a [`FailedAttempt`] line; jobs that ended failed
//! become the report's failed jobs, with every attempt's reason.

use std::collections::HashMap;

use benchfarm_report::throughput::ThroughputSample;
use benchfarm_report::{
    CheckOutcome, FailedAttempt, FailedJob, Format, GradeEntry, ModelInfo, Outcome, Price,
    RemoteOutcome, RunInfo, TaskInfo,
};

use crate::job::JobState;
use crate::records::{
    AttemptEnd, JobRecord, ModelKind, ResultRecord, RunModel, RunRecord, WorkerRecord,
};
use crate::store::{Store, StoreError};

/// Everything a report of a run is made from.
pub struct Inputs {
    pub info: RunInfo,
    pub outcomes: Vec<Outcome>,
    pub failures: Vec<FailedAttempt>,
    /// The counted measurements of the run's throughput jobs (never among `outcomes`: they
    /// have no answer and no grade).
    pub throughput: Vec<ThroughputSample>,
}

/// How much of each answer the report keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Every answer, its grader trace and grade history (jsonl, the HTML drill-down).
    Full,
    /// The counts and timings the aggregate reads; answers, traces and grade histories are
    /// left empty (table, md, csv, json): a 100,000-result report then holds no answer text.
    Summary,
}

impl Detail {
    /// What a format shows.
    pub fn of(format: Format) -> Detail {
        match format {
            Format::Jsonl | Format::Html => Detail::Full,
            Format::Table | Format::Markdown | Format::Csv | Format::Json => Detail::Summary,
        }
    }
}

/// The report inputs of a run, read from the store one record at a time: a job is kept only as
/// the few fields its results need, and a result becomes its outcome as it is read, so the
/// memory of a report is its outcomes (without answers, for [`Detail::Summary`]), not the run's
/// stored records.
pub fn load(store: &Store, run: &RunRecord, detail: Detail) -> Result<Inputs, StoreError> {
    let workers = store.workers()?;
    let mut builder = Builder::new(run, &workers, detail);
    store.for_each_job_of_run(&run.id, |job| builder.job(&job))?;
    store.for_each_result_of_run(&run.id, |result| builder.result(&result))?;
    Ok(builder.finish())
}

/// Pure mapping of records to report inputs (every answer kept).
pub fn inputs(
    run: &RunRecord,
    jobs: &[JobRecord],
    results: &[ResultRecord],
    workers: &[WorkerRecord],
) -> Inputs {
    let mut builder = Builder::new(run, workers, Detail::Full);
    for job in jobs {
        builder.job(job);
    }
    for result in results {
        builder.result(result);
    }
    builder.finish()
}

/// The report's name for a model's kind.
fn kind_name(kind: &ModelKind) -> &'static str {
    match kind {
        ModelKind::Gguf { .. } => "gguf",
        ModelKind::Scripted { .. } => "scripted",
        ModelKind::Remote(_) => "remote",
    }
}

/// A remote model's price, in the report's terms.
fn price_of(model: &RunModel) -> Option<Price> {
    model
        .remote()
        .and_then(|r| r.price_per_mtok)
        .map(|p| Price {
            input: p.input,
            output: p.output,
        })
}

/// What a result needs of its job.
struct JobBrief {
    model_index: u32,
    task_id: String,
    repetition: u32,
    seed: u64,
    throughput: Option<benchfarm_domain::ThroughputTest>,
}

/// Report inputs, built from a run's jobs (all of them first) and then its results.
struct Builder<'a> {
    run: &'a RunRecord,
    workers: HashMap<&'a str, &'a WorkerRecord>,
    detail: Detail,
    /// The suite the run was graded with: each task's sampling temperature.
    suite: Option<benchfarm_suite::Suite>,
    jobs: HashMap<String, JobBrief>,
    outcomes: Vec<Outcome>,
    failures: Vec<FailedAttempt>,
    failed_jobs: Vec<FailedJob>,
    throughput: Vec<ThroughputSample>,
}

impl<'a> Builder<'a> {
    fn new(run: &'a RunRecord, workers: &'a [WorkerRecord], detail: Detail) -> Builder<'a> {
        Builder {
            run,
            workers: workers.iter().map(|w| (w.id.as_str(), w)).collect(),
            detail,
            suite: benchfarm_suite::Suite::parse(&run.suite_toml, "suite_toml").ok(),
            jobs: HashMap::new(),
            outcomes: Vec::new(),
            failures: Vec::new(),
            failed_jobs: Vec::new(),
            throughput: Vec::new(),
        }
    }

    fn model(&self, model_index: u32) -> Option<&'a RunModel> {
        self.run.models.get(model_index as usize)
    }

    fn model_name(&self, model_index: u32) -> String {
        self.model(model_index)
            .map(|m| m.name.clone())
            .unwrap_or_default()
    }

    fn temperature(&self, task: &str) -> Option<f64> {
        self.suite
            .as_ref()
            .and_then(|s| s.task(task))
            .map(|t| f64::from(t.temperature))
    }

    fn category(&self, task: &str) -> String {
        self.run
            .tasks
            .iter()
            .find(|t| t.id == task)
            .map(|t| t.category.clone())
            .unwrap_or_default()
    }

    /// A job: its failed attempts become failure lines (and the job a failed job when it
    /// ended failed); what its results need is kept.
    fn job(&mut self, job: &JobRecord) {
        let run = self.run;
        let model = self.model(job.model_index);
        let last = job.attempts.last().map(|a| a.attempt);
        for a in &job.attempts {
            let reason = match &a.end {
                Some(AttemptEnd::Failed(r) | AttemptEnd::Lost(r)) => r.clone(),
                _ => continue,
            };
            let worker = self.workers.get(a.worker_id.as_str()).copied();
            let failure = FailedAttempt {
                run: run.id.clone(),
                job: job.id.clone(),
                attempt: a.attempt,
                model: self.model_name(job.model_index),
                model_sha256: model.map(|m| m.sha256.clone()).unwrap_or_default(),
                model_size_bytes: model.map_or(0, |m| m.size_bytes),
                task_id: job.task_id.clone(),
                category: self.category(&job.task_id),
                repetition: job.repetition,
                reason,
                job_failed: last == Some(a.attempt) && job.state == JobState::Failed,
                worker_id: a.worker_id.clone(),
                worker_name: worker.map(|w| w.name.clone()).unwrap_or_default(),
                // A remote model's attempt ran (or failed) on its endpoint.
                hardware_class: match model.and_then(RunModel::remote) {
                    Some(r) => crate::hardware_class::endpoint_class(&r.url, &r.model),
                    None => worker.map(|w| w.hardware_class.clone()).unwrap_or_default(),
                },
                hardware_tags: worker.map(|w| w.hardware.simd.clone()).unwrap_or_default(),
                threads: worker.map_or(0, |w| w.threads),
                llama_cpp_build: worker
                    .map(|w| w.llama_cpp_build.clone())
                    .unwrap_or_default(),
                suite_name: run.suite_name.clone(),
                suite_version: run.suite_version.clone(),
                seed: Some(job.seed),
                temperature: self.temperature(&job.task_id),
                wall_ms: a
                    .ended_unix_ms
                    .map(|end| (end - a.started_unix_ms.unwrap_or(a.assigned_unix_ms)) as f64),
                trace_id: benchfarm_telemetry::propagation::trace_id_of(&a.trace_parent)
                    .unwrap_or_default(),
                ..FailedAttempt::default()
            };
            self.failures.push(failure);
        }
        if job.state == JobState::Failed {
            let reason = job
                .attempts
                .iter()
                .filter_map(|a| match &a.end {
                    Some(AttemptEnd::Failed(r) | AttemptEnd::Lost(r)) => {
                        Some(format!("attempt {}: {r}", a.attempt))
                    }
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("; ");
            self.failed_jobs.push(FailedJob {
                model: self.model_name(job.model_index),
                task_id: job.task_id.clone(),
                repetition: job.repetition,
                reason,
            });
        }
        self.jobs.insert(
            job.id.clone(),
            JobBrief {
                model_index: job.model_index,
                task_id: job.task_id.clone(),
                repetition: job.repetition,
                seed: job.seed,
                throughput: job.throughput,
            },
        );
    }

    /// A result: a counted throughput measurement, or a graded outcome. A result whose job was
    /// not read is left out.
    fn result(&mut self, r: &ResultRecord) {
        if self.outcomes.capacity() == 0 {
            // Most jobs have one result: room for that many, not twice as many by doubling.
            self.outcomes.reserve_exact(self.jobs.len());
        }
        let Some(job) = self.jobs.get(r.job_id.as_str()) else {
            return;
        };
        let run = self.run;
        let model = self.model(job.model_index);
        // A throughput job's result is a measurement, not a graded outcome.
        if let Some(test) = job.throughput {
            if let (true, Some(m)) = (r.counted, r.throughput.as_ref()) {
                let sample = ThroughputSample {
                    job_id: r.job_id.clone(),
                    attempt: r.attempt,
                    repetition: job.repetition,
                    model: self.model_name(job.model_index),
                    model_size: model.map_or(0, |m| m.size_bytes),
                    model_n_params: m.model_n_params,
                    hardware_class: r.hardware_class.clone(),
                    worker: r.worker_name.clone(),
                    backend: m.backends.clone(),
                    threads: r.threads,
                    test,
                    samples_ns: m.samples_ns.clone(),
                    build_features: r.build_features.clone(),
                };
                self.throughput.push(sample);
            }
            return;
        }
        let full = self.detail == Detail::Full;
        let worker = self.workers.get(r.worker_id.as_str()).copied();
        let outcome = Outcome {
            model: self.model_name(job.model_index),
            task_id: job.task_id.clone(),
            repetition: job.repetition,
            verdict: r.grade.verdict,
            worker_id: r.worker_id.clone(),
            worker_name: r.worker_name.clone(),
            hardware_class: r.hardware_class.clone(),
            threads: r.threads,
            wall_ms: r.timings.wall_ms,
            load_ms: r.timings.load_ms,
            cold: r.timings.cold,
            prompt_tokens: r.timings.prompt_tokens,
            prompt_ms: r.timings.prompt_ms,
            ttft_ms: r.timings.ttft_ms,
            gen_tokens: r.timings.gen_tokens,
            gen_ms: r.timings.gen_ms,
            decode_tokens: r.timings.decode_tokens,
            decode_ms: r.timings.decode_ms,
            run: run.id.clone(),
            job: r.job_id.clone(),
            attempt: r.attempt,
            counted: r.counted,
            model_sha256: model.map(|m| m.sha256.clone()).unwrap_or_default(),
            model_size_bytes: model.map_or(0, |m| m.size_bytes),
            category: self.category(&job.task_id),
            answer: if full {
                r.answer.clone()
            } else {
                String::new()
            },
            extracted: if full {
                r.grade.extracted.clone()
            } else {
                Default::default()
            },
            score: Some(r.grade.score),
            checks: if full {
                r.grade
                    .checks
                    .iter()
                    .map(|c| CheckOutcome {
                        group: c.group.clone(),
                        check: c.check.clone(),
                        held: c.held,
                    })
                    .collect()
            } else {
                Vec::new()
            },
            llama_cpp_build: worker
                .map(|w| w.llama_cpp_build.clone())
                .unwrap_or_default(),
            chat_template: r.chat_template.clone(),
            stop: r.stop.clone(),
            suite_name: run.suite_name.clone(),
            suite_version: run.suite_version.clone(),
            seed: Some(job.seed),
            temperature: self.temperature(&job.task_id),
            // The build's CPU features as the result reported them (older results: the
            // worker's SIMD list).
            hardware_tags: if r.build_features.is_empty() {
                worker.map(|w| w.hardware.simd.clone()).unwrap_or_default()
            } else {
                r.build_features.clone()
            },
            grade_history: if full {
                r.grade_history
                    .iter()
                    .map(|g| GradeEntry {
                        verdict: g.grade.verdict,
                        score: g.grade.score,
                        at_unix_ms: u64::try_from(g.regraded_unix_ms).unwrap_or(0),
                        suite_version: g.suite_version.clone(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            truncated: r.truncated,
            worker_verdict: r.worker_grade.as_ref().map(|g| g.verdict),
            answer_truncated_from: r.answer_truncated_from,
            trace_id: r.trace_id.clone(),
            cost_usd: model.and_then(|m| {
                benchfarm_report::job_cost(
                    kind_name(&m.kind),
                    price_of(m),
                    r.timings.prompt_tokens,
                    r.timings.gen_tokens,
                )
            }),
            remote: r.remote.as_ref().map(|c| RemoteOutcome {
                endpoint: c.endpoint.clone(),
                http_status: c.http_status,
                retries: c.retries,
                retry_reasons: c.retry_reasons.clone(),
                tokens_estimated: c.tokens_estimated,
                reasoning: if full {
                    c.reasoning.clone()
                } else {
                    Default::default()
                },
                reasoning_tokens: c.reasoning_tokens,
            }),
            ..Outcome::default()
        };
        self.outcomes.push(outcome);
    }

    fn finish(self) -> Inputs {
        let run = self.run;
        let info = RunInfo {
            run_id: run.id.clone(),
            suite_name: run.suite_name.clone(),
            suite_version: run.suite_version.clone(),
            repetitions: run.repetitions,
            state: run.state.as_str().to_string(),
            models: run
                .models
                .iter()
                .map(|m| ModelInfo {
                    name: m.name.clone(),
                    size_bytes: m.size_bytes,
                    sha256: m.sha256.clone(),
                    kind: kind_name(&m.kind).into(),
                    price_per_mtok: price_of(m),
                })
                .collect(),
            tasks: run
                .tasks
                .iter()
                .map(|t| TaskInfo {
                    id: t.id.clone(),
                    category: t.category.clone(),
                })
                .collect(),
            jobs_total: u64::from(run.jobs_total),
            failed_jobs: self.failed_jobs,
        };
        Inputs {
            info,
            outcomes: self.outcomes,
            failures: self.failures,
            throughput: self.throughput,
        }
    }
}

/// The run's report in `format`. Blocking (store reads, rendering): call it off the runtime.
pub fn render(store: &Store, run: &RunRecord, format: Format) -> Result<String, StoreError> {
    let inputs = load(store, run, Detail::of(format))?;
    let mut report = benchfarm_report::throughput::with_throughput(
        benchfarm_report::aggregate(&inputs.info, &inputs.outcomes),
        &inputs.throughput,
    );
    with_stop_reasons(&mut report, run);
    Ok(benchfarm_report::render_run(
        &report,
        &inputs.outcomes,
        &inputs.failures,
        format,
    ))
}

/// Why each model of an adaptive run stopped getting repetitions, onto its report row.
pub fn with_stop_reasons(report: &mut benchfarm_report::Report, run: &RunRecord) {
    for (model, reason) in run.models.iter().zip(&run.stop_reasons) {
        if let Some(m) = report.models.iter_mut().find(|m| m.name == model.name) {
            m.stop_reason = *reason;
        }
    }
}
