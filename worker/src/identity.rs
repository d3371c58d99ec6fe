//! The worker's stable identity, kept in its state directory.
//!
//! The id survives restarts, so the coordinator recognises a worker that comes back (its history and
//! counters stay attached) instead of seeing a stranger each time.

use std::path::Path;

/// The id stored in `state_dir/worker-id`, created (UUIDv7) on first start.
pub fn load_or_create(state_dir: &Path) -> std::io::Result<String> {
    std::fs::create_dir_all(state_dir)?;
    let path = state_dir.join("worker-id");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        Ok(_) | Err(_) => {
            let id = uuid::Uuid::now_v7().to_string();
            // Write then rename, so a crash never leaves a half-written id.
            let tmp = state_dir.join("worker-id.tmp");
            std::fs::write(&tmp, format!("{id}\n"))?;
            std::fs::rename(&tmp, &path)?;
            Ok(id)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn id_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = super::load_or_create(&dir.path().join("state")).unwrap();
        let b = super::load_or_create(&dir.path().join("state")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 36);
    }
}
