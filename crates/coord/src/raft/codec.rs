//! Conversions between openraft's values and the protobuf messages of `proto/raft.proto`.
//!
//! The same messages are used on the wire (peer RPC) and on disk (log entries, the vote,
//! snapshot headers), so there is one schema to keep compatible. Decoding checks that required
//! fields are present instead of inventing defaults: a missing vote or log id is a bug or a
//! corrupt record, never "term 0".

use std::collections::{BTreeMap, BTreeSet};

use openraft::error::{InstallSnapshotError, SnapshotMismatch};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{CommittedLeaderId, EntryPayload, SnapshotSegmentId};
use prost::Message;

use super::proto as pb;
use super::types::{
    Entry, LogId, Membership, NodeId, PeerAddrs, SnapshotMeta, StoredMembership, TypeConfig, Vote,
};

/// A message that does not describe a valid Raft value.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    #[error("protobuf decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("required field `{0}` is missing")]
    Missing(&'static str),
}

fn need<T>(v: Option<T>, field: &'static str) -> Result<T, CodecError> {
    v.ok_or(CodecError::Missing(field))
}

// ---- LogId, Vote ----

pub(crate) fn log_id_to_pb(id: &LogId) -> pb::LogId {
    pb::LogId {
        term: id.leader_id.term,
        node_id: id.leader_id.node_id,
        index: id.index,
    }
}

pub(crate) fn log_id_from_pb(p: &pb::LogId) -> LogId {
    LogId::new(CommittedLeaderId::new(p.term, p.node_id), p.index)
}

pub(crate) fn opt_log_id_to_pb(id: Option<&LogId>) -> Option<pb::LogId> {
    id.map(log_id_to_pb)
}

pub(crate) fn opt_log_id_from_pb(p: Option<&pb::LogId>) -> Option<LogId> {
    p.map(log_id_from_pb)
}

pub(crate) fn vote_to_pb(v: &Vote) -> pb::Vote {
    pb::Vote {
        term: v.leader_id.term,
        node_id: v.leader_id.node_id,
        committed: v.committed,
    }
}

pub(crate) fn vote_from_pb(p: Option<&pb::Vote>) -> Result<Vote, CodecError> {
    let p = need(p, "vote")?;
    Ok(if p.committed {
        Vote::new_committed(p.term, p.node_id)
    } else {
        Vote::new(p.term, p.node_id)
    })
}

// ---- membership ----

pub(crate) fn membership_to_pb(m: &Membership) -> pb::Membership {
    pb::Membership {
        configs: m
            .get_joint_config()
            .iter()
            .map(|c| pb::NodeIdSet {
                ids: c.iter().copied().collect(),
            })
            .collect(),
        nodes: m
            .nodes()
            .map(|(id, n)| pb::Node {
                id: *id,
                peer_addr: n.peer.clone(),
                election_addr: n.election.clone(),
                client_addr: n.client.clone(),
            })
            .collect(),
    }
}

pub(crate) fn membership_from_pb(p: &pb::Membership) -> Membership {
    let configs: Vec<BTreeSet<NodeId>> = p
        .configs
        .iter()
        .map(|c| c.ids.iter().copied().collect())
        .collect();
    let nodes: BTreeMap<NodeId, PeerAddrs> = p
        .nodes
        .iter()
        .map(|n| {
            let addrs = PeerAddrs::new(&n.peer_addr, &n.election_addr).with_client(&n.client_addr);
            (n.id, addrs)
        })
        .collect();
    Membership::new(configs, nodes)
}

pub(crate) fn stored_membership_to_pb(m: &StoredMembership) -> pb::StoredMembership {
    pb::StoredMembership {
        log_id: opt_log_id_to_pb(m.log_id().as_ref()),
        membership: Some(membership_to_pb(m.membership())),
    }
}

pub(crate) fn stored_membership_from_pb(
    p: Option<&pb::StoredMembership>,
) -> Result<StoredMembership, CodecError> {
    let p = need(p, "last_membership")?;
    let m = need(p.membership.as_ref(), "membership")?;
    Ok(StoredMembership::new(
        opt_log_id_from_pb(p.log_id.as_ref()),
        membership_from_pb(m),
    ))
}

// ---- entries ----

pub(crate) fn entry_to_pb(e: &Entry) -> pb::Entry {
    let payload = match &e.payload {
        EntryPayload::Blank => pb::entry::Payload::Blank(pb::Blank {}),
        EntryPayload::Normal(data) => pb::entry::Payload::Normal(data.clone()),
        EntryPayload::Membership(m) => pb::entry::Payload::Membership(membership_to_pb(m)),
    };
    pb::Entry {
        log_id: Some(log_id_to_pb(&e.log_id)),
        payload: Some(payload),
    }
}

