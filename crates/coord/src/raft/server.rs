//! The server side of peer RPC: the `RaftPeer` service on the peer port and the `RaftElection`
//! service on the election port, each a tonic server on a listener the node bound.
//!
//! Data flow: a request is checked for its `sluice-raft-to` header, decoded (`codec`), handed to
//! the local openraft instance, and the answer encoded back. Forwarded proposals and read-index
//! requests run `client_write` / `get_read_log_id` on this node and answer `NotLeader` when it
//! is not the leader, which tells the sender nothing was appended so it can safely retry.
//! AppendEntries from a leader also stamp [`LeaderContact`], which the fast-failover watcher
//! uses to know when the leader's lease ends.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::ServerState;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use super::codec;
use super::network::{MAX_MESSAGE_BYTES, TARGET_HEADER};
use super::node::{ForwardedProposal, ProposeError};
use super::proto as pb;
use super::proto::raft_election_server::{RaftElection, RaftElectionServer};
use super::proto::raft_peer_server::{RaftPeer, RaftPeerServer};
use super::types::{NodeId, Raft};

/// Longest a `WatchLeader` call is held before the leader answers and the follower re-asks.
const MAX_WATCH_HOLD: Duration = Duration::from_secs(60);

/// When this node last heard from a leader (an AppendEntries with a committed vote).
#[derive(Debug, Default)]
pub(crate) struct LeaderContact(Mutex<Option<(NodeId, Instant)>>);

impl LeaderContact {
    pub(crate) fn record(&self, leader: NodeId) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((leader, Instant::now()));
    }

    /// The last contact with `leader`, if the last leader heard from was `leader`.
    pub(crate) fn last(&self, leader: NodeId) -> Option<Instant> {
        match *self.0.lock().unwrap_or_else(|p| p.into_inner()) {
            Some((l, at)) if l == leader => Some(at),
            _ => None,
        }
    }
}

/// Admission of InstallSnapshot chunks. openraft writes a chunk at the offset the sender gives
/// into the snapshot being received (a `Vec` behind a cursor), so an offset past what has
/// arrived would make this node allocate up to that offset: 2^40 from a single small message.
/// A chunk is admitted only if it starts within the bytes already received for its snapshot (0
/// for a new one); the sender sends chunks in order and may resend, which this allows.
#[derive(Debug, Default)]
pub(crate) struct SnapshotChunks(Mutex<Option<(String, u64)>>);

impl SnapshotChunks {
    /// Checks one chunk of snapshot `id` and, if admitted, records how far it reaches; a chunk
    /// that would leave a gap is refused with the number of bytes received.
    pub(crate) fn admit(&self, id: &str, offset: u64, len: usize) -> Result<(), u64> {
        let mut recv = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let received = match &*recv {
            Some((current, end)) if current == id => *end,
            _ => 0,
        };
        if offset > received {
            return Err(received);
        }
        let end = offset.saturating_add(len as u64).max(received);
        *recv = Some((id.to_string(), end));
        Ok(())
    }
}

/// What the services need from the node.
pub(crate) struct ServiceCtx {
    pub(crate) id: NodeId,
    pub(crate) raft: Raft,
    /// Becomes `true` when the node shuts down.
    pub(crate) stopping: watch::Receiver<bool>,
    pub(crate) contact: LeaderContact,
    pub(crate) snapshot_chunks: SnapshotChunks,
    /// Terms this node may vote in (a node started with an empty data directory).
    pub(crate) floor: Arc<super::floor::VoteFloor>,
    /// Refuses new writes when the data directories run out of space.
    pub(crate) space: Arc<super::space::SpaceGuard>,
    /// Where forwarded proposals go once the application asked for them
    /// ([`RaftNode::forwarded_proposals`](super::RaftNode::forwarded_proposals)); until then
    /// each one is written as an entry of its own.
    pub(crate) inbox: std::sync::OnceLock<mpsc::UnboundedSender<ForwardedProposal>>,
    /// Held by the leader while it runs an ensemble change (membership.rs): one at a time.
    pub(crate) changing: tokio::sync::Mutex<()>,
    /// How long a membership entry may take to commit (`syncLimit × tickTime`).
    pub(crate) commit_timeout: Duration,
}

