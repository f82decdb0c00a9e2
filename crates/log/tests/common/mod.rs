//! Helpers shared by the integration tests: deterministic batches and a model of what the
//! log should hold.
#![allow(dead_code)]

use sluice_log::batch::{set_base_offset, set_partition_leader_epoch, BatchHeader};
use sluice_log::records::BatchBuilder;
use sluice_log::{Log, LogConfig};

/// Batch number `i`: `(i % 5) + 1` records with values derived from `i`, timestamps
/// `1_000_000 + i * 10 + record`.
pub fn batch(i: u64) -> Vec<u8> {
    let n = (i % 5) + 1;
    let mut b = BatchBuilder::new();
    for r in 0..n {
        let value = format!("batch {i} record {r} {}", "x".repeat((i % 7) as usize * 13));
        b.push(
            1_000_000 + (i * 10 + r) as i64,
            Some(format!("k{i}").as_bytes()),
            Some(value.as_bytes()),
        );
    }
    b.build()
}

/// A batch of `n` records of `size` value bytes each, with timestamp `ts`.
pub fn sized_batch(n: usize, size: usize, ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    let value = vec![b'v'; size];
    for _ in 0..n {
        b.push(ts, None, Some(&value));
    }
    b.build()
}

/// `bytes` as the log stores it: base offset and leader epoch rewritten.
pub fn stored(bytes: &[u8], base_offset: u64, epoch: i32) -> Vec<u8> {
    let mut b = bytes.to_vec();
    set_base_offset(&mut b, base_offset as i64);
    set_partition_leader_epoch(&mut b, epoch);
    b
}

/// Small segments and a dense index so tests exercise rolls and index lookups.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// Reads the whole log from `from` as a list of batches (bytes), following fetches.
pub fn read_all(log: &Log, from: u64) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut offset = from;
    loop {
        let slice = log.read(offset, 64 * 1024, None).expect("read");
        if slice.is_empty() {
            break;
        }
        let bytes = slice.read_to_vec().expect("copy");
        let mut pos = 0;
        while pos < bytes.len() {
            let h = BatchHeader::parse(&bytes[pos..]).expect("stored batch parses");
            let end = pos + h.size() as usize;
            sluice_log::batch::verify_crc(&bytes[pos..end], &h).expect("stored batch CRC");
            out.push(bytes[pos..end].to_vec());
            pos = end;
        }
        offset = slice.next_offset;
    }
    out
}

/// Model of the expected log: stored batch bytes in order.
#[derive(Debug, Default, Clone)]
pub struct Model {
    pub batches: Vec<(u64, Vec<u8>)>,
}

impl Model {
    pub fn push(&mut self, base: u64, bytes: Vec<u8>) {
        self.batches.push((base, bytes));
    }
    pub fn end(&self) -> u64 {
        self.batches.last().map_or(0, |(b, bytes)| {
            b + BatchHeader::parse(bytes).unwrap().last_offset_delta as u64 + 1
        })
    }
    pub fn bytes(&self) -> Vec<Vec<u8>> {
        self.batches.iter().map(|(_, b)| b.clone()).collect()
    }
}

/// A temporary directory, on tmpfs (`/dev/shm`) when there is one: these tests check logic,
/// not the disk, and every roll, truncation and checkpoint fsyncs, which on a busy disk makes
/// the suites slow. The crash test uses the real disk.
pub fn tempdir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new()
            .prefix("sluice-log-")
            .tempdir_in(shm)
        {
            return d;
        }
    }
    tempfile::tempdir().expect("temporary directory")
}
