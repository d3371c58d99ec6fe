//! The worker's connection to the coordinator: hello, heartbeats, jobs in, results out.
//!
//! One `Connect` stream at a time. When it breaks (or the coordinator is not there yet) the worker
//! retries with exponential backoff and says so. Results and failures stay in the [`Outbox`] until the
//! coordinator acknowledges them and are sent again on every reconnect, so a result is never lost to
//! a broken connection; the coordinator recognises a re-sent one by (job, attempt).
//!
//! A job whose GGUF model is in neither the `--models` directory nor the cache waits here while the
//! cache fetches it ([`crate::cache`]); only then does it go to a slot, so the transfer is in the
//! job's trace (the `fetch_model` span) but not in its timings, and its time limit starts when the
//! slot starts it. The coordinator sees it held (it is in every heartbeat) and, after the fetch, a
//! heartbeat with the new cache contents.
//!
//! (The fetching half of the session is in [`fetching`].)
//!
//! Shutdown: the first signal makes the worker drain (it tells the coordinator, takes no new jobs,
//! finishes and reports the running ones, then leaves); a second abandons the running jobs. A
//! `Drain` message from the coordinator does what the first signal does.

mod fetching;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use benchfarm_proto::v1 as pb;
use benchfarm_proto::v1::coordinator_message::Kind as Down;
use benchfarm_proto::v1::worker_message::Kind as Up;
use benchfarm_proto::v1::worker_service_client::WorkerServiceClient;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{Instrument as _, debug, info, warn};

use crate::cache::{Lease, ModelCache};
use crate::credentials::Credentials;
use crate::memory::MemoryGauge;
use crate::outbox::Outbox;
use crate::runner::{Job, Runner, RunnerEvent};
use crate::status::StatusFile;

/// Backoff between connection attempts: doubles from the first to the last value.
const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Unacknowledged answers are sent again every this many heartbeats.
const RESEND_EVERY_BEATS: u64 = 3;
/// Heartbeat interval until the coordinator's welcome says otherwise.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);

/// How far the worker is in shutting down; driven by signals in `main`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stop {
    Run,
    Drain,
    Abandon,
}

/// A job this worker is running now, with the means to stop it.
#[derive(Debug)]
struct Running {
    cancel: Arc<AtomicBool>,
    reason: Arc<Mutex<Option<String>>>,
    /// The attempt's time limit; its clock starts when a slot starts the job, not on receipt (a
    /// prefetched job may wait behind another).
    timeout: Option<Duration>,
    /// The coordinator's span for this attempt (`traceparent`), parent of the `report` span.
    trace_parent: String,
}

/// The worker's live state across connections.
pub struct Session {
    pub url: String,
    pub hello: pb::Hello,
    runner: Runner,
    events: mpsc::Receiver<RunnerEvent>,
    running: BTreeMap<(String, u32), Running>,
    outbox: Outbox,
    heartbeat: Duration,
    /// The coordinator sent `Drain`: leave as on the first stop signal.
    drain_requested: bool,
    credentials: Credentials,
    /// The coordinator's message limit (its welcome's); results are cut to fit.
    max_message_bytes: usize,
    /// The model cache; `None`: this worker runs only the models of its `--models` directory.
    cache: Option<ModelCache>,
    /// sha256 of the `--models` directory's models (never fetched).
    local: HashSet<String>,
    /// Jobs waiting for their model's fetch, and the fetches' outcomes.
    fetching: HashMap<(String, u32), Job>,
    fetched_tx: mpsc::Sender<(pb::JobKey, Result<Lease, String>)>,
    fetched_rx: mpsc::Receiver<(pb::JobKey, Result<Lease, String>)>,
    /// `STATE/status.json`, for `worker status` (none in tests that do not ask for it).
    status: Option<StatusFile>,
    /// The RAM a job could use now, for heartbeats; `None`: heartbeats report none and the
    /// hello's figure stands.
    memory: Option<MemoryGauge>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("url", &self.url)
            .field("running", &self.running.len())
            .finish()
    }
}

/// How one connection ended.
enum Ended {
    /// Broken or refused: reconnect after a backoff.
    Lost(String),
    /// Drained (or abandoned): leave.
    Done,
}

/// Why a connection could not be made.
enum NotConnected {
    /// The coordinator is not there (yet), or the network is down: try again.
    Unreachable(String),
    /// The coordinator refused this worker's token or identity: trying again changes nothing.
    Refused(String),
}

