//! AlterPartitionReassignments and ListPartitionReassignments (v0, KIP-455): moving partitions
//! between brokers (`kafka-reassign-partitions`). The controller carries them out
//! (`cluster::controller::reassignment`); sent to another broker, Alter is refused with
//! NOT_CONTROLLER. List answers from this broker's metadata.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::ReassignOutcome;
use crate::Broker;

pub async fn alter(
    broker: &Broker,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let mut resp = AlterPartitionReassignmentsResponse::default();
    let wanted: Vec<(String, i32, Option<Vec<i32>>)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
                )
            })
        })
        .collect();
    let Some(results) = broker.cluster.reassign(wanted).await else {
        resp.error_code = ResponseError::NotController.code();
        resp.error_message = Some(StrBytes::from_static_str(
            "this broker is not the controller",
        ));
        return resp;
    };
    let mut by_topic: std::collections::BTreeMap<String, Vec<ReassignablePartitionResponse>> =
        Default::default();
    for ((t, p), outcome) in results {
        let mut r = ReassignablePartitionResponse::default();
        r.partition_index = p;
        let (code, msg) = match outcome {
            ReassignOutcome::Started | ReassignOutcome::Cancelled => (None, None),
            ReassignOutcome::NoneInProgress => (
                Some(ResponseError::NoReassignmentInProgress),
                Some("No reassignment is in progress for this partition.".to_string()),
            ),
            ReassignOutcome::UnknownPartition => (
                Some(ResponseError::UnknownTopicOrPartition),
                Some("The partition does not exist.".to_string()),
            ),
            ReassignOutcome::Invalid(m) => (Some(ResponseError::InvalidReplicaAssignment), Some(m)),
        };
        r.error_code = code.map_or(0, |c| c.code());
        r.error_message = msg.map(StrBytes::from_string);
        by_topic.entry(t).or_default().push(r);
    }
    resp.responses = by_topic
        .into_iter()
        .map(|(t, partitions)| {
            let mut r = ReassignableTopicResponse::default();
            r.name = TopicName(StrBytes::from_string(t));
            r.partitions = partitions;
            r
        })
        .collect();
    resp
}

pub fn list(
    broker: &Broker,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let mut resp = ListPartitionReassignmentsResponse::default();
    let m = broker.cluster.metadata();
    let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    for (t, tm) in &m.topics {
        let filter = match &wanted {
            None => None,
            Some(w) => match w.iter().find(|(name, _)| name == t) {
                Some((_, ps)) => Some(ps),
                None => continue,
            },
        };
        let mut parts = Vec::new();
        for (p, pm) in &tm.partitions {
            if filter.is_some_and(|f| !f.contains(p)) {
                continue;
            }
            if pm.adding.is_empty() && pm.removing.is_empty() {
                continue;
            }
            let mut o = OngoingPartitionReassignment::default();
            o.partition_index = *p;
            o.replicas = ids(&pm.replicas);
            o.adding_replicas = ids(&pm.adding);
            o.removing_replicas = ids(&pm.removing);
            parts.push(o);
        }
        if !parts.is_empty() {
            let mut ot = OngoingTopicReassignment::default();
            ot.name = TopicName(StrBytes::from_string(t.clone()));
            ot.partitions = parts;
            resp.topics.push(ot);
        }
    }
    resp
}
