//! Topic-level configuration: the keys Kafka accepts per topic, their broker-wide defaults,
//! validation, and the partition-log settings they produce.
//!
//! Overrides live in `/config/topics/<topic>` (Kafka's layout). The keys marked `applied` change
//! how this broker stores the topic; the others are accepted and kept so tools that set them do
//! not fail, but have no effect here (docs/configuration.md lists which is which). Values this
//! broker cannot honour (`cleanup.policy=compact`) are refused with a message saying so, rather
//! than stored and ignored.

use std::collections::BTreeMap;

use sluice_config::BrokerConfig;
use sluice_log::batch::Compression;
use sluice_log::LogConfig;

/// DescribeConfigs `config_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// DescribeConfigs `config_source`.
pub mod source {
    pub const TOPIC: i8 = 1;
    pub const STATIC_BROKER: i8 = 4;
    pub const DEFAULT: i8 = 5;
}

/// One topic-level key.
#[derive(Debug)]
pub struct TopicKey {
    pub name: &'static str,
    /// The `server.properties` key holding the cluster-wide default, if any.
    pub broker_key: Option<&'static str>,
    pub kind: ConfigType,
    /// Kafka's default.
    pub kafka_default: &'static str,
    /// Whether this broker acts on the value.
    pub applied: bool,
    pub doc: &'static str,
}

const fn key(
    name: &'static str,
    broker_key: Option<&'static str>,
    kind: ConfigType,
    kafka_default: &'static str,
    applied: bool,
    doc: &'static str,
) -> TopicKey {
    TopicKey {
        name,
        broker_key,
        kind,
        kafka_default,
        applied,
        doc,
    }
}

const LONG_MAX: &str = "9223372036854775807";

