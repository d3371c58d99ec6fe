//! Results and failures the coordinator has not acknowledged yet.
//!
//! Keyed by (job, attempt): the coordinator acknowledges each once it has written it, and everything
//! still here is sent again after a reconnect (and every few heartbeats on a live connection). With
//! a path ([`Outbox::open`], `STATE/outbox.log`) the outbox is also kept on disk as an append-only
//! log — one line per message kept and one per acknowledgement, each made durable (`fdatasync`) —
//! compacted (rewritten, then renamed over) once acknowledged lines outnumber the live ones. So an
//! insert costs one appended line, not a rewrite of the whole file, and a result finished just
//! before a crash or restart is sent by the next worker process instead of lost.
//!
//! The file is written by a thread of its own: the worker's connection runs on the async runtime,
//! and a blocking `fsync` there would stall heartbeats. Dropping the outbox waits for that thread,
//! so every line queued is on disk once the outbox is gone.
//!
//! On disk each message is its protobuf encoding in hex: the wire types have no serde, and the
//! protobuf encoding is the one the coordinator reads anyway. A torn last line (a crash mid-write)
//! is skipped; a file that cannot be read at all is set aside (`*.corrupt`), never trusted. The
//! previous format (`outbox.json`, rewritten whole on every change) is read once and migrated.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use benchfarm_proto::v1 as pb;
use benchfarm_proto::v1::worker_message::Kind;
use prost::Message;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

const LOG_VERSION: u32 = 2;
const LEGACY_VERSION: u32 = 1;

#[derive(Debug, Default)]
pub struct Outbox {
    pending: BTreeMap<(String, u32), pb::WorkerMessage>,
    /// The log's writer; `None`: memory only.
    writer: Option<Writer>,
    /// Lines in the log now (header excluded), to decide when to compact.
    lines: usize,
}

/// One line of the log.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Line {
    Header {
        version: u32,
    },
    /// A message kept: a `WorkerMessage`, protobuf-encoded, in hex.
    Put {
        job_id: String,
        attempt: u32,
        message: String,
    },
    Ack {
        job_id: String,
        attempt: u32,
    },
}

/// The format before the log: the whole outbox as one JSON document.
#[derive(Debug, Deserialize)]
struct LegacyFile {
    version: u32,
    messages: Vec<LegacyMessage>,
}

#[derive(Debug, Deserialize)]
struct LegacyMessage {
    job_id: String,
    attempt: u32,
    message: String,
}

impl Outbox {
    /// An outbox kept at `path`, holding whatever a previous worker process left there (or in the
    /// legacy `outbox.json` beside it).
    pub fn open(path: PathBuf) -> Outbox {
        let mut pending = BTreeMap::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => match replay(&text) {
                Ok(replayed) => pending = replayed,
                Err(reason) => set_aside(&path, &reason),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot read outbox file; starting empty")
            }
        }
        let legacy = path.with_file_name("outbox.json");
        if legacy != path
            && let Ok(text) = std::fs::read_to_string(&legacy)
        {
            match decode_legacy(&text) {
                Ok(old) => pending.extend(old),
                Err(reason) => set_aside(&legacy, &reason),
            }
            let _ = std::fs::rename(&legacy, legacy.with_extension("json.migrated"));
        }
        if !pending.is_empty() {
            info!(path = %path.display(), messages = pending.len(), "unacknowledged results loaded; will re-send");
        }
        let mut outbox = Outbox {
            pending,
            writer: Some(Writer::start(path)),
            lines: 0,
        };
        outbox.compact();
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
            self.append(&Line::Put {
                job_id: k.job_id.clone(),
                attempt: k.attempt,
                message: hex(&message.encode_to_vec()),
            });
            self.pending.insert((k.job_id, k.attempt), message);
        }
    }

    pub fn acknowledge(&mut self, job_id: &str, attempt: u32) {
        if self
            .pending
            .remove(&(job_id.to_string(), attempt))
            .is_some()
        {
            self.append(&Line::Ack {
                job_id: job_id.to_string(),
                attempt,
            });
            if self.lines > 2 * self.pending.len() + 16 {
                self.compact();
            }
        }
    }

    /// The (job, attempt) of every unacknowledged message, as the hello and heartbeats list them.
    pub fn keys(&self) -> Vec<pb::JobKey> {
        self.pending
            .keys()
            .map(|(job_id, attempt)| pb::JobKey {
                job_id: job_id.clone(),
                attempt: *attempt,
            })
            .collect()
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

    fn append(&mut self, line: &Line) {
        if let Some(writer) = &self.writer {
            writer.send(Op::Append(to_line(line)));
            self.lines += 1;
        }
    }

    /// Rewrites the log with only what is pending.
    fn compact(&mut self) {
        let Some(writer) = &self.writer else { return };
        let mut text = to_line(&Line::Header {
            version: LOG_VERSION,
        });
        for ((job_id, attempt), message) in &self.pending {
            text.push_str(&to_line(&Line::Put {
                job_id: job_id.clone(),
                attempt: *attempt,
                message: hex(&message.encode_to_vec()),
            }));
        }
        writer.send(Op::Rewrite(text));
        self.lines = self.pending.len();
    }
}

impl Drop for Outbox {
    /// A clean exit leaves a compact log: only what is still unacknowledged.
    fn drop(&mut self) {
        if self.lines > self.pending.len() {
            self.compact();
        }
    }
}

fn to_line(line: &Line) -> String {
    // Plain data with string keys: serialising it cannot fail.
    let mut text = serde_json::to_string(line).unwrap_or_default();
    text.push('\n');
    text
}

