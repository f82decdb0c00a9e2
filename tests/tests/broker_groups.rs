//! Consumer groups through the broker with real clients: librdkafka (`rdkafka`) members
//! splitting a topic's partitions and rebalancing when one leaves or dies, kcat's balanced
//! consumer, committed offsets surviving consumer and broker restarts (SIGTERM and SIGKILL),
//! Debian's kafka-python consumer and admin client, Debian's Burrow reading lag from
//! `__consumer_offsets`, and OffsetCommit in each group state with raw requests (the codes
//! Apache Kafka 4.1 gives).

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice_e2e::{BrokerNode, CoordCluster};

/// Writes `n` records round-robin over `partitions` partitions of `topic`.
async fn produce(bootstrap: &str, topic: &str, partitions: i32, n: usize) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "20000")
        .set("linger.ms", "1")
        .create()
        .expect("producer");
    for i in 0..n {
        let v = format!("v{i}");
        p.send(
            FutureRecord::<(), _>::to(topic)
                .payload(&v)
                .partition(i as i32 % partitions),
            Duration::from_secs(20),
        )
        .await
        .expect("acknowledged");
    }
}

fn member(bootstrap: &str, group: &str) -> BaseConsumer {
    member_with(bootstrap, group, "range,roundrobin")
}

fn member_with(bootstrap: &str, group: &str, strategy: &str) -> BaseConsumer {
    member_with_session(bootstrap, group, strategy, 6000)
}

fn member_with_session(
    bootstrap: &str,
    group: &str,
    strategy: &str,
    session_ms: u32,
) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("partition.assignment.strategy", strategy)
        .set("group.id", group)
        .set("session.timeout.ms", session_ms.to_string())
        .set("heartbeat.interval.ms", "500")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

fn assigned(c: &BaseConsumer) -> BTreeSet<i32> {
    c.assignment()
        .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// Polls every consumer until `done` holds (or panics after `timeout`); returns the
/// `(partition, offset)` of every record seen, per consumer.
fn poll_until(
    consumers: &[&BaseConsumer],
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&[&BaseConsumer], &[Vec<(i32, i64)>]) -> bool,
) -> Vec<Vec<(i32, i64)>> {
    let deadline = Instant::now() + timeout;
    let mut seen = vec![Vec::new(); consumers.len()];
    loop {
        for (i, c) in consumers.iter().enumerate() {
            while let Some(r) = c.poll(Duration::from_millis(20)) {
                if let Ok(m) = r {
                    seen[i].push((m.partition(), m.offset()));
                }
            }
        }
        if done(consumers, &seen) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}; seen {seen:?}"
        );
    }
}

