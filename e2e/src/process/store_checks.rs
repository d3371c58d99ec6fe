//! The store after a run, read directly: every job counted exactly once.

use benchfarm_coordinator::job::JobState;
use benchfarm_coordinator::records::{JobRecord, ResultRecord};
use benchfarm_coordinator::store::Store;

/// Every job of the run that is not `failed` has exactly one counted result and is done at that
/// result's attempt; a failed job has none. Returns the run's jobs and all its results (counted or
/// not).
pub fn assert_exactly_once(
    store: &Store,
    run_id: &str,
    jobs_expected: usize,
) -> (Vec<JobRecord>, Vec<ResultRecord>) {
    let jobs = store.jobs_of_run(run_id).unwrap();
    let results = store.results_of_run(run_id).unwrap();
    assert_eq!(jobs.len(), jobs_expected, "jobs of run {run_id}");
    for job in &jobs {
        let counted: Vec<&ResultRecord> = results
            .iter()
            .filter(|r| r.job_id == job.id && r.counted)
            .collect();
        if job.state == JobState::Failed {
            assert!(
                counted.is_empty(),
                "failed job {} has counted results",
                job.id
            );
            continue;
        }
        assert_eq!(
            counted.len(),
            1,
            "job {} ({} rep {}) has {} counted results; attempts {:?}",
            job.id,
            job.task_id,
            job.repetition,
            counted.len(),
            job.attempts
        );
        assert_eq!(
            job.state,
            JobState::Done {
                attempt: counted[0].attempt
            },
            "job {} is not done at its counted attempt",
            job.id
        );
    }
    assert!(
        results
            .iter()
            .all(|r| jobs.iter().any(|j| j.id == r.job_id)),
        "a result of an unknown job"
    );
    (jobs, results)
}

/// The job of `task` at `repetition` (first model).
pub fn job_of<'a>(jobs: &'a [JobRecord], task: &str, repetition: u32) -> &'a JobRecord {
    jobs.iter()
        .find(|j| j.task_id == task && j.repetition == repetition)
        .unwrap_or_else(|| panic!("no job {task} rep {repetition}"))
}
