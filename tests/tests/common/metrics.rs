//! What the metrics suites do with real clients (librdkafka through `rdkafka`), so that the
//! brokers' figures can be compared with it: topics created with their settings, a known
//! number of records of a known size, and a consumer group member that commits offsets of its
//! choosing and stays in its group.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sluice_e2e::scrape::{scrape, Scrape};
use sluice_e2e::KafkaCluster;

/// Creates `topic` with `partitions` partitions, replication factor `rf` and `config`.
pub async fn create_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    rf: i32,
    config: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let mut t = NewTopic::new(topic, partitions, TopicReplication::Fixed(rf));
    for (k, v) in config {
        t = t.set(k, v);
    }
    let r = admin
        .create_topics(
            [&t],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        )
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
}

/// Writes `n` records of `size` bytes each (no key) round robin over `partitions` partitions
/// of `topic` with acks=all, each acknowledged; their value bytes.
pub async fn produce(bootstrap: &str, topic: &str, partitions: i32, n: usize, size: usize) -> u64 {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    let value = vec![b'm'; size];
    let sends: Vec<_> = (0..n)
        .map(|i| {
            p.send_result(
                FutureRecord::<(), _>::to(topic)
                    .payload(&value)
                    .partition(i as i32 % partitions),
            )
            .expect("queued")
        })
        .collect();
    for s in sends {
        s.await.expect("delivered").expect("acknowledged");
    }
    (n * size) as u64
}

/// A member of `group` subscribed to `topic` that has read `records` records, then committed
/// `commit[partition]` for each partition; returned still in its group (librdkafka keeps its
/// heartbeats going).
pub fn member_committed(
    bootstrap: &str,
    group: &str,
    topic: &str,
    records: usize,
    commit: &[i64],
) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "10000")
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut read = 0;
    while read < records {
        assert!(
            Instant::now() < deadline,
            "the member read {read} of {records} records"
        );
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            assert_eq!(m.topic(), topic);
            read += 1;
        }
    }
    let mut tpl = TopicPartitionList::new();
    for (p, o) in commit.iter().enumerate() {
        tpl.add_partition_offset(topic, p as i32, Offset::Offset(*o))
            .unwrap();
    }
    c.commit(&tpl, CommitMode::Sync).expect("commit");
    c
}

/// Every running broker's scrape, by broker id.
pub fn scrape_all(cluster: &mut KafkaCluster) -> BTreeMap<i32, Scrape> {
    let mut out = BTreeMap::new();
    for b in &mut cluster.brokers {
        if !b.is_running() {
            continue;
        }
        let addr = b.metrics_addr().expect("metrics.prometheus.listener");
        out.insert(b.id, scrape(addr));
    }
    out
}

/// The sum over `scrapes` of [`Scrape::sum`].
pub fn total(scrapes: &BTreeMap<i32, Scrape>, name: &str, with: &[(&str, &str)]) -> f64 {
    scrapes.values().map(|s| s.sum(name, with)).sum()
}

/// Scrapes every running broker until `ok` holds (panics after `limit`, naming each of `show`
/// with its samples on each broker); returns the scrapes that satisfied it.
pub fn wait_scrapes(
    cluster: &mut KafkaCluster,
    what: &str,
    limit: Duration,
    show: &[&str],
    ok: impl Fn(&BTreeMap<i32, Scrape>) -> bool,
) -> BTreeMap<i32, Scrape> {
    let start = Instant::now();
    loop {
        let s = scrape_all(cluster);
        if ok(&s) {
            eprintln!("{what}: {:.1?}", start.elapsed());
            return s;
        }
        if start.elapsed() > limit {
            let mut shown = String::new();
            for name in show {
                for (id, sc) in &s {
                    for (_, labels, v) in sc.find(name, &[]) {
                        shown.push_str(&format!("\n  broker {id}: {name}{labels:?} {v}"));
                    }
                }
            }
            for b in &cluster.brokers {
                let log = b.log_text();
                let lines: Vec<&str> = log
                    .lines()
                    .filter(|l| {
                        [
                            "ISR",
                            "partition state changed",
                            "WARN",
                            "ERROR",
                            "offsets",
                            "group",
                        ]
                        .iter()
                        .any(|w| l.contains(w))
                    })
                    .collect();
                shown.push_str(&format!(
                    "\n--- broker {} (ISR, partition state, groups, warnings):\n{}",
                    b.id,
                    lines[lines.len().saturating_sub(40)..].join("\n")
                ));
            }
            panic!("{what}: not within {limit:?}; last:{shown}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
