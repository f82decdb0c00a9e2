//! The znode tree: ZooKeeper 3.8's `DataTree` plus the request checks of `PrepRequestProcessor`,
//! as one deterministic, synchronous structure.
//!
//! Data flow: the replicated state machine (`crate::machine`) calls the write functions
//! ([`Tree::create`], [`Tree::delete`], [`Tree::set_data`], [`Tree::set_acl`], [`Tree::multi`],
//! [`Tree::kill_session`], [`Tree::reap`]) with the transaction's zxid and time and the caller's
//! session and authenticated ids. Each write first runs ZooKeeper's checks in ZooKeeper's order
//! (so the first failing check decides the error code), then changes the tree and returns the
//! watch [`Trigger`]s it causes; the per-server watch manager (`crate::watches`) turns those into
//! notifications. Reads ([`Tree::get_data`], [`Tree::get_children`], ...) are served from any
//! replica's tree directly. Nothing here reads a clock or does I/O: the same calls on the same
//! tree give the same result on every replica.
//!
//! Storage is kept lean for large trees: one hash map from full path to node (in copy-on-write
//! shards, so that a snapshot is a cheap frozen copy: [`Tree::freeze`], `nodes.rs`); a node
//! holds its data as a shared slice, its ACL as a shared, interned list (most nodes share a
//! handful of ACLs), its persisted stat, and the names of its children in a set that is only
//! allocated once the node has children.
//!
//! Stats follow ZooKeeper's persisted/client split: the tree stores `StatPersisted` (cversion
//! counts child creations, the ephemeral owner holds the container/TTL encodings), and
//! [`Stat`]s given to clients are derived as `DataNode.copyStat` does (cversion = 2*creates -
//! children, ephemeralOwner 0 for containers and TTL nodes).

pub mod acl;
mod nodes;
pub mod path;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sluice_jute::{perms, Acl, CreateMode, ErrorCode, EventType, Id, Stat};

use self::acl::check_acl;
use self::nodes::Nodes;
use self::path::{split_parent, validate_path};

/// An interned, shared ACL list. Triggers carry one so that watch delivery can apply the
/// node's READ permission, as ZooKeeper 3.8 does.
pub type AclList = Arc<[Acl]>;

pub const ROOT: &str = "/";
/// `Quotas.procZookeeper`.
pub const ZOOKEEPER: &str = "/zookeeper";
/// `Quotas.quotaZookeeper`.
pub const QUOTA: &str = "/zookeeper/quota";
/// `ZooDefs.CONFIG_NODE`, READ-only for everyone but the super user.
pub const CONFIG: &str = "/zookeeper/config";

/// The nodes ZooKeeper refuses to delete (`DataTree.isSpecialPath`).
pub fn is_special_path(path: &str) -> bool {
    matches!(path, ROOT | ZOOKEEPER | QUOTA | CONFIG)
}

/// `EphemeralType.CONTAINER_EPHEMERAL_OWNER`: only the sign bit set.
pub const CONTAINER_EPHEMERAL_OWNER: i64 = i64::MIN;
/// High byte set: an "extended" ephemeral owner (`EphemeralType.EXTENDED_MASK`).
const EXTENDED_MASK: i64 = 0xff00_0000_0000_0000_u64 as i64;
/// The two bytes after the high byte name the extended feature; TTL is feature 0.
const RESERVED_BITS_MASK: i64 = 0x00ff_ff00_0000_0000;
const RESERVED_BITS_SHIFT: u32 = 40;
/// Largest TTL in milliseconds (`EphemeralType.TTL.maxValue()`, the low five bytes).
pub const MAX_TTL_MS: i64 = !(EXTENDED_MASK | RESERVED_BITS_MASK);
/// Largest server id whose session ids cannot be mistaken for extended owners
/// (`EphemeralType.MAX_EXTENDED_SERVER_ID`).
pub const MAX_EXTENDED_SERVER_ID: u64 = 0xfe;

/// What a node's `ephemeralOwner` means (`EphemeralType.get` with extended types enabled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EphemeralType {
    /// Persistent node.
    Void,
    /// Ephemeral node owned by this session.
    Normal(i64),
    Container,
    /// TTL node with this TTL in milliseconds.
    Ttl(i64),
}

impl EphemeralType {
    pub fn of(owner: i64) -> EphemeralType {
        if owner & EXTENDED_MASK == EXTENDED_MASK {
            let feature = (owner & RESERVED_BITS_MASK) >> RESERVED_BITS_SHIFT;
            if feature == 0 {
                return EphemeralType::Ttl(owner & MAX_TTL_MS);
            }
            // ZooKeeper throws on unknown extended features; such an owner can only come from
            // a damaged snapshot, and treating the node as persistent is the harmless choice.
            return EphemeralType::Void;
        }
        match owner {
            0 => EphemeralType::Void,
            CONTAINER_EPHEMERAL_OWNER => EphemeralType::Container,
            s => EphemeralType::Normal(s),
        }
    }
}

/// `EphemeralType.TTL.toEphemeralOwner`: `None` unless `0 < ttl <= MAX_TTL_MS`.
pub fn ttl_ephemeral_owner(ttl: i64) -> Option<i64> {
    (ttl > 0 && ttl <= MAX_TTL_MS).then_some(EXTENDED_MASK | ttl)
}

/// The stored part of a node's stat (ZooKeeper's `StatPersisted`). `cversion` counts child
/// creations here; clients see the derived value (see [`Tree::stat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PersistedStat {
    pub czxid: i64,
    pub mzxid: i64,
    pub pzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub ephemeral_owner: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
}

impl PersistedStat {
    /// `DataTree.createStat`.
    fn created(zxid: i64, time: i64, ephemeral_owner: i64) -> PersistedStat {
        PersistedStat {
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ctime: time,
            mtime: time,
            ephemeral_owner,
            version: 0,
            cversion: 0,
            aversion: 0,
        }
    }
}

