//! The worker's status file, `STATE/status.json`, and `worker status`, which reads it.
//!
//! A running worker writes whether its `Connect` stream is up, to which coordinator, since when,
//! and when it last sent a heartbeat on it. `worker status --state DIR` (the container's health
//! check) exits 0 only when the file says connected and the last heartbeat is recent — a worker
//! that lost its coordinator, is wedged, or died (the file then stops being refreshed) is reported
//! unhealthy. A file beats a local port: it needs no listener, and the state dir is already the
//! worker's own.
//!
//! Writes happen on one thread of their own (the session runs on the async runtime, which must not
//! block on the disk), atomically (written beside, then renamed), newest state last.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::warn;

/// The file's name inside the state directory.
pub const FILE_NAME: &str = "status.json";

/// What the worker says about its connection; the file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// The `Connect` stream is up (welcomed or not yet).
    pub connected: bool,
    pub coordinator: String,
    /// When the current state began (connected, or lost), ms since the Unix epoch.
    pub since_unix_ms: u64,
    /// When a heartbeat was last sent on a live stream (0: none yet).
    pub last_heartbeat_unix_ms: u64,
    /// The heartbeat interval in force, so a reader knows what "recent" means.
    pub heartbeat_ms: u64,
    /// Why the worker is not connected, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub pid: u32,
}

/// Why `worker status` says unhealthy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unhealthy {
    #[error("cannot read {path}: {reason} (is a worker running with --state {dir}?)")]
    Unreadable {
        path: String,
        dir: String,
        reason: String,
    },
    #[error("not connected to {coordinator} for {seconds} s: {reason}")]
    NotConnected {
        coordinator: String,
        seconds: u64,
        reason: String,
    },
    #[error("connected to {coordinator} but no heartbeat for {seconds} s (allowed: {allowed} s)")]
    Silent {
        coordinator: String,
        seconds: u64,
        allowed: u64,
    },
}

/// How old the last heartbeat may be when `worker status` is not told: three intervals (one
/// missed tick is not a failure), at least 15 s.
pub fn default_max_age(status: &WorkerStatus) -> Duration {
    Duration::from_millis(status.heartbeat_ms.saturating_mul(3)).max(Duration::from_secs(15))
}

/// Judges a status read at `now_unix_ms`: connected, and heartbeating within `max_age` of now
/// (a connection younger than `max_age` counts as its first heartbeat).
pub fn judge(
    status: &WorkerStatus,
    now_unix_ms: u64,
    max_age: Duration,
) -> Result<String, Unhealthy> {
    let age_s = |t: u64| now_unix_ms.saturating_sub(t) / 1000;
    if !status.connected {
        return Err(Unhealthy::NotConnected {
            coordinator: status.coordinator.clone(),
            seconds: age_s(status.since_unix_ms),
            reason: status
                .reason
                .clone()
                .unwrap_or_else(|| "no reason given".into()),
        });
    }
    let last = status.last_heartbeat_unix_ms.max(status.since_unix_ms);
    let silent = Duration::from_millis(now_unix_ms.saturating_sub(last));
    if silent > max_age {
        return Err(Unhealthy::Silent {
            coordinator: status.coordinator.clone(),
            seconds: silent.as_secs(),
            allowed: max_age.as_secs(),
        });
    }
    Ok(format!(
        "connected to {} for {} s, last heartbeat {} s ago (pid {})",
        status.coordinator,
        age_s(status.since_unix_ms),
        silent.as_secs(),
        status.pid
    ))
}

/// Reads `STATE/status.json`.
pub fn read(state_dir: &Path) -> Result<WorkerStatus, Unhealthy> {
    let path = state_dir.join(FILE_NAME);
    let unreadable = |reason: String| Unhealthy::Unreadable {
        path: path.display().to_string(),
        dir: state_dir.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| unreadable(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))
}

