//! The farm's workers as the coordinator lists them. Both farms ([`crate::in_process`],
//! [`crate::process`]) re-export these.

use benchfarm_coordinator::cli::connect::FarmClient;
use benchfarm_proto::v1 as pb;

/// Every worker the coordinator knows, connected or not.
pub async fn list_workers(client: &mut FarmClient) -> Vec<pb::WorkerStatus> {
    client
        .list_workers(pb::ListWorkersRequest {})
        .await
        .unwrap()
        .into_inner()
        .workers
}

/// The worker named `name` as the coordinator lists it.
pub async fn worker_status(client: &mut FarmClient, name: &str) -> Option<pb::WorkerStatus> {
    list_workers(client)
        .await
        .into_iter()
        .find(|w| w.name == name)
}
