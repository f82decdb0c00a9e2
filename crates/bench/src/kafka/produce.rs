//! Producer throughput: `--producers` threads, each with one `BaseProducer` fed in a tight loop
//! from pre-built payloads, with a delivery callback that only counts. When librdkafka's queue is
//! full the loop serves delivery reports and retries the same record, so nothing is dropped on the
//! client side. Records carry no key; each producer sends runs of records to one partition at a
//! time, with the record timestamp set by the tool, which saves librdkafka per-record work.
//!
//! The measured interval runs from the first send of any producer to the moment the last
//! delivery report has been served (`flush` returns right after it, on the producing thread).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use serde::Serialize;

use super::options::{ProduceArgs, ProducerSettings, Stop};
use super::topic::ensure_topic;
use super::{apply, client_config, emit, human_cpu, run_producers, Payloads, Throughput};
use crate::cpu::CpuUse;
use crate::stats::{human_errors, merge_errors, Errors};

/// How long `flush` may wait for the last delivery reports.
pub const FLUSH_LIMIT: Duration = Duration::from_secs(120);
/// `message.timeout.ms` unless overridden: a record not acknowledged in this time fails (the
/// library default, 5 minutes, would stall a benchmark).
const MESSAGE_TIMEOUT_MS: &str = "60000";
/// Sends between two non-blocking polls for delivery reports.
const POLL_EVERY: u64 = 1024;
/// Sleep when librdkafka's queue is full.
const QUEUE_FULL_PAUSE: Duration = Duration::from_micros(100);
/// Consecutive enqueue failures (other than a full queue) after which the run stops.
const MAX_ENQUEUE_FAILURES: u64 = 1000;

/// Delivery callback state: counts, failures by kind, and the longest stretch without an
/// acknowledgement (a write outage during a failover run).
#[derive(Debug)]
pub struct Counting {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub errors: Mutex<Errors>,
    epoch: Instant,
    /// Nanoseconds since `epoch` of the last acknowledgement (0: none yet).
    last_ack_ns: AtomicU64,
    longest_gap_ns: AtomicU64,
    longest_gap_from_ns: AtomicU64,
}

impl Default for Counting {
    fn default() -> Counting {
        Counting {
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            errors: Mutex::default(),
            epoch: Instant::now(),
            last_ack_ns: AtomicU64::new(0),
            longest_gap_ns: AtomicU64::new(0),
            longest_gap_from_ns: AtomicU64::new(0),
        }
    }
}

impl Counting {
    fn note_gap(&self, now_ns: u64) {
        let prev = self.last_ack_ns.swap(now_ns.max(1), Ordering::Relaxed);
        if prev == 0 {
            return;
        }
        let gap = now_ns.saturating_sub(prev);
        if gap > self.longest_gap_ns.fetch_max(gap, Ordering::Relaxed) {
            self.longest_gap_from_ns.store(prev, Ordering::Relaxed);
        }
    }

    /// The longest stretch between two acknowledgements (or from the last one to `end`), and
    /// when it began, since `start`.
    pub fn longest_gap(&self, start: Instant, end: Instant) -> (Duration, Duration) {
        let end_ns = end.saturating_duration_since(self.epoch).as_nanos() as u64;
        let last = self.last_ack_ns.load(Ordering::Relaxed);
        if last > 0 {
            self.note_gap(end_ns);
            // note_gap moved the last ack: put it back (the end is not an ack).
            self.last_ack_ns.store(last, Ordering::Relaxed);
        }
        let gap = Duration::from_nanos(self.longest_gap_ns.load(Ordering::Relaxed));
        let from =
            self.epoch + Duration::from_nanos(self.longest_gap_from_ns.load(Ordering::Relaxed));
        (gap, from.saturating_duration_since(start))
    }
}

impl ClientContext for Counting {
    /// librdkafka's own log (e.g. with `--producer-property debug=broker,metadata,topic`), on
    /// stderr with a wall-clock time, so a slow failover can be read next to the brokers' logs.
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        eprintln!(
            "{}.{:06} librdkafka {level:?} {fac}: {log_message}",
            now.as_secs(),
            now.subsec_micros()
        );
    }
}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                self.note_gap(self.epoch.elapsed().as_nanos() as u64);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                count_error(&self.errors, e);
            }
        }
    }
}

