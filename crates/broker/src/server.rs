//! The Kafka wire protocol on the broker's listeners: size-prefixed frames (the size is checked
//! against `socket.request.max.bytes` before anything is allocated), the request header, and
//! dispatch through [`crate::api::SUPPORTED`].
//!
//! A connection's requests are handled one after another and answered in request order. One
//! step beyond Kafka (which reads nothing more from a connection until its oldest request is
//! answered): a Produce whose acks=all appends are done waits for replication off the line,
//! and the connection goes on reading and appending the requests behind it (up to
//! [`MAX_AHEAD`]), so a producer with several requests in flight pays one replication round
//! trip per burst, not per request.
//!
//! ```text
//!  socket ─► FrameReader ─► handle (decode, dispatch; Produce: append) ─┬─ Ready ─┐
//!                                                                      └─ Later ─┤ (acks=all)
//!  socket ◄─ write ◄──────────── answers, oldest first ◄────────────────────────┘
//! ```
//!
//! Every connection of a client listener takes its requests through the broker's
//! [`RequestQueue`] (`queued.max.request.bytes`, `queued.max.requests`) on the way in:
//!
//! ```text
//!  size prefix ─► bytes reserved ─► body read ─► place taken ─► decode ─► Produce: append
//!  (a connection waiting at either step reads nothing more)        └───────────┴─► both given back
//! ```
//!
//! Client quotas are applied here, after a request is handled ([`crate::quotas`]): over a
//! quota, the answer carries `throttle_time_ms` and the connection reads nothing more until that
//! time has passed (KIP-219); the answers already queued are still written meanwhile.
//!
//! Bad input (an unknown API key, an unsupported version, a body that does not decode, an
//! oversized frame) closes that connection with a logged reason; an unsupported ApiVersions version gets Kafka's UNSUPPORTED_VERSION
//! answer in the v0 layout so clients retry with a lower version.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use sluice_kafka::frame::{self, EncodeError, RequestError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use std::time::{Duration, Instant};

use crate::api;
use crate::metrics::requests::Timing;
use crate::request_queue::{RequestQueue, Reserved, Ticket};
use crate::tls::{self, wire::Wire};
use crate::Broker;

/// Capacity allocated for a request frame before its bytes arrive.
const FIRST_READ: usize = 1 << 20;

/// Read room of a connection between requests, made once bytes are there to read: an idle
/// connection holds no buffer (10,000 idle connections cost about 2 KiB each).
const IDLE_ROOM: usize = 4096;

/// Write room kept between answers; a larger one made for a large answer is let go.
const OUT_ROOM: usize = 64 * 1024;

/// Why a connection was closed by the broker.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Serves one connection until it ends; `_admitted` keeps it counted against the connection
/// limits meanwhile. On an SSL listener (`tls`) the handshake is done first, here in the
/// connection's own task and within [`tls::HANDSHAKE_TIMEOUT`], so a slow or failing client
/// holds up no one else.
pub async fn serve(
    broker: Arc<Broker>,
    listener: String,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<tls::ServerTls>,
    _admitted: crate::admission::Admitted,
) {
    let _ = stream.set_nodelay(true);
    let (mut wire, principal) = match tls {
        None => (Wire::Plain(stream), tls::principal::Principal::anonymous()),
        Some(t) => match handshake(&broker, &listener, stream, peer, &t).await {
            Some(done) => done,
            None => return,
        },
    };
    match run(&broker, &listener, peer, &principal, &mut wire).await {
        Ok(()) => tracing::debug!(%peer, "client disconnected"),
        Err(ConnError::Io(e)) => tracing::debug!(%peer, error = %e, "connection ended"),
        Err(e) => tracing::warn!(%peer, "closing connection: {e}"),
    }
}

/// Failed TLS handshakes, logged at most once a second (a client retrying in a loop, or a
/// storm of them, must not flood the log).
static HANDSHAKE_FAILURES: crate::warn_every::WarnEvery = crate::warn_every::WarnEvery::new(1000);

fn handshake_failed(peer: SocketAddr, listener: &str, why: &str) {
    if let Some(held_back) = HANDSHAKE_FAILURES.due() {
        tracing::warn!(
            %peer,
            listener,
            failures_not_logged = held_back,
            "TLS handshake failed: {why}"
        );
    }
}

