//! Ensemble changes: the Raft side of ZooKeeper's `reconfig`.
//!
//! The caller names the whole membership it wants (voters and learners with their addresses);
//! the leader gets there in steps that never leave the ensemble without a quorum:
//!
//! ```text
//!  RaftNode::change_members ──(follower: ChangeMembers RPC to the leader)──┐
//!        │ leader (one change at a time; `based_on` must be the current membership)
//!        ▼
//!  1. learners no longer wanted are removed; changed addresses are set
//!  2. new members join as learners (AddNodes) and receive the log
//!  3. wait until a majority of the new voters has caught up (else: learners removed again,
//!     NoQuorum, nothing changed; ZooKeeper's NewConfigNoQuorum)
//!  4. joint consensus to the new voters (openraft change_membership; a removed voter, the
//!     leader included, leaves at the end of it)
//!  5. learners the new membership wants that are not there yet (a demoted voter) are added
//! ```
//!
//! The membership lives in the Raft log and snapshots, so every member restarts with it
//! whatever its configuration file says (decision 0012).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{ChangeMembers, ServerState};
use tokio::time::Instant;

use super::network::request_to;
use super::node::RaftNode;
use super::proto as pb;
use super::server::ServiceCtx;
use super::types::{NodeId, PeerAddrs};

/// The membership as this node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members {
    /// Log index of the entry that set it (`None`: not part of any ensemble yet).
    pub log_index: Option<u64>,
    pub voters: BTreeMap<NodeId, PeerAddrs>,
    pub learners: BTreeMap<NodeId, PeerAddrs>,
    /// True while a change is half-way (joint consensus).
    pub joint: bool,
}

impl Members {
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters.contains_key(&id) || self.learners.contains_key(&id)
    }
}

/// The membership a change should end in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberChange {
    pub voters: BTreeMap<NodeId, PeerAddrs>,
    pub learners: BTreeMap<NodeId, PeerAddrs>,
    /// [`Members::log_index`] of the membership this change was computed from.
    pub based_on: Option<u64>,
}

/// Why a change was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// Another change is running (ZooKeeper's ReconfigInProgress).
    #[error("another ensemble change is in progress")]
    InProgress,
    /// Not enough of the new voters caught up in time (ZooKeeper's NewConfigNoQuorum).
    #[error("no quorum of the new configuration is connected and up to date: {0}")]
    NoQuorum(String),
    /// The membership changed after the caller read it.
    #[error("the membership changed while the change was prepared")]
    Changed,
    /// The request is not a membership Raft can take (no voters, a node both voter and learner).
    #[error("invalid membership: {0}")]
    Invalid(String),
    /// No leader answered in time.
    #[error("no leader: {0}")]
    NoLeader(String),
    /// The change may or may not have happened (leader lost, storage error).
    #[error("ensemble change failed: {0}")]
    Failed(String),
}

pub(crate) fn members_of(stored: &super::types::StoredMembership) -> Members {
    let m = stored.membership();
    let voter_ids: BTreeSet<NodeId> = m.voter_ids().collect();
    let mut voters = BTreeMap::new();
    let mut learners = BTreeMap::new();
    for (id, addrs) in m.nodes() {
        if voter_ids.contains(id) {
            voters.insert(*id, addrs.clone());
        } else {
            learners.insert(*id, addrs.clone());
        }
    }
    Members {
        log_index: stored.log_id().map(|l| l.index),
        voters,
        learners,
        joint: m.get_joint_config().len() > 1,
    }
}

fn nodes_to_pb(nodes: &BTreeMap<NodeId, PeerAddrs>) -> Vec<pb::Node> {
    nodes
        .iter()
        .map(|(id, a)| pb::Node {
            id: *id,
            peer_addr: a.peer.clone(),
            election_addr: a.election.clone(),
            client_addr: a.client.clone(),
        })
        .collect()
}

fn nodes_from_pb(nodes: &[pb::Node]) -> BTreeMap<NodeId, PeerAddrs> {
    nodes
        .iter()
        .map(|n| {
            let addrs = PeerAddrs::new(&n.peer_addr, &n.election_addr).with_client(&n.client_addr);
            (n.id, addrs)
        })
        .collect()
}

