//! The command line of `kafka-load`.
//!
//! Like `coord-load`, the tool is meant for measurements on one machine: every bootstrap server
//! must be a loopback address, and every run is bounded in record count and in time.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

/// Most records one run may produce or consume.
pub const MAX_RECORDS: u64 = 200_000_000;
/// Longest run accepted, in seconds.
pub const MAX_SECS: f64 = 600.0;
/// Largest record value accepted.
pub const MAX_RECORD_SIZE: usize = 1 << 20;
/// Highest `--rate` accepted (records/s).
pub const MAX_RATE: f64 = 50_000_000.0;
/// Most partitions one topic may be created with.
pub const MAX_PARTITIONS: i32 = 10_000;

/// Kafka-protocol load generator for a broker on this machine, built on librdkafka.
///
/// Every subcommand prints a human-readable summary on stderr and one JSON line on stdout (the
/// settings used and the figures measured). Exit code 0: the run completed without errors; 1: it
/// completed with delivery errors or missing records; 2: it could not run.
#[derive(Parser, Debug, Clone)]
#[command(name = "kafka-load", version)]
pub struct KafkaOptions {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Produce records as fast as possible (or at --rate) and report records/s and MB/s from the
    /// first send to the last delivery report.
    Produce(ProduceArgs),
    /// Read records from the topic's partitions and report records/s and MB/s.
    Consume(ConsumeArgs),
    /// End-to-end latency at a fixed rate: a consumer in the same process, positioned at the log
    /// end before producing starts, measures receive time minus the send time stamped in each
    /// record.
    Latency(LatencyArgs),
    /// Create a topic (if it does not exist) and wait until every partition has a leader.
    CreateTopic(CreateTopicArgs),
    /// Scrape a broker's metrics endpoint (`metrics.prometheus.listener`) over one keep-alive
    /// connection, as Prometheus does, and report the latency of each `GET /metrics` (p50,
    /// p99, max) and the broker's CPU time per scrape.
    Scrape(ScrapeArgs),
}

/// Where the records go.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// Bootstrap servers: loopback `host:port` pairs separated by commas.
    #[arg(long = "bootstrap-server", default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    /// Topic to produce to / consume from.
    #[arg(long, default_value = "kafka-load")]
    pub topic: String,
    /// librdkafka properties, `key=value`, for every client of the run (admin, producer,
    /// consumer), e.g. `security.protocol=ssl` and `ssl.ca.location=ca.pem` for an SSL listener
    /// (repeatable; not used with --wire).
    #[arg(long = "client-property", value_name = "KEY=VALUE")]
    pub client_property: Vec<String>,
}

/// How a missing topic is created.
#[derive(Args, Debug, Clone)]
pub struct TopicShape {
    /// Partitions of the topic when kafka-load creates it (an existing topic is used as it is).
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// Replication factor of the topic when kafka-load creates it.
    #[arg(long = "replication-factor", default_value_t = 1)]
    pub replication_factor: i32,
    /// Topic settings when kafka-load creates it, `key=value` (repeatable), e.g.
    /// `retention.bytes=67108864` to keep a long run's disk use bounded.
    #[arg(long = "topic-config", value_name = "KEY=VALUE")]
    pub topic_config: Vec<String>,
}

/// `acks` of the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
pub enum Acks {
    #[value(name = "0")]
    #[serde(rename = "0")]
    None,
    #[value(name = "1")]
    #[serde(rename = "1")]
    Leader,
    #[value(name = "all", alias = "-1")]
    #[serde(rename = "all")]
    All,
}

