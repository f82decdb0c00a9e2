//! ElectLeaders (v0–v2): preferred or unclean leader election for some or all partitions,
//! carried out by the controller (`kafka-leader-election`, AdminClient.electLeaders). Sent to
//! another broker it is refused with NOT_CONTROLLER, and clients send it to the controller.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::{ElectionKind, ElectionOutcome};
use crate::Broker;

pub async fn handle(
    broker: &Broker,
    version: i16,
    req: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let mut resp = ElectLeadersResponse::default();
    let kind = if version >= 1 && req.election_type == 1 {
        ElectionKind::Unclean
    } else {
        ElectionKind::Preferred
    };
    let partitions = req.topic_partitions.map(|tps| {
        tps.into_iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect::<Vec<_>>()
    });
    let Some(results) = broker.cluster.elect(kind, partitions).await else {
        resp.error_code = ResponseError::NotController.code();
        return resp;
    };
    let mut by_topic: std::collections::BTreeMap<String, Vec<PartitionResult>> = Default::default();
    for ((t, p), outcome) in results {
        let mut r = PartitionResult::default();
        r.partition_id = p;
        let (code, msg) = match outcome {
            ElectionOutcome::Elected => (None, None),
            ElectionOutcome::NotNeeded => (
                Some(ResponseError::ElectionNotNeeded),
                Some("Leader election not needed for topic partition."),
            ),
            ElectionOutcome::NotAvailable => match kind {
                ElectionKind::Preferred => (
                    Some(ResponseError::PreferredLeaderNotAvailable),
                    Some("The preferred replica is not alive or not in sync."),
                ),
                ElectionKind::Unclean => (
                    Some(ResponseError::EligibleLeadersNotAvailable),
                    Some("No replica of the partition is alive."),
                ),
            },
            ElectionOutcome::UnknownPartition => (
                Some(ResponseError::UnknownTopicOrPartition),
                Some("The partition does not exist."),
            ),
        };
        r.error_code = code.map_or(0, |c| c.code());
        r.error_message = msg.map(StrBytes::from_static_str);
        by_topic.entry(t).or_default().push(r);
    }
    resp.replica_election_results = by_topic
        .into_iter()
        .map(|(t, partition_result)| {
            let mut r = ReplicaElectionResult::default();
            r.topic = TopicName(StrBytes::from_string(t));
            r.partition_result = partition_result;
            r
        })
        .collect();
    resp
}
