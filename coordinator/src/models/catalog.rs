//! The registry of models: sha256 → [`ModelEntry`], in memory and in the store's `models` tree.
//!
//! Reads (the scheduler asks, for every queued job, whether its model can be fetched; a submit
//! resolves `registered = "..."`) take a read lock and never touch the disk. Writes go to the
//! store and are flushed before they are visible, so a model a client was told is registered
//! survives a crash; they block (sled's fsync), so async callers run them on the blocking pool.
//!
//! Resolution ([`resolve_in`], pure): an exact name wins; otherwise the query is a sha256 prefix of
//! at least [`MIN_PREFIX`] hex digits that must match exactly one model.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use super::{ModelEntry, Origin};
use crate::store::{Store, StoreError};

/// The shortest sha256 prefix a query may use: shorter ones match by accident.
pub const MIN_PREFIX: usize = 6;

/// Why a name or prefix names no single model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no model is named or has a sha256 starting with {query:?} (registered: {known})")]
    Unknown { query: String, known: String },
    #[error("{query:?} is the start of {count} models' sha256 ({matches}); give more digits")]
    Ambiguous {
        query: String,
        count: usize,
        matches: String,
    },
    #[error(
        "{query:?} is no registered name, and a sha256 prefix needs at least {MIN_PREFIX} hex digits"
    )]
    TooShort { query: String },
    #[error("empty: give a registered name or a sha256 prefix")]
    Empty,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("the name {name:?} is registered already, for sha256 {sha256}; choose another name")]
    NameTaken { name: String, sha256: String },
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The model in `entries` that `query` names.
pub fn resolve_in<'a>(
    entries: impl IntoIterator<Item = &'a ModelEntry> + Clone,
    query: &str,
) -> Result<&'a ModelEntry, ResolveError> {
    let query = query.trim();
    if query.is_empty() {
        return Err(ResolveError::Empty);
    }
    if let Some(named) = entries.clone().into_iter().find(|e| e.name == query) {
        return Ok(named);
    }
    let lower = query.to_ascii_lowercase();
    let hex = lower.bytes().all(|b| b.is_ascii_hexdigit());
    if hex && lower.len() < MIN_PREFIX {
        return Err(ResolveError::TooShort {
            query: query.to_string(),
        });
    }
    let matches: Vec<&ModelEntry> = if hex {
        entries
            .clone()
            .into_iter()
            .filter(|e| e.sha256.starts_with(&lower))
            .collect()
    } else {
        Vec::new()
    };
    match matches.as_slice() {
        [one] => Ok(one),
        [] => {
            let mut names: Vec<&str> = entries.into_iter().map(|e| e.name.as_str()).collect();
            names.sort_unstable();
            Err(ResolveError::Unknown {
                query: query.to_string(),
                known: if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                },
            })
        }
        many => Err(ResolveError::Ambiguous {
            query: query.to_string(),
            count: many.len(),
            matches: many
                .iter()
                .map(|e| format!("{} {}", e.name, e.short_sha()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// The registry; clones share it.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: Arc<RwLock<BTreeMap<String, ModelEntry>>>,
    /// `None`: memory only (the scheduler's tests).
    store: Option<Store>,
}

impl Catalog {
    /// The registry kept in `store`, loaded from it (blocking).
    pub fn open(store: Store) -> Result<Catalog, StoreError> {
        let entries = store
            .models()?
            .into_iter()
            .map(|e| (e.sha256.clone(), e))
            .collect();
        Ok(Catalog {
            entries: Arc::new(RwLock::new(entries)),
            store: Some(store),
        })
    }

    /// The same registry, for readers that must not keep the store open (the scheduler and its
    /// handles, which outlive the server in long-lived tasks): it sees every change, and cannot
    /// write.
    pub fn reader(&self) -> Catalog {
        Catalog {
            entries: self.entries.clone(),
            store: None,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, ModelEntry>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, ModelEntry>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, sha256: &str) -> Option<ModelEntry> {
        self.read().get(sha256).cloned()
    }

    /// Whether a worker could fetch the model with this digest, and its size.
    pub fn fetchable(&self, sha256: &str) -> Option<u64> {
        self.read().get(sha256).map(|e| e.size_bytes)
    }

    /// Every registered model, by name.
    pub fn list(&self) -> Vec<ModelEntry> {
        let mut all: Vec<ModelEntry> = self.read().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// The model `query` (a name or sha256 prefix) names.
    pub fn resolve(&self, query: &str) -> Result<ModelEntry, ResolveError> {
        let entries = self.read();
        resolve_in(entries.values(), query).cloned()
    }

    /// Registers `entry` (blocking: stored and flushed first). A model registered already under
    /// the same digest is returned as it is; a name another digest holds is refused.
    pub fn insert(&self, entry: ModelEntry) -> Result<(ModelEntry, bool), CatalogError> {
        let mut entries = self.write();
        if let Some(existing) = entries.get(&entry.sha256) {
            // The same in-place file, touched or moved: its new place is what counts (a second
            // copy elsewhere, while the first is still there, changes nothing).
            if let (Origin::InPlace { path: old, .. }, Origin::InPlace { path: new, .. }) =
                (&existing.origin, &entry.origin)
                && existing.origin != entry.origin
                && (old == new || !old.is_file())
            {
                let updated = ModelEntry {
                    origin: entry.origin,
                    ..existing.clone()
                };
                self.persist(&updated)?;
                entries.insert(updated.sha256.clone(), updated.clone());
                return Ok((updated, false));
            }
            return Ok((existing.clone(), false));
        }
        if let Some(other) = entries.values().find(|e| e.name == entry.name) {
            return Err(CatalogError::NameTaken {
                name: entry.name.clone(),
                sha256: other.sha256.clone(),
            });
        }
        self.persist(&entry)?;
        entries.insert(entry.sha256.clone(), entry.clone());
        Ok((entry, true))
    }

    /// Whether `name` is free for a model of digest `sha256`.
    pub fn name_free_for(&self, name: &str, sha256: &str) -> Result<(), CatalogError> {
        match self.read().values().find(|e| e.name == name) {
            Some(other) if other.sha256 != sha256 => Err(CatalogError::NameTaken {
                name: name.to_string(),
                sha256: other.sha256.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Unregisters the model `query` names (blocking) and returns it.
    pub fn remove(&self, query: &str) -> Result<ModelEntry, CatalogError> {
        let mut entries = self.write();
        let entry = resolve_in(entries.values(), query)?.clone();
        if let Some(store) = &self.store {
            store.remove_model(&entry.sha256)?;
            store.flush()?;
        }
        entries.remove(&entry.sha256);
        Ok(entry)
    }

    fn persist(&self, entry: &ModelEntry) -> Result<(), StoreError> {
        if let Some(store) = &self.store {
            store.put_model(entry)?;
            store.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, sha: &str) -> ModelEntry {
        ModelEntry {
            sha256: format!("{sha:0<64}"),
            name: name.into(),
            size_bytes: 10,
            file_name: format!("{name}.gguf"),
            architecture: "llama".into(),
            quantization: "Q4_1".into(),
            parameter_count: 1,
            context_length: 0,
            origin: Origin::Upload,
            added_unix_ms: 0,
        }
    }

    #[test]
    fn names_win_then_unique_prefixes() {
        let all = [
            entry("smol", "abc123"),
            entry("gemma", "abc999"),
            entry("abc123", "fff"),
        ];
        // A name that looks like a prefix is still a name.
        assert_eq!(resolve_in(&all, "abc123").unwrap().name, "abc123");
        assert_eq!(resolve_in(&all, "gemma").unwrap().name, "gemma");
        assert!(matches!(
            resolve_in(&all, "ABC99"),
            Err(ResolveError::TooShort { .. })
        ));
        // Prefixes are case-insensitive, and one digit more than the shared part decides.
        assert_eq!(resolve_in(&all, "ABC9990").unwrap().name, "gemma");
        assert_eq!(resolve_in(&all, "abc1230").unwrap().name, "smol");
        let two = [entry("a", "123456aa"), entry("b", "123456bb")];
        let err = resolve_in(&two, "123456").unwrap_err();
        assert!(
            matches!(err, ResolveError::Ambiguous { count: 2, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("a 123456aa0000"), "{err}");
        let unknown = resolve_in(&two, "llama").unwrap_err().to_string();
        assert!(unknown.contains("registered: a, b"), "{unknown}");
        assert_eq!(resolve_in(&two, "  "), Err(ResolveError::Empty));
    }

    #[test]
    fn a_name_is_one_digest_and_a_digest_one_entry() {
        let catalog = Catalog::default();
        let (smol, new) = catalog.insert(entry("smol", "aa")).unwrap();
        assert!(new);
        // The same digest again: the first registration stands.
        let (again, new) = catalog.insert(entry("other", "aa")).unwrap();
        assert!(!new);
        assert_eq!(again, smol);
        assert!(matches!(
            catalog.insert(entry("smol", "bb")),
            Err(CatalogError::NameTaken { .. })
        ));
        assert_eq!(catalog.fetchable(&smol.sha256), Some(10));
        assert_eq!(catalog.remove("smol").unwrap().sha256, smol.sha256);
        assert!(catalog.is_empty());
        assert!(catalog.remove("smol").is_err());
    }
}
