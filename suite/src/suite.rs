//! The suite data model: [`Suite`], [`Task`], [`Example`], and the entry points that
//! produce them (`parse`, `load`, `builtin`). The format walk itself is in
//! `format.rs`; grading is in `grade.rs`.

use crate::error::SuiteError;
use crate::extract::Extract;
use crate::grade::{Grading, Verdict};
use crate::limits::SuiteLimits;
use std::path::Path;

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

impl Suite {
    /// Parses and validates suite text. `origin` names the source in errors
    /// ("suites/x.toml", "builtin:agent-coding").
    pub fn parse(text: &str, origin: &str) -> Result<Suite, SuiteError> {
        crate::format::parse(text, origin, SuiteLimits::DEFAULT)
    }

    /// [`Suite::parse`] under `limits` (the coordinator's, from its flags): a suite over one is
    /// refused with an error naming the limit and where it was exceeded.
    pub fn parse_with_limits(
        text: &str,
        origin: &str,
        limits: SuiteLimits,
    ) -> Result<Suite, SuiteError> {
        crate::format::parse(text, origin, limits)
    }

    /// Reads and parses a suite file; an unreadable file is an error naming it.
    pub fn load(path: &Path) -> Result<Suite, SuiteError> {
        let text = read_file(path)?;
        Suite::parse(&text, &path.display().to_string())
    }

    /// A built-in suite by name, parsed. `None` for an unknown name.
    pub fn builtin(name: &str) -> Option<Suite> {
        let text = crate::builtin::builtin_source(name)?;
        Suite::parse(text, &format!("builtin:{name}")).ok()
    }

    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.id == id)
    }
}

/// The only I/O in the crate: reading one suite file.
pub(crate) fn read_file(path: &Path) -> Result<String, SuiteError> {
    std::fs::read_to_string(path).map_err(|e| {
        SuiteError::file(
            &path.display().to_string(),
            format!("cannot read suite file: {e}"),
        )
    })
}
