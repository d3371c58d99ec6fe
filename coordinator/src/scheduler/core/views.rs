//! What placement sees: queued jobs as [`PendingJob`]s and workers as [`WorkerView`]s, with the
//! estimates that feed speed-aware placement and per-job timeouts.
//!
//! Speed is learned: each worker's generated tokens per second, as a moving average over its jobs.
//! A worker without history is assumed to be as fast as the median measured worker (or a nominal
//! 100 tokens/s before anyone has measured anything), so a new worker is neither starved nor trusted
//! with the tail of a run.

use std::time::Duration;

use super::super::placement::{PendingJob, WorkerView, memory_needed};
use super::{Scheduler, Worker};
use crate::job::JobState;
use crate::records::{AttemptEnd, JobRecord, RunModel, RunRecord, now_ms};

/// Tokens per second assumed before any worker has been measured.
const NOMINAL_SPEED: f64 = 100.0;
/// Weight of the newest job in a worker's speed average.
const SPEED_SMOOTHING: f64 = 0.3;

/// A job of `model` in `run` as placement sees it, before it has an id, a pin or a history: what
/// capability checks need (submit asks it of every model; [`Scheduler::pending_job`] fills in the
/// rest).
pub(super) fn model_job(run: &RunRecord, model: &RunModel) -> PendingJob {
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
    }
}

impl Scheduler {
    /// The speed placement assumes for `worker`.
    pub(super) fn speed_of(&self, worker: &Worker) -> f64 {
        worker.speed.unwrap_or_else(|| {
            let mut known: Vec<f64> = self.workers.values().filter_map(|w| w.speed).collect();
            known.sort_by(f64::total_cmp);
            known.get(known.len() / 2).copied().unwrap_or(NOMINAL_SPEED)
        })
    }

    /// The seconds placement assumes `worker` needs to load a model it does not have loaded: its
    /// own measured loads, else the median measured worker's scaled by relative speed, else 0.
    pub(super) fn load_seconds_of(&self, worker: &Worker) -> f64 {
        if let Some(load) = worker.load_seconds {
            return load;
        }
        let mut known: Vec<(f64, f64)> = self
            .workers
            .values()
            .filter_map(|w| Some((w.load_seconds?, w.speed?)))
            .collect();
        known.sort_by(|a, b| a.0.total_cmp(&b.0));
        match known.get(known.len() / 2) {
            Some((load, speed)) => load * speed / self.speed_of(worker).max(1e-9),
            None => 0.0,
        }
    }

    /// Folds one finished job into the worker's speed and load time and the model's expected job
    /// size.
    pub(super) fn learn(&mut self, worker_id: &str, model: &str, t: &crate::records::Timings) {
        if let Some(w) = self.workers.get_mut(worker_id)
            && t.cold
            && t.load_ms > 0.0
            && t.load_ms.is_finite()
        {
            let sample = t.load_ms / 1000.0;
            w.load_seconds = Some(
                w.load_seconds
                    .map_or(sample, |old| old + SPEED_SMOOTHING * (sample - old)),
            );
        }
        let (gen_tokens, gen_ms) = (t.gen_tokens, t.gen_ms);
        if gen_tokens == 0 || gen_ms <= 0.0 || !gen_ms.is_finite() {
            return;
        }
        let sample = f64::from(gen_tokens) / (gen_ms / 1000.0);
        if let Some(w) = self.workers.get_mut(worker_id) {
            w.speed = Some(match w.speed {
                Some(old) => old + SPEED_SMOOTHING * (sample - old),
                None => sample,
            });
        }
        let entry = self
            .model_tokens
            .entry(model.to_string())
            .or_insert((0.0, 0));
        entry.0 += f64::from(gen_tokens);
        entry.1 += 1;
    }

