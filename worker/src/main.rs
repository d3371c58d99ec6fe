//! `worker join`: run benchmark jobs for a coordinator on this machine.
//!
//! Ctrl-C or SIGTERM once: drain (finish and report the running job, then leave). Twice: abandon.
//! A `Drain` from the coordinator acts like the first signal; the worker then exits 0.
//!
//! `worker bench`: llama-bench's pp/tg tests on one model with this build (see
//! `benchfarm_worker::bench`).
//!
//! `worker status`: is the worker using a state dir connected and heartbeating (its health check;
//! see `benchfarm_worker::status`).
//!
//! `worker engine-host` (hidden) is the child process each slot runs its engine in; see
//! `benchfarm_worker::host`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use benchfarm_telemetry::Options;
use benchfarm_worker::options::{parse_size, parse_speed_factor};
use benchfarm_worker::{EngineMode, JoinConfig, Stop, WorkerOptions};
use clap::{Parser, Subcommand, ValueEnum};
use tokio::sync::watch;

#[derive(Parser, Debug)]
#[command(
    name = "worker",
    version,
    about = "benchfarm worker: runs LLM benchmark jobs with llama.cpp"
)]
struct Args {
    /// CA certificate (PEM) that signed the coordinator's certificate, for an https:// URL.
    #[arg(long, global = true, env = "BENCHFARM_CA")]
    ca: Option<PathBuf>,
    /// This worker's certificate (PEM), for a coordinator that requires client certificates.
    #[arg(long, global = true, requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// This worker's private key (PEM).
    #[arg(long, global = true, requires = "client_cert")]
    client_key: Option<PathBuf>,
    #[command(subcommand)]
    command: Verb,
}

