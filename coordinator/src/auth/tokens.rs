//! The token registry: which tokens exist, their roles, and which worker each per-worker token is
//! bound to. Pure: no files and no clock here (`store.rs` persists it, the caller passes `now`).
//!
//! Only a token's SHA-256 is kept. Tokens are 256 random bits, so a fast hash is enough (there is
//! nothing to brute-force, unlike a password), and a copy of the registry file lets nobody in. A
//! presented token is checked against every entry in constant time (`subtle`), so the time taken
//! says nothing about how close a guess came.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::role::Role;

/// Longest token name accepted (names appear in logs and tables).
pub const MAX_NAME_LEN: usize = 64;
/// Most tokens one registry holds (each check walks them all).
pub const MAX_TOKENS: usize = 4096;
/// The prefix of every token this coordinator makes, so a leaked one is recognisable in a scan.
pub const TOKEN_PREFIX: &str = "bf_";

/// One token, as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenEntry {
    pub name: String,
    pub role: Role,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    pub created_unix_ms: u64,
    /// The farm's shared join token (identity = token + worker id).
    #[serde(default)]
    pub shared: bool,
    /// A per-worker token's worker, bound at its first `Connect`.
    #[serde(default)]
    pub bound_worker: Option<String>,
}

/// Why a registry change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token name {0:?} is taken")]
    NameTaken(String),
    #[error("no token named {0:?}")]
    NoSuchToken(String),
    #[error("token name {0:?}: 1 to {MAX_NAME_LEN} characters of letters, digits, '-', '_' or '.'")]
    BadName(String),
    #[error("the registry holds {MAX_TOKENS} tokens, the most it may (limit: tokens)")]
    Full,
    #[error("worker {worker:?} is bound to another token; token {token:?} may not speak for it")]
    WorkerBoundElsewhere { worker: String, token: String },
    #[error("token {token:?} is bound to worker {bound:?}, not {claimed:?}")]
    TokenBoundElsewhere {
        token: String,
        bound: String,
        claimed: String,
    },
}

/// The tokens a coordinator accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Registry {
    pub tokens: Vec<TokenEntry>,
}

/// The token a token file holds: its one line, trimmed; `None` when empty or not a single token.
/// The one rule for the server's bootstrap files and the clients' `--token-file`.
pub fn parse_token_file(text: &str) -> Option<&str> {
    let token = text.trim();
    (!token.is_empty() && !token.contains(char::is_whitespace)).then_some(token)
}

