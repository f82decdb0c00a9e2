//! A log directory (one entry of `log.dirs`): its lock, its checkpoint files and its
//! clean-shutdown marker, shared by every partition log under it.
//!
//! ```text
//! <log dir>/
//!   .lock                               held (flock) while a process uses the directory
//!   .kafka_cleanshutdown                written by LogManager::shutdown, removed at open
//!   recovery-point-offset-checkpoint    "0\n<n>\n<topic> <partition> <offset>\n..."
//!   log-start-offset-checkpoint         same format
//!   replication-offset-checkpoint       same format (high watermarks)
//!   <topic>-<partition>/                one partition log each
//! ```
//!
//! A [`DirHandle`] keeps the last known entry of every partition in memory; logs update their
//! own entry and the handle rewrites the three files (temporary file, fsync, rename) when asked
//! to. Within one process, every log under a directory shares one handle (a registry keyed by
//! the canonical path), so two logs never overwrite each other's entries and the lock is taken
//! once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use crate::epoch::{sync_dir, write_durably, write_replace};
use crate::error::{LogError, Result};

pub(crate) const LOCK_FILE: &str = ".lock";
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
pub(crate) const LOG_START_FILE: &str = "log-start-offset-checkpoint";
pub(crate) const HIGH_WATERMARK_FILE: &str = "replication-offset-checkpoint";

/// A topic partition; its directory is `<topic>-<partition>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// `<topic>-<partition>`, Kafka's directory name.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parses a directory name; the partition is after the last `-`. Names Kafka uses for
    /// directories being deleted or moved (`…-delete`, `…-future`, `…-stray`) do not parse.
    pub fn from_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, partition) = name.rsplit_once('-')?;
        if topic.is_empty()
            || partition.is_empty()
            || !partition.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(TopicPartition {
            topic: topic.to_string(),
            partition: partition.parse().ok()?,
        })
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Reads one field of a partition's checkpoint.
type Field = fn(&PartitionCheckpoint) -> Option<u64>;

/// What the checkpoint files say about one partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PartitionCheckpoint {
    pub recovery_point: Option<u64>,
    pub log_start_offset: Option<u64>,
    pub high_watermark: Option<u64>,
}

#[derive(Debug, Default)]
struct DirState {
    entries: BTreeMap<TopicPartition, PartitionCheckpoint>,
    /// The marker was present when the handle was created.
    clean_shutdown: bool,
    /// Partitions that already used the clean-shutdown status (it applies to the first open).
    opened: HashSet<TopicPartition>,
}

#[derive(Debug)]
pub(crate) struct DirHandle {
    path: PathBuf,
    _lock: File,
    state: Mutex<DirState>,
}

fn registry() -> MutexGuard<'static, HashMap<PathBuf, Weak<DirHandle>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Weak<DirHandle>>>> = OnceLock::new();
    REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

impl DirHandle {
    /// The handle of `path` (created if needed): shared within the process, exclusive across
    /// processes.
    pub fn acquire(path: &Path) -> Result<Arc<DirHandle>> {
        fs::create_dir_all(path).map_err(|e| LogError::io("create log directory", path, e))?;
        let canon = fs::canonicalize(path).map_err(|e| LogError::io("resolve", path, e))?;
        let mut reg = registry();
        reg.retain(|_, w| w.strong_count() > 0);
        if let Some(h) = reg.get(&canon).and_then(Weak::upgrade) {
            return Ok(h);
        }
        let lock_path = canon.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| LogError::io("open lock file", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(LogError::DirLocked(canon)),
            Err(fs::TryLockError::Error(e)) => {
                return Err(LogError::io("lock", &lock_path, e));
            }
        }
        let mut state = DirState::default();
        for (file, set) in [
            (
                RECOVERY_POINT_FILE,
                (|c, v| c.recovery_point = Some(v)) as fn(&mut PartitionCheckpoint, u64),
            ),
            (LOG_START_FILE, |c, v| c.log_start_offset = Some(v)),
            (HIGH_WATERMARK_FILE, |c, v| c.high_watermark = Some(v)),
        ] {
            for (tp, v) in read_offset_checkpoint(&canon.join(file)) {
                set(state.entries.entry(tp).or_default(), v);
            }
        }
        let marker = canon.join(CLEAN_SHUTDOWN_FILE);
        if marker.exists() {
            state.clean_shutdown = true;
            // Remove it now, so that a crash from here on is not mistaken for a clean stop.
            fs::remove_file(&marker).map_err(|e| LogError::io("remove", &marker, e))?;
            sync_dir(&canon)?;
        }
        let handle = Arc::new(DirHandle {
            path: canon.clone(),
            _lock: lock,
            state: Mutex::new(state),
        });
        reg.insert(canon, Arc::downgrade(&handle));
        Ok(handle)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn state(&self) -> MutexGuard<'_, DirState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn checkpoint_of(&self, tp: &TopicPartition) -> PartitionCheckpoint {
        self.state().entries.get(tp).copied().unwrap_or_default()
    }

