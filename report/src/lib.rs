//! benchfarm-report: pure aggregation, comparison and rendering of benchmark runs.
//!
//! A run is models × a suite of tasks × repetitions; every job is graded pass / partial / fail
//! (score 1 / ½ / 0). [`aggregate`] turns the run's description ([`RunInfo`]) and its graded
//! attempts ([`Outcome`]s, which carry the answer and the grader's trace) into a [`Report`] —
//! counts, scores with two 95 % intervals (a cluster bootstrap over tasks, and a bootstrap over
//! repetitions with the task set fixed), timing distributions, per-task, per-category and
//! per-hardware breakdowns — and [`render`] / [`render_run`] print a report as a terminal table,
//! Markdown, CSV, JSON, JSONL (one line per attempt, failures included) or a self-contained HTML
//! page. [`compare`] pairs two models (or two runs) on shared (task, repetition) pairs, and
//! [`assess`] decides whether a model needs more repetitions.
//!
//! Everything here is a pure function of its arguments: no I/O, no clock, no threads, and the
//! only randomness (the bootstraps) is seeded from the run id, so the same inputs give the same
//! bytes. No input makes these functions panic: empty runs, NaN timings and zero durations all
//! have a defined output (documented where they are handled). `docs/report-formats.md` and
//! `docs/jsonl.md` describe the outputs for users.

pub mod adaptive;
mod aggregate;
pub mod bootstrap;
mod compare;
pub mod cost;
mod format;
mod outcome;
pub mod plausibility;
mod render;
mod report;
pub mod significance;
pub mod stats;
pub mod throughput;
pub mod timings;

pub use adaptive::{AdaptiveRule, Assessment, Decision, StopReason, assess, decide};
pub use aggregate::aggregate;
pub use compare::{
    CompareError, CompareOptions, Comparison, McNemar, ModelComparison, Side, SideRef,
    SpeedComparison, TaskComparison, compare,
};
pub use cost::{Price, job_cost};
pub use format::{Format, UnknownFormat};
pub use outcome::{
    CheckOutcome, FailedAttempt, FailedJob, GradeEntry, ModelInfo, Outcome, RemoteOutcome, RunInfo,
    TaskInfo, Verdict,
};
pub use render::{
    AnswerFilter, CompareFormat, JSONL_SCHEMA, UnknownCompareFormat, render, render_answers,
    render_comparison, render_run,
};
pub use report::{
    CategoryReport, CiMethod, HardwareReport, ImplausibleTiming, ModelReport, Report, SuiteRef,
    TaskReport, Timing,
};
