//! Builds a run's report from the store: records in, `benchfarm-report` inputs out.
//!
//! Only counted results become outcomes (a superseded attempt's answer is kept in the store but never
//! scored twice); jobs that ended failed become the report's failed jobs, with their last reason.

use benchfarm_report::{FailedJob, Format, ModelInfo, Outcome, RunInfo, TaskInfo, Verdict};

use crate::job::JobState;
use crate::records::{AttemptEnd, JobRecord, ModelKind, ResultRecord, RunRecord};
use crate::store::{Store, StoreError};

/// The report inputs of a run, read from the store.
pub fn load(store: &Store, run: &RunRecord) -> Result<(RunInfo, Vec<Outcome>), StoreError> {
    let jobs = store.jobs_of_run(&run.id)?;
    let results = store.results_of_run(&run.id)?;
    Ok(inputs(run, &jobs, &results))
}

/// Pure mapping of records to report inputs.
pub fn inputs(
    run: &RunRecord,
    jobs: &[JobRecord],
    results: &[ResultRecord],
) -> (RunInfo, Vec<Outcome>) {
    let model_name = |job: &JobRecord| {
        run.models
            .get(job.model_index as usize)
            .map(|m| m.name.clone())
            .unwrap_or_default()
    };
    let by_id: std::collections::HashMap<&str, &JobRecord> =
        jobs.iter().map(|j| (j.id.as_str(), j)).collect();
    let outcomes = results
        .iter()
        .filter(|r| r.counted)
        .filter_map(|r| {
            let job = by_id.get(r.job_id.as_str())?;
            Some(Outcome {
                model: model_name(job),
                task_id: job.task_id.clone(),
                repetition: job.repetition,
                verdict: match r.grade.verdict {
                    benchfarm_suite::Verdict::Pass => Verdict::Pass,
                    benchfarm_suite::Verdict::Partial => Verdict::Partial,
                    benchfarm_suite::Verdict::Fail => Verdict::Fail,
                },
                worker_id: r.worker_id.clone(),
                worker_name: r.worker_name.clone(),
                hardware_class: r.hardware_class.clone(),
                threads: r.threads,
                wall_ms: r.timings.wall_ms,
                load_ms: r.timings.load_ms,
                cold: r.timings.cold,
                prompt_tokens: r.timings.prompt_tokens,
                prompt_ms: r.timings.prompt_ms,
                ttft_ms: r.timings.ttft_ms,
                gen_tokens: r.timings.gen_tokens,
                gen_ms: r.timings.gen_ms,
            })
        })
        .collect();
    let failed_jobs = jobs
        .iter()
        .filter(|j| j.state == JobState::Failed)
        .map(|j| FailedJob {
            model: model_name(j),
            task_id: j.task_id.clone(),
            repetition: j.repetition,
            reason: j
                .attempts
                .iter()
                .filter_map(|a| match &a.end {
                    Some(AttemptEnd::Failed(r) | AttemptEnd::Lost(r)) => {
                        Some(format!("attempt {}: {r}", a.attempt))
                    }
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("; "),
        })
        .collect();
    let info = RunInfo {
        run_id: run.id.clone(),
        suite_name: run.suite_name.clone(),
        suite_version: run.suite_version.clone(),
        repetitions: run.repetitions,
        state: run.state.as_str().to_string(),
        models: run
            .models
            .iter()
            .map(|m| ModelInfo {
                name: m.name.clone(),
                size_bytes: m.size_bytes,
                sha256: m.sha256.clone(),
                kind: match m.kind {
                    ModelKind::Gguf { .. } => "gguf".into(),
                    ModelKind::Scripted { .. } => "scripted".into(),
                },
            })
            .collect(),
        tasks: run
            .tasks
            .iter()
            .map(|t| TaskInfo {
                id: t.id.clone(),
                category: t.category.clone(),
            })
            .collect(),
        jobs_total: u64::from(run.jobs_total),
        failed_jobs,
    };
    (info, outcomes)
}

/// The run's report in `format`.
pub fn render(store: &Store, run: &RunRecord, format: Format) -> Result<String, StoreError> {
    let (info, outcomes) = load(store, run)?;
    let report = benchfarm_report::aggregate(&info, &outcomes);
    Ok(benchfarm_report::render(&report, &outcomes, format))
}
