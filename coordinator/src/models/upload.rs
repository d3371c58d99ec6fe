//! `UploadModel`: a client stream of one header and the file's bytes from its offset on.
//!
//! The bytes accumulate in the upload's partial file, so a broken stream loses nothing and the
//! next upload resumes at [`ModelFiles::partial_len`] (an offset that is not that length is refused
//! before a byte is written). When the last byte arrives the whole file is hashed and its GGUF
//! header read, on the blocking pool; a digest that does not match, or a file that is not a GGUF, is
//! deleted (nothing stored) and the error says which. Only then is the file renamed into the store
//! and registered. Bad input is an error naming the field, never a crash.

use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};

use benchfarm_proto::v1 as pb;
use benchfarm_proto::v1::upload_chunk::Kind;
use tonic::{Status, Streaming};
use tracing::info;

use super::{Catalog, CatalogError, ModelEntry, ModelFiles, Origin, is_sha256};

/// The largest model an upload may announce: beyond any GGUF a benchmark farm runs.
pub const MAX_MODEL_BYTES: u64 = 1 << 40;

/// What an upload needs from the server.
#[derive(Debug, Clone)]
pub struct Uploads {
    pub catalog: Catalog,
    pub files: ModelFiles,
    /// Digests being uploaded now: a second upload of one would interleave its bytes.
    pub in_progress: Arc<Mutex<HashSet<String>>>,
    /// The longest name (`--max-name-bytes`).
    pub name_bytes: usize,
}

/// Removes a digest from the in-progress set when the upload ends, however it ends.
struct Claim {
    set: Arc<Mutex<HashSet<String>>>,
    sha256: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.sha256);
    }
}

fn invalid(message: String) -> Status {
    Status::invalid_argument(message)
}

/// A header checked: the digest, size, name and offset an upload may go on with.
fn check_header(header: &pb::UploadHeader, name_bytes: usize) -> Result<String, Status> {
    let sha256 = header.sha256.to_ascii_lowercase();
    if !is_sha256(&sha256) {
        return Err(invalid("header.sha256: not a sha256 hex digest".into()));
    }
    if header.size_bytes < 4 || header.size_bytes > MAX_MODEL_BYTES {
        return Err(invalid(format!(
            "header.size_bytes: {} is not the size of a GGUF model (4 bytes to 1 TiB)",
            header.size_bytes
        )));
    }
    if header.offset > header.size_bytes {
        return Err(Status::out_of_range(format!(
            "header.offset: {} is past the end of the model ({} bytes)",
            header.offset, header.size_bytes
        )));
    }
    for (field, text) in [
        ("header.name", &header.name),
        ("header.file_name", &header.file_name),
    ] {
        if text.len() > name_bytes || text.chars().any(char::is_control) {
            return Err(invalid(format!(
                "{field}: over {name_bytes} bytes or holds control characters"
            )));
        }
    }
    Ok(sha256)
}

