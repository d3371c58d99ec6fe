//! Placement: which queued job goes to which worker. A pure function of the queue and the workers.
//!
//! Rules, in order of importance:
//! 1. capability ([`fit`]): a job goes only to a worker that has its model (by sha256; any worker
//!    runs a scripted model; a remote model's job only to a worker that declared it may call the
//!    endpoint and has its API-key variable set) or can fetch it (the coordinator has it registered
//!    and the worker's cache has room for it), has the memory to load it, matches the run's
//!    requirements and the job's pin (`every-worker` / `per-class` runs), and accepts work (not
//!    draining or quarantined); a job is placed at most once per call, never past a worker's free
//!    slots, a remote model never past its requests in flight (`max_concurrency`), and the models a
//!    worker is sent to fetch in one call fit its cache together;
//! 2. a retried job avoids the workers where it already failed, when another capable worker exists;
//! 3. runs share the farm round-robin, so a small run submitted behind a big one is not starved;
//! 4. a worker prefers jobs of the model it has loaded (loading a model on a board costs more than a
//!    job), and the queue is model-major, so a worker's jobs stay grouped by model;
//! 5. speed: faster workers choose first, and near the end of the queue a slow worker leaves a job to
//!    a faster one that would finish it sooner, even after the job it is running now (the tail is
//!    what makes a heterogeneous farm's makespan long);
//! 6. transfers: a worker that would have to fetch a job's model leaves the job to the workers that
//!    hold it when one of them has a free slot, or when they would get through the model's queued
//!    work before the fetch (bytes ÷ the worker's measured rate) and the job would be done here.
//!    Fetch time counts wherever a model load does.
//!
//! Kept free of I/O and clocks (as quickwit does for its scheduler) so its invariants are tested with
//! proptest; the scheduler calls [`place`] after every change and sends what it returns.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::records::{Pin, Requirements};
use classes::Classes;

/// Memory a model needs beyond its file size: llama.cpp's compute buffers and the KV cache of a
/// benchmark job's short context. Deliberately generous: an OOM kill costs more than a wait.
pub const MEMORY_OVERHEAD_BYTES: u64 = 64 << 20;

/// The memory a model of `size_bytes` needs to load and run one job (0 for scripted models).
pub fn memory_needed(size_bytes: u64, scripted: bool) -> u64 {
    if scripted {
        0
    } else {
        // Saturating: the size is the client's word, and u64::MAX must not panic a debug build.
        size_bytes
            .saturating_add(size_bytes / 10)
            .saturating_add(MEMORY_OVERHEAD_BYTES)
    }
}

/// A queued job as placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingJob {
    pub job_id: String,
    pub run_id: String,
    /// The model's sha256 (for scripted models too: a digest of their text).
    pub model: String,
    pub scripted: bool,
    /// Memory needed on the worker, from [`memory_needed`].
    pub memory_bytes: u64,
    pub pin: Option<Pin>,
    pub require: Requirements,
    /// Workers where an earlier attempt of this job failed or was lost.
    pub avoid: Vec<String>,
    /// Expected generated tokens: the job's size, for speed decisions.
    pub work_tokens: f64,
    /// The model's size when the coordinator can send it (registered), so a worker without it
    /// may fetch it; `None`: only workers that have it can run the job.
    pub fetch_bytes: Option<u64>,
    /// A remote model's job: who may call the endpoint, and how many more of its requests may
    /// start now. Its work runs on the endpoint, so the worker's speed and loaded model do not
    /// apply.
    pub remote: Option<RemoteNeed>,
}

/// What a remote model's job needs of a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteNeed {
    /// The model's name in the plan and its endpoint URL: a worker's `--remote` declaration
    /// matches either (the URL by prefix, at a path boundary).
    pub name: String,
    pub url: String,
    /// The API-key variable the worker must have set, if the endpoint needs a key.
    pub key_env: Option<String>,
    /// `max_concurrency` less the model's jobs workers hold now, across the farm.
    pub concurrency_left: u32,
}

/// Whether a worker's `--remote` declaration `pattern` covers the endpoint: the model's name, or
/// a prefix of its URL ending at a path boundary, so `https://api.example.com` never covers
/// `https://api.example.com.attacker.net` (the worker would send that host its key).
pub fn may_call(pattern: &str, remote: &RemoteNeed) -> bool {
    if pattern == remote.name {
        return true;
    }
    if !pattern.contains("://") {
        return false;
    }
    match remote.url.strip_prefix(pattern) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || pattern.ends_with('/'),
        None => false,
    }
}