/// Called when librdkafka's queue is full: serves the delivery reports already there, then
/// sleeps briefly while the library's broker thread sends. (`BaseProducer::poll` with a timeout
/// below a millisecond does not block but spins until it ends, taking a core from the broker on a
/// small machine; the library's queue holds 100,000 records by default, so 100 µs of sleep cannot
/// let it run dry.)
pub fn wait_for_room<C: ProducerContext>(producer: &BaseProducer<C>) {
    producer.poll(Duration::ZERO);
    std::thread::sleep(QUEUE_FULL_PAUSE);
}

/// A short, stable name for a client error (the error code, not its text).
pub fn kafka_error_kind(e: &KafkaError) -> String {
    match e.rdkafka_error_code() {
        Some(code) => format!("{code:?}"),
        None => format!("{e:?}")
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or("unknown")
            .to_string(),
    }
}

pub fn count_error(errors: &Mutex<Errors>, e: &KafkaError) {
    let mut m = errors.lock().unwrap_or_else(|p| p.into_inner());
    *m.entry(kafka_error_kind(e)).or_default() += 1;
}

/// The librdkafka producer configuration of `settings`; `default_linger_ms` applies when
/// `--linger-ms` is not given (`None`: librdkafka's default).
pub fn producer_config(
    bootstrap: &str,
    settings: &ProducerSettings,
    default_linger_ms: Option<f64>,
) -> Result<ClientConfig> {
    let mut c = client_config(bootstrap);
    c.set("acks", settings.acks.as_config())
        .set("compression.codec", settings.compression.as_config())
        .set(
            "max.in.flight.requests.per.connection",
            settings.max_in_flight.to_string(),
        )
        .set("message.timeout.ms", MESSAGE_TIMEOUT_MS);
    if let Some(l) = settings.linger_ms.or(default_linger_ms) {
        c.set("linger.ms", l.to_string());
    }
    // `debug=...` asks for librdkafka's debug log; without this it is filtered out before it
    // reaches the context's `log`.
    if settings
        .producer_property
        .iter()
        .any(|p| p.starts_with("debug="))
    {
        c.set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    if let Some(b) = settings.batch_size {
        c.set("batch.size", b.to_string());
    }
    apply(&mut c, &settings.producer_property)?;
    Ok(c)
}

/// What one produce run measured: the JSON line scripts read.
#[derive(Debug, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub mode: &'static str,
    /// `librdkafka`, or `wire` (`--wire`: pre-encoded batches sent by kafka-load itself).
    pub client: &'static str,
    pub bootstrap_server: String,
    pub topic: String,
    pub partitions: i32,
    pub topic_created: bool,
    pub record_size: usize,
    pub acks: &'static str,
    pub compression: &'static str,
    pub max_in_flight: u32,
    /// `None`: librdkafka's default.
    pub linger_ms: Option<f64>,
    pub batch_size: Option<u32>,
    pub rate: f64,
    /// Producer instances (threads), each with its own connection.
    pub producers: u32,
    pub producer_properties: Vec<String>,
    /// `--records` of a count run.
    pub target_records: Option<u64>,
    /// `--duration` of a timed run.
    pub target_duration_s: Option<f64>,
    /// Records handed to librdkafka (`--wire`: sent in Produce requests).
    pub sent: u64,
    /// Delivery reports with an error.
    pub delivery_errors: u64,
    /// Records neither acknowledged nor failed when `flush` gave up.
    pub undelivered: u64,
    /// Enqueue failures other than a full queue (`--wire`: connections that failed).
    pub enqueue_errors: u64,
    pub errors: Errors,
    /// `--wire`: records in the pre-encoded batch, its encoded size, and Produce requests sent.
    pub batch_records: Option<usize>,
    pub batch_bytes: Option<usize>,
    pub requests: Option<u64>,
    /// Acknowledged records (`records`) and their value bytes, from the first send to the last
    /// delivery report.
    #[serde(flatten)]
    pub throughput: Throughput,
    pub cpu: CpuUse,
    /// The longest time one producer went without an acknowledgement (a write outage), and
    /// when it began, in seconds from the start.
    pub longest_ack_gap_ms: Option<f64>,
    pub longest_ack_gap_at_s: Option<f64>,
}

