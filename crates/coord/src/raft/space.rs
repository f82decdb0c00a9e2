//! Free space in the data directories, and the refusal of new writes when it runs low.
//!
//! openraft treats a failed log write as fatal: the Raft core stops and the node must be
//! restarted (coord then exits, see `main.rs`). So a leader stops *proposing* before its disk
//! is full: while `dataDir` or `dataLogDir` has less than `min_free` bytes available (ZooKeeper's
//! `preAllocSize`, the room its transaction log claims ahead), new writes are refused before
//! they reach the log. Reads, sessions and replication of what was already proposed go on, and
//! writes are accepted again as soon as space returns.
//!
//! ```text
//!  sampler (every 200 ms) ── statvfs(dataDir), statvfs(dataLogDir) ──► free (min of both)
//!  propose on the leader / Propose RPC ── check() ── free < min_free ──► refused, not appended
//! ```
//!
//! A disk filled by someone else faster than the sampler sees it still ends in a failed write;
//! that node exits with the cause, as ZooKeeper does, and its data stays as last synced.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// How often the free space is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// At most one warning per this many milliseconds while writes are refused.
const WARN_EVERY_MS: u64 = 10_000;

/// The free-space check of one node.
#[derive(Debug)]
pub(crate) struct SpaceGuard {
    dirs: Vec<PathBuf>,
    min_free: u64,
    /// Bytes available to this process in the fullest of `dirs` (`u64::MAX` when unknown).
    free: AtomicU64,
    last_warning_ms: AtomicU64,
    refused_since_warning: AtomicU64,
}

impl SpaceGuard {
    /// A guard over `dirs` keeping `min_free` bytes free (0 turns it off), sampled once now.
    pub(crate) fn new(dirs: Vec<PathBuf>, min_free: u64) -> Arc<SpaceGuard> {
        let guard = Arc::new(SpaceGuard {
            dirs,
            min_free,
            free: AtomicU64::new(u64::MAX),
            last_warning_ms: AtomicU64::new(0),
            refused_since_warning: AtomicU64::new(0),
        });
        guard.sample();
        guard
    }

    fn sample(&self) {
        let free = self
            .dirs
            .iter()
            .filter_map(|d| rustix::fs::statvfs(d).ok())
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
            .min()
            .unwrap_or(u64::MAX);
        self.free.store(free, Ordering::Relaxed);
    }

    /// Samples until `stop` turns true.
    pub(crate) async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        if self.min_free == 0 {
            return;
        }
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.sample(),
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// `Err` (saying why) when a new write must be refused for lack of space.
    pub(crate) fn check(&self) -> Result<(), String> {
        let free = self.free.load(Ordering::Relaxed);
        if self.min_free == 0 || free >= self.min_free {
            return Ok(());
        }
        let why = format!(
            "the data directory ({}) has {} KiB free, less than the {} KiB kept free (preAllocSize); writes are refused until space returns",
            self.dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            free / 1024,
            self.min_free / 1024
        );
        let now = now_ms();
        let last = self.last_warning_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= WARN_EVERY_MS
            && self
                .last_warning_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let refused = self.refused_since_warning.swap(0, Ordering::Relaxed) + 1;
            tracing::warn!(refused, "{why}");
        } else {
            self.refused_since_warning.fetch_add(1, Ordering::Relaxed);
        }
        Err(why)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_below_the_minimum_and_names_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let off = SpaceGuard::new(vec![dir.path().to_path_buf()], 0);
        assert!(off.check().is_ok());
        let roomy = SpaceGuard::new(vec![dir.path().to_path_buf()], 1);
        assert!(roomy.check().is_ok(), "a temp dir has a byte free");
        let greedy = SpaceGuard::new(vec![dir.path().to_path_buf()], u64::MAX);
        let why = greedy.check().unwrap_err();
        assert!(why.contains(&dir.path().display().to_string()), "{why}");
        assert!(why.contains("preAllocSize"), "{why}");
    }
}
