//! The scheduler task's state and its handling of each [`Command`].
//!
//! Live runs and their jobs are held in memory (and every change is written to the store before it
//! is acted on or acknowledged); finished runs are read from the store. Job state changes go through
//! the pure [`transition`](crate::job::transition); placement through the pure
//! [`place`](super::placement::place). These files are the glue: they apply those decisions, persist
//! them and tell workers and watchers. `jobs.rs` handles jobs, `runs.rs` runs, `views.rs` builds
//! what placement and users see; this file holds the state and the worker connections.

mod jobs;
mod runs;
mod views;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use benchfarm_proto::v1::{
    self as pb, CoordinatorMessage, RunEvent, Welcome, coordinator_message::Kind,
};
use tokio::sync::{broadcast, mpsc};
use tracing::{info, warn};

use super::{Command, Config, Joining, Outbox, SchedulerError, WorkerEvent, WorkerSummary};
use crate::job::JobState;
use crate::records::{AttemptEnd, JobRecord, RunRecord, RunState, now_ms};
use crate::store::Store;

/// Commands handled before one group commit (flush + acks), at most.
const GROUP_COMMIT_MAX: usize = 256;
/// The longest heartbeat interval a worker is told to use.
const HEARTBEAT_MAX_MS: u32 = 5_000;

/// A worker the scheduler knows in this process's life.
struct Worker {
    record: crate::records::WorkerRecord,
    /// The live connection; `None` after it closed.
    conn: Option<(u64, Outbox)>,
    last_seen: Instant,
    /// The model the worker ran last (its engine keeps it loaded).
    loaded: Option<String>,
    draining: bool,
    /// Measured generation speed (tokens/s, moving average over its jobs); `None` before its first.
    speed: Option<f64>,
    /// Measured model load time (seconds, moving average over its cold jobs).
    load_seconds: Option<f64>,
    /// The jobs it said it holds (running or waiting) in its last heartbeat.
    reported: HashSet<(String, u32)>,
    /// Failed attempts in a row; reset by a success or a reconnect.
    failures_in_a_row: u32,
    /// Why it gets no new jobs, when quarantined.
    quarantined: Option<String>,
}

impl Worker {
    fn new(record: crate::records::WorkerRecord, conn: Option<(u64, Outbox)>) -> Worker {
        Worker {
            record,
            conn,
            last_seen: Instant::now(),
            loaded: None,
            draining: false,
            speed: None,
            load_seconds: None,
            reported: HashSet::new(),
            failures_in_a_row: 0,
            quarantined: None,
        }
    }

