//! coord's figures as metric families, gathered at scrape time, and the `/metrics` endpoint that
//! `metricsProvider.className=…PrometheusMetricsProvider` turns on.
//!
//! ```text
//!  Core: tree, watches, Stats (conn.rs, accept loop, proposer, housekeeping) ─┐
//!  RaftNode: status (openraft), RaftStats (fsync, snapshots, elections, …) ───┼─► families()
//!  /proc/self: descriptors, memory, CPU time (exportJvmInfo) ─────────────────┘       │
//!                 GET /metrics (sluice_metrics::http) ◄─ prometheus_text ◄────────────┤
//!                 mntr (fourlw.rs)                    ◄─ write_mntr ◄─────────────────┘
//! ```
//!
//! Names, types and label sets are ZooKeeper 3.8's as its Prometheus provider exports them
//! (read from a live Debian 3.8.0 with zookeeper-prometheus-metrics 3.8.0): the families every
//! server has, `quorum_size` and `synced_observers` in an ensemble, and the leader's own
//! (`learners`, `synced_followers`, `pending_syncs`, `leader_uptime`, proposal sizes) only on
//! the leader, as there. A ZooKeeper figure coord has no honest value for is left out rather
//! than exported as zero (the list is in docs/operations.md). coord's Raft figures carry the
//! `sluice_raft_` prefix.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use sluice_metrics::summary::SummarySnapshot;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{lock, Core};
use crate::fourlw::Mode;
use crate::metrics::{Family, Sample, ADVANCED_QUANTILES, BASIC_QUANTILES};
use crate::raft::{RaftNode, RaftStatus, Role};
use sluice_metrics::Kind;

/// Rounded as ZooKeeper rounds its average latency (four places), in `mntr` and `/metrics`.
fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

fn basic(s: &sluice_metrics::summary::Summary) -> SummarySnapshot {
    s.snapshot(BASIC_QUANTILES)
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_millis() as f64
}

impl Core {
    /// What this node is doing, with the Raft status it was judged from.
    pub(super) fn mode(&self) -> (Mode, Option<RaftStatus>) {
        let status = self.raft().map(RaftNode::status);
        let mode = match &status {
            _ if self.settings.standalone => Mode::Standalone,
            // Removed by reconfig, or waiting to be added: not serving.
            Some(_) if !self.raft().is_some_and(RaftNode::is_member) => Mode::Looking,
            Some(s) => match s.role {
                Role::Leader => Mode::Leader,
                Role::Follower if s.leader.is_some() => Mode::Follower,
                Role::Observer if s.leader.is_some() => Mode::Observer,
                _ => Mode::Looking,
            },
            None => Mode::Looking,
        };
        (mode, status)
    }