#[derive(Subcommand, Debug)]
enum Verb {
    /// Join a coordinator and run its jobs until stopped.
    Join {
        #[arg(
            long,
            env = "BENCHFARM_COORDINATOR",
            default_value = "http://127.0.0.1:50051"
        )]
        coordinator: String,
        /// Directory of GGUF model files.
        #[arg(long, default_value = "models")]
        models: PathBuf,
        /// A label key=value (repeatable), e.g. --label site=lab --label class=pi5.
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// CPU threads per job (default: usable cores / slots). Workers sharing a machine should
        /// split its cores.
        #[arg(long)]
        threads: Option<u32>,
        /// Where the worker keeps its id and caches.
        #[arg(long, default_value = ".data/worker")]
        state: PathBuf,
        /// Display name (default: hostname and a short id).
        #[arg(long)]
        name: Option<String>,
        /// Jobs run at once (each loads its own copy of a model).
        #[arg(long, default_value_t = 1)]
        slots: u32,
        /// Where models run: `child` (a supervised engine process per slot, so a llama.cpp abort
        /// or OOM kill costs one job, not the worker) or `in-process`.
        #[arg(long, value_enum, default_value_t = EngineArg::Child)]
        engine: EngineArg,
        /// Report at most this much RAM (total, available and cgroup limit), e.g. 1GB or 512MiB,
        /// to pose as a smaller machine.
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_ram: Option<u64>,
        /// Simulation knob for heterogeneous-farm tests: scripted models run F times as fast here
        /// (tokens_per_second × F, load_ms ÷ F). No effect on GGUF models.
        #[arg(long, value_name = "F", default_value_t = 1.0, value_parser = parse_speed_factor)]
        speed_factor: f64,
        /// File holding this worker's token (default: env BENCHFARM_WORKER_TOKEN): the farm's
        /// shared join token (DATA/worker.token) or one from `coordinator tokens add --role worker`.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Run scripted models' test features: `[[faults]]` (fail, hang, crash, kill), `delay_ms`,
        /// `load_ms` and synthetic times over 10 s a job. Without it such a job is refused, and
        /// the refusal does not count toward this worker's quarantine. For tests and chaos
        /// scenarios only.
        #[arg(long)]
        allow_scripted_faults: bool,
        /// Export traces over OTLP to this endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT; unset,
        /// none are exported). OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf switches to HTTP.
        #[arg(long, value_name = "URL")]
        otlp_endpoint: Option<String>,
        /// Serve Prometheus metrics on this address (http://ADDR/metrics); off by default.
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<std::net::SocketAddr>,
        /// Where models fetched from the coordinator are kept (default: STATE/models).
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
        /// Keep the model cache under this size, e.g. 300MB or 8GiB (least recently used models
        /// are evicted; default: the disk's free space less 1 GiB).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        cache_max: Option<u64>,
        /// A remote model this worker may call (repeatable): its name in the plan, or a prefix of
        /// its URL (e.g. https://api.example.com). Its API key is read from this worker's
        /// environment (the plan's api_key_env) and never sent to the coordinator.
        #[arg(long = "remote", value_name = "NAME_OR_URL_PREFIX")]
        remotes: Vec<String>,
    },
    /// Measure prompt processing (pp) and generation (tg) speed on one model the way llama.cpp's
    /// llama-bench does, and print it in llama-bench's formats and field names.
    Bench {
        /// The GGUF model file.
        #[arg(short = 'm', long)]
        model: PathBuf,
        /// Prompt sizes for pp tests (comma-separated; 0: none).
        #[arg(
            short = 'p',
            long = "n-prompt",
            value_delimiter = ',',
            default_value = "512"
        )]
        prompts: Vec<u32>,
        /// Generation lengths for tg tests (comma-separated; 0: none).
        #[arg(
            short = 'n',
            long = "n-gen",
            value_delimiter = ',',
            default_value = "128"
        )]
        gens: Vec<u32>,
        /// A combined prompt+generation test, PROMPT,GEN (repeatable).
        #[arg(long = "pg", value_name = "PROMPT,GEN", value_parser = benchfarm_worker::bench::parse_pair)]
        pairs: Vec<(u32, u32)>,
        /// CPU threads (comma-separated; each test runs at each; default: usable cores).
        #[arg(short = 't', long, value_delimiter = ',')]
        threads: Vec<u32>,
        /// Repetitions per test.
        #[arg(short = 'r', long, default_value_t = 5)]
        repetitions: u32,
        /// Logical batch size: the prompt is decoded in chunks of this many tokens.
        #[arg(short = 'b', long = "batch-size", default_value_t = 2048)]
        batch_size: u32,
        /// Physical batch size.
        #[arg(long = "ubatch-size", default_value_t = 512)]
        ubatch_size: u32,
        /// Output format: md, csv, json or jsonl.
        #[arg(short = 'o', long, default_value = "md")]
        format: benchfarm_engine::bench::format::Format,
    },
    /// Say whether the worker using this state dir is connected and heartbeating (reads
    /// STATE/status.json); exit 0 if so, 1 if not. For container health checks.
    Status {
        /// The worker's --state directory.
        #[arg(long, default_value = ".data/worker")]
        state: PathBuf,
        /// The oldest last heartbeat that still counts as healthy, in seconds (default: three
        /// heartbeat intervals, at least 15 s).
        #[arg(long, value_name = "SECONDS")]
        max_age: Option<u64>,
    },
    /// Internal: run a slot's engine, speaking JSON lines on stdin/stdout (started by `join`).
    #[command(hide = true)]
    EngineHost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EngineArg {
    Child,
    InProcess,
}

fn parse_label(text: &str) -> Result<(String, String)> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => bail!("expected key=value, got {text:?}"),
    }
}

