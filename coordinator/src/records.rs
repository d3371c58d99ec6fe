//! What the coordinator keeps: runs, jobs (with every attempt), results and workers.
//!
//! These are the domain types the store persists (as JSON inside sled, so a human can read a dump and
//! a later schema can add fields with `#[serde(default)]`) and the scheduler works on. Wire types from
//! `benchfarm-proto` are converted to and from these at the gRPC edge only.

pub use benchfarm_domain::ThroughputTest;
pub use benchfarm_report::adaptive::{AdaptiveRule, StopReason};
use benchfarm_suite::Grade;
use serde::{Deserialize, Serialize};

use crate::job::JobState;

/// Milliseconds since the Unix epoch; the store's clock unit.
pub type UnixMs = i64;

/// The wall clock in [`UnixMs`]. Only I/O code calls this; pure code takes times as arguments.
pub fn now_ms() -> UnixMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How a model reaches a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// A GGUF file the worker must already have, matched by sha256.
    Gguf { file_name: String },
    /// A scripted model; its TOML text travels in every job so any worker can run it.
    Scripted { toml: String },
    /// An OpenAI-compatible endpoint, called by workers that declare it (`worker join --remote`).
    Remote(RemoteSpec),
}

/// A remote model as the plan describes it. Holds the *name* of the API-key variable only: the
/// key stays in the calling worker's environment and is never sent, stored or logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteSpec {
    /// Base URL, without a trailing `/`; requests go to `{url}/chat/completions`.
    pub url: String,
    /// The endpoint's model id.
    pub model: String,
    /// The worker environment variable holding the key; `None`: the endpoint needs none.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Dollars per million tokens; `None`: unknown, and reports show no cost.
    #[serde(default)]
    pub price_per_mtok: Option<Price>,
    /// Requests in flight at once across the farm.
    pub max_concurrency: u32,
    /// Limit of one HTTP request, streaming included.
    pub timeout_ms: u32,
    /// Retries of a request answered 429 or 5xx (or not at all) within one attempt.
    pub retries: u32,
}

/// Dollars per million input (prompt) and output (generated) tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub input: f64,
    pub output: f64,
}

/// One model of a run, as the client described it at submit time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunModel {
    pub name: String,
    pub sha256: String,
    pub size_bytes: u64,
    pub kind: ModelKind,
}

impl RunModel {
    /// Whether any worker can run this model without having a file for it.
    pub fn is_scripted(&self) -> bool {
        matches!(self.kind, ModelKind::Scripted { .. })
    }

    /// The endpoint, when the model is remote.
    pub fn remote(&self) -> Option<&RemoteSpec> {
        match &self.kind {
            ModelKind::Remote(spec) => Some(spec),
            _ => None,
        }
    }
}

/// A task of the run's suite, as much as reports need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTask {
    pub id: String,
    pub category: String,
    /// The task's token limit: job timeouts are derived from it and the worker's speed.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
}

fn default_max_tokens() -> u32 {
    256
}

/// How a run's jobs map onto the farm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Each job once, on any capable worker: the fastest way through a run.
    #[default]
    Spread,
    /// Each job on every capable worker: compare machines.
    EveryWorker,
    /// Each job once per hardware class.
    PerClass,
}

impl std::str::FromStr for Placement {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "spread" => Ok(Placement::Spread),
            "every-worker" => Ok(Placement::EveryWorker),
            "per-class" => Ok(Placement::PerClass),
            other => Err(format!(
                "unknown placement {other:?}; expected spread, every-worker or per-class"
            )),
        }
    }
}

/// Which workers may run a run's jobs (the plan's `require`). Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Requirements {
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub min_ram_bytes: u64,
    #[serde(default)]
    pub arch: Option<String>,
}

/// A job bound to one worker or one hardware class (placements `every-worker` and `per-class`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pin {
    Worker(String),
    Class(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// A run starts running.
    #[default]
    Running,
    Finished,
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Finished => "finished",
            RunState::Cancelled => "cancelled",
        }
    }
}

