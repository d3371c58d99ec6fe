//! Who may talk to the coordinator: tokens with roles, checked on every gRPC request and on the
//! HTTP page.
//!
//! - `role.rs`: the three roles and the identity of an admitted caller;
//! - `tokens.rs`: the registry (digests only, constant-time checks, per-worker bindings), pure;
//! - `files.rs`: the registry on disk and the bootstrap token files, created 0600 on first start;
//! - `policy.rs`: the role each RPC needs;
//! - `gate.rs`: the decision, and the live registry (add, revoke, bind);
//! - `layer.rs`: the gate as a tower layer in front of the gRPC services.
//!
//! docs/security.md is the user's view of all of it.

pub mod files;
pub mod gate;
pub mod layer;
pub mod policy;
pub mod role;
pub mod tokens;

pub use gate::{Denied, Gate};
pub use layer::AuthLayer;
pub use role::{Caller, Role};