/// The TLS handshake of a new connection on an SSL listener, and the client's principal;
/// `None` (logged) when it fails or takes too long.
async fn handshake(
    broker: &Broker,
    listener: &str,
    stream: TcpStream,
    peer: SocketAddr,
    t: &tls::ServerTls,
) -> Option<(Wire, tls::principal::Principal)> {
    let limit = tls::HANDSHAKE_TIMEOUT.min(std::time::Duration::from_millis(
        broker.config.connections_max_idle_ms as u64,
    ));
    let handshake = async {
        // Reading the ClientHello costs nothing; answering it (key exchange, signature: done
        // when the connection is made from it) is the costly step, taken in turns, with the
        // first poll that writes the answer.
        let start =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream)
                .await?;
        let (first, accept) = {
            let _turn = tls::handshake_turns().acquire().await;
            let mut accept = start.into_stream(t.config.clone());
            let first = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(std::future::Future::poll(
                    std::pin::Pin::new(&mut accept),
                    cx,
                ))
            })
            .await;
            (first, accept)
        };
        match first {
            std::task::Poll::Ready(done) => done,
            std::task::Poll::Pending => accept.await,
        }
    };
    let stream = match tokio::time::timeout(limit, handshake).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let why = if e.kind() == std::io::ErrorKind::InvalidData
                && e.to_string().contains("corrupt message")
            {
                format!("{e} (a plaintext client on an SSL listener?)")
            } else {
                e.to_string()
            };
            handshake_failed(peer, listener, &why);
            return None;
        }
        Err(_) => {
            handshake_failed(
                peer,
                listener,
                &format!("not finished within {} ms", limit.as_millis()),
            );
            return None;
        }
    };
    match tls::principal_of(stream.get_ref().1, &t.mapper) {
        Ok(principal) => {
            tracing::debug!(%peer, listener, %principal, "TLS client connected");
            Some((Wire::Tls(Box::new(stream)), principal))
        }
        Err(why) => {
            handshake_failed(peer, listener, &why);
            None
        }
    }
}

/// The broker's own decode and validation path for one request frame (the bytes after the
/// size prefix): the prefix, the API and version against [`api::SUPPORTED`], then header and
/// body. Everything a client sends passes here before any handler sees it.
pub fn decode(frame: bytes::Bytes) -> Result<frame::Request, RequestError> {
    frame::decode_request(frame, |key| api::supported(key).map(|s| s.min..=s.max))
}

/// Requests read and handled ahead of the oldest unanswered one, at most (Kafka's producers
/// keep up to 5 in flight by default).
const MAX_AHEAD: usize = 16;

/// A handled request's answer, written when every earlier answer has been.
enum Outgoing {
    /// Nothing is sent back (Produce with acks=0).
    Nothing,
    Response {
        correlation_id: i32,
        key: ApiKey,
        version: i16,
        response: ResponseKind,
    },
    Fetch {
        correlation_id: i32,
        version: i16,
        answer: api::fetch::Answer,
    },
}

type Later<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Outgoing> + Send + 'a>>;

/// Frames as they arrive: the size prefix is checked against `socket.request.max.bytes` before
/// room is made for the body, and the room grows with what arrives (at least doubling past the
/// first MiB), so a client that announces a large frame and sends little costs little.
/// [`FrameReader::fill`] is cancel-safe: nothing read is lost when it is abandoned.
struct FrameReader {
    buf: BytesMut,
    max: i32,
}

impl FrameReader {
    /// The size of the next frame once its size prefix has arrived.
    fn announced(&self) -> Result<Option<usize>, ConnError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let size = frame::check_size(
            i32::from_be_bytes(self.buf[..4].try_into().expect("4 bytes")),
            self.max,
        )?;
        Ok(Some(size))
    }

    /// The next whole frame (without its size prefix) if it has arrived. Call only once the
    /// frame's bytes are reserved: room for its body is made here.
    fn next_frame(&mut self) -> Result<Option<bytes::Bytes>, ConnError> {
        let Some(size) = self.announced()? else {
            // Room is made by `fill` once the next request starts to arrive.
            return Ok(None);
        };
        let have = self.buf.len() - 4;
        if have >= size {
            self.buf.advance(4);
            let frame = self.buf.split_to(size).freeze();
            // Between requests the connection keeps no room (the frame keeps its own bytes).
            if self.buf.is_empty() {
                self.buf = BytesMut::new();
            }
            return Ok(Some(frame));
        }
        if self.buf.capacity() == self.buf.len() {
            let want = size - have;
            self.buf.reserve(want.min(have.max(FIRST_READ)));
        }
        Ok(None)
    }

    /// Reads what the socket has into the free room; 0 at end of stream. Without room (between
    /// requests), waits until the socket is readable before making some. Cancel-safe.
    async fn fill(&mut self, rd: &mut Wire) -> std::io::Result<usize> {
        if self.buf.capacity() == self.buf.len() {
            if self.buf.len() < 4 {
                rd.readable().await?;
            }
            self.buf.reserve(IDLE_ROOM);
        }
        rd.read_buf(&mut self.buf).await
    }
}

