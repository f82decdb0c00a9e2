//! What a coord node reads from its peers: the Raft messages of the peer and election ports
//! (and the same encodings as sled holds them), snapshot chunks, and a committed log entry's
//! payload as the state machine applies it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::{within_budget, Counting, PER_BYTE};

#[global_allocator]
static ALLOC: Counting = Counting;

/// The fixed allowance covers serde's cautious preallocation: a sequence in a log entry's
/// payload (postcard) preallocates up to 1 MiB whatever length it claims, and a command nests
/// a few sequences (commands, multi ops, ACLs). A constant, not a multiple of what a claimed
/// length says (decision 0010).
const FIXED: usize = 5 << 20;

fuzz_target!(|data: &[u8]| {
    within_budget(data.len(), PER_BYTE, FIXED, || match data.split_first() {
        Some((&k, rest)) if k >= 0x80 => sluice_coord::server::fuzzing::log_entry(rest),
        _ => sluice_coord::raft::fuzzing::peer_message(data),
    });
});
