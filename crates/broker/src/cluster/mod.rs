//! The broker's view of the cluster, kept in the coordinator (`zookeeper.connect`).
//!
//! ```text
//!  coord ──persistent recursive watch on /brokers──► Cluster::watch_loop ── new snapshot
//!    ▲                                                       │ 1. reconciler: partition roles
//!    │                                                       │ 2. published: Metadata (RwLock)
//!    │ register /brokers/ids/<id> (ephemeral)                ▼    + version bump (tokio watch)
//!    │ CreateTopics → /config/topics, /brokers/topics   Metadata API, controller, handlers
//!    └── controller (one broker, ephemeral /controller): partition states, leaders, deletions
//! ```
//!
//! Roles are applied before a snapshot is published, so a broker never names itself leader
//! of a partition it does not lead yet (Kafka gets the same order from LeaderAndIsr before
//! UpdateMetadata).
//!
//! Every broker builds its metadata from the coordinator's znodes (Kafka's layout, see
//! [`znodes`]); the controller is the only writer of partition state. This replaces Kafka 1.x's
//! controller-to-broker UpdateMetadata/LeaderAndIsr requests with watches (decision 0006).

pub mod client_quotas;
pub mod controller;
pub mod liveness;
pub mod znodes;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_config::{BrokerConfig, ZkConnect};
use tokio::sync::watch;
use zookeeper_client as zk;

use znodes::{
    BrokerRegistration, ClusterId, PartitionState, TopicAssignment, TopicConfig, BROKER_IDS, TOPICS,
};

/// Why talking to the coordinator failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach the coordinator at {connect}: {source}")]
    Connect {
        connect: String,
        #[source]
        source: zk::Error,
    },
    #[error("broker.id {0} is already registered by another live broker (/brokers/ids/{0} exists); give each broker a unique broker.id")]
    DuplicateBrokerId(i32),
    #[error("coordinator: {0}")]
    Zk(#[from] zk::Error),
    #[error("malformed znode {path}: {reason}")]
    Malformed { path: String, reason: String },
    #[error("this broker's controller epoch was superseded")]
    Deposed,
}

pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

/// A topic as the metadata cache holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicMeta {
    pub id: uuid::Uuid,
    /// Version of `/brokers/topics/<t>` (the assignment) as read.
    pub assignment_version: i32,
    pub partitions: BTreeMap<i32, PartitionMeta>,
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PartitionMeta {
    pub replicas: Vec<i32>,
    /// `None` until the controller has written the partition's state.
    pub state: Option<PartitionState>,
    /// Version of the state znode as read (compare-and-set writes name it).
    pub state_version: i32,
    /// An ongoing reassignment: replicas being added, and being removed.
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl PartitionMeta {
    pub fn leader(&self) -> Option<i32> {
        self.state.as_ref().map(|s| s.leader).filter(|l| *l >= 0)
    }
}

/// The cluster as last read from the coordinator.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    pub cluster_id: String,
    pub controller: Option<i32>,
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// Each live broker's epoch: the creation zxid of its registration, so a broker that
    /// restarted between two reads is seen as a different incarnation.
    pub broker_epochs: BTreeMap<i32, i64>,
    pub topics: BTreeMap<String, TopicMeta>,
}

/// The function that applies a metadata snapshot to this broker's partitions (blocking: it may
/// open logs).
pub type Reconciler = Arc<dyn Fn(&Metadata) + Send + Sync>;

/// Handle to the coordinator session and the metadata cache.
pub struct Cluster {
    /// The coordinator session; replaced by [`Cluster::rejoin`] when it expires.
    client: RwLock<zk::Client>,
    /// Bumped every time the session is replaced (tasks tied to the old one start over).
    session: watch::Sender<u64>,
    pub broker_id: i32,
    /// How to connect and what to register again after a session expiry.
    join: JoinParams,
    metadata: RwLock<Arc<Metadata>>,
    changed: watch::Sender<u64>,
    /// Turns a new metadata snapshot into partition roles before the snapshot is published
    /// (see [`Cluster::set_reconciler`]).
    reconciler: std::sync::OnceLock<Reconciler>,
    /// Brokers that asked this broker, as controller, to move their leaderships away before
    /// they stop (controlled shutdown).
    /// (broker id → the registration, as its czxid, that asked; a restarted broker is not
    /// draining even if its old registration's end was never seen).
    draining: std::sync::Mutex<BTreeMap<i32, i64>>,
    drain_changed: watch::Sender<u64>,
    /// Requests for the controller task (elections, reassignments), from the API handlers.
    requests: tokio::sync::mpsc::UnboundedSender<ControllerRequest>,
    pub(crate) request_queue:
        tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<ControllerRequest>>,
    /// This broker is the active controller (holds `/controller` and acts on it).
    pub(crate) active_controller: std::sync::atomic::AtomicBool,
}

