//! `coordinator models add|list|rm`: the models the coordinator holds and workers fetch.
//!
//! `add` checks each file's GGUF header and hashes it here, before a byte is sent, so a wrong file
//! is refused with its own error; it then asks the coordinator how much of that digest it already
//! holds (`UploadOffset`) and uploads the rest, so running the same command again after an
//! interruption resumes instead of starting over. The coordinator verifies the digest and header
//! again on arrival: the check here is for the user, that one is for the store.

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use benchfarm_proto::v1 as pb;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_stream::wrappers::ReceiverStream;

use super::connect::{Target, connect_models};

/// Bytes per upload message.
const CHUNK_BYTES: usize = 1 << 20;

/// `models add PATH... [--name NAME]`.
pub async fn add(target: &Target, paths: &[PathBuf], name: Option<&str>) -> Result<i32> {
    if name.is_some() && paths.len() > 1 {
        bail!("--name names one model; give one file with it");
    }
    let mut client = connect_models(target).await?;
    for path in paths {
        let (info, sha256) = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || -> Result<_> {
                let info = benchfarm_modelfile::read_gguf(&path)
                    .with_context(|| format!("{} is not a GGUF model", path.display()))?;
                let sha = benchfarm_modelfile::sha256_file(&path)
                    .with_context(|| format!("cannot hash {}", path.display()))?;
                Ok((info, sha))
            })
            .await??
        };
        let size = info.file_len();
        let state = client
            .upload_offset(pb::UploadOffsetRequest {
                sha256: sha256.clone(),
            })
            .await
            .context("asking the coordinator what it holds")?
            .into_inner();
        if state.registered {
            eprintln!(
                "{}: registered already (sha256 {})",
                path.display(),
                &sha256[..12]
            );
            continue;
        }
        let offset = state.offset;
        if offset > 0 {
            eprintln!("{}: resuming at byte {offset} of {size}", path.display());
        }
        let header = pb::UploadHeader {
            name: name.unwrap_or_default().to_string(),
            sha256: sha256.clone(),
            size_bytes: size,
            offset,
            file_name: file_name(path),
        };
        let started = Instant::now();
        let stream = upload_stream(path, header).await?;
        let response = client
            .upload_model(stream)
            .await
            .with_context(|| format!("uploading {}", path.display()))?
            .into_inner();
        if !response.complete {
            bail!(
                "{}: the upload stopped at byte {} of {size}; run the command again to resume",
                path.display(),
                response.received_bytes
            );
        }
        let model = response.model.unwrap_or_default();
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{}  {}  {}  ({} in {seconds:.1} s, {:.0} MB/s)",
            model.name,
            &model.sha256[..12.min(model.sha256.len())],
            path.display(),
            size_text(size - offset),
            (size - offset) as f64 / 1e6 / seconds.max(1e-9)
        );
    }
    Ok(0)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The header, then the file from the header's offset, read as the stream is sent.
async fn upload_stream(
    path: &Path,
    header: pb::UploadHeader,
) -> Result<ReceiverStream<pb::UploadChunk>> {
    let mut file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.seek(SeekFrom::Start(header.offset)).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::UploadChunk {
        kind: Some(pb::upload_chunk::Kind::Header(header)),
    })
    .await
    .ok();
    let shown = path.display().to_string();
    tokio::spawn(async move {
        loop {
            let mut data = Vec::with_capacity(CHUNK_BYTES);
            match (&mut file)
                .take(CHUNK_BYTES as u64)
                .read_to_end(&mut data)
                .await
            {
                Ok(0) => return,
                Ok(_) => {}
                Err(err) => {
                    // Ending the stream early: the coordinator keeps what it got, for a resume.
                    eprintln!("{shown}: read error: {err}");
                    return;
                }
            }
            let chunk = pb::UploadChunk {
                kind: Some(pb::upload_chunk::Kind::Data(data)),
            };
            if tx.send(chunk).await.is_err() {
                return;
            }
        }
    });
    Ok(ReceiverStream::new(rx))
}

/// `models list`.
pub async fn list(target: &Target) -> Result<i32> {
    let mut client = connect_models(target).await?;
    let models = client
        .list_models(pb::ListModelsRequest {})
        .await?
        .into_inner()
        .models;
    print!("{}", table(&models));
    Ok(0)
}

/// The `models list` table.
pub fn table(models: &[pb::RegisteredModel]) -> String {
    let mut out = format!(
        "{:<28} {:>9} {:<12} {:<10} {:<8} {:>7} {:<8} HOLDERS\n",
        "NAME", "SIZE", "SHA256", "ARCH", "QUANT", "PARAMS", "ORIGIN"
    );
    for m in models {
        let holders = if m.holders.is_empty() {
            "-".to_string()
        } else {
            m.holders.join(",")
        };
        out.push_str(&format!(
            "{:<28} {:>9} {:<12} {:<10} {:<8} {:>7} {:<8} {holders}\n",
            m.name,
            size_text(m.size_bytes),
            m.sha256.get(..12).unwrap_or(&m.sha256),
            dash(&m.architecture),
            dash(&m.quantization),
            params_text(m.parameter_count),
            m.origin,
        ));
    }
    if models.is_empty() {
        out.push_str(
            "(no models registered: coordinator models add FILE.gguf, or serve --models-dir DIR)\n",
        );
    }
    out
}

fn dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

/// `98.4 MB`.
pub fn size_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 => format!("{:.2} GB", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}

/// `135M`, `2.7B`.
fn params_text(n: u64) -> String {
    match n {
        0 => "-".into(),
        n if n >= 1_000_000_000 => format!("{:.1}B", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{}M", (n as f64 / 1e6).round()),
        n => format!("{n}"),
    }
}

/// `models rm MODEL`.
pub async fn rm(target: &Target, model: &str) -> Result<i32> {
    let mut client = connect_models(target).await?;
    let removed = client
        .remove_model(pb::RemoveModelRequest {
            model: model.to_string(),
        })
        .await
        .with_context(|| format!("removing {model}"))?
        .into_inner();
    println!(
        "removed {} ({}, {}{})",
        removed.name,
        &removed.sha256[..12.min(removed.sha256.len())],
        size_text(removed.size_bytes),
        if removed.origin == "in-place" {
            "; its file stays where it is"
        } else {
            ""
        }
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_what_a_user_picks_a_model_by() {
        let model = pb::RegisteredModel {
            name: "SmolLM2".into(),
            sha256: "b179c9523d0e6a0f98a3".into(),
            size_bytes: 98_362_432,
            architecture: "llama".into(),
            quantization: "Q4_1".into(),
            parameter_count: 134_515_008,
            origin: "upload".into(),
            holders: vec!["w1".into(), "w2".into()],
            ..pb::RegisteredModel::default()
        };
        let text = table(&[model]);
        let row = text.lines().nth(1).unwrap();
        for part in [
            "SmolLM2",
            "98.4 MB",
            "b179c9523d0e",
            "llama",
            "Q4_1",
            "135M",
            "upload",
            "w1,w2",
        ] {
            assert!(row.contains(part), "{part} missing from {row:?}");
        }
        assert!(table(&[]).contains("no models registered"));
    }
}