    fn accepting(&self) -> bool {
        self.conn.is_some() && !self.draining && self.quarantined.is_none()
    }
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
    /// Results and failures stored but not yet acknowledged: sent after the next flush.
    acks: Vec<(String, pb::JobKey)>,
    /// Mean generated tokens per job, by model sha256: the expected size of a job, for placement.
    model_tokens: HashMap<String, (f64, u32)>,
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
            model_tokens: HashMap::new(),
            acks: Vec::new(),
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
                            s.workers
                                .insert(worker_id.to_string(), Worker::new(record.clone(), None));
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
            let mut outcome = tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.handle(command),
                    None => break,
                },
                _ = tick.tick() => self.expire_leases(),
                _ = shutdown.recv() => break,
            };
            // Group commit: take whatever else is already waiting, then make it all durable with
            // one flush and only then acknowledge. One fsync per result would make the store, not
            // the workers, the farm's bottleneck.
            for _ in 0..GROUP_COMMIT_MAX {
                let Ok(command) = commands.try_recv() else {
                    break;
                };
                outcome = outcome.and(self.handle(command));
            }
            outcome = outcome.and_then(|()| self.commit());
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

    /// Flushes the store, then acknowledges every result and failure written since the last commit:
    /// a worker forgets a result only once it is durable here.
    fn commit(&mut self) -> Result<(), SchedulerError> {
        if self.acks.is_empty() {
            return Ok(());
        }
        self.store.flush()?;
        for (worker_id, key) in std::mem::take(&mut self.acks) {
            self.send(&worker_id, Kind::Ack(pb::ResultAck { key: Some(key) }));
        }
        Ok(())
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
            Command::Submit { run, strict, reply } => {
                let _ = reply.send(self.submit(*run, strict));
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
            Command::Drain { worker, reply } => {
                let _ = reply.send(self.drain(&worker));
            }
            Command::Clear { worker, reply } => {
                let _ = reply.send(self.clear(&worker));
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
        // A reconnect keeps what was measured and loaded; it lifts a quarantine (the operator may
        // have fixed the machine) and a drain (the worker came back on purpose).
        let previous = self.workers.remove(&id);
        let mut worker = Worker::new(record, Some((conn, outbox)));
        if let Some(previous) = previous {
            worker.loaded = previous.loaded;
            worker.speed = previous.speed;
            worker.load_seconds = previous.load_seconds;
        }
        self.workers.insert(id.clone(), worker);
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
            // Half the lease, so one lost heartbeat does not lose the worker; at most every 5 s, so
            // the coordinator's view of what a worker holds (and `coordinator workers`) stays fresh
            // with a long lease.
            heartbeat_ms: (lease_ms / 2).min(HEARTBEAT_MAX_MS),
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
            WorkerEvent::Heartbeat { draining, running } => {
                if draining && !worker.draining {
                    info!(worker = %worker_id, "worker draining");
                }
                worker.draining = draining;
                worker.reported = running.into_iter().collect();
                Ok(())
            }
            WorkerEvent::Started { job_id, attempt } => self.started(&job_id, attempt),
            WorkerEvent::Result(result) => self.result(worker_id, *result),
            WorkerEvent::Failed {
                job_id,
                attempt,
                reason,
                not_started,
            } => {
                // A job given back unstarted is no failure of the worker's at all; a failure
                // re-sent after a reconnect is not counted against the worker twice.
                let end = if not_started {
                    AttemptEnd::Returned(reason)
                } else {
                    let current = self.jobs.get(&job_id).and_then(|j| j.state.holder())
                        == Some((worker_id, attempt));
                    if current {
                        self.note_failure(worker_id);
                    }
                    AttemptEnd::Failed(reason)
                };
                self.end_attempt(&job_id, attempt, end)?;
                // Failures are acknowledged like results, so the worker's outbox can forget them.
                self.acks
                    .push((worker_id.to_string(), pb::JobKey { job_id, attempt }));
                Ok(())
            }
        }
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

    /// Counts a failed attempt against a worker; enough in a row quarantine it (no new jobs until
    /// it reconnects or an operator clears it), so one broken machine cannot burn every job's
    /// attempts.
    fn note_failure(&mut self, worker_id: &str) {
        let limit = self.config.quarantine_after;
        let Some(w) = self.workers.get_mut(worker_id) else {
            return;
        };
        w.record.jobs_failed += 1;
        w.failures_in_a_row += 1;
        if limit > 0 && w.failures_in_a_row >= limit && w.quarantined.is_none() {
            let reason = format!("quarantined: {} failed jobs in a row", w.failures_in_a_row);
            warn!(worker = %worker_id, failures = w.failures_in_a_row, "worker quarantined");
            w.quarantined = Some(reason);
        }
    }

    /// The id of the worker named `who` (its id, or its name when that is unique).
    fn resolve_worker(&self, who: &str) -> Result<String, SchedulerError> {
        if self.workers.contains_key(who) {
            return Ok(who.to_string());
        }
        let named: Vec<&String> = self
            .workers
            .iter()
            .filter(|(_, w)| w.record.name == who)
            .map(|(id, _)| id)
            .collect();
        match named.as_slice() {
            [id] => Ok((*id).clone()),
            [] => Err(SchedulerError::NoSuchWorker(who.to_string())),
            _ => Err(SchedulerError::Refused(format!(
                "{} workers are named {who:?}; use the worker id",
                named.len()
            ))),
        }
    }

    /// `workers --drain`: no new jobs; the worker finishes what it runs and leaves.
    fn drain(&mut self, who: &str) -> Result<WorkerSummary, SchedulerError> {
        let id = self.resolve_worker(who)?;
        if let Some(w) = self.workers.get_mut(&id) {
            w.draining = true;
        }
        info!(worker = %id, "draining worker");
        self.send(
            &id,
            Kind::Drain(pb::Drain {
                reason: "drained by an operator".into(),
            }),
        );
        self.summary(&id)
    }

    /// `workers --clear`: lifts a quarantine.
    fn clear(&mut self, who: &str) -> Result<WorkerSummary, SchedulerError> {
        let id = self.resolve_worker(who)?;
        if let Some(w) = self.workers.get_mut(&id) {
            w.quarantined = None;
            w.failures_in_a_row = 0;
        }
        info!(worker = %id, "worker cleared");
        self.summary(&id)
    }
}
