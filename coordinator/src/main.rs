//! `coordinator`: serve the farm, or talk to a running one.
//!
//! `coordinator serve` runs the gRPC server until Ctrl-C or SIGTERM, then flushes sled and exits.
//! Every other verb is a client of a running server (`--coordinator URL`, env
//! `BENCHFARM_COORDINATOR`), except `suite`, which works offline.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use benchfarm_coordinator::{cli, grpc, scheduler};
use benchfarm_telemetry::Options;
use clap::{Parser, Subcommand};

/// jemalloc, not glibc's malloc: the coordinator allocates and frees small records from many
/// threads (tonic's, the scheduler's, the report's blocking task), and glibc kept a fresh arena's
/// worth of freed memory per thread. Side by side at 100,000 jobs (docs/benchmarks.md): fewer CPU
/// seconds per job and a smaller peak with a report.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(
    name = "coordinator",
    version,
    about = "benchfarm coordinator: schedules LLM benchmark jobs on workers"
)]
struct Args {
    /// The coordinator to talk to (client verbs).
    #[arg(
        long,
        global = true,
        env = "BENCHFARM_COORDINATOR",
        default_value = "http://127.0.0.1:50051"
    )]
    coordinator: String,
    /// File holding the token to send (default: env BENCHFARM_TOKEN).
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed the coordinator's certificate, for an https:// URL.
    #[arg(long, global = true, env = "BENCHFARM_CA")]
    ca: Option<PathBuf>,
    /// This client's certificate (PEM), for a coordinator that requires client certificates.
    #[arg(long, global = true, requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// This client's private key (PEM).
    #[arg(long, global = true, requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// Export traces over OTLP to this endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT; unset, none
    /// are exported). OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf switches from gRPC to HTTP.
    #[arg(long, global = true, value_name = "URL")]
    otlp_endpoint: Option<String>,
    #[command(subcommand)]
    command: Verb,
}

