//! The client side of peer RPC: openraft's `RaftNetworkFactory` / `RaftNetwork` over tonic, and
//! the shared connection cache that forwarded proposals and the leader watch use too.
//!
//! Data flow: openraft's replication and election tasks call [`PeerNetwork`]; each call
//! converts openraft's request to protobuf (`codec`), sends it on the target's *peer* channel
//! (AppendEntries, InstallSnapshot) or *election* channel (Vote), and converts the answer back.
//! Every request names its intended receiver in the `sluice-raft-to` header so that a node
//! reached at a wrong or reused address refuses it rather than acting on it.
//!
//! Failures map to openraft's kinds: `Unavailable` (cannot connect, peer stopping) is
//! `Unreachable`, which makes openraft back off for [`PeerNetwork::backoff`]; anything else is a
//! `NetworkError`, retried at the next heartbeat.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use prost::Message;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::codec;
use super::proto::raft_election_client::RaftElectionClient;
use super::proto::raft_peer_client::RaftPeerClient;
use super::types::{NodeId, PeerAddrs, TypeConfig};

/// gRPC metadata key naming the node a request is meant for.
pub(crate) const TARGET_HEADER: &str = "sluice-raft-to";
/// Largest peer message accepted or sent (a batch of entries, a snapshot chunk).
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// AppendEntries requests above this are split (openraft retries with fewer entries), so that a
/// follower catching up is sent requests it can take within openraft's RPC timeout (the
/// heartbeat interval): with 8 MiB requests a follower that fell behind on a busy machine timed
/// out on every resend, each larger than the last, until an election.
const SPLIT_APPEND_ABOVE: usize = 1024 * 1024;

/// Wraps `msg` in a request addressed to `target`.
pub(crate) fn request_to<T>(target: NodeId, msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert(
        TARGET_HEADER,
        target
            .to_string()
            .parse()
            .expect("a decimal number is valid metadata"),
    );
    req
}

#[derive(Clone)]
struct Channels {
    addrs: PeerAddrs,
    peer: Channel,
    election: Channel,
}

/// Lazily connected channels to every peer, shared by all users so each peer gets one HTTP/2
/// connection per port.
#[derive(Clone)]
pub(crate) struct Peers {
    channels: Arc<Mutex<HashMap<NodeId, Channels>>>,
    connect_timeout: Duration,
}

impl fmt::Debug for Peers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peers").finish_non_exhaustive()
    }
}

fn endpoint(addr: &str, connect_timeout: Duration) -> Result<Channel, Status> {
    let ep = Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| Status::invalid_argument(format!("bad peer address {addr:?}: {e}")))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true);
    Ok(ep.connect_lazy())
}

impl Peers {
    pub(crate) fn new(connect_timeout: Duration) -> Self {
        Peers {
            channels: Arc::new(Mutex::new(HashMap::new())),
            connect_timeout,
        }
    }

