//! The scheduler's job handling: placing, assigning, starting, finishing and retrying jobs, and the
//! lease checks that take jobs back from silent workers.

use benchfarm_proto::v1::{self as pb, coordinator_message::Kind};
use tracing::{debug, warn};

use super::super::placement::place;
use super::super::{IncomingResult, SchedulerError};
use super::Scheduler;
use crate::job::{JobEvent, JobState, TransitionError, transition};
use crate::records::{Attempt, AttemptEnd, ResultRecord, now_ms};

impl Scheduler {
    pub(super) fn started(&mut self, job_id: &str, attempt: u32) -> Result<(), SchedulerError> {
        let Some(job) = self.jobs.get_mut(job_id) else {
            return Ok(());
        };
        match transition(&job.state, &JobEvent::Start { attempt }) {
            Ok(state) if state != job.state => {
                job.state = state;
                if let Some(a) = job.attempt_mut(attempt) {
                    a.started_unix_ms = Some(now_ms());
                }
                let job = job.clone();
                self.store.put_job(&job)?;
                self.emit(&job, None);
            }
            Ok(_) => {}
            Err(err) => debug!(job = %job_id, error = %err, "start ignored"),
        }
        Ok(())
    }

    /// Stores a result, then acknowledges it. A result of an attempt that is not current (the job
    /// was given to another worker meanwhile) is stored as not counted; a re-sent one is only acked.
    pub(super) fn result(
        &mut self,
        worker_id: &str,
        incoming: IncomingResult,
    ) -> Result<(), SchedulerError> {
        let key = pb::JobKey {
            job_id: incoming.job_id.clone(),
            attempt: incoming.attempt,
        };
        let (worker_name, class) = self
            .workers
            .get(worker_id)
            .map(|w| (w.record.name.clone(), w.record.hardware_class.clone()))
            .unwrap_or_default();
        let next = self.jobs.get(&incoming.job_id).map(|job| {
            (
                transition(
                    &job.state,
                    &JobEvent::Succeed {
                        attempt: incoming.attempt,
                    },
                ),
                job.run_id.clone(),
            )
        });
        let counted = matches!(next, Some((Ok(_), _)));
        let record = ResultRecord {
            run_id: next.as_ref().map(|(_, r)| r.clone()).unwrap_or_default(),
            job_id: incoming.job_id.clone(),
            attempt: incoming.attempt,
            worker_id: worker_id.to_string(),
            worker_name,
            hardware_class: class,
            threads: incoming.threads,
            answer: incoming.answer,
            grade: incoming.grade,
            timings: incoming.timings,
            chat_template: incoming.chat_template,
            stop: incoming.stop,
            received_unix_ms: now_ms(),
            counted,
            grade_history: Vec::new(),
        };
        let fresh = match &next {
            Some(_) => self.store.insert_result(&record)?,
            None => false, // not a live job (finished or unknown run): nothing to count
        };
        if let Some((Ok(state), _)) = next
            && fresh
        {
            let job = self
                .jobs
                .get_mut(&record.job_id)
                .ok_or_else(|| SchedulerError::NoSuchRun(record.run_id.clone()))?;
            job.state = state;
            if let Some(a) = job.attempt_mut(record.attempt) {
                a.ended_unix_ms = Some(now_ms());
                a.end = Some(AttemptEnd::Succeeded);
            }
            let job = job.clone();
            self.store.put_job(&job)?;
            if let Some(model) = self
                .runs
                .get(&job.run_id)
                .and_then(|r| r.models.get(job.model_index as usize))
            {
                let model = model.sha256.clone();
                self.learn(worker_id, &model, &record.timings);
            }
            if let Some(w) = self.workers.get_mut(worker_id) {
                w.record.jobs_done += 1;
                w.failures_in_a_row = 0;
                w.record.last_seen_unix_ms = now_ms();
                self.store.put_worker(&w.record)?;
            }
            self.emit(&job, Some(record.grade.verdict));
            self.finish_if_complete(&job.run_id)?;
        } else {
            debug!(job = %record.job_id, attempt = record.attempt, fresh, "result not counted");
        }
        // Written (or known) before acknowledged: the worker may now forget it.
        self.acks.push((worker_id.to_string(), key));
        Ok(())
    }

    /// Ends `attempt` of a job without an answer; the job is retried or failed by the state machine.
    pub(super) fn end_attempt(
        &mut self,
        job_id: &str,
        attempt: u32,
        end: AttemptEnd,
    ) -> Result<(), SchedulerError> {
        let max_attempts = self.config.max_attempts;
        let Some(job) = self.jobs.get_mut(job_id) else {
            return Ok(());
        };
        // Tries so far, this one included when it was one (see AttemptEnd::is_try).
        let earlier = job
            .attempts
            .iter()
            .filter(|a| a.attempt != attempt && a.end.as_ref().is_none_or(AttemptEnd::is_try))
            .count() as u32;
        let attempts_made = earlier + u32::from(end.is_try());
        match transition(
            &job.state,
            &JobEvent::Fail {
                attempt,
                attempts_made,
                max_attempts,
            },
        ) {
            Ok(state) => {
                warn!(job = %job_id, attempt, reason = ?end, next = state.name(), "attempt ended without an answer");
                job.state = state;
                if let Some(a) = job.attempt_mut(attempt) {
                    a.ended_unix_ms = Some(now_ms());
                    a.end = Some(end);
                }
                let job = job.clone();
                self.store.put_job(&job)?;
                self.emit(&job, None);
                self.finish_if_complete(&job.run_id)?;
            }
            Err(TransitionError::Stale { .. }) => {
                debug!(job = %job_id, attempt, "failure of a superseded attempt ignored");
            }
            Err(err) => warn!(job = %job_id, error = %err, "failure not applied"),
        }
        Ok(())
    }

