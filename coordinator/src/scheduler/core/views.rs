//! What placement sees: queued jobs as [`PendingJob`]s and workers as [`WorkerView`]s, built from
//! the scheduler's state with the rules in [`estimates`] (learned speeds and load times, expected
//! answer lengths, `busy_for`), and the per-job timeouts derived from the same speeds. A job's
//! model is fetchable when the catalog has it; a worker's models are its directory's, its cache's
//! and those it was sent to fetch, and its cache room is what its last report left less those.

use std::time::Duration;

use super::super::estimates;
use std::collections::HashMap;

use super::super::placement::{PendingJob, RemoteNeed, WorkerView, memory_needed};
use super::{Scheduler, Worker};
use crate::job::JobState;
use crate::records::{AttemptEnd, JobRecord, RunModel, RunRecord};

/// A job of `model` in `run` as placement sees it, before it has an id, a pin or a history: what
/// capability checks need (submit asks it of every model; [`Scheduler::pending_job`] fills in the
/// rest).
pub(super) fn model_job(run: &RunRecord, model: &RunModel, fetch_bytes: Option<u64>) -> PendingJob {
    PendingJob {
        job_id: String::new(),
        run_id: run.id.clone(),
        model: model.sha256.clone(),
        scripted: model.is_scripted(),
        memory_bytes: memory_needed(model.size_bytes, model.is_scripted()),
        pin: None,
        require: run.require.clone(),
        avoid: Vec::new(),
        work_tokens: 1.0,
        fetch_bytes,
        remote: model.remote().map(|r| RemoteNeed {
            name: model.name.clone(),
            url: r.url.clone(),
            key_env: r.api_key_env.clone(),
            concurrency_left: r.max_concurrency,
        }),
    }
}

impl Scheduler {
    /// The size of `model` when workers may fetch it from this coordinator.
    pub(super) fn fetch_bytes(&self, model: &RunModel) -> Option<u64> {
        if model.is_scripted() {
            return None;
        }
        self.config.catalog.fetchable(&model.sha256)
    }

    /// The transfer rate placement assumes for `worker`: measured, else the configured estimate.
    fn transfer_rate_of(&self, worker: &Worker) -> f64 {
        match worker.cache.transfer_bytes_per_second {
            r if r.is_finite() && r > 0.0 => r,
            _ => self.config.assumed_transfer_rate,
        }
    }

    /// The farm's medians, for workers not measured yet (see [`estimates::Fallbacks`]).
    pub(super) fn fallbacks(&self) -> estimates::Fallbacks {
        estimates::Fallbacks::new(
            self.workers.values().filter_map(|w| w.speed),
            self.workers
                .values()
                .filter_map(|w| Some((w.load_seconds?, w.speed?))),
        )
    }

    /// Folds one finished job into the worker's speed and load time and the model's expected job
    /// size.
    pub(super) fn learn(&mut self, worker_id: &str, model: &str, t: &crate::records::Timings) {
        if let Some(w) = self.workers.get_mut(worker_id)
            && t.cold
            && t.load_ms > 0.0
            && t.load_ms.is_finite()
        {
            w.load_seconds = Some(estimates::smoothed(w.load_seconds, t.load_ms / 1000.0));
        }
        let (gen_tokens, gen_ms) = (t.gen_tokens, t.gen_ms);
        if gen_tokens == 0 || gen_ms <= 0.0 || !gen_ms.is_finite() {
            return;
        }
        let sample = f64::from(gen_tokens) / (gen_ms / 1000.0);
        if let Some(w) = self.workers.get_mut(worker_id) {
            w.speed = Some(estimates::smoothed(w.speed, sample));
        }
        let entry = self
            .model_tokens
            .entry(model.to_string())
            .or_insert((0.0, 0));
        entry.0 += f64::from(gen_tokens);
        entry.1 += 1;
    }

