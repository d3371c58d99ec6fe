//! Starts the coordinator's gRPC server and stops it gracefully.
//!
//! One server hosts `WorkerService`, `FarmService`, `ModelService`, the standard `grpc.health.v1` service and server
//! reflection (both `v1` and `v1alpha`, so every grpcurl version can list and call it). Shutdown
//! follows mini-redis: one broadcast tells every task to stop; each holds a clone of an mpsc sender
//! and the server waits until all are dropped, which means the scheduler has flushed sled.
//!
//! In front of every service sits the auth gate (`crate::auth`): tokens are required unless the
//! server runs with `--insecure-no-auth`. TLS (and mTLS with `--client-ca`) is rustls through tonic.
//! Accepted sockets pass a per-address connection-rate limit before HTTP/2 sees them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use benchfarm_proto::v1::farm_service_server::FarmServiceServer;
use benchfarm_proto::v1::model_service_server::ModelServiceServer;
use benchfarm_proto::v1::worker_service_server::WorkerServiceServer;
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tracing::{info, warn};

use super::admission::{ConnectionRate, PeerRate};
use super::farm_service::FarmServiceImpl;
use super::worker_service::{StreamLimits, WorkerServiceImpl};
use crate::auth::{AuthLayer, Gate};
use crate::models::fetch::Transfers;
use crate::models::service::ModelServiceImpl;
use crate::models::upload::Uploads;
use crate::scheduler;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data: PathBuf,
    pub scheduler: scheduler::Config,
    /// Where to serve the live page and HTML reports (`--http`); `None`: not served.
    pub http: Option<SocketAddr>,
    pub auth: AuthMode,
    /// `None`: plaintext.
    pub tls: Option<TlsFiles>,
    pub streams: StreamLimits,
    /// The largest request a client may send (a plan carries its suite and scripted models).
    pub max_request_bytes: usize,
    pub connections: ConnectionRate,
    pub models: ModelsConfig,
}

/// Model distribution (`serve --models-dir`, `--max-transfers`, `--transfer-rate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelsConfig {
    /// GGUF files to register in place at start.
    pub dir: Option<PathBuf>,
    /// Model transfers sent at once; more wait their turn.
    pub max_transfers: usize,
    /// All transfers together at most this many bytes per second.
    pub transfer_rate: Option<u64>,
}

impl Default for ModelsConfig {
    fn default() -> ModelsConfig {
        ModelsConfig {
            dir: None,
            max_transfers: 4,
            transfer_rate: None,
        }
    }
}

impl ServeConfig {
    /// A server on `listen` with its store in `data`, tokens required, plaintext, default limits.
    pub fn new(listen: SocketAddr, data: PathBuf) -> ServeConfig {
        ServeConfig {
            listen,
            data,
            scheduler: scheduler::Config::default(),
            http: None,
            auth: AuthMode::default(),
            tls: None,
            streams: StreamLimits::default(),
            max_request_bytes: 16 << 20,
            connections: ConnectionRate {
                burst: 64,
                per_minute: 600,
            },
            models: ModelsConfig::default(),
        }
    }
}

/// Who may call the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// Bearer tokens, with the bootstrap tokens in these files (default: `DATA/api.token` and
    /// `DATA/worker.token`), created on first start.
    Tokens {
        api_token_file: Option<PathBuf>,
        worker_token_file: Option<PathBuf>,
    },
    /// `--insecure-no-auth`: everyone may do everything (the local demo on 127.0.0.1).
    InsecureNoAuth,
}

impl Default for AuthMode {
    fn default() -> AuthMode {
        AuthMode::Tokens {
            api_token_file: None,
            worker_token_file: None,
        }
    }
}

