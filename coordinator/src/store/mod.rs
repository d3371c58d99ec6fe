//! The coordinator's embedded store: trees of JSON records over a [`Kv`] backend.
//!
//! Trees: `runs` (run id → [`RunRecord`]), `jobs` (job id → [`JobRecord`]; ids sort by run so a run's
//! jobs are one prefix scan), `results` (`job id#attempt` → [`ResultRecord`]), `workers` (worker id →
//! [`WorkerRecord`]), `models` (sha256 → [`ModelEntry`], the registered models) and `meta` (the
//! schema version). Writes that must survive a crash (a result
//! before its ack, an assignment before it is sent, a submitted run before its id is returned) are
//! followed by [`Store::flush`].
//!
//! Ordering instead of transactions: a run's jobs are written before the run itself, and a result
//! before its job's new state, so a crash between the two leaves orphans that [`Store::open`]'s
//! callers can recognise (jobs without a run are ignored; a job with a stored result is done).
//!
//! Bad records never stop the farm: a scan skips a record it cannot decode, logs it once and keeps
//! it in [`Store::skipped`] (the startup line and `coordinator doctor` report them); the record
//! itself is left as it is for a human to look at.
//!
//! The backend is sled in the server ([`Store::open`]) and [`MemoryKv`] in the scheduler's tests
//! ([`Store::in_memory`]), which models exactly what a crash keeps.

mod keys;
pub mod kv;
pub mod memory;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use crate::models::ModelEntry;
use crate::records::{JobRecord, ResultRecord, RunRecord, WorkerRecord};
pub use keys::result_key;
use kv::{Kv, SledKv, Tree};
pub use memory::MemoryKv;

/// Bumped when a stored record changes incompatibly; `open` refuses a newer store. Version 2: job
/// ids and result keys are zero-padded to 10 digits (every u32), so they sort numerically.
pub const SCHEMA_VERSION: u32 = 2;

/// The most memory sled's page cache may take.
const CACHE_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store at {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    #[error("store: {0}")]
    Backend(String),
    #[error("store: record {tree}/{key} is not valid: {source}")]
    Corrupt {
        tree: &'static str,
        key: String,
        source: serde_json::Error,
    },
    #[error("store: cannot encode {what}: {source}")]
    Encode {
        what: String,
        source: serde_json::Error,
    },
    #[error("store at {path} has schema version {found}; this coordinator reads up to {supported}")]
    Schema {
        path: String,
        found: u32,
        supported: u32,
    },
}

impl StoreError {
    /// Whether another holder (a previous instance winding down) still has the store's lock.
    pub fn is_locked(&self) -> bool {
        matches!(self, StoreError::Open { source: sled::Error::Io(e), .. }
            if e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock"))
    }
}

/// A record a scan could not decode: where it is and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRecord {
    pub tree: &'static str,
    pub key: String,
    pub error: String,
}

/// A handle to the store; cheap to clone (clones share the backend).
#[derive(Clone, Debug)]
pub struct Store {
    kv: Arc<dyn Kv>,
    /// Records skipped by scans, by (tree, key): reported once each.
    skipped: Arc<Mutex<BTreeMap<(&'static str, String), String>>>,
}

impl Store {
    /// Opens (or creates) the sled store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.display().to_string();
        // sled's page cache defaults to 1 GB; 16 MiB holds the live runs' working set, and
        // finished runs are read from disk when a report asks for them. Measured side by side
        // at 100,000 jobs (docs/benchmarks.md): 16 MiB instead of 64 MiB took the run's peak
        // RSS from 313-350 MB to 235-253 MB at the same jobs/s and report time.
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        Store::with_backend(Arc::new(SledKv::open(db)?), &path)
    }

    /// A store over an in-memory backend (tests; see [`MemoryKv`]).
    pub fn in_memory(kv: MemoryKv) -> Result<Store, StoreError> {
        Store::with_backend(Arc::new(kv), "memory")
    }

