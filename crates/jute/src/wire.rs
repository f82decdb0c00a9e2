//! Jute's primitive binary encoding (`BinaryOutputArchive` / `BinaryInputArchive`) and the
//! [`Record`] trait every message implements: the bounds-checked [`Reader`], the write helpers and
//! [`DecodeError`].
//!
//! Layout, all big-endian: `int` 4 bytes, `long` 8 bytes, `boolean` 1 byte, `buffer` and `ustring`
//! an `int` length then that many bytes (length -1 means null), `vector` an `int` count (-1 means
//! null) then the items. Records are their fields in declaration order, with no tags or padding.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::types::{ErrorCode, OpCode};

/// Why a byte sequence could not be decoded. Every decoder in this crate returns this instead of
/// panicking, whatever the input.
///
/// A real ZooKeeper 3.8 server that fails to deserialize a request body answers it with
/// `MarshallingError` (-5); one that sees an op code it does not know answers `Unimplemented` (-6)
/// and closes the session.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("truncated {what}: needs {needed} bytes, {remaining} left")]
    Truncated {
        what: &'static str,
        needed: usize,
        remaining: usize,
    },
    #[error("negative length {len} for {what}")]
    NegativeLength { what: &'static str, len: i32 },
    #[error("length {len} of {what} runs past the {remaining} bytes left")]
    LengthOverrun {
        what: &'static str,
        len: usize,
        remaining: usize,
    },
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 { what: &'static str },
    #[error("unknown op code {0}")]
    UnknownOpCode(i32),
    #[error("op code {0:?} is not a request a client may send")]
    UnsupportedOpCode(OpCode),
    #[error("unknown error code {0}")]
    UnknownErrorCode(i32),
    #[error("invalid {what} value {value}")]
    InvalidValue { what: &'static str, value: i32 },
    #[error("op type {op} is not allowed inside {multi:?}")]
    InvalidMultiOp { multi: OpCode, op: i32 },
    #[error("reply for xid {0}, which has no outstanding request")]
    UnexpectedXid(i32),
}

impl DecodeError {
    /// The code a 3.8 server puts in the reply header of a request that failed to decode this
    /// way: `Unimplemented` for op codes it will not serve (it then also closes the session),
    /// `MarshallingError` for a malformed body.
    pub fn reply_code(&self) -> ErrorCode {
        match self {
            DecodeError::UnknownOpCode(_) | DecodeError::UnsupportedOpCode(_) => {
                ErrorCode::Unimplemented
            }
            _ => ErrorCode::MarshallingError,
        }
    }
}

/// A bounds-checked cursor over one frame body.
///
/// Built from a `&Bytes` with [`Reader::from_bytes`], buffer fields are sliced out without
/// copying; built from a plain slice they are copied.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    source: Option<&'a Bytes>,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader {
            data,
            pos: 0,
            source: None,
        }
    }

    pub fn from_bytes(bytes: &'a Bytes) -> Reader<'a> {
        Reader {
            data: bytes,
            pos: 0,
            source: Some(bytes),
        }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let remaining = self.remaining();
        if n > remaining {
            return Err(DecodeError::Truncated {
                what,
                needed: n,
                remaining,
            });
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.data[start..self.pos])
    }

    fn take_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub fn read_i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.take_array(what)?))
    }

    pub fn read_i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.take_array(what)?))
    }

    /// Java's `DataInput.readBoolean`: any non-zero byte is true.
    pub fn read_bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        let [b] = self.take_array(what)?;
        Ok(b != 0)
    }

    /// A length prefix: `None` for -1 (null), an error for other negatives or for a length longer
    /// than what is left, so nothing is ever allocated from an untrusted length.
    fn read_len(&mut self, what: &'static str) -> Result<Option<usize>, DecodeError> {
        let len = self.read_i32(what)?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| DecodeError::NegativeLength { what, len })?;
        let remaining = self.remaining();
        if len > remaining {
            return Err(DecodeError::LengthOverrun {
                what,
                len,
                remaining,
            });
        }
        Ok(Some(len))
    }

    /// A jute `buffer`, keeping null (`None`) apart from empty.
    pub fn read_opt_buffer(&mut self, what: &'static str) -> Result<Option<Bytes>, DecodeError> {
        let Some(len) = self.read_len(what)? else {
            return Ok(None);
        };
        let start = self.pos;
        let slice = self.take(len, what)?;
        Ok(Some(match self.source {
            Some(src) => src.slice(start..start + len),
            None => Bytes::copy_from_slice(slice),
        }))
    }

    /// A jute `buffer` where null carries no meaning of its own: null reads as empty.
    pub fn read_buffer(&mut self, what: &'static str) -> Result<Bytes, DecodeError> {
        Ok(self.read_opt_buffer(what)?.unwrap_or_default())
    }

    /// A jute `ustring`, keeping null (`None`) apart from empty.
    pub fn read_opt_ustring(&mut self, what: &'static str) -> Result<Option<String>, DecodeError> {
        let Some(len) = self.read_len(what)? else {
            return Ok(None);
        };
        let raw = self.take(len, what)?;
        std::str::from_utf8(raw)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| DecodeError::InvalidUtf8 { what })
    }

    /// A jute `ustring` where null reads as empty. Paths are read this way: a null path and an
    /// empty one are equally invalid, and path validation rejects both.
    pub fn read_ustring(&mut self, what: &'static str) -> Result<String, DecodeError> {
        Ok(self.read_opt_ustring(what)?.unwrap_or_default())
    }

    /// A jute `vector`, null read as empty. `min_item_len` is the smallest encoding of one item;
    /// counts that could not fit in what is left are rejected before anything is allocated.
    pub fn read_vec<T>(
        &mut self,
        what: &'static str,
        min_item_len: usize,
        mut item: impl FnMut(&mut Reader<'a>) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let count = self.read_i32(what)?;
        if count == -1 {
            return Ok(Vec::new());
        }
        let count =
            usize::try_from(count).map_err(|_| DecodeError::NegativeLength { what, len: count })?;
        let remaining = self.remaining();
        if count.saturating_mul(min_item_len.max(1)) > remaining {
            return Err(DecodeError::LengthOverrun {
                what,
                len: count,
                remaining,
            });
        }
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(item(self)?);
        }
        Ok(out)
    }

    /// A `vector<ustring>`.
    pub fn read_string_vec(&mut self, what: &'static str) -> Result<Vec<String>, DecodeError> {
        self.read_vec(what, 4, |r| r.read_ustring(what))
    }

    /// A nested record.
    pub fn read<T: Record>(&mut self) -> Result<T, DecodeError> {
        T::read(self)
    }
}