/// PEM files of the server's TLS identity, and of the CA its clients' certificates must chain to
/// (mTLS) when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
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
    #[error("tokens: {0}")]
    Tokens(#[from] crate::auth::files::FileError),
    #[error("--models-dir {path}: {source}")]
    ModelsDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    TlsFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A running server: its address, and the means to stop it.
#[derive(Debug)]
pub struct RunningServer {
    pub addr: SocketAddr,
    /// The live page's server, when `--http` asked for one.
    pub http: Option<crate::http::HttpServer>,
    /// The bootstrap token files, when tokens are required.
    pub tokens: Option<crate::auth::files::Bootstrap>,
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
    let (gate, tokens) = open_gate(&config).await?;
    let store = open_store(&config.data).await?;
    let catalog = open_catalog(&store, &config.models).await?;
    let (shutdown, _) = broadcast::channel(1);
    let (done_tx, done) = mpsc::channel(1);
    let loading = store.clone();
    let mut scheduler_config = config.scheduler.clone();
    scheduler_config.catalog = catalog.reader();
    if let Some(rate) = config.models.transfer_rate {
        // No worker fetches faster than the coordinator sends.
        scheduler_config.assumed_transfer_rate =
            scheduler_config.assumed_transfer_rate.min(rate as f64);
    }
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
    health
        .set_serving::<ModelServiceServer<ModelServiceImpl>>()
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
            crate::http::start(
                listen,
                scheduler.clone(),
                store.clone(),
                gate.clone(),
                &shutdown,
            )
            .await
            .map_err(|source| ServeError::Bind {
                addr: listen,
                source,
            })?,
        ),
        None => None,
    };

    let mut builder = tonic::transport::Server::builder()
        // Dead peers are noticed even when a worker stream is idle.
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        // A span per call, child of the caller's when its metadata carries W3C trace context.
        .trace_fn(benchfarm_telemetry::propagation::server_span);
    if let Some(tls) = &config.tls {
        builder = builder.tls_config(server_tls(tls).await?)?;
    } else if !addr.ip().is_loopback() {
        warn!(%addr, "serving plaintext beyond loopback: tokens and answers cross the network in \
              clear; use --tls-cert/--tls-key (docs/security.md)");
    }
    let max = config.streams.max_message_bytes;
    let files = crate::models::ModelFiles::new(&config.data);
    let model_service = ModelServiceImpl::new(
        Uploads {
            catalog: catalog.clone(),
            files: files.clone(),
            in_progress: Default::default(),
            name_bytes: config.scheduler.limits.name_bytes,
        },
        Transfers::new(
            catalog,
            files,
            config.models.max_transfers,
            config.models.transfer_rate,
        ),
        scheduler.clone(),
    );
    let worker_service = WorkerServiceImpl::new(scheduler.clone(), gate.clone(), config.streams);
    tokio::spawn(worker_service.clone().end_revoked_streams());
    let mut stop = shutdown.subscribe();
    let router = builder
        .layer(AuthLayer::new(gate.clone()))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            WorkerServiceServer::new(worker_service)
                .max_decoding_message_size(max)
                // An assignment carries its suite and scripted model, which a submit may make as
                // large as a request.
                .max_encoding_message_size(max.max(config.max_request_bytes)),
        )
        .add_service(
            FarmServiceServer::new(
                FarmServiceImpl::new(scheduler.clone(), store, shutdown.clone(), gate)
                    .with_live_page(http.as_ref().map(|h| h.addr)),
            )
            .max_decoding_message_size(config.max_request_bytes)
            // Reports of big runs are large; a client asks for them on purpose.
            .max_encoding_message_size(max.max(64 << 20)),
        )
        .add_service(
            // Chunks are 1 MiB; a little room for the framing.
            ModelServiceServer::new(model_service)
                .max_decoding_message_size(4 << 20)
                .max_encoding_message_size(4 << 20),
        );
    let clock = scheduler.clock().clone();
    let mut rate = PeerRate::new(config.connections);
    let incoming = TcpListenerStream::new(listener).filter(move |accepted| {
        let admit = match accepted {
            Ok(socket) => match socket.peer_addr() {
                Ok(peer) => {
                    let ok = rate.admit(peer.ip(), u64::try_from(clock.now_ms()).unwrap_or(0));
                    if !ok {
                        tracing::debug!(peer = %peer, "connection refused: over the per-address connection rate");
                    }
                    ok
                }
                Err(_) => false,
            },
            Err(_) => true,
        };
        std::future::ready(admit)
    });
    let server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async move {
        let _ = stop.recv().await;
    }));
    info!(%addr, data = %config.data.display(), "coordinator listening");
    Ok(RunningServer {
        addr,
        http,
        tokens,
        shutdown,
        done,
        server,
        failed,
    })
}

