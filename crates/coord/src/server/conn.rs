//! One client connection on the client port: the four-letter-word check, the session
//! handshake, then the request loop.
//!
//! ```text
//!   socket bytes ─► frames (jute::take_frame, size checked before allocating)
//!        │
//!        ▼
//!   classify ─► Write/Sync ─► proposer (batched into the Raft log) ─► oneshot result
//!            ─► Local (reads, watches) ─► run against the local machine when it is its turn
//!        │
//!        ▼
//!   replies leave in request order; watch events queued by `apply` are written before any
//!   reply that follows them, so a client sees an event before data that reflects it.
//! ```
//!
//! Requests may be pipelined. Writes are handed to the proposer at once (several in flight);
//! a read waits until every earlier request of the connection has been answered, so it sees
//! the effects of this client's earlier writes (ZooKeeper's per-session FIFO order).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use sluice_jute::{
    encode_notification, encode_reply, take_frame, write_framed, ConnectRequest, ConnectResponse,
    ErrorCode, Id, KeeperState, Reader, Record, ReplyHeader, Request, RequestHeader, Response,
    WatcherEvent,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::handlers::{self, Kind};
use super::{Applied, ConnEvent, Core, ProposeFailed};
use crate::fourlw;
use crate::machine::{Command, CommandResult};

/// A request waiting for its turn to be answered.
enum Slot {
    /// Went to the log; answered when the result comes back.
    Write {
        xid: i32,
        req: Request,
        rx: oneshot::Receiver<Result<Applied, ProposeFailed>>,
        /// When the request was read (for the latency the four-letter words report).
        at: Instant,
    },
    /// Served locally once everything before it is answered.
    Local { xid: i32, req: Request, at: Instant },
    /// Already decided.
    Ready {
        xid: i32,
        err: ErrorCode,
        body: Response,
        close: bool,
        at: Instant,
        /// Counted as an update's latency (a write refused before reaching the log is one
        /// in ZooKeeper too: its error travels as a transaction).
        update: bool,
    },
}

/// Why the request loop stopped.
#[derive(Debug)]
enum End {
    ClientClosed,
    SessionClosed,
    Io(std::io::Error),
    Protocol(String),
    Expired,
    NotServing,
}

