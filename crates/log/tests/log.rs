//! Behaviour of one partition log: append/read round trips, fetch semantics, rolling,
//! truncation, record deletion, retention, timestamps, leader epochs, replicated appends.

mod common;

use common::*;
use sluice_log::batch::BatchHeader;
use sluice_log::records::encode_raw_batch;
use sluice_log::{kafka_code, Log, LogConfig, LogError, TimestampOffset};
use std::fs;

fn open(dir: &std::path::Path, config: LogConfig) -> Log {
    Log::open(dir.join("topic-0"), config).unwrap()
}

#[test]
fn append_assigns_offsets_and_reads_back_exact_bytes() {
    let d = tempdir();
    let mut log = open(d.path(), small_config());
    let mut model = Model::default();
    for i in 0..200 {
        let b = batch(i);
        let info = log.append(&b, 3).unwrap();
        assert_eq!(info.base_offset, model.end());
        assert_eq!(info.batches.len(), 1);
        assert_eq!(info.batches[0].base_offset as u64, info.base_offset);
        assert_eq!(info.record_count, (i % 5) + 1);
        model.push(info.base_offset, stored(&b, info.base_offset, 3));
    }
    assert!(log.segment_count() > 5, "small segments roll");
    assert_eq!(log.log_end_offset(), model.end());
    assert_eq!(read_all(&log, 0), model.bytes());
    // Every offset is readable and the slice starts at the batch holding it.
    for (base, bytes) in &model.batches {
        let h = BatchHeader::parse(bytes).unwrap();
        for o in *base..=h.last_offset() as u64 {
            let s = log.read(o, 1, None).unwrap();
            assert_eq!(s.first_offset, *base);
            assert_eq!(s.read_to_vec().unwrap(), *bytes);
        }
    }
    // Reopen after a clean close: same content, same offsets.
    log.close().unwrap();
    let log = open(d.path(), small_config());
    assert_eq!(log.log_end_offset(), model.end());
    assert_eq!(read_all(&log, 0), model.bytes());
}

#[test]
fn payload_with_several_batches_is_one_append() {
    let d = tempdir();
    let mut log = open(d.path(), LogConfig::default());
    let mut payload = batch(1);
    payload.extend(batch(2));
    payload.extend(batch(3));
    let info = log.append(&payload, 0).unwrap();
    assert_eq!(info.batches.len(), 3);
    assert_eq!(info.base_offset, 0);
    assert_eq!(info.last_offset, 2 + 3 + 4 - 1);
    assert_eq!(info.size_bytes, payload.len() as u64);
    assert_eq!(info.max_timestamp, 1_000_000 + 33);
    let offsets: Vec<i64> = info.batches.iter().map(|h| h.base_offset).collect();
    assert_eq!(offsets, vec![0, 2, 5]);
    // A bad batch anywhere rejects the whole payload.
    let mut bad = batch(4);
    bad.extend(batch(5));
    let n = bad.len();
    bad[n - 3] ^= 1;
    let e = log.append(&bad, 0).unwrap_err();
    assert_eq!(e.kafka_error_code(), kafka_code::CORRUPT_MESSAGE);
    assert!(matches!(e, LogError::Batch { index: 1, .. }));
    assert_eq!(log.log_end_offset(), 9);
}

#[test]
fn fetch_semantics() {
    let d = tempdir();
    let mut log = open(d.path(), LogConfig::default());
    for i in 0..10 {
        log.append(&sized_batch(10, 100, i), 0).unwrap();
    }
    // 10 batches of 10 records.
    let one = log.read(0, 1, None).unwrap();
    let batch_len = one.len;
    assert_eq!(
        one.next_offset, 10,
        "at least one whole batch even if over max_bytes"
    );
    let s = log.read(25, batch_len * 3, None).unwrap();
    assert_eq!(
        (s.first_offset, s.next_offset, s.len),
        (20, 50, batch_len * 3)
    );
    let s = log.read(25, u64::MAX, Some(60)).unwrap();
    assert_eq!(s.next_offset, 60, "stops at the high watermark");
    let s = log.read(25, u64::MAX, Some(55)).unwrap();
    assert_eq!(
        s.next_offset, 50,
        "a batch straddling the limit is not returned"
    );
    let s = log.read(55, u64::MAX, Some(55)).unwrap();
    assert!(s.is_empty());
    let s = log.read(100, 1000, None).unwrap();
    assert!(s.is_empty(), "log end offset gives an empty slice");
    let e = log.read(101, 1000, None).unwrap_err();
    assert_eq!(e.kafka_error_code(), kafka_code::OFFSET_OUT_OF_RANGE);
    // The slice's file range holds exactly the batches (what sendfile would send).
    let s = log.read(0, u64::MAX, None).unwrap();
    assert_eq!(s.to_bytes().unwrap().len() as u64, s.len);
    assert_eq!(s.file().metadata().unwrap().len(), s.len);
}

