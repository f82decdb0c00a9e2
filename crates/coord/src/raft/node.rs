//! [`RaftNode`]: one member of the ensemble: its storage, its openraft instance, its two
//! listening ports and the API the rest of coord uses (`propose`, `read_barrier`, status,
//! `shutdown`).
//!
//! Data flow of a write: `propose` on any node → if this node leads, openraft's `client_write`
//! (append, fsync, replicate, commit, apply) → the application's response. On a follower the
//! payload goes to the leader's `Propose` RPC instead, which does the same there. Callers never
//! see "not leader": the node follows leader changes itself and only gives up when no leader
//! with a quorum answers within `propose_timeout` (`syncLimit × tickTime`).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{CheckIsLeaderError, ClientWriteError, InitializeError, RaftError};
use openraft::metrics::WaitError;
use openraft::{RaftMetrics, ServerState};
use sluice_config::{CoordConfig, PeerRole};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::Status;

use super::engine::{LogEngine, SledEngine};
use super::failover;
use super::floor::{self, VoteFloor};
use super::log_store::LogStore;
use super::network::{is_connect_failure, request_to, NetworkFactory, Peers};
use super::proto as pb;
use super::server::{self, LeaderContact, ServiceCtx, SnapshotChunks};
use super::space::SpaceGuard;
use super::state_machine::StateMachine;
use super::stats::{self, RaftStats};
use super::timing::{openraft_config, LogOptions, RaftTiming};
use super::types::{Application, NodeId, PeerAddrs, Raft};

/// Sub-directory of `log_dir` holding the sled database of the Raft log.
pub const LOG_SUBDIR: &str = "raft-log";
/// Sub-directory of `data_dir` holding the snapshot file.
pub const SNAPSHOT_SUBDIR: &str = "raft-snapshots";

/// How a node is set up.
#[derive(Debug, Clone)]
pub struct RaftNodeConfig {
    /// This node's id (`myid`).
    pub id: NodeId,
    /// The voting members (ZooKeeper participants) and their addresses. Every node of an
    /// ensemble must be given the same map: it is the initial Raft membership.
    pub members: BTreeMap<NodeId, PeerAddrs>,
    /// Non-voting members (ZooKeeper observers): Raft learners, added by the leader.
    pub observers: BTreeMap<NodeId, PeerAddrs>,
    /// Snapshots go to `data_dir/raft-snapshots` (ZooKeeper `dataDir`).
    pub data_dir: PathBuf,
    /// The log goes to `log_dir/raft-log` (ZooKeeper `dataLogDir`).
    pub log_dir: PathBuf,
    pub timing: RaftTiming,
    pub log: LogOptions,
    /// Bytes kept free in `data_dir` and `log_dir`: below it, new writes are refused before
    /// they reach the log (see `space.rs`); 0 turns the check off.
    pub min_free_bytes: u64,
}

impl RaftNodeConfig {
    /// A one-member cluster (ZooKeeper standalone mode): no ports are opened.
    pub fn standalone(
        id: NodeId,
        data_dir: impl Into<PathBuf>,
        log_dir: impl Into<PathBuf>,
    ) -> Self {
        RaftNodeConfig {
            id,
            members: BTreeMap::from([(id, PeerAddrs::default())]),
            observers: BTreeMap::new(),
            data_dir: data_dir.into(),
            log_dir: log_dir.into(),
            timing: RaftTiming::default(),
            log: LogOptions::default(),
            min_free_bytes: 64 << 20,
        }
    }

