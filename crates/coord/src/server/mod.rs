//! The coordinator node: the ZooKeeper client port in front of the replicated state machine.
//!
//! ```text
//!  client port ──► conn.rs (one task per connection) ──reads──► Machine (local, RwLock)
//!                        │ writes, session create/close, sync
//!                        ▼
//!                 proposer task (proposer.rs): batches commands + session touches into one
//!                        │ log entry; on the leader, batches other nodes forwarded join it
//!                        │ RaftNode::propose (forwarded to the leader when this is a follower)
//!                        ▼
//!   every node:   App::apply ─► Machine::apply per command ─► watch triggers ─► local connections
//!                        │
//!                        └─► session liveness (ExpiryTracker); the leader proposes expiries
//! ```
//!
//! Log entries carry a [`Batch`]: the proposing node's wall-clock time, the commands and the ids
//! of sessions that node heard from since its previous batch. zxids are
//! `(term << 32) | counter`, the counter counting commands within a term, so every command
//! gets its own strictly increasing zxid on every replica.
//!
//! Locking: `machine` (RwLock) is always taken before `watches` (Mutex). `apply` holds the
//! machine's write lock while it fires watches, and reads register their watches under the read
//! lock, so no change can slip between a read and its watch, and a watch event is queued for a
//! connection before any read can observe the change.

mod conn;
pub(crate) mod expiry;
#[doc(hidden)]
pub mod fuzzing;
mod handlers;
mod metrics;
mod proposer;
mod reconfig;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sluice_config::{CoordConfig, FourLetterWords, MetricsEndpoint};
use sluice_jute::{ErrorCode, Id, KeeperState, Request, Response, WatcherEvent};
use sluice_metrics::summary::Summary;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::fourlw::{self, ConnectionInfo, LeaderInfo, Mode, ServerInfo};
use crate::machine::{Command, CommandResult, ConfigWrite, Machine};
use crate::raft::{Application, Listeners, RaftNode, RaftNodeConfig, SnapshotWriter, StartError};
use crate::sessions::Session;
use crate::watches::{Notification, WatchManager};
use expiry::ExpiryTracker;

/// How often the leader looks for expired sessions and empty containers.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(100);
/// How long the leader lets the membership and `/zookeeper/config` differ before it writes the
/// membership into the node (a `reconfig` does so itself right after its change).
const CONFIG_SETTLE: Duration = Duration::from_secs(2);
/// ZooKeeper's `znode.container.checkIntervalMs` default.
const REAP_EVERY: Duration = Duration::from_secs(60);
/// ZooKeeper's `znode.container.maxNeverUsedIntervalMs` default (0: never-used containers stay).
const REAP_NEVER_USED_MS: i64 = 0;
/// ZooKeeper's default `jute.maxbuffer`: a client frame above it closes the connection (a 3.8
/// server checks the frame length against `jute.maxbuffer` alone; its extra allowance applies
/// to lengths inside a frame). `jute.maxbuffer` in `zookeeper.properties` changes it.
pub const MAX_CLIENT_FRAME: usize = sluice_jute::DEFAULT_MAX_BUFFER;

/// What the client side of a node needs to know, taken from `zookeeper.properties`.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub node_id: u64,
    pub standalone: bool,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// Connections per client IP; 0 = unlimited.
    pub max_client_cnxns: u32,
    pub four_letter_words: FourLetterWords,
    pub ttl_enabled: bool,
    pub max_frame: usize,
    /// Lines for the `conf` four-letter word.
    pub conf: Vec<(String, String)>,
    /// Close client connections when no leader has been known for this long.
    pub leaderless_grace: Duration,
    /// `reconfigEnabled`.
    pub reconfig_enabled: bool,
    /// `skipACL=yes`: `reconfig` needs no WRITE permission on `/zookeeper/config`.
    pub skip_acl: bool,
    /// `DigestAuthenticationProvider.superDigest` (`user:hash`).
    pub super_digest: Option<String>,
    /// How long new members of a `reconfig` may take to catch up (`initLimit × tickTime`).
    pub reconfig_sync_timeout: Duration,
    /// `metricsProvider.*` with the Prometheus provider: `/metrics` is served there and `mntr`
    /// prints the metric samples, as ZooKeeper 3.8 does.
    pub metrics: Option<MetricsEndpoint>,
}

impl ServerSettings {
    pub fn from_config(cfg: &CoordConfig, node_id: u64) -> ServerSettings {
        let mut conf = vec![
            (
                "clientPort".to_string(),
                cfg.client_port_of(Some(node_id)).unwrap_or(0).to_string(),
            ),
            ("dataDir".into(), cfg.data_dir.display().to_string()),
            ("dataLogDir".into(), cfg.data_log_dir.display().to_string()),
            ("tickTime".into(), cfg.tick_time_ms.to_string()),
            ("maxClientCnxns".into(), cfg.max_client_cnxns.to_string()),
            (
                "minSessionTimeout".into(),
                cfg.min_session_timeout_ms.to_string(),
            ),
            (
                "maxSessionTimeout".into(),
                cfg.max_session_timeout_ms.to_string(),
            ),
            ("serverId".into(), node_id.to_string()),
        ];
        if !cfg.is_standalone() {
            conf.push(("initLimit".into(), cfg.init_limit.to_string()));
            conf.push(("syncLimit".into(), cfg.sync_limit.to_string()));
            if let Some(me) = cfg.servers.get(&node_id) {
                conf.push(("electionPort".into(), me.election_port.to_string()));
                conf.push(("quorumPort".into(), me.peer_port.to_string()));
            }
            for (k, v) in cfg.effective() {
                if k.starts_with("server.") {
                    conf.push((k, v));
                }
            }
        }
        let clamp = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
        ServerSettings {
            node_id,
            standalone: cfg.is_standalone(),
            min_session_timeout_ms: clamp(cfg.min_session_timeout_ms),
            max_session_timeout_ms: clamp(cfg.max_session_timeout_ms),
            max_client_cnxns: cfg.max_client_cnxns,
            four_letter_words: cfg.four_letter_words.clone(),
            ttl_enabled: cfg.extended_types_enabled,
            max_frame: cfg.jute_maxbuffer,
            conf,
            leaderless_grace: Duration::from_millis(
                u64::from(cfg.tick_time_ms) * u64::from(cfg.sync_limit.max(1)),
            ),
            reconfig_enabled: cfg.reconfig_enabled,
            skip_acl: cfg.skip_acl,
            super_digest: cfg.super_digest.clone(),
            reconfig_sync_timeout: Duration::from_millis(
                u64::from(cfg.tick_time_ms) * u64::from(cfg.init_limit.max(1)),
            ),
            metrics: cfg.metrics.clone(),
        }
    }
}

