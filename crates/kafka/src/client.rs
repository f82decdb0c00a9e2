//! A blocking Kafka connection for tools and tests that send exact requests: requests may be
//! pipelined, and responses are read back in request order, as Kafka sends them.

use std::collections::VecDeque;
use std::io::{IoSlice, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::frame::{encode_request, encode_request_kind, EncodeError};

/// Bytes 8..12 of a request frame: its correlation id (after the size, api key and version).
const CORRELATION_AT: usize = 8;
/// Bytes of a frame before which [`Conn::send_frame`] patches the correlation id.
pub const FRAME_PREFIX: usize = 12;
/// How long a response may take before the connection is given up.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// What went wrong on a client connection.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect to {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error("malformed {key:?} v{version} response: {reason}")]
    Malformed {
        key: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("{0}")]
    Usage(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClientError {
    let what = what.into();
    move |source| ClientError::Io { what, source }
}

/// One blocking connection; responses arrive in request order, as Kafka requires.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    client_id: String,
    next_correlation: i32,
    /// Correlation ids sent and not yet answered, oldest first.
    waiting: VecDeque<(i32, ApiKey, i16)>,
    /// Response buffer, reused once the previous response is dropped (a fresh multi-megabyte
    /// allocation per fetch would cost a page fault per 4 KiB).
    buf: BytesMut,
}

impl Conn {
    /// Connects with `client.id` `client_id`, TCP_NODELAY and 60 s read and write timeouts.
    pub fn connect(addr: SocketAddr, client_id: &str) -> Result<Conn, ClientError> {
        let stream = TcpStream::connect(addr).map_err(|e| ClientError::Connect(addr, e))?;
        // Frames go out in one vectored write each; nothing is gained by delaying them.
        stream.set_nodelay(true).map_err(io("TCP_NODELAY"))?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(io("read timeout"))?;
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .map_err(io("write timeout"))?;
        Ok(Conn {
            stream,
            client_id: client_id.to_string(),
            next_correlation: 1,
            waiting: VecDeque::new(),
            buf: BytesMut::new(),
        })
    }

    /// The socket, e.g. to change its timeouts or to write raw bytes.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.waiting.len()
    }

    /// One request as a complete frame with this connection's client id and correlation id 0,
    /// to be sent (many times, if wanted) with [`Conn::send_frame`], which sets the id.
    pub fn frame<R: Encodable>(
        &self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> Result<Bytes, ClientError> {
        Ok(encode_request(key, version, 0, &self.client_id, req)?)
    }

    /// Sends a frame from [`Conn::frame`] under a new correlation id, without copying it: the
    /// first [`FRAME_PREFIX`] bytes are patched in a local copy. `answered`: whether a response
    /// will come (not for a Produce with acks=0).
    pub fn send_frame(&mut self, frame: &[u8], answered: bool) -> Result<i32, ClientError> {
        if frame.len() <= FRAME_PREFIX {
            return Err(ClientError::Usage("request frame too short".into()));
        }
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let mut prefix = [0u8; FRAME_PREFIX];
        prefix.copy_from_slice(&frame[..FRAME_PREFIX]);
        prefix[CORRELATION_AT..FRAME_PREFIX].copy_from_slice(&correlation.to_be_bytes());
        let key = i16::from_be_bytes([prefix[4], prefix[5]]);
        let version = i16::from_be_bytes([prefix[6], prefix[7]]);
        let key = ApiKey::try_from(key)
            .map_err(|()| ClientError::Usage(format!("unknown api key {key}")))?;
        write_all_vectored(&mut self.stream, &prefix, &frame[FRAME_PREFIX..])
            .map_err(io(format!("send {key:?}")))?;
        if answered {
            self.waiting.push_back((correlation, key, version));
        }
        Ok(correlation)
    }

    /// Encodes and sends one request; returns its correlation id.
    pub fn send<R: Encodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &R,
    ) -> Result<i32, ClientError> {
        let frame = self.frame(key, version, req)?;
        self.send_frame(&frame, true)
    }

    /// [`Conn::send`] for a request held as a [`RequestKind`].
    pub fn send_kind(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &RequestKind,
    ) -> Result<i32, ClientError> {
        let frame = encode_request_kind(key, version, 0, &self.client_id, req)?;
        self.send_frame(&frame, true)
    }

    /// Reads the response to the oldest request in flight and returns its body, header removed.
    pub fn receive(&mut self) -> Result<(ApiKey, i16, Bytes), ClientError> {
        let (correlation, key, version) = self
            .waiting
            .pop_front()
            .ok_or_else(|| ClientError::Usage("no request in flight".into()))?;
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .map_err(io(format!("read the {key:?} response size")))?;
        let len = usize::try_from(i32::from_be_bytes(len)).map_err(|_| ClientError::Malformed {
            key,
            version,
            reason: format!("negative size {}", i32::from_be_bytes(len)),
        })?;
        // Reclaims the previous allocation if nothing refers to it any more; grows only as the
        // bytes arrive, so a wrong size cannot make the client allocate it up front.
        self.buf.clear();
        while self.buf.len() < len {
            let want = (len - self.buf.len()).min(1 << 20);
            let n = self
                .stream
                .read(zeroed_tail(&mut self.buf, want))
                .map_err(io(format!("read the {key:?} response")))?;
            if n == 0 {
                return Err(ClientError::Io {
                    what: format!("read the {key:?} response"),
                    source: std::io::ErrorKind::UnexpectedEof.into(),
                });
            }
            self.buf.truncate(self.buf.len() - (want - n));
        }
        let mut body = self.buf.split().freeze();
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
            .map_err(|e| ClientError::Malformed {
                key,
                version,
                reason: format!("header: {e:#}"),
            })?;
        if header.correlation_id != correlation {
            return Err(ClientError::Malformed {
                key,
                version,
                reason: format!(
                    "correlation id {}, expected {correlation}",
                    header.correlation_id
                ),
            });
        }
        Ok((key, version, body))
    }

    /// Sends `req` and decodes its response.
    pub fn call<Q: Encodable, A: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Q,
    ) -> Result<A, ClientError> {
        if !self.waiting.is_empty() {
            return Err(ClientError::Usage("call with requests in flight".into()));
        }
        self.send(key, version, req)?;
        let (_, _, mut body) = self.receive()?;
        A::decode(&mut body, version).map_err(|e| ClientError::Malformed {
            key,
            version,
            reason: format!("{e:#}"),
        })
    }
}

/// `want` zeroed bytes appended to `buf`, returned for a read to fill (the caller truncates
/// what the read did not fill). Zeroing costs little next to the socket read.
fn zeroed_tail(buf: &mut BytesMut, want: usize) -> &mut [u8] {
    let start = buf.len();
    buf.put_bytes(0, want);
    &mut buf[start..]
}

/// Writes `a` then `b` with as few system calls as the socket allows.
fn write_all_vectored(stream: &mut TcpStream, a: &[u8], b: &[u8]) -> std::io::Result<()> {
    let mut bufs = [IoSlice::new(a), IoSlice::new(b)];
    let mut slices: &mut [IoSlice<'_>] = &mut bufs;
    while !slices.is_empty() {
        match stream.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
