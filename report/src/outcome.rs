//! Input types: what the coordinator hands the report crate.
//!
//! The coordinator maps its stored records into these plain structs so that this crate never
//! depends on the protocol or the storage layer; everything here is data, with serde derives so
//! that the same shapes can be written out raw (the JSONL renderer) or loaded back in tests.

use serde::{Deserialize, Serialize};

/// How the grader judged one job (the one type the suite grades with).
pub use benchfarm_domain::Verdict;

/// One graded attempt: a job's answer, its grade and everything needed to reproduce and audit it.
/// A job attempt that ended without an answer is not an `Outcome` but a [`FailedAttempt`]; a job
/// whose every attempt failed is also summarised as a [`FailedJob`] in [`RunInfo`].
///
/// Timings are milliseconds as measured by the worker; they may be NaN, infinite, negative or
/// zero when a worker could not measure something, and the aggregation skips such values rather
/// than trusting them (see `aggregate.rs`). JSON cannot hold NaN, so such a timing is written as
/// `null` and read back as NaN.
///
/// The first sixteen fields are the original shape (the jsonl keys tools already read); every
/// field after them is `#[serde(default)]`, so outcomes written before they existed still load.
/// [`Outcome::default`] gives a counted failing outcome with unmeasured (NaN) timings and empty
/// text, for the coordinator to fill field by field (set every timing: NaN ≠ NaN, so two
/// defaults do not compare equal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub model: String,
    pub task_id: String,
    pub repetition: u32,
    pub verdict: Verdict,
    pub worker_id: String,
    pub worker_name: String,
    pub hardware_class: String,
    pub threads: u32,
    #[serde(deserialize_with = "nan_if_null")]
    pub wall_ms: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub load_ms: f64,
    pub cold: bool,
    pub prompt_tokens: u32,
    #[serde(deserialize_with = "nan_if_null")]
    pub prompt_ms: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub ttft_ms: f64,
    pub gen_tokens: u32,
    #[serde(deserialize_with = "nan_if_null")]
    pub gen_ms: f64,

    /// The run this attempt belongs to.
    #[serde(default)]
    pub run: String,
    /// The job id (one job = one model × task × repetition; it may take several attempts).
    #[serde(default)]
    pub job: String,
    /// 1-based attempt number within the job; 0 when unknown (inputs older than this field).
    #[serde(default)]
    pub attempt: u32,
    /// Whether this result is the one the job is scored by. A superseded result (a re-run after
    /// a lost lease, an older grade) is kept for audit but never scored: `aggregate` skips it.
    /// Defaults to true, because before this field existed only counted results were exported.
    #[serde(default = "yes")]
    pub counted: bool,
    #[serde(default)]
    pub model_sha256: String,
    #[serde(default)]
    pub model_size_bytes: u64,
    #[serde(default)]
    pub category: String,
    /// The model's raw answer, exactly as generated (never truncated here or in jsonl).
    #[serde(default)]
    pub answer: String,
    /// The text the grader extracted from the answer (a code block, a final line ...); empty when
    /// the grader used the whole answer or extracted nothing.
    #[serde(default)]
    pub extracted: String,
    /// The grader's score in 0..=1 (normally `verdict.score()`); `None` (`null`) when not
    /// recorded. The aggregation scores by `verdict`, so this field cannot move a report's figures.
    #[serde(default)]
    pub score: Option<f64>,
    /// The grader's check-by-check trace, in the order the checks ran.
    #[serde(default)]
    pub checks: Vec<CheckOutcome>,
    /// llama.cpp build the worker ran (e.g. `"b4589"`), empty for scripted models.
    #[serde(default)]
    pub llama_cpp_build: String,
    /// Name (or source) of the chat template that formatted the prompt.
    #[serde(default)]
    pub chat_template: String,
    /// Why generation stopped: `"eos"`, `"length"`, `"stop-sequence"` ... (passed through).
    #[serde(default)]
    pub stop: String,
    #[serde(default)]
    pub suite_name: String,
    #[serde(default)]
    pub suite_version: String,
    /// Sampler seed; `None` when not recorded.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Sampler temperature; `None` when not recorded (0 means greedy, which is not the same).
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_k: Option<u32>,
    #[serde(default)]
    pub top_p: Option<f64>,
    /// The worker's hardware tags (e.g. `["avx2", "cuda"]`), as reported by the worker.
    #[serde(default)]
    pub hardware_tags: Vec<String>,
    /// Every grade this answer has had, oldest first; the last one is `verdict`/`score`. A regrade
    /// (new suite version, fixed grader) appends instead of overwriting, so history stays visible.
    #[serde(default)]
    pub grade_history: Vec<GradeEntry>,
    /// Tokens decoded one at a time and the time `llama_decode` took for them (llama.cpp's
    /// `n_eval` / `t_eval_ms`): the decode speed llama-bench's `tg` reports. 0 from workers that
    /// did not measure it (a number, not NaN, so an unmeasured outcome still equals itself); the
    /// generation speed then falls back to `gen_*` (docs/timings.md).
    #[serde(default)]
    pub decode_tokens: u32,
    #[serde(default)]
    pub decode_ms: f64,
    /// The worker cut the answer to fit the coordinator's message limit: `answer` is a prefix of
    /// what the model said (and was graded as such).
    #[serde(default)]
    pub truncated: bool,
    /// The worker's own verdict, when it differed from the coordinator's (`verdict`, the one
    /// counted): a sign of a stale or tampered worker. `None` when they agreed.
    #[serde(default)]
    pub worker_verdict: Option<Verdict>,
    /// The answer's length in bytes as the worker sent it, when it was over the coordinator's
    /// stored-answer limit and `answer` is its first part.
    #[serde(default)]
    pub answer_truncated_from: Option<u64>,
    /// Why this outcome's timings cannot be true (`crate::plausibility`), when they cannot; set
    /// by [`crate::aggregate`] and the jsonl renderer, which leave such timings out of every
    /// aggregate. Inputs leave it `None`.
    #[serde(default)]
    pub implausible_timing: Option<String>,
    /// The OpenTelemetry trace of the attempt (32 hex digits): its coordinator `job` span and the
    /// worker's spans under it. Empty when the coordinator exported no traces.
    #[serde(default)]
    pub trace_id: String,
    /// What this job cost in dollars (see `cost.rs`): 0 for a local model, tokens × price for a
    /// priced remote one, `None` for a remote model without a price.
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// The HTTP side of a remote model's job; `None` for local models.
    #[serde(default)]
    pub remote: Option<RemoteOutcome>,
}

