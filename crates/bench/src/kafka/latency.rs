//! End-to-end latency at a fixed rate. Producer and consumer live in this process and share one
//! `Instant` as their clock: every record's value starts with the nanoseconds from that instant to
//! its send, and the consumer records receive time minus send time.
//!
//! Before anything is produced, the consumer is assigned every partition at its current high
//! watermark (read with ListOffsets), so it sees exactly the records of this run. The first
//! `--warmup` seconds of records carry a marker and are not measured (connections, the first
//! fetch). Sends are paced against the schedule `start + i / rate`; a sender that wakes up late
//! sends what is due at once, and every record is stamped when it is handed to librdkafka, so a
//! late sender does not inflate the latency.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use super::consume::{consumer_config, partitions_of};
use super::options::LatencyArgs;
use super::options::MAX_SECS;
use super::produce::{count_error, producer_config, wait_for_room, Counting, FLUSH_LIMIT};
use super::topic::ensure_topic;
use super::{emit, human_cpu, CpuWindow, Payloads};
use crate::cpu::CpuUse;
use crate::stats::{self, human_errors, Errors};

/// Bytes at the start of each value: send time (u64 little-endian nanoseconds since the shared
/// origin), then 1 for a measured record or 0 for a warmup record.
pub const STAMP_LEN: usize = 9;
/// How long the consumer keeps waiting for the last records after the producer has flushed.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// `linger.ms` unless `--linger-ms` is given: send every record at once.
const DEFAULT_LINGER_MS: f64 = 0.0;

/// End-to-end latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct E2eLatency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl E2eLatency {
    /// From a histogram in microseconds ([`stats::new_histogram`]).
    pub fn of(h: &Histogram<u64>) -> E2eLatency {
        let l = stats::Latency::of(h);
        let p90_ms = if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(0.9) as f64 / 1000.0
        };
        E2eLatency {
            p50_ms: l.p50_ms,
            p90_ms,
            p99_ms: l.p99_ms,
            p999_ms: l.p999_ms,
            max_ms: l.max_ms,
            mean_ms: l.mean_ms,
        }
    }

    pub fn human(&self) -> String {
        format!(
            "p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  (mean {:.3} ms)",
            self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms, self.mean_ms
        )
    }
}

/// Writes the stamp into the first [`STAMP_LEN`] bytes of `buf`.
pub fn stamp(buf: &mut [u8], nanos: u64, measured: bool) {
    buf[..8].copy_from_slice(&nanos.to_le_bytes());
    buf[8] = u8::from(measured);
}

/// Reads a stamp: (send nanoseconds, measured). `None` for a value too short or not ours.
pub fn read_stamp(value: &[u8]) -> Option<(u64, bool)> {
    let nanos = u64::from_le_bytes(value.get(..8)?.try_into().ok()?);
    match value.get(8)? {
        0 => Some((nanos, false)),
        1 => Some((nanos, true)),
        _ => None,
    }
}

/// What one latency run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub mode: &'static str,
    pub bootstrap_server: String,
    pub topic: String,
    pub partitions: usize,
    pub record_size: usize,
    pub rate: f64,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub acks: &'static str,
    pub compression: &'static str,
    pub max_in_flight: u32,
    pub linger_ms: f64,
    pub batch_size: Option<u32>,
    pub fetch_wait_max_ms: u32,
    pub producer_properties: Vec<String>,
    pub consumer_properties: Vec<String>,
    /// Measured records handed to librdkafka, and the rate that achieved.
    pub sent: u64,
    pub achieved_rate: f64,
    pub delivery_errors: u64,
    /// Measured records the consumer received (each latency sample is one).
    pub received: u64,
    /// Measured records acknowledged to the producer but never received.
    pub missing: u64,
    /// Records whose value did not carry a stamp of this tool.
    pub foreign: u64,
    pub errors: Errors,
    #[serde(flatten)]
    pub latency: E2eLatency,
    pub cpu: CpuUse,
    /// With `--burst-rate`: the burst and how latency went through it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<BurstReport>,
}