impl Report {
    pub fn human(&self) -> String {
        format!(
            "kafka-load produce{}: {} ({} partitions) on {}, {} producer(s), {}-byte records, acks={}, \
             compression={}, max.in.flight={}, linger.ms={}, batch.size={}{}\n  \
             sent {}, acknowledged {}, delivery errors {}, undelivered {}, enqueue errors {} ({})\n  \
             throughput {}\n  cpu        {}{}",
            match (self.batch_records, self.batch_bytes) {
                (Some(n), Some(b)) => format!(" --wire ({n} records, {b} bytes per batch)"),
                _ => String::new(),
            },
            self.topic,
            self.partitions,
            self.bootstrap_server,
            self.producers,
            self.record_size,
            self.acks,
            self.compression,
            self.max_in_flight,
            self.linger_ms
                .map_or("default".to_string(), |l| l.to_string()),
            self.batch_size
                .map_or("default".to_string(), |b| b.to_string()),
            if self.rate > 0.0 {
                format!(", rate {} records/s", self.rate)
            } else {
                String::new()
            },
            self.sent,
            self.throughput.records,
            self.delivery_errors,
            self.undelivered,
            self.enqueue_errors,
            human_errors(&self.errors),
            self.throughput.human(),
            human_cpu(&self.cpu, self.throughput.elapsed_s),
            match (self.longest_ack_gap_ms, self.longest_ack_gap_at_s) {
                (Some(g), Some(at)) => format!("\n  longest stretch without an ack {g:.1} ms, from {at:.2} s"),
                _ => String::new(),
            },
        )
    }

    pub fn clean(&self) -> bool {
        self.delivery_errors == 0 && self.undelivered == 0 && self.enqueue_errors == 0
    }
}

pub fn run(args: &ProduceArgs) -> Result<u8> {
    let report = if args.wire {
        super::wire_produce::measure(args)?
    } else {
        measure(args)?
    };
    emit(&report.human(), &report)?;
    Ok(if report.clean() { 0 } else { 1 })
}

/// What one producer thread did.
#[derive(Debug)]
struct Share {
    start: Instant,
    end: Instant,
    sent: u64,
    ok: u64,
    failed: u64,
    undelivered: u64,
    enqueue_errors: u64,
    errors: Errors,
    longest_gap: Duration,
    longest_gap_at: Duration,
}

/// One producer thread's part of the run.
#[derive(Debug, Clone, Copy)]
struct Part {
    index: u64,
    limit: u64,
    rate: f64,
}

pub fn measure(args: &ProduceArgs) -> Result<Report> {
    let stop = args.stop()?;
    let bootstrap = &args.target.bootstrap_server;
    let topic = args.target.topic.as_str();
    let state = ensure_topic(bootstrap, topic, &args.shape)?;
    let settings = &args.producer;
    let config = producer_config(bootstrap, settings, None)?;
    let payloads = Payloads::new(settings.record_size);
    let n = args.producers as u64;
    let parts: Vec<Part> = (0..n)
        .map(|index| Part {
            index,
            limit: match stop {
                Stop::Records(total) => total / n + u64::from(index < total % n),
                Stop::After(_) => u64::MAX,
            },
            rate: args.rate / n as f64,
        })
        .collect();
    let duration = match stop {
        Stop::After(d) => Some(d),
        Stop::Records(_) => None,
    };
    // Every producer has its connection and metadata before the clock starts.
    let partitions = state.partitions;
    let (shares, cpu) = run_producers(&parts, &args.cpu_pids, |&part, ready| {
        produce_part(&config, topic, partitions, &payloads, part, duration, ready)
    });
    let shares = shares?;
    let start = shares.iter().map(|s| s.start).min().expect("one producer");
    let end = shares.iter().map(|s| s.end).max().expect("one producer");
    let sum = |f: fn(&Share) -> u64| shares.iter().map(f).sum::<u64>();
    let (sent, ok, failed) = (sum(|s| s.sent), sum(|s| s.ok), sum(|s| s.failed));
    let (undelivered, enqueue_errors) = (sum(|s| s.undelivered), sum(|s| s.enqueue_errors));
    let mut errors = Errors::new();
    for s in &shares {
        merge_errors(&mut errors, s.errors.clone());
    }
    Ok(Report {
        tool: "kafka-load",
        mode: "produce",
        client: "librdkafka",
        bootstrap_server: bootstrap.clone(),
        topic: topic.to_string(),
        partitions: state.partitions,
        topic_created: state.created,
        record_size: settings.record_size,
        acks: settings.acks.as_config(),
        compression: settings.compression.as_config(),
        max_in_flight: settings.max_in_flight,
        linger_ms: settings.linger_ms,
        batch_size: settings.batch_size,
        rate: args.rate,
        producers: args.producers,
        producer_properties: settings.producer_property.clone(),
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
        enqueue_errors,
        errors,
        batch_records: None,
        batch_bytes: None,
        requests: None,
        throughput: Throughput::of(ok, ok * settings.record_size as u64, end - start),
        cpu,
        longest_ack_gap_ms: shares
            .iter()
            .map(|s| s.longest_gap.as_secs_f64() * 1000.0)
            .reduce(f64::max),
        longest_ack_gap_at_s: shares
            .iter()
            .max_by_key(|s| s.longest_gap)
            .map(|s| s.longest_gap_at.as_secs_f64() + (s.start - start).as_secs_f64()),
    })
}

