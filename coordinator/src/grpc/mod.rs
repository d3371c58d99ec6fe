//! The gRPC edge of the coordinator: the services and the server that hosts them.

pub mod convert;
pub mod farm_service;
pub mod server;
pub mod submit;
pub mod worker_service;
