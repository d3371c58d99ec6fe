//! The scripted model format: a TOML file that stands in for a real model in tests, demos and
//! load tests. It answers each (task, repetition) with a canned string at a synthetic speed, so the
//! whole farm can be exercised without llama.cpp.
//!
//! ```toml
//! name = "oracle"               # model name in reports (required)
//! tokens_per_second = 40.0      # synthetic speed for the timings (default 1000)
//! delay_ms = 0                  # optional extra latency per job
//! [answers]
//! "task-id" = ["answer for repetition 0", "answer for repetition 1"]
//! ```
//!
//! Repetition `r` gets `answers[r % len]`; a task with no entry gets "".
//!
//! # Seam: fault injection (not implemented)
//!
//! Load and chaos tests will want a scripted model to misbehave on chosen jobs. The planned shape
//! is a `[faults]` table, e.g. `fail = ["task-id#1"]` (that job returns an engine error) and
//! `hang = ["task-id#*"]` (the job sleeps until cancelled). To add it: a `faults: Faults` field on
//! [`ScriptedFile`] with `#[serde(default)]`, a lookup method next to [`ScriptedModel::answer`],
//! and the engine's scripted backend consulting it. Until then `deny_unknown_fields` rejects a
//! `[faults]` table, so a file written for the future format fails loudly instead of silently
//! running without its faults.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// Default synthetic speed when `tokens_per_second` is absent.
pub const DEFAULT_TOKENS_PER_SECOND: f64 = 1000.0;

/// Errors from loading a scripted model file.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    /// The file could not be read.
    #[error("{origin}: cannot read: {error}")]
    Read {
        origin: String,
        error: std::io::Error,
    },
    /// The text is not valid TOML or does not match the format; line and column are 1-based.
    #[error("{origin}:{line}:{col}: {message}")]
    Parse {
        origin: String,
        line: usize,
        col: usize,
        message: String,
    },
}

/// The on-disk shape. Spanned fields let validation errors point at the offending value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptedFile {
    name: Spanned<String>,
    tokens_per_second: Option<Spanned<f64>>,
    #[serde(default)]
    delay_ms: u64,
    #[serde(default)]
    answers: BTreeMap<String, Spanned<Vec<String>>>,
    // Future: `#[serde(default)] faults: Faults` — see the module docs.
}

/// A parsed, validated scripted model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptedModel {
    name: String,
    tokens_per_second: f64,
    delay_ms: u64,
    answers: BTreeMap<String, Vec<String>>,
}

impl ScriptedModel {
    /// Parses and validates `text`; `origin` (usually the file path) prefixes error messages.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ModelFileError> {
        let err_at = |span: Option<Range<usize>>, message: String| {
            let (line, col) = line_col(text, span.map_or(0, |s| s.start));
            ModelFileError::Parse {
                origin: origin.to_string(),
                line,
                col,
                message,
            }
        };
        let file: ScriptedFile = toml::from_str(text)
            .map_err(|e| err_at(e.span(), e.message().trim_end().to_string()))?;