/// Names of a node's children; no allocation for leaves, which are most nodes. The set is
/// shared with snapshots being written ([`FrozenTree`]) and copied on the first change after
/// one was taken, so a snapshot costs a parent's set once, not every create under it.
#[derive(Debug, Clone, Default)]
struct Children(Option<Arc<HashSet<Arc<str>>>>);

impl Children {
    fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.len())
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&mut self, name: &str) {
        Arc::make_mut(self.0.get_or_insert_with(Default::default)).insert(name.into());
    }

    fn remove(&mut self, name: &str) {
        if let Some(set) = &mut self.0 {
            if !set.contains(name) {
                return;
            }
            if set.len() == 1 {
                self.0 = None;
            } else {
                Arc::make_mut(set).remove(name);
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().flat_map(|s| s.iter().map(|n| &**n))
    }

    /// Names in byte order: the deterministic order used for replies and snapshots.
    fn sorted(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.iter().collect();
        v.sort_unstable();
        v
    }
}

/// A znode's payload. `None` is ZooKeeper's null data (a create or setData whose data field is
/// null, as Kafka writes its top-level paths), kept apart from empty as ZooKeeper keeps it:
/// getData answers null, `dataLength` is 0. Shared, so that copying a node (see `nodes.rs`)
/// does not copy its payload.
pub type Data = Option<Arc<[u8]>>;

/// The payload of a replicated create or setData: `None` is null data.
///
/// In a log entry the bytes are encoded as a plain byte vector, null written as empty; which
/// ones were null travels beside the commands (the entry's null list, see
/// `crate::server`), so entries written before null was kept apart still decode unchanged.
pub mod op_data {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(v) => v.serialize(s),
            None => Vec::<u8>::new().serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Vec::<u8>::deserialize(d).map(Some)
    }
}

#[derive(Debug, Clone)]
struct Node {
    data: Data,
    acl: AclList,
    stat: PersistedStat,
    children: Children,
}

impl Node {
    fn special(acl: AclList) -> Node {
        Node {
            data: None,
            acl,
            stat: PersistedStat::default(),
            children: Children::default(),
        }
    }

    /// `DataNode.copyStat`.
    fn client_stat(&self) -> Stat {
        let s = &self.stat;
        let num_children = i32::try_from(self.children.len()).unwrap_or(i32::MAX);
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            // Persisted cversion counts creates; clients expect creates + deletes.
            cversion: s.cversion.wrapping_mul(2).wrapping_sub(num_children),
            aversion: s.aversion,
            ephemeral_owner: match EphemeralType::of(s.ephemeral_owner) {
                EphemeralType::Normal(owner) => owner,
                _ => 0,
            },
            data_length: i32::try_from(self.data.as_deref().map_or(0, <[u8]>::len))
                .unwrap_or(i32::MAX),
            num_children,
            pzxid: s.pzxid,
        }
    }
}

/// Deduplicates ACL lists so that nodes share them (ZooKeeper's `ReferenceCountedACLCache`).
/// Not part of the replicated state: snapshots are written from the nodes' lists.
#[derive(Debug, Clone, Default)]
struct AclInterner {
    lists: HashSet<AclList>,
    /// Releases since the last sweep; a sweep drops lists no node (or live trigger) holds.
    releases: usize,
}

impl AclInterner {
    fn intern(&mut self, acl: Vec<Acl>) -> AclList {
        if let Some(existing) = self.lists.get(acl.as_slice()) {
            return existing.clone();
        }
        let list: AclList = acl.into();
        self.lists.insert(list.clone());
        list
    }

    fn intern_shared(&mut self, acl: AclList) -> AclList {
        if let Some(existing) = self.lists.get(&*acl) {
            return existing.clone();
        }
        self.lists.insert(acl.clone());
        acl
    }

    fn release(&mut self, acl: AclList) {
        drop(acl);
        self.releases += 1;
        if self.releases > self.lists.len().max(1024) {
            self.lists.retain(|l| Arc::strong_count(l) > 1);
            self.releases = 0;
        }
    }
}

/// A change that may fire watches: `path` and the event, with the ACL of the node the event is
/// about (the parent's for `NodeChildrenChanged`), used to filter delivery by READ permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub path: String,
    pub event: EventType,
    pub acl: AclList,
}

/// Who is writing and when: the transaction's zxid and leader-assigned time, and the caller.
#[derive(Debug, Clone, Copy)]
pub struct TxnContext<'a> {
    pub session_id: i64,
    pub auth: &'a [Id],
    pub zxid: i64,
    pub time_ms: i64,
}

/// A create request (`CreateRequest` / `CreateTTLRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOp {
    pub path: String,
    /// `None`: null data.
    #[serde(with = "op_data")]
    pub data: Option<Vec<u8>>,
    pub acl: Vec<Acl>,
    pub mode: CreateMode,
    /// TTL in ms for the TTL modes; -1 when the request carries none (create, create2,
    /// createContainer). A TTL on another mode, or a missing one on a TTL mode, is
    /// `BadArguments`, as `EphemeralType.validateTTL` has it.
    pub ttl: i64,
}

impl CreateOp {
    /// A create with `world:anyone` ALL and no TTL.
    pub fn new(path: impl Into<String>, data: impl Into<Vec<u8>>, mode: CreateMode) -> CreateOp {
        CreateOp {
            path: path.into(),
            data: Some(data.into()),
            acl: acl::open_acl_unsafe(),
            mode,
            ttl: -1,
        }
    }
}

/// One operation of a multi (`create`, `delete`, `setData`, `check`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Create(CreateOp),
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        /// `None`: null data.
        #[serde(with = "op_data")]
        data: Option<Vec<u8>>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
}

/// One result of a multi. On failure every entry is `Error`: `Ok` before the failing op, its
/// code for it, `RuntimeInconsistency` after it (ZooKeeper's `ErrorResult`s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResult {
    Create { path: String, stat: Stat },
    Delete,
    SetData { stat: Stat },
    Check,
    Error(ErrorCode),
}

/// One read of a multiRead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadOp {
    GetChildren { path: String },
    GetData { path: String },
}

/// One result of a multiRead; each read succeeds or fails on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadResult {
    GetChildren { children: Vec<String> },
    GetData { data: Option<Vec<u8>>, stat: Stat },
    Error(ErrorCode),
}

