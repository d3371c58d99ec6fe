//! The end-to-end test kit of benchfarm: what the tests in `tests/` and the benches in `benches/`
//! share, as one library instead of files each test binary includes.
//!
//! - [`in_process`]: a real coordinator server on 127.0.0.1:0 and real workers, in the test's own
//!   process (the same `benchfarm_worker::join` the binary runs; only the process boundary is
//!   missing).
//! - [`process`]: the real `coordinator` and `worker` binaries as separate processes, to kill,
//!   stop, restart and partition, with the queries the tests make of a farm.
//! - [`real_model`]: the default model and the small suite and plan the real-model tests run.
//! - [`reports`]: a run's report as a test reads it.
//! - [`workers`]: the farm's workers as the coordinator lists them.
//! - [`browser`]: a real headless Chromium over the DevTools protocol, for the HTML report and the
//!   live page.
//! - [`tls`]: a private CA and certificates for the TLS tests.
//! - [`fake_endpoint`]: a scripted chat-completions endpoint for the remote models' fault tests.
//!
//! Test code: a panic (an `unwrap`, an `expect`) is the failure report a test wants, so these
//! helpers panic instead of returning errors a test would only unwrap.

pub mod browser;
pub mod fake_endpoint;
pub mod in_process;
pub mod process;
pub mod real_model;
pub mod reports;
pub mod tls;
pub mod workers;
