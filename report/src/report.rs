//! Output types: the aggregated report, whose JSON form is a contract read by other tools.
//!
//! The contract fields (`run`, `suite`, `repetitions`, `models[].{name,size_bytes,n,pass,partial,
//! fail,score,score_ci95,mean_seconds,tasks[]}`) keep their names and meaning; everything else is
//! additive. Conventions shared by every number here:
//! - `score` is (pass + ½·partial) / n in 0..=1, and 0 when n is 0 (renderers then show "—");
//! - timing fields are `null` (`None`) when no valid sample exists, never NaN or a made-up 0;
//! - throughputs are Σtokens / Σseconds over jobs with a measured positive duration, i.e. a
//!   token-weighted rate, not a mean of per-job rates (which would over-weight short answers).

use serde::{Deserialize, Serialize};

use crate::adaptive::StopReason;
use crate::outcome::FailedJob;
use crate::timings::TimingDetail;

/// The whole run, aggregated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub run: String,
    pub suite: SuiteRef,
    pub repetitions: u32,
    pub state: String,
    pub jobs_total: u64,
    /// Jobs that have ended, graded, measured (throughput) or failed: `jobs_graded + jobs_measured
    /// + jobs_failed`.
    pub jobs_done: u64,
    /// Jobs with a verdict (the outcomes given to `aggregate`).
    pub jobs_graded: u64,
    /// Jobs that ended without an answer.
    pub jobs_failed: u64,
    /// How `score_ci95` was computed, so readers need not guess.
    pub ci: CiMethod,
    /// How `score_ci95_repetitions` was computed (the interval over repetitions, task set fixed).
    #[serde(default)]
    pub ci_repetitions: CiMethod,
    /// Plan order first, then models only seen in outcomes or failed jobs (first-seen order).
    pub models: Vec<ModelReport>,
    /// One row per (hardware class, model) that has outcomes; classes sorted by name, models in
    /// the order of `models`.
    pub hardware: Vec<HardwareReport>,
    pub failed_jobs: Vec<FailedJob>,
    /// What the run cost in dollars: Σ of the models' `cost_usd`; `None` when a model's cost is
    /// unknown (a remote model without a price).
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// Counted results whose worker sent another verdict than the coordinator's grade (the one
    /// counted): stale or tampered workers.
    #[serde(default)]
    pub grade_disagreements: u64,
    /// Counted results whose timings cannot be true, and why; their timings are in no aggregate.
    #[serde(default)]
    pub implausible_timings: Vec<ImplausibleTiming>,
    /// Throughput jobs with a counted measurement (they are in `jobs_done`, not in
    /// `jobs_graded`), and their llama-bench-shaped rows: see [`crate::throughput`].
    #[serde(default)]
    pub jobs_measured: u64,
    #[serde(default)]
    pub throughput: Vec<crate::throughput::ThroughputRow>,
}

