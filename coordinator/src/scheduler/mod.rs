//! The scheduler: one thread that owns the job queue and the connected workers.
//!
//! Everything that changes a job or a worker arrives as a [`Command`] on one mpsc channel and is
//! handled in order by [`core::Scheduler`], so there are no locks and no races between a result, a
//! lease expiry and a cancel. gRPC services hold a cheap [`SchedulerHandle`]; a worker is, to the
//! scheduler, only an mpsc sender of [`ToWorker`] messages (which is also how tests fake one). What
//! the scheduler says is in its own terms ([`outbound`]); the gRPC layer turns it into wire messages.
//!
//! The scheduler runs on its own OS thread, not on the async runtime: it writes and flushes the
//! store (fsync) inline, and a blocking call there would stall every connection. Its clock is passed
//! in ([`crate::clock`]); its liveness is watched ([`Supervision`]): if the thread dies the server
//! turns its health to NOT_SERVING and exits non-zero instead of serving a dead farm.

mod core;
mod driver;
pub mod estimates;
pub mod observe;
pub mod outbound;
pub mod placement;
pub mod status;
pub mod telemetry;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use benchfarm_suite::Grade;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::clock::SharedClock;
use crate::grading::Graders;
use crate::limits::Limits;
use crate::records::{RunRecord, Timings, UnixMs, WorkerRecord};
use crate::regrade::RegradeSummary;
use crate::store::Store;
pub use outbound::{Assignment, JobChange, JobKey, RunChange, ToWorker, Welcome};
pub use status::RunProgress;

/// When a connection last heard from its worker, stamped by the connection itself on every inbound
/// message: a scheduler busy with a long command must not mistake the heartbeats queued behind it
/// for silence (a worker is lost only when *it* is silent).
#[derive(Debug, Clone)]
pub struct Liveness(Arc<AtomicI64>);

impl Liveness {
    pub fn new(now_ms: UnixMs) -> Liveness {
        Liveness(Arc::new(AtomicI64::new(now_ms)))
    }

    pub fn stamp(&self, now_ms: UnixMs) {
        self.0.fetch_max(now_ms, Ordering::Relaxed);
    }

    pub fn last(&self) -> UnixMs {
        self.0.load(Ordering::Relaxed)
    }
}

/// The channel on which the scheduler talks to one connected worker.
pub type Outbox = mpsc::Sender<ToWorker>;

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
    /// The most jobs one run may expand to; a larger submit is refused.
    pub max_jobs_per_run: u32,
    /// What one submit, suite, answer and worker may claim (`coordinator serve --max-…`).
    pub limits: Limits,
    /// The registered models: a job of one may go to a worker that must fetch it first.
    pub catalog: crate::models::Catalog,
    /// The transfer rate placement assumes for a worker that has not fetched anything yet (bytes
    /// per second; `serve --transfer-rate` caps it).
    pub assumed_transfer_rate: f64,
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
            max_jobs_per_run: 1_000_000,
            limits: Limits::DEFAULT,
            catalog: crate::models::Catalog::default(),
            // A gigabit lab network, less the overheads: an estimate until a worker has fetched.
            assumed_transfer_rate: 50e6,
        }
    }
}

/// A worker's model cache as it reported it (hello and heartbeats).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheReport {
    /// The cache's limit; 0: the worker has no cache.
    pub capacity_bytes: u64,
    /// In use or being fetched: not evictable now.
    pub pinned_bytes: u64,
    /// Verified models in the cache.
    pub models: Vec<crate::records::WorkerModel>,
    /// Measured bytes per second of its fetches; 0 before its first.
    pub transfer_bytes_per_second: f64,
}

impl CacheReport {
    /// What the cache could take now.
    pub fn room(&self) -> u64 {
        self.capacity_bytes.saturating_sub(self.pinned_bytes)
    }
}

/// A worker's hello, in domain terms.
#[derive(Debug, Clone)]
pub struct Joining {
    pub record: WorkerRecord,
    /// (job id, attempt) the worker is still running from an earlier connection.
    pub running: Vec<(String, u32)>,
    /// (job id, attempt) of results and failures it holds unacknowledged and re-sends next: those
    /// attempts are not lost, their answers are on the way.
    pub unacknowledged: Vec<(String, u32)>,
    /// Its model cache.
    pub cache: CacheReport,
}

