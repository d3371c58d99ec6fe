//! Results and failures the coordinator has not acknowledged yet.
//!
//! Keyed by (job, attempt): the coordinator acknowledges each once it has written it, and everything
//! still here is sent again after a reconnect. With a path ([`Outbox::open`], `STATE/outbox.json`)
//! the outbox is also kept on disk, rewritten (write, then rename) on every change, so a result
//! finished just before a crash or restart is sent by the next worker process instead of lost.
//!
//! On disk each message is its protobuf encoding in hex: the wire types have no serde, and the
//! protobuf encoding is the one the coordinator reads anyway.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use benchfarm_proto::v1 as pb;
use benchfarm_proto::v1::worker_message::Kind;
use prost::Message;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

const FILE_VERSION: u32 = 1;

#[derive(Debug, Default)]
pub struct Outbox {
    pending: BTreeMap<(String, u32), pb::WorkerMessage>,
    /// Where the outbox is kept; `None`: memory only.
    path: Option<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
struct OutboxFile {
    version: u32,
    messages: Vec<StoredMessage>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredMessage {
    job_id: String,
    attempt: u32,
    /// A `WorkerMessage`, protobuf-encoded, in hex.
    message: String,
}

impl Outbox {
    /// An outbox kept at `path`, holding whatever a previous worker process left there. An
    /// unreadable file is set aside (renamed `*.corrupt`) rather than trusted or silently lost.
    pub fn open(path: PathBuf) -> Outbox {
        let mut outbox = Outbox {
            pending: BTreeMap::new(),
            path: Some(path.clone()),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => match decode(&text) {
                Ok(pending) => {
                    if !pending.is_empty() {
                        info!(path = %path.display(), messages = pending.len(), "unacknowledged results loaded; will re-send");
                    }
                    outbox.pending = pending;
                }
                Err(reason) => {
                    let aside = path.with_extension("json.corrupt");
                    warn!(path = %path.display(), reason = %reason, moved_to = %aside.display(), "outbox file unreadable; starting empty");
                    let _ = std::fs::rename(&path, &aside);
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot read outbox file; starting empty")
            }
        }
        outbox
    }

    /// Keeps a result or failure message; other kinds are not kept (they are not acknowledged).
    pub fn insert(&mut self, message: pb::WorkerMessage) {
        let key = match &message.kind {
            Some(Kind::Result(r)) => r.key.clone(),
            Some(Kind::Failed(f)) => f.key.clone(),
            _ => None,
        };
        if let Some(k) = key {
            self.pending.insert((k.job_id, k.attempt), message);
            self.save();
        }
    }

    pub fn acknowledge(&mut self, job_id: &str, attempt: u32) {
        if self
            .pending
            .remove(&(job_id.to_string(), attempt))
            .is_some()
        {
            self.save();
        }
    }

    /// Every unacknowledged message, to send again.
    pub fn pending(&self) -> Vec<pb::WorkerMessage> {
        self.pending.values().cloned().collect()
    }

    /// How many unacknowledged results (not failures) there are. A drain waits for these only:
    /// the coordinator acknowledges results, and a failure it never acknowledges must not keep a
    /// draining worker forever.
    pub fn results(&self) -> usize {
        self.pending
            .values()
            .filter(|m| matches!(m.kind, Some(Kind::Result(_))))
            .count()
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Writes the file (when there is one). A failure is logged, not returned: the messages are
    /// still held in memory and sent; only a restart before they are acknowledged would lose them.
    fn save(&self) {
        let Some(path) = &self.path else { return };
        if let Err(e) = write_atomically(path, &encode(&self.pending)) {
            warn!(path = %path.display(), error = %e, "cannot write outbox file");
        }
    }
}

fn encode(pending: &BTreeMap<(String, u32), pb::WorkerMessage>) -> String {
    let file = OutboxFile {
        version: FILE_VERSION,
        messages: pending
            .iter()
            .map(|((job_id, attempt), m)| StoredMessage {
                job_id: job_id.clone(),
                attempt: *attempt,
                message: hex(&m.encode_to_vec()),
            })
            .collect(),
    };
    // Plain data with string keys: serialising it cannot fail.
    serde_json::to_string_pretty(&file).unwrap_or_default()
}

fn decode(text: &str) -> Result<BTreeMap<(String, u32), pb::WorkerMessage>, String> {
    let file: OutboxFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if file.version != FILE_VERSION {
        return Err(format!("unknown outbox version {}", file.version));
    }
    file.messages
        .into_iter()
        .map(|s| {
            let bytes = unhex(&s.message).ok_or("a message is not hex")?;
            let message = pb::WorkerMessage::decode(bytes.as_slice()).map_err(|e| e.to_string())?;
            Ok(((s.job_id, s.attempt), message))
        })
        .collect()
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(job: &str, attempt: u32) -> pb::WorkerMessage {
        pb::WorkerMessage {
            kind: Some(Kind::Failed(pb::JobFailed {
                key: Some(pb::JobKey {
                    job_id: job.into(),
                    attempt,
                }),
                reason: "x".into(),
                not_started: false,
            })),
        }
    }

    fn result(job: &str, attempt: u32, answer: &str) -> pb::WorkerMessage {
        pb::WorkerMessage {
            kind: Some(Kind::Result(pb::JobResult {
                key: Some(pb::JobKey {
                    job_id: job.into(),
                    attempt,
                }),
                answer: answer.into(),
                ..pb::JobResult::default()
            })),
        }
    }

    #[test]
    fn keeps_until_acknowledged_per_attempt() {
        let mut outbox = Outbox::default();
        outbox.insert(failed("j1", 1));
        outbox.insert(failed("j1", 2));
        outbox.insert(failed("j1", 2)); // re-inserted, still one entry
        outbox.insert(pb::WorkerMessage {
            kind: Some(Kind::Heartbeat(pb::Heartbeat::default())),
        });
        assert_eq!(outbox.len(), 2);
        assert_eq!(outbox.results(), 0);
        outbox.acknowledge("j1", 1);
        assert_eq!(outbox.pending(), vec![failed("j1", 2)]);
        outbox.acknowledge("j1", 2);
        assert!(outbox.is_empty());
    }

    #[test]
    fn survives_a_restart_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/outbox.json");
        let mut first = Outbox::open(path.clone());
        assert!(first.is_empty());
        first.insert(result("j1", 1, "héllo"));
        first.insert(failed("j2", 3));
        first.insert(result("j3", 1, "gone"));
        first.acknowledge("j3", 1);
        drop(first);

        let mut second = Outbox::open(path.clone());
        assert_eq!(
            second.pending(),
            vec![result("j1", 1, "héllo"), failed("j2", 3)]
        );
        assert_eq!(second.results(), 1);
        second.acknowledge("j1", 1);
        second.acknowledge("j2", 3);
        assert!(Outbox::open(path.clone()).is_empty());
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn a_corrupt_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.json");
        std::fs::write(&path, "{ not json").unwrap();
        let mut outbox = Outbox::open(path.clone());
        assert!(outbox.is_empty());
        assert!(path.with_extension("json.corrupt").exists());
        outbox.insert(failed("j", 1));
        assert_eq!(Outbox::open(path).len(), 1);
    }

    #[test]
    fn hex_round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
