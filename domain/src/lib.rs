//! benchfarm-domain: the small pure types both binaries share, so that none is defined twice and
//! the coordinator needs no llama.cpp to speak of them.
//!
//! - [`Hardware`]: the machine a job ran on, as the worker's probe reads it and the coordinator
//!   stores and places by it.
//! - [`ThroughputTest`]: llama-bench's `pp512` / `tg128` / `pp512+tg128`, as plans, jobs, the
//!   engine, `worker bench` and reports name it.
//! - [`Timings`]: what one job measured, as the engine produces it, the worker sends it and the
//!   coordinator stores it (docs/timings.md defines every field).
//! - [`Verdict`]: pass, partial or fail, as the suite grades, the store keeps and the report counts.

mod hardware;
mod throughput;
mod timings;
mod verdict;

pub use hardware::{Hardware, none_if_empty, none_if_zero_bytes, none_if_zero_cpus};
pub use throughput::{MAX_GEN_TOKENS, MAX_PROMPT_TOKENS, ThroughputTest, ThroughputTestError};
pub use timings::Timings;
pub use verdict::{ParseVerdictError, Verdict};