pub(crate) fn entry_from_pb(p: pb::Entry) -> Result<Entry, CodecError> {
    let log_id = log_id_from_pb(need(p.log_id.as_ref(), "entry.log_id")?);
    let payload = match need(p.payload, "entry.payload")? {
        pb::entry::Payload::Blank(_) => EntryPayload::Blank,
        pb::entry::Payload::Normal(data) => EntryPayload::Normal(data),
        pb::entry::Payload::Membership(m) => EntryPayload::Membership(membership_from_pb(&m)),
    };
    Ok(Entry { log_id, payload })
}

/// The on-disk form of one log entry.
pub(crate) fn encode_entry(e: &Entry) -> Vec<u8> {
    entry_to_pb(e).encode_to_vec()
}

pub(crate) fn decode_entry(bytes: &[u8]) -> Result<Entry, CodecError> {
    entry_from_pb(pb::Entry::decode(bytes)?)
}

pub(crate) fn encode_log_id(id: &LogId) -> Vec<u8> {
    log_id_to_pb(id).encode_to_vec()
}

pub(crate) fn decode_log_id(bytes: &[u8]) -> Result<LogId, CodecError> {
    Ok(log_id_from_pb(&pb::LogId::decode(bytes)?))
}

pub(crate) fn encode_vote(v: &Vote) -> Vec<u8> {
    vote_to_pb(v).encode_to_vec()
}

pub(crate) fn decode_vote(bytes: &[u8]) -> Result<Vote, CodecError> {
    vote_from_pb(Some(&pb::Vote::decode(bytes)?))
}

// ---- snapshot meta ----

pub(crate) fn snapshot_meta_to_pb(m: &SnapshotMeta) -> pb::SnapshotMeta {
    pb::SnapshotMeta {
        last_log_id: opt_log_id_to_pb(m.last_log_id.as_ref()),
        last_membership: Some(stored_membership_to_pb(&m.last_membership)),
        snapshot_id: m.snapshot_id.clone(),
    }
}

pub(crate) fn snapshot_meta_from_pb(p: &pb::SnapshotMeta) -> Result<SnapshotMeta, CodecError> {
    Ok(SnapshotMeta {
        last_log_id: opt_log_id_from_pb(p.last_log_id.as_ref()),
        last_membership: stored_membership_from_pb(p.last_membership.as_ref())?,
        snapshot_id: p.snapshot_id.clone(),
    })
}

// ---- AppendEntries ----

pub(crate) fn append_req_to_pb(r: &AppendEntriesRequest<TypeConfig>) -> pb::AppendEntriesRequest {
    pb::AppendEntriesRequest {
        vote: Some(vote_to_pb(&r.vote)),
        prev_log_id: opt_log_id_to_pb(r.prev_log_id.as_ref()),
        entries: r.entries.iter().map(entry_to_pb).collect(),
        leader_commit: opt_log_id_to_pb(r.leader_commit.as_ref()),
    }
}

pub(crate) fn append_req_from_pb(
    p: pb::AppendEntriesRequest,
) -> Result<AppendEntriesRequest<TypeConfig>, CodecError> {
    Ok(AppendEntriesRequest {
        vote: vote_from_pb(p.vote.as_ref())?,
        prev_log_id: opt_log_id_from_pb(p.prev_log_id.as_ref()),
        leader_commit: opt_log_id_from_pb(p.leader_commit.as_ref()),
        entries: p
            .entries
            .into_iter()
            .map(entry_from_pb)
            .collect::<Result<_, _>>()?,
    })
}

pub(crate) fn append_resp_to_pb(r: &AppendEntriesResponse<NodeId>) -> pb::AppendEntriesResponse {
    use pb::append_entries_response::Result as R;
    let result = match r {
        AppendEntriesResponse::Success => R::Success(pb::Blank {}),
        AppendEntriesResponse::PartialSuccess(m) => R::PartialSuccess(pb::PartialSuccess {
            matching: opt_log_id_to_pb(m.as_ref()),
        }),
        AppendEntriesResponse::Conflict => R::Conflict(pb::Blank {}),
        AppendEntriesResponse::HigherVote(v) => R::HigherVote(vote_to_pb(v)),
    };
    pb::AppendEntriesResponse {
        result: Some(result),
    }
}

pub(crate) fn append_resp_from_pb(
    p: pb::AppendEntriesResponse,
) -> Result<AppendEntriesResponse<NodeId>, CodecError> {
    use pb::append_entries_response::Result as R;
    Ok(match need(p.result, "append_entries.result")? {
        R::Success(_) => AppendEntriesResponse::Success,
        R::PartialSuccess(ps) => {
            AppendEntriesResponse::PartialSuccess(opt_log_id_from_pb(ps.matching.as_ref()))
        }
        R::Conflict(_) => AppendEntriesResponse::Conflict,
        R::HigherVote(v) => AppendEntriesResponse::HigherVote(vote_from_pb(Some(&v))?),
    })
}

// ---- Vote ----

pub(crate) fn vote_req_to_pb(r: &VoteRequest<NodeId>) -> pb::VoteRequest {
    pb::VoteRequest {
        vote: Some(vote_to_pb(&r.vote)),
        last_log_id: opt_log_id_to_pb(r.last_log_id.as_ref()),
    }
}

