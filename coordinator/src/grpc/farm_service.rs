//! `FarmService`: the user's API (submit, status, watch, cancel, workers, report, regrade).
//!
//! Thin: it validates the request, turns it into a scheduler command or a store read, and maps
//! errors to the right `tonic::Status` (bad input → `InvalidArgument` naming the field, unknown run
//! → `NotFound`, a run still running where it must be over → `FailedPrecondition`).

use std::pin::Pin;

use benchfarm_proto::v1 as pb;
use benchfarm_proto::v1::farm_service_server::FarmService;
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use crate::auth::Gate;
use crate::records::{RunRecord, RunState, now_ms};
use crate::scheduler::{Command, RunChange, SchedulerHandle};
use crate::store::Store;

#[derive(Debug)]
pub struct FarmServiceImpl {
    scheduler: SchedulerHandle,
    store: Store,
    /// Ends open watch streams when the server shuts down (they would otherwise hold it open).
    shutdown: broadcast::Sender<()>,
    gate: Gate,
    /// Where the live page is served (`--http`), for the URL a submit answers with.
    live_page: Option<std::net::SocketAddr>,
}

impl FarmServiceImpl {
    pub fn new(
        scheduler: SchedulerHandle,
        store: Store,
        shutdown: broadcast::Sender<()>,
        gate: Gate,
    ) -> Self {
        FarmServiceImpl {
            scheduler,
            store,
            shutdown,
            gate,
            live_page: None,
        }
    }

    /// This service answering submits with the run's live page on `addr`.
    pub fn with_live_page(mut self, addr: Option<std::net::SocketAddr>) -> Self {
        self.live_page = addr;
        self
    }

    fn stored_run(&self, run_id: &str) -> Result<RunRecord, Status> {
        self.store
            .run(run_id)
            .map_err(|e| Status::internal(e.to_string()))?
            .ok_or_else(|| Status::not_found(format!("no run {run_id}")))
    }
}

