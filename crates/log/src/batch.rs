//! Kafka record batches (magic v2): the 61-byte header, CRC-32C, and splitting a produce payload.
//!
//! The log stores batches exactly as received. A produce payload (`records` of a partition in a
//! ProduceRequest, or a follower's fetch response) is a concatenation of batches; [`Batches`]
//! walks it and [`validate_payload`] checks every batch before anything is written. Assigning
//! offsets only rewrites `baseOffset` and `partitionLeaderEpoch` ([`set_base_offset`],
//! [`set_partition_leader_epoch`]), the two fields before the CRC's range, so the batch is never
//! re-encoded and compressed record data is never touched.
//!
//! ```text
//! offset  size  field                 offset  size  field
//!      0     8  baseOffset                 27     8  baseTimestamp
//!      8     4  batchLength (from 12)      35     8  maxTimestamp
//!     12     4  partitionLeaderEpoch       43     8  producerId
//!     16     1  magic (= 2)                51     2  producerEpoch
//!     17     4  crc (CRC-32C of 21..end)   53     4  baseSequence
//!     21     2  attributes                 57     4  recordCount
//!     23     4  lastOffsetDelta            61     …  records (possibly compressed)
//! ```
//! All integers are big-endian.

use crate::error::BatchError;

/// Size of the v2 batch header; the smallest possible batch (no records).
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength` starts counting (baseOffset + batchLength).
pub const LOG_OVERHEAD: usize = 12;
/// Smallest valid `batchLength`.
pub const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;
/// Where the CRC-covered range starts (the attributes field).
pub const CRC_START: usize = 21;
/// The only supported magic.
pub const MAGIC_V2: i8 = 2;
/// Attributes bit 3: the batch's timestamps are LogAppendTime.
pub const TIMESTAMP_TYPE_BIT: i16 = 0x08;
/// Bytes of a header up to the end of `maxTimestamp`: what stamping LogAppendTime rewrites.
pub const STAMPED_HEAD: usize = 43;

const MAGIC_OFFSET: usize = 16;
const LEADER_EPOCH_OFFSET: usize = 12;

/// Compression codec of a batch (attributes bits 0–2). The log never decompresses; this is
/// reported so the broker can enforce `compression.type` if it wants to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
    /// 5, 6 or 7: no codec has these ids.
    Unknown(u8),
}

/// Timestamp type of a batch (attributes bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The parsed header of one record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn be_u32(b: &[u8], at: usize) -> u32 {
    be_i32(b, at) as u32
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Parses the first 61 bytes of `buf`. Checks only what is needed to know the batch's extent
    /// and version: length of `buf`, magic, and `batchLength >= 49`. The CRC and offset fields
    /// are checked by [`verify_crc`] and [`BatchHeader::check_offsets`].
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        // Legacy message sets (magic 0/1) have the magic byte at the same position, so a short
        // but old-format payload is still reported as such.
        if buf.len() > MAGIC_OFFSET && buf[MAGIC_OFFSET] as i8 != MAGIC_V2 {
            return Err(BatchError::UnsupportedMagic(buf[MAGIC_OFFSET] as i8));
        }
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: HEADER_LEN as u64,
                available: buf.len() as u64,
            });
        }
        let h = BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, 12),
            magic: buf[16] as i8,
            crc: be_u32(buf, 17),
            attributes: be_i16(buf, 21),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            record_count: be_i32(buf, 57),
        };
        if h.batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::BadLength(h.batch_length));
        }
        Ok(h)
    }

    /// Total size of the batch in bytes (`batchLength + 12`).
    pub fn size(&self) -> u64 {
        // batch_length >= 49 once parsed, so the cast is exact.
        self.batch_length as u64 + LOG_OVERHEAD as u64
    }

    /// Offset of the batch's last record (`baseOffset + lastOffsetDelta`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(self.last_offset_delta as i64)
    }

    /// The compression codec (attributes bits 0–2).
    pub fn compression(&self) -> Compression {
        match (self.attributes & 0x07) as u8 {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            n => Compression::Unknown(n),
        }
    }

    /// CreateTime or LogAppendTime (attributes bit 3).
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Part of a transaction (attributes bit 4).
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    /// A control batch (transaction markers; attributes bit 5). Clients may not produce these;
    /// that check belongs to the broker's produce path.
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    /// Sequence number of the last record, wrapping as Kafka does (past `i32::MAX` to 0); -1
    /// when the batch has no sequence (non-idempotent producer).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        if last > i32::MAX as i64 {
            (last - i32::MAX as i64 - 1) as i32
        } else {
            last as i32
        }
    }

    /// Consistency of the offset fields. `strict` is the produce path (as Kafka's validator: the
    /// count must equal `lastOffsetDelta + 1` and be positive, known codec); replicated data and
    /// recovery accept what compaction can produce (fewer records than the offset range).
    pub fn check_offsets(&self, strict: bool) -> Result<(), BatchError> {
        if self.last_offset_delta < 0 {
            return Err(BatchError::Invalid("negative lastOffsetDelta"));
        }
        if self.record_count < 0 {
            return Err(BatchError::Invalid("negative record count"));
        }
        if strict {
            if self.record_count == 0 {
                return Err(BatchError::Invalid("record batch has no records"));
            }
            if self.record_count as i64 != self.last_offset_delta as i64 + 1 {
                return Err(BatchError::Invalid(
                    "record count does not match lastOffsetDelta + 1",
                ));
            }
            if let Compression::Unknown(_) = self.compression() {
                return Err(BatchError::Invalid("unknown compression codec"));
            }
        } else if self.record_count as i64 > self.last_offset_delta as i64 + 1 {
            return Err(BatchError::Invalid("more records than offsets"));
        }
        Ok(())
    }
}

/// CRC-32C (Castagnoli) of a whole batch's covered range, `batch[21..]`.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(CRC_START..).unwrap_or(&[]))
}

/// Checks the stored CRC of a whole batch (`batch` is exactly one batch).
pub fn verify_crc(batch: &[u8], header: &BatchHeader) -> Result<(), BatchError> {
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch {
            stored: header.crc,
            computed,
        });
    }
    Ok(())
}

/// Rewrites `baseOffset` of a batch in place (not covered by the CRC).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    if batch.len() >= 8 {
        batch[..8].copy_from_slice(&base_offset.to_be_bytes());
    }
}

/// Rewrites `partitionLeaderEpoch` of a batch in place (not covered by the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    if batch.len() >= LEADER_EPOCH_OFFSET + 4 {
        batch[LEADER_EPOCH_OFFSET..LEADER_EPOCH_OFFSET + 4].copy_from_slice(&epoch.to_be_bytes());
    }
}

/// Iterator over the batches of a payload: `(byte position, header, batch bytes)`. Stops after
/// the first error. Does not check CRCs (see [`validate_payload`]).
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Batches<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Batches {
            buf,
            pos: 0,
            failed: false,
        }
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<(usize, BatchHeader, &'a [u8]), (usize, BatchError)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let pos = self.pos;
        let rest = &self.buf[pos..];
        let header = match BatchHeader::parse(rest) {
            Ok(h) => h,
            Err(e) => {
                self.failed = true;
                return Some(Err((pos, e)));
            }
        };
        let size = header.size();
        if size > rest.len() as u64 {
            self.failed = true;
            return Some(Err((
                pos,
                BatchError::Truncated {
                    needed: size,
                    available: rest.len() as u64,
                },
            )));
        }
        // size <= rest.len(), so it fits usize.
        let size = size as usize;
        self.pos += size;
        Some(Ok((pos, header, &rest[..size])))
    }
}

/// Limits applied by [`validate_payload`].
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Largest batch accepted (`message.max.bytes`).
    pub max_batch_bytes: u64,
    /// Segment size: a batch must fit in one segment.
    pub segment_bytes: u64,
    /// Produce-path checks (see [`BatchHeader::check_offsets`]).
    pub strict: bool,
}

/// A batch of a validated payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadBatch {
    /// Byte position of the batch in the payload.
    pub position: usize,
    pub header: BatchHeader,
}

/// Splits a payload into batches and checks each: v2 magic, lengths, CRC, offset fields,
/// size limits. Returns the batches in order, or the first problem with its batch index and
/// byte position (the produce response's `batch_index`).
pub fn validate_payload(
    payload: &[u8],
    limits: &BatchLimits,
) -> Result<Vec<PayloadBatch>, crate::LogError> {
    let mut out = Vec::new();
    for (index, item) in Batches::new(payload).enumerate() {
        let fail = |position, source| crate::LogError::Batch {
            index,
            position,
            source,
        };
        let (position, header, bytes) = item.map_err(|(p, e)| fail(p, e))?;
        let size = header.size();
        if size > limits.segment_bytes {
            return Err(fail(
                position,
                BatchError::LargerThanSegment {
                    size,
                    segment_bytes: limits.segment_bytes,
                },
            ));
        }
        if size > limits.max_batch_bytes {
            return Err(fail(
                position,
                BatchError::TooLarge {
                    size,
                    max: limits.max_batch_bytes,
                },
            ));
        }
        header
            .check_offsets(limits.strict)
            .map_err(|e| fail(position, e))?;
        verify_crc(bytes, &header).map_err(|e| fail(position, e))?;
        out.push(PayloadBatch { position, header });
    }
    if out.is_empty() {
        return Err(crate::LogError::Batch {
            index: 0,
            position: 0,
            source: BatchError::Empty,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::BatchBuilder;

    fn batch(n: usize) -> Vec<u8> {
        let mut b = BatchBuilder::new();
        for i in 0..n {
            b.push(
                1_000 + i as i64,
                Some(b"k"),
                Some(format!("v{i}").as_bytes()),
            );
        }
        b.build()
    }

    const LIMITS: BatchLimits = BatchLimits {
        max_batch_bytes: 1 << 20,
        segment_bytes: 1 << 30,
        strict: true,
    };

    #[test]
    fn header_round_trip() {
        let b = batch(3);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.magic, 2);
        assert_eq!(h.size(), b.len() as u64);
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.base_timestamp, 1000);
        assert_eq!(h.max_timestamp, 1002);
        assert_eq!(h.compression(), Compression::None);
        verify_crc(&b, &h).unwrap();
    }

    #[test]
    fn offsets_and_epoch_are_outside_the_crc() {
        let mut b = batch(2);
        set_base_offset(&mut b, 12345);
        set_partition_leader_epoch(&mut b, 7);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.base_offset, 12345);
        assert_eq!(h.partition_leader_epoch, 7);
        assert_eq!(h.last_offset(), 12346);
        verify_crc(&b, &h).unwrap();
    }

    #[test]
    fn splits_several_batches() {
        let mut p = batch(1);
        p.extend(batch(5));
        p.extend(batch(2));
        let v = validate_payload(&p, &LIMITS).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[1].header.record_count, 5);
        assert_eq!(v[1].position, batch(1).len());
    }

    #[test]
    fn rejects_bad_crc_with_corrupt_message() {
        let mut p = batch(1);
        p.extend(batch(2));
        let last = p.len() - 1;
        p[last] ^= 0x40;
        let e = validate_payload(&p, &LIMITS).unwrap_err();
        assert_eq!(e.kafka_error_code(), crate::kafka_code::CORRUPT_MESSAGE);
        match e {
            crate::LogError::Batch { index, source, .. } => {
                assert_eq!(index, 1);
                assert!(matches!(source, BatchError::CrcMismatch { .. }));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rejects_old_magic_and_bad_lengths() {
        let mut b = batch(1);
        b[16] = 1;
        let e = validate_payload(&b, &LIMITS).unwrap_err();
        assert_eq!(e.kafka_error_code(), crate::kafka_code::INVALID_RECORD);

        let mut b = batch(1);
        b[8..12].copy_from_slice(&10i32.to_be_bytes());
        assert!(validate_payload(&b, &LIMITS).is_err());

        let b = batch(1);
        let e = validate_payload(&b[..b.len() - 1], &LIMITS).unwrap_err();
        assert_eq!(e.kafka_error_code(), crate::kafka_code::CORRUPT_MESSAGE);

        let e = validate_payload(&[], &LIMITS).unwrap_err();
        assert_eq!(e.kafka_error_code(), crate::kafka_code::INVALID_RECORD);
    }

    #[test]
    fn rejects_too_large() {
        let b = batch(50);
        let small = BatchLimits {
            max_batch_bytes: 100,
            ..LIMITS
        };
        let e = validate_payload(&b, &small).unwrap_err();
        assert_eq!(e.kafka_error_code(), crate::kafka_code::MESSAGE_TOO_LARGE);
        let tiny_segment = BatchLimits {
            segment_bytes: 100,
            ..LIMITS
        };
        let e = validate_payload(&b, &tiny_segment).unwrap_err();
        assert_eq!(
            e.kafka_error_code(),
            crate::kafka_code::RECORD_LIST_TOO_LARGE
        );
    }

    #[test]
    fn strict_count_check() {
        // A count that disagrees with lastOffsetDelta: fix the CRC so only the count is wrong.
        let mut b = batch(3);
        b[57..61].copy_from_slice(&2i32.to_be_bytes());
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        let e = validate_payload(&b, &LIMITS).unwrap_err();
        assert_eq!(e.kafka_error_code(), crate::kafka_code::INVALID_RECORD);
        let lenient = BatchLimits {
            strict: false,
            ..LIMITS
        };
        validate_payload(&b, &lenient).unwrap();
    }

    #[test]
    fn last_sequence_wraps() {
        let mut h = BatchHeader::parse(&batch(3)).unwrap();
        h.base_sequence = i32::MAX - 1;
        assert_eq!(h.last_sequence(), 0);
        h.base_sequence = 5;
        assert_eq!(h.last_sequence(), 7);
        h.base_sequence = -1;
        assert_eq!(h.last_sequence(), -1);
    }
}
