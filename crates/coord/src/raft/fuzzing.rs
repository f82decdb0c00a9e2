//! Entry points for the fuzz targets (`fuzz/`): the peer messages as the peer services decode
//! them, without sockets. The first byte picks the message type, the rest is its protobuf
//! encoding, decoded and converted to openraft's values the way `server.rs` does; snapshot
//! chunks also go through [`SnapshotChunks`] admission and into a buffer the way openraft
//! writes them, so a chunk that could make a node allocate far past what it received shows up.

use std::io::{Cursor, Seek, SeekFrom, Write};

use prost::Message;

use super::codec;
use super::proto as pb;
use super::server::SnapshotChunks;

/// Decodes `data[1..]` as the peer message `data[0]` selects. A sequence of InstallSnapshot
/// chunks is fed as `[4, len_hi, len_lo, chunk...]*`.
pub fn peer_message(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    match kind % 8 {
        0 => {
            if let Ok(m) = pb::AppendEntriesRequest::decode(body) {
                let _ = codec::append_req_from_pb(m);
            }
        }
        1 => {
            if let Ok(m) = pb::AppendEntriesResponse::decode(body) {
                let _ = codec::append_resp_from_pb(m);
            }
        }
        2 => {
            if let Ok(m) = pb::VoteRequest::decode(body) {
                let _ = codec::vote_req_from_pb(&m);
            }
        }
        3 => {
            if let Ok(m) = pb::VoteResponse::decode(body) {
                let _ = codec::vote_resp_from_pb(&m);
            }
        }
        4 => snapshot_chunks(body),
        5 => {
            if let Ok(m) = pb::InstallSnapshotResponse::decode(body) {
                let _ = codec::snapshot_resp_from_pb(m);
            }
        }
        6 => {
            // What sled holds: a log entry, a vote, a log id.
            let _ = codec::decode_entry(body);
            let _ = codec::decode_vote(body);
            let _ = codec::decode_log_id(body);
        }
        _ => {
            let _ = pb::ProposeRequest::decode(body);
            let _ = pb::ProposeResponse::decode(body);
            let _ = pb::ReadIndexResponse::decode(body);
            let _ = pb::WatchLeaderRequest::decode(body);
            let _ = pb::TermRequest::decode(body);
            let _ = pb::TermResponse::decode(body);
        }
    }
}

/// Chunks of InstallSnapshot, admitted and written as the receiving node does.
fn snapshot_chunks(mut body: &[u8]) {
    let chunks = SnapshotChunks::default();
    let mut snapshot = Cursor::new(Vec::new());
    let mut received = 0u64;
    while let Some((len, rest)) = body.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
        let (msg, rest) = rest.split_at(len);
        body = rest;
        let Ok(m) = pb::InstallSnapshotRequest::decode(msg) else {
            continue;
        };
        received += msg.len() as u64;
        let Ok(req) = codec::snapshot_req_from_pb(m) else {
            continue;
        };
        if chunks
            .admit(&req.meta.snapshot_id, req.offset, req.data.len())
            .is_err()
        {
            continue;
        }
        snapshot
            .seek(SeekFrom::Start(req.offset))
            .expect("seek in memory");
        snapshot.write_all(&req.data).expect("write in memory");
        assert!(
            snapshot.get_ref().len() as u64 <= received,
            "a snapshot of {} bytes from {received} bytes of messages",
            snapshot.get_ref().len()
        );
    }
}