/// Parses a suite sent by a client under the suite limits; its errors name the line and column
/// in the client's file.
fn parse_suite(
    text: &str,
    origin: &str,
    limits: benchfarm_suite::SuiteLimits,
) -> Result<benchfarm_suite::Suite, Status> {
    benchfarm_suite::Suite::parse_with_limits(text, origin, limits)
        .map_err(|e| Status::invalid_argument(e.to_string()))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::RunEvent, Status>> + Send>>;

#[tonic::async_trait]
impl FarmService for FarmServiceImpl {
    async fn submit_run(
        &self,
        request: Request<pb::SubmitRunRequest>,
    ) -> Result<Response<pb::SubmitRunResponse>, Status> {
        let mut req = request.into_inner();
        super::submit::resolve_registered(&mut req, self.scheduler.catalog())?;
        let req_strict = req.strict;
        let mut run = super::submit::run_record(
            req,
            self.scheduler.limits(),
            uuid::Uuid::now_v7().to_string(),
            now_ms(),
        )?;
        // The run's span covers the submit (a child of the caller's, when it sent one); each job's
        // span names it as parent, so one trace holds the run and all its jobs without a span
        // open for the hours a run may take.
        let span = crate::scheduler::telemetry::run_span(&run);
        run.trace_parent = benchfarm_telemetry::propagation::traceparent(&span);
        let run_id = run.id.clone();
        let jobs = self
            .scheduler
            .ask(|reply| Command::Submit {
                run: Box::new(run),
                strict: req_strict,
                reply,
            })
            .instrument(span.clone())
            .await??;
        span.record("jobs", i64::from(jobs));
        let live_url = self
            .live_page
            .map(|addr| format!("http://{addr}/runs/{run_id}"))
            .unwrap_or_default();
        Ok(Response::new(pb::SubmitRunResponse {
            run_id,
            jobs,
            live_url,
        }))
    }

    async fn get_run(
        &self,
        request: Request<pb::GetRunRequest>,
    ) -> Result<Response<pb::RunStatus>, Status> {
        let run_id = request.into_inner().run_id;
        let p = self
            .scheduler
            .ask(|reply| Command::Progress { run_id, reply })
            .await??;
        Ok(Response::new(p.into()))
    }

    async fn list_runs(
        &self,
        _: Request<pb::ListRunsRequest>,
    ) -> Result<Response<pb::ListRunsResponse>, Status> {
        let runs = self
            .scheduler
            .ask(|reply| Command::ListRuns { reply })
            .await??;
        Ok(Response::new(pb::ListRunsResponse {
            runs: runs.into_iter().map(Into::into).collect(),
        }))
    }

    async fn cancel_run(
        &self,
        request: Request<pb::CancelRunRequest>,
    ) -> Result<Response<pb::CancelRunResponse>, Status> {
        let run_id = request.into_inner().run_id;
        let jobs_cancelled = self
            .scheduler
            .ask(|reply| Command::Cancel { run_id, reply })
            .await??;
        Ok(Response::new(pb::CancelRunResponse { jobs_cancelled }))
    }

    type WatchRunStream = WatchStream;

    async fn watch_run(
        &self,
        request: Request<pb::WatchRunRequest>,
    ) -> Result<Response<Self::WatchRunStream>, Status> {
        let run_id = request.into_inner().run_id;
        // Subscribe before taking the snapshot, so no change falls between the two.
        let events = self.scheduler.subscribe();
        let id = run_id.clone();
        let snapshot: pb::RunStatus = self
            .scheduler
            .ask(|reply| Command::Progress { run_id: id, reply })
            .await??
            .into();
        Ok(Response::new(watch_stream(
            run_id,
            snapshot,
            events,
            self.shutdown.subscribe(),
        )))
    }

    async fn list_workers(
        &self,
        _: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        let workers = self
            .scheduler
            .ask(|reply| Command::ListWorkers { reply })
            .await?;
        Ok(Response::new(pb::ListWorkersResponse {
            workers: workers.into_iter().map(Into::into).collect(),
        }))
    }

    async fn get_report(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::GetReportResponse>, Status> {
        let req = request.into_inner();
        let format = super::enums::report_format_from_wire(req.format)
            .map_err(|e| Status::invalid_argument(format!("format: {e}")))?;
        let run = self.stored_run(&req.run_id)?;
        // Reading every result and rendering is blocking work: off the runtime.
        let store = self.store.clone();
        let body =
            tokio::task::spawn_blocking(move || crate::reporting::render(&store, &run, format))
                .await
                .map_err(|e| Status::internal(format!("rendering the report failed: {e}")))?
                .map_err(|e| Status::internal(e.to_string()))?;
        let content_type = format.content_type();
        Ok(Response::new(pb::GetReportResponse {
            body,
            content_type: content_type.into(),
        }))
    }

    async fn regrade_run(
        &self,
        request: Request<pb::RegradeRunRequest>,
    ) -> Result<Response<pb::RegradeRunResponse>, Status> {
        let req = request.into_inner();
        // Parsed here (pure, and the error names the field); applied by the scheduler, the
        // store's single writer, so two regrades at once cannot lose a history entry.
        let suite = if req.suite_toml.is_empty() {
            None
        } else {
            let suite = parse_suite(&req.suite_toml, "suite_toml", self.scheduler.limits().suite)?;
            Some(Box::new((suite, req.suite_toml)))
        };
        let run_id = req.run_id;
        let (summary, suite_version) = self
            .scheduler
            .ask(|reply| Command::Regrade {
                run_id,
                suite,
                reply,
            })
            .await??;
        Ok(Response::new(pb::RegradeRunResponse {
            results: summary.results,
            changed: summary.changed,
            changes: summary.changes,
            suite_version,
        }))
    }

    async fn drain_worker(
        &self,
        request: Request<pb::WorkerRef>,
    ) -> Result<Response<pb::WorkerStatus>, Status> {
        let worker = request.into_inner().worker;
        let summary = self
            .scheduler
            .ask(|reply| Command::Drain { worker, reply })
            .await??;
        Ok(Response::new(summary.into()))
    }

    async fn clear_worker(
        &self,
        request: Request<pb::WorkerRef>,
    ) -> Result<Response<pb::WorkerStatus>, Status> {
        let worker = request.into_inner().worker;
        let summary = self
            .scheduler
            .ask(|reply| Command::Clear { worker, reply })
            .await??;
        Ok(Response::new(summary.into()))
    }

    async fn add_token(
        &self,
        request: Request<pb::AddTokenRequest>,
    ) -> Result<Response<pb::AddTokenResponse>, Status> {
        let req = request.into_inner();
        let role = super::tokens::role_from_wire(req.role)?;
        let token = self
            .gate
            .add(&req.name, role, u64::try_from(now_ms()).unwrap_or(0))
            .await?;
        let info = self
            .gate
            .list()?
            .into_iter()
            .find(|e| e.name == req.name)
            .map(super::tokens::info)
            .ok_or_else(|| Status::internal("the new token vanished"))?;
        tracing::info!(token = %req.name, role = %role, "token added");
        Ok(Response::new(pb::AddTokenResponse {
            info: Some(info),
            token,
        }))
    }

    async fn list_tokens(
        &self,
        _request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let tokens = self
            .gate
            .list()?
            .into_iter()
            .map(super::tokens::info)
            .collect();
        Ok(Response::new(pb::ListTokensResponse { tokens }))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::TokenInfo>, Status> {
        let name = request.into_inner().name;
        let entry = self.gate.revoke(&name).await?;
        tracing::info!(token = %name, "token revoked");
        Ok(Response::new(super::tokens::info(entry)))
    }
}

/// The watch stream: the snapshot, then this run's events until it is over. A watcher that lags
/// behind the broadcast buffer is ended with `ResourceExhausted` rather than slowing the farm.
fn watch_stream(
    run_id: String,
    snapshot: pb::RunStatus,
    events: broadcast::Receiver<RunChange>,
    shutdown: broadcast::Receiver<()>,
) -> WatchStream {
    let over = snapshot.state() != pb::RunState::Running;
    let first = pb::RunEvent {
        status: Some(snapshot),
        ..pb::RunEvent::default()
    };
    let rest = futures::stream::unfold(
        (events, shutdown, over),
        move |(mut events, mut shutdown, over)| {
            let run_id = run_id.clone();
            async move {
                if over {
                    return None;
                }
                loop {
                    let received = tokio::select! {
                        received = events.recv() => received,
                        _ = shutdown.recv() => return Some((Err(Status::unavailable("coordinator shutting down")), (events, shutdown, true))),
                    };
                    match received {
                        Ok(change) => {
                            if change.status.run_id != run_id {
                                continue;
                            }
                            let done = change.status.state != RunState::Running;
                            let event = super::outbound::run_event(change);
                            return Some((Ok(event), (events, shutdown, done)));
                        }
                        Err(RecvError::Lagged(n)) => {
                            let status = Status::resource_exhausted(format!(
                                "watcher fell {n} events behind; watch again"
                            ));
                            return Some((Err(status), (events, shutdown, true)));
                        }
                        Err(RecvError::Closed) => return None,
                    }
                }
            }
        },
    );
    Box::pin(futures::stream::iter([Ok(first)]).chain(rest))
}