/// How a remote model's answer was obtained.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RemoteOutcome {
    /// The endpoint's hardware class: host and model id.
    pub endpoint: String,
    /// Status of the request that answered (200).
    pub http_status: u32,
    /// Requests retried before it (429, 5xx, unanswered), and why, in order.
    pub retries: u32,
    pub retry_reasons: Vec<String>,
    /// The endpoint sent no `usage`: token counts are estimates from the streamed chunks.
    pub tokens_estimated: bool,
    /// Reasoning output, kept apart from the answer and never graded; its tokens are counted in
    /// `gen_tokens` (and billed) and given here on their own.
    pub reasoning: String,
    pub reasoning_tokens: u32,
}

impl Default for Outcome {
    fn default() -> Self {
        Self {
            model: String::new(),
            task_id: String::new(),
            repetition: 0,
            verdict: Verdict::Fail,
            worker_id: String::new(),
            worker_name: String::new(),
            hardware_class: String::new(),
            threads: 0,
            wall_ms: f64::NAN,
            load_ms: f64::NAN,
            cold: false,
            prompt_tokens: 0,
            prompt_ms: f64::NAN,
            ttft_ms: f64::NAN,
            gen_tokens: 0,
            gen_ms: f64::NAN,
            run: String::new(),
            job: String::new(),
            attempt: 0,
            counted: true,
            model_sha256: String::new(),
            model_size_bytes: 0,
            category: String::new(),
            answer: String::new(),
            extracted: String::new(),
            score: None,
            checks: Vec::new(),
            llama_cpp_build: String::new(),
            chat_template: String::new(),
            stop: String::new(),
            suite_name: String::new(),
            suite_version: String::new(),
            seed: None,
            temperature: None,
            top_k: None,
            top_p: None,
            hardware_tags: Vec::new(),
            grade_history: Vec::new(),
            decode_tokens: 0,
            decode_ms: 0.0,
            truncated: false,
            worker_verdict: None,
            answer_truncated_from: None,
            implausible_timing: None,
            trace_id: String::new(),
            cost_usd: None,
            remote: None,
        }
    }
}

impl Outcome {
    /// The (tokens, milliseconds) the generation speed is computed from: the decode figures when
    /// the worker measured them (what llama-bench's `tg` means), else the generation loop's.
    pub fn tg(&self) -> (u32, f64) {
        if self.decode_tokens > 0 && self.decode_ms.is_finite() && self.decode_ms > 0.0 {
            (self.decode_tokens, self.decode_ms)
        } else {
            (self.gen_tokens, self.gen_ms)
        }
    }
}

/// One check of the grader's trace: which group it belongs to, its name, and whether it held.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// The check group (`"must"`, `"should"`, `"forbid"` ...), empty when the suite has none.
    #[serde(default)]
    pub group: String,
    /// The check as written in the suite (or its name).
    #[serde(default)]
    pub check: String,
    #[serde(default)]
    pub held: bool,
}

/// One grading of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradeEntry {
    pub verdict: Verdict,
    /// The score that grade gave, in 0..=1.
    #[serde(default)]
    pub score: f64,
    /// When the grade was given, milliseconds since the Unix epoch (0 when unknown).
    #[serde(default)]
    pub at_unix_ms: u64,
    /// The suite version whose grader gave it.
    #[serde(default)]
    pub suite_version: String,
}

impl Default for GradeEntry {
    fn default() -> Self {
        Self {
            verdict: Verdict::Fail,
            score: 0.0,
            at_unix_ms: 0,
            suite_version: String::new(),
        }
    }
}