/// Hex SHA-256 of a token.
pub fn digest(token: &str) -> String {
    let hash = Sha256::digest(token.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new token: the prefix and 32 random bytes in hex.
pub fn generate() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{TOKEN_PREFIX}{hex}"))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Registry {
    /// The entry whose token this is, compared in constant time against every entry.
    pub fn verify(&self, token: &str) -> Option<&TokenEntry> {
        let presented = digest(token);
        let mut found = None;
        for entry in &self.tokens {
            // No early exit: every entry is compared, whichever matches.
            if bool::from(entry.sha256.as_bytes().ct_eq(presented.as_bytes())) {
                found = Some(entry);
            }
        }
        found
    }

    pub fn get(&self, name: &str) -> Option<&TokenEntry> {
        self.tokens.iter().find(|e| e.name == name)
    }

    /// Registers `token` under `name`.
    pub fn add(
        &mut self,
        name: &str,
        role: Role,
        token: &str,
        shared: bool,
        now_unix_ms: u64,
    ) -> Result<&TokenEntry, TokenError> {
        if !valid_name(name) {
            return Err(TokenError::BadName(name.to_string()));
        }
        if self.get(name).is_some() {
            return Err(TokenError::NameTaken(name.to_string()));
        }
        if self.tokens.len() >= MAX_TOKENS {
            return Err(TokenError::Full);
        }
        self.tokens.push(TokenEntry {
            name: name.to_string(),
            role,
            sha256: digest(token),
            created_unix_ms: now_unix_ms,
            shared,
            bound_worker: None,
        });
        Ok(&self.tokens[self.tokens.len() - 1])
    }

    /// Makes sure `name` holds exactly `token` with `role` (the bootstrap tokens, whose files are
    /// the source of truth: an operator who rewrites `api.token` replaces the token). Returns
    /// whether anything changed.
    pub fn ensure(
        &mut self,
        name: &str,
        role: Role,
        token: &str,
        shared: bool,
        now_unix_ms: u64,
    ) -> Result<bool, TokenError> {
        let sha = digest(token);
        if let Some(entry) = self.tokens.iter_mut().find(|e| e.name == name) {
            if entry.sha256 == sha && entry.role == role && entry.shared == shared {
                return Ok(false);
            }
            entry.sha256 = sha;
            entry.role = role;
            entry.shared = shared;
            entry.bound_worker = None;
            return Ok(true);
        }
        self.add(name, role, token, shared, now_unix_ms)?;
        Ok(true)
    }

    /// Removes a token; the caller disconnects whatever it authenticated.
    pub fn revoke(&mut self, name: &str) -> Result<TokenEntry, TokenError> {
        let at = self
            .tokens
            .iter()
            .position(|e| e.name == name)
            .ok_or_else(|| TokenError::NoSuchToken(name.to_string()))?;
        Ok(self.tokens.remove(at))
    }

    /// Checks that token `name` may speak for `worker`, binding a per-worker token to the worker on
    /// its first use. Returns whether the registry changed (a new binding to persist).
    ///
    /// A worker id bound to a per-worker token belongs to that token alone: the shared join token
    /// cannot claim it either.
    pub fn bind(&mut self, name: &str, worker: &str) -> Result<bool, TokenError> {
        if let Some(owner) = self
            .tokens
            .iter()
            .find(|e| e.bound_worker.as_deref() == Some(worker))
            && owner.name != name
        {
            return Err(TokenError::WorkerBoundElsewhere {
                worker: worker.to_string(),
                token: name.to_string(),
            });
        }
        let entry = self
            .tokens
            .iter_mut()
            .find(|e| e.name == name)
            .ok_or_else(|| TokenError::NoSuchToken(name.to_string()))?;
        if entry.shared {
            return Ok(false);
        }
        match &entry.bound_worker {
            Some(bound) if bound == worker => Ok(false),
            Some(bound) => Err(TokenError::TokenBoundElsewhere {
                token: name.to_string(),
                bound: bound.clone(),
                claimed: worker.to_string(),
            }),
            None => {
                entry.bound_worker = Some(worker.to_string());
                Ok(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> (Registry, String, String) {
        let mut r = Registry::default();
        let join = generate().unwrap();
        let own = generate().unwrap();
        r.add("worker-join", Role::Worker, &join, true, 1).unwrap();
        r.add("board-1", Role::Worker, &own, false, 2).unwrap();
        (r, join, own)
    }

    #[test]
    fn tokens_are_random_prefixed_and_stored_only_as_digests() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        let (r, join, _) = registry();
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains(&join), "a token is stored in clear");
        assert_eq!(
            r.verify(&join).map(|e| e.name.as_str()),
            Some("worker-join")
        );
        assert_eq!(r.verify("bf_wrong"), None);
        assert_eq!(r.verify(""), None);
    }

    #[test]
    fn a_per_worker_token_binds_to_its_first_worker_and_owns_that_id() {
        let (mut r, _, _) = registry();
        assert_eq!(r.bind("board-1", "w-1"), Ok(true));
        assert_eq!(r.bind("board-1", "w-1"), Ok(false));
        assert!(matches!(
            r.bind("board-1", "w-2"),
            Err(TokenError::TokenBoundElsewhere { .. })
        ));
        // Nobody else may claim w-1, not even with the shared join token.
        assert!(matches!(
            r.bind("worker-join", "w-1"),
            Err(TokenError::WorkerBoundElsewhere { .. })
        ));
        assert_eq!(r.bind("worker-join", "w-3"), Ok(false));
    }

    #[test]
    fn names_are_checked_unique_and_revocable() {
        let (mut r, _, own) = registry();
        assert!(matches!(
            r.add("board-1", Role::Worker, "x", false, 3),
            Err(TokenError::NameTaken(_))
        ));
        for bad in ["", "../etc", "a b", &"x".repeat(65)] {
            assert!(matches!(
                r.add(bad, Role::Submitter, "x", false, 3),
                Err(TokenError::BadName(_))
            ));
        }
        assert_eq!(r.revoke("board-1").unwrap().name, "board-1");
        assert_eq!(r.verify(&own), None);
        assert!(matches!(
            r.revoke("board-1"),
            Err(TokenError::NoSuchToken(_))
        ));
    }

    #[test]
    fn ensure_replaces_a_bootstrap_token_whose_file_changed() {
        let mut r = Registry::default();
        assert_eq!(r.ensure("api", Role::Operator, "bf_a", false, 1), Ok(true));
        assert_eq!(r.ensure("api", Role::Operator, "bf_a", false, 1), Ok(false));
        assert_eq!(r.ensure("api", Role::Operator, "bf_b", false, 1), Ok(true));
        assert_eq!(r.verify("bf_a"), None);
        assert!(r.verify("bf_b").is_some());
    }
}
