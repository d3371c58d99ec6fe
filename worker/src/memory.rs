//! The RAM a job could use now, for each heartbeat: the machine's available memory (sampled from
//! `/proc/meminfo` on a thread of its own every [`SAMPLE_EVERY`], so the async heartbeat never
//! reads a file) plus the memory of the models this worker's engines hold — a job of another model
//! replaces them, and a job of the same model needs nothing more — capped by `--max-ram`.
//!
//! Without it the coordinator would place by the RAM of the worker's hello for as long as the
//! worker stays connected, however full the machine has become since.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often the available memory is read.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// The latest available-memory sample, shared with the sampling thread.
#[derive(Debug, Clone)]
pub struct MemoryGauge {
    available: Arc<AtomicU64>,
    cap: Option<u64>,
}

impl MemoryGauge {
    /// Starts sampling, beginning from `initial` (the hello's figure); `cap` is `--max-ram`. The
    /// thread ends when the last gauge is dropped.
    pub fn start(initial: u64, cap: Option<u64>) -> MemoryGauge {
        let available = Arc::new(AtomicU64::new(initial));
        let weak = Arc::downgrade(&available);
        let spawned = std::thread::Builder::new()
            .name("memory-gauge".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(SAMPLE_EVERY);
                    let Some(available) = weak.upgrade() else {
                        return;
                    };
                    if let Ok(text) = std::fs::read_to_string("/proc/meminfo") {
                        let (_, now) = benchfarm_engine::hardware::parse_meminfo(&text);
                        available.store(now, Ordering::Relaxed);
                    }
                }
            });
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "memory gauge not started; heartbeats report the hello's RAM");
        }
        MemoryGauge { available, cap }
    }

    /// A gauge that never samples: always `bytes` (tests).
    pub fn fixed(bytes: u64) -> MemoryGauge {
        MemoryGauge {
            available: Arc::new(AtomicU64::new(bytes)),
            cap: None,
        }
    }

    /// What a heartbeat reports, with `held` bytes of models loaded by this worker's engines.
    pub fn for_a_job(&self, held: u64) -> u64 {
        ram_for_a_job(self.available.load(Ordering::Relaxed), held, self.cap)
    }
}

/// Free memory plus what the engines hold, capped; at least 1 so that 0 keeps meaning "not
/// reported" on the wire.
pub fn ram_for_a_job(available: u64, held: u64, cap: Option<u64>) -> u64 {
    let sum = available.saturating_add(held);
    cap.map_or(sum, |c| sum.min(c)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_models_count_as_available_and_the_cap_applies() {
        assert_eq!(ram_for_a_job(1_000, 500, None), 1_500);
        assert_eq!(ram_for_a_job(1_000, 500, Some(1_200)), 1_200);
        assert_eq!(ram_for_a_job(u64::MAX, 5, None), u64::MAX);
        assert_eq!(ram_for_a_job(0, 0, None), 1, "0 means not reported");
        assert_eq!(MemoryGauge::fixed(7).for_a_job(3), 10);
    }

    #[test]
    fn the_gauge_samples_this_machine() {
        let gauge = MemoryGauge::start(0, None);
        std::thread::sleep(SAMPLE_EVERY + Duration::from_millis(500));
        assert!(gauge.for_a_job(0) > 1, "no sample taken");
    }
}