/// Every topic-level key, sorted by name.
pub const TOPIC_KEYS: &[TopicKey] = &[
    key(
        "cleanup.policy",
        Some("log.cleanup.policy"),
        ConfigType::List,
        "delete",
        true,
        "Retention policy for old segments; only `delete` is supported (no compaction).",
    ),
    key(
        "compression.type",
        Some("compression.type"),
        ConfigType::String,
        "producer",
        true,
        "The codec batches are stored in: as the producer sent them (`producer`), or re-encoded by the leader (`uncompressed`, `gzip`, `snappy`, `lz4`, `zstd`).",
    ),
    key(
        "delete.retention.ms",
        Some("log.cleaner.delete.retention.ms"),
        ConfigType::Long,
        "86400000",
        false,
        "Tombstone retention for compacted topics (no effect: no compaction).",
    ),
    key(
        "file.delete.delay.ms",
        Some("log.segment.delete.delay.ms"),
        ConfigType::Long,
        "60000",
        false,
        "Delay before deleting a file from the filesystem (segments are deleted at once).",
    ),
    key(
        "flush.messages",
        Some("log.flush.interval.messages"),
        ConfigType::Long,
        LONG_MAX,
        true,
        "fsync the log after this many records.",
    ),
    key(
        "flush.ms",
        Some("log.flush.interval.ms"),
        ConfigType::Long,
        LONG_MAX,
        true,
        "fsync the log when the last fsync is this old.",
    ),
    key(
        "follower.replication.throttled.replicas",
        Some("follower.replication.throttled.replicas"),
        ConfigType::List,
        "",
        false,
        "Replicas whose follower replication is throttled (no effect).",
    ),
    key(
        "index.interval.bytes",
        Some("log.index.interval.bytes"),
        ConfigType::Int,
        "4096",
        true,
        "Bytes between two entries of the offset index.",
    ),
    key(
        "leader.replication.throttled.replicas",
        Some("leader.replication.throttled.replicas"),
        ConfigType::List,
        "",
        false,
        "Replicas whose leader replication is throttled (no effect).",
    ),
    key(
        "max.compaction.lag.ms",
        Some("log.cleaner.max.compaction.lag.ms"),
        ConfigType::Long,
        LONG_MAX,
        false,
        "Compaction lag (no effect: no compaction).",
    ),
    key(
        "max.message.bytes",
        Some("message.max.bytes"),
        ConfigType::Int,
        "1048588",
        true,
        "Largest record batch accepted from a producer.",
    ),
    key(
        "message.downconversion.enable",
        Some("log.message.downconversion.enable"),
        ConfigType::Boolean,
        "true",
        false,
        "Down-conversion for old consumers (no effect: Fetch starts at v4).",
    ),
    key(
        "message.timestamp.after.max.ms",
        Some("log.message.timestamp.after.max.ms"),
        ConfigType::Long,
        LONG_MAX,
        false,
        "Allowed future skew of record timestamps (not checked).",
    ),
    key(
        "message.timestamp.before.max.ms",
        Some("log.message.timestamp.before.max.ms"),
        ConfigType::Long,
        LONG_MAX,
        false,
        "Allowed past skew of record timestamps (not checked).",
    ),
    key(
        "message.timestamp.difference.max.ms",
        Some("log.message.timestamp.difference.max.ms"),
        ConfigType::Long,
        LONG_MAX,
        false,
        "Allowed skew of record timestamps (not checked).",
    ),
    key(
        "message.timestamp.type",
        Some("log.message.timestamp.type"),
        ConfigType::String,
        "CreateTime",
        true,
        "Which timestamp records keep: the producer's (`CreateTime`) or the time the leader appended them (`LogAppendTime`).",
    ),
    key(
        "min.cleanable.dirty.ratio",
        Some("log.cleaner.min.cleanable.ratio"),
        ConfigType::Double,
        "0.5",
        false,
        "Compaction trigger (no effect: no compaction).",
    ),
    key(
        "min.compaction.lag.ms",
        Some("log.cleaner.min.compaction.lag.ms"),
        ConfigType::Long,
        "0",
        false,
        "Compaction lag (no effect: no compaction).",
    ),
    key(
        "min.insync.replicas",
        Some("min.insync.replicas"),
        ConfigType::Int,
        "1",
        true,
        "Replicas that must be in sync for acks=all produce requests to succeed.",
    ),
    key(
        "preallocate",
        Some("log.preallocate"),
        ConfigType::Boolean,
        "false",
        false,
        "Preallocate segment files (no effect).",
    ),
    key(
        "retention.bytes",
        Some("log.retention.bytes"),
        ConfigType::Long,
        "-1",
        true,
        "Delete the oldest segments while a partition is larger than this (-1: no limit).",
    ),
    key(
        "retention.ms",
        Some("log.retention.ms"),
        ConfigType::Long,
        "604800000",
        true,
        "Delete segments whose newest record is older than this (-1: keep forever).",
    ),
    key(
        "segment.bytes",
        Some("log.segment.bytes"),
        ConfigType::Int,
        "1073741824",
        true,
        "Size at which a partition's active segment is rolled.",
    ),
    key(
        "segment.index.bytes",
        Some("log.index.size.max.bytes"),
        ConfigType::Int,
        "10485760",
        false,
        "Maximum size of an index file (indexes are sized to their segment).",
    ),
    key(
        "segment.jitter.ms",
        Some("log.roll.jitter.ms"),
        ConfigType::Long,
        "0",
        false,
        "Random jitter subtracted from segment.ms (no effect).",
    ),
    key(
        "segment.ms",
        Some("log.roll.ms"),
        ConfigType::Long,
        "604800000",
        true,
        "Age at which a partition's active segment is rolled.",
    ),
    key(
        "unclean.leader.election.enable",
        Some("unclean.leader.election.enable"),
        ConfigType::Boolean,
        "false",
        false,
        "Per-topic unclean election (the broker-wide setting is what the controller uses).",
    ),
];

pub fn lookup(name: &str) -> Option<&'static TopicKey> {
    TOPIC_KEYS.iter().find(|k| k.name == name)
}