impl std::fmt::Debug for ServiceCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceCtx")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl ServiceCtx {
    fn check_target<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let to = req
            .metadata()
            .get(TARGET_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<NodeId>().ok());
        match to {
            Some(to) if to == self.id => Ok(()),
            // FailedPrecondition: the sender treats the peer as unreachable and backs off.
            Some(to) => Err(Status::failed_precondition(format!(
                "this is node {}, not node {to}; check the server.N lines",
                self.id
            ))),
            None => Err(Status::invalid_argument(format!(
                "missing {TARGET_HEADER} header"
            ))),
        }
    }

    fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }
}

fn bad_request(e: codec::CodecError) -> Status {
    Status::invalid_argument(e.to_string())
}

fn stopped<E: std::fmt::Display>(e: E) -> Status {
    Status::unavailable(format!("raft node stopped: {e}"))
}

fn not_leader(leader_id: Option<NodeId>) -> pb::NotLeader {
    pb::NotLeader { leader_id }
}

/// The peer-port service.
#[derive(Debug, Clone)]
pub(crate) struct PeerService(pub(crate) Arc<ServiceCtx>);

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn append_entries(
        &self,
        req: Request<pb::AppendEntriesRequest>,
    ) -> Result<Response<pb::AppendEntriesResponse>, Status> {
        self.0.check_target(&req)?;
        let rpc = codec::append_req_from_pb(req.into_inner()).map_err(bad_request)?;
        if rpc.vote.committed {
            self.0.contact.record(rpc.vote.leader_id.node_id);
        }
        let resp = self.0.raft.append_entries(rpc).await.map_err(stopped)?;
        Ok(Response::new(codec::append_resp_to_pb(&resp)))
    }

    async fn install_snapshot(
        &self,
        req: Request<pb::InstallSnapshotRequest>,
    ) -> Result<Response<pb::InstallSnapshotResponse>, Status> {
        self.0.check_target(&req)?;
        let rpc = codec::snapshot_req_from_pb(req.into_inner()).map_err(bad_request)?;
        if let Err(received) =
            self.0
                .snapshot_chunks
                .admit(&rpc.meta.snapshot_id, rpc.offset, rpc.data.len())
        {
            // A gap: answer as openraft answers a chunk it cannot place, so the sender starts
            // the transfer over from offset 0.
            tracing::warn!(
                snapshot = %rpc.meta.snapshot_id,
                offset = rpc.offset,
                received,
                "snapshot chunk refused: it starts past the bytes received"
            );
            let mismatch = openraft::error::SnapshotMismatch {
                expect: openraft::SnapshotSegmentId {
                    id: rpc.meta.snapshot_id.clone(),
                    offset: 0,
                },
                got: openraft::SnapshotSegmentId {
                    id: rpc.meta.snapshot_id.clone(),
                    offset: rpc.offset,
                },
            };
            return Ok(Response::new(codec::snapshot_resp_to_pb(&Err(
                openraft::error::InstallSnapshotError::SnapshotMismatch(mismatch),
            ))));
        }
        let res = match self.0.raft.install_snapshot(rpc).await {
            Ok(r) => Ok(r),
            Err(RaftError::APIError(e)) => Err(e),
            Err(RaftError::Fatal(f)) => return Err(stopped(f)),
        };
        Ok(Response::new(codec::snapshot_resp_to_pb(&res)))
    }

    async fn propose(
        &self,
        req: Request<pb::ProposeRequest>,
    ) -> Result<Response<pb::ProposeResponse>, Status> {
        use pb::propose_response::Result as R;
        self.0.check_target(&req)?;
        if self.0.is_stopping() {
            return Ok(Response::new(pb::ProposeResponse {
                result: Some(R::NotLeader(not_leader(None))),
            }));
        }
        let payload: Bytes = req.into_inner().payload;
        if let Err(why) = self.0.space.check() {
            return Err(Status::resource_exhausted(why));
        }
        if let Some(inbox) = self.0.inbox.get() {
            // The application merges it into its own next entry (one entry per round instead
            // of one per proposing node) and answers with this payload's share of the response.
            let (reply, answer) = oneshot::channel();
            if inbox.send(ForwardedProposal { payload, reply }).is_err() {
                return Ok(Response::new(pb::ProposeResponse {
                    result: Some(R::NotLeader(not_leader(None))),
                }));
            }
            let result = match answer.await {
                Ok(Ok(c)) => R::Committed(pb::Committed {
                    term: c.term,
                    index: c.index,
                    response: c.response,
                }),
                // Appended nowhere: the proposer may try again, here or at a new leader.
                Ok(Err(ProposeError::NoQuorum(_) | ProposeError::Shutdown)) | Err(_) => {
                    R::NotLeader(not_leader(None))
                }
                Ok(Err(ProposeError::Refused(why))) => return Err(Status::resource_exhausted(why)),
                Ok(Err(e @ (ProposeError::Indeterminate(_) | ProposeError::Fatal(_)))) => {
                    return Err(Status::aborted(e.to_string()))
                }
            };
            return Ok(Response::new(pb::ProposeResponse {
                result: Some(result),
            }));
        }
        let result = match self.0.raft.client_write(payload).await {
            Ok(resp) => R::Committed(pb::Committed {
                term: resp.log_id.leader_id.term,
                index: resp.log_id.index,
                response: resp.data,
            }),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                R::NotLeader(not_leader(f.leader_id))
            }
            Err(RaftError::APIError(e)) => return Err(Status::internal(e.to_string())),
            Err(RaftError::Fatal(f)) => return Err(stopped(f)),
        };
        Ok(Response::new(pb::ProposeResponse {
            result: Some(result),
        }))
    }

    async fn read_index(
        &self,
        req: Request<pb::ReadIndexRequest>,
    ) -> Result<Response<pb::ReadIndexResponse>, Status> {
        use pb::read_index_response::Result as R;
        self.0.check_target(&req)?;
        if self.0.is_stopping() {
            return Ok(Response::new(pb::ReadIndexResponse {
                result: Some(R::NotLeader(not_leader(None))),
            }));
        }
        let result = match self.0.raft.get_read_log_id().await {
            Ok((read, _applied)) => R::ReadIndex(pb::ReadIndex {
                index: read.map(|l| l.index),
            }),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                R::NotLeader(not_leader(f.leader_id))
            }
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q))) => {
                return Err(Status::unavailable(q.to_string()))
            }
            Err(RaftError::Fatal(f)) => return Err(stopped(f)),
        };
        Ok(Response::new(pb::ReadIndexResponse {
            result: Some(result),
        }))
    }

    async fn change_members(
        &self,
        req: Request<pb::ChangeMembersRequest>,
    ) -> Result<Response<pb::ChangeMembersResponse>, Status> {
        self.change_members_here(req).await
    }

    async fn watch_leader(
        &self,
        req: Request<pb::WatchLeaderRequest>,
    ) -> Result<Response<pb::WatchLeaderResponse>, Status> {
        self.0.check_target(&req)?;
        let hold = Duration::from_millis(req.into_inner().hold_ms).min(MAX_WATCH_HOLD);
        let mut metrics = self.0.raft.metrics();
        let mut stopping = self.0.stopping.clone();
        let is_leader = |m: &openraft::RaftMetrics<NodeId, _>| m.state == ServerState::Leader;
        if *stopping.borrow() || !is_leader(&metrics.borrow()) {
            return Err(Status::failed_precondition("not the leader"));
        }
        tokio::select! {
            _ = tokio::time::sleep(hold) => Ok(Response::new(pb::WatchLeaderResponse {})),
            _ = stopping.wait_for(|s| *s) => Err(Status::unavailable("leader shutting down")),
            _ = metrics.wait_for(|m| !is_leader(m)) => {
                Err(Status::failed_precondition("no longer the leader"))
            }
        }
    }
}