/// A connected worker as placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerView {
    pub worker_id: String,
    pub class: String,
    pub free_slots: u32,
    /// sha256 of every GGUF it has.
    pub models: HashSet<String>,
    /// The model its engine has loaded (the last one it ran), if any.
    pub loaded: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub arch: String,
    /// Total RAM it may use (cgroup limit counted).
    pub ram_total_bytes: u64,
    /// RAM free for a model now.
    pub ram_available_bytes: u64,
    /// Measured tokens per second (an estimate for workers without history).
    pub speed: f64,
    /// Seconds it needs to load a model it has not loaded (an estimate).
    pub load_seconds: f64,
    /// Jobs it runs at once, and jobs it holds now (running or waiting on it).
    pub slots: u32,
    pub held: u32,
    /// Seconds until one of its busy slots frees up (0 when it has a free slot).
    pub busy_for: f64,
    /// False while draining or quarantined.
    pub accepting: bool,
    /// Bytes its model cache could take now (its limit less what is in use or on the way); 0 for
    /// a worker without a cache.
    pub cache_room_bytes: u64,
    /// Bytes per second a fetch reaches it at (measured, else an estimate).
    pub transfer_rate: f64,
    /// Its `--remote` declarations (model names or URL prefixes).
    pub remotes: Vec<String>,
    /// The API-key variables set in its environment (names only).
    pub key_envs: BTreeSet<String>,
}

/// Why a worker cannot run a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    NotAccepting,
    Pinned,
    Labels,
    Arch,
    MinRam,
    NoModel,
    /// It lacks the model, which the coordinator could send, but its cache cannot take it.
    CacheFull {
        need: u64,
        room: u64,
    },
    /// A remote model the worker did not declare (`worker join --remote`).
    NoRemote,
    /// A remote model whose API-key variable is not set on the worker.
    NoKey(String),
    Memory {
        need: u64,
        have: u64,
    },
}

/// Whether `worker` can run `job` at all (slots aside).
pub fn fit(job: &PendingJob, worker: &WorkerView) -> Result<(), Unfit> {
    if !worker.accepting {
        return Err(Unfit::NotAccepting);
    }
    match &job.pin {
        Some(Pin::Worker(id)) if id != &worker.worker_id => return Err(Unfit::Pinned),
        Some(Pin::Class(class)) if class != &worker.class => return Err(Unfit::Pinned),
        _ => {}
    }
    requirements_met(&job.require, worker)?;
    if let Some(remote) = &job.remote {
        if !worker.remotes.iter().any(|p| may_call(p, remote)) {
            return Err(Unfit::NoRemote);
        }
        if let Some(var) = &remote.key_env
            && !worker.key_envs.contains(var)
        {
            return Err(Unfit::NoKey(var.clone()));
        }
    } else if needs_fetch(job, worker) {
        match job.fetch_bytes {
            None => return Err(Unfit::NoModel),
            Some(need) if need > worker.cache_room_bytes => {
                return Err(Unfit::CacheFull {
                    need,
                    room: worker.cache_room_bytes,
                });
            }
            Some(_) => {}
        }
    }
    if job.memory_bytes > worker.ram_available_bytes {
        return Err(Unfit::Memory {
            need: job.memory_bytes,
            have: worker.ram_available_bytes,
        });
    }
    Ok(())
}

/// Whether `worker` would have to fetch `job`'s model before running it (never a scripted or
/// remote model: those have no file).
pub fn needs_fetch(job: &PendingJob, worker: &WorkerView) -> bool {
    !job.scripted && job.remote.is_none() && !worker.models.contains(&job.model)
}

/// Seconds `worker` needs to fetch `job`'s model (0 when it has it).
pub fn fetch_seconds(job: &PendingJob, worker: &WorkerView) -> f64 {
    match job.fetch_bytes {
        Some(bytes) if needs_fetch(job, worker) => bytes as f64 / worker.transfer_rate.max(1.0),
        _ => 0.0,
    }
}

/// Whether a worker meets a run's requirements (labels, architecture, minimum RAM).
pub fn requirements_met(require: &Requirements, worker: &WorkerView) -> Result<(), Unfit> {
    if require
        .labels
        .iter()
        .any(|(k, v)| worker.labels.get(k) != Some(v))
    {
        return Err(Unfit::Labels);
    }
    if require.arch.as_ref().is_some_and(|a| a != &worker.arch) {
        return Err(Unfit::Arch);
    }
    if worker.ram_total_bytes < require.min_ram_bytes {
        return Err(Unfit::MinRam);
    }
    Ok(())
}

