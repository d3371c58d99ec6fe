//! Who a caller is: the three roles a token can carry, and the identity the gate attaches to a
//! request once its token checked out.
//!
//! Roles are not a ladder: an *operator* may do everything a *submitter* may, but neither may join as
//! a worker, and a *worker* token opens nothing but the worker stream (and, later, model fetches). A
//! stolen worker token therefore cannot cancel runs, and a leaked report-reader token cannot forge
//! results.

use std::fmt;
use std::str::FromStr;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May `Connect` as a worker.
    Worker,
    /// May submit runs, watch them and read reports, answers, status and workers.
    Submitter,
    /// A submitter that may also cancel, regrade, drain, clear, and manage tokens and models.
    Operator,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Worker, Role::Submitter, Role::Operator];

    /// Whether a caller of this role may call something that needs `needed`.
    pub fn permits(self, needed: Role) -> bool {
        match (self, needed) {
            (Role::Operator, Role::Submitter | Role::Operator) => true,
            (have, needed) => have == needed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Submitter => "submitter",
            Role::Operator => "operator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is none of the three.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected worker, submitter or operator")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        match s {
            "worker" => Ok(Role::Worker),
            "submitter" => Ok(Role::Submitter),
            "operator" => Ok(Role::Operator),
            other => Err(UnknownRole(other.to_string())),
        }
    }
}

/// The identity the gate attaches to every admitted request (as a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The server runs with `--insecure-no-auth`: nobody is checked, everyone may do everything.
    Anonymous,
    /// A caller that presented a valid token.
    Token {
        /// The token's name (never the token itself).
        name: String,
        role: Role,
        /// The farm's shared join token: identity is this token plus the worker id the worker
        /// claims, so a second live stream for one id is refused rather than replacing the first.
        shared: bool,
    },
}

impl Caller {
    /// The token's name, for logs and bindings; `None` when nobody is checked.
    pub fn token_name(&self) -> Option<&str> {
        match self {
            Caller::Anonymous => None,
            Caller::Token { name, .. } => Some(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_may_submit_but_nobody_else_crosses_over() {
        assert!(Role::Operator.permits(Role::Submitter));
        assert!(Role::Operator.permits(Role::Operator));
        assert!(!Role::Operator.permits(Role::Worker));
        assert!(!Role::Submitter.permits(Role::Operator));
        assert!(!Role::Submitter.permits(Role::Worker));
        assert!(!Role::Worker.permits(Role::Submitter));
        assert!(Role::Worker.permits(Role::Worker));
    }

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert_eq!(
            "admin".parse::<Role>(),
            Err(UnknownRole("admin".to_string()))
        );
    }
}
