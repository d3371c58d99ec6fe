//! `WorkerService.Connect`: one bidirectional stream per worker, translated to scheduler commands.
//!
//! The first message must be a `Hello`. After that, each inbound message becomes a
//! [`Command::Event`]; the scheduler's replies go out through an mpsc channel that is the worker's
//! outbox. When the inbound stream ends or breaks, the scheduler hears [`Command::Leave`]. Each
//! connection carries a number so that a late `Leave` of an old stream cannot unregister a worker that
//! already reconnected on a new one.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

use benchfarm_proto::v1::worker_message::Kind as In;
use benchfarm_proto::v1::worker_service_server::WorkerService;
use benchfarm_proto::v1::{CoordinatorMessage, WorkerMessage, coordinator_message};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, warn};

use super::convert;
use crate::scheduler::{Command, Liveness, SchedulerHandle, WorkerEvent};

/// Messages queued for one worker before the scheduler considers it stuck.
const OUTBOX_CAPACITY: usize = 256;

#[derive(Debug)]
pub struct WorkerServiceImpl {
    scheduler: SchedulerHandle,
    next_conn: AtomicU64,
}

impl WorkerServiceImpl {
    pub fn new(scheduler: SchedulerHandle) -> Self {
        WorkerServiceImpl {
            scheduler,
            next_conn: AtomicU64::new(1),
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
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
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
            .await?;
        // The welcome goes first; the scheduler may already have queued assignments behind it, so it
        // is chained in front of the outbox stream rather than sent through it.
        let first = CoordinatorMessage {
            kind: Some(coordinator_message::Kind::Welcome(welcome)),
        };

        let scheduler = self.scheduler.clone();
        tokio::spawn(async move {
            let reason = loop {
                match inbound.message().await {
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
                }
            };
            debug!(worker = %worker_id, conn, reason = %reason, "worker stream ended");
            let _ = scheduler
                .send(Command::Leave {
                    worker_id,
                    conn,
                    reason,
                })
                .await;
        });

        let stream = futures::stream::iter([Ok(first)]).chain(ReceiverStream::new(rx).map(Ok));
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
            WorkerEvent::Heartbeat {
                running: convert::keys(h.running),
                unacknowledged: convert::keys(h.unacknowledged),
                draining: h.draining,
            }
        }
        In::Started(s) => {
            let key = s.key?;
            WorkerEvent::Started {
                job_id: key.job_id,
                attempt: key.attempt,
            }
        }
        In::Progress(_) => return None,
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
            }
        }
    };
    Some(event)
}