    /// Every family this node exports now.
    pub(crate) fn metric_families(&self) -> Vec<Family> {
        let (mode, status) = self.mode();
        let raft = self.raft();
        let stats = &self.stats;
        let mut f = Vec::with_capacity(96);

        // The tree and its sessions.
        {
            let machine = self.machine.read().unwrap_or_else(|e| e.into_inner());
            let tree = machine.tree();
            f.push(Family::gauge(
                "znode_count",
                "Znodes in the tree (the root counted twice, as ZooKeeper counts it)",
                tree.zookeeper_node_count() as f64,
            ));
            f.push(Family::gauge(
                "ephemerals_count",
                "Ephemeral znodes",
                tree.ephemeral_count() as f64,
            ));
            f.push(Family::gauge(
                "approximate_data_size",
                "Length of every path plus its data, in bytes",
                tree.approximate_data_size() as f64,
            ));
            f.push(Family::gauge(
                "global_sessions",
                "Sessions in the ensemble",
                machine.sessions().len() as f64,
            ));
        }
        f.push(Family::gauge(
            "local_sessions",
            "Local sessions: coord makes every session global, so none",
            0.0,
        ));
        f.push(Family::gauge(
            "watch_count",
            "Data and child watches set by this node's clients",
            lock(&self.watches).watch_count() as f64,
        ));

        // This node's clients.
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
        f.push(Family::gauge(
            "num_alive_connections",
            "Open client-port connections (a four-letter word's own included)",
            load(&stats.alive_connections),
        ));
        f.push(Family::gauge(
            "outstanding_requests",
            "Requests read from clients and not yet answered",
            load(&stats.outstanding),
        ));
        f.push(Family::gauge(
            "packets_received",
            "Requests received from clients (reset by srst)",
            load(&stats.packets_received),
        ));
        f.push(Family::gauge(
            "packets_sent",
            "Replies and watch events sent to clients (reset by srst)",
            load(&stats.packets_sent),
        ));
        let (min, avg, max) = stats.latency();
        f.push(Family::gauge(
            "avg_latency",
            "Average time from reading a request to answering it, ms (reset by srst)",
            round4(avg),
        ));
        f.push(Family::gauge(
            "min_latency",
            "Shortest request latency, ms (reset by srst)",
            min as f64,
        ));
        f.push(Family::gauge(
            "max_latency",
            "Longest request latency, ms (reset by srst)",
            max as f64,
        ));
        f.push(Family::summary(
            "readlatency",
            "Latency of requests that change nothing (reads, exists, sync, ping), ms",
            &stats.read_latency.snapshot(ADVANCED_QUANTILES),
        ));
        f.push(Family::summary(
            "updatelatency",
            "Latency of requests that change the tree, a session or the ensemble, ms",
            &stats.update_latency.snapshot(ADVANCED_QUANTILES),
        ));
        f.push(Family::counter(
            "connection_request_count",
            "Session handshakes (ConnectRequests) received",
            load(&stats.connect_requests),
        ));
        f.push(Family::counter(
            "connection_rejected",
            "Connections closed at once for exceeding maxClientCnxns",
            load(&stats.connections_rejected),
        ));
        f.push(Family::counter(
            "cnxn_closed_without_zk_server_running",
            "Connections closed at once because the node was not serving (no quorum)",
            load(&stats.closed_not_serving),
        ));
        f.push(Family::counter(
            "bytes_received_count",
            "Bytes read from client connections",
            load(&stats.bytes_received),
        ));
        f.push(Family::gauge(
            "auth_failed_count",
            "addauth requests refused (unknown scheme)",
            load(&stats.auth_failed),
        ));
        let (last, min_size, max_size) = stats.response_sizes();
        f.push(Family::gauge(
            "last_client_response_size",
            "Size of the last reply, bytes (-1 before the first)",
            last as f64,
        ));
        f.push(Family::gauge(
            "min_client_response_size",
            "Smallest reply, bytes (-1 before the first)",
            min_size as f64,
        ));
        f.push(Family::gauge(
            "max_client_response_size",
            "Largest reply, bytes (-1 before the first)",
            max_size as f64,
        ));
        f.push(Family::counter(
            "stale_sessions_expired",
            "Sessions this node expired while leading",
            load(&stats.sessions_expired),
        ));
        f.push(Family::gauge(
            "uptime",
            "Time since this node started, ms",
            ms(self.started.elapsed()),
        ));
        let (open_fds, max_fds) = (open_fds(), max_fds());
        if let Some(n) = open_fds {
            f.push(Family::gauge(
                "open_file_descriptor_count",
                "File descriptors this process holds",
                n as f64,
            ));
        }
        if let Some(n) = max_fds {
            f.push(Family::gauge(
                "max_file_descriptor_count",
                "File descriptors this process may hold (RLIMIT_NOFILE)",
                n as f64,
            ));
        }

        // Storage and elections.
        if let Some(raft) = raft {
            let rs = raft.stats();
            f.push(Family::summary(
                "fsynctime",
                "Time to fsync the replicated log, ms (one sample per fsync)",
                &basic(&rs.fsync),
            ));
            f.push(Family::summary(
                "snapshottime",
                "Time to serialise and write a snapshot, ms",
                &basic(&rs.snapshot_build),
            ));
            f.push(Family::summary(
                "startup_snap_load_time",
                "Time to read and restore the snapshot at start, ms",
                &basic(&rs.snapshot_load),
            ));
            f.push(Family::counter(
                "snap_count",
                "Snapshots this node wrote",
                rs.snapshots_built() as f64,
            ));
            f.push(Family::counter(
                "looking_count",
                "Times this node was without a leader (its start included)",
                rs.looking_count() as f64,
            ));
            f.push(Family::summary(
                "election_time",
                "Time from losing the leader (or starting) until a leader is known, ms",
                &basic(&rs.election_time),
            ));
        }
        if let (Some(raft), Some(s), false) = (raft, &status, self.settings.standalone) {
            let rs = raft.stats();
            f.push(Family::gauge(
                "quorum_size",
                "Voting members of the ensemble",
                s.voters.len() as f64,
            ));
            let counts = rs.followers(s.id, &s.voters, &s.observers, raft.follower_window());
            // Observers replicate from the leader only; a follower has none in sync with it.
            let synced_observers = if mode == Mode::Leader {
                counts.synced_observers
            } else {
                0
            };
            f.push(Family::gauge(
                "synced_observers",
                "Observers whose log matched this leader's within syncLimit ticks",
                synced_observers as f64,
            ));
            if mode == Mode::Leader {
                f.push(Family::gauge(
                    "learners",
                    "Followers and observers that answered this leader within syncLimit ticks",
                    counts.answering as f64,
                ));
                f.push(Family::gauge(
                    "synced_followers",
                    "Voting followers whose log matched this leader's within syncLimit ticks",
                    counts.synced_voters as f64,
                ));
                f.push(Family::gauge(
                    "synced_non_voting_followers",
                    "Non-voting followers in sync: coord has none (its non-voters are observers)",
                    0.0,
                ));
                f.push(Family::gauge(
                    "pending_syncs",
                    "sync requests other members forwarded to this leader, not yet answered",
                    load(&stats.pending_syncs),
                ));
                f.push(Family::gauge(
                    "leader_uptime",
                    "Time since this node became leader, ms",
                    rs.leading_for().map_or(0.0, ms),
                ));
                let (last, min, max) = rs.proposal_sizes();
                f.push(Family::gauge(
                    "last_proposal_size",
                    "Size of the last log entry this leader proposed, bytes (-1 before the first)",
                    last as f64,
                ));
                f.push(Family::gauge(
                    "min_proposal_size",
                    "Smallest log entry this leader proposed, bytes (-1 before the first)",
                    min as f64,
                ));
                f.push(Family::gauge(
                    "max_proposal_size",
                    "Largest log entry this leader proposed, bytes (-1 before the first)",
                    max as f64,
                ));
            }
        }
        if let (Some(raft), Some(s)) = (raft, &status) {
            raft_families(&mut f, raft, s);
        }
        disk_families(&mut f, &self.settings.conf);
        if self
            .settings
            .metrics
            .as_ref()
            .is_some_and(|m| m.export_process_info)
        {
            process_families(&mut f, open_fds, max_fds);
        }
        f
    }
}

