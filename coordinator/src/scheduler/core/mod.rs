//! The scheduler's state and its handling of each [`Command`].
//!
//! Live runs and their jobs are held in memory (and every change is written to the store before it
//! is acted on or acknowledged); finished runs are read from the store. Job state changes go through
//! the pure [`transition`](crate::job::transition) and through [`Scheduler::update_job`], which keeps
//! the [`JobIndex`] in step; placement goes through the pure [`place`](super::placement::place).
//! These files are the glue: they apply those decisions, persist them and tell workers and watchers.
//! `jobs.rs` handles jobs, `runs.rs` runs, `workers.rs` the worker connections, `views.rs` builds
//! what placement and users see; this file holds the state, the loop and the commit.
//!
//! Time is read from the clock passed in, never from the system, and the loop is synchronous: the
//! tests drive [`Scheduler::step`] directly with fake workers that are plain channels
//! (`testbed.rs`), and crash it at any point by dropping it and reopening its in-memory store.

mod adaptive;
mod index;
mod jobs;
mod runs;
mod views;
mod workers;

#[cfg(test)]
mod adaptive_tests;
#[cfg(test)]
mod grading_tests;
#[cfg(test)]
mod interleavings;
#[cfg(test)]
mod limits_tests;
#[cfg(test)]
mod observed;
#[cfg(test)]
mod reporting_tests;
#[cfg(test)]
mod testbed;
#[cfg(test)]
pub(super) use testbed::worker_record as testbed_record;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};

use tokio::sync::broadcast;
use tracing::{info, warn};

use super::observe::{Observer, Unobserved};
use super::{Command, Config, JobKey, Liveness, Outbox, RunChange, SchedulerError, ToWorker};
use crate::clock::SharedClock;
use crate::grading::Graders;
use crate::job::JobState;
use crate::records::{JobRecord, RunRecord, RunState, UnixMs, WorkerRecord};
use crate::store::Store;
use index::JobIndex;

/// The longest heartbeat interval a worker is told to use.
const HEARTBEAT_MAX_MS: u32 = 5_000;

/// A worker the scheduler knows in this process's life.
struct Worker {
    record: WorkerRecord,
    /// The live connection; `None` after it closed.
    conn: Option<(u64, Outbox)>,
    /// When the connection last heard from it (stamped by the connection, see [`Liveness`]).
    seen: Liveness,
    /// When it was last disconnected, for pruning; `None` while connected.
    disconnected_ms: Option<UnixMs>,
    /// The model the worker ran last (its engine keeps it loaded).
    loaded: Option<String>,
    draining: bool,
    /// Measured generation speed (tokens/s, moving average over its jobs); `None` before its first.
    speed: Option<f64>,
    /// Measured model load time (seconds, moving average over its cold jobs).
    load_seconds: Option<f64>,
    /// The jobs it said it holds (running or waiting) in its last heartbeat or hello.
    reported: HashSet<(String, u32)>,
    /// Failed attempts in a row; reset by a success or a reconnect.
    failures_in_a_row: u32,
    /// Why it gets no new jobs, when quarantined.
    quarantined: Option<String>,
    /// Its model cache, as last reported.
    cache: super::CacheReport,
    /// Models it was sent to fetch that its reports do not show yet (sha256 → bytes, and the job
    /// that needs it): placement counts them as held and their bytes as taken until a heartbeat
    /// lists the model or the job.
    incoming: HashMap<String, (u64, (String, u32))>,
    /// The suites (by sha256) sent to it on which connection: a suite goes to a connection once,
    /// later assignments name it by digest.
    suites_sent: (u64, HashSet<String>),
}

impl Worker {
    fn new(record: WorkerRecord, conn: Option<(u64, Outbox)>, seen: Liveness) -> Worker {
        Worker {
            record,
            disconnected_ms: conn.is_none().then(|| seen.last()),
            conn,
            seen,
            loaded: None,
            draining: false,
            speed: None,
            load_seconds: None,
            reported: HashSet::new(),
            failures_in_a_row: 0,
            quarantined: None,
            cache: super::CacheReport::default(),
            incoming: HashMap::new(),
            suites_sent: (0, HashSet::new()),
        }
    }

    /// Whether this connection was sent suite `sha256` already.
    fn knows_suite(&self, sha256: &str) -> bool {
        matches!(&self.conn, Some((conn, _)) if *conn == self.suites_sent.0)
            && self.suites_sent.1.contains(sha256)
    }

    /// Records that this connection now has suite `sha256`.
    fn sent_suite(&mut self, sha256: &str) {
        let Some((conn, _)) = &self.conn else {
            return;
        };
        if self.suites_sent.0 != *conn {
            self.suites_sent = (*conn, HashSet::new());
        }
        self.suites_sent.1.insert(sha256.to_string());
    }

