//! An in-memory [`Kv`] that models durability exactly, for the scheduler's deterministic tests.
//!
//! Writes land in an ordered log and are volatile until [`Kv::flush`]; [`MemoryKv::crash`] returns
//! the store a restarted process would find: everything flushed, plus (like sled's ordered log)
//! only a *prefix* of the writes made since, of a length the test chooses. Counters of records read
//! and scans made let tests assert that a scheduler step costs what it should, not the size of the
//! history, and [`MemoryKv::fail_writes`] makes the next writes fail, as a full disk would.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::StoreError;
use super::kv::{Entry, Kv, Tree};

type Key = (Tree, Vec<u8>);

#[derive(Debug, Default)]
struct State {
    /// What a crash right now would keep at the least.
    durable: BTreeMap<Key, Vec<u8>>,
    /// Writes since the last flush, oldest first (`None`: a removal).
    log: Vec<(Key, Option<Vec<u8>>)>,
    /// What reads see: `durable` with `log` applied.
    view: BTreeMap<Key, Vec<u8>>,
    stats: KvStats,
    failing_writes: u32,
}

/// What the store was asked to do since the counters were last reset.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KvStats {
    /// Records returned by `get` and `scan_prefix` (each a decode for the store above).
    pub records_read: u64,
    pub scans: u64,
    pub writes: u64,
    pub flushes: u64,
}

/// See the module docs. Clones share one store.
#[derive(Debug, Clone, Default)]
pub struct MemoryKv {
    state: Arc<Mutex<State>>,
}

impl MemoryKv {
    pub fn new() -> MemoryKv {
        MemoryKv::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already; the data is still whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store a process restarted after a crash finds: every flushed write, then the first
    /// `keep_unflushed` writes made after the last flush (capped at their number).
    pub fn crash(&self, keep_unflushed: usize) -> MemoryKv {
        let state = self.lock();
        let mut durable = state.durable.clone();
        for (key, value) in state.log.iter().take(keep_unflushed) {
            apply(&mut durable, key.clone(), value.clone());
        }
        MemoryKv {
            state: Arc::new(Mutex::new(State {
                view: durable.clone(),
                durable,
                ..State::default()
            })),
        }
    }

    /// Writes made since the last flush (what a crash may lose).
    pub fn unflushed(&self) -> usize {
        self.lock().log.len()
    }

    pub fn stats(&self) -> KvStats {
        self.lock().stats
    }

    pub fn reset_stats(&self) {
        self.lock().stats = KvStats::default();
    }

    /// Makes the next `n` writes (inserts and flushes) fail.
    pub fn fail_writes(&self, n: u32) {
        self.lock().failing_writes = n;
    }

    /// Overwrites a value in place, durably, bypassing encodings: for tests of corrupt records.
    pub fn corrupt(&self, tree: Tree, key: &[u8], bytes: &[u8]) {
        let mut state = self.lock();
        let key = (tree, key.to_vec());
        state.durable.insert(key.clone(), bytes.to_vec());
        state.view.insert(key, bytes.to_vec());
    }
}

impl State {
    fn write(&mut self, key: Key, value: Vec<u8>) {
        self.stats.writes += 1;
        self.view.insert(key.clone(), value.clone());
        self.log.push((key, Some(value)));
    }

    fn remove(&mut self, key: Key) {
        self.stats.writes += 1;
        self.view.remove(&key);
        self.log.push((key, None));
    }

    fn check_failure(&mut self) -> Result<(), StoreError> {
        if self.failing_writes > 0 {
            self.failing_writes -= 1;
            return Err(StoreError::Backend("injected write failure".into()));
        }
        Ok(())
    }
}

impl Kv for MemoryKv {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let mut state = self.lock();
        let value = state.view.get(&(tree, key.to_vec())).cloned();
        state.stats.records_read += u64::from(value.is_some());
        Ok(value)
    }

    fn insert(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.check_failure()?;
        state.write((tree, key.to_vec()), value);
        Ok(())
    }

    fn insert_new(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<bool, StoreError> {
        let mut state = self.lock();
        state.check_failure()?;
        let key = (tree, key.to_vec());
        if state.view.contains_key(&key) {
            return Ok(false);
        }
        state.write(key, value);
        Ok(true)
    }

    fn insert_many(&self, tree: Tree, entries: Vec<Entry>) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.check_failure()?;
        for (k, v) in entries {
            state.write((tree, k), v);
        }
        Ok(())
    }

    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        let mut state = self.lock();
        let start = (tree, prefix.to_vec());
        let found: Vec<Entry> = state
            .view
            .range(start..)
            .take_while(|((t, k), _)| *t == tree && k.starts_with(prefix))
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect();
        state.stats.scans += 1;
        state.stats.records_read += found.len() as u64;
        Ok(found)
    }

    fn flush(&self) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.check_failure()?;
        state.stats.flushes += 1;
        let log = std::mem::take(&mut state.log);
        for (key, value) in log {
            apply(&mut state.durable, key, value);
        }
        Ok(())
    }

    fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.check_failure()?;
        state.remove((tree, key.to_vec()));
        Ok(())
    }
}

/// One logged write applied to a map: an insert, or (`None`) a removal.
fn apply(map: &mut BTreeMap<Key, Vec<u8>>, key: Key, value: Option<Vec<u8>>) {
    match value {
        Some(value) => {
            map.insert(key, value);
        }
        None => {
            map.remove(&key);
        }
    }
}
