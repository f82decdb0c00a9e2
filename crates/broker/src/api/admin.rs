//! Topic administration: CreateTopics, DeleteTopics and CreatePartitions write to the
//! coordinator; the controller carries them out, and the handlers wait (up to the request's
//! timeout) until the metadata shows the result, as Kafka's do. DeleteRecords moves a
//! partition's log start offset on its leader.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::{AddPartitionsError, CreateTopicError};
use crate::Broker;

fn timeout_of(ms: i32) -> Duration {
    Duration::from_millis(ms.clamp(0, 60_000) as u64)
}

pub async fn create_topics(broker: &Broker, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut resp = CreateTopicsResponse::default();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut out = CreatableTopicResult::default();
        out.name = t.name.clone();
        let fail = |out: &mut CreatableTopicResult, e: ResponseError, msg: String| {
            out.error_code = e.code();
            out.error_message = Some(StrBytes::from_string(msg));
        };
        let partitions = if t.num_partitions == -1 {
            broker.config.num_partitions
        } else {
            t.num_partitions
        };
        let rf = if t.replication_factor == -1 {
            broker.config.default_replication_factor
        } else {
            t.replication_factor
        };
        if let Err(msg) = crate::topics::valid_name(&name) {
            fail(&mut out, ResponseError::InvalidTopicException, msg);
        } else if let Err(msg) = crate::topics::valid_partition_count(partitions) {
            fail(&mut out, ResponseError::InvalidPartitions, msg);
        } else if rf <= 0 {
            fail(
                &mut out,
                ResponseError::InvalidReplicationFactor,
                format!("replication factor must be larger than 0, got {rf}"),
            );
        } else if !t.assignments.is_empty() {
            fail(
                &mut out,
                ResponseError::InvalidRequest,
                "manual replica assignment is not supported yet".into(),
            );
        } else {
            let configs: BTreeMap<String, String> = t
                .configs
                .iter()
                .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                .collect();
            if let Err(msg) = crate::topic_config::validate_all(
                configs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            ) {
                fail(&mut out, ResponseError::InvalidConfig, msg);
                resp.topics.push(out);
                continue;
            }
            out.num_partitions = partitions;
            out.replication_factor = rf;
            if req.validate_only {
                let live = broker.cluster.metadata().brokers.len();
                if broker.cluster.metadata().topics.contains_key(&name) {
                    fail(
                        &mut out,
                        ResponseError::TopicAlreadyExists,
                        format!("Topic '{name}' already exists."),
                    );
                } else if rf as usize > live {
                    fail(
                        &mut out,
                        ResponseError::InvalidReplicationFactor,
                        format!("Replication factor: {rf} larger than available brokers: {live}."),
                    );
                }
            } else {
                match broker
                    .cluster
                    .create_topic(&name, partitions, rf, configs)
                    .await
                {
                    Ok(Ok(())) => {
                        broker
                            .cluster
                            .wait_for_leaders(&name, timeout_of(req.timeout_ms))
                            .await;
                        if let Some(meta) = broker.cluster.metadata().topics.get(&name) {
                            out.topic_id = meta.id;
                        }
                    }
                    Ok(Err(CreateTopicError::Exists)) => fail(
                        &mut out,
                        ResponseError::TopicAlreadyExists,
                        format!("Topic '{name}' already exists."),
                    ),
                    Ok(Err(CreateTopicError::ReplicationFactor(rf, live))) => fail(
                        &mut out,
                        ResponseError::InvalidReplicationFactor,
                        format!("Replication factor: {rf} larger than available brokers: {live}."),
                    ),
                    Err(e) => fail(&mut out, ResponseError::UnknownServerError, e.to_string()),
                }
            }
        }
        resp.topics.push(out);
    }
    resp
}

pub async fn delete_topics(
    broker: &Broker,
    version: i16,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let mut names: Vec<(Option<String>, uuid::Uuid)> = req
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
        .collect();
    names.extend(
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)),
    );
    let mut resp = DeleteTopicsResponse::default();
    let m = broker.cluster.metadata();
    let mut waiting = Vec::new();
    for (name, id) in names {
        let mut out = DeletableTopicResult::default();
        out.topic_id = id;
        let name = name.or_else(|| {
            m.topics
                .iter()
                .find(|(_, t)| t.id == id)
                .map(|(n, _)| n.clone())
        });
        out.name = name.clone().map(|n| TopicName(StrBytes::from_string(n)));
        match name {
            _ if !broker.config.delete_topic_enable => {
                out.error_code = ResponseError::TopicDeletionDisabled.code();
                if version >= 5 {
                    out.error_message = Some(StrBytes::from_static_str(
                        "Topic deletion is disabled (delete.topic.enable=false).",
                    ));
                }
            }
            Some(n) if m.topics.contains_key(&n) => {
                match broker.cluster.request_topic_deletion(&n).await {
                    Ok(()) => waiting.push(n),
                    Err(e) => {
                        out.error_code = ResponseError::UnknownServerError.code();
                        out.error_message = Some(StrBytes::from_string(e.to_string()));
                    }
                }
            }
            _ => {
                out.error_code = if id.is_nil() {
                    ResponseError::UnknownTopicOrPartition.code()
                } else {
                    ResponseError::UnknownTopicId.code()
                };
            }
        }
        resp.responses.push(out);
    }
    let deadline = tokio::time::Instant::now() + timeout_of(req.timeout_ms);
    let mut rx = broker.cluster.subscribe();
    while waiting
        .iter()
        .any(|n| broker.cluster.metadata().topics.contains_key(n))
    {
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            for r in &mut resp.responses {
                if r.error_code == 0
                    && r.name.as_ref().is_some_and(|n| {
                        broker.cluster.metadata().topics.contains_key(n.0.as_str())
                    })
                {
                    r.error_code = ResponseError::RequestTimedOut.code();
                }
            }
            break;
        }
    }
    resp
}

