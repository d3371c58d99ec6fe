//! Wire <-> domain for the token RPCs: roles as the proto enum, registry entries as `TokenInfo`
//! (never the digest).

use benchfarm_proto::v1 as pb;
use tonic::Status;

use crate::auth::Role;
use crate::auth::tokens::TokenEntry;

pub fn role_to_wire(role: Role) -> pb::TokenRole {
    match role {
        Role::Worker => pb::TokenRole::Worker,
        Role::Submitter => pb::TokenRole::Submitter,
        Role::Operator => pb::TokenRole::Operator,
    }
}

/// The role of a request; unspecified or unknown values name the field.
pub fn role_from_wire(value: i32) -> Result<Role, Status> {
    match pb::TokenRole::try_from(value) {
        Ok(pb::TokenRole::Worker) => Ok(Role::Worker),
        Ok(pb::TokenRole::Submitter) => Ok(Role::Submitter),
        Ok(pb::TokenRole::Operator) => Ok(Role::Operator),
        Ok(pb::TokenRole::Unspecified) | Err(_) => Err(Status::invalid_argument(
            "role: must be worker, submitter or operator",
        )),
    }
}

pub fn info(entry: TokenEntry) -> pb::TokenInfo {
    pb::TokenInfo {
        name: entry.name,
        role: role_to_wire(entry.role) as i32,
        created_unix_ms: entry.created_unix_ms,
        shared: entry.shared,
        bound_worker: entry.bound_worker.unwrap_or_default(),
    }
}