pub(crate) fn change_to_pb(
    change: &MemberChange,
    sync_timeout: Duration,
) -> pb::ChangeMembersRequest {
    pb::ChangeMembersRequest {
        voters: nodes_to_pb(&change.voters),
        learners: nodes_to_pb(&change.learners),
        based_on: change.based_on,
        sync_timeout_ms: u64::try_from(sync_timeout.as_millis()).unwrap_or(u64::MAX),
    }
}

pub(crate) fn change_from_pb(req: &pb::ChangeMembersRequest) -> (MemberChange, Duration) {
    (
        MemberChange {
            voters: nodes_from_pb(&req.voters),
            learners: nodes_from_pb(&req.learners),
            based_on: req.based_on,
        },
        Duration::from_millis(req.sync_timeout_ms),
    )
}

pub(crate) fn result_to_pb(r: &Result<(), ChangeError>) -> pb::ChangeMembersResponse {
    use pb::change_members_response::Code;
    let (code, message) = match r {
        Ok(()) => (Code::Ok, String::new()),
        Err(ChangeError::NoLeader(m)) => (Code::NotLeader, m.clone()),
        Err(ChangeError::InProgress) => (Code::InProgress, String::new()),
        Err(ChangeError::NoQuorum(m)) => (Code::NoQuorum, m.clone()),
        Err(ChangeError::Changed) => (Code::Changed, String::new()),
        Err(e @ (ChangeError::Invalid(_) | ChangeError::Failed(_))) => {
            (Code::Failed, e.to_string())
        }
    };
    pb::ChangeMembersResponse {
        code: code as i32,
        message,
    }
}

fn result_from_pb(r: &pb::ChangeMembersResponse) -> Result<(), ChangeError> {
    use pb::change_members_response::Code;
    match Code::try_from(r.code).unwrap_or(Code::Failed) {
        Code::Ok => Ok(()),
        Code::NotLeader => Err(ChangeError::NoLeader(r.message.clone())),
        Code::InProgress => Err(ChangeError::InProgress),
        Code::NoQuorum => Err(ChangeError::NoQuorum(r.message.clone())),
        Code::Changed => Err(ChangeError::Changed),
        Code::Failed => Err(ChangeError::Failed(r.message.clone())),
    }
}

fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, PeerAddrs>>) -> ChangeError {
    use openraft::error::ChangeMembershipError as C;
    match e {
        RaftError::APIError(ClientWriteError::ChangeMembershipError(C::InProgress(_))) => {
            ChangeError::InProgress
        }
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            ChangeError::Failed("leadership was lost during the change".into())
        }
        other => ChangeError::Failed(other.to_string()),
    }
}

/// Runs one membership step on the leader, at most for `timeout`.
async fn step(
    ctx: &ServiceCtx,
    changes: ChangeMembers<NodeId, PeerAddrs>,
    retain: bool,
    timeout: Duration,
) -> Result<(), ChangeError> {
    tracing::info!(node = ctx.id, ?changes, "ensemble change step");
    match tokio::time::timeout(timeout, ctx.raft.change_membership(changes, retain)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(write_error(e)),
        Err(_) => Err(ChangeError::Failed(format!(
            "a membership entry was not committed within {timeout:?}"
        ))),
    }
}