/// When the measured records are due: `--rate`, or `--burst-rate` within the burst.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    rate: f64,
    /// (start s, end s, rate) of the burst within the measured phase.
    burst: Option<(f64, f64, f64)>,
}

impl Schedule {
    /// Seconds from the phase start at which record `i` is due.
    fn due(&self, i: u64) -> f64 {
        let i = i as f64;
        let Some((start, end, rate)) = self.burst else {
            return i / self.rate;
        };
        let before = start * self.rate;
        let during = (end - start) * rate;
        if i < before {
            i / self.rate
        } else if i < before + during {
            start + (i - before) / rate
        } else {
            end + (i - before - during) / self.rate
        }
    }
}

/// Latency of the records sent in one second of the measured phase.
#[derive(Debug, Clone, Serialize)]
pub struct Second {
    pub second: u32,
    pub received: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// A burst run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct BurstReport {
    pub burst_rate: f64,
    pub burst_after_s: f64,
    pub burst_for_s: f64,
    /// p99 over the seconds before the burst.
    pub before_p99_ms: f64,
    /// p99 over the burst's seconds.
    pub during_p99_ms: f64,
    /// Seconds after the burst ended until every later second's p99 was within twice the
    /// before-burst p99 (plus 1 ms); `None` if it never was.
    pub recovered_after_s: Option<u32>,
    pub timeline: Vec<Second>,
}

impl BurstReport {
    fn of(args_burst: (f64, f64, f64), seconds: &[Histogram<u64>]) -> BurstReport {
        let (rate, after, length) = args_burst;
        let (start, end) = (after as usize, (after + length).ceil() as usize);
        let merged = |range: std::ops::Range<usize>| {
            let mut h = stats::new_histogram();
            for s in seconds.get(range).unwrap_or_default() {
                h.add(s).expect("same bounds");
            }
            E2eLatency::of(&h).p99_ms
        };
        let timeline: Vec<Second> = seconds
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let l = E2eLatency::of(h);
                Second {
                    second: i as u32,
                    received: h.len(),
                    p50_ms: l.p50_ms,
                    p99_ms: l.p99_ms,
                    max_ms: l.max_ms,
                }
            })
            .collect();
        let before_p99_ms = merged(0..start.min(seconds.len()));
        let bound = 2.0 * before_p99_ms + 1.0;
        // The first second after the burst from which no later one exceeds the bound.
        let recovered_after_s = (end..timeline.len())
            .find(|&from| timeline[from..].iter().all(|s| s.p99_ms <= bound))
            .map(|from| (from - end) as u32);
        BurstReport {
            burst_rate: rate,
            burst_after_s: after,
            burst_for_s: length,
            before_p99_ms,
            during_p99_ms: merged(start.min(seconds.len())..end.min(seconds.len())),
            recovered_after_s,
            timeline,
        }
    }

    fn human(&self) -> String {
        let line: Vec<String> = self
            .timeline
            .iter()
            .map(|s| format!("{}:{:.1}", s.second, s.p99_ms))
            .collect();
        format!(
            "\n  burst      {} records/s from {} s for {} s: p99 before {:.3} ms, during {:.3} ms, recovered {}\n  p99 per second (s:ms) {}",
            self.burst_rate,
            self.burst_after_s,
            self.burst_for_s,
            self.before_p99_ms,
            self.during_p99_ms,
            match self.recovered_after_s {
                Some(s) => format!("{s} s after it ended"),
                None => "never".into(),
            },
            line.join(" ")
        )
    }
}