/// One result whose timings were not believed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImplausibleTiming {
    pub job: String,
    pub attempt: u32,
    pub model: String,
    pub task_id: String,
    pub worker_name: String,
    pub hardware_class: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuiteRef {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CiMethod {
    /// `"cluster-bootstrap-tasks"` (other tasks like these) or
    /// `"stratified-bootstrap-repetitions"` (sampling noise on this suite, tasks fixed).
    pub method: String,
    pub resamples: u64,
    pub confidence: f64,
}

/// Timing summaries, flattened into the model, task and hardware objects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Mean wall-clock seconds per job.
    pub mean_seconds: Option<f64>,
    pub median_seconds: Option<f64>,
    pub p90_seconds: Option<f64>,
    /// Decode speed, what llama-bench's `tg` reports: Σ decoded tokens / Σ seconds in
    /// `llama_decode` for them (the generation loop's figures for workers that send no decode
    /// timings). docs/timings.md.
    pub gen_tokens_per_second: Option<f64>,
    /// End-to-end generation speed: Σ generated tokens / Σ seconds of the generation loop
    /// (sampling and detokenizing included): below the decode speed by what the job path adds.
    #[serde(default)]
    pub e2e_gen_tokens_per_second: Option<f64>,
    /// Σ prompt_tokens / Σ prompt seconds.
    pub prompt_tokens_per_second: Option<f64>,
    pub mean_ttft_ms: Option<f64>,
    /// Jobs that had to load the model first.
    pub cold_loads: u64,
    /// Mean load time over cold jobs.
    pub mean_load_ms: Option<f64>,
    /// Distributions (median, mean, stddev, p90) for all, warm and cold jobs, and load time.
    #[serde(default)]
    pub timings: TimingDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    pub name: String,
    pub size_bytes: u64,
    /// `"gguf"`, `"scripted"`, `"remote"`, or `""` for a model not in the plan.
    pub kind: String,
    pub sha256: String,
    pub n: u64,
    pub pass: u64,
    pub partial: u64,
    pub fail: u64,
    pub score: f64,
    /// 95 % cluster bootstrap over tasks: how the score would move on other tasks like these.
    pub score_ci95: [f64; 2],
    /// 95 % bootstrap over repetitions with the task set fixed: the sampling noise on this suite
    /// (the interval more repetitions shrink).
    #[serde(default)]
    pub score_ci95_repetitions: [f64; 2],
    /// Sample standard deviation, across repetitions, of the model's per-repetition suite score.
    pub score_stddev: f64,
    /// Failed jobs (no answer) of this model.
    pub errors: u64,
    /// Dollars spent on this model: Σ over every result, superseded ones included (they were
    /// paid for); 0 for local models, `None` for a remote model without a price. Failed
    /// attempts returned no usage and are not in it.
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// `cost_usd` over the results it sums: the cost of one job.
    #[serde(default)]
    pub cost_per_job_usd: Option<f64>,
    /// The price `cost_usd` was computed at (remote models with a price only).
    #[serde(default)]
    pub price_per_mtok: Option<crate::cost::Price>,
    /// Why the model got no more repetitions, when the plan's repetitions are adaptive; set by
    /// the coordinator from [`crate::adaptive::assess`] (`aggregate` leaves it `None`).
    #[serde(default)]
    pub stop_reason: Option<StopReason>,
    #[serde(flatten)]
    pub timing: Timing,
    /// Distinct worker names, sorted.
    pub workers: Vec<String>,
    /// Distinct thread counts, ascending.
    pub threads: Vec<u32>,
    /// Suite order, then tasks only seen in outcomes; every suite task appears (n may be 0).
    pub tasks: Vec<TaskReport>,
    /// Categories in order of first appearance in `tasks`.
    pub categories: Vec<CategoryReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    pub id: String,
    /// `""` for a task not in the suite.
    pub category: String,
    pub n: u64,
    pub pass: u64,
    pub partial: u64,
    pub fail: u64,
    pub score: f64,
    /// Sample standard deviation of the job scores (1, ½, 0) across repetitions.
    pub score_stddev: f64,
    /// 95 % bootstrap over this task's repetitions.
    #[serde(default)]
    pub score_ci95_repetitions: [f64; 2],
    pub errors: u64,
    /// Counted results of this cell whose worker's verdict differed from the coordinator's.
    #[serde(default)]
    pub grade_disagreements: u64,
    /// Counted results of this cell whose timings were not believed (left out of `timing`).
    #[serde(default)]
    pub implausible_timings: u64,
    #[serde(flatten)]
    pub timing: Timing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryReport {
    pub category: String,
    /// Tasks of this category in the suite (or seen in outcomes).
    pub tasks: u64,
    pub n: u64,
    pub pass: u64,
    pub partial: u64,
    pub fail: u64,
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HardwareReport {
    pub class: String,
    pub model: String,
    pub n: u64,
    pub pass: u64,
    pub partial: u64,
    pub fail: u64,
    pub score: f64,
    /// Sample standard deviation across repetitions of the per-repetition score on this class.
    #[serde(default)]
    pub score_stddev: f64,
    /// 95 % cluster bootstrap over the tasks run on this class.
    #[serde(default)]
    pub score_ci95: [f64; 2],
    /// 95 % bootstrap over repetitions, tasks fixed, on this class.
    #[serde(default)]
    pub score_ci95_repetitions: [f64; 2],
    #[serde(flatten)]
    pub timing: Timing,
    /// Distinct worker names, sorted.
    pub workers: Vec<String>,
    /// Distinct thread counts, ascending.
    pub threads: Vec<u32>,
    /// The (model, task, hardware class) cells: tasks that ran on this class, in suite order.
    #[serde(default)]
    pub tasks: Vec<TaskReport>,
}