async fn run(
    broker: &Broker,
    listener: &str,
    peer: SocketAddr,
    // Requests act as this principal once authorization comes (ACLs, issue 13).
    _principal: &tls::principal::Principal,
    wire: &mut Wire,
) -> Result<(), ConnError> {
    let mut reader = FrameReader {
        buf: BytesMut::new(),
        max: broker.config.socket_request_max_bytes,
    };
    let mut out = BytesMut::new();
    // connections.max.idle.ms: one timer, moved on only when it fires.
    let max_idle = std::time::Duration::from_millis(broker.config.connections_max_idle_ms as u64);
    let mut last_active = tokio::time::Instant::now();
    let idle_timer = tokio::time::sleep(max_idle);
    tokio::pin!(idle_timer);
    // Answers not yet written, oldest first; only the oldest is polled (the others are
    // produce appends waiting for their high watermark, which they check when polled).
    let mut queue: std::collections::VecDeque<(Later<'_>, Option<Waiting<'_>>, Throttle, Timing)> =
        std::collections::VecDeque::new();
    // Client quotas: a throttled request's answer is awaited, then nothing more is read until
    // the throttle time has passed (KIP-219: the connection is muted after the answer).
    let mut held = false;
    let mut muted_until: Option<tokio::time::Instant> = None;
    // queued.max.requests / queued.max.request.bytes; a separate inter-broker listener is
    // exempt, as it is from max.connections, so replication never waits behind clients.
    let limits = (broker.config.listeners.len() <= 1
        || listener != broker.config.inter_broker_listener_name)
        .then_some(&broker.requests);
    // The next frame's reserved bytes, then its ticket with the frame itself, and the wait
    // for either (kept across turns of the loop, so the wait keeps its place in line).
    let mut reserved: Option<Reserved> = None;
    let mut admitted: Option<(bytes::Bytes, Option<Ticket>, Instant)> = None;
    let mut waiting: Option<GateWait> = None;
    loop {
        if let Some(until) = muted_until {
            if tokio::time::Instant::now() >= until {
                muted_until = None;
                last_active = tokio::time::Instant::now();
            }
        }
        let reading = queue.len() < MAX_AHEAD && !held && muted_until.is_none();
        if reading && waiting.is_none() && admitted.is_none() {
            admitted = next_request(&mut reader, limits, &mut reserved, &mut waiting)?;
        }
        if reading {
            if let Some((body, ticket, received)) = admitted.take() {
                // Boxed: the handlers' state is large and only needed while one runs, so an
                // idle connection's task stays small.
                let (step, throttle, timing) =
                    Box::pin(handle(broker, listener, peer, body, ticket, received)).await?;
                held = throttle.ms > 0;
                match step {
                    Step::Ready(o) if queue.is_empty() => {
                        let write_start = Instant::now();
                        write_throttled(wire, &mut out, o, throttle, &mut muted_until).await?;
                        broker
                            .metrics
                            .requests
                            .record(&timing, write_start, Instant::now());
                        held = false;
                    }
                    Step::Ready(o) => {
                        queue.push_back((Box::pin(std::future::ready(o)), None, throttle, timing))
                    }
                    Step::Later(f) => {
                        queue.push_back((f, Some(Waiting::new(broker)), throttle, timing))
                    }
                }
                continue;
            }
        }
        tokio::select! {
            biased;
            o = async { queue.front_mut().expect("not empty").0.as_mut().await }, if !queue.is_empty() => {
                let (_, waiting, throttle, mut timing) = queue.pop_front().expect("not empty");
                let write_start = Instant::now();
                if waiting.is_some() {
                    // A response that waited (acks=all) was complete when its wait ended.
                    timing.ready = write_start;
                }
                write_throttled(wire, &mut out, o, throttle, &mut muted_until).await?;
                broker
                    .metrics
                    .requests
                    .record(&timing, write_start, Instant::now());
                if throttle.ms > 0 && queue.iter().all(|q| q.2.ms == 0) {
                    held = false;
                }
                drop(waiting);
                last_active = tokio::time::Instant::now();
            }
            _ = async {
                match muted_until {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            }, if muted_until.is_some() => {}
            gate = async { waiting.as_mut().expect("waiting").await }, if waiting.is_some() => {
                waiting = None;
                // Time spent waiting for the broker is not the connection's idleness.
                last_active = tokio::time::Instant::now();
                match gate {
                    Gate::Bytes(r) => reserved = Some(r),
                    Gate::Request(body, t, received) => admitted = Some((body, Some(t), received)),
                }
            }
            _ = &mut idle_timer, if queue.is_empty() && muted_until.is_none() && waiting.is_none() && admitted.is_none() => {
                if last_active.elapsed() >= max_idle {
                    tracing::debug!(%peer, "closing a connection idle for connections.max.idle.ms");
                    return Ok(());
                }
                idle_timer.as_mut().reset(last_active + max_idle);
            }
            n = reader.fill(wire), if reading && waiting.is_none() && admitted.is_none() => {
                last_active = tokio::time::Instant::now();
                if n? == 0 {
                    return if reader.buf.is_empty() {
                        Ok(())
                    } else {
                        Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into())
                    };
                }
            }
        }
    }
}

