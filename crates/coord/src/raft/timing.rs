//! Raft timing and log-compaction settings, and how ZooKeeper's `tickTime`, `initLimit` and
//! `syncLimit` map onto them (the reasoning is in `docs/decisions/0002-raft-timing.md`).
//!
//! In short: failure detection does not scale with `tickTime` (ZooKeeper's default of 3 s would
//! mean seconds without writes after a leader dies); it uses fixed, fast Raft timers. The
//! ZooKeeper limits keep their meaning as *bounds on waiting*: `initLimit` ticks for a node to
//! receive a snapshot and catch up, `syncLimit` ticks for a write or a `sync` to find a quorum.

use std::time::Duration;

/// Default Raft heartbeat interval.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(50);
/// Default lower bound of the randomized election timeout.
pub const DEFAULT_ELECTION_MIN: Duration = Duration::from_millis(150);
/// Default upper bound of the randomized election timeout (also openraft's leader lease).
pub const DEFAULT_ELECTION_MAX: Duration = Duration::from_millis(250);
/// Default number of applied entries between two snapshots.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 10_000;
/// Default number of already-snapshotted entries kept for followers that lag a little.
pub const DEFAULT_LOGS_KEPT_AFTER_SNAPSHOT: u64 = 1_000;
/// Default size of sled's page cache.
pub const DEFAULT_LOG_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Timers of one node. Every member of an ensemble should use the same values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftTiming {
    /// How often the leader sends AppendEntries (empty ones as heartbeats). Also the timeout of
    /// each AppendEntries RPC, as openraft uses it.
    pub heartbeat: Duration,
    /// A follower that has heard nothing from the leader for `election_max` (openraft's leader
    /// lease) plus a random time in `[election_min, election_max)` starts an election.
    pub election_min: Duration,
    pub election_max: Duration,
    /// When a follower's connection to the leader breaks and the leader's port refuses
    /// connections, the follower starts an election as soon as the leader lease has run out
    /// instead of waiting for the randomized timeout as well.
    pub fast_failover: bool,
    /// Time to send and install one snapshot chunk (the last one includes restoring the
    /// application): `initLimit × tickTime`.
    pub install_snapshot_timeout: Duration,
    /// How long `propose` waits for a leader with a quorum: `syncLimit × tickTime`.
    pub propose_timeout: Duration,
    /// How long `read_barrier` waits: `syncLimit × tickTime`.
    pub read_barrier_timeout: Duration,
}

impl Default for RaftTiming {
    fn default() -> Self {
        RaftTiming::from_zookeeper(sluice_config::coord::DEFAULT_TICK_TIME_MS, 10, 5)
    }
}

impl RaftTiming {
    /// The timing for `tickTime` (ms), `initLimit` and `syncLimit` (ticks).
    pub fn from_zookeeper(tick_time_ms: u32, init_limit: u32, sync_limit: u32) -> Self {
        let ticks = |n: u32| Duration::from_millis(u64::from(tick_time_ms) * u64::from(n.max(1)));
        RaftTiming {
            heartbeat: DEFAULT_HEARTBEAT,
            election_min: DEFAULT_ELECTION_MIN,
            election_max: DEFAULT_ELECTION_MAX,
            fast_failover: true,
            install_snapshot_timeout: ticks(init_limit),
            propose_timeout: ticks(sync_limit),
            read_barrier_timeout: ticks(sync_limit),
        }
    }

    /// Rejects settings openraft would refuse or that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat.is_zero() {
            return Err("heartbeat must be positive".into());
        }
        if self.election_min <= self.heartbeat {
            return Err(format!(
                "election_min ({:?}) must be longer than the heartbeat ({:?})",
                self.election_min, self.heartbeat
            ));
        }
        if self.election_max <= self.election_min {
            return Err(format!(
                "election_max ({:?}) must be longer than election_min ({:?})",
                self.election_max, self.election_min
            ));
        }
        Ok(())
    }
}

