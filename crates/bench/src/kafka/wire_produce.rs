//! `produce --wire`: Produce requests written by kafka-load itself.
//!
//! Before the clock starts, one record batch of `--batch-records` records is encoded and wrapped
//! in a complete Produce v9 request frame per partition. Each producer (one connection, one
//! thread) then sends those frames round robin over the partitions, keeping `--max-in-flight`
//! requests outstanding, and reads the responses in order, checking every partition's error
//! code. Only the correlation id changes between two sends of the same frame; the broker assigns
//! the offsets. The client's cost is a vectored write per request and a small response decode,
//! so the figures are the broker's (and the loopback's).

use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, MetadataRequest, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::{Decodable, StrBytes};

use super::options::{Acks, ProduceArgs, Stop};
use super::produce::{now_ms, Report};
use super::topic::ensure_topic;
use super::wire::{self, PRODUCE_VERSION};
use super::{run_producers, Payloads, Throughput};
use crate::stats::{merge_errors, Errors};

/// `timeout_ms` of every Produce request.
const PRODUCE_TIMEOUT_MS: i32 = 30_000;
/// Most memory the pre-encoded frames (one per partition) may take.
const MAX_FRAME_MEMORY: usize = 1 << 30;

fn acks_value(a: Acks) -> i16 {
    match a {
        Acks::None => 0,
        Acks::Leader => 1,
        Acks::All => -1,
    }
}

/// A complete Produce request frame carrying `batch` for one partition.
pub fn produce_frame(topic: &str, partition: i32, acks: i16, batch: Bytes) -> Result<Bytes> {
    let mut p = PartitionProduceData::default();
    p.index = partition;
    p.records = Some(batch);
    let mut t = TopicProduceData::default();
    t.name = kafka_protocol::messages::TopicName(StrBytes::from_string(topic.to_string()));
    t.partition_data = vec![p];
    let mut req = ProduceRequest::default();
    req.transactional_id = None;
    req.acks = acks;
    req.timeout_ms = PRODUCE_TIMEOUT_MS;
    req.topic_data = vec![t];
    wire::frame(ApiKey::Produce, PRODUCE_VERSION, &req)
}

/// What one connection did.
#[derive(Debug)]
struct Share {
    start: Instant,
    end: Instant,
    requests: u64,
    sent: u64,
    ok: u64,
    failed: u64,
    undelivered: u64,
    /// 1 if the connection failed (send, receive or decode), 0 otherwise.
    conn_errors: u64,
    errors: Errors,
}

/// One connection's part of the run.
#[derive(Debug, Clone, Copy)]
struct Part {
    index: usize,
    /// Records to send (`u64::MAX`: until the deadline).
    limit: u64,
}

/// What every connection shares: the address, the frames and the settings.
#[derive(Debug)]
struct Plan<'a> {
    addr: std::net::SocketAddr,
    topic: &'a str,
    partitions: &'a [i32],
    /// One full frame per partition, in the order of `partitions`.
    frames: Vec<Bytes>,
    batch_records: u64,
    payloads: &'a Payloads,
    timestamp_ms: i64,
    acks: i16,
    max_in_flight: usize,
    deadline: Option<Duration>,
}