/// Where a connection's next request stands against the broker's [`RequestQueue`].
enum Gate {
    /// Its frame's bytes are reserved; the body can be read.
    Bytes(Reserved),
    /// Read whole (at the instant) and given its place: to be handled.
    Request(bytes::Bytes, Ticket, Instant),
}

type GateWait = std::pin::Pin<Box<dyn std::future::Future<Output = Gate> + Send>>;

/// Takes the connection's next request through the limits as far as it goes now: its bytes
/// reserved once its size prefix is in (before room is made for the body), then, read whole,
/// its place. Gives the request once it has both (at once without `limits`); when the pool or
/// the places are short, leaves the wait in `waiting` and gives nothing.
fn next_request(
    reader: &mut FrameReader,
    limits: Option<&Arc<RequestQueue>>,
    reserved: &mut Option<Reserved>,
    waiting: &mut Option<GateWait>,
) -> Result<Option<(bytes::Bytes, Option<Ticket>, Instant)>, ConnError> {
    let Some(q) = limits else {
        return Ok(reader
            .next_frame()?
            .map(|body| (body, None, Instant::now())));
    };
    if reserved.is_none() {
        let Some(size) = reader.announced()? else {
            return Ok(None);
        };
        match q.try_reserve(size) {
            Some(r) => *reserved = Some(r),
            None => {
                let wait = q.reserve(size);
                *waiting = Some(Box::pin(async move { Gate::Bytes(wait.await) }));
                return Ok(None);
            }
        }
    }
    let Some(body) = reader.next_frame()? else {
        return Ok(None);
    };
    let received = Instant::now();
    match q.try_place(reserved.take().expect("reserved above")) {
        Ok(ticket) => Ok(Some((body, Some(ticket), received))),
        Err(bytes) => {
            let wait = q.place(bytes);
            *waiting = Some(Box::pin(async move {
                Gate::Request(body, wait.await, received)
            }));
            Ok(None)
        }
    }
}

