//! Consumer throughput: one `BaseConsumer` assigned every partition of the topic (or subscribed
//! with `--group`), polled in a tight loop that only counts records and bytes.
//!
//! The measured interval runs from the first record received to the last one counted; the time
//! from creating the consumer to the first record (connection, metadata, ListOffsets, the first
//! fetch) is reported separately.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use super::options::{ConsumeArgs, ConsumerSettings, DEFAULT_PARTITION_FETCH_BYTES};
use super::produce::count_error;
use super::{apply, client_config, emit, human_cpu, CpuWindow, Throughput};
use crate::cpu::CpuUse;
use crate::stats::{human_errors, Errors};

/// `fetch.queue.backoff.ms` unless overridden.
const FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// The librdkafka consumer configuration of `settings`. Offsets are never committed.
pub fn consumer_config(
    bootstrap: &str,
    settings: &ConsumerSettings,
    group: Option<&str>,
    from_beginning: bool,
) -> Result<ClientConfig> {
    let mut c = client_config(bootstrap);
    let own_group = format!("kafka-load-{}", std::process::id());
    c.set("group.id", group.unwrap_or(&own_group))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set(
            "auto.offset.reset",
            if from_beginning { "earliest" } else { "latest" },
        )
        .set("fetch.max.bytes", settings.fetch_max_bytes.to_string())
        .set(
            "max.partition.fetch.bytes",
            settings
                .max_partition_fetch_bytes
                .unwrap_or(DEFAULT_PARTITION_FETCH_BYTES)
                .to_string(),
        )
        .set("fetch.wait.max.ms", settings.fetch_wait_max_ms.to_string())
        // When its local queue holds `queued.min.messages` (100,000), librdkafka stops fetching
        // and looks again only after this back-off, 1 s by default: reading millions of small
        // records then stalls a second at a time with both client and broker idle.
        .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS);
    apply(&mut c, &settings.consumer_property)?;
    Ok(c)
}

/// The partition ids of `topic`, from the consumer's metadata.
pub fn partitions_of(consumer: &BaseConsumer, topic: &str) -> Result<Vec<i32>> {
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("metadata of {topic}"))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .with_context(|| format!("no metadata for {topic}"))?;
    if let Some(e) = t.error() {
        bail!("topic {topic}: {e:?}");
    }
    let ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    if ids.is_empty() {
        bail!("topic {topic} has no partitions");
    }
    Ok(ids)
}

/// What one consume run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub mode: &'static str,
    /// `librdkafka`, or `wire` (`--wire`: Fetch requests sent by kafka-load itself, records
    /// counted from batch headers).
    pub client: &'static str,
    pub bootstrap_server: String,
    pub topic: String,
    pub partitions: usize,
    pub group: Option<String>,
    pub from_beginning: bool,
    pub fetch_max_bytes: u32,
    pub max_partition_fetch_bytes: u32,
    pub fetch_wait_max_ms: u32,
    pub consumer_properties: Vec<String>,
    pub target_records: u64,
    /// Seconds from creating the consumer to the first record.
    pub first_record_s: f64,
    pub errors: Errors,
    /// `--wire`: the `--record-size` the byte count is based on (`None`: record batch bytes),
    /// record batches and their bytes received, Fetch requests sent.
    pub record_size: Option<usize>,
    pub batches: Option<u64>,
    pub batch_bytes: Option<u64>,
    pub fetches: Option<u64>,
    /// Records (values and keys) from the first record received to the last.
    #[serde(flatten)]
    pub throughput: Throughput,
    pub cpu: CpuUse,
}

