//! A client connection's byte stream: plain TCP or TLS over it. Both read and write as tokio
//! streams; they differ in how a Fetch's records leave: sendfile(2) from the segment file
//! straight to a plain socket, read into memory and encrypted for a TLS one (as Kafka copies
//! through user space on its SSL listeners).

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Bytes of a segment read at once for a TLS connection.
const TLS_FILE_CHUNK: usize = 256 * 1024;

/// A client connection's stream.
#[derive(Debug)]
pub enum Wire {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Wire {
    /// Waits until there may be something to read, without making room for it (an idle plain
    /// connection holds no buffer). A TLS stream may hold decrypted bytes already, so it does
    /// not wait here.
    pub async fn readable(&self) -> std::io::Result<()> {
        match self {
            Wire::Plain(s) => s.readable().await,
            Wire::Tls(_) => Ok(()),
        }
    }

    /// Writes `slice` of a segment file: with sendfile(2) on a plain socket, through memory
    /// on a TLS one.
    pub async fn send_file(&mut self, slice: &sluice_log::FetchSlice) -> std::io::Result<()> {
        match self {
            Wire::Plain(s) => send_file(s, slice).await,
            Wire::Tls(s) => {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; (slice.len as usize).min(TLS_FILE_CHUNK)];
                let (mut offset, end) = (slice.position, slice.position + slice.len);
                while offset < end {
                    let want = ((end - offset) as usize).min(buf.len());
                    // A page-cache read, as sendfile(2) does in the plain case.
                    let n = slice.file().read_at(&mut buf[..want], offset)?;
                    if n == 0 {
                        return Err(truncated(slice));
                    }
                    s.write_all(&buf[..n]).await?;
                    offset += n as u64;
                }
                Ok(())
            }
        }
    }
}

fn truncated(slice: &sluice_log::FetchSlice) -> std::io::Error {
    // The file is shorter than the slice: it was truncated under us. The frame can no longer
    // be completed; the connection is dropped.
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("segment {} ended while sending", slice.path.display()),
    )
}

/// sendfile(2) of a whole slice to a non-blocking socket, waiting for room as needed.
async fn send_file(stream: &TcpStream, slice: &sluice_log::FetchSlice) -> std::io::Result<()> {
    let mut offset = slice.position;
    let end = slice.position + slice.len;
    while offset < end {
        let want = (end - offset).min(1 << 30) as usize;
        stream.writable().await?;
        match stream.try_io(tokio::io::Interest::WRITABLE, || {
            rustix::fs::sendfile(stream, slice.file(), Some(&mut offset), want)
                .map_err(std::io::Error::from)
        }) {
            Ok(0) => return Err(truncated(slice)),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Wire::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Wire::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Wire::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Wire::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Wire::Plain(s) => Pin::new(s).poll_flush(cx),
            Wire::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Wire::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Wire::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
