//! The Docker Compose lab, for real: `deploy/lab.sh` builds the images from this build's own
//! binaries on a locally made base, brings up a coordinator and three workers of two classes, and
//! the tests run plans against it and do to the containers what happens to real machines —
//! `docker kill`, `docker restart`, `docker network disconnect`, `docker pause`.
//!
//! Why Rust tests driving the script, rather than a shell test: the lab is brought up and torn
//! down by the user's own entry point (`lab.sh up|run|down`), so the script is what is tested;
//! the assertions need the farm's typed API (ListWorkers' hardware, the JSON report) and its
//! store (every job counted exactly once, every attempt accounted for), which the e2e kit
//! (`process/`) already reads; and `cargo test` is how CI runs everything.
//!
//! Each test owns a compose project, a network, volumes and two image tags named after its process
//! id and scenario; [`Lab`]'s `Drop` removes them all (`lab.sh down --all`), passed or failed,
//! and touches nothing else on the engine. The base image `benchfarm-base:bookworm` is built once
//! (`deploy/base-image.sh`, skipped when present) and reused by tag. The lab tests run one at a
//! time (a lock): each lab is four containers on what may be a 2-core machine.
//!
//! Without docker the tests say so and pass, except in CI (`CI` set), where they fail: CI must run
//! them. `BENCHFARM_LAB_KEEP=1` keeps a failed lab up for a look.

use benchfarm_e2e::process;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use benchfarm_coordinator::records::{AttemptEnd, JobRecord};
use benchfarm_coordinator::store::Store;
use benchfarm_e2e::process::{
    Client, assert_exactly_once, bin_dir, free_port, list_workers, wait_busy,
};
use benchfarm_proto::v1 as pb;

/// One lab at a time.
static LAB_LOCK: Mutex<()> = Mutex::new(());
/// The lease of the chaos labs: short, so a fault "longer than the lease" takes seconds.
const CHAOS_LEASE_MS: u64 = 3_000;
/// Jobs of deploy/plans/chaos.toml: the built-in suite's 10 tasks × 4 repetitions.
const CHAOS_JOBS: usize = 40;
/// Jobs a worker holds at most: its one slot and one prefetched job (the coordinator's default).
const HELD_PER_WORKER: usize = 2;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// Whether docker and a compose are here; in CI their absence is a failure, elsewhere a skip.
fn docker_available(test: &str) -> bool {
    let works = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let docker = works("docker", &["info"]);
    let compose = works("docker", &["compose", "version"]) || works("docker-compose", &["version"]);
    if docker && compose {
        return true;
    }
    let missing = if docker {
        "docker compose / docker-compose"
    } else {
        "a running docker engine"
    };
    if std::env::var_os("CI").is_some() {
        panic!(
            "{test}: CI runs the lab tests, but there is no {missing} (scripts/test.sh installs them)"
        );
    }
    eprintln!("{test}: SKIPPED: no {missing} on this machine");
    false
}

