//! Fetch (v4+): whole record batches from each partition up to the high watermark, waiting up
//! to `max_wait_ms` until `min_bytes` are there. A waiting fetch wakes as soon as an append
//! lands, so end-to-end latency does not depend on the consumer's `fetch.wait.max.ms`; one with
//! a partition in error, or a follower's with a diverging epoch, is answered at once.
//!
//! Topics are named (v4–v12) or given by id (v13+). Fetch sessions (KIP-227) are not kept: the
//! answer's session id 0 tells clients to send full requests.
//!
//! Record bytes are not copied through the broker when it can avoid it: a partition's slice of
//! at least [`SPLICE_MIN_BYTES`] is left in the segment file, the response carries a unique
//! marker in its place, and `server.rs` writes the encoded response around it with
//! `sendfile(2)` from the file ([`Answer::spliced`]). Smaller slices are copied (one write
//! beats three system calls).

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::watch;

use crate::replica::{Partition, PartitionError, Progressed};
use crate::Broker;

/// Slices at least this large are sent from the file with sendfile(2).
pub const SPLICE_MIN_BYTES: u64 = 16 * 1024;

/// A Fetch answer: the response, whose `records` fields hold [`marker`]s for the slices in
/// `spliced` (in encoding order), to be replaced by the file bytes when written.
#[derive(Debug)]
pub struct Answer {
    pub response: FetchResponse,
    pub spliced: Vec<sluice_log::FetchSlice>,
    pub seed: u64,
    /// How long the request waited for records (`max_wait_ms`) before it was answered.
    pub waited: Duration,
}

impl Answer {
    /// The record bytes the answer carries (what `consumer_byte_rate` counts).
    pub fn record_bytes(&self) -> u64 {
        let in_response: u64 = self
            .response
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| p.records.as_ref().map_or(0, |r| r.len() as u64))
            .sum();
        let markers = 16 * self.spliced.len() as u64;
        in_response.saturating_sub(markers) + self.spliced.iter().map(|s| s.len).sum::<u64>()
    }
}

/// The 16-byte placeholder for the `k`-th spliced slice of a response.
pub fn marker(seed: u64, k: usize) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[..8].copy_from_slice(&seed.to_be_bytes());
    m[8..].copy_from_slice(&(k as u64 ^ 0x5eed_5eed_5eed_5eed).to_be_bytes());
    m
}

fn new_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(sluice_log::now_ms());
    h.finish()
}

struct Wanted {
    topic: String,
    topic_index: usize,
    partition: i32,
    offset: i64,
    max_bytes: i32,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
}