/// One log entry's worth of work, postcard-encoded as the entry's payload.
///
/// `null_data` came later than the other fields: an entry written before it ends after
/// `touches`, and [`Batch::decode`] reads it as one with no null data (null was stored as empty
/// then). Each pair names a command (its index) and a data field in it (see
/// [`Command::null_data`]); the commands themselves carry null as empty
/// ([`crate::tree::op_data`]).
///
/// `configs` came later still: a [`Command::SetConfig`] is written as a `Noop` in `commands`
/// and its content here, by index. A build from before decodes such an entry (postcard ignores
/// what follows the fields it knows) and applies the `Noop`, so a member not yet upgraded
/// keeps every other command of the entry; only its `/zookeeper/config` stays behind. In
/// memory `configs` is empty and the commands are whole.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Batch {
    time_ms: i64,
    commands: Vec<Command>,
    /// Sessions the proposing node heard from since its previous batch.
    touches: Vec<i64>,
    null_data: Vec<(u32, u32)>,
    configs: Vec<(u32, ConfigWrite)>,
}

/// [`Batch`] as entries were written before configuration writes were kept apart.
#[derive(Debug, Deserialize)]
struct BatchWithoutConfigs {
    time_ms: i64,
    commands: Vec<Command>,
    touches: Vec<i64>,
    null_data: Vec<(u32, u32)>,
}

/// [`Batch`] as entries were written before null data was kept apart.
#[derive(Debug, Deserialize)]
struct BatchWithoutNulls {
    time_ms: i64,
    commands: Vec<Command>,
    touches: Vec<i64>,
}