/// coord's own Raft figures, under their own prefix.
fn raft_families(f: &mut Vec<Family>, raft: &RaftNode, s: &RaftStatus) {
    let rs = raft.stats();
    let index = |i: Option<u64>| i.map_or(-1.0, |i| i as f64);
    f.push(Family::gauge(
        "sluice_raft_term",
        "Current Raft term",
        s.term as f64,
    ));
    f.push(Family::gauge(
        "sluice_raft_leader_id",
        "The leader this node knows (its myid), 0 when none",
        s.leader.unwrap_or(0) as f64,
    ));
    let role = match s.role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::Observer => "learner",
        Role::Shutdown => "shutdown",
    };
    f.push(Family::labelled_gauge(
        "sluice_raft_state",
        "This node's Raft state: 1 for the one it is in",
        "state",
        ["leader", "follower", "candidate", "learner", "shutdown"]
            .into_iter()
            .map(|st| (st.to_string(), if st == role { 1.0 } else { 0.0 })),
    ));
    f.push(Family::gauge(
        "sluice_raft_last_log_index",
        "Index of the last entry in this node's log (-1 when empty)",
        index(s.last_log_index),
    ));
    f.push(Family::gauge(
        "sluice_raft_commit_index",
        "Highest index this node knows to be committed (-1 when none)",
        index(rs.committed_index()),
    ));
    f.push(Family::gauge(
        "sluice_raft_applied_index",
        "Highest index applied to this node's tree (-1 when none)",
        index(s.last_applied_index),
    ));
    f.push(Family::gauge(
        "sluice_raft_snapshot_index",
        "Last index the current snapshot covers (-1 when none)",
        index(s.snapshot_index),
    ));
    f.push(Family::gauge(
        "sluice_raft_purged_index",
        "Last index removed from the log after a snapshot (-1 when none)",
        index(s.purged_index),
    ));
    f.push(Family::gauge(
        "sluice_raft_snapshot_size_bytes",
        "Size of the current snapshot's data (0 when none)",
        rs.snapshot_bytes() as f64,
    ));
    f.push(Family::counter(
        "sluice_raft_elections_total",
        "New terms this node saw begin since it started (each begins with an election)",
        rs.terms_seen() as f64,
    ));
    f.push(Family::counter(
        "sluice_raft_leader_changes_total",
        "Times the leader this node knows changed since it started (the first one included)",
        rs.leader_changes() as f64,
    ));
    f.push(Family::gauge(
        "sluice_raft_voters",
        "Voting members in the membership",
        s.voters.len() as f64,
    ));
    f.push(Family::gauge(
        "sluice_raft_observers",
        "Non-voting members (observers) in the membership",
        s.observers.len() as f64,
    ));
    if s.role == Role::Leader {
        f.push(Family::labelled_gauge(
            "sluice_raft_follower_matched_index",
            "On the leader: the last index each member's log is known to match (-1 none yet)",
            "node",
            s.matched.iter().map(|(id, m)| (id.to_string(), index(*m))),
        ));
        f.push(Family::labelled_gauge(
            "sluice_raft_follower_last_answer_seconds",
            "On the leader: time since each member last answered replication",
            "node",
            rs.contacts()
                .into_iter()
                .filter(|(id, _, _)| s.matched.iter().any(|(m, _)| m == id))
                .map(|(id, answered, _)| (id.to_string(), answered.as_secs_f64())),
        ));
        if let Some(age) = s.millis_since_quorum_ack {
            f.push(Family::gauge(
                "sluice_raft_quorum_ack_age_seconds",
                "On the leader: time since a quorum last acknowledged it",
                age as f64 / 1000.0,
            ));
        }
    }
}