impl Acks {
    pub fn as_config(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

/// `compression.codec` of the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn as_config(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Producer settings shared by `produce` and `latency`.
#[derive(Args, Debug, Clone)]
pub struct ProducerSettings {
    /// Bytes of each record's value (no key).
    #[arg(long = "record-size", default_value_t = 100)]
    pub record_size: usize,
    /// `acks`: 0, 1 or all.
    #[arg(long, value_enum, default_value_t = Acks::Leader)]
    pub acks: Acks,
    /// `compression.codec`.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    /// `max.in.flight.requests.per.connection`.
    #[arg(long = "max-in-flight", default_value_t = 5)]
    pub max_in_flight: u32,
    /// `linger.ms` (default: librdkafka's 5 for produce, 0 for latency).
    #[arg(long = "linger-ms")]
    pub linger_ms: Option<f64>,
    /// `batch.size` in bytes (default: librdkafka's 1000000). With --wire: the most bytes of the
    /// one pre-encoded record batch (default and maximum 1000000).
    #[arg(long = "batch-size")]
    pub batch_size: Option<u32>,
    /// Extra librdkafka producer properties, `key=value`, applied last (repeatable).
    #[arg(long = "producer-property", value_name = "KEY=VALUE")]
    pub producer_property: Vec<String>,
}

/// Consumer settings shared by `consume` and `latency`.
#[derive(Args, Debug, Clone)]
pub struct ConsumerSettings {
    /// `fetch.max.bytes`.
    #[arg(long = "fetch-max-bytes", default_value_t = 52_428_800)]
    pub fetch_max_bytes: u32,
    /// `max.partition.fetch.bytes` (default 1048576; 4194304 with --wire).
    #[arg(long = "max-partition-fetch-bytes")]
    pub max_partition_fetch_bytes: Option<u32>,
    /// `fetch.wait.max.ms`: how long the broker may hold a fetch that has no data.
    #[arg(long = "fetch-wait-max-ms", default_value_t = 500)]
    pub fetch_wait_max_ms: u32,
    /// Extra librdkafka consumer properties, `key=value`, applied last (repeatable).
    #[arg(long = "consumer-property", value_name = "KEY=VALUE")]
    pub consumer_property: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub shape: TopicShape,
    /// Records to produce (default 1000000 unless --duration is given).
    #[arg(long, conflicts_with = "duration")]
    pub records: Option<u64>,
    /// Produce for this many seconds instead of a record count.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Records per second; 0 produces as fast as the client and broker allow.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Independent producers (each a librdkafka instance with its own connection, fed by its
    /// own thread) sharing --records and --rate. librdkafka spends about a microsecond of CPU
    /// per record, so one producer cannot drive millions of small records per second.
    #[arg(long, default_value_t = 1)]
    pub producers: u32,
    /// Speak the Kafka protocol directly instead of through librdkafka: each producer sends one
    /// pre-encoded record batch per partition over and over in pipelined Produce requests, so
    /// the client spends almost nothing per record and the broker's capacity shows.
    #[arg(long)]
    pub wire: bool,
    /// Records in the pre-encoded batch of --wire (default: as many --record-size records as fit
    /// in --batch-size bytes).
    #[arg(long = "batch-records", requires = "wire")]
    pub batch_records: Option<u32>,
    #[command(flatten)]
    pub producer: ProducerSettings,
    /// Also report the CPU time these local processes (the broker) used, from /proc/PID/stat;
    /// comma-separated PIDs.
    #[arg(long, value_delimiter = ',')]
    pub cpu_pids: Vec<u32>,
}

#[derive(Args, Debug, Clone)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub target: Target,
    /// Stop after this many records.
    #[arg(long)]
    pub records: u64,
    /// Start at the beginning of every partition (`--from-beginning=false`: at the log end).
    #[arg(long = "from-beginning", default_value_t = true, action = ArgAction::Set)]
    pub from_beginning: bool,
    /// Join this consumer group and subscribe instead of assigning every partition.
    #[arg(long)]
    pub group: Option<String>,
    /// Give up when no record arrives for this many seconds.
    #[arg(long = "idle-timeout", default_value_t = 30.0)]
    pub idle_timeout: f64,
    /// Speak the Kafka protocol directly instead of through librdkafka: Fetch requests from
    /// offset 0 of every partition, counting records from the record batch headers without
    /// decoding any record.
    #[arg(long)]
    pub wire: bool,
    /// With --wire: the value size the records were produced with, so that MB/s counts record
    /// values as in the other modes (without it, the bytes are those of the record batches,
    /// headers included).
    #[arg(long = "record-size", requires = "wire")]
    pub record_size: Option<usize>,
    #[command(flatten)]
    pub consumer: ConsumerSettings,
    /// Also report the CPU time these local processes (the broker) used; comma-separated PIDs.
    #[arg(long, value_delimiter = ',')]
    pub cpu_pids: Vec<u32>,
}

#[derive(Args, Debug, Clone)]
pub struct LatencyArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub shape: TopicShape,
    /// Records per second (fixed rate).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load before measuring starts (connections, first batches).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// A burst: this many records per second from --burst-after for --burst-for seconds of the
    /// measured time, --rate before and after (a launch or an attack). The report then has a
    /// per-second timeline and the seconds latency took to recover.
    #[arg(long = "burst-rate")]
    pub burst_rate: Option<f64>,
    /// Measured seconds before the burst starts.
    #[arg(long = "burst-after", default_value_t = 10.0)]
    pub burst_after: f64,
    /// Seconds the burst lasts.
    #[arg(long = "burst-for", default_value_t = 60.0)]
    pub burst_for: f64,
    #[command(flatten)]
    pub producer: ProducerSettings,
    #[command(flatten)]
    pub consumer: ConsumerSettings,
    /// Also report the CPU time these local processes (the broker) used; comma-separated PIDs.
    #[arg(long, value_delimiter = ',')]
    pub cpu_pids: Vec<u32>,
}

