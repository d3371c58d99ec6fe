//! Which GGUF models this worker can offer: every `*.gguf` directly inside a models directory
//! (not recursive: subdirectories are where partial downloads and split files tend to live),
//! each checked with the GGUF reader and identified by its SHA-256.
//!
//! Hashing a multi-gigabyte file takes seconds, so digests are cached in a JSON file keyed by
//! (canonical path, size, mtime in ns); a file whose size or mtime changed is hashed again. A bad
//! model file is skipped with its reason and never stops discovery; an unreadable or corrupt
//! cache is simply rebuilt.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use benchfarm_modelfile::{read_gguf, sha256_file};
use serde::{Deserialize, Serialize};

/// A usable model file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalModel {
    pub path: PathBuf,
    pub file_name: String,
    /// `general.name`, else the file stem.
    pub name: String,
    pub architecture: Option<String>,
    /// Quantisation from `general.file_type`, e.g. "Q4_K_M".
    pub file_type: Option<String>,
    pub context_length: Option<u64>,
    pub size_bytes: u64,
    pub sha256: String,
    pub has_chat_template: bool,
}

/// A `*.gguf` file that was not offered, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedModel {
    pub path: PathBuf,
    pub reason: String,
}

/// Everything discovery found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discovery {
    /// Sorted by file name.
    pub models: Vec<LocalModel>,
    pub skipped: Vec<SkippedModel>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("{}: cannot list models directory: {error}", dir.display())]
    ReadDir { dir: PathBuf, error: std::io::Error },
}

/// The usable models in `dir`; skipped files are logged at warn level.
pub fn discover(dir: &Path, cache_file: &Path) -> Result<Vec<LocalModel>, DiscoverError> {
    let found = discover_all(dir, cache_file)?;
    for s in &found.skipped {
        tracing::warn!(path = %s.path.display(), reason = %s.reason, "skipping model file");
    }
    Ok(found.models)
}

/// The usable models in `dir` and the `*.gguf` files that were skipped, with reasons.
pub fn discover_all(dir: &Path, cache_file: &Path) -> Result<Discovery, DiscoverError> {
    let read_dir_err = |error| DiscoverError::ReadDir {
        dir: dir.to_path_buf(),
        error,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_dir_err)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
        })
        .collect();
    files.sort();

    let mut cache = HashCache::load(cache_file);
    let mut found = Discovery::default();
    for path in files {
        match describe(&path, &mut cache) {
            Ok(model) => found.models.push(model),
            Err(reason) => found.skipped.push(SkippedModel { path, reason }),
        }
    }
    if cache.dirty {
        cache.save(cache_file);
    }
    Ok(found)
}

fn describe(path: &Path, cache: &mut HashCache) -> Result<LocalModel, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    // The header check comes first: a truncated file is not worth hashing.
    let info = read_gguf(path).map_err(|e| e.to_string())?;
    let canonical = std::fs::canonicalize(path).map_err(|e| format!("cannot resolve path: {e}"))?;
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| u64::try_from(d.as_nanos()).ok())
        .unwrap_or(0);
    let key = CacheKey {
        size: meta.len(),
        mtime_ns,
    };
    let sha256 = match cache.get(&canonical, key) {
        Some(sha) => sha,
        None => {
            tracing::info!(path = %path.display(), size = meta.len(), "hashing model file");
            let sha = sha256_file(path).map_err(|e| format!("cannot hash: {e}"))?;
            cache.put(canonical, key, sha.clone());
            sha
        }
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = path
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(LocalModel {
        path: path.to_path_buf(),
        file_name,
        name: info
            .name()
            .filter(|n| !n.trim().is_empty())
            .map_or(stem, str::to_string),
        architecture: info.architecture().map(str::to_string),
        file_type: info.file_type_name().map(str::to_string),
        context_length: info.context_length(),
        size_bytes: meta.len(),
        sha256,
        has_chat_template: info.chat_template().is_some(),
    })
}

/// What identifies a file's content for caching purposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CacheKey {
    size: u64,
    mtime_ns: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct CacheEntry {
    path: PathBuf,
    size: u64,
    mtime_ns: u64,
    sha256: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    entries: Vec<CacheEntry>,
}

const CACHE_VERSION: u32 = 1;

/// The sha256 cache in memory.
#[derive(Debug, Default)]
struct HashCache {
    entries: BTreeMap<PathBuf, (CacheKey, String)>,
    dirty: bool,
}

impl HashCache {
    /// Loads the cache; a missing, unreadable or corrupt file gives an empty cache.
    fn load(file: &Path) -> Self {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Self::default(),
            Err(error) => {
                tracing::warn!(path = %file.display(), %error, "cannot read model hash cache, rebuilding");
                return Self::default();
            }
        };
        let parsed: CacheFile = match serde_json::from_str(&text) {
            Ok(f) => f,
            Err(error) => {
                tracing::warn!(path = %file.display(), %error, "corrupt model hash cache, rebuilding");
                return Self::default();
            }
        };
        if parsed.version != CACHE_VERSION {
            return Self::default();
        }
        let entries = parsed
            .entries
            .into_iter()
            .map(|e| {
                let key = CacheKey {
                    size: e.size,
                    mtime_ns: e.mtime_ns,
                };
                (e.path, (key, e.sha256))
            })
            .collect();
        Self {
            entries,
            dirty: false,
        }
    }

    fn get(&self, path: &Path, key: CacheKey) -> Option<String> {
        self.entries
            .get(path)
            .filter(|(k, _)| *k == key)
            .map(|(_, sha)| sha.clone())
    }

    fn put(&mut self, path: PathBuf, key: CacheKey, sha256: String) {
        self.entries.insert(path, (key, sha256));
        self.dirty = true;
    }

    /// Writes the cache atomically (temp file + rename); entries for vanished files are dropped.
    /// A failure only costs rehashing next time, so it is logged, not returned.
    fn save(&self, file: &Path) {
        let entries = self
            .entries
            .iter()
            .filter(|(path, _)| path.exists())
            .map(|(path, (key, sha))| CacheEntry {
                path: path.clone(),
                size: key.size,
                mtime_ns: key.mtime_ns,
                sha256: sha.clone(),
            })
            .collect();
        let body = CacheFile {
            version: CACHE_VERSION,
            entries,
        };
        let result = serde_json::to_string_pretty(&body)
            .map_err(std::io::Error::other)
            .and_then(|json| {
                if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)?;
                }
                let tmp = file.with_extension("tmp");
                std::fs::write(&tmp, json)?;
                std::fs::rename(&tmp, file)
            });
        if let Err(error) = result {
            tracing::warn!(path = %file.display(), %error, "cannot write model hash cache");
        }
    }
}

#[cfg(test)]
mod tests;
