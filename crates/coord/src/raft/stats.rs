//! Figures the Raft layer measures for metrics: how long the log's fsyncs and snapshots take, what
//! is committed, which followers answer the leader, and how elections went.
//!
//! ```text
//!  group_commit thread ── each engine.sync() ──────────► fsync (ms)
//!  snapshot builder ───── serialise + write + rename ──► snapshot_build (ms), snapshots, bytes
//!  StateMachine::open ─── read + restore at start ─────► snapshot_load (ms)
//!  log store ──────────── save_committed ──────────────► committed index
//!  PeerNetwork ────────── AppendEntries answers ───────► contacts[follower] (any / in sync)
//!  RaftNode::propose ──── leader's client_write ───────► proposal sizes
//!  watch_elections task ─ openraft's metrics channel ──► terms, leader changes, election time,
//!                                                        since when this node leads
//! ```
//!
//! Everything here is written where the work happens and only read when metrics are scraped;
//! nothing here decides anything.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openraft::{RaftMetrics, ServerState};
use sluice_metrics::summary::Summary;
use tokio::sync::watch;

use super::types::{NodeId, PeerAddrs};

/// When the leader last heard from one follower.
#[derive(Debug, Clone, Copy)]
struct Contact {
    /// Any answer to AppendEntries or InstallSnapshot.
    answered: Instant,
    /// An AppendEntries that matched the follower's log (it is in sync and taking entries).
    in_sync: Option<Instant>,
}

/// Sizes in bytes of the entries this node proposed as leader; -1 before the first.
#[derive(Debug)]
struct Sizes {
    last: AtomicI64,
    min: AtomicI64,
    max: AtomicI64,
}

/// The Raft layer's measurements, shared by the node's tasks and threads.
#[derive(Debug)]
pub struct RaftStats {
    pub(crate) fsync: Summary,
    pub(crate) snapshot_build: Summary,
    pub(crate) snapshot_load: Summary,
    pub(crate) election_time: Summary,
    snapshots: AtomicU64,
    snapshot_bytes: AtomicU64,
    /// Committed index + 1; 0 while nothing is known to be committed.
    committed: AtomicU64,
    terms_seen: AtomicU64,
    leader_changes: AtomicU64,
    looking: AtomicU64,
    leading_since: Mutex<Option<Instant>>,
    contacts: Mutex<HashMap<NodeId, Contact>>,
    proposals: Sizes,
}

impl Default for RaftStats {
    fn default() -> Self {
        RaftStats {
            fsync: Summary::new(),
            snapshot_build: Summary::new(),
            snapshot_load: Summary::new(),
            election_time: Summary::new(),
            snapshots: AtomicU64::new(0),
            snapshot_bytes: AtomicU64::new(0),
            committed: AtomicU64::new(0),
            terms_seen: AtomicU64::new(0),
            leader_changes: AtomicU64::new(0),
            looking: AtomicU64::new(0),
            leading_since: Mutex::new(None),
            contacts: Mutex::new(HashMap::new()),
            proposals: Sizes {
                last: AtomicI64::new(-1),
                min: AtomicI64::new(-1),
                max: AtomicI64::new(-1),
            },
        }
    }
}

/// What the leader knows of its followers, counted as ZooKeeper's leader counts its learners.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FollowerCounts {
    /// Members (voters and observers) that answered within the window: ZooKeeper's `learners`.
    pub answering: u64,
    /// Voters whose log matched the leader's within the window: `synced_followers`.
    pub synced_voters: u64,
    /// Observers (Raft learners) likewise: `synced_observers`.
    pub synced_observers: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RaftStats {
    pub(crate) fn snapshot_built(&self, took: Duration, bytes: usize) {
        self.snapshot_build.observe_millis(took);
        self.snapshots.fetch_add(1, Ordering::Relaxed);
        self.snapshot_bytes.store(bytes as u64, Ordering::Relaxed);
    }

    /// A snapshot installed from the leader (or restored at start) is now the current one.
    pub(crate) fn snapshot_current(&self, bytes: usize) {
        self.snapshot_bytes.store(bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn committed_to(&self, index: u64) {
        self.committed
            .fetch_max(index.saturating_add(1), Ordering::Relaxed);
    }

    pub(crate) fn answered(&self, follower: NodeId, in_sync: bool) {
        let now = Instant::now();
        let mut contacts = lock(&self.contacts);
        let c = contacts.entry(follower).or_insert(Contact {
            answered: now,
            in_sync: None,
        });
        c.answered = now;
        if in_sync {
            c.in_sync = Some(now);
        }
    }

    pub(crate) fn proposed(&self, bytes: usize) {
        let b = i64::try_from(bytes).unwrap_or(i64::MAX);
        let p = &self.proposals;
        p.last.store(b, Ordering::Relaxed);
        p.max.fetch_max(b, Ordering::Relaxed);
        // -1 (none yet) is below every size: the first one replaces it.
        let _ = p
            .min
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                (m < 0 || b < m).then_some(b)
            });
    }

    /// Snapshots this node built since it started.
    pub fn snapshots_built(&self) -> u64 {
        self.snapshots.load(Ordering::Relaxed)
    }

    /// Size of the current snapshot's data, 0 when there is none.
    pub fn snapshot_bytes(&self) -> u64 {
        self.snapshot_bytes.load(Ordering::Relaxed)
    }

    /// The highest index this node knows to be committed.
    pub fn committed_index(&self) -> Option<u64> {
        self.committed.load(Ordering::Relaxed).checked_sub(1)
    }

    /// New terms this node saw begin since it started (each begins with an election).
    pub fn terms_seen(&self) -> u64 {
        self.terms_seen.load(Ordering::Relaxed)
    }

    /// Times the leader this node follows changed (a first leader included).
    pub fn leader_changes(&self) -> u64 {
        self.leader_changes.load(Ordering::Relaxed)
    }

    /// Times this node was without a leader (its start included): ZooKeeper's `looking_count`.
    pub fn looking_count(&self) -> u64 {
        self.looking.load(Ordering::Relaxed)
    }

    /// How long this node has led, `None` when it does not.
    pub fn leading_for(&self) -> Option<Duration> {
        lock(&self.leading_since).map(|t| t.elapsed())
    }

    /// `(last, min, max)` size of the entries proposed while leading; -1 before the first.
    pub fn proposal_sizes(&self) -> (i64, i64, i64) {
        let p = &self.proposals;
        (
            p.last.load(Ordering::Relaxed),
            p.min.load(Ordering::Relaxed),
            p.max.load(Ordering::Relaxed),
        )
    }

    /// Time since each follower last answered and last matched the leader's log.
    pub fn contacts(&self) -> Vec<(NodeId, Duration, Option<Duration>)> {
        let mut v: Vec<_> = lock(&self.contacts)
            .iter()
            .map(|(id, c)| (*id, c.answered.elapsed(), c.in_sync.map(|t| t.elapsed())))
            .collect();
        v.sort_by_key(|c| c.0);
        v
    }

    /// The leader's followers that answered within `window` (ZooKeeper drops a learner that
    /// has not answered for `syncLimit` ticks), among `voters` and `observers` (this node
    /// excluded).
    pub fn followers(
        &self,
        me: NodeId,
        voters: &[NodeId],
        observers: &[NodeId],
        window: Duration,
    ) -> FollowerCounts {
        let contacts = lock(&self.contacts);
        let recent = |t: Instant| t.elapsed() <= window;
        let mut counts = FollowerCounts::default();
        for (id, observer) in voters
            .iter()
            .map(|v| (*v, false))
            .chain(observers.iter().map(|o| (*o, true)))
            .filter(|(id, _)| *id != me)
        {
            let Some(c) = contacts.get(&id) else {
                continue;
            };
            if recent(c.answered) {
                counts.answering += 1;
            }
            if c.in_sync.is_some_and(recent) {
                if observer {
                    counts.synced_observers += 1;
                } else {
                    counts.synced_voters += 1;
                }
            }
        }
        counts
    }
}

