//! Placement: which queued job goes to which worker. A pure function of the queue and the workers.
//!
//! Rules, in order of importance:
//! 1. a job goes only to a worker that can run its model (has the GGUF by sha256; any worker runs a
//!    scripted model) and has a free slot; a job is placed at most once per call;
//! 2. runs share the farm round-robin, so a small run submitted behind a big one is not starved;
//! 3. a worker prefers jobs of the model it has loaded, and jobs of one model stay grouped (the queue
//!    is in expansion order: model-major), because loading a model on a board costs more than a job.
//!
//! Kept free of I/O and clocks (as quickwit does for its scheduler) so its invariants are tested with
//! proptest; the scheduler calls [`place`] after every change and sends what it returns.

use std::collections::{BTreeMap, BTreeSet, HashSet};

/// A queued job as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingJob {
    pub job_id: String,
    pub run_id: String,
    /// The model's sha256 (for scripted models too: a digest of their text).
    pub model: String,
    pub scripted: bool,
}

/// A connected worker as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerView {
    pub worker_id: String,
    pub free_slots: u32,
    /// sha256 of every GGUF it has.
    pub models: HashSet<String>,
    /// The model its engine has loaded (the last one it ran), if any.
    pub loaded: Option<String>,
}

impl WorkerView {
    pub fn can_run(&self, job: &PendingJob) -> bool {
        job.scripted || self.models.contains(&job.model)
    }
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
    // Each run's jobs, in queue order; runs in order of first appearance.
    let mut run_order: Vec<&str> = Vec::new();
    let mut per_run: BTreeMap<&str, Vec<&PendingJob>> = BTreeMap::new();
    for job in queue {
        let entry = per_run.entry(job.run_id.as_str()).or_default();
        if entry.is_empty() {
            run_order.push(job.run_id.as_str());
        }
        entry.push(job);
    }
    let mut taken: BTreeSet<&str> = BTreeSet::new();
    let mut placements = Vec::new();
    let mut next_run = 0usize;

    // Workers in a stable order, so the result does not depend on hash order.
    let mut workers: Vec<WorkerView> = workers.to_vec();
    workers.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));

    // Hand out one job per worker per round, so slots fill evenly across workers.
    loop {
        let mut placed_this_round = false;
        for worker in workers.iter_mut().filter(|w| w.free_slots > 0) {
            let Some(job) = pick(&run_order, &per_run, &taken, worker, &mut next_run) else {
                continue;
            };
            taken.insert(job.job_id.as_str());
            worker.free_slots -= 1;
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

/// The next job for `worker`: runs in turn starting at `next_run`; in a run, a job of the loaded model
/// first, else the first job the worker can run.
fn pick<'a>(
    run_order: &[&'a str],
    per_run: &BTreeMap<&'a str, Vec<&'a PendingJob>>,
    taken: &BTreeSet<&str>,
    worker: &WorkerView,
    next_run: &mut usize,
) -> Option<&'a PendingJob> {
    for offset in 0..run_order.len() {
        let run_index = (*next_run + offset) % run_order.len();
        let jobs = per_run.get(run_order[run_index])?;
        let available = || {
            jobs.iter()
                .filter(|j| !taken.contains(j.job_id.as_str()) && worker.can_run(j))
        };
        let same_model = worker
            .loaded
            .as_ref()
            .and_then(|m| available().find(|j| &j.model == m));
        if let Some(job) = same_model.or_else(|| available().next()) {
            *next_run = run_index + 1;
            return Some(job);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn job(id: &str, run: &str, model: &str) -> PendingJob {
        PendingJob {
            job_id: id.into(),
            run_id: run.into(),
            model: model.into(),
            scripted: false,
        }
    }

    fn worker(id: &str, slots: u32, models: &[&str]) -> WorkerView {
        WorkerView {
            worker_id: id.into(),
            free_slots: slots,
            models: models.iter().map(|m| m.to_string()).collect(),
            loaded: None,
        }
    }

    #[test]
    fn only_capable_workers_get_jobs() {
        let queue = vec![job("j1", "r", "a"), job("j2", "r", "b")];
        let placed = place(&queue, &[worker("w1", 4, &["b"])]);
        assert_eq!(
            placed,
            vec![Placement {
                job_id: "j2".into(),
                worker_id: "w1".into()
            }]
        );
    }

    #[test]
    fn scripted_models_run_anywhere() {
        let mut j = job("j1", "r", "script");
        j.scripted = true;
        assert_eq!(place(&[j], &[worker("w1", 1, &[])]).len(), 1);
    }

    #[test]
    fn loaded_model_is_preferred() {
        let queue = vec![job("j1", "r", "a"), job("j2", "r", "b")];
        let mut w = worker("w1", 1, &["a", "b"]);
        w.loaded = Some("b".into());
        assert_eq!(place(&queue, &[w])[0].job_id, "j2");
    }

    #[test]
    fn runs_take_turns() {
        let queue = vec![
            job("a1", "r1", "m"),
            job("a2", "r1", "m"),
            job("b1", "r2", "m"),
        ];
        let placed = place(&queue, &[worker("w1", 2, &["m"])]);
        let ids: Vec<_> = placed.iter().map(|p| p.job_id.as_str()).collect();
        assert_eq!(ids, vec!["a1", "b1"]);
    }

    #[test]
    fn slots_fill_evenly() {
        let queue: Vec<_> = (0..4).map(|i| job(&format!("j{i}"), "r", "m")).collect();
        let placed = place(&queue, &[worker("w1", 2, &["m"]), worker("w2", 2, &["m"])]);
        let on_w1 = placed.iter().filter(|p| p.worker_id == "w1").count();
        assert_eq!((placed.len(), on_w1), (4, 2));
    }

    proptest! {
        /// Every job placed at most once, never on a worker that cannot run it, never past a worker's
        /// free slots, and nothing left unplaced that a worker with a free slot could have taken.
        #[test]
        fn placement_invariants(
            jobs in proptest::collection::vec((0..3usize, 0..4usize, any::<bool>()), 0..40),
            workers in proptest::collection::vec((0..4u32, proptest::collection::vec(0..4usize, 0..4)), 0..6),
        ) {
            let queue: Vec<PendingJob> = jobs.iter().enumerate().map(|(i, (run, model, scripted))| PendingJob {
                job_id: format!("j{i:03}"), run_id: format!("r{run}"), model: format!("m{model}"), scripted: *scripted,
            }).collect();
            let views: Vec<WorkerView> = workers.iter().enumerate().map(|(i, (slots, models))| WorkerView {
                worker_id: format!("w{i}"), free_slots: *slots,
                models: models.iter().map(|m| format!("m{m}")).collect(), loaded: None,
            }).collect();
            let placed = place(&queue, &views);
            let mut seen = HashSet::new();
            for p in &placed {
                prop_assert!(seen.insert(p.job_id.clone()), "placed twice: {}", p.job_id);
                let job = queue.iter().find(|j| j.job_id == p.job_id).unwrap();
                let w = views.iter().find(|w| w.worker_id == p.worker_id).unwrap();
                prop_assert!(w.can_run(job));
            }
            for w in &views {
                let used = placed.iter().filter(|p| p.worker_id == w.worker_id).count() as u32;
                prop_assert!(used <= w.free_slots);
                if used < w.free_slots {
                    for j in &queue {
                        prop_assert!(seen.contains(&j.job_id) || !w.can_run(j),
                            "{} left unplaced while {} had a free slot", j.job_id, w.worker_id);
                    }
                }
            }
        }
    }
}