pub fn measure(args: &ProduceArgs) -> Result<Report> {
    let stop = args.stop()?;
    let bootstrap = &args.target.bootstrap_server;
    let topic = args.target.topic.as_str();
    let settings = &args.producer;
    let record_size = settings.record_size;
    let max_bytes = args.wire_batch_bytes();
    let batch_records = match args.batch_records {
        Some(n) => n as usize,
        None => wire::records_that_fit(record_size, max_bytes),
    };
    ensure!(
        batch_records >= 1,
        "a {record_size}-byte record does not fit in a {max_bytes}-byte batch (--batch-size)"
    );
    let batch_bytes = wire::batch_len(batch_records, record_size);
    ensure!(
        batch_bytes <= max_bytes,
        "{batch_records} records of {record_size} bytes make a {batch_bytes}-byte batch, above \
         --batch-size {max_bytes} (the broker's default message.max.bytes refuses batches above \
         1 MB)"
    );

    let state = ensure_topic(bootstrap, topic, &args.shape)?;
    let addr = wire::first_address(bootstrap)?;
    let partitions = {
        let mut conn = wire::connect(addr)?;
        wire::partitions_of(&mut conn, addr, topic)?
    };
    ensure!(
        partitions.len().saturating_mul(batch_bytes) <= MAX_FRAME_MEMORY,
        "{} partitions x {batch_bytes}-byte batches: more than {MAX_FRAME_MEMORY} bytes of \
         pre-encoded requests (use a smaller --batch-size)",
        partitions.len()
    );
    let payloads = Payloads::new(record_size);
    let timestamp_ms = now_ms();
    let batch = wire::encode_batch(&payloads, batch_records, timestamp_ms)?;
    let acks = acks_value(settings.acks);
    let frames = partitions
        .iter()
        .map(|&p| produce_frame(topic, p, acks, batch.clone()))
        .collect::<Result<Vec<_>>>()?;
    drop(batch);
    let n = args.producers as u64;
    let parts: Vec<Part> = (0..n)
        .map(|index| Part {
            index: index as usize,
            limit: match stop {
                Stop::Records(total) => total / n + u64::from(index < total % n),
                Stop::After(_) => u64::MAX,
            },
        })
        .collect();
    let plan = Plan {
        addr,
        topic,
        partitions: &partitions,
        frames,
        batch_records: batch_records as u64,
        payloads: &payloads,
        timestamp_ms,
        acks,
        max_in_flight: settings.max_in_flight as usize,
        deadline: match stop {
            Stop::After(d) => Some(d),
            Stop::Records(_) => None,
        },
    };

    let (shares, cpu) = run_producers(&parts, &args.cpu_pids, |&part, ready| {
        produce_part(&plan, part, ready)
    });
    let shares = shares?;
    let start = shares.iter().map(|s| s.start).min().expect("one producer");
    let end = shares.iter().map(|s| s.end).max().expect("one producer");
    let sum = |f: fn(&Share) -> u64| shares.iter().map(f).sum::<u64>();
    let (sent, ok, failed) = (sum(|s| s.sent), sum(|s| s.ok), sum(|s| s.failed));
    let (undelivered, requests) = (sum(|s| s.undelivered), sum(|s| s.requests));
    let conn_errors = sum(|s| s.conn_errors);
    let mut errors = Errors::new();
    for s in &shares {
        merge_errors(&mut errors, s.errors.clone());
    }
    Ok(Report {
        tool: "kafka-load",
        mode: "produce",
        client: "wire",
        bootstrap_server: bootstrap.clone(),
        topic: topic.to_string(),
        partitions: state.partitions,
        topic_created: state.created,
        record_size,
        acks: settings.acks.as_config(),
        compression: settings.compression.as_config(),
        max_in_flight: settings.max_in_flight,
        linger_ms: None,
        batch_size: Some(max_bytes as u32),
        rate: 0.0,
        producers: args.producers,
        producer_properties: Vec::new(),
        target_records: match stop {
            Stop::Records(n) => Some(n),
            Stop::After(_) => None,
        },
        target_duration_s: match stop {
            Stop::After(d) => Some(d.as_secs_f64()),
            Stop::Records(_) => None,
        },
        sent,
        delivery_errors: failed,
        undelivered,
        // Connections that failed (the wire mode has no client queue to fail on).
        enqueue_errors: conn_errors,
        errors,
        batch_records: Some(batch_records),
        batch_bytes: Some(batch_bytes),
        requests: Some(requests),
        throughput: Throughput::of(ok, ok * record_size as u64, end - start),
        cpu,
        longest_ack_gap_ms: None,
        longest_ack_gap_at_s: None,
    })
}

