//! Key encoding of the store's trees.
//!
//! Job ids are `{run_id}-{index:05}` and result keys `{job_id}#{attempt:04}`, so one run's jobs and
//! results are each a single prefix scan, in expansion order. The trailing separator of each prefix
//! keeps run `a` from matching run `ab`.

/// The key of a result: one per (job, attempt).
pub fn result_key(job_id: &str, attempt: u32) -> String {
    format!("{job_id}#{attempt:04}")
}

/// The prefix of every job id and result key of a run.
pub fn run_prefix(run_id: &str) -> String {
    format!("{run_id}-")
}

/// The prefix of every result key of a job.
pub fn job_prefix(job_id: &str) -> String {
    format!("{job_id}#")
}