/// One answer counted in [`Broker::answers_waiting`] until it is written (or its connection
/// is gone).
struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(broker: &'a Broker) -> Self {
        broker
            .answers_waiting
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Waiting(&broker.answers_waiting)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// A request's answer now, or a future that gives it.
// Short-lived (one per request, moved once): not worth a box for the common, ready case.
#[allow(clippy::large_enum_variant)]
enum Step<'a> {
    Ready(Outgoing),
    Later(Later<'a>),
}

/// A client quota's verdict on a request: for how long its connection reads nothing more
/// (0: within its quotas), and whether the client waits that long itself (KIP-219: the answer
/// goes out at once) or, an older client, has its answer held back instead.
#[derive(Debug, Clone, Copy, Default)]
struct Throttle {
    ms: u64,
    client_waits: bool,
}

/// Writes an answer with its throttle time: set in the response, then the connection muted
/// for that long after it is written (or, for an older client, the answer written that late).
async fn write_throttled(
    wr: &mut Wire,
    out: &mut BytesMut,
    mut o: Outgoing,
    throttle: Throttle,
    muted_until: &mut Option<tokio::time::Instant>,
) -> Result<(), ConnError> {
    if throttle.ms == 0 {
        return write(wr, out, o).await;
    }
    let d = std::time::Duration::from_millis(throttle.ms);
    set_throttle_time(&mut o, throttle.ms.min(i32::MAX as u64) as i32);
    if !throttle.client_waits {
        tokio::time::sleep(d).await;
        return write(wr, out, o).await;
    }
    write(wr, out, o).await?;
    *muted_until = Some(tokio::time::Instant::now() + d);
    Ok(())
}

/// Sets `throttle_time_ms` in answers that have it (the mute applies to the others too).
fn set_throttle_time(o: &mut Outgoing, ms: i32) {
    macro_rules! set {
        ($r:expr, $($v:ident),*) => {
            match $r {
                $(ResponseKind::$v(x) => x.throttle_time_ms = ms,)*
                _ => {}
            }
        };
    }
    match o {
        Outgoing::Nothing => {}
        Outgoing::Fetch { answer, .. } => answer.response.throttle_time_ms = ms,
        Outgoing::Response { response, .. } => set!(
            response,
            Produce,
            ListOffsets,
            Metadata,
            OffsetCommit,
            OffsetFetch,
            FindCoordinator,
            JoinGroup,
            Heartbeat,
            LeaveGroup,
            SyncGroup,
            DescribeGroups,
            ListGroups,
            ApiVersions,
            CreateTopics,
            DeleteTopics,
            DeleteRecords,
            InitProducerId,
            OffsetForLeaderEpoch,
            DescribeConfigs,
            AlterConfigs,
            CreatePartitions,
            DeleteGroups,
            ElectLeaders,
            IncrementalAlterConfigs,
            AlterPartitionReassignments,
            ListPartitionReassignments,
            DescribeCluster,
            DescribeClientQuotas,
            AlterClientQuotas,
            DescribeUserScramCredentials
        ),
    }
}

/// Time spent inside a future's polls: the handler time `request_percentage` measures
/// (waits for appends by others, or a Fetch's long poll, do not count, as Kafka's request
/// handler threads do not spend them either).
struct Timed<F> {
    inner: F,
    spent: std::time::Duration,
}

impl<F: std::future::Future + Unpin> std::future::Future for Timed<F> {
    type Output = (F::Output, std::time::Duration);

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let start = std::time::Instant::now();
        let r = std::pin::Pin::new(&mut self.inner).poll(cx);
        self.spent += start.elapsed();
        r.map(|o| (o, self.spent))
    }
}

/// Decodes and handles one request frame (read whole at `received`), and applies the
/// client's quotas to it. Returns the answer, its throttle, and its stages so far.
async fn handle<'a>(
    broker: &'a Broker,
    listener: &'a str,
    peer: SocketAddr,
    body: bytes::Bytes,
    ticket: Option<Ticket>,
    received: Instant,
) -> Result<(Step<'a>, Throttle, Timing), ConnError> {
    use crate::quotas::entity::QuotaKey;
    let started = Instant::now();
    let size = body.len();
    let handled = Timed {
        inner: Box::pin(serve_request(broker, listener, peer, body, ticket)),
        spent: std::time::Duration::ZERO,
    };
    let (served, spent) = handled.await;
    let handled_at = Instant::now();
    let Served {
        mut step,
        client_id,
        key,
        version,
        exempt,
        follower,
        waited,
        mut throttle_ms,
        fetched,
    } = served?;
    let mut timing = Timing {
        key,
        version,
        follower,
        received,
        started,
        handled: handled_at,
        waited,
        ready: handled_at,
        throttle: Duration::ZERO,
        throttle_before_write: false,
    };
    let Some(client_id) = client_id else {
        // Not decoded (an ApiVersions version we do not serve): no quota to apply.
        return Ok((step, Throttle::default(), timing));
    };
    if key == ApiKey::Produce {
        throttle_ms = throttle_ms.max(broker.quotas.record(
            QuotaKey::ProducerByteRate,
            &client_id,
            size as f64,
        ));
    }
    if !exempt {
        throttle_ms = throttle_ms.max(broker.quotas.record(
            QuotaKey::RequestPercentage,
            &client_id,
            crate::quotas::percent_seconds(spent),
        ));
    }
    if throttle_ms > 0 {
        if let (Some(bytes), Step::Ready(Outgoing::Fetch { answer, .. })) = (fetched, &mut step) {
            // Kafka answers a throttled fetch empty, and its bytes do not count.
            broker
                .quotas
                .unrecord(QuotaKey::ConsumerByteRate, &client_id, bytes);
            answer.response.responses.clear();
            answer.response.node_endpoints.clear();
            answer.spliced.clear();
        }
    }
    // Clients wait out the throttle themselves from these versions on (KIP-219).
    let client_waits = match key {
        ApiKey::Produce => version >= 6,
        ApiKey::Fetch => version >= 8,
        _ => true,
    };
    timing.throttle = Duration::from_millis(throttle_ms);
    timing.throttle_before_write = throttle_ms > 0 && !client_waits;
    Ok((
        step,
        Throttle {
            ms: throttle_ms,
            client_waits,
        },
        timing,
    ))
}

