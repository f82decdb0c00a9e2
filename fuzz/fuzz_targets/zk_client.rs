//! What a ZooKeeper client sends on coord's client port, from its first byte: a four-letter word
//! or a ConnectRequest, then requests, carried out against a state machine.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::{within_budget, Counting, PER_BYTE};

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    within_budget(data.len(), PER_BYTE, 256 << 10, || {
        sluice_coord::server::fuzzing::client_bytes(data)
    });
});