    /// Whether `tp` may skip recovery: the directory was shut down cleanly and this is the
    /// partition's first open in this process.
    pub fn take_clean_shutdown(&self, tp: &TopicPartition) -> bool {
        let mut s = self.state();
        s.clean_shutdown && s.opened.insert(tp.clone())
    }

    pub fn update(&self, tp: &TopicPartition, cp: PartitionCheckpoint) {
        self.state().entries.insert(tp.clone(), cp);
    }

    pub fn remove(&self, tp: &TopicPartition) {
        self.state().entries.remove(tp);
    }

    /// Keeps only the entries of `present` (partitions whose directory exists).
    pub fn retain(&self, present: &HashSet<TopicPartition>) {
        self.state().entries.retain(|tp, _| present.contains(tp));
    }

    /// Rewrites the three checkpoint files from the in-memory entries.
    pub fn write_checkpoints(&self) -> Result<()> {
        self.write_files(&[
            (RECOVERY_POINT_FILE, |c| c.recovery_point),
            (LOG_START_FILE, |c| c.log_start_offset),
            (HIGH_WATERMARK_FILE, |c| c.high_watermark),
        ])
    }

    /// Rewrites only `recovery-point-offset-checkpoint` (after a segment roll, the one change
    /// that must reach the disk soon: it bounds the next recovery to the active segment).
    pub fn write_recovery_points(&self) -> Result<()> {
        self.write_files(&[(RECOVERY_POINT_FILE, |c| c.recovery_point)])
    }

    fn write_files(&self, files: &[(&str, Field)]) -> Result<()> {
        // Hold the lock while writing so two writers cannot interleave old and new files.
        let s = self.state();
        for (file, get) in files {
            let rows: Vec<(&TopicPartition, u64)> = s
                .entries
                .iter()
                .filter_map(|(tp, c)| get(c).map(|v| (tp, v)))
                .collect();
            let mut text = format!("0\n{}\n", rows.len());
            for (tp, v) in rows {
                text.push_str(&format!("{} {} {}\n", tp.topic, tp.partition, v));
            }
            write_replace(&self.path.join(file), text.as_bytes())?;
        }
        // One directory fsync makes all the renames durable.
        sync_dir(&self.path)
    }

    /// Writes the clean-shutdown marker (after every log of the directory was flushed and
    /// the checkpoints written).
    pub fn write_clean_shutdown_marker(&self) -> Result<()> {
        write_durably(&self.path.join(CLEAN_SHUTDOWN_FILE), b"")
    }
}

/// Reads a Kafka offset checkpoint file; a missing or malformed file reads as empty (the
/// safe direction: full recovery, log start at the first segment).
fn read_offset_checkpoint(path: &Path) -> Vec<(TopicPartition, u64)> {
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new();
    };
    let parsed = (|| {
        let mut lines = text.lines();
        if lines.next()?.trim() != "0" {
            return None;
        }
        let n: usize = lines.next()?.trim().parse().ok()?;
        let mut out = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let mut parts = lines.next()?.split_whitespace();
            let topic = parts.next()?.to_string();
            let partition: i32 = parts.next()?.parse().ok()?;
            let offset: u64 = parts.next()?.parse().ok()?;
            out.push((TopicPartition { topic, partition }, offset));
        }
        Some(out)
    })();
    parsed.unwrap_or_else(|| {
        tracing::warn!(file = %path.display(), "malformed offset checkpoint ignored");
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names() {
        let tp = TopicPartition::from_dir_name("my-topic-12").unwrap();
        assert_eq!(tp, TopicPartition::new("my-topic", 12));
        assert_eq!(tp.dir_name(), "my-topic-12");
        assert_eq!(TopicPartition::from_dir_name("t-0.abc-delete"), None);
        assert_eq!(TopicPartition::from_dir_name("nodash"), None);
        assert_eq!(TopicPartition::from_dir_name("-3"), None);
    }

    #[test]
    fn checkpoints_round_trip_and_lock() {
        let d = tempfile::tempdir().unwrap();
        let h = DirHandle::acquire(d.path()).unwrap();
        let again = DirHandle::acquire(d.path()).unwrap();
        assert!(Arc::ptr_eq(&h, &again));
        let tp = TopicPartition::new("a", 1);
        h.update(
            &tp,
            PartitionCheckpoint {
                recovery_point: Some(10),
                log_start_offset: Some(3),
                high_watermark: None,
            },
        );
        h.write_checkpoints().unwrap();
        h.write_clean_shutdown_marker().unwrap();
        let text = fs::read_to_string(d.path().join(RECOVERY_POINT_FILE)).unwrap();
        assert_eq!(text, "0\n1\na 1 10\n");
        drop((h, again));
        let h = DirHandle::acquire(d.path()).unwrap();
        assert_eq!(h.checkpoint_of(&tp).recovery_point, Some(10));
        assert_eq!(h.checkpoint_of(&tp).high_watermark, None);
        assert!(h.take_clean_shutdown(&tp));
        assert!(!h.take_clean_shutdown(&tp));
        assert!(!d.path().join(CLEAN_SHUTDOWN_FILE).exists());
    }
}
