//! Helpers of the replication and failover tests: topics, leaders, controllers, replicas.

#![allow(dead_code)]

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use sluice_e2e::fault::CutRelay;
use sluice_e2e::{free_port, BrokerNode, CoordCluster, KafkaCluster};

use super::ledger;

pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32, rf: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let r = admin
        .create_topics(
            [&NewTopic::new(
                topic,
                partitions,
                TopicReplication::Fixed(rf),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        )
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
}

/// Waits until broker `via` reports a leader for `topic`/`partition` other than `not`, with
/// `isr_len` in-sync replicas or more.
pub async fn wait_for_leader(
    cluster: &KafkaCluster,
    via: i32,
    topic: &str,
    partition: i32,
    not: i32,
    isr_len: usize,
) -> i32 {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (leader, isr) = cluster.leader(via, topic, partition);
        if leader >= 0 && leader != not && isr.len() >= isr_len {
            return leader;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{topic}-{partition}: leader {leader}, isr {isr:?}\n{}",
            log_tails(cluster, 80)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After the faults: every replica of every partition holds the same batches (base offset,
/// leader epoch, CRC), read from the segment files once all brokers stopped cleanly.
pub fn assert_replicas_converged(cluster: &mut KafkaCluster, topic: &str, partitions: i32) {
    for b in &mut cluster.brokers {
        b.stop();
    }
    for p in 0..partitions {
        let copies: Vec<(i32, Vec<ledger::BatchId>)> = cluster
            .brokers
            .iter()
            .map(|b| {
                (
                    b.id,
                    ledger::stored_batches(&b.log_dir.join(format!("{topic}-{p}"))),
                )
            })
            .collect();
        let first = &copies[0].1;
        assert!(
            !first.is_empty(),
            "{topic}-{p} is empty on broker {}",
            copies[0].0
        );
        for (id, batches) in &copies[1..] {
            assert_eq!(
                batches, first,
                "{topic}-{p}: broker {id} differs from broker {}",
                copies[0].0
            );
        }
    }
}

/// The controller as broker `via`'s Metadata names it (-1 while there is none).
pub fn controller(cluster: &KafkaCluster, via: i32) -> i32 {
    use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestKind, ResponseKind};
    let b = cluster
        .brokers
        .iter()
        .find(|b| b.id == via)
        .expect("broker");
    let mut c = sluice_e2e::kafka::KafkaConn::connect(b.addr());
    match c.call(
        ApiKey::Metadata,
        9,
        RequestKind::Metadata(MetadataRequest::default()),
    ) {
        ResponseKind::Metadata(m) => m.controller_id.0,
        other => panic!("{other:?}"),
    }
}

/// The last `n` lines of every broker's log, for a failure message.
pub fn log_tails(cluster: &KafkaCluster, n: usize) -> String {
    let mut out = String::new();
    for b in &cluster.brokers {
        let text = b.log_text();
        // The waits' own short Metadata connections would fill the tail.
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.contains("client disconnected"))
            .collect();
        out.push_str(&format!("--- broker {} (last {n} lines)\n", b.id));
        for l in &lines[lines.len().saturating_sub(n)..] {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// One coord node and three brokers, each behind two fault relays: one its clients and peers
/// reach it through (its advertised listener), one it reaches the coordinator through.
/// `relays[id - 1]` is broker `id`'s (coordinator relay, listener relay).
pub fn start_behind_relays(settings: &str) -> (KafkaCluster, Vec<(CutRelay, CutRelay)>) {
    let coord = CoordCluster::start(1, "");
    let mut relays = Vec::new();
    let mut brokers = Vec::new();
    for id in 1..=3 {
        let zk = CutRelay::start(0, coord.nodes[0].client);
        let front = free_port();
        let extra = format!("{settings}advertised.listeners=PLAINTEXT://127.0.0.1:{front}\n");
        let b = BrokerNode::start(coord.dir.path(), id, &zk.addr().to_string(), &extra);
        let listener = CutRelay::start(front, b.addr());
        relays.push((zk, listener));
        brokers.push(b);
    }
    let cluster = KafkaCluster { coord, brokers };
    cluster.wait_for_brokers(3, Duration::from_secs(30));
    (cluster, relays)
}

/// The brokers' relayed (advertised) addresses, comma-separated.
pub fn relay_bootstrap(relays: &[(CutRelay, CutRelay)]) -> String {
    relays
        .iter()
        .map(|(_, l)| l.addr().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// [`ledger::take_client_resends`] against the logs of each partition's current leader;
/// prints what it took out (a figure of the client's behaviour, not a pass/fail).
pub fn take_client_resends(
    cluster: &mut KafkaCluster,
    topic: &str,
    verdict: &mut ledger::Verdict,
) -> Vec<u64> {
    let via = cluster
        .brokers
        .iter_mut()
        .find_map(|b| b.is_running().then_some(b.id))
        .expect("a running broker");
    let dirs: std::collections::HashMap<i32, std::path::PathBuf> = verdict
        .duplicated_at
        .values()
        .map(|(p, _)| {
            let leader = cluster.leader(via, topic, *p).0;
            let dir = cluster.broker(leader).log_dir.join(format!("{topic}-{p}"));
            (*p, dir)
        })
        .collect();
    let resent = ledger::take_client_resends(verdict, |p| dirs[&p].clone());
    if !resent.is_empty() {
        eprintln!(
            "{} value(s) written again by the client under a new producer epoch (librdkafka's epoch bump after OUT_OF_ORDER_SEQUENCE_NUMBER): {resent:?}",
            resent.len()
        );
    }
    resent
}