    /// The configuration `zookeeper.properties` describes for node `myid`: `server.N` lines
    /// give the members (observers become learners), `dataDir`/`dataLogDir` the directories,
    /// `tickTime`/`initLimit`/`syncLimit` the timing. No `server.N` lines means standalone.
    pub fn from_coord_config(cfg: &CoordConfig, myid: NodeId) -> Self {
        let mut out = RaftNodeConfig::standalone(myid, &cfg.data_dir, &cfg.data_log_dir);
        out.timing = RaftTiming::from_zookeeper(cfg.tick_time_ms, cfg.init_limit, cfg.sync_limit);
        out.min_free_bytes = cfg.min_free_bytes;
        if !cfg.servers.is_empty() {
            out.members.clear();
            for s in cfg.servers.values() {
                let host = if s.host.contains(':') {
                    format!("[{}]", s.host)
                } else {
                    s.host.clone()
                };
                let addrs = PeerAddrs::new(
                    format!("{host}:{}", s.peer_port),
                    format!("{host}:{}", s.election_port),
                );
                match s.role {
                    PeerRole::Participant => out.members.insert(s.id, addrs),
                    PeerRole::Observer => out.observers.insert(s.id, addrs),
                };
            }
        }
        out
    }

    fn is_single_node(&self) -> bool {
        self.members.len() + self.observers.len() == 1
    }

    fn own_addrs(&self) -> Option<&PeerAddrs> {
        self.members
            .get(&self.id)
            .or_else(|| self.observers.get(&self.id))
    }
}

/// Listeners bound by the caller (e.g. on port 0 in tests) instead of the configured addresses.
#[derive(Debug)]
pub struct Listeners {
    pub peer: std::net::TcpListener,
    pub election: std::net::TcpListener,
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid raft configuration: {0}")]
    Config(String),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("snapshot: {0}")]
    Snapshot(String),
    #[error("raft: {0}")]
    Raft(String),
}

/// The outcome of a committed proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposeOutcome {
    /// The Raft term and log index of the entry (ZooKeeper's zxid can be derived from them).
    pub term: u64,
    pub index: u64,
    /// What [`Application::apply`] returned on the leader.
    pub response: Bytes,
}

/// A payload another node forwarded to this one's `Propose` RPC (it believed this node leads),
/// handed to the application once it asked for them with
/// [`RaftNode::forwarded_proposals`]. The application proposes it, typically merged with its
/// own, and answers with [`answer`](Self::answer); the forwarding node's `propose` returns
/// that answer. An error that says the payload was appended nowhere (`NoQuorum`, `Shutdown`)
/// lets the forwarding node try again.
#[derive(Debug)]
pub struct ForwardedProposal {
    pub payload: Bytes,
    pub(crate) reply: tokio::sync::oneshot::Sender<Result<ProposeOutcome, ProposeError>>,
}

impl ForwardedProposal {
    pub fn answer(self, outcome: Result<ProposeOutcome, ProposeError>) {
        let _ = self.reply.send(outcome);
    }
}

/// Why a proposal did not complete.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    /// No leader with a quorum was found in time; the payload was not appended anywhere, so
    /// retrying cannot apply it twice.
    #[error("no quorum: no leader accepted the write within {0:?}")]
    NoQuorum(Duration),
    /// The leader received the payload but the answer was lost (it crashed, lost leadership or
    /// the time ran out while it waited for a quorum): the write may or may not be committed.
    /// ZooKeeper reports this as a connection loss.
    #[error("outcome unknown: {0}")]
    Indeterminate(String),
    /// This node is shutting down.
    #[error("the raft node is shutting down")]
    Shutdown,
    /// The Raft core stopped on an error (e.g. storage); the node must be restarted.
    #[error("raft stopped: {0}")]
    Fatal(String),
    /// The leader refused the write before appending it (its disk is nearly full).
    #[error("write refused: {0}")]
    Refused(String),
}

impl ProposeError {
    /// True when the caller may simply try again (possibly later).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProposeError::NoQuorum(_) | ProposeError::Indeterminate(_)
        )
    }
}

/// Why a read barrier did not complete.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadBarrierError {
    #[error("no quorum: no leader confirmed its commit index within {0:?}")]
    NoQuorum(Duration),
    #[error("the raft node is shutting down")]
    Shutdown,
    #[error("raft stopped: {0}")]
    Fatal(String),
}

/// This node's part in the ensemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower,
    Candidate,
    /// A non-voting member (or a node not yet part of the membership).
    Observer,
    Shutdown,
}

