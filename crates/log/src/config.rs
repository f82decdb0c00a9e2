//! Per-log settings, named after the broker keys they come from.
//!
//! The broker builds a [`LogConfig`] from `server.properties` (and later per-topic overrides);
//! this crate does not read configuration files. Defaults are Kafka's.

/// Settings of one partition log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `log.segment.bytes`: roll to a new segment before one would exceed this size.
    /// At most `u32::MAX` (index positions are u32); Kafka caps it at `i32::MAX`.
    pub segment_bytes: u64,
    /// `log.roll.ms`: roll when the incoming batch's timestamp is this much newer than the
    /// segment's first batch (or, without timestamps, the segment is this old).
    pub segment_ms: u64,
    /// `log.index.interval.bytes`: bytes between two entries of the sparse indexes.
    pub index_interval_bytes: u64,
    /// `message.max.bytes`: largest batch accepted from a producer.
    pub max_batch_bytes: u64,
    /// `log.retention.ms` (or minutes/hours): delete a segment once its newest timestamp is
    /// older than this. `None` = keep forever.
    pub retention_ms: Option<u64>,
    /// `log.retention.bytes`: delete the oldest segments while the log is larger than this.
    /// `None` = no size limit.
    pub retention_bytes: Option<u64>,
    /// `log.flush.interval.messages`: fsync after this many records. `None` = never forced.
    pub flush_interval_messages: Option<u64>,
    /// `log.flush.interval.ms`: fsync when the last flush is this old (checked on append and by
    /// [`crate::Log::flush_if_due`]). `None` = never forced.
    pub flush_interval_ms: Option<u64>,
    /// `message.timestamp.type=LogAppendTime`: appends as leader stamp each batch with the
    /// time of the append (its `maxTimestamp` and the timestamp-type attribute; the CRC is
    /// recomputed), as Kafka does; `false` keeps the producer's CreateTime.
    pub log_append_time: bool,
    /// `compression.type`: `None` for `producer` (batches are stored as sent); otherwise the
    /// codec the leader re-encodes every batch in before appending it ([`crate::compression`]).
    pub compression: Option<crate::batch::Compression>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 168 * 3_600_000,
            index_interval_bytes: 4096,
            max_batch_bytes: 1_048_588,
            retention_ms: Some(168 * 3_600_000),
            retention_bytes: None,
            flush_interval_messages: None,
            flush_interval_ms: None,
            log_append_time: false,
            compression: None,
        }
    }
}

impl LogConfig {
    /// The batch limits of the produce path (`strict`) or of replicated data.
    pub(crate) fn limits(&self, strict: bool) -> crate::batch::BatchLimits {
        let segment_bytes = self.effective_segment_bytes();
        crate::batch::BatchLimits {
            max_batch_bytes: if strict {
                self.max_batch_bytes
            } else {
                segment_bytes
            },
            segment_bytes,
            strict,
        }
    }

    /// The segment size actually used: at least one batch header, at most `u32::MAX`.
    pub(crate) fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes
            .clamp(crate::batch::HEADER_LEN as u64, u32::MAX as u64)
    }
}