#[derive(Args, Debug, Clone)]
pub struct ScrapeArgs {
    /// The endpoint: a loopback `host:port`.
    #[arg(long, default_value = "127.0.0.1:7071")]
    pub target: String,
    /// The path asked for.
    #[arg(long, default_value = "/metrics")]
    pub path: String,
    /// Scrapes to make (default 300 unless --duration is given).
    #[arg(long, conflicts_with = "duration")]
    pub scrapes: Option<u64>,
    /// Scrape for this many seconds instead of a count.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Milliseconds from the start of one scrape to the start of the next (0: back to back).
    #[arg(long = "interval-ms", default_value_t = 0)]
    pub interval_ms: u64,
    /// Also report the CPU time these local processes (the broker) used; comma-separated PIDs.
    #[arg(long, value_delimiter = ',')]
    pub cpu_pids: Vec<u32>,
}

/// Scrapes made when neither `--scrapes` nor `--duration` is given.
pub const DEFAULT_SCRAPES: u64 = 300;

impl ScrapeArgs {
    /// When the run ends, and the interval.
    pub fn check(&self) -> Result<(super::scrape::Stop, Duration)> {
        check_bootstrap(&self.target)?;
        ensure!(
            self.path.starts_with('/') && !self.path.contains(char::is_whitespace),
            "--path must start with / and hold no spaces"
        );
        ensure!(
            self.interval_ms <= 60_000,
            "--interval-ms must be at most 60000"
        );
        let stop = match (self.scrapes, self.duration) {
            (Some(n), _) => {
                ensure!(
                    (1..=1_000_000).contains(&n),
                    "--scrapes must be 1..=1000000"
                );
                super::scrape::Stop::Scrapes(n)
            }
            (None, Some(d)) => super::scrape::Stop::After(secs("--duration", d)?),
            (None, None) => super::scrape::Stop::Scrapes(DEFAULT_SCRAPES),
        };
        Ok((stop, Duration::from_millis(self.interval_ms)))
    }
}

#[derive(Args, Debug, Clone)]
pub struct CreateTopicArgs {
    #[command(flatten)]
    pub target: Target,
    #[command(flatten)]
    pub shape: TopicShape,
}

/// When a produce run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    Records(u64),
    After(Duration),
}

/// Records produced when neither `--records` nor `--duration` is given.
pub const DEFAULT_RECORDS: u64 = 1_000_000;
/// `max.partition.fetch.bytes` unless given: librdkafka's default.
pub const DEFAULT_PARTITION_FETCH_BYTES: u32 = 1_048_576;
/// `--max-partition-fetch-bytes` of `consume --wire` unless given.
pub const WIRE_PARTITION_FETCH_BYTES: u32 = 4 * 1_048_576;
/// Largest record batch `produce --wire` sends: below the broker's default `message.max.bytes`.
pub const MAX_WIRE_BATCH_BYTES: u32 = 1_000_000;

pub fn secs(what: &str, v: f64) -> Result<Duration> {
    ensure!(
        v.is_finite() && (0.0..=MAX_SECS).contains(&v),
        "{what} must be between 0 and {MAX_SECS} seconds, not {v}"
    );
    Ok(Duration::from_secs_f64(v))
}

pub fn check_rate(v: f64) -> Result<()> {
    ensure!(
        v.is_finite() && (0.0..=MAX_RATE).contains(&v),
        "--rate must be between 0 and {MAX_RATE}"
    );
    Ok(())
}

impl Target {
    pub fn check(&self) -> Result<()> {
        check_bootstrap(&self.bootstrap_server)?;
        properties(&self.client_property)?;
        ensure!(
            !self.topic.is_empty()
                && self.topic.len() <= 249
                && self
                    .topic
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')),
            "--topic must be 1-249 characters of [a-zA-Z0-9._-]"
        );
        Ok(())
    }
}

