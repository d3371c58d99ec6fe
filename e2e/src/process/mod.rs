//! The process-level test farm: the real `coordinator` and `worker` binaries on 127.0.0.1.
//!
//! Unlike `common` (everything in this process), every member of a [`Farm`] is a separate process
//! in its own process group, so a test can do to it what happens to a real one: `kill -9`,
//! SIGSTOP/SIGCONT, a coordinator restart on the same data directory and port. Each process logs to
//! a file in the farm's temporary directory; when a test fails (or `BENCHFARM_KEEP_FARM` is set)
//! the tails of those logs are printed and the directory is kept. Dropping the farm kills every
//! process group it started, so nothing outlives a test, passed or failed.
//!
//! The binaries are taken from `$BENCHFARM_BIN_DIR`, else from the test executable's profile
//! directory (`target/<profile>/`), else from `target/debug/` (the bench runs in the release
//! profile, where nothing else builds the binaries).
//! `cargo test --workspace` builds them (the coordinator and worker packages have integration
//! tests); `cargo test -p benchfarm-e2e` alone does not: `cargo build --workspace --bins` first.
// Test helpers: a panic is the failure report we want, and not every test uses every helper.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use benchfarm_coordinator::job::JobState;
use benchfarm_coordinator::records::{JobRecord, ResultRecord};
use benchfarm_coordinator::store::Store;
use benchfarm_proto::v1 as pb;

pub type Client = benchfarm_coordinator::cli::connect::FarmClient;

/// How long a process gets to start (a coordinator to accept connections, a worker to join).
const START_LIMIT: Duration = Duration::from_secs(30);
/// Lines of each log printed when a test fails.
const LOG_TAIL_LINES: usize = 40;

// ---------------------------------------------------------------------------------------------
// Binaries and ports

/// When the older of the directory's two binaries was built, if it has both.
fn bins_built(dir: &Path) -> Option<std::time::SystemTime> {
    let built = |name: &str| std::fs::metadata(dir.join(name)).and_then(|m| m.modified());
    Some(built("coordinator").ok()?.min(built("worker").ok()?))
}

/// The directory holding the `coordinator` and `worker` binaries: `$BENCHFARM_BIN_DIR`, else the
/// test's own profile directory, else `target/debug`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BENCHFARM_BIN_DIR") {
        let dir = PathBuf::from(dir);
        assert!(
            bins_built(&dir).is_some(),
            "BENCHFARM_BIN_DIR={} has no coordinator and worker binaries",
            dir.display()
        );
        return dir;
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<name>-<hash>
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lies in target/<profile>/deps");
    let mut candidates = vec![profile.to_path_buf()];
    if let Some(target) = profile.parent() {
        candidates.push(target.join("debug"));
    }
    // The test's own profile first: picking whichever pair is newer could run stale binaries of
    // the other profile against the code under test.
    candidates
        .iter()
        .find(|dir| bins_built(dir).is_some())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no coordinator and worker binaries in {candidates:?}: \
                 run `cargo build --workspace --bins` first"
            )
        })
}

