//! One model transfer from the coordinator (`FetchModel`) into a partial file, resumable.
//!
//! The partial file is appended to from its current length (an interrupted fetch, or a worker killed
//! mid-transfer, resumes there: [`resume_offset`]), and hashed as it grows: the part already on
//! disk first, then each chunk as a blocking writer thread appends it, so the digest is ready when
//! the last byte lands. The caller decides what a digest that does not match means. A progress line
//! (bytes, rate, ETA) is logged every few seconds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use benchfarm_modelfile::Sha256Stream;
use benchfarm_proto::v1 as pb;
use benchfarm_proto::v1::model_service_client::ModelServiceClient;
use tracing::info;

use crate::credentials::Credentials;

/// How often a fetch logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Where a fetch starts, given the partial file's length and the model's size: where it stopped,
/// unless the partial file is longer than the model (not a prefix of it), which starts afresh.
pub fn resume_offset(partial_len: u64, size: u64) -> u64 {
    if partial_len > size { 0 } else { partial_len }
}

/// Seconds left at `rate` bytes per second for the rest of `size` from `done` (`None`: no rate yet).
pub fn eta_seconds(done: u64, size: u64, rate: f64) -> Option<f64> {
    (rate > 0.0 && rate.is_finite()).then(|| size.saturating_sub(done) as f64 / rate)
}

/// How to reach the coordinator's `ModelService`.
#[derive(Debug, Clone)]
pub struct Source {
    pub url: String,
    pub credentials: Credentials,
}

/// What a finished transfer produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetched {
    /// The digest of the whole partial file.
    pub sha256: String,
    /// Bytes that crossed the network in this call (the resumed part excluded).
    pub transferred: u64,
    /// Where this call started.
    pub offset: u64,
    pub seconds: f64,
}