/// The pending messages a log describes. A torn last line is skipped; any other bad line makes
/// the whole file suspect.
fn replay(text: &str) -> Result<BTreeMap<(String, u32), pb::WorkerMessage>, String> {
    if text.trim_start().starts_with("{\n") || text.trim_start().starts_with("{\"version\"") {
        // The legacy JSON document, at the log's path (an older worker wrote it there).
        return decode_legacy(text);
    }
    let mut pending = BTreeMap::new();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (i, raw) in lines.iter().enumerate() {
        let torn = !raw.ends_with('\n');
        let line: Line = match serde_json::from_str(raw.trim_end()) {
            Ok(line) => line,
            Err(_) if torn && i + 1 == lines.len() => {
                warn!(line = i + 1, "outbox log ends in a torn line; skipped");
                break;
            }
            Err(e) => return Err(format!("line {}: {e}", i + 1)),
        };
        match line {
            Line::Header { version } if version != LOG_VERSION => {
                return Err(format!("line {}: unknown outbox version {version}", i + 1));
            }
            Line::Header { .. } => {}
            Line::Put {
                job_id,
                attempt,
                message,
            } => {
                let bytes = unhex(&message).ok_or(format!("line {}: not hex", i + 1))?;
                let message = pb::WorkerMessage::decode(bytes.as_slice())
                    .map_err(|e| format!("line {}: {e}", i + 1))?;
                pending.insert((job_id, attempt), message);
            }
            Line::Ack { job_id, attempt } => {
                pending.remove(&(job_id, attempt));
            }
        }
    }
    Ok(pending)
}

fn decode_legacy(text: &str) -> Result<BTreeMap<(String, u32), pb::WorkerMessage>, String> {
    let file: LegacyFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if file.version != LEGACY_VERSION {
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

fn set_aside(path: &Path, reason: &str) {
    let aside = path.with_extension(format!(
        "{}.corrupt",
        path.extension().and_then(|e| e.to_str()).unwrap_or("log")
    ));
    warn!(path = %path.display(), reason = %reason, moved_to = %aside.display(), "outbox file unreadable; starting empty");
    let _ = std::fs::rename(path, &aside);
}

enum Op {
    Append(String),
    Rewrite(String),
}

/// The thread that owns the log file.
#[derive(Debug)]
struct Writer {
    tx: Option<std::sync::mpsc::Sender<Op>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(path: PathBuf) -> Writer {
        let (tx, rx) = std::sync::mpsc::channel::<Op>();
        let thread = std::thread::Builder::new()
            .name("outbox".into())
            .spawn(move || {
                for op in rx {
                    let outcome = match op {
                        Op::Append(line) => append_durably(&path, &line),
                        Op::Rewrite(text) => rewrite_durably(&path, &text),
                    };
                    if let Err(e) = outcome {
                        // The messages are still held in memory and sent; only a restart before
                        // they are acknowledged would lose them.
                        warn!(path = %path.display(), error = %e, "cannot write outbox log");
                    }
                }
            })
            .ok();
        Writer {
            tx: Some(tx),
            thread,
        }
    }

    fn send(&self, op: Op) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(op);
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn append_durably(path: &Path, line: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(line.as_bytes())?;
    file.sync_data()
}

fn rewrite_durably(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("log.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
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
                refused: false,
                suite_unknown: false,
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
        let path = dir.path().join("state/outbox.log");
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
        drop(second);
        assert!(Outbox::open(path.clone()).is_empty());
        assert!(!path.with_extension("log.tmp").exists());
    }

    #[test]
    fn an_insert_appends_one_line_and_acks_compact_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.log");
        let mut outbox = Outbox::open(path.clone());
        for i in 0..100 {
            outbox.insert(result(&format!("j{i}"), 1, "x"));
        }
        // Read while it is open: one appended line per insert, nothing rewritten. The writer is
        // its own thread: wait for it (a loaded machine may take longer than a moment).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut text = String::new();
        while std::time::Instant::now() < deadline {
            // Until the writer thread's first write the file may not exist yet.
            text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.lines().count() >= 101 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert_eq!(
            text.lines().count(),
            101,
            "a header and one line per insert"
        );
        drop(outbox);
        let mut outbox = Outbox::open(path.clone());
        for i in 0..100 {
            outbox.acknowledge(&format!("j{i}"), 1);
        }
        drop(outbox);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.lines().count() < 30,
            "not compacted: {} lines",
            text.lines().count()
        );
        assert!(Outbox::open(path).is_empty());
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.log");
        let mut outbox = Outbox::open(path.clone());
        outbox.insert(result("j1", 1, "kept"));
        drop(outbox);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(br#"{"op":"put","job_id":"j2","att"#)
            .unwrap();
        drop(file);
        assert_eq!(Outbox::open(path).pending(), vec![result("j1", 1, "kept")]);
    }

    #[test]
    fn a_legacy_outbox_json_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join("outbox.json");
        let message = result("j1", 1, "old");
        std::fs::write(
            &legacy,
            format!(
                r#"{{"version": 1, "messages": [{{"job_id": "j1", "attempt": 1, "message": "{}"}}]}}"#,
                hex(&message.encode_to_vec())
            ),
        )
        .unwrap();
        let outbox = Outbox::open(dir.path().join("outbox.log"));
        assert_eq!(outbox.pending(), vec![message]);
        assert!(!legacy.exists());
    }

    #[test]
    fn a_corrupt_file_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.log");
        std::fs::write(
            &path,
            "not json\n{\"op\":\"ack\",\"job_id\":\"j\",\"attempt\":1}\n",
        )
        .unwrap();
        let mut outbox = Outbox::open(path.clone());
        assert!(outbox.is_empty());
        assert!(path.with_extension("log.corrupt").exists());
        outbox.insert(failed("j", 1));
        drop(outbox);
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
