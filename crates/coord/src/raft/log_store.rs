//! openraft's `RaftLogStorage` over a [`LogEngine`]: the Raft log, the vote, the last purged log
//! id and the committed log id.
//!
//! Data flow: openraft's core task calls `append` / `save_vote` / `truncate` / `purge`; each
//! writes through the engine. `append` returns at once and reports its entries flushed through
//! openraft's callback once the [`GroupCommit`] thread's next fsync covered them; `save_vote`
//! and `truncate` wait for that fsync before they return. `purge` records the purge point and
//! returns: the entries are removed by a thread of their own (`raft-log-purge`; removing the
//! thousands of entries a snapshot covers took the core task long enough to miss heartbeats),
//! and readers never see entries at or below the purge point meanwhile. Nothing is reported durable before it is, which is
//! what Raft's safety needs (a vote or an acknowledged entry must survive a crash). Replication
//! tasks read entries through clones of the same store (also entries not yet fsynced: a leader
//! may send them before its own disk is done; it counts itself towards the commit only after).
//!
//! Records: log entries as protobuf `Entry` keyed by index; metadata `vote`, `last_purged`
//! (protobuf `LogId`, written before the entries are removed so a crash in between leaves a
//! consistent view) and `committed` (not fsynced: it only lets a restart re-apply sooner).

use std::fmt;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{RaftLogId, StorageIOError};

use super::codec;
use super::engine::LogEngine;
use super::group_commit::GroupCommit;
use super::stats::RaftStats;
use super::types::{Entry, LogId, StorageResult, TypeConfig, Vote};

const META_VOTE: &str = "vote";
const META_LAST_PURGED: &str = "last_purged";
const META_COMMITTED: &str = "committed";

/// The Raft log of one node. Cheap to clone; clones share the engine.
#[derive(Clone)]
pub(crate) struct LogStore {
    engine: Arc<dyn LogEngine>,
    syncer: GroupCommit,
    /// The lowest index readers may see: one above the purge point (0 before any purge).
    first_readable: Arc<AtomicU64>,
    purger: mpsc::Sender<u64>,
    stats: Arc<RaftStats>,
}

impl fmt::Debug for LogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

