//! Produce (v3+, record batches): append each partition's batches to its log as leader.
//!
//! Batches are stored as received, with only the base offset and leader epoch written in (the
//! CRC does not cover them), after the log crate checked their framing and CRC-32C. acks=0 gets
//! no answer at all, as in Kafka.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use crate::replica::Partition;
use crate::Broker;

/// An `acks=all` append waiting for the high watermark to pass it.
#[derive(Debug)]
struct Pending {
    topic: usize,
    partition: usize,
    part: Arc<Partition>,
    /// The offset after the last record written.
    end: u64,
    epoch: i32,
    min_isr: usize,
}

/// A Produce request whose appends are done: what is left is waiting for the high watermark
/// (acks=all) and answering. The connection reads and appends its next requests meanwhile, so
/// a producer with several requests in flight is not held to one replication round trip per
/// request; the answers still leave in request order.
#[derive(Debug)]
pub struct Appended {
    acks: i16,
    version: i16,
    deadline: tokio::time::Instant,
    resp: ProduceResponse,
    pending: Vec<Pending>,
}

impl Appended {
    /// Whether answering needs no waiting (nothing was appended with acks=all).
    pub fn is_done(&self) -> bool {
        self.pending.is_empty()
    }
}

pub async fn handle(
    broker: &Broker,
    listener: &str,
    version: i16,
    req: ProduceRequest,
) -> Option<ProduceResponse> {
    append(broker, version, req)
        .await
        .finish(broker, listener)
        .await
}

/// Appends every partition's batches, in request order; acks=all waits come after, in
/// [`Appended::finish`].
pub async fn append(broker: &Broker, version: i16, req: ProduceRequest) -> Appended {
    let acks = req.acks;
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.timeout_ms.max(0) as u64);
    let m = broker.cluster.metadata();
    let mut resp = ProduceResponse::default();
    let mut pending = Vec::new();
    for t in req.topic_data {
        let topic = t.name.0.to_string();
        let mut tr = TopicProduceResponse::default();
        // Copied: the answer may wait for replication, and a slice would keep the whole
        // request frame in memory meanwhile.
        tr.name = kafka_protocol::messages::TopicName(StrBytes::from_string(topic.clone()));
        for pd in t.partition_data {
            let mut pr = PartitionProduceResponse::default();
            pr.index = pd.index;
            pr.base_offset = -1;
            pr.log_append_time_ms = -1;
            pr.log_start_offset = -1;
            let fail = |pr: &mut PartitionProduceResponse,
                        e: ResponseError,
                        msg: Option<String>| {
                if e == ResponseError::KafkaStorageError {
                    storage_error_warning(&topic, pd.index, msg.as_deref());
                } else {
                    tracing::debug!(topic, partition = pd.index, error = ?e, msg, "produce refused");
                }
                pr.error_code = e.code();
                pr.error_message = msg.map(StrBytes::from_string);
            };
            // Kafka refuses client writes to its internal topics: records there are the group
            // coordinator's, and it trusts what it reads back.
            if topic == crate::groups::OFFSETS_TOPIC {
                broker.replicas.counters.produce_request_elsewhere();
                fail(&mut pr, ResponseError::InvalidTopicException, None);
                tr.partition_responses.push(pr);
                continue;
            }
            let part = match super::led_here(broker, &m, &topic, pd.index) {
                Ok((part, _)) => part,
                Err(e) => {
                    broker.replicas.counters.produce_request_elsewhere();
                    fail(&mut pr, e, None);
                    tr.partition_responses.push(pr);
                    continue;
                }
            };
            let min_isr = (acks == -1).then(|| broker.min_insync_replicas(&topic).max(1) as usize);
            part.counters().produce_request();
            let payload = pd.records.unwrap_or_default();
            let bytes = payload.len() as u64;
            let result = {
                let part = part.clone();
                let me = broker.id;
                tokio::task::spawn_blocking(move || part.append_as_leader(&payload, min_isr, me))
                    .await
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
                    let records = if done.duplicate {
                        0
                    } else {
                        done.last_offset + 1 - done.base_offset
                    };
                    part.counters().appended(bytes, records);
                    pr.base_offset = done.base_offset as i64;
                    pr.log_start_offset = done.log_start_offset as i64;
                    pr.log_append_time_ms = done.log_append_time.unwrap_or(-1);
                    if let Some(min_isr) = min_isr {
                        pending.push(Pending {
                            topic: resp.responses.len(),
                            partition: tr.partition_responses.len(),
                            part,
                            end: done.last_offset + 1,
                            epoch: done.epoch,
                            min_isr,
                        });
                    }
                }
                Ok(Err(e)) => {
                    let code = super::partition_error(&e);
                    part.counters().produce_refused(code, bytes);
                    fail(&mut pr, code, Some(e.to_string()))
                }
                Err(_) => {
                    part.counters()
                        .produce_refused(ResponseError::UnknownServerError, bytes);
                    fail(&mut pr, ResponseError::UnknownServerError, None)
                }
            }
            tr.partition_responses.push(pr);
        }
        resp.responses.push(tr);
    }
    Appended {
        acks,
        version,
        deadline,
        resp,
        pending,
    }
}

