//! `coordinator bench`: one coordinator at scale, measured end to end over real gRPC.
//!
//! The coordinator under test is this binary's own `serve`, started as a child process on
//! 127.0.0.1, so its CPU time and peak RSS are read from `/proc/PID` alone. N simulated workers run
//! as tasks in this process: protocol-level clients (the coordinator crate links neither the worker
//! nor llama.cpp) that send a hello, heartbeat, and answer every assignment at once with a started
//! and a graded result. One run of a scripted model over the built-in suite is submitted with enough
//! repetitions for J jobs; the clock runs from the submit to the run's end (every job assigned, its
//! result durably stored and acknowledged). Then: a `report --format json` and a `ListRuns` on the
//! store that now holds the results, and a restart (SIGTERM, start again, until `ListRuns` answers).
//!
//! Figures: `jobs_per_second`; `assign_p50_ms` / `assign_p99_ms`, the time a simulated worker waits
//! from sending a result (its slot free) to receiving its next assignment; `cpu_seconds_per_1000_jobs`
//! (the coordinator's user + system time over the run); `peak_rss_bytes` (its VmHWM over the
//! run), `peak_rss_with_report_bytes` (after the report too), `restarted_rss_bytes` (VmRSS once
//! restarted); and `report_seconds`, `list_runs_seconds`, `restart_seconds`. Every job must be counted exactly once
//! (every job done, and the report's count of counted results equal to J), or the bench fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use benchfarm_proto::v1 as pb;
use benchfarm_proto::v1::coordinator_message::Kind as Down;
use benchfarm_proto::v1::worker_message::Kind as Up;
use benchfarm_proto::v1::worker_service_client::WorkerServiceClient;
use serde::Serialize;
use tokio::sync::{Mutex, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::connect::{Target, connect};

/// The figures, as `--json FILE` writes them.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub workers: u32,
    pub jobs: u32,
    pub jobs_per_second: f64,
    pub assign_p50_ms: f64,
    pub assign_p99_ms: f64,
    pub cpu_seconds_per_1000_jobs: f64,
    pub peak_rss_bytes: u64,
    /// VmHWM after the `report --format json` too: what a coordinator asked for the big report
    /// needs.
    pub peak_rss_with_report_bytes: u64,
    /// VmRSS of the restarted coordinator once it answers `ListRuns`, holding J stored results.
    pub restarted_rss_bytes: u64,
    pub report_seconds: f64,
    pub list_runs_seconds: f64,
    pub restart_seconds: f64,
    pub run_seconds: f64,
}

/// The coordinator under test: a child process.
struct Child {
    process: std::process::Child,
    url: String,
    data: PathBuf,
}

