//! `serve --transfer-rate`: a token bucket shared by every transfer, so all of them together stay
//! under the limit (the coordinator's uplink is what the limit protects).
//!
//! Pure: the caller passes the time since the pacer was made and sleeps for what [`Pacer::delay`]
//! returns. A chunk may overdraw the bucket; the debt is the wait, so a 1 MiB chunk under a 100 kB/s
//! limit simply waits ten seconds rather than being split.

use std::time::Duration;

/// A token bucket of `rate` bytes per second, holding at most `burst` bytes of credit.
#[derive(Debug, Clone, PartialEq)]
pub struct Pacer {
    rate: f64,
    burst: f64,
    /// Credit in bytes (negative: a debt to wait out).
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Duration,
}

impl Pacer {
    /// A pacer of `rate` bytes per second with a burst of a quarter second of it (at least 64 KiB,
    /// so small rates still move whole chunks), starting full.
    pub fn new(rate_bytes_per_second: u64) -> Pacer {
        let rate = rate_bytes_per_second.max(1) as f64;
        let burst = (rate / 4.0).max(65_536.0);
        Pacer {
            rate,
            burst,
            tokens: burst,
            at: Duration::ZERO,
        }
    }

    /// How long to wait before sending `bytes` at time `now` (measured from the same origin on
    /// every call; a `now` earlier than the last one counts as the last one).
    pub fn delay(&mut self, now: Duration, bytes: u64) -> Duration {
        let now = now.max(self.at);
        let elapsed = (now - self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_full_bucket_sends_at_once_then_paces() {
        let mut p = Pacer::new(1_000_000);
        // The burst (250 kB) goes at once; the next 250 kB waits a quarter second.
        assert_eq!(p.delay(Duration::ZERO, 250_000), Duration::ZERO);
        let wait = p.delay(Duration::ZERO, 250_000);
        assert!((wait.as_secs_f64() - 0.25).abs() < 1e-9, "{wait:?}");
        // After waiting it out, the debt is paid and nothing more is owed.
        assert_eq!(p.delay(Duration::from_millis(250), 0), Duration::ZERO);
    }

    proptest! {
        /// However the chunks come, sending each after its delay never beats the rate by more than
        /// the burst: bytes sent by time t <= burst + rate * t.
        #[test]
        fn the_rate_is_never_exceeded(
            rate in 1_000u64..100_000_000,
            chunks in proptest::collection::vec((1u64..4_000_000, 0u64..2_000), 1..60),
        ) {
            let mut p = Pacer::new(rate);
            let burst = (rate as f64 / 4.0).max(65_536.0);
            let mut now = Duration::ZERO;
            let mut sent = 0f64;
            for (bytes, idle_ms) in chunks {
                now += Duration::from_millis(idle_ms);
                now += p.delay(now, bytes);
                sent += bytes as f64;
                // Credit never exceeds the burst and each send waits until it is paid for, so
                // the bytes out by `now` (this chunk's included) are within burst + rate * now.
                prop_assert!(sent <= burst + rate as f64 * now.as_secs_f64() + 1.0,
                    "sent {sent} by {now:?} at {rate} B/s");
            }
        }
    }
}
