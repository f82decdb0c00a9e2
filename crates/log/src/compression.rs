//! Kafka's record-batch codecs, and re-encoding a producer's batches in a topic's codec.
//!
//! The log stores batches as producers sent them, except on a topic whose `compression.type`
//! names a codec (`uncompressed`, `gzip`, `snappy`, `lz4`, `zstd`): there the leader re-encodes
//! each batch in another codec before appending, as Kafka does. Only the records section of a
//! v2 batch is compressed, so re-encoding keeps the header (offsets, producer fields, record
//! count) and rewrites the codec bits, the length and the CRC:
//!
//! ```text
//!   batch as received                          batch as stored
//!  +-----------------------+                  +-----------------------+
//!  | header (61 bytes)     |  attributes,     | header (61 bytes)     |
//!  |   codec = lz4         |  batchLength,    |   codec = zstd        |
//!  +-----------------------+  CRC rewritten   +-----------------------+
//!  | records, lz4 frame    | --inflate-->     | records, zstd frame   |
//!  +-----------------------+  --deflate-->    +-----------------------+
//! ```
//!
//! Every codec here is I/O-free (slices in, vectors out) and **bounded**: inflating stops at a
//! limit (the topic's `max.message.bytes`) and a batch that would inflate past it is refused,
//! never inflated, so a small compressed batch cannot make the broker allocate gigabytes. Beyond
//! the output, a decoder holds at most a fixed working set whatever its input claims: an lz4
//! block buffer (up to 4 MiB, the largest block size the format has) or a zstd window (held to
//! 8 MiB).
//!
//! Wire formats, as Kafka's clients write them: gzip is a gzip stream; lz4 an LZ4 frame
//! (written with independent 64 KiB blocks and no content checksum, which Kafka's Java reader
//! requires); zstd a zstd frame; snappy either the Java client's framing (xerial: an 8-byte
//! magic, two version words, then length-prefixed raw blocks) or, as librdkafka writes it, one
//! raw snappy block. Snappy is written in the xerial framing, which every client reads.

use std::io::Read;

use crate::batch::{compute_crc, BatchHeader, Compression, CRC_START, HEADER_LEN, LOG_OVERHEAD};

/// Why a batch could not be decoded or re-encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("{codec:?} records inflate past {limit} bytes")]
    TooLarge { codec: Compression, limit: usize },
    #[error("{codec:?} records are malformed: {reason}")]
    Malformed { codec: Compression, reason: String },
    #[error("compression codec {0:?} is not supported")]
    Unsupported(Compression),
}

/// The xerial snappy framing's magic (`\x82SNAPPY\0`), followed by two big-endian i32 words.
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\0";
const XERIAL_HEADER_LEN: usize = 16;
/// Uncompressed bytes per xerial block when writing (the Java client's default).
const XERIAL_BLOCK: usize = 32 * 1024;
/// Most bytes one byte of a raw snappy block can inflate to (64 per 3-byte copy element).
const SNAPPY_MAX_RATIO: usize = 22;
/// Largest zstd window accepted: 8 MiB, the size the zstd format asks every decoder to support.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Inflates `data`, compressed with `codec`, refusing output larger than `limit` bytes.
pub fn decompress(codec: Compression, data: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let malformed = |reason: String| CodecError::Malformed { codec, reason };
    match codec {
        Compression::None => {
            if data.len() > limit {
                return Err(CodecError::TooLarge { codec, limit });
            }
            Ok(data.to_vec())
        }
        Compression::Gzip => read_bounded(codec, flate2::read::MultiGzDecoder::new(data), limit),
        Compression::Lz4 => {
            let frame = lz4_fit_block_size(data);
            read_bounded(codec, lz4_flex::frame::FrameDecoder::new(&frame[..]), limit)
        }
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(data)
                .map_err(|e| malformed(e.to_string()))?;
            // The frame header names the window the decoder allocates (inside libzstd, up to
            // 128 MiB by default): held to the 8 MiB every decoder must support.
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| malformed(e.to_string()))?;
            read_bounded(codec, decoder, limit)
        }
        Compression::Snappy => snappy_decompress(data, limit),
        Compression::Unknown(_) => Err(CodecError::Unsupported(codec)),
    }
}

/// Reads `reader` to its end, failing once more than `limit` bytes came out. The output grows
/// with what was actually inflated, never with a length the input claims.
fn read_bounded(
    codec: Compression,
    reader: impl Read,
    limit: usize,
) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| CodecError::Malformed {
            codec,
            reason: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(CodecError::TooLarge { codec, limit });
    }
    Ok(out)
}

