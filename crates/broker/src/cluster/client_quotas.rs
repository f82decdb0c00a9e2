//! Client quotas in coord, in Kafka's ZooKeeper layout:
//!
//! ```text
//! /config/clients/<client-id>                    {"version":1,"config":{"producer_byte_rate":"1024"}}
//! /config/users/<user>                           (same JSON; `<default>` names the default)
//! /config/users/<user>/clients/<client-id>
//! /config/changes/config_change_NNNNNNNNNN       {"version":2,"entity_path":"clients/<client-id>"}
//! ```
//!
//! Every broker follows `/config/clients` and `/config/users` with persistent recursive
//! watches ([`follow_client_quotas`]), so a change made through any broker applies on all of
//! them without a restart. The change notifications are written as a Kafka broker in ZooKeeper
//! mode writes them (and purged after 15 minutes, as Kafka purges them) for tools and brokers
//! that read them; this broker itself does not need them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zookeeper_client as zk;

use super::{parse, persistent, Cluster, ClusterError, Result};
use crate::quotas::entity::{Entity, QuotaKey, QuotaTable, Quotas};

pub const CONFIG_CLIENTS: &str = "/config/clients";
pub const CONFIG_USERS: &str = "/config/users";
pub const CONFIG_CHANGES: &str = "/config/changes";

/// Notifications older than this are deleted (Kafka's `changeExpirationMs`).
const NOTIFICATION_EXPIRY: Duration = Duration::from_secs(15 * 60);

/// `/config/<entity_path>`: an entity's configuration, quota keys among others (Kafka keeps a
/// user's SCRAM credentials in the same znode; keys this broker does not know are kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityConfig {
    pub version: i32,
    pub config: BTreeMap<String, String>,
}

/// `/config/changes/config_change_<seq>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeNotification {
    pub version: i32,
    pub entity_path: String,
}

/// The quota keys of an entity's configuration.
pub fn quotas_of(config: &BTreeMap<String, String>) -> Quotas {
    config
        .iter()
        .filter_map(|(k, v)| Some((QuotaKey::parse(k)?, v.trim().parse::<f64>().ok()?)))
        .collect()
}

/// A value as Kafka stores it: the byte rates (LONG) as whole numbers, the others as doubles.
fn stored(key: QuotaKey, value: f64) -> String {
    match key {
        QuotaKey::ProducerByteRate | QuotaKey::ConsumerByteRate => format!("{}", value as i64),
        _ => format!("{value:?}"),
    }
}

impl Cluster {
    /// Every client, user and user/client entity's quotas as coord holds them now (entities
    /// without a quota key are left out).
    pub async fn read_client_quotas(&self) -> Result<QuotaTable> {
        let c = self.client();
        let mut table = QuotaTable::default();
        let mut paths = Vec::new();
        for name in children(&c, CONFIG_CLIENTS).await? {
            paths.push(format!("clients/{name}"));
        }
        for user in children(&c, CONFIG_USERS).await? {
            paths.push(format!("users/{user}"));
            for name in children(&c, &format!("{CONFIG_USERS}/{user}/clients")).await? {
                paths.push(format!("users/{user}/clients/{name}"));
            }
        }
        for p in paths {
            let Some(entity) = Entity::from_entity_path(&p) else {
                continue;
            };
            let path = format!("/config/{p}");
            let data = match c.get_data(&path).await {
                Ok((d, _)) => d,
                Err(zk::Error::NoNode) => continue,
                Err(e) => return Err(e.into()),
            };
            // A user's own znode may be empty when only its clients have quotas.
            if data.is_empty() {
                continue;
            }
            match parse::<EntityConfig>(&path, &data) {
                Ok(cfg) => {
                    let q = quotas_of(&cfg.config);
                    if !q.is_empty() {
                        table.entities.insert(entity, q);
                    }
                }
                Err(e) => tracing::warn!("{e}"),
            }
        }
        Ok(table)
    }

