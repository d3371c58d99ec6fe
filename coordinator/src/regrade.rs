//! Regrading: recompute every grade of a run from its stored raw answers.
//!
//! After a grader fix, a run need not be redone: every stored answer is graded again with the given
//! suite (or the run's own), the old grade is pushed onto the result's `grade_history`, and the
//! changes are summarised as "model task: old -> new xN". The grading itself is pure.

use std::collections::BTreeMap;

use benchfarm_suite::{Grade, Suite};

use crate::records::{JobRecord, PastGrade, ResultRecord, RunRecord};

/// What a regrade did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RegradeSummary {
    pub results: u32,
    pub changed: u32,
    pub changes: Vec<String>,
}

/// Regrades `results` of `run` with `suite`, returning the updated results (every one, so that each
/// carries the new history entry) and a summary. A result whose task the suite lacks keeps its grade
/// and is reported.
pub fn regrade(
    run: &RunRecord,
    jobs: &[JobRecord],
    results: &[ResultRecord],
    suite: &Suite,
    now_ms: i64,
) -> (Vec<ResultRecord>, RegradeSummary) {
    let by_id: BTreeMap<&str, &JobRecord> = jobs.iter().map(|j| (j.id.as_str(), j)).collect();
    let mut changes: BTreeMap<String, u32> = BTreeMap::new();
    let mut summary = RegradeSummary::default();
    let mut updated = Vec::with_capacity(results.len());
    for result in results {
        let Some(job) = by_id.get(result.job_id.as_str()) else {
            continue;
        };
        // A throughput job's result is a measurement: there is nothing to grade.
        if job.throughput.is_some() {
            continue;
        }
        let model = run
            .models
            .get(job.model_index as usize)
            .map_or("?", |m| m.name.as_str());
        let Some(task) = suite.task(&job.task_id) else {
            *changes
                .entry(format!(
                    "{model} {}: task not in suite {} v{}; grade kept",
                    job.task_id, suite.name, suite.version
                ))
                .or_default() += 1;
            continue;
        };
        let grade: Grade = task.grade(&result.answer);
        summary.results += 1;
        if grade.verdict != result.grade.verdict && result.counted {
            summary.changed += 1;
            *changes
                .entry(format!(
                    "{model} {}: {} -> {}",
                    job.task_id, result.grade.verdict, grade.verdict
                ))
                .or_default() += 1;
        }
        let mut next = result.clone();
        next.grade_history.push(PastGrade {
            suite_version: run.suite_version.clone(),
            regraded_unix_ms: now_ms,
            grade: result.grade.clone(),
        });
        next.grade = grade;
        updated.push(next);
    }
    summary.changes = changes
        .into_iter()
        .map(|(line, n)| format!("{line} x{n}"))
        .collect();
    (updated, summary)
}
