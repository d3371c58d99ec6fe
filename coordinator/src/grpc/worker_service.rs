//! `WorkerService.Connect`: one bidirectional stream per worker, translated to scheduler commands.
//!
//! The first message must be a `Hello`. The worker's identity is bound to the token that opened the
//! stream (the gate put the [`Caller`] in the request): a per-worker token to its one worker id, the
//! shared join token to token + id, so a second live stream for that id is refused
//! (`live_streams.rs`). After that, each inbound message becomes a [`Command::Event`]; the
//! scheduler's replies go out through an mpsc channel that is the worker's outbox. When the inbound
//! stream ends or breaks, or is ended from outside (its token revoked, a newer stream of the same
//! worker), the scheduler hears [`Command::Leave`] and requeues what the worker held. Each
//! connection carries a number so that a late `Leave` of an old stream cannot unregister a worker that
//! already reconnected on a new one.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use benchfarm_proto::v1::worker_message::Kind as In;
use benchfarm_proto::v1::worker_service_server::WorkerService;
use benchfarm_proto::v1::{CoordinatorMessage, WorkerMessage, coordinator_message};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use super::convert;
use super::live_streams::LiveStreams;
use crate::auth::{Caller, Gate};
use crate::scheduler::{Command, Liveness, SchedulerHandle, WorkerEvent};

/// Messages queued for one worker before the scheduler considers it stuck.
const OUTBOX_CAPACITY: usize = 256;

/// Limits on worker streams (set from `coordinator serve` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// The largest message decoded (and encoded), both ways; told to workers in the welcome.
    pub max_message_bytes: usize,
    /// Worker streams open at once from one IP address (0: no limit).
    pub max_streams_per_peer: usize,
}

impl Default for StreamLimits {
    fn default() -> StreamLimits {
        StreamLimits {
            // tonic's own default, kept: a result is an answer of at most a few KiB.
            max_message_bytes: 4 << 20,
            max_streams_per_peer: 256,
        }
    }
}

#[derive(Debug, Clone)]
pub struct WorkerServiceImpl {
    scheduler: SchedulerHandle,
    next_conn: Arc<AtomicU64>,
    gate: Gate,
    live: Arc<Mutex<LiveStreams>>,
    limits: StreamLimits,
}