/// Snapshots, compaction and the log's cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// Build a snapshot every this many applied entries (openraft `SnapshotPolicy`), after which
    /// the log before it is purged.
    pub snapshot_every: u64,
    /// Entries already covered by a snapshot that are kept anyway, so a follower that lags by
    /// less than this catches up from the log instead of receiving the whole snapshot.
    pub logs_kept_after_snapshot: u64,
    /// sled's page cache, the bulk of the log's memory.
    pub cache_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            logs_kept_after_snapshot: DEFAULT_LOGS_KEPT_AFTER_SNAPSHOT,
            cache_bytes: DEFAULT_LOG_CACHE_BYTES,
        }
    }
}

pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The number of entries after which this node snapshots: a number drawn from
/// `[snapshot_every / 2, snapshot_every]` by `seed`, as ZooKeeper draws its `snapCount` roll, so
/// that the members of an ensemble do not all stop to write a snapshot of the same state at the
/// same moment (three nodes serializing a large tree at once on a busy machine stalled writes
/// for more than a second and cost a leader).
pub(crate) fn staggered(snapshot_every: u64, seed: u64) -> u64 {
    if snapshot_every < 2 {
        return snapshot_every.max(1);
    }
    let half = snapshot_every / 2;
    half + seed % (snapshot_every - half + 1)
}

/// openraft's configuration for these settings; `seed` staggers the snapshot point
/// ([`staggered`]).
pub(crate) fn openraft_config(
    timing: &RaftTiming,
    log: &LogOptions,
    seed: u64,
) -> Result<openraft::Config, String> {
    let config = openraft::Config {
        cluster_name: "sluice-coord".into(),
        heartbeat_interval: ms(timing.heartbeat),
        election_timeout_min: ms(timing.election_min),
        election_timeout_max: ms(timing.election_max),
        install_snapshot_timeout: ms(timing.install_snapshot_timeout),
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(staggered(
            log.snapshot_every,
            seed,
        )),
        max_in_snapshot_log_to_keep: log.logs_kept_after_snapshot,
        // Followers further behind than this are "lagging" for blocking membership changes;
        // keep it above what compaction keeps, as openraft asks.
        replication_lag_threshold: log.snapshot_every + log.logs_kept_after_snapshot,
        // Big enough for one large write per chunk, small enough to bound RPC size.
        snapshot_max_chunk_size: 4 * 1024 * 1024,
        // Small enough that a follower that fell behind catches up in AppendEntries it can
        // take within the RPC timeout (openraft's heartbeat interval); see also
        // `network::SPLIT_APPEND_ABOVE`.
        max_payload_entries: 64,
        // Purge in batches: each purge is an fsync.
        purge_batch_size: 64,
        ..Default::default()
    };
    config.validate().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_points_are_spread_over_the_upper_half() {
        let points: std::collections::BTreeSet<u64> = (0..1000)
            .map(|seed| staggered(10_000, seed * 7919))
            .collect();
        assert!(points.iter().all(|p| (5_000..=10_000).contains(p)));
        assert!(points.len() > 900, "only {} distinct points", points.len());
        assert_eq!(staggered(1, 5), 1);
        assert_eq!(staggered(0, 5), 1);
        assert!((1..=2).contains(&staggered(2, 5)));
    }

    #[test]
    fn zookeeper_limits_map_to_waiting_bounds() {
        let t = RaftTiming::from_zookeeper(2000, 10, 5);
        assert_eq!(t.install_snapshot_timeout, Duration::from_secs(20));
        assert_eq!(t.propose_timeout, Duration::from_secs(10));
        assert_eq!(t.heartbeat, DEFAULT_HEARTBEAT);
        t.validate().unwrap();
        openraft_config(&t, &LogOptions::default(), 7).unwrap();
    }

    #[test]
    fn bad_timers_are_rejected() {
        let t = RaftTiming {
            election_min: Duration::from_millis(40),
            ..RaftTiming::default()
        };
        assert!(t.validate().is_err());
    }
}
