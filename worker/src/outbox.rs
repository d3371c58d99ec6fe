//! Results and failures the coordinator has not acknowledged yet.
//!
//! Keyed by (job, attempt): the coordinator acknowledges each once it has written it, and everything
//! still here is sent again after a reconnect. Held in memory; keeping it on disk across worker
//! restarts is the seam for the fault-tolerance work (it would be written here, in the state dir).

use std::collections::BTreeMap;

use benchfarm_proto::v1 as pb;
use benchfarm_proto::v1::worker_message::Kind;

#[derive(Debug, Default)]
pub struct Outbox {
    pending: BTreeMap<(String, u32), pb::WorkerMessage>,
}

impl Outbox {
    /// Keeps a result or failure message; other kinds are not kept (they are not acknowledged).
    pub fn insert(&mut self, message: pb::WorkerMessage) {
        let key = match &message.kind {
            Some(Kind::Result(r)) => r.key.clone(),
            Some(Kind::Failed(f)) => f.key.clone(),
            _ => None,
        };
        if let Some(k) = key {
            self.pending.insert((k.job_id, k.attempt), message);
        }
    }

    pub fn acknowledge(&mut self, job_id: &str, attempt: u32) {
        self.pending.remove(&(job_id.to_string(), attempt));
    }

    /// Every unacknowledged message, to send again.
    pub fn pending(&self) -> Vec<pb::WorkerMessage> {
        self.pending.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
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
        outbox.acknowledge("j1", 1);
        assert_eq!(outbox.pending(), vec![failed("j1", 2)]);
        outbox.acknowledge("j1", 2);
        assert!(outbox.is_empty());
    }
}
