//! What the scheduler core tells the world about jobs as they move: the seam for traces and
//! metrics.
//!
//! The core stays pure: it calls an [`Observer`] it was given (like the clock) with domain types
//! at the moments things happen — an attempt assigned, an attempt ended, a worker lost — and never
//! reads a clock or talks to an exporter itself. The observer the server installs
//! ([`super::telemetry::JobTelemetry`]) turns these calls into spans and metrics; tests and a
//! process without telemetry get [`Unobserved`], which does nothing.

use std::collections::BTreeMap;

use crate::records::{AttemptEnd, JobRecord, ResultRecord};

/// Live counts, read by the driver between steps for the metrics' gauges.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Gauges {
    /// Hardware class → connected workers.
    pub workers_connected: BTreeMap<String, u32>,
    /// Run id → queued jobs, for every running run.
    pub queue_depth: BTreeMap<String, u32>,
    pub queued: u64,
    pub assigned: u64,
    pub running: u64,
}

/// An attempt the core has just written and is about to send.
#[derive(Debug, Clone, Copy)]
pub struct Assigned<'a> {
    pub job: &'a JobRecord,
    pub attempt: u32,
    pub model: &'a str,
    pub worker_id: &'a str,
    pub worker_name: &'a str,
    pub hardware_class: &'a str,
    /// The run's span (`RunRecord::trace_parent`), parent of the job's; empty when none.
    pub run_trace_parent: &'a str,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy)]
pub enum Ended<'a> {
    /// A counted result.
    Succeeded(&'a ResultRecord),
    /// Failed, lost, returned or cancelled; `retried`: the job went back to the queue.
    Without {
        end: &'a AttemptEnd,
        retried: bool,
        /// The job failed for good with this attempt.
        failed: bool,
    },
}

/// Called by the core on the scheduler thread, in order; every method defaults to nothing.
pub trait Observer: Send {
    /// An attempt is assigned; returns the W3C `traceparent` of its span, carried in the
    /// assignment and stored with the attempt (empty: none).
    fn assigned(&mut self, _assigned: Assigned<'_>) -> String {
        String::new()
    }

    /// The attempt `(job_id, attempt)` ended.
    fn ended(&mut self, _job: &JobRecord, _attempt: u32, _how: Ended<'_>) {}

    /// A result arrived and was stored; `counted` false for a superseded or duplicate one.
    fn result_ingested(&mut self, _counted: bool) {}

    /// A worker of `hardware_class` joined (or came back).
    fn worker_joined(&mut self, _hardware_class: &str) {}

    /// A worker of `hardware_class` went silent past its lease.
    fn worker_lost(&mut self, _hardware_class: &str) {}

    /// A worker of `hardware_class` was quarantined.
    fn quarantined(&mut self, _hardware_class: &str) {}

    /// Jobs of a run were cancelled before they ended.
    fn cancelled(&mut self, _jobs: u32) {}
}

/// The observer of a process without telemetry.
#[derive(Debug, Default)]
pub struct Unobserved;

impl Observer for Unobserved {}
