//! The gate: checks each request's bearer token against the registry and the policy, and owns the
//! registry's live copy (adds, revocations and bindings, persisted as they happen).
//!
//! [`Gate::admit`] is the whole decision and needs no network: the tower layer (`layer.rs`) and the
//! HTTP page both call it. A missing or unknown token is `Unauthenticated`; a valid token of the
//! wrong role is `PermissionDenied`, naming the role the method needs. Revocations are broadcast so
//! that a worker stream opened with a revoked token ends at once (its jobs go back to the queue),
//! not at its next reconnect.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;
use tonic::Status;

use super::files;
use super::policy::{self, Needs};
use super::role::{Caller, Role};
use super::tokens::{Registry, TokenEntry, TokenError};

/// The farm's authentication state, shared by the gRPC layer, the services and the HTTP page.
#[derive(Debug, Clone)]
pub struct Gate {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `None`: `--insecure-no-auth`, everyone is [`Caller::Anonymous`].
    registry: Option<Mutex<Registry>>,
    /// Where the registry is saved.
    data: PathBuf,
    /// Names of revoked tokens, for the streams they opened.
    revoked: broadcast::Sender<String>,
    /// Serialises registry saves, so the file always holds the latest state.
    saving: tokio::sync::Mutex<()>,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error(
        "{method}: missing bearer token (send `authorization: Bearer TOKEN`; the CLI reads \
         BENCHFARM_TOKEN or --token-file, workers BENCHFARM_WORKER_TOKEN or --token-file)"
    )]
    Missing { method: String },
    #[error("{method}: invalid or revoked token")]
    Invalid { method: String },
    #[error("{method}: needs the {needed} role; token {token:?} has {has}")]
    WrongRole {
        method: String,
        needed: Role,
        token: String,
        has: Role,
    },
}

impl From<Denied> for Status {
    fn from(denied: Denied) -> Status {
        match denied {
            Denied::Missing { .. } | Denied::Invalid { .. } => {
                Status::unauthenticated(denied.to_string())
            }
            Denied::WrongRole { .. } => Status::permission_denied(denied.to_string()),
        }
    }
}

