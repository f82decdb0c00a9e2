//! broker: a Kafka-compatible broker.
//!
//! ```text
//!  server.properties ─► sluice-config ─► BrokerServer::start
//!                                           ├─ cluster: coordinator session, registration,
//!                                           │   metadata cache (watches), controller
//!                                           └─ listeners ─► server.rs (framing, dispatch)
//!                                               (tls: SSL ones)   └─► api/<one module per API>
//! ```
//!
//! The coordinator is reached through `zookeeper.connect` (chroot included) with an independent
//! ZooKeeper client; topic and partition metadata live there in Kafka's own znode layout.

pub mod admission;
pub mod api;
pub mod cluster;
#[doc(hidden)]
pub mod fuzzing;
pub mod groups;
pub mod ids;
pub mod metrics;
pub mod producers;
pub mod quotas;
pub mod replica;
pub mod request_queue;
pub mod server;
pub mod tls;
pub mod topic_config;
pub mod topics;
pub mod warn_every;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use sluice_config::BrokerConfig;
use tokio::task::JoinHandle;

use cluster::{Cluster, ClusterError};

/// State shared by every connection of a broker.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    pub id: i32,
    pub cluster: Arc<Cluster>,
    /// The partitions held here and their roles (leader, follower).
    pub replicas: Arc<replica::ReplicaManager>,
    /// Consumer groups coordinated here (decision 0007).
    pub groups: Arc<groups::GroupCoordinator>,
    /// Producer ids for idempotent producers (InitProducerId).
    pub producer_ids: producers::ProducerIds,
    /// Client quotas in force and the rates measured against them.
    pub quotas: Arc<quotas::ClientQuotas>,
    /// Answers that wait for something (acks=all produces waiting for replication), over all
    /// connections: a stopping broker gives them the time to be written.
    pub(crate) answers_waiting: std::sync::atomic::AtomicUsize,
    /// `queued.max.requests` and `queued.max.request.bytes` over all client connections.
    pub requests: Arc<request_queue::RequestQueue>,
    /// How this broker connects to the others (over TLS when the inter-broker listener is SSL).
    pub connector: tls::Connector,
    /// Request stages and thread idleness for the metrics endpoint (the per-topic counters
    /// are the partitions', [`replica::ReplicaManager::counters`]).
    pub metrics: metrics::BrokerMetrics,
}

