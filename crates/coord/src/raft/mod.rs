//! Raft replication for coord: every committed write reaches every member's state machine in
//! the same order, over an odd-sized ensemble configured like ZooKeeper
//! (`server.N=host:peerPort:electionPort`).
//!
//! This module owns consensus, the durable log, snapshots and peer RPC. It knows nothing of
//! znodes or sessions: the replicated payload is opaque bytes, and the application plugs in
//! through [`Application`] (apply / snapshot / restore).
//!
//! How data flows:
//!
//! ```text
//!  RaftNode::propose(bytes) ──(follower: Propose RPC to the leader)──┐
//!        │ leader                                                   │
//!        ▼                                                          ▼
//!  openraft core ── append ──► LogStore ──► LogEngine (sled; "done" after group_commit's fsync)
//!        │ AppendEntries / InstallSnapshot (peer port), Vote (election port): network.rs → server.rs
//!        ▼ committed
//!  StateMachine ── apply ──► Application::apply ──► response bytes back to the proposer
//!        └─ every `snapshot_every` entries: Application::snapshot (a frozen copy) → serialised
//!           on a blocking thread → snapshot file, log purged
//! ```
//!
//! Modules: [`types`] (openraft type config, `Application`), `codec` (protobuf ⇄ openraft),
//! `engine` (the narrow key-value interface and its sled implementation), `log_store`,
//! `group_commit` (the thread that fsyncs the log for every waiting append),
//! `state_machine` (snapshot files), `network` (client side), `server` (the two gRPC services),
//! `failover` (fast dead-leader detection), `stats` (what metrics report: fsync and snapshot
//! times, followers' answers, elections), `membership` (ensemble changes: `reconfig`), [`timing`] (ZooKeeper ticks → Raft timers), and
//! `node` ([`RaftNode`], the API the rest of coord uses). Decisions are recorded in
//! `docs/decisions/0002-raft-timing.md` and `0003-raft-storage.md`.

mod codec;
mod engine;
mod failover;
mod floor;
#[doc(hidden)]
pub mod fuzzing;
mod group_commit;
mod log_store;
mod membership;
mod network;
mod node;
mod proto;
mod server;
mod space;
mod state_machine;
mod stats;
pub mod timing;
pub mod types;

#[cfg(test)]
mod tests;

pub use membership::{ChangeError, MemberChange, Members};
pub use node::{
    ForwardedProposal, Listeners, ProposeError, ProposeOutcome, RaftNode, RaftNodeConfig,
    RaftStatus, ReadBarrierError, Role, StartError, LOG_SUBDIR, SNAPSHOT_SUBDIR,
};
pub use stats::{FollowerCounts, RaftStats};
pub use timing::{LogOptions, RaftTiming};
pub use types::{Application, NodeId, PeerAddrs, SnapshotWriter};
