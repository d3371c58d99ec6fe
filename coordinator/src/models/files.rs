//! Where the coordinator keeps model bytes: `DATA/models/sha256/<hex>` for uploaded models, and
//! `DATA/models/partial/<hex>.part` while an upload is under way (kept across interruptions, so an
//! upload resumes from its length). A partial file becomes a model only by an atomic rename after
//! its digest and GGUF header checked out, so the store never holds a file that is not what its
//! name says. Every function here does blocking file I/O: async callers use `spawn_blocking`.

use std::io;
use std::path::{Path, PathBuf};

use super::{ModelEntry, Origin};

/// The model directories under one data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    root: PathBuf,
}

impl ModelFiles {
    /// The store under `data/models` (directories made on first use).
    pub fn new(data: &Path) -> ModelFiles {
        ModelFiles {
            root: data.join("models"),
        }
    }

    /// Where an uploaded model with this digest lives.
    pub fn stored(&self, sha256: &str) -> PathBuf {
        self.root.join("sha256").join(sha256)
    }

    /// Where an upload of this digest accumulates.
    pub fn partial(&self, sha256: &str) -> PathBuf {
        self.root.join("partial").join(format!("{sha256}.part"))
    }

    /// The bytes of an entry's model, wherever they are.
    pub fn path_of(&self, entry: &ModelEntry) -> PathBuf {
        match &entry.origin {
            Origin::Upload => self.stored(&entry.sha256),
            Origin::InPlace { path, .. } => path.clone(),
        }
    }

    /// Bytes of this digest's upload already here (0: none).
    pub fn partial_len(&self, sha256: &str) -> u64 {
        std::fs::metadata(self.partial(sha256))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// Opens the partial file for appending at `offset`, which must be its length.
    pub fn open_partial(&self, sha256: &str) -> io::Result<std::fs::File> {
        let path = self.partial(sha256);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    }

    /// Deletes an upload's partial file (a bad upload stores nothing).
    pub fn discard_partial(&self, sha256: &str) {
        let path = self.partial(sha256);
        if let Err(err) = std::fs::remove_file(&path)
            && err.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(file = %path.display(), error = %err, "cannot delete a partial upload");
        }
    }

    /// Makes a verified partial file the stored model: fsync, rename, fsync the directory.
    pub fn commit(&self, sha256: &str) -> io::Result<PathBuf> {
        let partial = self.partial(sha256);
        let stored = self.stored(sha256);
        let dir = stored.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir)?;
        std::fs::File::open(&partial)?.sync_all()?;
        std::fs::rename(&partial, &stored)?;
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(stored)
    }

    /// Deletes an uploaded model's file (never an in-place one: that is the operator's).
    pub fn delete_stored(&self, entry: &ModelEntry) -> io::Result<()> {
        if entry.origin != Origin::Upload {
            return Ok(());
        }
        match std::fs::remove_file(self.stored(&entry.sha256)) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_partial_upload_becomes_a_model_only_by_commit() {
        let dir = tempfile::tempdir().unwrap();
        let files = ModelFiles::new(dir.path());
        let sha = "a".repeat(64);
        assert_eq!(files.partial_len(&sha), 0);
        files
            .open_partial(&sha)
            .unwrap()
            .write_all(b"GGUF")
            .unwrap();
        files
            .open_partial(&sha)
            .unwrap()
            .write_all(b"more")
            .unwrap();
        assert_eq!(files.partial_len(&sha), 8);
        assert!(!files.stored(&sha).exists());
        let stored = files.commit(&sha).unwrap();
        assert_eq!(std::fs::read(&stored).unwrap(), b"GGUFmore");
        assert_eq!(files.partial_len(&sha), 0);
        files.open_partial(&sha).unwrap();
        files.discard_partial(&sha);
        assert!(!files.partial(&sha).exists());
    }
}
