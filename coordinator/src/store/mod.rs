//! The coordinator's embedded store: sled trees of JSON records.
//!
//! Trees: `runs` (run id → [`RunRecord`]), `jobs` (job id → [`JobRecord`]; ids sort by run so a run's
//! jobs are one prefix scan), `results` (`job id#attempt` → [`ResultRecord`]), `workers` (worker id →
//! [`WorkerRecord`]) and `meta` (the schema version). Writes that must survive a crash (a result
//! before its ack, a submitted run before its id is returned) are followed by [`Store::flush`].
//!
//! Ordering instead of transactions: a run's jobs are written before the run itself, and a result
//! before its job's new state, so a crash between the two leaves orphans that [`Store::open`]'s
//! callers can recognise (jobs without a run are ignored; a job with a stored result is done).

mod keys;

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::records::{JobRecord, ResultRecord, RunRecord, WorkerRecord};
pub use keys::result_key;

/// Bumped when a stored record changes incompatibly; `open` refuses a newer store.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store at {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
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

/// A handle to the store; cheap to clone (sled trees are reference counted).
#[derive(Clone, Debug)]
pub struct Store {
    db: sled::Db,
    runs: sled::Tree,
    jobs: sled::Tree,
    results: sled::Tree,
    workers: sled::Tree,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.display().to_string();
        let db = sled::open(dir).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        let meta = db.open_tree("meta")?;
        match meta.get("schema_version")? {
            Some(v) => {
                let found = std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u32::MAX);
                if found > SCHEMA_VERSION {
                    return Err(StoreError::Schema {
                        path,
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
            }
            None => {
                meta.insert("schema_version", SCHEMA_VERSION.to_string().as_bytes())?;
            }
        }
        Ok(Store {
            runs: db.open_tree("runs")?,
            jobs: db.open_tree("jobs")?,
            results: db.open_tree("results")?,
            workers: db.open_tree("workers")?,
            db,
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
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    pub fn put_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        put(&self.runs, &run.id, run)
    }

    pub fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        get(&self.runs, "runs", id)
    }

    /// Every run, oldest first (run ids are UUIDv7, which sort by creation time).
    pub fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        scan(&self.runs, "runs", "")
    }

    pub fn put_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        put(&self.jobs, &job.id, job)
    }

    /// Writes many jobs in one sled batch.
    pub fn put_jobs(&self, jobs: &[JobRecord]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for job in jobs {
            batch.insert(job.id.as_bytes(), encode(&job.id, job)?);
        }
        self.jobs.apply_batch(batch)?;
        Ok(())
    }

    pub fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        get(&self.jobs, "jobs", id)
    }

    /// The jobs of one run, in expansion order.
    pub fn jobs_of_run(&self, run_id: &str) -> Result<Vec<JobRecord>, StoreError> {
        scan(&self.jobs, "jobs", &keys::run_prefix(run_id))
    }

    /// Stores a result unless one is already stored for its (job, attempt). Returns whether it was new.
    pub fn insert_result(&self, result: &ResultRecord) -> Result<bool, StoreError> {
        let key = result_key(&result.job_id, result.attempt);
        let value = encode(&key, result)?;
        let previous =
            self.results
                .compare_and_swap(key.as_bytes(), None as Option<&[u8]>, Some(value))?;
        Ok(previous.is_ok())
    }

    /// Replaces a stored result (regrading).
    pub fn put_result(&self, result: &ResultRecord) -> Result<(), StoreError> {
        put(
            &self.results,
            &result_key(&result.job_id, result.attempt),
            result,
        )
    }

    /// Every result of every attempt of one job.
    pub fn results_of_job(&self, job_id: &str) -> Result<Vec<ResultRecord>, StoreError> {
        scan(&self.results, "results", &keys::job_prefix(job_id))
    }

    /// Every result of a run, counted or not.
    pub fn results_of_run(&self, run_id: &str) -> Result<Vec<ResultRecord>, StoreError> {
        scan(&self.results, "results", &keys::run_prefix(run_id))
    }

    pub fn put_worker(&self, worker: &WorkerRecord) -> Result<(), StoreError> {
        put(&self.workers, &worker.id, worker)
    }

    pub fn workers(&self) -> Result<Vec<WorkerRecord>, StoreError> {
        scan(&self.workers, "workers", "")
    }
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Encode {
        what: key.to_string(),
        source,
    })
}

fn put<T: Serialize>(tree: &sled::Tree, key: &str, value: &T) -> Result<(), StoreError> {
    tree.insert(key.as_bytes(), encode(key, value)?)?;
    Ok(())
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

fn get<T: DeserializeOwned>(
    tree: &sled::Tree,
    name: &'static str,
    key: &str,
) -> Result<Option<T>, StoreError> {
    tree.get(key.as_bytes())?
        .map(|v| decode(name, key.as_bytes(), &v))
        .transpose()
}

fn scan<T: DeserializeOwned>(
    tree: &sled::Tree,
    name: &'static str,
    prefix: &str,
) -> Result<Vec<T>, StoreError> {
    tree.scan_prefix(prefix.as_bytes())
        .map(|kv| {
            let (k, v) = kv?;
            decode(name, &k, &v)
        })
        .collect()
}

#[cfg(test)]
mod tests;
