//! The scheduler's run handling: submit, cancel, completion, regrade, progress and the views users
//! ask for.
//!
//! Progress comes from the index's per-run counts (live runs) or the counts a run stores when it
//! ends (finished runs), so neither an event to a watcher nor `ListRuns` reads a run's jobs.

use std::collections::{BTreeMap, BTreeSet};

use tracing::{debug, info};

use super::super::placement::{WorkerView, fit};
use super::super::status::{
    QueuedGroups, RunProgress, progress, progress_of, reasons_by_group, why_unplaceable,
};
use super::super::{JobChange, JobKey, RunChange, SchedulerError, ToWorker, WorkerSummary};
use super::Scheduler;
use crate::job::JobState;
use crate::records::{AttemptEnd, JobRecord, Pin, Placement, RunRecord, RunState};
use crate::regrade::RegradeSummary;

impl Scheduler {
    /// Expands and stores a run. `every-worker` and `per-class` runs are expanded against the
    /// workers connected now (their jobs are pinned to those workers or classes); with `strict`, a
    /// model that no connected worker can run refuses the whole run.
    pub(super) fn submit(
        &mut self,
        mut run: RunRecord,
        strict: bool,
    ) -> Result<u32, SchedulerError> {
        // Refused before anything is expanded: the count is checked arithmetic on what the
        // client sent, and the expansion happens only under the limit.
        // Throughput tests are jobs too (remote models run none: this bounds them from above).
        let units = (run.tasks.len() as u64).saturating_add(run.throughput.len() as u64);
        // An adaptive run may grow to its maximum: that is what the limit bounds.
        let most = run
            .adaptive
            .map_or(run.repetitions, |a| a.max.max(run.repetitions));
        let per_model = u64::from(most).saturating_mul(units);
        let limit = u64::from(self.config.max_jobs_per_run);
        if per_model.saturating_mul(run.models.len() as u64) > limit {
            return Err(SchedulerError::Invalid(format!(
                "the run expands to {} models x {} tasks x {} repetitions, over the limit of {limit} jobs per run (--max-jobs-per-run)",
                run.models.len(),
                units,
                most
            )));
        }
        let workers = self.worker_views();
        let mut pins = Vec::with_capacity(run.models.len());
        for model in &run.models {
            let sample = super::views::model_job(&run, model, self.fetch_bytes(model));
            let capable: Vec<&WorkerView> =
                workers.iter().filter(|w| fit(&sample, w).is_ok()).collect();
            let refuse =
                |why: String| SchedulerError::Refused(format!("model {}: {why}", model.name));
            if capable.is_empty() && (strict || run.placement != Placement::Spread) {
                let why = why_unplaceable(&sample, &model.name, &workers)
                    .unwrap_or_else(|| "no capable worker".into());
                return Err(refuse(why));
            }
            pins.push(match run.placement {
                // A remote model runs on its endpoint, one hardware class whichever worker calls
                // it: each job once, under every placement.
                _ if model.remote().is_some() => vec![None],
                Placement::Spread => vec![None],
                Placement::EveryWorker => capable
                    .iter()
                    .map(|w| Some(Pin::Worker(w.worker_id.clone())))
                    .collect(),
                Placement::PerClass => capable
                    .iter()
                    .map(|w| w.class.clone())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .map(|c| Some(Pin::Class(c)))
                    .collect(),
            });
        }
        let pinned: u64 = pins.iter().map(|p| p.len() as u64 * per_model).sum();
        if pinned > limit {
            return Err(SchedulerError::Invalid(format!(
                "the run expands to {pinned} jobs on the connected workers, over the limit of {limit} jobs per run (--max-jobs-per-run)"
            )));
        }
        let jobs = crate::run::expand_pinned(&run, &pins);
        run.jobs_total = u32::try_from(jobs.len()).unwrap_or(u32::MAX);
        // Jobs first, then the run: a crash in between leaves jobs without a run, which are ignored.
        self.store.put_jobs(&jobs)?;
        self.store.put_run(&run)?;
        self.store.flush()?;
        self.graders.open(&run, &jobs);
        info!(run = %run.id, jobs = jobs.len(), models = run.models.len(), placement = ?run.placement, "run submitted");
        for job in jobs {
            self.insert_job(job);
        }
        let total = run.jobs_total;
        self.runs.insert(run.id.clone(), run);
        Ok(total)
    }