/// Receives one upload; see the module docs.
pub async fn receive(
    uploads: &Uploads,
    mut stream: Streaming<pb::UploadChunk>,
) -> Result<pb::UploadModelResponse, Status> {
    let header = match stream.message().await? {
        Some(pb::UploadChunk {
            kind: Some(Kind::Header(h)),
        }) => h,
        Some(_) => {
            return Err(invalid(
                "the first message of an upload must be its header".into(),
            ));
        }
        None => return Err(invalid("header: the upload sent nothing".into())),
    };
    let sha256 = check_header(&header, uploads.name_bytes)?;
    if let Some(entry) = uploads.catalog.get(&sha256) {
        return Ok(response(&entry, true));
    }
    let name = match header.name.trim() {
        "" => default_name(&header.file_name, &sha256),
        name => name.to_string(),
    };
    uploads
        .catalog
        .name_free_for(&name, &sha256)
        .map_err(catalog_status)?;
    let _claim = {
        let mut set = uploads
            .in_progress
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !set.insert(sha256.clone()) {
            return Err(Status::aborted(format!(
                "header.sha256: an upload of {sha256} is in progress already"
            )));
        }
        Claim {
            set: uploads.in_progress.clone(),
            sha256: sha256.clone(),
        }
    };
    let files = uploads.files.clone();
    let held = {
        let (files, sha) = (files.clone(), sha256.clone());
        blocking(move || Ok(files.partial_len(&sha))).await?
    };
    if held > header.size_bytes {
        // A leftover of an upload that announced another size: useless, start afresh.
        let (files, sha) = (files.clone(), sha256.clone());
        blocking(move || {
            files.discard_partial(&sha);
            Ok(())
        })
        .await?;
        return Err(Status::failed_precondition(format!(
            "header.offset: the coordinator held {held} bytes of this upload, more than its size; \
             they are deleted: upload again from offset 0"
        )));
    }
    if header.offset != held {
        return Err(Status::failed_precondition(format!(
            "header.offset: {}, but the coordinator holds {held} bytes of this upload; resume from \
             {held}",
            header.offset
        )));
    }

    let writer = Writer::start(files.clone(), sha256.clone())?;
    let mut received = held;
    // The magic is checked on a fresh upload's first bytes; a resumed one is checked whole at the end.
    let mut checked_magic = held > 0;
    let mut first = Vec::new();
    let outcome: Result<(), Status> = async {
        while let Some(chunk) = stream.message().await? {
            let data = match chunk.kind {
                Some(Kind::Data(data)) => data,
                Some(Kind::Header(_)) => {
                    return Err(invalid("header: sent twice in one upload".into()));
                }
                None => continue,
            };
            received = received.saturating_add(data.len() as u64);
            if received > header.size_bytes {
                return Err(invalid(format!(
                    "data: more than header.size_bytes ({}) bytes",
                    header.size_bytes
                )));
            }
            if !checked_magic {
                first.extend_from_slice(&data[..data.len().min(4 - first.len())]);
                if first.len() == 4 {
                    if first != b"GGUF" {
                        return Err(invalid(
                            "data: not a GGUF file (it does not start with GGUF); nothing stored"
                                .into(),
                        ));
                    }
                    checked_magic = true;
                }
            }
            writer.write(data).await?;
        }
        Ok(())
    }
    .await;
    let written = writer.finish().await;
    if let Err(status) = outcome {
        // A broken connection keeps the bytes for a resume; bad bytes are thrown away.
        if status.code() == tonic::Code::InvalidArgument {
            let (files, sha) = (files.clone(), sha256.clone());
            blocking(move || {
                files.discard_partial(&sha);
                Ok(())
            })
            .await?;
        }
        return Err(status);
    }
    written?;
    if received < header.size_bytes {
        info!(sha256 = %sha256, received, size = header.size_bytes, "upload interrupted; kept for a resume");
        return Ok(pb::UploadModelResponse {
            model: None,
            complete: false,
            received_bytes: received,
        });
    }
    let catalog = uploads.catalog.clone();
    let file_name = header.file_name.clone();
    let entry =
        blocking(move || verify_and_register(&files, &catalog, &sha256, name, file_name)).await?;
    info!(model = %entry.name, sha256 = %entry.sha256, size = entry.size_bytes, "model uploaded");
    Ok(response(&entry, true))
}

/// Hashes and parses a complete partial file; registers it, or deletes it and says why.
fn verify_and_register(
    files: &ModelFiles,
    catalog: &Catalog,
    sha256: &str,
    name: String,
    file_name: String,
) -> Result<ModelEntry, Status> {
    let partial = files.partial(sha256);
    let actual = benchfarm_modelfile::sha256_file(&partial)
        .map_err(|e| Status::internal(format!("cannot hash the upload: {e}")))?;
    if actual != sha256 {
        files.discard_partial(sha256);
        return Err(invalid(format!(
            "header.sha256: the bytes hash to {actual}, not {sha256}; nothing stored"
        )));
    }
    let info = match benchfarm_modelfile::read_gguf(&partial) {
        Ok(info) => info,
        Err(err) => {
            files.discard_partial(sha256);
            return Err(invalid(format!(
                "data: not a GGUF file ({}); nothing stored",
                err.to_string()
                    .replace(&partial.display().to_string(), "upload")
            )));
        }
    };
    files
        .commit(sha256)
        .map_err(|e| Status::internal(format!("cannot store the model: {e}")))?;
    let entry = ModelEntry::from_gguf(
        &info,
        sha256.to_string(),
        name,
        file_name_or_default(&file_name, sha256),
        Origin::Upload,
        crate::records::now_ms(),
    );
    match catalog.insert(entry) {
        Ok((entry, _)) => Ok(entry),
        Err(err) => {
            // Not registered: the stored file would be an orphan.
            let _ = std::fs::remove_file(files.stored(sha256));
            Err(catalog_status(err))
        }
    }
}

