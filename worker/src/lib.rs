//! The benchfarm worker as a library: join a coordinator and run its jobs.
//!
//! - [`bench`]: `worker bench`, llama-bench's pp/tg tests on this worker's engine.
//! - [`join`] / [`join_with`]: discover the machine and its models, start the runner, connect.
//! - [`client`]: the `Connect` stream (hello, heartbeats, reconnect with backoff, outbox, drain).
//! - [`cache`]: the model cache, fetching from the coordinator (verified, resumable, LRU-bounded).
//! - [`runner`]: slot threads that run the engine and grade answers.
//! - [`remote`]: remote models: streamed OpenAI chat completions, retries, concurrency limits.
//! - [`supervisor`] and [`host`]: the engine in a supervised child process (`worker engine-host`).
//! - [`options`]: engine placement and the simulation knobs (`--max-ram`, `--speed-factor`).
//! - [`outbox`], [`identity`], [`convert`]: unacknowledged results (kept in the state dir), the
//!   stable id, wire mapping.
//! - [`telemetry`]: the worker's spans (children of the coordinator's job span) and metrics.
//! - [`status`]: `STATE/status.json` (connected, last heartbeat) and `worker status`, which reads it.

pub mod bench;
pub mod cache;
pub mod client;
pub mod convert;
pub mod credentials;
pub mod fit;
pub mod host;
pub mod identity;
pub mod memory;
pub mod options;
pub mod outbox;
mod panic_text;
pub mod remote;
pub mod runner;
pub mod status;
pub mod supervisor;
pub mod telemetry;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use benchfarm_proto::v1 as pb;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

pub use client::Stop;
pub use options::{EngineMode, WorkerOptions};

/// `worker join` options.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    pub coordinator: String,
    pub models_dir: PathBuf,
    pub labels: BTreeMap<String, String>,
    /// CPU threads per job; default: the usable cores divided among the slots.
    pub threads: Option<u32>,
    pub state_dir: PathBuf,
    pub name: Option<String>,
    pub slots: u32,
    /// Token and TLS for the coordinator.
    pub credentials: credentials::Credentials,
}

/// Joins the farm and serves until `stop` says to leave, with [`WorkerOptions::default`] (engine
/// in process, RAM as detected, scripted speed as written).
pub async fn join(config: JoinConfig, stop: watch::Receiver<Stop>) -> Result<()> {
    join_with(config, WorkerOptions::default(), stop).await
}