/// Runs a command; panics with its output when it fails.
fn run(command: &mut Command) -> String {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn docker(args: &[&str]) -> String {
    run(Command::new("docker").args(args))
}

/// The local base image, built once per machine (the script skips an existing tag).
fn base_image() -> String {
    if let Ok(base) = std::env::var("BENCHFARM_BASE") {
        return base;
    }
    static BUILT: Mutex<bool> = Mutex::new(false);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !*built {
        let start = Instant::now();
        run(&mut Command::new(repo_root().join("deploy/base-image.sh")));
        eprintln!(
            "lab: base image ready in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        *built = true;
    }
    "benchfarm-base:bookworm".into()
}

/// A lab brought up by `deploy/lab.sh up` under names of its own.
struct Lab {
    project: String,
    tag: String,
    grpc_port: u16,
    http_port: u16,
    lease_ms: u64,
    started: Instant,
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl Lab {
    /// Brings up a lab for `scenario`, or `None` when docker is absent (outside CI).
    fn up(scenario: &str, lease_ms: u64, chaos: bool) -> Option<Lab> {
        if !docker_available(scenario) {
            return None;
        }
        let lock = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let id = format!("{}-{scenario}", std::process::id());
        let lab = Lab {
            project: format!("bflabtest-{id}"),
            tag: format!("{}-labtest-{id}", env!("CARGO_PKG_VERSION")),
            grpc_port: free_port(),
            http_port: free_port(),
            lease_ms,
            started: Instant::now(),
            _lock: lock,
        };
        base_image();
        // The chaos scenarios run deploy/plans/chaos.toml, whose scripted model uses test
        // features (delay_ms) that only workers started with --allow-scripted-faults run.
        if chaos {
            lab.script(&["up", "--chaos"]);
        } else {
            lab.script(&["up"]);
        }
        eprintln!(
            "lab {scenario}: up in {:.1} s",
            lab.started.elapsed().as_secs_f64()
        );
        Some(lab)
    }

    /// `deploy/lab.sh ARGS` with this lab's names, ports and binaries; returns stdout.
    fn script(&self, args: &[&str]) -> String {
        run(&mut self.script_command(args))
    }

    fn script_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(repo_root().join("deploy/lab.sh"));
        command
            .args(args)
            .env("BENCHFARM_LAB_PROJECT", &self.project)
            .env("BENCHFARM_LAB_TAG", &self.tag)
            .env("BENCHFARM_LAB_BINARIES", bin_dir())
            .env("BENCHFARM_BASE", base_image())
            .env("BENCHFARM_LAB_GRPC_PORT", self.grpc_port.to_string())
            .env("BENCHFARM_LAB_HTTP_PORT", self.http_port.to_string())
            .env("BENCHFARM_LEASE_MS", self.lease_ms.to_string())
            .env("BENCHFARM_MODELS", repo_root().join("models"))
            .env_remove("BENCHFARM_LAB_BIND");
        command
    }

    /// The container id of a service.
    fn container(&self, service: &str) -> String {
        let compose = |program: &str, pre: &[&str]| {
            Command::new(program)
                .args(pre)
                .args(["-p", &self.project, "-f"])
                .arg(repo_root().join("deploy/docker-compose.yml"))
                .args(["ps", "-q", service])
                .stderr(Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        compose("docker", &["compose"])
            .or_else(|| compose("docker-compose", &[]))
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| panic!("no container for service {service} in {}", self.project))
    }

    fn network(&self) -> String {
        format!("{}_farm", self.project)
    }

    /// A FarmService client from the host, with the lab's operator token.
    async fn client(&self) -> Client {
        let token = self.script(&["token"]).trim().to_string();
        let target = benchfarm_coordinator::cli::connect::Target::with_token(
            &format!("http://127.0.0.1:{}", self.grpc_port),
            &token,
        );
        benchfarm_coordinator::cli::client::connect(&target)
            .await
            .expect("the lab's coordinator answers from the host")
    }

    /// Stops the coordinator (SIGTERM: it flushes), copies its store out of the volume and opens it.
    fn stop_and_open_store(&self) -> (tempfile::TempDir, Store) {
        let coordinator = self.container("coordinator");
        docker(&["stop", "-t", "20", &coordinator]);
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("data");
        docker(&[
            "cp",
            &format!("{coordinator}:/var/lib/benchfarm"),
            target.to_str().expect("utf-8 path"),
        ]);
        let store = Store::open_waiting(&target, Duration::from_secs(10))
            .expect("the lab's store opens once the coordinator stopped");
        (dir, store)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let failing = std::thread::panicking();
        if failing {
            for service in ["coordinator", "board", "laptop-1", "laptop-2"] {
                let id = std::panic::catch_unwind(|| self.container(service)).ok();
                if let Some(id) = id {
                    let logs = Command::new("docker")
                        .args(["logs", "--tail", "30", &id])
                        .output();
                    if let Ok(logs) = logs {
                        eprintln!(
                            "----- {service} (last 30 lines) -----\n{}{}",
                            String::from_utf8_lossy(&logs.stdout),
                            String::from_utf8_lossy(&logs.stderr)
                        );
                    }
                }
            }
            if std::env::var_os("BENCHFARM_LAB_KEEP").is_some() {
                eprintln!(
                    "lab kept: project {} (deploy/lab.sh down --all)",
                    self.project
                );
                return;
            }
        }
        let down = self.script_command(&["down", "--all"]).output();
        match down {
            Ok(o) if o.status.success() => {}
            other => eprintln!("lab {}: down failed: {other:?}", self.project),
        }
        eprintln!(
            "lab {}: {:.1} s from up to down",
            self.project,
            self.started.elapsed().as_secs_f64()
        );
    }
}

async fn workers_by_name(client: &mut Client) -> BTreeMap<String, pb::WorkerStatus> {
    list_workers(client)
        .await
        .into_iter()
        .map(|w| (w.name.clone(), w))
        .collect()
}

/// Waits until `names` are all connected (or, with `connected = false`, none of them is).
async fn wait_workers(client: &mut Client, names: &[&str], connected: bool, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let workers = workers_by_name(client).await;
        if names
            .iter()
            .all(|n| workers.get(*n).is_some_and(|w| w.connected == connected))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "workers {names:?} not connected={connected} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A client that reconnects: the coordinator may be restarting under it.
async fn client_when_up(lab: &Lab, limit: Duration) -> Client {
    let deadline = Instant::now() + limit;
    loop {
        let token = lab.script(&["token"]).trim().to_string();
        let target = benchfarm_coordinator::cli::connect::Target::with_token(
            &format!("http://127.0.0.1:{}", lab.grpc_port),
            &token,
        );
        if let Ok(mut client) = benchfarm_coordinator::cli::client::connect(&target).await
            && client.list_runs(pb::ListRunsRequest {}).await.is_ok()
        {
            return client;
        }
        assert!(
            Instant::now() < deadline,
            "the coordinator is not back within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Submits deploy/plans/chaos.toml from the host (the client reads the plan and its scripted model).
async fn submit_chaos(client: &mut Client) -> String {
    let plan = benchfarm_coordinator::plan::load(&repo_root().join("deploy/plans/chaos.toml"))
        .expect("deploy/plans/chaos.toml loads");
    let run = client
        .submit_run(plan.request)
        .await
        .expect("submit")
        .into_inner();
    assert_eq!(run.jobs as usize, CHAOS_JOBS);
    run.run_id
}

/// Waits for the run to finish with every job done; returns the JSON report.
async fn wait_done(lab: &Lab, run_id: &str, limit: Duration) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    let mut client = client_when_up(lab, limit).await;
    loop {
        match client
            .get_run(pb::GetRunRequest {
                run_id: run_id.into(),
            })
            .await
        {
            Ok(status) if status.get_ref().state() != pb::RunState::Running => {
                let status = status.into_inner();
                assert_eq!(
                    (
                        status.state(),
                        status.jobs_done as usize,
                        status.jobs_failed
                    ),
                    (pb::RunState::Finished, CHAOS_JOBS, 0),
                    "{status:?}"
                );
                return process::report_json(&mut client, run_id).await;
            }
            Ok(_) => {}
            Err(_) => client = client_when_up(lab, limit).await,
        }
        assert!(
            Instant::now() < deadline,
            "run {run_id} not over within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The attempts beyond one per job, with the worker that held each and how it ended.
fn extra_attempts(jobs: &[JobRecord]) -> Vec<(String, String, Option<AttemptEnd>)> {
    let mut extra = Vec::new();
    for job in jobs.iter().filter(|j| j.attempts.len() > 1) {
        for attempt in &job.attempts {
            if attempt.end != Some(AttemptEnd::Succeeded) {
                extra.push((
                    job.id.clone(),
                    attempt.worker_id.clone(),
                    attempt.end.clone(),
                ));
            }
        }
    }
    extra
}

/// The chaos checks after the run: the report counts every job once; in the store every job has
/// exactly one counted result; and every attempt beyond one per job was held by `faulted` (its
/// worker id; `None`: any worker, for a coordinator fault) and there are at most `allowed`.
async fn assert_chaos_outcome(lab: &Lab, run_id: &str, faulted: Option<&str>, allowed: usize) {
    let report = wait_done(lab, run_id, Duration::from_secs(120)).await;
    assert_eq!(
        report["models"][0]["n"].as_u64(),
        Some(CHAOS_JOBS as u64),
        "{report}"
    );
    assert_eq!(report["jobs_total"].as_u64(), Some(CHAOS_JOBS as u64));
    let (_dir, store) = lab.stop_and_open_store();
    let (jobs, results) = assert_exactly_once(&store, run_id, CHAOS_JOBS);
    assert_eq!(results.iter().filter(|r| r.counted).count(), CHAOS_JOBS);
    let extra = extra_attempts(&jobs);
    let attempts: usize = jobs.iter().map(|j| j.attempts.len()).sum();
    eprintln!("lab chaos: {attempts} attempts for {CHAOS_JOBS} jobs; extra: {extra:?}");
    assert!(
        extra.len() <= allowed,
        "{} attempts wasted, at most {allowed} allowed: {extra:?}",
        extra.len()
    );
    if let Some(worker) = faulted {
        for (job, holder, end) in &extra {
            assert_eq!(
                holder, worker,
                "job {job}: an attempt wasted on another worker ({end:?})"
            );
        }
    }
}

/// Smoke: the built-in suite with the default model on per-class placement; the report holds
/// both classes; every worker reports its container's cgroup limits and runs as many threads as it
/// has CPUs; the board, 1 CPU and 1 GB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_smoke_runs_the_suite_per_class_on_two_classes() {
    let Some(lab) = Lab::up("smoke", 30_000, false) else {
        return;
    };
    let mut client = lab.client().await;
    let workers = workers_by_name(&mut client).await;
    for (name, cpus, ram_gib, class) in [
        ("board", 1.0, 1u64, "board"),
        ("laptop-1", 2.0, 4, "laptop"),
        ("laptop-2", 2.0, 4, "laptop"),
    ] {
        let w = workers
            .get(name)
            .unwrap_or_else(|| panic!("no {name}: {workers:?}"));
        let hw = w.hardware.clone().expect("hardware");
        assert!(w.connected, "{name}");
        assert_eq!(hw.cgroup_cpu_limit, cpus, "{name}: {hw:?}");
        assert_eq!(
            hw.cgroup_memory_limit_bytes,
            ram_gib << 30,
            "{name}: {hw:?}"
        );
        assert_eq!(w.threads, cpus as u32, "{name}: threads = its CPU limit");
        assert_eq!(w.hardware_class, class, "{name}");
    }
    let started = Instant::now();
    let out = lab.script(&["run", "--format", "json"]);
    eprintln!("lab smoke: run in {:.1} s", started.elapsed().as_secs_f64());
    let (run_id, body) = out.split_once('\n').expect("run id, then the report");
    let report: serde_json::Value = serde_json::from_str(body).expect("the report is JSON");
    assert_eq!(report["run"].as_str(), Some(run_id.trim()), "{report}");
    assert_eq!(
        report["jobs_total"].as_u64(),
        Some(20),
        "10 tasks × 2 classes"
    );
    assert_eq!(report["jobs_failed"].as_u64(), Some(0), "{report}");
    let rows = report["hardware"].as_array().expect("hardware rows");
    let by_class: BTreeMap<&str, &serde_json::Value> = rows
        .iter()
        .map(|r| (r["class"].as_str().expect("class"), r))
        .collect();
    assert_eq!(
        by_class.keys().copied().collect::<Vec<_>>(),
        ["board", "laptop"],
        "{rows:?}"
    );
    assert_eq!(by_class["board"]["n"].as_u64(), Some(10));
    assert_eq!(by_class["board"]["workers"], serde_json::json!(["board"]));
    assert_eq!(by_class["board"]["threads"], serde_json::json!([1]));
    assert_eq!(by_class["laptop"]["n"].as_u64(), Some(10));
    assert_eq!(by_class["laptop"]["threads"], serde_json::json!([2]));
    let laptops: BTreeSet<&str> = by_class["laptop"]["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    assert!(
        !laptops.is_empty() && laptops.is_subset(&BTreeSet::from(["laptop-1", "laptop-2"])),
        "{laptops:?}"
    );
}

/// `docker kill` a worker mid-run: its jobs come back after the lease and run elsewhere; nothing is
/// lost or counted twice, and only the jobs it held cost an extra attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_chaos_docker_kill_a_worker_mid_run() {
    let Some(lab) = Lab::up("kill", CHAOS_LEASE_MS, true) else {
        return;
    };
    let mut client = lab.client().await;
    let run_id = submit_chaos(&mut client).await;
    wait_busy(&mut client, &run_id, 3, "laptop-2", Duration::from_secs(60)).await;
    let id = workers_by_name(&mut client).await["laptop-2"]
        .worker_id
        .clone();
    docker(&["kill", &lab.container("laptop-2")]);
    wait_workers(&mut client, &["laptop-2"], false, Duration::from_secs(20)).await;
    assert_chaos_outcome(&lab, &run_id, Some(&id), HELD_PER_WORKER).await;
}

/// `docker restart` the coordinator mid-run: it flushes, comes back on its volume, the workers
/// rejoin and re-send what was not acknowledged; nothing is lost or counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_chaos_docker_restart_the_coordinator_mid_run() {
    let Some(lab) = Lab::up("restart", CHAOS_LEASE_MS, true) else {
        return;
    };
    let mut client = lab.client().await;
    let run_id = submit_chaos(&mut client).await;
    wait_busy(&mut client, &run_id, 6, "laptop-1", Duration::from_secs(60)).await;
    docker(&["restart", "-t", "20", &lab.container("coordinator")]);
    let mut client = client_when_up(&lab, Duration::from_secs(60)).await;
    wait_workers(
        &mut client,
        &["board", "laptop-1", "laptop-2"],
        true,
        Duration::from_secs(60),
    )
    .await;
    // The workers keep running their jobs through the restart and list them when they rejoin:
    // the restart costs no attempt at all.
    assert_chaos_outcome(&lab, &run_id, None, 0).await;
}

/// `docker network disconnect` a worker for twice its lease, then reconnect it: it is lost, its
/// jobs run elsewhere, it rejoins, and a late result of it does not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_chaos_network_cut_longer_than_the_lease() {
    let Some(lab) = Lab::up("netcut", CHAOS_LEASE_MS, true) else {
        return;
    };
    let mut client = lab.client().await;
    let run_id = submit_chaos(&mut client).await;
    wait_busy(&mut client, &run_id, 3, "laptop-2", Duration::from_secs(60)).await;
    let id = workers_by_name(&mut client).await["laptop-2"]
        .worker_id
        .clone();
    let container = lab.container("laptop-2");
    docker(&["network", "disconnect", &lab.network(), &container]);
    let cut = Instant::now();
    wait_workers(&mut client, &["laptop-2"], false, Duration::from_secs(20)).await;
    let lost_after = cut.elapsed();
    tokio::time::sleep(Duration::from_millis(2 * CHAOS_LEASE_MS).saturating_sub(lost_after)).await;
    docker(&["network", "connect", &lab.network(), &container]);
    eprintln!(
        "lab netcut: lost after {:.1} s, reconnected after {:.1} s",
        lost_after.as_secs_f64(),
        cut.elapsed().as_secs_f64()
    );
    wait_workers(&mut client, &["laptop-2"], true, Duration::from_secs(90)).await;
    assert_chaos_outcome(&lab, &run_id, Some(&id), HELD_PER_WORKER).await;
}

/// `docker pause` a worker past its lease, then unpause: it is lost, its jobs run elsewhere, it
/// wakes up, rejoins, and its late result does not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_chaos_pause_a_worker_past_its_lease() {
    let Some(lab) = Lab::up("pause", CHAOS_LEASE_MS, true) else {
        return;
    };
    let mut client = lab.client().await;
    let run_id = submit_chaos(&mut client).await;
    wait_busy(&mut client, &run_id, 3, "laptop-2", Duration::from_secs(60)).await;
    let id = workers_by_name(&mut client).await["laptop-2"]
        .worker_id
        .clone();
    let container = lab.container("laptop-2");
    docker(&["pause", &container]);
    wait_workers(&mut client, &["laptop-2"], false, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(CHAOS_LEASE_MS)).await;
    docker(&["unpause", &container]);
    wait_workers(&mut client, &["laptop-2"], true, Duration::from_secs(90)).await;
    assert_chaos_outcome(&lab, &run_id, Some(&id), HELD_PER_WORKER).await;
}
