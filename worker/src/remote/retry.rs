//! When to try a remote request again, and how long to wait first.
//!
//! Retried: 429 (rate limited), 5xx (the endpoint's trouble), and requests that got no answer
//! (connection refused or reset, timed out, a stream cut short). Not retried: other 4xx (a bad
//! key or request stays bad) and 3xx (redirects are not followed: the key must not travel to
//! another URL). The wait honours `Retry-After` (seconds or an HTTP date) up to
//! [`MAX_RETRY_AFTER`]; without one it backs off exponentially from one second.
//!
//! Pure: the clock (for an HTTP-date `Retry-After`) is passed in.

use std::time::{Duration, SystemTime};

/// The longest `Retry-After` honoured; a longer one is waited this long (the job has a deadline).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Backoff without `Retry-After`: 1 s, 2 s, 4 s, ... up to this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Whether an HTTP status is worth another try.
pub fn retryable_status(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

/// A `Retry-After` header's wait: delta-seconds, or an HTTP date relative to `now`.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// How long to wait before retry number `retry` (0 for the first), given the server's
/// `Retry-After` if it sent one.
pub fn wait_before(retry: u32, retry_after: Option<Duration>) -> Duration {
    match retry_after {
        Some(d) => d.min(MAX_RETRY_AFTER),
        None => Duration::from_secs(1u64 << retry.min(5)).min(MAX_BACKOFF),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        for s in [429, 500, 502, 503, 599] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [200, 301, 400, 401, 403, 404, 422] {
            assert!(!retryable_status(s), "{s}");
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        // 2015-10-21 07:28:00 GMT is 1445412480; ten seconds later:
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn backoff_doubles_and_retry_after_wins_up_to_its_cap() {
        let waits: Vec<u64> = (0..7).map(|r| wait_before(r, None).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(
            wait_before(3, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(
            wait_before(0, Some(Duration::from_secs(3600))),
            MAX_RETRY_AFTER
        );
    }
}