/// Joins the farm with `options` and serves until `stop` (or the coordinator) says to leave.
pub async fn join_with(
    config: JoinConfig,
    options: WorkerOptions,
    stop: watch::Receiver<Stop>,
) -> Result<()> {
    let worker_id = identity::load_or_create(&config.state_dir)
        .with_context(|| format!("state directory {}", config.state_dir.display()))?;
    let mut hardware = tokio::task::spawn_blocking(benchfarm_engine::hardware::detect).await?;
    if let Some(max) = options.max_ram_bytes {
        options::cap_ram(&mut hardware, max);
        info!(max_ram = max, "reporting capped RAM");
    }
    let models_dir = config.models_dir.clone();
    let cache = config.state_dir.join("sha256-cache.json");
    let discovery = tokio::task::spawn_blocking(move || {
        benchfarm_engine::models::discover_all(&models_dir, &cache)
    })
    .await?
    .with_context(|| format!("models directory {}", config.models_dir.display()))?;
    for skipped in &discovery.skipped {
        warn!(path = %skipped.path.display(), reason = %skipped.reason, "model file skipped");
    }
    let cache_dir = options
        .cache_dir
        .clone()
        .unwrap_or_else(|| config.state_dir.join("models"));
    let cache_max = options.cache_max_bytes;
    let cache = {
        let dir = cache_dir.clone();
        tokio::task::spawn_blocking(move || cache::ModelCache::open(&dir, cache_max))
            .await?
            .with_context(|| format!("model cache {}", cache_dir.display()))?
    };
    let slots = config.slots.max(1);
    let threads = config
        .threads
        .unwrap_or_else(|| (hardware.effective_cpus() / slots).max(1))
        .max(1);
    let engine = tokio::task::spawn_blocking(benchfarm_engine::engine_info).await?;
    let name = config
        .name
        .clone()
        .unwrap_or_else(|| default_name(&worker_id));
    let engine_mode = match &options.engine {
        EngineMode::InProcess => "in-process".to_string(),
        EngineMode::Child { program } => format!("child:{}", program.display()),
    };
    info!(worker = %worker_id, name = %name, cpu = %hardware.cpu_model, cores = hardware.effective_cpus(),
          threads, slots, models = discovery.models.len(), engine = %engine_mode,
          speed_factor = options.speed_factor, "worker starting");
    info!(build_features = %engine.build_features.join(","), cpu_features = %engine.cpu_features.join(","),
          system_info = %engine.system_info, "llama.cpp build");
    let unused = engine.unused_features();
    if !unused.is_empty() {
        // The timings this worker reports describe the build, not the machine: say so at join.
        warn!(unused = %unused.join(","), system_info = %engine.system_info,
              "portable build: cpu features unused; timings understate this machine");
    }
    for m in &discovery.models {
        info!(model = %m.name, file = %m.file_name, size = m.size_bytes, sha256 = %m.sha256, "model available");
    }
    let remote_key_envs = options::remote_key_envs(&options.remotes, std::env::vars_os());
    if !options.remotes.is_empty() {
        // Names only: the values stay in this process's environment.
        info!(remotes = %options.remotes.join(","), key_envs = %remote_key_envs.join(","),
              "remote models this worker may call");
    }
    let hello_ram = hardware.ram_available_bytes;
    let hello = pb::Hello {
        worker_id,
        name,
        hardware: Some(convert::hardware_to_wire(&hardware)),
        labels: config.labels.clone().into_iter().collect(),
        models: discovery
            .models
            .iter()
            .map(convert::model_to_wire)
            .collect(),
        engine: Some(pb::EngineInfo {
            name: engine.name.clone(),
            llama_cpp_build: engine.llama_cpp_build.clone(),
            backends: engine.backends.clone(),
            system_info: engine.system_info.clone(),
            build_features: engine.build_features.clone(),
            cpu_features: engine.cpu_features.clone(),
        }),
        slots,
        threads,
        running: Vec::new(),
        unacknowledged: Vec::new(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        cache: Some(cache.report()),
        remotes: options.remotes.clone(),
        remote_key_envs,
    };
    let local = discovery.models.iter().map(|m| m.sha256.clone()).collect();
    let (events_tx, events_rx) = mpsc::channel(64);
    let runner = runner::Runner::start(
        slots,
        threads,
        client::model_paths(&discovery.models),
        events_tx,
        &options,
        runner::BuildFeatures {
            build: engine.build_features.clone(),
            cpu: engine.cpu_features.clone(),
        },
    )
    .context("starting job threads")?;
    let outbox = outbox::Outbox::open(config.state_dir.join("outbox.log"));
    telemetry::start();
    let status = status::StatusFile::start(
        config.state_dir.join(status::FILE_NAME),
        &config.coordinator,
    );
    let memory = memory::MemoryGauge::start(hello_ram, options.max_ram_bytes);
    client::Session::new(config.coordinator.clone(), hello, runner, events_rx, outbox)
        .with_memory_gauge(memory)
        .with_credentials(config.credentials.clone())
        .with_cache(cache, local)
        .with_status_file(status)
        .run(stop)
        .await
        .map_err(|refused| anyhow::anyhow!("the coordinator refused this worker: {refused}"))
}

/// `hostname-xxxx`: readable, and distinct for two workers on one machine.
fn default_name(worker_id: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let suffix = worker_id
        .get(worker_id.len().saturating_sub(4)..)
        .unwrap_or(worker_id);
    if host.is_empty() {
        format!("worker-{suffix}")
    } else {
        format!("{host}-{suffix}")
    }
}