/// The change, run on the leader (see the module header).
pub(crate) async fn lead_change(
    ctx: &ServiceCtx,
    change: &MemberChange,
    sync_timeout: Duration,
    commit_timeout: Duration,
) -> Result<(), ChangeError> {
    if change.voters.is_empty() {
        return Err(ChangeError::Invalid("no voting member left".into()));
    }
    if let Some(id) = change
        .voters
        .keys()
        .find(|id| change.learners.contains_key(id))
    {
        return Err(ChangeError::Invalid(format!(
            "server {id} is both a participant and an observer"
        )));
    }
    let Ok(_one_at_a_time) = ctx.changing.try_lock() else {
        return Err(ChangeError::InProgress);
    };
    let current = {
        let m = ctx.raft.metrics().borrow().clone();
        if m.state != ServerState::Leader {
            return Err(ChangeError::NoLeader(format!(
                "node {} is no longer the leader",
                ctx.id
            )));
        }
        members_of(&m.membership_config)
    };
    if current.joint {
        return Err(ChangeError::InProgress);
    }
    if change.based_on.is_some() && change.based_on != current.log_index {
        return Err(ChangeError::Changed);
    }
    let wanted: BTreeMap<NodeId, &PeerAddrs> = change
        .voters
        .iter()
        .chain(change.learners.iter())
        .map(|(id, a)| (*id, a))
        .collect();
    let present: BTreeMap<NodeId, &PeerAddrs> = current
        .voters
        .iter()
        .chain(current.learners.iter())
        .map(|(id, a)| (*id, a))
        .collect();

    // 1. Learners that are not wanted any more; addresses that changed.
    let stale: BTreeSet<NodeId> = current
        .learners
        .keys()
        .filter(|id| !wanted.contains_key(id))
        .copied()
        .collect();
    if !stale.is_empty() {
        step(
            ctx,
            ChangeMembers::RemoveNodes(stale),
            false,
            commit_timeout,
        )
        .await?;
    }
    let moved: BTreeMap<NodeId, PeerAddrs> = wanted
        .iter()
        .filter(|(id, a)| present.get(id).is_some_and(|p| p != *a))
        .map(|(id, a)| (*id, (*a).clone()))
        .collect();
    if !moved.is_empty() {
        step(ctx, ChangeMembers::SetNodes(moved), false, commit_timeout).await?;
    }

    // 2. New members start as learners.
    let joining: BTreeMap<NodeId, PeerAddrs> = wanted
        .iter()
        .filter(|(id, _)| !present.contains_key(id))
        .map(|(id, a)| (*id, (*a).clone()))
        .collect();
    if !joining.is_empty() {
        step(
            ctx,
            ChangeMembers::AddNodes(joining.clone()),
            true,
            commit_timeout,
        )
        .await?;
    }

    // 3. A majority of the new voters must hold the log up to here.
    let new_voters: BTreeSet<NodeId> = change.voters.keys().copied().collect();
    let old_voters: BTreeSet<NodeId> = current.voters.keys().copied().collect();
    if new_voters != old_voters {
        if let Err(e) = wait_caught_up(ctx, &new_voters, sync_timeout).await {
            if !joining.is_empty() {
                let ids = joining.keys().copied().collect();
                if let Err(undo) =
                    step(ctx, ChangeMembers::RemoveNodes(ids), false, commit_timeout).await
                {
                    tracing::warn!(node = ctx.id, error = %undo, "could not remove the learners of a change that found no quorum");
                }
            }
            return Err(e);
        }
        // 4. Joint consensus to the new voters; voters not among them leave the ensemble.
        step(
            ctx,
            ChangeMembers::ReplaceAllVoters(new_voters),
            false,
            commit_timeout,
        )
        .await?;
    }

    // 5. A voter that became an observer was removed by step 4: it comes back as a learner.
    let demoted: BTreeMap<NodeId, PeerAddrs> = change
        .learners
        .iter()
        .filter(|(id, _)| current.voters.contains_key(id))
        .map(|(id, a)| (*id, a.clone()))
        .collect();
    if !demoted.is_empty() {
        let m = ctx.raft.metrics().borrow().clone();
        if m.state == ServerState::Leader {
            step(ctx, ChangeMembers::AddNodes(demoted), true, commit_timeout).await?;
        }
    }
    Ok(())
}