pub(crate) fn vote_req_from_pb(p: &pb::VoteRequest) -> Result<VoteRequest<NodeId>, CodecError> {
    Ok(VoteRequest {
        vote: vote_from_pb(p.vote.as_ref())?,
        last_log_id: opt_log_id_from_pb(p.last_log_id.as_ref()),
    })
}

pub(crate) fn vote_resp_to_pb(r: &VoteResponse<NodeId>) -> pb::VoteResponse {
    pb::VoteResponse {
        vote: Some(vote_to_pb(&r.vote)),
        vote_granted: r.vote_granted,
        last_log_id: opt_log_id_to_pb(r.last_log_id.as_ref()),
    }
}

pub(crate) fn vote_resp_from_pb(p: &pb::VoteResponse) -> Result<VoteResponse<NodeId>, CodecError> {
    Ok(VoteResponse {
        vote: vote_from_pb(p.vote.as_ref())?,
        vote_granted: p.vote_granted,
        last_log_id: opt_log_id_from_pb(p.last_log_id.as_ref()),
    })
}

// ---- InstallSnapshot ----

pub(crate) fn snapshot_req_to_pb(
    r: &InstallSnapshotRequest<TypeConfig>,
) -> pb::InstallSnapshotRequest {
    pb::InstallSnapshotRequest {
        vote: Some(vote_to_pb(&r.vote)),
        meta: Some(snapshot_meta_to_pb(&r.meta)),
        offset: r.offset,
        data: r.data.clone().into(),
        done: r.done,
    }
}

pub(crate) fn snapshot_req_from_pb(
    p: pb::InstallSnapshotRequest,
) -> Result<InstallSnapshotRequest<TypeConfig>, CodecError> {
    Ok(InstallSnapshotRequest {
        vote: vote_from_pb(p.vote.as_ref())?,
        meta: snapshot_meta_from_pb(need(p.meta.as_ref(), "meta")?)?,
        offset: p.offset,
        data: p.data.to_vec(),
        done: p.done,
    })
}

/// The outcome of one snapshot chunk: the receiver's vote, or a request to restart the transfer.
pub(crate) fn snapshot_resp_to_pb(
    r: &Result<InstallSnapshotResponse<NodeId>, InstallSnapshotError>,
) -> pb::InstallSnapshotResponse {
    use pb::install_snapshot_response::Result as R;
    let result = match r {
        Ok(resp) => R::Vote(vote_to_pb(&resp.vote)),
        Err(InstallSnapshotError::SnapshotMismatch(m)) => R::Mismatch(pb::SnapshotMismatch {
            expect_id: m.expect.id.clone(),
            expect_offset: m.expect.offset,
            got_id: m.got.id.clone(),
            got_offset: m.got.offset,
        }),
    };
    pb::InstallSnapshotResponse {
        result: Some(result),
    }
}

pub(crate) fn snapshot_resp_from_pb(
    p: pb::InstallSnapshotResponse,
) -> Result<Result<InstallSnapshotResponse<NodeId>, InstallSnapshotError>, CodecError> {
    use pb::install_snapshot_response::Result as R;
    Ok(match need(p.result, "install_snapshot.result")? {
        R::Vote(v) => Ok(InstallSnapshotResponse {
            vote: vote_from_pb(Some(&v))?,
        }),
        R::Mismatch(m) => Err(InstallSnapshotError::SnapshotMismatch(SnapshotMismatch {
            expect: SnapshotSegmentId {
                id: m.expect_id,
                offset: m.expect_offset,
            },
            got: SnapshotSegmentId {
                id: m.got_id,
                offset: m.got_offset,
            },
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trips() {
        let id = LogId::new(CommittedLeaderId::new(3, 2), 17);
        let m = Membership::new(
            vec![[1, 2, 3].into_iter().collect()],
            [
                (1, PeerAddrs::new("a:1", "a:2")),
                (2, PeerAddrs::new("b:1", "b:2")),
                (3, PeerAddrs::new("c:1", "c:2")),
                (4, PeerAddrs::new("d:1", "d:2")),
            ]
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        );
        for payload in [
            EntryPayload::Blank,
            EntryPayload::Normal(bytes::Bytes::from_static(b"\x00payload\xff")),
            EntryPayload::Membership(m),
        ] {
            let e = Entry {
                log_id: id,
                payload,
            };
            let back = decode_entry(&encode_entry(&e)).unwrap();
            assert_eq!(back.log_id, e.log_id);
            assert_eq!(format!("{:?}", back.payload), format!("{:?}", e.payload));
        }
    }

    #[test]
    fn vote_round_trips_and_missing_fields_are_errors() {
        for v in [Vote::new(5, 1), Vote::new_committed(7, 3)] {
            assert_eq!(decode_vote(&encode_vote(&v)).unwrap(), v);
        }
        assert!(matches!(
            entry_from_pb(pb::Entry::default()),
            Err(CodecError::Missing(_))
        ));
    }
}
