//! The worker's side of the engine host: an [`Engine`] that runs each generation in a supervised
//! child process (`PROGRAM engine-host`, see [`crate::host`]), so an abort or OOM kill inside
//! llama.cpp costs one job instead of the worker.
//!
//! - The child is started lazily on the first job and kept for the next ones (its model stays
//!   loaded). When it dies, the job gets an error naming the cause ("engine process died: killed
//!   by signal 6 (SIGABRT); last output: ...") and the next job starts a fresh child.
//! - Cancellation: when the request's cancel flag is set, a `Cancel` message goes to the child at
//!   once; if no answer comes within [`CANCEL_GRACE`] (llama.cpp does not look at the flag while
//!   loading a model, for one) the child is killed and the job ends. A stuck engine therefore never
//!   holds a slot for longer than the job's timeout plus the grace.
//! - The child's stderr (its log) is forwarded into the worker's log at the child's level, and the
//!   last lines are kept for the error message when it dies.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use benchfarm_engine::{Engine, EngineError, GenerateRequest, Generation};
use tracing::{debug, error, info, trace, warn};

use crate::host::{FromHost, REPLY_MARKER, ToHost};

/// How long a cancelled job's engine may take to stop before its process is killed.
pub const CANCEL_GRACE: Duration = Duration::from_secs(2);
/// How often the waiting side looks at the cancel flag.
const POLL: Duration = Duration::from_millis(10);
/// Stderr lines kept, and how many of them an error message quotes.
const TAIL_KEPT: usize = 16;
const TAIL_QUOTED: usize = 4;

/// A slot's engine in a child process.
#[derive(Debug)]
pub struct Supervisor {
    program: PathBuf,
    host: Option<HostProcess>,
    next_id: u64,
}

/// A running child and the threads reading its output.
#[derive(Debug)]
struct HostProcess {
    child: Child,
    stdin: ChildStdin,
    pid: u32,
    /// Replies from stdout; `Err` for a reply line that could not be decoded. Disconnected once
    /// stdout closes, which is how a death shows up first.
    replies: Receiver<Result<FromHost, String>>,
    tail: Arc<Mutex<VecDeque<String>>>,
    /// Disconnected when the stderr reader has read everything, so the tail is complete.
    stderr_done: Receiver<()>,
}

impl Supervisor {
    /// An engine that runs `program engine-host` on first use.
    pub fn new(program: PathBuf) -> Self {
        Supervisor {
            program,
            host: None,
            next_id: 1,
        }
    }

    /// The child's process id, when one is running.
    pub fn pid(&self) -> Option<u32> {
        self.host.as_ref().map(|h| h.pid)
    }

    fn spawn(&self) -> Result<HostProcess, EngineError> {
        let mut child = Command::new(&self.program)
            .arg("engine-host")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                EngineError::Process(format!(
                    "cannot start the engine process {}: {e}",
                    self.program.display()
                ))
            })?;
        let pid = child.id();
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(EngineError::Process(
                "engine process started without its pipes".into(),
            ));
        };
        let (reply_tx, replies) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("engine-{pid}-out"))
            .spawn(move || read_replies(pid, stdout, &reply_tx))
            .map_err(|e| EngineError::Process(format!("cannot start a reader thread: {e}")))?;
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_KEPT)));
        let (done_tx, stderr_done) = std::sync::mpsc::channel::<()>();
        let stderr_tail = Arc::clone(&tail);
        std::thread::Builder::new()
            .name(format!("engine-{pid}-err"))
            .spawn(move || {
                let _done = done_tx;
                forward_stderr(pid, stderr, &stderr_tail);
            })
            .map_err(|e| EngineError::Process(format!("cannot start a reader thread: {e}")))?;
        info!(pid, program = %self.program.display(), "engine process started");
        Ok(HostProcess {
            child,
            stdin,
            pid,
            replies,
            tail,
            stderr_done,
        })
    }

    /// Takes the dead (or dying) child away and describes how it ended.
    fn bury(&mut self) -> EngineError {
        let Some(mut host) = self.host.take() else {
            return EngineError::Process("engine process died".into());
        };
        // The next job starts a fresh engine process.
        metrics::counter!("benchfarm_worker_engine_restarts_total").increment(1);
        // Its stdout closed, so it is exiting; a child that closed stdout and lives on is killed.
        let deadline = Instant::now() + Duration::from_secs(2);
        let status = loop {
            match host.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                Ok(None) | Err(_) => {
                    let _ = host.child.kill();
                    break host.child.wait().ok();
                }
            }
        };
        let _ = host.stderr_done.recv_timeout(Duration::from_secs(1));
        let cause = status.map_or_else(|| "exit status unknown".to_string(), describe_exit);
        let mut text = format!("engine process died: {cause}");
        let quoted = host
            .tail
            .lock()
            .map(|t| {
                let skip = t.len().saturating_sub(TAIL_QUOTED);
                t.iter().skip(skip).cloned().collect::<Vec<_>>().join(" | ")
            })
            .unwrap_or_default();
        if !quoted.is_empty() {
            text.push_str("; last output: ");
            text.push_str(&quoted);
        }
        warn!(pid = host.pid, cause = %cause, "engine process died");
        EngineError::Process(text)
    }

    /// Kills the child (stuck or confused) so the next job starts a fresh one.
    fn kill(&mut self, why: &str) {
        if let Some(mut host) = self.host.take() {
            warn!(pid = host.pid, reason = why, "killing engine process");
            let _ = host.child.kill();
            let _ = host.child.wait();
        }
    }
}