/// Free and total bytes of the filesystems holding `dataDir` and `dataLogDir`, for the
/// disk-filling alert (ZooKeeper exports no such figure; operators add node_exporter for it).
/// Read with statvfs at scrape time: two system calls.
fn disk_families(f: &mut Vec<Family>, conf: &[(String, String)]) {
    let mut free = Vec::new();
    let mut size = Vec::new();
    for (key, path) in conf {
        if key != "dataDir" && key != "dataLogDir" {
            continue;
        }
        let Ok(st) = rustix::fs::statvfs(path.as_str()) else {
            continue;
        };
        let labels = vec![("dir", key.clone()), ("path", path.clone())];
        free.push(Sample {
            suffix: None,
            labels: labels.clone(),
            value: st.f_bavail.saturating_mul(st.f_frsize) as f64,
        });
        size.push(Sample {
            suffix: None,
            labels,
            value: st.f_blocks.saturating_mul(st.f_frsize) as f64,
        });
    }
    f.push(Family {
        name: "sluice_data_dir_free_bytes",
        kind: Kind::Gauge,
        help: "Bytes available to coord on the filesystem holding dataDir / dataLogDir",
        samples: free,
    });
    f.push(Family {
        name: "sluice_data_dir_size_bytes",
        kind: Kind::Gauge,
        help: "Size of the filesystem holding dataDir / dataLogDir, bytes",
        samples: size,
    });
}

/// The process families of `simpleclient`'s standard exports (what ZooKeeper adds with
/// `metricsProvider.exportJvmInfo=true`, its JVM families aside), read from /proc.
fn process_families(f: &mut Vec<Family>, open_fds: Option<u64>, max_fds: Option<u64>) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        f.push(Family::counter(
            "process_cpu_seconds_total",
            "User and system CPU time of this process, s",
            (utime + stime) as f64 / ticks,
        ));
    }
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())
    });
    if let (Some(boot), Some(start)) = (boot, field(22)) {
        f.push(Family::gauge(
            "process_start_time_seconds",
            "Start time of this process since the Unix epoch, s",
            boot as f64 + start as f64 / ticks,
        ));
    }
    if let Some(n) = open_fds {
        f.push(Family::gauge(
            "process_open_fds",
            "Open file descriptors",
            n as f64,
        ));
    }
    if let Some(n) = max_fds {
        f.push(Family::gauge(
            "process_max_fds",
            "Maximum number of open file descriptors",
            n as f64,
        ));
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |key: &str| {
        status.lines().find_map(|l| {
            l.strip_prefix(key)?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    if let Some(v) = kib("VmSize:") {
        f.push(Family::gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size, bytes",
            (v * 1024) as f64,
        ));
    }
    if let Some(v) = kib("VmRSS:") {
        f.push(Family::gauge(
            "process_resident_memory_bytes",
            "Resident memory size, bytes",
            (v * 1024) as f64,
        ));
    }
}

pub(super) fn open_fds() -> Option<u64> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64)
}

pub(super) fn max_fds() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Serves `/metrics` on `listener` until `stop` turns true.
pub(super) async fn serve(core: Arc<Core>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    sluice_metrics::http::serve(
        listener,
        move || {
            // Gathered right away (under the node's locks for a moment), so the future that
            // writes the answer holds nothing.
            let text = crate::metrics::prometheus_text(&core.metric_families());
            async move { text }
        },
        async move {
            let _ = stop.wait_for(|s| *s).await;
        },
    )
    .await;
}