#[test]
fn compressed_batches_pass_through_untouched() {
    let d = tempdir();
    let mut log = open(d.path(), LogConfig::default());
    // gzip (1) attribute with an opaque body: the log must neither decode nor alter it.
    let raw = encode_raw_batch(1, 7, 500, 900, b"\x1f\x8b not really gzip but opaque");
    let info = log.append(&raw, 2).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 6));
    let got = log.read(0, 1 << 20, None).unwrap().read_to_vec().unwrap();
    assert_eq!(got, stored(&raw, 0, 2));
    // ListOffsets falls back to the batch for compressed data.
    assert_eq!(
        log.offset_for_timestamp(600).unwrap(),
        Some(TimestampOffset {
            timestamp: 900,
            offset: 0,
            leader_epoch: 2,
        })
    );
}

#[test]
fn old_magic_and_oversized_batches_are_rejected() {
    let d = tempdir();
    let mut log = open(
        d.path(),
        LogConfig {
            max_batch_bytes: 2000,
            ..LogConfig::default()
        },
    );
    let mut legacy = batch(1);
    legacy[16] = 1;
    let e = log.append(&legacy, 0).unwrap_err();
    assert_eq!(e.kafka_error_code(), kafka_code::INVALID_RECORD);
    let e = log.append(&sized_batch(10, 300, 0), 0).unwrap_err();
    assert_eq!(e.kafka_error_code(), kafka_code::MESSAGE_TOO_LARGE);
    let e = log.append(&[1, 2, 3], 0).unwrap_err();
    assert_eq!(e.kafka_error_code(), kafka_code::CORRUPT_MESSAGE);
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
}

#[test]
fn truncate_to_batch_boundaries_and_segments() {
    let d = tempdir();
    let mut log = open(d.path(), small_config());
    let mut model = Model::default();
    for i in 0..120 {
        let info = log.append(&batch(i), 1).unwrap();
        model.push(info.base_offset, stored(&batch(i), info.base_offset, 1));
    }
    log.set_high_watermark(u64::MAX);
    let segments = log.segment_base_offsets();
    // Truncate at a segment's base: that segment goes, the previous one is active again.
    let cut = segments[segments.len() / 2];
    assert_eq!(log.truncate_to(cut).unwrap(), cut);
    assert_eq!(
        *log.segment_base_offsets().last().unwrap(),
        segments[segments.len() / 2 - 1]
    );
    assert!(log.high_watermark() <= cut);
    model.batches.retain(|(b, _)| *b < cut);
    assert_eq!(read_all(&log, 0), model.bytes());
    // Inside a batch: the whole batch goes.
    let (b, bytes) = model.batches[40].clone();
    let h = BatchHeader::parse(&bytes).unwrap();
    let new_end = log.truncate_to(b + h.last_offset_delta as u64).unwrap();
    if h.last_offset_delta > 0 {
        assert_eq!(new_end, b);
    }
    model.batches.retain(|(o, _)| *o < new_end);
    assert_eq!(read_all(&log, 0), model.bytes());
    // Appending continues from the new end, across reopen.
    let info = log.append(&batch(999), 2).unwrap();
    assert_eq!(info.base_offset, new_end);
    model.push(new_end, stored(&batch(999), new_end, 2));
    drop(log);
    let log = open(d.path(), small_config());
    assert_eq!(read_all(&log, 0), model.bytes());
    assert_eq!(log.log_end_offset(), model.end());
}