    /// Expected generated tokens of a job of `model` with token limit `max_tokens`.
    fn expected_tokens(&self, model: &str, max_tokens: u32) -> f64 {
        estimates::expected_tokens(
            self.model_tokens.get(model).copied(),
            self.model_tokens.values().copied(),
            max_tokens,
        )
    }

    /// The tokens `job` is expected to take (what placement divides by a worker's speed); `None`
    /// when its run or model is gone.
    fn work_tokens(&self, job: &JobRecord) -> Option<f64> {
        let run = self.runs.get(&job.run_id)?;
        let model = run.models.get(job.model_index as usize)?;
        Some(self.expected_tokens(&model.sha256, run.job_tokens(job)))
    }

    /// A queued job as placement sees it; `None` when its run or model is gone.
    pub(super) fn pending_job(&self, job: &JobRecord) -> Option<PendingJob> {
        let run = self.runs.get(&job.run_id)?;
        let model = run.models.get(job.model_index as usize)?;
        let max_tokens = run.job_tokens(job);
        Some(PendingJob {
            job_id: job.id.clone(),
            pin: job.pin.clone(),
            avoid: job
                .attempts
                .iter()
                .filter(|a| matches!(a.end, Some(AttemptEnd::Failed(_) | AttemptEnd::Lost(_))))
                .map(|a| a.worker_id.clone())
                .collect(),
            work_tokens: self.expected_tokens(&model.sha256, max_tokens),
            ..model_job(run, model, self.fetch_bytes(model))
        })
    }

    /// The first `limit` queued jobs, in queue order; a remote model's jobs carry how many more
    /// of its requests may start (its `max_concurrency` less the jobs of it workers hold).
    pub(super) fn pending_jobs(&self, limit: usize) -> Vec<PendingJob> {
        let in_flight = self.remote_in_flight();
        self.index
            .queued
            .iter()
            .filter_map(|id| self.jobs.get(id))
            .filter_map(|j| self.pending_job(j))
            .map(|mut j| {
                if let Some(r) = &mut j.remote {
                    let held = in_flight.get(&j.model).copied().unwrap_or(0);
                    r.concurrency_left = r.concurrency_left.saturating_sub(held);
                }
                j
            })
            .take(limit)
            .collect()
    }

    /// Jobs of each remote model (by its sha256) that workers hold now: assigned, waiting on the
    /// worker or running.
    fn remote_in_flight(&self) -> HashMap<String, u32> {
        let mut counts: HashMap<String, u32> = HashMap::new();
        // Without a remote model in a live run there is nothing to count, and walking every held
        // job (a job lookup each) on every step was a cost that grew with the farm.
        let any_remote = self
            .runs
            .values()
            .any(|run| run.models.iter().any(|m| m.remote().is_some()));
        if !any_remote {
            return counts;
        }
        for held in self.index.held.values() {
            for (job_id, _) in held {
                if let Some(model) = self.model_of_job(job_id)
                    && model.remote().is_some()
                {
                    *counts.entry(model.sha256.clone()).or_default() += 1;
                }
            }
        }
        counts
    }

    /// The model a job runs, when its run is live.
    pub(super) fn model_of_job(&self, job_id: &str) -> Option<&RunModel> {
        let job = self.jobs.get(job_id)?;
        self.runs
            .get(&job.run_id)?
            .models
            .get(job.model_index as usize)
    }

    /// The time limit of a remote job: every request it may make at its full timeout, plus the
    /// backoff between them, within the cap.
    pub(super) fn remote_job_timeout(&self, remote: &crate::records::RemoteSpec) -> Duration {
        let requests = f64::from(remote.retries) + 1.0;
        let backoff = f64::from(remote.retries) * 30.0;
        Duration::from_secs_f64(requests * f64::from(remote.timeout_ms) / 1000.0 + backoff + 5.0)
            .min(self.config.job_timeout)
    }