/// Counts the outcome of one Produce response carrying `records` records.
fn settle(body: &mut Bytes, records: u64, share: &mut Share) -> Result<()> {
    let resp = ProduceResponse::decode(body, PRODUCE_VERSION).context("decode ProduceResponse")?;
    let mut codes = resp
        .responses
        .iter()
        .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code));
    match codes.next() {
        Some(0) => share.ok += records,
        Some(code) => {
            share.failed += records;
            *share.errors.entry(wire::error_name(code)).or_default() += 1;
        }
        None => {
            share.failed += records;
            *share.errors.entry("EmptyResponse".to_string()).or_default() += 1;
        }
    }
    Ok(())
}

/// Runs one connection: connects, waits at `ready`, then sends its part.
fn produce_part(plan: &Plan<'_>, part: Part, ready: &Barrier) -> Result<Share> {
    let conn = wire::connect(plan.addr);
    // A short batch for the records left after the full batches, encoded before the clock.
    let full = part.limit / plan.batch_records;
    let tail_records = if plan.deadline.is_some() {
        0
    } else {
        part.limit % plan.batch_records
    };
    let pcount = plan.partitions.len();
    let tail = (tail_records > 0).then(|| -> Result<Bytes> {
        let at = (part.index as u64 + full) % pcount as u64;
        let batch = wire::encode_batch(plan.payloads, tail_records as usize, plan.timestamp_ms)?;
        produce_frame(plan.topic, plan.partitions[at as usize], plan.acks, batch)
    });
    ready.wait();
    let mut conn = conn?;
    let tail = tail.transpose()?;
    let answered = plan.acks != 0;
    let total_requests = match plan.deadline {
        Some(_) => u64::MAX,
        None => full + u64::from(tail.is_some()),
    };
    let start = Instant::now();
    let deadline = plan.deadline.map(|d| start + d);
    let mut share = Share {
        start,
        end: start,
        requests: 0,
        sent: 0,
        ok: 0,
        failed: 0,
        undelivered: 0,
        conn_errors: 0,
        errors: Errors::new(),
    };
    // Records of each request in flight, oldest first.
    let mut waiting = std::collections::VecDeque::with_capacity(plan.max_in_flight);
    let outcome = (|| -> Result<()> {
        loop {
            while waiting.len() < plan.max_in_flight
                && share.requests < total_requests
                && deadline.is_none_or(|d| Instant::now() < d)
            {
                let i = share.requests;
                let (frame, records) = if i == full {
                    (tail.as_ref().context("no tail batch")?, tail_records)
                } else {
                    let at = (part.index as u64 + i) % pcount as u64;
                    (&plan.frames[at as usize], plan.batch_records)
                };
                conn.send_frame(frame, answered)?;
                share.requests += 1;
                share.sent += records;
                if answered {
                    waiting.push_back(records);
                } else {
                    // acks=0: no response; sent is all there is.
                    share.ok += records;
                }
            }
            let Some(records) = waiting.pop_front() else {
                break;
            };
            let (_, _, mut body) = conn.receive()?;
            settle(&mut body, records, &mut share)?;
        }
        if !answered {
            // The broker handles a connection's requests in order: the answer to this request
            // means every produce before it was handled.
            let _: kafka_protocol::messages::MetadataResponse = conn.call(
                ApiKey::Metadata,
                wire::METADATA_VERSION,
                &MetadataRequest::default(),
            )?;
        }
        Ok(())
    })();
    share.end = Instant::now();
    if let Err(e) = outcome {
        eprintln!("kafka-load: producer {}: {e:#}", part.index);
        share.undelivered = share.sent - share.ok - share.failed;
        share.conn_errors = 1;
        *share.errors.entry("Connection".to_string()).or_default() += 1;
    }
    Ok(share)
}
