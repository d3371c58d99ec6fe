//! Model distribution: the coordinator's content-addressed store of GGUF files, the registry of
//! their names, and the `ModelService` that uploads, lists, removes and serves them.
//!
//! A model is its sha256. Uploaded files live in `DATA/models/sha256/<hex>` (written to
//! `DATA/models/partial/<hex>.part` first, verified, then renamed), and `serve --models-dir` files
//! are registered where they are, never copied. The registry ([`Catalog`]) is in memory for the
//! scheduler and the services, and in the store's `models` tree so that it survives restarts.
//!
//! - [`catalog`]: names ↔ digests, resolution of `registered = "NAME-or-sha256-prefix"`.
//! - [`files`]: where the bytes are, partial uploads, atomic commit.
//! - [`upload`]: the `UploadModel` client stream, verified on arrival.
//! - [`fetch`]: the `FetchModel` server stream, at most K at once, paced by [`pacer`].
//! - [`register`]: `--models-dir`, registered in place.
//! - [`service`]: the gRPC service tying them together.

pub mod catalog;
pub mod fetch;
pub mod files;
pub mod pacer;
pub mod register;
pub mod service;
pub mod upload;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use catalog::{Catalog, CatalogError, ResolveError};
pub use files::ModelFiles;
pub use pacer::Pacer;

/// A registered model, as stored in the `models` tree (keyed by sha256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEntry {
    pub sha256: String,
    /// Unique among registered models.
    pub name: String,
    pub size_bytes: u64,
    /// The file's name where it came from (shown, and sent to workers as the GGUF file name).
    pub file_name: String,
    /// From the GGUF header; empty or 0 when it does not say.
    pub architecture: String,
    pub quantization: String,
    pub parameter_count: u64,
    pub context_length: u64,
    pub origin: Origin,
    pub added_unix_ms: i64,
}

/// Where a registered model's bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Origin {
    /// Uploaded into the store (`DATA/models/sha256/<hex>`).
    Upload,
    /// A `--models-dir` file, registered in place; `modified_ms` and the size let a restart skip
    /// hashing it again when it has not changed.
    InPlace { path: PathBuf, modified_ms: i64 },
}

impl Origin {
    pub fn as_str(&self) -> &'static str {
        match self {
            Origin::Upload => "upload",
            Origin::InPlace { .. } => "in-place",
        }
    }
}

impl ModelEntry {
    /// A registered model described by its GGUF header (`info`), with the given identity.
    pub fn from_gguf(
        info: &benchfarm_modelfile::GgufInfo,
        sha256: String,
        name: String,
        file_name: String,
        origin: Origin,
        added_unix_ms: i64,
    ) -> ModelEntry {
        ModelEntry {
            sha256,
            name,
            size_bytes: info.file_len(),
            file_name,
            architecture: info.architecture().unwrap_or_default().to_string(),
            quantization: info.file_type_name().unwrap_or_default().to_string(),
            parameter_count: info.parameter_count(),
            context_length: info.context_length().unwrap_or(0),
            origin,
            added_unix_ms,
        }
    }

    /// The first 12 hex digits, as lists show a digest.
    pub fn short_sha(&self) -> &str {
        self.sha256.get(..12).unwrap_or(&self.sha256)
    }
}

/// Whether `text` is a lowercase sha256 hex digest.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
