//! Moving partitions and leaderships with the command-line tools operators use:
//! `kafka-reassign-partitions` onto a newly added broker under load, and
//! `kafka-leader-election` (and `auto.leader.rebalance.enable`) giving leadership back to the
//! preferred replica after a failover.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::ledger::{self, Producing};
use common::replication::create_topic;
use sluice_e2e::{binary, BrokerNode, KafkaCluster};

const REPLICATED: &str =
    "default.replication.factor=3\nmin.insync.replicas=2\noffsets.topic.replication.factor=3\n";

fn tool(name: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(binary(name)).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Replicas of `topic`-`partition` as broker `via` reports them in Metadata, once it knows the
/// partition.
fn replicas(cluster: &KafkaCluster, via: i32, topic: &str, partition: i32) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = replicas_now(cluster, via, topic, partition);
        if !r.is_empty() {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "broker {via} never saw {topic}-{partition}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn replicas_now(cluster: &KafkaCluster, via: i32, topic: &str, partition: i32) -> Vec<i32> {
    use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestKind, ResponseKind};
    let b = cluster.brokers.iter().find(|b| b.id == via).unwrap();
    let mut c = sluice_e2e::kafka::KafkaConn::connect(b.addr());
    let mut req = MetadataRequest::default();
    req.topics = None;
    match c.call(ApiKey::Metadata, 9, RequestKind::Metadata(req)) {
        ResponseKind::Metadata(m) => m
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
            .and_then(|t| t.partitions.iter().find(|p| p.partition_index == partition))
            .map(|p| p.replica_nodes.iter().map(|b| b.0).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partition_moves_to_a_new_broker_under_load() {
    let mut cluster = KafkaCluster::start(1, 3, REPLICATED);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "moving", 2, 3).await;
    let producing = Producing::start(&bootstrap, "moving", 2, Duration::from_millis(2));
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A fourth broker joins; partition 0 moves from its three to {4, and two of the others}.
    let connect = cluster.coord.connect_string();
    let fourth = BrokerNode::start(cluster.coord.dir.path(), 4, &connect, REPLICATED);
    cluster.brokers.push(fourth);
    cluster.wait_for_brokers(4, Duration::from_secs(30));
    let before = replicas(&cluster, 1, "moving", 0);
    let dropped = before[0];
    let target: Vec<i32> = vec![4, before[1], before[2]];
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    std::fs::write(
        &plan,
        format!(
            r#"{{"version":1,"partitions":[{{"topic":"moving","partition":0,"replicas":[{}]}}]}}"#,
            target
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
    )
    .unwrap();
    let b = cluster.brokers[0].bootstrap();
    let plan_arg = plan.to_str().unwrap();
    let (ok, out) = tool(
        "kafka-reassign-partitions",
        &[
            "--bootstrap-server",
            &b,
            "--execute",
            "--reassignment-json-file",
            plan_arg,
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("Successfully started partition reassignments for moving-0"),
        "{out}"
    );
    assert!(
        out.contains("Current partition replica assignment"),
        "{out}"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ok, out) = tool(
            "kafka-reassign-partitions",
            &[
                "--bootstrap-server",
                &b,
                "--verify",
                "--reassignment-json-file",
                plan_arg,
            ],
        );
        assert!(ok, "{out}");
        if out.contains("still in progress") {
            // Under Kafka's line, what it waits for: the replica still catching up.
            assert!(
                out.contains("  waiting for replica")
                    || out.contains("  the new replicas are in sync"),
                "{out}"
            );
        }
        if out.contains("Reassignment of partition moving-0 is completed.") {
            break;
        }
        assert!(Instant::now() < deadline, "never completed: {out}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(replicas(&cluster, 1, "moving", 0), target);
    let (ok, out) = tool(
        "kafka-reassign-partitions",
        &["--bootstrap-server", &b, "--list"],
    );
    assert!(
        ok && out.contains("No partition reassignments found."),
        "{out}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ledger = producing.stop().await;
    assert!(
        ledger.failures.is_empty(),
        "{:?}",
        &ledger.failures[..ledger.failures.len().min(5)]
    );
    let verdict = ledger::verify(&bootstrap, "moving", 2, &ledger);
    assert!(verdict.is_clean(), "{verdict:?}");
    // The broker that lost the partition deleted it; the new one holds what the others hold.
    let gone = cluster.broker(dropped).log_dir.join("moving-0");
    let deadline = Instant::now() + Duration::from_secs(20);
    while gone.exists() {
        assert!(Instant::now() < deadline, "{} still exists", gone.display());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for b in &mut cluster.brokers {
        b.stop();
    }
    let copies: Vec<Vec<ledger::BatchId>> = target
        .iter()
        .map(|id| {
            let b = cluster.brokers.iter().find(|b| b.id == *id).unwrap();
            ledger::stored_batches(&b.log_dir.join("moving-0"))
        })
        .collect();
    assert!(!copies[0].is_empty());
    assert!(
        copies.windows(2).all(|w| w[0] == w[1]),
        "replicas differ after the move"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_returns_to_the_preferred_replica() {
    let extra = format!(
        "{REPLICATED}leader.imbalance.check.interval.seconds=2\nleader.imbalance.per.broker.percentage=0\nauto.leader.rebalance.enable=false\n"
    );
    let mut cluster = KafkaCluster::start(1, 3, &extra);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "pref", 1, 3).await;
    let preferred = replicas(&cluster, 1, "pref", 0)[0];
    let via = if preferred == 1 { 2 } else { 1 };
    // Bounce the preferred leader: someone else leads meanwhile, and keeps leading.
    cluster.broker(preferred).stop();
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster.leader(via, "pref", 0).0 == preferred || cluster.leader(via, "pref", 0).0 < 0 {
        assert!(Instant::now() < deadline, "no failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.broker(preferred).spawn();
    cluster
        .broker(preferred)
        .wait_until_listening(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.leader(via, "pref", 0).1.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the preferred replica never rejoined the ISR"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(cluster.leader(via, "pref", 0).0, preferred);
    let b = cluster.brokers[0].bootstrap();
    // The controller may learn of the rejoined replica a moment after broker `via` does (each
    // follows coord on its own): until then it answers, as Kafka's does, that the preferred
    // replica is not available. Ask again until it knows.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (ok, out) = loop {
        let (ok, out) = tool(
            "kafka-leader-election",
            &[
                "--bootstrap-server",
                &b,
                "--election-type",
                "preferred",
                "--topic",
                "pref",
                "--partition",
                "0",
            ],
        );
        if ok || !out.contains("PreferredLeaderNotAvailable") || Instant::now() > deadline {
            break (ok, out);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(ok, "{out}");
    assert!(
        out.contains("Successfully completed leader election (PREFERRED) for partitions pref-0"),
        "{out}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.leader(via, "pref", 0).0 != preferred {
        assert!(Instant::now() < deadline, "leadership did not move back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (ok, out) = tool(
        "kafka-leader-election",
        &[
            "--bootstrap-server",
            &b,
            "--election-type",
            "PREFERRED",
            "--all-topic-partitions",
        ],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("Valid replica already elected for partitions"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_leader_rebalance_moves_leadership_back_by_itself() {
    let extra = format!(
        "{REPLICATED}leader.imbalance.check.interval.seconds=1\nleader.imbalance.per.broker.percentage=0\n"
    );
    let mut cluster = KafkaCluster::start(1, 3, &extra);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "auto", 1, 3).await;
    let preferred = replicas(&cluster, 1, "auto", 0)[0];
    let via = if preferred == 1 { 2 } else { 1 };
    cluster.broker(preferred).stop();
    let deadline = Instant::now() + Duration::from_secs(20);
    while cluster.leader(via, "auto", 0).0 == preferred || cluster.leader(via, "auto", 0).0 < 0 {
        assert!(Instant::now() < deadline, "no failover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.broker(preferred).spawn();
    cluster
        .broker(preferred)
        .wait_until_listening(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.leader(via, "auto", 0).0 != preferred {
        assert!(
            Instant::now() < deadline,
            "leadership never went back to {preferred}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
