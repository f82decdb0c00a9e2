//! openraft's `RaftStateMachine`: feeds committed entries to the [`Application`] and keeps its
//! snapshots as files.
//!
//! Data flow: openraft's state-machine task calls `apply` with committed entries; normal entries
//! go to `Application::apply`, membership entries are only remembered (they belong in the
//! snapshot), blank entries only advance the applied log id. When openraft asks for a snapshot,
//! the application state is captured *right then* (between two applies, so it matches the
//! applied log id; the application makes that a cheap copy-on-write freeze) and a builder
//! serialises it and writes it to disk in the background. A snapshot received from
//! the leader is written to disk first and then handed to `Application::restore`.
//!
//! The application state lives in memory only: on start, the newest snapshot file is restored
//! and openraft re-applies the log after it. So every snapshot is durable (fsynced file, atomic
//! rename, fsynced directory) before openraft may purge the log it covers.
//!
//! File format of `snapshot.bin` (little-endian):
//! `b"SLUICESNAP1\n"` · u32 meta length · protobuf `SnapshotMeta` (last applied log id, last
//! membership, snapshot id) · u64 data length · application bytes · u32 CRC-32 of all before.

use std::fmt;
use std::fs;
use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, RaftSnapshotBuilder, StorageIOError};
use prost::Message;

use super::codec;
use super::proto as pb;
use super::stats::RaftStats;
use super::types::{
    Application, Entry, LogId, SnapshotMeta, SnapshotWriter, StorageResult, StoredMembership,
    TypeConfig,
};

const MAGIC: &[u8; 12] = b"SLUICESNAP1\n";
const SNAPSHOT_FILE: &str = "snapshot.bin";
const TMP_PREFIX: &str = "snapshot.tmp-";

/// Why a snapshot file could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotFileError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: not a snapshot file or truncated ({what})", path.display())]
    Corrupt { path: PathBuf, what: &'static str },
    #[error("{}: bad header: {source}", path.display())]
    Header {
        path: PathBuf,
        source: codec::CodecError,
    },
    #[error("restoring the application from the snapshot failed: {0}")]
    Restore(String),
}

/// The directory holding the current snapshot; shared by the state machine and its builders so
/// that an older snapshot can never replace a newer one.
#[derive(Debug)]
struct SnapshotDir {
    dir: PathBuf,
    /// The meta of the snapshot now in `snapshot.bin`; the lock also serialises replacements.
    current: Mutex<Option<SnapshotMeta>>,
    stats: Arc<RaftStats>,
}

impl SnapshotDir {
    fn file(&self) -> PathBuf {
        self.dir.join(SNAPSHOT_FILE)
    }

    /// Writes `data` as the new current snapshot unless a newer snapshot is already
    /// there. Blocking: call from `spawn_blocking`.
    fn replace(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<bool, SnapshotFileError> {
        let tmp = self.dir.join(format!("{TMP_PREFIX}{}", meta.snapshot_id));
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SnapshotFileError::Io { path, source }
        };
        write_snapshot_file(&tmp, meta, data).map_err(io(&tmp))?;
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let newer = match current.as_ref() {
            Some(cur) => meta.last_log_id >= cur.last_log_id,
            None => true,
        };
        if !newer {
            let _ = fs::remove_file(&tmp);
            return Ok(false);
        }
        let file = self.file();
        fs::rename(&tmp, &file).map_err(io(&file))?;
        // The rename is durable only once the directory entry is.
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        *current = Some(meta.clone());
        Ok(true)
    }
}

fn write_snapshot_file(path: &Path, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
    let meta_bytes = codec::snapshot_meta_to_pb(meta).encode_to_vec();
    let mut buf = Vec::with_capacity(MAGIC.len() + 4 + meta_bytes.len() + 8 + data.len() + 4);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&(meta_bytes.len() as u32).to_le_bytes());
    buf.extend_from_slice(&meta_bytes);
    buf.extend_from_slice(&(data.len() as u64).to_le_bytes());
    buf.extend_from_slice(data);
    let crc = crc32fast::hash(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    let mut f = fs::File::create(path)?;
    f.write_all(&buf)?;
    f.sync_all()
}