    /// Sets (`Some`) and removes (`None`) quota keys of `entity` with a compare-and-set of its
    /// znode (created with its parents if missing), then writes a change notification.
    /// Returns the entity's quotas as written.
    pub async fn alter_client_quotas(
        &self,
        entity: &Entity,
        ops: &[(QuotaKey, Option<f64>)],
    ) -> Result<Quotas> {
        let entity_path = entity.entity_path();
        let path = format!("/config/{entity_path}");
        let c = self.client();
        loop {
            let (mut cfg, version) = match c.get_data(&path).await {
                Ok((d, stat)) if d.is_empty() => (empty_config(), Some(stat.version)),
                Ok((d, stat)) => (parse::<EntityConfig>(&path, &d)?, Some(stat.version)),
                Err(zk::Error::NoNode) => (empty_config(), None),
                Err(e) => return Err(e.into()),
            };
            for (k, v) in ops {
                match v {
                    Some(v) => cfg.config.insert(k.name().to_string(), stored(*k, *v)),
                    None => cfg.config.remove(k.name()),
                };
            }
            let data = serde_json::to_vec(&cfg).expect("json");
            let written = match version {
                Some(v) => c.set_data(&path, &data, Some(v)).await.map(|_| ()),
                None => {
                    // Parents first (`/config/users/<u>/clients` for a user's client).
                    let mut parent = String::new();
                    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
                    for part in &parts[..parts.len() - 1] {
                        parent.push('/');
                        parent.push_str(part);
                        super::ensure(&c, &parent, b"").await?;
                    }
                    c.create(&path, &data, &persistent()).await.map(|_| ())
                }
            };
            match written {
                Ok(()) => break,
                Err(zk::Error::BadVersion) | Err(zk::Error::NodeExists) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        tracing::info!(entity = entity_path, ?ops, "client quotas changed");
        self.notify_config_change(&entity_path).await?;
        Ok(quotas_of(&self.read_entity_config(&path).await?))
    }

    async fn read_entity_config(&self, path: &str) -> Result<BTreeMap<String, String>> {
        match self.client().get_data(path).await {
            Ok((d, _)) if d.is_empty() => Ok(BTreeMap::new()),
            Ok((d, _)) => Ok(parse::<EntityConfig>(path, &d)?.config),
            Err(zk::Error::NoNode) => Ok(BTreeMap::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Kafka's change notification for `entity_path`, and the purge of notifications older
    /// than 15 minutes.
    async fn notify_config_change(&self, entity_path: &str) -> Result<()> {
        let c = self.client();
        let n = ChangeNotification {
            version: 2,
            entity_path: entity_path.to_string(),
        };
        let sequential = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
        c.create(
            &format!("{CONFIG_CHANGES}/config_change_"),
            &serde_json::to_vec(&n).expect("json"),
            &sequential,
        )
        .await?;
        let now_ms = super::now_ms_string().parse::<i64>().unwrap_or(0);
        for name in children(&c, CONFIG_CHANGES).await? {
            let path = format!("{CONFIG_CHANGES}/{name}");
            if let Ok(Some(stat)) = c.check_stat(&path).await {
                if now_ms - stat.ctime > NOTIFICATION_EXPIRY.as_millis() as i64 {
                    let _ = c.delete(&path, None).await;
                }
            }
        }
        Ok(())
    }
}

fn empty_config() -> EntityConfig {
    EntityConfig {
        version: 1,
        config: BTreeMap::new(),
    }
}

async fn children(c: &zk::Client, path: &str) -> Result<Vec<String>> {
    match c.list_children(path).await {
        Ok(v) => Ok(v),
        Err(zk::Error::NoNode) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Keeps `quotas` equal to coord's client quotas: persistent recursive watches on
/// `/config/clients` and `/config/users`, a re-read after each burst of changes, and a fresh
/// start on a new session. Runs until the broker stops.
pub async fn follow_client_quotas(cluster: Arc<Cluster>, quotas: Arc<crate::quotas::ClientQuotas>) {
    let mut sessions = cluster.session_changes();
    loop {
        let result: Result<()> = async {
            let c = cluster.client();
            let mut clients = c
                .watch(CONFIG_CLIENTS, zk::AddWatchMode::PersistentRecursive)
                .await?;
            let mut users = c
                .watch(CONFIG_USERS, zk::AddWatchMode::PersistentRecursive)
                .await?;
            loop {
                // Read after the watches are set, so no change falls between.
                let mut failures = 0;
                loop {
                    match cluster.read_client_quotas().await {
                        Ok(t) => {
                            quotas.set_table(t);
                            break;
                        }
                        Err(ClusterError::Zk(zk::Error::SessionExpired)) => {
                            return Err(ClusterError::Zk(zk::Error::SessionExpired))
                        }
                        Err(e) => {
                            failures += 1;
                            if failures == 1 {
                                tracing::warn!(error = %e, "client quotas could not be read; retrying");
                            }
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
                let ev = tokio::select! {
                    e = clients.changed() => e,
                    e = users.changed() => e,
                    _ = sessions.changed() => return Ok(()),
                };
                if matches!(
                    ev.session_state,
                    zk::SessionState::Expired | zk::SessionState::Closed | zk::SessionState::AuthFailed
                ) {
                    return Err(ClusterError::Zk(zk::Error::SessionExpired));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        .await;
        match result {
            // A new session: watch again through it.
            Ok(()) => {}
            Err(ClusterError::Zk(zk::Error::SessionExpired)) => {
                let _ = sessions.changed().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow client quotas in coord; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