pub async fn handle(broker: &Broker, listener: &str, version: i16, req: FetchRequest) -> Answer {
    // A follower's fetch names its broker id (v15+: in the replica state).
    let replica = if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    let seed = new_seed();
    let m = broker.cluster.metadata();
    let mut resp = FetchResponse::default();
    let mut wanted = Vec::new();
    for t in &req.topics {
        let name = if version >= 13 {
            m.topics
                .iter()
                .find(|(_, tm)| tm.id == t.topic_id)
                .map(|(n, _)| n.clone())
        } else {
            Some(t.topic.0.to_string())
        };
        let mut tr = FetchableTopicResponse::default();
        tr.topic = t.topic.clone();
        tr.topic_id = t.topic_id;
        if let Some(n) = &name {
            tr.topic = TopicName(StrBytes::from_string(n.clone()));
        }
        for p in &t.partitions {
            let mut pd = PartitionData::default();
            pd.partition_index = p.partition;
            pd.high_watermark = -1;
            pd.last_stable_offset = -1;
            pd.log_start_offset = -1;
            pd.preferred_read_replica = kafka_protocol::messages::BrokerId(-1);
            // A partition in error carries empty records, never null: Kafka sends empty ones,
            // and librdkafka refuses a null records field (so a consumer whose position is out
            // of range would never see the error and never apply auto.offset.reset).
            pd.records = Some(Bytes::new());
            match &name {
                None => pd.error_code = ResponseError::UnknownTopicId.code(),
                Some(n) => wanted.push(Wanted {
                    topic: n.clone(),
                    topic_index: resp.responses.len(),
                    partition: p.partition,
                    offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes,
                    current_leader_epoch: p.current_leader_epoch,
                    last_fetched_epoch: p.last_fetched_epoch,
                }),
            }
            tr.partitions.push(pd);
        }
        resp.responses.push(tr);
    }

    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(req.max_wait_ms.clamp(0, 60_000) as u64);
    let min_bytes = req.min_bytes.max(0) as u64;
    let mut waited = Duration::ZERO;
    // Each wanted partition's replica here and the record bytes of its answer, as of the last
    // pass (what the metrics count once the answer is final).
    let mut held: Vec<Option<std::sync::Arc<Partition>>> = vec![None; wanted.len()];
    let mut sent = vec![0u64; wanted.len()];
    // Only a request's first read records a follower's progress (see read_for_follower).
    let mut first = true;
    let max_total = if req.max_bytes > 0 {
        req.max_bytes as u64
    } else {
        u64::MAX
    };
    loop {
        let mut total = 0u64;
        let mut spliced = Vec::new();
        let mut waits: Vec<watch::Receiver<Progressed>> = Vec::new();
        for (i, w) in wanted.iter().enumerate() {
            held[i] = None;
            sent[i] = 0;
            let pd = resp.responses[w.topic_index]
                .partitions
                .iter_mut()
                .find(|pd| pd.partition_index == w.partition)
                .expect("a response entry per wanted partition");
            pd.records = Some(Bytes::new());
            pd.error_code = 0;
            pd.diverging_epoch = Default::default();
            let Some(part) = broker.replicas.get(&w.topic, w.partition) else {
                let known = m
                    .topics
                    .get(&w.topic)
                    .is_some_and(|t| t.partitions.contains_key(&w.partition));
                pd.error_code = if known {
                    ResponseError::NotLeaderOrFollower.code()
                } else {
                    ResponseError::UnknownTopicOrPartition.code()
                };
                continue;
            };
            waits.push(part.subscribe());
            held[i] = Some(part.clone());
            // Kafka returns at least one whole batch even when it is larger than the limits, so
            // a consumer never stalls on a big batch; the log's `read` does the same.
            let budget = (w.max_bytes.max(0) as u64).min(max_total.saturating_sub(total));
            let read = if w.offset < 0 {
                Err(PartitionError::Log(
                    sluice_log::LogError::OffsetOutOfRange {
                        offset: 0,
                        log_start_offset: 0,
                        log_end_offset: 0,
                    },
                ))
            } else if replica >= 0 {
                part.read_for_follower(
                    replica,
                    w.offset as u64,
                    budget,
                    w.current_leader_epoch,
                    w.last_fetched_epoch,
                    broker.id,
                    first,
                )
                .map(|r| {
                    if let Some((epoch, end)) = r.diverging {
                        pd.diverging_epoch.epoch = epoch;
                        pd.diverging_epoch.end_offset = end as i64;
                    }
                    (r.slice, r.offsets)
                })
            } else {
                part.read(w.offset as u64, budget, w.current_leader_epoch)
                    .map(|(slice, o)| (Some(slice), o))
            };
            match read {
                Err(e) => {
                    let o = part.offsets();
                    pd.high_watermark = o.high_watermark as i64;
                    pd.last_stable_offset = o.high_watermark as i64;
                    pd.log_start_offset = o.log_start as i64;
                    pd.error_code = super::partition_error(&e).code();
                }
                Ok((slice, o)) => {
                    pd.high_watermark = o.high_watermark as i64;
                    pd.last_stable_offset = o.high_watermark as i64;
                    pd.log_start_offset = o.log_start as i64;
                    if version >= 4 {
                        pd.aborted_transactions = Some(Vec::new());
                    }
                    let Some(slice) = slice else { continue };
                    if slice.len >= SPLICE_MIN_BYTES && total < max_total {
                        total += slice.len;
                        sent[i] = slice.len;
                        pd.records = Some(Bytes::copy_from_slice(&marker(seed, spliced.len())));
                        spliced.push(slice);
                    } else if slice.len > 0 && total < max_total {
                        match slice.to_bytes() {
                            Ok(b) => {
                                total += b.len() as u64;
                                sent[i] = b.len() as u64;
                                pd.records = Some(b);
                            }
                            Err(e) => pd.error_code = e.kafka_error_code(),
                        }
                    }
                }
            }
        }
        // As Kafka does, a partition in error or a follower told where its log diverges is
        // answered at once: waiting would only delay the client's (or follower's) next step.
        let urgent = wanted.iter().any(|w| {
            resp.responses[w.topic_index]
                .partitions
                .iter()
                .find(|pd| pd.partition_index == w.partition)
                .is_some_and(|pd| pd.error_code != 0 || pd.diverging_epoch.epoch >= 0)
        });
        if urgent
            || total >= min_bytes
            || waits.is_empty()
            || tokio::time::Instant::now() >= deadline
        {
            count(broker, replica >= 0, &wanted, &held, &sent, &resp);
            if version >= 12 {
                name_leaders(broker, listener, version, &mut resp);
            }
            return Answer {
                response: resp,
                spliced,
                seed,
                waited,
            };
        }
        // Sleep until any partition gets an append, or the deadline.
        let any_append = async {
            let futs: Vec<_> = waits.iter_mut().map(|w| Box::pin(w.changed())).collect();
            futures_select_any(futs).await;
        };
        first = false;
        let sleeping = tokio::time::Instant::now();
        let woke = tokio::time::timeout_at(deadline, any_append).await;
        waited += sleeping.elapsed();
        if woke.is_err() {
            // One more pass reads what is there now (the loop ends: the deadline has passed).
            continue;
        }
    }
}