/// The LZ4 frame magic, little-endian on the wire.
const LZ4_MAGIC: u32 = 0x184D_2204;
/// Most bytes one byte of an LZ4 block can inflate to (a match-length byte of 255 per input byte).
const LZ4_MAX_RATIO: usize = 255;

/// `data` with its LZ4 frame header naming the smallest block size its blocks can fill.
///
/// The decoder sizes its buffers by the header's block maximum (up to 4 MiB, twice over for
/// linked blocks) before reading a block, so a few bytes declaring 4 MiB blocks would cost 8 MiB.
/// A block of `c` compressed bytes inflates to at most 255·`c`, so the sizes of the frame's
/// blocks bound what the buffers need: when that is below the declared maximum the header is
/// rewritten (block size, then its checksum) in a copy. Anything that does not parse is left
/// as it is, for the decoder to refuse.
fn lz4_fit_block_size(data: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    let keep = Cow::Borrowed(data);
    if data.len() < 7 || u32::from_le_bytes([data[0], data[1], data[2], data[3]]) != LZ4_MAGIC {
        return keep;
    }
    let (flg, bd) = (data[4], data[5]);
    let declared_id = (bd >> 4) & 0x7;
    if !(4..=7).contains(&declared_id) {
        return keep;
    }
    let block_checksums = flg & 0x10 != 0;
    let header_len =
        4 + 2 + if flg & 0x08 != 0 { 8 } else { 0 } + if flg & 0x01 != 0 { 4 } else { 0 } + 1;
    let mut pos = header_len;
    let mut needed = 0usize;
    while let Some(word) = data.get(pos..pos + 4) {
        let word = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        if word == 0 {
            break;
        }
        // A block running past the end cannot be read whole: what is there bounds it.
        let len = ((word & 0x7fff_ffff) as usize).min(data.len().saturating_sub(pos + 4));
        let inflated = if word & 0x8000_0000 != 0 {
            len
        } else {
            len.saturating_mul(LZ4_MAX_RATIO).saturating_add(64)
        };
        needed = needed.max(inflated);
        pos = pos
            .saturating_add(4 + len)
            .saturating_add(if block_checksums { 4 } else { 0 });
    }
    // Block size ids 4..=7: 64 KiB, 256 KiB, 1 MiB, 4 MiB.
    let fitting_id = (4u8..=7)
        .find(|id| (1usize << (8 + 2 * id)) >= needed)
        .unwrap_or(7);
    if fitting_id >= declared_id || data.len() < header_len {
        return keep;
    }
    let mut copy = data.to_vec();
    copy[5] = (bd & !0x70) | (fitting_id << 4);
    let descriptor = &copy[4..header_len - 1];
    copy[header_len - 1] = (twox_hash::XxHash32::oneshot(0, descriptor) >> 8) as u8;
    Cow::Owned(copy)
}

fn snappy_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let codec = Compression::Snappy;
    let malformed = |reason: String| CodecError::Malformed { codec, reason };
    let mut decoder = snap::raw::Decoder::new();
    // Each raw block states its inflated length up front: checked before allocating it, against
    // the limit and against what a block of that size can hold at all (a 3-byte copy element
    // yields at most 64 bytes, so nothing inflates more than 22-fold): a few bytes claiming
    // megabytes are malformed, never an allocation of those megabytes.
    let mut block = |input: &[u8], out: &mut Vec<u8>| -> Result<(), CodecError> {
        let n = snap::raw::decompress_len(input).map_err(|e| malformed(e.to_string()))?;
        if n > input.len().saturating_mul(SNAPPY_MAX_RATIO) {
            return Err(malformed(format!(
                "a {}-byte snappy block claims {n} bytes inflated",
                input.len()
            )));
        }
        if out.len() + n > limit {
            return Err(CodecError::TooLarge { codec, limit });
        }
        let start = out.len();
        out.resize(start + n, 0);
        let written = decoder
            .decompress(input, &mut out[start..])
            .map_err(|e| malformed(e.to_string()))?;
        out.truncate(start + written);
        Ok(())
    };
    let mut out = Vec::new();
    if data.len() >= XERIAL_HEADER_LEN && data.starts_with(XERIAL_MAGIC) {
        let mut rest = &data[XERIAL_HEADER_LEN..];
        while !rest.is_empty() {
            let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                return Err(malformed("truncated xerial block length".into()));
            };
            let len = u32::from_be_bytes(*len) as usize;
            if len > tail.len() {
                return Err(malformed(format!(
                    "xerial block of {len} bytes, {} left",
                    tail.len()
                )));
            }
            block(&tail[..len], &mut out)?;
            rest = &tail[len..];
        }
    } else {
        block(data, &mut out)?;
    }
    Ok(out)
}

