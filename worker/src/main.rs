//! `worker join`: run benchmark jobs for a coordinator on this machine.
//!
//! Ctrl-C or SIGTERM once: drain (finish and report the running job, then leave). Twice: abandon.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Result, bail};
use benchfarm_worker::{JoinConfig, Stop};
use clap::{Parser, Subcommand};
use tokio::sync::watch;

#[derive(Parser, Debug)]
#[command(
    name = "worker",
    version,
    about = "benchfarm worker: runs LLM benchmark jobs with llama.cpp"
)]
struct Args {
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
    },
}

fn parse_label(text: &str) -> Result<(String, String)> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => bail!("expected key=value, got {text:?}"),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    benchfarm_coordinator_free_logging();
    let Verb::Join {
        coordinator,
        models,
        labels,
        threads,
        state,
        name,
        slots,
    } = Args::parse().command;
    let config = JoinConfig {
        coordinator,
        models_dir: models,
        labels: labels.into_iter().collect::<BTreeMap<_, _>>(),
        threads,
        state_dir: state,
        name,
        slots,
    };
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
    benchfarm_worker::join(config, stop_rx).await
}

/// Logs to stderr; llama.cpp's own log lines arrive at debug level under `llama-cpp-2`.
fn benchfarm_coordinator_free_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,h2=warn,tower=warn,llama-cpp-2=warn,llama_cpp_2=warn",
        )
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .compact()
        .try_init();
}