pub async fn create_partitions(
    broker: &Broker,
    req: kafka_protocol::messages::CreatePartitionsRequest,
) -> kafka_protocol::messages::CreatePartitionsResponse {
    use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
    let mut resp = kafka_protocol::messages::CreatePartitionsResponse::default();
    let mut grown = Vec::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut out = CreatePartitionsTopicResult::default();
        out.name = t.name.clone();
        let assignments = t.assignments.map(|a| {
            a.into_iter()
                .map(|a| a.broker_ids.into_iter().map(|b| b.0).collect())
                .collect()
        });
        if let Err(msg) = crate::topics::valid_partition_count(t.count) {
            out.error_code = ResponseError::InvalidPartitions.code();
            out.error_message = Some(StrBytes::from_string(msg));
            resp.results.push(out);
            continue;
        }
        let (code, msg) = match broker
            .cluster
            .add_partitions(&name, t.count, assignments, !req.validate_only)
            .await
        {
            Ok(Ok(())) => {
                grown.push((name, t.count));
                (0, None)
            }
            Ok(Err(AddPartitionsError::UnknownTopic)) => (
                ResponseError::UnknownTopicOrPartition.code(),
                Some(format!("The topic '{name}' does not exist.")),
            ),
            Ok(Err(AddPartitionsError::NotAnIncrease { current, count })) => (
                ResponseError::InvalidPartitions.code(),
                Some(if count == current {
                    format!("Topic already has {current} partitions.")
                } else {
                    format!("Topic currently has {current} partitions, which is higher than the requested {count}.")
                }),
            ),
            Ok(Err(AddPartitionsError::Assignment(m))) => {
                (ResponseError::InvalidReplicaAssignment.code(), Some(m))
            }
            Ok(Err(AddPartitionsError::ReplicationFactor(rf, live))) => (
                ResponseError::InvalidReplicationFactor.code(),
                Some(format!(
                    "Replication factor: {rf} larger than available brokers: {live}."
                )),
            ),
            Err(e) => (
                ResponseError::UnknownServerError.code(),
                Some(e.to_string()),
            ),
        };
        out.error_code = code;
        out.error_message = msg.map(StrBytes::from_string);
        resp.results.push(out);
    }
    if !req.validate_only {
        let timeout = timeout_of(req.timeout_ms);
        for (name, count) in grown {
            broker
                .cluster
                .wait_for_partitions(&name, count.max(0) as usize, timeout)
                .await;
        }
    }
    resp
}

/// DeleteRecords: on the leader, moves each partition's log start offset up to the requested
/// offset (-1: the high watermark) and deletes the segments wholly below it, durably.
pub async fn delete_records(
    broker: &Broker,
    req: kafka_protocol::messages::DeleteRecordsRequest,
) -> kafka_protocol::messages::DeleteRecordsResponse {
    use kafka_protocol::messages::delete_records_response::{
        DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
    };
    let mut resp = kafka_protocol::messages::DeleteRecordsResponse::default();
    let m = broker.cluster.metadata();
    for t in req.topics {
        let topic = t.name.0.to_string();
        let mut tr = DeleteRecordsTopicResult::default();
        tr.name = t.name.clone();
        for p in t.partitions {
            let mut pr = DeleteRecordsPartitionResult::default();
            pr.partition_index = p.partition_index;
            pr.low_watermark = -1;
            match super::led_here(broker, &m, &topic, p.partition_index) {
                Err(e) => pr.error_code = e.code(),
                Ok((part, _)) => {
                    let hw = part.offsets().high_watermark;
                    let target = if p.offset == -1 {
                        Some(hw)
                    } else {
                        u64::try_from(p.offset).ok()
                    };
                    match target {
                        Some(o) if o <= hw => {
                            let done =
                                tokio::task::spawn_blocking(move || part.delete_records_before(o))
                                    .await;
                            match done {
                                Ok(Ok(lso)) => {
                                    tracing::info!(
                                        topic,
                                        partition = p.partition_index,
                                        log_start_offset = lso,
                                        "records deleted"
                                    );
                                    pr.low_watermark = lso as i64;
                                }
                                Ok(Err(e)) => pr.error_code = e.kafka_error_code(),
                                Err(_) => pr.error_code = ResponseError::UnknownServerError.code(),
                            }
                        }
                        _ => pr.error_code = ResponseError::OffsetOutOfRange.code(),
                    }
                }
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}