impl Report {
    pub fn human(&self) -> String {
        format!(
            "kafka-load latency: {} ({} partitions) on {}, {} records/s for {} s after {} s warmup, \
             {}-byte records, acks={}, linger.ms={}, fetch.wait.max.ms={}\n  \
             sent {} ({:.0} records/s), delivery errors {}, received {}, missing {}, errors: {}\n  \
             end-to-end {}\n  cpu        {}",
            self.topic,
            self.partitions,
            self.bootstrap_server,
            self.rate,
            self.duration_s,
            self.warmup_s,
            self.record_size,
            self.acks,
            self.linger_ms,
            self.fetch_wait_max_ms,
            self.sent,
            self.achieved_rate,
            self.delivery_errors,
            self.received,
            self.missing,
            human_errors(&self.errors),
            self.latency.human(),
            human_cpu(&self.cpu, self.duration_s + self.warmup_s),
        ) + &self.burst.as_ref().map(BurstReport::human).unwrap_or_default()
    }

    pub fn clean(&self) -> bool {
        self.delivery_errors == 0 && self.missing == 0 && self.received > 0
    }
}

/// Shared between the producing thread and the consumer thread.
#[derive(Debug)]
struct Shared {
    origin: Instant,
    /// Set once the producer has flushed: the consumer may stop after `expected` records.
    done: AtomicBool,
    expected: AtomicU64,
    /// Nanoseconds from `origin` to the start of the measured phase (`u64::MAX` before).
    measured_start_ns: AtomicU64,
    /// Keep a histogram per second of send time (burst runs).
    per_second: bool,
}

#[derive(Debug)]
struct Received {
    hist: Histogram<u64>,
    /// By second of send time within the measured phase (burst runs only).
    seconds: Vec<Histogram<u64>>,
    measured: u64,
    foreign: u64,
    errors: Errors,
}

pub fn run(args: &LatencyArgs) -> Result<u8> {
    let report = measure(args)?;
    emit(&report.human(), &report)?;
    Ok(if report.clean() { 0 } else { 1 })
}

/// Starts the consumer thread and returns once it is assigned at the log end of every partition.
fn start_consumer(
    args: &LatencyArgs,
    shared: Arc<Shared>,
) -> Result<(usize, JoinHandle<Result<Received>>)> {
    let config = consumer_config(&args.target.bootstrap_server, &args.consumer, None, false)?;
    let topic = args.target.topic.clone();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<usize>>();
    let handle = std::thread::Builder::new()
        .name("kafka-load-consumer".into())
        .spawn(move || -> Result<Received> {
            let setup = || -> Result<(BaseConsumer, usize)> {
                let consumer: BaseConsumer = config.create().context("create the consumer")?;
                let partitions = partitions_of(&consumer, &topic)?;
                let mut tpl = TopicPartitionList::new();
                for &p in &partitions {
                    let (_, high) = consumer
                        .fetch_watermarks(&topic, p, Duration::from_secs(10))
                        .with_context(|| format!("log end of {topic}-{p}"))?;
                    tpl.add_partition_offset(&topic, p, Offset::Offset(high))?;
                }
                consumer.assign(&tpl).context("assign")?;
                Ok((consumer, partitions.len()))
            };
            let consumer = match setup() {
                Ok((c, n)) => {
                    let _ = ready_tx.send(Ok(n));
                    c
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow!("{e:#}")));
                    return Err(e);
                }
            };
            consume_stamps(&consumer, &shared)
        })
        .context("spawn the consumer thread")?;
    let partitions = ready_rx
        .recv()
        .map_err(|_| anyhow!("the consumer thread ended before it was ready"))??;
    Ok((partitions, handle))
}

