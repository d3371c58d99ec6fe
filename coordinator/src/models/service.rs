//! `ModelService`: the gRPC face of the model store. Thin: uploads are [`upload::receive`],
//! fetches [`Transfers::start`], and the registry is the [`Catalog`]; this file converts, runs the
//! blocking parts on the blocking pool and asks the scheduler which workers hold what.
//!
//! Roles (`auth/policy.rs`): uploads, offsets and removal need an operator; listing a submitter;
//! `FetchModel` a worker token, the same one that opens the worker's stream.

use std::pin::Pin;

use benchfarm_proto::v1 as pb;
use benchfarm_proto::v1::model_service_server::ModelService;
use futures::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::info;

use super::fetch::Transfers;
use super::upload::{self, Uploads};
use super::{Catalog, ModelEntry, ModelFiles, is_sha256};
use crate::auth::Caller;
use crate::scheduler::{Command, SchedulerHandle};

#[derive(Debug, Clone)]
pub struct ModelServiceImpl {
    uploads: Uploads,
    transfers: Transfers,
    scheduler: SchedulerHandle,
}

impl ModelServiceImpl {
    pub fn new(uploads: Uploads, transfers: Transfers, scheduler: SchedulerHandle) -> Self {
        ModelServiceImpl {
            uploads,
            transfers,
            scheduler,
        }
    }

    fn catalog(&self) -> &Catalog {
        &self.uploads.catalog
    }

    fn files(&self) -> &ModelFiles {
        &self.uploads.files
    }

    /// Worker names by the digests they hold (their models directory and their cache).
    async fn holders(&self) -> Result<std::collections::HashMap<String, Vec<String>>, Status> {
        let workers = self
            .scheduler
            .ask(|reply| Command::ListWorkers { reply })
            .await?;
        let mut by_sha: std::collections::HashMap<String, Vec<String>> = Default::default();
        for w in workers.iter().filter(|w| w.connected) {
            let shas = w
                .record
                .models
                .iter()
                .chain(&w.cache.models)
                .map(|m| m.sha256.clone())
                .collect::<std::collections::BTreeSet<_>>();
            for sha in shas {
                by_sha.entry(sha).or_default().push(w.record.name.clone());
            }
        }
        for names in by_sha.values_mut() {
            names.sort();
        }
        Ok(by_sha)
    }
}

/// A registry entry on the wire.
pub fn registered(entry: &ModelEntry, holders: Vec<String>) -> pb::RegisteredModel {
    pb::RegisteredModel {
        name: entry.name.clone(),
        sha256: entry.sha256.clone(),
        size_bytes: entry.size_bytes,
        file_name: entry.file_name.clone(),
        architecture: entry.architecture.clone(),
        quantization: entry.quantization.clone(),
        parameter_count: entry.parameter_count,
        context_length: entry.context_length,
        origin: entry.origin.as_str().to_string(),
        added_unix_ms: entry.added_unix_ms,
        holders,
    }
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::ModelChunk, Status>> + Send>>;

#[tonic::async_trait]
impl ModelService for ModelServiceImpl {
    async fn upload_model(
        &self,
        request: Request<Streaming<pb::UploadChunk>>,
    ) -> Result<Response<pb::UploadModelResponse>, Status> {
        upload::receive(&self.uploads, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn upload_offset(
        &self,
        request: Request<pb::UploadOffsetRequest>,
    ) -> Result<Response<pb::UploadOffsetResponse>, Status> {
        let sha256 = request.into_inner().sha256.to_ascii_lowercase();
        if !is_sha256(&sha256) {
            return Err(Status::invalid_argument("sha256: not a sha256 hex digest"));
        }
        if self.catalog().get(&sha256).is_some() {
            return Ok(Response::new(pb::UploadOffsetResponse {
                offset: 0,
                registered: true,
            }));
        }
        let files = self.files().clone();
        let offset = tokio::task::spawn_blocking(move || files.partial_len(&sha256))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::UploadOffsetResponse {
            offset,
            registered: false,
        }))
    }

    async fn list_models(
        &self,
        _: Request<pb::ListModelsRequest>,
    ) -> Result<Response<pb::ListModelsResponse>, Status> {
        let mut holders = self.holders().await?;
        let models = self
            .catalog()
            .list()
            .iter()
            .map(|e| registered(e, holders.remove(&e.sha256).unwrap_or_default()))
            .collect();
        Ok(Response::new(pb::ListModelsResponse { models }))
    }

    async fn remove_model(
        &self,
        request: Request<pb::RemoveModelRequest>,
    ) -> Result<Response<pb::RegisteredModel>, Status> {
        let query = request.into_inner().model;
        let catalog = self.catalog().clone();
        let files = self.files().clone();
        let entry = tokio::task::spawn_blocking(move || {
            let entry = catalog.remove(&query).map_err(|e| match e {
                super::CatalogError::Resolve(r) => Status::not_found(format!("model: {r}")),
                other => upload::catalog_status(other),
            })?;
            files
                .delete_stored(&entry)
                .map_err(|e| Status::internal(format!("unregistered, but its file stays: {e}")))?;
            Ok::<_, Status>(entry)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
        info!(model = %entry.name, sha256 = %entry.sha256, origin = entry.origin.as_str(), "model removed");
        Ok(Response::new(registered(&entry, Vec::new())))
    }

    type FetchModelStream = ChunkStream;

    async fn fetch_model(
        &self,
        request: Request<pb::FetchModelRequest>,
    ) -> Result<Response<Self::FetchModelStream>, Status> {
        let who = request
            .extensions()
            .get::<Caller>()
            .and_then(|c| c.token_name().map(str::to_string))
            .unwrap_or_else(|| {
                request
                    .remote_addr()
                    .map_or_else(|| "unknown".to_string(), |a| a.to_string())
            });
        let stream = self.transfers.start(request.into_inner(), who).await?;
        Ok(Response::new(Box::pin(stream)))
    }
}