impl Batch {
    fn new(time_ms: i64, commands: Vec<Command>, touches: Vec<i64>) -> Batch {
        let null_data = commands
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.null_data().into_iter().map(move |f| (i as u32, f)))
            .collect();
        Batch {
            time_ms,
            commands,
            touches,
            null_data,
            configs: Vec::new(),
        }
    }

    fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        if !self
            .commands
            .iter()
            .any(|c| matches!(c, Command::SetConfig(_)))
        {
            return postcard::to_stdvec(self);
        }
        let mut configs = Vec::new();
        let commands = self
            .commands
            .iter()
            .enumerate()
            .map(|(i, c)| match c {
                Command::SetConfig(w) => {
                    configs.push((i as u32, w.clone()));
                    Command::Noop
                }
                other => other.clone(),
            })
            .collect();
        postcard::to_stdvec(&Batch {
            time_ms: self.time_ms,
            commands,
            touches: self.touches.clone(),
            null_data: self.null_data.clone(),
            configs,
        })
    }

    /// Decodes an entry of any layout and puts null data and configuration writes back into
    /// its commands. A mark naming no such command makes the entry undecodable, as any other
    /// damage would.
    pub(crate) fn decode(payload: &[u8]) -> Result<Batch, postcard::Error> {
        let mut batch = match postcard::from_bytes::<Batch>(payload) {
            Ok(b) => b,
            Err(postcard::Error::DeserializeUnexpectedEnd) => {
                match postcard::from_bytes::<BatchWithoutConfigs>(payload) {
                    Ok(old) => Batch {
                        time_ms: old.time_ms,
                        commands: old.commands,
                        touches: old.touches,
                        null_data: old.null_data,
                        configs: Vec::new(),
                    },
                    Err(postcard::Error::DeserializeUnexpectedEnd) => {
                        let old: BatchWithoutNulls = postcard::from_bytes(payload)?;
                        return Ok(Batch {
                            time_ms: old.time_ms,
                            commands: old.commands,
                            touches: old.touches,
                            null_data: Vec::new(),
                            configs: Vec::new(),
                        });
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        for &(i, field) in &batch.null_data {
            let marked = batch
                .commands
                .get_mut(i as usize)
                .is_some_and(|c| c.set_null_data(field));
            if !marked {
                return Err(postcard::Error::DeserializeBadEncoding);
            }
        }
        for (i, write) in std::mem::take(&mut batch.configs) {
            match batch.commands.get_mut(i as usize) {
                Some(c @ Command::Noop) => *c = Command::SetConfig(write),
                _ => return Err(postcard::Error::DeserializeBadEncoding),
            }
        }
        Ok(batch)
    }
}

/// A committed command's outcome, for the connection that sent it.
#[derive(Debug)]
pub(crate) struct Applied {
    pub zxid: i64,
    pub result: CommandResult,
}

/// The command did not reach a quorum in time, or the node is stopping.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProposeFailed;

struct Proposal {
    cmd: Command,
    reply: oneshot::Sender<Result<Applied, ProposeFailed>>,
}

/// Sent by `apply` (or housekeeping) to a connection.
#[derive(Debug)]
pub(crate) enum ConnEvent {
    Watch(WatcherEvent),
    /// The session was closed or expired, or the node stopped serving: close the connection.
    Close,
}

struct Attached {
    conn_id: u64,
    peer: SocketAddr,
    timeout_ms: i32,
    events: mpsc::UnboundedSender<ConnEvent>,
}

/// The client side's counters, as ZooKeeper's `ServerStats` and `ServerMetrics` keep them for
/// the four-letter words and the metrics endpoint.
#[derive(Debug)]
pub(crate) struct Stats {
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    /// Request latency in ms (min, max, sum, count), as ZooKeeper's ServerStats keeps it for
    /// `stat`, `srvr` and `mntr`; `srst` resets it with the packet counts.
    latency_min_ms: AtomicU64,
    latency_max_ms: AtomicU64,
    latency_sum_ms: AtomicU64,
    latency_count: AtomicU64,
    /// The same latencies by kind, as ZooKeeper splits them: requests that change the tree
    /// (a transaction in ZooKeeper: create, delete, setData, setACL, multi, reconfig, close)
    /// and every other one (reads, exists, sync, ping, ...).
    pub update_latency: Summary,
    pub read_latency: Summary,
    /// Client-port connections open now (a four-letter word's own included, as in ZooKeeper).
    pub alive_connections: AtomicU64,
    /// Session handshakes (ConnectRequests) received.
    pub connect_requests: AtomicU64,
    /// Connections closed at once for exceeding `maxClientCnxns`.
    pub connections_rejected: AtomicU64,
    /// Connections closed at once because the node was not serving (no quorum).
    pub closed_not_serving: AtomicU64,
    /// Requests read and not yet answered, over all connections.
    pub outstanding: AtomicU64,
    pub bytes_received: AtomicU64,
    /// `addauth` with a scheme coord does not have.
    pub auth_failed: AtomicU64,
    /// Sessions this node expired while leading.
    pub sessions_expired: AtomicU64,
    /// `sync` requests other members forwarded to this leader that are not yet answered.
    pub pending_syncs: AtomicU64,
    /// Size of replies (header and body, without the length prefix), -1 before the first.
    response_size_last: AtomicI64,
    response_size_min: AtomicI64,
    response_size_max: AtomicI64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            packets_received: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            latency_min_ms: AtomicU64::new(u64::MAX),
            latency_max_ms: AtomicU64::new(0),
            latency_sum_ms: AtomicU64::new(0),
            latency_count: AtomicU64::new(0),
            update_latency: Summary::new(),
            read_latency: Summary::new(),
            alive_connections: AtomicU64::new(0),
            connect_requests: AtomicU64::new(0),
            connections_rejected: AtomicU64::new(0),
            closed_not_serving: AtomicU64::new(0),
            outstanding: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            auth_failed: AtomicU64::new(0),
            sessions_expired: AtomicU64::new(0),
            pending_syncs: AtomicU64::new(0),
            response_size_last: AtomicI64::new(-1),
            response_size_min: AtomicI64::new(-1),
            response_size_max: AtomicI64::new(-1),
        }
    }
}

impl Stats {
    pub(crate) fn record_latency(&self, took: Duration, update: bool) {
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        self.latency_min_ms.fetch_min(ms, Ordering::Relaxed);
        self.latency_max_ms.fetch_max(ms, Ordering::Relaxed);
        self.latency_sum_ms.fetch_add(ms, Ordering::Relaxed);
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        if update {
            self.update_latency.observe(ms);
        } else {
            self.read_latency.observe(ms);
        }
    }

    pub(crate) fn record_response_size(&self, bytes: usize) {
        let b = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.response_size_last.store(b, Ordering::Relaxed);
        self.response_size_max.fetch_max(b, Ordering::Relaxed);
        let _ = self
            .response_size_min
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                (m < 0 || b < m).then_some(b)
            });
    }

    /// `(last, min, max)` reply size in bytes; -1 before the first reply.
    pub(crate) fn response_sizes(&self) -> (i64, i64, i64) {
        (
            self.response_size_last.load(Ordering::Relaxed),
            self.response_size_min.load(Ordering::Relaxed),
            self.response_size_max.load(Ordering::Relaxed),
        )
    }

    /// (min, avg, max) in ms; zeros before the first request, as ZooKeeper reports them.
    fn latency(&self) -> (u64, f64, u64) {
        let count = self.latency_count.load(Ordering::Relaxed);
        if count == 0 {
            return (0, 0.0, 0);
        }
        let sum = self.latency_sum_ms.load(Ordering::Relaxed);
        (
            self.latency_min_ms.load(Ordering::Relaxed),
            sum as f64 / count as f64,
            self.latency_max_ms.load(Ordering::Relaxed),
        )
    }

    /// `srst`: latency and packet counts start again.
    pub(crate) fn reset(&self) {
        self.packets_received.store(0, Ordering::Relaxed);
        self.packets_sent.store(0, Ordering::Relaxed);
        self.latency_min_ms.store(u64::MAX, Ordering::Relaxed);
        self.latency_max_ms.store(0, Ordering::Relaxed);
        self.latency_sum_ms.store(0, Ordering::Relaxed);
        self.latency_count.store(0, Ordering::Relaxed);
    }
}

