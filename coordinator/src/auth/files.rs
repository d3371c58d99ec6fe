//! The token registry on disk, and the two bootstrap token files a first start creates.
//!
//! `DATA/tokens.json` holds the registry (digests only). `DATA/api.token` (an operator token) and
//! `DATA/worker.token` (the shared join token) hold tokens in clear, because they are how a user gets
//! in: both are created mode 0600 with `create_new`, so an existing file is never overwritten and no
//! other local user can read them. Every write goes to a temporary file in the same directory,
//! synced, then renamed over the old one, so a crash leaves the old registry or the new, never half.
//!
//! All of this is blocking file I/O: callers on the async runtime use `spawn_blocking`.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::role::Role;
use super::tokens::{self, Registry, TokenError};

/// The registry's file in a data directory.
pub const REGISTRY_FILE: &str = "tokens.json";
/// Names of the bootstrap tokens in the registry.
pub const API_TOKEN_NAME: &str = "api";
pub const JOIN_TOKEN_NAME: &str = "worker-join";

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a token registry: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: empty, or not a single-line token")]
    BadTokenFile { path: PathBuf },
    #[error("{path}: readable by other users (mode {mode:o}); chmod 600 it")]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("cannot make a random token: {0}")]
    Random(String),
    #[error(transparent)]
    Token(#[from] TokenError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads the registry of `data` (empty when there is none yet).
pub fn load(data: &Path) -> Result<Registry, FileError> {
    let path = data.join(REGISTRY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| FileError::Parse {
            path: path.clone(),
            source,
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Registry::default()),
        Err(err) => Err(io(&path)(err)),
    }
}

/// Writes the registry of `data` atomically, mode 0600.
pub fn save(data: &Path, registry: &Registry) -> Result<(), FileError> {
    let path = data.join(REGISTRY_FILE);
    let text = serde_json::to_vec_pretty(registry).map_err(|source| FileError::Parse {
        path: path.clone(),
        source,
    })?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tokens")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(data)
        .map_err(io(data))?;
    tmp.write_all(&text).map_err(io(&path))?;
    tmp.as_file().sync_all().map_err(io(&path))?;
    tmp.persist(&path).map_err(|e| io(&path)(e.error))?;
    // The rename is durable once the directory is.
    std::fs::File::open(data)
        .and_then(|d| d.sync_all())
        .map_err(io(data))?;
    Ok(())
}

/// Reads a token file: one line, trimmed; refused when other users may read it.
pub fn read_token_file(path: &Path) -> Result<String, FileError> {
    let meta = std::fs::metadata(path).map_err(io(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(FileError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    tokens::parse_token_file(&text)
        .map(str::to_string)
        .ok_or_else(|| FileError::BadTokenFile {
            path: path.to_path_buf(),
        })
}

/// Reads a token file, creating it (0600, never overwriting) with a new token when it is missing.
/// Returns the token and whether it was created.
pub fn read_or_create_token_file(path: &Path) -> Result<(String, bool), FileError> {
    if path.exists() {
        return Ok((read_token_file(path)?, false));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let token = tokens::generate().map_err(|e| FileError::Random(e.to_string()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    writeln!(file, "{token}").map_err(io(path))?;
    file.sync_all().map_err(io(path))?;
    Ok((token, true))
}

/// Where the bootstrap tokens live, and what the first start made.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub api_token_file: PathBuf,
    pub worker_token_file: PathBuf,
    pub created: Vec<PathBuf>,
}

/// Loads the registry of `data` and makes sure the two bootstrap tokens exist in their files and in
/// the registry, saving it when anything changed.
pub fn bootstrap(
    data: &Path,
    api_token_file: &Path,
    worker_token_file: &Path,
    now_unix_ms: u64,
) -> Result<(Registry, Bootstrap), FileError> {
    let mut registry = load(data)?;
    let (api, api_new) = read_or_create_token_file(api_token_file)?;
    let (join, join_new) = read_or_create_token_file(worker_token_file)?;
    let mut changed = registry.ensure(API_TOKEN_NAME, Role::Operator, &api, false, now_unix_ms)?;
    changed |= registry.ensure(JOIN_TOKEN_NAME, Role::Worker, &join, true, now_unix_ms)?;
    if changed || !data.join(REGISTRY_FILE).exists() {
        save(data, &registry)?;
    }
    let mut created = Vec::new();
    if api_new {
        created.push(api_token_file.to_path_buf());
    }
    if join_new {
        created.push(worker_token_file.to_path_buf());
    }
    Ok((
        registry,
        Bootstrap {
            api_token_file: api_token_file.to_path_buf(),
            worker_token_file: worker_token_file.to_path_buf(),
            created,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_creates_private_token_files_and_later_starts_keep_them() {
        let dir = tempfile::tempdir().unwrap();
        let api = dir.path().join("api.token");
        let join = dir.path().join("worker.token");
        let (registry, boot) = bootstrap(dir.path(), &api, &join, 5).unwrap();
        assert_eq!(boot.created, vec![api.clone(), join.clone()]);
        for file in [&api, &join] {
            let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
        }
        let api_token = read_token_file(&api).unwrap();
        assert_eq!(
            registry.verify(&api_token).map(|e| e.role),
            Some(Role::Operator)
        );
        let on_disk = std::fs::read_to_string(dir.path().join(REGISTRY_FILE)).unwrap();
        assert!(!on_disk.contains(&api_token));

        let (again, boot) = bootstrap(dir.path(), &api, &join, 9).unwrap();
        assert!(boot.created.is_empty());
        assert_eq!(again, registry);
    }

    #[test]
    fn a_token_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, "bf_x\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read_token_file(&path),
            Err(FileError::TooOpen { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token_file(&path).unwrap(), "bf_x");
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            read_token_file(&path),
            Err(FileError::BadTokenFile { .. })
        ));
    }

    #[test]
    fn a_broken_registry_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(REGISTRY_FILE), "{not json").unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(REGISTRY_FILE), "{err}");
    }
}
