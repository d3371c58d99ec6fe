//! The scripted model format: a TOML file that stands in for a real model in tests, demos and
//! load tests. It answers each (task, repetition) with a canned string at a synthetic speed, so the
//! whole farm can be exercised without llama.cpp, and it can misbehave on chosen jobs (faults).
//!
//! ```toml
//! name = "oracle"               # model name in reports (required)
//! tokens_per_second = 40.0      # synthetic speed for the timings (default 1000)
//! delay_ms = 0                  # optional extra latency per job
//! load_ms = 0                   # optional simulated load time when an engine switches to it
//! [answers]
//! "task-id" = ["answer for repetition 0", "answer for repetition 1"]
//!
//! [[faults]]                    # any number; the first that matches a job applies
//! task = "task-id"              # required
//! repetition = 1                # optional: only this repetition
//! attempts = [1]                # optional: only these attempt numbers (1 = first try)
//! kind = "fail"                 # fail | hang | crash | kill
//! ```
//!
//! Repetition `r` gets `answers[r % len]`; a task with no entry gets "". What each fault kind
//! does is the engine's business (see `docs/scripted-models.md`); this module only parses,
//! validates and matches them.

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
    load_ms: u64,
    #[serde(default)]
    answers: BTreeMap<String, Spanned<Vec<String>>>,
    #[serde(default)]
    faults: Vec<FaultFile>,
}

/// One `[[faults]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultFile {
    task: Spanned<String>,
    repetition: Option<u32>,
    attempts: Option<Spanned<Vec<u32>>>,
    kind: FaultKind,
}

/// How a scripted job misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// The engine returns an error.
    Fail,
    /// The engine never answers until the job is cancelled.
    Hang,
    /// The engine process aborts (SIGABRT), as a failed `GGML_ASSERT` would.
    Crash,
    /// The engine process is SIGKILLed, as by the kernel's OOM killer.
    Kill,
}

impl FaultKind {
    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Fail => "fail",
            FaultKind::Hang => "hang",
            FaultKind::Crash => "crash",
            FaultKind::Kill => "kill",
        }
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated fault: which jobs it hits and what it does to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    pub task: String,
    /// `None`: every repetition.
    pub repetition: Option<u32>,
    /// `None`: every attempt. Never an empty list (rejected at parse: it could match nothing).
    pub attempts: Option<Vec<u32>>,
    pub kind: FaultKind,
}

impl Fault {
    /// Whether this fault applies to attempt `attempt` of repetition `repetition` of `task_id`.
    pub fn matches(&self, task_id: &str, repetition: u32, attempt: u32) -> bool {
        self.task == task_id
            && self.repetition.is_none_or(|r| r == repetition)
            && self.attempts.as_ref().is_none_or(|a| a.contains(&attempt))
    }
}

