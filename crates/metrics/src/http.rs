//! The metrics endpoint: `GET /metrics` over HTTP/1.1, nothing else.
//!
//! ```text
//!  accept ─► permit? (at most MAX_CONNECTIONS; otherwise closed at once)
//!              └─► read a request head (≤ MAX_HEAD bytes, HEAD_TIMEOUT; idle keep-alive
//!                  connections close after IDLE_TIMEOUT)
//!                    GET|HEAD /metrics ─► 200, render()      other paths ─► 404
//!                    other methods, bodies, bad heads ─► 400/405 and close
//! ```
//!
//! Prometheus keeps its scrape connection open between scrapes, so keep-alive is honoured. The
//! server is deliberately small: a scrape endpoint must not be a way to take a daemon's memory
//! or its threads, so every connection is bounded in count, bytes and time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Connections served at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 32;
/// The largest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Time allowed to send a request head once its first byte came.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A kept-alive connection with no request for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The content type of the text format, version 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `render`'s text on `GET /metrics` until `shutdown` completes.
pub async fn serve<F, Fut>(listener: TcpListener, render: F, shutdown: impl Future<Output = ()>)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = String> + Send,
{
    let render = Arc::new(render);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "metrics endpoint: too many connections, closing");
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let _ = connection(stream, &*render).await;
            drop(permit);
        });
    }
}

async fn connection<F, Fut>(mut stream: TcpStream, render: &F) -> std::io::Result<()>
where
    F: Fn() -> Fut,
    Fut: Future<Output = String>,
{
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(1024);
    loop {
        let head = match read_head(&mut stream, &mut buf).await? {
            Head::Complete(len) => {
                let head = String::from_utf8_lossy(&buf[..len]).into_owned();
                buf.drain(..len);
                head
            }
            Head::Closed => return Ok(()),
            Head::TooLarge => {
                return respond(
                    &mut stream,
                    "431 Request Header Fields Too Large",
                    None,
                    true,
                )
                .await
            }
        };
        let request = match Request::parse(&head) {
            Ok(r) => r,
            Err(why) => {
                let body = format!("bad request: {why}\n");
                return respond(&mut stream, "400 Bad Request", Some(&body), true).await;
            }
        };
        let close = request.close;
        if request.has_body && matches!(request.method.as_str(), "GET" | "HEAD") {
            let body = "bad request: a request body is not accepted\n";
            return respond(&mut stream, "400 Bad Request", Some(body), true).await;
        }
        match (request.method.as_str(), request.path_is_metrics) {
            ("GET", true) => {
                let text = render().await;
                respond_metrics(&mut stream, &text, true, close).await?;
            }
            ("HEAD", true) => {
                let text = render().await;
                respond_metrics(&mut stream, &text, false, close).await?;
            }
            ("GET" | "HEAD", false) => {
                respond(
                    &mut stream,
                    "404 Not Found",
                    Some("metrics are at /metrics\n"),
                    close,
                )
                .await?;
            }
            _ => {
                return respond(
                    &mut stream,
                    "405 Method Not Allowed",
                    Some("only GET /metrics\n"),
                    true,
                )
                .await;
            }
        }
        if close {
            return Ok(());
        }
    }
}

enum Head {
    /// A head of this many bytes (through the blank line) is at the front of the buffer.
    Complete(usize),
    Closed,
    TooLarge,
}