/// Why a transfer stopped.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The network or the coordinator broke off: trying again resumes.
    #[error("transfer interrupted at byte {at}: {why}")]
    Interrupted { at: u64, why: String },
    /// The coordinator refused (no such model, or this token may not fetch): retrying will not help.
    #[error("the coordinator refused the fetch: {0}")]
    Refused(String),
    #[error("writing {path}: {error}")]
    Disk {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Fetches model `sha256` of `size` bytes into `partial`, from the partial file's length on.
pub async fn fetch(
    source: &Source,
    name: &str,
    sha256: &str,
    size: u64,
    partial: &Path,
) -> Result<Fetched, FetchError> {
    let disk = |error: std::io::Error| FetchError::Disk {
        path: partial.to_path_buf(),
        error,
    };
    let (file, hasher, offset) = {
        let partial = partial.to_path_buf();
        tokio::task::spawn_blocking(move || open_partial(&partial, size))
            .await
            .map_err(|e| disk(std::io::Error::other(e.to_string())))?
            .map_err(disk)?
    };
    if offset > 0 {
        info!(model = %name, offset, size, "resuming a partial fetch");
    }
    let started = Instant::now();
    let mut at = offset;
    if offset < size {
        let interrupted = |at: u64, why: String| FetchError::Interrupted { at, why };
        let endpoint = tonic::transport::Endpoint::from_shared(source.url.clone())
            .map_err(|e| FetchError::Refused(format!("invalid coordinator URL: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            // One long stream: windows large enough that flow control never waits on loopback or
            // a LAN (h2's default 64 KiB window halves the rate there).
            .initial_stream_window_size(8 << 20)
            .initial_connection_window_size(16 << 20);
        let endpoint = source
            .credentials
            .apply(endpoint)
            .map_err(FetchError::Refused)?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| interrupted(at, e.to_string()))?;
        let mut client = ModelServiceClient::new(channel).max_decoding_message_size(4 << 20);
        let mut request = tonic::Request::new(pb::FetchModelRequest {
            sha256: sha256.to_string(),
            offset,
        });
        source.credentials.authorize(&mut request);
        let mut stream = client
            .fetch_model(request)
            .await
            .map_err(|s| match s.code() {
                tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown => {
                    interrupted(at, s.message().to_string())
                }
                _ => FetchError::Refused(format!("{:?}: {}", s.code(), s.message())),
            })?
            .into_inner();
        let writer = Writer::start(file, hasher);
        let mut last_log = Instant::now();
        let outcome = loop {
            match stream.message().await {
                Ok(Some(chunk)) => {
                    if chunk.offset != at || chunk.size_bytes != size {
                        break Err(interrupted(
                            at,
                            format!(
                                "chunk at {} of a {}-byte file, expected byte {at} of {size}",
                                chunk.offset, chunk.size_bytes
                            ),
                        ));
                    }
                    let n = chunk.data.len() as u64;
                    if n == 0 || at + n > size {
                        break Err(interrupted(at, "a chunk past the end of the model".into()));
                    }
                    if !writer.write(chunk.data).await {
                        break Ok(());
                    }
                    at += n;
                    metrics::counter!("benchfarm_worker_model_fetch_bytes_total").increment(n);
                    if last_log.elapsed() >= PROGRESS_EVERY {
                        last_log = Instant::now();
                        let rate = (at - offset) as f64 / started.elapsed().as_secs_f64().max(1e-9);
                        info!(model = %name, bytes = at, size, mb_per_s = format!("{:.1}", rate / 1e6),
                              eta_s = eta_seconds(at, size, rate).map(|s| s.round() as u64),
                              "fetching model");
                    }
                    if at == size {
                        break Ok(());
                    }
                }
                Ok(None) => break Ok(()),
                Err(status) => break Err(interrupted(at, status.message().to_string())),
            }
        };
        let finished = writer.finish().await;
        outcome?;
        let hasher = finished.map_err(disk)?;
        if at < size {
            return Err(interrupted(
                at,
                "the coordinator ended the stream early".into(),
            ));
        }
        return Ok(Fetched {
            sha256: hasher.finish(),
            transferred: at - offset,
            offset,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    // The partial file was whole already (a worker killed between the last byte and the rename).
    Ok(Fetched {
        sha256: hasher.finish(),
        transferred: 0,
        offset,
        seconds: 0.0,
    })
}

/// Opens (or creates) the partial file for appending and hashes what it holds; a file longer than
/// the model is emptied first.
fn open_partial(path: &Path, size: u64) -> std::io::Result<(std::fs::File, Sha256Stream, u64)> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let offset = resume_offset(len, size);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if offset != len {
        file.set_len(offset)?;
    }
    let mut hasher = Sha256Stream::new();
    hasher.update_from_file(path, offset)?;
    Ok((file, hasher, offset))
}

/// Appends and hashes chunks on a blocking thread, so the network is read while the disk writes.
struct Writer {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    done: tokio::task::JoinHandle<std::io::Result<Sha256Stream>>,
}

impl Writer {
    fn start(mut file: std::fs::File, mut hasher: Sha256Stream) -> Writer {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
        let done = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = rx.blocking_recv() {
                file.write_all(&chunk)?;
                hasher.update(&chunk);
            }
            file.flush()?;
            file.sync_data()?;
            Ok(hasher)
        });
        Writer { tx, done }
    }

    /// False when the writer stopped (a disk error, reported by `finish`).
    async fn write(&self, data: Vec<u8>) -> bool {
        self.tx.send(data).await.is_ok()
    }

    async fn finish(self) -> std::io::Result<Sha256Stream> {
        drop(self.tx);
        self.done
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_resumes_where_its_partial_file_ends() {
        assert_eq!(resume_offset(0, 100), 0);
        assert_eq!(resume_offset(40, 100), 40);
        assert_eq!(resume_offset(100, 100), 100);
        // Longer than the model: not a prefix of it, so the fetch starts over.
        assert_eq!(resume_offset(101, 100), 0);
        assert_eq!(eta_seconds(40, 100, 20.0), Some(3.0));
        assert_eq!(eta_seconds(40, 100, 0.0), None);
    }

    #[test]
    fn an_oversized_partial_file_is_emptied_and_a_prefix_is_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.part");
        std::fs::write(&path, b"abcdef").unwrap();
        let (_, hasher, offset) = open_partial(&path, 10).unwrap();
        assert_eq!(offset, 6);
        assert_eq!(
            hasher.finish(),
            benchfarm_modelfile::sha256_bytes(b"abcdef")
        );
        let (_, hasher, offset) = open_partial(&path, 4).unwrap();
        assert_eq!(offset, 0);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        assert_eq!(hasher.finish(), benchfarm_modelfile::sha256_bytes(b""));
    }
}
