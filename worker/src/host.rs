//! `worker engine-host`: the child process that runs a slot's engine, and the protocol it speaks.
//!
//! Crash isolation is the point: a `GGML_ASSERT` abort or an OOM kill inside llama.cpp kills this
//! process, not the worker, and costs one job. The process is long-lived so a loaded model stays
//! loaded between jobs.
//!
//! Protocol: one JSON message per line. The parent writes [`ToHost`] lines on stdin; the host
//! writes each answer as one line on stdout, [`REPLY_MARKER`] then a [`FromHost`] (`id` and a
//! `Result<Generation, String>`). The marker lets the parent tell replies from anything native code
//! might print to stdout; logs go to stderr, which the parent forwards into its own log.
//!
//! Cancellation: the parent sends `Cancel` with the job's id and the host sets that job's cancel
//! flag, so the engine stops at its next check and answers (stop reason `Cancelled`). An engine
//! deaf to the flag (llama.cpp inside a model load) is the parent's problem: it kills the host
//! after a grace period (see [`crate::supervisor`]). End of stdin means the parent is gone, and
//! the host exits at once, so a dead worker never leaves engines running. SIGINT and SIGTERM are
//! ignored (they are the worker's to handle; see [`shield_from_stop_signals`]).

use std::io::{BufRead, Write};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use benchfarm_engine::{Engine, Engines, GenerateRequest, Generation, ModelSource, ScriptedEngine};
use serde::{Deserialize, Serialize};
use tracing::{error, info, warn};

/// Starts every reply line on stdout. Control characters keep it from occurring in log text.
pub const REPLY_MARKER: &str = "\u{1e}benchfarm-reply\u{1f}";

/// The job the host runs (or last ran) and its cancel flag, where cancels are applied.
type Current = Mutex<Option<(u64, Arc<AtomicBool>)>>;

/// A message from the worker to its engine host. Generic over the request so the parent can
/// send a borrowed one without cloning.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToHost<R = GenerateRequest> {
    Generate {
        id: u64,
        request: R,
    },
    /// Stop job `id` if it is still running; ignored otherwise.
    Cancel {
        id: u64,
    },
}

/// The host's answer to `Generate { id, .. }`.
#[derive(Debug, Serialize, Deserialize)]
pub struct FromHost {
    pub id: u64,
    pub result: Result<Generation, String>,
}

/// Serves requests from stdin until it closes; the process's whole life in `engine-host` mode.
pub fn serve_stdio() -> std::process::ExitCode {
    info!(pid = std::process::id(), "engine host started");
    let _shield = shield_from_stop_signals();
    let current: Arc<Current> = Arc::default();
    let (jobs_tx, jobs_rx) = std::sync::mpsc::channel::<(u64, GenerateRequest)>();
    // The reader runs beside the engine so a cancel can arrive while a generation runs.
    let reader_current = Arc::clone(&current);
    let reader = std::thread::Builder::new()
        .name("host-stdin".into())
        .spawn(move || {
            read_requests(std::io::stdin().lock(), &reader_current, &jobs_tx);
            // The parent closed our stdin (it stopped or died): nothing will read our answer.
            info!("engine host input closed; exiting");
            std::process::exit(0);
        });
    if let Err(e) = reader {
        error!(error = %e, "cannot start the engine host's input thread");
        return std::process::ExitCode::FAILURE;
    }
    let mut host = Host::default();
    let stdout = std::io::stdout();
    for (id, request) in jobs_rx {
        let result = host.generate(&request);
        let reply = FromHost { id, result };
        let line = match serde_json::to_string(&reply) {
            Ok(json) => format!("{REPLY_MARKER}{json}\n"),
            Err(e) => {
                error!(error = %e, "cannot encode a reply");
                return std::process::ExitCode::FAILURE;
            }
        };
        let mut out = stdout.lock();
        if out
            .write_all(line.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            // Nobody reads our answers any more.
            return std::process::ExitCode::SUCCESS;
        }
    }
    std::process::ExitCode::SUCCESS
}

/// Keeps SIGINT and SIGTERM from ending the host. They are meant for the worker, but a terminal's
/// Ctrl-C reaches the whole process group and systemd's stop the whole cgroup; a host dying then
/// would fail the very jobs the worker is draining. The worker ends the host by closing its stdin
/// (or, when stuck, by SIGKILL). Tokio's handlers replace the default action for the rest of the
/// process; the returned runtime is kept alive beside them.
fn shield_from_stop_signals() -> Option<tokio::runtime::Runtime> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let shielded = runtime.block_on(async {
        signal(SignalKind::interrupt()).is_ok() && signal(SignalKind::terminate()).is_ok()
    });
    if !shielded {
        warn!("cannot shield the engine host from SIGINT/SIGTERM; a group-wide stop will end it");
    }
    Some(runtime)
}