impl PeerService {
    async fn change_members_here(
        &self,
        req: Request<pb::ChangeMembersRequest>,
    ) -> Result<Response<pb::ChangeMembersResponse>, Status> {
        self.0.check_target(&req)?;
        let (change, sync_timeout) = super::membership::change_from_pb(req.get_ref());
        let result = if self.0.is_stopping() {
            Err(super::membership::ChangeError::NoLeader(
                "the leader is shutting down".into(),
            ))
        } else {
            let sync_timeout = sync_timeout.min(Duration::from_secs(600));
            super::membership::lead_change(&self.0, &change, sync_timeout, self.0.commit_timeout)
                .await
        };
        Ok(Response::new(super::membership::result_to_pb(&result)))
    }
}

/// The election-port service.
#[derive(Debug, Clone)]
pub(crate) struct ElectionService(pub(crate) Arc<ServiceCtx>);

#[tonic::async_trait]
impl RaftElection for ElectionService {
    async fn vote(
        &self,
        req: Request<pb::VoteRequest>,
    ) -> Result<Response<pb::VoteResponse>, Status> {
        self.0.check_target(&req)?;
        let rpc = codec::vote_req_from_pb(&req.into_inner()).map_err(bad_request)?;
        if !self.0.floor.allows(rpc.vote.leader_id().term) {
            // Not granted, and this node's vote stays as it is (floor.rs).
            let vote = self.0.raft.metrics().borrow().vote;
            let resp = openraft::raft::VoteResponse::new(vote, None, false);
            return Ok(Response::new(codec::vote_resp_to_pb(&resp)));
        }
        let resp = self.0.raft.vote(rpc).await.map_err(stopped)?;
        Ok(Response::new(codec::vote_resp_to_pb(&resp)))
    }