/// One decision: send `job_id` to `worker_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub job_id: String,
    pub worker_id: String,
}

/// Places as many queued jobs as the workers' free slots allow.
///
/// `queue` is in priority order within each run (the scheduler keeps it in run submission order and
/// then expansion order); runs take turns in the order they first appear.
pub fn place(queue: &[PendingJob], workers: &[WorkerView]) -> Vec<Placement> {
    place_views(queue, workers.to_vec())
}

/// [`place`] on views the caller hands over: placement changes its copies of the workers (slots
/// taken, models loaded) as it decides, and the scheduler builds fresh views for every step, so
/// it gives them up rather than have them copied (at 1,000 workers the copy of every view, models
/// and labels included, was a step's largest allocation).
pub fn place_views(queue: &[PendingJob], workers: Vec<WorkerView>) -> Vec<Placement> {
    place_sharing(queue, workers, Classes::RECENT)
}

/// [`place_views`] asking of every job on its own: what sharing by class must decide alike.
#[cfg(test)]
fn place_unshared(queue: &[PendingJob], workers: &[WorkerView]) -> Vec<Placement> {
    place_sharing(queue, workers.to_vec(), 0)
}

/// Placement, with each job compared with the last `recent` classes for sharing (see [`Classes`]).
fn place_sharing(
    queue: &[PendingJob],
    mut workers: Vec<WorkerView>,
    recent: usize,
) -> Vec<Placement> {
    let mut run_order: Vec<&str> = Vec::new();
    let mut per_run: BTreeMap<&str, Vec<Slotted>> = BTreeMap::new();
    // A job is taken by id: each id gets one slot (its first position), so a job listed twice is
    // still placed once, and "taken?" is an index, not a string comparison per queued job per
    // pick (with run-prefixed ids, the comparisons were a quarter of the coordinator's CPU at
    // 100 workers; docs/benchmarks.md).
    let mut slot_of: HashMap<&str, usize> = HashMap::with_capacity(queue.len());
    let mut classes = Classes::comparing(recent);
    for (position, job) in queue.iter().enumerate() {
        let slot = *slot_of.entry(job.job_id.as_str()).or_insert(position);
        let class = classes.of(job);
        let entry = per_run.entry(job.run_id.as_str()).or_default();
        if entry.is_empty() {
            run_order.push(job.run_id.as_str());
        }
        entry.push(Slotted { slot, class, job });
    }
    let mut taken = vec![false; queue.len()];
    // Remote requests started in this call, per model, against each one's `concurrency_left`.
    let mut remote_started: HashMap<String, u32> = HashMap::new();
    let mut placements = Vec::new();
    let mut next_run = 0usize;

    // Fastest first, then by id so the result does not depend on input order.
    workers.sort_by(|a, b| {
        b.speed
            .total_cmp(&a.speed)
            .then_with(|| a.worker_id.cmp(&b.worker_id))
    });
    // Speed of the workers on each model (loaded, or about to be): spreads workers over models.
    let mut coverage: HashMap<String, f64> = HashMap::new();
    for w in &workers {
        if let Some(m) = &w.loaded {
            *coverage.entry(m.clone()).or_default() += w.speed;
        }
    }

    // One job per worker per round, so slots fill evenly across workers.
    loop {
        let mut placed_this_round = false;
        for i in 0..workers.len() {
            if workers[i].free_slots == 0 {
                continue;
            }
            let pick = Picker {
                classes: classes.count(),
                run_order: &run_order,
                per_run: &per_run,
                taken: &taken,
                all: &workers,
                coverage: &coverage,
                remote_started: &remote_started,
            };
            let Some(Slotted { slot, job, .. }) = pick.next(&workers[i], &mut next_run) else {
                continue;
            };
            let worker = &mut workers[i];
            taken[slot] = true;
            worker.free_slots -= 1;
            if job.remote.is_some() {
                // The endpoint does the work: the worker loads nothing and its speed is not
                // the job's, so only the slot and the model's concurrency are used up.
                *remote_started.entry(job.model.clone()).or_default() += 1;
                worker.held += 1;
                placements.push(Placement {
                    job_id: job.job_id.clone(),
                    worker_id: worker.worker_id.clone(),
                });
                placed_this_round = true;
                continue;
            }
            // What this job adds to the worker's queue, for the decisions later in this call: once
            // every slot is taken (this job may take the last one), the next job waits for one to
            // free up. A fetch is part of the switch, and once sent for, the model is the
            // worker's (its next job of it fetches nothing) and takes its room in the cache.
            let fetch = fetch_seconds(job, worker);
            if needs_fetch(job, worker) {
                worker.cache_room_bytes = worker
                    .cache_room_bytes
                    .saturating_sub(job.fetch_bytes.unwrap_or(0));
                worker.models.insert(job.model.clone());
            }
            let switch = fetch
                + if worker.loaded.as_deref() == Some(job.model.as_str()) {
                    0.0
                } else {
                    worker.load_seconds
                };
            worker.held += 1;
            if worker.held >= worker.slots.max(1) {
                worker.busy_for += (switch + job.work_tokens / worker.speed.max(1e-9))
                    / f64::from(worker.slots.max(1));
            }
            if worker.loaded.as_deref() != Some(job.model.as_str()) {
                if let Some(old) = &worker.loaded {
                    *coverage.entry(old.clone()).or_default() -= worker.speed;
                }
                *coverage.entry(job.model.clone()).or_default() += worker.speed;
            }
            worker.loaded = Some(job.model.clone());
            placements.push(Placement {
                job_id: job.job_id.clone(),
                worker_id: worker.worker_id.clone(),
            });
            placed_this_round = true;
        }
        if !placed_this_round {
            return placements;
        }
    }
}

