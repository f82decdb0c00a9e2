//! Partition log benchmarks: append throughput for 100-byte and 1 KiB records in realistic
//! batches (16 KiB, the Java client's default `batch.size`, and 1 MB, librdkafka's), fetch
//! throughput, and recovery of a big unflushed segment (start-up after a crash).
//!
//! `cargo bench -p sluice-log --bench log` (figures in docs/benchmarks.md). Data goes to the
//! system temporary directory (`TMPDIR`), so it measures that file system and the page cache.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_log::records::BatchBuilder;
use sluice_log::{Log, LogConfig};

/// A batch of `record_bytes`-byte values (and 8-byte keys) filling about `batch_bytes`.
fn batch(record_bytes: usize, batch_bytes: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    let value: Vec<u8> = (0..record_bytes).map(|i| (i * 31 % 251) as u8).collect();
    let mut i = 0u64;
    while b.size() + record_bytes + 20 <= batch_bytes {
        b.push(
            1_700_000_000_000 + i as i64,
            Some(&i.to_be_bytes()),
            Some(&value),
        );
        i += 1;
    }
    b.build()
}

fn bench_config() -> LogConfig {
    LogConfig {
        segment_bytes: 128 << 20,
        max_batch_bytes: 2 << 20,
        retention_ms: None,
        ..LogConfig::default()
    }
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    for (record, batch_bytes, label) in [
        (100, 16 << 10, "100B_records/16KiB_batches"),
        (100, 1_000_000, "100B_records/1MB_batches"),
        (1024, 16 << 10, "1KiB_records/16KiB_batches"),
        (1024, 1_000_000, "1KiB_records/1MB_batches"),
    ] {
        let payload = batch(record, batch_bytes);
        g.throughput(Throughput::Bytes(payload.len() as u64));
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path().join("bench-0"), bench_config()).unwrap();
        g.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    black_box(log.append(&payload, 1).unwrap());
                    timed += t.elapsed();
                    // Keep the log (and the page cache) bounded: drop old segments, untimed.
                    if log.size_bytes() > 384 << 20 {
                        let end = log.log_end_offset();
                        log.set_high_watermark(end);
                        let mut cfg = bench_config();
                        cfg.retention_bytes = Some(128 << 20);
                        log.set_config(cfg);
                        log.enforce_retention(0).unwrap();
                        log.set_config(bench_config());
                    }
                }
                timed
            })
        });
    }
    g.finish();
}

/// A log of `total` bytes of `batch(record, batch_bytes)`.
fn filled_log(dir: &std::path::Path, record: usize, batch_bytes: usize, total: u64) -> Log {
    let payload = batch(record, batch_bytes);
    let mut log = Log::open(dir.join("bench-0"), bench_config()).unwrap();
    while log.size_bytes() < total {
        log.append(&payload, 1).unwrap();
    }
    log
}

fn read(c: &mut Criterion) {
    let mut g = c.benchmark_group("read");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    let total = 256u64 << 20;
    for (record, batch_bytes, label) in [
        (1024, 16 << 10, "1KiB_records/16KiB_batches"),
        (1024, 1_000_000, "1KiB_records/1MB_batches"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = filled_log(dir.path(), record, batch_bytes, total);
        g.throughput(Throughput::Bytes(log.size_bytes()));
        // Consumer-style: 1 MiB fetches from offset 0 to the end, copied into memory.
        g.bench_function(BenchmarkId::new("fetch_1MiB_copy", label), |b| {
            b.iter(|| {
                let mut offset = 0;
                let mut bytes = 0;
                while offset < log.log_end_offset() {
                    let s = log.read(offset, 1 << 20, None).unwrap();
                    bytes += black_box(s.read_to_vec().unwrap()).len();
                    offset = s.next_offset;
                }
                bytes
            })
        });
        // What a sendfile-based fetch costs the log: locating the byte range only.
        g.bench_function(BenchmarkId::new("fetch_1MiB_locate", label), |b| {
            b.iter(|| {
                let mut offset = 0;
                while offset < log.log_end_offset() {
                    offset = black_box(log.read(offset, 1 << 20, None).unwrap()).next_offset;
                }
            })
        });
    }
    g.finish();
}

fn recovery(c: &mut Criterion) {
    let mut g = c.benchmark_group("recovery");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    let total = 512u64 << 20;
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1 << 30,
        ..bench_config()
    };
    {
        let payload = batch(1024, 16 << 10);
        let mut log = Log::open(dir.path().join("bench-0"), config.clone()).unwrap();
        while log.size_bytes() < total {
            log.append(&payload, 1).unwrap();
        }
        // Dropped without close: no checkpoint, so every open recovers the whole segment.
    }
    g.throughput(Throughput::Bytes(total));
    g.bench_function("open_unflushed_512MiB_segment_16KiB_batches", |b| {
        b.iter(|| {
            let log = Log::open(dir.path().join("bench-0"), config.clone()).unwrap();
            assert!(log.size_bytes() >= total);
            // Dropped again without a checkpoint.
        })
    });
    g.finish();
}

criterion_group!(benches, append, read, recovery);
criterion_main!(benches);