/// State shared by the connections, the proposer, housekeeping and the Raft application.
pub(crate) struct Core {
    pub settings: ServerSettings,
    machine: RwLock<Machine>,
    watches: Mutex<WatchManager>,
    attached: Mutex<HashMap<i64, Attached>>,
    touched: Mutex<HashSet<i64>>,
    expiry: Mutex<ExpiryTracker>,
    proposals: mpsc::UnboundedSender<Proposal>,
    /// Highest log index applied through `App::apply`.
    applied: watch::Sender<u64>,
    raft: OnceLock<RaftNode>,
    pub stats: Stats,
    conn_ids: AtomicU64,
    per_ip: Mutex<HashMap<std::net::IpAddr, u32>>,
    started: Instant,
    stopping: AtomicBool,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("node_id", &self.settings.node_id)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The zxid of the next command of `term`, after `last`.
fn next_zxid(last: i64, term: u64) -> i64 {
    let epoch = (term & 0xffff_ffff) as i64;
    if last >> 32 == epoch {
        last + 1
    } else {
        (epoch << 32) | 1
    }
}

impl Core {
    fn raft(&self) -> Option<&RaftNode> {
        self.raft.get()
    }

    pub fn is_serving(&self) -> bool {
        !self.stopping.load(Ordering::Relaxed)
            && (self.settings.standalone
                || self
                    .raft()
                    .is_some_and(|r| r.leader_id().is_some() && r.is_member()))
    }

    pub fn last_zxid(&self) -> i64 {
        self.machine
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .last_zxid()
    }

    pub fn next_conn_id(&self) -> u64 {
        self.conn_ids.fetch_add(1, Ordering::Relaxed)
    }

    pub fn session(&self, id: i64) -> Option<Session> {
        self.machine
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .sessions()
            .get(id)
            .copied()
    }

    /// Queues `cmd` for the next log entry.
    pub fn submit(&self, cmd: Command) -> oneshot::Receiver<Result<Applied, ProposeFailed>> {
        let (reply, rx) = oneshot::channel();
        // A closed channel drops `reply`, which the caller sees as a failure.
        let _ = self.proposals.send(Proposal { cmd, reply });
        rx
    }

    pub fn touch(&self, session: i64) {
        lock(&self.touched).insert(session);
    }

    pub fn attach(
        &self,
        session: i64,
        conn_id: u64,
        peer: SocketAddr,
        timeout_ms: i32,
        events: mpsc::UnboundedSender<ConnEvent>,
    ) {
        let old = lock(&self.attached).insert(
            session,
            Attached {
                conn_id,
                peer,
                timeout_ms,
                events,
            },
        );
        // A client that reconnects here while its old connection lingers: the old one goes.
        if let Some(old) = old {
            let _ = old.events.send(ConnEvent::Close);
        }
    }

    pub fn detach(&self, session: i64, conn_id: u64) {
        let mut attached = lock(&self.attached);
        if attached.get(&session).is_some_and(|a| a.conn_id == conn_id) {
            attached.remove(&session);
        }
    }

    pub fn set_watch_auth(&self, session: i64, ids: Vec<Id>) {
        lock(&self.watches).set_auth(session, ids);
    }

    /// Serves a local request under the machine's read lock. Returns the zxid to put in the
    /// reply header, the reply and the notifications a setWatches found missed.
    pub fn local(
        &self,
        req: &Request,
        session: i64,
        auth: &[Id],
    ) -> (i64, ErrorCode, Response, Vec<Notification>) {
        let machine = self.machine.read().unwrap_or_else(|e| e.into_inner());
        let mut watches = lock(&self.watches);
        let (err, body, missed) = handlers::local(req, session, auth, &machine, &mut watches);
        (machine.last_zxid(), err, body, missed)
    }

    fn deliver(&self, notes: Vec<Notification>) {
        if notes.is_empty() {
            return;
        }
        let attached = lock(&self.attached);
        for (session, event_type, path) in notes {
            if let Some(a) = attached.get(&session) {
                let _ = a.events.send(ConnEvent::Watch(WatcherEvent {
                    event_type,
                    state: KeeperState::SyncConnected,
                    path,
                }));
            }
        }
    }

    fn close_attached(&self, session: i64) {
        if let Some(a) = lock(&self.attached).remove(&session) {
            let _ = a.events.send(ConnEvent::Close);
        }
    }

    /// The answer to four-letter word `word` (with the Prometheus provider, `mntr` carries
    /// the metric families `/metrics` serves).
    pub fn four_letter_word(&self, word: &str) -> String {
        let mut info = self.server_info();
        if word == "mntr" && self.settings.metrics.is_some() {
            info.metrics = Some(self.metric_families());
        }
        fourlw::respond(word, &self.settings.four_letter_words, &info)
    }

