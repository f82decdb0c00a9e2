//! Fast failover: notice a dead leader by its broken connection instead of by silence alone.
//!
//! Plain Raft detects a dead leader when a follower has heard nothing for its randomized
//! election timeout; openraft adds the leader lease on top (a follower that heard from a leader
//! within `election_max` refuses to vote), so the usual failover takes
//! `election_max + [election_min, election_max)` plus a tick. When the leader's *process* dies
//! (crash, SIGKILL, shutdown) the kernel closes its sockets at once, and that is a much earlier
//! and reliable signal.
//!
//! Each voting follower therefore keeps one `WatchLeader` call open against its leader. When the
//! call breaks, the follower probes the leader's peer port; if the connection is refused the
//! leader's process is gone, and the follower starts an election as soon as the lease it
//! granted runs out (`last contact + election_max + margin`), ranked by id among the surviving
//! voters so that two followers do not split the vote. Before starting it re-checks that no
//! AppendEntries arrived meanwhile and that no other leader appeared, so a live leader (a
//! network blip, a restarted process) is never disturbed; if anything is uncertain it does
//! nothing and Raft's normal timers apply.

use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tonic::Code;

use super::network::{request_to, Peers};
use super::proto as pb;
use super::server::ServiceCtx;
use super::timing::{ms, RaftTiming};
use super::types::NodeId;

/// How long a `WatchLeader` call is held before it is renewed.
const WATCH_HOLD: Duration = Duration::from_secs(30);

/// Runs until the node stops.
pub(crate) async fn run(ctx: Arc<ServiceCtx>, peers: Peers, timing: RaftTiming) {
    let mut metrics = ctx.raft.metrics();
    let mut stopping = ctx.stopping.clone();
    loop {
        if *stopping.borrow() {
            return;
        }
        let target = {
            let m = metrics.borrow_and_update();
            match (m.state, m.current_leader) {
                (ServerState::Follower, Some(l)) if l != ctx.id => m
                    .membership_config
                    .membership()
                    .get_node(&l)
                    .cloned()
                    .map(|a| (l, a)),
                _ => None,
            }
        };
        let Some((leader, addrs)) = target else {
            tokio::select! {
                _ = stopping.wait_for(|s| *s) => return,
                r = metrics.changed() => if r.is_err() { return },
            }
            continue;
        };

        let outcome = match peers.peer_client(leader, &addrs) {
            Ok(mut client) => {
                let req = request_to(
                    leader,
                    pb::WatchLeaderRequest {
                        follower_id: ctx.id,
                        hold_ms: ms(WATCH_HOLD),
                    },
                );
                tokio::select! {
                    r = client.watch_leader(req) => r.map(|_| ()),
                    _ = stopping.wait_for(|s| *s) => return,
                    _ = metrics.wait_for(|m| m.current_leader != Some(leader)) => continue,
                }
            }
            Err(status) => Err(status),
        };
        match outcome {
            // The hold ran out: renew.
            Ok(()) => {}
            // It is not (or no longer) the leader, or a misconfiguration: let metrics catch up.
            Err(s)
                if matches!(
                    s.code(),
                    Code::FailedPrecondition | Code::InvalidArgument | Code::Unimplemented
                ) =>
            {
                tokio::time::sleep(timing.heartbeat).await;
            }
            Err(status) => {
                tracing::debug!(node = ctx.id, leader, %status, "connection to the leader broke");
                if refuses_connections(&addrs.peer, timing.heartbeat).await {
                    elect_when_lease_ends(&ctx, leader, &timing).await;
                    // Give the election (ours or another's) time to produce a leader before
                    // looking again, rather than spinning on the dead one.
                    let _ = tokio::time::timeout(
                        timing.election_max,
                        metrics.wait_for(|m| m.current_leader != Some(leader)),
                    )
                    .await;
                } else {
                    tokio::time::sleep(timing.heartbeat).await;
                }
            }
        }
    }
}

/// True when nothing listens at `addr` any more: the process behind it is gone. A timeout (a
/// partition, a stalled host) is not proof, so it counts as alive.
async fn refuses_connections(addr: &str, within: Duration) -> bool {
    matches!(
        tokio::time::timeout(within, TcpStream::connect(addr)).await,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

async fn elect_when_lease_ends(ctx: &ServiceCtx, leader: NodeId, timing: &RaftTiming) {
    let mut metrics = ctx.raft.metrics();
    let rank = {
        let m = metrics.borrow();
        let mut survivors: Vec<NodeId> = m
            .membership_config
            .membership()
            .voter_ids()
            .filter(|v| *v != leader)
            .collect();
        survivors.sort_unstable();
        match survivors.iter().position(|v| *v == ctx.id) {
            Some(r) => r as u32,
            None => return,
        }
    };
    let contact = ctx.contact.last(leader);
    let since = contact.unwrap_or_else(Instant::now);
    // Our own lease ends at `since + election_max`; other followers heard the same heartbeats
    // within a few milliseconds, so the margin covers their leases too.
    let fire_at = since + timing.election_max + timing.heartbeat / 2 + timing.heartbeat * rank;
    tracing::info!(
        node = ctx.id,
        leader,
        rank,
        in_ms = fire_at
            .saturating_duration_since(Instant::now())
            .as_millis() as u64,
        "leader's port refuses connections; electing when its lease ends"
    );
    let mut stopping = ctx.stopping.clone();
    tokio::select! {
        _ = tokio::time::sleep_until(fire_at) => {}
        _ = stopping.wait_for(|s| *s) => return,
        _ = metrics.wait_for(|m| m.current_leader != Some(leader)) => return,
    }
    if ctx.contact.last(leader) != contact {
        // The leader spoke after all.
        return;
    }
    let still_following = {
        let m = metrics.borrow();
        m.state == ServerState::Follower && m.current_leader == Some(leader)
    };
    if still_following {
        if let Err(e) = ctx.raft.trigger().elect().await {
            tracing::warn!(node = ctx.id, error = %e, "could not start an election");
        }
    }
}
