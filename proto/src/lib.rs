//! Wire types of the benchfarm protocol, generated from `proto/benchfarm/v1/*.proto`.
//!
//! This crate holds only what travels on the wire (as tokio-rs/console's `console-api` does):
//! the coordinator and the worker convert to and from their own domain types at their edges, so a
//! change of wire format is one place and the domain code never sees `Option<Message>` plumbing.

/// `benchfarm.v1`: the worker stream (`WorkerService.Connect`), the user API (`FarmService`) and
/// model distribution (`ModelService`).
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("benchfarm.v1");
}

/// The encoded `FileDescriptorSet` of `benchfarm.v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("benchfarm_descriptor");

impl v1::JobKey {
    /// The key as one string, `job_id#attempt`, for logs and store keys.
    pub fn display(&self) -> String {
        format!("{}#{}", self.job_id, self.attempt)
    }
}