/// How to put back one applied change when a multi fails part-way.
#[derive(Debug)]
enum Undo {
    Create {
        path: String,
        parent_cversion: i32,
        parent_pzxid: i64,
    },
    Delete {
        path: Arc<str>,
        node: Node,
        parent_pzxid: i64,
    },
    SetData {
        path: String,
        data: Data,
        mtime: i64,
        mzxid: i64,
        version: i32,
    },
}

/// What an internal apply step gives: its value, the triggers, and how to undo it.
type Applied<T> = Result<(T, Vec<Trigger>, Undo), ErrorCode>;

/// The checked form of a create: final path (sequence suffix added), fixed-up ACL, owner.
struct PreparedCreate {
    path: String,
    acl: Vec<Acl>,
    ephemeral_owner: i64,
}

/// A node as the snapshot writer sees it and the [`TreeBuilder`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct NodeRecord<'a> {
    pub path: &'a str,
    /// `None`: null data.
    pub data: Option<&'a [u8]>,
    pub acl: &'a AclList,
    pub stat: PersistedStat,
}

/// Why [`TreeBuilder`] refused its input (a damaged or foreign snapshot).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("the first node must be the root `/`, got {0:?}")]
    RootFirst(String),
    #[error("node {0:?} appears twice")]
    Duplicate(String),
    #[error("node {0:?} comes before its parent")]
    MissingParent(String),
    #[error("no root node")]
    NoRoot,
}

/// The znode tree. See the module documentation.
#[derive(Clone)]
pub struct Tree {
    nodes: Nodes,
    acls: AclInterner,
    /// Ephemeral paths by owning session (`DataTree.ephemerals`), ordered so that closing a
    /// session deletes in the same order everywhere.
    ephemerals: BTreeMap<i64, BTreeSet<Box<str>>>,
    containers: BTreeSet<Box<str>>,
    ttls: BTreeSet<Box<str>>,
    /// ZooKeeper's `approximateDataSize`, kept as nodes come, go and change: the length of
    /// every path plus its data.
    data_size: u64,
}

/// What one node adds to [`Tree::approximate_data_size`].
fn node_size(path: &str, data: &Data) -> u64 {
    (path.len() + data.as_deref().map_or(0, <[u8]>::len)) as u64
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tree")
            .field("nodes", &self.nodes.len())
            .field("acl_lists", &self.acls.lists.len())
            .field("ephemeral_sessions", &self.ephemerals.len())
            .field("containers", &self.containers.len())
            .field("ttls", &self.ttls.len())
            .finish()
    }
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

fn trigger(path: &str, event: EventType, acl: &AclList) -> Trigger {
    Trigger {
        path: path.to_owned(),
        event,
        acl: acl.clone(),
    }
}

/// `PrepRequestProcessor.checkAndIncVersion`: -1 matches any version.
fn check_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

/// Java's `String.trim()`: strips chars up to and including U+0020 at both ends.
fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

impl Tree {
    /// A fresh tree as ZooKeeper 3.8 starts: `/`, `/zookeeper`, `/zookeeper/quota` and
    /// `/zookeeper/config` with all-zero stats (so `/` shows cversion -1 and `/zookeeper` -2,
    /// their children having been added without counting), `world:anyone` ALL on the first
    /// three and READ only on `/zookeeper/config`.
    pub fn new() -> Tree {
        let mut acls = AclInterner::default();
        let open = acls.intern(acl::open_acl_unsafe());
        let read_only = acls.intern(acl::read_acl_unsafe());
        let mut root = Node::special(open.clone());
        root.children.insert("zookeeper");
        let mut proc_node = Node::special(open.clone());
        proc_node.children.insert("quota");
        proc_node.children.insert("config");
        let mut nodes = Nodes::default();
        nodes.insert(ROOT, root);
        nodes.insert(ZOOKEEPER, proc_node);
        nodes.insert(QUOTA, Node::special(open));
        nodes.insert(CONFIG, Node::special(read_only));
        let data_size = nodes.iter().map(|(p, n)| node_size(p, &n.data)).sum();
        Tree {
            nodes,
            acls,
            ephemerals: BTreeMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            data_size,
        }
    }

    /// Number of znodes, the root included.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// ZooKeeper's `approximateDataSize`: the length of every path plus its data (a fresh tree
    /// counts 44, as a fresh ZooKeeper 3.8 does).
    pub fn approximate_data_size(&self) -> u64 {
        self.data_size
    }

    /// ZooKeeper keeps `""` as an alias of the root in its node map.
    fn lookup(&self, path: &str) -> Option<&Node> {
        self.nodes.get(if path.is_empty() { ROOT } else { path })
    }

