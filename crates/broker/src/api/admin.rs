//! Topic administration: CreateTopics and DeleteTopics. Both write to the coordinator; the
//! controller carries them out, and the handlers wait (up to the request's timeout) until the
//! metadata shows the result, as Kafka's do.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::CreateTopicError;
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
        } else if partitions <= 0 {
            fail(
                &mut out,
                ResponseError::InvalidPartitions,
                format!("number of partitions must be larger than 0, got {partitions}"),
            );
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
