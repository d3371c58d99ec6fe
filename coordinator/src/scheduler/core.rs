//! The scheduler task's state and its handling of each [`Command`].
//!
//! Live runs and their jobs are held in memory (and every change is written to the store before it
//! is acted on or acknowledged); finished runs are read from the store. Job state changes go through
//! the pure [`transition`](crate::job::transition); placement through the pure
//! [`place`](super::placement::place). This file is the glue: it applies their decisions, persists
//! them and tells workers and watchers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use benchfarm_proto::v1::{
    self as pb, CoordinatorMessage, RunEvent, Welcome, coordinator_message::Kind,
};
use tokio::sync::{broadcast, mpsc};
use tracing::{debug, info, warn};

use super::placement::{PendingJob, WorkerView, place};
use super::status::{Capability, RunProgress, progress, waiting_reasons};
use super::{
    Command, Config, IncomingResult, Joining, Outbox, SchedulerError, WorkerEvent, WorkerSummary,
};
use crate::job::{JobEvent, JobState, TransitionError, transition};
use crate::records::{Attempt, AttemptEnd, JobRecord, ResultRecord, RunRecord, RunState, now_ms};
use crate::store::Store;

/// A worker the scheduler knows in this process's life.
struct Worker {
    record: crate::records::WorkerRecord,
    /// The live connection; `None` after it closed.
    conn: Option<(u64, Outbox)>,
    last_seen: Instant,
    /// The model the worker ran last (its engine keeps it loaded).
    loaded: Option<String>,
    draining: bool,
}

pub(super) struct Scheduler {
    store: Store,
    config: Config,
    events: broadcast::Sender<RunEvent>,
    /// Runs in state `running`.
    runs: HashMap<String, RunRecord>,
    /// Every job of every live run; ordered by id = run submission order, then expansion order.
    jobs: BTreeMap<String, JobRecord>,
    workers: HashMap<String, Worker>,
}