    /// The client-visible stat of `path`, without any ACL check (for setWatches, the server's
    /// bookkeeping and tests).
    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.lookup(path).map(Node::client_stat)
    }

    /// The stored stat of `path` (persisted cversion, raw ephemeral owner).
    pub fn persisted_stat(&self, path: &str) -> Option<PersistedStat> {
        self.lookup(path).map(|n| n.stat)
    }

    /// The ACL of `path`, without any check (for the server's own use).
    pub fn acl(&self, path: &str) -> Option<&AclList> {
        self.lookup(path).map(|n| &n.acl)
    }

    fn readable(&self, path: &str, auth: &[Id]) -> Result<&Node, ErrorCode> {
        let node = self.lookup(path).ok_or(ErrorCode::NoNode)?;
        if !check_acl(&node.acl, perms::READ, auth) {
            return Err(ErrorCode::NoAuth);
        }
        Ok(node)
    }

    // ----- reads (FinalRequestProcessor) -----

    /// getData: `NoNode`, then READ (`NoAuth`). The caller registers a data watch on success.
    /// The data is `None` when the node holds null data.
    pub fn get_data(&self, path: &str, auth: &[Id]) -> Result<(Option<&[u8]>, Stat), ErrorCode> {
        let node = self.readable(path, auth)?;
        Ok((node.data.as_deref(), node.client_stat()))
    }

    /// exists: `BadArguments` for a NUL in the path; READ is checked only when the node exists.
    /// `Ok(None)` is ZooKeeper's `NoNode` reply, for which the caller still registers the exist
    /// watch (ZooKeeper registers it before failing); on `Err` no watch is registered.
    pub fn exists(&self, path: &str, auth: &[Id]) -> Result<Option<Stat>, ErrorCode> {
        if path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        match self.lookup(path) {
            None => Ok(None),
            Some(node) if check_acl(&node.acl, perms::READ, auth) => Ok(Some(node.client_stat())),
            Some(_) => Err(ErrorCode::NoAuth),
        }
    }

    /// getChildren / getChildren2: `NoNode`, then READ. Names are sorted (ZooKeeper's order is
    /// its hash set's; sorting makes every replica answer alike).
    pub fn get_children(&self, path: &str, auth: &[Id]) -> Result<(Vec<&str>, Stat), ErrorCode> {
        let node = self.readable(path, auth)?;
        Ok((node.children.sorted(), node.client_stat()))
    }

    /// getACL: `NoNode`, then READ or ADMIN (either bit suffices). Without ADMIN, digest ids
    /// are masked to `user:x`, as ZooKeeper 3.8 does.
    pub fn get_acl(&self, path: &str, auth: &[Id]) -> Result<(Vec<Acl>, Stat), ErrorCode> {
        let node = self.lookup(path).ok_or(ErrorCode::NoNode)?;
        if !check_acl(&node.acl, perms::READ | perms::ADMIN, auth) {
            return Err(ErrorCode::NoAuth);
        }
        let acl = if check_acl(&node.acl, perms::ADMIN, auth) {
            node.acl.to_vec()
        } else {
            acl::mask_digest_ids(&node.acl)
        };
        Ok((acl, node.client_stat()))
    }

    /// getAllChildrenNumber: `NoNode`, then READ; the number of descendants (all nodes but
    /// the root for `/`).
    pub fn get_all_children_number(&self, path: &str, auth: &[Id]) -> Result<i32, ErrorCode> {
        let node = self.readable(path, auth)?;
        let count = if path == ROOT || path.is_empty() {
            self.nodes.len() - 1
        } else {
            self.count_descendants(path, node)
        };
        Ok(i32::try_from(count).unwrap_or(i32::MAX))
    }

    fn count_descendants(&self, path: &str, node: &Node) -> usize {
        let mut count = 0;
        let mut stack: Vec<String> = node.children.iter().map(|c| path::join(path, c)).collect();
        while let Some(p) = stack.pop() {
            count += 1;
            if let Some(n) = self.nodes.get(p.as_str()) {
                stack.extend(n.children.iter().map(|c| path::join(&p, c)));
            }
        }
        count
    }

    /// getEphemerals: the session's ephemeral paths starting with `prefix` (all of them for an
    /// empty, blank or `/` prefix), sorted. A plain string prefix, as in ZooKeeper.
    pub fn get_ephemerals(&self, session_id: i64, prefix: &str) -> Vec<String> {
        let Some(paths) = self.ephemerals.get(&session_id) else {
            return Vec::new();
        };
        let trimmed = java_trim(prefix);
        let all = trimmed.is_empty() || trimmed == ROOT;
        paths
            .iter()
            .filter(|p| all || p.starts_with(prefix))
            .map(|p| p.to_string())
            .collect()
    }

    /// Sessions that own ephemeral nodes, in id order.
    pub fn ephemeral_owners(&self) -> impl Iterator<Item = i64> + '_ {
        self.ephemerals.keys().copied()
    }

    /// Ephemeral nodes, over all sessions (ZooKeeper's `ephemerals_count`).
    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(BTreeSet::len).sum()
    }

    /// The node count ZooKeeper reports (`srvr`'s "Node count", `znode_count`): its node map
    /// holds the root twice, as `""` and as `/`, and counts both (a fresh 3.8 server says 5).
    pub fn zookeeper_node_count(&self) -> usize {
        self.node_count() + 1
    }

    /// multiRead: each read is answered (or fails) on its own.
    pub fn multi_read(&self, ops: &[ReadOp], auth: &[Id]) -> Vec<ReadResult> {
        ops.iter()
            .map(|op| match op {
                ReadOp::GetChildren { path } => match self.get_children(path, auth) {
                    Ok((children, _)) => ReadResult::GetChildren {
                        children: children.into_iter().map(str::to_owned).collect(),
                    },
                    Err(e) => ReadResult::Error(e),
                },
                ReadOp::GetData { path } => match self.get_data(path, auth) {
                    Ok((data, stat)) => ReadResult::GetData {
                        data: data.map(<[u8]>::to_vec),
                        stat,
                    },
                    Err(e) => ReadResult::Error(e),
                },
            })
            .collect()
    }

    /// check (outside a multi): `BadArguments`, `NoNode`, READ, then `BadVersion`.
    pub fn check(&self, path: &str, version: i32, auth: &[Id]) -> Result<(), ErrorCode> {
        validate_path(path)?;
        let node = self.readable(path, auth)?;
        check_version(node.stat.version, version).map(|_| ())
    }

    /// Containers and TTL nodes the leader should delete now, sorted (`ContainerManager
    /// .getCandidates`): empty containers that have had a child (cversion > 0), or that were
    /// never used for longer than `max_never_used_ms` when that is non-zero; childless TTL
    /// nodes whose last modification is more than their TTL before `now_ms`.
    pub fn reap_candidates(&self, now_ms: i64, max_never_used_ms: i64) -> Vec<String> {
        let mut out = Vec::new();
        for path in &self.containers {
            let Some(node) = self.nodes.get(path) else {
                continue;
            };
            if !node.children.is_empty() {
                continue;
            }
            let elapsed = now_ms.saturating_sub(node.stat.mtime);
            if node.stat.cversion > 0 || (max_never_used_ms != 0 && elapsed > max_never_used_ms) {
                out.push(path.to_string());
            }
        }
        for path in &self.ttls {
            let Some(node) = self.nodes.get(path) else {
                continue;
            };
            if node.children.is_empty() && ttl_expired(node, now_ms) {
                out.push(path.to_string());
            }
        }
        out.sort_unstable();
        out
    }

    // ----- writes (PrepRequestProcessor checks, then DataTree changes) -----

    /// create / create2 / createTTL / createContainer. Returns the created path (with its
    /// sequence suffix) and the new node's stat.
    ///
    /// Checks, in ZooKeeper's order: TTL validity (`BadArguments`); a `/` and no NUL in the
    /// path (`BadArguments`); the ACL (`InvalidAcl`); the parent exists (`NoNode`); CREATE on
    /// the parent (`NoAuth`); the final path is valid (`BadArguments`); it is free
    /// (`NodeExists`); the parent is not ephemeral (`NoChildrenForEphemerals`). Ephemeral nodes
    /// are owned by `tx.session_id`; the caller checks that the session is live.
    pub fn create(
        &mut self,
        tx: &TxnContext<'_>,
        op: &CreateOp,
    ) -> Result<((String, Stat), Vec<Trigger>), ErrorCode> {
        let prepared = self.prepare_create(tx, op)?;
        let (created, triggers, undo) = self.apply_create(tx, prepared, op.data.as_deref())?;
        self.commit(vec![undo]);
        Ok((created, triggers))
    }

    /// delete: `BadArguments` (no `/`, a NUL, or one of the four special paths), parent
    /// `NoNode`, DELETE on the parent (`NoAuth`), `NoNode`, `BadVersion`, `NotEmpty`.
    pub fn delete(
        &mut self,
        tx: &TxnContext<'_>,
        path: &str,
        version: i32,
    ) -> Result<Vec<Trigger>, ErrorCode> {
        self.prepare_delete(tx, path, version)?;
        let (triggers, undo) = self.apply_delete(path, tx.zxid)?;
        self.commit(vec![undo]);
        Ok(triggers)
    }

    /// setData: `BadArguments`, `NoNode`, WRITE (`NoAuth`), `BadVersion`. Returns the new stat.
    pub fn set_data(
        &mut self,
        tx: &TxnContext<'_>,
        path: &str,
        data: Option<&[u8]>,
        version: i32,
    ) -> Result<(Stat, Vec<Trigger>), ErrorCode> {
        let new_version = self.prepare_set_data(tx, path, version)?;
        let (stat, triggers, undo) = self.apply_set_data(tx, path, data, new_version)?;
        self.commit(vec![undo]);
        Ok((stat, triggers))
    }

    /// The data of `/zookeeper/config` (empty until the ensemble's configuration is written).
    pub fn config_data(&self) -> &[u8] {
        self.lookup(CONFIG)
            .and_then(|n| n.data.as_deref())
            .unwrap_or_default()
    }

    /// Writes the ensemble's configuration into `/zookeeper/config`, as ZooKeeper's
    /// `processReconfig` does: `mzxid` is the configuration's version and the data version
    /// stays -1; a data watch fires.
    pub fn set_config(&mut self, data: &[u8], mzxid: i64, time_ms: i64) -> (Stat, Vec<Trigger>) {
        let Some(node) = self.nodes.get_mut(CONFIG) else {
            return (Stat::default(), Vec::new());
        };
        let old = node.data.replace(data.into());
        self.data_size = self.data_size - node_size(CONFIG, &old) + node_size(CONFIG, &node.data);
        node.stat.mtime = time_ms;
        node.stat.mzxid = mzxid;
        node.stat.version = -1;
        let stat = node.client_stat();
        let t = trigger(CONFIG, EventType::NodeDataChanged, &node.acl);
        (stat, vec![t])
    }

    /// setACL: `BadArguments`, the ACL (`InvalidAcl`), `NoNode`, ADMIN (`NoAuth`), `BadVersion`
    /// against the aversion. Fires no watches (ZooKeeper has no ACL-change event).
    pub fn set_acl(
        &mut self,
        tx: &TxnContext<'_>,
        path: &str,
        acl: &[Acl],
        version: i32,
    ) -> Result<Stat, ErrorCode> {
        validate_path(path)?;
        let fixed = acl::fixup_acl(tx.auth, acl)?;
        let node = self.lookup(path).ok_or(ErrorCode::NoNode)?;
        if !check_acl(&node.acl, perms::ADMIN, tx.auth) {
            return Err(ErrorCode::NoAuth);
        }
        let new_aversion = check_version(node.stat.aversion, version)?;
        let list = self.acls.intern(fixed);
        let node = self.nodes.get_mut(path).ok_or(ErrorCode::NoNode)?;
        node.stat.aversion = new_aversion;
        let old = std::mem::replace(&mut node.acl, list);
        let stat = node.client_stat();
        self.acls.release(old);
        Ok(stat)
    }

    /// multi: the ops are checked and applied in order, each seeing the ones before it; if one
    /// fails, everything is put back and the result list is ZooKeeper's (`Ok` for the ops before,
    /// the error for the failing op, `RuntimeInconsistency` for the rest) with no triggers.
    pub fn multi(&mut self, tx: &TxnContext<'_>, ops: &[Op]) -> (Vec<OpResult>, Vec<Trigger>) {
        let mut results = Vec::with_capacity(ops.len());
        let mut triggers = Vec::new();
        let mut undos = Vec::with_capacity(ops.len());
        for (index, op) in ops.iter().enumerate() {
            match self.apply_op(tx, op) {
                Ok((result, op_triggers, undo)) => {
                    results.push(result);
                    triggers.extend(op_triggers);
                    undos.extend(undo);
                }
                Err(code) => {
                    self.rollback(undos);
                    return (multi_failure(ops.len(), index, code), Vec::new());
                }
            }
        }
        self.commit(undos);
        (results, triggers)
    }

    fn apply_op(
        &mut self,
        tx: &TxnContext<'_>,
        op: &Op,
    ) -> Result<(OpResult, Vec<Trigger>, Option<Undo>), ErrorCode> {
        Ok(match op {
            Op::Create(create) => {
                let prepared = self.prepare_create(tx, create)?;
                let ((path, stat), triggers, undo) =
                    self.apply_create(tx, prepared, create.data.as_deref())?;
                (OpResult::Create { path, stat }, triggers, Some(undo))
            }
            Op::Delete { path, version } => {
                self.prepare_delete(tx, path, *version)?;
                let (triggers, undo) = self.apply_delete(path, tx.zxid)?;
                (OpResult::Delete, triggers, Some(undo))
            }
            Op::SetData {
                path,
                data,
                version,
            } => {
                let new_version = self.prepare_set_data(tx, path, *version)?;
                let (stat, triggers, undo) =
                    self.apply_set_data(tx, path, data.as_deref(), new_version)?;
                (OpResult::SetData { stat }, triggers, Some(undo))
            }
            Op::Check { path, version } => {
                self.check(path, *version, tx.auth)?;
                (OpResult::Check, Vec::new(), None)
            }
        })
    }

    /// closeSession: deletes every ephemeral node of `session_id` (in path order), like
    /// `DataTree.killSession`; each deletion fires as a delete would.
    pub fn kill_session(&mut self, session_id: i64, zxid: i64) -> Vec<Trigger> {
        let Some(paths) = self.ephemerals.remove(&session_id) else {
            return Vec::new();
        };
        let mut triggers = Vec::new();
        let mut undos = Vec::with_capacity(paths.len());
        for path in paths {
            // A path listed but gone is ignored, as ZooKeeper ignores NoNode here.
            if let Ok((t, undo)) = self.apply_delete(&path, zxid) {
                triggers.extend(t);
                undos.push(undo);
            }
        }
        self.commit(undos);
        triggers
    }

    /// deleteContainer for the reaper: `BadArguments` (no `/`, NUL, special path), `NoNode`,
    /// `NotEmpty`, `BadVersion` when the node is not a container or TTL node, or is a TTL node
    /// no longer expired at `now_ms` (a setData since the candidate was listed refreshed it),
    /// then parent `NoNode`. No ACL check: the reaper is the server itself.
    pub fn reap(&mut self, path: &str, zxid: i64, now_ms: i64) -> Result<Vec<Trigger>, ErrorCode> {
        if path.contains('\0') || is_special_path(path) {
            return Err(ErrorCode::BadArguments);
        }
        let (parent, _) = split_parent(path).ok_or(ErrorCode::BadArguments)?;
        let node = self.lookup(path).ok_or(ErrorCode::NoNode)?;
        if !node.children.is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        match EphemeralType::of(node.stat.ephemeral_owner) {
            EphemeralType::Container => {}
            EphemeralType::Ttl(_) if ttl_expired(node, now_ms) => {}
            _ => return Err(ErrorCode::BadVersion),
        }
        if self.lookup(parent).is_none() {
            return Err(ErrorCode::NoNode);
        }
        let (triggers, undo) = self.apply_delete(path, zxid)?;
        self.commit(vec![undo]);
        Ok(triggers)
    }

    fn prepare_create(
        &self,
        tx: &TxnContext<'_>,
        op: &CreateOp,
    ) -> Result<PreparedCreate, ErrorCode> {
        // EphemeralType.validateTTL.
        let ttl_owner = if op.mode.is_ttl() {
            Some(ttl_ephemeral_owner(op.ttl).ok_or(ErrorCode::BadArguments)?)
        } else if op.ttl >= 0 {
            return Err(ErrorCode::BadArguments);
        } else {
            None
        };
        // validatePathForCreate.
        if op.path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        let (parent_path, _) = split_parent(&op.path).ok_or(ErrorCode::BadArguments)?;
        let acl = acl::fixup_acl(tx.auth, &op.acl)?;
        let parent = self.lookup(parent_path).ok_or(ErrorCode::NoNode)?;
        if !check_acl(&parent.acl, perms::CREATE, tx.auth) {
            return Err(ErrorCode::NoAuth);
        }
        let path = if op.mode.is_sequential() {
            // The suffix is the parent's persisted cversion (child creations so far).
            format!("{}{:010}", op.path, parent.stat.cversion)
        } else {
            op.path.clone()
        };
        validate_path(&path)?;
        if self.nodes.contains_key(path.as_str()) {
            return Err(ErrorCode::NodeExists);
        }
        if matches!(
            EphemeralType::of(parent.stat.ephemeral_owner),
            EphemeralType::Normal(_)
        ) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let ephemeral_owner = if op.mode.is_container() {
            CONTAINER_EPHEMERAL_OWNER
        } else if let Some(owner) = ttl_owner {
            owner
        } else if op.mode.is_ephemeral() {
            tx.session_id
        } else {
            0
        };
        Ok(PreparedCreate {
            path,
            acl,
            ephemeral_owner,
        })
    }

    /// `DataTree.createNode`.
    fn apply_create(
        &mut self,
        tx: &TxnContext<'_>,
        prepared: PreparedCreate,
        data: Option<&[u8]>,
    ) -> Applied<(String, Stat)> {
        let PreparedCreate {
            path,
            acl,
            ephemeral_owner,
        } = prepared;
        let (parent_path, name) = split_parent(&path).ok_or(ErrorCode::BadArguments)?;
        let acl = self.acls.intern(acl);
        let parent = self.nodes.get_mut(parent_path).ok_or(ErrorCode::NoNode)?;
        let undo = Undo::Create {
            path: path.clone(),
            parent_cversion: parent.stat.cversion,
            parent_pzxid: parent.stat.pzxid,
        };
        // ZooKeeper only moves cversion forward (`parentCVersion > cversion`), so a wrapped
        // counter stops there rather than going back.
        let new_cversion = parent.stat.cversion.wrapping_add(1);
        if new_cversion > parent.stat.cversion {
            parent.stat.cversion = new_cversion;
            parent.stat.pzxid = tx.zxid;
        }
        parent.children.insert(name);
        let parent_trigger = trigger(parent_path, EventType::NodeChildrenChanged, &parent.acl);
        let node = Node {
            data: data.map(Into::into),
            acl,
            stat: PersistedStat::created(tx.zxid, tx.time_ms, ephemeral_owner),
            children: Children::default(),
        };
        let stat = node.client_stat();
        let node_trigger = trigger(&path, EventType::NodeCreated, &node.acl);
        self.index(&path, ephemeral_owner);
        self.data_size += node_size(&path, &node.data);
        self.nodes.insert(&path, node);
        Ok(((path, stat), vec![node_trigger, parent_trigger], undo))
    }

    fn prepare_delete(
        &self,
        tx: &TxnContext<'_>,
        path: &str,
        version: i32,
    ) -> Result<(), ErrorCode> {
        if path.contains('\0') || is_special_path(path) {
            return Err(ErrorCode::BadArguments);
        }
        let (parent_path, _) = split_parent(path).ok_or(ErrorCode::BadArguments)?;
        let parent = self.lookup(parent_path).ok_or(ErrorCode::NoNode)?;
        if !check_acl(&parent.acl, perms::DELETE, tx.auth) {
            return Err(ErrorCode::NoAuth);
        }
        let node = self.lookup(path).ok_or(ErrorCode::NoNode)?;
        check_version(node.stat.version, version)?;
        if !node.children.is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        Ok(())
    }

    /// `DataTree.deleteNode`: the parent's pzxid moves forward, its cversion does not change.
    fn apply_delete(&mut self, path: &str, zxid: i64) -> Result<(Vec<Trigger>, Undo), ErrorCode> {
        let (parent_path, name) = split_parent(path).ok_or(ErrorCode::BadArguments)?;
        if !self.nodes.contains_key(path) {
            return Err(ErrorCode::NoNode);
        }
        let parent = self.nodes.get_mut(parent_path).ok_or(ErrorCode::NoNode)?;
        parent.children.remove(name);
        let parent_pzxid = parent.stat.pzxid;
        if zxid > parent.stat.pzxid {
            parent.stat.pzxid = zxid;
        }
        let parent_trigger = trigger(parent_path, EventType::NodeChildrenChanged, &parent.acl);
        let (key, node) = self.nodes.remove_entry(path).ok_or(ErrorCode::NoNode)?;
        self.data_size -= node_size(&key, &node.data);
        self.unindex(&key, node.stat.ephemeral_owner);
        let node_trigger = trigger(path, EventType::NodeDeleted, &node.acl);
        Ok((
            vec![node_trigger, parent_trigger],
            Undo::Delete {
                path: key,
                node,
                parent_pzxid,
            },
        ))
    }

    fn prepare_set_data(
        &self,
        tx: &TxnContext<'_>,
        path: &str,
        version: i32,
    ) -> Result<i32, ErrorCode> {
        validate_path(path)?;
        let node = self.lookup(path).ok_or(ErrorCode::NoNode)?;
        if !check_acl(&node.acl, perms::WRITE, tx.auth) {
            return Err(ErrorCode::NoAuth);
        }
        check_version(node.stat.version, version)
    }

    /// `DataTree.setData`.
    fn apply_set_data(
        &mut self,
        tx: &TxnContext<'_>,
        path: &str,
        data: Option<&[u8]>,
        new_version: i32,
    ) -> Applied<Stat> {
        let node = self.nodes.get_mut(path).ok_or(ErrorCode::NoNode)?;
        let old = std::mem::replace(&mut node.data, data.map(Into::into));
        self.data_size = self.data_size - node_size(path, &old) + node_size(path, &node.data);
        let undo = Undo::SetData {
            path: path.to_owned(),
            data: old,
            mtime: node.stat.mtime,
            mzxid: node.stat.mzxid,
            version: node.stat.version,
        };
        node.stat.mtime = tx.time_ms;
        node.stat.mzxid = tx.zxid;
        node.stat.version = new_version;
        let stat = node.client_stat();
        let t = trigger(path, EventType::NodeDataChanged, &node.acl);
        Ok((stat, vec![t], undo))
    }

    fn index(&mut self, path: &str, owner: i64) {
        match EphemeralType::of(owner) {
            EphemeralType::Void => {}
            EphemeralType::Container => {
                self.containers.insert(path.into());
            }
            EphemeralType::Ttl(_) => {
                self.ttls.insert(path.into());
            }
            EphemeralType::Normal(session) => {
                self.ephemerals
                    .entry(session)
                    .or_default()
                    .insert(path.into());
            }
        }
    }

    fn unindex(&mut self, path: &str, owner: i64) {
        match EphemeralType::of(owner) {
            EphemeralType::Void => {}
            EphemeralType::Container => {
                self.containers.remove(path);
            }
            EphemeralType::Ttl(_) => {
                self.ttls.remove(path);
            }
            EphemeralType::Normal(session) => {
                if let Some(set) = self.ephemerals.get_mut(&session) {
                    set.remove(path);
                    if set.is_empty() {
                        self.ephemerals.remove(&session);
                    }
                }
            }
        }
    }

    /// Makes applied changes final: deleted nodes give their ACL reference back.
    fn commit(&mut self, undos: Vec<Undo>) {
        for undo in undos {
            if let Undo::Delete { node, .. } = undo {
                self.acls.release(node.acl);
            }
        }
    }

    /// Puts back applied changes, newest first, leaving the tree as it was before the multi.
    fn rollback(&mut self, undos: Vec<Undo>) {
        for undo in undos.into_iter().rev() {
            match undo {
                Undo::Create {
                    path,
                    parent_cversion,
                    parent_pzxid,
                } => {
                    if let Some(node) = self.nodes.remove(path.as_str()) {
                        self.data_size -= node_size(&path, &node.data);
                        self.unindex(&path, node.stat.ephemeral_owner);
                        self.acls.release(node.acl);
                    }
                    if let Some((parent_path, name)) = split_parent(&path) {
                        if let Some(parent) = self.nodes.get_mut(parent_path) {
                            parent.children.remove(name);
                            parent.stat.cversion = parent_cversion;
                            parent.stat.pzxid = parent_pzxid;
                        }
                    }
                }
                Undo::Delete {
                    path,
                    node,
                    parent_pzxid,
                } => {
                    if let Some((parent_path, name)) = split_parent(&path) {
                        if let Some(parent) = self.nodes.get_mut(parent_path) {
                            parent.children.insert(name);
                            parent.stat.pzxid = parent_pzxid;
                        }
                    }
                    self.index(&path, node.stat.ephemeral_owner);
                    self.data_size += node_size(&path, &node.data);
                    self.nodes.insert(&path, node);
                }
                Undo::SetData {
                    path,
                    data,
                    mtime,
                    mzxid,
                    version,
                } => {
                    if let Some(node) = self.nodes.get_mut(path.as_str()) {
                        self.data_size =
                            self.data_size - node_size(&path, &node.data) + node_size(&path, &data);
                        node.data = data;
                        node.stat.mtime = mtime;
                        node.stat.mzxid = mzxid;
                        node.stat.version = version;
                    }
                }
            }
        }
    }

    // ----- snapshot support -----

    /// Visits every node parent-first, children in byte order of their names, so that equal
    /// trees are visited identically (the snapshot writer relies on this). Iterative, so deep
    /// trees cannot overflow the stack.
    pub fn for_each_node<'t>(&'t self, visit: impl FnMut(NodeRecord<'t>)) {
        for_each_node(&self.nodes, visit);
    }

    /// The nodes as they are now, for a snapshot written while the tree goes on changing:
    /// copies one pointer (see `nodes.rs`), whatever the size of the tree.
    pub fn freeze(&self) -> FrozenTree {
        FrozenTree {
            nodes: self.nodes.clone(),
        }
    }
}