    pub(super) fn cancel(&mut self, run_id: &str) -> Result<u32, SchedulerError> {
        let Some(mut run) = self.runs.remove(run_id) else {
            return match self.store.run(run_id)? {
                Some(_) => Ok(0), // already over
                None => Err(SchedulerError::NoSuchRun(run_id.to_string())),
            };
        };
        let now = self.now();
        // What the run ends with: every job still live is cancelled, the others stay as they are.
        let before = self.index.counts.get(run_id).copied().unwrap_or_default();
        let counts = crate::records::JobCounts {
            queued: 0,
            running: 0,
            cancelled: before.cancelled + before.live(),
            ..before
        };
        let ids = self.job_ids_of(run_id);
        let mut cancelled = 0;
        for id in ids {
            let Some(mut job) = self.remove_job(&id) else {
                continue;
            };
            if job.state.is_terminal() {
                continue;
            }
            if let Some((worker_id, attempt)) = job.state.holder() {
                self.send(
                    worker_id,
                    ToWorker::Cancel {
                        key: JobKey::new(job.id.clone(), attempt),
                        reason: "run cancelled".into(),
                    },
                );
                let worker_id = worker_id.to_string();
                if let Some(a) = job.attempt_mut(attempt) {
                    a.ended_unix_ms = Some(now);
                    a.end = Some(AttemptEnd::Cancelled);
                }
                self.observer.ended(
                    &job,
                    attempt,
                    super::super::observe::Ended::Without {
                        end: &AttemptEnd::Cancelled,
                        retried: false,
                        failed: false,
                    },
                );
                debug!(job = %job.id, worker = %worker_id, "cancel sent");
            }
            job.state = JobState::Cancelled;
            self.store.put_job(&job)?;
            cancelled += 1;
        }
        self.index.forget_run(run_id);
        self.graders.close(run_id);
        self.suite_digests.remove(run_id);
        run.state = RunState::Cancelled;
        run.finished_unix_ms = Some(now);
        run.counts = Some(counts);
        self.store.put_run(&run)?;
        self.store.flush()?;
        info!(run = %run_id, cancelled, "run cancelled");
        self.observer.cancelled(cancelled);
        let p = progress_of(&run, &counts);
        let _ = self.events.send(RunChange {
            status: p,
            job: None,
        });
        Ok(cancelled)
    }

    /// Marks a run finished once all its jobs are terminal, and forgets it from memory.
    pub(super) fn finish_if_complete(&mut self, run_id: &str) -> Result<(), SchedulerError> {
        let counts = self.index.counts.get(run_id).copied().unwrap_or_default();
        if counts.live() > 0 {
            return Ok(());
        }
        let Some(mut run) = self.runs.remove(run_id) else {
            return Ok(());
        };
        run.state = RunState::Finished;
        run.finished_unix_ms = Some(self.now());
        run.counts = Some(counts);
        self.store.put_run(&run)?;
        self.store.flush()?;
        for id in self.job_ids_of(run_id) {
            self.remove_job(&id);
        }
        self.index.forget_run(run_id);
        self.graders.close(run_id);
        self.suite_digests.remove(run_id);
        info!(run = %run_id, "run finished");
        let p = progress_of(&run, &counts);
        let _ = self.events.send(RunChange {
            status: p,
            job: None,
        });
        Ok(())
    }

    pub(super) fn progress(&self, run_id: &str) -> Result<RunProgress, SchedulerError> {
        match self.runs.get(run_id) {
            Some(run) => Ok(self.live_progress(run)),
            None => match self.store.run(run_id)? {
                Some(run) => self.stored_progress(&run),
                None => Err(SchedulerError::NoSuchRun(run_id.to_string())),
            },
        }
    }

