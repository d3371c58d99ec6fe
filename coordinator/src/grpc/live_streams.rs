//! The worker streams open right now: who opened them (token, peer address) and the means to end
//! each one from outside — when a token is revoked, or when a per-worker token's new stream replaces
//! the old one.
//!
//! The rules, in [`LiveStreams::admit`]: at most `max_per_peer` streams from one IP address; with
//! the shared join token (identity = token + worker id) a second live stream for a worker id is
//! refused, so a `Hello` that reuses a real worker's id cannot end that worker's jobs; a per-worker
//! token proves who is speaking, so its new stream replaces the old one, explicitly.

use std::collections::HashMap;
use std::net::IpAddr;

use tokio::sync::watch;
use tonic::{Code, Status};

use crate::auth::Caller;

/// Why a stream was ended from outside: the status its worker receives last.
pub type EndReason = Option<(Code, String)>;

#[derive(Debug)]
struct Live {
    worker_id: String,
    token: Option<String>,
    peer: Option<IpAddr>,
    end: watch::Sender<EndReason>,
}

/// The open worker streams, by connection number.
#[derive(Debug, Default)]
pub struct LiveStreams {
    streams: HashMap<u64, Live>,
}

impl LiveStreams {
    /// Registers stream `conn` for `worker_id`, or refuses it. Returns the receiver that tells the
    /// stream it was ended from outside.
    pub fn admit(
        &mut self,
        conn: u64,
        worker_id: &str,
        caller: &Caller,
        peer: Option<IpAddr>,
        max_per_peer: usize,
    ) -> Result<watch::Receiver<EndReason>, Status> {
        if let Some(ip) = peer
            && max_per_peer > 0
            && self.streams.values().filter(|l| l.peer == Some(ip)).count() >= max_per_peer
        {
            return Err(Status::resource_exhausted(format!(
                "{ip} already has {max_per_peer} worker streams open \
                 (limit: --max-streams-per-peer)"
            )));
        }
        let same_id: Vec<u64> = self
            .streams
            .iter()
            .filter(|(_, l)| l.worker_id == worker_id)
            .map(|(c, _)| *c)
            .collect();
        if !same_id.is_empty() {
            match caller {
                Caller::Token { shared: true, .. } => {
                    return Err(Status::already_exists(format!(
                        "worker {worker_id} already has a live stream; with the shared join token \
                         a second one is refused (give each worker its own token to let a new \
                         stream replace the old)"
                    )));
                }
                // A per-worker token (or no auth at all): the new stream replaces the old one.
                Caller::Token { .. } | Caller::Anonymous => {
                    for old in same_id {
                        self.end(
                            old,
                            Code::Aborted,
                            "replaced by a newer stream of the same worker",
                        );
                    }
                }
            }
        }
        let (end, ended) = watch::channel(None);
        self.streams.insert(
            conn,
            Live {
                worker_id: worker_id.to_string(),
                token: caller.token_name().map(str::to_string),
                peer,
                end,
            },
        );
        Ok(ended)
    }

    /// Forgets stream `conn` (it ended).
    pub fn remove(&mut self, conn: u64) {
        self.streams.remove(&conn);
    }

    fn end(&mut self, conn: u64, code: Code, why: &str) {
        if let Some(live) = self.streams.remove(&conn) {
            let _ = live.end.send(Some((code, why.to_string())));
        }
    }

    /// Ends every stream opened with token `name`; returns the workers cut off.
    pub fn end_token(&mut self, name: &str) -> Vec<String> {
        let conns: Vec<(u64, String)> = self
            .streams
            .iter()
            .filter(|(_, l)| l.token.as_deref() == Some(name))
            .map(|(c, l)| (*c, l.worker_id.clone()))
            .collect();
        for (conn, _) in &conns {
            self.end(*conn, Code::Unauthenticated, "token revoked");
        }
        conns.into_iter().map(|(_, w)| w).collect()
    }

    /// The names of the tokens that opened the live streams.
    pub fn tokens(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .streams
            .values()
            .filter_map(|l| l.token.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Caller {
        Caller::Token {
            name: "worker-join".into(),
            role: crate::auth::Role::Worker,
            shared: true,
        }
    }

    fn own(name: &str) -> Caller {
        Caller::Token {
            name: name.into(),
            role: crate::auth::Role::Worker,
            shared: false,
        }
    }

    #[test]
    fn the_shared_token_cannot_open_a_second_stream_for_a_live_id() {
        let mut live = LiveStreams::default();
        let first = live.admit(1, "w", &shared(), None, 0).unwrap();
        let err = live.admit(2, "w", &shared(), None, 0).unwrap_err();
        assert_eq!(err.code(), Code::AlreadyExists);
        assert!(first.borrow().is_none(), "the first stream was disturbed");
        live.remove(1);
        assert!(live.admit(3, "w", &shared(), None, 0).is_ok());
    }

    #[test]
    fn a_per_worker_token_replaces_its_old_stream_explicitly() {
        let mut live = LiveStreams::default();
        let first = live.admit(1, "w", &own("board"), None, 0).unwrap();
        let _second = live.admit(2, "w", &own("board"), None, 0).unwrap();
        assert_eq!(
            first.borrow().as_ref().map(|(c, _)| *c),
            Some(Code::Aborted)
        );
        assert_eq!(live.len(), 1);
    }

    #[test]
    fn revoking_a_token_ends_its_streams_only() {
        let mut live = LiveStreams::default();
        let a = live.admit(1, "a", &own("board-a"), None, 0).unwrap();
        let b = live.admit(2, "b", &own("board-b"), None, 0).unwrap();
        assert_eq!(live.end_token("board-a"), vec!["a".to_string()]);
        assert_eq!(
            a.borrow().as_ref().map(|(c, _)| *c),
            Some(Code::Unauthenticated)
        );
        assert!(b.borrow().is_none());
    }

    #[test]
    fn streams_per_peer_address_are_capped() {
        let mut live = LiveStreams::default();
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        live.admit(1, "a", &shared(), Some(ip), 2).unwrap();
        live.admit(2, "b", &shared(), Some(ip), 2).unwrap();
        let err = live.admit(3, "c", &shared(), Some(ip), 2).unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert!(err.message().contains("--max-streams-per-peer"));
        let other: IpAddr = "10.0.0.8".parse().unwrap();
        assert!(live.admit(4, "d", &shared(), Some(other), 2).is_ok());
    }
}