    fn with_backend(kv: Arc<dyn Kv>, path: &str) -> Result<Store, StoreError> {
        match kv.get(Tree::Meta, b"schema_version")? {
            Some(v) => {
                let found = std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u32::MAX);
                if found > SCHEMA_VERSION {
                    return Err(StoreError::Schema {
                        path: path.to_string(),
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                if found < SCHEMA_VERSION {
                    // Version 1 differs only in the padding of new ids; old ones still resolve.
                    kv.insert(
                        Tree::Meta,
                        b"schema_version",
                        SCHEMA_VERSION.to_string().into_bytes(),
                    )?;
                }
            }
            None => {
                kv.insert(
                    Tree::Meta,
                    b"schema_version",
                    SCHEMA_VERSION.to_string().into_bytes(),
                )?;
            }
        }
        Ok(Store {
            kv,
            skipped: Arc::default(),
        })
    }

    /// [`Store::open`], waiting up to `wait` while another holder still has the lock (a store
    /// reopened in the same process right after it was closed: sled releases its lock from a
    /// background thread). For tools and tests; the server waits asynchronously.
    pub fn open_waiting(dir: &Path, wait: std::time::Duration) -> Result<Store, StoreError> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match Store::open(dir) {
                Err(err) if err.is_locked() && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                result => return result,
            }
        }
    }

    /// Makes every write so far durable.
    /// Makes every write so far durable (fsync). Its latency is the
    /// `benchfarm_store_flush_seconds` histogram when metrics are served.
    pub fn flush(&self) -> Result<(), StoreError> {
        if !benchfarm_telemetry::metrics_on() {
            return self.kv.flush();
        }
        let started = std::time::Instant::now();
        let flushed = self.kv.flush();
        metrics::histogram!("benchfarm_store_flush_seconds")
            .record(started.elapsed().as_secs_f64());
        flushed
    }

