//! A Kafka request frame (the bytes after the size prefix) through the broker's decode and
//! validation path, for every API and version the broker serves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::{within_budget, Counting, PER_BYTE};

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    within_budget(data.len(), PER_BYTE, 64 << 10, || {
        sluice_broker::fuzzing::kafka_request(data)
    });
});