/// A loopback port that was free a moment ago (bound, read, released).
///
/// Never the same port twice in one test process: tests run in parallel, and a port released here
/// can be handed out again before the coordinator it was meant for binds it, which would leave two
/// farms on one port.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap();
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// Sends `signal` (a name such as "STOP") with the `kill` command to `target` ("123", or "-123"
/// for a process group). False when no such process (group) exists any more.
pub fn send_signal(signal: &str, target: &str) -> bool {
    Command::new("kill")
        .args(["-s", signal, "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// One process

/// A child process that leads its own process group (so its own children, such as a worker's engine
/// process, can be signalled and killed with it) and logs to a file.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Child,
    status: Option<ExitStatus>,
}

impl Proc {
    fn spawn(
        name: &str,
        binary: &str,
        args: &[String],
        env: &[(String, String)],
        log: &Path,
    ) -> Proc {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        writeln!(file, "=== harness: starting {binary} {}", args.join(" ")).unwrap();
        let path = bin_dir().join(binary);
        let child = Command::new(&path)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env_remove("BENCHFARM_COORDINATOR")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        Proc {
            name: name.to_string(),
            log: log.to_path_buf(),
            child,
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running (not exited, not killed).
    pub fn is_running(&mut self) -> bool {
        if self.status.is_some() {
            return false;
        }
        match self.child.try_wait().unwrap() {
            Some(status) => {
                self.status = Some(status);
                false
            }
            None => true,
        }
    }

    /// SIGKILL to this process only (its children, if any, are left to notice), then reaped.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = Some(self.child.wait().unwrap());
        }
    }

    /// `signal` to the process only.
    pub fn signal(&self, signal: &str) -> bool {
        send_signal(signal, &self.pid().to_string())
    }

    /// `signal` to the whole process group (the process and every child it started).
    pub fn signal_group(&self, signal: &str) -> bool {
        send_signal(signal, &format!("-{}", self.pid()))
    }

    /// Waits up to `limit` for the process to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if !self.is_running() {
                return self.status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGTERM; SIGKILL if it has not exited after `grace`.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.is_running() {
            self.signal("TERM");
            if self.wait_exit(grace).is_none() {
                self.kill();
            }
        }
        self.status
    }

    /// Whether any process of this process group is still alive (e.g. an orphaned engine process
    /// after its worker was killed).
    pub fn group_alive(&self) -> bool {
        send_signal("0", &format!("-{}", self.pid()))
    }

    /// Kills every process of the group, then reaps the leader.
    pub fn kill_group(&mut self) {
        // SIGKILL also ends stopped processes.
        self.signal_group("KILL");
        self.kill();
    }
}

/// The last `lines` lines of a log file.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// The farm

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

// ---------------------------------------------------------------------------------------------
// Talking to the coordinator

pub async fn list_workers(client: &mut Client) -> Vec<pb::WorkerStatus> {
    client
        .list_workers(pb::ListWorkersRequest {})
        .await
        .unwrap()
        .into_inner()
        .workers
}

/// The worker named `name` as the coordinator lists it.
pub async fn worker_status(client: &mut Client, name: &str) -> Option<pb::WorkerStatus> {
    list_workers(client)
        .await
        .into_iter()
        .find(|w| w.name == name)
}

pub async fn run_status(client: &mut Client, run_id: &str) -> pb::RunStatus {
    client
        .get_run(pb::GetRunRequest {
            run_id: run_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// Waits until the run is over and returns its final status.
pub async fn wait_run(client: &mut Client, run_id: &str, limit: Duration) -> pb::RunStatus {
    let deadline = Instant::now() + limit;
    loop {
        let status = run_status(client, run_id).await;
        if status.state != "running" {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "run not over within {limit:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the run to end and asserts it finished with `done` jobs done and `failed` failed, both
/// in its status and in its report (which counts `done + failed` jobs). Returns the report.
pub async fn wait_finished(
    client: &mut Client,
    run_id: &str,
    limit: Duration,
    done: u32,
    failed: u32,
) -> serde_json::Value {
    let status = wait_run(client, run_id, limit).await;
    assert_eq!(
        (status.state.as_str(), status.jobs_done, status.jobs_failed),
        ("finished", done, failed),
        "{status:?}"
    );
    let report = report_json(client, run_id).await;
    assert_eq!(
        report_counts(&report),
        (u64::from(done + failed), u64::from(done), u64::from(failed))
    );
    report
}

/// Waits until at least `done` jobs of the run are done and the worker `name` holds a job (so that
/// what the test does to it next happens mid-job). Returns the worker's running jobs.
pub async fn wait_busy(
    client: &mut Client,
    run_id: &str,
    done: u32,
    name: &str,
    limit: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let status = run_status(client, run_id).await;
        assert_eq!(
            status.state, "running",
            "the run ended too early: {status:?}"
        );
        if status.jobs_done >= done
            && let Some(w) = worker_status(client, name).await
            && w.connected
            && !w.running_jobs.is_empty()
        {
            return w.running_jobs;
        }
        assert!(
            Instant::now() < deadline,
            "worker {name} not busy with {done} jobs done within {limit:?}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The report of a run as JSON.
pub async fn report_json(client: &mut Client, run_id: &str) -> serde_json::Value {
    serde_json::from_str(&report_body(client, run_id, "json").await).unwrap()
}

/// The report of a run in `format`, as the server renders it.
pub async fn report_body(client: &mut Client, run_id: &str, format: &str) -> String {
    client
        .get_report(pb::GetReportRequest {
            run_id: run_id.into(),
            format: format.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .body
}

/// `(jobs_total, jobs_graded, jobs_failed)` of a JSON report.
pub fn report_counts(report: &serde_json::Value) -> (u64, u64, u64) {
    let n = |k: &str| {
        report[k]
            .as_u64()
            .unwrap_or_else(|| panic!("report has no {k}: {report}"))
    };
    (n("jobs_total"), n("jobs_graded"), n("jobs_failed"))
}

// ---------------------------------------------------------------------------------------------
// The store after the run

/// Every job of the run that is not `failed` has exactly one counted result and is done at that
/// result's attempt; a failed job has none. Returns the run's jobs and all its results (counted or
/// not).
pub fn assert_exactly_once(
    store: &Store,
    run_id: &str,
    jobs_expected: usize,
) -> (Vec<JobRecord>, Vec<ResultRecord>) {
    let jobs = store.jobs_of_run(run_id).unwrap();
    let results = store.results_of_run(run_id).unwrap();
    assert_eq!(jobs.len(), jobs_expected, "jobs of run {run_id}");
    for job in &jobs {
        let counted: Vec<&ResultRecord> = results
            .iter()
            .filter(|r| r.job_id == job.id && r.counted)
            .collect();
        if job.state == JobState::Failed {
            assert!(
                counted.is_empty(),
                "failed job {} has counted results",
                job.id
            );
            continue;
        }
        assert_eq!(
            counted.len(),
            1,
            "job {} ({} rep {}) has {} counted results; attempts {:?}",
            job.id,
            job.task_id,
            job.repetition,
            counted.len(),
            job.attempts
        );
        assert_eq!(
            job.state,
            JobState::Done {
                attempt: counted[0].attempt
            },
            "job {} is not done at its counted attempt",
            job.id
        );
    }
    assert!(
        results
            .iter()
            .all(|r| jobs.iter().any(|j| j.id == r.job_id)),
        "a result of an unknown job"
    );
    (jobs, results)
}

/// The job of `task` at `repetition` (first model).
pub fn job_of<'a>(jobs: &'a [JobRecord], task: &str, repetition: u32) -> &'a JobRecord {
    jobs.iter()
        .find(|j| j.task_id == task && j.repetition == repetition)
        .unwrap_or_else(|| panic!("no job {task} rep {repetition}"))
}

// ---------------------------------------------------------------------------------------------
// Suites, scripted models and plans

/// A suite of `tasks` tasks `t00`, `t01`, …: each asks for "ok" and passes when the answer contains
/// "ok" (the scripted answers of [`Scripted`] do).
pub fn suite_toml(tasks: usize) -> String {
    let mut s = String::from("name = \"process\"\nversion = \"1\"\n");
    for i in 0..tasks {
        s.push_str(&format!(
            "\n[[tasks]]\nid = \"{}\"\ncategory = \"c{}\"\nprompt = \"Task {i}: say ok.\"\npass = [{{ contains = \"ok\" }}]\n",
            task_id(i),
            i % 3
        ));
    }
    s
}

pub fn task_id(i: usize) -> String {
    format!("t{i:02}")
}

/// A scripted-model fault (see modelfile/src/scripted.rs).
#[derive(Debug, Clone)]
pub struct Fault {
    pub task: String,
    pub repetition: Option<u32>,
    pub attempts: Option<Vec<u32>>,
    /// "fail" | "hang" | "crash" | "kill"
    pub kind: String,
}

/// A scripted model over [`suite_toml`]'s tasks: every answer is "ok" padded to a known number of
/// estimated tokens (4 bytes each), so a job lasts `tokens / tokens_per_second` seconds.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub name: String,
    pub tasks: usize,
    pub tokens_per_second: f64,
    pub delay_ms: u64,
    pub load_ms: Option<u64>,
    /// Answer length of task i, in tokens.
    pub tokens: fn(usize) -> u32,
    pub faults: Vec<Fault>,
}

impl Scripted {
    /// `tasks` answers of 40 tokens at 100 tokens/s: 400 ms a job.
    pub fn new(name: &str, tasks: usize) -> Scripted {
        Scripted {
            name: name.into(),
            tasks,
            tokens_per_second: 100.0,
            delay_ms: 0,
            load_ms: None,
            tokens: |_| 40,
            faults: Vec::new(),
        }
    }

    pub fn fault(
        mut self,
        task: &str,
        repetition: Option<u32>,
        attempts: Option<&[u32]>,
        kind: &str,
    ) -> Self {
        self.faults.push(Fault {
            task: task.into(),
            repetition,
            attempts: attempts.map(<[u32]>::to_vec),
            kind: kind.into(),
        });
        self
    }

    /// The answer of task `i`.
    pub fn answer(&self, i: usize) -> String {
        let bytes = ((self.tokens)(i) as usize * 4).max(2);
        format!("ok{}", ".".repeat(bytes - 2))
    }

    pub fn toml(&self) -> String {
        let mut s = format!(
            "name = \"{}\"\ntokens_per_second = {:?}\ndelay_ms = {}\n",
            self.name, self.tokens_per_second, self.delay_ms
        );
        // Only written when set, so these files also parse before `load_ms` exists.
        if let Some(ms) = self.load_ms {
            s.push_str(&format!("load_ms = {ms}\n"));
        }
        s.push_str("[answers]\n");
        for i in 0..self.tasks {
            s.push_str(&format!("\"{}\" = [\"{}\"]\n", task_id(i), self.answer(i)));
        }
        for f in &self.faults {
            s.push_str(&format!("\n[[faults]]\ntask = \"{}\"\n", f.task));
            if let Some(r) = f.repetition {
                s.push_str(&format!("repetition = {r}\n"));
            }
            if let Some(a) = &f.attempts {
                s.push_str(&format!("attempts = {a:?}\n"));
            }
            s.push_str(&format!("kind = \"{}\"\n", f.kind));
        }
        s
    }
}

/// A plan over suite file `suite` with scripted model files `models` and `extra` top-level keys.
pub fn plan_text(suite: &str, repetitions: u32, models: &[&str], extra: &str) -> String {
    let mut s = format!("suite = \"{suite}\"\nrepetitions = {repetitions}\nseed = 1\n{extra}\n");
    for m in models {
        s.push_str(&format!("[[models]]\nscripted = \"{m}\"\n"));
    }
    s
}

#[path = "../support/real_model.rs"]
mod real_model;
#[allow(unused_imports)] // not every test binary uses the real model
pub use real_model::*;