/// A point-in-time view for status output (`srvr`, `mntr`, logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftStatus {
    pub id: NodeId,
    pub role: Role,
    pub term: u64,
    pub leader: Option<NodeId>,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    pub purged_index: Option<u64>,
    pub voters: Vec<NodeId>,
    pub observers: Vec<NodeId>,
    /// On the leader: how long ago a quorum last acknowledged it.
    pub millis_since_quorum_ack: Option<u64>,
    /// On the leader: each other member and the last index its log is known to match.
    pub matched: Vec<(NodeId, Option<u64>)>,
}

struct Inner {
    id: NodeId,
    raft: Raft,
    ctx: Arc<ServiceCtx>,
    peers: Peers,
    timing: RaftTiming,
    stop_tx: watch::Sender<bool>,
    servers: Mutex<Vec<JoinHandle<()>>>,
    background: Mutex<Vec<JoinHandle<()>>>,
    engine: Mutex<Option<Arc<SledEngine>>>,
    peer_addr: Option<SocketAddr>,
    election_addr: Option<SocketAddr>,
    shutdown_lock: tokio::sync::Mutex<bool>,
    stats: Arc<RaftStats>,
}

/// One running member of the ensemble. Cheap to clone; clones share the node.
#[derive(Clone)]
pub struct RaftNode {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.inner.id)
            .field("peer_addr", &self.inner.peer_addr)
            .field("election_addr", &self.inner.election_addr)
            .finish_non_exhaustive()
    }
}

/// A number that differs between nodes and between starts.
fn random_seed(id: NodeId) -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(id)
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StartError {
    let path = path.to_path_buf();
    move |source| StartError::Io { what, path, source }
}

/// Opens sled, waiting a little if a previous instance in this process still holds its lock
/// (a node restarted in place while its old tasks wind down).
async fn open_engine(dir: PathBuf, cache_bytes: u64) -> Result<SledEngine, StartError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = dir.clone();
        let res = tokio::task::spawn_blocking(move || SledEngine::open(&d, cache_bytes))
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        match res {
            Ok(engine) => return Ok(engine),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(io_err("opening the raft log", &dir)(e)),
        }
    }
}

impl RaftNode {
    /// Starts the node: opens (or creates) its storage, binds the peer and election ports of
    /// its own `members`/`observers` entry (none for a single-node cluster), and initializes
    /// the cluster if this node has never been part of one.
    pub async fn start(
        config: RaftNodeConfig,
        app: Arc<dyn Application>,
    ) -> Result<RaftNode, StartError> {
        Self::start_with_listeners(config, app, None).await
    }

