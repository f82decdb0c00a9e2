//! The narrow key-value interface the Raft log needs, and its sled implementation.
//!
//! `log_store` speaks only to [`LogEngine`]: ordered `u64 → bytes` records for the log, a few
//! named metadata records, and one `sync` that makes everything written so far durable. Swapping
//! sled for another engine means writing one more implementation of this trait; nothing above it
//! knows about sled.
//!
//! All methods block (sled does its I/O on the calling thread); `sync` can take milliseconds and
//! is only ever called from `spawn_blocking`.

use std::io;
use std::path::Path;

/// Ordered log records plus named metadata, with explicit durability.
pub(crate) trait LogEngine: Send + Sync + 'static {
    fn get_meta(&self, key: &str) -> io::Result<Option<Vec<u8>>>;
    /// Visible at once; durable after the next [`sync`](Self::sync).
    fn put_meta(&self, key: &str, value: &[u8]) -> io::Result<()>;
    /// Inserts (or overwrites) records atomically; durable after the next `sync`.
    fn append(&self, records: &[(u64, Vec<u8>)]) -> io::Result<()>;
    /// Records with `from <= index < to`, in index order.
    fn range(&self, from: u64, to: u64) -> io::Result<Vec<(u64, Vec<u8>)>>;
    /// The record with the highest index.
    fn last(&self) -> io::Result<Option<(u64, Vec<u8>)>>;
    /// Removes every record with `index >= from`.
    fn remove_from(&self, from: u64) -> io::Result<()>;
    /// Removes every record with `index <= upto`.
    fn remove_upto(&self, upto: u64) -> io::Result<()>;
    /// Blocks until everything written before the call is on disk (fsync).
    fn sync(&self) -> io::Result<()>;
}

/// sled 0.34: one `log` tree keyed by big-endian index (so key order is index order) and one
/// `meta` tree.
#[derive(Debug)]
pub(crate) struct SledEngine {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
}

fn io_err(e: sled::Error) -> io::Error {
    match e {
        // sled reports a database locked by another handle (a process still exiting, or this
        // process's previous node not yet dropped) as a plain error with the OS error in its
        // text; it is WouldBlock, which the opener waits out (node.rs, `open_engine`).
        sled::Error::Io(e)
            if e.kind() == io::ErrorKind::Other
                && e.to_string().contains("could not acquire lock") =>
        {
            io::Error::new(io::ErrorKind::WouldBlock, e.to_string())
        }
        sled::Error::Io(e) => e,
        other => io::Error::other(other),
    }
}

impl SledEngine {
    /// Opens (or creates) the database in `dir`. `cache_bytes` bounds sled's page cache, the bulk
    /// of its memory use.
    pub(crate) fn open(dir: &Path, cache_bytes: u64) -> io::Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::LowSpace)
            .open()
            .map_err(io_err)?;
        let log = db.open_tree("log").map_err(io_err)?;
        let meta = db.open_tree("meta").map_err(io_err)?;
        Ok(SledEngine { db, log, meta })
    }
}

impl LogEngine for SledEngine {
    fn get_meta(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        Ok(self.meta.get(key).map_err(io_err)?.map(|v| v.to_vec()))
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> io::Result<()> {
        self.meta.insert(key, value).map_err(io_err)?;
        Ok(())
    }

    fn append(&self, records: &[(u64, Vec<u8>)]) -> io::Result<()> {
        // One record (the usual case: one entry per round) is a plain insert. sled's atomic
        // batch seals and hands its current write buffer to a pool thread every time, which
        // cost more than the insert itself.
        if let [(index, value)] = records {
            self.log
                .insert(index.to_be_bytes(), value.as_slice())
                .map_err(io_err)?;
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for (index, value) in records {
            batch.insert(&index.to_be_bytes(), value.as_slice());
        }
        self.log.apply_batch(batch).map_err(io_err)
    }

    fn range(&self, from: u64, to: u64) -> io::Result<Vec<(u64, Vec<u8>)>> {
        if from >= to {
            return Ok(Vec::new());
        }
        self.log
            .range(from.to_be_bytes()..to.to_be_bytes())
            .map(|kv| {
                let (k, v) = kv.map_err(io_err)?;
                Ok((key_index(&k)?, v.to_vec()))
            })
            .collect()
    }

    fn last(&self) -> io::Result<Option<(u64, Vec<u8>)>> {
        match self.log.last().map_err(io_err)? {
            Some((k, v)) => Ok(Some((key_index(&k)?, v.to_vec()))),
            None => Ok(None),
        }
    }

    fn remove_from(&self, from: u64) -> io::Result<()> {
        let mut batch = sled::Batch::default();
        for k in self.log.range(from.to_be_bytes()..).keys() {
            batch.remove(k.map_err(io_err)?);
        }
        self.log.apply_batch(batch).map_err(io_err)
    }

    fn remove_upto(&self, upto: u64) -> io::Result<()> {
        let mut batch = sled::Batch::default();
        for k in self.log.range(..=upto.to_be_bytes()).keys() {
            batch.remove(k.map_err(io_err)?);
        }
        self.log.apply_batch(batch).map_err(io_err)
    }

    fn sync(&self) -> io::Result<()> {
        // `flush` (not `flush_async`): it returns only once sled has fsynced its log.
        self.db.flush().map_err(io_err)?;
        Ok(())
    }
}

fn key_index(k: &[u8]) -> io::Result<u64> {
    let arr: [u8; 8] = k.try_into().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("raft log key of {} bytes, expected 8", k.len()),
        )
    })?;
    Ok(u64::from_be_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_locked_by_another_handle_reads_as_would_block() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SledEngine::open(dir.path(), 1 << 20).unwrap();
        match SledEngine::open(dir.path(), 1 << 20) {
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}"),
            Ok(_) => panic!("a second handle opened a locked database"),
        }
    }
}
