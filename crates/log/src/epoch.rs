//! The leader-epoch cache: which offset each leader epoch started at, persisted in the
//! partition directory as `leader-epoch-checkpoint` (Kafka's file and format).
//!
//! Appends as leader assign the epoch they were made under; replicated appends and recovery
//! assign the `partitionLeaderEpoch` stored in each batch. An entry is added only when the
//! epoch is larger than the latest one. Truncation of the log removes entries at or beyond the
//! new end; deleting records (log start offset) drops older entries and moves the first one up.
//! [`LeaderEpochCache::end_offset_for`] answers OffsetsForLeaderEpoch.
//!
//! The file is rewritten whole (temporary file, fsync, rename) on every change; changes happen
//! only on leader changes, truncation and record deletion, so this costs nothing on the
//! produce path.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{LogError, Result};

pub(crate) const FILE_NAME: &str = "leader-epoch-checkpoint";

/// One epoch and the first offset written under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: u64,
}

#[derive(Debug)]
pub(crate) struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint; an unreadable or malformed file is dropped with a warning (the
    /// caller re-derives entries from recovered batches; older epochs are then unknown, which
    /// only makes a follower truncate more than it needs to).
    pub fn load(dir: &Path) -> LeaderEpochCache {
        let path = dir.join(FILE_NAME);
        let entries = match fs::read_to_string(&path) {
            Ok(text) => parse(&text).unwrap_or_else(|| {
                tracing::warn!(file = %path.display(), "malformed leader-epoch-checkpoint ignored");
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        LeaderEpochCache { path, entries }
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `offset` if it is newer than the latest epoch. Returns
    /// whether the cache changed (the caller then persists it).
    pub fn assign(&mut self, epoch: i32, offset: u64) -> bool {
        if epoch < 0 {
            return false;
        }
        match self.entries.last() {
            Some(last) if epoch <= last.epoch => false,
            _ => {
                // An epoch cannot start before an earlier one ended.
                self.entries.retain(|e| e.start_offset < offset);
                self.entries.push(EpochEntry {
                    epoch,
                    start_offset: offset,
                });
                true
            }
        }
    }

    /// Removes entries starting at or after `end_offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, end_offset: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        before != self.entries.len()
    }

    /// Drops entries wholly before `start_offset`; the one spanning it now starts there.
    pub fn truncate_from_start(&mut self, start_offset: u64) -> bool {
        let keep_from = self
            .entries
            .iter()
            .rposition(|e| e.start_offset <= start_offset);
        let Some(i) = keep_from else {
            return false;
        };
        let changed = i > 0 || self.entries[i].start_offset != start_offset;
        self.entries.drain(..i);
        self.entries[0].start_offset = start_offset;
        changed
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Kafka's `endOffsetFor`: for the requested epoch, the largest epoch `<=` it and the
    /// offset where the next epoch starts (or the log end offset if it is the latest epoch).
    /// `None` (UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET) when the epoch is unknown or newer
    /// than every epoch in the cache.
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: u64) -> Option<(i32, u64)> {
        if epoch < 0 {
            return None;
        }
        if self.latest_epoch() == Some(epoch) {
            return Some((epoch, log_end_offset));
        }
        let higher = self.entries.iter().find(|e| e.epoch > epoch)?;
        match self.entries.iter().rev().find(|e| e.epoch <= epoch) {
            Some(floor) => Some((floor.epoch, higher.start_offset)),
            None => Some((epoch, higher.start_offset)),
        }
    }

    /// Writes the checkpoint durably.
    pub fn persist(&self) -> Result<()> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        write_durably(&self.path, text.as_bytes())
    }
}

fn parse(text: &str) -> Option<Vec<EpochEntry>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let n: usize = lines.next()?.trim().parse().ok()?;
    let mut out: Vec<EpochEntry> = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let mut parts = lines.next()?.split_whitespace();
        let epoch: i32 = parts.next()?.parse().ok()?;
        let start_offset: u64 = parts.next()?.parse().ok()?;
        if let Some(last) = out.last() {
            if epoch <= last.epoch || start_offset < last.start_offset {
                return None;
            }
        }
        out.push(EpochEntry {
            epoch,
            start_offset,
        });
    }
    Some(out)
}

/// Writes `bytes` to `path` via a temporary file: write, fsync, rename, fsync the directory.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> Result<()> {
    write_replace(path, bytes)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Replaces `path` atomically (temporary file, fsync, rename); the caller fsyncs the
/// directory to make the rename durable.
pub(crate) fn write_replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(|e| LogError::io("create", &tmp, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| LogError::io("write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| LogError::io("rename", path, e))
}

/// fsyncs a directory so that creations, renames and deletions in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("fsync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, u64)]) -> LeaderEpochCache {
        LeaderEpochCache {
            path: PathBuf::from("/nonexistent"),
            entries: entries
                .iter()
                .map(|&(epoch, start_offset)| EpochEntry {
                    epoch,
                    start_offset,
                })
                .collect(),
        }
    }

    #[test]
    fn end_offset_for_epoch_like_kafka() {
        let c = cache(&[(1, 0), (3, 100), (5, 250)]);
        assert_eq!(c.end_offset_for(5, 400), Some((5, 400)));
        assert_eq!(c.end_offset_for(3, 400), Some((3, 250)));
        assert_eq!(c.end_offset_for(4, 400), Some((3, 250)));
        assert_eq!(c.end_offset_for(0, 400), Some((0, 0)));
        assert_eq!(c.end_offset_for(6, 400), None);
        assert_eq!(c.end_offset_for(-1, 400), None);
    }

    #[test]
    fn assign_and_truncate() {
        let mut c = cache(&[]);
        assert!(c.assign(1, 0));
        assert!(!c.assign(1, 10));
        assert!(!c.assign(0, 10));
        assert!(c.assign(4, 50));
        assert!(c.assign(6, 80));
        assert!(c.truncate_from_end(80));
        assert_eq!(c.latest_epoch(), Some(4));
        assert!(c.truncate_from_start(60));
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: 4,
                start_offset: 60
            }]
        );
    }

    #[test]
    fn file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::load(dir.path());
        c.assign(0, 0);
        c.assign(2, 17);
        c.persist().unwrap();
        let text = fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(text, "0\n2\n0 0\n2 17\n");
        assert_eq!(LeaderEpochCache::load(dir.path()).entries(), c.entries());
        fs::write(dir.path().join(FILE_NAME), "0\n5\n1 2\n").unwrap();
        assert!(LeaderEpochCache::load(dir.path()).entries().is_empty());
    }
}