#[test]
fn delete_records_and_retention() {
    let d = tempdir();
    let mut log = open(d.path(), small_config());
    for i in 0..200 {
        log.append(&sized_batch(2, 100, 10_000 + i), 0).unwrap();
    }
    let before = log.segment_count();
    // Nothing is deleted beyond the high watermark.
    log.set_high_watermark(0);
    let mut cfg = small_config();
    cfg.retention_bytes = Some(0);
    log.set_config(cfg);
    assert_eq!(log.enforce_retention(0).unwrap().deleted_segments, 0);
    log.set_high_watermark(u64::MAX);

    // DeleteRecords moves the start and drops whole segments below it.
    let lso = log.delete_records_before(101).unwrap();
    assert_eq!(lso, 101);
    assert!(log.segment_count() < before);
    assert!(log.segment_base_offsets()[0] <= 101);
    let e = log.read(100, 100, None).unwrap_err();
    assert_eq!(e.kafka_error_code(), kafka_code::OFFSET_OUT_OF_RANGE);
    let s = log.read(101, 100, None).unwrap();
    assert_eq!(s.first_offset, 100, "the batch holding the start offset");
    assert!(log.delete_records_before(1_000_000).is_err());

    // The start offset survives a restart.
    drop(log);
    let mut log = open(d.path(), small_config());
    assert_eq!(log.log_start_offset(), 101);

    // Size retention: everything but the active segment.
    log.set_high_watermark(u64::MAX);
    let mut cfg = small_config();
    cfg.retention_bytes = Some(0);
    log.set_config(cfg);
    let out = log.enforce_retention(0).unwrap();
    assert!(out.deleted_segments > 0);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), log.segment_base_offsets()[0]);
    assert_eq!(log.log_end_offset(), 400);
}

#[test]
fn time_retention_uses_segment_max_timestamp() {
    let d = tempdir();
    let cfg = LogConfig {
        retention_ms: Some(1000),
        ..small_config()
    };
    let mut log = open(d.path(), cfg);
    for i in 0..100 {
        log.append(&sized_batch(2, 100, 1_000 * i), 0).unwrap();
    }
    log.set_high_watermark(u64::MAX);
    let n = log.segment_count();
    // At time 50_500 the segments whose newest batch is older than 49_500 go.
    let out = log.enforce_retention(50_500).unwrap();
    assert!(out.deleted_segments > 0 && out.deleted_segments < n);
    let first = log.segment_base_offsets()[0];
    let s = log.read(first, 1, None).unwrap();
    let bytes = s.read_to_vec().unwrap();
    let h = BatchHeader::parse(&bytes).unwrap();
    assert!(
        h.max_timestamp >= 40_000,
        "recent data kept: {}",
        h.max_timestamp
    );
    // Far in the future: all but the active segment.
    log.enforce_retention(10_000_000).unwrap();
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn roll_by_time_follows_batch_timestamps() {
    let d = tempdir();
    let cfg = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = open(d.path(), cfg);
    log.append(&sized_batch(1, 10, 10_000), 0).unwrap();
    log.append(&sized_batch(1, 10, 10_500), 0).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&sized_batch(1, 10, 11_001), 0).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
    // The segment left behind is fsynced in the background; the recovery point follows.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while log.recovery_point() < 2 && std::time::Instant::now() < deadline {
        log.flush_if_due(0).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(
        log.recovery_point(),
        2,
        "a roll fsyncs what it leaves behind, not the active segment"
    );
}

#[test]
fn offset_for_timestamp_finds_first_record() {
    let d = tempdir();
    let mut log = open(d.path(), small_config());
    // Batch i holds records with timestamps 1_000_000 + i*10 + r.
    for i in 0..300 {
        log.append(&batch(i), 0).unwrap();
    }
    let mut expected_offset = 0u64;
    for i in 0..300u64 {
        let n = i % 5 + 1;
        for r in 0..n {
            let ts = 1_000_000 + (i * 10 + r) as i64;
            let got = log.offset_for_timestamp(ts).unwrap().unwrap();
            assert_eq!(
                got,
                TimestampOffset {
                    timestamp: ts,
                    offset: expected_offset + r,
                    leader_epoch: 0,
                }
            );
        }
        // Between batches: the next batch's first record.
        let gap = 1_000_000 + (i * 10 + 6) as i64;
        if i + 1 < 300 {
            let got = log.offset_for_timestamp(gap).unwrap().unwrap();
            assert_eq!(got.offset, expected_offset + n);
        }
        expected_offset += n;
    }
    assert_eq!(log.offset_for_timestamp(2_000_000).unwrap(), None);
    assert_eq!(log.offset_for_timestamp(0).unwrap().unwrap().offset, 0);
    // Below the log start offset nothing is returned.
    log.set_high_watermark(u64::MAX);
    log.delete_records_before(500).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap().unwrap().offset, 500);
}