impl From<String> for NotConnected {
    fn from(reason: String) -> NotConnected {
        NotConnected::Unreachable(reason)
    }
}

/// A refusal no retry can fix: a missing, wrong or revoked token, or an id another token owns.
fn refusal(status: &tonic::Status) -> Option<String> {
    matches!(
        status.code(),
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
    )
    .then(|| format!("{:?}: {}", status.code(), status.message()))
}

impl Session {
    /// A session that starts with `outbox` (possibly loaded from a previous run's state).
    pub fn new(
        url: String,
        hello: pb::Hello,
        runner: Runner,
        events: mpsc::Receiver<RunnerEvent>,
        outbox: Outbox,
    ) -> Session {
        let (fetched_tx, fetched_rx) = mpsc::channel(64);
        Session {
            url,
            hello,
            runner,
            events,
            running: BTreeMap::new(),
            outbox,
            heartbeat: DEFAULT_HEARTBEAT,
            drain_requested: false,
            credentials: Credentials::default(),
            max_message_bytes: crate::fit::DEFAULT_MAX_MESSAGE_BYTES,
            cache: None,
            local: HashSet::new(),
            fetching: HashMap::new(),
            fetched_tx,
            fetched_rx,
            status: None,
            memory: None,
        }
    }

    /// This session reporting the RAM a job could use in every heartbeat.
    pub fn with_memory_gauge(mut self, memory: MemoryGauge) -> Session {
        self.memory = Some(memory);
        self
    }

    /// This session reporting its connection state in `status` (see `status.rs`).
    pub fn with_status_file(mut self, status: StatusFile) -> Session {
        self.status = Some(status);
        self
    }

    /// This session with a model cache: jobs of registered models it lacks (not in `local`, the
    /// `--models` directory's digests) are fetched into it first.
    pub fn with_cache(mut self, cache: ModelCache, local: HashSet<String>) -> Session {
        self.cache = Some(cache);
        self.local = local;
        self
    }

    /// A heartbeat of the current state.
    fn heartbeat(&self, draining: bool) -> Up {
        Up::Heartbeat(pb::Heartbeat {
            running: self.running.keys().map(|(j, a)| key(j, *a)).collect(),
            draining,
            unacknowledged: self.outbox.keys(),
            ram_available_bytes: self
                .memory
                .as_ref()
                .map_or(0, |m| m.for_a_job(self.runner.held_bytes())),
            cache: self.cache.as_ref().map(ModelCache::report),
        })
    }

    /// This session with a token and TLS for the coordinator.
    pub fn with_credentials(mut self, credentials: Credentials) -> Session {
        self.credentials = credentials;
        self
    }

    /// How far shutdown has gone: the signal state, raised to `Drain` by a coordinator's request.
    fn level(&self, stop: &watch::Receiver<Stop>) -> Stop {
        let signalled = *stop.borrow();
        if self.drain_requested {
            signalled.max(Stop::Drain)
        } else {
            signalled
        }
    }

    /// Whether a draining worker may leave.
    fn leaving(&self, stop: &watch::Receiver<Stop>) -> bool {
        let level = self.level(stop);
        if level != Stop::Run {
            // A stop that came while disconnected: queued jobs are given back, not started.
            self.runner.stop_starting();
        }
        match level {
            Stop::Run => false,
            Stop::Drain => self.idle(),
            Stop::Abandon => true,
        }
    }

