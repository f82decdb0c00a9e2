//! Tests of the Raft layer: the openraft storage suite on the sled store, and in-process
//! clusters on loopback.

mod cluster;
mod storage_suite;
