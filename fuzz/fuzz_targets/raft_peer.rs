//! What a coord node reads from its peers: the Raft messages of the peer and election ports
//! (and the same encodings as sled holds them), snapshot chunks, and a committed log entry's
//! payload as the state machine applies it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::{within_budget, Counting, PER_BYTE};

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    within_budget(data.len(), PER_BYTE, 256 << 10, || {
        match data.split_first() {
            Some((&k, rest)) if k >= 0x80 => sluice_coord::server::fuzzing::log_entry(rest),
            _ => sluice_coord::raft::fuzzing::peer_message(data),
        }
    });
});
