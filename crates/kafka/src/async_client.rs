//! A Kafka connection on tokio, one request at a time: what a broker uses to talk to another
//! broker (a follower fetching from its leader). A response's size is checked against a limit
//! before it is read, and the buffer grows with the bytes that arrive. The stream is plain TCP
//! ([`AsyncConn::connect`]) or whatever the caller set up over it, e.g. TLS
//! ([`AsyncConn::over`]).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::ClientError;
use crate::frame::encode_request;

/// A byte stream a connection runs over (TCP, or TLS over TCP).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync + std::fmt::Debug {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync + std::fmt::Debug> Stream for T {}

/// One connection on tokio.
#[derive(Debug)]
pub struct AsyncConn {
    stream: Box<dyn Stream>,
    addr: SocketAddr,
    client_id: String,
    next_correlation: i32,
    max_response: usize,
    timeout: Duration,
}

impl AsyncConn {
    /// Connects within `timeout`; every later call must also finish within it.
    pub async fn connect(
        addr: SocketAddr,
        client_id: &str,
        timeout: Duration,
        max_response: usize,
    ) -> Result<AsyncConn, ClientError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Connect(addr, std::io::ErrorKind::TimedOut.into()))?
            .map_err(|e| ClientError::Connect(addr, e))?;
        let _ = stream.set_nodelay(true);
        Ok(Self::over(
            Box::new(stream),
            addr,
            client_id,
            timeout,
            max_response,
        ))
    }

    /// A connection over an already established `stream` to `addr`.
    pub fn over(
        stream: Box<dyn Stream>,
        addr: SocketAddr,
        client_id: &str,
        timeout: Duration,
        max_response: usize,
    ) -> AsyncConn {
        AsyncConn {
            stream,
            addr,
            client_id: client_id.to_string(),
            next_correlation: 1,
            max_response,
            timeout,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends `req` and decodes its response, within the connection's timeout plus `extra`
    /// (a Fetch waits up to its `max_wait_ms` on the other side).
    pub async fn call<Q: Encodable, A: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Q,
        extra: Duration,
    ) -> Result<A, ClientError> {
        let limit = self.timeout + extra;
        match tokio::time::timeout(limit, self.call_inner(key, version, req)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Io {
                what: format!("{key:?} to {}", self.addr),
                source: std::io::ErrorKind::TimedOut.into(),
            }),
        }
    }

    async fn call_inner<Q: Encodable, A: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Q,
    ) -> Result<A, ClientError> {
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let frame = encode_request(key, version, correlation, &self.client_id, req)?;
        let io = |what: &str| {
            let what = format!("{what} ({key:?}, {})", self.addr);
            move |source| ClientError::Io { what, source }
        };
        self.stream.write_all(&frame).await.map_err(io("send"))?;
        self.stream.flush().await.map_err(io("send"))?;
        let size = self.stream.read_i32().await.map_err(io("read size"))?;
        let malformed = |reason: String| ClientError::Malformed {
            key,
            version,
            reason,
        };
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= self.max_response)
            .ok_or_else(|| malformed(format!("response size {size}")))?;
        let mut buf = BytesMut::with_capacity(size.min(1 << 20));
        while buf.len() < size {
            let want = size - buf.len();
            if buf.capacity() == buf.len() {
                buf.reserve(want.min(buf.len().max(1 << 20)));
            }
            let n = (&mut self.stream)
                .take(want as u64)
                .read_buf(&mut buf)
                .await
                .map_err(io("read response"))?;
            if n == 0 {
                return Err(io("read response")(
                    std::io::ErrorKind::UnexpectedEof.into(),
                ));
            }
        }
        let mut body: Bytes = buf.freeze();
        let header = ResponseHeader::decode(&mut body, key.response_header_version(version))
            .map_err(|e| malformed(format!("header: {e:#}")))?;
        if header.correlation_id != correlation {
            return Err(malformed(format!(
                "correlation id {}, expected {correlation}",
                header.correlation_id
            )));
        }
        A::decode(&mut body, version).map_err(|e| malformed(format!("{e:#}")))
    }
}