/// A graded answer from a worker.
#[derive(Debug, Clone)]
pub struct IncomingResult {
    pub job_id: String,
    pub attempt: u32,
    pub answer: String,
    /// The grade the worker sent: a claim, compared with the coordinator's own.
    pub grade: Grade,
    /// The coordinator's grade of `answer`, when the connection graded it on the blocking pool
    /// before handing the result over ([`SchedulerHandle::grade`]); the scheduler grades inline
    /// when it is `None`.
    pub coordinator_grade: Option<Grade>,
    /// The answer's length as received, when it was cut to the stored-answer limit.
    pub answer_truncated_from: Option<u64>,
    pub timings: Timings,
    pub threads: u32,
    pub chat_template: String,
    pub stop: String,
    /// The CPU features the worker's llama.cpp build uses, and those its CPU has (ggml's names).
    pub build_features: Vec<String>,
    pub cpu_features: Vec<String>,
    /// The worker cut the answer to fit the coordinator's message limit.
    pub truncated: bool,
    /// The HTTP side of a remote model's answer.
    pub remote: Option<crate::records::RemoteCall>,
    /// A throughput job's measurement (its `grade` is then a placeholder nobody reads).
    pub throughput: Option<crate::records::ThroughputMeasurement>,
}

/// Something a connected worker said.
#[derive(Debug, Clone)]
pub enum WorkerEvent {
    /// `draining`: the worker is leaving and takes no new jobs.
    /// `running`: the jobs it holds (running or waiting for a slot); `unacknowledged`: the results
    /// and failures it sent and still keeps. A running job in neither is no longer the worker's.
    Heartbeat {
        running: Vec<(String, u32)>,
        unacknowledged: Vec<(String, u32)>,
        draining: bool,
        /// Its model cache now (`None` from a worker that sends none).
        cache: Option<CacheReport>,
        /// RAM a job could use now (free memory plus what its engines' models hold); `None`
        /// from a worker that does not say, whose hello's figure then stands.
        ram_available_bytes: Option<u64>,
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
        /// Refused for what the job asks (scripted test features on a worker without
        /// `--allow-scripted-faults`): a try of the job, not a failure of the worker.
        refused: bool,
        /// The worker did not hold the suite its assignment named by digest: not started, and
        /// the next assignment carries the suite's text again.
        suite_unknown: bool,
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
    /// Its model cache, as last reported.
    pub cache: CacheReport,
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
    /// The request is malformed (a field out of range, a limit exceeded).
    #[error("{0}")]
    Invalid(String),
}

/// The messages the scheduler task handles, one at a time.
#[derive(Debug)]
pub enum Command {
    Join {
        worker: Box<Joining>,
        conn: u64,
        outbox: Outbox,
        seen: Liveness,
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
    /// Regrades a finished run with `suite` (its own when `None`): in the single writer, so two
    /// regrades at once keep both history entries.
    Regrade {
        run_id: String,
        suite: Option<Box<(benchfarm_suite::Suite, String)>>,
        /// The summary and the suite version the run is now graded with.
        reply: oneshot::Sender<Result<(RegradeSummary, String), SchedulerError>>,
    },
    /// Time to check leases and deadlines (sent by a ticker, so it is ordered with everything else).
    Tick,
    /// Flush and stop.
    Shutdown,
}

/// A handle to the scheduler; clone it freely.
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    tx: mpsc::Sender<Command>,
    events: broadcast::Sender<RunChange>,
    clock: SharedClock,
    limits: Limits,
    graders: Graders,
    catalog: crate::models::Catalog,
}

impl SchedulerHandle {
    /// The registered models (a submit resolves `registered = "..."` against them).
    pub fn catalog(&self) -> &crate::models::Catalog {
        &self.catalog
    }

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
    pub fn subscribe(&self) -> broadcast::Receiver<RunChange> {
        self.events.subscribe()
    }

