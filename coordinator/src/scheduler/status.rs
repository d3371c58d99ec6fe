//! A run's progress as users see it: job counts and, for queued jobs, why they wait.
//!
//! Pure functions over records, shared by the live scheduler (jobs in memory) and by reads of finished
//! runs (jobs from the store).

use std::collections::BTreeMap;

use crate::job::JobState;
use crate::records::{JobRecord, RunRecord};

/// Counts of a run's jobs by state, and why the queued ones wait.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunProgress {
    pub run_id: String,
    pub state: String,
    pub label: String,
    pub suite_name: String,
    pub suite_version: String,
    pub repetitions: u32,
    pub created_unix_ms: i64,
    pub models: Vec<String>,
    pub total: u32,
    pub queued: u32,
    pub running: u32,
    pub done: u32,
    pub failed: u32,
    pub cancelled: u32,
    pub waiting: Vec<String>,
}

/// What a worker offers, for [`waiting_reasons`].
#[derive(Debug, Clone)]
pub struct Capability<'a> {
    pub models: &'a std::collections::HashSet<String>,
    pub accepting: bool,
}

/// Counts `jobs` of `run` by state.
pub fn progress(run: &RunRecord, jobs: &[&JobRecord]) -> RunProgress {
    let mut p = RunProgress {
        run_id: run.id.clone(),
        state: run.state.as_str().to_string(),
        label: run.label.clone(),
        suite_name: run.suite_name.clone(),
        suite_version: run.suite_version.clone(),
        repetitions: run.repetitions,
        created_unix_ms: run.created_unix_ms,
        models: run.models.iter().map(|m| m.name.clone()).collect(),
        total: run.jobs_total,
        ..RunProgress::default()
    };
    for job in jobs {
        match job.state {
            JobState::Queued => p.queued += 1,
            JobState::Assigned { .. } | JobState::Running { .. } => p.running += 1,
            JobState::Done { .. } => p.done += 1,
            JobState::Failed => p.failed += 1,
            JobState::Cancelled => p.cancelled += 1,
        }
    }
    p
}

/// One line per model with queued jobs, saying why they wait: no connected worker can run the model,
/// or every capable worker is busy (or draining).
pub fn waiting_reasons(
    run: &RunRecord,
    queued: &[&JobRecord],
    workers: &[Capability<'_>],
) -> Vec<String> {
    let mut per_model: BTreeMap<u32, u32> = BTreeMap::new();
    for job in queued {
        *per_model.entry(job.model_index).or_default() += 1;
    }
    per_model
        .into_iter()
        .filter_map(|(index, count)| {
            let model = run.models.get(index as usize)?;
            let capable: Vec<_> = workers
                .iter()
                .filter(|w| model.is_scripted() || w.models.contains(&model.sha256))
                .collect();
            let jobs = if count == 1 { "job" } else { "jobs" };
            Some(if capable.is_empty() {
                format!(
                    "waiting: {count} {jobs} of {}: no connected worker has the model (sha256 {})",
                    model.name,
                    short_sha(&model.sha256)
                )
            } else if capable.iter().all(|w| !w.accepting) {
                format!(
                    "waiting: {count} {jobs} of {}: every worker that has it is draining",
                    model.name
                )
            } else {
                format!(
                    "queued: {count} {jobs} of {}: waiting for a free slot",
                    model.name
                )
            })
        })
        .collect()
}

fn short_sha(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{ModelKind, RunModel, RunState, RunTask};
    use std::collections::HashSet;

    fn run() -> RunRecord {
        RunRecord {
            id: "r".into(),
            created_unix_ms: 0,
            label: String::new(),
            suite_name: "s".into(),
            suite_version: "1".into(),
            suite_toml: String::new(),
            models: vec![
                RunModel {
                    name: "big".into(),
                    sha256: "aaaaaaaaaaaaaaaa".into(),
                    size_bytes: 1,
                    kind: ModelKind::Gguf {
                        file_name: "big.gguf".into(),
                    },
                },
                RunModel {
                    name: "small".into(),
                    sha256: "bbbbbbbbbbbbbbbb".into(),
                    size_bytes: 1,
                    kind: ModelKind::Gguf {
                        file_name: "small.gguf".into(),
                    },
                },
            ],
            tasks: vec![RunTask {
                id: "t".into(),
                category: "c".into(),
            }],
            repetitions: 2,
            seed: 0,
            jobs_total: 4,
            state: RunState::Running,
            finished_unix_ms: None,
            suite_history: vec![],
        }
    }

    #[test]
    fn counts_and_reasons() {
        let r = run();
        let mut jobs = crate::run::expand(&r);
        jobs[0].state = JobState::Done { attempt: 1 };
        let refs: Vec<_> = jobs.iter().collect();
        let p = progress(&r, &refs);
        assert_eq!((p.total, p.done, p.queued, p.running), (4, 1, 3, 0));

        let has_small: HashSet<String> = ["bbbbbbbbbbbbbbbb".to_string()].into();
        let workers = [Capability {
            models: &has_small,
            accepting: true,
        }];
        let queued: Vec<_> = jobs
            .iter()
            .filter(|j| j.state == JobState::Queued)
            .collect();
        let reasons = waiting_reasons(&r, &queued, &workers);
        assert_eq!(
            reasons,
            vec![
                "waiting: 1 job of big: no connected worker has the model (sha256 aaaaaaaaaaaa)"
                    .to_string(),
                "queued: 2 jobs of small: waiting for a free slot".to_string(),
            ]
        );
    }
}
