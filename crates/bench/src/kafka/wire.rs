//! The protocol layer of `--wire`: kafka-load speaks the Kafka protocol itself, encoding requests
//! and decoding responses with the `kafka-protocol` crate over a blocking TCP connection.
//!
//! It does the least work per record a client can do: `produce --wire` encodes one record batch
//! before the clock starts and sends the same bytes again and again (the broker assigns offsets
//! when it appends, and a v2 batch's CRC does not cover its base offset, so identical bytes are a
//! valid new batch each time); `consume --wire` counts records from the 61-byte header of each
//! batch ([`walk_batches`]) without decoding a single record. What is left is the broker's own
//! cost, which is what the mode is for.

use std::net::{SocketAddr, ToSocketAddrs};

use anyhow::{bail, ensure, Context, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_protocol::ResponseError;

use super::Payloads;

/// Produce version sent (flexible; the producer id and sequence are in the batch).
pub const PRODUCE_VERSION: i16 = 9;
/// Fetch version sent (flexible, topics by name).
pub const FETCH_VERSION: i16 = 12;
/// Metadata version sent.
pub const METADATA_VERSION: i16 = 9;
/// `client.id` of every request.
const CLIENT_ID: &str = "kafka-load";

/// Size of a v2 record batch header: base offset, batch length, partition leader epoch, magic,
/// CRC, attributes, last offset delta, first and max timestamps, producer id and epoch, base
/// sequence, record count.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before the batch length field counts from (base offset and the length itself).
const LOG_OVERHEAD: usize = 12;
/// Offset of the magic byte, the attributes, the last offset delta and the record count.
const MAGIC_AT: usize = 16;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const RECORD_COUNT_AT: usize = 57;
/// Control batches (transaction markers) hold no data records.
const CONTROL_FLAG: u16 = 1 << 5;

/// The first `host:port` of `bootstrap` (already checked to be loopback), resolved.
pub fn first_address(bootstrap: &str) -> Result<SocketAddr> {
    let first = bootstrap
        .split(',')
        .map(str::trim)
        .find(|e| !e.is_empty())
        .context("--bootstrap-server names no broker")?;
    first
        .to_socket_addrs()
        .with_context(|| format!("resolve {first}"))?
        .next()
        .with_context(|| format!("{first} resolves to no address"))
}

/// A short, stable name for a Kafka error code.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(e) => format!("{e:?}"),
        None => format!("ErrorCode({code})"),
    }
}

/// A blocking connection of the project's Kafka client module, with kafka-load's client id.
pub type Conn = sluice_kafka::Conn;

/// Connects to `addr` as kafka-load.
pub fn connect(addr: SocketAddr) -> Result<Conn> {
    Ok(Conn::connect(addr, CLIENT_ID)?)
}

/// One request as a complete frame (size prefix, header, body), correlation id 0: sent with
/// [`Conn::send_frame`], which sets it.
pub fn frame<R: Encodable>(key: ApiKey, version: i16, req: &R) -> Result<Bytes> {
    Ok(sluice_kafka::frame::encode_request(
        key, version, 0, CLIENT_ID, req,
    )?)
}

