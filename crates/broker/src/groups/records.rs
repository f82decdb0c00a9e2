//! Kafka's own records in `__consumer_offsets`: offset commits (key version 1, value version 3)
//! and group metadata (key version 2, value version 3), in the byte layout of Kafka's
//! `OffsetCommitKey`, `OffsetCommitValue`, `GroupMetadataKey` and `GroupMetadataValue` schemas
//! (big-endian, `int16`-length strings, `int32`-length bytes and arrays), so tools that read the
//! topic (Burrow, `kafka-console-consumer --formatter ...OffsetsMessageFormatter`) understand
//! them. A tombstone is the key with a null value.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// A record of `__consumer_offsets` that could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("record truncated")]
    Truncated,
    #[error("unknown key version {0}")]
    KeyVersion(i16),
    #[error("unknown value version {0}")]
    ValueVersion(i16),
    #[error("invalid UTF-8 in a string")]
    Utf8,
    #[error("record batch: {0}")]
    Batch(String),
}

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

/// A committed offset (value version 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// One member in group metadata (MemberMetadata version 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A group's metadata (value version 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

fn put_str(b: &mut BytesMut, s: &str) {
    let s = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    b.put_i16(s.len() as i16);
    b.put_slice(s);
}

fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

struct Reader(Bytes);

impl Reader {
    fn need(&self, n: usize) -> Result<(), FormatError> {
        if self.0.remaining() < n {
            Err(FormatError::Truncated)
        } else {
            Ok(())
        }
    }
    fn i16(&mut self) -> Result<i16, FormatError> {
        self.need(2)?;
        Ok(self.0.get_i16())
    }
    fn i32(&mut self) -> Result<i32, FormatError> {
        self.need(4)?;
        Ok(self.0.get_i32())
    }
    fn i64(&mut self) -> Result<i64, FormatError> {
        self.need(8)?;
        Ok(self.0.get_i64())
    }
    fn nullable_str(&mut self) -> Result<Option<String>, FormatError> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        self.need(n as usize)?;
        let s = self.0.split_to(n as usize);
        String::from_utf8(s.to_vec())
            .map(Some)
            .map_err(|_| FormatError::Utf8)
    }
    fn str(&mut self) -> Result<String, FormatError> {
        Ok(self.nullable_str()?.unwrap_or_default())
    }
    fn bytes(&mut self) -> Result<Bytes, FormatError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(Bytes::new());
        }
        self.need(n as usize)?;
        Ok(self.0.split_to(n as usize))
    }
}

impl Key {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        match self {
            Key::Offset {
                group,
                topic,
                partition,
            } => {
                b.put_i16(1);
                put_str(&mut b, group);
                put_str(&mut b, topic);
                b.put_i32(*partition);
            }
            Key::Group { group } => {
                b.put_i16(2);
                put_str(&mut b, group);
            }
        }
        b.freeze()
    }

    pub fn decode(bytes: Bytes) -> Result<Key, FormatError> {
        let mut r = Reader(bytes);
        match r.i16()? {
            0 | 1 => Ok(Key::Offset {
                group: r.str()?,
                topic: r.str()?,
                partition: r.i32()?,
            }),
            2 => Ok(Key::Group { group: r.str()? }),
            v => Err(FormatError::KeyVersion(v)),
        }
    }

    pub fn group(&self) -> &str {
        match self {
            Key::Offset { group, .. } | Key::Group { group } => group,
        }
    }
}

impl OffsetValue {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(3);
        b.put_i64(self.offset);
        b.put_i32(self.leader_epoch);
        put_str(&mut b, &self.metadata);
        b.put_i64(self.commit_timestamp);
        b.freeze()
    }

    /// Reads versions 0–3 (the ones without tagged fields).
    pub fn decode(bytes: Bytes) -> Result<OffsetValue, FormatError> {
        let mut r = Reader(bytes);
        let v = r.i16()?;
        if !(0..=3).contains(&v) {
            return Err(FormatError::ValueVersion(v));
        }
        let offset = r.i64()?;
        let leader_epoch = if v >= 3 { r.i32()? } else { -1 };
        let metadata = r.str()?;
        let commit_timestamp = r.i64()?;
        if v == 1 {
            r.i64()?; // expire timestamp
        }
        Ok(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
        })
    }
}