/// A queued job, the slot that says whether it is taken, and its [`Classes`] class.
#[derive(Clone, Copy)]
struct Slotted<'q> {
    slot: usize,
    class: usize,
    job: &'q PendingJob,
}

/// The state one pick reads: `'q` is the queue's lifetime, `'a` this round's borrows.
struct Picker<'q, 'a> {
    /// How many [`Classes`] the queue has.
    classes: usize,
    run_order: &'a [&'q str],
    per_run: &'a BTreeMap<&'q str, Vec<Slotted<'q>>>,
    taken: &'a [bool],
    all: &'a [WorkerView],
    coverage: &'a HashMap<String, f64>,
    remote_started: &'a HashMap<String, u32>,
}

impl<'q> Picker<'q, '_> {
    /// The next job for `worker`: runs in turn starting at `next_run`; in a run, a job of the loaded
    /// model first, else one of the model whose remaining work is least covered by workers.
    fn next(&self, worker: &WorkerView, next_run: &mut usize) -> Option<Slotted<'q>> {
        for offset in 0..self.run_order.len() {
            let run_index = (*next_run + offset) % self.run_order.len();
            let jobs = self.per_run.get(self.run_order[run_index])?;
            // Asked once per class of job for this worker (see `Classes`).
            let mut may: Vec<Option<bool>> = vec![None; self.classes];
            let capable: Vec<Slotted<'q>> = jobs
                .iter()
                .copied()
                .filter(|j| {
                    !self.taken[j.slot]
                        && *may[j.class].get_or_insert_with(|| self.may_take(j.job, worker))
                })
                .collect();
            let mut leave: Vec<Option<bool>> = vec![None; self.classes];
            let allowed: Vec<Slotted<'q>> = capable
                .iter()
                .copied()
                .filter(|j| {
                    !*leave[j.class]
                        .get_or_insert_with(|| self.leave_to_holders(j.job, worker, &capable))
                })
                .collect();
            let same_model = worker
                .loaded
                .as_ref()
                .and_then(|m| allowed.iter().find(|j| &j.job.model == m));
            let Some(pick) = same_model
                .copied()
                .or_else(|| self.least_covered(&allowed, worker))
            else {
                continue;
            };
            if self.leave_to_faster(pick.job, worker, &allowed) {
                continue;
            }
            *next_run = run_index + 1;
            return Some(pick);
        }
        None
    }

    /// The first job of the model that would take longest to finish with the workers already on it
    /// plus this one: so workers spread over models and each loads as few models as it can.
    fn least_covered(&self, allowed: &[Slotted<'q>], worker: &WorkerView) -> Option<Slotted<'q>> {
        let mut per_model: Vec<(&str, f64, Slotted<'q>)> = Vec::new();
        for &pick in allowed {
            let job = pick.job;
            match per_model.iter_mut().find(|(m, _, _)| *m == job.model) {
                Some(entry) => entry.1 += job.work_tokens,
                None => per_model.push((job.model.as_str(), job.work_tokens, pick)),
            }
        }
        let time_left = |(model, work, _): &(&str, f64, Slotted)| {
            work / (self.coverage.get(*model).copied().unwrap_or(0.0).max(0.0)
                + worker.speed.max(1e-9))
        };
        // Ties go to queue order (max_by keeps the last maximum, so compare on reversed order).
        per_model
            .iter()
            .enumerate()
            .max_by(|(ia, a), (ib, b)| time_left(a).total_cmp(&time_left(b)).then(ib.cmp(ia)))
            .map(|(_, (_, _, pick))| *pick)
    }

    /// Capable, within its remote model's concurrency, and not a worker this job failed on while
    /// another capable worker exists.
    fn may_take(&self, job: &PendingJob, worker: &WorkerView) -> bool {
        if fit(job, worker).is_err() {
            return false;
        }
        if let Some(remote) = &job.remote
            && self.remote_started.get(&job.model).copied().unwrap_or(0) >= remote.concurrency_left
        {
            return false;
        }
        if job.avoid.contains(&worker.worker_id) {
            let elsewhere = self
                .all
                .iter()
                .any(|w| !job.avoid.contains(&w.worker_id) && fit(job, w).is_ok());
            return !elsewhere;
        }
        true
    }

    /// At the tail of the queue, a slow worker leaves a job to the faster workers when they would
    /// get through everything still queued for it (this job included) before the slow worker would
    /// finish this one job: the tail is what makes a heterogeneous farm's makespan long. Model loads
    /// count on both sides.
    fn leave_to_faster(&self, job: &PendingJob, worker: &WorkerView, allowed: &[Slotted]) -> bool {
        if job.remote.is_some() {
            // The endpoint's speed is the same whichever worker calls it.
            return false;
        }
        let switch = |w: &WorkerView| {
            fetch_seconds(job, w)
                + if w.loaded.as_deref() == Some(job.model.as_str()) {
                    0.0
                } else {
                    w.load_seconds
                }
        };
        let own_finish =
            worker.busy_for + switch(worker) + job.work_tokens / worker.speed.max(1e-9);
        let faster: Vec<&WorkerView> = self
            .all
            .iter()
            .filter(|w| {
                // may_take, not fit: a faster worker this job avoids would leave it to us in turn.
                w.worker_id != worker.worker_id
                    && w.speed > worker.speed * 1.25
                    && self.may_take(job, w)
            })
            .collect();
        if faster.is_empty() {
            return false;
        }
        let remaining: f64 = allowed.iter().map(|j| j.job.work_tokens).sum();
        let speed: f64 = faster.iter().map(|w| w.speed.max(1e-9)).sum();
        let start = faster
            .iter()
            .map(|w| w.busy_for + switch(w))
            .fold(f64::INFINITY, f64::min);
        own_finish > start + remaining / speed
    }

    /// Rule 6: a worker that lacks `job`'s model leaves the job to the workers that hold it (and may
    /// take it) when one of them has a free slot now, or when together they would get through the
    /// model's remaining jobs (`capable` is this worker's queue) before this worker had fetched the
    /// model and run this one.
    fn leave_to_holders(&self, job: &PendingJob, worker: &WorkerView, capable: &[Slotted]) -> bool {
        if !needs_fetch(job, worker) {
            return false;
        }
        let holders: Vec<&WorkerView> = self
            .all
            .iter()
            .filter(|w| {
                w.worker_id != worker.worker_id && !needs_fetch(job, w) && self.may_take(job, w)
            })
            .collect();
        if holders.is_empty() {
            return false;
        }
        if holders.iter().any(|w| w.free_slots > 0) {
            return true;
        }
        let load = |w: &WorkerView| {
            if w.loaded.as_deref() == Some(job.model.as_str()) {
                0.0
            } else {
                w.load_seconds
            }
        };
        let own_finish = worker.busy_for
            + fetch_seconds(job, worker)
            + load(worker)
            + job.work_tokens / worker.speed.max(1e-9);
        let remaining: f64 = capable
            .iter()
            .filter(|j| j.job.model == job.model)
            .map(|j| j.job.work_tokens)
            .sum();
        let speed: f64 = holders.iter().map(|w| w.speed.max(1e-9)).sum();
        let start = holders
            .iter()
            .map(|w| w.busy_for + load(w))
            .fold(f64::INFINITY, f64::min);
        own_finish > start + remaining / speed
    }
}

mod classes;
#[cfg(test)]
mod tests;
