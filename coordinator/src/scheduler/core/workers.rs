//! The scheduler's worker handling: joins and reconnects, leaves, what a connected worker says,
//! quarantine, drain and clear.
//!
//! Two rules keep a worker's answers from being thrown away: a reconnecting worker's hello lists
//! both the jobs it still runs and the results it has not had acknowledged, and neither kind of
//! attempt is marked lost at the join (the results are re-sent right behind the hello); and each
//! heartbeat is reconciled against the jobs the worker is recorded to hold, so a running job whose
//! answer vanished on a live connection is taken back instead of staying "running" forever.

use std::collections::HashSet;

use tracing::{info, warn};

use super::super::{
    JobKey, Joining, Liveness, Outbox, SchedulerError, ToWorker, Welcome, WorkerEvent,
    WorkerSummary,
};
use super::{HEARTBEAT_MAX_MS, Scheduler, Worker};
use crate::job::JobState;
use crate::records::AttemptEnd;

impl Scheduler {
    pub(super) fn join(
        &mut self,
        joining: Joining,
        conn: u64,
        outbox: Outbox,
        seen: Liveness,
    ) -> Result<Welcome, SchedulerError> {
        let Joining {
            mut record,
            running,
            unacknowledged,
            cache,
        } = joining;
        let id = record.id.clone();
        // A claim beyond the slot limit is cut to it, not trusted.
        record.slots = record.slots.clamp(1, self.config.limits.worker_slots);
        // Its counts carry over: from memory when it was seen in this process's life (the
        // store's copy is written at each commit and may lag this step), else from the store. An
        // undecodable stored record of this worker must not keep it out: it joins afresh.
        let counts = match self.workers.get(&id) {
            Some(w) => Ok(Some((w.record.jobs_done, w.record.jobs_failed))),
            None => self
                .store
                .worker(&id)
                .map(|old| old.map(|old| (old.jobs_done, old.jobs_failed))),
        };
        match counts {
            Ok(Some((jobs_done, jobs_failed))) => {
                record.jobs_done = jobs_done;
                record.jobs_failed = jobs_failed;
            }
            Ok(None) => {}
            Err(err) => {
                warn!(worker = %id, error = %err, "stored worker record unreadable; replacing it")
            }
        }
        record.last_seen_unix_ms = self.now();
        self.store.put_worker(&record)?;
        self.observer.worker_joined(&record.hardware_class);
        info!(worker = %id, name = %record.name, models = record.models.len(), slots = record.slots,
              threads = record.threads, class = %record.hardware_class, "worker joined");
        // A reconnect keeps what was measured and loaded; it lifts a quarantine (the operator may
        // have fixed the machine) and a drain (the worker came back on purpose).
        let previous = self.workers.remove(&id);
        let mut worker = Worker::new(record, Some((conn, outbox)), seen);
        worker.cache = cache;
        if let Some(previous) = previous {
            worker.loaded = previous.loaded;
            worker.speed = previous.speed;
            worker.load_seconds = previous.load_seconds;
        }
        // Jobs it still runs, and attempts whose answers it re-sends next, stay its own.
        let keep: HashSet<(String, u32)> = running.into_iter().chain(unacknowledged).collect();
        worker.reported = keep.clone();
        self.workers.insert(id.clone(), worker);
        for (job_id, attempt) in self.held_by(&id) {
            if !keep.contains(&(job_id.clone(), attempt)) {
                self.end_attempt(
                    &job_id,
                    attempt,
                    AttemptEnd::Lost("worker restarted".into()),
                )?;
            }
        }
        let lease_ms = u32::try_from(self.config.lease.as_millis()).unwrap_or(u32::MAX);
        Ok(Welcome {
            lease_ms,
            // Half the lease, so one lost heartbeat does not lose the worker; at most every 5 s, so
            // the coordinator's view of what a worker holds (and `coordinator workers`) stays fresh
            // with a long lease.
            heartbeat_ms: (lease_ms / 2).min(HEARTBEAT_MAX_MS),
        })
    }

