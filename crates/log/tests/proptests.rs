//! Property tests: random operation sequences against a model, arbitrary bytes as input and
//! as files on disk (never a panic), and random damage to the tail of the log (recovery keeps
//! exactly the batches that were whole before the damage).

mod common;

use common::*;
use proptest::prelude::*;
use sluice_log::batch::{validate_payload, BatchHeader, BatchLimits, Batches};
use sluice_log::{segment_file, Log, LogConfig};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;

fn config() -> ProptestConfig {
    ProptestConfig {
        // PROPTEST_CASES=1000 for a longer hunt; the default keeps the suite quick.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append(u64, usize),
    Read(f64, u64),
    Truncate(f64),
    DeleteRecords(f64),
    Reopen { clean: bool },
    Roll,
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..1000, 1usize..4).prop_map(|(s, n)| Op::Append(s, n)),
        2 => (0.0f64..1.0, 1u64..5000).prop_map(|(f, m)| Op::Read(f, m)),
        1 => (0.0f64..1.0).prop_map(Op::Truncate),
        1 => (0.0f64..1.0).prop_map(Op::DeleteRecords),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => Just(Op::Roll),
        1 => Just(Op::Flush),
    ]
}

/// Bytes of the segment files (`*.log`) in `dir`.
fn segment_file_bytes(dir: &std::path::Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

fn at(lo: u64, hi: u64, f: f64) -> u64 {
    lo + ((hi - lo) as f64 * f) as u64
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn operations_match_a_model(ops in prop::collection::vec(op(), 1..40)) {
        let d = tempdir();
        let path = d.path().join("p-0");
        let cfg = LogConfig { segment_bytes: 2048, index_interval_bytes: 200, ..small_config() };
        let mut log = Some(Log::open(&path, cfg.clone()).unwrap());
        let mut model = Model::default();
        let mut lso = 0u64;
        for op in ops {
            let l = log.as_mut().unwrap();
            match op {
                Op::Append(seed, n) => {
                    let mut payload = Vec::new();
                    for k in 0..n as u64 {
                        payload.extend(batch(seed + k));
                    }
                    let info = l.append(&payload, 0).unwrap();
                    prop_assert_eq!(info.base_offset, model.end().max(lso));
                    for (h, k) in info.batches.iter().zip(0..) {
                        let b = batch(seed + k);
                        model.push(h.base_offset as u64, stored(&b, h.base_offset as u64, 0));
                    }
                }
                Op::Read(f, max) => {
                    let end = l.log_end_offset();
                    let o = at(lso, end, f);
                    let s = l.read(o, max, None).unwrap();
                    if o < end {
                        prop_assert!(!s.is_empty());
                        prop_assert!(s.first_offset <= o && o < s.next_offset);
                        let first = model.batches.iter().find(|(b, bytes)| {
                            *b <= o && o <= b + BatchHeader::parse(bytes).unwrap().last_offset_delta as u64
                        }).unwrap();
                        let got = s.read_to_vec().unwrap();
                        prop_assert!(got.starts_with(&first.1));
                    } else {
                        prop_assert!(s.is_empty());
                    }
                }
                Op::Truncate(f) => {
                    let target = at(lso, l.log_end_offset(), f);
                    let end = l.truncate_to(target).unwrap();
                    prop_assert!(end <= target);
                    model.batches.retain(|(b, bytes)| {
                        b + (BatchHeader::parse(bytes).unwrap().last_offset_delta as u64) < end
                    });
                    // If the batch to cut straddled the start offset, the log restarted at
                    // the target.
                    lso = l.log_start_offset();
                    prop_assert_eq!(end, model.end().max(lso));
                }
                Op::DeleteRecords(f) => {
                    let target = at(lso, l.log_end_offset(), f);
                    lso = l.delete_records_before(target).unwrap();
                    prop_assert_eq!(lso, target.max(lso));
                }
                Op::Reopen { clean } => {
                    let l = log.take().unwrap();
                    if clean { l.close().unwrap() } else { drop(l) }
                    log = Some(Log::open(&path, cfg.clone()).unwrap());
                }
                Op::Roll => l.roll().unwrap(),
                Op::Flush => l.flush().unwrap(),
            }
            let l = log.as_ref().unwrap();
            // The size kept as segments change is what the segment files hold.
            prop_assert_eq!(l.size_bytes(), segment_file_bytes(&path));
            prop_assert_eq!(l.log_start_offset(), lso);
            prop_assert_eq!(l.log_end_offset(), model.end().max(lso));
            let expected: Vec<Vec<u8>> = model.batches.iter()
                .filter(|(b, bytes)| b + BatchHeader::parse(bytes).unwrap().last_offset_delta as u64 >= lso)
                .map(|(_, b)| b.clone()).collect();
            prop_assert!(read_all(l, lso) == expected);
        }
    }

    #[test]
    fn arbitrary_payloads_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400), seed in 0u64..50) {
        let limits = BatchLimits { max_batch_bytes: 1 << 20, segment_bytes: 1 << 30, strict: true };
        let _ = validate_payload(&bytes, &limits);
        for item in Batches::new(&bytes) { let _ = item; }
        let _ = BatchHeader::parse(&bytes);
        // A valid batch followed by garbage: the first batch is reported, then an error.
        let mut p = batch(seed);
        p.extend_from_slice(&bytes);
        let r = validate_payload(&p, &limits);
        if let Err(sluice_log::LogError::Batch { index, .. }) = r { prop_assert!(index >= 1 || bytes.is_empty()); }
    }

    #[test]
    fn arbitrary_files_on_disk_never_panic(
        good in 0u64..6,
        garbage in prop::collection::vec(any::<u8>(), 0..600),
        index in prop::collection::vec(any::<u8>(), 0..40),
        timeindex in prop::collection::vec(any::<u8>(), 0..40),
        epochs in "[0-9 \n]{0,20}",
        clean in any::<bool>(),
    ) {
        let d = tempdir();
        let dir = d.path().join("t-0");
        fs::create_dir_all(&dir).unwrap();
        let mut log_bytes = Vec::new();
        let mut next = 0;
        for i in 0..good {
            let b = batch(i);
            let n = BatchHeader::parse(&b).unwrap().last_offset_delta as u64 + 1;
            log_bytes.extend(stored(&b, next, 0));
            next += n;
        }
        log_bytes.extend_from_slice(&garbage);
        fs::write(segment_file(&dir, 0), &log_bytes).unwrap();
        fs::write(dir.join("00000000000000000000.index"), &index).unwrap();
        fs::write(dir.join("00000000000000000000.timeindex"), &timeindex).unwrap();
        fs::write(dir.join("leader-epoch-checkpoint"), &epochs).unwrap();
        if clean {
            fs::write(d.path().join(".kafka_cleanshutdown"), b"").unwrap();
        }
        let mut log = Log::open(&dir, LogConfig::default()).unwrap();
        prop_assert!(log.log_end_offset() >= next || clean);
        let all = read_all(&log, log.log_start_offset());
        prop_assert!(all.len() as u64 >= good.min(all.len() as u64));
        for ts in [0, 1_000_000, 1_000_025, i64::MAX] {
            let _ = log.offset_for_timestamp(ts);
        }
        for h in log.batch_headers(0) { let _ = h; }
        let _ = log.end_offset_for_epoch(0);
        let end = log.log_end_offset();
        let info = log.append(&batch(99), 0).unwrap();
        prop_assert_eq!(info.base_offset, end);
    }

    #[test]
    fn damaged_tail_recovers_to_a_prefix(
        n in 1u64..60,
        checkpoint_at in 0u64..60,
        cut in 0.0f64..1.0,
        garbage in prop::collection::vec(any::<u8>(), 0..200),
        flip in any::<bool>(),
    ) {
        let d = tempdir();
        let dir = d.path().join("t-0");
        let mut log = Log::open(&dir, small_config()).unwrap();
        let mut model = Model::default();
        // Part of the data may be flushed and checkpointed (close + reopen): damage is only
        // done after that point, since flushed data is on disk by contract.
        let mut flushed: Option<(u64, u64)> = None;
        for i in 0..n {
            if i == checkpoint_at {
                let base = *log.segment_base_offsets().last().unwrap();
                let size = fs::metadata(segment_file(&dir, base)).unwrap().len();
                log.close().unwrap();
                log = Log::open(&dir, small_config()).unwrap();
                flushed = Some((base, size));
            }
            let info = log.append(&batch(i), 0).unwrap();
            model.push(info.base_offset, stored(&batch(i), info.base_offset, 0));
        }
        let last = *log.segment_base_offsets().last().unwrap();
        drop(log); // a crash: no close
        let seg = segment_file(&dir, last);
        let len = fs::metadata(&seg).unwrap().len();
        let floor = match flushed {
            Some((base, size)) if base == last => size,
            _ => 0,
        };
        let keep = floor + ((len - floor) as f64 * cut) as u64;
        let f = OpenOptions::new().read(true).write(true).open(&seg).unwrap();
        f.set_len(keep).unwrap();
        let flip_at = (floor + keep) / 2;
        let flipped = flip && keep > floor;
        if flipped {
            // Damage one byte before the cut as well.
            let mut b = [0u8];
            f.read_exact_at(&mut b, flip_at).unwrap();
            f.write_all_at(&[!b[0]], flip_at).unwrap();
        }
        f.write_all_at(&garbage, keep).unwrap();
        drop(f);
        let log = Log::open(&dir, small_config()).unwrap();
        let got = read_all(&log, 0);
        let all = model.bytes();
        prop_assert!(got.len() <= all.len());
        prop_assert!(got[..] == all[..got.len()], "not a prefix");
        // Everything in earlier segments, and in the last one before the damage, survives.
        let whole_before: usize = {
            let mut pos = 0u64;
            let limit = if flipped { flip_at } else { keep };
            model.batches.iter().filter(|(b, bytes)| {
                if *b < last { return true; }
                pos += bytes.len() as u64;
                pos <= limit
            }).count()
        };
        prop_assert!(got.len() >= whole_before, "lost good data: {} < {}", got.len(), whole_before);
        prop_assert_eq!(log.log_end_offset(), model.batches.get(got.len()).map_or(model.end(), |(b, _)| *b));
    }
}