/// What the API handlers ask the controller task to do.
#[derive(Debug)]
pub enum ControllerRequest {
    Elect(ElectionRequest),
    Reassign(ReassignRequest),
}

/// AlterPartitionReassignments: per partition, the target replicas, or `None` to cancel.
#[derive(Debug)]
pub struct ReassignRequest {
    pub partitions: Vec<(String, i32, Option<Vec<i32>>)>,
    pub reply: tokio::sync::oneshot::Sender<Vec<((String, i32), ReassignOutcome)>>,
}

/// What a reassignment request did for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReassignOutcome {
    Started,
    Cancelled,
    NoneInProgress,
    UnknownPartition,
    Invalid(String),
}

/// Which leader an election picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionKind {
    /// The first replica of the assignment, if it is alive and in sync.
    Preferred,
    /// Any live replica when no in-sync one is (may lose acknowledged records).
    Unclean,
}

/// What an election did for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionOutcome {
    Elected,
    NotNeeded,
    /// No eligible replica (the preferred one is down or out of sync; nothing live).
    NotAvailable,
    UnknownPartition,
}

/// A request to the controller; `partitions: None` means all.
#[derive(Debug)]
pub struct ElectionRequest {
    pub kind: ElectionKind,
    pub partitions: Option<Vec<(String, i32)>>,
    pub reply: tokio::sync::oneshot::Sender<Vec<((String, i32), ElectionOutcome)>>,
}

#[derive(Debug, Clone)]
struct JoinParams {
    zk_connect: ZkConnect,
    session_timeout: Duration,
    connect_timeout: Duration,
    registration: Vec<u8>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("broker_id", &self.broker_id)
            .finish_non_exhaustive()
    }
}

pub fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

fn ephemeral() -> zk::CreateOptions<'static> {
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all())
}

pub fn now_ms_string() -> String {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
        .to_string()
}

fn parse<T: serde::de::DeserializeOwned>(path: &str, data: &[u8]) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| ClusterError::Malformed {
        path: path.to_string(),
        reason: e.to_string(),
    })
}