    /// Counters for the four-letter words.
    pub fn server_info(&self) -> ServerInfo {
        let (mode, status) = self.mode();
        let leader = match (mode, status, self.raft()) {
            (Mode::Leader, Some(s), Some(raft)) => {
                let counts =
                    raft.stats()
                        .followers(s.id, &s.voters, &s.observers, raft.follower_window());
                Some(LeaderInfo {
                    learners: counts.answering,
                    synced_followers: counts.synced_voters,
                    synced_observers: counts.synced_observers,
                    pending_syncs: self.stats.pending_syncs.load(Ordering::Relaxed),
                })
            }
            _ => None,
        };
        let machine = self.machine.read().unwrap_or_else(|e| e.into_inner());
        let tree = machine.tree();
        let watch_count = lock(&self.watches).watch_count() as u64;
        let connections: Vec<ConnectionInfo> = lock(&self.attached)
            .iter()
            .map(|(sid, a)| ConnectionInfo {
                remote: a.peer.to_string(),
                queued: 0,
                received: 0,
                sent: 0,
                session_id: Some(*sid),
                timeout_ms: u32::try_from(a.timeout_ms).ok(),
                last_zxid: None,
            })
            .collect();
        let watching = lock(&self.attached).len() as u64;
        let (latency_min_ms, latency_avg_ms, latency_max_ms) = self.stats.latency();
        ServerInfo {
            mode,
            server_id: Some(self.settings.node_id),
            latency_min_ms,
            latency_avg_ms,
            latency_max_ms,
            packets_received: self.stats.packets_received.load(Ordering::Relaxed),
            packets_sent: self.stats.packets_sent.load(Ordering::Relaxed),
            connections,
            outstanding_requests: self.stats.outstanding.load(Ordering::Relaxed),
            last_zxid: machine.last_zxid(),
            node_count: tree.zookeeper_node_count() as u64,
            watch_count,
            watched_paths: watch_count,
            watching_connections: if watch_count > 0 { watching } else { 0 },
            ephemerals_count: tree.ephemeral_count() as u64,
            approximate_data_size: tree.approximate_data_size(),
            global_sessions: machine.sessions().len() as u64,
            uptime_ms: self.started.elapsed().as_millis() as u64,
            leader,
            metrics: None,
            read_only: false,
            // The `server.N` lines of the file give way to the membership, as in ZooKeeper.
            conf: self
                .settings
                .conf
                .iter()
                .filter(|(k, _)| self.settings.standalone || !k.starts_with("server."))
                .cloned()
                .collect(),
            membership: (!self.settings.standalone)
                .then(|| String::from_utf8_lossy(tree.config_data()).into_owned())
                .filter(|m| !m.is_empty()),
            open_fds: metrics::open_fds(),
            max_fds: metrics::max_fds(),
        }
    }

    /// Applies one committed log entry (see [`Batch`]) and returns the encoded results.
    fn apply_batch(&self, term: u64, index: u64, payload: &[u8]) -> Vec<u8> {
        let batch = match Batch::decode(payload) {
            Ok(b) => b,
            Err(e) => {
                // Every node rejects the same bytes the same way, so state stays identical.
                tracing::error!(index, error = %e, "undecodable log entry skipped");
                return Vec::new();
            }
        };
        let now = Instant::now();
        let mut results: Vec<(i64, CommandResult)> = Vec::with_capacity(batch.commands.len());
        let mut machine = self.machine.write().unwrap_or_else(|e| e.into_inner());
        {
            let mut expiry = lock(&self.expiry);
            for s in &batch.touches {
                expiry.touch(*s, now);
            }
        }
        for cmd in &batch.commands {
            let zxid = next_zxid(machine.last_zxid(), term);
            let (result, triggers) = machine.apply(zxid, batch.time_ms, zxid as u64, cmd);
            match (cmd, &result) {
                (
                    Command::CreateSession { .. },
                    CommandResult::SessionCreated {
                        session_id,
                        timeout_ms,
                        ..
                    },
                ) => {
                    lock(&self.expiry).add(*session_id, *timeout_ms, now);
                }
                (Command::CloseSession { session_id }, _) => {
                    lock(&self.expiry).remove(*session_id);
                    lock(&self.watches).remove_session(*session_id);
                }
                _ => {}
            }
            if !triggers.is_empty() {
                let notes = lock(&self.watches).trigger(&triggers);
                self.deliver(notes);
            }
            if let Command::CloseSession { session_id } = cmd {
                self.close_attached(*session_id);
            }
            results.push((zxid, result));
        }
        drop(machine);
        self.applied.send_if_modified(|i| {
            let newer = index > *i;
            if newer {
                *i = index;
            }
            newer
        });
        postcard::to_stdvec(&results).unwrap_or_default()
    }
}

/// The Raft layer's view of a [`Core`].
struct App(Arc<Core>);

impl Application for App {
    fn apply(&self, term: u64, index: u64, payload: &[u8]) -> Vec<u8> {
        self.0.apply_batch(term, index, payload)
    }

    fn snapshot(&self) -> SnapshotWriter {
        let frozen = self
            .0
            .machine
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .freeze();
        Box::new(move || frozen.encode())
    }

