//! Start-up time after SIGKILL with a big log (the target: 10 GB opens in at most 10 s).
//!
//! ```text
//! cargo run --release -p sluice-log --example startup_after_kill -- [GIB] [PARTITIONS] [DIR]
//! ```
//!
//! A child process (this program, re-executed) fills PARTITIONS logs (default 1) under DIR
//! (default a new directory in /var/tmp) with GIB GiB (default 10) of 1 MB batches of 1 KiB
//! records through a `LogManager` with Kafka's defaults (1 GiB segments, no forced flush),
//! stopping just before a roll so the active segment is as large as it gets (the worst case
//! for recovery). It then keeps appending until the parent SIGKILLs it. The parent times
//! `LogManager::open` with the page cache as the kill left it (a process crash), and again
//! after dropping the page cache if it may (as after a machine crash; needs root). DIR is
//! removed at the end unless KEEP=1; THREADS sets `num.recovery.threads.per.data.dir` (1);
//! FLUSH_MS sets `log.flush.interval.ms` and makes the writer flush and checkpoint once a second
//! (the broker's scheduler), so recovery starts at the last checkpointed flush.
//!
//! With one partition only its last segment (< 1 GiB) is unflushed; with GIB partitions each
//! log is a single unflushed ~1 GiB segment, the worst case: everything is scanned.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_log::records::BatchBuilder;
use sluice_log::{LogConfig, LogManager, TopicPartition};

const CHILD_ENV: &str = "SLUICE_STARTUP_CHILD";

fn payload() -> Vec<u8> {
    let mut b = BatchBuilder::new();
    let value = vec![7u8; 1024];
    let mut i = 0i64;
    while b.size() + 1100 <= 1_000_000 {
        b.push(1_700_000_000_000 + i, None, Some(&value));
        i += 1;
    }
    b.build()
}

/// `FLUSH_MS`: `log.flush.interval.ms`, with the broker's periodic duties (flush_due and
/// checkpoint) simulated once a second.
fn flush_ms() -> Option<u64> {
    std::env::var("FLUSH_MS")
        .ok()
        .map(|v| v.parse().expect("FLUSH_MS"))
}

fn child(dir: &Path, gib: u64, partitions: i32) -> ! {
    let config = LogConfig {
        flush_interval_ms: flush_ms(),
        ..LogConfig::default()
    };
    let mut last_duty = Instant::now();
    let mut duties = |mgr: &LogManager| {
        if flush_ms().is_some() && last_duty.elapsed() >= Duration::from_secs(1) {
            mgr.flush_due(sluice_log::now_ms()).unwrap();
            mgr.checkpoint().unwrap();
            last_duty = Instant::now();
        }
    };
    let mgr = LogManager::open(&[dir.to_path_buf()], 1, |_| config.clone()).unwrap();
    let logs: Vec<_> = (0..partitions)
        .map(|p| {
            mgr.get_or_create(&TopicPartition::new("big", p), config.clone())
                .unwrap()
        })
        .collect();
    let batch = payload();
    let per_log = (gib << 30) / partitions as u64;
    // Stop each log one batch short of a full last segment.
    let target = per_log - (batch.len() as u64) * 2;
    // Round-robin over the partitions, as a producer spreading records would.
    loop {
        let mut wrote = false;
        for log in &logs {
            let mut log = log.write().unwrap();
            if log.size_bytes() < target {
                log.append(&batch, 0).unwrap();
                wrote = true;
            }
        }
        duties(&mgr);
        if !wrote {
            break;
        }
    }
    let total: u64 = logs.iter().map(|l| l.read().unwrap().size_bytes()).sum();
    println!("ready {total}");
    std::io::stdout().flush().unwrap();
    // Keep writing small batches, so the kill lands in the middle of an append, but never
    // past the active segment (a roll would fsync it and leave nothing to recover).
    let mut small = BatchBuilder::new();
    small.push(0, None, Some(b"tail"));
    let small = small.build();
    let limit = per_log - batch.len() as u64;
    loop {
        let mut wrote = false;
        for log in &logs {
            let mut log = log.write().unwrap();
            if log.size_bytes() < limit {
                log.append(&small, 0).unwrap();
                wrote = true;
            }
        }
        duties(&mgr);
        if !wrote {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn timed_open(dir: &Path) -> (Duration, u64, usize) {
    let threads = std::env::var("THREADS").map_or(1, |t| t.parse().expect("THREADS"));
    let t = Instant::now();
    let mgr = LogManager::open(&[dir.to_path_buf()], threads, |_| LogConfig::default()).unwrap();
    let elapsed = t.elapsed();
    let logs = mgr.logs();
    let bytes = logs
        .iter()
        .map(|(_, l)| l.read().unwrap().size_bytes())
        .sum();
    (elapsed, bytes, logs.len())
}

fn drop_page_cache() -> bool {
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let mut parts = spec.splitn(3, ' ');
        let gib = parts.next().unwrap().parse().unwrap();
        let partitions = parts.next().unwrap().parse().unwrap();
        child(Path::new(parts.next().unwrap()), gib, partitions);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let gib: u64 = args.first().map_or(10, |a| a.parse().expect("GIB"));
    let partitions: i32 = args.get(1).map_or(1, |a| a.parse().expect("PARTITIONS"));
    let dir = args.get(2).map_or_else(
        || PathBuf::from(format!("/var/tmp/sluice-startup-{}", std::process::id())),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();

    let start = Instant::now();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, format!("{gib} {partitions} {}", dir.display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.next().expect("child output").unwrap();
    let written: u64 = ready.strip_prefix("ready ").unwrap().parse().unwrap();
    println!(
        "wrote {:.2} GiB in {:.1} s ({:.0} MiB/s)",
        written as f64 / (1u64 << 30) as f64,
        start.elapsed().as_secs_f64(),
        written as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // What recovery has to read: the last segment of each log (the others were fsynced when
    // the log rolled past them).
    let mut unflushed = 0u64;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if !p.is_dir() {
            continue;
        }
        let mut segs: Vec<PathBuf> = std::fs::read_dir(&p)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        segs.sort();
        unflushed += segs
            .last()
            .map_or(0, |s| std::fs::metadata(s).unwrap().len());
    }
    println!(
        "size of the logs' last segments (recovery reads them from the checkpointed recovery \
         point on): {:.2} GiB",
        unflushed as f64 / (1u64 << 30) as f64
    );
    let (t, bytes, logs) = timed_open(&dir);
    println!(
        "open after SIGKILL, warm page cache: {:.3} s ({logs} logs, {:.2} GiB)",
        t.as_secs_f64(),
        bytes as f64 / (1u64 << 30) as f64
    );
    // The open above recovered the active segments; to measure a cold recovery again, kill a
    // second writer, then drop the page cache before opening.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, format!("{gib} {partitions} {}", dir.display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    lines.next().expect("child output").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    if drop_page_cache() {
        let (t, _, _) = timed_open(&dir);
        println!(
            "open after SIGKILL, page cache dropped: {:.3} s",
            t.as_secs_f64()
        );
    } else {
        println!("(cannot drop the page cache here; cold start not measured)");
    }
    if std::env::var("KEEP").as_deref() != Ok("1") {
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
