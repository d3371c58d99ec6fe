//! The scheduler's run handling: submit, cancel, completion, progress and the views users ask for.

use std::collections::BTreeSet;

use benchfarm_proto::v1::{self as pb, RunEvent, coordinator_message::Kind};
use tracing::{debug, info};

use super::super::placement::{WorkerView, fit};
use super::super::status::{RunProgress, progress, waiting_reasons, why_unplaceable};
use super::super::{SchedulerError, WorkerSummary};
use super::Scheduler;
use crate::job::JobState;
use crate::records::{AttemptEnd, JobRecord, Pin, Placement, RunRecord, RunState, now_ms};

impl Scheduler {
    /// Expands and stores a run. `every-worker` and `per-class` runs are expanded against the
    /// workers connected now (their jobs are pinned to those workers or classes); with `strict`, a
    /// model that no connected worker can run refuses the whole run.
    pub(super) fn submit(
        &mut self,
        mut run: RunRecord,
        strict: bool,
    ) -> Result<u32, SchedulerError> {
        let workers = self.worker_views();
        let mut pins = Vec::with_capacity(run.models.len());
        for model in &run.models {
            let sample = super::views::model_job(&run, model);
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
        let jobs = crate::run::expand_pinned(&run, &pins);
        run.jobs_total = jobs.len() as u32;
        // Jobs first, then the run: a crash in between leaves jobs without a run, which are ignored.
        self.store.put_jobs(&jobs)?;
        self.store.put_run(&run)?;
        self.store.flush()?;
        info!(run = %run.id, jobs = jobs.len(), models = run.models.len(), placement = ?run.placement, "run submitted");
        for job in jobs {
            self.jobs.insert(job.id.clone(), job);
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
        let ids = self.job_ids_of(run_id);
        let mut cancelled = 0;
        for id in ids {
            let Some(mut job) = self.jobs.remove(&id) else {
                continue;
            };
            if job.state.is_terminal() {
                continue;
            }
            if let Some((worker_id, attempt)) = job.state.holder() {
                let key = pb::JobKey {
                    job_id: job.id.clone(),
                    attempt,
                };
                self.send(
                    worker_id,
                    Kind::Cancel(pb::CancelJob {
                        key: Some(key),
                        reason: "run cancelled".into(),
                    }),
                );
                let worker_id = worker_id.to_string();
                if let Some(a) = job.attempt_mut(attempt) {
                    a.ended_unix_ms = Some(now_ms());
                    a.end = Some(AttemptEnd::Cancelled);
                }
                debug!(job = %job.id, worker = %worker_id, "cancel sent");
            }
            job.state = JobState::Cancelled;
            self.store.put_job(&job)?;
            cancelled += 1;
        }
        run.state = RunState::Cancelled;
        run.finished_unix_ms = Some(now_ms());
        self.store.put_run(&run)?;
        self.store.flush()?;
        info!(run = %run_id, cancelled, "run cancelled");
        let p = self.stored_progress(&run)?;
        let _ = self.events.send(RunEvent {
            status: Some(p.into()),
            ..RunEvent::default()
        });
        Ok(cancelled)
    }

    /// Marks a run finished once all its jobs are terminal, and forgets it from memory.
    pub(super) fn finish_if_complete(&mut self, run_id: &str) -> Result<(), SchedulerError> {
        if self.jobs_of(run_id).iter().any(|j| !j.state.is_terminal()) {
            return Ok(());
        }
        let Some(mut run) = self.runs.remove(run_id) else {
            return Ok(());
        };
        run.state = RunState::Finished;
        run.finished_unix_ms = Some(now_ms());
        self.store.put_run(&run)?;
        self.store.flush()?;
        for id in self.job_ids_of(run_id) {
            self.jobs.remove(&id);
        }
        info!(run = %run_id, "run finished");
        let p = self.stored_progress(&run)?;
        let _ = self.events.send(RunEvent {
            status: Some(p.into()),
            ..RunEvent::default()
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

    pub(super) fn live_progress(&self, run: &RunRecord) -> RunProgress {
        let jobs = self.jobs_of(&run.id);
        let mut p = progress(run, &jobs);
        let queued: Vec<_> = jobs
            .iter()
            .filter(|j| j.state == JobState::Queued)
            .filter_map(|j| Some((*j, self.pending_job(j)?)))
            .collect();
        if !queued.is_empty() {
            p.waiting = waiting_reasons(run, &queued, &self.worker_views());
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

    pub(super) fn stored_progress(&self, run: &RunRecord) -> Result<RunProgress, SchedulerError> {
        let jobs = self.store.jobs_of_run(&run.id)?;
        Ok(progress(run, &jobs.iter().collect::<Vec<_>>()))
    }

    pub(super) fn list_runs(&self) -> Result<Vec<RunProgress>, SchedulerError> {
        self.store
            .runs()?
            .iter()
            .map(|r| match self.runs.get(&r.id) {
                Some(live) => Ok(self.live_progress(live)),
                None => self.stored_progress(r),
            })
            .collect()
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
        let event = RunEvent {
            status: Some(self.live_progress(run).into()),
            job_id: job.id.clone(),
            job_state: job.state.name().to_string(),
            model: run
                .models
                .get(job.model_index as usize)
                .map(|m| m.name.clone())
                .unwrap_or_default(),
            task_id: job.task_id.clone(),
            repetition: job.repetition,
            worker,
            verdict: verdict.map_or(
                pb::Verdict::Unspecified,
                crate::grpc::convert::verdict_to_wire,
            ) as i32,
        };
        let _ = self.events.send(event);
    }
}
