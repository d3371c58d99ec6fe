//! Grading: turning one raw answer into a [`Grade`] (verdict, score and which
//! checks held), for both grading forms a task can use.
//!
//! The per-check vector is kept on every grade because a bare pass/fail hides why a
//! model failed; reports and `coordinator suite grade` show it.

use crate::check::Check;
use crate::model::{Grading, Task};
use serde::{Deserialize, Serialize};
use std::fmt;

pub use benchfarm_domain::{ParseVerdictError, Verdict};

/// Whether one check held, labelled for reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckOutcome {
    /// "pass", "partial" or "checks": the list the check came from.
    pub group: String,
    /// The check in readable TOML-ish form, e.g. `contains "jq"`.
    pub check: String,
    pub held: bool,
}

/// The result of grading one answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grade {
    pub verdict: Verdict,
    /// Always `verdict.score()`; stored so results can be summed without re-deriving it.
    pub score: f64,
    /// The text the checks saw (see `extract`).
    pub extracted: String,
    /// Every check of the task in suite order, pass before partial.
    pub checks: Vec<CheckOutcome>,
}

impl fmt::Display for Grade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (score {:.1})", self.verdict, self.score)?;
        for c in &self.checks {
            let mark = if c.held { "held" } else { "    " };
            write!(f, "\n  [{mark}] {}: {}", c.group, c.check)?;
        }
        Ok(())
    }
}

fn outcomes(group: &str, checks: &[Check], text: &str) -> Vec<CheckOutcome> {
    checks
        .iter()
        .map(|c| CheckOutcome {
            group: group.to_owned(),
            check: c.to_string(),
            held: c.holds(text),
        })
        .collect()
}

impl Grading {
    /// Verdict and per-check outcomes for an already extracted text.
    pub fn evaluate(&self, text: &str) -> (Verdict, Vec<CheckOutcome>) {
        match self {
            Grading::AllHold { pass, partial } => {
                let mut all = outcomes("pass", pass, text);
                let passed = all.iter().all(|c| c.held);
                let partial = partial.as_deref().map(|p| outcomes("partial", p, text));
                let partly = partial.as_ref().is_some_and(|p| p.iter().all(|c| c.held));
                all.extend(partial.unwrap_or_default());
                let verdict = if passed {
                    Verdict::Pass
                } else if partly {
                    Verdict::Partial
                } else {
                    Verdict::Fail
                };
                (verdict, all)
            }
            Grading::Share {
                checks,
                pass_at,
                partial_at,
            } => {
                let all = outcomes("checks", checks, text);
                let held = all.iter().filter(|c| c.held).count();
                // Division (not threshold × total) so 3 of 4 against 0.75 compares
                // two correctly rounded doubles of the same rational: exact.
                let share = if all.is_empty() {
                    0.0
                } else {
                    held as f64 / all.len() as f64
                };
                let verdict = if share >= *pass_at {
                    Verdict::Pass
                } else if share >= *partial_at {
                    Verdict::Partial
                } else {
                    Verdict::Fail
                };
                (verdict, all)
            }
        }
    }
}

impl Task {
    /// Grades one raw model answer. Never panics, whatever the answer.
    pub fn grade(&self, raw_answer: &str) -> Grade {
        let extracted = self.extract.apply(raw_answer);
        let (verdict, checks) = self.grading.evaluate(&extracted);
        Grade {
            verdict,
            score: verdict.score(),
            extracted,
            checks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contains(s: &str) -> Check {
        Check::Contains(s.to_owned())
    }

    #[test]
    fn verdict_names_scores_and_serde() {
        for v in Verdict::ALL {
            assert_eq!(v.as_str().parse::<Verdict>(), Ok(v));
            assert_eq!(v.to_string(), v.as_str());
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{v}\""));
        }
        assert_eq!(
            [Verdict::Pass, Verdict::Partial, Verdict::Fail].map(|v| v.score()),
            [1.0, 0.5, 0.0]
        );
        assert!("PASS".parse::<Verdict>().is_err());
    }

    #[test]
    fn all_hold_form() {
        let g = Grading::AllHold {
            pass: vec![contains("a"), contains("b")],
            partial: Some(vec![contains("a")]),
        };
        assert_eq!(g.evaluate("ab").0, Verdict::Pass);
        assert_eq!(g.evaluate("a").0, Verdict::Partial);
        assert_eq!(g.evaluate("b").0, Verdict::Fail);
        let (_, outcomes) = g.evaluate("a");
        let groups: Vec<_> = outcomes
            .iter()
            .map(|o| (o.group.as_str(), o.held))
            .collect();
        assert_eq!(groups, [("pass", true), ("pass", false), ("partial", true)]);

        let no_partial = Grading::AllHold {
            pass: vec![contains("a"), contains("b")],
            partial: None,
        };
        assert_eq!(no_partial.evaluate("a").0, Verdict::Fail);
    }

    #[test]
    fn share_form_thresholds_are_inclusive() {
        let g = Grading::Share {
            checks: ["a", "b", "c", "d"].map(contains).to_vec(),
            pass_at: 0.75,
            partial_at: 0.5,
        };
        assert_eq!(g.evaluate("abcd").0, Verdict::Pass);
        assert_eq!(g.evaluate("abc").0, Verdict::Pass);
        assert_eq!(g.evaluate("ab").0, Verdict::Partial);
        assert_eq!(g.evaluate("a").0, Verdict::Fail);
        assert_eq!(g.evaluate("").0, Verdict::Fail);

        let tenths = Grading::Share {
            checks: (0..10).map(|i| contains(&i.to_string())).collect(),
            pass_at: 0.7,
            partial_at: 0.3,
        };
        assert_eq!(tenths.evaluate("0123456").0, Verdict::Pass);
        assert_eq!(tenths.evaluate("012345").0, Verdict::Partial);
        assert_eq!(tenths.evaluate("012").0, Verdict::Partial);
        assert_eq!(tenths.evaluate("01").0, Verdict::Fail);
    }

    #[test]
    fn grade_display() {
        let g = Grade {
            verdict: Verdict::Partial,
            score: 0.5,
            extracted: "x".into(),
            checks: vec![
                CheckOutcome {
                    group: "pass".into(),
                    check: "contains \"jq\"".into(),
                    held: false,
                },
                CheckOutcome {
                    group: "partial".into(),
                    check: "json".into(),
                    held: true,
                },
            ],
        };
        assert_eq!(
            g.to_string(),
            "partial (score 0.5)\n  [    ] pass: contains \"jq\"\n  [held] partial: json"
        );
    }
}