/// The registry of models in `store`, with `--models-dir` registered in place (blocking work:
/// reading and hashing files, flushing the store).
async fn open_catalog(
    store: &Store,
    models: &ModelsConfig,
) -> Result<crate::models::Catalog, ServeError> {
    let store = store.clone();
    let dir = models.dir.clone();
    tokio::task::spawn_blocking(move || {
        let catalog = crate::models::Catalog::open(store)?;
        if let Some(dir) = dir {
            let done = crate::models::register::register_dir(&dir, &catalog).map_err(|source| {
                ServeError::ModelsDir {
                    path: dir.clone(),
                    source,
                }
            })?;
            info!(dir = %dir.display(), models = done.models.len(), skipped = done.skipped.len(),
                  "models directory registered in place");
        }
        Ok(catalog)
    })
    .await
    .map_err(|e| ServeError::SchedulerDied(format!("opening the model registry panicked: {e}")))?
}

/// The gate of `config.auth`: with tokens, the registry of the data directory and the bootstrap
/// token files (created on first start, with a note on stderr saying how to use them).
async fn open_gate(
    config: &ServeConfig,
) -> Result<(Gate, Option<crate::auth::files::Bootstrap>), ServeError> {
    let (api_file, worker_file) = match &config.auth {
        AuthMode::InsecureNoAuth => {
            warn!(
                "--insecure-no-auth: anyone who reaches this port may submit, cancel, join and \
                   report results; use it only on 127.0.0.1"
            );
            return Ok((Gate::open(), None));
        }
        AuthMode::Tokens {
            api_token_file,
            worker_token_file,
        } => (
            api_token_file
                .clone()
                .unwrap_or_else(|| config.data.join("api.token")),
            worker_token_file
                .clone()
                .unwrap_or_else(|| config.data.join("worker.token")),
        ),
    };
    let data = config.data.clone();
    let now = u64::try_from(crate::records::now_ms()).unwrap_or(0);
    let (registry, boot) = tokio::task::spawn_blocking(move || {
        crate::auth::files::bootstrap(&data, &api_file, &worker_file, now)
    })
    .await
    .map_err(|e| ServeError::SchedulerDied(format!("reading tokens panicked: {e}")))??;
    for path in &boot.created {
        info!(file = %path.display(), "token file created (mode 0600)");
    }
    if !boot.created.is_empty() {
        eprintln!(
            "tokens: the CLI needs   export BENCHFARM_TOKEN=$(cat {})\n\
             tokens: workers need    export BENCHFARM_WORKER_TOKEN=$(cat {})   (or worker join --token-file FILE)\n\
             tokens: more with       coordinator tokens add --role worker|submitter|operator --name NAME",
            boot.api_token_file.display(),
            boot.worker_token_file.display()
        );
    }
    Ok((Gate::with_tokens(registry, config.data.clone()), Some(boot)))
}

/// The server's TLS configuration from its PEM files.
async fn server_tls(tls: &TlsFiles) -> Result<ServerTlsConfig, ServeError> {
    let read = |path: PathBuf| async move {
        tokio::fs::read(&path)
            .await
            .map_err(|source| ServeError::TlsFile { path, source })
    };
    let cert = read(tls.cert.clone()).await?;
    let key = read(tls.key.clone()).await?;
    let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
    if let Some(ca) = &tls.client_ca {
        config = config.client_ca_root(Certificate::from_pem(read(ca.clone()).await?));
    }
    Ok(config)
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
