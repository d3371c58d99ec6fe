//! The benchfarm coordinator as a library: the server pieces and the client verbs.
//!
//! The binary (`src/main.rs`) is a thin clap front end over these modules; end-to-end tests start
//! the same server in process on 127.0.0.1:0.
//!
//! - [`plan`]: plan file → submit request (client side).
//! - [`run`], [`job`]: a run's expansion into jobs, and a job's state machine (pure).
//! - [`scheduler`]: the task that owns queue and workers; [`scheduler::placement`] is pure.
//! - [`store`]: sled trees of [`records`].
//! - [`grpc`]: the services, the server, wire conversions.
//! - [`models`]: the content-addressed model store, its registry and `ModelService`.
//! - [`reporting`], [`regrade`]: store records → reports; answers → new grades.
//! - [`cli`]: the client verbs (`submit`, `status`, `workers`, `report`, `cancel`, `regrade`, `suite`).

pub mod auth;
pub mod cli;
pub mod clock;
pub mod grading;
pub mod grpc;
pub mod hardware_class;
pub mod http;
pub mod job;
pub mod limits;
pub mod models;
pub mod plan;
pub mod records;
pub mod regrade;
pub mod reporting;
pub mod run;
pub mod scheduler;
pub mod store;
pub mod untrusted;