    /// Every record a scan has skipped so far because it could not be decoded.
    pub fn skipped(&self) -> Vec<SkippedRecord> {
        self.skipped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((tree, key), error)| SkippedRecord {
                tree,
                key: key.clone(),
                error: error.clone(),
            })
            .collect()
    }

    pub fn put_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        self.put(Tree::Runs, &run.id, run)
    }

    pub fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.get(Tree::Runs, id)
    }

    /// Every run, oldest first (run ids are UUIDv7, which sort by creation time).
    pub fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.scan(Tree::Runs, "")
    }

    pub fn put_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        self.put(Tree::Jobs, &job.id, job)
    }

    /// Writes many jobs, a batch at a time: encoded per batch, so a 100,000-job run is never
    /// held encoded all at once. Not atomic as a whole, which the write order makes safe (a
    /// run's jobs go before the run; jobs without their run are ignored).
    pub fn put_jobs(&self, jobs: &[JobRecord]) -> Result<(), StoreError> {
        for batch in jobs.chunks(kv::BATCH_ENTRIES) {
            let entries = batch
                .iter()
                .map(|job| Ok((job.id.as_bytes().to_vec(), encode(&job.id, job)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            self.kv.insert_many(Tree::Jobs, entries)?;
        }
        Ok(())
    }

    pub fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.get(Tree::Jobs, id)
    }

    /// The jobs of one run, in expansion order.
    pub fn jobs_of_run(&self, run_id: &str) -> Result<Vec<JobRecord>, StoreError> {
        self.scan(Tree::Jobs, &keys::run_prefix(run_id))
    }

    /// Stores a result unless one is already stored for its (job, attempt). Returns whether it was new.
    pub fn insert_result(&self, result: &ResultRecord) -> Result<bool, StoreError> {
        let key = result_key(&result.job_id, result.attempt);
        let value = encode(&key, result)?;
        self.kv.insert_new(Tree::Results, key.as_bytes(), value)
    }

    /// Replaces a stored result (regrading).
    pub fn put_result(&self, result: &ResultRecord) -> Result<(), StoreError> {
        self.put(
            Tree::Results,
            &result_key(&result.job_id, result.attempt),
            result,
        )
    }

    /// The result of one (job, attempt), if stored.
    pub fn result(&self, job_id: &str, attempt: u32) -> Result<Option<ResultRecord>, StoreError> {
        self.get(Tree::Results, &result_key(job_id, attempt))
    }

    /// Every result of every attempt of one job.
    pub fn results_of_job(&self, job_id: &str) -> Result<Vec<ResultRecord>, StoreError> {
        self.scan(Tree::Results, &keys::job_prefix(job_id))
    }

    /// Every result of a run, counted or not.
    pub fn results_of_run(&self, run_id: &str) -> Result<Vec<ResultRecord>, StoreError> {
        self.scan(Tree::Results, &keys::run_prefix(run_id))
    }

    /// Calls `visit` with each result of a run, in key order, decoding one at a time.
    pub fn for_each_result_of_run(
        &self,
        run_id: &str,
        visit: impl FnMut(ResultRecord),
    ) -> Result<(), StoreError> {
        self.for_each(Tree::Results, &keys::run_prefix(run_id), visit)
    }

    /// Calls `visit` with each job of a run, in expansion order, decoding one at a time.
    pub fn for_each_job_of_run(
        &self,
        run_id: &str,
        visit: impl FnMut(JobRecord),
    ) -> Result<(), StoreError> {
        self.for_each(Tree::Jobs, &keys::run_prefix(run_id), visit)
    }

    pub fn put_worker(&self, worker: &WorkerRecord) -> Result<(), StoreError> {
        self.put(Tree::Workers, &worker.id, worker)
    }

    pub fn worker(&self, id: &str) -> Result<Option<WorkerRecord>, StoreError> {
        self.get(Tree::Workers, id)
    }

    pub fn workers(&self) -> Result<Vec<WorkerRecord>, StoreError> {
        self.scan(Tree::Workers, "")
    }

    pub fn put_model(&self, model: &ModelEntry) -> Result<(), StoreError> {
        self.put(Tree::Models, &model.sha256, model)
    }

    /// Every registered model, by sha256.
    pub fn models(&self) -> Result<Vec<ModelEntry>, StoreError> {
        self.scan(Tree::Models, "")
    }

    pub fn remove_model(&self, sha256: &str) -> Result<(), StoreError> {
        self.kv.remove(Tree::Models, sha256.as_bytes())
    }

    fn put<T: Serialize>(&self, tree: Tree, key: &str, value: &T) -> Result<(), StoreError> {
        self.kv.insert(tree, key.as_bytes(), encode(key, value)?)
    }

    fn get<T: DeserializeOwned>(&self, tree: Tree, key: &str) -> Result<Option<T>, StoreError> {
        self.kv
            .get(tree, key.as_bytes())?
            .map(|v| decode(tree.name(), key.as_bytes(), &v))
            .transpose()
    }

    /// Every decodable record under `prefix`; the others are skipped and reported.
    fn scan<T: DeserializeOwned>(&self, tree: Tree, prefix: &str) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        self.for_each(tree, prefix, |record| out.push(record))?;
        Ok(out)
    }

    /// Every decodable record under `prefix`, one at a time; the others are skipped and reported.
    fn for_each<T: DeserializeOwned>(
        &self,
        tree: Tree,
        prefix: &str,
        mut visit: impl FnMut(T),
    ) -> Result<(), StoreError> {
        self.kv.for_each_prefix(
            tree,
            prefix.as_bytes(),
            &mut |k, v| match decode(tree.name(), k, v) {
                Ok(record) => visit(record),
                Err(err) => self.skip(tree, k, &err),
            },
        )
    }

    fn skip(&self, tree: Tree, key: &[u8], err: &StoreError) {
        let key = String::from_utf8_lossy(key).into_owned();
        let mut skipped = self.skipped.lock().unwrap_or_else(|p| p.into_inner());
        if !skipped.contains_key(&(tree.name(), key.clone())) {
            warn!(tree = tree.name(), key = %key, error = %err, "undecodable record skipped");
            skipped.insert((tree.name(), key), err.to_string());
        }
    }
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Encode {
        what: key.to_string(),
        source,
    })
}

fn decode<T: DeserializeOwned>(
    tree: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt {
        tree,
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

#[cfg(test)]
mod tests;