fn consume_stamps(consumer: &BaseConsumer, shared: &Shared) -> Result<Received> {
    let mut out = Received {
        hist: stats::new_histogram(),
        seconds: Vec::new(),
        measured: 0,
        foreign: 0,
        errors: Errors::new(),
    };
    let errors = Mutex::new(Errors::new());
    let mut drain_deadline: Option<Instant> = None;
    loop {
        if shared.done.load(Ordering::Acquire) {
            if out.measured >= shared.expected.load(Ordering::Acquire) {
                break;
            }
            let d = *drain_deadline.get_or_insert_with(|| Instant::now() + DRAIN_LIMIT);
            if Instant::now() >= d {
                break;
            }
        }
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                let now = Instant::now();
                match m.payload().and_then(read_stamp) {
                    Some((sent, true)) => {
                        let sent_at = shared.origin + Duration::from_nanos(sent);
                        let latency = now.saturating_duration_since(sent_at);
                        stats::record(&mut out.hist, latency);
                        out.measured += 1;
                        if shared.per_second {
                            let from = shared.measured_start_ns.load(Ordering::Acquire);
                            // At most MAX_SECS seconds: the run is bounded.
                            let second = (sent.saturating_sub(from) / 1_000_000_000) as usize;
                            if second <= MAX_SECS as usize {
                                while out.seconds.len() <= second {
                                    out.seconds.push(stats::new_histogram());
                                }
                                stats::record(&mut out.seconds[second], latency);
                            }
                        }
                    }
                    Some((_, false)) => {}
                    None => out.foreign += 1,
                }
            }
            Some(Err(e)) => count_error(&errors, &e),
            None => {}
        }
    }
    out.errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(out)
}