    fn accepting(&self) -> bool {
        self.conn.is_some() && !self.draining && self.quarantined.is_none()
    }
}

pub(super) struct Scheduler {
    store: Store,
    config: Config,
    clock: SharedClock,
    events: broadcast::Sender<RunChange>,
    /// Runs in state `running`.
    runs: HashMap<String, RunRecord>,
    /// Every job of every live run; ordered by id = run submission order, then expansion order.
    jobs: BTreeMap<String, JobRecord>,
    /// Queued jobs, held jobs per worker, job counts per run.
    index: JobIndex,
    workers: HashMap<String, Worker>,
    /// Results and failures stored but not yet acknowledged: sent after the next flush.
    acks: Vec<(String, JobKey)>,
    /// Assignments written but not yet durable: sent after the next flush, so that a (job, attempt)
    /// a worker has seen always survives a crash and is never handed out twice.
    assignments: Vec<(String, JobKey, ToWorker)>,
    /// Workers whose record changed in this step (a job done): written once each at the commit,
    /// before the flush, not once per result.
    dirty_workers: HashSet<String>,
    /// Mean generated tokens per job, by model sha256: the expected size of a job, for placement.
    model_tokens: HashMap<String, (f64, u32)>,
    /// The live runs' suites, shared with the connections that grade answers before they get here.
    graders: Graders,
    /// sha256 of each live run's suite text, by run id: assignments name the suite by it.
    suite_digests: HashMap<String, String>,
    /// Told about assignments, attempt ends and lost workers (spans, metrics); see
    /// [`super::observe`]. Does nothing unless the server installs one.
    observer: Box<dyn Observer>,
}