    /// A live run's counts, without the reasons queued jobs wait (cheap: for events).
    pub(super) fn counted_progress(&self, run: &RunRecord) -> RunProgress {
        let mut p = progress_of(
            run,
            &self.index.counts.get(&run.id).copied().unwrap_or_default(),
        );
        p.per_model = (0..run.models.len())
            .map(|m| {
                self.index
                    .model_counts(&run.id, u32::try_from(m).unwrap_or(u32::MAX))
            })
            .collect();
        p
    }

    /// A live run's counts and why its queued jobs wait (for `status RUN`).
    pub(super) fn live_progress(&self, run: &RunRecord) -> RunProgress {
        let mut p = self.counted_progress(run);
        if p.queued > 0 {
            // From the queue's index, not a walk over every job of the run: a run polled
            // while it drains costs its queued jobs, not its finished ones.
            // The groups' counts come from the index; the walk stops once every group has its
            // first job in queue order, which is near the head of the queue unless a group is
            // only at its tail.
            let prefix = format!("{}-", run.id);
            let counts = self.index.queued_groups.get(&run.id);
            let wanted = counts.map_or(0, |c| c.len());
            let mut groups: QueuedGroups = BTreeMap::new();
            for job in self
                .index
                .queued
                .range(prefix.clone()..)
                .take_while(|id| id.starts_with(&prefix))
                .filter_map(|id| self.jobs.get(id))
            {
                if groups.len() == wanted {
                    break;
                }
                let key = (job.model_index, job.pin.as_ref());
                if !groups.contains_key(&key)
                    && let Some(&count) = counts.and_then(|c| c.get(&(key.0, key.1.cloned())))
                {
                    groups.insert(key, (count, job));
                }
            }
            p.waiting =
                reasons_by_group(run, groups, |j| self.pending_job(j), &self.worker_views());
        }
        p
    }

    /// The ids of a run's live jobs.
    fn job_ids_of(&self, run_id: &str) -> Vec<String> {
        self.jobs_of(run_id)
            .into_iter()
            .map(|j| j.id.clone())
            .collect()
    }

