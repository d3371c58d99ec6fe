//! The process-level farm: a coordinator and workers as real processes, started, signalled,
//! restarted and killed by the test; dropping it kills every process group it started.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use benchfarm_coordinator::store::Store;
use benchfarm_proto::v1 as pb;

use super::*;

/// `coordinator serve` options.
#[derive(Debug, Clone)]
pub struct CoordinatorOpts {
    pub lease_ms: u64,
    pub max_attempts: Option<u32>,
    pub job_timeout_ms: Option<u64>,
    /// More flags, as given.
    pub extra: Vec<String>,
    /// Serve TLS with these PEM files; workers and clients then use `--ca` and an https URL.
    pub tls: Option<FarmTls>,
    /// Environment variables set for the coordinator (`OTEL_*`).
    pub env: Vec<(String, String)>,
}

/// The PEM files of a TLS farm.
#[derive(Debug, Clone)]
pub struct FarmTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for CoordinatorOpts {
    fn default() -> Self {
        CoordinatorOpts {
            lease_ms: 2000,
            max_attempts: None,
            job_timeout_ms: None,
            extra: Vec::new(),
            tls: None,
            env: Vec::new(),
        }
    }
}

/// `worker join` options beyond the ones every test worker gets.
#[derive(Debug, Clone, Default)]
pub struct WorkerOpts {
    /// `--label k=v`, in order.
    pub labels: Vec<(String, String)>,
    /// The models directory; default: an empty one (scripted models only).
    pub models: Option<PathBuf>,
    /// More flags, as given (`--max-ram 64MB`, `--speed-factor 2`).
    pub extra: Vec<String>,
    /// Start it without `--allow-scripted-faults` (every test worker gets that flag otherwise:
    /// the harness's scripted models use faults, delays and load times on purpose).
    pub production: bool,
    /// Environment variables for this worker only (`OTEL_*`, an API key).
    pub env: Vec<(String, String)>,
}

impl WorkerOpts {
    /// A worker as in production: without `--allow-scripted-faults`.
    pub fn production(mut self) -> Self {
        self.production = true;
        self
    }
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.into(), value.into()));
        self
    }
    pub fn models(mut self, dir: &Path) -> Self {
        self.models = Some(dir.to_path_buf());
        self
    }
    pub fn arg(mut self, flag: &str, value: &str) -> Self {
        self.extra.push(flag.into());
        self.extra.push(value.into());
        self
    }
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// A coordinator and its workers, as processes, with a temporary directory for their data,
/// state, logs, plans, suites and models.
pub struct Farm {
    dir: Option<tempfile::TempDir>,
    pub port: u16,
    pub url: String,
    coordinator_args: Vec<String>,
    /// The CA of a TLS farm's coordinator.
    pub ca: Option<PathBuf>,
    coordinator_env: Vec<(String, String)>,
    coordinator: Option<Proc>,
    workers: BTreeMap<String, Proc>,
}