impl Scheduler {
    /// Rebuilds the live state from the store after a (re)start. A job whose result was stored but
    /// whose state was not (a crash between the two writes) is done; jobs held by workers stay held
    /// for one lease, so a worker that reconnects in time carries on. Records that cannot be decoded
    /// are skipped and reported, never a reason not to start.
    pub(super) fn load(
        store: Store,
        config: Config,
        clock: SharedClock,
        events: broadcast::Sender<RunChange>,
        graders: Graders,
    ) -> Result<Scheduler, SchedulerError> {
        let mut s = Scheduler {
            store,
            graders,
            config,
            clock,
            events,
            runs: HashMap::new(),
            jobs: BTreeMap::new(),
            index: JobIndex::default(),
            workers: HashMap::new(),
            model_tokens: HashMap::new(),
            acks: Vec::new(),
            assignments: Vec::new(),
            dirty_workers: HashSet::new(),
            suite_digests: HashMap::new(),
            observer: Box::new(Unobserved),
        };
        let now = s.now();
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
            let jobs = s.store.jobs_of_run(&run.id)?;
            s.graders.open(&run, &jobs);
            for mut job in jobs {
                if !job.state.is_terminal() {
                    if let Some(done) = s.store.results_of_job(&job.id)?.iter().find(|r| r.counted)
                    {
                        job.state = JobState::Done {
                            attempt: done.attempt,
                        };
                        s.store.put_job(&job)?;
                    } else if let Some((worker_id, _)) = job.state.holder()
                        && !s.workers.contains_key(worker_id)
                        && let Some(record) = known_workers.get(worker_id)
                    {
                        // Seen "now": the worker gets one lease from the restart to come back.
                        s.workers.insert(
                            worker_id.to_string(),
                            Worker::new(record.clone(), None, Liveness::new(now)),
                        );
                    }
                }
                s.insert_job(job);
            }
            info!(run = %run.id, "resuming run");
            s.runs.insert(run.id.clone(), run);
        }
        let run_ids: Vec<String> = s.runs.keys().cloned().collect();
        for run_id in run_ids {
            s.settle_run(&run_id)?;
        }
        let skipped = s.store.skipped();
        if !skipped.is_empty() {
            warn!(
                records = skipped.len(),
                "store has undecodable records; they were skipped (see `coordinator doctor`)"
            );
        }
        Ok(s)
    }

    /// Installs the observer told about job events from now on.
    pub(super) fn observe(&mut self, observer: Box<dyn Observer>) {
        self.observer = observer;
    }

    fn now(&self) -> UnixMs {
        self.clock.now_ms()
    }

    /// Makes everything durable before the thread ends (the driver's last call).
    pub(super) fn flush_at_shutdown(&mut self) {
        if let Err(err) = self.store.flush() {
            warn!(error = %err, "flushing the store at shutdown failed");
        }
        info!("scheduler stopped");
    }

    /// The live counts the metrics show: connected workers by hardware class, live jobs by
    /// state, and each running run's queue depth. Costs the workers and runs, not the jobs.
    pub(super) fn gauges(&self) -> super::observe::Gauges {
        let mut gauges = super::observe::Gauges::default();
        for w in self.workers.values().filter(|w| w.conn.is_some()) {
            *gauges
                .workers_connected
                .entry(w.record.hardware_class.clone())
                .or_default() += 1;
        }
        for (run_id, counts) in &self.index.counts {
            if self.runs.contains_key(run_id) {
                gauges.queue_depth.insert(run_id.clone(), counts.queued);
            }
        }
        gauges.queued = self.index.queued.len() as u64;
        for held in self.index.held.values() {
            for (job_id, _) in held {
                match self.jobs.get(job_id).map(|j| &j.state) {
                    Some(JobState::Assigned { .. }) => gauges.assigned += 1,
                    Some(JobState::Running { .. }) => gauges.running += 1,
                    _ => {}
                }
            }
        }
        gauges
    }

    /// Handles `commands` in order, places queued jobs, and commits. Returns false once a
    /// [`Command::Shutdown`] was among them (the commands before it are handled and committed).
    pub(super) fn step(&mut self, commands: Vec<Command>) -> bool {
        let mut outcome = Ok(());
        let mut go_on = true;
        for command in commands {
            if matches!(command, Command::Shutdown) {
                go_on = false;
                break;
            }
            outcome = outcome.and(self.handle(command));
        }
        if go_on {
            outcome = outcome.and(self.schedule());
        }
        if let Err(err) = outcome.and(self.commit()) {
            // A store error must not stop the farm; the operation that failed is logged and
            // retried by the next event (workers re-send unacknowledged results).
            warn!(error = %err, "scheduler step failed");
        }
        go_on
    }

    /// Flushes the store, then sends every assignment and acknowledgement written since the last
    /// commit: a worker forgets a result only once it is durable here, and gets a job only once
    /// its attempt is.
    fn commit(&mut self) -> Result<(), SchedulerError> {
        // Cleared only once all are written: after a store error they are written again.
        for worker_id in &self.dirty_workers {
            if let Some(w) = self.workers.get(worker_id) {
                self.store.put_worker(&w.record)?;
            }
        }
        self.dirty_workers.clear();
        if self.acks.is_empty() && self.assignments.is_empty() {
            return Ok(());
        }
        self.store.flush()?;
        for (worker_id, key, message) in std::mem::take(&mut self.assignments) {
            if !self.send(&worker_id, message) {
                self.end_attempt(
                    &key.job_id,
                    key.attempt,
                    crate::records::AttemptEnd::Lost("worker connection closed".into()),
                )?;
            }
        }
        for (worker_id, key) in std::mem::take(&mut self.acks) {
            self.send(&worker_id, ToWorker::Ack(key));
        }
        Ok(())
    }

    fn handle(&mut self, command: Command) -> Result<(), SchedulerError> {
        match command {
            Command::Join {
                worker,
                conn,
                outbox,
                seen,
                reply,
            } => {
                let welcome = self.join(*worker, conn, outbox, seen)?;
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
            Command::Regrade {
                run_id,
                suite,
                reply,
            } => {
                let _ = reply.send(self.regrade(&run_id, suite.map(|b| *b)));
            }
            Command::Tick => self.expire_leases()?,
            Command::Shutdown => {}
        }
        Ok(())
    }

    /// Adds a live job to memory and the index.
    fn insert_job(&mut self, job: JobRecord) {
        self.index.add(&job);
        self.jobs.insert(job.id.clone(), job);
    }

    /// Removes a live job from memory and the index.
    fn remove_job(&mut self, job_id: &str) -> Option<JobRecord> {
        let job = self.jobs.remove(job_id)?;
        self.index.remove(&job);
        Some(job)
    }

    /// Changes a live job through `f`, keeping the index in step; `None` when it is not live.
    fn update_job<R>(&mut self, job_id: &str, f: impl FnOnce(&mut JobRecord) -> R) -> Option<R> {
        let job = self.jobs.get_mut(job_id)?;
        self.index.remove(job);
        let out = f(job);
        self.index.add(job);
        Some(out)
    }

    /// (job id, attempt) of every live job held by `worker_id`.
    fn held_by(&self, worker_id: &str) -> Vec<(String, u32)> {
        self.index.held_by(worker_id)
    }

    /// Sends to a connected worker without waiting; false when it is gone or hopelessly behind.
    fn send(&self, worker_id: &str, message: ToWorker) -> bool {
        let Some((_, outbox)) = self.workers.get(worker_id).and_then(|w| w.conn.as_ref()) else {
            return false;
        };
        outbox.try_send(message).is_ok()
    }
}