/// A submitted run: models × tasks × repetitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub created_unix_ms: UnixMs,
    pub label: String,
    pub suite_name: String,
    pub suite_version: String,
    /// The exact suite text the jobs were graded with; `regrade` may replace it (the old one is kept in
    /// `suite_history`).
    pub suite_toml: String,
    pub models: Vec<RunModel>,
    pub tasks: Vec<RunTask>,
    /// Throughput tests (the plan's `throughput = [...]`) run beside the tasks, each
    /// `repetitions` times per local model: ungraded jobs whose results are measurements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throughput: Vec<ThroughputTest>,
    /// The repetitions every model starts with (with `adaptive`, its minimum).
    pub repetitions: u32,
    /// `repetitions = { min, max, target_ci, target_rsd }`: after the minimum, a model gets one
    /// more repetition of all its tasks at a time until the rule stops it. `None`: fixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveRule>,
    /// Per model (plan order), the repetitions scheduled so far, when that differs from
    /// `repetitions` (adaptive runs; missing entries are `repetitions`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_repetitions: Vec<u32>,
    /// Per model, why an adaptive run stopped giving it repetitions (`None`: not yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_reasons: Vec<Option<StopReason>>,
    pub seed: u64,
    #[serde(default)]
    pub placement: Placement,
    #[serde(default)]
    pub require: Requirements,
    pub jobs_total: u32,
    pub state: RunState,
    #[serde(default)]
    pub finished_unix_ms: Option<UnixMs>,
    #[serde(default)]
    pub suite_history: Vec<String>,
    /// Its jobs by state, written when the run ends, so listing runs reads one record per run
    /// rather than every job (`None` in runs that ended before this field existed).
    #[serde(default)]
    pub counts: Option<JobCounts>,
    /// W3C `traceparent` of the run's span (the submit), parent of its job spans; empty when
    /// traces were off.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trace_parent: String,
}

/// A run's jobs by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCounts {
    pub queued: u32,
    pub running: u32,
    pub done: u32,
    pub failed: u32,
    pub cancelled: u32,
}

impl JobCounts {
    /// The counter `state` belongs to (assigned and running share one).
    pub fn slot(&mut self, state: &JobState) -> &mut u32 {
        match state {
            JobState::Queued => &mut self.queued,
            JobState::Assigned { .. } | JobState::Running { .. } => &mut self.running,
            JobState::Done { .. } => &mut self.done,
            JobState::Failed => &mut self.failed,
            JobState::Cancelled => &mut self.cancelled,
        }
    }

    /// Jobs not yet done, failed or cancelled.
    pub fn live(&self) -> u32 {
        self.queued + self.running
    }
}

/// How one attempt of a job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "reason")]
pub enum AttemptEnd {
    Succeeded,
    /// The engine or the worker reported an error.
    Failed(String),
    /// The worker went away (lease expired, disconnected, coordinator restarted) before reporting.
    Lost(String),
    /// The user cancelled the run.
    Cancelled,
    /// The worker gave the job back without starting it (it was draining): not a try, so it does
    /// not count toward `max_attempts`.
    Returned(String),
}

impl AttemptEnd {
    /// Whether this was a try of the job, counted toward `max_attempts` (a job given back unstarted
    /// was not).
    pub fn is_try(&self) -> bool {
        !matches!(self, AttemptEnd::Returned(_))
    }
}

impl RunRecord {
    /// The repetitions model `model` has been given so far.
    pub fn repetitions_of(&self, model: usize) -> u32 {
        self.model_repetitions
            .get(model)
            .copied()
            .unwrap_or(self.repetitions)
    }

    /// What one job asks the engine to produce, in tokens: its task's limit, or for a throughput
    /// job its warm-up and timed run (the generation twice, over; the prompt, processed in
    /// batches, counted at a tenth) — what the job's time limit is derived from.
    pub fn job_tokens(&self, job: &JobRecord) -> u32 {
        match job.throughput {
            Some(t) => t
                .n_gen
                .saturating_mul(2)
                .saturating_add(t.n_prompt.div_ceil(5))
                .max(1),
            None => self.max_tokens_of(&job.task_id),
        }
    }

    /// The token limit of one of the run's tasks (the suite default for an unknown id).
    pub fn max_tokens_of(&self, task_id: &str) -> u32 {
        self.tasks
            .iter()
            .find(|t| t.id == task_id)
            .map_or_else(default_max_tokens, |t| t.max_tokens)
    }
}

/// One try of a job on one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub attempt: u32,
    pub worker_id: String,
    pub assigned_unix_ms: UnixMs,
    /// When the worker said a slot started it (a prefetched job waits on the worker first).
    #[serde(default)]
    pub started_unix_ms: Option<UnixMs>,
    #[serde(default)]
    pub ended_unix_ms: Option<UnixMs>,
    #[serde(default)]
    pub end: Option<AttemptEnd>,
    /// The time limit the assignment carried (0: none recorded); the coordinator takes the job
    /// back if no answer comes within it plus a lease.
    #[serde(default)]
    pub timeout_ms: u32,
    /// W3C `traceparent` of this attempt's `job` span (sent with the assignment, so the worker's
    /// spans are its children); empty when traces were off.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trace_parent: String,
}

/// One (model, task, repetition) of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// `{run_id}-{index:010}`: sorts by run, then by expansion order.
    pub id: String,
    pub run_id: String,
    pub index: u32,
    pub model_index: u32,
    /// The suite task, or for a throughput job the test's name (`pp512`).
    pub task_id: String,
    /// Set for a throughput job: the llama-bench test it runs instead of a task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<ThroughputTest>,
    pub repetition: u32,
    pub seed: u64,
    /// The worker or class this job must run on, for `every-worker` and `per-class` runs.
    #[serde(default)]
    pub pin: Option<Pin>,
    pub state: JobState,
    pub attempts: Vec<Attempt>,
}