impl TopicShape {
    pub fn check(&self) -> Result<()> {
        ensure!(
            (1..=MAX_PARTITIONS).contains(&self.partitions),
            "--partitions must be 1..={MAX_PARTITIONS}"
        );
        ensure!(
            (1..=16).contains(&self.replication_factor),
            "--replication-factor must be 1..=16"
        );
        properties(&self.topic_config)?;
        Ok(())
    }
}

impl ProducerSettings {
    pub fn check(&self, min_size: usize) -> Result<()> {
        ensure!(
            (min_size..=MAX_RECORD_SIZE).contains(&self.record_size),
            "--record-size must be {min_size}..={MAX_RECORD_SIZE}"
        );
        ensure!(
            (1..=1_000).contains(&self.max_in_flight),
            "--max-in-flight must be 1..=1000"
        );
        if let Some(l) = self.linger_ms {
            ensure!(
                l.is_finite() && (0.0..=10_000.0).contains(&l),
                "--linger-ms must be 0..=10000"
            );
        }
        properties(&self.producer_property)?;
        Ok(())
    }
}

impl ConsumerSettings {
    pub fn check(&self) -> Result<()> {
        ensure!(
            self.fetch_wait_max_ms <= 300_000,
            "--fetch-wait-max-ms must be at most 300000"
        );
        properties(&self.consumer_property)?;
        Ok(())
    }
}

impl ProduceArgs {
    pub fn stop(&self) -> Result<Stop> {
        self.target.check()?;
        self.shape.check()?;
        self.producer.check(1)?;
        check_rate(self.rate)?;
        ensure!(
            (1..=16).contains(&self.producers),
            "--producers must be 1..=16"
        );
        if self.wire {
            ensure!(
                self.target.client_property.is_empty(),
                "--client-property is a librdkafka setting, not used with --wire"
            );
            self.check_wire()?;
        }
        match (self.records, self.duration) {
            (Some(n), _) => {
                ensure!(
                    (1..=MAX_RECORDS).contains(&n),
                    "--records must be 1..={MAX_RECORDS}"
                );
                Ok(Stop::Records(n))
            }
            (None, Some(d)) => Ok(Stop::After(secs("--duration", d)?)),
            (None, None) => Ok(Stop::Records(DEFAULT_RECORDS)),
        }
    }
}

impl ProduceArgs {
    /// The options `--wire` cannot honour are refused rather than ignored.
    fn check_wire(&self) -> Result<()> {
        let p = &self.producer;
        ensure!(
            p.compression == Compression::None,
            "--wire sends uncompressed batches only: kafka-protocol is built here without its \
             compression features (--compression {} needs the librdkafka mode)",
            p.compression.as_config()
        );
        ensure!(self.rate == 0.0, "--rate is not supported with --wire");
        ensure!(
            p.linger_ms.is_none() && p.producer_property.is_empty(),
            "--linger-ms and --producer-property are librdkafka settings, not used with --wire"
        );
        ensure!(
            p.batch_size
                .is_none_or(|b| (1..=MAX_WIRE_BATCH_BYTES).contains(&b)),
            "--batch-size must be 1..={MAX_WIRE_BATCH_BYTES} with --wire"
        );
        ensure!(
            self.batch_records.is_none_or(|n| n >= 1),
            "--batch-records must be at least 1"
        );
        Ok(())
    }

    /// Byte limit of the pre-encoded batch of `--wire`.
    pub fn wire_batch_bytes(&self) -> usize {
        self.producer.batch_size.unwrap_or(MAX_WIRE_BATCH_BYTES) as usize
    }
}