/// The broker-wide value of `k` from `server.properties` (defaults applied), as text.
pub fn broker_default(c: &BrokerConfig, k: &TopicKey) -> String {
    let opt = |v: Option<i64>, none: &str| v.map_or_else(|| none.to_string(), |v| v.to_string());
    match k.name {
        "flush.messages" => opt(c.log_flush_interval_messages, LONG_MAX),
        "flush.ms" => opt(c.log_flush_interval_ms, LONG_MAX),
        "max.message.bytes" => c.message_max_bytes.to_string(),
        "min.insync.replicas" => c.min_insync_replicas.to_string(),
        "retention.bytes" => opt(c.log_retention_bytes, "-1"),
        "retention.ms" => opt(c.log_retention_ms, "-1"),
        "segment.bytes" => c.log_segment_bytes.to_string(),
        "segment.ms" => c.log_roll_ms.to_string(),
        "unclean.leader.election.enable" => c.unclean_leader_election_enable.to_string(),
        "message.timestamp.type" => c.log_message_timestamp_type.clone(),
        "compression.type" => c.compression_type.clone(),
        _ => k.kafka_default.to_string(),
    }
}

/// Checks one `name=value` override; the error names what is wrong.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let Some(k) = lookup(name) else {
        return Err(format!("Unknown topic config name: {name}"));
    };
    let bad = |what: &str| {
        Err(format!(
            "Invalid value {value} for configuration {name}: {what}"
        ))
    };
    match k.kind {
        ConfigType::Boolean => {
            if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") {
                return bad("Expected value to be either true or false");
            }
        }
        ConfigType::Int => match value.trim().parse::<i32>() {
            Err(_) => return bad("Not a number of type INT"),
            Ok(v) if v < min_of(name) => {
                return bad(&format!("Value must be at least {}", min_of(name)))
            }
            Ok(_) => {}
        },
        ConfigType::Long => match value.trim().parse::<i64>() {
            Err(_) => return bad("Not a number of type LONG"),
            Ok(v) if v < i64::from(min_of(name)) => {
                return bad(&format!("Value must be at least {}", min_of(name)))
            }
            Ok(_) => {}
        },
        ConfigType::Double => {
            if value.trim().parse::<f64>().is_err() {
                return bad("Not a number of type DOUBLE");
            }
        }
        ConfigType::String | ConfigType::List => {}
    }
    match name {
        "cleanup.policy" => {
            for p in value.split(',').map(str::trim) {
                match p {
                    "delete" => {}
                    "compact" => return bad(
                        "log compaction is not supported by this broker; use cleanup.policy=delete",
                    ),
                    _ => return bad("String must be one of: compact, delete"),
                }
            }
        }
        "compression.type" => {
            if let Err(msg) = codec(value) {
                return bad(&msg);
            }
        }
        "message.timestamp.type" => match value {
            "CreateTime" | "LogAppendTime" => {}
            _ => return bad("String must be one of: CreateTime, LogAppendTime"),
        },
        _ => {}
    }
    Ok(())
}

/// The codec a `compression.type` value names: `None` for `producer` (stored as sent).
pub fn codec(value: &str) -> Result<Option<Compression>, String> {
    Ok(Some(match value {
        "producer" => return Ok(None),
        "uncompressed" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        _ => {
            return Err(
                "String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer".into(),
            )
        }
    }))
}

/// Smallest value Kafka accepts for a numeric key.
fn min_of(name: &str) -> i32 {
    match name {
        "retention.ms" | "retention.bytes" => -1,
        "segment.bytes" => 14,
        "segment.ms" | "flush.messages" | "flush.ms" | "min.insync.replicas" => 1,
        "segment.index.bytes" => 4,
        _ => 0,
    }
}

/// Checks a whole set of overrides, returning the first problem.
pub fn validate_all<'a>(
    configs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), String> {
    configs.into_iter().try_for_each(|(k, v)| validate(k, v))
}

