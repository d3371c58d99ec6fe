//! The scheduler's job handling: placing, assigning, starting, finishing and retrying jobs, and the
//! lease and deadline checks that take jobs back from silent workers.
//!
//! A result counts only for an attempt the store records as assigned to the worker that sent it,
//! and an attempt is written and flushed before its assignment is sent, so after any crash the
//! (job, attempt) a worker answers is the one the store holds.

use tracing::{debug, warn};

use super::super::observe::{Assigned, Ended};
use super::super::placement::place_views;
use super::super::{Assignment, IncomingResult, JobKey, SchedulerError, ToWorker};
use super::Scheduler;
use crate::job::{JobEvent, JobState, TransitionError, transition};
use crate::records::{Attempt, AttemptEnd, ResultRecord};

/// Disconnected workers that hold nothing are forgotten this long after they left (their record
/// stays in the store; what was measured about them goes).
const PRUNE_AFTER_MS: i64 = 3_600_000;

impl Scheduler {
    pub(super) fn started(&mut self, job_id: &str, attempt: u32) -> Result<(), SchedulerError> {
        let Some(job) = self.jobs.get(job_id) else {
            return Ok(());
        };
        match transition(&job.state, &JobEvent::Start { attempt }) {
            Ok(state) if state != job.state => {
                let now = self.now();
                let job = self
                    .update_job(job_id, |job| {
                        job.state = state;
                        if let Some(a) = job.attempt_mut(attempt) {
                            a.started_unix_ms = Some(now);
                        }
                        job.clone()
                    })
                    .ok_or_else(|| SchedulerError::NoSuchRun(job_id.to_string()))?;
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
        let key = JobKey::new(incoming.job_id.clone(), incoming.attempt);
        let (worker_name, mut class) = self
            .workers
            .get(worker_id)
            .map(|w| (w.record.name.clone(), w.record.hardware_class.clone()))
            .unwrap_or_default();
        // A remote model ran on its endpoint: that is its hardware class (the worker that called
        // it stays recorded as the result's worker).
        if let Some(remote) = self.model_of_job(&incoming.job_id).and_then(|m| m.remote()) {
            class = crate::hardware_class::endpoint_class(&remote.url, &remote.model);
        }
        let now = self.now();
        // Only an attempt recorded as this worker's can count; anything else is somebody else's
        // job or one never handed out, and is neither stored nor counted (but acknowledged, so a
        // confused worker stops re-sending it).
        let next = match self.jobs.get(&incoming.job_id) {
            Some(job)
                if !job
                    .attempts
                    .iter()
                    .any(|a| a.attempt == incoming.attempt && a.worker_id == worker_id) =>
            {
                warn!(job = %incoming.job_id, attempt = incoming.attempt, worker = %worker_id,
                      "result for an attempt this worker does not hold ignored");
                self.acks.push((worker_id.to_string(), key));
                return Ok(());
            }
            Some(job) => Some((
                transition(
                    &job.state,
                    &JobEvent::Succeed {
                        attempt: incoming.attempt,
                    },
                ),
                job.run_id.clone(),
            )),
            None => None,
        };
        // A throughput job is measured, not graded: its result keeps the placeholder grade.
        let measured = self
            .jobs
            .get(&incoming.job_id)
            .is_some_and(|j| j.throughput.is_some());
        if measured && incoming.throughput.is_none() {
            // Nothing to store: the job's deadline takes it back and runs it again.
            warn!(job = %incoming.job_id, attempt = incoming.attempt, worker = %worker_id,
                  "result of a throughput job without a measurement ignored");
            self.acks.push((worker_id.to_string(), key));
            return Ok(());
        }
        let counted = matches!(next, Some((Ok(_), _)));
        let mut incoming = incoming;
        // The coordinator's grade is the one stored: the connection graded the answer already
        // (off this thread); graded here only when it arrived ungraded.
        let truncated =
            crate::grading::truncate_answer(&mut incoming.answer, self.config.limits.answer_bytes);
        let answer_truncated_from = incoming.answer_truncated_from.or(truncated);
        let coordinator_grade = match incoming.coordinator_grade.take() {
            _ if measured => None,
            Some(grade) if truncated.is_none() => Some(grade),
            _ if next.is_some() => self.graders.grade(&incoming.job_id, &incoming.answer),
            _ => None,
        };
        let (grade, worker_grade) = match coordinator_grade {
            Some(ours) => {
                let theirs =
                    crate::grading::disagrees(&incoming.grade, &ours).then_some(incoming.grade);
                if theirs.is_some() {
                    warn!(job = %incoming.job_id, attempt = incoming.attempt, worker = %worker_id,
                          verdict = %ours.verdict, "the worker's grade disagrees with the coordinator's");
                }
                (ours, theirs)
            }
            // Only a run whose stored suite no longer loads (see Graders::open).
            None => (incoming.grade, None),
        };
        // The attempt's span is the trace this result belongs to.
        let trace_id = self
            .jobs
            .get(&incoming.job_id)
            .and_then(|job| job.attempts.iter().find(|a| a.attempt == incoming.attempt))
            .and_then(|a| benchfarm_telemetry::propagation::trace_id_of(&a.trace_parent))
            .unwrap_or_default();
        let record = ResultRecord {
            run_id: next.as_ref().map(|(_, r)| r.clone()).unwrap_or_default(),
            job_id: incoming.job_id.clone(),
            attempt: incoming.attempt,
            worker_id: worker_id.to_string(),
            worker_name,
            hardware_class: class,
            threads: incoming.threads,
            answer: incoming.answer,
            grade,
            worker_grade,
            answer_truncated_from,
            timings: incoming.timings,
            chat_template: incoming.chat_template,
            stop: incoming.stop,
            received_unix_ms: now,
            counted,
            grade_history: Vec::new(),
            build_features: incoming.build_features,
            cpu_features: incoming.cpu_features,
            truncated: incoming.truncated,
            trace_id,
            remote: incoming.remote,
            throughput: incoming.throughput,
        };
        let fresh = match &next {
            Some(_) => self.store.insert_result(&record)?,
            None => false, // not a live job (finished or unknown run): nothing to count
        };
        if fresh {
            self.observer
                .result_ingested(matches!(next, Some((Ok(_), _))));
        }
        if let Some((Ok(state), _)) = next
            && fresh
        {
            let job = self
                .update_job(&record.job_id, |job| {
                    job.state = state;
                    if let Some(a) = job.attempt_mut(record.attempt) {
                        a.ended_unix_ms = Some(now);
                        a.end = Some(AttemptEnd::Succeeded);
                    }
                    job.clone()
                })
                .ok_or_else(|| SchedulerError::NoSuchRun(record.run_id.clone()))?;
            self.store.put_job(&job)?;
            self.observer
                .ended(&job, record.attempt, Ended::Succeeded(&record));
            if let Some(model) = self
                .runs
                .get(&job.run_id)
                .and_then(|r| r.models.get(job.model_index as usize))
                // A remote job's speed is the endpoint's, not the worker's; a throughput job's
                // timings are no generation's.
                && model.remote().is_none()
                && !measured
            {
                let model = model.sha256.clone();
                self.learn(worker_id, &model, &record.timings);
            }
            if let Some(w) = self.workers.get_mut(worker_id) {
                w.record.jobs_done += 1;
                w.failures_in_a_row = 0;
                w.record.last_seen_unix_ms = now;
                self.dirty_workers.insert(worker_id.to_string());
            }
            self.emit(&job, (!measured).then_some(record.grade.verdict));
            self.job_ended(&job.run_id, job.model_index)?;
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
        let now = self.now();
        let Some(job) = self.jobs.get(job_id) else {
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
                let retried = state == JobState::Queued;
                let failed = state == JobState::Failed;
                let observed = end.clone();
                let job = self
                    .update_job(job_id, |job| {
                        job.state = state;
                        if let Some(a) = job.attempt_mut(attempt) {
                            a.ended_unix_ms = Some(now);
                            a.end = Some(end);
                        }
                        job.clone()
                    })
                    .ok_or_else(|| SchedulerError::NoSuchRun(job_id.to_string()))?;
                self.store.put_job(&job)?;
                self.observer.ended(
                    &job,
                    attempt,
                    Ended::Without {
                        end: &observed,
                        retried,
                        failed,
                    },
                );
                self.emit(&job, None);
                self.job_ended(&job.run_id, job.model_index)?;
            }
            Err(TransitionError::Stale { .. }) => {
                debug!(job = %job_id, attempt, "failure of a superseded attempt ignored");
            }
            Err(err) => warn!(job = %job_id, error = %err, "failure not applied"),
        }
        Ok(())
    }

    /// Workers silent past their lease are lost; jobs assigned but never started within a lease,
    /// and jobs running past their time limit plus a lease, are taken back. Costs the workers and
    /// the jobs they hold, not the queue.
    pub(super) fn expire_leases(&mut self) -> Result<(), SchedulerError> {
        let lease_ms = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
        let now = self.now();
        let lost: Vec<String> = self
            .workers
            .iter()
            .filter(|(id, w)| {
                now.saturating_sub(w.seen.last()) > lease_ms
                    && (w.conn.is_some() || self.index.held_count(id) > 0)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in lost {
            if let Some(w) = self.workers.get_mut(&id)
                && w.conn.take().is_some()
            {
                w.disconnected_ms = Some(now);
                warn!(worker = %id, lease_ms, "worker lease expired; marking lost");
                self.observer.worker_lost(&w.record.hardware_class);
            }
            for (job_id, attempt) in self.held_by(&id) {
                self.end_attempt(
                    &job_id,
                    attempt,
                    AttemptEnd::Lost("worker lease expired".into()),
                )?;
            }
            // The entry stays (disconnected): what was measured about the worker survives until
            // it comes back, or until it is pruned below.
        }
        let mut overdue: Vec<(String, u32, &'static str)> = Vec::new();
        for (worker_id, held) in &self.index.held {
            let reported = self.workers.get(worker_id).map(|w| &w.reported);
            for (job_id, attempt) in held {
                let Some(job) = self.jobs.get(job_id) else {
                    continue;
                };
                let Some(a) = job.attempts.iter().find(|a| a.attempt == *attempt) else {
                    continue;
                };
                match &job.state {
                    // Assigned a lease ago, not started, and not in the worker's heartbeats: the
                    // assignment was lost. (A job waiting behind another on its worker is
                    // reported in every heartbeat.)
                    JobState::Assigned { .. }
                        if now.saturating_sub(a.assigned_unix_ms) > lease_ms
                            && !reported
                                .is_some_and(|r| r.contains(&(job_id.clone(), *attempt))) =>
                    {
                        overdue.push((job_id.clone(), *attempt, "assigned but never started"));
                    }
                    // The worker cancels a job at its time limit and reports; one that says
                    // nothing for a lease beyond that limit will not.
                    JobState::Running { .. }
                        if a.timeout_ms > 0
                            && now.saturating_sub(
                                a.started_unix_ms.unwrap_or(a.assigned_unix_ms),
                            ) > i64::from(a.timeout_ms).saturating_add(lease_ms) =>
                    {
                        overdue.push((
                            job_id.clone(),
                            *attempt,
                            "no answer within the job's time limit",
                        ));
                    }
                    _ => {}
                }
            }
        }
        for (job_id, attempt, why) in overdue {
            self.end_attempt(&job_id, attempt, AttemptEnd::Lost(why.into()))?;
        }
        let stale: Vec<String> = self
            .workers
            .iter()
            .filter(|(id, w)| {
                w.conn.is_none()
                    && w.disconnected_ms
                        .is_some_and(|t| now.saturating_sub(t) > PRUNE_AFTER_MS)
                    && self.index.held_count(id) == 0
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            self.workers.remove(&id);
        }
        Ok(())
    }

    /// Places queued jobs on free workers and sends the assignments.
    pub(super) fn schedule(&mut self) -> Result<(), SchedulerError> {
        if self.index.queued.is_empty() {
            return Ok(());
        }
        let workers = self.worker_views();
        let free: u32 = workers
            .iter()
            .filter(|w| w.accepting)
            .map(|w| w.free_slots)
            .sum();
        if free == 0 {
            return Ok(());
        }
        // Placement sees the head of the queue, not all of it: a step can place at most `free`
        // jobs, and building the view of a 100,000-job queue for each step made the queue's
        // length, not the farm's, the scheduler's cost. The window is generous (pinned jobs of
        // one run are interleaved in expansion order, one per target, so the head holds every
        // target's next jobs for up to a few hundred targets).
        let window = (free as usize).saturating_mul(8).saturating_add(256);
        let queue = self.pending_jobs(window);
        for placement in place_views(&queue, workers) {
            self.assign(&placement.job_id, &placement.worker_id)?;
        }
        Ok(())
    }

    /// Writes attempt `n + 1` of `job_id` on `worker_id` and queues its assignment, which
    /// [`Scheduler::commit`] sends once the attempt is durable.
    pub(super) fn assign(&mut self, job_id: &str, worker_id: &str) -> Result<(), SchedulerError> {
        let Some(job) = self.jobs.get(job_id) else {
            return Ok(());
        };
        let Some(run) = self.runs.get(&job.run_id) else {
            return Ok(());
        };
        let Some(model) = run.models.get(job.model_index as usize) else {
            return Ok(());
        };
        let Some(attempt) = u32::try_from(job.attempts.len())
            .ok()
            .and_then(|n| n.checked_add(1))
        else {
            return Ok(());
        };
        let max_tokens = run.job_tokens(job);
        let timeout = match model.remote() {
            Some(remote) => self.remote_job_timeout(remote),
            None => self.job_timeout(worker_id, max_tokens, model.size_bytes),
        };
        let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
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
        let key = JobKey::new(job.id.clone(), attempt);
        let (worker_name, class) = self
            .workers
            .get(worker_id)
            .map(|w| (w.record.name.as_str(), w.record.hardware_class.as_str()))
            .unwrap_or_default();
        let trace_parent = self.observer.assigned(Assigned {
            job,
            attempt,
            model: &model.name,
            worker_id,
            worker_name,
            hardware_class: class,
            run_trace_parent: &run.trace_parent,
        });
        // A throughput job needs no suite (it runs a llama-bench test, not a task); a task's
        // suite goes to a connection once, and by digest after that.
        let suite_sha256 = match job.throughput {
            Some(_) => String::new(),
            None => self
                .suite_digests
                .entry(run.id.clone())
                .or_insert_with(|| benchfarm_modelfile::sha256_bytes(run.suite_toml.as_bytes()))
                .clone(),
        };
        let known = suite_sha256.is_empty()
            || self
                .workers
                .get(worker_id)
                .is_some_and(|w| w.knows_suite(&suite_sha256));
        let message = ToWorker::Assign(Box::new(Assignment {
            key: key.clone(),
            run_id: run.id.clone(),
            model: model.clone(),
            suite_toml: (!known).then(|| run.suite_toml.clone()),
            suite_sha256: suite_sha256.clone(),
            suite_name: run.suite_name.clone(),
            suite_version: run.suite_version.clone(),
            task_id: job.task_id.clone(),
            repetition: job.repetition,
            seed: job.seed,
            timeout_ms,
            throughput: job.throughput,
            trace_parent: trace_parent.clone(),
        }));
        let sha256 = model.sha256.clone();
        let fetch = self.fetch_bytes(model);
        let now = self.now();
        let job = self
            .update_job(job_id, |job| {
                job.state = state;
                job.attempts.push(Attempt {
                    attempt,
                    worker_id: worker_id.to_string(),
                    assigned_unix_ms: now,
                    started_unix_ms: None,
                    ended_unix_ms: None,
                    end: None,
                    timeout_ms,
                    trace_parent,
                });
                job.clone()
            })
            .ok_or_else(|| SchedulerError::NoSuchRun(job_id.to_string()))?;
        self.store.put_job(&job)?;
        if let Some(w) = self.workers.get_mut(worker_id) {
            // Sent to fetch it: counted as the worker's until its reports say so themselves.
            let has = w
                .record
                .models
                .iter()
                .chain(&w.cache.models)
                .any(|m| m.sha256 == sha256);
            if let Some(bytes) = fetch
                && !has
            {
                w.incoming
                    .entry(sha256.clone())
                    .or_insert((bytes, (job_id.to_string(), attempt)));
            }
            w.loaded = Some(sha256);
            if !suite_sha256.is_empty() {
                w.sent_suite(&suite_sha256);
            }
        }
        debug!(job = %job.id, attempt, worker = %worker_id, "job assigned");
        self.assignments.push((worker_id.to_string(), key, message));
        self.emit(&job, None);
        Ok(())
    }
}