/// The metrics of a final answer: each partition is one fetch request of its topic, failed or
/// not by its error, with its record bytes sent to a consumer or a follower.
fn count(
    broker: &Broker,
    replica: bool,
    wanted: &[Wanted],
    held: &[Option<std::sync::Arc<Partition>>],
    sent: &[u64],
    resp: &FetchResponse,
) {
    for ((w, part), bytes) in wanted.iter().zip(held).zip(sent) {
        let error = resp.responses[w.topic_index]
            .partitions
            .iter()
            .find(|pd| pd.partition_index == w.partition)
            .map_or(0, |pd| pd.error_code);
        match part {
            Some(p) => p.counters().fetched(error, *bytes, replica),
            None => broker.replicas.counters.fetch_request_elsewhere(error),
        }
    }
}

/// KIP-951: a partition answered NOT_LEADER_OR_FOLLOWER (or FENCED_LEADER_EPOCH) names its
/// current leader (v12+), and the response carries those leaders' endpoints (v16+).
fn name_leaders(broker: &Broker, listener: &str, version: i16, resp: &mut FetchResponse) {
    let m = broker.cluster.metadata();
    let mut leaders = std::collections::BTreeSet::new();
    let moved = [
        ResponseError::NotLeaderOrFollower.code(),
        ResponseError::FencedLeaderEpoch.code(),
    ];
    for t in &mut resp.responses {
        for pd in &mut t.partitions {
            if !moved.contains(&pd.error_code) {
                continue;
            }
            if let Some((leader, epoch)) =
                super::current_leader(broker, &m, &t.topic.0, pd.partition_index)
            {
                pd.current_leader.leader_id = kafka_protocol::messages::BrokerId(leader);
                pd.current_leader.leader_epoch = epoch;
                leaders.insert(leader);
            }
        }
    }
    if version >= 16 {
        for id in leaders {
            if let Some((host, port, rack)) = super::endpoint(&m, listener, id) {
                let mut ne = kafka_protocol::messages::fetch_response::NodeEndpoint::default();
                ne.node_id = kafka_protocol::messages::BrokerId(id);
                ne.host = StrBytes::from_string(host);
                ne.port = port;
                ne.rack = rack.map(StrBytes::from_string);
                resp.node_endpoints.push(ne);
            }
        }
    }
}

/// Resolves when the first of `futs` does.
async fn futures_select_any<F: std::future::Future + Unpin>(mut futs: Vec<F>) {
    std::future::poll_fn(|cx| {
        for f in futs.iter_mut() {
            if std::pin::Pin::new(f).poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}
