//! A run's progress as users see it: job counts and, for queued jobs, why they wait.
//!
//! Pure functions over records, shared by the live scheduler (jobs in memory) and by reads of finished
//! runs (jobs from the store).

use std::collections::BTreeMap;

use super::placement::{PendingJob, Unfit, WorkerView, fit};
use crate::records::{JobCounts, JobRecord, Pin, RunRecord, RunState};

/// Counts of a run's jobs by state, and why the queued ones wait.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunProgress {
    pub run_id: String,
    pub state: RunState,
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
    /// Per model (plan order), its jobs by state; empty when not counted (ended runs).
    pub per_model: Vec<JobCounts>,
}

/// Counts `jobs` of `run` by state.
pub fn progress(run: &RunRecord, jobs: &[&JobRecord]) -> RunProgress {
    let mut counts = JobCounts::default();
    for job in jobs {
        *counts.slot(&job.state) += 1;
    }
    progress_of(run, &counts)
}

/// A run's progress from its job counts.
pub fn progress_of(run: &RunRecord, counts: &JobCounts) -> RunProgress {
    RunProgress {
        run_id: run.id.clone(),
        state: run.state,
        label: run.label.clone(),
        suite_name: run.suite_name.clone(),
        suite_version: run.suite_version.clone(),
        repetitions: run.repetitions,
        created_unix_ms: run.created_unix_ms,
        models: run.models.iter().map(|m| m.name.clone()).collect(),
        total: run.jobs_total,
        queued: counts.queued,
        running: counts.running,
        done: counts.done,
        failed: counts.failed,
        cancelled: counts.cancelled,
        waiting: Vec::new(),
        per_model: Vec::new(),
    }
}

/// One line per model (and pin) with queued jobs, saying why they wait. `view` gives a queued
/// job's placement view; it is asked once per group, not once per job, so a status of a run with
/// 100,000 queued jobs costs a walk over them and a handful of views. `workers` are the connected
/// workers.
pub fn waiting_reasons<'a>(
    run: &RunRecord,
    queued: impl IntoIterator<Item = &'a JobRecord>,
    view: impl Fn(&JobRecord) -> Option<PendingJob>,
    workers: &[WorkerView],
) -> Vec<String> {
    let mut groups: QueuedGroups<'a> = BTreeMap::new();
    for job in queued {
        groups
            .entry((job.model_index, job.pin.as_ref()))
            .or_insert((0, job))
            .0 += 1;
    }
    reasons_by_group(run, groups, view, workers)
}