impl ConsumeArgs {
    pub fn check(&self) -> Result<Duration> {
        self.target.check()?;
        self.consumer.check()?;
        ensure!(
            (1..=MAX_RECORDS).contains(&self.records),
            "--records must be 1..={MAX_RECORDS}"
        );
        if self.wire {
            ensure!(
                self.group.is_none(),
                "--group is not supported with --wire (it assigns every partition)"
            );
            ensure!(
                self.from_beginning,
                "--wire reads from offset 0: --from-beginning=false is not supported"
            );
            ensure!(
                self.consumer.consumer_property.is_empty()
                    && self.target.client_property.is_empty(),
                "--consumer-property and --client-property are librdkafka settings, not used with --wire"
            );
            ensure!(
                self.record_size.is_none_or(|s| s <= MAX_RECORD_SIZE),
                "--record-size must be at most {MAX_RECORD_SIZE}"
            );
            ensure!(
                (1..=i32::MAX as u32).contains(&self.consumer.fetch_max_bytes)
                    && self.consumer.fetch_wait_max_ms <= i32::MAX as u32,
                "--fetch-max-bytes must be 1..={}",
                i32::MAX
            );
        }
        ensure!(
            self.max_partition_fetch_bytes() <= i32::MAX as u32
                && self.max_partition_fetch_bytes() > 0,
            "--max-partition-fetch-bytes must be 1..={}",
            i32::MAX
        );
        secs("--idle-timeout", self.idle_timeout)
    }

    /// `--max-partition-fetch-bytes`, or the default of the mode.
    pub fn max_partition_fetch_bytes(&self) -> u32 {
        self.consumer
            .max_partition_fetch_bytes
            .unwrap_or(if self.wire {
                WIRE_PARTITION_FETCH_BYTES
            } else {
                DEFAULT_PARTITION_FETCH_BYTES
            })
    }
}

impl LatencyArgs {
    /// The measured duration and the warmup.
    pub fn check(&self) -> Result<(Duration, Duration)> {
        self.target.check()?;
        self.shape.check()?;
        self.producer.check(super::latency::STAMP_LEN)?;
        self.consumer.check()?;
        check_rate(self.rate)?;
        ensure!(
            self.rate >= 1.0,
            "--rate must be at least 1 in latency mode"
        );
        let d = secs("--duration", self.duration)?;
        let w = secs("--warmup", self.warmup)?;
        ensure!(
            (d + w).as_secs_f64() <= MAX_SECS,
            "--warmup plus --duration must be at most {MAX_SECS} seconds"
        );
        ensure!(
            self.rate * (self.duration + self.warmup) <= MAX_RECORDS as f64,
            "--rate times (--duration + --warmup) must be at most {MAX_RECORDS} records"
        );
        if let Some(b) = self.burst_rate {
            check_rate(b)?;
            ensure!(b >= self.rate, "--burst-rate must be at least --rate");
            secs("--burst-after", self.burst_after)?;
            secs("--burst-for", self.burst_for)?;
            ensure!(
                self.burst_after + self.burst_for < self.duration,
                "the burst (--burst-after + --burst-for) must end before --duration does, so that the recovery is measured"
            );
            ensure!(
                b * self.burst_for + self.rate * (self.duration + self.warmup)
                    <= MAX_RECORDS as f64,
                "the run would produce more than {MAX_RECORDS} records"
            );
        }
        Ok((d, w))
    }
}