pub fn measure(args: &LatencyArgs) -> Result<Report> {
    let (duration, warmup) = args.check()?;
    let bootstrap = &args.target.bootstrap_server;
    let topic = args.target.topic.as_str();
    ensure_topic(bootstrap, topic, &args.shape)?;
    let settings = &args.producer;
    let linger_ms = settings.linger_ms.unwrap_or(DEFAULT_LINGER_MS);
    let producer: BaseProducer<Counting> =
        producer_config(bootstrap, settings, Some(DEFAULT_LINGER_MS))?
            .create_with_context(Counting::default())
            .context("create the producer")?;
    producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("producer metadata")?;

    let shared = Arc::new(Shared {
        origin: Instant::now(),
        done: AtomicBool::new(false),
        expected: AtomicU64::new(0),
        measured_start_ns: AtomicU64::new(u64::MAX),
        per_second: args.burst_rate.is_some(),
    });
    let burst = args
        .burst_rate
        .map(|r| (r, args.burst_after, args.burst_for));
    let (partitions, consumer) = start_consumer(args, Arc::clone(&shared))?;

    let cpu = CpuWindow::start(&args.cpu_pids);
    let payloads = Payloads::new(settings.record_size);
    let mut buf = payloads.get(0).to_vec();
    let mut enqueue_errors = 0u64;
    let mut measured_sent = 0u64;
    for (phase_len, measured) in [(warmup, false), (duration, true)] {
        let phase_start = Instant::now();
        let schedule = Schedule {
            rate: args.rate,
            burst: burst
                .filter(|_| measured)
                .map(|(r, after, length)| (after, after + length, r)),
        };
        if measured {
            shared.measured_start_ns.store(
                (phase_start - shared.origin).as_nanos() as u64,
                Ordering::Release,
            );
        }
        let end = phase_start + phase_len;
        let mut i = 0u64;
        loop {
            let now = Instant::now();
            if now >= end {
                break;
            }
            let due = phase_start + Duration::from_secs_f64(schedule.due(i));
            if due > now {
                producer.poll(Duration::ZERO);
                std::thread::sleep((due - now).min(end - now));
                continue;
            }
            buf.copy_from_slice(payloads.get(i));
            let sent_at = Instant::now();
            stamp(
                &mut buf,
                (sent_at - shared.origin).as_nanos() as u64,
                measured,
            );
            let mut record: BaseRecord<(), [u8]> = BaseRecord::to(topic).payload(&buf[..]);
            loop {
                match producer.send(record) {
                    Ok(()) => {
                        if measured {
                            measured_sent += 1;
                        }
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        wait_for_room(&producer);
                        record = r;
                    }
                    Err((e, _)) => {
                        enqueue_errors += 1;
                        count_error(&producer.context().errors, &e);
                        break;
                    }
                }
            }
            i += 1;
        }
    }
    if let Err(e) = producer.flush(FLUSH_LIMIT) {
        eprintln!("kafka-load: flush: {e}");
    }
    let ctx = producer.context();
    let failed = ctx.failed.load(Ordering::Relaxed);
    // Every measured record that was not reported failed should arrive (a failed warmup record
    // makes this bound conservative, never too strict).
    shared
        .expected
        .store(measured_sent.saturating_sub(failed), Ordering::Release);
    shared.done.store(true, Ordering::Release);
    let received = consumer
        .join()
        .map_err(|_| anyhow!("the consumer thread panicked"))??;
    let cpu = cpu.stop();
    let mut errors = ctx.errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
    stats::merge_errors(&mut errors, received.errors);
    let expected = shared.expected.load(Ordering::Acquire);
    let measured_s = duration.as_secs_f64();
    Ok(Report {
        tool: "kafka-load",
        mode: "latency",
        bootstrap_server: bootstrap.clone(),
        topic: topic.to_string(),
        partitions,
        record_size: settings.record_size,
        rate: args.rate,
        duration_s: measured_s,
        warmup_s: warmup.as_secs_f64(),
        acks: settings.acks.as_config(),
        compression: settings.compression.as_config(),
        max_in_flight: settings.max_in_flight,
        linger_ms,
        batch_size: settings.batch_size,
        fetch_wait_max_ms: args.consumer.fetch_wait_max_ms,
        producer_properties: settings.producer_property.clone(),
        consumer_properties: args.consumer.consumer_property.clone(),
        sent: measured_sent,
        achieved_rate: if measured_s > 0.0 {
            measured_sent as f64 / measured_s
        } else {
            0.0
        },
        delivery_errors: failed + enqueue_errors,
        received: received.measured,
        missing: expected.saturating_sub(received.measured),
        foreign: received.foreign,
        errors,
        latency: E2eLatency::of(&received.hist),
        cpu,
        burst: burst.map(|b| BurstReport::of(b, &received.seconds)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_schedule_speeds_up_and_slows_down_again() {
        let s = Schedule {
            rate: 10.0,
            burst: Some((2.0, 3.0, 100.0)),
        };
        // 20 records in the first 2 s, 100 in the burst second, then 10 per second again.
        assert_eq!(s.due(10), 1.0);
        assert_eq!(s.due(20), 2.0);
        assert!((s.due(70) - 2.5).abs() < 1e-9);
        assert_eq!(s.due(120), 3.0);
        assert_eq!(s.due(130), 4.0);
        let flat = Schedule {
            rate: 10.0,
            burst: None,
        };
        assert_eq!(flat.due(130), 13.0);
    }

    #[test]
    fn stamps_round_trip() {
        let mut buf = vec![7u8; 20];
        stamp(&mut buf, 123_456_789, true);
        assert_eq!(read_stamp(&buf), Some((123_456_789, true)));
        stamp(&mut buf, 5, false);
        assert_eq!(read_stamp(&buf), Some((5, false)));
        assert_eq!(read_stamp(&buf[..8]), None);
        buf[8] = 9;
        assert_eq!(read_stamp(&buf), None);
    }

    #[test]
    fn percentiles_include_p90() {
        let mut h = stats::new_histogram();
        for us in 1..=1000u64 {
            stats::record(&mut h, Duration::from_micros(us));
        }
        let l = E2eLatency::of(&h);
        assert!((l.p90_ms - 0.9).abs() < 0.002, "{l:?}");
        assert!(l.p50_ms < l.p90_ms && l.p90_ms < l.p99_ms && l.p99_ms <= l.max_ms);
        assert_eq!(E2eLatency::of(&stats::new_histogram()).max_ms, 0.0);
    }
}
