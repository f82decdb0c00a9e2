//! coord's metrics on Prometheus, turned on by ZooKeeper 3.6+'s own `metricsProvider.*` keys:
//! a three-node ensemble's `/metrics` against what its clients did (each node's own clients,
//! watches and connections; the leader's families on the leader only, and on the next leader
//! after the first is killed), `mntr` against `/metrics`, a real ZooKeeper 3.8 with its
//! Prometheus provider against coord after the same operations (names, types, label sets and
//! the values that must agree), and bad requests to the endpoint while the node goes on
//! serving ZooKeeper clients.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_e2e::{CoordCluster, CoordNode, ZooKeeperEnsemble};
use zookeeper_client as zk;

const PROMETHEUS: &str = "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\nmetricsProvider.httpHost=127.0.0.1\n";

fn own_port(_id: u64, spare: u16) -> String {
    format!("metricsProvider.httpPort={spare}\n")
}

/// The metrics address a node's file names.
fn metrics_addr_in(config: &std::path::Path) -> SocketAddr {
    let text = std::fs::read_to_string(config).unwrap();
    let port: u16 = text
        .lines()
        .find_map(|l| l.strip_prefix("metricsProvider.httpPort="))
        .unwrap_or_else(|| panic!("no httpPort in {}", config.display()))
        .trim()
        .parse()
        .unwrap();
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn metrics_addr(node: &CoordNode) -> SocketAddr {
    metrics_addr_in(&node.config)
}

/// One HTTP exchange on a new connection that the request asks to close; the whole answer.
fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A request the server refuses part-way may not be written whole; its answer still is.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The families of one scrape: name → type, and every sample.
#[derive(Debug, Default)]
struct Scrape {
    types: BTreeMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    /// Reads the text format, ZooKeeper's (`{quantile="0.5",}`, `14.0`) and coord's alike.
    fn parse(text: &str) -> Scrape {
        let mut s = Scrape::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                s.types.insert(name.to_string(), kind.to_string());
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => {
                    let labels = l
                        .trim_end_matches('}')
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            let (k, v) = p.split_once('=').unwrap();
                            (k.to_string(), v.trim_matches('"').to_string())
                        })
                        .collect();
                    (n.to_string(), labels)
                }
                None => (series.to_string(), BTreeMap::new()),
            };
            s.samples.push((name, labels, value.parse().unwrap()));
        }
        s
    }

    /// The unlabelled sample `name`.
    fn get(&self, name: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, l, _)| n == name && l.is_empty())
            .map(|(_, _, v)| *v)
    }

    fn value(&self, name: &str) -> f64 {
        self.get(name)
            .unwrap_or_else(|| panic!("no {name} in the scrape"))
    }

    fn labelled(&self, name: &str, label: &str, value: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, l, _)| n == name && l.get(label).map(String::as_str) == Some(value))
            .map(|(_, _, v)| *v)
    }

    /// A family's shape: each sample's name with its label names (and quantile values).
    fn shape(&self, family: &str) -> BTreeSet<String> {
        self.samples
            .iter()
            .filter(|(n, _, _)| {
                n == family
                    || n.strip_prefix(family)
                        .is_some_and(|s| ["_count", "_sum", "_bucket"].contains(&s))
            })
            .map(|(n, l, _)| {
                let labels: Vec<String> = l
                    .iter()
                    .map(|(k, v)| {
                        if k == "quantile" {
                            format!("{k}={v}")
                        } else {
                            k.clone()
                        }
                    })
                    .collect();
                format!("{n}{{{}}}", labels.join(","))
            })
            .collect()
    }

    /// ZooKeeper-named families: neither coord's Raft figures nor the JVM's or the process's.
    fn zookeeper_families(&self) -> BTreeMap<String, String> {
        self.types
            .iter()
            .filter(|(n, _)| {
                !n.starts_with("sluice_") && !n.starts_with("jvm_") && !n.starts_with("process_")
            })
            .map(|(n, t)| (n.clone(), t.clone()))
            .collect()
    }
}

fn scrape(addr: SocketAddr) -> Scrape {
    let answer = http(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    );
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer from {addr}: {answer:?}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    Scrape::parse(body)
}

