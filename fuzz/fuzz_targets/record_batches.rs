//! Record batches, of every codec, as the produce path checks them and as the group
//! coordinator reads them back from `__consumer_offsets`: once as given, once with each batch's
//! CRC-32C corrected so the checks behind the CRC are reached too.
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
});