    /// Every connected worker as placement sees it.
    pub(super) fn worker_views(&self) -> Vec<WorkerView> {
        let now = self.now();
        let fallbacks = self.fallbacks();
        self.workers
            .values()
            .filter(|w| w.conn.is_some())
            .map(|w| {
                let held: Vec<&JobRecord> = self
                    .index
                    .held_iter(&w.record.id)
                    .filter_map(|(id, _)| self.jobs.get(id))
                    .collect();
                let speed = fallbacks.speed(w.speed);
                let slots = w.record.slots.max(1);
                // Up to `prefetch` jobs wait on the worker beyond its slots, so the next job is
                // there when one ends instead of a round trip later; not behind a job that failed
                // (the next one would likely fail too, and quarantine must stop at its threshold).
                let prefetch = if w.failures_in_a_row == 0 {
                    self.config.prefetch
                } else {
                    0
                };
                // However many slots it claims, a worker holds at most the in-flight limit.
                let free_slots = slots
                    .saturating_add(prefetch)
                    .min(self.config.limits.worker_in_flight)
                    .saturating_sub(u32::try_from(held.len()).unwrap_or(u32::MAX));
                // The jobs it holds, each whole and, when running, how long since it started.
                let ahead = held.iter().filter_map(|j| {
                    let whole = self.work_tokens(j)? / speed;
                    let running_for = match (&j.state, j.attempts.last()) {
                        (JobState::Running { .. }, Some(a)) => {
                            let started = a.started_unix_ms.unwrap_or(a.assigned_unix_ms);
                            Some((now - started) as f64 / 1000.0)
                        }
                        _ => None,
                    };
                    Some((whole, running_for))
                });
                let busy_for = estimates::busy_for(
                    u32::try_from(held.len()).unwrap_or(u32::MAX),
                    slots,
                    ahead,
                );
                let hw = &w.record.hardware;
                let cap = |bytes: u64| match hw.cgroup_memory_limit_bytes {
                    None => bytes,
                    Some(limit) => bytes.min(limit),
                };
                WorkerView {
                    worker_id: w.record.id.clone(),
                    class: w.record.hardware_class.clone(),
                    free_slots,
                    models: w
                        .record
                        .models
                        .iter()
                        .chain(&w.cache.models)
                        .map(|m| m.sha256.clone())
                        .chain(w.incoming.keys().cloned())
                        .collect(),
                    loaded: w.loaded.clone(),
                    labels: w.record.labels.clone(),
                    arch: hw.arch.clone(),
                    ram_total_bytes: cap(hw.ram_total_bytes),
                    ram_available_bytes: cap(hw.ram_available_bytes),
                    speed,
                    load_seconds: fallbacks.load_seconds(w.load_seconds, speed),
                    slots,
                    held: u32::try_from(held.len()).unwrap_or(u32::MAX),
                    busy_for,
                    accepting: w.accepting(),
                    cache_room_bytes: w
                        .cache
                        .room()
                        .saturating_sub(w.incoming.values().map(|(bytes, _)| *bytes).sum()),
                    transfer_rate: self.transfer_rate_of(w),
                    remotes: w.record.remotes.clone(),
                    key_envs: w.record.remote_key_envs.iter().cloned().collect(),
                }
            })
            .collect()
    }

    /// The time limit of a job with token limit `max_tokens` on `worker_id`: four times what its
    /// measured speed needs for the whole limit, plus the model load, within [floor, cap]. Before
    /// the worker is measured it gets the cap.
    pub(super) fn job_timeout(
        &self,
        worker_id: &str,
        max_tokens: u32,
        model_size_bytes: u64,
    ) -> Duration {
        let cap = self.config.job_timeout;
        let floor = self.config.job_timeout_floor.min(cap);
        let Some(speed) = self.workers.get(worker_id).and_then(|w| w.speed) else {
            return cap;
        };
        // Loading reads the file: allow a slow SD card's 20 MB/s.
        let load = model_size_bytes as f64 / 20e6;
        let needed = 4.0 * f64::from(max_tokens) / speed.max(0.1) + load;
        Duration::from_secs_f64(needed).clamp(floor, cap)
    }
}