/// A request served, with what its quotas need.
struct Served<'a> {
    step: Step<'a>,
    /// `None` when the request was not decoded.
    client_id: Option<String>,
    key: ApiKey,
    version: i16,
    /// Not counted against `request_percentage`: a follower's fetch, an acks=0 produce,
    /// controlled shutdown (Kafka exempts inter-broker requests and acks=0 produces).
    exempt: bool,
    /// A follower's fetch (its request metrics are `FetchFollower`'s).
    follower: bool,
    /// Time the handler spent waiting for records (a fetch's long poll).
    waited: Duration,
    /// Throttle time decided while serving (a consumer's fetch over `consumer_byte_rate`).
    throttle_ms: u64,
    /// A consumer fetch's recorded bytes.
    fetched: Option<f64>,
}

/// Decodes and handles one request frame. Everything up to the answer's wait (a Produce's
/// appends included) happens here, in request order.
///
/// `ticket` (the request's bytes and place in [`RequestQueue`]) is given back once the frame is
/// decoded, or for a Produce once its appends are done: what follows may wait on other
/// requests (a Fetch's long poll for a Produce, a group join for the other members, an offset
/// commit or acks=all for the followers' fetches), which must not wait behind it. As in Kafka,
/// where a request leaves the queue when a handler takes it and its buffer goes back to the pool
/// when the handler returns, not when a delayed answer (purgatory) is sent.
async fn serve_request<'a>(
    broker: &'a Broker,
    listener: &'a str,
    peer: SocketAddr,
    body: bytes::Bytes,
    ticket: Option<Ticket>,
) -> Result<Served<'a>, ConnError> {
    use crate::quotas::entity::QuotaKey;
    let request = match decode(body) {
        Ok(r) => r,
        Err(RequestError::UnsupportedVersion {
            key: ApiKey::ApiVersions,
            correlation_id,
            ..
        }) => {
            // Kafka answers in the v0 layout so the client retries with a version we serve.
            let resp = api::api_versions::response(ResponseError::UnsupportedVersion.code());
            return Ok(Served {
                step: Step::Ready(Outgoing::Response {
                    correlation_id,
                    key: ApiKey::ApiVersions,
                    version: 0,
                    response: ResponseKind::ApiVersions(resp),
                }),
                client_id: None,
                key: ApiKey::ApiVersions,
                version: 0,
                exempt: true,
                follower: false,
                waited: Duration::ZERO,
                throttle_ms: 0,
                fetched: None,
            });
        }
        Err(e) => return Err(e.into()),
    };
    let frame::Request {
        key,
        version,
        header,
        body,
    } = request;
    let correlation_id = header.correlation_id;
    // A Produce's records are most of its frame; they are in hand until appended.
    let ticket = if key == ApiKey::Produce {
        ticket
    } else {
        drop(ticket);
        None
    };
    let respond = move |r: Option<ResponseKind>| match r {
        Some(response) => Outgoing::Response {
            correlation_id,
            key,
            version,
            response,
        },
        None => Outgoing::Nothing,
    };
    let client_id = header
        .client_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let mut exempt = key == ApiKey::ControlledShutdown;
    let mut follower = false;
    let mut waited = Duration::ZERO;
    let mut throttle_ms = 0;
    let mut fetched = None;
    let step = match body {
        RequestKind::Fetch(mut r) => {
            follower = if version >= 15 {
                r.replica_state.replica_id.0
            } else {
                r.replica_id.0
            } >= 0;
            exempt = follower;
            let quota_max = (!follower)
                .then(|| {
                    broker
                        .quotas
                        .max_value_in_window(QuotaKey::ConsumerByteRate, &client_id)
                })
                .flatten();
            if let Some(max) = quota_max {
                // As Kafka: a consumer never asks for more than its quota allows in one span.
                let max = max.clamp(1.0, i32::MAX as f64) as i32;
                r.max_bytes = if r.max_bytes > 0 {
                    r.max_bytes.min(max)
                } else {
                    max
                };
                r.min_bytes = r.min_bytes.min(r.max_bytes);
            }
            let answer = api::fetch::handle(broker, listener, version, r).await;
            waited = answer.waited;
            if !follower {
                let bytes = answer.record_bytes() as f64;
                throttle_ms = broker
                    .quotas
                    .record(QuotaKey::ConsumerByteRate, &client_id, bytes);
                fetched = Some(bytes);
            }
            Step::Ready(Outgoing::Fetch {
                correlation_id,
                version,
                answer,
            })
        }
        RequestKind::Produce(r) => {
            exempt = r.acks == 0;
            let appended = api::produce::append(broker, version, r).await;
            // The answer keeps nothing of the frame (the topic names are copied).
            drop(ticket);
            if appended.is_done() {
                let r = appended.finish(broker, listener).await;
                Step::Ready(respond(r.map(ResponseKind::Produce)))
            } else {
                Step::Later(Box::pin(async move {
                    let r = appended.finish(broker, listener).await;
                    respond(r.map(ResponseKind::Produce))
                }))
            }
        }
        other => Step::Ready(respond(
            dispatch(broker, listener, peer, &header, version, other).await,
        )),
    };
    Ok(Served {
        step,
        client_id: Some(client_id),
        key,
        version,
        exempt,
        follower,
        waited,
        throttle_ms,
        fetched,
    })
}