    /// As [`start`](Self::start), serving on listeners the caller already bound.
    pub async fn start_with_listeners(
        config: RaftNodeConfig,
        app: Arc<dyn Application>,
        listeners: Option<Listeners>,
    ) -> Result<RaftNode, StartError> {
        let id = config.id;
        config.timing.validate().map_err(StartError::Config)?;
        if config.members.is_empty() {
            return Err(StartError::Config("no voting members".into()));
        }
        if config.members.contains_key(&id) && config.observers.contains_key(&id) {
            return Err(StartError::Config(format!(
                "node {id} is both a member and an observer"
            )));
        }
        let own = config
            .own_addrs()
            .cloned()
            .ok_or_else(|| StartError::Config(format!("node {id} is not in the membership")))?;

        // Storage.
        let log_dir = config.log_dir.join(LOG_SUBDIR);
        let snap_dir = config.data_dir.join(SNAPSHOT_SUBDIR);
        std::fs::create_dir_all(&log_dir).map_err(io_err("creating", &log_dir))?;
        let engine = Arc::new(open_engine(log_dir, config.log.cache_bytes).await?);
        let stats = Arc::new(RaftStats::default());
        let sm = {
            let app = app.clone();
            let stats = stats.clone();
            tokio::task::spawn_blocking(move || StateMachine::open(&snap_dir, app, stats))
                .await
                .map_err(|e| StartError::Raft(e.to_string()))?
                .map_err(|e| StartError::Snapshot(e.to_string()))?
        };
        let log_store = LogStore::new(engine.clone() as Arc<dyn LogEngine>, stats.clone())
            .map_err(io_err(
                "starting the raft log's sync thread",
                &config.log_dir,
            ))?;

        // Raft.
        let raft_config = openraft_config(&config.timing, &config.log, random_seed(id))
            .map_err(StartError::Config)?;
        let peers = Peers::new(config.timing.election_max);
        let floor = Arc::new(VoteFloor::default());
        let network = NetworkFactory {
            peers: peers.clone(),
            backoff: config.timing.heartbeat * 2,
            floor: floor.clone(),
            stats: stats.clone(),
        };
        let raft = Raft::new(id, Arc::new(raft_config), network, log_store, sm)
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        // Nothing on disk: no vote and no log. In an ensemble this may be a member whose data
        // directory was lost; it votes only above the terms the others hold (floor.rs).
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        let others: BTreeMap<NodeId, PeerAddrs> = config
            .members
            .iter()
            .filter(|(m, _)| **m != id)
            .map(|(m, a)| (*m, a.clone()))
            .collect();
        let empty_member = !initialized && config.members.contains_key(&id) && !others.is_empty();
        if empty_member {
            floor.hold();
        }

        let (stop_tx, stopping) = watch::channel(false);
        let ctx = Arc::new(ServiceCtx {
            id,
            raft: raft.clone(),
            stopping,
            contact: LeaderContact::default(),
            snapshot_chunks: SnapshotChunks::default(),
            floor: floor.clone(),
            space: SpaceGuard::new(
                vec![config.data_dir.clone(), config.log_dir.clone()],
                config.min_free_bytes,
            ),
            inbox: std::sync::OnceLock::new(),
            changing: tokio::sync::Mutex::new(()),
            commit_timeout: config.timing.propose_timeout,
        });

        // Ports: only a multi-node ensemble needs them.
        let (mut servers, mut peer_addr, mut election_addr) = (Vec::new(), None, None);
        if !config.is_single_node() || listeners.is_some() {
            let (peer, election) = match listeners {
                Some(l) => {
                    let conv = |l: std::net::TcpListener| {
                        l.set_nonblocking(true)?;
                        tokio::net::TcpListener::from_std(l)
                    };
                    let p = conv(l.peer).map_err(io_err("peer listener", Path::new("")))?;
                    let e = conv(l.election).map_err(io_err("election listener", Path::new("")))?;
                    (p, e)
                }
                None => {
                    let p = server::bind(&own.peer)
                        .await
                        .map_err(io_err("binding the peer port", Path::new(&own.peer)))?;
                    let e = server::bind(&own.election).await.map_err(io_err(
                        "binding the election port",
                        Path::new(&own.election),
                    ))?;
                    (p, e)
                }
            };
            let (tasks, p, e) = server::spawn(ctx.clone(), peer, election)
                .map_err(io_err("serving", Path::new(&own.peer)))?;
            servers = tasks;
            peer_addr = Some(p);
            election_addr = Some(e);
        }

        // Initialize once: openraft refuses (NotAllowed) when this node already has a vote or a
        // log, and every member proposes the same membership, so concurrent first starts agree.
        // A node with empty storage whose configuration lists members that already run an
        // ensemble joins it (ZooKeeper's way of adding a server: its file lists the current
        // members and itself) instead of initializing a cluster of its own: the leader
        // replicates to it once `reconfig` adds it (or at once, if it is a member that lost
        // its data directory).
        let joining = !initialized
            && !others.is_empty()
            && floor::ensemble_running(&others, &peers, config.timing.election_max).await;
        if joining {
            tracing::info!(
                node = id,
                "empty data directory and an ensemble already running: waiting to be replicated to (a new server is added with reconfig)"
            );
        }
        if !initialized && !joining && config.members.contains_key(&id) {
            match raft.initialize(config.members.clone()).await {
                Ok(()) => {
                    tracing::info!(node = id, members = ?config.members.keys().collect::<Vec<_>>(), "initialized the raft cluster")
                }
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(StartError::Raft(e.to_string())),
            }
        }

        let mut background = vec![
            tokio::spawn(ctx.space.clone().run(ctx.stopping.clone())),
            tokio::spawn(stats::watch_elections(stats.clone(), raft.metrics())),
        ];
        if empty_member {
            background.push(tokio::spawn(floor::establish(
                floor,
                id,
                others,
                peers.clone(),
                raft.metrics(),
                ctx.stopping.clone(),
            )));
        }
        if !config.is_single_node()
            && config.timing.fast_failover
            && config.members.contains_key(&id)
        {
            background.push(tokio::spawn(failover::run(
                ctx.clone(),
                peers.clone(),
                config.timing.clone(),
            )));
        }
        if !config.observers.is_empty() && config.members.contains_key(&id) {
            background.push(tokio::spawn(add_observers(
                ctx.clone(),
                config.observers.clone(),
            )));
        }

        Ok(RaftNode {
            inner: Arc::new(Inner {
                id,
                raft,
                ctx,
                peers,
                timing: config.timing,
                stop_tx,
                servers: Mutex::new(servers),
                background: Mutex::new(background),
                engine: Mutex::new(Some(engine)),
                peer_addr,
                election_addr,
                shutdown_lock: tokio::sync::Mutex::new(false),
                stats,
            }),
        })
    }

    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    pub(crate) fn inner_metrics(&self) -> watch::Receiver<RaftMetrics<NodeId, PeerAddrs>> {
        self.metrics()
    }

