//! The Kafka wire protocol on the broker's listeners: size-prefixed frames (the size is checked
//! against `socket.request.max.bytes` before anything is allocated), the request header, and
//! dispatch through [`crate::api::SUPPORTED`].
//!
//! As in Kafka, a connection's requests are handled one after another, so responses leave in
//! request order while clients may pipeline requests. Bad input (an unknown API key, an
//! unsupported version, a body that does not decode, an oversized frame) closes that connection
//! with a logged reason; an unsupported ApiVersions version gets Kafka's UNSUPPORTED_VERSION
//! answer in the v0 layout so clients retry with a lower version.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use sluice_kafka::frame::{self, EncodeError, RequestError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::api;
use crate::Broker;

/// Capacity allocated for a request frame before its bytes arrive.
const FIRST_READ: usize = 1 << 20;

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

pub async fn serve(broker: Arc<Broker>, listener: String, mut stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    match run(&broker, &listener, peer, &mut stream).await {
        Ok(()) => tracing::debug!(%peer, "client disconnected"),
        Err(ConnError::Io(e)) => tracing::debug!(%peer, error = %e, "connection ended"),
        Err(e) => tracing::warn!(%peer, "closing connection: {e}"),
    }
}

/// The broker's own decode and validation path for one request frame (the bytes after the
/// size prefix): the prefix, the API and version against [`api::SUPPORTED`], then header and
/// body. Everything a client sends passes here before any handler sees it.
pub fn decode(frame: bytes::Bytes) -> Result<frame::Request, RequestError> {
    frame::decode_request(frame, |key| api::supported(key).map(|s| s.min..=s.max))
}

async fn run(
    broker: &Broker,
    listener: &str,
    peer: SocketAddr,
    stream: &mut TcpStream,
) -> Result<(), ConnError> {
    let max = broker.config.socket_request_max_bytes;
    let mut out = BytesMut::with_capacity(64 * 1024);
    loop {
        let mut len = [0u8; 4];
        match stream.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let size = frame::check_size(i32::from_be_bytes(len), max)?;
        // Read into uninitialised capacity (no zero-fill of what the socket overwrites anyway),
        // never past this frame. Past the first MiB the buffer grows with what arrives (at
        // least doubling), so a client that announces a large frame and sends little costs
        // little.
        let mut body = BytesMut::with_capacity(size.min(FIRST_READ));
        while body.len() < size {
            let want = size - body.len();
            if body.capacity() == body.len() {
                body.reserve(want.min(body.len().max(FIRST_READ)));
            }
            if stream.read_buf(&mut (&mut body).limit(want)).await? == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
        }
        let request = match decode(body.freeze()) {
            Ok(r) => r,
            Err(RequestError::UnsupportedVersion {
                key: ApiKey::ApiVersions,
                correlation_id,
                ..
            }) => {
                // Kafka answers in the v0 layout so the client retries with a version we serve.
                let resp = api::api_versions::response(ResponseError::UnsupportedVersion.code());
                let resp = ResponseKind::ApiVersions(resp);
                frame::encode_response(&mut out, correlation_id, ApiKey::ApiVersions, 0, &resp)?;
                stream.write_all(&out).await?;
                out.clear();
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let frame::Request {
            key,
            version,
            header,
            body,
        } = request;
        if let RequestKind::Fetch(r) = body {
            let answer = api::fetch::handle(broker, listener, version, r).await;
            let spliced = answer.spliced.len();
            let response = ResponseKind::Fetch(answer.response);
            frame::encode_response(&mut out, header.correlation_id, key, version, &response)?;
            if spliced == 0 {
                stream.write_all(&out).await?;
            } else {
                write_spliced(
                    stream,
                    &mut out,
                    version >= 12,
                    answer.seed,
                    &answer.spliced,
                )
                .await?;
            }
            out.clear();
            continue;
        }
        let response = dispatch(broker, listener, peer, &header, version, body).await;
        if let Some(response) = response {
            frame::encode_response(&mut out, header.correlation_id, key, version, &response)?;
            stream.write_all(&out).await?;
            out.clear();
        }
    }
}

/// Writes an encoded Fetch response whose record placeholders ([`api::fetch::marker`]) stand
/// for `slices`: the bytes around each placeholder from memory, the records with sendfile(2)
/// straight from the segment file, the frame size corrected for the difference.
async fn write_spliced(
    stream: &mut TcpStream,
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
        send_file(stream, slice).await?;
        from = *end;
    }
    stream.write_all(&out[from..]).await?;
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
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
            Ok(0) => {
                // The file is shorter than the slice: it was truncated under us. The frame
                // can no longer be completed; drop the connection.
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("segment {} ended while sending", slice.path.display()),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
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
            ResponseKind::DescribeConfigs(api::configs::describe_configs(broker, version, r))
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
        other => {
            // Unreachable while SUPPORTED and this match agree; answer nothing and let the
            // client time out rather than send a malformed reply.
            tracing::error!(request = ?std::mem::discriminant(&other), "no handler for a supported API");
            return None;
        }
    })
}
