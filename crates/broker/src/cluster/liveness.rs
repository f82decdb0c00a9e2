//! Fast failure detection for the controller: a broker whose process is gone is known at once,
//! not when its coordinator session expires.
//!
//! ```text
//!  controller ──TCP──► every other registered broker (its inter-broker listener)
//!     ApiVersions every PROBE_EVERY
//!       connection refused, reset or closed  ─► dead now (the process is gone)
//!       answered                             ─► alive
//!       no answer (paused, overloaded)       ─► no verdict: the coordinator session decides
//! ```
//!
//! A killed process's sockets are closed by the kernel, so its death shows up as a refused or
//! reset connection within one probe interval. A paused or merely slow broker keeps its
//! connections open and is left to `zookeeper.session.timeout.ms`, so load alone never causes a
//! failover. A broker marked dead is treated as such only while its registration is the one it
//! had when it was marked (a restarted broker registers anew).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use sluice_kafka::async_client::AsyncConn;
use tokio::sync::watch;

use super::Cluster;
use crate::tls::Connector;

/// How often each broker is probed.
const PROBE_EVERY: Duration = Duration::from_millis(200);
/// How long a probe (connect or answer) may take before it is given up without a verdict.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Brokers known to be gone, with the registration (czxid) they had then.
#[derive(Debug, Default)]
pub struct Liveness {
    dead: Mutex<BTreeMap<i32, i64>>,
    changed: watch::Sender<u64>,
}

impl Liveness {
    pub fn new() -> Arc<Liveness> {
        Arc::new(Liveness::default())
    }

    /// Whether `broker` in its incarnation `epoch` is known to be gone.
    pub fn is_dead(&self, broker: i32, epoch: i64) -> bool {
        self.dead
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&broker)
            .is_some_and(|e| *e == epoch)
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn set(&self, broker: i32, epoch: i64, dead: bool) {
        let mut map = self.dead.lock().unwrap_or_else(|e| e.into_inner());
        let changed = if dead {
            map.insert(broker, epoch) != Some(epoch)
        } else {
            map.remove(&broker).is_some()
        };
        drop(map);
        if changed {
            if dead {
                tracing::warn!(broker, "broker unreachable: its process is gone");
            } else {
                tracing::info!(broker, "broker reachable again");
            }
            self.changed.send_modify(|g| *g += 1);
        }
    }
}

/// The inter-broker endpoint of `broker` (host and address), and its registration epoch.
async fn endpoint(
    cluster: &Cluster,
    broker: i32,
    listener: &str,
) -> Option<(String, SocketAddr, i64)> {
    let (endpoint, epoch) = {
        let m = cluster.metadata();
        let epoch = *m.broker_epochs.get(&broker)?;
        (m.brokers.get(&broker)?.endpoint_for(listener)?, epoch)
    };
    let port = u16::try_from(endpoint.port).ok()?;
    let addr = tokio::net::lookup_host((endpoint.host.as_str(), port))
        .await
        .ok()?
        .next()?;
    Some((endpoint.host, addr, epoch))
}

/// Probes every other registered broker until the returned handle is aborted.
pub fn watch_brokers(
    cluster: Arc<Cluster>,
    listener: String,
    connector: Connector,
    liveness: Arc<Liveness>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut probes: BTreeMap<i32, tokio::task::JoinHandle<()>> = BTreeMap::new();
        let mut changes = cluster.subscribe();
        loop {
            let brokers: Vec<i32> = cluster
                .metadata()
                .brokers
                .keys()
                .copied()
                .filter(|b| *b != cluster.broker_id)
                .collect();
            probes.retain(|b, h| {
                let keep = brokers.contains(b) && !h.is_finished();
                if !keep {
                    h.abort();
                }
                keep
            });
            for b in brokers {
                probes.entry(b).or_insert_with(|| {
                    tokio::spawn(probe(
                        cluster.clone(),
                        b,
                        listener.clone(),
                        connector.clone(),
                        liveness.clone(),
                    ))
                });
            }
            if changes.changed().await.is_err() {
                return;
            }
        }
    })
}

impl Drop for ProbeSet {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Aborts the probes when dropped (when the controller stops leading).
#[derive(Debug)]
pub struct ProbeSet(pub tokio::task::JoinHandle<()>);

/// One probe's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Alive,
    Gone,
    /// Paused, overloaded or unreachable for another reason: the session decides.
    Unknown,
}

/// Probes `addr` once over `conn` (opened if needed, dropped when it breaks).
async fn probe_once(
    conn: &mut Option<AsyncConn>,
    connector: &Connector,
    host: &str,
    addr: SocketAddr,
) -> Verdict {
    if conn.as_ref().is_some_and(|c| c.addr() != addr) {
        *conn = None;
    }
    if conn.is_none() {
        match connector
            .connect(host, addr, "controller-probe", PROBE_TIMEOUT, 1 << 20)
            .await
        {
            Ok(c) => *conn = Some(c),
            Err(sluice_kafka::ClientError::Connect(_, e))
                if e.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                return Verdict::Gone;
            }
            Err(_) => return Verdict::Unknown,
        }
    }
    let c = conn.as_mut().expect("connected");
    let answer: Result<ApiVersionsResponse, _> = c
        .call(
            ApiKey::ApiVersions,
            0,
            &ApiVersionsRequest::default(),
            Duration::ZERO,
        )
        .await;
    match answer {
        Ok(_) => Verdict::Alive,
        Err(sluice_kafka::ClientError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::TimedOut =>
        {
            *conn = None;
            Verdict::Unknown
        }
        Err(_) => {
            // Reset or closed: the process is gone (or restarting).
            *conn = None;
            Verdict::Gone
        }
    }
}

async fn probe(
    cluster: Arc<Cluster>,
    broker: i32,
    listener: String,
    connector: Connector,
    liveness: Arc<Liveness>,
) {
    let mut conn: Option<AsyncConn> = None;
    let mut last_epoch = None;
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let Some((host, addr, epoch)) = endpoint(&cluster, broker, &listener).await else {
            continue;
        };
        if last_epoch != Some(epoch) {
            conn = None;
            last_epoch = Some(epoch);
        }
        match probe_once(&mut conn, &connector, &host, addr).await {
            Verdict::Alive => liveness.set(broker, epoch, false),
            Verdict::Gone => liveness.set(broker, epoch, true),
            Verdict::Unknown => {}
        }
    }
}

/// Resolves once `broker`'s process is found gone (refused, reset or closed connections).
pub async fn until_gone(
    cluster: Arc<Cluster>,
    broker: i32,
    listener: String,
    connector: Connector,
) {
    let mut conn: Option<AsyncConn> = None;
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let Some((host, addr, _)) = endpoint(&cluster, broker, &listener).await else {
            continue;
        };
        if probe_once(&mut conn, &connector, &host, addr).await == Verdict::Gone {
            return;
        }
    }
}
