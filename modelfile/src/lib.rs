//! benchfarm-modelfile: everything the farm knows about model files without linking llama.cpp.
//!
//! - [`gguf`]: a pure-Rust GGUF header reader and validator (catches truncated downloads).
//! - [`scripted`]: the scripted (canned-answer) model format used in tests, demos and load tests.
//! - [`hash`]: streaming SHA-256 used to identify model files.
//! - [`size`]: sizes and rates as people write them (`300MB`, `20MB/s`).
//! - [`remote`]: a remote model's identity and which variables may hold its API key.
//!
//! The coordinator depends on this crate, so it must stay free of native dependencies.

pub mod gguf;
pub mod hash;
pub mod remote;
pub mod scripted;
pub mod size;

pub use gguf::{GgufError, GgufInfo, GgufType, GgufValue, TensorInfo, parse_gguf, read_gguf};
pub use hash::{Sha256Stream, sha256_bytes, sha256_file};
pub use remote::{is_key_env_name, remote_identity};
pub use scripted::{ModelFileError, ScriptedModel};