/// Reads `ToHost` lines; hands jobs to the engine thread and applies cancels. Returns at end of
/// input. A line it cannot parse ends the process: the parent (same binary) never sends one, so
/// it means a broken pipe or a bug, and the parent reports the death with our last log lines.
fn read_requests(
    input: impl BufRead,
    current: &Current,
    jobs: &std::sync::mpsc::Sender<(u64, GenerateRequest)>,
) {
    for line in input.lines() {
        let Ok(line) = line else { return };
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<ToHost>(&line) {
            Ok(ToHost::Generate { id, mut request }) => {
                // `cancel` is not on the wire: this job's flag is made here, where cancels land.
                let flag = Arc::new(AtomicBool::new(false));
                request.cancel = Arc::clone(&flag);
                if let Ok(mut c) = current.lock() {
                    *c = Some((id, flag));
                }
                if jobs.send((id, request)).is_err() {
                    return;
                }
            }
            Ok(ToHost::Cancel { id }) => {
                if let Ok(c) = current.lock()
                    && let Some((cid, flag)) = c.as_ref()
                    && *cid == id
                {
                    flag.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => {
                error!(error = %e, "unreadable request from the worker; exiting");
                std::process::exit(2);
            }
        }
    }
}

/// The engines of one host: scripted models with process faults enabled (this process is
/// disposable), everything else through [`Engines`], which keeps a llama model loaded.
#[derive(Debug)]
struct Host {
    scripted: ScriptedEngine,
    engines: Engines,
}

impl Default for Host {
    fn default() -> Self {
        Host {
            scripted: ScriptedEngine::with_process_faults(),
            engines: Engines::new(),
        }
    }
}

impl Host {
    /// Runs one request; a panic becomes that job's error and resets the engines, whose state
    /// after a panic is unknown.
    fn generate(&mut self, request: &GenerateRequest) -> Result<Generation, String> {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| match &request.model {
            ModelSource::Scripted(_) => self.scripted.generate(request),
            ModelSource::Gguf { .. } => self.engines.generate(request),
        }));
        match outcome {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(panic) => {
                let what = crate::panic_text::panic_text(panic.as_ref());
                warn!(panic = %what, "engine panicked; starting afresh");
                *self = Host::default();
                Err(format!("engine panicked: {what}"))
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn scripted_request(answer: &str) -> GenerateRequest {
        let text = format!("name = \"m\"\n[answers]\nt = [\"{answer}\"]");
        GenerateRequest {
            model: ModelSource::Scripted(Arc::new(
                benchfarm_modelfile::ScriptedModel::parse(&text, "m").unwrap(),
            )),
            task_id: "t".into(),
            repetition: 0,
            attempt: 1,
            system: String::new(),
            prompt: "p".into(),
            max_tokens: 8,
            temperature: 0.0,
            seed: 0,
            threads: 1,
            cancel: Arc::default(),
            throughput: None,
        }
    }

    #[test]
    fn messages_round_trip_and_borrowed_requests_encode_like_owned_ones() {
        let req = scripted_request("hi");
        let borrowed = serde_json::to_string(&ToHost::Generate {
            id: 7,
            request: &req,
        })
        .unwrap();
        let owned = serde_json::to_string(&ToHost::Generate {
            id: 7,
            request: req.clone(),
        })
        .unwrap();
        assert_eq!(borrowed, owned);
        match serde_json::from_str::<ToHost>(&borrowed).unwrap() {
            ToHost::Generate { id, request } => {
                assert_eq!(id, 7);
                assert_eq!(request.model, req.model);
            }
            other => panic!("{other:?}"),
        }
        assert!(!REPLY_MARKER.contains('\n'));
    }

    #[test]
    fn reader_queues_jobs_and_cancels_only_the_named_one() {
        let req = scripted_request("x");
        let lines = [
            serde_json::to_string(&ToHost::Generate {
                id: 1,
                request: &req,
            })
            .unwrap(),
            serde_json::to_string(&ToHost::<GenerateRequest>::Cancel { id: 9 }).unwrap(),
        ]
        .join("\n");
        let current = Mutex::new(None);
        let (tx, rx) = std::sync::mpsc::channel();
        read_requests(lines.as_bytes(), &current, &tx);
        let (id, queued) = rx.try_recv().unwrap();
        assert_eq!(id, 1);
        let flag = current.lock().unwrap().as_ref().unwrap().1.clone();
        assert!(Arc::ptr_eq(&flag, &queued.cancel));
        assert!(
            !flag.load(Ordering::Relaxed),
            "cancel for another id applied"
        );
        let cancel = serde_json::to_string(&ToHost::<GenerateRequest>::Cancel { id: 1 }).unwrap();
        read_requests(cancel.as_bytes(), &current, &tx);
        assert!(flag.load(Ordering::Relaxed));
    }

    #[test]
    fn host_answers_scripted_requests() {
        let mut host = Host::default();
        let g = host.generate(&scripted_request("hello")).unwrap();
        assert_eq!(g.text, "hello");
    }
}