    fn channels(&self, id: NodeId, addrs: &PeerAddrs) -> Result<Channels, Status> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(&id) {
            if &c.addrs == addrs {
                return Ok(c.clone());
            }
        }
        let c = Channels {
            addrs: addrs.clone(),
            peer: endpoint(&addrs.peer, self.connect_timeout)?,
            election: endpoint(&addrs.election, self.connect_timeout)?,
        };
        map.insert(id, c.clone());
        Ok(c)
    }

    pub(crate) fn peer_client(
        &self,
        id: NodeId,
        addrs: &PeerAddrs,
    ) -> Result<RaftPeerClient<Channel>, Status> {
        Ok(RaftPeerClient::new(self.channels(id, addrs)?.peer)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    pub(crate) fn election_client(
        &self,
        id: NodeId,
        addrs: &PeerAddrs,
    ) -> Result<RaftElectionClient<Channel>, Status> {
        Ok(RaftElectionClient::new(self.channels(id, addrs)?.election)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

/// True when a call failed before anything reached the peer: no connection could be made.
/// Only then is it certain that a forwarded write was not delivered.
pub(crate) fn is_connect_failure(status: &Status) -> bool {
    // tonic reports connector failures as `Unavailable` carrying the connector's message
    // ("tcp connect error: …"); an established connection that breaks reports otherwise.
    status.code() == Code::Unavailable && {
        let m = status.message().to_ascii_lowercase();
        m.contains("connect error") || m.contains("connection refused")
    }
}

fn rpc_error<E: std::error::Error>(
    target: NodeId,
    status: Status,
) -> RPCError<NodeId, PeerAddrs, E> {
    tracing::trace!(target, %status, "peer RPC failed");
    match status.code() {
        Code::Unavailable | Code::FailedPrecondition => {
            RPCError::Unreachable(Unreachable::new(&status))
        }
        _ => RPCError::Network(NetworkError::new(&status)),
    }
}

fn decode_error<E: std::error::Error>(e: codec::CodecError) -> RPCError<NodeId, PeerAddrs, E> {
    RPCError::Network(NetworkError::new(&e))
}

/// Creates one [`PeerNetwork`] per replication or election target.
#[derive(Debug, Clone)]
pub(crate) struct NetworkFactory {
    pub(crate) peers: Peers,
    /// How long openraft waits before retrying an unreachable peer.
    pub(crate) backoff: Duration,
    /// Terms this node may ask for votes in (floor.rs).
    pub(crate) floor: Arc<super::floor::VoteFloor>,
    /// Where followers' answers are noted for metrics.
    pub(crate) stats: Arc<super::stats::RaftStats>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: NodeId, node: &PeerAddrs) -> PeerNetwork {
        PeerNetwork {
            target,
            node: node.clone(),
            peers: self.peers.clone(),
            backoff: self.backoff,
            floor: self.floor.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// openraft's connection to one peer.
#[derive(Debug)]
pub(crate) struct PeerNetwork {
    target: NodeId,
    node: PeerAddrs,
    peers: Peers,
    backoff: Duration,
    floor: Arc<super::floor::VoteFloor>,
    stats: Arc<super::stats::RaftStats>,
}

impl RaftNetwork<TypeConfig> for PeerNetwork {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, PeerAddrs, RaftError<NodeId>>> {
        let msg = codec::append_req_to_pb(&rpc);
        if msg.encoded_len() > SPLIT_APPEND_ABOVE && rpc.entries.len() > 1 {
            // openraft resends with at most this many entries.
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint((rpc.entries.len() / 2) as u64),
            ));
        }
        let mut client = self
            .peers
            .peer_client(self.target, &self.node)
            .map_err(|s| rpc_error(self.target, s))?;
        let resp = client
            .append_entries(request_to(self.target, msg))
            .await
            .map_err(|s| rpc_error(self.target, s))?;
        let resp = codec::append_resp_from_pb(resp.into_inner()).map_err(decode_error)?;
        let in_sync = matches!(
            resp,
            AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_)
        );
        self.stats.answered(self.target, in_sync);
        Ok(resp)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, PeerAddrs, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let mut client = self
            .peers
            .peer_client(self.target, &self.node)
            .map_err(|s| rpc_error(self.target, s))?;
        let resp = client
            .install_snapshot(request_to(self.target, codec::snapshot_req_to_pb(&rpc)))
            .await
            .map_err(|s| rpc_error(self.target, s))?;
        self.stats.answered(self.target, false);
        match codec::snapshot_resp_from_pb(resp.into_inner()).map_err(decode_error)? {
            Ok(r) => Ok(r),
            // The receiver lost track of the transfer: openraft restarts it from offset 0.
            Err(e) => Err(RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                RaftError::APIError(e),
            ))),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, PeerAddrs, RaftError<NodeId>>> {
        if !self.floor.allows(rpc.vote.leader_id().term) {
            // A campaign in a term this node may have voted in before its data was lost.
            return Err(rpc_error(
                self.target,
                Status::failed_precondition("no campaign at or below the vote floor"),
            ));
        }
        let mut client = self
            .peers
            .election_client(self.target, &self.node)
            .map_err(|s| rpc_error(self.target, s))?;
        let resp = client
            .vote(request_to(self.target, codec::vote_req_to_pb(&rpc)))
            .await
            .map_err(|s| rpc_error(self.target, s))?;
        codec::vote_resp_from_pb(&resp.into_inner()).map_err(decode_error)
    }

    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(self.backoff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::proto as pb;

    #[tokio::test]
    async fn a_refused_connection_is_recognised_as_not_delivered() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let peers = Peers::new(Duration::from_millis(500));
        let mut client = peers
            .peer_client(7, &PeerAddrs::new(addr.clone(), addr))
            .unwrap();
        let status = client
            .propose(request_to(7, pb::ProposeRequest::default()))
            .await
            .unwrap_err();
        assert!(is_connect_failure(&status), "{status:?}");
    }
}