    pub(super) fn leave(
        &mut self,
        worker_id: &str,
        conn: u64,
        reason: &str,
    ) -> Result<(), SchedulerError> {
        let now = self.now();
        let Some(worker) = self.workers.get_mut(worker_id) else {
            return Ok(());
        };
        // A stream that closes after the worker reconnected on a new one is old news.
        if worker.conn.as_ref().map(|(c, _)| *c) != Some(conn) {
            return Ok(());
        }
        worker.conn = None;
        worker.disconnected_ms = Some(now);
        info!(worker = %worker_id, reason, "worker left");
        for (job_id, attempt) in self.held_by(worker_id) {
            self.end_attempt(
                &job_id,
                attempt,
                AttemptEnd::Lost(format!("worker disconnected: {reason}")),
            )?;
        }
        Ok(())
    }

    pub(super) fn worker_event(
        &mut self,
        worker_id: &str,
        conn: u64,
        event: WorkerEvent,
    ) -> Result<(), SchedulerError> {
        let Some(worker) = self.workers.get_mut(worker_id) else {
            warn!(worker = %worker_id, "message from an unknown worker ignored");
            return Ok(());
        };
        if worker.conn.as_ref().map(|(c, _)| *c) != Some(conn) {
            return Ok(());
        }
        match event {
            WorkerEvent::Heartbeat {
                draining,
                running,
                unacknowledged,
                cache,
                ram_available_bytes,
            } => {
                // Placement checks memory against the latest figure, not the hello's: a worker
                // whose machine filled up (or freed) since it joined is placed as it is now.
                if let Some(ram) = ram_available_bytes {
                    let hw = &mut worker.record.hardware;
                    hw.ram_available_bytes = ram.min(hw.ram_total_bytes);
                }
                if draining && !worker.draining {
                    info!(worker = %worker_id, "worker draining");
                }
                worker.draining = draining;
                worker.reported = running.into_iter().collect();
                if let Some(cache) = cache {
                    worker.cache = cache;
                }
                // A model it now lists, or whose job it now holds (its pinned bytes count the
                // fetch), is no longer only expected.
                let (cached, reported) = (&worker.cache.models, &worker.reported);
                worker.incoming.retain(|sha, (_, job)| {
                    !cached.iter().any(|m| &m.sha256 == sha) && !reported.contains(job)
                });
                let unacknowledged: HashSet<(String, u32)> = unacknowledged.into_iter().collect();
                self.reconcile(worker_id, &unacknowledged)
            }
            WorkerEvent::Started { job_id, attempt } => self.started(&job_id, attempt),
            WorkerEvent::Result(result) => self.result(worker_id, *result),
            WorkerEvent::Failed {
                job_id,
                attempt,
                reason,
                not_started,
                refused,
                suite_unknown,
            } => {
                // The worker lacked the suite its assignment named by digest: it started
                // nothing, and its next assignment carries the text again.
                if suite_unknown && let Some(w) = self.workers.get_mut(worker_id) {
                    w.suites_sent.1.clear();
                }
                let not_started = not_started || suite_unknown;
                // A job given back unstarted is no failure of the worker's at all; a failure
                // re-sent after a reconnect is not counted against the worker twice.
                let end = if not_started {
                    AttemptEnd::Returned(reason)
                } else {
                    let current = self.jobs.get(&job_id).and_then(|j| j.state.holder())
                        == Some((worker_id, attempt));
                    // A refused job is the job's fault (its model asks for test features this
                    // worker does not run), so it does not bring the worker nearer quarantine.
                    if current && !refused {
                        self.note_failure(worker_id);
                    }
                    AttemptEnd::Failed(reason)
                };
                self.end_attempt(&job_id, attempt, end)?;
                // Failures are acknowledged like results, so the worker's outbox can forget them.
                self.acks
                    .push((worker_id.to_string(), JobKey::new(job_id, attempt)));
                Ok(())
            }
        }
    }

