//! The Kafka APIs this broker serves: one module per API, and one table ([`SUPPORTED`]) that
//! both routes requests and builds the ApiVersions answer, so the two cannot drift apart.

pub mod admin;
pub mod api_versions;
pub mod client_quotas;
pub mod configs;
pub mod controlled_shutdown;
pub mod elect_leaders;
pub mod fetch;
pub mod groups;
pub mod list_offsets;
pub mod metadata;
pub mod produce;
pub mod reassignments;
pub mod scram_credentials;

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;

use crate::cluster::Metadata;
use crate::replica::{Partition, PartitionError};
use crate::Broker;

/// An API and the versions served. Record-carrying APIs start where record batches (magic v2)
/// start: Produce v3, Fetch v4.
#[derive(Debug, Clone, Copy)]
pub struct Supported {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
}

const fn api(key: ApiKey, min: i16, max: i16) -> Supported {
    Supported { key, min, max }
}

/// Every API and version range the broker answers.
pub const SUPPORTED: &[Supported] = &[
    api(ApiKey::Produce, 3, 11),
    api(ApiKey::Fetch, 4, 17),
    api(ApiKey::ListOffsets, 0, 9),
    api(ApiKey::Metadata, 0, 12),
    api(ApiKey::ApiVersions, 0, 4),
    api(ApiKey::CreateTopics, 0, 7),
    api(ApiKey::DeleteTopics, 0, 6),
    api(ApiKey::FindCoordinator, 0, 6),
    api(ApiKey::JoinGroup, 0, 9),
    api(ApiKey::SyncGroup, 0, 5),
    api(ApiKey::Heartbeat, 0, 4),
    api(ApiKey::LeaveGroup, 0, 5),
    api(ApiKey::OffsetCommit, 0, 9),
    api(ApiKey::OffsetFetch, 0, 9),
    api(ApiKey::ListGroups, 0, 5),
    api(ApiKey::DescribeGroups, 0, 5),
    api(ApiKey::DeleteGroups, 0, 2),
    api(ApiKey::InitProducerId, 0, 5),
    api(ApiKey::OffsetForLeaderEpoch, 0, 4),
    api(ApiKey::DeleteRecords, 0, 2),
    api(ApiKey::CreatePartitions, 0, 3),
    api(ApiKey::DescribeConfigs, 0, 4),
    api(ApiKey::AlterConfigs, 0, 2),
    api(ApiKey::IncrementalAlterConfigs, 0, 1),
    api(ApiKey::DescribeCluster, 0, 1),
    api(ApiKey::ElectLeaders, 0, 2),
    api(ApiKey::AlterPartitionReassignments, 0, 0),
    api(ApiKey::ListPartitionReassignments, 0, 0),
    api(ApiKey::DescribeClientQuotas, 0, 1),
    api(ApiKey::AlterClientQuotas, 0, 1),
    api(ApiKey::DescribeUserScramCredentials, 0, 0),
    // Between brokers.
    api(ApiKey::ControlledShutdown, 1, 3),
];

/// The served version range of `key`, if it is served at all.
pub fn supported(key: ApiKey) -> Option<Supported> {
    SUPPORTED.iter().copied().find(|s| s.key == key)
}

/// The partition `topic`/`partition` with its leader epoch, if this broker leads it (the
/// partition's own role says so, not cached metadata); otherwise the error to answer
/// (UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_OR_FOLLOWER).
pub fn led_here(
    broker: &Broker,
    m: &Metadata,
    topic: &str,
    partition: i32,
) -> Result<(Arc<Partition>, i32), ResponseError> {
    let led = broker
        .replicas
        .get(topic, partition)
        .and_then(|p| p.leader_epoch().map(|e| (p, e)));
    match led {
        Some(x) => Ok(x),
        None if m
            .topics
            .get(topic)
            .is_some_and(|t| t.partitions.contains_key(&partition)) =>
        {
            Err(ResponseError::NotLeaderOrFollower)
        }
        None => Err(ResponseError::UnknownTopicOrPartition),
    }
}

/// The leader and leader epoch of `topic`/`partition`, for a NOT_LEADER_OR_FOLLOWER answer
/// that tells the client where to go (KIP-951): the newer of what this broker's own replica
/// follows and what the metadata says. (A replica that just stepped down knows its successor
/// before any snapshot does; a broker that holds no replica only has the metadata.)
pub fn current_leader(
    broker: &Broker,
    m: &Metadata,
    topic: &str,
    partition: i32,
) -> Option<(i32, i32)> {
    let from_role = broker
        .replicas
        .get(topic, partition)
        .and_then(|p| p.followed_leader());
    let from_metadata = m
        .topics
        .get(topic)
        .and_then(|t| t.partitions.get(&partition))
        .and_then(|p| p.state.as_ref())
        .filter(|s| s.leader >= 0)
        .map(|s| (s.leader, s.leader_epoch));
    match (from_role, from_metadata) {
        (Some(r), Some(md)) => Some(if r.1 >= md.1 { r } else { md }),
        (r, md) => r.or(md),
    }
}

/// Broker `id`'s endpoint on `listener`: host, port, rack.
pub fn endpoint(m: &Metadata, listener: &str, id: i32) -> Option<(String, i32, Option<String>)> {
    let reg = m.brokers.get(&id)?;
    let ep = reg
        .parsed_endpoints()
        .into_iter()
        .find(|e| e.listener == listener)?;
    Some((ep.host, ep.port, reg.rack.clone()))
}

/// The wire error for a partition's refusal: the one place partition errors become codes.
pub fn partition_error(e: &PartitionError) -> ResponseError {
    match e {
        PartitionError::NotLeader { .. } | PartitionError::NotFollower => {
            ResponseError::NotLeaderOrFollower
        }
        PartitionError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
        PartitionError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
        PartitionError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
        PartitionError::Log(l) => ResponseError::try_from_code(l.kafka_error_code())
            .unwrap_or(ResponseError::UnknownServerError),
        PartitionError::Sequence(s) => ResponseError::try_from_code(s.kafka_error_code())
            .unwrap_or(ResponseError::UnknownServerError),
    }
}