impl GroupValue {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(3);
        put_str(&mut b, &self.protocol_type);
        b.put_i32(self.generation);
        put_nullable_str(&mut b, self.protocol.as_deref());
        put_nullable_str(&mut b, self.leader.as_deref());
        b.put_i64(self.current_state_timestamp);
        b.put_i32(self.members.len() as i32);
        for m in &self.members {
            put_str(&mut b, &m.member_id);
            put_nullable_str(&mut b, m.group_instance_id.as_deref());
            put_str(&mut b, &m.client_id);
            put_str(&mut b, &m.client_host);
            b.put_i32(m.rebalance_timeout);
            b.put_i32(m.session_timeout);
            put_bytes(&mut b, &m.subscription);
            put_bytes(&mut b, &m.assignment);
        }
        b.freeze()
    }

    /// Reads versions 0–3.
    pub fn decode(bytes: Bytes) -> Result<GroupValue, FormatError> {
        let mut r = Reader(bytes);
        let v = r.i16()?;
        if !(0..=3).contains(&v) {
            return Err(FormatError::ValueVersion(v));
        }
        let protocol_type = r.str()?;
        let generation = r.i32()?;
        let protocol = r.nullable_str()?;
        let leader = r.nullable_str()?;
        let current_state_timestamp = if v >= 2 { r.i64()? } else { -1 };
        let n = r.i32()?.max(0);
        let mut members = Vec::new();
        for _ in 0..n {
            let member_id = r.str()?;
            let group_instance_id = if v >= 3 { r.nullable_str()? } else { None };
            let client_id = r.str()?;
            let client_host = r.str()?;
            let rebalance_timeout = if v >= 1 { r.i32()? } else { -1 };
            let session_timeout = r.i32()?;
            let subscription = r.bytes()?;
            let assignment = r.bytes()?;
            members.push(MemberValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout,
                session_timeout,
                subscription,
                assignment,
            });
        }
        Ok(GroupValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp: if current_state_timestamp < 0 {
                -1
            } else {
                current_state_timestamp
            },
            members,
        })
    }
}

/// One uncompressed record batch (magic v2, CRC-32C) of `(key, value)` records; `None` values
/// are tombstones.
pub fn encode_batch(entries: &[(Bytes, Option<Bytes>)], now_ms: i64) -> Result<Bytes, FormatError> {
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: now_ms,
            key: Some(k.clone()),
            value: v.clone(),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| FormatError::Batch(e.to_string()))?;
    Ok(buf.freeze())
}

/// Every `(offset, key, value)` of the whole batches in `bytes` (a partial batch at the end is
/// left out); also returns the offset after the last decoded record.
/// `(offset, key, value)` records; a `None` value is a tombstone.
pub type KeyedRecords = Vec<(i64, Bytes, Option<Bytes>)>;

