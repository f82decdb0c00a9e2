//! The vocabulary shared by every part of the Raft layer: the openraft type configuration, the
//! member address type, and the [`Application`] trait through which the replicated state machine
//! plugs in. Payloads and responses are opaque bytes; nothing in `raft` interprets them.

use std::fmt;
use std::io::Cursor;

use bytes::Bytes;

/// A member's id: the `N` of its `server.N` line.
pub type NodeId = u64;

/// Where a member listens: the two ports of its `server.N=host:peerPort:electionPort` line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PeerAddrs {
    /// `host:peerPort`: AppendEntries, InstallSnapshot, forwarded proposals and read barriers.
    pub peer: String,
    /// `host:electionPort`: vote requests.
    pub election: String,
    /// The client address of the member's `server.N` line (`host:port`, after `;`), as
    /// ZooKeeper lists it in `/zookeeper/config`; empty when the line gave none. Carried in the
    /// membership so that the ensemble's configuration can be written out from Raft alone.
    pub client: String,
}

impl PeerAddrs {
    pub fn new(peer: impl Into<String>, election: impl Into<String>) -> Self {
        PeerAddrs {
            peer: peer.into(),
            election: election.into(),
            client: String::new(),
        }
    }

    /// The same addresses with a client address.
    pub fn with_client(mut self, client: impl Into<String>) -> Self {
        self.client = client.into();
        self
    }
}

impl fmt::Display for PeerAddrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.peer, self.election)
    }
}

openraft::declare_raft_types!(
    /// openraft's type configuration for coord: bytes in, bytes out, members addressed by
    /// [`PeerAddrs`], snapshots held in memory while they are transferred.
    pub TypeConfig:
        D = Bytes,
        R = Bytes,
        NodeId = NodeId,
        Node = PeerAddrs,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub(crate) type Raft = openraft::Raft<TypeConfig>;
pub(crate) type LogId = openraft::LogId<NodeId>;
pub(crate) type Vote = openraft::Vote<NodeId>;
pub(crate) type Entry = openraft::Entry<TypeConfig>;
pub(crate) type Membership = openraft::Membership<NodeId, PeerAddrs>;
pub(crate) type StoredMembership = openraft::StoredMembership<NodeId, PeerAddrs>;
pub(crate) type SnapshotMeta = openraft::SnapshotMeta<NodeId, PeerAddrs>;
pub(crate) type StorageError = openraft::StorageError<NodeId>;
pub(crate) type StorageResult<T> = Result<T, StorageError>;

/// Serialises a state captured by [`Application::snapshot`]: gives the snapshot's bytes.
pub type SnapshotWriter = Box<dyn FnOnce() -> Vec<u8> + Send + Sync>;

/// The replicated state machine, as the Raft layer sees it.
///
/// Every node applies the same committed entries in the same order, so `apply` must be
/// deterministic: the same state and payload give the same new state and response on every node
/// (no clocks, no randomness, no local configuration). The Raft layer calls the three methods
/// from one task at a time, never concurrently with each other.
///
/// Only entries proposed through `RaftNode::propose` reach `apply`; Raft's own entries (a new
/// leader's blank entry, membership changes) advance the index without calling it, so indexes
/// seen by `apply` have gaps.
///
/// State lives in memory: on start the layer calls `restore` with the newest snapshot (if any),
/// then re-applies the committed log after it. So `snapshot` must capture everything `apply`
/// built, and `restore` must replace the whole state.
pub trait Application: Send + Sync + 'static {
    /// Applies one committed entry at `(term, index)` and returns the response for whoever
    /// proposed it (the proposer gets it from `propose`; other nodes drop it).
    fn apply(&self, term: u64, index: u64, payload: &[u8]) -> Vec<u8>;

    /// The full state as of the last applied entry. Called between two `apply` calls, so the
    /// state cannot move underneath it; it should only capture (cheaply: applying waits
    /// meanwhile) and leave the serialisation to the returned writer, which the layer runs on
    /// a blocking thread while later entries are applied.
    fn snapshot(&self) -> SnapshotWriter;

    /// Replaces the whole state with a snapshot made by `snapshot` (here or on another node).
    fn restore(&self, data: &[u8]) -> Result<(), String>;
}