impl WorkerServiceImpl {
    pub fn new(scheduler: SchedulerHandle, gate: Gate, limits: StreamLimits) -> Self {
        WorkerServiceImpl {
            scheduler,
            next_conn: Arc::new(AtomicU64::new(1)),
            gate,
            live: Arc::new(Mutex::new(LiveStreams::default())),
            limits,
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, LiveStreams> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the streams of revoked tokens as the revocations come, until the gate is gone.
    pub async fn end_revoked_streams(self) {
        let mut revocations = self.gate.revocations();
        loop {
            match revocations.recv().await {
                Ok(name) => {
                    let cut = self.live().end_token(&name);
                    info!(token = %name, workers = ?cut, "token revoked; its worker streams end");
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Some names were missed: end every stream whose token is gone.
                    let gate = self.gate.clone();
                    let mut live = self.live();
                    let names: Vec<String> = live.tokens();
                    for name in names.into_iter().filter(|n| !gate.is_registered(n)) {
                        live.end_token(&name);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

type OutStream = Pin<Box<dyn Stream<Item = Result<CoordinatorMessage, Status>> + Send>>;

#[tonic::async_trait]
impl WorkerService for WorkerServiceImpl {
    type ConnectStream = OutStream;

    async fn connect(
        &self,
        request: Request<Streaming<WorkerMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        // The gate admitted this request and said who it is; without it, nobody is trusted.
        let caller = request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("request did not pass the gate"))?;
        let peer = request.remote_addr().map(|a| a.ip());
        let mut inbound = request.into_inner();
        let hello = match inbound.message().await? {
            Some(WorkerMessage {
                kind: Some(In::Hello(hello)),
            }) => hello,
            Some(_) => {
                return Err(Status::invalid_argument(
                    "the first message on Connect must be a hello",
                ));
            }
            None => return Err(Status::cancelled("stream closed before hello")),
        };
        let joining = convert::joining(hello)?;
        let worker_id = joining.record.id.clone();
        self.gate
            .bind(&caller, &worker_id)
            .await
            .inspect_err(|status| {
                warn!(worker = %worker_id, token = ?caller.token_name(), reason = %status.message(),
                  "worker refused: its token may not speak for this id");
            })?;
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let ended = self
            .live()
            .admit(
                conn,
                &worker_id,
                &caller,
                peer,
                self.limits.max_streams_per_peer,
            )
            .inspect_err(|status| {
                warn!(worker = %worker_id, peer = ?peer, reason = %status.message(), "worker stream refused");
            })?;
        let (outbox, rx) = mpsc::channel(OUTBOX_CAPACITY);
        let seen = Liveness::new(self.scheduler.clock().now_ms());
        let welcome = self
            .scheduler
            .ask(|reply| Command::Join {
                worker: Box::new(joining),
                conn,
                outbox: outbox.clone(),
                seen: seen.clone(),
                reply,
            })
            .await;
        let welcome = match welcome {
            Ok(welcome) => super::outbound::welcome(
                welcome,
                u32::try_from(self.limits.max_message_bytes).unwrap_or(u32::MAX),
            ),
            Err(err) => {
                self.live().remove(conn);
                return Err(err.into());
            }
        };
        // The welcome goes first; the scheduler may already have queued assignments behind it, so it
        // is chained in front of the outbox stream rather than sent through it.
        let first = CoordinatorMessage {
            kind: Some(coordinator_message::Kind::Welcome(welcome)),
        };

        let scheduler = self.scheduler.clone();
        let live = self.live.clone();
        let mut end_signal = ended.clone();
        tokio::spawn(async move {
            let reason = loop {
                tokio::select! {
                    message = inbound.message() => match message {
                        Ok(Some(message)) => {
                            // Stamped here, not when the scheduler gets to it: see `Liveness`.
                            seen.stamp(scheduler.clock().now_ms());
                            let Some(mut event) = to_event(message, &worker_id) else {
                                continue;
                            };
                            // The coordinator's grade, computed here on the blocking pool so the
                            // scheduler thread does not run the suite's checks.
                            if let WorkerEvent::Result(result) = &mut event {
                                scheduler.grade(result).await;
                            }
                            if scheduler
                                .send(Command::Event {
                                    worker_id: worker_id.clone(),
                                    conn,
                                    event,
                                })
                                .await
                                .is_err()
                            {
                                break "coordinator shutting down".to_string();
                            }
                        }
                        Ok(None) => break "stream closed".to_string(),
                        Err(status) => break format!("stream error: {}", status.message()),
                    },
                    changed = end_signal.changed() => {
                        let why = end_signal.borrow().clone();
                        match (changed, why) {
                            (Ok(()), Some((_, why))) => break why,
                            (Ok(()), None) => continue,
                            (Err(_), _) => break "stream registry gone".to_string(),
                        }
                    }
                }
            };
            live.lock().unwrap_or_else(|p| p.into_inner()).remove(conn);
            debug!(worker = %worker_id, conn, reason = %reason, "worker stream ended");
            let _ = scheduler
                .send(Command::Leave {
                    worker_id,
                    conn,
                    reason,
                })
                .await;
        });

        // Ended from outside: the outbox closes (the scheduler drops it on Leave), and the worker
        // hears why as the stream's last status.
        let mut until = ended.clone();
        let stop = async move {
            let _ = until.wait_for(|why| why.is_some()).await;
        };
        let tail = futures::stream::once(async move { ended.borrow().clone() })
            .filter_map(|why| async move { why.map(|(code, why)| Err(Status::new(code, why))) });
        let stream = futures::stream::iter([Ok(first)])
            .chain(ReceiverStream::new(rx).map(|m| Ok(super::outbound::to_worker(m))))
            .take_until(stop)
            .chain(tail);
        drop(outbox);
        Ok(Response::new(Box::pin(stream)))
    }
}

/// One inbound message as a scheduler event. A malformed result with a readable key becomes a
/// failure of that attempt (it would be malformed again on every re-send, and the job must not hang
/// as running); other malformed messages are logged and dropped.
pub fn to_event(message: WorkerMessage, worker_id: &str) -> Option<WorkerEvent> {
    let event = match message.kind? {
        In::Hello(_) => {
            warn!(worker = %worker_id, "second hello on one stream ignored");
            return None;
        }
        In::Heartbeat(h) => {
            if h.running.len() + h.unacknowledged.len() > convert::MAX_KEYS_PER_MESSAGE {
                warn!(worker = %worker_id, "heartbeat listing too many jobs dropped");
                return None;
            }
            let cache = match h.cache.map(convert::cache_from_wire).transpose() {
                Ok(cache) => cache,
                Err(status) => {
                    warn!(worker = %worker_id, error = %status.message(), "heartbeat cache report dropped");
                    None
                }
            };
            WorkerEvent::Heartbeat {
                running: convert::keys(h.running),
                unacknowledged: convert::keys(h.unacknowledged),
                draining: h.draining,
                cache,
                ram_available_bytes: (h.ram_available_bytes > 0).then_some(h.ram_available_bytes),
            }
        }
        In::Started(s) => {
            let key = s.key?;
            WorkerEvent::Started {
                job_id: key.job_id,
                attempt: key.attempt,
            }
        }
        In::Result(r) => {
            let key = r.key.clone();
            match convert::incoming_result(r) {
                Ok(result) => WorkerEvent::Result(Box::new(result)),
                Err(status) => {
                    warn!(worker = %worker_id, error = %status.message(), "malformed result");
                    let key = key?;
                    WorkerEvent::Failed {
                        job_id: key.job_id,
                        attempt: key.attempt,
                        reason: format!("malformed result: {}", status.message()),
                        not_started: false,
                        refused: false,
                        suite_unknown: false,
                    }
                }
            }
        }
        In::Failed(f) => {
            let key = f.key?;
            WorkerEvent::Failed {
                job_id: key.job_id,
                attempt: key.attempt,
                reason: f.reason,
                not_started: f.not_started,
                refused: f.refused,
                suite_unknown: f.suite_unknown,
            }
        }
    };
    Some(event)
}
