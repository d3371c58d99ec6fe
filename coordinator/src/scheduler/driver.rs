//! The scheduler thread's loop: batches of commands into [`core::Scheduler::step`], and what the
//! core may not do itself — read the monotonic clock — for the step-latency and live-count metrics.
//!
//! The core is driven the same way in tests (`testbed.rs` calls `step` directly); this loop adds
//! only the group commit's batching and the measurements, which cost nothing with metrics off.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::Command;
use super::core::Scheduler;
use super::telemetry;

/// Commands handled before one group commit (flush + acks + assignments), at most.
const GROUP_COMMIT_MAX: usize = 256;
/// How often the live-count gauges are refreshed (Prometheus scrapes every few seconds).
const GAUGES_EVERY: Duration = Duration::from_millis(500);

/// Runs the scheduler until [`Command::Shutdown`] or until every handle is gone: a batch of
/// commands, then placement, then one group commit, per step.
pub(super) fn drive(mut scheduler: Scheduler, mut commands: mpsc::Receiver<Command>) {
    let metrics = benchfarm_telemetry::metrics_on();
    let mut gauges_at: Option<Instant> = None;
    while let Some(first) = commands.blocking_recv() {
        let mut batch = vec![first];
        // Group commit: take whatever else is already waiting, then make it all durable with one
        // flush and only then acknowledge. One fsync per result would make the store, not the
        // workers, the farm's bottleneck.
        while batch.len() < GROUP_COMMIT_MAX
            && let Ok(command) = commands.try_recv()
        {
            batch.push(command);
        }
        let started = metrics.then(Instant::now);
        let go_on = scheduler.step(batch);
        if let Some(started) = started {
            telemetry::step_took(started.elapsed());
            if gauges_at.is_none_or(|at| at.elapsed() >= GAUGES_EVERY) {
                telemetry::gauges(&scheduler.gauges());
                gauges_at = Some(Instant::now());
            }
        }
        if !go_on {
            break;
        }
    }
    if metrics {
        telemetry::gauges(&scheduler.gauges());
    }
    scheduler.flush_at_shutdown();
}