/// Reads a snapshot file: its meta and the application bytes.
fn read_snapshot_file(path: &Path) -> Result<(SnapshotMeta, Vec<u8>), SnapshotFileError> {
    let corrupt = |what| SnapshotFileError::Corrupt {
        path: path.to_path_buf(),
        what,
    };
    let mut buf = fs::read(path).map_err(|source| SnapshotFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if buf.len() < MAGIC.len() + 4 + 8 + 4 || &buf[..MAGIC.len()] != MAGIC {
        return Err(corrupt("magic"));
    }
    let body_len = buf.len() - 4;
    let crc = u32::from_le_bytes(buf[body_len..].try_into().expect("4 bytes"));
    if crc32fast::hash(&buf[..body_len]) != crc {
        return Err(corrupt("checksum"));
    }
    let mut at = MAGIC.len();
    let meta_len = u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
    at += 4;
    if at + meta_len + 8 > body_len {
        return Err(corrupt("meta length"));
    }
    let meta = pb::SnapshotMeta::decode(&buf[at..at + meta_len])
        .map_err(codec::CodecError::from)
        .and_then(|p| codec::snapshot_meta_from_pb(&p))
        .map_err(|source| SnapshotFileError::Header {
            path: path.to_path_buf(),
            source,
        })?;
    at += meta_len;
    let data_len = u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes")) as usize;
    at += 8;
    if at + data_len != body_len {
        return Err(corrupt("data length"));
    }
    buf.truncate(body_len);
    let data = buf.split_off(at);
    Ok((meta, data))
}

/// Nice value of the snapshot thread: it yields the CPU to the rest of the node.
const SNAPSHOT_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority (Linux keeps a nice value per thread);
/// failing that, the snapshot is written at normal priority.
fn lower_priority() {
    let tid = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(tid), SNAPSHOT_NICE) {
        tracing::debug!(error = %e, "cannot lower the snapshot thread's priority");
    }
}

fn new_snapshot_id(last: Option<&LogId>) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    match last {
        Some(id) => format!(
            "{}-{}-{}-{nanos}",
            id.leader_id.term, id.leader_id.node_id, id.index
        ),
        None => format!("empty-{nanos}"),
    }
}

/// The replicated state machine of one node.
pub(crate) struct StateMachine {
    app: Arc<dyn Application>,
    snapshots: Arc<SnapshotDir>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
}

impl fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateMachine")
            .field("last_applied", &self.last_applied)
            .field("last_membership", &self.last_membership)
            .finish_non_exhaustive()
    }
}

impl StateMachine {
    /// Opens the snapshot directory (creating it), removes leftovers of interrupted writes, and
    /// restores `app` from the current snapshot if there is one.
    /// The time this takes is ZooKeeper's `startup_snap_load_time` (measured, as there, also
    /// when there is no snapshot to load).
    pub(crate) fn open(
        dir: &Path,
        app: Arc<dyn Application>,
        stats: Arc<RaftStats>,
    ) -> Result<Self, SnapshotFileError> {
        let started = Instant::now();
        let io = |source| SnapshotFileError::Io {
            path: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(io)?;
        for entry in fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                let _ = fs::remove_file(entry.path());
            }
        }
        let file = dir.join(SNAPSHOT_FILE);
        let (current, last_applied, last_membership) = if file.exists() {
            let (meta, data) = read_snapshot_file(&file)?;
            app.restore(&data).map_err(SnapshotFileError::Restore)?;
            stats.snapshot_current(data.len());
            tracing::info!(
                snapshot = %meta.snapshot_id,
                last_applied = ?meta.last_log_id,
                "restored the state machine from its snapshot"
            );
            (
                Some(meta.clone()),
                meta.last_log_id,
                meta.last_membership.clone(),
            )
        } else {
            (None, None, StoredMembership::default())
        };
        stats.snapshot_load.observe_millis(started.elapsed());
        Ok(StateMachine {
            app,
            snapshots: Arc::new(SnapshotDir {
                dir: dir.to_path_buf(),
                current: Mutex::new(current),
                stats,
            }),
            last_applied,
            last_membership,
        })
    }
}

/// Serialises one captured state and writes it to disk.
pub(crate) struct SnapshotBuilder {
    snapshots: Arc<SnapshotDir>,
    meta: SnapshotMeta,
    writer: Option<SnapshotWriter>,
}