impl Report {
    pub fn human(&self) -> String {
        format!(
            "kafka-load consume{}: {} ({} partitions{}) on {}, fetch.max.bytes={}, \
             max.partition.fetch.bytes={}, fetch.wait.max.ms={}\n  \
             {} of {} records; first record after {:.3} s; errors: {}\n  \
             throughput {}\n  cpu        {}",
            match (self.batches, self.fetches) {
                (Some(b), Some(f)) => format!(" --wire ({b} batches in {f} fetches)"),
                _ => String::new(),
            },
            self.topic,
            self.partitions,
            self.group
                .as_ref()
                .map_or(String::new(), |g| format!(", group {g}")),
            self.bootstrap_server,
            self.fetch_max_bytes,
            self.max_partition_fetch_bytes,
            self.fetch_wait_max_ms,
            self.throughput.records,
            self.target_records,
            self.first_record_s,
            human_errors(&self.errors),
            self.throughput.human(),
            human_cpu(&self.cpu, self.throughput.elapsed_s),
        )
    }

    pub fn clean(&self) -> bool {
        // --wire counts whole batches, so it may pass the target inside the last one.
        self.throughput.records == self.target_records
            || (self.client == "wire" && self.throughput.records > self.target_records)
    }
}

pub fn run(args: &ConsumeArgs) -> Result<u8> {
    let report = if args.wire {
        super::wire_consume::measure(args)?
    } else {
        measure(args)?
    };
    emit(&report.human(), &report)?;
    Ok(if report.clean() { 0 } else { 1 })
}

pub fn measure(args: &ConsumeArgs) -> Result<Report> {
    let idle_limit = args.check()?;
    let bootstrap = &args.target.bootstrap_server;
    let topic = args.target.topic.as_str();
    let created = Instant::now();
    let consumer: BaseConsumer = consumer_config(
        bootstrap,
        &args.consumer,
        args.group.as_deref(),
        args.from_beginning,
    )?
    .create()
    .context("create the consumer")?;
    let partitions = partitions_of(&consumer, topic)?;
    if args.group.is_some() {
        consumer.subscribe(&[topic]).context("subscribe")?;
    } else {
        let mut tpl = TopicPartitionList::new();
        let at = if args.from_beginning {
            Offset::Beginning
        } else {
            Offset::End
        };
        for &p in &partitions {
            tpl.add_partition_offset(topic, p, at)?;
        }
        consumer.assign(&tpl).context("assign")?;
    }

    let errors = Mutex::new(Errors::new());
    let cpu = CpuWindow::start(&args.cpu_pids);
    let target = args.records;
    let mut records = 0u64;
    let mut bytes = 0u64;
    let mut first: Option<Instant> = None;
    let mut last_check = (Instant::now(), 0u64);
    while records < target {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                records += 1;
                bytes += (m.payload_len() + m.key().map_or(0, <[u8]>::len)) as u64;
                if first.is_none() {
                    first = Some(Instant::now());
                }
            }
            Some(Err(e)) => count_error(&errors, &e),
            None => {
                // Nothing within the poll timeout: check for a stall (no clock reads per record).
                let now = Instant::now();
                if records != last_check.1 {
                    last_check = (now, records);
                } else if now - last_check.0 >= idle_limit {
                    eprintln!(
                        "kafka-load: no record for {idle_limit:?}, stopping at {records} of {target}"
                    );
                    break;
                }
            }
        }
    }
    let end = Instant::now();
    let cpu = cpu.stop();
    let first_at = first.unwrap_or(end);
    Ok(Report {
        tool: "kafka-load",
        mode: "consume",
        client: "librdkafka",
        bootstrap_server: bootstrap.clone(),
        topic: topic.to_string(),
        partitions: partitions.len(),
        group: args.group.clone(),
        from_beginning: args.from_beginning,
        fetch_max_bytes: args.consumer.fetch_max_bytes,
        max_partition_fetch_bytes: args.max_partition_fetch_bytes(),
        fetch_wait_max_ms: args.consumer.fetch_wait_max_ms,
        consumer_properties: args.consumer.consumer_property.clone(),
        target_records: target,
        first_record_s: (first_at - created).as_secs_f64(),
        errors: errors.into_inner().unwrap_or_else(|p| p.into_inner()),
        record_size: None,
        batches: None,
        batch_bytes: None,
        fetches: None,
        throughput: Throughput::of(records, bytes, end - first_at),
        cpu,
    })
}