/// The partition-log settings of a topic: `server.properties`, then the topic's overrides.
pub fn log_config(c: &BrokerConfig, overrides: &BTreeMap<String, String>) -> LogConfig {
    let mut lc = crate::replica::log_config(c);
    let num = |k: &str| overrides.get(k).and_then(|v| v.trim().parse::<i64>().ok());
    let positive = |v: i64| u64::try_from(v).ok();
    if let Some(v) = num("segment.bytes").and_then(positive) {
        lc.segment_bytes = v;
    }
    if let Some(v) = num("segment.ms").and_then(positive) {
        lc.segment_ms = v.max(1);
    }
    if let Some(v) = num("index.interval.bytes").and_then(positive) {
        lc.index_interval_bytes = v;
    }
    if let Some(v) = num("max.message.bytes").and_then(positive) {
        lc.max_batch_bytes = v;
    }
    if let Some(v) = num("retention.ms") {
        lc.retention_ms = positive(v);
    }
    if let Some(v) = num("retention.bytes") {
        lc.retention_bytes = positive(v);
    }
    if let Some(v) = num("flush.messages") {
        lc.flush_interval_messages = positive(v).filter(|v| *v != i64::MAX as u64);
    }
    if let Some(v) = num("flush.ms") {
        lc.flush_interval_ms = positive(v).filter(|v| *v != i64::MAX as u64);
    }
    if let Some(v) = overrides.get("message.timestamp.type") {
        lc.log_append_time = v == "LogAppendTime";
    }
    if let Some(Ok(c)) = overrides.get("compression.type").map(|v| codec(v)) {
        lc.compression = c;
    }
    // Only `__consumer_offsets` carries `compact` (users cannot set it). It is not compacted
    // here; its live offsets are rewritten ahead of time retention (groups::refresh_offsets),
    // which size retention could not respect, so none applies to it. Its batches are the group
    // coordinator's own, stored as written whatever the broker-wide `compression.type` (Kafka
    // creates it with `compression.type=producer`).
    if overrides
        .get("cleanup.policy")
        .is_some_and(|p| p.contains("compact"))
    {
        lc.retention_bytes = None;
        lc.compression = None;
    }
    lc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_and_unique() {
        assert!(TOPIC_KEYS.windows(2).all(|w| w[0].name < w[1].name));
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(validate("retention.ms", "86400000").is_ok());
        assert!(validate("retention.ms", "-1").is_ok());
        assert_eq!(
            validate("retention.ms", "soon").unwrap_err(),
            "Invalid value soon for configuration retention.ms: Not a number of type LONG"
        );
        assert_eq!(
            validate("no.such.key", "1").unwrap_err(),
            "Unknown topic config name: no.such.key"
        );
        assert!(validate("cleanup.policy", "compact")
            .unwrap_err()
            .contains("compaction is not supported"));
        assert!(validate("preallocate", "maybe").is_err());
        assert!(validate("segment.bytes", "10").is_err());
    }

    #[test]
    fn overrides_change_the_log_settings() {
        let c = sluice_config::BrokerConfig::from_bytes(
            std::path::Path::new("server.properties"),
            b"broker.id=1\nlog.dirs=/tmp/x\nzookeeper.connect=localhost:2181\nlog.retention.hours=1\n",
        )
        .unwrap()
        .config;
        let base = log_config(&c, &BTreeMap::new());
        assert_eq!(base.retention_ms, Some(3_600_000));
        let o: BTreeMap<String, String> = [
            ("retention.ms", "-1"),
            ("segment.bytes", "1048576"),
            ("flush.messages", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let lc = log_config(&c, &o);
        let compacted: BTreeMap<String, String> = [
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("retention.bytes".to_string(), "1000".to_string()),
        ]
        .into_iter()
        .collect();
        assert_eq!(log_config(&c, &compacted).retention_bytes, None);
        assert_eq!(lc.retention_ms, None);
        assert_eq!(lc.segment_bytes, 1_048_576);
        assert_eq!(lc.flush_interval_messages, Some(1));
    }
}