/// Lengths beyond `i32::MAX` cannot be expressed in jute; they saturate here, and the resulting
/// frame is then over `i32::MAX` too, which [`crate::frame::write_framed`] refuses to send.
fn len_prefix(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

pub fn put_i32(buf: &mut BytesMut, v: i32) {
    buf.put_i32(v);
}

pub fn put_i64(buf: &mut BytesMut, v: i64) {
    buf.put_i64(v);
}

pub fn put_bool(buf: &mut BytesMut, v: bool) {
    buf.put_u8(u8::from(v));
}

pub fn put_buffer(buf: &mut BytesMut, v: &[u8]) {
    buf.put_i32(len_prefix(v.len()));
    buf.put_slice(v);
}

/// A nullable `buffer`: `None` is written as length -1.
pub fn put_opt_buffer(buf: &mut BytesMut, v: Option<&[u8]>) {
    match v {
        Some(v) => put_buffer(buf, v),
        None => buf.put_i32(-1),
    }
}

pub fn put_ustring(buf: &mut BytesMut, v: &str) {
    put_buffer(buf, v.as_bytes());
}

/// A nullable `ustring`: `None` is written as length -1.
pub fn put_opt_ustring(buf: &mut BytesMut, v: Option<&str>) {
    put_opt_buffer(buf, v.map(str::as_bytes));
}

pub fn put_vec<T>(buf: &mut BytesMut, items: &[T], mut item: impl FnMut(&mut BytesMut, &T)) {
    buf.put_i32(len_prefix(items.len()));
    for it in items {
        item(buf, it);
    }
}

pub fn put_string_vec(buf: &mut BytesMut, items: &[String]) {
    put_vec(buf, items, |b, s| put_ustring(b, s));
}

/// A jute record: a fixed sequence of fields with no framing of its own.
pub trait Record: Sized {
    /// Appends this record's encoding.
    fn write(&self, buf: &mut BytesMut);

    /// Reads one record from the cursor, leaving anything after it unread.
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// This record's encoding on its own.
    fn to_bytes(&self) -> BytesMut {
        let mut buf = BytesMut::new();
        self.write(&mut buf);
        buf
    }

    /// Decodes one record from the start of `data`. Trailing bytes are ignored, as
    /// `BinaryInputArchive` ignores them.
    fn from_slice(data: &[u8]) -> Result<Self, DecodeError> {
        Self::read(&mut Reader::new(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn primitives_are_big_endian() {
        let mut b = BytesMut::new();
        put_i32(&mut b, 0x0102_0304);
        put_i64(&mut b, -2);
        put_bool(&mut b, true);
        put_bool(&mut b, false);
        assert_eq!(
            &b[..],
            &[1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 1, 0]
        );
        let mut r = Reader::new(&b);
        assert_eq!(r.read_i32("a"), Ok(0x0102_0304));
        assert_eq!(r.read_i64("b"), Ok(-2));
        assert_eq!(r.read_bool("c"), Ok(true));
        assert_eq!(r.read_bool("d"), Ok(false));
        assert!(r.is_empty());
    }

    #[test]
    fn reply_codes() {
        assert_eq!(
            DecodeError::UnknownOpCode(10).reply_code(),
            ErrorCode::Unimplemented
        );
        assert_eq!(
            DecodeError::InvalidUtf8 { what: "p" }.reply_code(),
            ErrorCode::MarshallingError
        );
    }

    #[test]
    fn any_nonzero_byte_is_true() {
        assert_eq!(Reader::new(&[7]).read_bool("b"), Ok(true));
    }

    #[test]
    fn null_and_empty_buffers_differ() {
        let mut b = BytesMut::new();
        put_opt_buffer(&mut b, None);
        put_opt_buffer(&mut b, Some(b""));
        put_opt_ustring(&mut b, Some("hé"));
        assert_eq!(
            &b[..],
            &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 3, b'h', 0xc3, 0xa9]
        );
        let mut r = Reader::new(&b);
        assert_eq!(r.read_opt_buffer("x"), Ok(None));
        assert_eq!(r.read_opt_buffer("y"), Ok(Some(Bytes::new())));
        assert_eq!(r.read_ustring("z"), Ok("hé".to_owned()));
    }

    #[test]
    fn null_reads_as_empty_where_asked() {
        let neg = (-1i32).to_be_bytes();
        assert_eq!(Reader::new(&neg).read_buffer("b"), Ok(Bytes::new()));
        assert_eq!(Reader::new(&neg).read_ustring("s"), Ok(String::new()));
        assert_eq!(Reader::new(&neg).read_string_vec("v"), Ok(vec![]));
    }

    #[test]
    fn bad_lengths_are_errors() {
        let r = Reader::new(&(-2i32).to_be_bytes()).read_buffer("data");
        assert_eq!(
            r,
            Err(DecodeError::NegativeLength {
                what: "data",
                len: -2
            })
        );
        let r = Reader::new(&[0, 0, 0, 5, 1, 2]).read_buffer("data");
        assert_eq!(
            r,
            Err(DecodeError::LengthOverrun {
                what: "data",
                len: 5,
                remaining: 2
            })
        );
        let r = Reader::new(&[0x7f, 0xff, 0xff, 0xff]).read_string_vec("children");
        assert!(matches!(r, Err(DecodeError::LengthOverrun { .. })));
        let r = Reader::new(&[0, 0, 0, 2, 0xc3, 0x28]).read_ustring("path");
        assert_eq!(r, Err(DecodeError::InvalidUtf8 { what: "path" }));
        let r = Reader::new(&[0, 0, 1]).read_i32("xid");
        assert_eq!(
            r,
            Err(DecodeError::Truncated {
                what: "xid",
                needed: 4,
                remaining: 3
            })
        );
    }

    #[test]
    fn from_bytes_slices_without_copying() {
        let src = Bytes::from_static(&[0, 0, 0, 2, 9, 8, 7]);
        let got = Reader::from_bytes(&src).read_buffer("d").unwrap();
        assert_eq!(&got[..], &[9, 8]);
        assert_eq!(got.as_ptr(), src[4..].as_ptr());
    }

    proptest! {
        #[test]
        fn buffers_and_strings_round_trip(
            data in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            s in ".{0,20}",
            v in proptest::collection::vec(".{0,8}", 0..5),
        ) {
            let mut b = BytesMut::new();
            put_opt_buffer(&mut b, data.as_deref());
            put_ustring(&mut b, &s);
            put_string_vec(&mut b, &v);
            let mut r = Reader::new(&b);
            prop_assert_eq!(r.read_opt_buffer("d")?.map(|x| x.to_vec()), data);
            prop_assert_eq!(r.read_ustring("s")?, s);
            prop_assert_eq!(r.read_string_vec("v")?, v);
            prop_assert!(r.is_empty());
        }

        #[test]
        fn reader_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&data);
            let _ = r.read_string_vec("v");
            let _ = r.read_opt_buffer("b");
            let _ = r.read_i64("l");
        }
    }
}
