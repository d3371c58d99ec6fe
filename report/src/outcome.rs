//! Input types: what the coordinator hands the report crate.
//!
//! The coordinator maps its stored records into these plain structs so that this crate never
//! depends on the protocol or the storage layer; everything here is data, with serde derives so
//! that the same shapes can be written out raw (the JSONL renderer) or loaded back in tests.

use serde::{Deserialize, Serialize};

/// How the grader judged one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Partial,
    Fail,
}

impl Verdict {
    /// The job's score in half-points (pass 2, partial 1, fail 0); integers keep the bootstrap
    /// arithmetic exact, so identical scores compare equal instead of differing in the last bit.
    pub fn half_points(self) -> u64 {
        match self {
            Verdict::Pass => 2,
            Verdict::Partial => 1,
            Verdict::Fail => 0,
        }
    }

    /// The job's score as defined by the farm: 1, ½ or 0.
    pub fn score(self) -> f64 {
        self.half_points() as f64 / 2.0
    }
}

/// One graded job. A job that never produced an answer is not an `Outcome` but a [`FailedJob`].
///
/// Timings are milliseconds as measured by the worker; they may be NaN, infinite, negative or
/// zero when a worker could not measure something, and the aggregation skips such values rather
/// than trusting them (see `aggregate.rs`).
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
    pub wall_ms: f64,
    pub load_ms: f64,
    pub cold: bool,
    pub prompt_tokens: u32,
    pub prompt_ms: f64,
    pub ttft_ms: f64,
    pub gen_tokens: u32,
    pub gen_ms: f64,
}

/// A model in the run's plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub size_bytes: u64,
    pub sha256: String,
    /// `"gguf"` for real weights, `"scripted"` for the test double that replays canned answers.
    pub kind: String,
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    fn verdict_scores() {
        assert_eq!(Verdict::Pass.score(), 1.0);
        assert_eq!(Verdict::Partial.score(), 0.5);
        assert_eq!(Verdict::Fail.score(), 0.0);
        assert_eq!(Verdict::Partial.half_points(), 1);
    }
}