/// The nodes of a [`Tree`] at the moment [`Tree::freeze`] was called; later changes to the
/// tree do not show here. What a snapshot is written from.
#[derive(Clone)]
pub struct FrozenTree {
    nodes: Nodes,
}

impl FrozenTree {
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// As [`Tree::for_each_node`].
    pub fn for_each_node<'t>(&'t self, visit: impl FnMut(NodeRecord<'t>)) {
        for_each_node(&self.nodes, visit);
    }
}

impl std::fmt::Debug for FrozenTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrozenTree")
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

fn for_each_node<'t>(nodes: &'t Nodes, mut visit: impl FnMut(NodeRecord<'t>)) {
    let Some((root_key, root)) = nodes.get_key_value(ROOT) else {
        return;
    };
    let mut stack: Vec<(&'t str, &'t Node)> = vec![(root_key, root)];
    let mut child_path = String::new();
    while let Some((path, node)) = stack.pop() {
        visit(NodeRecord {
            path,
            data: node.data.as_deref(),
            acl: &node.acl,
            stat: node.stat,
        });
        // Pushed in reverse so that the smallest name is visited first.
        for name in node.children.sorted().into_iter().rev() {
            child_path.clear();
            child_path.push_str(path);
            if path != ROOT {
                child_path.push('/');
            }
            child_path.push_str(name);
            if let Some((k, n)) = nodes.get_key_value(child_path.as_str()) {
                stack.push((k, n));
            }
        }
    }
}