/// `worker status`: the line to print, or why the worker is unhealthy.
pub fn check(state_dir: &Path, max_age: Option<Duration>) -> Result<String, Unhealthy> {
    let status = read(state_dir)?;
    let max_age = max_age.unwrap_or_else(|| default_max_age(&status));
    judge(&status, unix_ms(SystemTime::now()), max_age)
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The writer a session keeps: each change of state is sent to the writing thread.
#[derive(Debug)]
pub struct StatusFile {
    current: WorkerStatus,
    tx: mpsc::Sender<WorkerStatus>,
}

impl StatusFile {
    /// Starts the writing thread for `path`; the first state is "connecting".
    pub fn start(path: PathBuf, coordinator: &str) -> StatusFile {
        let (tx, rx) = mpsc::channel::<WorkerStatus>();
        let spawned = std::thread::Builder::new()
            .name("status-file".into())
            .spawn(move || {
                while let Ok(mut status) = rx.recv() {
                    // Only the newest state matters: skip the ones queued behind it.
                    while let Ok(newer) = rx.try_recv() {
                        status = newer;
                    }
                    if let Err(e) = write_atomically(&path, &status) {
                        warn!(path = %path.display(), error = %e, "cannot write the status file");
                    }
                }
            });
        if let Err(e) = spawned {
            warn!(error = %e, "cannot start the status file writer; `worker status` will fail");
        }
        let now = unix_ms(SystemTime::now());
        let file = StatusFile {
            current: WorkerStatus {
                connected: false,
                coordinator: coordinator.to_string(),
                since_unix_ms: now,
                last_heartbeat_unix_ms: 0,
                heartbeat_ms: 0,
                reason: Some("connecting".into()),
                pid: std::process::id(),
            },
            tx,
        };
        file.publish();
        file
    }

    /// The stream is up.
    pub fn connected(&mut self, heartbeat: Duration) {
        let now = unix_ms(SystemTime::now());
        self.current.connected = true;
        self.current.since_unix_ms = now;
        self.current.heartbeat_ms = heartbeat.as_millis() as u64;
        self.current.reason = None;
        self.publish();
    }

    /// A heartbeat went out on the live stream (`heartbeat`: the interval now in force).
    pub fn heartbeat(&mut self, heartbeat: Duration) {
        self.current.last_heartbeat_unix_ms = unix_ms(SystemTime::now());
        self.current.heartbeat_ms = heartbeat.as_millis() as u64;
        self.publish();
    }

    /// The stream is down (or never came up), for `reason`.
    pub fn disconnected(&mut self, reason: &str) {
        if !self.current.connected && self.current.reason.as_deref() == Some(reason) {
            return; // the same failure again: keep the time it began
        }
        self.current.connected = false;
        self.current.since_unix_ms = unix_ms(SystemTime::now());
        self.current.reason = Some(reason.to_string());
        self.publish();
    }

    fn publish(&self) {
        let _ = self.tx.send(self.current.clone());
    }
}

fn write_atomically(path: &Path, status: &WorkerStatus) -> std::io::Result<()> {
    let partial = path.with_extension("json.partial");
    let text = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(connected: bool, since: u64, beat: u64) -> WorkerStatus {
        WorkerStatus {
            connected,
            coordinator: "http://c:50051".into(),
            since_unix_ms: since,
            last_heartbeat_unix_ms: beat,
            heartbeat_ms: 5_000,
            reason: (!connected).then(|| "connection refused".into()),
            pid: 7,
        }
    }

    #[test]
    fn connected_and_recent_is_healthy() {
        let s = status(true, 1_000, 50_000);
        let line = judge(&s, 60_000, Duration::from_secs(15)).expect("healthy");
        assert!(line.contains("last heartbeat 10 s ago"), "{line}");
    }

    #[test]
    fn a_fresh_connection_counts_as_its_first_heartbeat() {
        let s = status(true, 55_000, 0);
        assert!(judge(&s, 60_000, Duration::from_secs(15)).is_ok());
    }

    #[test]
    fn a_stale_heartbeat_is_silent() {
        let s = status(true, 1_000, 40_000);
        assert_eq!(
            judge(&s, 60_000, Duration::from_secs(15)),
            Err(Unhealthy::Silent {
                coordinator: "http://c:50051".into(),
                seconds: 20,
                allowed: 15
            })
        );
    }

    #[test]
    fn disconnected_is_unhealthy_with_its_reason() {
        let s = status(false, 30_000, 29_000);
        let err = judge(&s, 60_000, Duration::from_secs(15)).unwrap_err();
        assert!(
            err.to_string().contains("for 30 s: connection refused"),
            "{err}"
        );
    }

    #[test]
    fn the_default_allowance_is_three_heartbeats_at_least_15_s() {
        let mut s = status(true, 0, 0);
        assert_eq!(default_max_age(&s), Duration::from_secs(15));
        s.heartbeat_ms = 10_000;
        assert_eq!(default_max_age(&s), Duration::from_secs(30));
    }

    #[test]
    fn the_writer_publishes_each_state_and_the_reader_judges_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let wait_for = |want: &dyn Fn(&WorkerStatus) -> bool| {
            for _ in 0..200 {
                if let Ok(s) = read(dir.path())
                    && want(&s)
                {
                    return s;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            panic!("the status file never reached the wanted state");
        };
        let mut file = StatusFile::start(dir.path().join(FILE_NAME), "http://c:50051");
        let s = wait_for(&|s| s.reason.as_deref() == Some("connecting"));
        assert!(!s.connected);
        assert!(check(dir.path(), None).is_err());

        file.connected(Duration::from_secs(2));
        file.heartbeat(Duration::from_secs(2));
        let s = wait_for(&|s| s.connected && s.last_heartbeat_unix_ms > 0);
        assert_eq!(s.heartbeat_ms, 2_000);
        assert_eq!(s.pid, std::process::id());
        assert!(check(dir.path(), None).is_ok());

        file.disconnected("coordinator closed the stream");
        wait_for(&|s| !s.connected);
        let err = check(dir.path(), None).unwrap_err();
        assert!(err.to_string().contains("coordinator closed the stream"));
    }

    #[test]
    fn a_missing_or_garbled_file_is_unreadable() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            check(dir.path(), None),
            Err(Unhealthy::Unreadable { .. })
        ));
        std::fs::write(dir.path().join(FILE_NAME), "{not json").expect("write");
        assert!(matches!(
            check(dir.path(), None),
            Err(Unhealthy::Unreadable { .. })
        ));
    }
}