    /// A job the worker started is in every later heartbeat, as running or as an unacknowledged
    /// answer, until its answer is acknowledged (the stream is ordered). One that is in neither
    /// was lost on the way — a dropped result, a result whose store write failed and was then
    /// forgotten — and is taken back now rather than left running while heartbeats flow.
    fn reconcile(
        &mut self,
        worker_id: &str,
        unacknowledged: &HashSet<(String, u32)>,
    ) -> Result<(), SchedulerError> {
        let Some(worker) = self.workers.get(worker_id) else {
            return Ok(());
        };
        let vanished: Vec<(String, u32)> = self
            .held_by(worker_id)
            .into_iter()
            .filter(|key| !worker.reported.contains(key) && !unacknowledged.contains(key))
            .filter(|(job_id, _)| {
                matches!(
                    self.jobs.get(job_id).map(|j| &j.state),
                    Some(JobState::Running { .. })
                )
            })
            .collect();
        for (job_id, attempt) in vanished {
            self.end_attempt(
                &job_id,
                attempt,
                AttemptEnd::Lost("the worker no longer holds the job and sent no answer".into()),
            )?;
        }
        Ok(())
    }

    /// Counts a failed attempt against a worker; enough in a row quarantine it (no new jobs until
    /// it reconnects or an operator clears it), so one broken machine cannot burn every job's
    /// attempts.
    pub(super) fn note_failure(&mut self, worker_id: &str) {
        let limit = self.config.quarantine_after;
        let Some(w) = self.workers.get_mut(worker_id) else {
            return;
        };
        w.record.jobs_failed += 1;
        self.dirty_workers.insert(worker_id.to_string());
        w.failures_in_a_row += 1;
        if limit > 0 && w.failures_in_a_row >= limit && w.quarantined.is_none() {
            let reason = format!("quarantined: {} failed jobs in a row", w.failures_in_a_row);
            warn!(worker = %worker_id, failures = w.failures_in_a_row, "worker quarantined");
            w.quarantined = Some(reason);
            self.observer.quarantined(&w.record.hardware_class);
        }
    }

    /// The id of the worker named `who` (its id, or its name when that is unique).
    fn resolve_worker(&self, who: &str) -> Result<String, SchedulerError> {
        if self.workers.contains_key(who) {
            return Ok(who.to_string());
        }
        let named: Vec<&String> = self
            .workers
            .iter()
            .filter(|(_, w)| w.record.name == who)
            .map(|(id, _)| id)
            .collect();
        match named.as_slice() {
            [id] => Ok((*id).clone()),
            [] => Err(SchedulerError::NoSuchWorker(who.to_string())),
            _ => Err(SchedulerError::Refused(format!(
                "{} workers are named {who:?}; use the worker id",
                named.len()
            ))),
        }
    }

    /// `workers --drain`: no new jobs; the worker finishes what it runs and leaves.
    pub(super) fn drain(&mut self, who: &str) -> Result<WorkerSummary, SchedulerError> {
        let id = self.resolve_worker(who)?;
        if let Some(w) = self.workers.get_mut(&id) {
            w.draining = true;
        }
        info!(worker = %id, "draining worker");
        self.send(
            &id,
            ToWorker::Drain {
                reason: "drained by an operator".into(),
            },
        );
        self.summary(&id)
    }

    /// `workers --clear`: lifts a quarantine.
    pub(super) fn clear(&mut self, who: &str) -> Result<WorkerSummary, SchedulerError> {
        let id = self.resolve_worker(who)?;
        if let Some(w) = self.workers.get_mut(&id) {
            w.quarantined = None;
            w.failures_in_a_row = 0;
        }
        info!(worker = %id, "worker cleared");
        self.summary(&id)
    }
}