fn batch_with_timestamps(ts: &[i64]) -> Vec<u8> {
    let mut b = sluice_log::records::BatchBuilder::new();
    for &t in ts {
        b.push(t, None, Some(b"v"));
    }
    b.build()
}

#[test]
fn offset_of_max_timestamp_names_the_first_record_carrying_it() {
    let d = tempdir();
    let mut log = open(d.path(), small_config());
    assert_eq!(log.offset_of_max_timestamp().unwrap(), None, "empty log");
    // Offsets 0..=2 (max in the middle), 3..=4 (the same max again, later: not chosen).
    log.append(&batch_with_timestamps(&[10, 50, 20]), 4)
        .unwrap();
    log.append(&batch_with_timestamps(&[50, 5]), 5).unwrap();
    let want = TimestampOffset {
        timestamp: 50,
        offset: 1,
        leader_epoch: 4,
    };
    assert_eq!(log.offset_of_max_timestamp().unwrap(), Some(want));
    // Many more batches with smaller timestamps roll segments; the answer stays.
    for _ in 0..200 {
        log.append(&batch_with_timestamps(&[7, 8, 9]), 6).unwrap();
    }
    assert!(log.segment_count() > 3);
    assert_eq!(log.offset_of_max_timestamp().unwrap(), Some(want));
    // A larger timestamp in the active segment wins.
    let info = log.append(&batch_with_timestamps(&[1, 60, 2]), 7).unwrap();
    let newest = TimestampOffset {
        timestamp: 60,
        offset: info.base_offset + 1,
        leader_epoch: 7,
    };
    assert_eq!(log.offset_of_max_timestamp().unwrap(), Some(newest));
    // And survives reopening (the segment indexes are rebuilt or loaded).
    log.close().unwrap();
    let log = open(d.path(), small_config());
    assert_eq!(log.offset_of_max_timestamp().unwrap(), Some(newest));
}

#[test]
fn timestamp_lookups_find_records_inside_compressed_batches() {
    use sluice_log::batch::Compression;
    let d = tempdir();
    let mut log = open(d.path(), small_config());
    for (i, codec) in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .enumerate()
    {
        let base = i as i64 * 100;
        let plain = batch_with_timestamps(&[base + 10, base + 30, base + 20]);
        let h = BatchHeader::parse(&plain).unwrap();
        let packed = sluice_log::compression::recode_batch(&plain, &h, codec, 1 << 20)
            .unwrap()
            .unwrap();
        let info = log.append(&packed, 1).unwrap();
        let found = log.offset_for_timestamp(base + 25).unwrap().unwrap();
        assert_eq!(
            (found.offset, found.timestamp),
            (info.base_offset + 1, base + 30),
            "{codec:?}"
        );
        let max = log.offset_of_max_timestamp().unwrap().unwrap();
        assert_eq!(
            (max.offset, max.timestamp),
            (info.base_offset + 1, base + 30)
        );
    }
}

#[test]
fn log_append_time_stamps_batches_and_keeps_them_valid() {
    use sluice_log::batch::{verify_crc, TimestampType};
    let d = tempdir();
    let config = LogConfig {
        log_append_time: true,
        ..small_config()
    };
    let mut log = open(d.path(), config.clone());
    let mut payload = batch_with_timestamps(&[10, 50, 20]);
    payload.extend(batch_with_timestamps(&[5]));
    let before = sluice_log::now_ms() as i64;
    let info = log.append(&payload, 3).unwrap();
    let after = sluice_log::now_ms() as i64;
    let stamp = info
        .log_append_time
        .expect("a LogAppendTime log says when it stamped");
    assert!((before..=after).contains(&stamp));
    assert_eq!(info.max_timestamp, stamp);
    let stored = read_all(&log, 0);
    assert_eq!(stored.len(), 2);
    for (bytes, original) in stored.iter().zip([
        batch_with_timestamps(&[10, 50, 20]),
        batch_with_timestamps(&[5]),
    ]) {
        let h = BatchHeader::parse(bytes).unwrap();
        assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(h.max_timestamp, stamp);
        assert_eq!(h.partition_leader_epoch, 3);
        verify_crc(bytes, &h).expect("the CRC covers the stamp");
        // Everything from the producer id on is the producer's bytes.
        assert_eq!(bytes[43..], original[43..]);
    }
    // Lookups by time see the append time.
    assert_eq!(log.offset_for_timestamp(before).unwrap().unwrap().offset, 0);
    assert_eq!(log.offset_for_timestamp(after + 1).unwrap(), None);
    // A replica copies the stamped batches as they are.
    let follower_dir = tempdir();
    let mut follower = open(follower_dir.path(), config.clone());
    let info = follower.append_as_follower(&stored.concat()).unwrap();
    assert_eq!(info.log_append_time, None);
    assert_eq!(read_all(&follower, 0), stored);
    // Reopened without a clean close: recovery checks the CRCs of what was not flushed.
    drop(log);
    let log = open(d.path(), config);
    assert_eq!(read_all(&log, 0), stored);
}

