//! Crash test: a child process (this test binary, re-executed) appends to logs in a loop and
//! reports what it has flushed; the parent SIGKILLs it at an arbitrary moment, reopens the logs
//! and checks that every batch reported flushed is there and that each log is a clean prefix
//! of what the child wrote (same bytes, contiguous offsets, good CRCs). Several rounds: each
//! child continues the log the previous one left.

mod common;

use common::*;
use sluice_log::batch::BatchHeader;
use sluice_log::{Log, LogConfig, LogManager, TopicPartition};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "SLUICE_LOG_CRASH_CHILD";

/// Batch number `i` as the child writes it: mostly small, every 13th about 50 KB, so kills
/// land in the middle of large writes too.
fn crash_batch(i: u64) -> Vec<u8> {
    if i.is_multiple_of(13) {
        sized_batch(50, 1000, 2_000_000 + i as i64)
    } else {
        batch(i)
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 512 * 1024,
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// Number of batches in a log (the child's next batch index).
fn batch_count(log: &Log) -> u64 {
    log.batch_headers(0).count() as u64
}

/// Checks that `log` holds exactly crash_batch(0..n) for some n, and returns n.
fn verify_prefix(log: &Log) -> u64 {
    let mut offset = 0;
    let mut i = 0;
    for b in read_all(log, 0) {
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.base_offset as u64, offset, "contiguous offsets");
        assert!(
            b == stored(&crash_batch(i), offset, 0),
            "batch {i} has the bytes written"
        );
        offset += h.last_offset_delta as u64 + 1;
        i += 1;
    }
    assert_eq!(log.log_end_offset(), offset);
    i
}

/// The child: never returns; killed by the parent.
fn child(mode: &str, dir: &Path) -> ! {
    // Never outlive a parent that died or hung: no orphan keeps writing or holding the lock.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(60));
        std::process::exit(3);
    });
    let mut out = std::io::stdout();
    match mode {
        "hold" => {
            let _log = Log::open(dir.join("c-0"), config()).unwrap();
            writeln!(out, "holding").unwrap();
            out.flush().unwrap();
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        "log" => {
            let mut log = Log::open(dir.join("c-0"), config()).unwrap();
            let mut i = batch_count(&log);
            loop {
                log.append(&crash_batch(i), 0).unwrap();
                i += 1;
                if i.is_multiple_of(7) {
                    log.flush().unwrap();
                    writeln!(out, "flushed c-0 {i}").unwrap();
                    out.flush().unwrap();
                }
            }
        }
        _ => {
            // Through the manager, flushing by policy, with periodic checkpoints.
            let cfg = LogConfig {
                flush_interval_messages: Some(40),
                ..config()
            };
            let mgr = LogManager::open(&[dir.to_path_buf()], 2, |_| cfg.clone()).unwrap();
            let logs: Vec<_> = (0..2)
                .map(|p| {
                    mgr.get_or_create(&TopicPartition::new("m", p), cfg.clone())
                        .unwrap()
                })
                .collect();
            let mut next: Vec<u64> = logs
                .iter()
                .map(|l| batch_count(&l.read().unwrap()))
                .collect();
            let mut n = 0u64;
            loop {
                let p = (n % 2) as usize;
                let mut log = logs[p].write().unwrap();
                log.append(&crash_batch(next[p]), 0).unwrap();
                next[p] += 1;
                if log.unflushed_records() == 0 {
                    writeln!(out, "flushed m-{p} {}", next[p]).unwrap();
                    out.flush().unwrap();
                }
                drop(log);
                n += 1;
                if n.is_multiple_of(50) {
                    mgr.checkpoint().unwrap();
                }
            }
        }
    }
}

#[test]
fn crash_child() {
    // Only does something when re-executed by `crash_rounds`.
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mode, dir) = spec.split_once(' ').unwrap();
    child(mode, Path::new(dir));
}

/// Runs the child until it has reported flushes for a while, SIGKILLs it, and returns the
/// highest flushed batch count reported per partition.
fn run_and_kill(
    mode: &str,
    dir: &Path,
    run_for: Duration,
) -> std::collections::HashMap<String, u64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{mode} {}", dir.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut flushed = std::collections::HashMap::new();
    let start = Instant::now();
    let mut lines = BufReader::new(stdout).lines();
    while start.elapsed() < run_for {
        let Some(Ok(line)) = lines.next() else { break };
        // The first line carries libtest's "test crash_child ... " prefix.
        if let Some(rest) = line.find("flushed ").map(|i| &line[i + "flushed ".len()..]) {
            let (tp, n) = rest.split_once(' ').unwrap();
            flushed.insert(tp.to_string(), n.parse::<u64>().unwrap());
        }
    }
    // Let the child run on for a moment so the kill lands anywhere: mid-append, mid-fsync.
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 4_000_000;
    std::thread::sleep(Duration::from_nanos(jitter as u64));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!flushed.is_empty(), "the child reported no flush");
    flushed
}

#[test]
fn sigkill_during_appends_loses_nothing_flushed() {
    let d = tempfile::tempdir().unwrap();
    let mut total = 0;
    for round in 0..3 {
        let flushed = run_and_kill("log", d.path(), Duration::from_millis(900 + round * 137));
        let log = Log::open(d.path().join("c-0"), config()).unwrap();
        let n = verify_prefix(&log);
        assert!(
            n >= flushed["c-0"],
            "round {round}: {n} batches, {} reported flushed",
            flushed["c-0"]
        );
        assert!(n >= total, "never loses what an earlier round verified");
        total = n;
    }
    assert!(total > 100);
}

#[test]
fn sigkill_with_log_manager_and_checkpoints() {
    let d = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let flushed = run_and_kill(
            "manager",
            d.path(),
            Duration::from_millis(1100 + round * 211),
        );
        let mgr = LogManager::open(&[d.path().to_path_buf()], 2, |_| config()).unwrap();
        for p in 0..2 {
            let tp = TopicPartition::new("m", p);
            let log = mgr.get(&tp).unwrap();
            let n = verify_prefix(&log.read().unwrap());
            let reported = flushed.get(&tp.dir_name()).copied().unwrap_or(0);
            assert!(
                n >= reported,
                "round {round} {tp}: {n} batches, {reported} reported flushed"
            );
        }
    }
}

#[test]
fn a_log_dir_is_locked_against_other_processes() {
    let d = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("hold {}", d.path().display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(Ok(line)) = lines.next() {
        // libtest prints "test crash_child ... " without a newline before the child's output.
        if line.ends_with("holding") {
            break;
        }
    }
    let e = Log::open(d.path().join("other-0"), config()).unwrap_err();
    assert!(matches!(e, sluice_log::LogError::DirLocked(_)), "{e}");
    child.kill().unwrap();
    child.wait().unwrap();
    // The kernel releases the lock with the process.
    Log::open(d.path().join("other-0"), config()).unwrap();
}