impl Broker {
    /// `min.insync.replicas` of `topic`: its own setting, else the broker's.
    pub fn min_insync_replicas(&self, topic: &str) -> i32 {
        self.cluster
            .metadata()
            .topics
            .get(topic)
            .and_then(|t| t.config.get("min.insync.replicas"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(self.config.min_insync_replicas)
    }

    /// Creates `topic` with `num.partitions` and `default.replication.factor`, as Kafka does for
    /// a Metadata or Produce request naming an unknown topic.
    ///
    /// As in Kafka, the topic is not created while fewer brokers than
    /// `default.replication.factor` are registered (the client is told LEADER_NOT_AVAILABLE and
    /// asks again): creating it with fewer replicas would leave it under-replicated for good,
    /// and with `min.insync.replicas` above its size no `acks=all` write could ever succeed.
    pub async fn auto_create_topic(&self, topic: &str) -> Result<(), ClusterError> {
        let live = self.cluster.metadata().brokers.len() as i16;
        let rf = self.config.default_replication_factor;
        if live < rf {
            tracing::info!(
                topic,
                live_brokers = live,
                replication_factor = rf,
                "not auto-creating the topic yet: fewer live brokers than default.replication.factor"
            );
            return Ok(());
        }
        match self
            .cluster
            .create_topic(topic, self.config.num_partitions, rf, BTreeMap::new())
            .await?
        {
            Ok(()) => tracing::info!(
                topic,
                partitions = self.config.num_partitions,
                replication_factor = rf,
                "auto-created topic"
            ),
            Err(e) => tracing::debug!(topic, ?e, "auto-create raced"),
        }
        Ok(())
    }
}

/// Why a broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} ({listener}): {source}")]
    Bind {
        listener: String,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("log: {0}")]
    Log(#[from] sluice_log::LogError),
    #[error("log recovery did not complete")]
    Recovery,
}

/// A running broker.
#[derive(Debug)]
pub struct BrokerServer {
    pub broker: Arc<Broker>,
    bound: Vec<(String, SocketAddr)>,
    metrics_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
    fatal: tokio::sync::watch::Receiver<Option<String>>,
}

impl BrokerServer {
    /// Binds the listeners, joins the cluster (registering `/brokers/ids/<id>`) and starts
    /// serving. Listeners on port 0 get a free port, which is what is advertised.
    pub async fn start(config: BrokerConfig) -> Result<BrokerServer, StartError> {
        // Keys and certificates first: a bad one stops the start before anything is bound.
        let (server_tls, connector) = tls_configs(&config)?;
        if let Some(why) = connector.unusable() {
            tracing::warn!("{why}; replication from and to other brokers will fail");
        }
        let mut bound = Vec::new();
        let mut listeners = Vec::new();
        for l in &config.listeners {
            let host = l.host.clone().unwrap_or_else(|| "0.0.0.0".into());
            let addr = if host.contains(':') {
                format!("[{host}]:{}", l.port)
            } else {
                format!("{host}:{}", l.port)
            };
            let bind_err = |source| StartError::Bind {
                listener: l.name.clone(),
                addr: addr.clone(),
                source,
            };
            let sock_addr: SocketAddr = tokio::net::lookup_host(&addr)
                .await
                .map_err(bind_err)?
                .next()
                .ok_or_else(|| bind_err(std::io::Error::other("no address")))?;
            let socket = if sock_addr.is_ipv4() {
                tokio::net::TcpSocket::new_v4()
            } else {
                tokio::net::TcpSocket::new_v6()
            }
            .map_err(bind_err)?;
            socket.set_reuseaddr(true).map_err(bind_err)?;
            if config.socket_send_buffer_bytes > 0 {
                let _ = socket.set_send_buffer_size(config.socket_send_buffer_bytes as u32);
            }
            if config.socket_receive_buffer_bytes > 0 {
                let _ = socket.set_recv_buffer_size(config.socket_receive_buffer_bytes as u32);
            }
            socket.bind(sock_addr).map_err(bind_err)?;
            let listener = socket.listen(1024).map_err(bind_err)?;
            let local = listener.local_addr().map_err(bind_err)?;
            bound.push((l.name.clone(), local));
            listeners.push((l.name.clone(), listener));
        }
        // metrics.prometheus.listener: bound with the listeners, so a port in use stops the
        // start as theirs does.
        let metrics_listener =
            match &config.metrics_prometheus_listener {
                Some(m) => Some(metrics::bind(&m.host, m.port).await.map_err(|source| {
                    StartError::Bind {
                        listener: "metrics.prometheus.listener".into(),
                        addr: m.to_string(),
                        source,
                    }
                })?),
                None => None,
            };
        let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
        let this_host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let advertised: Vec<String> = config
            .advertised_listeners
            .iter()
            .map(|a| {
                let port = if a.port == 0 {
                    bound
                        .iter()
                        .find(|(n, _)| *n == a.name)
                        .map_or(0, |(_, s)| s.port())
                } else {
                    a.port
                };
                let same = config.listeners.iter().find(|l| l.name == a.name);
                let port = match same {
                    Some(l) if l.port == 0 && a.port == l.port => bound
                        .iter()
                        .find(|(n, _)| *n == a.name)
                        .map_or(port, |(_, s)| s.port()),
                    _ => port,
                };
                format!(
                    "{}://{}:{}",
                    a.name,
                    a.host.clone().unwrap_or_else(|| this_host.clone()),
                    port
                )
            })
            .collect();
        let broker_id = if config.broker_id >= 0 {
            config.broker_id
        } else {
            generate_id(&config).await?
        };
        // Recover the logs before joining: a broker is only advertised once it can serve them.
        let parts = {
            let cfg = config.clone();
            let counters = Arc::new(metrics::counters::BrokerCounters::default());
            tokio::task::spawn_blocking(move || {
                replica::ReplicaManager::open(&cfg, broker_id, counters)
            })
            .await
            .map_err(|_| StartError::Recovery)??
        };
        let parts = Arc::new(parts);
        let cluster = Cluster::join(&config, broker_id, advertised.clone()).await?;
        for a in &advertised {
            tracing::info!(broker = broker_id, "advertising {a} to clients");
        }
        let broker = Arc::new(Broker {
            config: config.clone(),
            id: broker_id,
            cluster: cluster.clone(),
            replicas: parts.clone(),
            groups: Arc::new(groups::GroupCoordinator::new(
                groups::GroupConfig::of(&config),
                groups::log_persist(parts.clone(), config.min_insync_replicas.max(1) as usize),
            )),
            producer_ids: producers::ProducerIds::default(),
            quotas: Arc::new(quotas::ClientQuotas::new(&config)),
            answers_waiting: Default::default(),
            requests: request_queue::RequestQueue::new(&config),
            connector: connector.clone(),
            metrics: metrics::BrokerMetrics::default(),
        });
        parts.apply(&cluster.metadata());
        // The reconciler: the one place that turns metadata into partition roles, run on every
        // new snapshot before it is published.
        {
            let p = parts.clone();
            cluster.set_reconciler(Arc::new(move |m| p.apply(m)));
        }
        let (fatal_tx, fatal) = tokio::sync::watch::channel(None);
        let fatal_tx = Arc::new(fatal_tx);
        let mut tasks = Vec::new();
        {
            let c = cluster.clone();
            let f = fatal_tx.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = c.watch_loop().await {
                    let _ = f.send(Some(format!("lost the coordinator session: {e}")));
                }
            }));
        }
        {
            let c = cluster.clone();
            let f = fatal_tx.clone();
            let settings = cluster::controller::Settings {
                unclean: config.unclean_leader_election_enable,
                listener: config.inter_broker_listener_name.clone(),
                connector: connector.clone(),
                auto_rebalance: config.auto_leader_rebalance_enable,
                imbalance_check: std::time::Duration::from_secs(u64::from(
                    config.leader_imbalance_check_interval_seconds,
                )),
                imbalance_percentage: config.leader_imbalance_per_broker_percentage,
            };
            tasks.push(tokio::spawn(async move {
                if let Err(e) = cluster::controller::run(c, settings).await {
                    let _ = f.send(Some(format!("controller: {e}")));
                }
            }));
        }
        {
            tasks.push(tokio::spawn(parts.clone().run_housekeeping()));
            tasks.push(tokio::spawn(replica::fetcher::run(broker.clone())));
            tasks.push(tokio::spawn(replica::isr::run(broker.clone())));
        }
        tasks.push(tokio::spawn(groups::loader::run(broker.clone())));
        if let (Some(listener), Some(addr)) = (metrics_listener, metrics_addr) {
            tasks.push(tokio::spawn(metrics::serve(broker.clone(), listener)));
            tracing::info!(broker = broker_id, %addr, "serving metrics on /metrics");
        }
        tasks.push(tokio::spawn(cluster::client_quotas::follow_client_quotas(
            cluster.clone(),
            broker.quotas.clone(),
        )));
        // Serve clients once a controller is known, so the first Metadata answer already names
        // it (librdkafka's admin client waits minutes before asking again). Connections made
        // meanwhile wait in the listen backlog.
        let mut rx = cluster.subscribe();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while cluster.metadata().controller.is_none() {
                if rx.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
        let admission = admission::Admission::new(&config);
        let several = listeners.len() > 1;
        for (name, listener) in listeners {
            let broker = broker.clone();
            let admission = admission.clone();
            let exempt = several && name == config.inter_broker_listener_name;
            let tls = server_tls.get(&name).cloned();
            tasks.push(tokio::spawn(async move {
                loop {
                    let slot = admission.slot(exempt).await;
                    match listener.accept().await {
                        Ok((stream, peer)) => match admission.admit(peer.ip(), slot) {
                            Some(admitted) => {
                                tokio::spawn(server::serve(
                                    broker.clone(),
                                    name.clone(),
                                    stream,
                                    peer,
                                    tls.clone(),
                                    admitted,
                                ));
                            }
                            None => drop(stream),
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    }
                }
            }));
        }
        Ok(BrokerServer {
            broker,
            bound,
            metrics_addr,
            tasks,
            fatal,
        })
    }

    /// The local address of listener `name`.
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.bound.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    /// Where `/metrics` is served (`metrics.prometheus.listener`), if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Resolves with a reason when the broker can no longer work (e.g. its coordinator
    /// session expired).
    pub async fn fatal(&mut self) -> String {
        loop {
            if let Some(reason) = self.fatal.borrow().clone() {
                return reason;
            }
            if self.fatal.changed().await.is_err() {
                return "stopped".into();
            }
        }
    }

    /// Controlled shutdown (when `controlled.shutdown.enable`): leaderships move to other
    /// in-sync replicas first; then it stops serving, removes this broker's ephemerals
    /// (registration, controller) at once and closes the logs cleanly.
    pub async fn shutdown(self) {
        // Leaderships move first, while this broker still serves (clients switch to the new
        // leaders instead of timing out on a closed one).
        if self.broker.config.controlled_shutdown_enable {
            api::controlled_shutdown::request(&self.broker).await;
            // Produces waiting for replication on partitions that moved now end with
            // NOT_LEADER_OR_FOLLOWER naming the new leader; let those answers reach their
            // clients before the connections close, or a client that only sees the connection
            // drop may wait for its next metadata refresh (a second for librdkafka).
            // It also keeps serving for a moment: a producer whose next request comes here is
            // told the new leader (KIP-951) while this broker is still in the metadata. One that
            // only sees its connection close re-reads metadata, and when that answer no longer
            // lists this broker, librdkafka drops the partitions it is moving to the new
            // leaders until its next refresh, a second later.
            let now = tokio::time::Instant::now();
            let (linger, deadline) = (
                now + std::time::Duration::from_millis(200),
                now + std::time::Duration::from_secs(1),
            );
            loop {
                let now = tokio::time::Instant::now();
                let waiting = self
                    .broker
                    .answers_waiting
                    .load(std::sync::atomic::Ordering::Acquire);
                if now >= deadline || (waiting == 0 && now >= linger) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        }
        for t in &self.tasks {
            t.abort();
        }
        let parts = self.broker.replicas.clone();
        let _ = tokio::task::spawn_blocking(move || parts.close_all()).await;
        // Bounded: with the coordinator gone these calls would wait for it forever; the
        // session then simply expires.
        let cleanup = async {
            let c = &self.broker.cluster.client();
            let _ = c
                .delete(&cluster::znodes::broker_path(self.broker.id), None)
                .await;
            // Hand the controller role over at once instead of after the session timeout.
            if let Ok((data, _)) = c.get_data(cluster::znodes::CONTROLLER).await {
                let mine = serde_json::from_slice::<cluster::znodes::ControllerRegistration>(&data)
                    .is_ok_and(|r| r.brokerid == self.broker.id);
                if mine {
                    let _ = c.delete(cluster::znodes::CONTROLLER, None).await;
                }
            }
        };
        if tokio::time::timeout(std::time::Duration::from_secs(3), cleanup)
            .await
            .is_err()
        {
            tracing::warn!(
                "coordinator unreachable during shutdown; its session will expire instead"
            );
        }
    }
}

/// The server side of each SSL listener, and how to reach other brokers.
type TlsConfigs = (
    std::collections::HashMap<String, tls::ServerTls>,
    tls::Connector,
);

fn tls_configs(config: &BrokerConfig) -> Result<TlsConfigs, tls::TlsError> {
    let mut servers = std::collections::HashMap::new();
    for (name, s) in &config.ssl {
        servers.insert(name.clone(), tls::build_server(s)?);
    }
    Ok((servers, tls::Connector::inter_broker(config)?))
}

/// `broker.id=-1`: a fresh id above `reserved.broker.max.id` (1000) from the coordinator's
/// `/brokers/seqid` counter, as Kafka generates them.
async fn generate_id(config: &BrokerConfig) -> Result<i32, ClusterError> {
    let client = cluster::connect(
        &config.zookeeper_connect,
        std::time::Duration::from_millis(u64::from(config.zookeeper_session_timeout_ms)),
        std::time::Duration::from_millis(u64::from(config.zookeeper_connection_timeout_ms)),
    )
    .await?;
    cluster::ensure(&client, "/brokers", b"").await?;
    cluster::ensure(&client, "/brokers/seqid", b"").await?;
    let stat = client.set_data("/brokers/seqid", b"", None).await?;
    Ok(1000 + stat.version)
}

/// Outcome of `broker --check FILE`.
#[derive(Debug)]
pub struct CheckReport {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Validates `path` as `--check` does.
pub fn check(path: &std::path::Path) -> CheckReport {
    match BrokerConfig::load(path) {
        Ok(loaded) => {
            let mut stderr = String::new();
            for w in &loaded.warnings {
                stderr.push_str(&format!("warning: {w}\n"));
            }
            let cfg = loaded.config;
            if let Err(e) = tls_configs(&cfg) {
                return CheckReport {
                    ok: false,
                    stdout: String::new(),
                    stderr: format!("{stderr}error: {}: {e}\n", path.display()),
                };
            }
            let mut stdout = sluice_config::render_effective(path, &cfg.effective());
            for l in &cfg.advertised_listeners {
                stdout.push_str(&format!("# clients are told to connect to {l}\n"));
            }
            CheckReport {
                ok: true,
                stdout,
                stderr,
            }
        }
        Err(e) => CheckReport {
            ok: false,
            stdout: String::new(),
            stderr: e.report(),
        },
    }
}