impl Appended {
    /// The answer, once each acks=all append is replicated; `None` for acks=0.
    pub async fn finish(self, broker: &Broker, listener: &str) -> Option<ProduceResponse> {
        let Appended {
            acks,
            version,
            deadline,
            mut resp,
            pending,
        } = self;
        answer(
            broker, listener, acks, version, deadline, &mut resp, pending,
        )
        .await;
        (acks != 0).then_some(resp)
    }
}

async fn answer(
    broker: &Broker,
    listener: &str,
    acks: i16,
    version: i16,
    deadline: tokio::time::Instant,
    resp: &mut ProduceResponse,
    pending: Vec<Pending>,
) {
    if acks == 0 {
        return;
    }
    // acks=all: answered once the high watermark passes each append (every ISR member has it),
    // or with REQUEST_TIMED_OUT at the request's timeout. The appends stay in the log either
    // way, as in Kafka: a retry of an idempotent batch is then recognised as a duplicate.
    for w in pending {
        let pr = &mut resp.responses[w.topic].partition_responses[w.partition];
        let error =
            match tokio::time::timeout_at(deadline, w.part.wait_for_hw(w.end, w.epoch)).await {
                Ok(true) if w.part.isr().len() < w.min_isr => {
                    Some(ResponseError::NotEnoughReplicasAfterAppend)
                }
                Ok(true) => None,
                Ok(false) => Some(ResponseError::NotLeaderOrFollower),
                Err(_) => Some(ResponseError::RequestTimedOut),
            };
        if let Some(e) = error {
            tracing::debug!(topic = %w.part.topic, partition = w.part.index, error = ?e, "acks=all produce not acknowledged");
            pr.error_code = e.code();
            pr.base_offset = -1;
        }
    }
    // KIP-951 (v10+): a partition answered NOT_LEADER_OR_FOLLOWER names its current leader,
    // and the response carries those leaders' endpoints, so clients switch at once instead of
    // waiting for a metadata refresh.
    if version >= 10 {
        let m = broker.cluster.metadata();
        let mut leaders = std::collections::BTreeSet::new();
        for t in &mut resp.responses {
            for pr in &mut t.partition_responses {
                if pr.error_code != ResponseError::NotLeaderOrFollower.code() {
                    continue;
                }
                if let Some((leader, epoch)) =
                    super::current_leader(broker, &m, &t.name.0, pr.index)
                {
                    pr.current_leader.leader_id = kafka_protocol::messages::BrokerId(leader);
                    pr.current_leader.leader_epoch = epoch;
                    leaders.insert(leader);
                }
            }
        }
        for id in leaders {
            if let Some((host, port, rack)) = super::endpoint(&m, listener, id) {
                let mut ne = kafka_protocol::messages::produce_response::NodeEndpoint::default();
                ne.node_id = kafka_protocol::messages::BrokerId(id);
                ne.host = StrBytes::from_string(host);
                ne.port = port;
                ne.rack = rack.map(StrBytes::from_string);
                resp.node_endpoints.push(ne);
            }
        }
    }
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

/// A write the log could not store (a full or failing disk) is logged as a warning, at most
/// once every 10 s with the count of those not logged, so that a full disk does not also fill
/// the broker's own log.
fn storage_error_warning(topic: &str, partition: i32, msg: Option<&str>) {
    static WARNINGS: crate::warn_every::WarnEvery = crate::warn_every::WarnEvery::new(10_000);
    if let Some(unlogged) = WARNINGS.due() {
        tracing::warn!(
            topic,
            partition,
            error = msg.unwrap_or("storage error"),
            unlogged,
            "produce refused with KAFKA_STORAGE_ERROR (refusals since the last warning: {unlogged})"
        );
    }
}