    fn restore(&self, data: &[u8]) -> Result<(), String> {
        let restored = Machine::restore(data).map_err(|e| e.to_string())?;
        let sessions: Vec<(i64, i32)> = restored
            .sessions()
            .iter()
            .map(|(id, s)| (id, s.timeout_ms))
            .collect();
        *self.0.machine.write().unwrap_or_else(|e| e.into_inner()) = restored;
        lock(&self.0.expiry).reset(sessions, Instant::now());
        Ok(())
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("App")
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen for clients on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serve metrics on {addr} (metricsProvider.httpHost and httpPort): {source}")]
    MetricsBind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Raft(#[from] StartError),
    #[error("{0}")]
    Config(String),
}

/// A running coordinator node.
#[derive(Debug)]
pub struct CoordServer {
    core: Arc<Core>,
    raft: RaftNode,
    client_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl CoordServer {
    /// Starts the node that `cfg` and `myid` describe, binding `clientPortAddress:clientPort`
    /// and the Raft ports of its `server.N` line.
    pub async fn start(cfg: &CoordConfig, myid: Option<u64>) -> Result<CoordServer, ServerError> {
        let node_id = myid.unwrap_or(1);
        let port = cfg
            .client_port_of(myid)
            .ok_or_else(|| ServerError::Config("no clientPort for this node".into()))?;
        let host = cfg
            .client_port_address
            .clone()
            .unwrap_or_else(|| "0.0.0.0".into());
        let addr = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let listener = std::net::TcpListener::bind(&addr)
            .map_err(|source| ServerError::Bind { addr, source })?;
        // Bound before anything starts, so that a taken port stops the node at once (ZooKeeper
        // exits when its provider cannot start its endpoint).
        let metrics = match &cfg.metrics {
            Some(m) => {
                let addr = if m.http_host.contains(':') {
                    format!("[{}]:{}", m.http_host, m.http_port)
                } else {
                    format!("{}:{}", m.http_host, m.http_port)
                };
                Some(
                    std::net::TcpListener::bind(&addr)
                        .map_err(|source| ServerError::MetricsBind { addr, source })?,
                )
            }
            None => None,
        };
        let mut raft_cfg = RaftNodeConfig::from_coord_config(cfg, node_id);
        if let Some(n) = cfg.snap_count {
            raft_cfg.log.snapshot_every = n;
        }
        let mut server = Self::start_with(
            ServerSettings::from_config(cfg, node_id),
            raft_cfg,
            listener,
            None,
        )
        .await?;
        if let Some(listener) = metrics {
            server.serve_metrics(listener)?;
        }
        Ok(server)
    }

    /// Serves `GET /metrics` on `listener` (bound by the caller; tests use port 0) until the
    /// node stops.
    pub fn serve_metrics(
        &mut self,
        listener: std::net::TcpListener,
    ) -> Result<SocketAddr, ServerError> {
        let addr = listener
            .local_addr()
            .map_err(|source| ServerError::MetricsBind {
                addr: "metrics listener".into(),
                source,
            })?;
        let bind_err = |source| ServerError::MetricsBind {
            addr: addr.to_string(),
            source,
        };
        listener.set_nonblocking(true).map_err(bind_err)?;
        let listener = TcpListener::from_std(listener).map_err(bind_err)?;
        self.tasks.push(tokio::spawn(metrics::serve(
            self.core.clone(),
            listener,
            self.stop.subscribe(),
        )));
        self.metrics_addr = Some(addr);
        tracing::info!(node = self.core.settings.node_id, %addr, "serving metrics on /metrics");
        Ok(addr)
    }

    /// Where `/metrics` is served, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The Prometheus text `/metrics` would answer now.
    pub fn metrics_text(&self) -> String {
        crate::metrics::prometheus_text(&self.core.metric_families())
    }

    /// Starts a node on listeners the caller bound (tests use port 0).
    pub async fn start_with(
        settings: ServerSettings,
        raft_cfg: RaftNodeConfig,
        client: std::net::TcpListener,
        raft_listeners: Option<Listeners>,
    ) -> Result<CoordServer, ServerError> {
        let (proposals, proposals_rx) = mpsc::unbounded_channel();
        let (applied, _) = watch::channel(0u64);
        let core = Arc::new(Core {
            settings,
            machine: RwLock::new(Machine::new()),
            watches: Mutex::new(WatchManager::new()),
            attached: Mutex::new(HashMap::new()),
            touched: Mutex::new(HashSet::new()),
            expiry: Mutex::new(ExpiryTracker::default()),
            proposals,
            applied,
            raft: OnceLock::new(),
            stats: Stats::default(),
            conn_ids: AtomicU64::new(1),
            per_ip: Mutex::new(HashMap::new()),
            started: Instant::now(),
            stopping: AtomicBool::new(false),
        });
        let raft =
            RaftNode::start_with_listeners(raft_cfg, Arc::new(App(core.clone())), raft_listeners)
                .await?;
        let _ = core.raft.set(raft.clone());
        let forwarded = raft
            .forwarded_proposals()
            .expect("a new raft node has handed out no forwarded proposals");

        client
            .set_nonblocking(true)
            .map_err(|source| ServerError::Bind {
                addr: format!("{:?}", client.local_addr()),
                source,
            })?;
        let client_addr = client.local_addr().map_err(|source| ServerError::Bind {
            addr: "client listener".into(),
            source,
        })?;
        let listener = TcpListener::from_std(client).map_err(|source| ServerError::Bind {
            addr: client_addr.to_string(),
            source,
        })?;
        let (stop, stop_rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(proposer::run(
                core.clone(),
                raft.clone(),
                proposals_rx,
                forwarded,
                stop_rx.clone(),
            )),
            tokio::spawn(housekeeping(core.clone(), raft.clone(), stop_rx.clone())),
            tokio::spawn(accept_loop(core.clone(), listener, stop_rx)),
        ];
        tracing::info!(node = core.settings.node_id, %client_addr, "serving ZooKeeper clients");
        Ok(CoordServer {
            core,
            raft,
            client_addr,
            metrics_addr: None,
            tasks,
            stop,
        })
    }

    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    pub fn raft(&self) -> &RaftNode {
        &self.raft
    }

    /// The four-letter-word counters, e.g. to see whether this node leads.
    pub fn info(&self) -> ServerInfo {
        self.core.server_info()
    }

    /// Stops accepting clients, closes connections and stops Raft (flushing its storage).
    pub async fn shutdown(self) {
        self.core.stopping.store(true, Ordering::Relaxed);
        let _ = self.stop.send(true);
        let sessions: Vec<i64> = lock(&self.core.attached).keys().copied().collect();
        for s in sessions {
            self.core.close_attached(s);
        }
        for t in &self.tasks {
            t.abort();
        }
        self.raft.shutdown().await;
    }
}

async fn accept_loop(core: Arc<Core>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let max = core.settings.max_client_cnxns;
        {
            let mut per_ip = lock(&core.per_ip);
            let n = per_ip.entry(peer.ip()).or_default();
            if max > 0 && *n >= max {
                tracing::warn!(%peer, "too many connections from {} - max is {max}", peer.ip());
                core.stats
                    .connections_rejected
                    .fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            }
            *n += 1;
        }
        let core = core.clone();
        core.stats.alive_connections.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            conn::serve(core.clone(), stream, peer).await;
            core.stats.alive_connections.fetch_sub(1, Ordering::Relaxed);
            let mut per_ip = lock(&core.per_ip);
            if let Some(n) = per_ip.get_mut(&peer.ip()) {
                *n -= 1;
                if *n == 0 {
                    per_ip.remove(&peer.ip());
                }
            }
        });
    }
}

/// Leader duties (expiring sessions, reaping containers and TTL nodes) and, on every node,
/// closing client connections when no leader has been known for too long.
async fn housekeeping(core: Arc<Core>, raft: RaftNode, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_leader = false;
    let mut last_reap = Instant::now();
    let mut leaderless_since: Option<Instant> = None;
    // A write of /zookeeper/config this leader is waiting for, and since when the membership
    // and the node have differed (a reconfig writes the node itself right after its change;
    // only a difference that lasts is this loop's to fix).
    let mut reconciling: Option<oneshot::Receiver<Result<Applied, ProposeFailed>>> = None;
    let mut config_differs_since: Option<Instant> = None;
    let mut was_member = true;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let leader = raft.is_leader();
        if leader && !was_leader {
            // A new leader gives every session a full timeout, as ZooKeeper does.
            let sessions: Vec<(i64, i32)> = core
                .machine
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .sessions()
                .iter()
                .map(|(id, s)| (id, s.timeout_ms))
                .collect();
            lock(&core.expiry).reset(sessions, now);
            tracing::info!(node = core.settings.node_id, "leading the ensemble");
        }
        was_leader = leader;
        if leader {
            let expired = lock(&core.expiry).take_expired(now);
            for session_id in expired {
                tracing::info!(
                    session = format_args!("0x{session_id:x}"),
                    "session expired"
                );
                core.stats.sessions_expired.fetch_add(1, Ordering::Relaxed);
                let rx = core.submit(Command::CloseSession { session_id });
                let core2 = core.clone();
                tokio::spawn(async move {
                    if !matches!(rx.await, Ok(Ok(_))) {
                        lock(&core2.expiry).retry(session_id);
                    }
                });
            }
            if reconciling.as_mut().is_some_and(|rx| {
                !matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty))
            }) {
                reconciling = None;
            }
            if raft.change_in_progress() {
                // Learners being added show up as observers until the change ends.
                config_differs_since = None;
            } else if !core.settings.standalone && reconciling.is_none() {
                let differs = reconfig::membership_lines(&raft)
                    .is_some_and(|lines| lines != reconfig_tree_lines(&core));
                if !differs {
                    config_differs_since = None;
                } else {
                    let since = *config_differs_since.get_or_insert(now);
                    let fresh = core
                        .machine
                        .read()
                        .unwrap_or_else(|e| e.into_inner())
                        .tree()
                        .config_data()
                        .is_empty();
                    if fresh || now.duration_since(since) >= CONFIG_SETTLE {
                        reconciling = reconfig::reconcile(&core, &raft);
                        config_differs_since = None;
                    }
                }
            }
            if now.duration_since(last_reap) >= REAP_EVERY {
                last_reap = now;
                let paths = core
                    .machine
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .tree()
                    .reap_candidates(now_ms(), REAP_NEVER_USED_MS);
                if !paths.is_empty() {
                    drop(core.submit(Command::ReapNodes { paths }));
                }
            }
        }
        let member = core.settings.standalone || raft.is_member();
        if member != was_member {
            if member {
                tracing::info!(
                    node = core.settings.node_id,
                    "part of the ensemble's membership: serving clients"
                );
            } else {
                tracing::warn!(node = core.settings.node_id, "not part of the ensemble's membership (removed by reconfig, or not added yet): not serving clients");
            }
            was_member = member;
        }
        if !member {
            let sessions: Vec<i64> = lock(&core.attached).keys().copied().collect();
            for s in sessions {
                core.close_attached(s);
            }
        } else if core.settings.standalone || raft.leader_id().is_some() {
            leaderless_since = None;
        } else {
            let since = *leaderless_since.get_or_insert(now);
            if now.duration_since(since) >= core.settings.leaderless_grace {
                let sessions: Vec<i64> = lock(&core.attached).keys().copied().collect();
                if !sessions.is_empty() {
                    tracing::warn!(
                        count = sessions.len(),
                        "no leader: closing client connections"
                    );
                }
                for s in sessions {
                    core.close_attached(s);
                }
            }
        }
    }
}

