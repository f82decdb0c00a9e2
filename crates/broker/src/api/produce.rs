//! Produce (v3+, record batches): append each partition's batches to its log as leader.
//!
//! Batches are stored as received, with only the base offset and leader epoch written in (the
//! CRC does not cover them), after the log crate checked their framing and CRC-32C. acks=0 gets
//! no answer at all, as in Kafka.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use crate::Broker;

pub async fn handle(broker: &Broker, req: ProduceRequest) -> Option<ProduceResponse> {
    let acks = req.acks;
    let m = broker.cluster.metadata();
    let mut resp = ProduceResponse::default();
    for t in req.topic_data {
        let topic = t.name.0.to_string();
        let mut tr = TopicProduceResponse::default();
        tr.name = t.name.clone();
        for pd in t.partition_data {
            let mut pr = PartitionProduceResponse::default();
            pr.index = pd.index;
            pr.base_offset = -1;
            pr.log_append_time_ms = -1;
            pr.log_start_offset = -1;
            let meta = m
                .topics
                .get(&topic)
                .and_then(|tm| tm.partitions.get(&pd.index));
            let error = match meta {
                // Kafka refuses client writes to its internal topics: records there are the
                // group coordinator's, and it trusts what it reads back.
                _ if topic == crate::groups::OFFSETS_TOPIC => {
                    Some(ResponseError::InvalidTopicException)
                }
                None => Some(ResponseError::UnknownTopicOrPartition),
                Some(pm) if pm.leader() != Some(broker.id) => {
                    Some(ResponseError::NotLeaderOrFollower)
                }
                Some(pm)
                    if acks == -1
                        && pm.state.as_ref().is_some_and(|s| {
                            (s.isr.len() as i32) < broker.min_insync_replicas(&topic)
                        }) =>
                {
                    Some(ResponseError::NotEnoughReplicas)
                }
                Some(_) => None,
            };
            if let Some(e) = error {
                tracing::debug!(topic, partition = pd.index, error = ?e, "produce refused");
                pr.error_code = e.code();
            } else if let Some(part) = broker.partitions.get(&topic, pd.index) {
                let payload = pd.records.unwrap_or_default();
                let result = {
                    let part = part.clone();
                    tokio::task::spawn_blocking(move || part.append(&payload)).await
                };
                match result {
                    Ok(Ok(done)) => {
                        if done.duplicate {
                            tracing::debug!(
                                topic,
                                partition = pd.index,
                                base_offset = done.base_offset,
                                "duplicate idempotent batch acknowledged"
                            );
                        }
                        pr.base_offset = done.base_offset as i64;
                        pr.log_start_offset = done.log_start_offset as i64;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(topic, partition = pd.index, error = %e, "produce refused");
                        pr.error_code = e.kafka_error_code();
                        pr.error_message = Some(kafka_protocol::protocol::StrBytes::from_string(
                            e.to_string(),
                        ));
                    }
                    Err(_) => pr.error_code = ResponseError::UnknownServerError.code(),
                }
            } else {
                // Assigned here but the log is not open yet (metadata just changed).
                pr.error_code = ResponseError::NotLeaderOrFollower.code();
            }
            tr.partition_responses.push(pr);
        }
        resp.responses.push(tr);
    }
    (acks != 0).then_some(resp)
}

/// InitProducerId for idempotent producers: a fresh producer id at epoch 0, as Kafka answers a
/// request without a transactional id. Transactions are not supported: a transactional id is
/// refused.
pub async fn init_producer_id(
    broker: &Broker,
    req: kafka_protocol::messages::InitProducerIdRequest,
) -> kafka_protocol::messages::InitProducerIdResponse {
    let mut resp = kafka_protocol::messages::InitProducerIdResponse::default();
    resp.producer_id = kafka_protocol::messages::ProducerId(-1);
    resp.producer_epoch = -1;
    if req
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.0.is_empty())
    {
        tracing::warn!(
            transactional_id = ?req.transactional_id,
            "InitProducerId refused: transactions are not supported by this broker"
        );
        resp.error_code = ResponseError::InvalidRequest.code();
        return resp;
    }
    match broker
        .producer_ids
        .next(&broker.cluster.client(), broker.id)
        .await
    {
        Ok(id) => {
            tracing::debug!(producer_id = id, "InitProducerId");
            resp.producer_id = kafka_protocol::messages::ProducerId(id);
            resp.producer_epoch = 0;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot reserve producer ids");
            resp.error_code = ResponseError::CoordinatorNotAvailable.code();
        }
    }
    resp
}