/// `ContainerManager`: a TTL node is expired when more than its TTL has passed since its mtime.
fn ttl_expired(node: &Node, now_ms: i64) -> bool {
    match EphemeralType::of(node.stat.ephemeral_owner) {
        EphemeralType::Ttl(ttl) => ttl != 0 && now_ms.saturating_sub(node.stat.mtime) > ttl,
        _ => false,
    }
}

/// ZooKeeper's result list for a multi whose op `failed` returned `code`.
fn multi_failure(len: usize, failed: usize, code: ErrorCode) -> Vec<OpResult> {
    (0..len)
        .map(|i| {
            OpResult::Error(match i.cmp(&failed) {
                std::cmp::Ordering::Less => ErrorCode::Ok,
                std::cmp::Ordering::Equal => code,
                std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
            })
        })
        .collect()
}

/// Rebuilds a [`Tree`] from nodes given parent-first (as [`Tree::for_each_node`] yields them).
#[derive(Debug)]
pub struct TreeBuilder {
    tree: Tree,
}

impl Default for TreeBuilder {
    fn default() -> Self {
        TreeBuilder::new()
    }
}

impl TreeBuilder {
    /// A builder holding no nodes yet (not even the root).
    pub fn new() -> TreeBuilder {
        TreeBuilder {
            tree: Tree {
                nodes: Nodes::default(),
                acls: AclInterner::default(),
                ephemerals: BTreeMap::new(),
                containers: BTreeSet::new(),
                ttls: BTreeSet::new(),
                data_size: 0,
            },
        }
    }

