//! Generated peer RPC code for `proto/raft.proto` (prost messages, tonic client and server).
//! Nothing here is written by hand; `codec` converts between these messages and openraft's types.

#![allow(
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic,
    unreachable_pub,
    rustdoc::all
)]

tonic::include_proto!("sluice.raft.v1");