pub fn decode_batches(mut bytes: Bytes) -> (KeyedRecords, Option<i64>) {
    let mut out = Vec::new();
    let mut next = None;
    loop {
        // Batch header: base offset (8), batch length (4); stop at a partial batch.
        if bytes.len() < 12 {
            break;
        }
        let len = i32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let base = i64::from_be_bytes(bytes[..8].try_into().unwrap_or([0; 8]));
        let last_delta = if bytes.len() >= 27 {
            i32::from_be_bytes([bytes[23], bytes[24], bytes[25], bytes[26]])
        } else {
            0
        };
        if len < 0 || bytes.len() < 12 + len as usize {
            break;
        }
        let mut one = bytes.split_to(12 + len as usize);
        // A damaged header can hold any offsets: one whose last offset overflows is skipped
        // (its records are not decoded), never a reason to stop the loader.
        let Some(after) = base
            .checked_add(i64::from(last_delta))
            .and_then(|last| last.checked_add(1))
        else {
            tracing::warn!(
                base,
                last_delta,
                "skipping a batch with impossible offsets in __consumer_offsets"
            );
            continue;
        };
        next = Some(after);
        match RecordBatchDecoder::decode(&mut one) {
            Ok(set) => {
                for r in set.records {
                    if r.control {
                        continue;
                    }
                    if let Some(k) = r.key {
                        out.push((r.offset, k, r.value));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "skipping an undecodable batch in __consumer_offsets")
            }
        }
    }
    (out, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the record_batches fuzz target: a batch whose base offset plus last offset
    /// delta overflows panicked the loader.
    #[test]
    fn a_batch_with_overflowing_offsets_is_skipped() {
        let mut b = encode_batch(&[(Bytes::from_static(b"k"), None)], 0)
            .unwrap()
            .to_vec();
        b[..8].copy_from_slice(&i64::MAX.to_be_bytes());
        let good = encode_batch(&[(Bytes::from_static(b"k2"), None)], 0).unwrap();
        b.extend_from_slice(&good);
        let (records, next) = decode_batches(Bytes::from(b));
        assert_eq!(records.len(), 1, "the good batch after it is still read");
        assert_eq!(next, Some(1));
    }

    /// Found by the record_batches fuzz target (in CI): a batch whose base offset is
    /// `i64::MIN` holding a record with a negative offset delta overflowed inside the record
    /// decoder (a panic where overflow checks are on, as in test builds and the fuzz targets).
    /// Offsets now wrap as in Kafka (`vendor/kafka-protocol/PATCHED.md`).
    #[test]
    fn a_record_offset_below_i64_min_does_not_panic_the_loader() {
        const CRASH: &str = "gAAAAAAAAAQAAABkAAAAAALB87VDAAAAAAAAAAABojvVntEAAAGiO9WeVP///////wAAAAFkAAAAGAACAAhjay1ncm91cEAAAwAIY29uc3VtZQhjb25zdW1lcgAAAAL/MP///wAAAQAAAAAAAAAHO/8A";
        let mut bytes = base64_decode(CRASH);
        // As the target found it: with the batch's CRC-32C corrected.
        let end = 12 + u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize;
        let crc = sluice_log::batch::compute_crc(&bytes[..end]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        let base = i64::from_be_bytes(bytes[..8].try_into().unwrap());
        assert_eq!(base, i64::MIN + 4);
        let (records, _) = decode_batches(Bytes::from(bytes));
        // Past the offset, the record is malformed (a negative key length): the batch is
        // skipped with a warning, and the loader goes on.
        assert!(records.is_empty(), "{records:?}");
    }

    fn base64_decode(s: &str) -> Vec<u8> {
        let val = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        let digits: Vec<u8> = s.bytes().filter(|c| *c != b'=').map(val).collect();
        let mut out = Vec::new();
        for chunk in digits.chunks(4) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, d)| n | (u32::from(*d) << (18 - 6 * i)));
            out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
        }
        out
    }

    #[test]
    fn offset_key_and_value_match_kafkas_layout() {
        let k = Key::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 2,
        };
        assert_eq!(
            &k.encode()[..],
            &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 2][..]
        );
        let v = OffsetValue {
            offset: 5,
            leader_epoch: -1,
            metadata: "m".into(),
            commit_timestamp: 7,
        };
        assert_eq!(
            &v.encode()[..],
            &[
                0, 3, 0, 0, 0, 0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0, 1, b'm', 0, 0, 0, 0, 0, 0,
                0, 7
            ][..]
        );
        assert_eq!(Key::decode(k.encode()), Ok(k));
        assert_eq!(OffsetValue::decode(v.encode()), Ok(v));
    }

    #[test]
    fn group_key_and_value_match_kafkas_layout() {
        let k = Key::Group { group: "g".into() };
        assert_eq!(&k.encode()[..], &[0, 2, 0, 1, b'g'][..]);
        let v = GroupValue {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: Some("range".into()),
            leader: Some("a".into()),
            current_state_timestamp: 9,
            members: vec![MemberValue {
                member_id: "a".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "/h".into(),
                rebalance_timeout: 1,
                session_timeout: 2,
                subscription: Bytes::from_static(b"s"),
                assignment: Bytes::new(),
            }],
        };
        let mut want = vec![0, 3, 0, 8];
        want.extend_from_slice(b"consumer");
        want.extend_from_slice(&[0, 0, 0, 3, 0, 5]);
        want.extend_from_slice(b"range");
        want.extend_from_slice(&[0, 1, b'a']);
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 9]);
        want.extend_from_slice(&[0, 0, 0, 1]);
        want.extend_from_slice(&[0, 1, b'a', 0xff, 0xff, 0, 1, b'c', 0, 2, b'/', b'h']);
        want.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1, b's', 0, 0, 0, 0]);
        assert_eq!(&v.encode()[..], &want[..]);
        assert_eq!(Key::decode(k.encode()), Ok(k));
        assert_eq!(GroupValue::decode(v.encode()), Ok(v));
    }

    #[test]
    fn batches_round_trip_with_tombstones() {
        let k1 = Key::Group { group: "g".into() }.encode();
        let k2 = Key::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
        }
        .encode();
        let batch = encode_batch(
            &[
                (k1.clone(), None),
                (k2.clone(), Some(Bytes::from_static(b"v"))),
            ],
            1,
        )
        .unwrap();
        assert_eq!(batch[16], 2, "magic v2");
        let mut two = BytesMut::from(&batch[..]);
        two.extend_from_slice(&batch);
        two.extend_from_slice(&batch[..20]); // a partial batch is ignored
        let (recs, next) = decode_batches(two.freeze());
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[0], (0, k1, None));
        assert_eq!(recs[1].2.as_deref(), Some(&b"v"[..]));
        assert_eq!(next, Some(2));
    }

    #[test]
    fn truncated_values_are_errors_not_panics() {
        assert_eq!(
            Key::decode(Bytes::from_static(&[0])),
            Err(FormatError::Truncated)
        );
        assert_eq!(
            GroupValue::decode(Bytes::from_static(&[0, 3, 0, 9, b'x'])),
            Err(FormatError::Truncated)
        );
        assert_eq!(
            Key::decode(Bytes::from_static(&[0, 9])),
            Err(FormatError::KeyVersion(9))
        );
    }
}