/// The partition ids of `topic`, from a Metadata request; every leader must be the broker at
/// `addr` (the wire mode talks to one broker).
pub fn partitions_of(conn: &mut Conn, addr: SocketAddr, topic: &str) -> Result<Vec<i32>> {
    let mut req = MetadataRequest::default();
    let mut t = MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.to_string())));
    req.topics = Some(vec![t]);
    req.allow_auto_topic_creation = false;
    let md: MetadataResponse = conn.call(ApiKey::Metadata, METADATA_VERSION, &req)?;
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .with_context(|| format!("no metadata for {topic}"))?;
    if t.error_code != 0 {
        bail!("topic {topic}: {}", error_name(t.error_code));
    }
    ensure!(!t.partitions.is_empty(), "topic {topic} has no partitions");
    let here: Vec<i32> = md
        .brokers
        .iter()
        .filter(|b| u16::try_from(b.port).ok() == Some(addr.port()))
        .map(|b| b.node_id.0)
        .collect();
    let mut ids = Vec::with_capacity(t.partitions.len());
    for p in &t.partitions {
        if p.error_code != 0 {
            bail!(
                "topic {topic} partition {}: {}",
                p.partition_index,
                error_name(p.error_code)
            );
        }
        ensure!(
            here.contains(&p.leader_id.0),
            "topic {topic} partition {} is led by broker {}, not the one at {addr}: --wire \
             talks to the first bootstrap server only",
            p.partition_index,
            p.leader_id.0
        );
        ids.push(p.partition_index);
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Bytes of a varint holding the zigzag encoding of `v`.
fn varint_len(v: i64) -> usize {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while z >= 0x80 {
        z >>= 7;
        n += 1;
    }
    n
}

/// Encoded size of record `offset_delta` of a batch: no key, a `value_len`-byte value, no
/// headers, the batch's own timestamp.
pub fn record_len(offset_delta: i64, value_len: usize) -> usize {
    let value_len = value_len as i64;
    // attributes, timestamp delta (0), offset delta, key length (-1), value length, value,
    // header count (0)
    let body =
        1 + 1 + varint_len(offset_delta) + 1 + varint_len(value_len) + value_len as usize + 1;
    varint_len(body as i64) + body
}

/// How many `value_len`-byte records fit in a batch of at most `max_bytes` (0 if not one).
pub fn records_that_fit(value_len: usize, max_bytes: usize) -> usize {
    let mut total = BATCH_HEADER_LEN;
    let mut n = 0usize;
    loop {
        let next = total + record_len(n as i64, value_len);
        if next > max_bytes || n >= i32::MAX as usize {
            return n;
        }
        total = next;
        n += 1;
    }
}

/// Encoded size of a batch of `count` `value_len`-byte records.
pub fn batch_len(count: usize, value_len: usize) -> usize {
    BATCH_HEADER_LEN
        + (0..count)
            .map(|i| record_len(i as i64, value_len))
            .sum::<usize>()
}

/// One uncompressed v2 record batch of `count` records, values from `payloads`, no producer id
/// (-1) and no sequence (-1): what a non-idempotent producer sends.
pub fn encode_batch(payloads: &Payloads, count: usize, timestamp_ms: i64) -> Result<Bytes> {
    ensure!(
        (1..=i32::MAX as usize).contains(&count),
        "a batch holds 1..={} records",
        i32::MAX
    );
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset - sequence is constant, and
            // writes the first record's sequence as the base sequence: -1.
            sequence: (i as i32).wrapping_sub(1),
            timestamp: timestamp_ms,
            key: None,
            value: Some(Bytes::copy_from_slice(payloads.get(i as u64))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::with_capacity(batch_len(count, payloads.get(0).len()));
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .context("encode the record batch")?;
    let batch = buf.freeze();
    let walk = walk_batches(&batch, 0).context("the encoded batch")?;
    ensure!(
        walk.batches == 1 && walk.records == count as u64 && !walk.partial_tail,
        "the encoder made {} batches of {} records, expected one of {count}",
        walk.batches,
        walk.records
    );
    Ok(batch)
}

/// What [`walk_batches`] found in one partition's `records`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walk {
    /// Complete batches.
    pub batches: u64,
    /// Data records in them (control batches are skipped).
    pub records: u64,
    /// Bytes of the complete batches.
    pub bytes: u64,
    /// The offset after the last complete batch: where the next fetch starts.
    pub next_offset: i64,
    /// The data ended inside a batch (a fetch may cut the last batch at its byte limit).
    pub partial_tail: bool,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Walks the record batches of a fetched partition by their headers only: base offset (bytes
/// 0..8), batch length (8..12), last offset delta (23..27), record count (57..61). Each batch
/// must start where the previous one ended, the first at `next_offset`; records are never
/// decoded.
pub fn walk_batches(data: &[u8], next_offset: i64) -> Result<Walk> {
    let mut walk = Walk {
        batches: 0,
        records: 0,
        bytes: 0,
        next_offset,
        partial_tail: false,
    };
    let mut at = 0usize;
    while at < data.len() {
        let rest = &data[at..];
        if rest.len() < BATCH_HEADER_LEN {
            walk.partial_tail = true;
            break;
        }
        let base = be_i64(rest, 0);
        let len = be_i32(rest, 8);
        ensure!(
            usize::try_from(len).is_ok_and(|l| l + LOG_OVERHEAD >= BATCH_HEADER_LEN),
            "batch at offset {base}: bad length {len}"
        );
        let total = LOG_OVERHEAD + len as usize;
        if rest.len() < total {
            walk.partial_tail = true;
            break;
        }
        ensure!(
            rest[MAGIC_AT] == 2,
            "batch at offset {base}: magic {} (only v2 batches are walked)",
            rest[MAGIC_AT]
        );
        ensure!(
            base == walk.next_offset,
            "offsets are not contiguous: batch at offset {base}, expected {}",
            walk.next_offset
        );
        let last_delta = be_i32(rest, LAST_OFFSET_DELTA_AT);
        let count = be_i32(rest, RECORD_COUNT_AT);
        ensure!(
            last_delta >= 0 && count >= 0,
            "batch at offset {base}: last offset delta {last_delta}, {count} records"
        );
        let attributes = u16::from_be_bytes([rest[ATTRIBUTES_AT], rest[ATTRIBUTES_AT + 1]]);
        if attributes & CONTROL_FLAG == 0 {
            walk.records += count as u64;
        }
        walk.batches += 1;
        walk.bytes += total as u64;
        walk.next_offset = base + i64::from(last_delta) + 1;
        at += total;
    }
    Ok(walk)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch of `count` records as the broker stores it: base offset rewritten.
    fn at_offset(batch: &Bytes, base: i64) -> Vec<u8> {
        let mut b = batch.to_vec();
        b[..8].copy_from_slice(&base.to_be_bytes());
        b
    }

    #[test]
    fn encoded_batch_has_the_computed_size_and_header() {
        for (size, count) in [(100, 1), (100, 300), (1024, 900), (0, 5), (200, 20_000)] {
            let b = encode_batch(&Payloads::new(size), count, 1_700_000_000_000).unwrap();
            assert_eq!(b.len(), batch_len(count, size), "{size} x {count}");
            assert_eq!(be_i32(&b, RECORD_COUNT_AT), count as i32);
            assert_eq!(be_i32(&b, LAST_OFFSET_DELTA_AT), count as i32 - 1);
            assert_eq!(be_i64(&b, 43), -1, "producer id");
            assert_eq!(be_i32(&b, 53), -1, "base sequence");
        }
    }

    #[test]
    fn records_that_fit_fill_but_do_not_exceed() {
        for size in [1, 100, 1024, 100_000] {
            let n = records_that_fit(size, 1_000_000);
            assert!(n >= 1);
            assert!(batch_len(n, size) <= 1_000_000);
            assert!(batch_len(n + 1, size) > 1_000_000, "{size}");
        }
        assert_eq!(records_that_fit(2_000_000, 1_000_000), 0);
        // 100-byte records take 109 or 110 bytes each once offset deltas pass 63.
        let n = records_that_fit(100, 1_000_000);
        assert!((9_000..9_200).contains(&n), "{n}");
    }

    #[test]
    fn walk_counts_contiguous_batches() {
        let a = encode_batch(&Payloads::new(10), 3, 0).unwrap();
        let b = encode_batch(&Payloads::new(10), 5, 0).unwrap();
        let mut data = at_offset(&a, 7);
        data.extend(at_offset(&b, 10));
        data.extend(at_offset(&a, 15));
        let w = walk_batches(&data, 7).unwrap();
        assert_eq!(
            w,
            Walk {
                batches: 3,
                records: 11,
                bytes: data.len() as u64,
                next_offset: 18,
                partial_tail: false
            }
        );
        assert_eq!(walk_batches(&[], 4).unwrap().next_offset, 4);
    }

    #[test]
    fn walk_stops_at_a_cut_batch() {
        let a = encode_batch(&Payloads::new(10), 3, 0).unwrap();
        let mut data = at_offset(&a, 0);
        data.extend(&at_offset(&a, 3)[..a.len() - 1]);
        let w = walk_batches(&data, 0).unwrap();
        assert_eq!((w.batches, w.records, w.next_offset), (1, 3, 3));
        assert!(w.partial_tail);
        let w = walk_batches(&data[..a.len() + 20], 0).unwrap();
        assert!(w.partial_tail && w.batches == 1);
    }

    #[test]
    fn walk_rejects_gaps_and_garbage() {
        let a = encode_batch(&Payloads::new(10), 3, 0).unwrap();
        let mut data = at_offset(&a, 0);
        data.extend(at_offset(&a, 4));
        assert!(walk_batches(&data, 0)
            .unwrap_err()
            .to_string()
            .contains("not contiguous"));
        assert!(walk_batches(&at_offset(&a, 5), 0).is_err());
        let mut bad = at_offset(&a, 0);
        bad[MAGIC_AT] = 1;
        assert!(walk_batches(&bad, 0).is_err());
        let mut bad = at_offset(&a, 0);
        bad[8..12].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(walk_batches(&bad, 0).is_err());
    }

    #[test]
    fn walk_skips_control_records() {
        let a = encode_batch(&Payloads::new(10), 1, 0).unwrap();
        let mut control = at_offset(&a, 0);
        control[ATTRIBUTES_AT + 1] |= CONTROL_FLAG as u8;
        let w = walk_batches(&control, 0).unwrap();
        assert_eq!((w.batches, w.records, w.next_offset), (1, 0, 1));
    }

    #[test]
    fn frames_carry_a_patchable_correlation_id() {
        let req = MetadataRequest::default();
        let f = frame(ApiKey::Metadata, METADATA_VERSION, &req).unwrap();
        assert_eq!(be_i32(&f, 0) as usize, f.len() - 4);
        assert_eq!(i16::from_be_bytes([f[4], f[5]]), ApiKey::Metadata as i16);
        assert_eq!(i16::from_be_bytes([f[6], f[7]]), METADATA_VERSION);
        assert_eq!(be_i32(&f, 8), 0);
    }
}
