//! The session's fetching half: a job whose GGUF model is in neither the `--models` directory nor
//! the cache is held here while [`crate::cache`] fetches (or verifies) it off the session's loop,
//! then handed to a slot, failed with the fetch's reason, or given back when the worker began to
//! drain meanwhile. Kept apart from `mod.rs`, which is the connection and its messages.

use std::sync::atomic::Ordering;

use benchfarm_proto::v1 as pb;
use tokio::sync::mpsc;
use tracing::{Instrument as _, warn};

use super::{Session, Stop, job_failed, send};
use crate::cache::{Lease, ModelCache};
use crate::runner::Job;

impl Session {
    /// Starts fetching `job`'s model when this worker must (see [`Session::to_fetch`]) and keeps
    /// the job until the fetch ends ([`Session::on_fetched`]); gives the job back when there is
    /// nothing to fetch.
    pub(super) fn fetch_first(&mut self, assignment: &pb::JobAssignment, job: Job) -> Option<Job> {
        let Some((cache, model)) = self.to_fetch(assignment) else {
            return Some(job);
        };
        let k = job.key.clone();
        self.fetching.insert((k.job_id.clone(), k.attempt), job);
        let source = crate::cache::Source {
            url: self.url.clone(),
            credentials: self.credentials.clone(),
        };
        let done = self.fetched_tx.clone();
        let span =
            crate::telemetry::fetch_span(&assignment.trace_parent, &model.name, model.size_bytes);
        tokio::spawn(
            async move {
                let outcome = cache.acquire(&model, &source).await;
                let _ = done.send((k, outcome)).await;
            }
            .instrument(span),
        );
        None
    }

    /// The cache and model to fetch for `assignment`, when its GGUF model is not in the `--models`
    /// directory (a worker without a cache runs what it has, as before).
    pub(super) fn to_fetch(
        &self,
        assignment: &pb::JobAssignment,
    ) -> Option<(ModelCache, pb::ModelRef)> {
        let cache = self.cache.as_ref()?;
        let model = assignment.model.as_ref()?;
        let gguf = matches!(model.source, Some(pb::model_ref::Source::Gguf(_)));
        (gguf && !self.local.contains(&model.sha256.to_ascii_lowercase()))
            .then(|| (cache.clone(), model.clone()))
    }

    /// A fetch ended: the job goes to a slot, or fails with the fetch's reason, or (cancelled or
    /// draining meanwhile) ends as it would have in a slot's queue. The coordinator hears the new
    /// cache contents at once.
    pub(super) async fn on_fetched(
        &mut self,
        k: pb::JobKey,
        outcome: Result<Lease, String>,
        tx: &mpsc::Sender<pb::WorkerMessage>,
        stop: Stop,
    ) {
        let id = (k.job_id.clone(), k.attempt);
        let Some(mut job) = self.fetching.remove(&id) else {
            return;
        };
        let cancelled = self
            .running
            .get(&id)
            .filter(|r| r.cancel.load(Ordering::Relaxed))
            .map(|r| {
                r.reason
                    .lock()
                    .ok()
                    .and_then(|g| g.clone())
                    .unwrap_or_else(|| "cancelled".into())
            });
        let failed = match (outcome, cancelled) {
            (Err(reason), _) => Some((reason, false)),
            (Ok(_), Some(reason)) => Some((reason, false)),
            (Ok(_), None) if stop != Stop::Run => Some((
                "worker is draining; the job had not started".to_string(),
                true,
            )),
            (Ok(lease), None) => {
                job.cached = Some(lease);
                match self.runner.submit(job) {
                    Ok(()) => None,
                    Err(reason) => Some((reason, false)),
                }
            }
        };
        if let Some((reason, not_started)) = failed {
            self.running.remove(&id);
            if !not_started {
                warn!(job = %k.job_id, attempt = k.attempt, reason = %reason, "job failed before it started");
                crate::telemetry::job_ended("failed");
            }
            self.finish(
                pb::WorkerMessage {
                    kind: Some(job_failed(k, reason, not_started)),
                },
                tx,
            )
            .await;
        }
        let beat = self.heartbeat(stop != Stop::Run);
        send(tx, beat).await;
    }
}