/// Writes one answer.
async fn write(wr: &mut Wire, out: &mut BytesMut, o: Outgoing) -> Result<(), ConnError> {
    match o {
        Outgoing::Nothing => return Ok(()),
        Outgoing::Response {
            correlation_id,
            key,
            version,
            response,
        } => {
            frame::encode_response(out, correlation_id, key, version, &response)?;
            wr.write_all(out).await?;
        }
        Outgoing::Fetch {
            correlation_id,
            version,
            answer,
        } => {
            let response = ResponseKind::Fetch(answer.response);
            frame::encode_response(out, correlation_id, ApiKey::Fetch, version, &response)?;
            if answer.spliced.is_empty() {
                wr.write_all(out).await?;
            } else {
                write_spliced(wr, out, version >= 12, answer.seed, &answer.spliced).await?;
            }
        }
    }
    // A TLS stream may keep the last record of the answer until flushed.
    wr.flush().await?;
    out.clear();
    // A large answer's room is not kept while the connection idles.
    if out.capacity() > OUT_ROOM {
        *out = BytesMut::new();
    }
    Ok(())
}

/// Writes an encoded Fetch response whose record placeholders ([`api::fetch::marker`]) stand
/// for `slices`: the bytes around each placeholder from memory, the records with sendfile(2)
/// straight from the segment file, the frame size corrected for the difference.
async fn write_spliced(
    stream: &mut Wire,
    out: &mut BytesMut,
    flexible: bool,
    seed: u64,
    slices: &[sluice_log::FetchSlice],
) -> Result<(), ConnError> {
    // (start of the length prefix, end of the marker, new length prefix) per slice.
    let mut cuts = Vec::with_capacity(slices.len());
    let mut pos = 4;
    let mut size = out.len() as i64 - 4;
    for (k, slice) in slices.iter().enumerate() {
        let m = api::fetch::marker(seed, k);
        let at = find(&out[pos..], &m)
            .map(|i| pos + i)
            .ok_or_else(|| EncodeError {
                key: ApiKey::Fetch,
                version: if flexible { 12 } else { 4 },
                reason: "record placeholder missing".into(),
            })?;
        let (prefix_len, prefix) = if flexible {
            // COMPACT_RECORDS: unsigned varint of length + 1 (16 + 1 fits one byte).
            let mut p = Vec::with_capacity(5);
            let mut v = slice.len + 1;
            while v >= 0x80 {
                p.push((v as u8 & 0x7f) | 0x80);
                v >>= 7;
            }
            p.push(v as u8);
            (1, p)
        } else {
            (4, (slice.len as i32).to_be_bytes().to_vec())
        };
        size += prefix.len() as i64 - prefix_len as i64 + slice.len as i64 - m.len() as i64;
        cuts.push((at - prefix_len, at + m.len(), prefix));
        pos = at + m.len();
    }
    out[..4].copy_from_slice(&(size as i32).to_be_bytes());
    let mut from = 0;
    let mut head = Vec::with_capacity(256);
    for ((start, end, prefix), slice) in cuts.iter().zip(slices) {
        head.clear();
        head.extend_from_slice(&out[from..*start]);
        head.extend_from_slice(prefix);
        stream.write_all(&head).await?;
        stream.send_file(slice).await?;
        from = *end;
    }
    stream.write_all(&out[from..]).await?;
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Routes one decoded request; `None` means no response is sent (Produce with acks=0).
async fn dispatch(
    broker: &Broker,
    listener: &str,
    peer: SocketAddr,
    header: &RequestHeader,
    version: i16,
    request: RequestKind,
) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::Produce(r) => {
            return api::produce::handle(broker, listener, version, r)
                .await
                .map(ResponseKind::Produce)
        }
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(api::list_offsets::handle(broker, version, r).await)
        }
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api::api_versions::response(0)),
        RequestKind::Metadata(r) => {
            ResponseKind::Metadata(api::metadata::handle(broker, listener, version, r).await)
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(api::admin::create_topics(broker, r).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(api::admin::delete_topics(broker, version, r).await)
        }
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(
            api::groups::find_coordinator(broker, listener, version, r).await,
        ),
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(api::groups::join_group(broker, header, peer, version, r).await)
        }
        RequestKind::SyncGroup(r) => {
            ResponseKind::SyncGroup(api::groups::sync_group(broker, version, r).await)
        }
        RequestKind::Heartbeat(r) => {
            ResponseKind::Heartbeat(api::groups::heartbeat(broker, version, r))
        }
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(api::groups::leave_group(broker, version, r))
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(api::groups::offset_commit(broker, version, r).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(api::groups::offset_fetch(broker, version, r))
        }
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(api::groups::list_groups(broker, version, r))
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(api::groups::describe_groups(broker, version, r))
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(api::produce::init_producer_id(broker, r).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(api::admin::create_partitions(broker, r).await)
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(api::admin::delete_records(broker, r).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(api::configs::describe_configs(broker, version, r).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            api::configs::incremental_alter_configs(broker, r).await,
        ),
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(api::configs::alter_configs(broker, r).await)
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(api::metadata::describe_cluster(broker, listener, r))
        }
        RequestKind::OffsetForLeaderEpoch(r) => ResponseKind::OffsetForLeaderEpoch(
            api::list_offsets::offset_for_leader_epoch(broker, r),
        ),
        RequestKind::AlterPartitionReassignments(r) => {
            ResponseKind::AlterPartitionReassignments(api::reassignments::alter(broker, r).await)
        }
        RequestKind::ListPartitionReassignments(r) => {
            ResponseKind::ListPartitionReassignments(api::reassignments::list(broker, r))
        }
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(api::elect_leaders::handle(broker, version, r).await)
        }
        RequestKind::ControlledShutdown(r) => {
            ResponseKind::ControlledShutdown(api::controlled_shutdown::handle(broker, r).await)
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(api::groups::delete_groups(broker, r))
        }
        RequestKind::DescribeClientQuotas(r) => {
            ResponseKind::DescribeClientQuotas(api::client_quotas::describe(broker, r).await)
        }
        RequestKind::AlterClientQuotas(r) => {
            ResponseKind::AlterClientQuotas(api::client_quotas::alter(broker, r).await)
        }
        RequestKind::DescribeUserScramCredentials(r) => {
            ResponseKind::DescribeUserScramCredentials(api::scram_credentials::describe(r))
        }
        other => {
            // Unreachable while SUPPORTED and this match agree; answer nothing and let the
            // client time out rather than send a malformed reply.
            tracing::error!(request = ?std::mem::discriminant(&other), "no handler for a supported API");
            return None;
        }
    })
}
