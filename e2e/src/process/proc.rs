//! One process of a test farm: a child that leads its own process group and logs to a file.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// A child process that leads its own process group (so its own children, such as a worker's engine
/// process, can be signalled and killed with it) and logs to a file.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Child,
    pub(super) status: Option<ExitStatus>,
}

impl Proc {
    pub(super) fn spawn(
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