    /// Expected generated tokens of a job of `model` with token limit `max_tokens`: the model's mean
    /// so far, else the mean over every model measured (answers to one suite are alike in length
    /// more often than not), else half the limit.
    fn expected_tokens(&self, model: &str, max_tokens: u32) -> f64 {
        if let Some((sum, n)) = self.model_tokens.get(model).filter(|(_, n)| *n > 0) {
            return sum / f64::from(*n);
        }
        let (sum, n) = self
            .model_tokens
            .values()
            .fold((0.0, 0u32), |(s, c), (sum, n)| (s + sum, c + n));
        if n > 0 {
            sum / f64::from(n)
        } else {
            f64::from(max_tokens.max(2)) / 2.0
        }
    }

    /// A queued job as placement sees it; `None` when its run or model is gone.
    pub(super) fn pending_job(&self, job: &JobRecord) -> Option<PendingJob> {
        let run = self.runs.get(&job.run_id)?;
        let model = run.models.get(job.model_index as usize)?;
        let max_tokens = run.max_tokens_of(&job.task_id);
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
            ..model_job(run, model)
        })
    }

    /// Every queued job, in queue order.
    pub(super) fn pending_jobs(&self) -> Vec<PendingJob> {
        self.jobs
            .values()
            .filter(|j| j.state == JobState::Queued)
            .filter_map(|j| self.pending_job(j))
            .collect()
    }

    /// Every connected worker as placement sees it.
    pub(super) fn worker_views(&self) -> Vec<WorkerView> {
        let now = now_ms();
        self.workers
            .values()
            .filter(|w| w.conn.is_some())
            .map(|w| {
                let held: Vec<&JobRecord> = self
                    .jobs
                    .values()
                    .filter(|j| j.state.holder().is_some_and(|(id, _)| id == w.record.id))
                    .collect();
                let speed = self.speed_of(w);
                let slots = w.record.slots.max(1);
                // Up to `prefetch` jobs wait on the worker beyond its slots, so the next job is
                // there when one ends instead of a round trip later; not behind a job that failed
                // (the next one would likely fail too, and quarantine must stop at its threshold).
                let prefetch = if w.failures_in_a_row == 0 {
                    self.config.prefetch
                } else {
                    0
                };
                let free_slots = (slots + prefetch).saturating_sub(held.len() as u32);
                // Seconds until a slot is free for a new job: the work still ahead of the worker
                // (running jobs' remainder, waiting jobs whole) spread over its slots, when all
                // its slots are taken.
                let busy_for = if (held.len() as u32) < slots {
                    0.0
                } else {
                    let ahead: f64 = held
                        .iter()
                        .filter_map(|j| {
                            let p = self.pending_job(j)?;
                            let whole = p.work_tokens / speed;
                            Some(match (&j.state, j.attempts.last()) {
                                // Elapsed since the slot started it: a prefetched job may
                                // have waited on the worker long after it was assigned.
                                (JobState::Running { .. }, Some(a)) => {
                                    let started = a.started_unix_ms.unwrap_or(a.assigned_unix_ms);
                                    (whole - (now - started) as f64 / 1000.0).max(0.0)
                                }
                                _ => whole,
                            })
                        })
                        .sum();
                    ahead / f64::from(slots)
                };
                let hw = &w.record.hardware;
                let cap = |bytes: u64| match hw.cgroup_memory_limit_bytes {
                    0 => bytes,
                    limit => bytes.min(limit),
                };
                WorkerView {
                    worker_id: w.record.id.clone(),
                    class: w.record.hardware_class.clone(),
                    free_slots,
                    models: w.record.models.iter().map(|m| m.sha256.clone()).collect(),
                    loaded: w.loaded.clone(),
                    labels: w.record.labels.clone(),
                    arch: hw.arch.clone(),
                    ram_total_bytes: cap(hw.ram_total_bytes),
                    ram_available_bytes: cap(hw.ram_available_bytes),
                    speed,
                    load_seconds: self.load_seconds_of(w),
                    slots,
                    held: held.len() as u32,
                    busy_for: if busy_for.is_finite() { busy_for } else { 0.0 },
                    accepting: w.accepting(),
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
