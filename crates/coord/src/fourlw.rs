//! ZooKeeper's four-letter words (`ruok`, `srvr`, `stat`, `mntr`, `conf`, `envi`, `cons`, `isro`,
//! `wchs`, ...) answered on the client port.
//!
//! A connection whose first four bytes spell a known word is not a ZooKeeper session: the server
//! answers in plain text and closes, as ZooKeeper does. This module only formats: the connection
//! layer detects the word and gathers a [`ServerInfo`] snapshot; the text layouts follow
//! ZooKeeper 3.8's so that monitoring scripts and `zkServer.sh status` parse them unchanged.
//! `mntr` has two, as ZooKeeper 3.8 has: its fixed list of keys with the default metrics
//! provider, and every sample of the metric families (the same ones `/metrics` serves) with
//! the Prometheus provider.

use std::fmt::Write as _;

use sluice_config::FourLetterWords;

use crate::metrics::{self, Family};

/// The ZooKeeper release whose client protocol and outputs coord follows. Tools such as kazoo
/// parse the leading `major.minor.patch` of the version string to decide which features exist.
pub const ZK_COMPAT_VERSION: &str = "3.8.4";

/// The version string reported by `srvr`, `stat`, `mntr` and `envi`.
pub fn version_string() -> String {
    format!(
        "{ZK_COMPAT_VERSION}-sluice-coord-{}, built on 1970-01-01 00:00 UTC",
        env!("CARGO_PKG_VERSION")
    )
}

/// Returns the word when `first4` (the first four bytes a client sent) is a four-letter word.
pub fn detect(first4: &[u8; 4]) -> Option<&'static str> {
    sluice_config::coord::ALL_FOUR_LETTER_WORDS
        .iter()
        .copied()
        .find(|w| w.as_bytes() == first4)
}

/// What this node is doing in the ensemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Standalone,
    Leader,
    Follower,
    Observer,
    /// No leader known (an election is under way or no quorum is reachable).
    Looking,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Standalone => "standalone",
            Mode::Leader => "leader",
            Mode::Follower => "follower",
            Mode::Observer => "observer",
            Mode::Looking => "looking",
        }
    }
}

/// One client connection, for `stat` and `cons`.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub remote: String,
    pub queued: u64,
    pub received: u64,
    pub sent: u64,
    pub session_id: Option<i64>,
    pub timeout_ms: Option<u32>,
    pub last_zxid: Option<i64>,
}

/// The leader's view of its followers, for `mntr`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaderInfo {
    /// Followers and observers that answered within `syncLimit` ticks.
    pub learners: u64,
    pub synced_followers: u64,
    pub synced_observers: u64,
    /// `sync` requests other members forwarded, not yet answered.
    pub pending_syncs: u64,
}

/// A snapshot of the server's counters, taken by the connection layer when a word arrives.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub mode: Mode,
    pub server_id: Option<u64>,
    pub latency_min_ms: u64,
    pub latency_avg_ms: f64,
    pub latency_max_ms: u64,
    pub packets_received: u64,
    pub packets_sent: u64,
    pub connections: Vec<ConnectionInfo>,
    pub outstanding_requests: u64,
    pub last_zxid: i64,
    pub node_count: u64,
    pub watch_count: u64,
    pub watched_paths: u64,
    pub watching_connections: u64,
    pub ephemerals_count: u64,
    pub approximate_data_size: u64,
    pub global_sessions: u64,
    pub uptime_ms: u64,
    /// Leader only.
    pub leader: Option<LeaderInfo>,
    /// With the Prometheus metrics provider, `mntr` prints these families' samples after its
    /// first lines, as ZooKeeper 3.8 does; `None` keeps the default provider's layout.
    pub metrics: Option<Vec<Family>>,
    pub read_only: bool,
    /// `key=value` lines for `conf`, in ZooKeeper's order.
    pub conf: Vec<(String, String)>,
    /// The ensemble's configuration (`/zookeeper/config`), which `conf` ends with after
    /// `membership: ` as ZooKeeper 3.5+ prints it; `None` standalone.
    pub membership: Option<String>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
}

/// What ZooKeeper answers the words that describe a serving server, while it has no quorum.
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

