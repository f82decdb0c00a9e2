//! Which connections a listener takes: `max.connections` (broker-wide; at the limit the
//! listeners stop accepting, and new connections wait in the kernel's listen backlog until one
//! closes) and `max.connections.per.ip` with its overrides (a connection over its address's
//! limit is closed at once, as Kafka does). The inter-broker listener is exempt from
//! `max.connections` when it is a listener of its own, so replication never waits behind
//! clients.
//!
//! ```text
//!  accept loop ── slot (max.connections) ── accept ── admit(ip) ──► serve(…, Admitted)
//!                                                       └─ over the per-address limit: close
//!  Admitted dropped (connection ended) ── frees the slot and the address's count
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use sluice_config::BrokerConfig;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::warn_every::WarnEvery;

/// The broker's connection limits and counts, shared by its listeners.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    per_ip: i32,
    overrides: HashMap<IpAddr, i32>,
    open: Mutex<HashMap<IpAddr, i32>>,
    /// Refused connections: one warning per 10 s.
    refusals: WarnEvery,
}

/// A connection counted against the limits until dropped.
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
    ip: IpAddr,
    _slot: Option<OwnedSemaphorePermit>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self
            .admission
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n <= 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl Admission {
    pub fn new(config: &BrokerConfig) -> Arc<Admission> {
        let mut overrides = HashMap::new();
        for (host, n) in &config.max_connections_per_ip_overrides {
            match resolve(host) {
                Some(ip) => {
                    overrides.insert(ip, *n);
                }
                None => tracing::warn!(
                    host,
                    "max.connections.per.ip.overrides: cannot resolve this host; its override is ignored"
                ),
            }
        }
        Arc::new(Admission {
            slots: Arc::new(Semaphore::new(
                (config.max_connections.max(0) as usize).min(Semaphore::MAX_PERMITS),
            )),
            per_ip: config.max_connections_per_ip,
            overrides,
            open: Mutex::new(HashMap::new()),
            refusals: WarnEvery::new(10_000),
        })
    }

    /// Waits for a free `max.connections` slot (none for an exempt listener).
    pub async fn slot(&self, exempt: bool) -> Option<OwnedSemaphorePermit> {
        if exempt {
            return None;
        }
        self.slots.clone().acquire_owned().await.ok()
    }

    /// Counts a connection from `ip`, or `None` when that address is at its limit.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Option<Admitted> {
        let limit = self.overrides.get(&ip).copied().unwrap_or(self.per_ip);
        {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            let n = open.entry(ip).or_default();
            if *n < limit {
                *n += 1;
                return Some(Admitted {
                    admission: self.clone(),
                    ip,
                    _slot: slot,
                });
            }
            if *n == 0 {
                open.remove(&ip);
            }
        }
        self.warn_refused(ip, limit);
        None
    }

    fn warn_refused(&self, ip: IpAddr, limit: i32) {
        if let Some(held_back) = self.refusals.due() {
            let refused = held_back + 1;
            tracing::warn!(%ip, limit, refused,
                "rejected connection from {ip}: it already has the configured maximum of {limit} connections (max.connections.per.ip)");
        }
    }
}

fn resolve(host: &str) -> Option<IpAddr> {
    if let Ok(ip) = host.parse() {
        return Some(ip);
    }
    use std::net::ToSocketAddrs;
    (host, 0).to_socket_addrs().ok()?.next().map(|a| a.ip())
}
