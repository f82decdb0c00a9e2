//! Metadata: brokers (the endpoint of the listener the request came in on), controller, and
//! topics with partition leaders, leader epochs, replicas and ISR — auto-creating requested
//! topics when `auto.create.topics.enable` allows.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::Metadata;
use crate::Broker;

pub async fn handle(
    broker: &Broker,
    listener: &str,
    version: i16,
    req: MetadataRequest,
) -> MetadataResponse {
    let requested: Option<Vec<String>> = match &req.topics {
        None => None,
        // v0 has no null: an empty list means every topic.
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(
            t.iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .collect(),
        ),
    };
    let auto_create =
        broker.config.auto_create_topics_enable && (version < 4 || req.allow_auto_topic_creation);
    let mut created = Vec::new();
    if let (Some(names), true) = (&requested, auto_create) {
        let m = broker.cluster.metadata();
        for name in names {
            if !m.topics.contains_key(name)
                && crate::topics::valid_name(name).is_ok()
                && !name.starts_with("__")
            {
                if let Err(e) = broker.auto_create_topic(name).await {
                    tracing::warn!(topic = %name, error = %e, "auto-creating topic failed");
                }
                created.push(name.clone());
            }
        }
        for name in &created {
            broker
                .cluster
                .wait_for_leaders(name, Duration::from_secs(2))
                .await;
        }
    }
    let m = broker.cluster.metadata();
    let mut resp = build(&m, listener, requested.as_deref());
    // Topics being auto-created (or waiting for enough brokers to be): "not yet", so clients
    // ask again rather than give up on an unknown topic.
    for t in &mut resp.topics {
        let name = t.name.as_ref().map(|n| n.0.as_str()).unwrap_or_default();
        if created.iter().any(|c| c == name) && !m.topics.contains_key(name) {
            t.error_code = ResponseError::LeaderNotAvailable.code();
        }
    }
    resp
}

/// The response for `requested` topics (`None` = all) as seen through `listener`.
pub fn build(m: &Metadata, listener: &str, requested: Option<&[String]>) -> MetadataResponse {
    let mut r = MetadataResponse::default();
    r.cluster_id = Some(StrBytes::from_string(m.cluster_id.clone()));
    r.controller_id = BrokerId(m.controller.unwrap_or(-1));
    r.brokers = m
        .brokers
        .iter()
        .filter_map(|(id, reg)| {
            let ep = reg
                .parsed_endpoints()
                .into_iter()
                .find(|e| e.listener == listener)?;
            let mut b = MetadataResponseBroker::default();
            b.node_id = BrokerId(*id);
            b.host = StrBytes::from_string(ep.host);
            b.port = ep.port;
            b.rack = reg.rack.clone().map(StrBytes::from_string);
            Some(b)
        })
        .collect();
    let names: Vec<String> = match requested {
        Some(n) => n.to_vec(),
        None => m.topics.keys().cloned().collect(),
    };
    r.topics = names
        .into_iter()
        .map(|name| {
            let mut t = MetadataResponseTopic::default();
            t.name = Some(TopicName(StrBytes::from_string(name.clone())));
            t.is_internal = name.starts_with("__");
            match m.topics.get(&name) {
                None => {
                    t.error_code = if crate::topics::valid_name(&name).is_err() {
                        ResponseError::InvalidTopicException.code()
                    } else {
                        ResponseError::UnknownTopicOrPartition.code()
                    };
                }
                Some(meta) => {
                    t.topic_id = meta.id;
                    t.partitions = meta
                        .partitions
                        .iter()
                        .map(|(&p, pm)| {
                            let mut out = MetadataResponsePartition::default();
                            out.partition_index = p;
                            out.replica_nodes = pm.replicas.iter().map(|&b| BrokerId(b)).collect();
                            out.offline_replicas = pm
                                .replicas
                                .iter()
                                .filter(|b| !m.brokers.contains_key(b))
                                .map(|&b| BrokerId(b))
                                .collect();
                            match (&pm.state, pm.leader()) {
                                (Some(s), Some(leader)) => {
                                    out.leader_id = BrokerId(leader);
                                    out.leader_epoch = s.leader_epoch;
                                    out.isr_nodes = s.isr.iter().map(|&b| BrokerId(b)).collect();
                                }
                                (s, _) => {
                                    out.error_code = ResponseError::LeaderNotAvailable.code();
                                    out.leader_id = BrokerId(-1);
                                    out.leader_epoch = s.as_ref().map_or(-1, |s| s.leader_epoch);
                                    out.isr_nodes = s
                                        .as_ref()
                                        .map(|s| s.isr.iter().map(|&b| BrokerId(b)).collect())
                                        .unwrap_or_default();
                                }
                            }
                            out
                        })
                        .collect();
                }
            }
            t
        })
        .collect();
    r
}

/// DescribeCluster: the cluster id, the controller and every live broker's endpoint for the
/// listener the request came in on.
pub fn describe_cluster(
    broker: &Broker,
    listener: &str,
    req: kafka_protocol::messages::DescribeClusterRequest,
) -> kafka_protocol::messages::DescribeClusterResponse {
    use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
    let mut r = kafka_protocol::messages::DescribeClusterResponse::default();
    // Only brokers are described (endpoint type 1); controllers are not separate here.
    if req.endpoint_type > 1 {
        r.error_code = ResponseError::InvalidRequest.code();
        r.error_message = Some(StrBytes::from_static_str(
            "only broker endpoints (type 1) can be described",
        ));
        return r;
    }
    r.endpoint_type = 1;
    let meta = build(&broker.cluster.metadata(), listener, Some(&[]));
    r.cluster_id = meta.cluster_id.unwrap_or_default();
    r.controller_id = meta.controller_id;
    r.cluster_authorized_operations = i32::MIN;
    r.brokers = meta
        .brokers
        .into_iter()
        .map(|b| {
            let mut d = DescribeClusterBroker::default();
            d.broker_id = b.node_id;
            d.host = b.host;
            d.port = b.port;
            d.rack = b.rack;
            d
        })
        .collect();
    r
}