impl fmt::Debug for SnapshotBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotBuilder")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let snapshots = self.snapshots.clone();
        let meta = self.meta.clone();
        let writer = self.writer.take();
        let signature = meta.signature();
        // Serialising a large tree takes a second or more: on a thread of its own, so that the
        // Raft core, heartbeats and applying go on meanwhile, and at a lower priority, so that
        // on a machine short of CPU they get it first (a leader whose heartbeats waited behind
        // a snapshot lost its leadership).
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                lower_priority();
                // ZooKeeper's `snapshottime`: serialising and writing, to the durable rename.
                let started = Instant::now();
                let data = writer.map(|w| w()).unwrap_or_default();
                let replaced = snapshots.replace(&meta, &data);
                if replaced.is_ok() {
                    snapshots
                        .stats
                        .snapshot_built(started.elapsed(), data.len());
                }
                let _ = tx.send(replaced.map(|_| (meta, data)));
            })
            .map_err(|e| StorageIOError::write_snapshot(Some(signature.clone()), &e))?;
        let (meta, data) = rx
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(signature.clone()), &e))?
            .map_err(|e| StorageIOError::write_snapshot(Some(signature), &e))?;
        tracing::info!(snapshot = %meta.snapshot_id, last = ?meta.last_log_id, bytes = data.len(), "built a snapshot");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> StorageResult<(Option<LogId>, StoredMembership)> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Bytes>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut responses = Vec::new();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => Bytes::new(),
                EntryPayload::Normal(payload) => Bytes::from(self.app.apply(
                    entry.log_id.leader_id.term,
                    entry.log_id.index,
                    &payload,
                )),
                EntryPayload::Membership(m) => {
                    self.last_membership = StoredMembership::new(Some(entry.log_id), m);
                    Bytes::new()
                }
            };
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Captured here, not in `build_snapshot`: openraft runs the builder concurrently with
        // later applies, and the state must match `last_applied` exactly. The capture is
        // cheap (the application freezes its state); the builder serialises it.
        SnapshotBuilder {
            snapshots: self.snapshots.clone(),
            meta: SnapshotMeta {
                last_log_id: self.last_applied,
                last_membership: self.last_membership.clone(),
                snapshot_id: new_snapshot_id(self.last_applied.as_ref()),
            },
            writer: Some(self.app.snapshot()),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let data = snapshot.into_inner();
        let snapshots = self.snapshots.clone();
        let signature = meta.signature();
        let (m, data) = {
            let m = meta.clone();
            tokio::task::spawn_blocking(move || snapshots.replace(&m, &data).map(|_| (m, data)))
                .await
                .map_err(|e| StorageIOError::write_snapshot(Some(signature.clone()), &e))?
                .map_err(|e| StorageIOError::write_snapshot(Some(signature.clone()), &e))?
        };
        self.app.restore(&data).map_err(|e| {
            StorageIOError::write_state_machine(&SnapshotFileError::Restore(e.clone()))
        })?;
        self.snapshots.stats.snapshot_current(data.len());
        self.last_applied = m.last_log_id;
        self.last_membership = m.last_membership.clone();
        tracing::info!(snapshot = %m.snapshot_id, last = ?m.last_log_id, "installed a snapshot from the leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let file = self.snapshots.file();
        let res = tokio::task::spawn_blocking(move || {
            if file.exists() {
                read_snapshot_file(&file).map(Some)
            } else {
                Ok(None)
            }
        })
        .await
        .map_err(|e| StorageIOError::read_snapshot(None, &e))?
        .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(res.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    #[test]
    fn the_snapshot_thread_runs_at_a_lower_priority() {
        let before = rustix::process::getpriority_process(None).unwrap();
        let nice = std::thread::spawn(|| {
            lower_priority();
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(nice, SNAPSHOT_NICE);
        // Only that thread: this one keeps its priority.
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), before);
    }

    #[test]
    fn snapshot_file_round_trips_and_detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.bin");
        let meta = SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(2, 1), 9)),
            last_membership: StoredMembership::default(),
            snapshot_id: "x".into(),
        };
        write_snapshot_file(&path, &meta, b"state").unwrap();
        let (m, d) = read_snapshot_file(&path).unwrap();
        assert_eq!(m, meta);
        assert_eq!(d, b"state");

        let mut raw = fs::read(&path).unwrap();
        let n = raw.len();
        raw[n - 6] ^= 1;
        fs::write(&path, &raw).unwrap();
        assert!(matches!(
            read_snapshot_file(&path),
            Err(SnapshotFileError::Corrupt {
                what: "checksum",
                ..
            })
        ));
    }
}
