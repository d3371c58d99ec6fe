//! The worker's model cache (`--cache DIR`, default `STATE/models`; `--cache-max SIZE`): models
//! fetched from the coordinator, beside the read-only `--models` directory.
//!
//! Layout: `DIR/sha256/<hex>` holds verified models, named by their digest; `DIR/partial/<hex>.part`
//! a fetch in progress (kept across restarts, so a fetch resumes where it stopped). A file becomes a
//! model only by an atomic rename after its digest matched, so nothing in `sha256/` was ever an
//! unverified transfer.
//!
//! Verification on use: a file found in `sha256/` at startup is trusted by name for the hello, and
//! hashed before its first use in this process (once: later jobs of it skip the hash). A file
//! whose bytes do not match (a flipped bit on the SD card, an edit) is deleted and fetched again;
//! the same goes for a transfer that arrives wrong. The second mismatch for one job fails the job
//! with that reason.
//!
//! Room: the cache stays under its capacity (`--cache-max`, and never beyond the disk's free space
//! less a reserve) by evicting the least recently used models that no job holds ([`lru`]); when
//! models in use hold the space, a fetch waits for one of them to be released. A [`Lease`] holds a
//! model while a job uses it.

pub mod fetch;
pub mod lru;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use benchfarm_proto::v1 as pb;
use tokio::sync::Notify;
use tracing::{info, warn};

use fetch::FetchError;
pub use fetch::Source;
use lru::{Cached, NoRoom};

/// Disk space a cache without `--cache-max` leaves free.
const DISK_RESERVE_BYTES: u64 = 1 << 30;
/// Tries of one transfer that keeps being interrupted (each resumes where the last stopped).
const FETCH_TRIES: u32 = 5;

#[derive(Debug)]
struct Entry {
    size_bytes: u64,
    last_used_ms: i64,
    in_use: u32,
    /// Hashed in this process (or arrived verified).
    verified: bool,
    name: String,
    file_name: String,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Fetches under way: sha256 → bytes they will take.
    pending: HashMap<String, u64>,
    capacity: u64,
    /// Measured fetch rate (bytes per second, smoothed).
    rate: Option<f64>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    max: Option<u64>,
    state: Mutex<State>,
    /// Told when a lease ends or a fetch finishes: a fetch waiting for room looks again.
    changed: Notify,
    /// One fetch per digest at a time: a second job of a model being fetched waits for it.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The cache; clones share it.
#[derive(Debug, Clone)]
pub struct ModelCache {
    inner: Arc<Inner>,
}

/// A model held for one job: not evicted until dropped.
#[derive(Debug)]
pub struct Lease {
    inner: Arc<Inner>,
    sha256: String,
    pub path: PathBuf,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let now = now_ms();
        {
            let mut state = self.inner.lock();
            if let Some(e) = state.entries.get_mut(&self.sha256) {
                e.in_use = e.in_use.saturating_sub(1);
                e.last_used_ms = now;
            }
        }
        // Its mtime carries the last use across restarts (one small metadata write).
        if let Ok(file) = std::fs::File::options().write(true).open(&self.path) {
            let _ = file.set_modified(SystemTime::now());
        }
        self.inner.changed.notify_waiters();
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn stored(&self, sha256: &str) -> PathBuf {
        self.dir.join("sha256").join(sha256)
    }

    fn partial(&self, sha256: &str) -> PathBuf {
        self.dir.join("partial").join(format!("{sha256}.part"))
    }