/// Creates `path` if missing; an existing node is fine.
pub async fn ensure(client: &zk::Client, path: &str, data: &[u8]) -> Result<()> {
    match client.create(path, data, &persistent()).await {
        Ok(_) | Err(zk::Error::NodeExists) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Connects to the coordinator named by `zookeeper.connect`, creating the chroot if missing (as
/// Kafka does), and returns the session seen from the chroot.
pub async fn connect(
    zk_connect: &ZkConnect,
    session_timeout: Duration,
    connect_timeout: Duration,
) -> Result<zk::Client> {
    let hosts: Vec<String> = zk_connect
        .servers
        .iter()
        .map(|(h, p)| format!("{h}:{p}"))
        .collect();
    let hosts = hosts.join(",");
    let open = |s: String| async move {
        let attempt = zk::Client::connector()
            .with_session_timeout(session_timeout)
            .with_connection_timeout(connect_timeout)
            .connect(&s);
        match tokio::time::timeout(connect_timeout.max(Duration::from_secs(1)), attempt).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(source)) => Err(ClusterError::Connect { connect: s, source }),
            Err(_) => Err(ClusterError::Connect {
                connect: s,
                source: zk::Error::Timeout,
            }),
        }
    };
    let client = open(hosts.clone()).await?;
    let Some(chroot) = &zk_connect.chroot else {
        return Ok(client);
    };
    let mut path = String::new();
    for part in chroot.split('/').filter(|p| !p.is_empty()) {
        path.push('/');
        path.push_str(part);
        ensure(&client, &path, b"").await?;
    }
    // The same session, seen from the chroot.
    client
        .chroot(chroot.as_str())
        .map_err(|_| ClusterError::Malformed {
            path: chroot.clone(),
            reason: "not a valid chroot path".into(),
        })
}

/// `/brokers/ids/<id>` for this broker's advertised endpoints.
/// A registration's endpoints, comma-separated.
fn registered_endpoints(data: &[u8]) -> String {
    serde_json::from_slice::<znodes::BrokerRegistration>(data)
        .map(|r| r.endpoints.join(","))
        .unwrap_or_default()
}

/// Whether two registrations (`/brokers/ids/<id>` data) name the same endpoints.
fn same_endpoints(a: &[u8], b: &[u8]) -> bool {
    let endpoints = |d: &[u8]| {
        serde_json::from_slice::<znodes::BrokerRegistration>(d)
            .ok()
            .map(|r| r.endpoints)
    };
    matches!((endpoints(a), endpoints(b)), (Some(x), Some(y)) if x == y)
}

fn registration(cfg: &BrokerConfig, advertised: Vec<String>) -> Vec<u8> {
    let first = advertised.first().cloned().unwrap_or_default();
    let (host, port) = first
        .split_once("://")
        .and_then(|(_, hp)| hp.rsplit_once(':'))
        .map(|(h, p)| (h.to_string(), p.parse().unwrap_or(-1)))
        .unwrap_or_default();
    let reg = BrokerRegistration {
        // As Kafka writes it: the protocol of each advertised listener.
        listener_security_protocol_map: cfg
            .advertised_listeners
            .iter()
            .map(|l| (l.name.clone(), cfg.protocol_of(&l.name).to_string()))
            .collect(),
        endpoints: advertised,
        jmx_port: -1,
        rack: None,
        host: Some(host),
        timestamp: now_ms_string(),
        port,
        version: 4,
    };
    serde_json::to_vec(&reg).expect("json")
}

impl Cluster {
    /// Connects, creates Kafka's persistent paths and the cluster id, registers this broker and
    /// loads the metadata.
    pub async fn join(
        cfg: &BrokerConfig,
        broker_id: i32,
        advertised: Vec<String>,
    ) -> Result<Arc<Cluster>> {
        let join = JoinParams {
            zk_connect: cfg.zookeeper_connect.clone(),
            session_timeout: Duration::from_millis(u64::from(cfg.zookeeper_session_timeout_ms)),
            connect_timeout: Duration::from_millis(u64::from(cfg.zookeeper_connection_timeout_ms)),
            registration: registration(cfg, advertised),
        };
        let client = connect(&join.zk_connect, join.session_timeout, join.connect_timeout).await?;
        for p in znodes::PERSISTENT_PATHS {
            ensure(&client, p, b"").await?;
        }
        let id = ClusterId {
            version: "1".into(),
            id: crate::ids::new_cluster_id(),
        };
        ensure(
            &client,
            znodes::CLUSTER_ID,
            &serde_json::to_vec(&id).expect("json"),
        )
        .await?;
        let (changed, _) = watch::channel(0);
        let (session, _) = watch::channel(0);
        let (requests_tx, requests_rx) = tokio::sync::mpsc::unbounded_channel();
        let cluster = Arc::new(Cluster {
            client: RwLock::new(client),
            session,
            broker_id,
            join,
            metadata: RwLock::new(Arc::new(Metadata::default())),
            changed,
            reconciler: std::sync::OnceLock::new(),
            draining: Default::default(),
            drain_changed: watch::channel(0).0,
            requests: requests_tx,
            request_queue: tokio::sync::Mutex::new(requests_rx),
            active_controller: Default::default(),
        });
        cluster.register().await?;
        cluster.refresh_all().await?;
        Ok(cluster)
    }

    /// Whether this broker is the active controller now (Kafka's `ActiveControllerCount`).
    pub fn is_active_controller(&self) -> bool {
        self.active_controller
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// The current coordinator session.
    pub fn client(&self) -> zk::Client {
        self.client
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A receiver that changes whenever the session is replaced.
    pub fn session_changes(&self) -> watch::Receiver<u64> {
        self.session.subscribe()
    }

    /// After the session expired (a pause longer than `zookeeper.session.timeout.ms`, a
    /// partition from the coordinator): a new session, this broker registered again, the
    /// metadata reloaded — as a Kafka broker does. Retries until it succeeds.
    pub async fn rejoin(&self) {
        let mut delay = Duration::from_millis(200);
        loop {
            match self.try_rejoin().await {
                Ok(()) => {
                    tracing::info!(
                        broker = self.broker_id,
                        "new coordinator session; registered again"
                    );
                    self.session.send_modify(|g| *g += 1);
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot rejoin the coordinator yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn try_rejoin(&self) -> Result<()> {
        let j = &self.join;
        let client = connect(&j.zk_connect, j.session_timeout, j.connect_timeout).await?;
        *self.client.write().unwrap_or_else(|e| e.into_inner()) = client;
        self.register().await?;
        self.refresh_all().await
    }

    async fn register(&self) -> Result<()> {
        let path = znodes::broker_path(self.broker_id);
        let data = &self.join.registration;
        // A registration left by this broker's previous, crashed process lives until that
        // session expires, which can take longer than the session timeout: every change of
        // coord leader gives each session a full timeout again, as in ZooKeeper. One naming
        // this broker's own endpoints is its previous process's (no live broker can serve
        // the ports this one has bound), so it is waited for as long as it takes. Another
        // broker's is waited for a session timeout, then this one refuses to start.
        let deadline =
            tokio::time::Instant::now() + self.join.session_timeout + Duration::from_secs(2);
        loop {
            match self.client().create(&path, data, &ephemeral()).await {
                Ok((stat, _)) => {
                    // Kafka's line, with the broker epoch (the registration's czxid).
                    tracing::info!(
                        "Registered broker {} at path {path} with addresses: {}, czxid (broker epoch): {}",
                        self.broker_id,
                        registered_endpoints(data),
                        stat.czxid
                    );
                    return Ok(());
                }
                Err(zk::Error::NodeExists) => {
                    let Ok((existing, _, w)) = self.client().get_and_watch_data(&path).await else {
                        // Gone meanwhile (or unreadable for a moment): try again.
                        continue;
                    };
                    let ours = same_endpoints(&existing, data);
                    if !ours && tokio::time::Instant::now() >= deadline {
                        return Err(ClusterError::DuplicateBrokerId(self.broker_id));
                    }
                    tracing::info!(
                        broker = self.broker_id,
                        previous_process = ours,
                        "{path} exists; waiting for the previous session to expire"
                    );
                    let wait = if ours {
                        self.join.session_timeout
                    } else {
                        deadline.saturating_duration_since(tokio::time::Instant::now())
                    };
                    let _ = tokio::time::timeout(wait, w.changed()).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The current metadata snapshot.
    pub fn metadata(&self) -> Arc<Metadata> {
        self.metadata
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Controlled shutdown: `broker` is stopping; the controller moves its leaderships away
    /// and takes it out of every ISR.
    /// `epoch` is the stopping broker's registration epoch (the czxid of `/brokers/ids/<id>`,
    /// ControlledShutdown's `broker_epoch`); below 0, the one the metadata has now.
    pub fn drain(&self, broker: i32, epoch: i64) {
        let epoch = if epoch >= 0 {
            Some(epoch)
        } else {
            self.metadata().broker_epochs.get(&broker).copied()
        };
        let Some(epoch) = epoch else { return };
        let fresh = self
            .draining
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(broker, epoch)
            != Some(epoch);
        if fresh {
            self.drain_changed.send_modify(|g| *g += 1);
        }
    }

    /// Asks this broker's controller task for leader elections; `None` if it is not the
    /// controller (or stops being it before answering).
    pub async fn elect(
        &self,
        kind: ElectionKind,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Option<Vec<((String, i32), ElectionOutcome)>> {
        if self.metadata().controller != Some(self.broker_id) {
            return None;
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.requests
            .send(ControllerRequest::Elect(ElectionRequest {
                kind,
                partitions,
                reply,
            }))
            .ok()?;
        rx.await.ok()
    }

    /// Asks this broker's controller task to start or cancel reassignments; `None` if it is
    /// not the controller.
    pub async fn reassign(
        &self,
        partitions: Vec<(String, i32, Option<Vec<i32>>)>,
    ) -> Option<Vec<((String, i32), ReassignOutcome)>> {
        if self.metadata().controller != Some(self.broker_id) {
            return None;
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.requests
            .send(ControllerRequest::Reassign(ReassignRequest {
                partitions,
                reply,
            }))
            .ok()?;
        rx.await.ok()
    }

    /// The brokers being drained (the controller treats them as unable to lead or follow).
    pub fn draining(&self) -> std::collections::BTreeSet<i32> {
        let mut d = self.draining.lock().unwrap_or_else(|e| e.into_inner());
        let m = self.metadata();
        d.retain(|b, epoch| still_draining(&m, *b, *epoch));
        d.keys().copied().collect()
    }

    pub fn subscribe_drains(&self) -> watch::Receiver<u64> {
        self.drain_changed.subscribe()
    }

    /// A receiver that changes whenever the metadata does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Sets the reconciler: from now on every snapshot is applied to the partitions first and
    /// published after, so whatever this broker answers from its metadata (Metadata, the
    /// leader named in a NOT_LEADER_OR_FOLLOWER, CreateTopics' wait for leaders) is already
    /// true of its own partitions: when it names itself leader, it leads.
    pub fn set_reconciler(&self, f: Reconciler) {
        let _ = self.reconciler.set(f);
    }

    async fn publish(&self, m: Metadata) {
        let m = Arc::new(m);
        if let Some(f) = self.reconciler.get() {
            let (f, m) = (f.clone(), m.clone());
            let _ = tokio::task::spawn_blocking(move || f(&m)).await;
        }
        *self.metadata.write().unwrap_or_else(|e| e.into_inner()) = m;
        self.changed.send_modify(|v| *v += 1);
    }

    /// Reads brokers, topics, partition states, topic configs and the controller.
    pub async fn refresh_all(&self) -> Result<()> {
        let c = &self.client();
        let mut m = Metadata::default();
        if let Ok((data, _)) = c.get_data(znodes::CLUSTER_ID).await {
            if let Ok(id) = parse::<ClusterId>(znodes::CLUSTER_ID, &data) {
                m.cluster_id = id.id;
            }
        }
        m.controller = match c.get_data(znodes::CONTROLLER).await {
            Ok((data, _)) => parse::<znodes::ControllerRegistration>(znodes::CONTROLLER, &data)
                .ok()
                .map(|r| r.brokerid),
            Err(_) => None,
        };
        for id in c.list_children(BROKER_IDS).await? {
            let path = format!("{BROKER_IDS}/{id}");
            let (Ok(n), Ok((data, stat))) = (id.parse::<i32>(), c.get_data(&path).await) else {
                continue;
            };
            match parse::<BrokerRegistration>(&path, &data) {
                Ok(reg) => {
                    m.brokers.insert(n, reg);
                    m.broker_epochs.insert(n, stat.czxid);
                }
                Err(e) => tracing::warn!("{e}"),
            }
        }
        for topic in c.list_children(TOPICS).await? {
            if let Some(t) = self.read_topic(&topic).await? {
                m.topics.insert(topic, t);
            }
        }
        self.publish(m).await;
        Ok(())
    }

    async fn read_topic(&self, topic: &str) -> Result<Option<TopicMeta>> {
        let c = &self.client();
        let path = znodes::topic_path(topic);
        let (data, assignment_version) = match c.get_data(&path).await {
            Ok((d, stat)) => (d, stat.version),
            Err(zk::Error::NoNode) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let assignment: TopicAssignment = match parse(&path, &data) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("{e}");
                return Ok(None);
            }
        };
        let id = assignment
            .topic_id
            .as_deref()
            .and_then(crate::ids::parse_uuid)
            .unwrap_or_else(|| crate::ids::uuid_from_name(topic));
        let mut partitions = BTreeMap::new();
        for (p, replicas) in assignment.replicas() {
            let spath = znodes::partition_state_path(topic, p);
            let (state, state_version) = match c.get_data(&spath).await {
                Ok((d, stat)) => (parse::<PartitionState>(&spath, &d).ok(), stat.version),
                Err(_) => (None, -1),
            };
            let key = p.to_string();
            partitions.insert(
                p,
                PartitionMeta {
                    replicas,
                    state,
                    state_version,
                    adding: assignment
                        .adding_replicas
                        .get(&key)
                        .cloned()
                        .unwrap_or_default(),
                    removing: assignment
                        .removing_replicas
                        .get(&key)
                        .cloned()
                        .unwrap_or_default(),
                },
            );
        }
        let config = match c.get_data(&znodes::topic_config_path(topic)).await {
            Ok((d, _)) => parse::<TopicConfig>(&znodes::topic_config_path(topic), &d)
                .map(|c| c.config)
                .unwrap_or_default(),
            Err(_) => BTreeMap::new(),
        };
        Ok(Some(TopicMeta {
            id,
            assignment_version,
            partitions,
            config,
        }))
    }

    /// Follows the coordinator: a persistent recursive watch on `/brokers` plus `/controller`,
    /// re-reading the metadata (debounced) after each burst of changes. A coordinator that is
    /// briefly unreachable is retried; an expired session is replaced ([`Cluster::rejoin`]).
    pub async fn watch_loop(self: Arc<Self>) -> Result<()> {
        loop {
            match self.clone().follow().await {
                Err(ClusterError::Zk(zk::Error::SessionExpired)) => {
                    tracing::warn!(
                        broker = self.broker_id,
                        "coordinator session expired; registering again with a new session"
                    );
                    self.rejoin().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "coordinator unavailable; metadata may be stale, retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Ok(()) => return Ok(()),
            }
        }
    }

    async fn follow(self: Arc<Self>) -> Result<()> {
        let mut brokers = self
            .client()
            .watch("/brokers", zk::AddWatchMode::PersistentRecursive)
            .await?;
        let mut controller = self
            .client()
            .watch(znodes::CONTROLLER, zk::AddWatchMode::Persistent)
            .await?;
        let mut config = self
            .client()
            .watch(znodes::CONFIG_TOPICS, zk::AddWatchMode::PersistentRecursive)
            .await?;
        // Changes made between the initial load and the watches.
        self.refresh_all().await?;
        // Re-reads scheduled after a reconnection (see below).
        let mut rereads: std::collections::VecDeque<tokio::time::Instant> = Default::default();
        loop {
            let next_reread = rereads.front().copied();
            let ev = tokio::select! {
                e = brokers.changed() => Some(e),
                e = controller.changed() => Some(e),
                e = config.changed() => Some(e),
                _ = async {
                    match next_reread {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    rereads.pop_front();
                    None
                }
            };
            if let Some(ev) = &ev {
                if matches!(
                    ev.session_state,
                    zk::SessionState::Expired
                        | zk::SessionState::Closed
                        | zk::SessionState::AuthFailed
                ) {
                    return Err(ClusterError::Zk(zk::Error::SessionExpired));
                }
                if ev.event_type == zk::EventType::Session {
                    // A reconnection re-registers the persistent watches without replaying what
                    // changed meanwhile (ZooKeeper's semantics, ZOOKEEPER-4698), and the server
                    // reconnected to may still be applying the latest writes: read everything
                    // now and twice more shortly after.
                    tracing::info!(state = ?ev.session_state, "coordinator connection changed; re-reading metadata");
                    if ev.session_state == zk::SessionState::SyncConnected {
                        let now = tokio::time::Instant::now();
                        rereads.clear();
                        rereads.push_back(now + Duration::from_secs(1));
                        rereads.push_back(now + Duration::from_secs(3));
                    }
                }
            }
            // Let a burst (a topic with many partitions) settle, then read once.
            tokio::time::sleep(Duration::from_millis(5)).await;
            // A read that fails (the coordinator connection is being re-established, e.g. one
            // coord node restarted) is retried until it succeeds: no further change may come to
            // wake this loop, and a persistent watch re-registered on reconnect does not replay
            // the changes made while it was away (ZooKeeper's semantics).
            let mut failures = 0u32;
            while let Err(e) = self.refresh_all().await {
                if matches!(e, ClusterError::Zk(zk::Error::SessionExpired)) {
                    return Err(e);
                }
                failures += 1;
                if failures == 1 {
                    tracing::warn!(error = %e, "metadata refresh failed; retrying until it succeeds");
                } else {
                    tracing::debug!(error = %e, failures, "metadata refresh failed again");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if failures > 0 {
                tracing::info!(
                    failures,
                    "metadata refreshed after the coordinator came back"
                );
            }
        }
    }

    /// Creates a topic: `/config/topics/<t>` then `/brokers/topics/<t>` with replicas spread
    /// over live brokers (Kafka's rack-unaware assignment). The controller then elects leaders.
    pub async fn create_topic(
        &self,
        topic: &str,
        partitions: i32,
        replication_factor: i16,
        config: BTreeMap<String, String>,
    ) -> Result<Result<(), CreateTopicError>> {
        let live: Vec<i32> = self.metadata().brokers.keys().copied().collect();
        if live.is_empty() || (replication_factor as usize) > live.len() {
            return Ok(Err(CreateTopicError::ReplicationFactor(
                replication_factor,
                live.len(),
            )));
        }
        // Kafka's rack-unaware assignment from a random start and shift.
        let random = uuid::Uuid::new_v4().as_u128();
        let assignment: BTreeMap<String, Vec<i32>> = sluice_kafka::assignment::assign_replicas(
            &live,
            0,
            partitions,
            replication_factor as usize,
            random as usize,
            (random >> 64) as usize,
        )
        .into_iter()
        .enumerate()
        .map(|(p, r)| (p.to_string(), r))
        .collect();
        // An existing topic keeps its configuration: refuse before touching it.
        if self
            .client()
            .check_stat(&znodes::topic_path(topic))
            .await?
            .is_some()
        {
            return Ok(Err(CreateTopicError::Exists));
        }
        let cfg = TopicConfig { version: 1, config };
        let cfg_path = znodes::topic_config_path(topic);
        match self
            .client()
            .create(
                &cfg_path,
                &serde_json::to_vec(&cfg).expect("json"),
                &persistent(),
            )
            .await
        {
            Ok(_) => {}
            Err(zk::Error::NodeExists) => {
                self.client()
                    .set_data(&cfg_path, &serde_json::to_vec(&cfg).expect("json"), None)
                    .await?;
            }
            Err(e) => return Err(e.into()),
        }
        let a = TopicAssignment {
            version: 3,
            partitions: assignment,
            topic_id: Some(crate::ids::encode_uuid(&uuid::Uuid::new_v4())),
            adding_replicas: BTreeMap::new(),
            removing_replicas: BTreeMap::new(),
        };
        match self
            .client()
            .create(
                &znodes::topic_path(topic),
                &serde_json::to_vec(&a).expect("json"),
                &persistent(),
            )
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(zk::Error::NodeExists) => Ok(Err(CreateTopicError::Exists)),
            Err(e) => Err(e.into()),
        }
    }

    /// The overrides of `topic` as coord holds them now (`/config/topics/<topic>`; none when the
    /// znode is missing). DescribeConfigs reads here, as Kafka's ZooKeeper mode does, so a
    /// change made through any broker is seen at once through every other.
    pub async fn read_topic_config(&self, topic: &str) -> Result<BTreeMap<String, String>> {
        let path = znodes::topic_config_path(topic);
        match self.client().get_data(&path).await {
            Ok((d, _)) => Ok(parse::<TopicConfig>(&path, &d)?.config),
            Err(zk::Error::NoNode) => Ok(BTreeMap::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Read-modify-write of `/config/topics/<topic>` (compare-and-set, retried on a race).
    /// `change` edits the overrides or refuses with a message; `write = false` only checks.
    /// Returns the overrides as written.
    pub async fn alter_topic_config(
        &self,
        topic: &str,
        write: bool,
        change: impl Fn(&mut BTreeMap<String, String>) -> std::result::Result<(), String>,
    ) -> Result<std::result::Result<BTreeMap<String, String>, String>> {
        let path = znodes::topic_config_path(topic);
        loop {
            let (mut cfg, version) = match self.client().get_data(&path).await {
                Ok((d, stat)) => (parse::<TopicConfig>(&path, &d)?, Some(stat.version)),
                Err(zk::Error::NoNode) => (
                    TopicConfig {
                        version: 1,
                        config: BTreeMap::new(),
                    },
                    None,
                ),
                Err(e) => return Err(e.into()),
            };
            if let Err(msg) = change(&mut cfg.config) {
                return Ok(Err(msg));
            }
            if !write {
                return Ok(Ok(cfg.config));
            }
            let data = serde_json::to_vec(&cfg).expect("json");
            let written = match version {
                Some(v) => self
                    .client()
                    .set_data(&path, &data, Some(v))
                    .await
                    .map(|_| ()),
                None => self
                    .client()
                    .create(&path, &data, &persistent())
                    .await
                    .map(|_| ()),
            };
            match written {
                Ok(()) => {
                    tracing::info!(topic, config = ?cfg.config, "topic configuration changed");
                    return Ok(Ok(cfg.config));
                }
                Err(zk::Error::BadVersion) | Err(zk::Error::NodeExists) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// CreatePartitions: grows `topic` to `count` partitions, with the given replica lists for
    /// the new ones or Kafka-style round robin over live brokers. The controller then elects
    /// their leaders. `write = false` only checks.
    pub async fn add_partitions(
        &self,
        topic: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        write: bool,
    ) -> Result<std::result::Result<(), AddPartitionsError>> {
        let path = znodes::topic_path(topic);
        loop {
            let (data, stat) = match self.client().get_data(&path).await {
                Ok(x) => x,
                Err(zk::Error::NoNode) => return Ok(Err(AddPartitionsError::UnknownTopic)),
                Err(e) => return Err(e.into()),
            };
            let mut a: TopicAssignment = parse(&path, &data)?;
            let current = a.partitions.len() as i32;
            if count <= current {
                return Ok(Err(AddPartitionsError::NotAnIncrease { current, count }));
            }
            let rf = a.replicas().values().next().map_or(1, Vec::len);
            let live: Vec<i32> = self.metadata().brokers.keys().copied().collect();
            let new: Vec<Vec<i32>> = match &assignments {
                Some(given) => {
                    if given.len() as i32 != count - current {
                        return Ok(Err(AddPartitionsError::Assignment(format!(
                            "Increasing the number of partitions by {} but {} assignments provided.",
                            count - current,
                            given.len()
                        ))));
                    }
                    for r in given {
                        let mut distinct = r.clone();
                        distinct.sort_unstable();
                        distinct.dedup();
                        if r.len() != rf || distinct.len() != rf {
                            return Ok(Err(AddPartitionsError::Assignment(format!(
                                "Inconsistent replication factor between partitions: {} replicas {r:?}, expected {rf} distinct brokers.",
                                r.len()
                            ))));
                        }
                        if let Some(b) = r.iter().find(|b| !live.contains(b)) {
                            return Ok(Err(AddPartitionsError::Assignment(format!(
                                "Unknown broker {b} in the assignment {r:?}."
                            ))));
                        }
                    }
                    given.clone()
                }
                None => {
                    if live.len() < rf {
                        return Ok(Err(AddPartitionsError::ReplicationFactor(rf, live.len())));
                    }
                    let random = uuid::Uuid::new_v4().as_u128();
                    sluice_kafka::assignment::assign_replicas(
                        &live,
                        current,
                        count - current,
                        rf,
                        random as usize,
                        (random >> 64) as usize,
                    )
                }
            };
            if !write {
                return Ok(Ok(()));
            }
            for (i, replicas) in new.into_iter().enumerate() {
                a.partitions
                    .insert((current + i as i32).to_string(), replicas);
            }
            match self
                .client()
                .set_data(
                    &path,
                    &serde_json::to_vec(&a).expect("json"),
                    Some(stat.version),
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(topic, from = current, to = count, "partitions added");
                    return Ok(Ok(()));
                }
                Err(zk::Error::BadVersion) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Asks the controller to delete `topic` (Kafka's `/admin/delete_topics/<t>` marker).
    pub async fn request_topic_deletion(&self, topic: &str) -> Result<()> {
        ensure(&self.client(), &znodes::delete_topic_path(topic), b"").await
    }

    /// Waits until the metadata shows `config` as the overrides of `topic`, up to `timeout`.
    pub async fn wait_for_topic_config(
        &self,
        topic: &str,
        config: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> bool {
        let mut rx = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self
                .metadata()
                .topics
                .get(topic)
                .is_some_and(|t| &t.config == config)
            {
                return true;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return false;
            }
        }
    }

    /// Waits until every partition of `topic` has a leader in the metadata, up to `timeout`.
    pub async fn wait_for_leaders(&self, topic: &str, timeout: Duration) -> bool {
        self.wait_for_partitions(topic, 1, timeout).await
    }

    /// Waits until `topic` has at least `count` partitions, each with a leader, up to `timeout`.
    pub async fn wait_for_partitions(&self, topic: &str, count: usize, timeout: Duration) -> bool {
        let mut rx = self.subscribe();
        let ready = |m: &Metadata| {
            m.topics.get(topic).is_some_and(|t| {
                t.partitions.len() >= count && t.partitions.values().all(|p| p.leader().is_some())
            })
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if ready(&self.metadata()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return ready(&self.metadata());
            }
        }
    }
}

/// Whether `broker`, which asked to be drained in its registration `epoch`, still is: a broker
/// that left, or registered again (a restart quicker than the controller's next look), is not.
fn still_draining(m: &Metadata, broker: i32, epoch: i64) -> bool {
    m.broker_epochs.get(&broker) == Some(&epoch)
}

/// Why CreatePartitions refused a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddPartitionsError {
    UnknownTopic,
    NotAnIncrease { current: i32, count: i32 },
    Assignment(String),
    ReplicationFactor(usize, usize),
}

/// Why CreateTopics refused a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateTopicError {
    Exists,
    ReplicationFactor(i16, usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_are_compared_by_endpoints_only() {
        let reg = |endpoints: &str, ts: &str| {
            format!(r#"{{"listener_security_protocol_map":{{"PLAINTEXT":"PLAINTEXT"}},"endpoints":[{endpoints}],"jmx_port":-1,"host":"h","timestamp":"{ts}","port":9092,"version":5}}"#).into_bytes()
        };
        let a = reg(r#""PLAINTEXT://h:9092""#, "1");
        assert!(same_endpoints(&a, &reg(r#""PLAINTEXT://h:9092""#, "2")));
        assert!(!same_endpoints(&a, &reg(r#""PLAINTEXT://h:9093""#, "1")));
        assert!(!same_endpoints(&a, b"not json"));
        assert_eq!(registered_endpoints(&a), "PLAINTEXT://h:9092");
    }

    #[test]
    fn a_drained_broker_that_registered_again_is_no_longer_draining() {
        let mut m = Metadata::default();
        m.broker_epochs.insert(2, 100);
        assert!(still_draining(&m, 2, 100), "the registration that asked");
        // Stopped and back before the controller looked again: a new registration.
        m.broker_epochs.insert(2, 250);
        assert!(!still_draining(&m, 2, 100));
        // Gone.
        m.broker_epochs.remove(&2);
        assert!(!still_draining(&m, 2, 100));
    }
}