impl Farm {
    /// A farm whose coordinator is up and accepting clients (no workers yet).
    pub async fn start(opts: CoordinatorOpts) -> Farm {
        let dir = tempfile::Builder::new()
            .prefix("benchfarm-process-")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        std::fs::create_dir_all(dir.path().join("no-models")).unwrap();
        let port = free_port();
        let url = match &opts.tls {
            // The certificate names localhost (and 127.0.0.1).
            Some(_) => format!("https://localhost:{port}"),
            None => format!("http://127.0.0.1:{port}"),
        };
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--data".into(),
            dir.path().join("data").display().to_string(),
            "--lease-ms".into(),
            opts.lease_ms.to_string(),
        ];
        if let Some(n) = opts.max_attempts {
            args.extend(["--max-attempts".into(), n.to_string()]);
        }
        if let Some(ms) = opts.job_timeout_ms {
            args.extend(["--job-timeout-ms".into(), ms.to_string()]);
        }
        if let Some(tls) = &opts.tls {
            args.extend([
                "--tls-cert".into(),
                tls.cert.display().to_string(),
                "--tls-key".into(),
                tls.key.display().to_string(),
            ]);
        }
        args.extend(opts.extra);
        let mut farm = Farm {
            dir: Some(dir),
            port,
            url,
            coordinator_args: args,
            ca: opts.tls.map(|t| t.ca),
            coordinator_env: opts.env,
            coordinator: None,
            workers: BTreeMap::new(),
        };
        farm.start_coordinator().await;
        farm
    }

    /// The farm's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    /// A path inside the farm's directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir().join(rel)
    }

    /// The coordinator's data directory.
    pub fn data(&self) -> PathBuf {
        self.path("data")
    }

    /// Writes `text` to `rel` in the farm's directory and returns the path.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes a plan file and resolves it as `coordinator submit` would.
    pub fn plan(&self, text: &str) -> pb::SubmitRunRequest {
        let path = self.write("plan.toml", text);
        benchfarm_coordinator::plan::load(&path)
            .unwrap_or_else(|e| panic!("the plan does not resolve: {e}\n{text}"))
            .request
    }

    /// Starts (or restarts) the coordinator on the farm's port and data directory and waits until it
    /// accepts clients.
    pub async fn start_coordinator(&mut self) {
        assert!(
            self.coordinator.as_mut().is_none_or(|c| !c.is_running()),
            "the coordinator is already running"
        );
        let log = self.path("logs/coordinator.log");
        let mut proc = Proc::spawn(
            "coordinator",
            "coordinator",
            &self.coordinator_args,
            &self.coordinator_env,
            &log,
        );
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if !proc.is_running() {
                panic!(
                    "the coordinator exited at start ({:?}):\n{}",
                    proc.status,
                    log_tail(&log, LOG_TAIL_LINES)
                );
            }
            // Ready once the token files exist and a token-bearing call is answered.
            if let Ok(mut client) =
                benchfarm_coordinator::cli::client::connect(&self.target()).await
                && client.list_runs(pb::ListRunsRequest {}).await.is_ok()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the coordinator did not accept clients within {START_LIMIT:?}:\n{}",
                log_tail(&log, LOG_TAIL_LINES)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.coordinator = Some(proc);
    }

    /// Adds `extra` to the coordinator's command line, for its next start.
    pub fn set_coordinator_args(&mut self, extra: &[&str]) {
        self.coordinator_args
            .extend(extra.iter().map(|a| a.to_string()));
    }

    /// `kill -9` the coordinator (the process; it starts no children).
    pub fn kill_coordinator(&mut self) {
        if let Some(c) = self.coordinator.as_mut() {
            c.kill_group();
        }
    }

    pub fn coordinator(&mut self) -> &mut Proc {
        self.coordinator.as_mut().expect("no coordinator started")
    }

    /// Starts a worker named `name` (state in `<dir>/state/<name>`, log in `<dir>/logs/<name>.log`).
    pub fn start_worker(&mut self, name: &str, opts: WorkerOpts) {
        assert!(
            self.workers.get_mut(name).is_none_or(|w| !w.is_running()),
            "worker {name} is already running"
        );
        let models = opts.models.unwrap_or_else(|| self.path("no-models"));
        let mut args: Vec<String> = vec![
            "join".into(),
            "--coordinator".into(),
            self.url.clone(),
            "--models".into(),
            models.display().to_string(),
            "--threads".into(),
            "1".into(),
            "--state".into(),
            self.path(&format!("state/{name}")).display().to_string(),
            "--name".into(),
            name.into(),
        ];
        // The shared join token the coordinator made at its first start.
        let token = self.data().join("worker.token");
        if token.exists() {
            args.extend(["--token-file".into(), token.display().to_string()]);
        }
        if let Some(ca) = &self.ca {
            args.extend(["--ca".into(), ca.display().to_string()]);
        }
        for (k, v) in &opts.labels {
            args.extend(["--label".into(), format!("{k}={v}")]);
        }
        if !opts.production {
            args.push("--allow-scripted-faults".into());
        }
        args.extend(opts.extra);
        let log = self.path(&format!("logs/{name}.log"));
        let proc = Proc::spawn(name, "worker", &args, &opts.env, &log);
        self.workers.insert(name.to_string(), proc);
    }

    pub fn worker(&mut self, name: &str) -> &mut Proc {
        self.workers
            .get_mut(name)
            .unwrap_or_else(|| panic!("no worker {name}"))
    }

    /// A FarmService client of the current coordinator, with the operator token.
    pub async fn client(&self) -> Client {
        benchfarm_coordinator::cli::client::connect(&self.target())
            .await
            .expect("client connects")
    }

    /// The coordinator's operator token (DATA/api.token, made at its first start); `None` before
    /// that, or when it runs with `--insecure-no-auth`.
    pub fn api_token(&self) -> Option<String> {
        std::fs::read_to_string(self.data().join("api.token"))
            .ok()
            .map(|t| t.trim().to_string())
    }

    /// The client target: the URL with the operator token.
    pub fn target(&self) -> benchfarm_coordinator::cli::connect::Target {
        let mut target = match self.api_token() {
            Some(token) => {
                benchfarm_coordinator::cli::connect::Target::with_token(&self.url, &token)
            }
            None => benchfarm_coordinator::cli::connect::Target::insecure(&self.url),
        };
        target.tls.ca = self.ca.clone();
        target
    }

    /// Runs the `coordinator` binary as a client of this farm (`--coordinator`, `--ca` and the
    /// operator token in env `BENCHFARM_TOKEN`, as a user would); returns (exit code, stdout,
    /// stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        self.cli_as(self.api_token().as_deref(), args)
    }

    /// [`Farm::cli`] with `token` (or none) in env `BENCHFARM_TOKEN`.
    pub fn cli_as(&self, token: Option<&str>, args: &[&str]) -> (i32, String, String) {
        let mut command = Command::new(bin_dir().join("coordinator"));
        command.arg("--coordinator").arg(&self.url);
        if let Some(ca) = &self.ca {
            command.arg("--ca").arg(ca);
        }
        match token {
            Some(token) => command.env("BENCHFARM_TOKEN", token),
            None => command.env_remove("BENCHFARM_TOKEN"),
        };
        let output = command
            .args(args)
            .env_remove("BENCHFARM_COORDINATOR")
            .env_remove("BENCHFARM_CA")
            .stdin(Stdio::null())
            .output()
            .expect("the coordinator binary runs");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Waits until every worker in `names` is connected; returns name → worker id.
    pub async fn wait_connected(
        &mut self,
        client: &mut Client,
        names: &[&str],
    ) -> HashMap<String, String> {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let workers = list_workers(client).await;
            let connected: HashMap<String, String> = workers
                .iter()
                .filter(|w| w.connected)
                .map(|w| (w.name.clone(), w.worker_id.clone()))
                .collect();
            if names.iter().all(|n| connected.contains_key(*n)) {
                return connected;
            }
            for name in names {
                let proc = self.worker(name);
                if !proc.is_running() {
                    panic!(
                        "worker {name} exited ({:?}):\n{}",
                        proc.status,
                        log_tail(&proc.log, LOG_TAIL_LINES)
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "workers {names:?} not all connected within {START_LIMIT:?}: {:?}",
                connected.keys().collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the farm for inspection: every worker killed, the coordinator stopped with SIGTERM (so
    /// it flushes; SIGKILL after 15 s), then its store opened.
    pub fn stop_and_open_store(&mut self) -> Store {
        for w in self.workers.values_mut() {
            w.kill_group();
        }
        if let Some(c) = self.coordinator.as_mut() {
            c.terminate(Duration::from_secs(15));
        }
        Store::open_waiting(&self.data(), Duration::from_secs(10))
            .expect("the store opens after the coordinator stopped")
    }
}

impl Drop for Farm {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        for proc in self.workers.values_mut().chain(self.coordinator.as_mut()) {
            proc.kill_group();
        }
        if failing || std::env::var_os("BENCHFARM_KEEP_FARM").is_some() {
            let logs = self.path("logs");
            let mut names: Vec<PathBuf> = std::fs::read_dir(&logs)
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            names.sort();
            for log in names {
                eprintln!(
                    "----- {} (last {LOG_TAIL_LINES} lines) -----\n{}",
                    log.display(),
                    log_tail(&log, LOG_TAIL_LINES)
                );
            }
            if let Some(dir) = self.dir.take() {
                eprintln!("----- farm directory kept: {}", dir.keep().display());
            }
        }
    }
}
