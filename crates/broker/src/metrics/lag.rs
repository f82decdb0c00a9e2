//! Consumer lag for `kafka_exporter`'s families, reported by each group's coordinator: the
//! group's committed offsets (held in memory) against each partition's latest offset (its high
//! watermark, what ListOffsets answers a consumer for "latest").
//!
//! ```text
//!  GroupCoordinator::committed ─► (group, topic, partition, committed)
//!        partitions led here ─────────────► high watermark (local)
//!        led elsewhere, by leader ─► ListOffsets(latest) to each leader, in parallel ─┐
//!                                     all answers within LIST_OFFSETS_LIMIT, or without ─┘
//! ```
//!
//! A scrape never hangs on another broker: what has not answered within
//! [`LIST_OFFSETS_LIMIT`] (a dead or stopped leader) has no lag series in that scrape; its
//! committed offset still has one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ListOffsetsRequest, ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::groups::GroupOffsets;
use crate::Broker;

/// The longest a scrape waits for other brokers' latest offsets.
pub const LIST_OFFSETS_LIMIT: Duration = Duration::from_secs(1);

/// The ListOffsets version asked (latest offset, isolation level: read uncommitted).
const LIST_OFFSETS_VERSION: i16 = 2;

/// Groups coordinated here and the latest offsets of the partitions they committed.
#[derive(Debug, Default)]
pub struct Lag {
    pub groups: Vec<GroupOffsets>,
    /// Latest offset by (topic, partition); missing when its leader could not say in time.
    pub latest: HashMap<(String, i32), i64>,
}

/// Gathers the lag of every group coordinated here.
pub async fn gather(broker: &Arc<Broker>) -> Lag {
    let groups = broker.groups.committed();
    let mut latest = HashMap::new();
    let mut remote: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
    {
        let m = broker.cluster.metadata();
        let mut seen = std::collections::HashSet::new();
        for (t, p, _) in groups.iter().flat_map(|g| &g.offsets) {
            if !seen.insert((t.as_str(), *p)) {
                continue;
            }
            let here = broker
                .replicas
                .get(t, *p)
                .filter(|part| part.leader_epoch().is_some());
            if let Some(part) = here {
                latest.insert((t.clone(), *p), part.offsets().high_watermark as i64);
                continue;
            }
            let leader = m
                .topics
                .get(t)
                .and_then(|tm| tm.partitions.get(p))
                .and_then(|pm| pm.leader());
            if let Some(l) = leader.filter(|l| *l != broker.id) {
                remote.entry(l).or_default().push((t.clone(), *p));
            }
        }
    }
    if !remote.is_empty() {
        let deadline = tokio::time::Instant::now() + LIST_OFFSETS_LIMIT;
        let mut asks = tokio::task::JoinSet::new();
        for (leader, parts) in remote {
            let b = broker.clone();
            asks.spawn(async move { ask_latest(&b, leader, parts).await });
        }
        // Whatever has not answered at the deadline is aborted with the set.
        while let Ok(Some(answer)) = tokio::time::timeout_at(deadline, asks.join_next()).await {
            if let Ok(found) = answer {
                latest.extend(found);
            }
        }
    }
    Lag { groups, latest }
}

/// The latest offsets of `parts` as broker `leader` answers ListOffsets; what it refuses (it
/// is no longer the leader) or cannot answer is left out.
async fn ask_latest(
    broker: &Broker,
    leader: i32,
    parts: Vec<(String, i32)>,
) -> Vec<((String, i32), i64)> {
    let Some((host, addr)) = crate::replica::fetcher::broker_address(broker, leader).await else {
        return Vec::new();
    };
    let client_id = format!("broker-{}-metrics", broker.id);
    // Over the inter-broker listener, as replica fetchers connect (TLS when it is SSL).
    let Ok(mut conn) = broker
        .connector
        .connect(&host, addr, &client_id, LIST_OFFSETS_LIMIT, 16 << 20)
        .await
    else {
        tracing::debug!(
            leader,
            "metrics: cannot reach the leader for its latest offsets"
        );
        return Vec::new();
    };
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t).or_default().push(p);
    }
    let mut req = ListOffsetsRequest::default();
    req.replica_id = BrokerId(-1);
    req.isolation_level = 0;
    req.topics = by_topic
        .into_iter()
        .map(|(t, ps)| {
            let mut lt = ListOffsetsTopic::default();
            lt.name = TopicName(StrBytes::from_string(t));
            lt.partitions = ps
                .into_iter()
                .map(|p| {
                    let mut lp = ListOffsetsPartition::default();
                    lp.partition_index = p;
                    lp.current_leader_epoch = -1;
                    lp.timestamp = -1;
                    lp
                })
                .collect();
            lt
        })
        .collect();
    let resp: ListOffsetsResponse = match conn
        .call(
            ApiKey::ListOffsets,
            LIST_OFFSETS_VERSION,
            &req,
            Duration::ZERO,
        )
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(leader, error = %e, "metrics: no latest offsets from the leader");
            return Vec::new();
        }
    };
    resp.topics
        .into_iter()
        .flat_map(|t| {
            let name = t.name.0.to_string();
            t.partitions
                .into_iter()
                .filter(|p| p.error_code == 0 && p.offset >= 0)
                .map(move |p| ((name.clone(), p.partition_index), p.offset))
        })
        .collect()
}