    /// What this node measured for metrics.
    pub fn stats(&self) -> &RaftStats {
        &self.inner.stats
    }

    /// How long the leader waits for a follower before ZooKeeper would drop it
    /// (`syncLimit × tickTime`): the window in which a follower counts as answering.
    pub fn follower_window(&self) -> Duration {
        self.inner.timing.propose_timeout
    }

    pub(crate) fn propose_timeout(&self) -> Duration {
        self.inner.timing.propose_timeout
    }

    pub(crate) fn ctx(&self) -> &ServiceCtx {
        &self.inner.ctx
    }

    pub(crate) fn peers(&self) -> &Peers {
        &self.inner.peers
    }

    /// The bound peer port (None for a single-node cluster).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.inner.peer_addr
    }

    /// The bound election port (None for a single-node cluster).
    pub fn election_addr(&self) -> Option<SocketAddr> {
        self.inner.election_addr
    }

    fn stopping(&self) -> bool {
        *self.inner.ctx.stopping.borrow()
    }

    /// Resolves, with the cause, once the Raft core has stopped on an error (a log or state
    /// machine write that failed, e.g. on a full disk) while the node was not shutting down.
    /// Such a node can no longer take part; its owner should exit so that it is restarted.
    pub async fn failed(&self) -> String {
        let mut m = self.metrics();
        let why = match m.wait_for(|m| m.running_state.is_err()).await {
            Ok(m) => m.running_state.as_ref().err().map(|e| e.to_string()),
            Err(_) => None,
        };
        // `None`: the core is gone without reporting why.
        why.unwrap_or_else(|| "the raft core ended".into())
    }

    fn metrics(&self) -> watch::Receiver<RaftMetrics<NodeId, PeerAddrs>> {
        self.inner.raft.metrics()
    }

    fn addrs_of(&self, node: NodeId) -> Option<PeerAddrs> {
        self.metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&node)
            .cloned()
    }

    /// Waits until some node is known as leader, at most until `deadline`.
    async fn leader_by(&self, deadline: Instant) -> Option<NodeId> {
        let mut m = self.metrics();
        let found = tokio::time::timeout_at(deadline, m.wait_for(|m| m.current_leader.is_some()))
            .await
            .ok()?
            .ok()?
            .current_leader;
        found
    }

    /// Waits (until `deadline`, and at most an election's length) for the leader to be
    /// someone other than `old`.
    async fn leader_change(&self, old: NodeId, deadline: Instant) {
        let cap = Instant::now() + self.inner.timing.election_max;
        let mut m = self.metrics();
        let _ = tokio::time::timeout_at(
            deadline.min(cap),
            m.wait_for(|m| m.current_leader != Some(old)),
        )
        .await;
    }

    /// From now on, payloads other nodes forward to this one arrive here instead of each being
    /// written as an entry of its own, so that the caller can merge them into its next proposal
    /// (one entry per round of the ensemble, whichever node the clients write through). `None`
    /// if they were asked for already.
    pub fn forwarded_proposals(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<ForwardedProposal>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.inner.ctx.inbox.set(tx).ok().map(|()| rx)
    }

    /// Replicates `payload` and returns what the application answered once it is committed and
    /// applied. Works on every node; see [`ProposeError`] for what can go wrong.
    pub async fn propose(&self, payload: impl Into<Bytes>) -> Result<ProposeOutcome, ProposeError> {
        let payload = payload.into();
        let started = Instant::now();
        let timeout = self.inner.timing.propose_timeout;
        let deadline = started + timeout;
        loop {
            if self.stopping() {
                return Err(ProposeError::Shutdown);
            }
            let Some(leader) = self.leader_by(deadline).await else {
                return Err(ProposeError::NoQuorum(timeout));
            };
            if leader == self.inner.id {
                self.inner
                    .ctx
                    .space
                    .check()
                    .map_err(ProposeError::Refused)?;
                self.inner.stats.proposed(payload.len());
                let write = self.inner.raft.client_write(payload.clone());
                match tokio::time::timeout_at(deadline, write).await {
                    Ok(Ok(resp)) => {
                        return Ok(ProposeOutcome {
                            term: resp.log_id.leader_id.term,
                            index: resp.log_id.index,
                            response: resp.data,
                        })
                    }
                    // Not appended, or appended and then truncated: safe to retry.
                    Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                        self.leader_change(leader, deadline).await;
                    }
                    Ok(Err(RaftError::APIError(e))) => {
                        return Err(ProposeError::Fatal(e.to_string()))
                    }
                    Ok(Err(RaftError::Fatal(f))) => {
                        return Err(if self.stopping() {
                            ProposeError::Shutdown
                        } else {
                            ProposeError::Fatal(f.to_string())
                        })
                    }
                    Err(_) => {
                        return Err(ProposeError::Indeterminate(format!(
                            "appended on the leader but not committed within {timeout:?}"
                        )))
                    }
                }
            } else {
                match self.forward(leader, &payload, deadline).await {
                    Forwarded::Done(outcome) => return Ok(outcome),
                    Forwarded::NotDelivered => self.leader_change(leader, deadline).await,
                    Forwarded::Refused(why) => return Err(ProposeError::Refused(why)),
                    Forwarded::Unknown(why) => return Err(ProposeError::Indeterminate(why)),
                }
            }
            if Instant::now() >= deadline {
                return Err(ProposeError::NoQuorum(timeout));
            }
        }
    }

    async fn forward(&self, leader: NodeId, payload: &Bytes, deadline: Instant) -> Forwarded {
        use pb::propose_response::Result as R;
        let Some(addrs) = self.addrs_of(leader) else {
            return Forwarded::NotDelivered;
        };
        let mut client = match self.inner.peers.peer_client(leader, &addrs) {
            Ok(c) => c,
            Err(_) => return Forwarded::NotDelivered,
        };
        let req = request_to(
            leader,
            pb::ProposeRequest {
                payload: payload.clone(),
            },
        );
        match tokio::time::timeout_at(deadline, client.propose(req)).await {
            Err(_) => Forwarded::Unknown(format!(
                "leader {leader} did not answer within {:?}",
                self.inner.timing.propose_timeout
            )),
            Ok(Ok(resp)) => match resp.into_inner().result {
                Some(R::Committed(c)) => Forwarded::Done(ProposeOutcome {
                    term: c.term,
                    index: c.index,
                    response: c.response,
                }),
                Some(R::NotLeader(_)) => Forwarded::NotDelivered,
                None => Forwarded::Unknown(format!("leader {leader} sent an empty answer")),
            },
            Ok(Err(status)) if is_connect_failure(&status) || is_refusal(&status) => {
                Forwarded::NotDelivered
            }
            Ok(Err(status)) if status.code() == tonic::Code::ResourceExhausted => {
                Forwarded::Refused(status.message().to_string())
            }
            Ok(Err(status)) => Forwarded::Unknown(format!("leader {leader}: {status}")),
        }
    }

    /// ZooKeeper `sync`: returns once this node has applied everything the leader had committed
    /// when the barrier was requested (the leader first confirms with a quorum that it still
    /// leads). Returns the index that was waited for (0 for an empty log).
    pub async fn read_barrier(&self) -> Result<u64, ReadBarrierError> {
        use pb::read_index_response::Result as R;
        let timeout = self.inner.timing.read_barrier_timeout;
        let deadline = Instant::now() + timeout;
        loop {
            if self.stopping() {
                return Err(ReadBarrierError::Shutdown);
            }
            let Some(leader) = self.leader_by(deadline).await else {
                return Err(ReadBarrierError::NoQuorum(timeout));
            };
            let read_index = if leader == self.inner.id {
                match self.inner.raft.get_read_log_id().await {
                    Ok((read, _)) => Some(read.map_or(0, |l| l.index)),
                    Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => {
                        self.leader_change(leader, deadline).await;
                        None
                    }
                    Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
                        tokio::time::sleep(self.inner.timing.heartbeat).await;
                        None
                    }
                    Err(RaftError::Fatal(f)) => {
                        return Err(if self.stopping() {
                            ReadBarrierError::Shutdown
                        } else {
                            ReadBarrierError::Fatal(f.to_string())
                        })
                    }
                }
            } else {
                let client = self
                    .addrs_of(leader)
                    .and_then(|a| self.inner.peers.peer_client(leader, &a).ok());
                let answer = match client {
                    Some(mut c) => {
                        let req = request_to(leader, pb::ReadIndexRequest {});
                        tokio::time::timeout_at(deadline, c.read_index(req))
                            .await
                            .ok()
                    }
                    None => None,
                };
                match answer {
                    Some(Ok(resp)) => match resp.into_inner().result {
                        Some(R::ReadIndex(r)) => Some(r.index.unwrap_or(0)),
                        _ => {
                            self.leader_change(leader, deadline).await;
                            None
                        }
                    },
                    Some(Err(_)) => {
                        // Unreachable leader or no quorum there: a read barrier is idempotent,
                        // so simply try again.
                        self.leader_change(leader, deadline).await;
                        None
                    }
                    None => None,
                }
            };
            if let Some(index) = read_index {
                let remaining = deadline.saturating_duration_since(Instant::now());
                return match self
                    .inner
                    .raft
                    .wait(Some(remaining))
                    .applied_index_at_least(Some(index), "read barrier")
                    .await
                {
                    Ok(_) => Ok(index),
                    Err(WaitError::Timeout(..)) => Err(ReadBarrierError::NoQuorum(timeout)),
                    Err(WaitError::ShuttingDown) => Err(ReadBarrierError::Shutdown),
                };
            }
            if Instant::now() >= deadline {
                return Err(ReadBarrierError::NoQuorum(timeout));
            }
        }
    }

    /// True when this node is the leader (as far as it knows).
    pub fn is_leader(&self) -> bool {
        self.metrics().borrow().state == ServerState::Leader
    }

    /// The current leader as far as this node knows.
    pub fn leader_id(&self) -> Option<NodeId> {
        self.metrics().borrow().current_leader
    }

    /// Waits up to `timeout` for a leader to be known.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<NodeId> {
        self.leader_by(Instant::now() + timeout).await
    }

    /// A snapshot of this node's Raft state.
    pub fn status(&self) -> RaftStatus {
        let m = self.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let role = match m.state {
            ServerState::Leader => Role::Leader,
            ServerState::Follower => Role::Follower,
            ServerState::Candidate => Role::Candidate,
            ServerState::Learner => Role::Observer,
            ServerState::Shutdown => Role::Shutdown,
        };
        RaftStatus {
            id: m.id,
            role,
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            last_applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            voters: membership.voter_ids().collect(),
            observers: membership.learner_ids().collect(),
            millis_since_quorum_ack: m.millis_since_quorum_ack,
            matched: m
                .replication
                .as_ref()
                .map(|r| {
                    r.iter()
                        .filter(|(id, _)| **id != m.id)
                        .map(|(id, l)| (*id, l.map(|l| l.index)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Builds a snapshot now (and compacts the log after it) instead of waiting for the policy.
    pub async fn trigger_snapshot(&self) -> Result<(), ProposeError> {
        self.inner
            .raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| ProposeError::Fatal(e.to_string()))
    }

    /// Stops the node: Raft first (no more heartbeats or votes), then the ports, then a final
    /// flush of the log. Idempotent.
    pub async fn shutdown(&self) {
        let mut done = self.inner.shutdown_lock.lock().await;
        if *done {
            return;
        }
        *done = true;
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(node = self.inner.id, error = %e, "raft core ended with an error");
        }
        let _ = self.inner.stop_tx.send(true);
        let servers = std::mem::take(&mut *lock(&self.inner.servers));
        for task in servers {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        let background = std::mem::take(&mut *lock(&self.inner.background));
        for task in background {
            task.abort();
            let _ = task.await;
        }
        let engine = lock(&self.inner.engine).take();
        if let Some(engine) = engine {
            let _ = tokio::task::spawn_blocking(move || engine.sync()).await;
        }
        tracing::info!(node = self.inner.id, "raft node stopped");
    }
}

impl Drop for Inner {
    // A node dropped without `shutdown` still closes its ports and stops its own tasks; the
    // openraft core stops when its last handle goes.
    fn drop(&mut self) {
        let _ = self.stop_tx.send(true);
        for task in lock(&self.servers)
            .iter()
            .chain(lock(&self.background).iter())
        {
            task.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A status a node sends when it refuses before doing anything (stopped, wrong target).
fn is_refusal(status: &Status) -> bool {
    status.code() == tonic::Code::FailedPrecondition
}

enum Forwarded {
    Done(ProposeOutcome),
    /// Certainly not appended on the leader: retry.
    NotDelivered,
    /// Refused by the leader before appending (see [`ProposeError::Refused`]).
    Refused(String),
    Unknown(String),
}

/// On whichever voter leads, adds the configured observers as learners. An observer is added
/// once: after it has been part of the membership, only `reconfig` adds or removes it.
async fn add_observers(ctx: Arc<ServiceCtx>, mut observers: BTreeMap<NodeId, PeerAddrs>) {
    let mut metrics = ctx.raft.metrics();
    let mut stopping = ctx.stopping.clone();
    loop {
        let missing: Vec<(NodeId, PeerAddrs)> = {
            let m = metrics.borrow_and_update();
            let membership = m.membership_config.membership();
            observers.retain(|id, _| membership.get_node(id).is_none());
            if observers.is_empty() {
                return;
            }
            if m.state == ServerState::Leader {
                observers.iter().map(|(id, a)| (*id, a.clone())).collect()
            } else {
                Vec::new()
            }
        };
        for (id, addrs) in missing {
            match ctx.raft.add_learner(id, addrs, false).await {
                Ok(_) => tracing::info!(node = ctx.id, observer = id, "added observer"),
                Err(e) => {
                    tracing::warn!(node = ctx.id, observer = id, error = %e, "could not add observer")
                }
            }
        }
        tokio::select! {
            _ = stopping.wait_for(|s| *s) => return,
            r = metrics.changed() => if r.is_err() { return },
        }
    }
}
