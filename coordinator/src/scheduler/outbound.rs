//! What the scheduler says, in its own terms: to one worker ([`ToWorker`], through its
//! [`Outbox`](super::Outbox)), to a joining worker ([`Welcome`]) and to every watcher of a run
//! ([`RunChange`], on the broadcast).
//!
//! The core never builds a wire message: these are domain types (states as enums, models as
//! records, a job key as a struct), and the gRPC layer converts them where they leave the process
//! (`grpc/outbound.rs`). So the scheduler's tests read what it said without decoding protobufs, and
//! a change to the wire is a change to one conversion, not to the core.

use benchfarm_domain::{ThroughputTest, Verdict};

use super::RunProgress;
use crate::job::JobState;
use crate::records::RunModel;

/// One attempt of one job: what a worker holds, runs and answers for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobKey {
    pub job_id: String,
    pub attempt: u32,
}

impl JobKey {
    pub fn new(job_id: impl Into<String>, attempt: u32) -> JobKey {
        JobKey {
            job_id: job_id.into(),
            attempt,
        }
    }
}

/// A message from the scheduler to one connected worker.
#[derive(Debug, Clone, PartialEq)]
pub enum ToWorker {
    /// Run this attempt.
    Assign(Box<Assignment>),
    /// This attempt's result (or failure) is durable: forget it.
    Ack(JobKey),
    /// Stop this attempt (its run was cancelled).
    Cancel { key: JobKey, reason: String },
    /// Take no new jobs; finish what you hold and leave.
    Drain { reason: String },
}

/// One job for one worker: everything it needs to run and grade it.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub key: JobKey,
    pub run_id: String,
    pub model: RunModel,
    /// The run's suite text, the first time this connection needs it; `None` after that (the
    /// worker has it under `suite_sha256`) and for throughput jobs.
    pub suite_toml: Option<String>,
    /// sha256 of the suite text; empty for a throughput job, which needs no suite.
    pub suite_sha256: String,
    pub suite_name: String,
    pub suite_version: String,
    /// The task, or for a throughput job the test's name.
    pub task_id: String,
    pub repetition: u32,
    pub seed: u64,
    /// The attempt's hard limit.
    pub timeout_ms: u32,
    /// Set for a throughput job: the llama-bench test to run instead of a task.
    pub throughput: Option<ThroughputTest>,
    /// The W3C trace context of the attempt's span ("" when tracing is off).
    pub trace_parent: String,
}

/// The scheduler's answer to a worker's hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// A worker silent this long is lost.
    pub lease_ms: u32,
    /// How often the worker sends a heartbeat.
    pub heartbeat_ms: u32,
}

/// A change to a run, for its watchers: the run's counts after it, and the job that changed when
/// it was about one (none for a run's start, end or cancel).
#[derive(Debug, Clone, PartialEq)]
pub struct RunChange {
    pub status: RunProgress,
    pub job: Option<JobChange>,
}

/// The job a [`RunChange`] is about.
#[derive(Debug, Clone, PartialEq)]
pub struct JobChange {
    pub job_id: String,
    pub state: JobState,
    pub model: String,
    pub task_id: String,
    pub repetition: u32,
    /// The name of the worker of its last attempt ("" before any).
    pub worker: String,
    /// Its grade, when the change is a graded result.
    pub verdict: Option<Verdict>,
}
