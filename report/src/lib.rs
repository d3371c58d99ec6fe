//! benchfarm-report: pure aggregation and rendering of benchmark runs.
//!
//! A run is models × a suite of tasks × repetitions; every job is graded pass / partial / fail
//! (score 1 / ½ / 0). [`aggregate`] turns the run's description ([`RunInfo`]) and its graded
//! jobs ([`Outcome`]s) into a [`Report`] — counts, scores with a 95 % cluster-bootstrap interval,
//! timing summaries, per-task, per-category and per-hardware breakdowns — and [`render`] prints a
//! report as a terminal table, Markdown, CSV, JSON or raw JSONL.
//!
//! Everything here is a pure function of its arguments: no I/O, no clock, no threads, and the
//! only randomness (the bootstrap) is seeded from the run id, so the same inputs give the same
//! bytes. No input makes these functions panic: empty runs, NaN timings and zero durations all
//! have a defined output (documented where they are handled).

pub mod adaptive;
mod aggregate;
pub mod bootstrap;
mod compare;
mod format;
mod outcome;
mod render;
mod report;
pub mod significance;
pub mod stats;
pub mod timings;

pub use adaptive::{AdaptiveRule, Assessment, Decision, StopReason, assess, decide};
pub use aggregate::aggregate;
pub use compare::{
    CompareError, CompareOptions, Comparison, McNemar, ModelComparison, Side, SideRef,
    SpeedComparison, TaskComparison, compare,
};
pub use format::{Format, UnknownFormat};
pub use outcome::{
    CheckOutcome, FailedAttempt, FailedJob, GradeEntry, ModelInfo, Outcome, RunInfo, TaskInfo,
    Verdict,
};
pub use render::{
    CompareFormat, JSONL_SCHEMA, UnknownCompareFormat, render, render_comparison, render_run,
};
pub use report::{
    CategoryReport, CiMethod, HardwareReport, ModelReport, Report, SuiteRef, TaskReport, Timing,
};