/// Queued jobs grouped by (model index, pin): how many, and the first in queue order.
pub type QueuedGroups<'a> = BTreeMap<(u32, Option<&'a Pin>), (u32, &'a JobRecord)>;

/// [`waiting_reasons`] from the groups already counted (the scheduler keeps the counts in its
/// index and finds each group's first job near the head of the queue, so a status poll of a run
/// with 100,000 queued jobs does not walk them all).
pub fn reasons_by_group(
    run: &RunRecord,
    groups: QueuedGroups<'_>,
    view: impl Fn(&JobRecord) -> Option<PendingJob>,
    workers: &[WorkerView],
) -> Vec<String> {
    groups
        .into_iter()
        .filter_map(|((index, _), (count, first))| {
            let model = run.models.get(index as usize)?;
            let sample = view(first)?;
            let sample = &sample;
            let jobs = if count == 1 { "job" } else { "jobs" };
            Some(match why_unplaceable(sample, &model.name, workers) {
                Some(reason) => format!("waiting: {count} {jobs} of {}: {reason}", model.name),
                None => format!(
                    "queued: {count} {jobs} of {}: waiting for a free slot",
                    model.name
                ),
            })
        })
        .collect()
}

/// Why no connected worker can take `job`, or `None` when one can (it only lacks a free slot).
pub fn why_unplaceable(
    job: &PendingJob,
    model_name: &str,
    workers: &[WorkerView],
) -> Option<String> {
    if let Some(Pin::Worker(id)) = &job.pin
        && !workers.iter().any(|w| &w.worker_id == id)
    {
        return Some(format!(
            "it is pinned to worker {id}, which is not connected"
        ));
    }
    if workers.is_empty() {
        return Some("no worker is connected".into());
    }
    // Judge capability as if every worker accepted work, then say so if that was the obstacle.
    let verdicts: Vec<(&WorkerView, Result<(), Unfit>)> = workers
        .iter()
        .map(|w| {
            (
                w,
                fit(
                    job,
                    &WorkerView {
                        accepting: true,
                        ..w.clone()
                    },
                ),
            )
        })
        .collect();
    let capable: Vec<&WorkerView> = verdicts
        .iter()
        .filter(|(_, v)| v.is_ok())
        .map(|(w, _)| *w)
        .collect();
    if !capable.is_empty() {
        return if capable.iter().any(|w| w.accepting) {
            None
        } else {
            Some("every worker that could run it is draining or quarantined".into())
        };
    }
    let most_free = verdicts
        .iter()
        .filter(|(_, v)| matches!(v, Err(Unfit::Memory { .. })))
        .map(|(w, _)| *w)
        .max_by_key(|w| w.ram_available_bytes);
    if let Some(w) = most_free {
        return Some(format!(
            "no worker has {} free for {model_name} (most: {} on {})",
            gb(job.memory_bytes),
            gb(w.ram_available_bytes),
            w.worker_id
        ));
    }
    if verdicts
        .iter()
        .all(|(_, v)| matches!(v, Err(Unfit::Labels | Unfit::Arch | Unfit::MinRam)))
    {
        return Some(format!(
            "no connected worker meets the run's requirements ({})",
            describe(&job.require)
        ));
    }
    if let Some(Pin::Class(class)) = &job.pin
        && verdicts
            .iter()
            .all(|(_, v)| !matches!(v, Err(Unfit::NoModel)))
    {
        return Some(format!("no connected worker of class {class} can run it"));
    }
    if let Some(remote) = &job.remote {
        let declared = verdicts
            .iter()
            .filter_map(|(w, v)| match v {
                Err(Unfit::NoKey(var)) => Some((w, var)),
                _ => None,
            })
            .next();
        return Some(match declared {
            Some((w, var)) => format!(
                "no connected worker that may call {model_name} has {var} set (e.g. {})",
                w.worker_id
            ),
            None => format!(
                "no connected worker may call remote model {model_name} (worker join --remote {model_name}{})",
                remote
                    .key_env
                    .as_ref()
                    .map_or(String::new(), |v| format!(", with {v} set"))
            ),
        });
    }
    if job.scripted {
        return Some("no connected worker meets the run's requirements".into());
    }
    let most_room = verdicts
        .iter()
        .filter_map(|(w, v)| match v {
            Err(Unfit::CacheFull { room, .. }) => Some((*room, w.worker_id.as_str())),
            _ => None,
        })
        .max();
    match (job.fetch_bytes, most_room) {
        (Some(need), Some((room, on))) if room > 0 => Some(format!(
            "no connected worker has {model_name}, and none has {} free in its model cache to \
             fetch it (most: {} on {on})",
            gb(need),
            gb(room)
        )),
        (Some(_), _) => Some(format!(
            "no connected worker has {model_name}, and none has a model cache to fetch it into"
        )),
        (None, _) => Some(format!(
            "no connected worker has the model (sha256 {}); register it on the coordinator \
             (coordinator models add) and workers fetch it",
            short_sha(&job.model)
        )),
    }
}

fn gb(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

fn describe(r: &crate::records::Requirements) -> String {
    let mut parts: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if let Some(arch) = &r.arch {
        parts.push(format!("arch {arch}"));
    }
    if r.min_ram_bytes > 0 {
        parts.push(format!("at least {} RAM", gb(r.min_ram_bytes)));
    }
    parts.join(", ")
}

fn short_sha(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobState;
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
                max_tokens: 64,
            }],
            throughput: Vec::new(),
            repetitions: 2,
            adaptive: None,
            model_repetitions: Vec::new(),
            stop_reasons: Vec::new(),
            seed: 0,
            placement: Default::default(),
            require: Default::default(),
            jobs_total: 4,
            state: RunState::Running,
            finished_unix_ms: None,
            suite_history: vec![],
            counts: None,
            trace_parent: String::new(),
        }
    }

    fn pending(job: &JobRecord, run: &RunRecord, size: u64) -> PendingJob {
        let model = &run.models[job.model_index as usize];
        PendingJob {
            job_id: job.id.clone(),
            run_id: run.id.clone(),
            model: model.sha256.clone(),
            scripted: false,
            memory_bytes: crate::scheduler::placement::memory_needed(size, false),
            pin: None,
            require: run.require.clone(),
            avoid: vec![],
            work_tokens: 10.0,
            fetch_bytes: None,
            remote: None,
        }
    }

    fn worker(id: &str, models: &[&str], ram: u64) -> WorkerView {
        WorkerView {
            worker_id: id.into(),
            class: "c".into(),
            free_slots: 0,
            models: models.iter().map(|m| m.to_string()).collect::<HashSet<_>>(),
            loaded: None,
            labels: Default::default(),
            arch: "x86_64".into(),
            ram_total_bytes: ram,
            ram_available_bytes: ram,
            speed: 1.0,
            load_seconds: 0.0,
            slots: 1,
            held: 0,
            busy_for: 0.0,
            accepting: true,
            cache_room_bytes: 0,
            transfer_rate: 1e6,
            remotes: vec![],
            key_envs: Default::default(),
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

        let workers = [worker("w1", &["bbbbbbbbbbbbbbbb"], 8_000_000_000)];
        let queued = jobs.iter().filter(|j| j.state == JobState::Queued);
        assert_eq!(
            waiting_reasons(
                &r,
                queued,
                |j| Some(pending(j, &r, 1_000_000_000)),
                &workers
            ),
            vec![
                "waiting: 1 job of big: no connected worker has the model (sha256 aaaaaaaaaaaa); \
                 register it on the coordinator (coordinator models add) and workers fetch it"
                    .to_string(),
                "queued: 2 jobs of small: waiting for a free slot".to_string(),
            ]
        );
    }

    #[test]
    fn memory_requirements_and_draining_are_explained() {
        let r = run();
        let jobs = crate::run::expand(&r);
        let big = pending(&jobs[0], &r, 4_000_000_000);
        let small_board = [worker("pi", &["aaaaaaaaaaaaaaaa"], 1_000_000_000)];
        assert_eq!(
            why_unplaceable(&big, "big", &small_board).unwrap(),
            "no worker has 4.5 GB free for big (most: 1.0 GB on pi)"
        );
        let mut draining = worker("laptop", &["aaaaaaaaaaaaaaaa"], 32_000_000_000);
        draining.accepting = false;
        assert_eq!(
            why_unplaceable(&big, "big", &[draining]).unwrap(),
            "every worker that could run it is draining or quarantined"
        );
        let mut lab_only = big.clone();
        lab_only.require.labels.insert("site".into(), "lab".into());
        assert_eq!(
            why_unplaceable(
                &lab_only,
                "big",
                &[worker("home", &["aaaaaaaaaaaaaaaa"], 32_000_000_000)]
            )
            .unwrap(),
            "no connected worker meets the run's requirements (site=lab)"
        );
        assert_eq!(
            why_unplaceable(&big, "big", &[]).unwrap(),
            "no worker is connected"
        );
    }
}