impl Child {
    fn start(exe: &Path, data: &Path, port: u16, serve_args: &[String]) -> Result<Child> {
        let process = std::process::Command::new(exe)
            .args(["serve", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data")
            .arg(data)
            // The simulated farm is one host: its hundreds of streams and connections are real
            // workers' worth, not an attack. Tokens stay on (the bench measures the gate too).
            .args([
                "--max-streams-per-peer",
                "0",
                "--max-connections-per-minute",
                "0",
            ])
            .args(serve_args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting coordinator serve")?;
        Ok(Child {
            process,
            url: format!("http://127.0.0.1:{port}"),
            data: data.to_path_buf(),
        })
    }

    /// The client target, with the operator token the child made in its data directory.
    fn target(&self) -> Result<Target> {
        let token = super::connect::read_token_file(&self.data.join("api.token"))?;
        Ok(Target::with_token(&self.url, &token))
    }

    /// The shared join token the child made.
    fn join_token(&self) -> Result<String> {
        super::connect::read_token_file(&self.data.join("worker.token"))
    }

    /// Waits until `ListRuns` answers; returns how long that took.
    async fn ready(&self) -> Result<Duration> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Ok(target) = self.target()
                && let Ok(mut client) = connect(&target).await
                && client.list_runs(pb::ListRunsRequest {}).await.is_ok()
            {
                return Ok(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bail!("the coordinator did not answer within 60 s")
    }

    /// VmRSS now, in bytes.
    fn rss(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.id()))?;
        Ok(status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024)
    }

    /// (user + system CPU seconds, peak RSS bytes) from /proc.
    fn usage(&self) -> Result<(f64, u64)> {
        let pid = self.process.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command (which is in parentheses and may hold spaces).
        let after = stat.rsplit_once(')').map(|(_, s)| s).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the command.
        let cpu = (ticks(11) + ticks(12)) / 100.0;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let hwm = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024;
        Ok((cpu, hwm))
    }

    fn stop(mut self) -> Result<()> {
        let pid = self.process.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.process.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.process.kill();
        bail!("the coordinator did not stop within 30 s of SIGTERM")
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One simulated worker: answers every assignment at once; records assignment waits.
async fn simulated_worker(
    url: String,
    token: String,
    index: u32,
    waits: Arc<Mutex<Vec<f64>>>,
    acked: Arc<AtomicU64>,
) -> Result<()> {
    let channel = tonic::transport::Endpoint::from_shared(url)?
        .connect()
        .await?;
    let mut client = WorkerServiceClient::new(channel);
    let (tx, rx) = mpsc::channel::<pb::WorkerMessage>(64);
    let hello = pb::Hello {
        worker_id: format!("sim-{index:05}"),
        name: format!("sim-{index}"),
        hardware: Some(pb::Hardware {
            cpu_model: "simulated".into(),
            arch: std::env::consts::ARCH.into(),
            physical_cores: 1,
            logical_cores: 1,
            ram_total_bytes: 8 << 30,
            ram_available_bytes: 8 << 30,
            ..pb::Hardware::default()
        }),
        slots: 1,
        threads: 1,
        version: env!("CARGO_PKG_VERSION").into(),
        ..pb::Hello::default()
    };
    let send = |tx: &mpsc::Sender<pb::WorkerMessage>, kind: Up| {
        let tx = tx.clone();
        async move { tx.send(pb::WorkerMessage { kind: Some(kind) }).await }
    };
    send(&tx, Up::Hello(hello)).await?;
    let mut request = tonic::Request::new(ReceiverStream::new(rx));
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let mut inbound = client.connect(request).await?.into_inner();
    let mut heartbeat = tokio::time::interval(Duration::from_secs(2));
    let mut freed: Option<Instant> = None;
    loop {
        tokio::select! {
            message = inbound.message() => {
                let Some(message) = message? else { break };
                match message.kind {
                    Some(Down::Assign(a)) => {
                        if let Some(t) = freed.take() {
                            waits.lock().await.push(t.elapsed().as_secs_f64() * 1000.0);
                        }
                        let key = a.key.context("assignment without a key")?;
                        send(&tx, Up::Started(pb::JobStarted { key: Some(key.clone()) })).await?;
                        send(&tx, Up::Result(pb::JobResult {
                            key: Some(key),
                            answer: "jq .services config.json".into(),
                            grade: Some(pb::Grade {
                                verdict: pb::Verdict::Pass as i32,
                                score: 1.0,
                                ..pb::Grade::default()
                            }),
                            timings: Some(pb::Timings {
                                gen_tokens: 16,
                                gen_ms: 1.0,
                                wall_ms: 1.0,
                                ..pb::Timings::default()
                            }),
                            threads: 1,
                            chat_template: "simulated".into(),
                            stop: "eos".into(),
                            ..pb::JobResult::default()
                        })).await?;
                        freed = Some(Instant::now());
                    }
                    Some(Down::Ack(_)) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Down::Drain(_)) => break,
                    _ => {}
                }
            }
            _ = heartbeat.tick() => {
                send(&tx, Up::Heartbeat(pb::Heartbeat::default())).await?;
            }
        }
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Runs the bench against the coordinator binary `exe`; prints the figures and writes them to
/// `json` when given.
/// `serve_args` go to the coordinator under test (e.g. `--metrics-listen 127.0.0.1:0`, to measure
/// the telemetry code path; docs/benchmarks.md).
pub async fn bench(
    exe: &Path,
    workers: u32,
    jobs: u32,
    json: Option<PathBuf>,
    serve_args: &[String],
) -> Result<Figures> {
    if workers == 0 || jobs == 0 {
        bail!("--workers and --jobs must be positive");
    }
    let suite = benchfarm_suite::Suite::builtin("agent-coding").context("built-in suite")?;
    let tasks = suite.tasks.len() as u32;
    let repetitions = jobs.div_ceil(tasks);
    let jobs = repetitions * tasks;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::write(dir.path().join("sim.toml"), "name = \"simulated\"\n")?;
    let plan_text = format!(
        "suite = \"agent-coding\"\nrepetitions = {repetitions}\n[[models]]\nscripted = \"sim.toml\"\n"
    );
    let plan = crate::plan::resolve(&plan_text, "bench-plan.toml", dir.path())?;

    let port = free_port()?;
    let child = Child::start(exe, &data, port, serve_args)?;
    child.ready().await?;
    let waits = Arc::new(Mutex::new(Vec::new()));
    let acked = Arc::new(AtomicU64::new(0));
    let mut tasks_running = Vec::new();
    let join_token = child.join_token()?;
    for i in 0..workers {
        tasks_running.push(tokio::spawn(simulated_worker(
            child.url.clone(),
            join_token.clone(),
            i,
            Arc::clone(&waits),
            Arc::clone(&acked),
        )));
    }
    let mut client = connect(&child.target()?).await?;
    // Every worker connected before the clock starts.
    let joined = Instant::now();
    loop {
        let listed = client
            .list_workers(pb::ListWorkersRequest {})
            .await?
            .into_inner();
        if listed.workers.iter().filter(|w| w.connected).count() >= workers as usize {
            break;
        }
        if joined.elapsed() > Duration::from_secs(120) {
            bail!("the simulated workers did not all connect within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (cpu_before, _) = child.usage()?;
    let start = Instant::now();
    let run_id = client.submit_run(plan.request).await?.into_inner().run_id;
    let status = loop {
        let status = client
            .get_run(pb::GetRunRequest {
                run_id: run_id.clone(),
            })
            .await?
            .into_inner();
        if status.state != pb::RunState::Running as i32 {
            break status;
        }
        // Not faster: each poll asks the scheduler why queued jobs wait, work that is charged
        // to the coordinator under test.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let run_seconds = start.elapsed().as_secs_f64();
    let (cpu_after, peak_rss_bytes) = child.usage()?;
    if status.jobs_done != jobs || status.jobs_failed != 0 {
        bail!(
            "run ended {} with {} of {jobs} jobs done, {} failed",
            crate::grpc::enums::run_state_name(status.state),
            status.jobs_done,
            status.jobs_failed
        );
    }

    let t = Instant::now();
    let report = client
        .get_report(pb::GetReportRequest {
            run_id: run_id.clone(),
            format: pb::ReportFormat::Json.into(),
        })
        .await?
        .into_inner()
        .body;
    let report_seconds = t.elapsed().as_secs_f64();
    let (_, peak_rss_with_report_bytes) = child.usage()?;
    let report: serde_json::Value = serde_json::from_str(&report)?;
    let n = report["models"][0]["n"].as_u64().unwrap_or(0);
    let t = Instant::now();
    client.list_runs(pb::ListRunsRequest {}).await?;
    let list_runs_seconds = t.elapsed().as_secs_f64();
    // Every job is done (so each has a counted result) and the report counts exactly J: no job
    // was counted twice.
    if n != u64::from(jobs) {
        bail!(
            "not every job was counted exactly once: the report counts {n} results for {jobs} jobs"
        );
    }

    for task in &tasks_running {
        task.abort();
    }
    child.stop()?;
    let child = Child::start(exe, &data, port, serve_args)?;
    let restart_seconds = child.ready().await?.as_secs_f64();
    let restarted_rss_bytes = child.rss()?;
    child.stop()?;

    let mut waits = waits.lock().await.clone();
    waits.sort_by(f64::total_cmp);
    let figures = Figures {
        workers,
        jobs,
        jobs_per_second: f64::from(jobs) / run_seconds,
        assign_p50_ms: percentile(&waits, 50.0),
        assign_p99_ms: percentile(&waits, 99.0),
        cpu_seconds_per_1000_jobs: (cpu_after - cpu_before) * 1000.0 / f64::from(jobs),
        peak_rss_bytes,
        peak_rss_with_report_bytes,
        restarted_rss_bytes,
        report_seconds,
        list_runs_seconds,
        restart_seconds,
        run_seconds,
    };
    println!(
        "coordinator bench: {workers} workers, {jobs} jobs in {run_seconds:.2} s\n\
         jobs_per_second            {:.0}\n\
         assign_p50_ms              {:.2}\n\
         assign_p99_ms              {:.2}\n\
         cpu_seconds_per_1000_jobs  {:.3}\n\
         peak_rss_bytes             {} ({:.0} MB, over the run)\n\
         peak_rss_with_report_bytes {} ({:.0} MB, the report too)\n\
         restarted_rss_bytes        {} ({:.0} MB, restarted, serving {jobs} stored results)\n\
         report_seconds             {:.3}  (json, {jobs} results stored)\n\
         list_runs_seconds          {:.3}\n\
         restart_seconds            {:.3}  (SIGTERM, start, ListRuns answers)",
        figures.jobs_per_second,
        figures.assign_p50_ms,
        figures.assign_p99_ms,
        figures.cpu_seconds_per_1000_jobs,
        figures.peak_rss_bytes,
        figures.peak_rss_bytes as f64 / 1e6,
        figures.peak_rss_with_report_bytes,
        figures.peak_rss_with_report_bytes as f64 / 1e6,
        figures.restarted_rss_bytes,
        figures.restarted_rss_bytes as f64 / 1e6,
        figures.report_seconds,
        figures.list_runs_seconds,
        figures.restart_seconds,
    );
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(&figures)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(figures)
}