/// Splits `key=value` properties.
pub fn properties(list: &[String]) -> Result<Vec<(String, String)>> {
    list.iter()
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .with_context(|| format!("property {p:?} is not key=value"))?;
            ensure!(!k.trim().is_empty(), "property {p:?} has an empty key");
            Ok((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Checks that every bootstrap server is a loopback `host:port`.
pub fn check_bootstrap(s: &str) -> Result<()> {
    let mut n = 0;
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (host, port) = entry
            .rsplit_once(':')
            .with_context(|| format!("{entry:?} is not host:port"))?;
        if port.parse::<u16>().is_err() {
            bail!("{entry:?}: bad port");
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = bare.eq_ignore_ascii_case("localhost")
            || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        ensure!(
            loopback,
            "{entry:?} is not a loopback address: kafka-load only targets brokers on this machine"
        );
        n += 1;
    }
    ensure!(n > 0, "--bootstrap-server names no broker");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command> {
        let mut v = vec!["kafka-load"];
        v.extend_from_slice(args);
        Ok(KafkaOptions::try_parse_from(v)?.command)
    }

    #[test]
    fn produce_defaults_and_bounds() {
        let Command::Produce(p) = parse(&["produce"]).unwrap() else {
            panic!("not produce")
        };
        assert_eq!(p.stop().unwrap(), Stop::Records(DEFAULT_RECORDS));
        assert_eq!(p.producer.record_size, 100);
        assert_eq!(p.producer.acks, Acks::Leader);
        assert_eq!(p.shape.partitions, 1);
        let Command::Produce(p) = parse(&[
            "produce",
            "--duration",
            "3",
            "--acks",
            "all",
            "--compression",
            "lz4",
        ])
        .unwrap() else {
            panic!("not produce")
        };
        assert_eq!(p.stop().unwrap(), Stop::After(Duration::from_secs(3)));
        assert_eq!(p.producer.acks.as_config(), "all");
        assert!(parse(&["produce", "--records", "5", "--duration", "1"]).is_err());
        let Command::Produce(p) = parse(&["produce", "--records", "0"]).unwrap() else {
            panic!("not produce")
        };
        assert!(p.stop().is_err());
        let Command::Produce(p) =
            parse(&["produce", "--bootstrap-server", "10.1.2.3:9092"]).unwrap()
        else {
            panic!("not produce")
        };
        assert!(p.stop().is_err());
    }

    #[test]
    fn consume_from_beginning_takes_a_value() {
        let Command::Consume(c) = parse(&["consume", "--records", "10"]).unwrap() else {
            panic!("not consume")
        };
        assert!(c.from_beginning);
        assert_eq!(c.consumer.fetch_wait_max_ms, 500);
        let Command::Consume(c) =
            parse(&["consume", "--records", "10", "--from-beginning=false"]).unwrap()
        else {
            panic!("not consume")
        };
        assert!(!c.from_beginning);
        assert!(parse(&["consume"]).is_err(), "--records is required");
    }

    #[test]
    fn wire_refuses_what_it_cannot_do() {
        let produce = |extra: &[&str]| {
            let mut a = vec!["produce", "--wire"];
            a.extend_from_slice(extra);
            let Command::Produce(p) = parse(&a).unwrap() else {
                panic!("not produce")
            };
            p.stop()
        };
        assert!(produce(&[]).is_ok());
        assert!(produce(&["--batch-records", "500", "--acks", "0"]).is_ok());
        let e = produce(&["--compression", "lz4"]).unwrap_err().to_string();
        assert!(e.contains("compression"), "{e}");
        assert!(produce(&["--rate", "1000"]).is_err());
        assert!(produce(&["--linger-ms", "5"]).is_err());
        assert!(produce(&["--batch-size", "2000000"]).is_err());
        assert!(produce(&["--batch-records", "0"]).is_err());
        assert!(
            parse(&["produce", "--batch-records", "5"]).is_err(),
            "--batch-records needs --wire"
        );

        let Command::Consume(c) = parse(&["consume", "--records", "10", "--wire"]).unwrap() else {
            panic!("not consume")
        };
        assert!(c.check().is_ok());
        assert_eq!(c.max_partition_fetch_bytes(), WIRE_PARTITION_FETCH_BYTES);
        let Command::Consume(c) = parse(&["consume", "--records", "10"]).unwrap() else {
            panic!("not consume")
        };
        assert_eq!(c.max_partition_fetch_bytes(), DEFAULT_PARTITION_FETCH_BYTES);
        for bad in [
            &["--group", "g"][..],
            &["--from-beginning=false"],
            &["--consumer-property", "a=b"],
        ] {
            let mut a = vec!["consume", "--records", "10", "--wire"];
            a.extend_from_slice(bad);
            let Command::Consume(c) = parse(&a).unwrap() else {
                panic!("not consume")
            };
            assert!(c.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn latency_bounds() {
        let Command::Latency(l) = parse(&["latency", "--rate", "10000"]).unwrap() else {
            panic!("not latency")
        };
        assert_eq!(
            l.check().unwrap(),
            (Duration::from_secs(10), Duration::from_secs(1))
        );
        assert_eq!(l.producer.linger_ms, None);
        let Command::Latency(l) = parse(&["latency", "--record-size", "4"]).unwrap() else {
            panic!("not latency")
        };
        assert!(l.check().is_err(), "too small for the time stamp");
    }

    #[test]
    fn properties_and_hosts() {
        assert_eq!(
            properties(&["a.b=1".into(), "c= x ".into()]).unwrap(),
            vec![("a.b".into(), "1".into()), ("c".into(), "x".into())]
        );
        assert!(properties(&["novalue".into()]).is_err());
        assert!(check_bootstrap("127.0.0.1:9092,localhost:9093,[::1]:9094").is_ok());
        assert!(check_bootstrap("example.com:9092").is_err());
        assert!(check_bootstrap("127.0.0.1").is_err());
        assert!(check_bootstrap("").is_err());
    }
}