#[test]
fn leader_epochs_are_cached_persisted_and_truncated() {
    let d = tempdir();
    let mut log = open(d.path(), small_config());
    for (i, epoch) in [(0, 1), (1, 1), (2, 3), (3, 3), (4, 7)] {
        log.append(&batch(i), epoch).unwrap();
    }
    // Offsets: batch0 [0], batch1 [1,2], batch2 [3..5], batch3 [6..9], batch4 [10..14]
    let epochs: Vec<(i32, u64)> = log
        .leader_epochs()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect();
    assert_eq!(epochs, vec![(1, 0), (3, 3), (7, 10)]);
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 3)));
    assert_eq!(log.end_offset_for_epoch(5), Some((3, 10)));
    assert_eq!(log.end_offset_for_epoch(7), Some((7, 15)));
    assert_eq!(log.end_offset_for_epoch(8), None);
    // Stored batches carry the epoch they were appended in.
    let stored: Vec<i32> = log
        .batch_headers(0)
        .map(|b| b.unwrap().header.partition_leader_epoch)
        .collect();
    assert_eq!(stored, vec![1, 1, 3, 3, 7]);
    log.truncate_to(10).unwrap();
    assert_eq!(log.latest_epoch(), Some(3));
    drop(log);
    let log = open(d.path(), small_config());
    let epochs: Vec<(i32, u64)> = log
        .leader_epochs()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect();
    assert_eq!(epochs, vec![(1, 0), (3, 3)]);
    let text = fs::read_to_string(d.path().join("topic-0/leader-epoch-checkpoint")).unwrap();
    assert_eq!(text, "0\n2\n1 0\n3 3\n");
}

/// A broker that led an epoch without writing in it (another leader was elected at once) has
/// that epoch at its log end; truncating to the end removes it, so the follower stops naming
/// it as its last fetched epoch (found by the chaos test: a follower truncated to its own end
/// again and again, never catching up).
#[test]
fn truncating_to_the_end_drops_an_epoch_begun_there_without_data() {
    let d = tempdir();
    let mut log = open(d.path(), small_config());
    log.append(&batch(0), 17).unwrap();
    log.append(&batch(1), 17).unwrap();
    let end = log.log_end_offset();
    log.begin_epoch(18).unwrap();
    assert_eq!(log.latest_epoch(), Some(18));
    assert_eq!(log.truncate_to(end).unwrap(), end);
    assert_eq!(log.latest_epoch(), Some(17));
    assert_eq!(log.log_end_offset(), end);
    drop(log);
    let log = open(d.path(), small_config());
    assert_eq!(log.latest_epoch(), Some(17), "the removal is on disk");
}

#[test]
fn follower_appends_keep_offsets() {
    let d = tempdir();
    let mut leader = Log::open(d.path().join("a-0"), small_config()).unwrap();
    let mut follower = Log::open(d.path().join("b-0"), small_config()).unwrap();
    for i in 0..50 {
        leader.append(&batch(i), 4).unwrap();
    }
    let mut offset = 0;
    while offset < leader.log_end_offset() {
        let s = leader.read(offset, 1000, None).unwrap();
        let info = follower
            .append_as_follower(&s.read_to_vec().unwrap())
            .unwrap();
        assert_eq!(info.base_offset, s.first_offset);
        offset = s.next_offset;
    }
    assert_eq!(read_all(&follower, 0), read_all(&leader, 0));
    assert_eq!(follower.leader_epochs(), leader.leader_epochs());
    // Replaying old data is refused.
    let s = leader.read(0, 1, None).unwrap();
    let e = follower
        .append_as_follower(&s.read_to_vec().unwrap())
        .unwrap_err();
    assert!(matches!(e, LogError::UnexpectedAppendOffset { .. }));
}