/// One attempt that ended without an answer: the worker failed (engine error, crash, timeout)
/// or its lease was lost. A job may have failed attempts and still end with an [`Outcome`]; when
/// every attempt failed the job is also a [`FailedJob`]. In jsonl a failed attempt is a line with
/// `verdict = "error"` and its `reason` (see `docs/jsonl.md`), so a failure is a line, not a gap.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FailedAttempt {
    pub run: String,
    pub job: String,
    /// 1-based attempt number within the job; 0 when unknown.
    pub attempt: u32,
    pub model: String,
    pub model_sha256: String,
    pub model_size_bytes: u64,
    pub task_id: String,
    pub category: String,
    pub repetition: u32,
    /// What went wrong, as the worker or the coordinator reported it.
    pub reason: String,
    /// True when this attempt ended the job as failed (no further attempt was made).
    pub job_failed: bool,
    pub worker_id: String,
    pub worker_name: String,
    pub hardware_class: String,
    pub hardware_tags: Vec<String>,
    pub threads: u32,
    pub llama_cpp_build: String,
    pub chat_template: String,
    pub suite_name: String,
    pub suite_version: String,
    pub seed: Option<u64>,
    pub temperature: Option<f64>,
    pub top_k: Option<u32>,
    pub top_p: Option<f64>,
    /// Wall milliseconds until the failure, when known.
    pub wall_ms: Option<f64>,
    /// The attempt's trace, as in [`Outcome::trace_id`].
    pub trace_id: String,
}

fn yes() -> bool {
    true
}

/// Reads a number, or `null` as NaN: the writer turns NaN into `null`, so this makes a jsonl line
/// read back into the outcome it came from.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// A model in the run's plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub size_bytes: u64,
    pub sha256: String,
    /// `"gguf"` for real weights, `"scripted"` for the test double that replays canned answers,
    /// `"remote"` for an OpenAI-compatible endpoint.
    pub kind: String,
    /// A remote model's price in dollars per million tokens; `None` for local models and
    /// unpriced endpoints.
    #[serde(default)]
    pub price_per_mtok: Option<crate::cost::Price>,
}

/// A task of the suite.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub id: String,
    pub category: String,
}

/// A job that ended without an answer (worker crash, timeout, engine error ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedJob {
    pub model: String,
    pub task_id: String,
    pub repetition: u32,
    pub reason: String,
}

/// What the report needs to know about the run besides its outcomes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    pub suite_name: String,
    pub suite_version: String,
    pub repetitions: u32,
    /// `"running"`, `"finished"`, `"cancelled"` ...; passed through, never interpreted beyond
    /// display, so new states need no change here.
    pub state: String,
    /// In plan order; the report keeps this order.
    pub models: Vec<ModelInfo>,
    /// In suite order; the report keeps this order.
    pub tasks: Vec<TaskInfo>,
    pub jobs_total: u64,
    pub failed_jobs: Vec<FailedJob>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_serde_is_lowercase() {
        assert_eq!(serde_json::to_string(&Verdict::Pass).unwrap(), "\"pass\"");
        assert_eq!(
            serde_json::to_string(&Verdict::Partial).unwrap(),
            "\"partial\""
        );
        assert_eq!(serde_json::to_string(&Verdict::Fail).unwrap(), "\"fail\"");
        let v: Verdict = serde_json::from_str("\"partial\"").unwrap();
        assert_eq!(v, Verdict::Partial);
        assert!(serde_json::from_str::<Verdict>("\"Pass\"").is_err());
    }

    #[test]
    fn old_outcome_lines_still_load() {
        // A jsonl line as written before the new fields existed: every new field takes its
        // default, `counted` defaults to true, and a null timing reads back as NaN.
        let line = r#"{"model":"m","task_id":"t","repetition":1,"verdict":"pass","worker_id":"i",
            "worker_name":"w","hardware_class":"c","threads":4,"wall_ms":null,"load_ms":0.0,
            "cold":false,"prompt_tokens":1,"prompt_ms":2.0,"ttft_ms":3.0,"gen_tokens":4,
            "gen_ms":5.0}"#;
        let o: Outcome = serde_json::from_str(line).unwrap();
        assert!(o.counted);
        assert!(o.wall_ms.is_nan());
        assert_eq!(o.score, None);
        assert_eq!(o.answer, "");
        assert!(o.checks.is_empty());
        assert_eq!(o.seed, None);
        assert_eq!(o.gen_ms, 5.0);
    }

    #[test]
    fn defaults_are_counted_and_unmeasured() {
        let o = Outcome::default();
        assert!(o.counted);
        assert_eq!(o.verdict, Verdict::Fail);
        assert!(o.wall_ms.is_nan() && o.gen_ms.is_nan());
        assert_eq!(o.score, None);
        let f = FailedAttempt::default();
        assert!(!f.job_failed);
        let back: FailedAttempt = serde_json::from_str("{}").unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn verdict_scores() {
        assert_eq!(Verdict::Pass.score(), 1.0);
        assert_eq!(Verdict::Partial.score(), 0.5);
        assert_eq!(Verdict::Fail.score(), 0.0);
        assert_eq!(Verdict::Partial.half_points(), 1);
    }
}
