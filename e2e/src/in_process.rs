//! The test farm: a real coordinator server on 127.0.0.1:0 and real workers, in this process.
//!
//! Workers are the same `benchfarm_worker::join` the binary runs, talking gRPC over loopback; only
//! the process boundary is missing. Each test gets its own temporary data and state directories.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use benchfarm_coordinator::cli::connect::{FarmClient, Target};
use benchfarm_coordinator::grpc::server::{self, RunningServer, ServeConfig};
use benchfarm_coordinator::scheduler;
use benchfarm_proto::v1 as pb;
use benchfarm_worker::credentials::Credentials;
use benchfarm_worker::{JoinConfig, Stop, WorkerOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Starts a coordinator on a free loopback port with its store in `data`.
pub async fn start_server(data: &Path, lease: Duration) -> RunningServer {
    start_server_on(data, lease, "127.0.0.1:0".parse().unwrap()).await
}

pub async fn start_server_on(
    data: &Path,
    lease: Duration,
    listen: std::net::SocketAddr,
) -> RunningServer {
    start_server_with(data, lease, listen, |_| {}).await
}

/// [`start_server_on`] with the configuration changed by `change` first (limits, TLS).
pub async fn start_server_with(
    data: &Path,
    lease: Duration,
    listen: std::net::SocketAddr,
    change: impl FnOnce(&mut ServeConfig),
) -> RunningServer {
    let mut config = ServeConfig {
        scheduler: scheduler::Config {
            lease,
            tick: Duration::from_millis(100),
            ..scheduler::Config::default()
        },
        // Every in-process test farm serves its live page too, on a port of its own.
        http: Some("127.0.0.1:0".parse().unwrap()),
        // Tokens on, as in production: every client and worker of the test farm sends one.
        ..ServeConfig::new(listen, data.to_path_buf())
    };
    change(&mut config);
    let server = server::start(config).await.expect("coordinator starts");
    remember_tokens(&server);
    server
}

/// The tokens of each in-process server, by URL: its operator token and its join token. The
/// helpers below look them up, so a test that knows only a server's URL talks to it with tokens.
static TOKENS: std::sync::Mutex<BTreeMap<String, (String, String)>> =
    std::sync::Mutex::new(BTreeMap::new());

fn tokens() -> std::sync::MutexGuard<'static, BTreeMap<String, (String, String)>> {
    // A test that panicked holding the lock poisons nothing the others need.
    TOKENS.lock().unwrap_or_else(|p| p.into_inner())
}

fn remember_tokens(server: &RunningServer) {
    let boot = server.tokens.as_ref().expect("tokens are on");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap().trim().to_string();
    tokens().insert(
        url(server),
        (read(&boot.api_token_file), read(&boot.worker_token_file)),
    );
}

/// Makes the token files of a server that will run at `url` with its store in `data` before it
/// starts (as an operator provisioning a farm would), so workers can be given the join token first.
pub fn provision_tokens(url: &str, data: &Path) {
    use benchfarm_coordinator::auth::files::read_or_create_token_file;
    let (api, _) = read_or_create_token_file(&data.join("api.token")).unwrap();
    let (join, _) = read_or_create_token_file(&data.join("worker.token")).unwrap();
    tokens().insert(url.to_string(), (api, join));
}

/// The operator token of the server at `url`.
pub fn api_token(url: &str) -> String {
    tokens()
        .get(url)
        .unwrap_or_else(|| {
            panic!("no tokens for {url}: start its server or provision_tokens first")
        })
        .0
        .clone()
}

/// The shared join token of the server at `url`.
pub fn join_token(url: &str) -> String {
    tokens()
        .get(url)
        .unwrap_or_else(|| {
            panic!("no tokens for {url}: start its server or provision_tokens first")
        })
        .1
        .clone()
}

/// The client target of the server at `url`, with its operator token.
pub fn target(url: &str) -> Target {
    Target::with_token(url, &api_token(url))
}

/// Worker credentials for the server at `url`: its shared join token.
pub fn worker_credentials(url: &str) -> Credentials {
    Credentials::new(url, Some(&join_token(url)), &Default::default()).unwrap()
}

