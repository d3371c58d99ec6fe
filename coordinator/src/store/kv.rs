//! The byte-level key-value layer under [`Store`](super::Store): a [`Kv`] trait with two
//! implementations, sled for the server and [`MemoryKv`](super::memory::MemoryKv) for tests.
//!
//! The store's records, encodings and key layout live one level up; this layer only knows trees of
//! bytes, "insert unless present" (how a result is stored exactly once) and `flush` (the point
//! after which a write survives a crash). Keeping the trait this small is what lets the in-memory
//! implementation model durability exactly — sled flushes on drop and every 500 ms, so it cannot be
//! made to lose what a real crash would lose.

use super::StoreError;

/// The trees of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tree {
    Meta,
    Runs,
    Jobs,
    Results,
    Workers,
    /// Registered models (sha256 → entry), for `coordinator models` and FetchModel.
    Models,
}

impl Tree {
    pub const ALL: [Tree; 6] = [
        Tree::Meta,
        Tree::Runs,
        Tree::Jobs,
        Tree::Results,
        Tree::Workers,
        Tree::Models,
    ];

    /// The tree's name, as sled stores it and as errors name it.
    pub fn name(self) -> &'static str {
        match self {
            Tree::Meta => "meta",
            Tree::Runs => "runs",
            Tree::Jobs => "jobs",
            Tree::Results => "results",
            Tree::Workers => "workers",
            Tree::Models => "models",
        }
    }
}

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// The most entries the store gives [`Kv::insert_many`] at once: a 100,000-job run written as
/// one sled batch took the coordinator from 11 MB to 614 MB of RSS within two seconds of the
/// submit, and sled kept it for the rest of the run (docs/benchmarks.md).
pub const BATCH_ENTRIES: usize = 1024;

/// Ordered trees of bytes with an explicit durability point.
pub trait Kv: Send + Sync + std::fmt::Debug {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn insert(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<(), StoreError>;
    /// Inserts unless the key is present; returns whether it was inserted.
    fn insert_new(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<bool, StoreError>;
    /// Inserts many entries at once (atomically where the backend can). The store hands it at
    /// most [`BATCH_ENTRIES`] at a time.
    fn insert_many(&self, tree: Tree, entries: Vec<Entry>) -> Result<(), StoreError>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<Entry>, StoreError>;
    /// Calls `visit` with each entry whose key starts with `prefix`, in key order, one at a
    /// time: a long scan (a 100,000-result report) never holds every value at once. `visit`
    /// must not call back into the store.
    fn for_each_prefix(
        &self,
        tree: Tree,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), StoreError> {
        for (k, v) in self.scan_prefix(tree, prefix)? {
            visit(&k, &v);
        }
        Ok(())
    }
    /// Makes every write so far durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// Removes a key (absent: nothing to do).
    fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError>;
}

/// The server's backend: one sled database, one sled tree per [`Tree`].
#[derive(Debug, Clone)]
pub struct SledKv {
    db: sled::Db,
    trees: [sled::Tree; 6],
}

impl SledKv {
    pub fn open(db: sled::Db) -> Result<SledKv, StoreError> {
        let open = |t: Tree| db.open_tree(t.name());
        Ok(SledKv {
            trees: [
                open(Tree::Meta)?,
                open(Tree::Runs)?,
                open(Tree::Jobs)?,
                open(Tree::Results)?,
                open(Tree::Workers)?,
                open(Tree::Models)?,
            ],
            db,
        })
    }

    fn tree(&self, tree: Tree) -> &sled::Tree {
        &self.trees[tree as usize]
    }
}

impl Kv for SledKv {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree(tree).get(key)?.map(|v| v.to_vec()))
    }

    fn insert(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        self.tree(tree).insert(key, value)?;
        Ok(())
    }

    fn insert_new(&self, tree: Tree, key: &[u8], value: Vec<u8>) -> Result<bool, StoreError> {
        let previous = self
            .tree(tree)
            .compare_and_swap(key, None as Option<&[u8]>, Some(value))?;
        Ok(previous.is_ok())
    }

    fn insert_many(&self, tree: Tree, entries: Vec<Entry>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (k, v) in entries {
            batch.insert(k, v);
        }
        self.tree(tree).apply_batch(batch)?;
        Ok(())
    }

    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        self.tree(tree)
            .scan_prefix(prefix)
            .map(|kv| {
                let (k, v) = kv?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }

    fn for_each_prefix(
        &self,
        tree: Tree,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), StoreError> {
        for kv in self.tree(tree).scan_prefix(prefix) {
            let (k, v) = kv?;
            visit(&k, &v);
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn remove(&self, tree: Tree, key: &[u8]) -> Result<(), StoreError> {
        self.tree(tree).remove(key)?;
        Ok(())
    }
}
