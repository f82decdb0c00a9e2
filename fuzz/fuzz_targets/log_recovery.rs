//! A partition directory with arbitrary file contents, opened as the broker opens it after a
//! crash (segment scan, index and time-index checks, the leader-epoch checkpoint), then read,
//! searched by timestamp, truncated and appended to.
//!
//! Input: records `[file u8][length u16 BE][contents]`; `file` picks one of a first segment's
//! files, a second segment's, or the epoch checkpoint.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::{within_budget, Counting, PER_BYTE};
use sluice_log::records::BatchBuilder;
use sluice_log::{Log, LogConfig};

#[global_allocator]
static ALLOC: Counting = Counting;

const FILES: [&str; 7] = [
    "00000000000000000000.log",
    "00000000000000000000.index",
    "00000000000000000000.timeindex",
    "00000000000000000050.log",
    "00000000000000000050.index",
    "00000000000000000050.timeindex",
    "leader-epoch-checkpoint",
];

/// A directory on tmpfs when there is one: the target writes a few files per input.
fn root() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        base.join(format!("sluice-fuzz-log-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = root().join("logs-0");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("fuzz directory");
    let mut rest = data;
    while let Some((&[file, hi, lo], tail)) = rest.split_first_chunk::<3>() {
        let len = usize::from(u16::from_be_bytes([hi, lo])).min(tail.len());
        let name = FILES[usize::from(file) % FILES.len()];
        std::fs::write(dir.join(name), &tail[..len]).expect("write fuzz file");
        rest = &tail[len..];
    }
    let opened = within_budget(data.len(), PER_BYTE, 4 << 20, || {
        let Ok(log) = Log::open(&dir, LogConfig::default()) else {
            return None;
        };
        let (start, end) = (log.log_start_offset(), log.log_end_offset());
        let mut at = start;
        while at < end {
            match log.read(at, 1 << 20, None) {
                Ok(slice) if !slice.is_empty() => {
                    let bytes = slice.read_to_vec().expect("read what recovery kept");
                    assert_eq!(bytes.len() as u64, slice.len);
                    let next = match log.batch_headers(at).next() {
                        Some(Ok(b)) => Some(b.header.last_offset() as u64 + 1),
                        _ => None,
                    };
                    match next {
                        Some(n) if n > at => at = n,
                        _ => break,
                    }
                }
                _ => break,
            }
        }
        for b in log.batch_headers(0).take(10_000) {
            if b.is_err() {
                break;
            }
        }
        Some((log, start, end))
    });
    let Some((mut log, start, end)) = opened else {
        return;
    };
    // A timestamp lookup inflates a compressed batch to find the record: besides what the input
    // holds, up to MAX_SCANNED_INFLATE of output (twice over while it grows) and a decoder's
    // working set (an LZ4 block buffer of up to 4 MiB, twice for linked blocks).
    within_budget(data.len(), PER_BYTE, SCAN_FIXED, || {
        for ts in [i64::MIN, -1, 0, 1_700_000_000_000, i64::MAX] {
            let _ = log.offset_for_timestamp(ts);
        }
    });
    within_budget(data.len(), PER_BYTE, 4 << 20, || {
        for e in 0..4 {
            let _ = log.end_offset_for_epoch(e);
        }
        let _ = log.truncate_to(start + (end - start) / 2);
        let mut b = BatchBuilder::new();
        b.push(1_700_000_000_000, Some(b"k"), Some(b"v"));
        let before = log.log_end_offset();
        // As the leader of the newest epoch the log knows (an older one is refused, rightly).
        let epoch = log.latest_epoch().unwrap_or(0).max(0);
        let appended = log
            .append(&b.build(), epoch)
            .expect("append after recovery");
        assert_eq!(appended.base_offset, before);
        let _ = log.close();
    });
});

/// The fixed part of the timestamp-lookup budget.
const SCAN_FIXED: usize = 2 * sluice_log::MAX_SCANNED_INFLATE + (8 << 20) + (1 << 20);