/// Runs one producer: waits at `ready` once connected, then sends its part and flushes.
fn produce_part(
    config: &ClientConfig,
    topic: &str,
    partitions: i32,
    payloads: &Payloads,
    part: Part,
    duration: Option<Duration>,
    ready: &Barrier,
) -> Result<Share> {
    let setup = || -> Result<BaseProducer<Counting>> {
        let producer: BaseProducer<Counting> = config
            .create_with_context(Counting::default())
            .context("create the producer")?;
        producer
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .context("producer metadata")?;
        Ok(producer)
    };
    let producer = setup();
    // Whatever happened, release the other threads.
    ready.wait();
    let producer = producer?;
    let start = Instant::now();
    let deadline = duration.map(|d| start + d);
    let partitions = u64::try_from(partitions.max(1)).unwrap_or(1);
    let mut sent = 0u64;
    let mut enqueue_errors = 0u64;
    let mut consecutive_failures = 0u64;
    let mut timestamp_ms = 0i64;
    let mut partition = 0i32;
    while sent < part.limit {
        if sent.is_multiple_of(POLL_EVERY) {
            producer.poll(Duration::ZERO);
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            // Refreshed here rather than read by librdkafka for every record (a clock read per
            // record is a visible share of the client's time at millions of records/s).
            timestamp_ms = now_ms();
            // Runs of POLL_EVERY records per partition keep batches full, like librdkafka's
            // sticky partitioner, without its per-record work; producers start staggered.
            partition = ((sent / POLL_EVERY + part.index) % partitions) as i32;
        }
        if part.rate > 0.0 {
            let due = start + Duration::from_secs_f64(sent as f64 / part.rate);
            let now = Instant::now();
            if due > now {
                if deadline.is_some_and(|d| now >= d) {
                    break;
                }
                producer.poll(Duration::ZERO);
                let wait = due - now;
                if wait > Duration::from_micros(100) {
                    std::thread::sleep(wait);
                }
                continue;
            }
        }
        let mut record: BaseRecord<(), [u8]> = BaseRecord::to(topic)
            .payload(payloads.get(sent))
            .partition(partition)
            .timestamp(timestamp_ms);
        loop {
            match producer.send(record) {
                Ok(()) => {
                    sent += 1;
                    consecutive_failures = 0;
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    wait_for_room(&producer);
                    record = r;
                }
                Err((e, _)) => {
                    enqueue_errors += 1;
                    consecutive_failures += 1;
                    count_error(&producer.context().errors, &e);
                    break;
                }
            }
        }
        if consecutive_failures >= MAX_ENQUEUE_FAILURES {
            eprintln!("kafka-load: {consecutive_failures} consecutive enqueue failures, stopping");
            break;
        }
    }
    let flushed = producer.flush(FLUSH_LIMIT);
    let end = Instant::now();
    if let Err(e) = &flushed {
        eprintln!("kafka-load: flush: {e}");
    }
    let ctx = producer.context();
    let errors = ctx.errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (longest_gap, longest_gap_at) = ctx.longest_gap(start, end);
    Ok(Share {
        start,
        end,
        longest_gap,
        longest_gap_at,
        sent,
        ok: ctx.ok.load(Ordering::Relaxed),
        failed: ctx.failed.load(Ordering::Relaxed),
        undelivered: u64::try_from(producer.in_flight_count()).unwrap_or(0),
        enqueue_errors,
        errors,
    })
}

/// Milliseconds since the Unix epoch (a record's CreateTime).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