/// Follows openraft's metrics channel for the figures that are transitions: terms, leader
/// changes, time without a leader (ZooKeeper's `election_time`: from losing the leader, or
/// from the start, until a leader is known), and since when this node leads.
pub(crate) async fn watch_elections(
    stats: std::sync::Arc<RaftStats>,
    mut metrics: watch::Receiver<RaftMetrics<NodeId, PeerAddrs>>,
) {
    // A node starts without a leader, as a ZooKeeper server starts LOOKING.
    let mut leaderless_since = Some(Instant::now());
    stats.looking.fetch_add(1, Ordering::Relaxed);
    let mut term = None;
    let mut leader = None;
    loop {
        {
            let m = metrics.borrow_and_update();
            let now = Instant::now();
            if term.is_some_and(|t| m.current_term > t) {
                stats.terms_seen.fetch_add(1, Ordering::Relaxed);
            }
            term = Some(m.current_term);
            if m.current_leader != leader {
                match (leader, m.current_leader) {
                    (_, None) => {
                        leaderless_since = Some(now);
                        stats.looking.fetch_add(1, Ordering::Relaxed);
                    }
                    (old, Some(_)) => {
                        stats.leader_changes.fetch_add(1, Ordering::Relaxed);
                        match leaderless_since.take() {
                            Some(since) => stats.election_time.observe_millis(now - since),
                            // One leader to the next without a moment seen in between: an
                            // election that took less than this task could observe; counted
                            // as a time without leader, not measured.
                            None if old.is_some() => {
                                stats.looking.fetch_add(1, Ordering::Relaxed);
                            }
                            None => {}
                        }
                    }
                }
                leader = m.current_leader;
            }
            let leading = m.state == ServerState::Leader;
            let mut since = lock(&stats.leading_since);
            match (leading, *since) {
                (true, None) => *since = Some(now),
                (false, Some(_)) => *since = None,
                _ => {}
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followers_count_recent_answers_and_recent_matches_apart() {
        let s = RaftStats::default();
        s.answered(2, true);
        s.answered(3, false);
        s.answered(4, true);
        let window = Duration::from_secs(5);
        assert_eq!(
            s.followers(1, &[1, 2, 3], &[4], window),
            FollowerCounts {
                answering: 3,
                synced_voters: 1,
                synced_observers: 1,
            }
        );
        // This node and members no longer in the configuration do not count.
        assert_eq!(
            s.followers(2, &[1, 2], &[], window),
            FollowerCounts::default()
        );
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            s.followers(1, &[1, 2, 3], &[4], Duration::from_millis(10)),
            FollowerCounts::default()
        );
    }

    #[test]
    fn proposal_sizes_start_at_minus_one() {
        let s = RaftStats::default();
        assert_eq!(s.proposal_sizes(), (-1, -1, -1));
        s.proposed(90);
        s.proposed(48);
        s.proposed(99);
        assert_eq!(s.proposal_sizes(), (99, 48, 99));
        assert_eq!(s.committed_index(), None);
        s.committed_to(0);
        assert_eq!(s.committed_index(), Some(0));
        s.committed_to(7);
        s.committed_to(3);
        assert_eq!(s.committed_index(), Some(7));
    }
}
