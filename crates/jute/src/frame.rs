//! Length-prefixed framing of the client port, without I/O: splitting whole frames off a receive
//! buffer and writing frames into a send buffer.
//!
//! Every message in either direction is a 4-byte big-endian length followed by that many bytes.
//! The first frame a client sends is a bare `ConnectRequest`; every later one is a
//! `RequestHeader` and the op's record. The server answers the first with a bare
//! `ConnectResponse` and the rest with a `ReplyHeader` and, when `err` is 0, the op's record.
//!
//! # `jute.maxbuffer`
//!
//! ZooKeeper bounds frame lengths with the `jute.maxbuffer` system property, whose default is
//! `0xfffff` (1 MiB - 1, [`DEFAULT_MAX_BUFFER`]), on both ends. A 3.8 server reads the length
//! prefix and, if it is negative or above `jute.maxbuffer`, throws before allocating anything
//! ("Len error ... is either a malformed message or too large to process"), and the connection
//! is closed without a reply; the session survives and the client may reconnect. A 3.8 client
//! likewise drops the connection on a reply longer than its own `jute.maxbuffer`. Lengths *inside*
//! a frame are checked against `jute.maxbuffer` plus `zookeeper.jute.maxbuffer.extrasize`, which
//! the frame bound already implies.
//!
//! Before a connection has sent its `ConnectRequest`, a real server also reads the first four
//! bytes as a possible four-letter word (`ruok`, `stat`, ...); that check belongs to the server,
//! ahead of [`take_frame`].

use bytes::{Buf, BufMut, BytesMut};
use thiserror::Error;

/// ZooKeeper's default `jute.maxbuffer`: the largest frame body accepted.
pub const DEFAULT_MAX_BUFFER: usize = 0xfffff;

/// Bytes in a frame's length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// A frame that must not be read or written. A server answers this by closing the connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("negative frame length {0}")]
    NegativeLength(i32),
    #[error("frame length {len} is over the {max}-byte limit (jute.maxbuffer)")]
    TooLarge { len: usize, max: usize },
}

/// Most that [`take_frame`] reserves ahead of bytes that have not arrived yet.
pub const RESERVE_AHEAD: usize = 64 * 1024;

/// Splits one whole frame body off the front of `buf`.
///
/// `Ok(None)` means more bytes are needed; `buf` is left as it was, with room reserved for the
/// rest of the frame (up to [`RESERVE_AHEAD`]) once its length has been checked. The length is
/// validated against `max_len` before any allocation, so a hostile prefix cannot make the
/// caller reserve memory it has not received.
pub fn take_frame(buf: &mut BytesMut, max_len: usize) -> Result<Option<BytesMut>, FrameError> {
    let Some(prefix) = buf.get(..LENGTH_PREFIX_LEN) else {
        return Ok(None);
    };
    let mut raw = [0u8; LENGTH_PREFIX_LEN];
    raw.copy_from_slice(prefix);
    let len = i32::from_be_bytes(raw);
    let len = usize::try_from(len).map_err(|_| FrameError::NegativeLength(len))?;
    if len > max_len {
        return Err(FrameError::TooLarge { len, max: max_len });
    }
    let total = LENGTH_PREFIX_LEN + len;
    if buf.len() < total {
        // Room for what is missing, up to RESERVE_AHEAD: a frame that is announced but does
        // not arrive costs no more than that; past it the buffer grows as bytes arrive.
        buf.reserve((total - buf.len()).min(RESERVE_AHEAD));
        return Ok(None);
    }
    buf.advance(LENGTH_PREFIX_LEN);
    Ok(Some(buf.split_to(len)))
}

/// Appends one frame: the length of `body`, then `body`.
pub fn write_frame(buf: &mut BytesMut, body: &[u8]) -> Result<(), FrameError> {
    write_framed(buf, |b| b.put_slice(body))
}

/// Appends one frame whose body `fill` writes straight into `buf`, then back-fills the length.
/// If the body cannot be described by a jute length (over `i32::MAX`), `buf` is restored and
/// nothing is appended.
pub fn write_framed(
    buf: &mut BytesMut,
    fill: impl FnOnce(&mut BytesMut),
) -> Result<(), FrameError> {
    let start = buf.len();
    buf.put_i32(0);
    fill(buf);
    let len = buf.len() - start - LENGTH_PREFIX_LEN;
    match i32::try_from(len) {
        Ok(v) => {
            buf[start..start + LENGTH_PREFIX_LEN].copy_from_slice(&v.to_be_bytes());
            Ok(())
        }
        Err(_) => {
            buf.truncate(start);
            Err(FrameError::TooLarge {
                len,
                max: i32::MAX as usize,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn incomplete_then_complete() {
        let mut buf = BytesMut::from(&[0u8, 0, 0][..]);
        assert_eq!(take_frame(&mut buf, 16), Ok(None));
        buf.extend_from_slice(&[3, b'a', b'b']);
        assert_eq!(take_frame(&mut buf, 16), Ok(None));
        assert_eq!(buf.len(), 6, "an incomplete frame is left in place");
        buf.extend_from_slice(b"cXY");
        let frame = take_frame(&mut buf, 16).unwrap().unwrap();
        assert_eq!(&frame[..], b"abc");
        assert_eq!(&buf[..], b"XY");
    }

    #[test]
    fn empty_frame() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0][..]);
        assert_eq!(take_frame(&mut buf, 0).unwrap().unwrap().len(), 0);
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_lengths_rejected_before_the_body_arrives() {
        let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xfe][..]);
        assert_eq!(
            take_frame(&mut buf, 16),
            Err(FrameError::NegativeLength(-2))
        );
        let mut buf = BytesMut::from(&(DEFAULT_MAX_BUFFER as i32 + 1).to_be_bytes()[..]);
        assert_eq!(
            take_frame(&mut buf, DEFAULT_MAX_BUFFER),
            Err(FrameError::TooLarge {
                len: DEFAULT_MAX_BUFFER + 1,
                max: DEFAULT_MAX_BUFFER
            })
        );
        assert!(
            buf.capacity() < 1024,
            "nothing reserved for a rejected frame"
        );
        let mut buf = BytesMut::from(&(DEFAULT_MAX_BUFFER as i32).to_be_bytes()[..]);
        assert_eq!(take_frame(&mut buf, DEFAULT_MAX_BUFFER), Ok(None));
        assert!(
            buf.capacity() <= 4 + RESERVE_AHEAD,
            "an announced 1 MiB frame reserved {} bytes before arriving",
            buf.capacity()
        );
    }

    #[test]
    fn written_frames_carry_their_length() {
        let mut buf = BytesMut::from(&b"prev"[..]);
        write_frame(&mut buf, b"hello").unwrap();
        write_framed(&mut buf, |b| b.put_u8(7)).unwrap();
        assert_eq!(&buf[..], b"prev\0\0\0\x05hello\0\0\0\x01\x07");
    }

    proptest! {
        #[test]
        fn frames_round_trip(bodies in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..40), 0..6)) {
            let mut buf = BytesMut::new();
            for b in &bodies {
                write_frame(&mut buf, b).unwrap();
            }
            let mut got = Vec::new();
            while let Some(f) = take_frame(&mut buf, 64).unwrap() {
                got.push(f.to_vec());
            }
            prop_assert_eq!(got, bodies);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn take_frame_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64),
                                   max in 0usize..128) {
            let mut buf = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = take_frame(&mut buf, max) {}
        }
    }
}
