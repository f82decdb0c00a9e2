//! Snapshot encoding of the [`Machine`]: a compact, versioned, checksummed binary image.
//!
//! Format version 2, all integers little-endian, `str`/`bytes` = u32 length + bytes:
//!
//! ```text
//! magic        8 bytes  "SLUICESM"
//! version      u32      2 (1 is read too)
//! last_zxid    i64
//! last_index   u64
//! sessions     u32 count, then per session (id order): id i64, timeout_ms i32, password [16]
//! acl lists    u32 count, then per list: u32 entries, per entry: perms i32, scheme str, id str
//! nodes        u64 count, then per node, parent first and siblings in byte order of name:
//!              path str, data bytes (length 0xFFFFFFFF: null data), acl-list index u32,
//!              czxid mzxid pzxid ctime mtime ephemeral_owner (i64 each),
//!              version cversion aversion (i32 each)
//! crc32        u32      CRC-32 (IEEE) of every byte before it
//! ```
//!
//! Version 2 differs from version 1 only in null data: version 1 had none (null was stored as
//! empty), so a version-1 image reads the same way.
//!
//! ACL lists are numbered in order of first use during that traversal, so the image is a pure
//! function of the logical state: two replicas in the same state write identical bytes, and
//! restoring then snapshotting again gives the input back. Only the stored (persisted) stat is
//! written; child counts, the ephemeral/container/TTL indexes and the ACL interning are rebuilt
//! on restore.

use std::collections::HashMap;

use sluice_jute::{Acl, Id};

use super::{FrozenMachine, Machine};
use crate::sessions::{Session, SessionError, SessionTable};
use crate::tree::{AclList, BuildError, PersistedStat, TreeBuilder};

pub const SNAPSHOT_MAGIC: &[u8; 8] = b"SLUICESM";
pub const SNAPSHOT_VERSION: u32 = 2;

/// The data length that stands for null data.
const NULL_DATA: u32 = u32::MAX;

/// Why a snapshot could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a snapshot (bad magic)")]
    BadMagic,
    #[error("unsupported snapshot format version {0} (this build reads {SNAPSHOT_VERSION})")]
    UnsupportedVersion(u32),
    #[error("snapshot checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    #[error("snapshot truncated")]
    Truncated,
    #[error("snapshot has {0} bytes after its contents")]
    TrailingBytes(usize),
    #[error("snapshot contains a string that is not UTF-8")]
    InvalidUtf8,
    #[error("snapshot node refers to ACL list {0}, which does not exist")]
    BadAclIndex(u32),
    #[error("snapshot tree: {0}")]
    Tree(#[from] BuildError),
    #[error("snapshot sessions: {0}")]
    Session(#[from] SessionError),
}

struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        // Lengths beyond u32 cannot occur: znode data and paths are bounded by the wire
        // protocol's frame size, far below 4 GiB.
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.buf.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn data(&mut self, d: Option<&[u8]>) {
        match d {
            Some(b) => self.bytes(b),
            None => self.u32(NULL_DATA),
        }
    }
}