async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Head> {
    let mut started = !buf.is_empty();
    loop {
        if let Some(end) = find_blank_line(buf) {
            return Ok(Head::Complete(end));
        }
        if buf.len() >= MAX_HEAD {
            return Ok(Head::TooLarge);
        }
        let mut chunk = [0u8; 1024];
        let limit = if started { HEAD_TIMEOUT } else { IDLE_TIMEOUT };
        let n = match tokio::time::timeout(limit, stream.read(&mut chunk)).await {
            Ok(r) => r?,
            Err(_) => return Ok(Head::Closed),
        };
        if n == 0 {
            return Ok(Head::Closed);
        }
        started = true;
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find_blank_line(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

#[derive(Debug)]
struct Request {
    method: String,
    path_is_metrics: bool,
    close: bool,
    /// A GET or HEAD with a body is refused: the body is not read, so the connection could
    /// not go on.
    has_body: bool,
}

impl Request {
    fn parse(head: &str) -> Result<Request, String> {
        let mut lines = head.split("\r\n");
        let first = lines.next().unwrap_or_default();
        let mut parts = first.split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("request line {first:?}"));
        };
        let mut close = match version {
            "HTTP/1.1" => false,
            "HTTP/1.0" => true,
            other => return Err(format!("HTTP version {other:?}")),
        };
        let mut has_body = false;
        for line in lines.filter(|l| !l.is_empty()) {
            let Some((name, value)) = line.split_once(':') else {
                return Err(format!("header line {line:?}"));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("connection") {
                if value.eq_ignore_ascii_case("close") {
                    close = true;
                } else if value.eq_ignore_ascii_case("keep-alive") {
                    close = false;
                }
            } else if (name.eq_ignore_ascii_case("content-length") && value != "0")
                || name.eq_ignore_ascii_case("transfer-encoding")
            {
                has_body = true;
            }
        }
        let path = target.split('?').next().unwrap_or_default();
        Ok(Request {
            method: method.to_string(),
            path_is_metrics: path == "/metrics",
            close,
            has_body,
        })
    }
}

async fn respond_metrics(
    stream: &mut TcpStream,
    text: &str,
    with_body: bool,
    close: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n{}\r\n",
        text.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
    stream.write_all(head.as_bytes()).await?;
    if with_body {
        stream.write_all(text.as_bytes()).await?;
    }
    stream.flush().await
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    body: Option<&str>,
    close: bool,
) -> std::io::Result<()> {
    let body = body.unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    async fn start() -> (std::net::SocketAddr, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let scrapes = Arc::new(AtomicU64::new(0));
        let counted = scrapes.clone();
        tokio::spawn(serve(
            listener,
            move || {
                let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
                async move { format!("# TYPE scrapes counter\nscrapes {n}\n") }
            },
            std::future::pending(),
        ));
        (addr, scrapes)
    }

    async fn exchange(stream: &mut TcpStream, request: &str) -> String {
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        // Read a whole response: head, then Content-Length bytes (or to EOF when closing).
        loop {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
                .await
                .expect("a response within 5 s")
                .unwrap();
            got.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&got).into_owned();
            if n == 0 {
                return text;
            }
            if let Some(end) = find_blank_line(&got) {
                let len: usize = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or(0);
                let body_wanted = !request.starts_with("HEAD");
                if !body_wanted || got.len() >= end + len {
                    return text;
                }
            }
        }
    }

    #[tokio::test]
    async fn keep_alive_scrapes_and_errors() {
        let (addr, scrapes) = start().await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let r = exchange(&mut s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains(CONTENT_TYPE));
        assert!(r.ends_with("scrapes 1\n"), "{r}");
        // The same connection serves the next scrape (Prometheus keeps it open).
        let r = exchange(&mut s, "GET /metrics?x=1 HTTP/1.1\r\n\r\n").await;
        assert!(r.ends_with("scrapes 2\n"), "{r}");
        let r = exchange(&mut s, "HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(
            r.starts_with("HTTP/1.1 200 OK") && r.ends_with("\r\n\r\n"),
            "{r}"
        );
        let r = exchange(&mut s, "GET / HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 404"), "{r}");
        let r = exchange(
            &mut s,
            "POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 405"), "{r}");
        assert_eq!(scrapes.load(Ordering::SeqCst), 3);

        let mut s = TcpStream::connect(addr).await.unwrap();
        let r = exchange(&mut s, "garbage\r\n\r\n").await;
        assert!(
            r.starts_with("HTTP/1.1 400") && r.contains("request line"),
            "{r}"
        );

        let mut s = TcpStream::connect(addr).await.unwrap();
        let r = exchange(
            &mut s,
            &format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD)),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 431"), "{r}");

        let mut s = TcpStream::connect(addr).await.unwrap();
        let r = exchange(&mut s, "GET /metrics HTTP/1.0\r\n\r\n").await;
        assert!(
            r.contains("Connection: close") && r.ends_with("scrapes 4\n"),
            "{r}"
        );
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_are_closed_and_others_still_served() {
        let (addr, _) = start().await;
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        // Give the server time to accept them all.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let mut b = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut b))
            .await
            .expect("closed, not left hanging")
            .unwrap_or(0);
        assert_eq!(n, 0);
        drop(idle);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let r = exchange(&mut s, "GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
}
