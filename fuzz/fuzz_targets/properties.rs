//! A `.properties` file read as `server.properties` and as `zookeeper.properties`.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::{within_budget, Counting, PER_BYTE};

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    within_budget(data.len(), PER_BYTE, 64 << 10, || {
        if let Ok(loaded) =
            sluice_config::BrokerConfig::from_bytes(Path::new("server.properties"), data)
        {
            let _ = loaded.config.effective();
        }
        if let Ok(loaded) =
            sluice_config::CoordConfig::from_bytes(Path::new("zookeeper.properties"), data)
        {
            let _ = loaded.config.effective();
        }
    });
});