/// Waits until more than half of `voters` (the leader counting for itself) have replicated the
/// leader's log up to its current last index.
async fn wait_caught_up(
    ctx: &ServiceCtx,
    voters: &BTreeSet<NodeId>,
    timeout: Duration,
) -> Result<(), ChangeError> {
    let mut metrics = ctx.raft.metrics();
    let target = metrics.borrow().last_log_index.unwrap_or(0);
    let me = ctx.id;
    let synced = |m: &openraft::RaftMetrics<NodeId, PeerAddrs>| -> BTreeSet<NodeId> {
        let repl = m.replication.clone().unwrap_or_default();
        voters
            .iter()
            .filter(|id| {
                **id == me
                    || repl
                        .get(id)
                        .and_then(|l| l.as_ref())
                        .is_some_and(|l| l.index >= target)
            })
            .copied()
            .collect()
    };
    let enough = |m: &openraft::RaftMetrics<NodeId, PeerAddrs>| {
        m.state != ServerState::Leader || synced(m).len() * 2 > voters.len()
    };
    let waited = tokio::time::timeout(timeout, metrics.wait_for(enough))
        .await
        .map(|r| r.is_ok());
    let m = metrics.borrow().clone();
    if m.state != ServerState::Leader {
        return Err(ChangeError::Failed(
            "leadership was lost during the change".into(),
        ));
    }
    match waited {
        Ok(true) => Ok(()),
        _ => {
            let have = synced(&m);
            Err(ChangeError::NoQuorum(format!(
                "{} of the {} new voters hold the log after {timeout:?} ({:?}); start the new servers and try again",
                have.len(),
                voters.len(),
                have
            )))
        }
    }
}

impl RaftNode {
    /// The membership as this node knows it (the latest it has in its log, committed or not).
    pub fn members(&self) -> Members {
        members_of(&self.inner_metrics().borrow().membership_config)
    }

    /// True when this node is part of the membership it knows (a voter or a learner). A node
    /// removed by `reconfig`, or one waiting to be added, is not.
    pub fn is_member(&self) -> bool {
        self.members().contains(self.id())
    }

    /// True while this node, as leader, runs a membership change.
    pub fn change_in_progress(&self) -> bool {
        self.ctx().changing.try_lock().is_err()
    }

    /// Changes the membership to `change` (see the module header), from any node: a follower
    /// hands the change to the leader. `sync_timeout` bounds the wait for new members to catch
    /// up.
    pub async fn change_members(
        &self,
        change: MemberChange,
        sync_timeout: Duration,
    ) -> Result<(), ChangeError> {
        let commit_timeout = self.propose_timeout();
        let deadline = Instant::now() + sync_timeout + commit_timeout * 4;
        loop {
            let Some(leader) = self.wait_for_leader(commit_timeout).await else {
                return Err(ChangeError::NoLeader(format!(
                    "no leader within {commit_timeout:?}"
                )));
            };
            let outcome = if leader == self.id() {
                lead_change(self.ctx(), &change, sync_timeout, commit_timeout).await
            } else {
                self.forward_change(leader, &change, sync_timeout, deadline)
                    .await
            };
            match outcome {
                // The leader changed before it began: ask the new one.
                Err(ChangeError::NoLeader(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    async fn forward_change(
        &self,
        leader: NodeId,
        change: &MemberChange,
        sync_timeout: Duration,
        deadline: Instant,
    ) -> Result<(), ChangeError> {
        let Some(addrs) = self.members().voters.get(&leader).cloned() else {
            return Err(ChangeError::NoLeader(format!(
                "leader {leader} is not in this node's membership"
            )));
        };
        let mut client = self
            .peers()
            .peer_client(leader, &addrs)
            .map_err(|e| ChangeError::NoLeader(e.to_string()))?;
        let req = request_to(leader, change_to_pb(change, sync_timeout));
        match tokio::time::timeout_at(deadline, client.change_members(req)).await {
            Err(_) => Err(ChangeError::Failed(format!(
                "leader {leader} did not finish the change in time"
            ))),
            Ok(Ok(resp)) => result_from_pb(resp.get_ref()),
            Ok(Err(status)) if super::network::is_connect_failure(&status) => {
                Err(ChangeError::NoLeader(status.to_string()))
            }
            Ok(Err(status)) => Err(ChangeError::Failed(format!("leader {leader}: {status}"))),
        }
    }
}