/// `mntr`'s `zk_` keys and their values.
fn mntr(client: SocketAddr) -> BTreeMap<String, String> {
    sluice_e2e::four_letter_word(client, "mntr")
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('\t')?;
            Some((k.strip_prefix("zk_")?.to_string(), v.to_string()))
        })
        .collect()
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn connect(server: SocketAddr) -> zk::Client {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(6))
        .connect(&server.to_string())
        .await
        .unwrap_or_else(|e| panic!("connect {server}: {e}"))
}

/// A session and the watches it holds (kept alive while values are checked).
struct Held {
    _client: zk::Client,
    _watchers: Vec<zk::OneshotWatcher>,
}

/// What both systems are given, through one server: a session creates `/m` and five znodes of
/// 10 bytes under it, three ephemerals, and sets four data watches, an exists watch on a node
/// that does not exist and a child watch (6 watches).
async fn operate(server: SocketAddr) -> Held {
    let c = connect(server).await;
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    c.create("/m", b"", &persistent).await.unwrap();
    for i in 0..5 {
        c.create(&format!("/m/p{i}"), b"0123456789", &persistent)
            .await
            .unwrap();
    }
    for i in 0..3 {
        c.create(&format!("/m/e{i}"), b"y", &ephemeral)
            .await
            .unwrap();
    }
    let mut watchers = Vec::new();
    for i in 0..4 {
        watchers.push(c.get_and_watch_data(&format!("/m/p{i}")).await.unwrap().2);
    }
    watchers.push(c.check_and_watch_stat("/m/none").await.unwrap().1);
    watchers.push(c.get_and_watch_children("/m").await.unwrap().2);
    Held {
        _client: c,
        _watchers: watchers,
    }
}