/// The `server.N` lines `/zookeeper/config` holds now.
fn reconfig_tree_lines(core: &Core) -> String {
    let machine = core.machine.read().unwrap_or_else(|e| e.into_inner());
    reconfig_tree_lines_of(machine.tree())
}

fn reconfig_tree_lines_of(tree: &crate::tree::Tree) -> String {
    String::from_utf8_lossy(tree.config_data())
        .lines()
        .filter(|l| !l.starts_with("version="))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Formats the four-letter-word answer for `word` on a running server (used by tests).
pub fn four_letter_word(server: &CoordServer, word: &str) -> String {
    server.core.four_letter_word(word)
}

#[cfg(test)]
mod batch_tests {
    use super::*;
    use crate::machine::WriteOp;
    use crate::tree::{CreateOp, Op};
    use sluice_jute::CreateMode;

    fn write(op: WriteOp) -> Command {
        Command::Write {
            session_id: 7,
            auth: Vec::new(),
            op,
        }
    }

    fn null_create(path: &str) -> CreateOp {
        let mut c = CreateOp::new(path, Vec::new(), CreateMode::Persistent);
        c.data = None;
        c
    }

    /// Null data survives a log entry: in a single create, in a setData and inside a multi,
    /// beside empty data that stays empty.
    #[test]
    fn null_data_round_trips_through_a_log_entry() {
        let commands = vec![
            write(WriteOp::Create(null_create("/a"))),
            write(WriteOp::Create(CreateOp::new(
                "/b",
                Vec::new(),
                CreateMode::Persistent,
            ))),
            write(WriteOp::SetData {
                path: "/b".into(),
                data: None,
                version: -1,
            }),
            write(WriteOp::Multi(vec![
                Op::Check {
                    path: "/a".into(),
                    version: 0,
                },
                Op::Create(null_create("/c")),
                Op::SetData {
                    path: "/a".into(),
                    data: Some(b"x".to_vec()),
                    version: -1,
                },
            ])),
        ];
        let batch = Batch::new(5, commands.clone(), vec![1]);
        assert_eq!(batch.null_data, [(0, 0), (2, 0), (3, 1)]);
        let back = Batch::decode(&batch.encode().unwrap()).unwrap();
        assert_eq!(back.commands, commands);
        assert_eq!(back.touches, [1]);
    }

    /// A configuration write travels apart from the commands: it round-trips, a build that
    /// predates it (the previous layout, which ignores the trailing list) reads a `Noop` in its
    /// place and every other command intact, and entries of the previous layout still decode.
    #[test]
    fn configuration_writes_leave_older_decoders_the_other_commands() {
        use crate::machine::ConfigWrite;
        #[derive(Debug, Deserialize)]
        struct Previous {
            time_ms: i64,
            commands: Vec<Command>,
            touches: Vec<i64>,
            null_data: Vec<(u32, u32)>,
        }
        let set = Command::SetConfig(ConfigWrite {
            servers: "server.1=h:1:2:participant\n".into(),
            static_version: false,
            always: true,
        });
        let commands = vec![
            write(WriteOp::Create(CreateOp::new(
                "/a",
                b"x".to_vec(),
                CreateMode::Persistent,
            ))),
            set.clone(),
            write(WriteOp::Delete {
                path: "/a".into(),
                version: -1,
            }),
        ];
        let bytes = Batch::new(3, commands.clone(), vec![7]).encode().unwrap();
        let back = Batch::decode(&bytes).unwrap();
        assert_eq!(back.commands, commands);
        assert!(back.configs.is_empty());

        let old: Previous = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(old.commands[0], commands[0]);
        assert_eq!(old.commands[1], Command::Noop);
        assert_eq!(old.commands[2], commands[2]);
        assert_eq!(
            (old.time_ms, old.touches, old.null_data),
            (3, vec![7], vec![])
        );

        #[derive(Serialize)]
        struct PreviousOut {
            time_ms: i64,
            commands: Vec<Command>,
            touches: Vec<i64>,
            null_data: Vec<(u32, u32)>,
        }
        let previous = postcard::to_stdvec(&PreviousOut {
            time_ms: 4,
            commands: vec![write(WriteOp::Create(null_create("/b")))],
            touches: vec![],
            null_data: vec![(0, 0)],
        })
        .unwrap();
        let back = Batch::decode(&previous).unwrap();
        assert_eq!(
            back.commands,
            vec![write(WriteOp::Create(null_create("/b")))]
        );

        // A configuration mark on a command that is not a Noop is damage.
        let mut bad = Batch::new(
            1,
            vec![write(WriteOp::Delete {
                path: "/x".into(),
                version: -1,
            })],
            vec![],
        );
        bad.configs.push((
            0,
            ConfigWrite {
                servers: String::new(),
                static_version: true,
                always: false,
            },
        ));
        assert!(Batch::decode(&postcard::to_stdvec(&bad).unwrap()).is_err());
    }

    /// An entry written before null data was kept apart (no null list) still decodes, its
    /// empty data as empty.
    #[test]
    fn entries_without_a_null_list_still_decode() {
        #[derive(Serialize)]
        struct Old {
            time_ms: i64,
            commands: Vec<Command>,
            touches: Vec<i64>,
        }
        let commands = vec![write(WriteOp::Create(CreateOp::new(
            "/a",
            Vec::new(),
            CreateMode::Persistent,
        )))];
        let old = postcard::to_stdvec(&Old {
            time_ms: 9,
            commands: commands.clone(),
            touches: vec![3],
        })
        .unwrap();
        let back = Batch::decode(&old).unwrap();
        assert_eq!(back.commands, commands);
        assert_eq!((back.time_ms, back.touches), (9, vec![3]));
        // A null mark naming no data field is damage.
        let mut bad = Batch::new(1, commands, Vec::new());
        bad.null_data.push((0, 4));
        assert!(Batch::decode(&bad.encode().unwrap()).is_err());
    }
}
