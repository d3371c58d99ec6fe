//! Generates the tonic/prost code for `benchfarm.v1` and a file descriptor set for server reflection.
//!
//! `protoc` comes from Debian's `protobuf-compiler` (installed by `scripts/setup.sh`), or from `$PROTOC`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "benchfarm/v1/worker.proto",
        "benchfarm/v1/farm.proto",
        "benchfarm/v1/models.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    // `build_transport(false)`: the rpc is named `Connect` (the protocol's word for it), which would
    // clash with the generated client's `connect(url)` constructor; clients build a `Channel` and call
    // `WorkerServiceClient::new(channel)` instead.
    tonic_prost_build::configure()
        .build_transport(false)
        .file_descriptor_set_path(out_dir.join("benchfarm_descriptor.bin"))
        .compile_protos(&protos, &["."])?;
    Ok(())
}