    /// The capacity now: `--cache-max`, within what the disk has (blocking: statvfs).
    fn refresh_capacity(&self) {
        let used: u64 = {
            let state = self.lock();
            state.entries.values().map(|e| e.size_bytes).sum::<u64>()
                + state.pending.values().sum::<u64>()
        };
        let disk = fs2::available_space(&self.dir)
            .map(|free| used + free.saturating_sub(DISK_RESERVE_BYTES))
            .unwrap_or(u64::MAX);
        let capacity = self.max.map_or(disk, |max| max.min(disk));
        self.lock().capacity = capacity;
        metrics::gauge!("benchfarm_worker_cache_capacity_bytes").set(capacity as f64);
        metrics::gauge!("benchfarm_worker_cache_bytes").set(used as f64);
    }
}

impl ModelCache {
    /// The cache in `dir` (created if missing), its models found by name (blocking).
    pub fn open(dir: &Path, max: Option<u64>) -> std::io::Result<ModelCache> {
        std::fs::create_dir_all(dir.join("sha256"))?;
        std::fs::create_dir_all(dir.join("partial"))?;
        let mut entries = HashMap::new();
        for file in std::fs::read_dir(dir.join("sha256"))? {
            let file = file?;
            let name = file.file_name().to_string_lossy().into_owned();
            let meta = file.metadata()?;
            if !meta.is_file() || !is_sha256(&name) {
                warn!(file = %file.path().display(), "not a cached model (its name must be its sha256); ignored");
                continue;
            }
            let last_used_ms = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
            entries.insert(
                name,
                Entry {
                    size_bytes: meta.len(),
                    last_used_ms,
                    in_use: 0,
                    verified: false,
                    name: String::new(),
                    file_name: String::new(),
                },
            );
        }
        let cache = ModelCache {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                max,
                state: Mutex::new(State {
                    entries,
                    ..State::default()
                }),
                changed: Notify::new(),
                locks: Mutex::new(HashMap::new()),
            }),
        };
        cache.inner.refresh_capacity();
        let report = cache.report();
        info!(dir = %dir.display(), models = report.models.len(), capacity = report.capacity_bytes,
              "model cache open");
        Ok(cache)
    }

    /// What the cache holds and could take, for the hello and heartbeats.
    pub fn report(&self) -> pb::CacheInfo {
        let state = self.inner.lock();
        let mut models: Vec<pb::ModelInfo> = state
            .entries
            .iter()
            .map(|(sha, e)| pb::ModelInfo {
                sha256: sha.clone(),
                name: e.name.clone(),
                size_bytes: e.size_bytes,
                file_name: e.file_name.clone(),
                ..pb::ModelInfo::default()
            })
            .collect();
        models.sort_by(|a, b| a.sha256.cmp(&b.sha256));
        let pinned = state
            .entries
            .values()
            .filter(|e| e.in_use > 0)
            .map(|e| e.size_bytes)
            .sum::<u64>()
            + state.pending.values().sum::<u64>();
        pb::CacheInfo {
            capacity_bytes: state.capacity,
            pinned_bytes: pinned,
            models,
            transfer_bytes_per_second: state.rate.unwrap_or(0.0),
        }
    }

    /// Whether the cache holds this digest (verified or not).
    pub fn holds(&self, sha256: &str) -> bool {
        self.inner.lock().entries.contains_key(sha256)
    }

    /// The model `model` names, verified, fetched first when the cache lacks it; held until the
    /// lease is dropped. The error is the job's failure reason.
    pub async fn acquire(&self, model: &pb::ModelRef, source: &Source) -> Result<Lease, String> {
        let sha256 = model.sha256.to_ascii_lowercase();
        if !is_sha256(&sha256) {
            return Err(format!(
                "model {}: {:?} is not a sha256",
                model.name, model.sha256
            ));
        }
        let lock = {
            let mut locks = self.inner.locks.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(sha256.clone()).or_default().clone()
        };
        let _one_at_a_time = lock.lock().await;
        let mut mismatches = 0u32;
        loop {
            match self.use_cached(model, &sha256).await {
                Some(Ok(lease)) => return Ok(lease),
                Some(Err(why)) => {
                    mismatches += 1;
                    metrics::counter!("benchfarm_worker_model_fetches_total", "outcome" => "corrupt")
                        .increment(1);
                    warn!(model = %model.name, sha256 = %sha256, reason = %why,
                          "cached model corrupt; deleted, fetching it again");
                }
                None => {}
            }
            match self.fetch_once(model, &sha256, source).await? {
                Ok(lease) => return Ok(lease),
                Err(got) => {
                    mismatches += 1;
                    metrics::counter!("benchfarm_worker_model_fetches_total", "outcome" => "corrupt")
                        .increment(1);
                    let why = format!(
                        "model {} (sha256 {sha256}): the fetched bytes hash to {got}",
                        model.name
                    );
                    if mismatches >= 2 {
                        return Err(format!(
                            "{why}, after it was deleted and fetched again; the coordinator's copy may be corrupt"
                        ));
                    }
                    warn!(model = %model.name, reason = %why, "fetched model corrupt; deleted, fetching it again");
                }
            }
        }
    }

    /// The cached model, verified on its first use here: `None` when it is not cached, an error
    /// (the file already deleted) when its bytes are not its digest.
    async fn use_cached(
        &self,
        model: &pb::ModelRef,
        sha256: &str,
    ) -> Option<Result<Lease, String>> {
        let verified = {
            let mut state = self.inner.lock();
            let e = state.entries.get_mut(sha256)?;
            e.in_use += 1;
            if e.name.is_empty() {
                e.name = model.name.clone();
            }
            e.verified
        };
        let lease = Lease {
            inner: self.inner.clone(),
            sha256: sha256.to_string(),
            path: self.inner.stored(sha256),
        };
        if verified {
            return Some(Ok(lease));
        }
        let path = lease.path.clone();
        let hashed = tokio::task::spawn_blocking(move || benchfarm_modelfile::sha256_file(&path))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r);
        match hashed {
            Ok(actual) if actual == sha256 => {
                if let Some(e) = self.inner.lock().entries.get_mut(sha256) {
                    e.verified = true;
                }
                info!(model = %model.name, sha256, "cached model verified");
                Some(Ok(lease))
            }
            other => {
                let why = match other {
                    Ok(actual) => format!("its bytes hash to {actual}"),
                    Err(e) => format!("cannot read it: {e}"),
                };
                drop(lease);
                self.inner.lock().entries.remove(sha256);
                let path = self.inner.stored(sha256);
                let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
                Some(Err(why))
            }
        }
    }

    /// Makes room, fetches, and on a matching digest moves the file into the cache. `Ok(Err(got))`:
    /// the transfer completed but hashed to `got` (the partial file is deleted).
    async fn fetch_once(
        &self,
        model: &pb::ModelRef,
        sha256: &str,
        source: &Source,
    ) -> Result<Result<Lease, String>, String> {
        let size = model.size_bytes;
        if size == 0 {
            return Err(format!(
                "model {}: the assignment gives no size to fetch",
                model.name
            ));
        }
        self.reserve(model, sha256, size).await?;
        let partial = self.inner.partial(sha256);
        let mut tries = 0;
        let outcome = loop {
            tries += 1;
            match fetch::fetch(source, &model.name, sha256, size, &partial).await {
                Err(FetchError::Interrupted { at, why }) if tries < FETCH_TRIES => {
                    let wait = Duration::from_secs(1 << (tries - 1));
                    warn!(model = %model.name, at, reason = %why, retry_in_s = wait.as_secs(),
                          "model fetch interrupted; resuming");
                    tokio::time::sleep(wait).await;
                }
                other => break other,
            }
        };
        let fetched = match outcome {
            Ok(f) => f,
            Err(err) => {
                self.inner.lock().pending.remove(sha256);
                self.inner.changed.notify_waiters();
                metrics::counter!("benchfarm_worker_model_fetches_total", "outcome" => "failed")
                    .increment(1);
                return Err(format!("fetching model {}: {err}", model.name));
            }
        };
        let (inner, sha, good) = (
            self.inner.clone(),
            sha256.to_string(),
            fetched.sha256 == sha256,
        );
        let placed = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let partial = inner.partial(&sha);
            if good {
                std::fs::rename(&partial, inner.stored(&sha))?;
                std::fs::File::open(inner.dir.join("sha256"))?.sync_all()?;
            } else {
                std::fs::remove_file(&partial)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
        {
            let mut state = self.inner.lock();
            state.pending.remove(sha256);
            if good && placed.is_ok() {
                state.entries.insert(
                    sha256.to_string(),
                    Entry {
                        size_bytes: size,
                        last_used_ms: now_ms(),
                        in_use: 1,
                        verified: true,
                        name: model.name.clone(),
                        file_name: match &model.source {
                            Some(pb::model_ref::Source::Gguf(g)) => g.file_name.clone(),
                            _ => String::new(),
                        },
                    },
                );
                if fetched.transferred > 0 && fetched.seconds > 0.0 {
                    let sample = fetched.transferred as f64 / fetched.seconds;
                    state.rate = Some(state.rate.map_or(sample, |r| 0.5 * r + 0.5 * sample));
                }
            }
        }
        self.inner.changed.notify_waiters();
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.refresh_capacity())
            .await
            .ok();
        placed.map_err(|e| format!("storing model {}: {e}", model.name))?;
        if !good {
            return Ok(Err(fetched.sha256));
        }
        metrics::counter!("benchfarm_worker_model_fetches_total", "outcome" => "fetched")
            .increment(1);
        metrics::histogram!("benchfarm_worker_model_fetch_seconds").record(fetched.seconds);
        info!(model = %model.name, sha256, bytes = fetched.transferred, resumed_from = fetched.offset,
              seconds = format!("{:.2}", fetched.seconds),
              mb_per_s = format!("{:.1}", fetched.transferred as f64 / 1e6 / fetched.seconds.max(1e-9)),
              "model fetched and verified");
        Ok(Ok(Lease {
            inner: self.inner.clone(),
            sha256: sha256.to_string(),
            path: self.inner.stored(sha256),
        }))
    }

    /// Evicts what must go for `size` more bytes and records the fetch as pending; waits while
    /// models in use hold the room.
    async fn reserve(&self, model: &pb::ModelRef, sha256: &str, size: u64) -> Result<(), String> {
        let mut waited = false;
        loop {
            let plan = {
                let mut state = self.inner.lock();
                let entries: Vec<Cached> = state
                    .entries
                    .iter()
                    .map(|(sha, e)| Cached {
                        sha256: sha.clone(),
                        size_bytes: e.size_bytes,
                        last_used_ms: e.last_used_ms,
                        in_use: e.in_use,
                    })
                    .collect();
                let pending = state.pending.values().sum();
                let plan = lru::evictions(&entries, pending, state.capacity, size);
                if let Ok(evict) = &plan {
                    for sha in evict {
                        state.entries.remove(sha);
                    }
                    state.pending.insert(sha256.to_string(), size);
                }
                plan
            };
            match plan {
                Ok(evict) => {
                    for sha in &evict {
                        info!(sha256 = %sha, for_model = %model.name, "cached model evicted (least recently used)");
                        metrics::counter!("benchfarm_worker_cache_evictions_total").increment(1);
                    }
                    let paths: Vec<PathBuf> = evict.iter().map(|s| self.inner.stored(s)).collect();
                    let _ = tokio::task::spawn_blocking(move || {
                        for p in paths {
                            if let Err(e) = std::fs::remove_file(&p) {
                                warn!(file = %p.display(), error = %e, "cannot delete an evicted model");
                            }
                        }
                    })
                    .await;
                    return Ok(());
                }
                Err(NoRoom::TooLarge { need, capacity }) => {
                    return Err(format!(
                        "model {} ({need} bytes) is larger than this worker's model cache ({capacity} bytes, --cache-max)",
                        model.name
                    ));
                }
                Err(NoRoom::Busy { need, room }) => {
                    if !waited {
                        info!(model = %model.name, need, room, "waiting for models in use to free cache room");
                        waited = true;
                    }
                    // Woken by a lease's end; the timeout covers a wake-up that came first.
                    let _ =
                        tokio::time::timeout(Duration::from_secs(1), self.inner.changed.notified())
                            .await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cached_file_is_trusted_by_name_then_verified_on_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let body = b"GGUF fake model".to_vec();
        let sha = benchfarm_modelfile::sha256_bytes(&body);
        std::fs::create_dir_all(dir.path().join("sha256")).unwrap();
        std::fs::write(dir.path().join("sha256").join(&sha), &body).unwrap();
        let bad = "0".repeat(64);
        std::fs::write(dir.path().join("sha256").join(&bad), b"not it").unwrap();
        std::fs::write(dir.path().join("sha256").join("junk"), b"x").unwrap();
        let cache = ModelCache::open(dir.path(), Some(1000)).unwrap();
        let report = cache.report();
        assert_eq!(report.models.len(), 2, "{report:?}");
        assert_eq!(report.capacity_bytes, 1000);
        let model = |sha: &str| pb::ModelRef {
            name: "m".into(),
            sha256: sha.into(),
            size_bytes: 15,
            ..pb::ModelRef::default()
        };
        let lease = cache.use_cached(&model(&sha), &sha).await.unwrap().unwrap();
        assert_eq!(cache.report().pinned_bytes, body.len() as u64);
        drop(lease);
        assert_eq!(cache.report().pinned_bytes, 0);
        // The corrupt one is found out on use, and deleted.
        let err = cache
            .use_cached(&model(&bad), &bad)
            .await
            .unwrap()
            .unwrap_err();
        assert!(err.contains("hash to"), "{err}");
        assert!(!dir.path().join("sha256").join(&bad).exists());
        assert!(!cache.holds(&bad));
        assert!(cache.use_cached(&model(&bad), &bad).await.is_none());
    }
}
