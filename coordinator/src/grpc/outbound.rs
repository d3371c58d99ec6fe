//! The scheduler's outbound messages ([`crate::scheduler::outbound`]) as wire messages: the one
//! place where what the core says becomes protobuf, on its way to a worker's stream or a watcher.

use benchfarm_proto::v1::{self as pb, CoordinatorMessage, coordinator_message::Kind};

use super::convert::{model_ref, verdict_to_wire};
use crate::scheduler::outbound::{Assignment, JobKey, RunChange, ToWorker, Welcome};

pub fn job_key(key: JobKey) -> pb::JobKey {
    pb::JobKey {
        job_id: key.job_id,
        attempt: key.attempt,
    }
}

/// A message for a worker's stream.
pub fn to_worker(message: ToWorker) -> CoordinatorMessage {
    let kind = match message {
        ToWorker::Assign(a) => Kind::Assign(assignment(*a)),
        ToWorker::Ack(key) => Kind::Ack(pb::ResultAck {
            key: Some(job_key(key)),
        }),
        ToWorker::Cancel { key, reason } => Kind::Cancel(pb::CancelJob {
            key: Some(job_key(key)),
            reason,
        }),
        ToWorker::Drain { reason } => Kind::Drain(pb::Drain { reason }),
    };
    CoordinatorMessage { kind: Some(kind) }
}

fn assignment(a: Assignment) -> pb::JobAssignment {
    pb::JobAssignment {
        key: Some(job_key(a.key)),
        run_id: a.run_id,
        model: Some(model_ref(&a.model)),
        suite_toml: a.suite_toml.unwrap_or_default(),
        suite_sha256: a.suite_sha256,
        suite_name: a.suite_name,
        suite_version: a.suite_version,
        task_id: a.task_id,
        repetition: a.repetition,
        seed: a.seed,
        timeout_ms: a.timeout_ms,
        throughput: a.throughput.map(|t| pb::ThroughputTest {
            n_prompt: t.n_prompt,
            n_gen: t.n_gen,
        }),
        trace_parent: a.trace_parent,
    }
}

/// The welcome, with the limit the gRPC layer owns.
pub fn welcome(w: Welcome, max_message_bytes: u32) -> pb::Welcome {
    pb::Welcome {
        lease_ms: w.lease_ms,
        heartbeat_ms: w.heartbeat_ms,
        coordinator_version: env!("CARGO_PKG_VERSION").to_string(),
        max_message_bytes,
    }
}

/// A run change for a watcher.
pub fn run_event(change: RunChange) -> pb::RunEvent {
    let status = Some(change.status.into());
    match change.job {
        None => pb::RunEvent {
            status,
            ..pb::RunEvent::default()
        },
        Some(job) => pb::RunEvent {
            status,
            job_id: job.job_id,
            job_state: pb::JobState::from(&job.state).into(),
            model: job.model,
            task_id: job.task_id,
            repetition: job.repetition,
            worker: job.worker,
            verdict: job
                .verdict
                .map_or(pb::Verdict::Unspecified, verdict_to_wire)
                .into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobState;
    use crate::records::{ModelKind, RunModel, ThroughputTest};
    use crate::scheduler::RunProgress;
    use crate::scheduler::outbound::JobChange;

    fn model() -> RunModel {
        RunModel {
            name: "m".into(),
            sha256: "ab".repeat(32),
            size_bytes: 10,
            kind: ModelKind::Gguf {
                file_name: "m.gguf".into(),
            },
        }
    }

    #[test]
    fn an_assignment_keeps_every_field_and_a_known_suite_goes_by_digest() {
        let a = Assignment {
            key: JobKey::new("r-0000000001", 2),
            run_id: "r".into(),
            model: model(),
            suite_toml: None,
            suite_sha256: "cd".repeat(32),
            suite_name: "s".into(),
            suite_version: "1".into(),
            task_id: "pp16".into(),
            repetition: 3,
            seed: 7,
            timeout_ms: 9_000,
            throughput: Some(ThroughputTest {
                n_prompt: 16,
                n_gen: 0,
            }),
            trace_parent: "00-x".into(),
        };
        let Some(Kind::Assign(wire)) = to_worker(ToWorker::Assign(Box::new(a))).kind else {
            panic!("not an assignment");
        };
        let key = wire.key.unwrap();
        assert_eq!((key.job_id.as_str(), key.attempt), ("r-0000000001", 2));
        assert_eq!(wire.suite_toml, "");
        assert_eq!(wire.suite_sha256, "cd".repeat(32));
        assert_eq!((wire.repetition, wire.seed, wire.timeout_ms), (3, 7, 9_000));
        assert_eq!(
            wire.throughput.map(|t| (t.n_prompt, t.n_gen)),
            Some((16, 0))
        );
        assert_eq!(wire.model.unwrap().name, "m");
        assert_eq!(wire.trace_parent, "00-x");
    }

    #[test]
    fn a_job_change_carries_its_state_and_verdict_as_wire_enums() {
        let e = run_event(RunChange {
            status: RunProgress {
                run_id: "r".into(),
                ..RunProgress::default()
            },
            job: Some(JobChange {
                job_id: "r-1".into(),
                state: JobState::Done { attempt: 1 },
                model: "m".into(),
                task_id: "t".into(),
                repetition: 0,
                worker: "w".into(),
                verdict: Some(benchfarm_domain::Verdict::Partial),
            }),
        });
        assert_eq!(e.job_state(), pb::JobState::Done);
        assert_eq!(e.verdict(), pb::Verdict::Partial);
        assert_eq!(e.status.unwrap().state(), pb::RunState::Running);
        let snapshot = run_event(RunChange {
            status: RunProgress::default(),
            job: None,
        });
        assert_eq!(
            (snapshot.job_id.as_str(), snapshot.job_state()),
            ("", pb::JobState::Unspecified)
        );
    }
}
