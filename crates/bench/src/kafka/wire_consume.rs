//! `consume --wire`: Fetch requests written by kafka-load itself.
//!
//! One connection fetches (v12, no fetch session) every partition of the topic from offset 0,
//! one request at a time like a Kafka consumer, with `max_wait_ms` = `--fetch-wait-max-ms`,
//! `min_bytes` 1, `partition_max_bytes` = `--max-partition-fetch-bytes` and `max_bytes` =
//! `--fetch-max-bytes`. Records are counted from the header of each record batch
//! ([`walk_batches`](super::wire::walk_batches)), never decoded, and each partition's next fetch
//! starts after the last complete batch; every batch must start where the previous one ended.
//! The client's cost is reading the response off the socket, so the figures are the broker's.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::{Decodable, StrBytes};

use super::consume::Report;
use super::options::ConsumeArgs;
use super::wire::{self, FETCH_VERSION};
use super::{CpuWindow, Throughput};
use crate::stats::Errors;

/// Pause after a fetch that returned errors, so that a failing partition is not hammered.
const ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The Fetch request for `offsets` (partition, next offset), in order.
fn fetch_request(
    args: &ConsumeArgs,
    topic: &TopicName,
    offsets: &[(i32, i64)],
    partition_max: i32,
) -> FetchRequest {
    let partitions = offsets
        .iter()
        .map(|&(partition, offset)| {
            let mut p = FetchPartition::default();
            p.partition = partition;
            p.current_leader_epoch = -1;
            p.fetch_offset = offset;
            p.last_fetched_epoch = -1;
            p.log_start_offset = -1;
            p.partition_max_bytes = partition_max;
            p
        })
        .collect();
    let mut t = FetchTopic::default();
    t.topic = topic.clone();
    t.partitions = partitions;
    let mut req = FetchRequest::default();
    req.replica_id = kafka_protocol::messages::BrokerId(-1);
    req.max_wait_ms = args.consumer.fetch_wait_max_ms as i32;
    req.min_bytes = 1;
    req.max_bytes = args.consumer.fetch_max_bytes as i32;
    req.isolation_level = 0;
    // No fetch session: every request is a full fetch.
    req.session_id = 0;
    req.session_epoch = -1;
    req.topics = vec![t];
    req
}

pub fn measure(args: &ConsumeArgs) -> Result<Report> {
    let idle_limit = args.check()?;
    let bootstrap = &args.target.bootstrap_server;
    let topic = args.target.topic.as_str();
    let partition_max = args.max_partition_fetch_bytes();
    let created = Instant::now();
    let addr = wire::first_address(bootstrap)?;
    let mut conn = wire::connect(addr)?;
    let partitions = wire::partitions_of(&mut conn, addr, topic)?;
    let name = TopicName(StrBytes::from_string(topic.to_string()));
    let mut offsets: Vec<(i32, i64)> = partitions.iter().map(|&p| (p, 0)).collect();
    let slot: HashMap<i32, usize> = partitions
        .iter()
        .enumerate()
        .map(|(i, &p)| (p, i))
        .collect();

    let cpu = CpuWindow::start(&args.cpu_pids);
    let target = args.records;
    let mut errors = Errors::new();
    let (mut records, mut batches, mut batch_bytes, mut fetches) = (0u64, 0u64, 0u64, 0u64);
    // Send time of the fetch that brought the first records.
    let mut first: Option<Instant> = None;
    let mut last_progress = Instant::now();
    while records < target {
        let req = fetch_request(args, &name, &offsets, partition_max as i32);
        let sent_at = Instant::now();
        conn.send(ApiKey::Fetch, FETCH_VERSION, &req)?;
        let (_, _, mut body) = conn.receive()?;
        fetches += 1;
        let resp =
            FetchResponse::decode(&mut body, FETCH_VERSION).context("decode FetchResponse")?;
        let mut failed = false;
        if resp.error_code != 0 {
            *errors.entry(wire::error_name(resp.error_code)).or_default() += 1;
            failed = true;
        }
        let before = records;
        for t in &resp.responses {
            for p in &t.partitions {
                if p.error_code != 0 {
                    *errors.entry(wire::error_name(p.error_code)).or_default() += 1;
                    failed = true;
                    continue;
                }
                let Some(data) = p.records.as_ref().filter(|d| !d.is_empty()) else {
                    continue;
                };
                let i = *slot
                    .get(&p.partition_index)
                    .with_context(|| format!("fetch returned partition {}", p.partition_index))?;
                let walk = wire::walk_batches(data, offsets[i].1).with_context(|| {
                    format!(
                        "{topic} partition {} (fetched at offset {})",
                        p.partition_index, offsets[i].1
                    )
                })?;
                if walk.batches == 0 {
                    bail!(
                        "{topic} partition {}: {} bytes at offset {} hold no complete batch \
                         (is --max-partition-fetch-bytes smaller than a batch?)",
                        p.partition_index,
                        data.len(),
                        offsets[i].1
                    );
                }
                offsets[i].1 = walk.next_offset;
                records += walk.records;
                batches += walk.batches;
                batch_bytes += walk.bytes;
            }
        }
        let now = Instant::now();
        if records > before {
            first.get_or_insert(sent_at);
            last_progress = now;
        } else if now - last_progress >= idle_limit {
            eprintln!(
                "kafka-load: no record for {idle_limit:?}, stopping at {records} of {target}"
            );
            break;
        } else if failed {
            std::thread::sleep(ERROR_PAUSE);
        }
    }
    let end = Instant::now();
    let cpu = cpu.stop();
    let first_at = first.unwrap_or(end);
    let bytes = match args.record_size {
        Some(size) => records * size as u64,
        None => batch_bytes,
    };
    Ok(Report {
        tool: "kafka-load",
        mode: "consume",
        client: "wire",
        bootstrap_server: bootstrap.clone(),
        topic: topic.to_string(),
        partitions: partitions.len(),
        group: None,
        from_beginning: true,
        fetch_max_bytes: args.consumer.fetch_max_bytes,
        max_partition_fetch_bytes: partition_max,
        fetch_wait_max_ms: args.consumer.fetch_wait_max_ms,
        consumer_properties: Vec::new(),
        target_records: target,
        first_record_s: (first_at - created).as_secs_f64(),
        errors,
        record_size: args.record_size,
        batches: Some(batches),
        batch_bytes: Some(batch_bytes),
        fetches: Some(fetches),
        throughput: Throughput::of(records, bytes, end - first_at),
        cpu,
    })
}