pub(crate) async fn serve(core: Arc<Core>, mut stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(4096);
    // The first four bytes: a four-letter word, or the length of the ConnectRequest frame.
    while buf.len() < 4 {
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                core.stats
                    .bytes_received
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
    let first: [u8; 4] = [buf[0], buf[1], buf[2], buf[3]];
    if let Some(word) = fourlw::detect(&first) {
        let text = core.four_letter_word(word);
        if word == "srst" && text.starts_with("Server stats reset") {
            core.stats.reset();
        }
        let _ = stream.write_all(text.as_bytes()).await;
        let _ = stream.shutdown().await;
        return;
    }
    if !core.is_serving() {
        tracing::debug!(%peer, "refusing a client connection: no leader with a quorum");
        core.stats
            .closed_not_serving
            .fetch_add(1, Ordering::Relaxed);
        return;
    }
    let conn_id = core.next_conn_id();
    let end = match handshake(&core, &mut stream, &mut buf, peer).await {
        Ok(Some(session)) => {
            let (tx, rx) = mpsc::unbounded_channel();
            core.attach(session.id, conn_id, peer, session.timeout_ms, tx);
            let mut conn = Conn {
                core: core.clone(),
                session,
                conn_id,
                peer,
                auth: vec![Id {
                    scheme: "ip".into(),
                    id: peer.ip().to_string(),
                }],
                queue: VecDeque::new(),
                out: BytesMut::with_capacity(4096),
                events: rx,
                closing: false,
                outstanding: 0,
            };
            core.set_watch_auth(conn.session.id, conn.auth.clone());
            let end = conn.run(&mut stream, buf).await;
            core.detach(conn.session.id, conn_id);
            end
        }
        Ok(None) => End::SessionClosed,
        Err(e) => e,
    };
    match &end {
        End::ClientClosed | End::SessionClosed => {
            tracing::debug!(%peer, "client connection closed")
        }
        End::Expired => tracing::info!(%peer, "closing the connection of an expired session"),
        End::NotServing => tracing::info!(%peer, "closing a client connection: no quorum"),
        End::Io(e) => tracing::debug!(%peer, error = %e, "client connection ended"),
        End::Protocol(why) => tracing::warn!(%peer, "closing client connection: {why}"),
    }
    let _ = stream.shutdown().await;
}

struct Session {
    id: i64,
    timeout_ms: i32,
}

/// Reads the ConnectRequest and answers it. `Ok(None)`: the session is gone and the client
/// was told so (the connection then closes, as in ZooKeeper).
async fn handshake(
    core: &Arc<Core>,
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    peer: SocketAddr,
) -> Result<Option<Session>, End> {
    let frame = loop {
        match take_frame(buf, core.settings.max_frame) {
            Ok(Some(f)) => break f,
            Ok(None) => {}
            Err(e) => return Err(End::Protocol(format!("bad connect frame: {e}"))),
        }
        match tokio::time::timeout(Duration::from_secs(30), stream.read_buf(buf)).await {
            Ok(Ok(0)) => return Err(End::ClientClosed),
            Ok(Ok(n)) => {
                core.stats
                    .bytes_received
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
            Ok(Err(e)) => return Err(End::Io(e)),
            Err(_) => return Err(End::Protocol("no ConnectRequest within 30 s".into())),
        }
    };
    let req = ConnectRequest::from_slice(&frame)
        .map_err(|e| End::Protocol(format!("malformed ConnectRequest: {e}")))?;
    core.stats.connect_requests.fetch_add(1, Ordering::Relaxed);
    let last_zxid = core.last_zxid();
    if req.last_zxid_seen > last_zxid {
        // The client has seen newer state than this node holds: it must go elsewhere, or this
        // node would serve it the past.
        return Err(End::Protocol(format!(
            "refusing session request: the client has seen zxid 0x{:x}, this node's last zxid is 0x{:x}; it must try another server",
            req.last_zxid_seen, last_zxid
        )));
    }
    let timeout = req.time_out.clamp(
        core.settings.min_session_timeout_ms,
        core.settings.max_session_timeout_ms,
    );
    let reply = |session_id: i64, time_out: i32, passwd: &[u8]| ConnectResponse {
        protocol_version: 0,
        time_out,
        session_id,
        passwd: bytes::Bytes::copy_from_slice(passwd),
        read_only: req.read_only.map(|_| false),
    };
    let session = if req.session_id == 0 {
        let password: [u8; 16] = rand_password();
        let rx = core.submit(Command::CreateSession {
            timeout_ms: timeout,
            password,
            origin_node: core.settings.node_id,
        });
        match rx.await {
            Ok(Ok(Applied {
                result:
                    CommandResult::SessionCreated {
                        session_id,
                        timeout_ms,
                        password,
                    },
                ..
            })) => {
                send(stream, |b| {
                    reply(session_id, timeout_ms, &password).write(b)
                })
                .await?;
                Session {
                    id: session_id,
                    timeout_ms,
                }
            }
            Ok(Ok(other)) => {
                return Err(End::Protocol(format!(
                    "session creation failed: {:?}",
                    other.result
                )))
            }
            Ok(Err(_)) | Err(_) => return Err(End::NotServing),
        }
    } else {
        match core.session(req.session_id) {
            Some(s) if s.password[..] == req.passwd[..] => {
                core.touch(req.session_id);
                send(stream, |b| {
                    reply(req.session_id, timeout, &s.password).write(b)
                })
                .await?;
                Session {
                    id: req.session_id,
                    timeout_ms: timeout,
                }
            }
            _ => {
                tracing::info!(%peer, session = format_args!("0x{:x}", req.session_id), "session expired or wrong password");
                let invalid = ConnectResponse::session_invalid(req.read_only.map(|_| false));
                send(stream, |b| invalid.write(b)).await?;
                return Ok(None);
            }
        }
    };
    Ok(Some(session))
}

async fn send(stream: &mut TcpStream, body: impl FnOnce(&mut BytesMut)) -> Result<(), End> {
    let mut out = BytesMut::with_capacity(64);
    write_framed(&mut out, body).map_err(|e| End::Protocol(e.to_string()))?;
    stream.write_all(&out).await.map_err(End::Io)
}

fn rand_password() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    // Session passwords only have to be unguessable by other clients on the network; a
    // randomly keyed SipHash of a counter and the time is enough and needs no extra crate.
    let mut out = [0u8; 16];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_usize(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

struct Conn {
    core: Arc<Core>,
    session: Session,
    conn_id: u64,
    peer: SocketAddr,
    auth: Vec<Id>,
    queue: VecDeque<Slot>,
    out: BytesMut,
    events: mpsc::UnboundedReceiver<ConnEvent>,
    /// The client asked to close its session: from then on the connection only waits for that
    /// reply (the session's own close event is expected and ignored).
    closing: bool,
    /// Requests of this connection counted in `Stats::outstanding` and not yet answered; what
    /// is left when the connection ends (requests it never answered) is taken off then.
    outstanding: u64,
}

impl Conn {
    async fn run(&mut self, stream: &mut TcpStream, mut rbuf: BytesMut) -> End {
        let (mut rd, mut wr) = stream.split();
        // Why the connection is to end once the requests queued before that point are answered
        // (a request it cannot process: ZooKeeper answers everything before it, then it, then
        // closes). Nothing more is read meanwhile.
        let mut ending: Option<End> = None;
        // Frames already read along with the ConnectRequest.
        if let Err(end) = self.take_requests(&mut rbuf) {
            ending = Some(end);
        }
        loop {
            if let Err(end) = self.answer_ready() {
                return end;
            }
            if !self.out.is_empty() {
                if let Err(e) = wr.write_all(&self.out).await {
                    return End::Io(e);
                }
                self.out.clear();
            }
            if let Some(Slot::Ready { close: true, .. }) = self.queue.front() {
                return ending.take().unwrap_or(End::SessionClosed);
            }
            if self.queue.is_empty() {
                if let Some(end) = ending.take() {
                    return end;
                }
            }
            let front_write = async {
                match self.queue.front_mut() {
                    Some(Slot::Write { rx, .. }) => Some(rx.await),
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                ev = self.events.recv(), if !self.closing => match ev {
                    Some(ConnEvent::Watch(e)) => self.push_event(&e),
                    Some(ConnEvent::Close) | None => return End::Expired,
                },
                done = front_write => {
                    let mut outcome = match done {
                        Some(Ok(Ok(applied))) => Some(applied),
                        _ => None,
                    };
                    // This answer and every one behind it that is already in (a log entry
                    // answers many at once) leave in one write.
                    loop {
                        let Some(Slot::Write { xid, req, at, .. }) = self.queue.pop_front() else {
                            break;
                        };
                        // The write could not reach a quorum in time: like a ZooKeeper server
                        // that lost its quorum, drop the connection; the client sees a
                        // connection loss and retries elsewhere.
                        let Some(applied) = outcome.take() else {
                            return End::NotServing;
                        };
                        let zxid = applied.zxid;
                        let (err, body) = handlers::write_response(&req, applied.result);
                        self.drain_events();
                        self.push_reply(xid, zxid, err, &body, at, is_update(&req));
                        if matches!(req, Request::CloseSession) {
                            // Reply first, then close: the client reads its answer
                            // before the connection ends, as with ZooKeeper.
                            if let Err(e) = wr.write_all(&self.out).await {
                                return End::Io(e);
                            }
                            self.out.clear();
                            return End::SessionClosed;
                        }
                        outcome = match self.queue.front_mut() {
                            Some(Slot::Write { rx, .. }) => match rx.try_recv() {
                                Ok(Ok(applied)) => Some(applied),
                                Err(oneshot::error::TryRecvError::Empty) => break,
                                Ok(Err(ProposeFailed)) | Err(_) => None,
                            },
                            _ => break,
                        };
                    }
                }
                n = rd.read_buf(&mut rbuf), if ending.is_none() => match n {
                    Ok(0) => return End::ClientClosed,
                    Ok(n) => {
                        self.core
                            .stats
                            .bytes_received
                            .fetch_add(n as u64, Ordering::Relaxed);
                        if let Err(end) = self.take_requests(&mut rbuf) {
                            ending = Some(end);
                        }
                    }
                    Err(e) => return End::Io(e),
                },
            }
        }
    }

    /// Decodes every whole frame in `rbuf` and queues its request.
    fn take_requests(&mut self, rbuf: &mut BytesMut) -> Result<(), End> {
        loop {
            let frame = match take_frame(rbuf, self.core.settings.max_frame) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => return Err(End::Protocol(format!("{e}"))),
            };
            self.core
                .stats
                .packets_received
                .fetch_add(1, Ordering::Relaxed);
            self.core.stats.outstanding.fetch_add(1, Ordering::Relaxed);
            self.outstanding += 1;
            self.core.touch(self.session.id);
            let mut r = Reader::new(&frame);
            let header: RequestHeader = r
                .read()
                .map_err(|e| End::Protocol(format!("malformed request header: {e}")))?;
            let req = match Request::read(&header, &mut r) {
                Ok(req) => req,
                Err(e) => {
                    // ZooKeeper answers what it cannot process and closes the session's
                    // connection.
                    self.queue.push_back(Slot::Ready {
                        xid: header.xid,
                        err: e.reply_code(),
                        body: Response::Empty,
                        close: true,
                        at: Instant::now(),
                        update: false,
                    });
                    return Err(End::Protocol(format!(
                        "cannot process request (xid {}, op {}): {e}",
                        header.xid, header.op
                    )));
                }
            };
            self.enqueue(header.xid, req, Instant::now());
        }
    }

    fn enqueue(&mut self, xid: i32, req: Request, at: Instant) {
        let update = is_update(&req);
        let slot = match handlers::classify(&req, self.core.settings.ttl_enabled) {
            Kind::Write(op) => {
                let rx = self.core.submit(Command::Write {
                    session_id: self.session.id,
                    auth: self.auth.clone(),
                    op,
                });
                Slot::Write { xid, req, rx, at }
            }
            Kind::Sync(path) => {
                let rx = self.core.submit(Command::Sync { path });
                Slot::Write { xid, req, rx, at }
            }
            Kind::Close => {
                self.closing = true;
                let rx = self.core.submit(Command::CloseSession {
                    session_id: self.session.id,
                });
                Slot::Write { xid, req, rx, at }
            }
            Kind::Reconfig => {
                let Request::Reconfig(r) = &req else {
                    unreachable!("classified as reconfig")
                };
                let rx = super::reconfig::start(&self.core, r.clone(), self.auth.clone());
                Slot::Write { xid, req, rx, at }
            }
            Kind::Local => Slot::Local { xid, req, at },
            Kind::Ping => Slot::Ready {
                xid,
                err: ErrorCode::Ok,
                body: Response::Empty,
                close: false,
                at,
                update,
            },
            Kind::Auth => {
                let Request::Auth(a) = &req else {
                    unreachable!("classified as auth")
                };
                match auth_id(&a.scheme, &a.auth) {
                    Some(id) => {
                        // DigestAuthenticationProvider: the superDigest's credentials also
                        // make the connection the super user.
                        if self.core.settings.super_digest.as_deref() == Some(id.id.as_str()) {
                            let su = Id {
                                scheme: crate::tree::acl::SCHEME_SUPER.into(),
                                id: String::new(),
                            };
                            if !self.auth.contains(&su) {
                                self.auth.push(su);
                            }
                        }
                        if !self.auth.contains(&id) {
                            self.auth.push(id);
                        }
                        self.core.set_watch_auth(self.session.id, self.auth.clone());
                        Slot::Ready {
                            xid,
                            err: ErrorCode::Ok,
                            body: Response::Empty,
                            close: false,
                            at,
                            update,
                        }
                    }
                    None => {
                        // ZooKeeper answers AuthFailed and closes; the client raises the
                        // AuthFailed state event itself.
                        self.core.stats.auth_failed.fetch_add(1, Ordering::Relaxed);
                        Slot::Ready {
                            xid,
                            err: ErrorCode::AuthFailed,
                            body: Response::Empty,
                            close: true,
                            at,
                            update,
                        }
                    }
                }
            }
            Kind::Fail(err) => Slot::Ready {
                xid,
                err,
                body: Response::Empty,
                close: false,
                at,
                update,
            },
            Kind::Refuse(err) => Slot::Ready {
                xid,
                err,
                body: Response::Empty,
                close: true,
                at,
                update,
            },
        };
        self.queue.push_back(slot);
    }

    /// Answers, in order, every slot at the front that needs no waiting.
    fn answer_ready(&mut self) -> Result<(), End> {
        loop {
            match self.queue.front() {
                Some(Slot::Ready { close, .. }) => {
                    let close = *close;
                    let Some(Slot::Ready {
                        xid,
                        err,
                        body,
                        at,
                        update,
                        ..
                    }) = self.queue.pop_front()
                    else {
                        unreachable!()
                    };
                    self.drain_events();
                    let zxid = self.core.last_zxid();
                    self.push_reply(xid, zxid, err, &body, at, update);
                    if close {
                        // Leave a marker so the loop ends after flushing the reply.
                        self.queue.push_front(Slot::Ready {
                            xid,
                            err,
                            body: Response::Empty,
                            close: true,
                            at,
                            update,
                        });
                        return Ok(());
                    }
                }
                Some(Slot::Local { .. }) => {
                    let Some(Slot::Local { xid, req, at }) = self.queue.pop_front() else {
                        unreachable!()
                    };
                    let (zxid, err, body, missed) =
                        self.core.local(&req, self.session.id, &self.auth);
                    self.drain_events();
                    for (_, event_type, path) in missed {
                        self.push_event(&WatcherEvent {
                            event_type,
                            state: KeeperState::SyncConnected,
                            path,
                        });
                    }
                    self.push_reply(xid, zxid, err, &body, at, false);
                }
                _ => return Ok(()),
            }
        }
    }

    fn drain_events(&mut self) {
        while let Ok(ev) = self.events.try_recv() {
            match ev {
                ConnEvent::Watch(e) => self.push_event(&e),
                // Our own closeSession is being applied: its reply comes next.
                ConnEvent::Close if self.closing => return,
                ConnEvent::Close => {
                    // Handled by the main loop on its next turn.
                    self.queue.clear();
                    self.queue.push_back(Slot::Ready {
                        xid: 0,
                        err: ErrorCode::SessionExpired,
                        body: Response::Empty,
                        close: true,
                        at: Instant::now(),
                        update: false,
                    });
                    return;
                }
            }
        }
    }

    fn push_event(&mut self, e: &WatcherEvent) {
        let _ = write_framed(&mut self.out, |b| encode_notification(b, e));
        self.core.stats.packets_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Queues the reply to a request read at `at`, counting its latency as ZooKeeper does
    /// (from reading the request to answering it, in ms), as an update's or a read's.
    fn push_reply(
        &mut self,
        xid: i32,
        zxid: i64,
        err: ErrorCode,
        body: &Response,
        at: Instant,
        update: bool,
    ) {
        let header = ReplyHeader::new(xid, zxid, err);
        let before = self.out.len();
        let _ = write_framed(&mut self.out, |b| encode_reply(b, &header, body));
        let stats = &self.core.stats;
        stats.packets_sent.fetch_add(1, Ordering::Relaxed);
        stats.record_latency(at.elapsed(), update);
        stats.record_response_size((self.out.len() - before).saturating_sub(4));
        // A reply the connection made up (the session-expired notice) answers no request.
        if self.outstanding > 0 {
            self.outstanding -= 1;
            stats.outstanding.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A request ZooKeeper turns into a transaction (its latency is an update's): one that
/// changes the tree, the session or the ensemble. Everything else is a read's.
fn is_update(req: &Request) -> bool {
    matches!(
        req,
        Request::Create(_)
            | Request::Create2(_)
            | Request::CreateContainer(_)
            | Request::CreateTtl(_)
            | Request::Delete(_)
            | Request::SetData(_)
            | Request::SetAcl(_)
            | Request::Multi(_)
            | Request::Reconfig(_)
            | Request::CloseSession
    )
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Requests still queued when the connection ended are not outstanding any more.
        self.core
            .stats
            .outstanding
            .fetch_sub(self.outstanding, Ordering::Relaxed);
        tracing::trace!(peer = %self.peer, conn = self.conn_id, "connection state dropped");
    }
}

/// The id an `addauth` adds: `digest user:password` becomes `digest:user:<base64 sha1>`, as
/// ZooKeeper's DigestAuthenticationProvider. Other schemes are refused.
pub(super) fn auth_id(scheme: &str, auth: &[u8]) -> Option<Id> {
    match scheme {
        "digest" => {
            let text = std::str::from_utf8(auth).ok()?;
            text.contains(':').then(|| Id {
                scheme: "digest".into(),
                id: crate::tree::acl::generate_digest(text),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::auth_id;

    #[test]
    fn digest_auth_becomes_the_hashed_id() {
        let id = auth_id("digest", b"user:password").unwrap();
        assert_eq!(id.scheme, "digest");
        assert!(id.id.starts_with("user:"), "{}", id.id);
        assert!(auth_id("digest", b"no-colon").is_none());
        assert!(auth_id("kerberos", b"x").is_none());
    }
}
