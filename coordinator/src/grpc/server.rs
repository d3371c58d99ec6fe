//! Starts the coordinator's gRPC server and stops it gracefully.
//!
//! One server hosts `WorkerService`, `FarmService`, the standard `grpc.health.v1` service and server
//! reflection (both `v1` and `v1alpha`, so every grpcurl version can list and call it). Shutdown
//! follows mini-redis: one broadcast tells every task to stop; each holds a clone of an mpsc sender
//! and the server waits until all are dropped, which means the scheduler has flushed sled.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use benchfarm_proto::v1::farm_service_server::FarmServiceServer;
use benchfarm_proto::v1::worker_service_server::WorkerServiceServer;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{info, warn};

use super::farm_service::FarmServiceImpl;
use super::worker_service::WorkerServiceImpl;
use crate::scheduler;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data: PathBuf,
    pub scheduler: scheduler::Config,
    /// Where to serve the live page and HTML reports (`--http`); `None`: not served.
    pub http: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Scheduler(#[from] scheduler::SchedulerError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("{0}")]
    SchedulerDied(String),
}

/// A running server: its address, and the means to stop it.
#[derive(Debug)]
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The live page's server, when `--http` asked for one.
    pub http: Option<crate::http::HttpServer>,
    shutdown: broadcast::Sender<()>,
    done: mpsc::Receiver<()>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    /// Why the scheduler died, once it has.
    failed: tokio::sync::watch::Receiver<Option<String>>,
}

/// Opens the store, starts the scheduler and serves on `config.listen` (port 0 picks a free port).
pub async fn start(config: ServeConfig) -> Result<RunningServer, ServeError> {
    start_with_clock(
        config,
        std::sync::Arc::new(crate::clock::SystemClock::new()),
    )
    .await
}

/// [`start`] with the scheduler's clock given (tests: a clock that breaks kills the scheduler).
pub async fn start_with_clock(
    config: ServeConfig,
    clock: crate::clock::SharedClock,
) -> Result<RunningServer, ServeError> {
    std::fs::create_dir_all(&config.data).map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;
    let store = open_store(&config.data).await?;
    let (shutdown, _) = broadcast::channel(1);
    let (done_tx, done) = mpsc::channel(1);
    let loading = store.clone();
    let scheduler_config = config.scheduler.clone();
    let stop_scheduler = shutdown.subscribe();
    let (scheduler, exited) =
        scheduler::spawn(loading, scheduler_config, clock, stop_scheduler, done_tx)?;

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<FarmServiceServer<FarmServiceImpl>>()
        .await;
    health
        .set_serving::<WorkerServiceServer<WorkerServiceImpl>>()
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(benchfarm_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // Each reflection version lists the other too, so `grpcurl list` (which speaks one of
            // them) shows every service this server has.
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
    };
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;

    // Supervision: a scheduler that dies (rather than stopping on request) turns health to
    // NOT_SERVING and stops the server, whose `wait` then reports the failure.
    let (failed_tx, failed) = tokio::sync::watch::channel(None::<String>);
    {
        let health = health.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let outcome = exited.await;
            let why = match outcome {
                Ok(Ok(())) => return,
                Ok(Err(panic)) => format!("the scheduler panicked: {panic}"),
                Err(_) => "the scheduler thread ended without a word".to_string(),
            };
            tracing::error!(reason = %why, "scheduler died; the coordinator stops serving");
            health
                .set_not_serving::<FarmServiceServer<FarmServiceImpl>>()
                .await;
            health
                .set_not_serving::<WorkerServiceServer<WorkerServiceImpl>>()
                .await;
            let _ = failed_tx.send(Some(why));
            let _ = shutdown.send(());
        });
    }

    let http = match config.http {
        Some(listen) => Some(
            crate::http::start(listen, scheduler.clone(), store.clone(), &shutdown)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: listen,
                    source,
                })?,
        ),
        None => None,
    };

    let mut stop = shutdown.subscribe();
    let router = tonic::transport::Server::builder()
        // Dead peers are noticed even when a worker stream is idle.
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        // A span per call, child of the caller's when its metadata carries W3C trace context.
        .trace_fn(benchfarm_telemetry::propagation::server_span)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(WorkerServiceServer::new(WorkerServiceImpl::new(
            scheduler.clone(),
        )))
        .add_service(FarmServiceServer::new(FarmServiceImpl::new(
            scheduler,
            store,
            shutdown.clone(),
        )));
    let server = tokio::spawn(router.serve_with_incoming_shutdown(
        TcpListenerStream::new(listener),
        async move {
            let _ = stop.recv().await;
        },
    ));
    info!(%addr, data = %config.data.display(), "coordinator listening");
    Ok(RunningServer {
        addr,
        http,
        shutdown,
        done,
        server,
        failed,
    })
}

/// Opens the store, waiting up to 10 s for another holder of its lock to let go: a coordinator
/// restarted in the same process (or right after the last one exited) finds sled's file lock still
/// held for a moment while the old instance's background threads wind down.
async fn open_store(dir: &std::path::Path) -> Result<Store, ServeError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // Opening sled reads and recovers its log: blocking work, off the runtime.
        let path = dir.to_path_buf();
        let opened = tokio::task::spawn_blocking(move || Store::open(&path))
            .await
            .map_err(|e| ServeError::SchedulerDied(format!("opening the store panicked: {e}")))?;
        match opened {
            Err(err) if err.is_locked() && tokio::time::Instant::now() < deadline => {
                tracing::debug!(data = %dir.display(), "store is locked; waiting for its previous holder");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            result => return Ok(result?),
        }
    }
}

impl RunningServer {
    /// Stops accepting work, lets the scheduler flush the store and waits for the server to end.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        info!("coordinator shutting down");
        let _ = self.shutdown.send(());
        // Every task that must finish holds a `done` sender; recv returns None once all are dropped.
        let _ = self.done.recv().await;
        match tokio::time::timeout(Duration::from_secs(10), &mut self.server).await {
            Ok(Ok(result)) => result?,
            Ok(Err(join)) => warn!(error = %join, "server task failed"),
            Err(_) => {
                warn!("connections did not close within 10 s; closing them");
                self.server.abort();
            }
        }
        info!("coordinator stopped");
        Ok(())
    }

    /// Waits until the server ends by itself (it only does on error, or when the scheduler died:
    /// then with [`ServeError::SchedulerDied`], so the process exits non-zero).
    pub async fn wait(&mut self) -> Result<(), ServeError> {
        let ended = match (&mut self.server).await {
            Ok(result) => result.map_err(ServeError::from),
            Err(_) => Ok(()),
        };
        if let Some(why) = self.failed.borrow().clone() {
            return Err(ServeError::SchedulerDied(why));
        }
        ended
    }
}
