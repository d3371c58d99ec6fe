//! The process-level test farm: the real `coordinator` and `worker` binaries on 127.0.0.1.
//!
//! Unlike [`crate::in_process`] (everything in the test's process), every member of a [`Farm`] is a separate process
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

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

mod farm;
mod fixtures;
mod proc;
mod queries;
mod store_checks;

pub use farm::*;
pub use fixtures::*;
pub use proc::*;
pub use queries::*;
pub use store_checks::*;

pub use crate::real_model::*;
pub use crate::reports::*;
pub use crate::workers::*;

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
