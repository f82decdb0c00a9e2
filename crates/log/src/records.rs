//! Records inside an uncompressed v2 batch: just enough decoding for ListOffsets by timestamp,
//! and a builder that encodes batches (for tests, benchmarks and the broker's own writes).
//!
//! The log never needs record contents to store or serve data. The one exception is
//! [`crate::Log::offset_for_timestamp`], which must name the first *record* with a timestamp at
//! or after the target; for uncompressed CreateTime batches [`first_record_at_or_after`] walks the
//! records (varint length, attributes, timestamp delta, offset delta). Compressed batches are not
//! decompressed: the answer is the batch's base offset, which is conservative (a consumer starting
//! there sees a few earlier records, never misses one).
//!
//! Record layout (all varints are zig-zag):
//! `length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
//!  keyLength varint | key | valueLength varint | value | headerCount varint | headers`.

use crate::batch::{
    compute_crc, set_base_offset, set_partition_leader_epoch, BatchHeader, HEADER_LEN,
    LOG_OVERHEAD, MAGIC_V2,
};

/// Reads a zig-zag varint (up to 10 bytes); `None` when malformed or past the end.
fn read_varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        raw |= ((b & 0x7f) as u64).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// In an uncompressed batch (`batch` is the whole batch), the offset delta and timestamp of
/// the first record whose timestamp is `>= target`. `None` when no record qualifies or the
/// records do not parse (the caller then falls back to the batch's base offset).
pub(crate) fn first_record_at_or_after(
    batch: &[u8],
    header: &BatchHeader,
    target: i64,
) -> Option<(i32, i64)> {
    let mut pos = HEADER_LEN;
    for _ in 0..header.record_count.max(0) {
        let len = read_varlong(batch, &mut pos)?;
        let start = pos;
        if len < 0 {
            return None;
        }
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        if end > batch.len() {
            return None;
        }
        pos += 1; // attributes
        let ts_delta = read_varlong(batch, &mut pos)?;
        let off_delta = read_varlong(batch, &mut pos)?;
        let ts = header.base_timestamp.checked_add(ts_delta)?;
        if ts >= target {
            return Some((i32::try_from(off_delta).ok()?, ts));
        }
        pos = end;
    }
    None
}

/// Encodes an uncompressed v2 batch with base offset 0 and leader epoch -1 (the log assigns
/// both on append).
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    records: Vec<u8>,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    attributes: i16,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    pub fn new() -> Self {
        BatchBuilder {
            records: Vec::new(),
            count: 0,
            base_timestamp: -1,
            max_timestamp: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            attributes: 0,
        }
    }

    /// Idempotent-producer fields.
    pub fn producer(mut self, id: i64, epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Sets the transactional attribute bit.
    pub fn transactional(mut self, yes: bool) -> Self {
        if yes {
            self.attributes |= 0x10;
        } else {
            self.attributes &= !0x10;
        }
        self
    }

    /// Adds a record (no headers).
    pub fn push(&mut self, timestamp: i64, key: Option<&[u8]>, value: Option<&[u8]>) {
        if self.count == 0 {
            self.base_timestamp = timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp);
        let mut body =
            Vec::with_capacity(16 + key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len));
        body.push(0); // attributes
        write_varlong(&mut body, timestamp - self.base_timestamp);
        write_varlong(&mut body, self.count as i64);
        for field in [key, value] {
            match field {
                Some(b) => {
                    write_varlong(&mut body, b.len() as i64);
                    body.extend_from_slice(b);
                }
                None => write_varlong(&mut body, -1),
            }
        }
        write_varlong(&mut body, 0); // headers
        write_varlong(&mut self.records, body.len() as i64);
        self.records.extend_from_slice(&body);
        self.count += 1;
    }

    /// Number of records pushed so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True before the first `push`.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded size of the batch so far.
    pub fn size(&self) -> usize {
        HEADER_LEN + self.records.len()
    }

    /// The encoded batch.
    pub fn build(&self) -> Vec<u8> {
        encode(
            self.attributes,
            self.count,
            self.base_timestamp,
            self.max_timestamp,
            (self.producer_id, self.producer_epoch, self.base_sequence),
            &self.records,
        )
    }
}

/// Encodes a batch around an opaque record section, e.g. compressed records: `attributes` bits
/// 0–2 name the codec. The log treats such bytes as opaque, which is how compressed batches
/// pass through it.
pub fn encode_raw_batch(
    attributes: i16,
    record_count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    records: &[u8],
) -> Vec<u8> {
    encode(
        attributes,
        record_count,
        base_timestamp,
        max_timestamp,
        (-1, -1, -1),
        records,
    )
}

fn encode(
    attributes: i16,
    count: i32,
    base_ts: i64,
    max_ts: i64,
    (pid, pepoch, seq): (i64, i16, i32),
    records: &[u8],
) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + records.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    let len = (HEADER_LEN - LOG_OVERHEAD + records.len()) as i32;
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(MAGIC_V2 as u8);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&(count - 1).max(0).to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&pid.to_be_bytes());
    b.extend_from_slice(&pepoch.to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(records);
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    set_base_offset(&mut b, 0);
    set_partition_leader_epoch(&mut b, -1);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            let mut pos = 0;
            assert_eq!(read_varlong(&out, &mut pos), Some(v));
            assert_eq!(pos, out.len());
        }
        assert_eq!(read_varlong(&[0x80; 11], &mut 0), None);
        assert_eq!(read_varlong(&[0x80], &mut 0), None);
    }

    #[test]
    fn finds_record_by_timestamp() {
        let mut b = BatchBuilder::new();
        for ts in [100, 105, 103, 110] {
            b.push(ts, None, Some(b"x"));
        }
        let bytes = b.build();
        let h = BatchHeader::parse(&bytes).unwrap();
        assert_eq!(first_record_at_or_after(&bytes, &h, 0), Some((0, 100)));
        assert_eq!(first_record_at_or_after(&bytes, &h, 104), Some((1, 105)));
        assert_eq!(first_record_at_or_after(&bytes, &h, 106), Some((3, 110)));
        assert_eq!(first_record_at_or_after(&bytes, &h, 111), None);
    }
}