    /// The live jobs of a run, in expansion order.
    pub(super) fn jobs_of(&self, run_id: &str) -> Vec<&JobRecord> {
        let prefix = format!("{run_id}-");
        self.jobs
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, j)| j)
            .collect()
    }

    /// An ended run's progress: from the counts it stored, or (runs from before those were
    /// stored) from its jobs.
    pub(super) fn stored_progress(&self, run: &RunRecord) -> Result<RunProgress, SchedulerError> {
        if let Some(counts) = &run.counts {
            return Ok(progress_of(run, counts));
        }
        let jobs = self.store.jobs_of_run(&run.id)?;
        Ok(progress(run, &jobs.iter().collect::<Vec<_>>()))
    }

    pub(super) fn list_runs(&self) -> Result<Vec<RunProgress>, SchedulerError> {
        self.store
            .runs()?
            .iter()
            .map(|r| match self.runs.get(&r.id) {
                Some(live) => Ok(self.counted_progress(live)),
                None => self.stored_progress(r),
            })
            .collect()
    }

    /// Regrades an ended run from its stored answers, with `suite` (suite and its text) or the
    /// run's own, keeping every earlier grade in the results' history.
    pub(super) fn regrade(
        &mut self,
        run_id: &str,
        suite: Option<(benchfarm_suite::Suite, String)>,
    ) -> Result<(RegradeSummary, String), SchedulerError> {
        if self.runs.contains_key(run_id) {
            return Err(SchedulerError::Refused(format!(
                "run {run_id} is still running; regrade it once it is over"
            )));
        }
        let mut run = self
            .store
            .run(run_id)?
            .ok_or_else(|| SchedulerError::NoSuchRun(run_id.to_string()))?;
        if run.suite_toml.is_empty() {
            return Err(SchedulerError::Refused(format!(
                "run {run_id} has no suite: its jobs are throughput tests, which are not graded"
            )));
        }
        let (suite, text) = match suite {
            Some(given) => given,
            None => {
                let suite =
                    benchfarm_suite::Suite::parse(&run.suite_toml, "suite_toml").map_err(|e| {
                        SchedulerError::Refused(format!("the run's own suite does not load: {e}"))
                    })?;
                (suite, run.suite_toml.clone())
            }
        };
        if suite.name != run.suite_name {
            return Err(SchedulerError::Invalid(format!(
                "suite_toml: suite {:?} is not the run's suite {:?}",
                suite.name, run.suite_name
            )));
        }
        let jobs = self.store.jobs_of_run(&run.id)?;
        let results = self.store.results_of_run(&run.id)?;
        let (updated, summary) = crate::regrade::regrade(&run, &jobs, &results, &suite, self.now());
        for result in &updated {
            self.store.put_result(result)?;
        }
        if text != run.suite_toml {
            let old = std::mem::replace(&mut run.suite_toml, text);
            run.suite_history.push(old);
            run.suite_version = suite.version.clone();
            self.store.put_run(&run)?;
        }
        self.store.flush()?;
        info!(run = %run.id, results = summary.results, changed = summary.changed, "run regraded");
        Ok((summary, suite.version))
    }

    pub(super) fn list_workers(&self) -> Vec<WorkerSummary> {
        let stored = self.store.workers().unwrap_or_default();
        let mut out: Vec<WorkerSummary> = stored
            .into_iter()
            .map(|record| self.summary_of(record))
            .collect();
        out.sort_by(|a, b| (b.connected, &a.record.name).cmp(&(a.connected, &b.record.name)));
        out
    }

    /// One worker as users see it.
    pub(super) fn summary(&self, worker_id: &str) -> Result<WorkerSummary, SchedulerError> {
        let record = match self.workers.get(worker_id) {
            Some(w) => w.record.clone(),
            None => self
                .store
                .workers()?
                .into_iter()
                .find(|w| w.id == worker_id)
                .ok_or_else(|| SchedulerError::NoSuchWorker(worker_id.to_string()))?,
        };
        Ok(self.summary_of(record))
    }

    fn summary_of(&self, record: crate::records::WorkerRecord) -> WorkerSummary {
        let live = self.workers.get(&record.id);
        WorkerSummary {
            connected: live.is_some_and(|w| w.conn.is_some()),
            draining: live.is_some_and(|w| w.draining),
            running: self
                .held_by(&record.id)
                .into_iter()
                .map(|(j, a)| format!("{j}#{a}"))
                .collect(),
            quarantined: live.and_then(|w| w.quarantined.clone()),
            speed: live.and_then(|w| w.speed),
            cache: live.map(|w| w.cache.clone()).unwrap_or_default(),
            record: live.map(|w| w.record.clone()).unwrap_or(record),
        }
    }

    /// Tells watchers that `job` changed.
    pub(super) fn emit(&self, job: &JobRecord, verdict: Option<benchfarm_suite::Verdict>) {
        if self.events.receiver_count() == 0 {
            return;
        }
        let Some(run) = self.runs.get(&job.run_id) else {
            return;
        };
        let worker = job
            .attempts
            .last()
            .map(|a| a.worker_id.clone())
            .unwrap_or_default();
        let worker = self
            .workers
            .get(&worker)
            .map(|w| w.record.name.clone())
            .unwrap_or(worker);
        let event = RunChange {
            status: self.counted_progress(run),
            job: Some(JobChange {
                job_id: job.id.clone(),
                state: job.state.clone(),
                model: run
                    .models
                    .get(job.model_index as usize)
                    .map(|m| m.name.clone())
                    .unwrap_or_default(),
                task_id: job.task_id.clone(),
                repetition: job.repetition,
                worker,
                verdict,
            }),
        };
        let _ = self.events.send(event);
    }
}