// Parsed once at start and matched at once: the size of `Serve`'s many flags costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Verb {
    /// Run the coordinator server.
    Serve {
        /// Address to listen on (port 0 picks a free one; the chosen address is logged).
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: SocketAddr,
        /// Directory of the sled store (created if missing).
        #[arg(long, default_value = ".data/coordinator")]
        data: PathBuf,
        /// A worker silent this long (ms) is lost and its jobs are requeued.
        #[arg(long, default_value_t = 30_000)]
        lease_ms: u64,
        /// Attempts per job before it fails.
        #[arg(long, default_value_t = 3)]
        max_attempts: u32,
        /// Cap on one attempt's time limit (ms); each job's limit derives from its token limit and
        /// the worker's measured speed, between --job-timeout-floor-ms and this.
        #[arg(long, default_value_t = 600_000)]
        job_timeout_ms: u64,
        /// Floor of a job's time limit (ms).
        #[arg(long, default_value_t = 30_000)]
        job_timeout_floor_ms: u64,
        /// Failed jobs in a row after which a worker is quarantined (0: never).
        #[arg(long, default_value_t = 3)]
        quarantine_after: u32,
        /// Jobs sent to a worker beyond its slots, waiting there for the next free slot (hides the
        /// round trip between jobs; 0 turns it off; measured in docs/benchmarks.md).
        #[arg(long, default_value_t = 1)]
        prefetch: u32,
        /// The most jobs one run may expand to (models x tasks x repetitions x pins); a larger
        /// submit is refused with an error naming this limit.
        #[arg(long, default_value_t = 1_000_000)]
        max_jobs_per_run: u32,
        /// Serve the live page and HTML reports over HTTP on this address (e.g. 127.0.0.1:8080);
        /// off by default. Read-only.
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Let anyone who reaches the port do anything: no tokens (the local demo on 127.0.0.1).
        #[arg(long)]
        insecure_no_auth: bool,
        /// The operator token's file (default DATA/api.token; created 0600 if missing).
        #[arg(long)]
        api_token_file: Option<PathBuf>,
        /// The shared join token's file (default DATA/worker.token; created 0600 if missing).
        #[arg(long)]
        worker_token_file: Option<PathBuf>,
        /// Serve TLS with this certificate chain (PEM)...
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// ...and this private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Require client certificates signed by this CA (PEM): mutual TLS.
        #[arg(long, requires = "tls_cert")]
        client_ca: Option<PathBuf>,
        /// The largest message on a worker stream, either way, in bytes (workers truncate answers
        /// to fit).
        #[arg(long, default_value_t = 4 << 20)]
        max_message_bytes: usize,
        /// The largest client request, in bytes (a plan carries its suite and scripted models).
        #[arg(long, default_value_t = 16 << 20)]
        max_request_bytes: usize,
        /// Worker streams open at once from one IP address (0: no limit).
        #[arg(long, default_value_t = 256)]
        max_streams_per_peer: usize,
        /// New connections per minute from one IP address, after a burst of 64 (0: no limit).
        #[arg(long, default_value_t = 600)]
        max_connections_per_minute: u32,
        /// Serve Prometheus metrics on this address (http://ADDR/metrics); off by default.
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<SocketAddr>,
        /// Register this directory's GGUF files in place (not copied), so workers can fetch them
        /// and plans can name them with `registered = "NAME"`.
        #[arg(long, value_name = "DIR")]
        models_dir: Option<PathBuf>,
        /// Model transfers to workers sent at once; the others wait their turn.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
        max_transfers: u32,
        /// All model transfers together at most this fast, e.g. 20MB/s (default: no limit).
        #[arg(long, value_name = "LIMIT", value_parser = parse_rate)]
        transfer_rate: Option<u64>,
    },
    /// Submit a plan file; prints the run id.
    Submit {
        plan: PathBuf,
        /// Follow the run and print the report when it is over.
        #[arg(long)]
        wait: bool,
        /// Report format for --wait.
        #[arg(long, default_value = "table")]
        format: String,
        /// Refuse the run if a model has no connected worker that can run it.
        #[arg(long)]
        strict: bool,
    },
    /// Show all runs, or one run and why its queued jobs wait.
    Status {
        run: Option<String>,
        /// Follow the run until it is over (progress bars on a terminal), then show it; exit 1
        /// unless it finished.
        #[arg(long, requires = "run")]
        wait: bool,
    },
    /// Show the workers that joined; drain or clear one.
    Workers {
        /// Send this worker (id or name) no new jobs; it finishes what it runs and leaves.
        #[arg(long)]
        drain: Option<String>,
        /// Lift this worker's quarantine.
        #[arg(long)]
        clear: Option<String>,
    },
    /// Print a run's report.
    Report {
        run: String,
        /// table | md | csv | json | jsonl | html
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Print a run's answers with their grade and the checks that failed.
    Answers {
        run: String,
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        task: Option<String>,
        /// pass | partial | fail
        #[arg(long)]
        verdict: Option<String>,
        /// Also show answers of superseded attempts (stored, never counted).
        #[arg(long)]
        all: bool,
    },
    /// Print one job's attempts in full: answers whole, every check, every failure.
    Show { job: String },
    /// Compare two runs, or two models within one run: paired differences with intervals,
    /// McNemar with Holm's correction per task, speed ratios per hardware class.
    Compare {
        run_a: String,
        run_b: Option<String>,
        /// The two models to compare, A,B (required within one run).
        #[arg(long)]
        models: Option<String>,
        /// table | md | json
        #[arg(long, default_value = "table")]
        format: String,
        /// Compare runs of different suite versions anyway.
        #[arg(long)]
        allow_suite_change: bool,
    },
    /// Measure one coordinator at scale: N simulated workers over real gRPC against this binary's
    /// own `serve` as a child process (docs/benchmarks.md).
    Bench {
        #[arg(long, default_value_t = 100)]
        workers: u32,
        #[arg(long, default_value_t = 10_000)]
        jobs: u32,
        /// Also write the figures as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// An argument for the `serve` under test (repeatable), e.g.
        /// `--serve-arg=--metrics-listen --serve-arg=127.0.0.1:0`.
        #[arg(long = "serve-arg", allow_hyphen_values = true)]
        serve_args: Vec<String>,
        /// The coordinator binary to measure (default: this one), e.g. another build of it.
        #[arg(long)]
        exe: Option<PathBuf>,
    },
    /// Ask the coordinator's gRPC health service whether it serves (no token needed); exit 0
    /// when every checked service is SERVING. For container health checks.
    Health {
        /// Check only this service (default: benchfarm.v1.FarmService and WorkerService).
        #[arg(long)]
        service: Option<String>,
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 5_000)]
        timeout_ms: u64,
    },
    /// Cancel a run's remaining jobs.
    Cancel { run: String },
    /// Recompute a finished run's grades from its stored answers.
    Regrade {
        run: String,
        /// Grade with this suite (file or built-in name) instead of the run's own.
        #[arg(long)]
        suite: Option<String>,
    },
    /// Check or try a suite offline.
    #[command(subcommand)]
    Suite(SuiteVerb),
    /// Manage the farm's tokens (operator).
    #[command(subcommand)]
    Tokens(TokensVerb),
    /// Manage the models the coordinator distributes to workers.
    #[command(subcommand)]
    Models(ModelsVerb),
}

