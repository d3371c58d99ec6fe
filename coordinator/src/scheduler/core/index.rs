//! Indexes over the live jobs, kept in step with every state change, so that a scheduler step costs
//! what it touches and not the size of the queue or the history: the queued jobs in queue order,
//! the jobs each worker holds, and per run the count of jobs in each state.
//!
//! Every change of a live job's state goes through [`JobIndex::remove`] then [`JobIndex::add`]
//! around it (see `Scheduler::update_job`), which is what keeps these in step; a debug assertion
//! in the tests recomputes them from scratch after every step.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::job::JobState;
use crate::records::{JobCounts as StateCounts, JobRecord, Pin};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct JobIndex {
    /// Ids of queued jobs; job ids sort in queue order (run submission, then expansion).
    pub queued: BTreeSet<String>,
    /// Worker id → (job id, attempt) of every job it holds (assigned or running).
    pub held: HashMap<String, BTreeSet<(String, u32)>>,
    /// Run id → its jobs by state.
    pub counts: HashMap<String, StateCounts>,
    /// (run id, model index) → that model's jobs by state (for per-model progress).
    pub model_counts: HashMap<(String, u32), StateCounts>,
    /// Run id → its queued jobs by (model index, pin), the groups a status says why they wait;
    /// a group is gone once it has no queued job.
    pub queued_groups: HashMap<String, BTreeMap<(u32, Option<Pin>), u32>>,
}

impl JobIndex {
    pub fn add(&mut self, job: &JobRecord) {
        *self
            .counts
            .entry(job.run_id.clone())
            .or_default()
            .slot(&job.state) += 1;
        *self
            .model_counts
            .entry((job.run_id.clone(), job.model_index))
            .or_default()
            .slot(&job.state) += 1;
        match job.state.holder() {
            Some((worker, attempt)) => {
                self.held
                    .entry(worker.to_string())
                    .or_default()
                    .insert((job.id.clone(), attempt));
            }
            None if job.state == JobState::Queued => {
                self.queued.insert(job.id.clone());
                *self
                    .queued_groups
                    .entry(job.run_id.clone())
                    .or_default()
                    .entry((job.model_index, job.pin.clone()))
                    .or_default() += 1;
            }
            None => {}
        }
    }

    pub fn remove(&mut self, job: &JobRecord) {
        if let Some(counts) = self.counts.get_mut(&job.run_id) {
            let slot = counts.slot(&job.state);
            *slot = slot.saturating_sub(1);
        }
        if let Some(counts) = self
            .model_counts
            .get_mut(&(job.run_id.clone(), job.model_index))
        {
            let slot = counts.slot(&job.state);
            *slot = slot.saturating_sub(1);
        }
        match job.state.holder() {
            Some((worker, attempt)) => {
                if let Some(held) = self.held.get_mut(worker) {
                    held.remove(&(job.id.clone(), attempt));
                    if held.is_empty() {
                        self.held.remove(worker);
                    }
                }
            }
            None => {
                if self.queued.remove(&job.id) {
                    self.forget_queued(job);
                }
            }
        }
    }

    /// Takes a job that left the queue off its group's count.
    fn forget_queued(&mut self, job: &JobRecord) {
        let Some(groups) = self.queued_groups.get_mut(&job.run_id) else {
            return;
        };
        let key = (job.model_index, job.pin.clone());
        if let Some(count) = groups.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                groups.remove(&key);
            }
        }
        if groups.is_empty() {
            self.queued_groups.remove(&job.run_id);
        }
    }

    /// Forgets a run whose jobs are all gone from memory.
    pub fn forget_run(&mut self, run_id: &str) {
        self.counts.remove(run_id);
        self.queued_groups.remove(run_id);
        self.model_counts.retain(|(run, _), _| run != run_id);
    }

    /// Model `model` of `run_id`'s live jobs by state.
    pub fn model_counts(&self, run_id: &str, model: u32) -> StateCounts {
        self.model_counts
            .get(&(run_id.to_string(), model))
            .copied()
            .unwrap_or_default()
    }

    /// The jobs `worker` holds, in id order.
    pub fn held_by(&self, worker: &str) -> Vec<(String, u32)> {
        self.held_iter(worker).cloned().collect()
    }

    /// The jobs `worker` holds, in id order, without copying their ids (the worker views read
    /// them for every connected worker on every scheduler step).
    pub fn held_iter(&self, worker: &str) -> impl Iterator<Item = &(String, u32)> {
        self.held.get(worker).into_iter().flatten()
    }

    pub fn held_count(&self, worker: &str) -> usize {
        self.held.get(worker).map_or(0, BTreeSet::len)
    }

    #[cfg(test)]
    /// The index of `jobs` built from scratch (for the tests' consistency check).
    pub fn rebuilt<'a>(jobs: impl IntoIterator<Item = &'a JobRecord>) -> JobIndex {
        let mut index = JobIndex::default();
        for job in jobs {
            index.add(job);
        }
        index
    }

    #[cfg(test)]
    /// Equal to `other` up to runs with no jobs counted (a removed run's zero entry).
    pub fn same_as(&self, other: &JobIndex) -> bool {
        fn nonzero<K: Clone + Eq + std::hash::Hash>(
            c: &HashMap<K, StateCounts>,
        ) -> HashMap<K, StateCounts> {
            c.iter()
                .filter(|(_, v)| **v != StateCounts::default())
                .map(|(k, v)| (k.clone(), *v))
                .collect()
        }
        self.queued == other.queued
            && self.held == other.held
            && nonzero(&self.counts) == nonzero(&other.counts)
            && nonzero(&self.model_counts) == nonzero(&other.model_counts)
            && self.queued_groups == other.queued_groups
    }
}
