//! The suite data model, a leaf every other part of the crate builds on: [`Suite`], [`Task`],
//! [`Example`] and [`Grading`] (how a task's checks become a verdict), with the defaults the
//! format applies. No parsing, grading or I/O here: `format.rs` builds these from TOML,
//! `grade.rs` grades answers with them, `suite.rs` holds the entry points.

use crate::check::Check;
use crate::extract::Extract;
use benchfarm_domain::Verdict;

/// A parsed, validated suite.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    pub name: String,
    /// Recorded with every result, so results from different suite revisions are
    /// never averaged together.
    pub version: String,
    pub description: Option<String>,
    pub tasks: Vec<Task>,
}

/// One task with its defaults already applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: String,
    pub category: String,
    /// Sent as the user message through the model's own chat template.
    pub prompt: String,
    /// The system message; empty means none was set in the task or `[defaults]`.
    pub system: String,
    pub max_tokens: u32,
    pub temperature: f32,
    pub extract: Extract,
    pub grading: Grading,
    pub examples: Vec<Example>,
}

/// A known answer and the grade it must get (checked by [`crate::check_examples`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub answer: String,
    pub grade: Verdict,
}

/// Values used when neither the task nor `[defaults]` sets them.
pub const DEFAULT_MAX_TOKENS: u32 = 256;
pub const DEFAULT_TEMPERATURE: f32 = 0.0;

/// How a task turns its checks into a verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Grading {
    /// `pass = [...]`, optional `partial = [...]`: all of `pass` hold → pass; else
    /// all of `partial` hold → partial; else fail.
    AllHold {
        pass: Vec<Check>,
        partial: Option<Vec<Check>>,
    },
    /// `checks = [...]`, `pass_at`, `partial_at`: the share of checks that hold,
    /// ≥ `pass_at` → pass; else ≥ `partial_at` → partial; else fail.
    Share {
        checks: Vec<Check>,
        pass_at: f64,
        partial_at: f64,
    },
}

impl Grading {
    pub const DEFAULT_PASS_AT: f64 = 0.75;
    pub const DEFAULT_PARTIAL_AT: f64 = 0.5;
}

impl Suite {
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.id == id)
    }
}