    /// Adds one node; its parent must already be there (the root comes first).
    pub fn push(
        &mut self,
        path: &str,
        data: Option<Vec<u8>>,
        acl: AclList,
        stat: PersistedStat,
    ) -> Result<(), BuildError> {
        let tree = &mut self.tree;
        if tree.nodes.is_empty() {
            if path != ROOT {
                return Err(BuildError::RootFirst(path.to_owned()));
            }
        } else {
            if tree.nodes.contains_key(path) {
                return Err(BuildError::Duplicate(path.to_owned()));
            }
            let (parent_path, name) = match split_parent(path) {
                Some((p, n)) if !n.is_empty() && path != ROOT => (p, n),
                _ => return Err(BuildError::MissingParent(path.to_owned())),
            };
            let parent = tree
                .nodes
                .get_mut(parent_path)
                .ok_or_else(|| BuildError::MissingParent(path.to_owned()))?;
            parent.children.insert(name);
        }
        let acl = tree.acls.intern_shared(acl);
        tree.index(path, stat.ephemeral_owner);
        let data: Data = data.map(Arc::from);
        tree.data_size += node_size(path, &data);
        tree.nodes.insert(
            path,
            Node {
                data,
                acl,
                stat,
                children: Children::default(),
            },
        );
        Ok(())
    }

    pub fn finish(self) -> Result<Tree, BuildError> {
        if !self.tree.nodes.contains_key(ROOT) {
            return Err(BuildError::NoRoot);
        }
        Ok(self.tree)
    }
}