fn main() -> Result<std::process::ExitCode> {
    let args = Args::parse();
    match args.command {
        Verb::EngineHost => {
            // No timestamps: the worker re-logs these lines with its own, at the level in front.
            // Logs only: the host's work is traced by the worker that drives it (`runner`).
            let _telemetry = benchfarm_telemetry::init(Options {
                timestamps: false,
                ..Options::logs(SERVICE, LOG_FILTER)
            })?;
            Ok(benchfarm_worker::host::serve_stdio())
        }
        Verb::Status { state, max_age } => {
            let max_age = max_age.map(std::time::Duration::from_secs);
            match benchfarm_worker::status::check(&state, max_age) {
                Ok(line) => {
                    println!("healthy: {line}");
                    Ok(std::process::ExitCode::SUCCESS)
                }
                Err(why) => {
                    println!("unhealthy: {why}");
                    Ok(std::process::ExitCode::from(1))
                }
            }
        }
        Verb::Bench {
            model,
            prompts,
            gens,
            pairs,
            threads,
            repetitions,
            batch_size,
            ubatch_size,
            format,
        } => {
            let _telemetry = benchfarm_telemetry::init(Options::logs(SERVICE, LOG_FILTER))?;
            let out = benchfarm_worker::bench::run(&benchfarm_worker::bench::BenchArgs {
                model,
                prompts,
                gens,
                pairs,
                threads,
                repetitions,
                n_batch: batch_size,
                n_ubatch: ubatch_size,
                format,
            })?;
            print!("{out}");
            Ok(std::process::ExitCode::SUCCESS)
        }
        Verb::Join {
            coordinator,
            models,
            labels,
            threads,
            state,
            name,
            slots,
            engine,
            max_ram,
            speed_factor,
            token_file,
            allow_scripted_faults,
            otlp_endpoint,
            metrics_listen,
            cache,
            cache_max,
            remotes,
        } => {
            let token = match &token_file {
                Some(path) => Some(benchfarm_worker::credentials::read_token_file(path)?),
                // Read here, not by clap, so `--help` never shows it.
                None => std::env::var("BENCHFARM_WORKER_TOKEN")
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty()),
            };
            let credentials = benchfarm_worker::credentials::Credentials::new(
                &coordinator,
                token.as_deref(),
                &benchfarm_worker::credentials::TlsFiles {
                    ca: args.ca.clone(),
                    client_cert: args.client_cert.clone(),
                    client_key: args.client_key.clone(),
                },
            )?;
            let config = JoinConfig {
                coordinator,
                models_dir: models,
                labels: labels.into_iter().collect::<BTreeMap<_, _>>(),
                threads,
                state_dir: state,
                name,
                slots,
                credentials,
            };
            let engine = match engine {
                EngineArg::InProcess => EngineMode::InProcess,
                EngineArg::Child => EngineMode::Child {
                    program: std::env::current_exe()
                        .context("cannot find this executable to start engine processes")?,
                },
            };
            let options = WorkerOptions {
                engine,
                max_ram_bytes: max_ram,
                speed_factor,
                allow_scripted_faults,
                cache_dir: cache,
                cache_max_bytes: cache_max,
                remotes,
            };
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            // The exporters live on the runtime (the gRPC span exporter's channel, the metrics
            // listener), so they are set up inside it and flushed before it goes.
            let telemetry = {
                let _inside = runtime.enter();
                benchfarm_telemetry::init(Options {
                    otlp_endpoint,
                    metrics_listen,
                    ..Options::logs(SERVICE, LOG_FILTER)
                })?
            };
            let outcome = runtime.block_on(join(config, options));
            telemetry.shutdown();
            outcome?;
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

async fn join(config: JoinConfig, options: WorkerOptions) -> Result<()> {
    let (stop_tx, stop_rx) = watch::channel(Stop::Run);
    tokio::spawn(async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        for next in [Stop::Drain, Stop::Abandon] {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            let _ = stop_tx.send(next);
        }
    });
    benchfarm_worker::join_with(config, options, stop_rx).await
}

/// `service.name` of the worker's spans, unless OTEL_SERVICE_NAME says otherwise.
const SERVICE: &str = "benchfarm-worker";
/// The stderr log's filter when RUST_LOG is unset; llama.cpp's own log lines arrive at debug level
/// under `llama-cpp-2`.
const LOG_FILTER: &str = "info,h2=warn,tower=warn,llama-cpp-2=warn,llama_cpp_2=warn";