/// The full answer to `word`, or the refusal ZooKeeper gives for a word outside the whitelist.
pub fn respond(word: &str, allowed: &FourLetterWords, info: &ServerInfo) -> String {
    if !allowed.allows(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    let mut out = String::new();
    // Without a quorum ZooKeeper 3.8 has no server to describe: these words answer one line
    // that monitoring scripts look for, `isro` answers "null"; ruok, envi and the trace-mask
    // words answer as usual.
    if info.mode == Mode::Looking {
        match word {
            "srvr" | "stat" | "mntr" | "conf" | "cons" | "wchs" | "wchc" | "wchp" | "dump"
            | "srst" | "crst" | "dirs" | "hash" => {
                return format!("{NOT_SERVING}\n");
            }
            "isro" => return "null".into(),
            _ => {}
        }
    }
    match word {
        "ruok" => out.push_str("imok"),
        "isro" => out.push_str(if info.read_only { "ro" } else { "rw" }),
        "srvr" => {
            writeln!(out, "Zookeeper version: {}", version_string()).ok();
            server_summary(&mut out, info);
        }
        "stat" => {
            writeln!(out, "Zookeeper version: {}", version_string()).ok();
            out.push_str("Clients:\n");
            for c in &info.connections {
                writeln!(out, " {}", connection_brief(c)).ok();
            }
            out.push('\n');
            server_summary(&mut out, info);
        }
        "cons" => {
            for c in &info.connections {
                let mut line = connection_brief(c);
                line.pop(); // reopen the parenthesis to add the session details
                if let Some(sid) = c.session_id {
                    write!(line, ",sid=0x{sid:x}").ok();
                }
                if let Some(to) = c.timeout_ms {
                    write!(line, ",to={to}").ok();
                }
                if let Some(z) = c.last_zxid {
                    write!(line, ",lzxid=0x{z:x}").ok();
                }
                line.push(')');
                writeln!(out, " {line}").ok();
            }
            out.push('\n');
        }
        "mntr" => mntr(&mut out, info),
        "conf" => {
            for (k, v) in &info.conf {
                writeln!(out, "{k}={v}").ok();
            }
            if let Some(m) = &info.membership {
                write!(out, "membership: \n{m}").ok();
            }
        }
        "envi" => {
            out.push_str("Environment:\n");
            writeln!(out, "zookeeper.version={}", version_string()).ok();
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "localhost".into());
            writeln!(out, "host.name={host}").ok();
            writeln!(out, "os.name={}", std::env::consts::OS).ok();
            writeln!(out, "os.arch={}", std::env::consts::ARCH).ok();
            if let Ok(dir) = std::env::current_dir() {
                writeln!(out, "user.dir={}", dir.display()).ok();
            }
        }
        "wchs" => {
            writeln!(
                out,
                "{} connections watching {} paths",
                info.watching_connections, info.watched_paths
            )
            .ok();
            writeln!(out, "Total watches:{}", info.watch_count).ok();
        }
        "srst" | "crst" => out.push_str("Server stats reset.\n"),
        "gtmk" => out.push('0'),
        other => {
            // Known to the whitelist but without an answer here (dump, wchc, wchp, dirs, hash).
            writeln!(out, "{other} is not supported by coord").ok();
        }
    }
    out
}

fn connection_brief(c: &ConnectionInfo) -> String {
    format!(
        "/{}[1](queued={},recved={},sent={})",
        c.remote, c.queued, c.received, c.sent
    )
}

/// ZooKeeper 3.8 rounds the average latency half-up to four places and prints it as a Java
/// double: `0.0`, `7.75`, `1.0469` (read from a live 3.8 server).
fn avg_latency(ms: f64) -> String {
    let rounded = (ms * 10_000.0).round() / 10_000.0;
    format!("{rounded:?}")
}

fn server_summary(out: &mut String, info: &ServerInfo) {
    writeln!(
        out,
        "Latency min/avg/max: {}/{}/{}",
        info.latency_min_ms,
        avg_latency(info.latency_avg_ms),
        info.latency_max_ms
    )
    .ok();
    writeln!(out, "Received: {}", info.packets_received).ok();
    writeln!(out, "Sent: {}", info.packets_sent).ok();
    writeln!(out, "Connections: {}", info.connections.len()).ok();
    writeln!(out, "Outstanding: {}", info.outstanding_requests).ok();
    writeln!(out, "Zxid: 0x{:x}", info.last_zxid).ok();
    writeln!(out, "Mode: {}", info.mode.as_str()).ok();
    writeln!(out, "Node count: {}", info.node_count).ok();
}