/// A worker running in this process until `stop` is sent.
pub struct TestWorker {
    pub stop: watch::Sender<Stop>,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl TestWorker {
    /// Drains the worker and waits for it to leave.
    pub async fn leave(self) {
        let _ = self.stop.send(Stop::Drain);
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("worker leaves within 30 s")
            .expect("worker task")
            .expect("worker ran without error");
    }
}

/// Starts a worker for `url` with GGUF models from `models` (an empty directory: scripted only).
/// Test workers run scripted models' test features (`--allow-scripted-faults`): the tests' models
/// use delays, load times and faults on purpose.
pub fn start_worker(url: &str, name: &str, models: &Path, state: &Path) -> TestWorker {
    start_worker_with(
        url,
        name,
        models,
        state,
        WorkerOptions {
            allow_scripted_faults: true,
            ..WorkerOptions::default()
        },
    )
}

/// [`start_worker`] with `options` as given (`WorkerOptions::default()`: a production worker).
pub fn start_worker_with(
    url: &str,
    name: &str,
    models: &Path,
    state: &Path,
    options: WorkerOptions,
) -> TestWorker {
    let (stop, rx) = watch::channel(Stop::Run);
    let config = JoinConfig {
        coordinator: url.to_string(),
        models_dir: models.to_path_buf(),
        labels: [("site".to_string(), "test".to_string())].into(),
        threads: Some(1),
        state_dir: state.to_path_buf(),
        name: Some(name.to_string()),
        slots: 1,
        credentials: worker_credentials(url),
    };
    let task = tokio::spawn(benchfarm_worker::join_with(config, options, rx));
    TestWorker { stop, task }
}

/// A worker with no GGUF models (it runs scripted models only); its state lives in `dir/NAME`.
pub fn start_scripted_worker(url: &str, name: &str, dir: &Path) -> TestWorker {
    let no_models = dir.join("no-models");
    std::fs::create_dir_all(&no_models).unwrap();
    start_worker(url, name, &no_models, &dir.join(name))
}

pub async fn client(url: &str) -> FarmClient {
    benchfarm_coordinator::cli::client::connect(&target(url))
        .await
        .expect("client connects")
}

pub fn url(server: &RunningServer) -> String {
    format!("http://{}", server.addr)
}

/// Waits until `n` workers are connected.
pub async fn wait_workers(client: &mut FarmClient, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let workers = list_workers(client).await;
        if workers.iter().filter(|w| w.connected).count() >= n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} workers did not join within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the run is over and returns its final status.
pub async fn wait_run(client: &mut FarmClient, run_id: &str, limit: Duration) -> pb::RunStatus {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let status = client
            .get_run(pb::GetRunRequest {
                run_id: run_id.into(),
            })
            .await
            .unwrap()
            .into_inner();
        if status.state() != pb::RunState::Running {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "run not over within {limit:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes a plan file into `dir` and resolves it as `coordinator submit` would.
pub fn plan(dir: &Path, text: &str) -> pb::SubmitRunRequest {
    let path = dir.join("plan.toml");
    std::fs::write(&path, text).unwrap();
    benchfarm_coordinator::plan::load(&path)
        .expect("plan resolves")
        .request
}

/// The workspace root (for `models/`).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub use crate::real_model::*;
pub use crate::reports::*;
pub use crate::workers::*;

/// Keys every jsonl line has (docs/jsonl.md): today's and the ones the results issue added.
pub const JSONL_KEYS: &[&str] = &[
    "schema",
    "model",
    "task_id",
    "repetition",
    "verdict",
    "worker_id",
    "worker_name",
    "hardware_class",
    "threads",
    "wall_ms",
    "load_ms",
    "cold",
    "prompt_tokens",
    "prompt_ms",
    "ttft_ms",
    "gen_tokens",
    "gen_ms",
    "run",
    "job",
    "attempt",
    "counted",
    "model_sha256",
    "model_size_bytes",
    "category",
    "answer",
    "extracted",
    "score",
    "checks",
    "llama_cpp_build",
    "chat_template",
    "stop",
    "suite_name",
    "suite_version",
    "seed",
    "temperature",
    "grade_history",
];
