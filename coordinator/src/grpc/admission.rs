//! New TCP connections per peer address: a token bucket per IP, so one host cannot open
//! connections faster than a farm of real workers ever would (each keeps one). Pure: `now` is
//! passed in; `server.rs` applies it to the listener's accepted sockets.

use std::collections::HashMap;
use std::net::IpAddr;

/// Peers remembered at most (the oldest are forgotten first beyond this; each entry is small).
const MAX_PEERS: usize = 65_536;

/// Connections each peer may open: `burst` at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectionRate {
    pub burst: u32,
    pub per_minute: u32,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

/// The buckets of every peer seen.
#[derive(Debug)]
pub struct PeerRate {
    rate: ConnectionRate,
    peers: HashMap<IpAddr, Bucket>,
}

impl PeerRate {
    pub fn new(rate: ConnectionRate) -> PeerRate {
        PeerRate {
            rate,
            peers: HashMap::new(),
        }
    }

    /// Whether a new connection from `ip` at `now_ms` is accepted (and counts it if so).
    /// A `per_minute` of 0 turns the limit off.
    pub fn admit(&mut self, ip: IpAddr, now_ms: u64) -> bool {
        if self.rate.per_minute == 0 {
            return true;
        }
        if self.peers.len() >= MAX_PEERS && !self.peers.contains_key(&ip) {
            // Forget the peers whose buckets are full again: they carry no state worth keeping.
            let full = f64::from(self.rate.burst);
            let per_ms = f64::from(self.rate.per_minute) / 60_000.0;
            self.peers
                .retain(|_, b| b.tokens + (now_ms.saturating_sub(b.at_ms) as f64) * per_ms < full);
        }
        let burst = f64::from(self.rate.burst.max(1));
        let per_ms = f64::from(self.rate.per_minute) / 60_000.0;
        let bucket = self.peers.entry(ip).or_insert(Bucket {
            tokens: burst,
            at_ms: now_ms,
        });
        let elapsed = now_ms.saturating_sub(bucket.at_ms) as f64;
        bucket.tokens = (bucket.tokens + elapsed * per_ms).min(burst);
        bucket.at_ms = now_ms;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_refill_rate() {
        let mut rate = PeerRate::new(ConnectionRate {
            burst: 3,
            per_minute: 60,
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..3).all(|_| rate.admit(ip, 0)));
        assert!(!rate.admit(ip, 0));
        assert!(!rate.admit(ip, 500));
        assert!(rate.admit(ip, 1_000), "one per second refills");
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(rate.admit(other, 1_000), "peers are counted apart");
    }

    #[test]
    fn zero_per_minute_is_no_limit() {
        let mut rate = PeerRate::new(ConnectionRate {
            burst: 0,
            per_minute: 0,
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!((0..10_000).all(|_| rate.admit(ip, 0)));
    }
}