#[derive(Subcommand, Debug)]
enum ModelsVerb {
    /// Upload GGUF files (header checked here, sha256 verified on arrival; an interrupted upload
    /// resumes where it stopped when run again). Operator.
    Add {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The name to register it under (one file only; default: the file's stem).
        #[arg(long)]
        name: Option<String>,
    },
    /// Registered models: name, size, sha256, architecture, quantization, parameters, holders.
    List,
    /// Unregister a model (by name or sha256 prefix); an uploaded file is deleted. Operator.
    Rm { model: String },
}

fn parse_rate(text: &str) -> Result<u64, String> {
    benchfarm_modelfile::size::parse_rate(text).map_err(|e| e.to_string())
}

#[derive(Subcommand, Debug)]
enum TokensVerb {
    /// Create a token; it is printed once on stdout and stored hashed.
    Add {
        /// worker | submitter | operator
        #[arg(long)]
        role: benchfarm_coordinator::auth::Role,
        /// A name to list and revoke it by (default: ROLE-RANDOM).
        #[arg(long)]
        name: Option<String>,
    },
    /// List the tokens: name, role, the worker a per-worker token is bound to.
    List,
    /// Remove a token; the workers it connected are cut off and their jobs requeued.
    Revoke { name: String },
}

#[derive(Subcommand, Debug)]
enum SuiteVerb {
    /// Load a suite, grade all its examples, list disagreements.
    Check { suite: String },
    /// Grade one answer for one task and show each check.
    Grade {
        suite: String,
        task: String,
        /// The answer; read from stdin when absent.
        #[arg(long)]
        answer: Option<String>,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let target = client_target(&args)?;
    let url = &target;
    let otlp_endpoint = args.otlp_endpoint.clone();
    let telemetry;
    let code = match args.command {
        Verb::Serve {
            listen,
            data,
            lease_ms,
            max_attempts,
            job_timeout_ms,
            job_timeout_floor_ms,
            quarantine_after,
            prefetch,
            max_jobs_per_run,
            http,
            insecure_no_auth,
            api_token_file,
            worker_token_file,
            tls_cert,
            tls_key,
            client_ca,
            max_message_bytes,
            max_request_bytes,
            max_streams_per_peer,
            max_connections_per_minute,
            metrics_listen,
            models_dir,
            max_transfers,
            transfer_rate,
        } => {
            telemetry = benchfarm_telemetry::init(Options {
                otlp_endpoint,
                metrics_listen,
                ..Options::logs(
                    "benchfarm-coordinator",
                    "info,benchfarm_coordinator=info,h2=warn,tower=warn",
                )
            })?;
            let config = grpc::server::ServeConfig {
                listen,
                data,
                scheduler: scheduler::Config {
                    lease: Duration::from_millis(lease_ms),
                    max_attempts: max_attempts.max(1),
                    job_timeout: Duration::from_millis(job_timeout_ms),
                    job_timeout_floor: Duration::from_millis(job_timeout_floor_ms),
                    quarantine_after,
                    prefetch,
                    max_jobs_per_run,
                    ..scheduler::Config::default()
                },
                http,
                auth: if insecure_no_auth {
                    grpc::server::AuthMode::InsecureNoAuth
                } else {
                    grpc::server::AuthMode::Tokens {
                        api_token_file,
                        worker_token_file,
                    }
                },
                tls: match (tls_cert, tls_key) {
                    (Some(cert), Some(key)) => Some(grpc::server::TlsFiles {
                        cert,
                        key,
                        client_ca,
                    }),
                    _ => None,
                },
                streams: grpc::worker_service::StreamLimits {
                    max_message_bytes,
                    max_streams_per_peer,
                },
                max_request_bytes,
                connections: grpc::admission::ConnectionRate {
                    burst: 64,
                    per_minute: max_connections_per_minute,
                },
                models: grpc::server::ModelsConfig {
                    dir: models_dir,
                    max_transfers: max_transfers as usize,
                    transfer_rate,
                },
            };
            serve(config).await?;
            0
        }
        verb => {
            telemetry = benchfarm_telemetry::init(Options {
                otlp_endpoint,
                ..Options::logs("benchfarm-cli", "warn")
            })?;
            match verb {
                Verb::Submit {
                    plan,
                    wait,
                    format,
                    strict,
                } => cli::client::submit_with(url, &plan, wait, &format, strict).await?,
                Verb::Status { run, wait } => {
                    cli::client::status(url, run.as_deref(), wait).await?
                }
                Verb::Workers { drain, clear } => {
                    cli::client::workers(url, drain.as_deref(), clear.as_deref()).await?
                }
                Verb::Report { run, format } => cli::client::report(url, &run, &format).await?,
                Verb::Answers {
                    run,
                    model,
                    task,
                    verdict,
                    all,
                } => cli::answers::answers(url, &run, model, task, verdict.as_deref(), all).await?,
                Verb::Show { job } => cli::answers::show(url, &job).await?,
                Verb::Compare {
                    run_a,
                    run_b,
                    models,
                    format,
                    allow_suite_change,
                } => {
                    cli::answers::compare(
                        url,
                        &run_a,
                        run_b.as_deref(),
                        models.as_deref(),
                        &format,
                        allow_suite_change,
                    )
                    .await?
                }
                Verb::Bench {
                    workers,
                    jobs,
                    json,
                    serve_args,
                    exe,
                } => {
                    let exe = match exe {
                        Some(exe) => exe,
                        None => std::env::current_exe()?,
                    };
                    cli::bench::bench(&exe, workers, jobs, json, &serve_args).await?;
                    0
                }
                Verb::Health {
                    service,
                    timeout_ms,
                } => {
                    cli::health::health(url, service.as_deref(), Duration::from_millis(timeout_ms))
                        .await?
                }
                Verb::Cancel { run } => cli::client::cancel(url, &run).await?,
                Verb::Regrade { run, suite } => {
                    cli::client::regrade(url, &run, suite.as_deref()).await?
                }
                Verb::Suite(SuiteVerb::Check { suite }) => {
                    cli::suite_cmd::check(&suite, &mut std::io::stdout())?
                }
                Verb::Suite(SuiteVerb::Grade {
                    suite,
                    task,
                    answer,
                }) => cli::suite_cmd::grade(&suite, &task, answer, &mut std::io::stdout())?,
                Verb::Tokens(TokensVerb::Add { role, name }) => {
                    cli::tokens::add(url, role, name.as_deref()).await?
                }
                Verb::Tokens(TokensVerb::List) => cli::tokens::list(url).await?,
                Verb::Tokens(TokensVerb::Revoke { name }) => {
                    cli::tokens::revoke(url, &name).await?
                }
                Verb::Models(ModelsVerb::Add { paths, name }) => {
                    cli::models::add(url, &paths, name.as_deref()).await?
                }
                Verb::Models(ModelsVerb::List) => cli::models::list(url).await?,
                Verb::Models(ModelsVerb::Rm { model }) => cli::models::rm(url, &model).await?,
                Verb::Serve { .. } => unreachable!("handled above"),
            }
        }
    };
    // `exit` runs no destructors: spans still in the exporter's queue are flushed first (blocking,
    // so off the runtime's scheduling).
    tokio::task::block_in_place(|| telemetry.shutdown());
    std::process::exit(code);
}

/// The coordinator a client verb talks to, with its token (`--token-file`, else env
/// BENCHFARM_TOKEN; read here rather than by clap so `--help` never shows it) and TLS files.
fn client_target(args: &Args) -> Result<cli::connect::Target> {
    let token = match &args.token_file {
        Some(path) => Some(cli::connect::read_token_file(path)?),
        None => std::env::var("BENCHFARM_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty()),
    };
    Ok(cli::connect::Target {
        url: args.coordinator.clone(),
        token,
        tls: cli::connect::ClientTls {
            ca: args.ca.clone(),
            client_cert: args.client_cert.clone(),
            client_key: args.client_key.clone(),
        },
    })
}

/// Serves until Ctrl-C or SIGTERM, then shuts down gracefully.
async fn serve(config: grpc::server::ServeConfig) -> Result<()> {
    let mut server = grpc::server::start(config).await?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutdown requested"),
        _ = sigterm.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
        result = server.wait() => { result?; return Ok(()); }
    }
    server.shutdown().await?;
    Ok(())
}