    /// Connects and serves until `stop` says to leave. Never gives up on an absent coordinator;
    /// gives up (with the reason) on one that refuses this worker's token.
    pub async fn run(mut self, mut stop: watch::Receiver<Stop>) -> Result<(), String> {
        let mut backoff = BACKOFF_START;
        let mut attempt = 0u32;
        loop {
            if self.leaving(&stop) {
                break;
            }
            attempt += 1;
            let ended = self.connect_once(&mut stop).await;
            crate::telemetry::connected(false);
            match ended {
                Ok(Ended::Done) => break,
                Ok(Ended::Lost(reason)) => {
                    self.status_changed(|s| s.disconnected(&reason));
                    warn!(coordinator = %self.url, reason = %reason, "connection to coordinator lost; reconnecting");
                    backoff = BACKOFF_START;
                    attempt = 0;
                }
                Err(NotConnected::Unreachable(reason)) => {
                    self.status_changed(|s| s.disconnected(&reason));
                    warn!(coordinator = %self.url, attempt, retry_in_ms = backoff.as_millis() as u64,
                          reason = %reason, "coordinator unreachable; retrying");
                }
                Err(NotConnected::Refused(reason)) => {
                    self.status_changed(|s| s.disconnected(&reason));
                    tracing::error!(coordinator = %self.url, reason = %reason,
                                    "coordinator refused this worker; leaving");
                    for running in self.running.values() {
                        running.cancel.store(true, Ordering::Relaxed);
                    }
                    return Err(reason);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        for running in self.running.values() {
            running.cancel.store(true, Ordering::Relaxed);
        }
        self.status_changed(|s| s.disconnected("worker left"));
        info!(unacknowledged = self.outbox.len(), "worker left");
        Ok(())
    }

    fn status_changed(&mut self, change: impl FnOnce(&mut StatusFile)) {
        if let Some(status) = self.status.as_mut() {
            change(status);
        }
    }

    /// Nothing running and every result acknowledged (see [`Outbox::results`] for why
    /// unacknowledged failures do not count).
    fn idle(&self) -> bool {
        self.running.is_empty() && self.outbox.results() == 0
    }

    /// One connection: hello, replay of unacknowledged messages, then the message loop.
    /// `Err` means the connection could not be established.
    async fn connect_once(
        &mut self,
        stop: &mut watch::Receiver<Stop>,
    ) -> Result<Ended, NotConnected> {
        let endpoint = tonic::transport::Endpoint::from_shared(self.url.clone())
            .map_err(|e| NotConnected::Refused(format!("invalid coordinator URL: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(20));
        let endpoint = self
            .credentials
            .apply(endpoint)
            .map_err(NotConnected::Refused)?;
        let channel = endpoint.connect().await.map_err(|e| error_chain(&e))?;
        // Assignments carry their suite and scripted model, up to the coordinator's request
        // limit (16 MiB by default): more than tonic's default 4 MiB.
        let mut client = WorkerServiceClient::new(channel).max_decoding_message_size(64 << 20);
        let (tx, rx) = mpsc::channel::<pb::WorkerMessage>(256);
        let mut hello = self.hello.clone();
        hello.running = self
            .running
            .keys()
            .map(|(job_id, attempt)| key(job_id, *attempt))
            .collect();
        // What is re-sent right behind the hello: the coordinator keeps those attempts.
        hello.unacknowledged = self.outbox.keys();
        if let Some(cache) = &self.cache {
            hello.cache = Some(cache.report());
        }
        send(&tx, Up::Hello(hello)).await;
        let mut request = tonic::Request::new(ReceiverStream::new(rx));
        self.credentials.authorize(&mut request);
        let mut inbound = client
            .connect(request)
            .await
            .map_err(|s| match refusal(&s) {
                Some(why) => NotConnected::Refused(why),
                None => NotConnected::Unreachable(s.message().to_string()),
            })?
            .into_inner();
        info!(coordinator = %self.url, "connected to coordinator");
        let interval = self.heartbeat;
        self.status_changed(|s| s.connected(interval));
        self.resend_pending(&tx).await;
        let mut heartbeat = tokio::time::interval(self.heartbeat);
        let mut beats: u64 = 0;
        loop {
            if self.leaving(stop) {
                return Ok(Ended::Done);
            }
            tokio::select! {
                message = inbound.message() => match message {
                    Ok(Some(message)) => {
                        let now = self.level(stop);
                        if let Some(kind) = message.kind
                            && let Some(new_interval) = self.on_message(kind, &tx, now).await
                        {
                            heartbeat = tokio::time::interval(new_interval);
                        }
                    }
                    Ok(None) => return Ok(Ended::Lost("coordinator closed the stream".into())),
                    Err(status) => return Ok(Ended::Lost(status.message().to_string())),
                },
                Some(event) = self.events.recv() => self.on_event(event, &tx).await,
                Some((k, outcome)) = self.fetched_rx.recv() => {
                    let now = self.level(stop);
                    self.on_fetched(k, outcome, &tx, now).await;
                }
                _ = heartbeat.tick() => {
                    let draining = self.level(stop) != Stop::Run;
                    let beat = self.heartbeat(draining);
                    send(&tx, beat).await;
                    // An answer still unacknowledged a few heartbeats on was lost on this live
                    // connection (or its ack was): send it again; the coordinator recognises a
                    // re-sent (job, attempt) and counts it once.
                    beats += 1;
                    let interval = self.heartbeat;
                    self.status_changed(|s| s.heartbeat(interval));
                    if beats.is_multiple_of(RESEND_EVERY_BEATS) {
                        self.resend_pending(&tx).await;
                    }
                }
                _ = stop.changed() => {
                    let now = self.level(stop);
                    info!(stop = ?now, running = self.running.len(), "stop requested");
                    // Tell the coordinator at once, so it sends nothing new.
                    self.send_draining(&tx).await;
                    if now == Stop::Abandon {
                        for r in self.running.values() {
                            set_reason(r, "worker abandoned the job on a second stop signal");
                        }
                    }
                }
            }
        }
    }

    /// Handles one coordinator message; returns a new heartbeat interval when the welcome sets one.
    async fn on_message(
        &mut self,
        kind: Down,
        tx: &mpsc::Sender<pb::WorkerMessage>,
        stop: Stop,
    ) -> Option<Duration> {
        match kind {
            Down::Welcome(w) => {
                crate::telemetry::connected(true);
                info!(
                    lease_ms = w.lease_ms,
                    heartbeat_ms = w.heartbeat_ms,
                    max_message_bytes = w.max_message_bytes,
                    "welcomed by coordinator"
                );
                if w.max_message_bytes > 0 {
                    self.max_message_bytes = w.max_message_bytes as usize;
                }
                if w.heartbeat_ms > 0 {
                    self.heartbeat = Duration::from_millis(u64::from(w.heartbeat_ms));
                    return Some(self.heartbeat);
                }
            }
            Down::Assign(assignment) => {
                let k = assignment.key.clone()?;
                if stop != Stop::Run {
                    // Sent before the coordinator saw our drain notice: give it back at once,
                    // marked not started so it costs the job no attempt.
                    send(tx, job_failed(k, "worker is draining".into(), true)).await;
                    return None;
                }
                let running = Running {
                    cancel: Arc::new(AtomicBool::new(false)),
                    reason: Arc::new(Mutex::new(None)),
                    timeout: (assignment.timeout_ms > 0)
                        .then(|| Duration::from_millis(u64::from(assignment.timeout_ms))),
                    trace_parent: assignment.trace_parent.clone(),
                };
                let job = Job {
                    assignment: assignment.clone(),
                    key: k.clone(),
                    cancel: Arc::clone(&running.cancel),
                    cancel_reason: Arc::clone(&running.reason),
                    cached: None,
                };
                debug!(job = %k.job_id, attempt = k.attempt, task = %assignment.task_id, "job received");
                self.running.insert((k.job_id.clone(), k.attempt), running);
                // A model to fetch first: the job waits here, not in a slot (fetching.rs).
                let job = self.fetch_first(&assignment, job)?;
                if let Err(reason) = self.runner.submit(job) {
                    self.running.remove(&(k.job_id.clone(), k.attempt));
                    self.finish(
                        pb::WorkerMessage {
                            kind: Some(job_failed(k, reason, false)),
                        },
                        tx,
                    )
                    .await;
                }
            }
            Down::Ack(ack) => {
                if let Some(k) = ack.key {
                    self.outbox.acknowledge(&k.job_id, k.attempt);
                }
            }
            Down::Cancel(c) => {
                if let Some(k) = c.key
                    && let Some(r) = self.running.get(&(k.job_id.clone(), k.attempt))
                {
                    info!(job = %k.job_id, reason = %c.reason, "job cancelled by coordinator");
                    set_reason(r, &format!("cancelled: {}", c.reason));
                }
            }
            Down::Drain(d) => {
                info!(reason = %d.reason, running = self.running.len(), "coordinator asked to drain");
                self.drain_requested = true;
                self.send_draining(tx).await;
            }
        }
        None
    }

    /// Tells the coordinator this worker is leaving, so it assigns nothing new, and gives back the
    /// jobs that wait for a slot.
    async fn send_draining(&self, tx: &mpsc::Sender<pb::WorkerMessage>) {
        self.runner.stop_starting();
        send(tx, self.heartbeat(true)).await;
    }

    async fn on_event(&mut self, event: RunnerEvent, tx: &mpsc::Sender<pb::WorkerMessage>) {
        match event {
            RunnerEvent::Started(k) => {
                if let Some(r) = self.running.get(&(k.job_id.clone(), k.attempt))
                    && let Some(limit) = r.timeout
                {
                    let cancel = Arc::clone(&r.cancel);
                    let reason = Arc::clone(&r.reason);
                    tokio::spawn(async move {
                        tokio::time::sleep(limit).await;
                        if !cancel.load(Ordering::Relaxed) {
                            if let Ok(mut r) = reason.lock() {
                                r.get_or_insert_with(|| {
                                    format!("timed out after {} ms", limit.as_millis())
                                });
                            }
                            cancel.store(true, Ordering::Relaxed);
                        }
                    });
                }
                send(tx, Up::Started(pb::JobStarted { key: Some(k) })).await
            }
            RunnerEvent::Finished(k, outcome) => {
                let trace_parent = self
                    .running
                    .remove(&(k.job_id.clone(), k.attempt))
                    .map(|r| r.trace_parent)
                    .unwrap_or_default();
                let outcome_name = if outcome.is_ok() {
                    "succeeded"
                } else {
                    "failed"
                };
                crate::telemetry::job_ended(outcome_name);
                let span = crate::telemetry::report_span(
                    &trace_parent,
                    &k.job_id,
                    k.attempt,
                    outcome_name,
                );
                let kind = match outcome {
                    Ok(result) => Up::Result(*result),
                    Err(failure) => {
                        warn!(job = %k.job_id, attempt = k.attempt, reason = %failure.reason,
                              refused = failure.refused, "job failed");
                        let (refused, suite_unknown) = (failure.refused, failure.suite_unknown);
                        match job_failed(k, failure.reason, false) {
                            Up::Failed(f) => Up::Failed(pb::JobFailed {
                                refused,
                                suite_unknown,
                                ..f
                            }),
                            other => other,
                        }
                    }
                };
                self.finish(pb::WorkerMessage { kind: Some(kind) }, tx)
                    .instrument(span)
                    .await;
            }
            RunnerEvent::NotStarted(k) => {
                self.running.remove(&(k.job_id.clone(), k.attempt));
                crate::telemetry::job_ended("returned");
                info!(job = %k.job_id, attempt = k.attempt, "job given back unstarted: draining");
                let failed = job_failed(
                    k,
                    "worker is draining; the job had not started".into(),
                    true,
                );
                self.finish(pb::WorkerMessage { kind: Some(failed) }, tx)
                    .await;
            }
        }
    }

    /// Keeps a result or failure until acknowledged, and sends it now, cut to the coordinator's
    /// message limit if it must be (`fit.rs`).
    async fn finish(
        &mut self,
        mut message: pb::WorkerMessage,
        tx: &mpsc::Sender<pb::WorkerMessage>,
    ) {
        if crate::fit::fit_message(&mut message, self.max_message_bytes) {
            warn!(
                limit = self.max_message_bytes,
                "result over the coordinator's message limit; answer truncated"
            );
        }
        self.outbox.insert(message.clone());
        let _ = tx.send(message).await;
    }

    /// Sends every unacknowledged message again, each cut to the current limit (a coordinator
    /// restarted with a smaller one must not get a message that breaks the stream).
    async fn resend_pending(&self, tx: &mpsc::Sender<pb::WorkerMessage>) {
        for mut message in self.outbox.pending() {
            crate::fit::fit_message(&mut message, self.max_message_bytes);
            let _ = tx.send(message).await;
        }
    }
}

/// A job that ended without an answer; `not_started` when it is given back unstarted (draining),
/// which costs the job no attempt.
fn job_failed(key: pb::JobKey, reason: String, not_started: bool) -> Up {
    Up::Failed(pb::JobFailed {
        key: Some(key),
        reason,
        not_started,
        refused: false,
        suite_unknown: false,
    })
}

fn set_reason(running: &Running, reason: &str) {
    if let Ok(mut r) = running.reason.lock() {
        r.get_or_insert_with(|| reason.to_string());
    }
    running.cancel.store(true, Ordering::Relaxed);
}

fn key(job_id: &str, attempt: u32) -> pb::JobKey {
    pb::JobKey {
        job_id: job_id.to_string(),
        attempt,
    }
}

async fn send(tx: &mpsc::Sender<pb::WorkerMessage>, kind: Up) {
    let _ = tx.send(pb::WorkerMessage { kind: Some(kind) }).await;
}

/// An error with its sources, since tonic's top-level "transport error" says little.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// sha256 → path of every local GGUF model.
pub fn model_paths(
    models: &[benchfarm_engine::models::LocalModel],
) -> HashMap<String, std::path::PathBuf> {
    models
        .iter()
        .map(|m| (m.sha256.clone(), m.path.clone()))
        .collect()
}