fn invalid(e: codec::CodecError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl LogStore {
    /// Starts the store's sync and purge threads.
    pub(crate) fn new(engine: Arc<dyn LogEngine>, stats: Arc<RaftStats>) -> io::Result<Self> {
        let syncer = GroupCommit::start(engine.clone(), stats.clone())?;
        let (purger, purges) = mpsc::channel();
        let remover = engine.clone();
        std::thread::Builder::new()
            .name("raft-log-purge".into())
            .spawn(move || remove_purged(remover.as_ref(), purges))?;
        let mut store = LogStore {
            engine,
            syncer,
            first_readable: Arc::new(AtomicU64::new(0)),
            purger,
            stats,
        };
        if let Some(purged) = store.read_log_id_meta(META_LAST_PURGED)? {
            store.first_readable = Arc::new(AtomicU64::new(purged.index.saturating_add(1)));
            // Entries left at or below it by a crash mid-removal go now.
            let _ = store.purger.send(purged.index);
        }
        Ok(store)
    }

    /// Returns once everything written so far is on disk (off the async threads).
    async fn sync(&self) -> io::Result<()> {
        self.syncer.barrier().await
    }

    fn read_log_id_meta(&self, key: &str) -> io::Result<Option<LogId>> {
        match self.engine.get_meta(key)? {
            Some(b) => Ok(Some(codec::decode_log_id(&b).map_err(invalid)?)),
            None => Ok(None),
        }
    }
}

/// The purge thread: removes the entries up to each purge point it is given (the newest, when
/// several wait). Removal needs no fsync of its own: the purge point was written first, and an
/// entry that survives a crash below it is skipped (and removed at the next start).
fn remove_purged(engine: &dyn LogEngine, purges: mpsc::Receiver<u64>) {
    while let Ok(first) = purges.recv() {
        let upto = purges.try_iter().fold(first, u64::max);
        let started = Instant::now();
        match engine.remove_upto(upto) {
            Ok(()) => tracing::debug!(upto, took = ?started.elapsed(), "purged the raft log"),
            Err(e) => tracing::warn!(upto, error = %e, "removing purged raft log entries failed"),
        }
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let from = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let to = match range.end_bound() {
        Bound::Included(&i) => i.saturating_add(1),
        Bound::Excluded(&i) => i,
        Bound::Unbounded => u64::MAX,
    };
    (from, to)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + fmt::Debug + Send>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry>> {
        let (from, to) = bounds(&range);
        let from = from.max(self.first_readable.load(Ordering::Acquire));
        if from >= to {
            return Ok(Vec::new());
        }
        let records = self
            .engine
            .range(from, to)
            .map_err(|e| StorageIOError::read_logs(&e))?;
        let mut entries = Vec::with_capacity(records.len());
        for (_, v) in &records {
            entries.push(codec::decode_entry(v).map_err(|e| StorageIOError::read_logs(&e))?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let last_purged_log_id = self
            .read_log_id_meta(META_LAST_PURGED)
            .map_err(|e| StorageIOError::read_logs(&e))?;
        let last = match self
            .engine
            .last()
            .map_err(|e| StorageIOError::read_logs(&e))?
        {
            Some((_, v)) => Some(
                codec::decode_entry(&v)
                    .map_err(|e| StorageIOError::read_logs(&e))?
                    .log_id,
            ),
            None => None,
        };
        Ok(LogState {
            last_purged_log_id,
            // Entries at or below the purge point may linger after a crash mid-purge.
            last_log_id: last.max(last_purged_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> StorageResult<()> {
        self.engine
            .put_meta(META_VOTE, &codec::encode_vote(vote))
            .map_err(|e| StorageIOError::write_vote(&e))?;
        self.sync()
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote>> {
        match self
            .engine
            .get_meta(META_VOTE)
            .map_err(|e| StorageIOError::read_vote(&e))?
        {
            Some(b) => Ok(Some(
                codec::decode_vote(&b).map_err(|e| StorageIOError::read_vote(&e))?,
            )),
            None => Ok(None),
        }
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> StorageResult<()> {
        // Not fsynced: losing it only means a restarted node waits for the leader to tell it
        // what is committed before re-applying.
        if let Some(c) = committed {
            self.stats.committed_to(c.index);
            self.engine
                .put_meta(META_COMMITTED, &codec::encode_log_id(&c))
                .map_err(|e| StorageIOError::write(&e))?;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId>> {
        Ok(self
            .read_log_id_meta(META_COMMITTED)
            .map_err(|e| StorageIOError::read(&e))?)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let records: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|e| (e.get_log_id().index, codec::encode_entry(&e)))
            .collect();
        if let Err(e) = self.engine.append(&records) {
            let err = StorageIOError::write_logs(&e);
            callback.log_io_completed(Err(e));
            return Err(err.into());
        }
        // "Flushed" is reported by the sync thread once an fsync that began after this write
        // succeeded; its jobs complete in submission order, as openraft requires.
        self.syncer.submit(callback);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> StorageResult<()> {
        // Appends still waiting for their fsync are reported first, while their entries are
        // still there: no entry is called flushed after it was removed.
        self.sync()
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.engine
            .remove_from(log_id.index)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.sync()
            .await
            .map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> StorageResult<()> {
        // The purge point first: from here on readers skip what it covers, and after a crash
        // before the entries are gone the log merely still holds entries at or below it.
        self.engine
            .put_meta(META_LAST_PURGED, &codec::encode_log_id(&log_id))
            .map_err(|e| StorageIOError::write_logs(&e))?;
        self.first_readable
            .fetch_max(log_id.index.saturating_add(1), Ordering::AcqRel);
        self.purger.send(log_id.index).map_err(|_| {
            StorageIOError::write_logs(&io::Error::other("the raft log's purge thread has stopped"))
        })?;
        Ok(())
    }
}