impl JobRecord {
    /// The attempt record with this number, if the job got that far.
    pub fn attempt_mut(&mut self, attempt: u32) -> Option<&mut Attempt> {
        self.attempts.iter_mut().find(|a| a.attempt == attempt)
    }
}

/// Measured timings of one job, as the worker reported them (defined once, in the domain crate).
pub use benchfarm_domain::Timings;

/// The answer of one attempt, its grade and its timings. Keyed by (job, attempt) so a re-sent result
/// is recognised and stored once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    pub job_id: String,
    pub attempt: u32,
    pub run_id: String,
    pub worker_id: String,
    pub worker_name: String,
    pub hardware_class: String,
    pub threads: u32,
    pub answer: String,
    /// The coordinator's grade of `answer` with the run's own suite: the one stored and counted.
    pub grade: Grade,
    /// The grade the worker sent, kept when its verdict differs from the coordinator's: a sign of
    /// a stale or tampered worker (reports count these as grade disagreements).
    #[serde(default)]
    pub worker_grade: Option<Grade>,
    /// The answer's length in bytes as it arrived, when it was over the stored-answer limit and
    /// `answer` holds only its first part (cut at a character boundary; graded as stored).
    #[serde(default)]
    pub answer_truncated_from: Option<u64>,
    pub timings: Timings,
    pub chat_template: String,
    pub stop: String,
    pub received_unix_ms: UnixMs,
    /// False for a result of a superseded attempt (the job was already done): kept, never counted.
    pub counted: bool,
    /// Earlier grades of this same answer, oldest first, with the suite version that gave them.
    #[serde(default)]
    pub grade_history: Vec<PastGrade>,
    /// The CPU features the build that produced this result used, and those its CPU has (ggml's
    /// names): a feature in the second list and not the first is speed the build left unused.
    #[serde(default)]
    pub build_features: Vec<String>,
    #[serde(default)]
    pub cpu_features: Vec<String>,
    /// The worker cut the answer to fit the coordinator's message limit (the stored answer is a
    /// prefix of what the model said).
    #[serde(default)]
    pub truncated: bool,
    /// The trace of the attempt that produced this result (32 hex digits), so that a slow job in
    /// a report leads to its trace; empty when traces were off.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trace_id: String,
    /// How a remote model's answer was obtained; `None` for local models.
    #[serde(default)]
    pub remote: Option<RemoteCall>,
    /// A throughput job's measurement; its `answer` is empty and its `grade` means nothing (no
    /// report, score or regrade reads the grade of such a result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<ThroughputMeasurement>,
}

/// What one throughput job measured (llama-bench's procedure; see `benchfarm_engine::bench`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThroughputMeasurement {
    /// Each timed run, in nanoseconds.
    pub samples_ns: Vec<u64>,
    pub model_type: String,
    pub model_n_params: u64,
    pub backends: String,
}

/// The HTTP side of one remote job, as the worker that called the endpoint reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteCall {
    /// The endpoint's hardware class (host and model id).
    pub endpoint: String,
    pub http_status: u32,
    pub retries: u32,
    pub retry_reasons: Vec<String>,
    /// The server sent no `usage`: token counts were estimated from the streamed chunks.
    pub tokens_estimated: bool,
    /// Reasoning output, kept apart from the answer and never graded.
    pub reasoning: String,
    pub reasoning_tokens: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PastGrade {
    pub suite_version: String,
    pub regraded_unix_ms: UnixMs,
    pub grade: Grade,
}

/// What a worker said about itself, kept across its reconnects and the coordinator's restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerRecord {
    pub id: String,
    pub name: String,
    pub hardware: Hardware,
    pub labels: std::collections::BTreeMap<String, String>,
    pub models: Vec<WorkerModel>,
    pub engine: String,
    pub llama_cpp_build: String,
    pub backends: Vec<String>,
    /// The worker's ggml system info line, the CPU features its build uses and those its CPU
    /// offers (ggml's names); empty from older workers.
    #[serde(default)]
    pub system_info: String,
    #[serde(default)]
    pub build_features: Vec<String>,
    #[serde(default)]
    pub cpu_features: Vec<String>,
    pub slots: u32,
    pub threads: u32,
    pub hardware_class: String,
    pub last_seen_unix_ms: UnixMs,
    pub jobs_done: u64,
    pub jobs_failed: u64,
    /// Remote models it may call (names or URL prefixes), and the names of the API-key variables
    /// set in its environment (never their values).
    #[serde(default)]
    pub remotes: Vec<String>,
    #[serde(default)]
    pub remote_key_envs: Vec<String>,
}

/// The machine a worker runs on: the domain type both binaries share.
pub use benchfarm_domain::Hardware;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerModel {
    pub sha256: String,
    pub name: String,
    pub size_bytes: u64,
    pub file_name: String,
}