impl Engine for Supervisor {
    fn generate(&mut self, req: &GenerateRequest) -> Result<Generation, EngineError> {
        let id = self.next_id;
        self.next_id += 1;
        let line = serde_json::to_string(&ToHost::Generate { id, request: req })
            .map_err(|e| EngineError::Process(format!("cannot encode the request: {e}")))?;
        if self.host.is_none() {
            self.host = Some(self.spawn()?);
        }
        let sent = match self.host.as_mut() {
            Some(host) => send_line(&mut host.stdin, &line),
            None => return Err(EngineError::Process("no engine process".into())),
        };
        if sent.is_err() {
            // A broken pipe: the child died between jobs.
            return Err(self.bury());
        }
        let mut cancel_sent: Option<Instant> = None;
        loop {
            let Some(host) = self.host.as_mut() else {
                return Err(EngineError::Process("no engine process".into()));
            };
            match host.replies.recv_timeout(POLL) {
                Ok(Ok(reply)) if reply.id == id => {
                    return reply.result.map_err(EngineError::Process);
                }
                Ok(Ok(stale)) => {
                    debug!(pid = host.pid, id = stale.id, "stale engine reply dropped")
                }
                Ok(Err(garbled)) => {
                    self.kill("unreadable reply");
                    return Err(EngineError::Process(format!(
                        "engine process sent an unreadable reply ({garbled}); restarted it"
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => return Err(self.bury()),
                Err(RecvTimeoutError::Timeout) => {}
            }
            if req.cancel.load(Ordering::Relaxed) {
                match cancel_sent {
                    None => {
                        let cancel =
                            serde_json::to_string(&ToHost::<&GenerateRequest>::Cancel { id })
                                .unwrap_or_default();
                        // A failed send means the child is dying; the reply channel will say so.
                        let _ = send_line(&mut host.stdin, &cancel);
                        cancel_sent = Some(Instant::now());
                    }
                    Some(at) if at.elapsed() >= CANCEL_GRACE => {
                        self.kill("it did not stop after a cancel");
                        return Err(EngineError::Process(format!(
                            "engine process did not stop within {} ms of a cancel; killed it",
                            CANCEL_GRACE.as_millis()
                        )));
                    }
                    Some(_) => {}
                }
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(mut host) = self.host.take() {
            let _ = host.child.kill();
            let _ = host.child.wait();
        }
    }
}

fn send_line(stdin: &mut ChildStdin, line: &str) -> std::io::Result<()> {
    stdin.write_all(line.as_bytes())?;
    stdin.write_all(b"\n")?;
    stdin.flush()
}

/// Reads the child's stdout: replies go to `replies`, anything else (native code printing to
/// stdout) to the log.
fn read_replies(
    pid: u32,
    stdout: impl Read,
    replies: &std::sync::mpsc::Sender<Result<FromHost, String>>,
) {
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        let Some(at) = line.find(REPLY_MARKER) else {
            forward_line(pid, &line);
            continue;
        };
        forward_line(pid, &line[..at]);
        let json = &line[at + REPLY_MARKER.len()..];
        let reply = serde_json::from_str::<FromHost>(json).map_err(|e| e.to_string());
        if replies.send(reply).is_err() {
            return;
        }
    }
}

/// Forwards the child's stderr into the log and keeps its last lines.
fn forward_stderr(pid: u32, stderr: impl Read, tail: &Mutex<VecDeque<String>>) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        forward_line(pid, line);
        if let Ok(mut t) = tail.lock() {
            if t.len() == TAIL_KEPT {
                t.pop_front();
            }
            t.push_back(line.to_string());
        }
    }
}

/// Re-logs one line of the child's output at the level it was logged with (the host logs
/// without timestamps, so a line starts with its level); other text (native code writing
/// directly, such as a `GGML_ASSERT` message) is logged as a warning.
fn forward_line(pid: u32, line: &str) {
    let line = line.trim();
    if line.is_empty() {
        return;
    }
    let (level, rest) = line
        .split_once(' ')
        .map_or((line, ""), |(l, r)| (l, r.trim_start()));
    match level {
        "ERROR" => error!(pid, output = %rest, "engine process"),
        "WARN" => warn!(pid, output = %rest, "engine process"),
        "INFO" => info!(pid, output = %rest, "engine process"),
        "DEBUG" => debug!(pid, output = %rest, "engine process"),
        "TRACE" => trace!(pid, output = %rest, "engine process"),
        _ => warn!(pid, output = %line, "engine process"),
    }
}

/// "killed by signal 6 (SIGABRT)", "exited with status 3".
pub fn describe_exit(status: ExitStatus) -> String {
    if let Some(signal) = status.signal() {
        let dumped = if status.core_dumped() {
            ", core dumped"
        } else {
            ""
        };
        return match signal_name(signal) {
            Some(name) => format!("killed by signal {signal} ({name}{dumped})"),
            None => format!("killed by signal {signal}{dumped}"),
        };
    }
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => status.to_string(),
    }
}

/// Names of the signals a dying engine is likely to show (Linux numbering).
fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_described_by_signal_or_status() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(6)),
            "killed by signal 6 (SIGABRT)"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(9)),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(6 | 0x80)),
            "killed by signal 6 (SIGABRT, core dumped)"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(40)),
            "killed by signal 40"
        );
    }

    #[test]
    fn reply_lines_are_found_behind_stray_output() {
        let reply = FromHost {
            id: 4,
            result: Err("nope".into()),
        };
        let text = format!(
            "stray text\nnoise{REPLY_MARKER}{}\n{REPLY_MARKER}{{bad json\n",
            serde_json::to_string(&reply).unwrap()
        );
        let (tx, rx) = std::sync::mpsc::channel();
        read_replies(1, text.as_bytes(), &tx);
        let first = rx.try_recv().unwrap().unwrap();
        assert_eq!(first.id, 4);
        assert_eq!(first.result, Err("nope".to_string()));
        assert!(rx.try_recv().unwrap().is_err());
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn stderr_tail_keeps_the_last_lines() {
        let text: String = (0..40).map(|i| format!("INFO line {i}\n")).collect();
        let tail = Mutex::new(VecDeque::new());
        forward_stderr(1, text.as_bytes(), &tail);
        let tail = tail.into_inner().unwrap();
        assert_eq!(tail.len(), TAIL_KEPT);
        assert_eq!(tail.back().map(String::as_str), Some("INFO line 39"));
    }

    #[test]
    fn a_missing_program_is_a_readable_error() {
        let mut s = Supervisor::new("/nonexistent/worker".into());
        let req = crate::host::tests::scripted_request("a");
        let err = s.generate(&req).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot start the engine process /nonexistent/worker"),
            "{err}"
        );
        assert!(s.pid().is_none());
    }
}