/// Compresses `data` with `codec`.
pub fn compress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, CodecError> {
    let failed = |reason: String| CodecError::Malformed { codec, reason };
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).map_err(|e| failed(e.to_string()))?;
            e.finish().map_err(|e| failed(e.to_string()))
        }
        Compression::Lz4 => {
            use std::io::Write;
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            e.write_all(data).map_err(|e| failed(e.to_string()))?;
            e.finish().map_err(|e| failed(e.to_string()))
        }
        Compression::Zstd => zstd::bulk::compress(data, 3).map_err(|e| failed(e.to_string())),
        Compression::Snappy => {
            let mut out = Vec::with_capacity(XERIAL_HEADER_LEN + data.len() / 2);
            out.extend_from_slice(XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes()); // version
            out.extend_from_slice(&1i32.to_be_bytes()); // minimum compatible version
            let mut encoder = snap::raw::Encoder::new();
            for chunk in data.chunks(XERIAL_BLOCK) {
                let block = encoder
                    .compress_vec(chunk)
                    .map_err(|e| failed(e.to_string()))?;
                out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            Ok(out)
        }
        Compression::Unknown(_) => Err(CodecError::Unsupported(codec)),
    }
}

/// `batch` (one whole v2 batch with parsed `header`) re-encoded with `target`; `None` when it
/// already is in that codec or is a control batch (kept as written). The records are inflated
/// up to `limit` bytes.
pub fn recode_batch(
    batch: &[u8],
    header: &BatchHeader,
    target: Compression,
    limit: usize,
) -> Result<Option<Vec<u8>>, CodecError> {
    if header.compression() == target || header.is_control() {
        return Ok(None);
    }
    let records = decompress(header.compression(), &batch[HEADER_LEN..], limit)?;
    let body = compress(target, &records)?;
    let batch_length = i32::try_from(HEADER_LEN - LOG_OVERHEAD + body.len()).map_err(|_| {
        CodecError::TooLarge {
            codec: target,
            limit,
        }
    })?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&batch[..HEADER_LEN]);
    out.extend_from_slice(&body);
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let codec_bits = match target {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
        Compression::Unknown(n) => i16::from(n),
    };
    let attributes = (header.attributes & !0x07) | codec_bits;
    out[CRC_START..CRC_START + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = compute_crc(&out);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::BatchBuilder;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn text(n: usize) -> Vec<u8> {
        (0..n).map(|i| b"log line, "[i % 10]).collect()
    }

    #[test]
    fn every_codec_round_trips() {
        for codec in ALL {
            for n in [0, 1, 100, 200_000] {
                let data = text(n);
                let packed = compress(codec, &data).unwrap();
                assert_eq!(
                    decompress(codec, &packed, n).unwrap(),
                    data,
                    "{codec:?} {n}"
                );
            }
        }
    }

    #[test]
    fn inflating_past_the_limit_is_refused() {
        let data = vec![0u8; 1 << 20];
        for codec in ALL {
            let packed = compress(codec, &data).unwrap();
            assert_eq!(
                decompress(codec, &packed, (1 << 20) - 1),
                Err(CodecError::TooLarge {
                    codec,
                    limit: (1 << 20) - 1
                }),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn raw_snappy_as_librdkafka_writes_it_is_read() {
        let data = text(5000);
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(Compression::Snappy, &raw, 5000).unwrap(), data);
        // A raw block claiming more than the limit is refused before anything is allocated.
        assert!(matches!(
            decompress(Compression::Snappy, &raw, 4999),
            Err(CodecError::TooLarge { .. })
        ));
    }

    /// Found by the log_recovery fuzz target: a stored snappy batch whose raw block claimed
    /// 28 MiB inflated (under the 32 MiB scan limit) was given a 28 MiB buffer before the
    /// decoder found it malformed. The claim is now checked against the block's size first.
    #[test]
    fn a_snappy_block_claiming_more_than_it_can_hold_is_malformed_before_allocating() {
        // Varint preamble 0x1BFFFFF (28 MiB - 1), then a few bytes of elements.
        let block = [0xff, 0xff, 0xff, 0x0d, 0x00, 0x01, 0x02, 0x03];
        match decompress(Compression::Snappy, &block, 32 << 20) {
            Err(CodecError::Malformed { reason, .. }) => {
                assert!(reason.contains("claims 29360127 bytes"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        // A real block at the highest ratio still inflates.
        let zeros = vec![0u8; 1 << 16];
        let packed = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
        assert!(zeros.len() <= packed.len() * SNAPPY_MAX_RATIO);
        assert_eq!(
            decompress(Compression::Snappy, &packed, 1 << 20).unwrap(),
            zeros
        );
    }

    /// Found by the log_recovery fuzz target: an LZ4 frame of a few bytes declaring 4 MiB
    /// blocks made the decoder allocate 8 MiB before reading a block. The header is now fitted
    /// to what its blocks can hold; frames as clients write them still decode.
    #[test]
    fn an_lz4_frame_declaring_huge_blocks_costs_what_its_blocks_can_fill() {
        let records = text(200_000);
        for block_size in [
            lz4_flex::frame::BlockSize::Max64KB,
            lz4_flex::frame::BlockSize::Max4MB,
        ] {
            let mut info = lz4_flex::frame::FrameInfo::new();
            info.block_size = block_size;
            let mut w = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            std::io::Write::write_all(&mut w, &records).unwrap();
            let frame = w.finish().unwrap();
            assert_eq!(
                decompress(Compression::Lz4, &frame, 1 << 20).unwrap(),
                records
            );
        }
        // A 4 MiB-block frame holding 10 bytes is rewritten to 64 KiB blocks, and still decodes.
        let mut info = lz4_flex::frame::FrameInfo::new();
        info.block_size = lz4_flex::frame::BlockSize::Max4MB;
        let mut w = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
        std::io::Write::write_all(&mut w, b"ten bytes!").unwrap();
        let small = w.finish().unwrap();
        let fitted = lz4_fit_block_size(&small);
        assert_eq!((small[5] >> 4) & 7, 7);
        assert_eq!((fitted[5] >> 4) & 7, 4);
        assert_eq!(
            decompress(Compression::Lz4, &small, 1 << 20).unwrap(),
            b"ten bytes!"
        );
    }

    #[test]
    fn garbage_is_malformed_for_every_codec() {
        for codec in &ALL[1..] {
            assert!(
                matches!(
                    decompress(*codec, b"\x00\x01 not compressed at all", 1 << 20),
                    Err(CodecError::Malformed { .. })
                ),
                "{codec:?}"
            );
        }
    }

    #[test]
    fn recoding_keeps_the_records_and_header_and_fixes_length_and_crc() {
        let mut b = BatchBuilder::new().producer(7, 1, 40);
        for i in 0..50 {
            b.push(1000 + i, Some(b"key"), Some(&text(300)));
        }
        let original = b.build();
        let h = BatchHeader::parse(&original).unwrap();
        let mut current = original.clone();
        for target in [
            Compression::Zstd,
            Compression::Lz4,
            Compression::Snappy,
            Compression::Gzip,
            Compression::None,
        ] {
            let ch = BatchHeader::parse(&current).unwrap();
            let next = recode_batch(&current, &ch, target, 1 << 20)
                .unwrap()
                .expect("a different codec");
            let nh = BatchHeader::parse(&next).unwrap();
            crate::batch::verify_crc(&next, &nh).unwrap();
            assert_eq!(nh.compression(), target);
            assert_eq!(nh.size() as usize, next.len());
            assert_eq!(
                (
                    nh.record_count,
                    nh.producer_id,
                    nh.base_sequence,
                    nh.max_timestamp
                ),
                (
                    h.record_count,
                    h.producer_id,
                    h.base_sequence,
                    h.max_timestamp
                )
            );
            assert_eq!(
                decompress(target, &next[HEADER_LEN..], 1 << 20).unwrap(),
                original[HEADER_LEN..]
            );
            current = next;
        }
        // Back to uncompressed: the same bytes as the producer's uncompressed batch.
        assert_eq!(current, original);
        // Already in the target codec: nothing to do.
        assert_eq!(
            recode_batch(&original, &h, Compression::None, 1 << 20),
            Ok(None)
        );
    }
}
