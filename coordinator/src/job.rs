//! The life of a job as a pure state machine: `transition(state, event) -> Result<state>`.
//!
//! Every change of a job's state in the scheduler goes through [`transition`], so the rules (a result
//! only counts for the attempt that is current, a lost or failed attempt is retried until
//! `max_attempts`, a finished job never changes again) live in one match that is tested without a
//! network or a store.

use serde::{Deserialize, Serialize};

/// Where a job is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum JobState {
    /// Waiting for a worker. `attempts` were made so far.
    Queued,
    /// Sent to a worker, not yet acknowledged as started.
    Assigned { worker_id: String, attempt: u32 },
    /// The worker said it started.
    Running { worker_id: String, attempt: u32 },
    /// Graded result stored for `attempt`.
    Done { attempt: u32 },
    /// Every attempt failed; the reasons are in the job's attempts.
    Failed,
    /// The run was cancelled before the job finished.
    Cancelled,
}

impl JobState {
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Assigned { .. } => "assigned",
            JobState::Running { .. } => "running",
            JobState::Done { .. } => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Done, failed or cancelled: nothing will change it again.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobState::Done { .. } | JobState::Failed | JobState::Cancelled
        )
    }

    /// The worker and attempt holding the job, when one does.
    pub fn holder(&self) -> Option<(&str, u32)> {
        match self {
            JobState::Assigned { worker_id, attempt }
            | JobState::Running { worker_id, attempt } => Some((worker_id.as_str(), *attempt)),
            _ => None,
        }
    }
}

/// Something that happened to a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEvent {
    /// The scheduler placed attempt `attempt` on `worker_id`.
    Assign { worker_id: String, attempt: u32 },
    /// The worker acknowledged that it started `attempt`.
    Start { attempt: u32 },
    /// A graded result for `attempt` was stored.
    Succeed { attempt: u32 },
    /// `attempt` ended without an answer (engine error, worker lost, timeout).
    /// `attempts_made` counts every attempt so far, this one included.
    Fail {
        attempt: u32,
        attempts_made: u32,
        max_attempts: u32,
    },
    /// The run was cancelled.
    Cancel,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("job is {state}; cannot apply {event}")]
    Invalid { state: &'static str, event: String },
    /// The event is about an attempt that is no longer the job's current one (a late message from a
    /// worker the job was taken from). Not an error for the farm, but nothing changes.
    #[error("attempt {got} is not current (job is {state}, current attempt {current:?})")]
    Stale {
        state: &'static str,
        got: u32,
        current: Option<u32>,
    },
}

