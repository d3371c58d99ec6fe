//! The scheduler's clock, passed in rather than read: the core never calls `Instant::now()` or the
//! wall clock itself, so its tests run under a [`FakeClock`] they move by hand and a lease expiry or
//! a deadline happens at exactly the step the test chooses.
//!
//! One clock serves both uses the core has for time: it is monotonic (leases and deadlines must not
//! jump with NTP) and in Unix milliseconds (attempt records are read by humans and reports). The
//! [`SystemClock`] reads the wall clock once, at start, and adds the monotonic time elapsed since.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use crate::records::UnixMs;

/// A source of "now".
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> UnixMs;
}

/// Monotonic time in Unix milliseconds, anchored to the wall clock at creation.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    start: Instant,
    start_unix_ms: UnixMs,
}

impl SystemClock {
    pub fn new() -> SystemClock {
        SystemClock {
            start: Instant::now(),
            start_unix_ms: crate::records::now_ms(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> UnixMs {
        let elapsed = i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.start_unix_ms.saturating_add(elapsed)
    }
}

/// A clock that moves only when told to; clones share one time.
#[derive(Debug, Clone, Default)]
pub struct FakeClock {
    now: Arc<AtomicI64>,
}

impl FakeClock {
    pub fn at(now_ms: UnixMs) -> FakeClock {
        FakeClock {
            now: Arc::new(AtomicI64::new(now_ms)),
        }
    }

    pub fn advance(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> UnixMs {
        self.now.load(Ordering::SeqCst)
    }
}

/// The clock a scheduler and its connections share.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_starts_at_the_wall_clock_and_never_goes_back() {
        let clock = SystemClock::new();
        let wall = crate::records::now_ms();
        let a = clock.now_ms();
        let b = clock.now_ms();
        assert!((a - wall).abs() < 1_000, "{a} vs {wall}");
        assert!(b >= a);
    }

    #[test]
    fn a_fake_clock_moves_only_when_advanced() {
        let clock = FakeClock::at(1_000);
        let shared = clock.clone();
        assert_eq!(clock.now_ms(), 1_000);
        shared.advance(250);
        assert_eq!(clock.now_ms(), 1_250);
    }
}