pub(super) fn encode(m: &FrozenMachine) -> Vec<u8> {
    // Nodes go to their own buffer first because the ACL table, which precedes them, is only
    // complete once every node has been seen.
    let mut nodes = Writer {
        buf: Vec::with_capacity(m.tree.node_count() * 96),
    };
    let mut acl_index: HashMap<&[Acl], u32> = HashMap::new();
    let mut acl_order: Vec<&AclList> = Vec::new();
    let mut last: Option<(&AclList, u32)> = None;
    let mut count: u64 = 0;
    m.tree.for_each_node(|n| {
        count += 1;
        nodes.str(n.path);
        nodes.data(n.data);
        // Neighbouring nodes nearly always share the interned list: skip the hash then.
        let index = match last {
            Some((prev, i)) if std::sync::Arc::ptr_eq(prev, n.acl) => i,
            _ => {
                let next = u32::try_from(acl_order.len()).unwrap_or(u32::MAX);
                let i = *acl_index.entry(&n.acl[..]).or_insert_with(|| {
                    acl_order.push(n.acl);
                    next
                });
                last = Some((n.acl, i));
                i
            }
        };
        nodes.u32(index);
        let s = n.stat;
        for v in [
            s.czxid,
            s.mzxid,
            s.pzxid,
            s.ctime,
            s.mtime,
            s.ephemeral_owner,
        ] {
            nodes.i64(v);
        }
        for v in [s.version, s.cversion, s.aversion] {
            nodes.i32(v);
        }
    });

    let mut w = Writer {
        buf: Vec::with_capacity(nodes.buf.len() + 1024 + m.sessions.len() * 28),
    };
    w.buf.extend_from_slice(SNAPSHOT_MAGIC);
    w.u32(SNAPSHOT_VERSION);
    w.i64(m.last_zxid);
    w.u64(m.last_applied_index);
    w.u32(u32::try_from(m.sessions.len()).unwrap_or(u32::MAX));
    for (id, s) in m.sessions.iter() {
        w.i64(id);
        w.i32(s.timeout_ms);
        w.buf.extend_from_slice(&s.password);
    }
    w.u32(u32::try_from(acl_order.len()).unwrap_or(u32::MAX));
    for list in &acl_order {
        w.u32(u32::try_from(list.len()).unwrap_or(u32::MAX));
        for a in list.iter() {
            w.i32(a.perms);
            w.str(&a.id.scheme);
            w.str(&a.id.id);
        }
    }
    w.u64(count);
    w.buf.extend_from_slice(&nodes.buf);
    drop(nodes);
    let crc = crc32fast::hash(&w.buf);
    w.u32(crc);
    w.buf
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        let end = self.pos.checked_add(n).ok_or(SnapshotError::Truncated)?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or(SnapshotError::Truncated)?;
        self.pos = end;
        Ok(out)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, SnapshotError> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, SnapshotError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], SnapshotError> {
        let len = self.u32()? as usize;
        self.take(len)
    }
    fn data(&mut self) -> Result<Option<&'a [u8]>, SnapshotError> {
        match self.u32()? {
            NULL_DATA => Ok(None),
            len => self.take(len as usize).map(Some),
        }
    }
    fn str(&mut self) -> Result<&'a str, SnapshotError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| SnapshotError::InvalidUtf8)
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// A count read from the image, capped by what the remaining bytes could hold, so that a
    /// damaged count cannot make us reserve huge amounts of memory.
    fn capacity_hint(&self, count: u64, min_item_bytes: usize) -> usize {
        usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(self.remaining() / min_item_bytes.max(1))
    }
}

pub(super) fn decode(bytes: &[u8]) -> Result<Machine, SnapshotError> {
    if bytes.len() < SNAPSHOT_MAGIC.len() || &bytes[..SNAPSHOT_MAGIC.len()] != SNAPSHOT_MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let body_len = bytes
        .len()
        .checked_sub(4)
        .filter(|l| *l >= SNAPSHOT_MAGIC.len() + 4)
        .ok_or(SnapshotError::Truncated)?;
    let (body, crc_bytes) = bytes.split_at(body_len);
    let mut stored = [0u8; 4];
    stored.copy_from_slice(crc_bytes);
    let stored = u32::from_le_bytes(stored);
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(SnapshotError::Checksum { stored, computed });
    }

    let mut r = Reader {
        buf: body,
        pos: SNAPSHOT_MAGIC.len(),
    };
    let version = r.u32()?;
    if !(1..=SNAPSHOT_VERSION).contains(&version) {
        return Err(SnapshotError::UnsupportedVersion(version));
    }
    let last_zxid = r.i64()?;
    let last_applied_index = r.u64()?;

    let mut sessions = SessionTable::new();
    let session_count = r.u32()?;
    for _ in 0..session_count {
        let id = r.i64()?;
        let timeout_ms = r.i32()?;
        let password = r.array::<16>()?;
        sessions.insert(
            id,
            Session {
                timeout_ms,
                password,
            },
        )?;
    }

    let list_count = r.u32()?;
    let mut lists: Vec<AclList> = Vec::with_capacity(r.capacity_hint(list_count.into(), 4));
    for _ in 0..list_count {
        let entries = r.u32()?;
        let mut list = Vec::with_capacity(r.capacity_hint(entries.into(), 12));
        for _ in 0..entries {
            let perms = r.i32()?;
            let scheme = r.str()?.to_owned();
            let id = r.str()?.to_owned();
            list.push(Acl {
                perms,
                id: Id { scheme, id },
            });
        }
        lists.push(list.into());
    }

    let node_count = r.u64()?;
    let mut builder = TreeBuilder::new();
    for _ in 0..node_count {
        let path = r.str()?;
        let data = r.data()?.map(<[u8]>::to_vec);
        let index = r.u32()?;
        let acl = lists
            .get(index as usize)
            .ok_or(SnapshotError::BadAclIndex(index))?
            .clone();
        let stat = PersistedStat {
            czxid: r.i64()?,
            mzxid: r.i64()?,
            pzxid: r.i64()?,
            ctime: r.i64()?,
            mtime: r.i64()?,
            ephemeral_owner: r.i64()?,
            version: r.i32()?,
            cversion: r.i32()?,
            aversion: r.i32()?,
        };
        builder.push(path, data, acl, stat)?;
    }
    if r.remaining() != 0 {
        return Err(SnapshotError::TrailingBytes(r.remaining()));
    }
    Ok(Machine {
        tree: builder.finish()?,
        sessions,
        last_zxid,
        last_applied_index,
    })
}
