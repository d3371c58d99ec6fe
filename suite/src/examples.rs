//! Self-test of a suite: grade every `[[tasks.examples]]` answer and compare with the
//! grade its author expects. This is how a suite author (and CI, for the built-ins)
//! knows the checks are fair before any model is run against them.

use crate::grade::{Grade, Verdict};
use crate::model::Suite;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An example whose grade differs from the expected one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disagreement {
    pub task_id: String,
    /// 0-based index into the task's examples (shown 1-based, as `#1`, in Display).
    pub example_index: usize,
    pub expected: Verdict,
    pub got: Verdict,
    pub grade: Grade,
}

/// The outcome of [`check_examples`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExamplesReport {
    pub total: usize,
    pub agree: usize,
    pub disagreements: Vec<Disagreement>,
}

impl ExamplesReport {
    pub fn all_agree(&self) -> bool {
        self.disagreements.is_empty()
    }
}

/// Grades every example of every task against its expected grade.
pub fn check_examples(suite: &Suite) -> ExamplesReport {
    let mut report = ExamplesReport {
        total: 0,
        agree: 0,
        disagreements: Vec::new(),
    };
    for task in &suite.tasks {
        for (example_index, example) in task.examples.iter().enumerate() {
            report.total += 1;
            let grade = task.grade(&example.answer);
            if grade.verdict == example.grade {
                report.agree += 1;
            } else {
                report.disagreements.push(Disagreement {
                    task_id: task.id.clone(),
                    example_index,
                    expected: example.grade,
                    got: grade.verdict,
                    grade,
                });
            }
        }
    }
    report
}

/// A table of disagreements (each followed by its checks and the extracted text),
/// then, as the last line, exactly "N of M examples agree".
impl fmt::Display for ExamplesReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.disagreements.is_empty() {
            let width = self
                .disagreements
                .iter()
                .map(|d| d.task_id.len())
                .chain(std::iter::once("task".len()))
                .max()
                .unwrap_or(4);
            writeln!(
                f,
                "{:width$}  {:7}  {:8}  {:8}  checks",
                "task", "example", "expected", "got"
            )?;
            for d in &self.disagreements {
                let held = d.grade.checks.iter().filter(|c| c.held).count();
                writeln!(
                    f,
                    "{:width$}  {:7}  {:8}  {:8}  {held} of {} held",
                    d.task_id,
                    format!("#{}", d.example_index + 1),
                    d.expected.as_str(),
                    d.got.as_str(),
                    d.grade.checks.len(),
                )?;
                for c in &d.grade.checks {
                    let mark = if c.held { "held" } else { "    " };
                    writeln!(f, "    [{mark}] {}: {}", c.group, c.check)?;
                }
                writeln!(f, "    extracted: {:?}", d.grade.extracted)?;
            }
        }
        write!(f, "{} of {} examples agree", self.agree, self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE: &str = r#"
name = "s"
version = "1"
[[tasks]]
id = "t"
category = "c"
prompt = "p"
pass = [{ contains = "jq" }]
partial = [{ contains = "json" }]
[[tasks.examples]]
answer = "jq ."
grade = "pass"
[[tasks.examples]]
answer = "json"
grade = "pass"
[[tasks.examples]]
answer = "nothing"
grade = "fail"
"#;

    #[test]
    fn counts_agreements_and_lists_disagreements() {
        let suite = Suite::parse(SUITE, "s.toml").unwrap();
        let report = check_examples(&suite);
        assert_eq!((report.total, report.agree), (3, 2));
        assert!(!report.all_agree());
        let d = &report.disagreements[0];
        assert_eq!((d.task_id.as_str(), d.example_index), ("t", 1));
        assert_eq!((d.expected, d.got), (Verdict::Pass, Verdict::Partial));

        let shown = report.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.last(), Some(&"2 of 3 examples agree"));
        assert!(lines[0].starts_with("task"), "{shown}");
        assert!(
            lines[1].starts_with("t     #2       pass      partial   1 of 2 held"),
            "{shown}"
        );
        assert!(
            shown.contains("    [    ] pass: contains \"jq\""),
            "{shown}"
        );
        assert!(
            shown.contains("    [held] partial: contains \"json\""),
            "{shown}"
        );
        assert!(shown.contains("extracted: \"json\""), "{shown}");
    }

    #[test]
    fn all_agreeing_report_is_one_line() {
        let suite = Suite::parse(
            &SUITE.replace("answer = \"json\"", "answer = \"jq\""),
            "s.toml",
        )
        .unwrap();
        let report = check_examples(&suite);
        assert!(report.all_agree());
        assert_eq!(report.to_string(), "3 of 3 examples agree");
    }
}
