//! The scheduler: one task that owns the job queue and the connected workers.
//!
//! Everything that changes a job or a worker arrives as a [`Command`] on one mpsc channel and is
//! handled in order by [`core::Scheduler`], so there are no locks and no races between a result, a
//! lease expiry and a cancel. gRPC services hold a cheap [`SchedulerHandle`]; a worker is, to the
//! scheduler, only an mpsc sender of [`CoordinatorMessage`]s (which is also how tests fake one).

mod core;
pub mod estimates;
pub mod placement;
pub mod status;

use std::time::Duration;

use benchfarm_proto::v1::{CoordinatorMessage, RunEvent, Welcome};
use benchfarm_suite::Grade;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::records::{RunRecord, Timings, WorkerRecord};
use crate::store::Store;
pub use status::RunProgress;

/// The channel on which the scheduler talks to one connected worker.
pub type Outbox = mpsc::Sender<CoordinatorMessage>;

/// Tunables of the scheduler.
#[derive(Debug, Clone)]
pub struct Config {
    /// A worker silent this long is lost; its jobs go back to the queue.
    pub lease: Duration,
    /// Attempts per job before it is marked failed.
    pub max_attempts: u32,
    /// Hard limit of one attempt, sent with each assignment.
    pub job_timeout: Duration,
    /// How often leases are checked.
    pub tick: Duration,
    /// Failed attempts in a row after which a worker is quarantined (0: never).
    pub quarantine_after: u32,
    /// The shortest timeout a job gets, however fast its worker (capped by `job_timeout`).
    pub job_timeout_floor: Duration,
    /// Jobs sent to a worker beyond its free slots, to wait there: hides the round trip between
    /// one job's result and the next assignment (worth 5 % of the makespan on farm_sim, whose
    /// jobs are short; docs/benchmarks.md). Placement counts a waiting job in the worker's
    /// `busy_for`, so a slow worker is not handed the tail; "assigned but never started" spares
    /// the jobs a worker reports waiting in its heartbeats.
    pub prefetch: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            lease: Duration::from_secs(30),
            max_attempts: 3,
            job_timeout: Duration::from_secs(600),
            tick: Duration::from_millis(500),
            quarantine_after: 3,
            job_timeout_floor: Duration::from_secs(30),
            prefetch: 1,
        }
    }
}

/// A worker's hello, in domain terms.
#[derive(Debug, Clone)]
pub struct Joining {
    pub record: WorkerRecord,
    /// (job id, attempt) the worker is still running from an earlier connection.
    pub running: Vec<(String, u32)>,
}

/// A graded answer from a worker.
#[derive(Debug, Clone)]
pub struct IncomingResult {
    pub job_id: String,
    pub attempt: u32,
    pub answer: String,
    pub grade: Grade,
    pub timings: Timings,
    pub threads: u32,
    pub chat_template: String,
    pub stop: String,
}

/// Something a connected worker said.
#[derive(Debug, Clone)]
pub enum WorkerEvent {
    /// `draining`: the worker is leaving and takes no new jobs.
    Heartbeat {
        running: Vec<(String, u32)>,
        draining: bool,
    },
    Started {
        job_id: String,
        attempt: u32,
    },
    Result(Box<IncomingResult>),
    Failed {
        job_id: String,
        attempt: u32,
        reason: String,
        /// Given back unstarted by a draining worker: requeued without using up an attempt.
        not_started: bool,
    },
}

/// A worker as `coordinator workers` shows it.
#[derive(Debug, Clone)]
pub struct WorkerSummary {
    pub record: WorkerRecord,
    pub connected: bool,
    pub draining: bool,
    pub running: Vec<String>,
    pub quarantined: Option<String>,
    /// Measured tokens per second, once it has run a job.
    pub speed: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("no run {0}")]
    NoSuchRun(String),
    #[error("no worker {0}")]
    NoSuchWorker(String),
    /// The request is valid but cannot be carried out now (e.g. `--strict` and no capable worker).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("the scheduler has stopped")]
    Stopped,
}

/// The messages the scheduler task handles, one at a time.
#[derive(Debug)]
pub enum Command {
    Join {
        worker: Box<Joining>,
        conn: u64,
        outbox: Outbox,
        reply: oneshot::Sender<Welcome>,
    },
    Event {
        worker_id: String,
        conn: u64,
        event: WorkerEvent,
    },
    Leave {
        worker_id: String,
        conn: u64,
        reason: String,
    },
    /// `strict`: refuse the run if a model has no connected worker able to run it.
    Submit {
        run: Box<RunRecord>,
        strict: bool,
        reply: oneshot::Sender<Result<u32, SchedulerError>>,
    },
    Cancel {
        run_id: String,
        reply: oneshot::Sender<Result<u32, SchedulerError>>,
    },
    Progress {
        run_id: String,
        reply: oneshot::Sender<Result<RunProgress, SchedulerError>>,
    },
    ListRuns {
        reply: oneshot::Sender<Result<Vec<RunProgress>, SchedulerError>>,
    },
    ListWorkers {
        reply: oneshot::Sender<Vec<WorkerSummary>>,
    },
    Drain {
        worker: String,
        reply: oneshot::Sender<Result<WorkerSummary, SchedulerError>>,
    },
    Clear {
        worker: String,
        reply: oneshot::Sender<Result<WorkerSummary, SchedulerError>>,
    },
}

/// A handle to the scheduler task; clone it freely.
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    tx: mpsc::Sender<Command>,
    events: broadcast::Sender<RunEvent>,
}

impl SchedulerHandle {
    /// Sends a command that expects no answer.
    pub async fn send(&self, command: Command) -> Result<(), SchedulerError> {
        self.tx
            .send(command)
            .await
            .map_err(|_| SchedulerError::Stopped)
    }

    /// Sends a command built around a reply channel and waits for the answer.
    pub async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, SchedulerError> {
        let (reply, rx) = oneshot::channel();
        self.send(make(reply)).await?;
        rx.await.map_err(|_| SchedulerError::Stopped)
    }

    /// Every run event from now on (a watcher filters by run; a lagging one is dropped by its stream).
    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.events.subscribe()
    }
}

/// Loads the live state from `store` and starts the scheduler task. It runs until `shutdown` fires;
/// dropping `_done` when it returns tells the server it has flushed.
pub fn spawn(
    store: Store,
    config: Config,
    shutdown: broadcast::Receiver<()>,
    done: mpsc::Sender<()>,
) -> Result<SchedulerHandle, SchedulerError> {
    let (tx, rx) = mpsc::channel(1024);
    // Watchers that fall this far behind are dropped rather than slowing the scheduler down.
    let (events, _) = broadcast::channel(4096);
    let scheduler = core::Scheduler::load(store, config, events.clone())?;
    tokio::spawn(scheduler.run(rx, shutdown, done));
    Ok(SchedulerHandle { tx, events })
}