/// A parsed, validated scripted model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptedModel {
    name: String,
    tokens_per_second: f64,
    delay_ms: u64,
    // Defaulted so a model serialised by an older worker still reads.
    #[serde(default)]
    load_ms: u64,
    answers: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    faults: Vec<Fault>,
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
        let mut faults = Vec::with_capacity(file.faults.len());
        for fault in file.faults {
            if fault.task.get_ref().trim().is_empty() {
                return Err(err_at(
                    Some(fault.task.span()),
                    "fault task must not be empty".into(),
                ));
            }
            if let Some(attempts) = &fault.attempts {
                if attempts.get_ref().is_empty() {
                    return Err(err_at(
                        Some(attempts.span()),
                        "fault attempts must list at least one attempt (omit it for every attempt)"
                            .into(),
                    ));
                }
                // Attempts are numbered from 1; a 0 would silently never match.
                if attempts.get_ref().contains(&0) {
                    return Err(err_at(
                        Some(attempts.span()),
                        "fault attempts are numbered from 1".into(),
                    ));
                }
            }
            faults.push(Fault {
                task: fault.task.into_inner(),
                repetition: fault.repetition,
                attempts: fault.attempts.map(Spanned::into_inner),
                kind: fault.kind,
            });
        }
        Ok(Self {
            name: file.name.into_inner(),
            tokens_per_second,
            delay_ms: file.delay_ms,
            load_ms: file.load_ms,
            answers,
            faults,
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

    /// The kind of the first fault that matches the job, if any.
    pub fn fault(&self, task_id: &str, repetition: u32, attempt: u32) -> Option<FaultKind> {
        self.faults
            .iter()
            .find(|f| f.matches(task_id, repetition, attempt))
            .map(|f| f.kind)
    }

    /// This model as a machine `factor` times as fast would run it: `tokens_per_second`
    /// multiplied, `load_ms` divided (rounded). A simulation knob for heterogeneous farms;
    /// `delay_ms` (latency, not work) is unchanged. A factor that is not a positive finite
    /// number leaves the model as it is.
    pub fn with_speed_factor(&self, factor: f64) -> Self {
        let mut scaled = self.clone();
        if factor.is_finite() && factor > 0.0 {
            scaled.tokens_per_second = self.tokens_per_second * factor;
            scaled.load_ms = (self.load_ms as f64 / factor).round() as u64;
        }
        scaled
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
    /// Simulated load time paid when an engine switches to this model; 0: never cold.
    pub fn load_ms(&self) -> u64 {
        self.load_ms
    }
    pub fn faults(&self) -> &[Fault] {
        &self.faults
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
        assert_eq!(m.load_ms(), 0);
        assert!(m.answers().is_empty());
        assert!(m.faults().is_empty());
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

    const FAULTY: &str = r#"
name = "faulty"
load_ms = 250
[answers]
t1 = ["a"]

[[faults]]
task = "t1"
repetition = 1
attempts = [1, 2]
kind = "crash"

[[faults]]
task = "t1"
kind = "fail"

[[faults]]
task = "t2"
attempts = [3]
kind = "hang"
"#;

    #[test]
    fn faults_parse_and_the_first_match_applies() {
        let m = ScriptedModel::parse(FAULTY, "faulty.toml").unwrap();
        assert_eq!(m.load_ms(), 250);
        assert_eq!(m.faults().len(), 3);
        assert_eq!(
            m.faults()[0],
            Fault {
                task: "t1".into(),
                repetition: Some(1),
                attempts: Some(vec![1, 2]),
                kind: FaultKind::Crash,
            }
        );
        // Repetition 1, attempts 1 and 2: the crash (listed first) wins over the catch-all fail.
        assert_eq!(m.fault("t1", 1, 1), Some(FaultKind::Crash));
        assert_eq!(m.fault("t1", 1, 2), Some(FaultKind::Crash));
        assert_eq!(m.fault("t1", 1, 3), Some(FaultKind::Fail));
        assert_eq!(m.fault("t1", 0, 1), Some(FaultKind::Fail));
        assert_eq!(m.fault("t2", 0, 3), Some(FaultKind::Hang));
        assert_eq!(m.fault("t2", 7, 3), Some(FaultKind::Hang));
        assert_eq!(m.fault("t2", 0, 1), None);
        assert_eq!(m.fault("t3", 0, 1), None);
        // Answers are unaffected by faults.
        assert_eq!(m.answer("t1", 1), "a");
    }

    #[test]
    fn every_fault_kind_has_its_file_name() {
        for (name, kind) in [
            ("fail", FaultKind::Fail),
            ("hang", FaultKind::Hang),
            ("crash", FaultKind::Crash),
            ("kill", FaultKind::Kill),
        ] {
            let text = format!("name = \"x\"\n[[faults]]\ntask = \"t\"\nkind = \"{name}\"\n");
            let m = ScriptedModel::parse(&text, "m.toml").unwrap();
            assert_eq!(m.fault("t", 0, 1), Some(kind));
            assert_eq!(kind.to_string(), name);
        }
    }

    #[test]
    fn bad_faults_are_errors_with_positions() {
        let err = ScriptedModel::parse(
            "name = \"x\"\n[[faults]]\ntask = \"t\"\nkind = \"explode\"\n",
            "m.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("m.toml:4:8: "), "{err}");
        assert!(err.contains("unknown variant `explode`"), "{err}");

        let err = ScriptedModel::parse(
            "name = \"x\"\n[[faults]]\ntask = \" \"\nkind = \"fail\"\n",
            "m.toml",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "m.toml:3:8: fault task must not be empty");

        let err = ScriptedModel::parse(
            "name = \"x\"\n[[faults]]\ntask = \"t\"\nattempts = []\nkind = \"fail\"\n",
            "m.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("m.toml:4:12: fault attempts must list"),
            "{err}"
        );

        let err = ScriptedModel::parse(
            "name = \"x\"\n[[faults]]\ntask = \"t\"\nattempts = [0]\nkind = \"fail\"\n",
            "m.toml",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "m.toml:4:12: fault attempts are numbered from 1");

        let err = ScriptedModel::parse("name = \"x\"\n[[faults]]\nkind = \"fail\"\n", "m.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `task`"), "{err}");
        assert!(err.starts_with("m.toml:2:"), "{err}");

        let err = ScriptedModel::parse(
            "name = \"x\"\n[[faults]]\ntask = \"t\"\nkind = \"fail\"\nrepetitions = 2\n",
            "m.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `repetitions`"), "{err}");

        // The old single-table shape is not the format.
        assert!(
            ScriptedModel::parse("name = \"x\"\n[faults]\nfail = [\"t#1\"]\n", "m.toml").is_err()
        );
    }

    #[test]
    fn speed_factor_scales_speed_and_load_only() {
        let m = ScriptedModel::parse(FAULTY, "faulty.toml").unwrap();
        let fast = m.with_speed_factor(2.0);
        assert_eq!(fast.tokens_per_second(), 2.0 * DEFAULT_TOKENS_PER_SECOND);
        assert_eq!(fast.load_ms(), 125);
        assert_eq!(fast.delay_ms(), m.delay_ms());
        assert_eq!(fast.faults(), m.faults());
        let slow = m.with_speed_factor(0.3);
        assert_eq!(slow.load_ms(), 833);
        assert_eq!(m.with_speed_factor(0.0), m);
        assert_eq!(m.with_speed_factor(f64::NAN), m);
    }

    #[test]
    fn serialised_models_survive_and_old_ones_default_the_new_fields() {
        let m = ScriptedModel::parse(FAULTY, "faulty.toml").unwrap();
        // The engine host gets models serialised; TOML stands in for JSON (same serde shape).
        let text = toml::to_string(&m).unwrap();
        assert_eq!(toml::from_str::<ScriptedModel>(&text).unwrap(), m);
        let old = "name = \"o\"\ntokens_per_second = 5.0\ndelay_ms = 1\n[answers]\n";
        let o: ScriptedModel = toml::from_str(old).unwrap();
        assert_eq!(o.load_ms(), 0);
        assert!(o.faults().is_empty());
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