    /// Workers silent past their lease are lost; jobs assigned but never started within a lease are
    /// taken back.
    pub(super) fn expire_leases(&mut self) -> Result<(), SchedulerError> {
        let lease = self.config.lease;
        let lost: Vec<String> = self
            .workers
            .iter()
            .filter(|(id, w)| {
                w.last_seen.elapsed() > lease && (w.conn.is_some() || !self.held_by(id).is_empty())
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in lost {
            if let Some(w) = self.workers.get_mut(&id)
                && w.conn.take().is_some()
            {
                warn!(worker = %id, lease_ms = lease.as_millis() as u64, "worker lease expired; marking lost");
            }
            for (job_id, attempt) in self.held_by(&id) {
                self.end_attempt(
                    &job_id,
                    attempt,
                    AttemptEnd::Lost("worker lease expired".into()),
                )?;
            }
            // The entry stays (disconnected): what was measured about the worker survives until
            // it comes back.
        }
        let now = now_ms();
        // Assigned a lease ago, not started, and not in the worker's heartbeats: the assignment was
        // lost. (A job waiting behind another on its worker is reported in every heartbeat.)
        let unstarted: Vec<(String, u32)> = self
            .jobs
            .values()
            .filter_map(|j| match &j.state {
                JobState::Assigned { attempt, worker_id } => j
                    .attempts
                    .iter()
                    .find(|a| {
                        a.attempt == *attempt && now - a.assigned_unix_ms > lease.as_millis() as i64
                    })
                    .filter(|_| {
                        !self
                            .workers
                            .get(worker_id)
                            .is_some_and(|w| w.reported.contains(&(j.id.clone(), *attempt)))
                    })
                    .map(|_| (j.id.clone(), *attempt)),
                _ => None,
            })
            .collect();
        for (job_id, attempt) in unstarted {
            self.end_attempt(
                &job_id,
                attempt,
                AttemptEnd::Lost("assigned but never started".into()),
            )?;
        }
        Ok(())
    }

    /// Places queued jobs on free workers and sends the assignments.
    pub(super) fn schedule(&mut self) -> Result<(), SchedulerError> {
        let queue = self.pending_jobs();
        if queue.is_empty() {
            return Ok(());
        }
        for placement in place(&queue, &self.worker_views()) {
            self.assign(&placement.job_id, &placement.worker_id)?;
        }
        Ok(())
    }

    pub(super) fn assign(&mut self, job_id: &str, worker_id: &str) -> Result<(), SchedulerError> {
        let Some(job) = self.jobs.get_mut(job_id) else {
            return Ok(());
        };
        let Some(run) = self.runs.get(&job.run_id) else {
            return Ok(());
        };
        let Some(model) = run.models.get(job.model_index as usize) else {
            return Ok(());
        };
        let attempt = job.attempts.len() as u32 + 1;
        let max_tokens = run.max_tokens_of(&job.task_id);
        let timeout = self.job_timeout(worker_id, max_tokens, model.size_bytes);
        let job = self
            .jobs
            .get_mut(job_id)
            .ok_or_else(|| SchedulerError::NoSuchRun(job_id.to_string()))?;
        let run = self
            .runs
            .get(&job.run_id)
            .ok_or_else(|| SchedulerError::NoSuchRun(job.run_id.clone()))?;
        let model = run
            .models
            .get(job.model_index as usize)
            .ok_or_else(|| SchedulerError::NoSuchRun(job.run_id.clone()))?;
        let state = match transition(
            &job.state,
            &JobEvent::Assign {
                worker_id: worker_id.into(),
                attempt,
            },
        ) {
            Ok(state) => state,
            Err(err) => {
                warn!(job = %job_id, error = %err, "placement not applied");
                return Ok(());
            }
        };
        let message = Kind::Assign(pb::JobAssignment {
            key: Some(pb::JobKey {
                job_id: job.id.clone(),
                attempt,
            }),
            run_id: run.id.clone(),
            model: Some(crate::grpc::convert::model_ref(model)),
            suite_toml: run.suite_toml.clone(),
            suite_name: run.suite_name.clone(),
            suite_version: run.suite_version.clone(),
            task_id: job.task_id.clone(),
            repetition: job.repetition,
            seed: job.seed,
            timeout_ms: timeout.as_millis().min(u128::from(u32::MAX)) as u32,
        });
        job.state = state;
        job.attempts.push(Attempt {
            attempt,
            worker_id: worker_id.to_string(),
            assigned_unix_ms: now_ms(),
            started_unix_ms: None,
            ended_unix_ms: None,
            end: None,
        });
        let job = job.clone();
        self.store.put_job(&job)?;
        if let Some(w) = self.workers.get_mut(worker_id) {
            w.loaded = Some(model.sha256.clone());
        }
        debug!(job = %job.id, attempt, worker = %worker_id, "job assigned");
        if !self.send(worker_id, message) {
            self.end_attempt(
                &job.id,
                attempt,
                AttemptEnd::Lost("worker connection closed".into()),
            )?;
        } else {
            self.emit(&job, None);
        }
        Ok(())
    }
}
