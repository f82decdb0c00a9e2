//! Record batches, of every codec, as the produce path checks them (and re-encodes them for a
//! topic's `compression.type`) and as the group coordinator reads them back from
//! `__consumer_offsets`: once as given, once with each batch's CRC-32C corrected so the checks
//! behind the CRC are reached too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::{fix_crcs, within_budget, Counting, PER_BYTE};

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    let mut fixed = data.to_vec();
    fix_crcs(&mut fixed);
    within_budget(data.len(), PER_BYTE, 64 << 10, || {
        sluice_broker::fuzzing::produce_payload(data);
        sluice_broker::fuzzing::produce_payload(&fixed);
        sluice_broker::fuzzing::offsets_topic(data);
        sluice_broker::fuzzing::offsets_topic(&fixed);
    });
    // Re-encoding for a topic's `compression.type`: besides what the input holds, a decoder
    // may keep a fixed working set (an lz4 block of up to 4 MiB; the output up to the limit,
    // twice over while it grows and again compressed).
    within_budget(data.len(), PER_BYTE, RECODE_FIXED, || {
        sluice_broker::fuzzing::recode_payload(data);
        sluice_broker::fuzzing::recode_payload(&fixed);
    });
});

/// The fixed part of the re-encoding budget: lz4's largest block buffer twice (compressed and
/// decompressed), and the output limit four times.
const RECODE_FIXED: usize = (16 << 20) + 4 * sluice_broker::fuzzing::RECODE_LIMIT as usize;