#[test]
fn batch_headers_expose_producer_state() {
    let d = tempdir();
    let mut log = open(d.path(), small_config());
    let mut seq = 0;
    for i in 0..40 {
        let mut b = sluice_log::records::BatchBuilder::new().producer(77, 2, seq);
        for r in 0..3 {
            b.push(i * 10 + r, None, Some(b"payload"));
        }
        seq += 3;
        log.append(&b.build(), 0).unwrap();
    }
    let last = log.batch_headers(0).last().unwrap().unwrap();
    assert_eq!(last.header.producer_id, 77);
    assert_eq!(last.header.producer_epoch, 2);
    assert_eq!(last.header.last_sequence(), seq - 1);
    let from_mid: Vec<_> = log
        .batch_headers(61)
        .map(|b| b.unwrap().header.base_offset)
        .collect();
    assert_eq!(from_mid.first(), Some(&60));
    assert_eq!(from_mid.len(), 40 - 20);
}

#[test]
fn flush_policy_advances_the_recovery_point() {
    let d = tempdir();
    let cfg = LogConfig {
        flush_interval_messages: Some(10),
        ..LogConfig::default()
    };
    let mut log = open(d.path(), cfg);
    log.append(&sized_batch(4, 10, 0), 0).unwrap();
    assert_eq!(log.recovery_point(), 0);
    log.append(&sized_batch(4, 10, 0), 0).unwrap();
    assert_eq!(log.recovery_point(), 0);
    log.append(&sized_batch(4, 10, 0), 0).unwrap();
    assert_eq!(log.recovery_point(), 12, "10 records reached: fsynced");
    log.append(&sized_batch(1, 10, 0), 0).unwrap();
    assert_eq!(log.unflushed_records(), 1);
    log.flush().unwrap();
    assert_eq!(log.recovery_point(), 13);

    let cfg = LogConfig {
        flush_interval_ms: Some(60_000),
        ..LogConfig::default()
    };
    log.set_config(cfg);
    log.append(&sized_batch(1, 10, 0), 0).unwrap();
    assert!(!log.flush_if_due(sluice_log::now_ms()).unwrap());
    assert!(log.flush_if_due(sluice_log::now_ms() + 60_000).unwrap());
    assert_eq!(log.recovery_point(), 14);
}

#[test]
fn damaged_index_files_are_rebuilt() {
    let d = tempdir();
    let mut log = open(d.path(), small_config());
    let mut model = Model::default();
    for i in 0..150 {
        let info = log.append(&batch(i), 0).unwrap();
        model.push(info.base_offset, stored(&batch(i), info.base_offset, 0));
    }
    log.close().unwrap();
    let dir = d.path().join("topic-0");
    let mut n = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        match p.extension().and_then(|e| e.to_str()) {
            Some("index") if n % 2 == 0 => {
                fs::write(&p, [0xff; 13]).unwrap();
                n += 1;
            }
            Some("index") => {
                fs::remove_file(&p).unwrap();
                n += 1;
            }
            Some("timeindex") => fs::write(&p, [7; 24]).unwrap(),
            _ => {}
        }
    }
    assert!(n > 2);
    let log = open(d.path(), small_config());
    assert_eq!(read_all(&log, 0), model.bytes());
    for (base, _) in model.batches.iter().step_by(7) {
        assert_eq!(log.read(*base, 1, None).unwrap().first_offset, *base);
    }
    assert!(log.offset_for_timestamp(1_000_000 + 500).unwrap().is_some());
}

#[test]
fn directory_names_and_locks() {
    let d = tempdir();
    assert!(matches!(
        Log::open(d.path().join("no_partition"), LogConfig::default()),
        Err(LogError::NotAPartitionDir(_))
    ));
    let a = open(d.path(), LogConfig::default());
    // Another partition in the same directory shares the lock.
    let b = Log::open(d.path().join("other-3"), LogConfig::default()).unwrap();
    assert!(d.path().join(".lock").exists());
    assert_eq!(b.topic_partition().partition, 3);
    drop((a, b));
}