    /// The scheduler's clock (connections stamp their [`Liveness`] with it).
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The limits the server runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Cuts the answer to the stored-answer limit and grades it with its run's suite, on the
    /// blocking pool: the scheduler thread then only compares and stores. A result for a job of no
    /// live run is left ungraded (the scheduler stores no such result).
    pub async fn grade(&self, result: &mut IncomingResult) {
        if let Some(before) =
            crate::grading::truncate_answer(&mut result.answer, self.limits.answer_bytes)
        {
            result.answer_truncated_from = Some(before);
        }
        let graders = self.graders.clone();
        let job_id = result.job_id.clone();
        let answer = result.answer.clone();
        if let Ok(grade) =
            tokio::task::spawn_blocking(move || graders.grade(&job_id, &answer)).await
        {
            result.coordinator_grade = grade;
        }
    }
}

/// How the scheduler thread ended: `Err` with the reason when it died (a panic) rather than
/// stopping on request.
pub type Supervision = oneshot::Receiver<Result<(), String>>;

/// Loads the live state from `store` and starts the scheduler thread, its ticker and its shutdown
/// listener. It runs until `shutdown` fires; dropping `done` when it returns tells the server it has
/// flushed. Must be called inside a tokio runtime (the ticker is a task).
pub fn spawn(
    store: Store,
    config: Config,
    clock: SharedClock,
    mut shutdown: broadcast::Receiver<()>,
    done: mpsc::Sender<()>,
) -> Result<(SchedulerHandle, Supervision), SchedulerError> {
    let (tx, rx) = mpsc::channel(1024);
    // Watchers that fall this far behind are dropped rather than slowing the scheduler down.
    let (events, _) = broadcast::channel(4096);
    let tick = config.tick;
    let limits = config.limits;
    let catalog = config.catalog.clone();
    let graders = Graders::default();
    let mut scheduler = core::Scheduler::load(
        store,
        config,
        clock.clone(),
        events.clone(),
        graders.clone(),
    )?;
    if benchfarm_telemetry::traces_on() || benchfarm_telemetry::metrics_on() {
        scheduler.observe(Box::new(telemetry::JobTelemetry::default()));
        if benchfarm_telemetry::metrics_on() {
            telemetry::describe();
        }
    }
    let (exited_tx, exited) = oneshot::channel();
    std::thread::Builder::new()
        .name("scheduler".into())
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                driver::drive(scheduler, rx)
            }))
            .map_err(|panic| panic_text(panic.as_ref()));
            let _ = exited_tx.send(outcome);
            drop(done);
        })
        .map_err(|e| SchedulerError::Refused(format!("cannot start the scheduler thread: {e}")))?;
    let ticker = tx.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            interval.tick().await;
            // A full queue already has work for the scheduler; this tick can be skipped.
            if let Err(mpsc::error::TrySendError::Closed(_)) = ticker.try_send(Command::Tick) {
                break;
            }
        }
    });
    let stopper = tx.clone();
    tokio::spawn(async move {
        let _ = shutdown.recv().await;
        let _ = stopper.send(Command::Shutdown).await;
    });
    Ok((
        SchedulerHandle {
            tx,
            events,
            clock,
            limits,
            graders,
            catalog,
        },
        exited,
    ))
}

/// The message of a panic payload.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    //! Finding 5 of issue 9: a scheduler that dies must not look healthy. Here it dies for real (its
    //! clock panics), and its supervision says so; the server turns that into NOT_SERVING and a
    //! non-zero exit (`grpc::server`).

    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::clock::Clock;

    #[derive(Debug, Default)]
    struct BreakingClock {
        broken: AtomicBool,
    }

    impl Clock for BreakingClock {
        fn now_ms(&self) -> UnixMs {
            assert!(!self.broken.load(Ordering::SeqCst), "the clock broke");
            1_700_000_000_000
        }
    }

    #[tokio::test]
    async fn a_dead_scheduler_is_reported_not_hidden() {
        let store = Store::in_memory(crate::store::MemoryKv::new()).expect("store");
        let clock = Arc::new(BreakingClock::default());
        let (shutdown, _) = broadcast::channel(1);
        let (done, mut finished) = mpsc::channel(1);
        let (handle, exited) = spawn(
            store,
            Config::default(),
            clock.clone(),
            shutdown.subscribe(),
            done,
        )
        .expect("spawn");
        clock.broken.store(true, Ordering::SeqCst);
        // A join reads the clock: the scheduler thread panics on it.
        let (outbox, _inbox) = mpsc::channel(8);
        let answer = handle
            .ask(|reply| Command::Join {
                worker: Box::new(Joining {
                    record: crate::scheduler::core::testbed_record("w1", 1),
                    running: Vec::new(),
                    unacknowledged: Vec::new(),
                    cache: CacheReport::default(),
                }),
                conn: 1,
                outbox,
                seen: Liveness::new(0),
                reply,
            })
            .await;
        assert!(matches!(answer, Err(SchedulerError::Stopped)), "{answer:?}");
        let why = exited.await.expect("supervision answers");
        assert!(
            why.as_ref().is_err_and(|e| e.contains("the clock broke")),
            "{why:?}"
        );
        // Everyone waiting for the scheduler to finish is released.
        assert!(finished.recv().await.is_none());
        let _ = shutdown.send(());
    }
}