/// The token in an `authorization` header value (`Bearer TOKEN`, scheme case-insensitive).
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl Gate {
    /// A gate that checks tokens against `registry`, saving changes under `data`.
    pub fn with_tokens(registry: Registry, data: PathBuf) -> Gate {
        Gate::new(Some(registry), data)
    }

    /// `--insecure-no-auth`: a gate that lets everyone through.
    pub fn open() -> Gate {
        Gate::new(None, PathBuf::new())
    }

    fn new(registry: Option<Registry>, data: PathBuf) -> Gate {
        let (revoked, _) = broadcast::channel(64);
        Gate {
            inner: Arc::new(Inner {
                registry: registry.map(Mutex::new),
                data,
                revoked,
                saving: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Whether tokens are checked at all.
    pub fn enforcing(&self) -> bool {
        self.inner.registry.is_some()
    }

    fn registry(&self) -> Option<MutexGuard<'_, Registry>> {
        self.inner
            .registry
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Decides a request to `path` carrying `authorization` (the header's value, if any).
    pub fn admit(&self, path: &str, authorization: Option<&str>) -> Result<Caller, Denied> {
        let Some(registry) = self.registry() else {
            return Ok(Caller::Anonymous);
        };
        let needed = match policy::needs(path) {
            Needs::Nothing => return Ok(Caller::Anonymous),
            Needs::Role(role) => role,
        };
        let method = policy::method_name(path).to_string();
        let token = authorization
            .and_then(bearer)
            .ok_or_else(|| Denied::Missing {
                method: method.clone(),
            })?;
        let entry = registry.verify(token).ok_or_else(|| Denied::Invalid {
            method: method.clone(),
        })?;
        if !entry.role.permits(needed) {
            return Err(Denied::WrongRole {
                method,
                needed,
                token: entry.name.clone(),
                has: entry.role,
            });
        }
        Ok(Caller::Token {
            name: entry.name.clone(),
            role: entry.role,
            shared: entry.shared,
        })
    }

    /// Whether the token named `name` is still registered (a stream checks after a lagged
    /// revocation broadcast).
    pub fn is_registered(&self, name: &str) -> bool {
        self.registry().is_none_or(|r| r.get(name).is_some())
    }

    /// Revocations, as token names.
    pub fn revocations(&self) -> broadcast::Receiver<String> {
        self.inner.revoked.subscribe()
    }

    /// Binds `caller`'s per-worker token to `worker` on first use, or refuses a worker id that
    /// belongs to another token.
    pub async fn bind(&self, caller: &Caller, worker: &str) -> Result<(), Status> {
        let Caller::Token { name, .. } = caller else {
            return Ok(());
        };
        let changed = {
            let Some(mut registry) = self.registry() else {
                return Ok(());
            };
            registry
                .bind(name, worker)
                .map_err(|e| Status::permission_denied(e.to_string()))?
        };
        if changed {
            self.save().await?;
        }
        Ok(())
    }

    /// Registers a new token of `role` under `name`; returns it (shown once, never again).
    pub async fn add(&self, name: &str, role: Role, now_unix_ms: u64) -> Result<String, Status> {
        let token = super::tokens::generate().map_err(|e| Status::internal(e.to_string()))?;
        {
            let Some(mut registry) = self.registry() else {
                return Err(no_tokens());
            };
            registry
                .add(name, role, &token, false, now_unix_ms)
                .map_err(token_status)?;
        }
        self.save().await?;
        Ok(token)
    }

    /// The registered tokens (digests are not shown).
    pub fn list(&self) -> Result<Vec<TokenEntry>, Status> {
        let registry = self.registry().ok_or_else(no_tokens)?;
        Ok(registry.tokens.clone())
    }

    /// Removes a token, saves, and ends the streams it opened.
    pub async fn revoke(&self, name: &str) -> Result<TokenEntry, Status> {
        let entry = {
            let mut registry = self.registry().ok_or_else(no_tokens)?;
            if name == files::API_TOKEN_NAME || name == files::JOIN_TOKEN_NAME {
                return Err(Status::failed_precondition(format!(
                    "token {name:?} is a bootstrap token: replace its file and restart instead"
                )));
            }
            registry.revoke(name).map_err(token_status)?
        };
        self.save().await?;
        let _ = self.inner.revoked.send(entry.name.clone());
        Ok(entry)
    }

    /// Saves the registry off the runtime, one save at a time.
    async fn save(&self) -> Result<(), Status> {
        let _one_at_a_time = self.inner.saving.lock().await;
        let snapshot = self.registry().map(|r| r.clone()).ok_or_else(no_tokens)?;
        let data = self.inner.data.clone();
        tokio::task::spawn_blocking(move || files::save(&data, &snapshot))
            .await
            .map_err(|e| Status::internal(format!("saving tokens panicked: {e}")))?
            .map_err(|e| Status::internal(format!("saving tokens: {e}")))
    }
}

fn no_tokens() -> Status {
    Status::failed_precondition("this coordinator runs with --insecure-no-auth: it has no tokens")
}

fn token_status(err: TokenError) -> Status {
    match err {
        TokenError::NameTaken(_) => Status::already_exists(err.to_string()),
        TokenError::NoSuchToken(_) => Status::not_found(err.to_string()),
        TokenError::BadName(_) | TokenError::Full => Status::invalid_argument(err.to_string()),
        TokenError::WorkerBoundElsewhere { .. } | TokenError::TokenBoundElsewhere { .. } => {
            Status::permission_denied(err.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> (Gate, String, String, String) {
        let mut registry = Registry::default();
        registry
            .add("op", Role::Operator, "bf_op", false, 0)
            .unwrap();
        registry
            .add("sub", Role::Submitter, "bf_sub", false, 0)
            .unwrap();
        registry
            .add("join", Role::Worker, "bf_join", true, 0)
            .unwrap();
        (
            Gate::with_tokens(registry, PathBuf::from("/nonexistent")),
            "Bearer bf_op".into(),
            "Bearer bf_sub".into(),
            "bearer bf_join".into(),
        )
    }

    #[test]
    fn missing_wrong_and_wrong_role_tokens_are_told_apart() {
        let (gate, op, sub, join) = gate();
        let cancel = "/benchfarm.v1.FarmService/CancelRun";
        assert!(matches!(
            gate.admit(cancel, None),
            Err(Denied::Missing { .. })
        ));
        assert!(matches!(
            gate.admit(cancel, Some("Bearer bf_nope")),
            Err(Denied::Invalid { .. })
        ));
        assert!(matches!(
            gate.admit(cancel, Some("Basic bf_op")),
            Err(Denied::Missing { .. })
        ));
        let denied = gate.admit(cancel, Some(&sub)).unwrap_err();
        assert_eq!(
            Status::from(denied.clone()).code(),
            tonic::Code::PermissionDenied
        );
        assert!(
            denied.to_string().contains("needs the operator role"),
            "{denied}"
        );
        assert!(gate.admit(cancel, Some(&op)).is_ok());
        assert!(
            gate.admit("/benchfarm.v1.FarmService/GetRun", Some(&sub))
                .is_ok()
        );
        assert!(matches!(
            gate.admit("/benchfarm.v1.FarmService/GetRun", Some(&join)),
            Err(Denied::WrongRole { .. })
        ));
        assert_eq!(
            gate.admit("/benchfarm.v1.WorkerService/Connect", Some(&join)),
            Ok(Caller::Token {
                name: "join".into(),
                role: Role::Worker,
                shared: true
            })
        );
        assert!(matches!(
            gate.admit("/benchfarm.v1.WorkerService/Connect", Some(&op)),
            Err(Denied::WrongRole { .. })
        ));
        assert_eq!(
            gate.admit("/grpc.health.v1.Health/Check", None),
            Ok(Caller::Anonymous)
        );
    }

    #[test]
    fn an_open_gate_admits_everyone_as_anonymous() {
        let gate = Gate::open();
        assert!(!gate.enforcing());
        assert_eq!(
            gate.admit("/benchfarm.v1.FarmService/CancelRun", None),
            Ok(Caller::Anonymous)
        );
    }

    #[test]
    fn bearer_values_are_parsed_strictly() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc "), Some("abc"));
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
        assert_eq!(bearer("Token abc"), None);
    }
}
