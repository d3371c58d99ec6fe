//! The coordinator's client verbs: each talks gRPC to a running server (or, for `suite`, works
//! offline) and prints for a person. Exit codes: 0 success, 1 a failed check or run, 2 bad input.

pub mod answers;
pub mod bench;
pub mod client;
pub mod connect;
pub mod health;
pub mod models;
pub mod print;
pub mod progress;
pub mod suite_cmd;
pub mod tokens;
