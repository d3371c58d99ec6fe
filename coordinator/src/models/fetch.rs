//! `FetchModel`: a registered model's bytes from an offset, as a server stream of ~1 MiB chunks.
//!
//! At most `--max-transfers` streams send at once (a semaphore; the others wait their turn, so a
//! farm of forty boards starting together does not split the uplink forty ways), and all of them
//! together stay under `--transfer-rate` when it is set ([`Pacer`]). The file is read on a blocking
//! thread that feeds a small channel, so a slow worker holds one thread's read-ahead, not the
//! runtime. A worker that goes away ends its stream at the next chunk.
//!
//! Metrics: `benchfarm_model_transfers_active` (gauge), `benchfarm_model_transfer_bytes_total`
//! (counter), `benchfarm_model_transfers_total{outcome}` (counter), and
//! `benchfarm_model_transfer_seconds` (histogram of whole transfers).

use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use benchfarm_proto::v1 as pb;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tracing::{info, warn};

use super::{Catalog, ModelFiles, Pacer, is_sha256};

/// Bytes per chunk: large enough that framing costs nothing, small enough to pace and resume.
pub const CHUNK_BYTES: usize = 1 << 20;
/// Chunks read ahead of the network per transfer.
const READ_AHEAD: usize = 4;

/// The transfers of one server: what bounds and paces them.
#[derive(Debug, Clone)]
pub struct Transfers {
    pub catalog: Catalog,
    pub files: ModelFiles,
    /// `--max-transfers` permits.
    pub permits: Arc<Semaphore>,
    /// `--transfer-rate`, shared by all transfers, with the instant its clock counts from.
    pub pacer: Option<Arc<Mutex<(Pacer, Instant)>>>,
}

impl Transfers {
    pub fn new(
        catalog: Catalog,
        files: ModelFiles,
        max_transfers: usize,
        rate: Option<u64>,
    ) -> Transfers {
        Transfers {
            catalog,
            files,
            permits: Arc::new(Semaphore::new(max_transfers.max(1))),
            pacer: rate.map(|r| Arc::new(Mutex::new((Pacer::new(r), Instant::now())))),
        }
    }

    /// Starts sending `request`'s model to `who` (for logs); errors name the request field.
    pub async fn start(
        &self,
        request: pb::FetchModelRequest,
        who: String,
    ) -> Result<ReceiverStream<Result<pb::ModelChunk, Status>>, Status> {
        let sha256 = request.sha256.to_ascii_lowercase();
        if !is_sha256(&sha256) {
            return Err(Status::invalid_argument("sha256: not a sha256 hex digest"));
        }
        let entry = self
            .catalog
            .get(&sha256)
            .ok_or_else(|| Status::not_found(format!("sha256: no model {sha256} is registered")))?;
        if request.offset > entry.size_bytes {
            return Err(Status::out_of_range(format!(
                "offset: {} is past the end of the model ({} bytes)",
                request.offset, entry.size_bytes
            )));
        }
        let path = self.files.path_of(&entry);
        let size = entry.size_bytes;
        let offset = request.offset;
        // Opened before the stream is answered, so a missing file is this call's error.
        let file = tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(&path)?;
            let len = file.metadata()?.len();
            if len != size {
                return Err(std::io::Error::other(format!(
                    "{} is {len} bytes, registered as {size}",
                    path.display()
                )));
            }
            file.seek(SeekFrom::Start(offset))?;
            Ok(file)
        })
        .await
        .map_err(|e| Status::internal(format!("fetch task failed: {e}")))?
        .map_err(|e: std::io::Error| {
            warn!(model = %entry.name, error = %e, "registered model unreadable");
            Status::data_loss(format!(
                "sha256: the coordinator cannot read model {}: {e}",
                entry.name
            ))
        })?;
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let permits = self.permits.clone();
        let pacer = self.pacer.clone();
        let name = entry.name.clone();
        tokio::spawn(async move {
            // Waiting for a permit is part of the stream: the worker sees a slow start, not an error.
            let Ok(permit) = permits.acquire_owned().await else {
                return;
            };
            metrics::gauge!("benchfarm_model_transfers_active").increment(1.0);
            let started = Instant::now();
            let sent = tokio::task::spawn_blocking(move || {
                send_file(file, offset, size, &tx, pacer.as_deref())
            })
            .await
            .unwrap_or(Err(offset));
            drop(permit);
            metrics::gauge!("benchfarm_model_transfers_active").decrement(1.0);
            let seconds = started.elapsed().as_secs_f64();
            let (outcome, end) = match sent {
                Ok(end) => ("completed", end),
                Err(end) => ("interrupted", end),
            };
            let bytes = end - offset;
            metrics::counter!("benchfarm_model_transfers_total", "outcome" => outcome).increment(1);
            metrics::histogram!("benchfarm_model_transfer_seconds").record(seconds);
            info!(model = %name, worker = %who, offset, bytes, seconds, outcome,
                  mb_per_s = bytes as f64 / 1e6 / seconds.max(1e-9), "model transfer ended");
        });
        Ok(ReceiverStream::new(rx))
    }
}

/// Reads and sends chunks until the end of the file (`Ok(end)`) or until the receiver is gone or
/// a read fails (`Err(where it stopped)`).
fn send_file(
    mut file: std::fs::File,
    mut offset: u64,
    size: u64,
    tx: &mpsc::Sender<Result<pb::ModelChunk, Status>>,
    pacer: Option<&Mutex<(Pacer, Instant)>>,
) -> Result<u64, u64> {
    while offset < size {
        let want = usize::try_from(size - offset).map_or(CHUNK_BYTES, |left| left.min(CHUNK_BYTES));
        let mut data = vec![0u8; want];
        if let Err(err) = file.read_exact(&mut data) {
            let _ = tx.blocking_send(Err(Status::data_loss(format!(
                "reading the model at byte {offset}: {err}"
            ))));
            return Err(offset);
        }
        if let Some(pacer) = pacer {
            let wait = {
                let mut guard = pacer.lock().unwrap_or_else(|p| p.into_inner());
                let (pacer, origin) = &mut *guard;
                pacer.delay(origin.elapsed(), want as u64)
            };
            if wait > Duration::ZERO {
                std::thread::sleep(wait);
            }
        }
        let chunk = pb::ModelChunk {
            offset,
            data,
            size_bytes: size,
        };
        if tx.blocking_send(Ok(chunk)).is_err() {
            return Err(offset);
        }
        offset += want as u64;
        metrics::counter!("benchfarm_model_transfer_bytes_total").increment(want as u64);
    }
    Ok(offset)
}