fn mntr(out: &mut String, info: &ServerInfo) {
    let mut kv = |k: &str, v: String| {
        writeln!(out, "zk_{k}\t{v}").ok();
    };
    kv("version", version_string());
    kv("server_state", info.mode.as_str().to_string());
    match info.mode {
        Mode::Leader => kv("peer_state", "leading - broadcast".into()),
        Mode::Follower => kv("peer_state", "following - broadcast".into()),
        _ => {}
    }
    if let Some(families) = &info.metrics {
        metrics::write_mntr(out, families);
        return;
    }
    kv("avg_latency", avg_latency(info.latency_avg_ms));
    kv("max_latency", info.latency_max_ms.to_string());
    kv("min_latency", info.latency_min_ms.to_string());
    kv("packets_received", info.packets_received.to_string());
    kv("packets_sent", info.packets_sent.to_string());
    kv("num_alive_connections", info.connections.len().to_string());
    kv(
        "outstanding_requests",
        info.outstanding_requests.to_string(),
    );
    kv("znode_count", info.node_count.to_string());
    kv("watch_count", info.watch_count.to_string());
    kv("ephemerals_count", info.ephemerals_count.to_string());
    kv(
        "approximate_data_size",
        info.approximate_data_size.to_string(),
    );
    kv("global_sessions", info.global_sessions.to_string());
    kv("uptime", info.uptime_ms.to_string());
    if let Some(n) = info.open_fds {
        kv("open_file_descriptor_count", n.to_string());
    }
    if let Some(n) = info.max_fds {
        kv("max_file_descriptor_count", n.to_string());
    }
    // The leader's own keys, as ZooKeeper 3.8 names them (`zk_learners` since 3.6; there are
    // no observers or non-voting followers here).
    if let Some(l) = info.leader {
        kv("synced_followers", l.synced_followers.to_string());
        kv("synced_non_voting_followers", "0".to_string());
        kv("synced_observers", l.synced_observers.to_string());
        kv("pending_syncs", l.pending_syncs.to_string());
        kv("learners", l.learners.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn info() -> ServerInfo {
        ServerInfo {
            mode: Mode::Follower,
            server_id: Some(2),
            latency_min_ms: 0,
            latency_avg_ms: 0.25,
            latency_max_ms: 3,
            packets_received: 10,
            packets_sent: 9,
            connections: vec![ConnectionInfo {
                remote: "127.0.0.1:5555".into(),
                queued: 0,
                received: 4,
                sent: 3,
                session_id: Some(0x100),
                timeout_ms: Some(30000),
                last_zxid: Some(0x5),
            }],
            outstanding_requests: 0,
            last_zxid: 0x1_0000_0005,
            node_count: 5,
            watch_count: 2,
            watched_paths: 2,
            watching_connections: 1,
            ephemerals_count: 1,
            approximate_data_size: 44,
            global_sessions: 1,
            uptime_ms: 1000,
            leader: None,
            metrics: None,
            read_only: false,
            membership: None,
            conf: vec![("clientPort".into(), "2181".into())],
            open_fds: Some(12),
            max_fds: Some(1024),
        }
    }

    #[test]
    fn detects_only_known_words() {
        assert_eq!(detect(b"ruok"), Some("ruok"));
        assert_eq!(detect(b"mntr"), Some("mntr"));
        assert_eq!(detect(b"\0\0\0\x2c"), None);
        assert_eq!(detect(b"RUOK"), None);
    }

    #[test]
    fn srvr_has_zookeepers_layout() {
        let text = respond("srvr", &FourLetterWords::All, &info());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("Zookeeper version: 3.8.4-"), "{text}");
        assert_eq!(
            &lines[1..],
            &[
                "Latency min/avg/max: 0/0.25/3",
                "Received: 10",
                "Sent: 9",
                "Connections: 1",
                "Outstanding: 0",
                "Zxid: 0x100000005",
                "Mode: follower",
                "Node count: 5",
            ]
        );
    }

    #[test]
    fn stat_lists_clients_before_the_summary() {
        let text = respond("stat", &FourLetterWords::All, &info());
        assert!(
            text.contains("Clients:\n /127.0.0.1:5555[1](queued=0,recved=4,sent=3)\n\nLatency"),
            "{text}"
        );
    }

    #[test]
    fn cons_adds_session_details() {
        let text = respond("cons", &FourLetterWords::All, &info());
        assert_eq!(
            text,
            " /127.0.0.1:5555[1](queued=0,recved=4,sent=3,sid=0x100,to=30000,lzxid=0x5)\n\n"
        );
    }

    #[test]
    fn mntr_is_tab_separated_and_has_leader_fields_only_on_the_leader() {
        let mut i = info();
        let text = respond("mntr", &FourLetterWords::All, &i);
        assert!(
            text.lines()
                .all(|l| l.starts_with("zk_") && l.contains('\t')),
            "{text}"
        );
        assert!(text.contains("zk_server_state\tfollower\n"));
        assert!(!text.contains("zk_followers"));
        i.mode = Mode::Leader;
        i.leader = Some(LeaderInfo {
            learners: 2,
            synced_followers: 2,
            synced_observers: 0,
            pending_syncs: 0,
        });
        let text = respond("mntr", &FourLetterWords::All, &i);
        // The leader's keys of Debian's ZooKeeper 3.8 `mntr` on a three-node ensemble.
        for line in [
            "zk_server_state\tleader\n",
            "zk_peer_state\tleading - broadcast\n",
            "zk_learners\t2\n",
            "zk_synced_followers\t2\n",
            "zk_synced_non_voting_followers\t0\n",
            "zk_synced_observers\t0\n",
            "zk_pending_syncs\t0\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from {text}");
        }
        assert!(!text.contains("zk_followers\t"), "{text}");
    }

    #[test]
    fn words_outside_the_whitelist_are_refused_as_zookeeper_does() {
        let only = FourLetterWords::Only(BTreeSet::from(["srvr".to_string()]));
        assert_eq!(
            respond("ruok", &only, &info()),
            "ruok is not executed because it is not in the whitelist.\n"
        );
        assert!(respond("srvr", &only, &info()).starts_with("Zookeeper version"));
    }

    #[test]
    fn envi_carries_the_version_kazoo_parses() {
        let text = respond("envi", &FourLetterWords::All, &info());
        assert!(
            text.starts_with("Environment:\nzookeeper.version=3.8.4-"),
            "{text}"
        );
    }

    #[test]
    fn small_answers() {
        let all = FourLetterWords::All;
        assert_eq!(respond("ruok", &all, &info()), "imok");
        assert_eq!(respond("isro", &all, &info()), "rw");
        assert_eq!(
            respond("wchs", &all, &info()),
            "1 connections watching 2 paths\nTotal watches:2\n"
        );
    }

    /// As Debian's ZooKeeper 3.8 answered, one node of three started alone (looking).
    #[test]
    fn a_member_without_quorum_is_not_serving() {
        let looking = ServerInfo {
            mode: Mode::Looking,
            ..info()
        };
        let all = FourLetterWords::All;
        for w in [
            "srvr", "stat", "mntr", "conf", "cons", "wchs", "srst", "dirs",
        ] {
            assert_eq!(
                respond(w, &all, &looking),
                "This ZooKeeper instance is not currently serving requests\n",
                "{w}"
            );
        }
        assert_eq!(respond("ruok", &all, &looking), "imok");
        assert_eq!(respond("isro", &all, &looking), "null");
        assert!(respond("envi", &all, &looking).starts_with("Environment:\n"));
    }

    /// With the Prometheus provider, ZooKeeper 3.8's mntr is its three state lines and then
    /// every sample of the provider, values as Java doubles.
    #[test]
    fn mntr_with_the_prometheus_provider_prints_the_metric_samples() {
        let mut i = info();
        i.metrics = Some(vec![
            Family::gauge("znode_count", "Znodes", 14.0),
            Family::gauge("avg_latency", "Latency", 5.7826),
        ]);
        let text = respond("mntr", &FourLetterWords::All, &i);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("zk_version\t3.8.4-"), "{text}");
        assert_eq!(
            &lines[1..],
            [
                "zk_server_state\tfollower",
                "zk_peer_state\tfollowing - broadcast",
                "zk_znode_count\t14.0",
                "zk_avg_latency\t5.7826",
            ]
        );
    }

    #[test]
    fn average_latency_prints_as_zookeeper_3_8_prints_it() {
        // Values read from a live ZooKeeper 3.8 (`mntr` and `stat`).
        assert_eq!(avg_latency(0.0), "0.0");
        assert_eq!(avg_latency(7.75), "7.75");
        assert_eq!(avg_latency(1.046_875), "1.0469");
        assert_eq!(avg_latency(2.0), "2.0");
    }
}
