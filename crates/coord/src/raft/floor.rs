//! The vote floor: a node whose data directory is empty must not vote, or campaign, in a term
//! its earlier self may already have voted in.
//!
//! Raft's safety rests on each member voting at most once per term, which it remembers on
//! disk. A member whose `dataDir` was wiped (a lost disk, an operator's mistake) comes back
//! under the same id with no memory of its votes; voting again in such a term can give one
//! term two leaders, and the ensemble two histories. So a node that starts without a vote or a
//! log, as a voting member of an ensemble, holds a *floor*: it grants no vote and sends no vote
//! request for a term at or below it.
//!
//! ```text
//!  start with empty storage ──► floor = UNKNOWN (no votes at all)
//!        │ Term RPC to every other member, every 500 ms (the leader it follows answers
//!        │ by its AppendEntries: the term of this node's committed vote for it)
//!        ├─ all answered                       ──► floor = highest term among them
//!        └─ a majority (with this node) answered,
//!           every one of them at term 0        ──► floor = 0 (a new ensemble's first start)
//!  incoming Vote for term ≤ floor ──► refused      outgoing Vote for term ≤ floor ──► not sent
//! ```
//!
//! Why the highest term of *every* member bounds what the lost self voted for: a vote for a
//! candidate in term T leaves that candidate at a term ≥ T for good, and a term the lost self
//! led in was also voted for by another member. A member that does not answer may hold such a
//! term, hence the wait for all of them. A wiped member replicates (it is a follower like any
//! other) while it waits; only elections need the others. On a new ensemble every member starts
//! empty and a majority of them at term 0 is enough to begin. Decision record: 0003 (amendment
//! on lost data directories).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::RaftMetrics;
use tokio::sync::watch;

use super::network::{request_to, Peers};
use super::proto as pb;
use super::types::{NodeId, PeerAddrs};

/// The floor of one node; `UNKNOWN` refuses every vote, 0 none.
#[derive(Debug, Default)]
pub(crate) struct VoteFloor(AtomicU64);

impl VoteFloor {
    const UNKNOWN: u64 = u64::MAX;

    /// Whether this node may vote, or ask for votes, in `term`.
    pub(crate) fn allows(&self, term: u64) -> bool {
        let floor = self.0.load(Ordering::Acquire);
        floor != Self::UNKNOWN && term > floor
    }

    fn set(&self, floor: u64) {
        self.0.store(floor, Ordering::Release);
    }

    /// Holds every vote until [`establish`] has heard from the other members.
    pub(crate) fn hold(&self) {
        self.set(Self::UNKNOWN);
    }
}

/// Asks every member of `others` for its term until the floor can be set (see the module
/// header), then sets it. A leader this node has accepted (a committed vote for it, from its
/// AppendEntries) counts as having answered with that term: the leader held it after this node
/// started, so it bounds the terms the lost self voted for it in. Ends early when `stop` turns
/// true.
pub(crate) async fn establish(
    floor: Arc<VoteFloor>,
    me: NodeId,
    others: BTreeMap<NodeId, PeerAddrs>,
    peers: Peers,
    metrics: watch::Receiver<RaftMetrics<NodeId, PeerAddrs>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut terms: BTreeMap<NodeId, u64> = BTreeMap::new();
    let mut round = 0u64;
    loop {
        // Once replication has brought this node the ensemble's membership (which `reconfig`
        // may have changed since the configuration file was written), its voters are the
        // members that must answer; members only the file names are still asked.
        let current: BTreeMap<NodeId, PeerAddrs> = {
            let m = metrics.borrow();
            let membership = m.membership_config.membership();
            membership
                .voter_ids()
                .filter(|id| *id != me)
                .filter_map(|id| membership.get_node(&id).map(|a| (id, a.clone())))
                .collect()
        };
        let required: BTreeMap<NodeId, PeerAddrs> = if current.is_empty() {
            others.clone()
        } else {
            current
        };
        let mut asked = others.clone();
        asked.extend(required.clone());
        let voters = required.len() + 1;
        {
            let m = metrics.borrow();
            if let (Some(leader), true) = (m.current_leader, m.vote.is_committed()) {
                if asked.contains_key(&leader) && m.vote.leader_id().voted_for() == Some(leader) {
                    let term = m.vote.leader_id().term;
                    let known = terms.entry(leader).or_insert(term);
                    *known = (*known).max(term);
                }
            }
        }
        for (&id, addrs) in &asked {
            if terms.contains_key(&id) {
                continue;
            }
            let Ok(mut client) = peers.election_client(id, addrs) else {
                continue;
            };
            let call = client.term(request_to(id, pb::TermRequest {}));
            if let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(2), call).await {
                terms.insert(id, r.into_inner().term);
            }
        }
        let highest = terms.values().copied().max().unwrap_or(0);
        if required.keys().all(|id| terms.contains_key(id)) {
            floor.set(highest);
            tracing::info!(
                node = me,
                floor = highest,
                "every member answered: this node votes in terms above {highest}"
            );
            return;
        }
        let answered = required.keys().filter(|id| terms.contains_key(id)).count();
        if answered + 1 > voters / 2 && highest == 0 {
            floor.set(0);
            tracing::info!(
                node = me,
                "a majority of a new ensemble answered at term 0: elections may begin"
            );
            return;
        }
        if round.is_multiple_of(20) {
            let missing: BTreeSet<NodeId> = required
                .keys()
                .filter(|id| !terms.contains_key(id))
                .copied()
                .collect();
            tracing::warn!(node = me, ?missing, highest_term = highest,
                "this node started with an empty data directory in an ensemble that has run before: it replicates, but takes no part in elections until every member has told it its term (a lost member could have voted in a term one of them still holds)");
        }
        round += 1;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Whether any of `others` answers that it has taken part in an ensemble already (a term
/// above 0): then a node starting with empty storage joins that ensemble (it waits to be
/// replicated to, or added by `reconfig`) instead of initializing a cluster of its own. Each
/// member is asked once, all at the same time, for at most `wait`.
pub(crate) async fn ensemble_running(
    others: &BTreeMap<NodeId, PeerAddrs>,
    peers: &Peers,
    wait: Duration,
) -> bool {
    let mut asks = tokio::task::JoinSet::new();
    for (&id, addrs) in others {
        let Ok(mut client) = peers.election_client(id, addrs) else {
            continue;
        };
        asks.spawn(async move {
            let call = client.term(request_to(id, pb::TermRequest {}));
            matches!(tokio::time::timeout(wait, call).await, Ok(Ok(r)) if r.get_ref().term > 0)
        });
    }
    while let Some(answer) = asks.join_next().await {
        if answer.unwrap_or(false) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_admits_only_higher_terms() {
        let f = VoteFloor::default();
        assert!(f.allows(1), "no floor: every term");
        f.hold();
        assert!(!f.allows(1) && !f.allows(u64::MAX - 1), "held: none");
        f.set(7);
        assert!(!f.allows(7) && f.allows(8));
    }
}