        if file.name.get_ref().trim().is_empty() {
            return Err(err_at(
                Some(file.name.span()),
                "name must not be empty".into(),
            ));
        }
        let tokens_per_second = match &file.tokens_per_second {
            None => DEFAULT_TOKENS_PER_SECOND,
            Some(tps) => {
                let v = *tps.get_ref();
                if !(v.is_finite() && v > 0.0) {
                    return Err(err_at(
                        Some(tps.span()),
                        format!("tokens_per_second must be a positive number, got {v}"),
                    ));
                }
                v
            }
        };
        let mut answers = BTreeMap::new();
        for (task, list) in file.answers {
            if list.get_ref().is_empty() {
                return Err(err_at(
                    Some(list.span()),
                    format!("answers for {task:?} must list at least one answer"),
                ));
            }
            answers.insert(task, list.into_inner());
        }
        Ok(Self {
            name: file.name.into_inner(),
            tokens_per_second,
            delay_ms: file.delay_ms,
            answers,
        })
    }

    /// Reads and parses the file at `path`; errors are prefixed with the path.
    pub fn load(path: &Path) -> Result<Self, ModelFileError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ModelFileError::Read {
            origin: origin.clone(),
            error,
        })?;
        Self::parse(&text, &origin)
    }

    /// The canned answer for repetition `repetition` of `task_id` ("" when the task has none).
    pub fn answer(&self, task_id: &str, repetition: u32) -> &str {
        let Some(list) = self.answers.get(task_id) else {
            return "";
        };
        // Validation guarantees a non-empty list; `get` keeps this total anyway.
        let idx = usize::try_from(repetition).unwrap_or(usize::MAX) % list.len().max(1);
        list.get(idx).map_or("", String::as_str)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn tokens_per_second(&self) -> f64 {
        self.tokens_per_second
    }
    pub fn delay_ms(&self) -> u64 {
        self.delay_ms
    }
    pub fn answers(&self) -> &BTreeMap<String, Vec<String>> {
        &self.answers
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORACLE: &str = r#"
name = "oracle"
tokens_per_second = 40.0
delay_ms = 5
[answers]
"t1" = ["zero", "one"]
"t2" = ["only"]
"#;

    #[test]
    fn parses_and_answers_by_repetition() {
        let m = ScriptedModel::parse(ORACLE, "oracle.toml").unwrap();
        assert_eq!(m.name(), "oracle");
        assert_eq!(m.tokens_per_second(), 40.0);
        assert_eq!(m.delay_ms(), 5);
        assert_eq!(m.answer("t1", 0), "zero");
        assert_eq!(m.answer("t1", 1), "one");
        assert_eq!(m.answer("t1", 2), "zero");
        assert_eq!(m.answer("t1", u32::MAX), "one");
        assert_eq!(m.answer("t2", 7), "only");
        assert_eq!(m.answer("absent", 0), "");
    }

    #[test]
    fn defaults_apply() {
        let m = ScriptedModel::parse("name = \"x\"", "x.toml").unwrap();
        assert_eq!(m.tokens_per_second(), DEFAULT_TOKENS_PER_SECOND);
        assert_eq!(m.delay_ms(), 0);
        assert!(m.answers().is_empty());
    }

    #[test]
    fn unknown_field_reports_origin_line_col() {
        let text = "name = \"x\"\nspeed = 3\n";
        let err = ScriptedModel::parse(text, "m.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("m.toml:2:1: "), "{err}");
        assert!(err.contains("unknown field `speed`"), "{err}");
    }

    #[test]
    fn faults_table_is_not_accepted_yet() {
        let text = "name = \"x\"\n[faults]\nfail = [\"t#1\"]\n";
        let err = ScriptedModel::parse(text, "m.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `faults`"), "{err}");
    }

    #[test]
    fn missing_name_is_an_error() {
        let err = ScriptedModel::parse("delay_ms = 1", "m.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("m.toml:1:1: "), "{err}");
        assert!(err.contains("missing field `name`"), "{err}");
    }

    #[test]
    fn validation_errors_point_at_the_value() {
        let err = ScriptedModel::parse("name = \"x\"\ntokens_per_second = -2.0\n", "m.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "m.toml:2:21: tokens_per_second must be a positive number, got -2"
        );

        let err = ScriptedModel::parse("name = \"  \"", "m.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "m.toml:1:8: name must not be empty");

        let err = ScriptedModel::parse("name = \"x\"\n[answers]\nt = []\n", "m.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "m.toml:3:5: answers for \"t\" must list at least one answer"
        );
    }

    #[test]
    fn wrong_types_and_syntax_are_errors() {
        let err = ScriptedModel::parse("name = 3", "m.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("m.toml:1:8: "), "{err}");
        let err = ScriptedModel::parse("name = \"x\"\n[answers\n", "m.toml").unwrap_err();
        assert!(
            matches!(err, ModelFileError::Parse { line: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn load_reads_files_and_names_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("oracle.toml");
        std::fs::write(&path, ORACLE).unwrap();
        assert_eq!(ScriptedModel::load(&path).unwrap().answer("t2", 0), "only");
        let err = ScriptedModel::load(&dir.path().join("nope.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.toml: cannot read"), "{err}");
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncé d", 7), (2, 4));
        assert_eq!(line_col("", 10), (1, 1));
    }
}