fn file_name_or_default(file_name: &str, sha256: &str) -> String {
    std::path::Path::new(file_name)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| format!("{}.gguf", &sha256[..12]))
}

/// A name from the file's stem, else from the digest.
fn default_name(file_name: &str, sha256: &str) -> String {
    std::path::Path::new(file_name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| sha256[..12].to_string())
}

pub(super) fn response(entry: &ModelEntry, complete: bool) -> pb::UploadModelResponse {
    pb::UploadModelResponse {
        model: Some(super::service::registered(entry, Vec::new())),
        complete,
        received_bytes: entry.size_bytes,
    }
}

pub(super) fn catalog_status(err: CatalogError) -> Status {
    match err {
        CatalogError::NameTaken { .. } => Status::already_exists(format!("header.name: {err}")),
        CatalogError::Resolve(e) => Status::not_found(e.to_string()),
        CatalogError::Store(e) => Status::internal(e.to_string()),
    }
}

/// Runs blocking work off the runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("upload task failed: {e}")))?
}

/// Appends chunks to the partial file on a blocking thread, so the stream is read while the disk
/// writes.
struct Writer {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    done: tokio::task::JoinHandle<Result<(), Status>>,
}

impl Writer {
    fn start(files: ModelFiles, sha256: String) -> Result<Writer, Status> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
        let done = tokio::task::spawn_blocking(move || {
            let mut file = files
                .open_partial(&sha256)
                .map_err(|e| Status::internal(format!("cannot write the upload: {e}")))?;
            while let Some(chunk) = rx.blocking_recv() {
                file.write_all(&chunk)
                    .map_err(|e| Status::internal(format!("cannot write the upload: {e}")))?;
            }
            file.flush()
                .map_err(|e| Status::internal(format!("cannot write the upload: {e}")))
        });
        Ok(Writer { tx, done })
    }

    async fn write(&self, data: Vec<u8>) -> Result<(), Status> {
        self.tx
            .send(data)
            .await
            .map_err(|_| Status::internal("the upload's writer stopped"))
    }

    async fn finish(self) -> Result<(), Status> {
        drop(self.tx);
        self.done
            .await
            .map_err(|e| Status::internal(format!("upload writer failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(f: impl FnOnce(&mut pb::UploadHeader)) -> pb::UploadHeader {
        let mut h = pb::UploadHeader {
            name: "m".into(),
            sha256: "ab".repeat(32),
            size_bytes: 100,
            offset: 0,
            file_name: "m.gguf".into(),
        };
        f(&mut h);
        h
    }

    #[test]
    fn headers_are_checked_field_by_field() {
        assert!(check_header(&header(|_| {}), 64).is_ok());
        let msg = |h: pb::UploadHeader| check_header(&h, 64).unwrap_err().message().to_string();
        assert!(msg(header(|h| h.sha256 = "xyz".into())).starts_with("header.sha256"));
        assert!(msg(header(|h| h.size_bytes = 0)).starts_with("header.size_bytes"));
        assert!(msg(header(|h| h.offset = 101)).starts_with("header.offset"));
        assert!(msg(header(|h| h.name = "x".repeat(65))).starts_with("header.name"));
        assert!(msg(header(|h| h.file_name = "a\nb".into())).starts_with("header.file_name"));
        assert_eq!(default_name("dir/smol.Q4.gguf", &"c".repeat(64)), "smol.Q4");
        assert_eq!(default_name("", &"c".repeat(64)), "cccccccccccc");
    }
}
