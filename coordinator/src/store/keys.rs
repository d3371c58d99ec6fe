//! Key encoding of the store's trees.
//!
//! Job ids are `{run_id}-{index:010}` and result keys `{job_id}#{attempt:010}`: one run's jobs and
//! results are each a single prefix scan, and zero-padding to the width of any u32 keeps them in
//! numeric order however many jobs a run has (five digits stopped sorting past 99,999). The trailing separator of each prefix
//! keeps run `a` from matching run `ab`.

/// The key of a result: one per (job, attempt).
pub fn result_key(job_id: &str, attempt: u32) -> String {
    format!("{job_id}#{attempt:010}")
}

/// The prefix of every job id and result key of a run.
pub fn run_prefix(run_id: &str) -> String {
    format!("{run_id}-")
}

/// The prefix of every result key of a job.
pub fn job_prefix(job_id: &str) -> String {
    format!("{job_id}#")
}
