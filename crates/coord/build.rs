//! Generates the peer RPC code (prost messages, tonic client and server) from the workspace's
//! `proto/raft.proto`. The `.proto` file is parsed by `protox`, a protobuf compiler written in
//! Rust, so the build needs nothing beyond cargo: no `protoc` on the machine, no `PROTOC`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let raft_proto = proto_dir.join("raft.proto");
    println!("cargo:rerun-if-changed={}", raft_proto.display());
    let descriptors = protox::compile([&raft_proto], [&proto_dir])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Payloads and snapshot chunks are handed around without copying.
        .bytes(".sluice.raft.v1")
        .compile_fds(descriptors)?;
    Ok(())
}