/// Applies `event` to `state`. Pure: the caller persists the new state.
pub fn transition(state: &JobState, event: &JobEvent) -> Result<JobState, TransitionError> {
    use JobEvent as E;
    use JobState as S;
    let invalid = || TransitionError::Invalid {
        state: state.name(),
        event: format!("{event:?}"),
    };
    let stale = |got: u32| TransitionError::Stale {
        state: state.name(),
        got,
        current: state.holder().map(|(_, a)| a),
    };
    match (state, event) {
        (S::Queued, E::Assign { worker_id, attempt }) => Ok(S::Assigned {
            worker_id: worker_id.clone(),
            attempt: *attempt,
        }),
        (S::Assigned { worker_id, attempt }, E::Start { attempt: got }) => {
            if got == attempt {
                Ok(S::Running {
                    worker_id: worker_id.clone(),
                    attempt: *attempt,
                })
            } else {
                Err(stale(*got))
            }
        }
        // A start for the running attempt again (re-sent after a reconnect) changes nothing.
        (S::Running { attempt, .. }, E::Start { attempt: got }) if got == attempt => {
            Ok(state.clone())
        }
        (S::Assigned { attempt, .. } | S::Running { attempt, .. }, E::Succeed { attempt: got }) => {
            if got == attempt {
                Ok(S::Done { attempt: *got })
            } else {
                Err(stale(*got))
            }
        }
        // The job was requeued (its worker was thought lost) but the old attempt's answer arrived
        // first: take it, so the work is not done twice.
        (S::Queued, E::Succeed { attempt }) => Ok(S::Done { attempt: *attempt }),
        (
            S::Assigned { attempt, .. } | S::Running { attempt, .. },
            E::Fail {
                attempt: got,
                attempts_made,
                max_attempts,
            },
        ) => {
            if got != attempt {
                Err(stale(*got))
            } else if attempts_made >= max_attempts {
                Ok(S::Failed)
            } else {
                Ok(S::Queued)
            }
        }
        (
            S::Done { .. } | S::Failed | S::Cancelled,
            E::Succeed { attempt } | E::Start { attempt },
        ) => Err(stale(*attempt)),
        (S::Done { .. } | S::Failed | S::Cancelled | S::Queued, E::Fail { attempt, .. }) => {
            Err(stale(*attempt))
        }
        (S::Queued | S::Assigned { .. } | S::Running { .. }, E::Cancel) => Ok(S::Cancelled),
        (S::Done { .. } | S::Failed | S::Cancelled, E::Cancel) => Ok(state.clone()),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assigned(attempt: u32) -> JobState {
        JobState::Assigned {
            worker_id: "w1".into(),
            attempt,
        }
    }

    #[test]
    fn happy_path() {
        let s = transition(
            &JobState::Queued,
            &JobEvent::Assign {
                worker_id: "w1".into(),
                attempt: 1,
            },
        )
        .unwrap();
        assert_eq!(s, assigned(1));
        let s = transition(&s, &JobEvent::Start { attempt: 1 }).unwrap();
        assert_eq!(
            s,
            JobState::Running {
                worker_id: "w1".into(),
                attempt: 1
            }
        );
        let s = transition(&s, &JobEvent::Succeed { attempt: 1 }).unwrap();
        assert_eq!(s, JobState::Done { attempt: 1 });
        assert!(s.is_terminal());
    }

    #[test]
    fn result_without_start_is_taken() {
        // A fast job's result can overtake its start message after a reconnect.
        assert_eq!(
            transition(&assigned(2), &JobEvent::Succeed { attempt: 2 }).unwrap(),
            JobState::Done { attempt: 2 }
        );
    }

    #[test]
    fn failure_requeues_until_max_attempts() {
        let fail = |made| JobEvent::Fail {
            attempt: 1,
            attempts_made: made,
            max_attempts: 3,
        };
        assert_eq!(
            transition(&assigned(1), &fail(1)).unwrap(),
            JobState::Queued
        );
        assert_eq!(
            transition(&assigned(1), &fail(3)).unwrap(),
            JobState::Failed
        );
    }

    #[test]
    fn stale_attempts_change_nothing() {
        let err = transition(&assigned(2), &JobEvent::Succeed { attempt: 1 }).unwrap_err();
        assert!(matches!(
            err,
            TransitionError::Stale {
                got: 1,
                current: Some(2),
                ..
            }
        ));
        let done = JobState::Done { attempt: 2 };
        assert!(matches!(
            transition(&done, &JobEvent::Succeed { attempt: 2 }),
            Err(TransitionError::Stale { .. })
        ));
        assert!(
            transition(
                &done,
                &JobEvent::Fail {
                    attempt: 2,
                    attempts_made: 1,
                    max_attempts: 3
                }
            )
            .is_err()
        );
    }

    #[test]
    fn late_answer_of_requeued_job_completes_it() {
        assert_eq!(
            transition(&JobState::Queued, &JobEvent::Succeed { attempt: 1 }).unwrap(),
            JobState::Done { attempt: 1 }
        );
    }

    #[test]
    fn cancel_is_final_and_idempotent() {
        let s = transition(&assigned(1), &JobEvent::Cancel).unwrap();
        assert_eq!(s, JobState::Cancelled);
        assert_eq!(
            transition(&s, &JobEvent::Cancel).unwrap(),
            JobState::Cancelled
        );
        assert_eq!(
            transition(&JobState::Done { attempt: 1 }, &JobEvent::Cancel).unwrap(),
            JobState::Done { attempt: 1 }
        );
    }

    #[test]
    fn cannot_assign_a_held_job() {
        let err = transition(
            &assigned(1),
            &JobEvent::Assign {
                worker_id: "w2".into(),
                attempt: 2,
            },
        )
        .unwrap_err();
        assert!(matches!(err, TransitionError::Invalid { .. }));
    }
}
