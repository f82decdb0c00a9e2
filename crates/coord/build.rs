//! Generates the peer RPC code (prost messages, tonic client and server) from the workspace's
//! `proto/raft.proto`. Needs `protoc`: `scripts/setup.sh` installs Debian's `protobuf-compiler`;
//! set `PROTOC` to use another one.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let raft_proto = proto_dir.join("raft.proto");
    println!("cargo:rerun-if-changed={}", raft_proto.display());
    println!("cargo:rerun-if-env-changed=PROTOC");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Payloads and snapshot chunks are handed around without copying.
        .bytes(".sluice.raft.v1")
        .compile_protos(&[raft_proto], &[proto_dir])?;
    Ok(())
}