impl Scheduler {
    /// Rebuilds the live state from the store after a (re)start. A job whose result was stored but
    /// whose state was not (a crash between the two writes) is done; jobs held by workers stay held
    /// for one lease, so a worker that reconnects in time carries on.
    pub(super) fn load(
        store: Store,
        config: Config,
        events: broadcast::Sender<RunEvent>,
    ) -> Result<Scheduler, SchedulerError> {
        let mut s = Scheduler {
            store,
            config,
            events,
            runs: HashMap::new(),
            jobs: BTreeMap::new(),
            workers: HashMap::new(),
        };
        let known_workers: HashMap<_, _> = s
            .store
            .workers()?
            .into_iter()
            .map(|w| (w.id.clone(), w))
            .collect();
        for run in s
            .store
            .runs()?
            .into_iter()
            .filter(|r| r.state == RunState::Running)
        {
            for mut job in s.store.jobs_of_run(&run.id)? {
                if !job.state.is_terminal() {
                    if let Some(done) = s.store.results_of_job(&job.id)?.iter().find(|r| r.counted)
                    {
                        job.state = JobState::Done {
                            attempt: done.attempt,
                        };
                        s.store.put_job(&job)?;
                    } else if let Some((worker_id, _)) = job.state.holder() {
                        if let (false, Some(record)) = (
                            s.workers.contains_key(worker_id),
                            known_workers.get(worker_id),
                        ) {
                            s.workers.insert(
                                worker_id.to_string(),
                                Worker {
                                    record: record.clone(),
                                    conn: None,
                                    last_seen: Instant::now(),
                                    loaded: None,
                                    draining: false,
                                },
                            );
                        }
                    }
                }
                s.jobs.insert(job.id.clone(), job);
            }
            info!(run = %run.id, "resuming run");
            s.runs.insert(run.id.clone(), run);
        }
        let run_ids: Vec<String> = s.runs.keys().cloned().collect();
        for run_id in run_ids {
            s.finish_if_complete(&run_id)?;
        }
        Ok(s)
    }

    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut shutdown: broadcast::Receiver<()>,
        _done: mpsc::Sender<()>,
    ) {
        let mut tick = tokio::time::interval(self.config.tick);
        loop {
            let outcome = tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.handle(command),
                    None => break,
                },
                _ = tick.tick() => self.expire_leases(),
                _ = shutdown.recv() => break,
            };
            if let Err(err) = outcome.and_then(|()| self.schedule()) {
                // A store error must not stop the farm; the operation that failed is logged and
                // retried by the next event (workers re-send unacknowledged results).
                warn!(error = %err, "scheduler step failed");
            }
        }
        if let Err(err) = self.store.flush() {
            warn!(error = %err, "flushing the store at shutdown failed");
        }
        info!("scheduler stopped");
    }

    fn handle(&mut self, command: Command) -> Result<(), SchedulerError> {
        match command {
            Command::Join {
                worker,
                conn,
                outbox,
                reply,
            } => {
                let welcome = self.join(*worker, conn, outbox)?;
                let _ = reply.send(welcome);
            }
            Command::Event {
                worker_id,
                conn,
                event,
            } => self.worker_event(&worker_id, conn, event)?,
            Command::Leave {
                worker_id,
                conn,
                reason,
            } => self.leave(&worker_id, conn, &reason)?,
            Command::Submit { run, reply } => {
                let _ = reply.send(self.submit(*run));
            }
            Command::Cancel { run_id, reply } => {
                let _ = reply.send(self.cancel(&run_id));
            }
            Command::Progress { run_id, reply } => {
                let _ = reply.send(self.progress(&run_id));
            }
            Command::ListRuns { reply } => {
                let _ = reply.send(self.list_runs());
            }
            Command::ListWorkers { reply } => {
                let _ = reply.send(self.list_workers());
            }
        }
        Ok(())
    }

    fn join(
        &mut self,
        joining: Joining,
        conn: u64,
        outbox: Outbox,
    ) -> Result<Welcome, SchedulerError> {
        let Joining {
            mut record,
            running,
        } = joining;
        let id = record.id.clone();
        if let Some(old) = self.store.workers()?.into_iter().find(|w| w.id == id) {
            record.jobs_done = old.jobs_done;
            record.jobs_failed = old.jobs_failed;
        }
        record.last_seen_unix_ms = now_ms();
        self.store.put_worker(&record)?;
        info!(worker = %id, name = %record.name, models = record.models.len(), slots = record.slots,
              threads = record.threads, class = %record.hardware_class, "worker joined");
        let loaded = self.workers.get(&id).and_then(|w| w.loaded.clone());
        self.workers.insert(
            id.clone(),
            Worker {
                record,
                conn: Some((conn, outbox)),
                last_seen: Instant::now(),
                loaded,
                draining: false,
            },
        );
        // Jobs this worker held before that it no longer runs (it restarted) go back to the queue.
        let still_running: HashSet<(String, u32)> = running.into_iter().collect();
        for (job_id, attempt) in self.held_by(&id) {
            if !still_running.contains(&(job_id.clone(), attempt)) {
                self.end_attempt(
                    &job_id,
                    attempt,
                    AttemptEnd::Lost("worker restarted".into()),
                )?;
            }
        }
        let lease_ms = self.config.lease.as_millis() as u32;
        Ok(Welcome {
            lease_ms,
            heartbeat_ms: lease_ms / 2,
            coordinator_version: env!("CARGO_PKG_VERSION").to_string(),
        })
    }

    fn leave(&mut self, worker_id: &str, conn: u64, reason: &str) -> Result<(), SchedulerError> {
        let Some(worker) = self.workers.get_mut(worker_id) else {
            return Ok(());
        };
        // A stream that closes after the worker reconnected on a new one is old news.
        if worker.conn.as_ref().map(|(c, _)| *c) != Some(conn) {
            return Ok(());
        }
        worker.conn = None;
        info!(worker = %worker_id, reason, "worker left");
        for (job_id, attempt) in self.held_by(worker_id) {
            self.end_attempt(
                &job_id,
                attempt,
                AttemptEnd::Lost(format!("worker disconnected: {reason}")),
            )?;
        }
        Ok(())
    }

    fn worker_event(
        &mut self,
        worker_id: &str,
        conn: u64,
        event: WorkerEvent,
    ) -> Result<(), SchedulerError> {
        let Some(worker) = self.workers.get_mut(worker_id) else {
            warn!(worker = %worker_id, "message from an unknown worker ignored");
            return Ok(());
        };
        if worker.conn.as_ref().map(|(c, _)| *c) != Some(conn) {
            return Ok(());
        }
        worker.last_seen = Instant::now();
        match event {
            WorkerEvent::Heartbeat { draining, .. } => {
                if draining && !worker.draining {
                    info!(worker = %worker_id, "worker draining");
                }
                worker.draining = draining;
                Ok(())
            }
            WorkerEvent::Started { job_id, attempt } => self.started(&job_id, attempt),
            WorkerEvent::Result(result) => self.result(worker_id, *result),
            WorkerEvent::Failed {
                job_id,
                attempt,
                reason,
            } => {
                if let Some(w) = self.workers.get_mut(worker_id) {
                    w.record.jobs_failed += 1;
                }
                self.end_attempt(&job_id, attempt, AttemptEnd::Failed(reason))
            }
        }
    }

    fn started(&mut self, job_id: &str, attempt: u32) -> Result<(), SchedulerError> {
        let Some(job) = self.jobs.get_mut(job_id) else {
            return Ok(());
        };
        match transition(&job.state, &JobEvent::Start { attempt }) {
            Ok(state) if state != job.state => {
                job.state = state;
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
    fn result(&mut self, worker_id: &str, incoming: IncomingResult) -> Result<(), SchedulerError> {
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
            if let Some(w) = self.workers.get_mut(worker_id) {
                w.record.jobs_done += 1;
                w.record.last_seen_unix_ms = now_ms();
                self.store.put_worker(&w.record)?;
            }
            self.store.flush()?;
            self.emit(&job, Some(record.grade.verdict));
            self.finish_if_complete(&job.run_id)?;
        } else {
            self.store.flush()?;
            debug!(job = %record.job_id, attempt = record.attempt, fresh, "result not counted");
        }
        // Written (or known) before acknowledged: the worker may now forget it.
        self.send(worker_id, Kind::Ack(pb::ResultAck { key: Some(key) }));
        Ok(())
    }

    /// Ends `attempt` of a job without an answer; the job is retried or failed by the state machine.
    fn end_attempt(
        &mut self,
        job_id: &str,
        attempt: u32,
        end: AttemptEnd,
    ) -> Result<(), SchedulerError> {
        let max_attempts = self.config.max_attempts;
        let Some(job) = self.jobs.get_mut(job_id) else {
            return Ok(());
        };
        let attempts_made = job.attempts.len() as u32;
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
    fn expire_leases(&mut self) -> Result<(), SchedulerError> {
        let lease = self.config.lease;
        let lost: Vec<String> = self
            .workers
            .iter()
            .filter(|(_, w)| w.last_seen.elapsed() > lease)
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
            self.workers.remove(&id);
        }
        let now = now_ms();
        let unstarted: Vec<(String, u32)> = self
            .jobs
            .values()
            .filter_map(|j| match &j.state {
                JobState::Assigned { attempt, .. } => j
                    .attempts
                    .iter()
                    .find(|a| {
                        a.attempt == *attempt && now - a.assigned_unix_ms > lease.as_millis() as i64
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
    fn schedule(&mut self) -> Result<(), SchedulerError> {
        let queue: Vec<PendingJob> = self
            .jobs
            .values()
            .filter(|j| j.state == JobState::Queued)
            .filter_map(|j| {
                let model = self
                    .runs
                    .get(&j.run_id)?
                    .models
                    .get(j.model_index as usize)?;
                Some(PendingJob {
                    job_id: j.id.clone(),
                    run_id: j.run_id.clone(),
                    model: model.sha256.clone(),
                    scripted: model.is_scripted(),
                })
            })
            .collect();
        if queue.is_empty() {
            return Ok(());
        }
        let mut held: HashMap<&str, u32> = HashMap::new();
        for job in self.jobs.values() {
            if let Some((w, _)) = job.state.holder() {
                *held.entry(w).or_default() += 1;
            }
        }
        let views: Vec<WorkerView> = self
            .workers
            .values()
            .filter(|w| w.conn.is_some() && !w.draining)
            .map(|w| WorkerView {
                worker_id: w.record.id.clone(),
                free_slots: w
                    .record
                    .slots
                    .saturating_sub(held.get(w.record.id.as_str()).copied().unwrap_or(0)),
                models: w.record.models.iter().map(|m| m.sha256.clone()).collect(),
                loaded: w.loaded.clone(),
            })
            .collect();
        for placement in place(&queue, &views) {
            self.assign(&placement.job_id, &placement.worker_id)?;
        }
        Ok(())
    }

    fn assign(&mut self, job_id: &str, worker_id: &str) -> Result<(), SchedulerError> {
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
            timeout_ms: self.config.job_timeout.as_millis() as u32,
        });
        job.state = state;
        job.attempts.push(Attempt {
            attempt,
            worker_id: worker_id.to_string(),
            assigned_unix_ms: now_ms(),
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

    fn submit(&mut self, mut run: RunRecord) -> Result<u32, SchedulerError> {
        let jobs = crate::run::expand(&run);
        run.jobs_total = jobs.len() as u32;
        // Jobs first, then the run: a crash in between leaves jobs without a run, which are ignored.
        self.store.put_jobs(&jobs)?;
        self.store.put_run(&run)?;
        self.store.flush()?;
        info!(run = %run.id, jobs = jobs.len(), models = run.models.len(), "run submitted");
        for job in jobs {
            self.jobs.insert(job.id.clone(), job);
        }
        let total = run.jobs_total;
        self.runs.insert(run.id.clone(), run);
        Ok(total)
    }

    fn cancel(&mut self, run_id: &str) -> Result<u32, SchedulerError> {
        let Some(mut run) = self.runs.remove(run_id) else {
            return match self.store.run(run_id)? {
                Some(_) => Ok(0), // already over
                None => Err(SchedulerError::NoSuchRun(run_id.to_string())),
            };
        };
        let ids: Vec<String> = self
            .jobs
            .range(format!("{run_id}-")..)
            .take_while(|(k, _)| k.starts_with(run_id))
            .map(|(k, _)| k.clone())
            .collect();
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
    fn finish_if_complete(&mut self, run_id: &str) -> Result<(), SchedulerError> {
        let prefix = format!("{run_id}-");
        let mut jobs = self
            .jobs
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix));
        if jobs.any(|(_, j)| !j.state.is_terminal()) {
            return Ok(());
        }
        let Some(mut run) = self.runs.remove(run_id) else {
            return Ok(());
        };
        run.state = RunState::Finished;
        run.finished_unix_ms = Some(now_ms());
        self.store.put_run(&run)?;
        self.store.flush()?;
        let ids: Vec<String> = self
            .jobs
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for id in ids {
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

    fn progress(&self, run_id: &str) -> Result<RunProgress, SchedulerError> {
        match self.runs.get(run_id) {
            Some(run) => Ok(self.live_progress(run)),
            None => match self.store.run(run_id)? {
                Some(run) => self.stored_progress(&run),
                None => Err(SchedulerError::NoSuchRun(run_id.to_string())),
            },
        }
    }

    fn live_progress(&self, run: &RunRecord) -> RunProgress {
        let prefix = format!("{}-", run.id);
        let jobs: Vec<&JobRecord> = self
            .jobs
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, j)| j)
            .collect();
        let mut p = progress(run, &jobs);
        let queued: Vec<&JobRecord> = jobs
            .iter()
            .copied()
            .filter(|j| j.state == JobState::Queued)
            .collect();
        let models: Vec<(HashSet<String>, bool)> = self
            .workers
            .values()
            .filter(|w| w.conn.is_some())
            .map(|w| {
                (
                    w.record.models.iter().map(|m| m.sha256.clone()).collect(),
                    !w.draining,
                )
            })
            .collect();
        let caps: Vec<Capability<'_>> = models
            .iter()
            .map(|(m, a)| Capability {
                models: m,
                accepting: *a,
            })
            .collect();
        p.waiting = waiting_reasons(run, &queued, &caps);
        p
    }

    fn stored_progress(&self, run: &RunRecord) -> Result<RunProgress, SchedulerError> {
        let jobs = self.store.jobs_of_run(&run.id)?;
        Ok(progress(run, &jobs.iter().collect::<Vec<_>>()))
    }

    fn list_runs(&self) -> Result<Vec<RunProgress>, SchedulerError> {
        self.store
            .runs()?
            .iter()
            .map(|r| match self.runs.get(&r.id) {
                Some(live) => Ok(self.live_progress(live)),
                None => self.stored_progress(r),
            })
            .collect()
    }

    fn list_workers(&self) -> Vec<WorkerSummary> {
        let mut out: Vec<WorkerSummary> = self
            .store
            .workers()
            .unwrap_or_default()
            .into_iter()
            .map(|record| {
                let live = self.workers.get(&record.id);
                WorkerSummary {
                    connected: live.is_some_and(|w| w.conn.is_some()),
                    draining: live.is_some_and(|w| w.draining),
                    running: self
                        .held_by(&record.id)
                        .into_iter()
                        .map(|(j, a)| format!("{j}#{a}"))
                        .collect(),
                    record: live.map(|w| w.record.clone()).unwrap_or(record),
                }
            })
            .collect();
        out.sort_by(|a, b| (b.connected, &a.record.name).cmp(&(a.connected, &b.record.name)));
        out
    }

    /// (job id, attempt) of every live job held by `worker_id`.
    fn held_by(&self, worker_id: &str) -> Vec<(String, u32)> {
        self.jobs
            .values()
            .filter_map(|j| match j.state.holder() {
                Some((w, attempt)) if w == worker_id => Some((j.id.clone(), attempt)),
                _ => None,
            })
            .collect()
    }

    /// Sends to a connected worker without waiting; false when it is gone or hopelessly behind.
    fn send(&self, worker_id: &str, kind: Kind) -> bool {
        let Some((_, outbox)) = self.workers.get(worker_id).and_then(|w| w.conn.as_ref()) else {
            return false;
        };
        outbox
            .try_send(CoordinatorMessage { kind: Some(kind) })
            .is_ok()
    }

    /// Tells watchers that `job` changed.
    fn emit(&self, job: &JobRecord, verdict: Option<benchfarm_suite::Verdict>) {
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
