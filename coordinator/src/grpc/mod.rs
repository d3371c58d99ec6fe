//! The gRPC edge of the coordinator: the services and the server that hosts them.

pub mod admission;
pub mod convert;
pub mod enums;
pub mod farm_service;
pub mod live_streams;
pub mod outbound;
pub mod server;
pub mod submit;
pub mod tokens;
pub mod worker_service;