    async fn term(
        &self,
        req: Request<pb::TermRequest>,
    ) -> Result<Response<pb::TermResponse>, Status> {
        self.0.check_target(&req)?;
        let term = self.0.raft.metrics().borrow().current_term;
        Ok(Response::new(pb::TermResponse { term }))
    }
}

/// Binds `addr` ("host:port"; port 0 picks a free port).
pub(crate) async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

async fn until_stopping(mut stopping: watch::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await;
}

/// Serves both services until the node stops. Returns the tasks and the bound addresses.
pub(crate) fn spawn(
    ctx: Arc<ServiceCtx>,
    peer: TcpListener,
    election: TcpListener,
) -> std::io::Result<(Vec<JoinHandle<()>>, SocketAddr, SocketAddr)> {
    let peer_addr = peer.local_addr()?;
    let election_addr = election.local_addr()?;
    let peer_svc = RaftPeerServer::new(PeerService(ctx.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let election_svc = RaftElectionServer::new(ElectionService(ctx.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let id = ctx.id;
    let stop1 = ctx.stopping.clone();
    let stop2 = ctx.stopping.clone();
    let t1 = tokio::spawn(async move {
        if let Err(e) = tonic::transport::Server::builder()
            .serve_with_incoming_shutdown(peer_svc, incoming(peer), until_stopping(stop1))
            .await
        {
            tracing::error!(node = id, error = %e, "peer port server failed");
        }
    });
    let t2 = tokio::spawn(async move {
        if let Err(e) = tonic::transport::Server::builder()
            .serve_with_incoming_shutdown(election_svc, incoming(election), until_stopping(stop2))
            .await
        {
            tracing::error!(node = id, error = %e, "election port server failed");
        }
    });
    Ok((vec![t1, t2], peer_addr, election_addr))
}

#[cfg(test)]
mod chunk_tests {
    use super::SnapshotChunks;

    /// A chunk far past what arrived would have made openraft grow the receiving buffer to its
    /// offset (2^40 bytes from one small message); it is refused, and the transfer can start
    /// over from 0.
    #[test]
    fn a_chunk_past_the_received_bytes_is_refused() {
        let c = SnapshotChunks::default();
        assert_eq!(c.admit("s1", 1 << 40, 10), Err(0));
        assert_eq!(c.admit("s1", 0, 100), Ok(()));
        assert_eq!(c.admit("s1", 100, 100), Ok(()));
        assert_eq!(c.admit("s1", 50, 100), Ok(()), "a resent chunk is fine");
        assert_eq!(c.admit("s1", 201, 1), Err(200));
        // Another snapshot starts from nothing.
        assert_eq!(c.admit("s2", 100, 1), Err(0));
        assert_eq!(c.admit("s2", 0, 1), Ok(()));
    }
}
