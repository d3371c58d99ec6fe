//! `coordinator serve --models-dir DIR`: the GGUF files of a server-side directory, registered in
//! place (never copied), each under its file stem.
//!
//! Hashing a few gigabytes at every start would delay the farm, so a file whose size and
//! modification time match its earlier registration keeps its digest. A file that is not a GGUF is
//! skipped with a warning; an in-place entry of this directory whose file is gone is unregistered.
//! Blocking (reads and hashes files): the server runs it on the blocking pool before it listens, so
//! a plan naming one of these models can be submitted as soon as the port answers.

use std::path::Path;

use tracing::{info, warn};

use super::{Catalog, CatalogError, ModelEntry, Origin};

/// What registering a directory did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Registered {
    /// Names of the models registered (or kept) from the directory.
    pub models: Vec<String>,
    /// Files skipped, with why.
    pub skipped: Vec<(String, String)>,
    /// In-place models unregistered because their file is gone.
    pub removed: Vec<String>,
}

/// Registers every `*.gguf` file in `dir` into `catalog`.
pub fn register_dir(dir: &Path, catalog: &Catalog) -> std::io::Result<Registered> {
    let mut done = Registered::default();
    let dir = dir.canonicalize()?;
    let mut paths: Vec<_> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("gguf"))
                && p.is_file()
        })
        .collect();
    paths.sort();
    for path in paths {
        match register_file(&path, catalog) {
            Ok(entry) => {
                info!(model = %entry.name, sha256 = %entry.sha256, size = entry.size_bytes,
                      file = %path.display(), "model registered in place");
                done.models.push(entry.name);
            }
            Err(why) => {
                warn!(file = %path.display(), reason = %why, "model file skipped");
                done.skipped.push((path.display().to_string(), why));
            }
        }
    }
    for entry in catalog.list() {
        if let Origin::InPlace { path, .. } = &entry.origin
            && path.parent() == Some(dir.as_path())
            && !path.is_file()
            && catalog.remove(&entry.sha256).is_ok()
        {
            info!(model = %entry.name, file = %path.display(), "in-place model gone; unregistered");
            done.removed.push(entry.name);
        }
    }
    Ok(done)
}

fn register_file(path: &Path, catalog: &Catalog) -> Result<ModelEntry, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    let modified_ms = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let info = benchfarm_modelfile::read_gguf(path).map_err(|e| e.to_string())?;
    let origin = Origin::InPlace {
        path: path.to_path_buf(),
        modified_ms,
    };
    // Unchanged since it was registered: its digest stands.
    let known = catalog
        .list()
        .into_iter()
        .find(|e| e.origin == origin && e.size_bytes == meta.len());
    let sha256 = match known {
        Some(e) => e.sha256,
        None => benchfarm_modelfile::sha256_file(path).map_err(|e| format!("cannot hash: {e}"))?,
    };
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| sha256[..12].to_string());
    let file_name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let entry = |name: String| {
        ModelEntry::from_gguf(
            &info,
            sha256.clone(),
            name,
            file_name.clone(),
            origin.clone(),
            crate::records::now_ms(),
        )
    };
    match catalog.insert(entry(stem.clone())) {
        Ok((e, _)) => Ok(e),
        // Another model has this name (an upload, or a file elsewhere): keep both, this one with
        // its digest in the name.
        Err(CatalogError::NameTaken { .. }) => catalog
            .insert(entry(format!("{stem}-{}", &sha256[..8])))
            .map(|(e, _)| e)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid GGUF: magic, version 3, no tensors, no metadata.
    fn tiny_gguf() -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        b
    }

    #[test]
    fn gguf_files_are_registered_in_place_and_others_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.gguf"), tiny_gguf()).unwrap();
        std::fs::write(dir.path().join("broken.gguf"), b"GGUF").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
        let catalog = Catalog::default();
        let done = register_dir(dir.path(), &catalog).unwrap();
        assert_eq!(done.models, vec!["a".to_string()]);
        assert_eq!(done.skipped.len(), 1, "{done:?}");
        let a = catalog.resolve("a").unwrap();
        assert_eq!(a.sha256, benchfarm_modelfile::sha256_bytes(&tiny_gguf()));
        assert!(matches!(&a.origin, Origin::InPlace { path, .. } if path.ends_with("a.gguf")));
        // Again: nothing new; then the file goes and so does its registration.
        assert_eq!(
            register_dir(dir.path(), &catalog).unwrap().models,
            vec!["a".to_string()]
        );
        std::fs::remove_file(dir.path().join("a.gguf")).unwrap();
        let done = register_dir(dir.path(), &catalog).unwrap();
        assert_eq!(done.removed, vec!["a".to_string()]);
        assert!(catalog.is_empty());
    }
}