fn broker_with(coord: &CoordCluster, partitions: i32) -> BrokerNode {
    BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        &format!("num.partitions={partitions}\noffsets.topic.num.partitions=5\n"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rdkafka_members_split_the_partitions_and_rebalance_when_one_leaves() {
    split_and_leave("range,roundrobin").await;
}

/// The broker only relays assignments, so librdkafka's incremental assignor works too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_members_split_and_rebalance() {
    split_and_leave("cooperative-sticky").await;
}

async fn split_and_leave(strategy: &'static str) {
    let coord = CoordCluster::start(1, "");
    let broker = broker_with(&coord, 4);
    let b = broker.bootstrap();
    produce(&b, "events", 4, 40).await;
    tokio::task::spawn_blocking(move || {
        // A long session timeout, so that a rebalance on leaving is told apart from one on
        // timing out by a wide margin, whatever the machine's load.
        let c1 = member_with_session(&b, "split", strategy, 45_000);
        let c2 = member_with_session(&b, "split", strategy, 45_000);
        c1.subscribe(&["events"]).unwrap();
        c2.subscribe(&["events"]).unwrap();
        let seen = poll_until(
            &[&c1, &c2],
            Duration::from_secs(60),
            "both members share the topic",
            |cs, seen| {
                let (a1, a2) = (assigned(cs[0]), assigned(cs[1]));
                let total: BTreeSet<(i32, i64)> = seen.iter().flatten().copied().collect();
                !a1.is_empty()
                    && !a2.is_empty()
                    && a1.is_disjoint(&a2)
                    && a1.union(&a2).count() == 4
                    && total.len() == 40
            },
        );
        let all: Vec<(i32, i64)> = seen.iter().flatten().copied().collect();
        let unique: BTreeSet<(i32, i64)> = all.iter().copied().collect();
        assert_eq!(unique.len(), 40, "every record once per offset");

        // A member that closes leaves the group at once (no session timeout to wait for).
        drop(c2);
        let left = Instant::now();
        poll_until(
            &[&c1],
            Duration::from_secs(30),
            "the remaining member has everything",
            |cs, _| assigned(cs[0]).len() == 4,
        );
        println!("rebalanced {:?} after a member left", left.elapsed());
        assert!(
            left.elapsed() < Duration::from_secs(30),
            "rebalanced by LeaveGroup, not the 45 s session timeout: took {:?}",
            left.elapsed()
        );
    })
    .await
    .unwrap();
}

fn kcat_member(bootstrap: &str, group: &str, topic: &str, out: &std::path::Path) -> Child {
    Command::new("kcat")
        .args([
            "-b",
            bootstrap,
            "-G",
            group,
            "-X",
            "auto.offset.reset=earliest",
            "-X",
            "session.timeout.ms=6000",
            "-X",
            "heartbeat.interval.ms=500",
            "-f",
            "%p:%o\n",
            "-u",
            topic,
        ])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(std::fs::File::create(out.with_extension("err")).unwrap())
        .spawn()
        .expect("kcat (Debian package kcat, installed by scripts/setup.sh)")
}

fn kcat_records(out: &std::path::Path) -> BTreeSet<(i32, i64)> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (p, o) = l.split_once(':')?;
            Some((p.parse().ok()?, o.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_balanced_consumer_shares_with_rdkafka_and_a_killed_member_times_out() {
    let coord = CoordCluster::start(1, "");
    let broker = broker_with(&coord, 4);
    let b = broker.bootstrap();
    produce(&b, "logs", 4, 40).await;
    let out = coord.dir.path().join("kcat.out");
    tokio::task::spawn_blocking(move || {
        let mut kcat = kcat_member(&b, "mixed", "logs", &out);
        let c1 = member(&b, "mixed");
        c1.subscribe(&["logs"]).unwrap();
        // c1 may read everything before kcat joins; then kcat reads its share again (nothing
        // is committed): wait until each partition not assigned to c1 was read by kcat.
        poll_until(
            &[&c1],
            Duration::from_secs(60),
            "kcat and rdkafka share the topic",
            |cs, seen| {
                let mine = assigned(cs[0]);
                let from_kcat = kcat_records(&out);
                let mut all: BTreeSet<(i32, i64)> = seen[0].iter().copied().collect();
                all.extend(from_kcat.iter().copied());
                !mine.is_empty()
                    && mine.len() < 4
                    && all.len() == 40
                    && (0..4)
                        .filter(|p| !mine.contains(p))
                        .all(|p| from_kcat.iter().filter(|(kp, _)| *kp == p).count() == 10)
            },
        );

        // kcat dies without leaving: after its session timeout (6 s) c1 takes everything.
        let _ = kcat.kill();
        let _ = kcat.wait();
        let died = Instant::now();
        poll_until(
            &[&c1],
            Duration::from_secs(40),
            "the survivor has everything",
            |cs, _| assigned(cs[0]).len() == 4,
        );
        let took = died.elapsed();
        assert!(
            took >= Duration::from_secs(3),
            "a dead member is noticed by its session timeout, took {took:?}"
        );
    })
    .await
    .unwrap();
}

/// A fresh member of `group` reads `topic` until `n` records; returns the first offset seen
/// per partition, then commits synchronously and closes.
fn resume(bootstrap: &str, group: &str, topic: &str, n: usize) -> BTreeMap<i32, i64> {
    let c = member(bootstrap, group);
    c.subscribe(&[topic]).unwrap();
    let seen = poll_until(
        &[&c],
        Duration::from_secs(60),
        "the new records arrive",
        |_, seen| seen[0].len() >= n,
    );
    let mut first = BTreeMap::new();
    for (p, o) in &seen[0] {
        first.entry(*p).or_insert(*o);
    }
    assert_eq!(
        seen[0].len(),
        n,
        "only the records after the committed offsets: {seen:?}"
    );
    c.commit_consumer_state(CommitMode::Sync).expect("commit");
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_consumer_and_broker_restarts() {
    let coord = CoordCluster::start(1, "");
    let mut broker = broker_with(&coord, 2);
    let b = broker.bootstrap();
    produce(&b, "orders", 2, 20).await;
    let first = tokio::task::spawn_blocking({
        let b = b.clone();
        move || resume(&b, "billing", "orders", 20)
    })
    .await
    .unwrap();
    assert_eq!(first, BTreeMap::from([(0, 0), (1, 0)]));

    // New consumer process, same group: it resumes at the commits.
    produce(&b, "orders", 2, 10).await;
    let first = tokio::task::spawn_blocking({
        let b = b.clone();
        move || resume(&b, "billing", "orders", 10)
    })
    .await
    .unwrap();
    assert_eq!(first, BTreeMap::from([(0, 10), (1, 10)]));

    // Broker stopped cleanly, then killed: the commits are reloaded from __consumer_offsets.
    for (round, clean) in [(0i64, true), (1, false)] {
        if clean {
            assert_eq!(broker.stop(), Some(0));
        } else {
            broker.kill();
        }
        broker.spawn();
        broker.wait_until_listening(Duration::from_secs(60));
        produce(&b, "orders", 2, 10).await;
        let first = tokio::task::spawn_blocking({
            let b = b.clone();
            move || resume(&b, "billing", "orders", 10)
        })
        .await
        .unwrap();
        let at = 15 + 5 * round;
        assert_eq!(
            first,
            BTreeMap::from([(0, at), (1, at)]),
            "after a {} restart",
            if clean { "clean" } else { "SIGKILL" }
        );
    }
    assert!(broker
        .log_text()
        .contains("loaded groups from __consumer_offsets"));

    // What lag monitors read: Kafka's offset-commit keys (version 1: group, topic, partition)
    // and group-metadata keys (version 2), readable by any consumer of the topic.
    let keys = tokio::task::spawn_blocking(move || offsets_topic_keys(&b))
        .await
        .unwrap();
    let mut want = vec![0u8, 1, 0, 7];
    want.extend_from_slice(b"billing");
    want.extend_from_slice(&[0, 6]);
    want.extend_from_slice(b"orders");
    assert!(
        keys.iter().any(|k| k.starts_with(&want)),
        "offset commit keys: {keys:?}"
    );
    let group_key = [&[0u8, 2, 0, 7][..], b"billing"].concat();
    assert!(keys.contains(&group_key), "group keys: {keys:?}");
}

/// Every record key of `__consumer_offsets` (5 partitions in these tests).
fn offsets_topic_keys(bootstrap: &str) -> Vec<Vec<u8>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..5 {
        tpl.add_partition_offset("__consumer_offsets", p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut keys = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            keys.push(m.key().unwrap_or_default().to_vec());
        }
    }
    keys
}

const KAFKA_PYTHON: &str = r#"
import json, sys
from kafka import KafkaConsumer, KafkaAdminClient
bootstrap, topic = sys.argv[1], sys.argv[2]
c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id='py-group', client_id='py-client',
                  auto_offset_reset='earliest', enable_auto_commit=False, consumer_timeout_ms=20000)
n = 0
for m in c:
    n += 1
    if n >= 12:
        break
c.commit()
admin = KafkaAdminClient(bootstrap_servers=bootstrap)
listed = admin.list_consumer_groups()
desc = admin.describe_consumer_groups(['py-group'])[0]
offsets = admin.list_consumer_group_offsets('py-group')
print(json.dumps({
    'consumed': n,
    'listed': [list(g) for g in listed],
    'state': desc.state,
    'protocol': desc.protocol,
    'members': [[m.client_id, m.member_id] for m in desc.members],
    'offsets': sorted([tp.partition, o.offset] for tp, o in offsets.items()),
}))
c.close()
admin.close()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_consumer_group_and_admin() {
    let coord = CoordCluster::start(1, "");
    let broker = broker_with(&coord, 3);
    let b = broker.bootstrap();
    produce(&b, "clicks", 3, 12).await;
    let out = tokio::task::spawn_blocking(move || {
        Command::new("/usr/bin/python3")
            .args(["-c", KAFKA_PYTHON, &b, "clicks"])
            .output()
            .expect("/usr/bin/python3 with python3-kafka (scripts/setup.sh)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "kafka-python failed:\n{stdout}\n{stderr}\n{}",
        broker.log_text()
    );
    assert!(stdout.contains(r#""consumed": 12"#), "{stdout}");
    assert!(stdout.contains(r#"["py-group", "consumer"]"#), "{stdout}");
    assert!(stdout.contains(r#""state": "Stable""#), "{stdout}");
    assert!(stdout.contains(r#""protocol": "range""#), "{stdout}");
    assert!(stdout.contains(r#""py-client""#), "{stdout}");
    assert!(
        stdout.contains(r#""offsets": [[0, 4], [1, 4], [2, 4]]"#),
        "{stdout}"
    );
}

/// Raw group requests for [`offset_commits_follow_the_group_state_as_kafka_does`].
mod raw {
    use bytes::Bytes;
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
    use kafka_protocol::messages::{
        ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest,
        HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, OffsetCommitRequest,
        OffsetCommitResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
    };
    use kafka_protocol::protocol::{Decodable, StrBytes};
    use sluice_kafka::client::Conn;

    fn s(x: &str) -> StrBytes {
        StrBytes::from_string(x.to_string())
    }

    pub fn join_request(group: &str, member: &str) -> JoinGroupRequest {
        let mut r = JoinGroupRequest::default();
        r.group_id = GroupId(s(group));
        r.session_timeout_ms = 30_000;
        r.rebalance_timeout_ms = 10_000;
        r.member_id = s(member);
        r.protocol_type = s("consumer");
        let mut p = JoinGroupRequestProtocol::default();
        p.name = s("range");
        p.metadata = Bytes::from_static(&[0; 10]);
        r.protocols.push(p);
        r
    }

    /// FindCoordinator, which also creates `__consumer_offsets` on first use (as clients do
    /// before joining).
    pub fn find_coordinator(c: &mut Conn, group: &str) {
        let mut r = FindCoordinatorRequest::default();
        r.key = s(group);
        let _: FindCoordinatorResponse = c.call(ApiKey::FindCoordinator, 3, &r).unwrap();
    }

    pub fn join(c: &mut Conn, group: &str, member: &str) -> JoinGroupResponse {
        c.call(ApiKey::JoinGroup, 7, &join_request(group, member))
            .unwrap()
    }

    /// The answer to a JoinGroup sent earlier with `Conn::send`.
    pub fn joined(c: &mut Conn) -> JoinGroupResponse {
        let (_, _, mut body) = c.receive().unwrap();
        JoinGroupResponse::decode(&mut body, 7).unwrap()
    }

    pub fn sync(c: &mut Conn, group: &str, generation: i32, member: &str) -> i16 {
        let mut r = SyncGroupRequest::default();
        r.group_id = GroupId(s(group));
        r.generation_id = generation;
        r.member_id = s(member);
        r.protocol_type = Some(s("consumer"));
        r.protocol_name = Some(s("range"));
        let mut a = SyncGroupRequestAssignment::default();
        a.member_id = s(member);
        r.assignments.push(a);
        let resp: SyncGroupResponse = c.call(ApiKey::SyncGroup, 5, &r).unwrap();
        resp.error_code
    }

    pub fn heartbeat(c: &mut Conn, group: &str, generation: i32, member: &str) -> i16 {
        let mut r = HeartbeatRequest::default();
        r.group_id = GroupId(s(group));
        r.generation_id = generation;
        r.member_id = s(member);
        let resp: HeartbeatResponse = c.call(ApiKey::Heartbeat, 4, &r).unwrap();
        resp.error_code
    }

    pub fn commit(c: &mut Conn, group: &str, topic: &str, generation: i32, member: &str) -> i16 {
        let mut r = OffsetCommitRequest::default();
        r.group_id = GroupId(s(group));
        r.generation_id_or_member_epoch = generation;
        r.member_id = s(member);
        let mut t = OffsetCommitRequestTopic::default();
        t.name = TopicName(s(topic));
        let mut p = OffsetCommitRequestPartition::default();
        p.committed_offset = 1;
        t.partitions.push(p);
        r.topics.push(t);
        let resp: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &r).unwrap();
        resp.topics[0].partitions[0].error_code
    }
}

/// OffsetCommit against each state of a group, step by step with raw requests; every code is
/// the one Apache Kafka 4.1 gave the same sequence. A commit while the group is completing a
/// rebalance (joined, not yet synced) is refused with REBALANCE_IN_PROGRESS, one with an old
/// generation with ILLEGAL_GENERATION, so a stale member cannot move the group's offsets; a
/// commit in the current generation while a rebalance is only being prepared is accepted (the
/// members are still the old generation's owners, and commit before they rejoin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_commits_follow_the_group_state_as_kafka_does() {
    use sluice_kafka::client::Conn;
    const NONE: i16 = 0;
    const ILLEGAL_GENERATION: i16 = 22;
    const UNKNOWN_MEMBER_ID: i16 = 25;
    const REBALANCE_IN_PROGRESS: i16 = 27;
    const MEMBER_ID_REQUIRED: i16 = 79;

    let coord = CoordCluster::start(1, "");
    let broker = broker_with(&coord, 1);
    let b = broker.bootstrap();
    produce(&b, "commits", 1, 1).await;
    let addr = broker.addr();
    let (g, t) = ("g-commits", "commits");
    tokio::task::spawn_blocking(move || {
        let mut a = Conn::connect(addr, "member-a").unwrap();
        let mut b = Conn::connect(addr, "member-b").unwrap();
        // The coordinator is ready once `__consumer_offsets` exists and is loaded.
        let deadline = Instant::now() + Duration::from_secs(30);
        let first = loop {
            raw::find_coordinator(&mut a, g);
            let r = raw::join(&mut a, g, "");
            if !matches!(r.error_code, 14..=16) || Instant::now() > deadline {
                break r;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
        let ma = first.member_id.to_string();
        let j = raw::join(&mut a, g, &ma);
        assert_eq!(j.error_code, NONE);
        let gen1 = j.generation_id;
        // Joined, not synced: completing the rebalance.
        assert_eq!(raw::commit(&mut a, g, t, gen1, &ma), REBALANCE_IN_PROGRESS);
        assert_eq!(raw::sync(&mut a, g, gen1, &ma), NONE);
        // Stable.
        assert_eq!(raw::commit(&mut a, g, t, gen1, &ma), NONE);
        assert_eq!(raw::commit(&mut a, g, t, gen1 + 5, &ma), ILLEGAL_GENERATION);
        assert_eq!(raw::commit(&mut a, g, t, gen1, "nobody"), UNKNOWN_MEMBER_ID);
        assert_eq!(raw::commit(&mut a, g, t, -1, ""), UNKNOWN_MEMBER_ID);
        // A second member joins: the rebalance is prepared while A has not rejoined.
        let mb = raw::join(&mut b, g, "").member_id.to_string();
        b.send(ApiKey::JoinGroup, 7, &raw::join_request(g, &mb))
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(raw::commit(&mut a, g, t, gen1, &ma), NONE);
        assert_eq!(raw::heartbeat(&mut a, g, gen1, &ma), REBALANCE_IN_PROGRESS);
        // Both rejoin: a new generation, completing its rebalance.
        a.send(ApiKey::JoinGroup, 7, &raw::join_request(g, &ma))
            .unwrap();
        let (ja, jb) = (raw::joined(&mut a), raw::joined(&mut b));
        assert_eq!((ja.error_code, jb.error_code), (NONE, NONE));
        let gen2 = ja.generation_id;
        assert_eq!(gen2, gen1 + 1);
        assert_eq!(raw::commit(&mut a, g, t, gen2, &ma), REBALANCE_IN_PROGRESS);
        assert_eq!(raw::commit(&mut a, g, t, gen1, &ma), ILLEGAL_GENERATION);
        assert_eq!(raw::commit(&mut b, g, t, gen2, &mb), REBALANCE_IN_PROGRESS);
    })
    .await
    .unwrap();
}

/// One HTTP GET on loopback, the body returned (Burrow's API answers small JSON documents).
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
}

/// Debian's Burrow 1.2.1 (sarama inside, `kafka-version` 2.0.0 as its users configure it),
/// the lag monitor that reads `__consumer_offsets` itself and keeps its own lock in ZooKeeper
/// (here coord): it lists a group that committed offsets and reports its lag per partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burrow_sees_committed_offsets_and_reports_lag() {
    let coord = CoordCluster::start(1, "");
    let broker = broker_with(&coord, 2);
    let b = broker.bootstrap();
    produce(&b, "watched", 2, 20).await;

    let dir = tempfile::tempdir().unwrap();
    let http = sluice_e2e::free_port();
    let zk = coord.connect_string();
    std::fs::write(
        dir.path().join("burrow.toml"),
        format!(
            r#"[general]
pidfile="{pid}"
[logging]
level="info"
[zookeeper]
servers=[ "{zk}" ]
timeout=6
root-path="/burrow"
[client-profile.kafka2]
client-id="burrow"
kafka-version="2.0.0"
[cluster.local]
class-name="kafka"
servers=[ "{b}" ]
client-profile="kafka2"
topic-refresh=1
offset-refresh=1
[consumer.local]
class-name="kafka"
cluster="local"
servers=[ "{b}" ]
client-profile="kafka2"
group-whitelist=""
[httpserver.default]
address="127.0.0.1:{http}"
[storage.default]
class-name="inmemory"
workers=2
intervals=10
expire-group=604800
min-distance=1
"#,
            pid = dir.path().join("burrow.pid").display(),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("burrow.log")).unwrap();
    let mut burrow = Command::new("Burrow")
        .arg("--config-dir")
        .arg(dir.path())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("Debian's burrow (scripts/setup.sh installs it)");
    let burrow_log = || std::fs::read_to_string(dir.path().join("burrow.log")).unwrap_or_default();

    // Burrow drops commits for topics it has not listed yet: wait until it knows the topic.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http_get(http, "/v3/kafka/local/topic").is_some_and(|t| t.contains("\"watched\"")) {
        assert!(
            Instant::now() < deadline,
            "Burrow never listed the topic:\n{}",
            burrow_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let c = member(&b, "watched-group");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("watched", 0, rdkafka::Offset::Offset(4))
        .unwrap();
    tpl.add_partition_offset("watched", 1, rdkafka::Offset::Offset(7))
        .unwrap();
    c.commit(&tpl, CommitMode::Sync).expect("commit");

    // 10 records per partition: lag 6 and 3.
    let deadline = Instant::now() + Duration::from_secs(30);
    let lag = loop {
        let lag = http_get(http, "/v3/kafka/local/consumer/watched-group/lag").unwrap_or_default();
        if lag.contains("\"totallag\":9") || Instant::now() > deadline {
            break lag;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let groups = http_get(http, "/v3/kafka/local/consumer").unwrap_or_default();
    let _ = burrow.kill();
    let _ = burrow.wait();
    assert!(lag.contains("\"totallag\":9"), "{lag}\n{}", burrow_log());
    assert!(groups.contains("\"watched-group\""), "{groups}");
    for (partition, offset, behind) in [(0, 4, 6), (1, 7, 3)] {
        let want = format!(
            "\"topic\":\"watched\",\"partition\":{partition},\"owner\":\"\",\"client_id\":\"\""
        );
        let at = lag_text_at(&lag, &want);
        assert!(
            at.contains(&format!("\"end\":{{\"offset\":{offset},"))
                && at.contains(&format!("\"current_lag\":{behind}")),
            "partition {partition}: {at}"
        );
    }
    let groups = http_get(http, "/v3/kafka/local/consumer").unwrap_or_default();
    assert!(
        groups.is_empty() || groups.contains("watched-group"),
        "{groups}"
    );
}

/// The part of Burrow's lag document from the partition entry `key` up to the next entry.
fn lag_text_at<'a>(doc: &'a str, key: &str) -> &'a str {
    let start = doc
        .find(key)
        .unwrap_or_else(|| panic!("{key} not in {doc}"));
    let rest = &doc[start..];
    let end = rest[1..].find("{\"topic\"").map_or(rest.len(), |e| e + 1);
    &rest[..end]
}

/// confluent-kafka 2.16's `AdminClient.list_consumer_groups()` lists a group while its member
/// is active (ListGroups v5, with the state and type filters newer clients send): unfiltered,
/// filtered to STABLE and to the CLASSIC type; a filter to EMPTY leaves it out, and once the
/// member has left, EMPTY lists it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_lists_an_active_group_with_state_and_type_filters() {
    let coord = CoordCluster::start(1, "");
    let broker = broker_with(&coord, 2);
    let b = broker.bootstrap();
    produce(&b, "listed", 2, 10).await;
    let script = r#"
import sys, time
from confluent_kafka import Consumer, ConsumerGroupState, ConsumerGroupType
from confluent_kafka.admin import AdminClient
b = sys.argv[1]
c = Consumer({'bootstrap.servers': b, 'group.id': 'active-group', 'auto.offset.reset': 'earliest'})
c.subscribe(['listed'])
deadline = time.time() + 30
while not c.assignment() and time.time() < deadline:
    c.poll(0.2)
a = AdminClient({'bootstrap.servers': b})
def listed(**kw):
    r = a.list_consumer_groups(request_timeout=10, **kw).result()
    return sorted((g.group_id, str(g.state)) for g in r.valid)
print("all", listed())
print("stable", listed(states={ConsumerGroupState.STABLE}))
print("classic", listed(types={ConsumerGroupType.CLASSIC}))
print("empty", listed(states={ConsumerGroupState.EMPTY}))
c.close()
time.sleep(0.5)
print("after", listed(states={ConsumerGroupState.EMPTY}))
"#;
    let out = tokio::task::spawn_blocking(move || sluice_e2e::run_python(script, &[&b]))
        .await
        .unwrap();
    let stable = "[('active-group', 'ConsumerGroupState.STABLE')]";
    assert!(out.contains(&format!("all {stable}")), "{out}");
    assert!(out.contains(&format!("stable {stable}")), "{out}");
    assert!(out.contains(&format!("classic {stable}")), "{out}");
    assert!(out.contains("empty []"), "{out}");
    assert!(
        out.contains("after [('active-group', 'ConsumerGroupState.EMPTY')]"),
        "{out}"
    );
}