/// Waits until every address's scrape satisfies `ok`; returns the scrapes.
fn settled(addrs: &[SocketAddr], what: &str, ok: impl Fn(usize, &Scrape) -> bool) -> Vec<Scrape> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let scrapes: Vec<Scrape> = addrs.iter().map(|a| scrape(*a)).collect();
        if scrapes.iter().enumerate().all(|(i, s)| ok(i, s)) {
            return scrapes;
        }
        if Instant::now() > deadline {
            let seen: Vec<BTreeMap<&str, Option<f64>>> = scrapes
                .iter()
                .map(|s| SHOWN_ON_FAILURE.iter().map(|n| (*n, s.get(n))).collect())
                .collect();
            panic!("{what}: not within 20 s; last seen {seen:#?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What a scrape that never settled showed.
const SHOWN_ON_FAILURE: &[&str] = &[
    "znode_count",
    "ephemerals_count",
    "global_sessions",
    "watch_count",
    "num_alive_connections",
    "learners",
    "synced_followers",
    "sluice_raft_leader_id",
];

/// The leader's own families (ZooKeeper 3.8 exports them on the leader only).
const LEADER_ONLY: &[&str] = &[
    "learners",
    "synced_followers",
    "synced_non_voting_followers",
    "pending_syncs",
    "leader_uptime",
    "last_proposal_size",
    "min_proposal_size",
    "max_proposal_size",
];

/// Values `mntr` and `/metrics` must both show the same (they do not move between the two
/// requests of this test).
const STABLE: &[&str] = &[
    "znode_count",
    "ephemerals_count",
    "approximate_data_size",
    "global_sessions",
    "local_sessions",
    "watch_count",
    "quorum_size",
    "synced_observers",
    "learners",
    "synced_followers",
    "pending_syncs",
    "outstanding_requests",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_exports_what_its_clients_did_and_the_leader_its_followers() {
    let mut cluster = CoordCluster::start_each(3, PROMETHEUS, &own_port);
    let addrs: Vec<SocketAddr> = cluster.nodes.iter().map(metrics_addr).collect();
    let leader = cluster.wait_for_leader(Duration::from_secs(30));

    // Client A on node 1: 9 znodes (3 ephemeral), 6 watches. Client B on node 2: 2 ephemerals
    // (outside /m, whose child watch would fire) and 2 exists watches.
    let a = operate(cluster.nodes[0].client).await;
    let b = connect(cluster.nodes[1].client).await;
    let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    b.create("/b0", b"", &ephemeral).await.unwrap();
    b.create("/b1", b"", &ephemeral).await.unwrap();
    let _b_watches = (
        b.check_and_watch_stat("/m/x0").await.unwrap().1,
        b.check_and_watch_stat("/m/x1").await.unwrap().1,
    );
    // A fresh tree counts 5 (ZooKeeper counts the root twice); then /m, 5 + 3 + 2 under it.
    let watches = [6.0, 2.0, 0.0];
    let connections = [1.0, 1.0, 0.0];
    let scrapes = settled(&addrs, "every node applied and counted", |i, s| {
        s.get("znode_count") == Some(16.0)
            && s.get("ephemerals_count") == Some(5.0)
            && s.get("global_sessions") == Some(2.0)
            && s.get("watch_count") == Some(watches[i])
            && s.get("num_alive_connections") == Some(connections[i])
    });
    let size = scrapes[0].value("approximate_data_size");
    for (i, s) in scrapes.iter().enumerate() {
        assert_eq!(s.value("approximate_data_size"), size, "node {}", i + 1);
        assert_eq!(s.value("quorum_size"), 3.0);
        assert_eq!(s.value("synced_observers"), 0.0);
        assert_eq!(s.value("local_sessions"), 0.0);
        assert_eq!(s.value("outstanding_requests"), 0.0);
        assert_eq!(s.types["readlatency"], "summary");
        assert!(s.value("fsynctime_count") > 0.0, "node {} fsynced", i + 1);
        assert!(s.value("election_time_count") >= 1.0);
        assert!(s.value("looking_count") >= 1.0);
        assert!(s.value("uptime") > 0.0);
        // The data directory's filesystem, as statvfs gives it (what the disk alert reads).
        let free = s.labelled("sluice_data_dir_free_bytes", "dir", "dataDir");
        let total = s.labelled("sluice_data_dir_size_bytes", "dir", "dataDir");
        assert!(
            matches!((free, total), (Some(f), Some(t)) if f > 0.0 && f <= t),
            "node {}: free {free:?} of {total:?}",
            i + 1
        );
        assert_eq!(
            s.value("sluice_raft_leader_id"),
            cluster.nodes[leader].id as f64
        );
        let is_leader = i == leader;
        assert_eq!(
            s.labelled("sluice_raft_state", "state", "leader"),
            Some(if is_leader { 1.0 } else { 0.0 })
        );
        for f in LEADER_ONLY {
            assert_eq!(
                s.types.contains_key(*f),
                is_leader,
                "{f} on node {} (leader: node {})",
                i + 1,
                leader + 1
            );
        }
    }
    let l = &scrapes[leader];
    assert_eq!(l.value("learners"), 2.0);
    assert_eq!(l.value("synced_followers"), 2.0);
    assert_eq!(l.value("synced_non_voting_followers"), 0.0);
    assert_eq!(l.value("pending_syncs"), 0.0);
    assert!(l.value("leader_uptime") > 0.0);
    assert!(l.value("max_proposal_size") >= l.value("min_proposal_size"));
    assert!(l.value("min_proposal_size") > 0.0);
    // Requests by kind where they were made: node 1 took 9 creates and 6 reads, node 3 none.
    assert!(scrapes[0].value("updatelatency_count") >= 9.0);
    assert!(scrapes[0].value("readlatency_count") >= 6.0);
    assert_eq!(scrapes[2].value("updatelatency_count"), 0.0);
    let applied: Vec<f64> = scrapes
        .iter()
        .map(|s| s.value("sluice_raft_applied_index"))
        .collect();
    assert!(
        applied.iter().all(|a| *a == applied[0] && *a > 0.0),
        "{applied:?}"
    );

    // mntr prints the same samples with the same values (its own connection aside: it is
    // open while mntr counts, as in ZooKeeper).
    for (i, node) in cluster.nodes.iter().enumerate() {
        let s = scrape(addrs[i]);
        let m = mntr(node.client);
        for key in STABLE {
            let Some(v) = s.get(key) else { continue };
            let printed: f64 = m[*key].parse().unwrap();
            assert_eq!(printed, v, "{key} on node {}", i + 1);
        }
        let alive: f64 = m["num_alive_connections"].parse().unwrap();
        assert_eq!(alive, s.value("num_alive_connections") + 1.0);
        let scraped: BTreeSet<String> = s
            .samples
            .iter()
            .map(|(n, l, _)| {
                if l.is_empty() {
                    n.clone()
                } else {
                    let l: Vec<String> = l.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                    format!("{n}{{{}}}", l.join(","))
                }
            })
            .collect();
        let printed: BTreeSet<String> = m
            .keys()
            .filter(|k| !["version", "server_state", "peer_state"].contains(&k.as_str()))
            .cloned()
            .collect();
        assert_eq!(printed, scraped, "mntr's keys are /metrics' samples");
    }

    // How long a scrape takes, on one kept-alive connection as Prometheus scrapes.
    let mut times = Vec::new();
    let mut conn = TcpStream::connect(addrs[leader]).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for _ in 0..200 {
        let started = Instant::now();
        conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        read_response(&mut conn);
        times.push(started.elapsed());
    }
    times.sort();
    let (p50, p99) = (times[100], times[198]);
    eprintln!(
        "GET /metrics on the leader: p50 {p50:?}, p99 {p99:?}, max {:?}",
        times[199]
    );
    assert!(p50 < Duration::from_millis(50), "p50 {p50:?}");

    // Client A leaves: its ephemerals, watches and connection go.
    drop(a);
    let scrapes = settled(&addrs, "client A's session closed", |i, s| {
        s.get("ephemerals_count") == Some(2.0)
            && s.get("global_sessions") == Some(1.0)
            && s.get("watch_count") == Some([0.0, 2.0, 0.0][i])
            && s.get("num_alive_connections") == Some([0.0, 1.0, 0.0][i])
    });
    assert_eq!(scrapes[0].value("znode_count"), 13.0);

    // The leader is killed: the next one has one follower left to count, and the survivors
    // have been through another time without a leader.
    let looking_before: Vec<f64> = scrapes.iter().map(|s| s.value("looking_count")).collect();
    cluster.nodes[leader].kill();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let survivor_addrs: Vec<SocketAddr> = survivors.iter().map(|i| addrs[*i]).collect();
    let scrapes = settled(
        &survivor_addrs,
        "a new leader counts one follower",
        |_, s| {
            s.get("sluice_raft_leader_id").is_some_and(|l| l > 0.0)
                && s.get("sluice_raft_leader_id") != Some(cluster.nodes[leader].id as f64)
                && (s.labelled("sluice_raft_state", "state", "leader") == Some(0.0)
                    || (s.get("learners") == Some(1.0) && s.get("synced_followers") == Some(1.0)))
        },
    );
    let new_leader: Vec<&Scrape> = scrapes
        .iter()
        .filter(|s| s.labelled("sluice_raft_state", "state", "leader") == Some(1.0))
        .collect();
    assert_eq!(new_leader.len(), 1);
    assert_eq!(new_leader[0].value("quorum_size"), 3.0);
    for (s, i) in scrapes.iter().zip(&survivors) {
        assert!(
            s.value("looking_count") > looking_before[*i],
            "node {} counted the time without a leader",
            i + 1
        );
        assert!(s.value("election_time_count") >= 2.0);
        assert!(s.value("sluice_raft_elections_total") >= 1.0);
        assert_eq!(
            s.types.contains_key("learners"),
            s.labelled("sluice_raft_state", "state", "leader") == Some(1.0)
        );
    }
    drop(b);
}

/// Reads one response with a Content-Length body from a kept-alive connection.
fn read_response(conn: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = conn.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed mid-response");
        got.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            if body.len() >= len {
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                return body.to_string();
            }
        }
    }
}

/// What ZooKeeper 3.8's provider exports and coord leaves out, with no honest value for it
/// (docs/operations.md, "Metrics", says why for each): on every server ...
const LEFT_OUT: &[&str] = &[
    "ack_latency",
    "add_dead_watcher_stall_time",
    "close_session_prep_time",
    "commit_commit_proc_req_queued",
    "commit_count",
    "commit_process_time",
    "commit_propagation_latency",
    "concurrent_request_processing_in_commit_processor",
    "connection_drop_count",
    "connection_drop_probability",
    "connection_revalidate_count",
    "connection_token_deficit",
    "dbinittime",
    "dead_watchers_cleaner_latency",
    "dead_watchers_cleared",
    "dead_watchers_queued",
    "diff_count",
    "digest_mismatches_count",
    "ensemble_auth_fail",
    "ensemble_auth_skip",
    "ensemble_auth_success",
    "follower_sync_time",
    "inflight_diff_count",
    "inflight_snap_count",
    "insecure_admin_count",
    "large_requests_rejected",
    "leader_unavailable_time",
    "learner_commit_received_count",
    "learner_handler_qp_size",
    "learner_handler_qp_time_ms",
    "learner_proposal_received_count",
    "learner_request_processor_queue_size",
    "local_write_committed_time_ms",
    "netty_queued_buffer_capacity",
    "node_changed_watch_count",
    "node_children_watch_count",
    "node_created_watch_count",
    "node_deleted_watch_count",
    "non_mtls_local_conn_count",
    "non_mtls_remote_conn_count",
    "observer_sync_time",
    "om_commit_process_time_ms",
    "om_proposal_process_time_ms",
    "outstanding_changes_queued",
    "outstanding_changes_removed",
    "outstanding_tls_handshake",
    "pending_session_queue_size",
    "prep_process_time",
    "prep_processor_queue_size",
    "prep_processor_queue_time_ms",
    "prep_processor_request_queued",
    "propagation_latency",
    "proposal_ack_creation_latency",
    "proposal_count",
    "proposal_latency",
    "proposal_process_time",
    "quit_leading_due_to_disloyal_voter",
    "quorum_ack_latency",
    "quota_bytes_limit_per_namespace",
    "quota_bytes_usage_per_namespace",
    "quota_count_limit_per_namespace",
    "quota_count_usage_per_namespace",
    "quota_exceeded_error_per_namespace",
    "read_commit_proc_issued",
    "read_commit_proc_req_queued",
    "read_commitproc_time_ms",
    "read_final_proc_time_ms",
    "read_per_namespace",
    "reads_after_write_in_session_queue",
    "reads_issued_from_session_queue",
    "request_commit_queued",
    "request_throttle_queue_time_ms",
    "request_throttle_wait_count",
    "requests_in_session_queue",
    "requests_not_forwarded_to_commit_processor",
    "response_bytes",
    "response_packet_cache_hits",
    "response_packet_cache_misses",
    "response_packet_get_children_cache_hits",
    "response_packet_get_children_cache_misses",
    "revalidate_count",
    "server_write_committed_time_ms",
    "session_queues_drained",
    "sessionless_connections_expired",
    "skip_learner_request_to_next_processor_count",
    "socket_closing_time",
    "stale_replies",
    "stale_requests",
    "stale_requests_dropped",
    "startup_txns_load_time",
    "startup_txns_loaded",
    "sync_process_time",
    "sync_processor_batch_size",
    "sync_processor_queue_and_flush_time_ms",
    "sync_processor_queue_flush_time_ms",
    "sync_processor_queue_size",
    "sync_processor_queue_time_ms",
    "sync_processor_request_queued",
    "throttled_ops",
    "time_waiting_empty_pool_in_commit_processor_read_ms",
    "tls_handshake_exceeded",
    "unavailable_time",
    "unrecoverable_error_count",
    "unsuccessful_handshake",
    "watch_bytes",
    "write_batch_time_in_commit_processor",
    "write_commit_proc_issued",
    "write_commit_proc_req_queued",
    "write_commitproc_time_ms",
    "write_final_proc_time_ms",
    "write_per_namespace",
];

/// Values both systems must show after the same operations, with the node the client used,
/// the leader, and a follower without clients paired by role.
const AGREE: &[&str] = &[
    "znode_count",
    "ephemerals_count",
    "approximate_data_size",
    "global_sessions",
    "local_sessions",
    "quorum_size",
    "synced_observers",
    "outstanding_requests",
];
const AGREE_ON_LEADER: &[&str] = &[
    "learners",
    "synced_followers",
    "synced_non_voting_followers",
    "pending_syncs",
];

/// Scrapes of the three servers after [`operate`] through a follower, paired by role: the
/// client's follower, the leader, the other follower.
struct Seen {
    scrapes: Vec<Scrape>,
    mntr_keys: Vec<BTreeSet<String>>,
}

async fn after_operations(clients: [SocketAddr; 3], metrics: [SocketAddr; 3]) -> Seen {
    let leader = (0..3)
        .find(|i| sluice_e2e::mode(clients[*i]).as_deref() == Some("leader"))
        .expect("a leader");
    let mut order: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    order.insert(1, leader);
    let clients = order.iter().map(|i| clients[*i]).collect::<Vec<_>>();
    let metrics = order.iter().map(|i| metrics[*i]).collect::<Vec<_>>();
    // A new coord ensemble's leader writes /zookeeper/config a moment after it is elected
    // (ZooKeeper has it at once); its data counts in approximate_data_size.
    let c = connect(clients[0]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        c.sync("/zookeeper/config").await.unwrap();
        if !c.get_config().await.unwrap().0.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no /zookeeper/config within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(c);
    let held = operate(clients[0]).await;
    let scrapes = settled(&metrics, "every server applied the operations", |i, s| {
        s.get("znode_count") == Some(14.0)
            && s.get("ephemerals_count") == Some(3.0)
            && s.get("watch_count") == Some(if i == 0 { 6.0 } else { 0.0 })
            && s.get("num_alive_connections") == Some(if i == 0 { 1.0 } else { 0.0 })
    });
    let mntr_keys = clients
        .iter()
        .map(|c| mntr(*c).into_keys().collect())
        .collect();
    drop(held);
    Seen { scrapes, mntr_keys }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_types_labels_and_values_are_zookeeper_3_8s() {
    let zk_seen = {
        let zk = ZooKeeperEnsemble::start_each(
            PROMETHEUS,
            &sluice_e2e::zookeeper_prometheus_classpath(),
            &own_port,
        );
        let metrics =
            [1, 2, 3].map(|id| metrics_addr_in(&zk.dir.path().join(format!("zoo-{id}.cfg"))));
        after_operations([0, 1, 2].map(|i| zk.client(i)), metrics).await
    };
    let coord_seen = {
        let cluster = CoordCluster::start_each(3, PROMETHEUS, &own_port);
        let clients = [0, 1, 2].map(|i| cluster.nodes[i].client);
        let metrics = [0, 1, 2].map(|i| metrics_addr(&cluster.nodes[i]));
        after_operations(clients, metrics).await
    };

    // Servers paired by role: the client's follower, the leader, the other follower.
    for i in 0..3 {
        let (zs, cs) = (&zk_seen.scrapes[i], &coord_seen.scrapes[i]);
        let (zf, cf) = (zs.zookeeper_families(), cs.zookeeper_families());
        // Every ZooKeeper family coord exports has ZooKeeper's type and shape ...
        for (name, kind) in &cf {
            assert_eq!(
                zf.get(name),
                Some(kind),
                "{name}: coord's type against ZooKeeper's"
            );
            assert_eq!(cs.shape(name), zs.shape(name), "{name}: samples and labels");
        }
        // ... and what coord leaves out is the documented list, whatever the role.
        let missing: BTreeSet<&str> = zf
            .keys()
            .map(String::as_str)
            .filter(|n| !cf.contains_key(*n))
            .collect();
        let expected: BTreeSet<&str> = LEFT_OUT
            .iter()
            .copied()
            .filter(|n| zf.contains_key(*n))
            .collect();
        assert_eq!(
            missing, expected,
            "ZooKeeper's families coord does not export"
        );
        // The process families have simpleclient's types.
        for (name, kind) in cs.types.iter().filter(|(n, _)| n.starts_with("process_")) {
            assert_eq!(zs.types.get(name), Some(kind), "{name}");
        }
        for name in AGREE {
            assert_eq!(cs.get(name), zs.get(name), "{name}");
        }
        // mntr: coord prints no key ZooKeeper's provider would not (its Raft figures aside).
        let extra: Vec<&String> = coord_seen.mntr_keys[i]
            .iter()
            .filter(|k| !k.starts_with("sluice_") && !zk_seen.mntr_keys[i].contains(*k))
            .collect();
        assert!(
            extra.is_empty(),
            "mntr keys ZooKeeper does not print: {extra:?}"
        );
    }
    let (zl, cl) = (&zk_seen.scrapes[1], &coord_seen.scrapes[1]);
    for name in AGREE_ON_LEADER {
        assert_eq!(cl.get(name), zl.get(name), "{name} on the leader");
    }
    for name in ["watch_count", "num_alive_connections"] {
        assert_eq!(
            coord_seen.scrapes[0].get(name),
            zk_seen.scrapes[0].get(name),
            "{name} on the client's server"
        );
    }
    eprintln!(
        "ZooKeeper 3.8 exports {} families on its leader (JVM and process ones aside), coord {} of them",
        zl.zookeeper_families().len(),
        cl.zookeeper_families().len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_to_the_endpoint_leave_the_node_serving() {
    let cluster = CoordCluster::start_each(1, PROMETHEUS, &own_port);
    let node = &cluster.nodes[0];
    let addr = metrics_addr(node);
    for (request, status) in [
        (&b"garbage\r\n\r\n"[..], "HTTP/1.1 400"),
        (
            b"POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
            "HTTP/1.1 405",
        ),
        (
            b"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
            "HTTP/1.1 400",
        ),
        (b"GET /admin HTTP/1.1\r\n\r\n", "HTTP/1.1 404"),
        (b"GET /metrics HTTP/2.0\r\n\r\n", "HTTP/1.1 400"),
        (b"\x00\x01\x02\xff\xfe\r\n\r\n", "HTTP/1.1 400"),
    ] {
        let answer = http(addr, request);
        assert!(answer.starts_with(status), "{request:?}: {answer:?}");
    }
    let huge = format!("GET /{} HTTP/1.1\r\n", "a".repeat(16 * 1024));
    let answer = http(addr, huge.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    // A client that sends half a request and goes away, and more idle connections than the
    // endpoint serves at once: the node serves ZooKeeper clients meanwhile.
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"GET /metr").unwrap();
    drop(half);
    let idle: Vec<TcpStream> = (0..40).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let c = connect(node.client).await;
    c.create(
        "/still",
        b"serving",
        &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
    )
    .await
    .unwrap();
    assert_eq!(c.get_data("/still").await.unwrap().0, b"serving");
    assert_eq!(sluice_e2e::four_letter_word(node.client, "ruok"), "imok");
    drop(idle);
    wait_until(
        "the endpoint answers again",
        Duration::from_secs(10),
        || {
            let answer = http(addr, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
            answer.starts_with("HTTP/1.1 200") && answer.contains("\nznode_count 6\n")
        },
    );
    // Standalone, as ZooKeeper standalone: neither quorum_size nor the leader's families.
    let s = scrape(addr);
    for f in [
        "quorum_size",
        "synced_observers",
        "learners",
        "leader_uptime",
    ] {
        assert!(!s.types.contains_key(f), "{f} standalone");
    }
    assert!(s.value("process_resident_memory_bytes") > 0.0);
    assert!(s.value("process_open_fds") > 0.0);
    drop(c);

    // A metrics port already taken stops a node at start, naming it, as ZooKeeper exits
    // when its provider cannot start.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zookeeper.properties");
    std::fs::write(
        &config,
        format!(
            "dataDir={}\nclientPort={}\n{PROMETHEUS}metricsProvider.httpPort={port}\n",
            dir.path().display(),
            sluice_e2e::free_port()
        ),
    )
    .unwrap();
    let out = Command::new(sluice_e2e::binary("coord"))
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot serve metrics on 127.0.0.1:{port}")),
        "{stderr}"
    );
}
