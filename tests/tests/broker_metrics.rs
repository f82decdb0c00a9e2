//! The brokers' Prometheus endpoints (`metrics.prometheus.listener`) against what real clients
//! did, on three brokers over a three-node coord ensemble, each scraped directly:
//!
//! - librdkafka producers write a known number of records of a known size; the per-topic
//!   `messagesin` counters sum to that count over the brokers, each partition's leader (and
//!   only it) reports its latest offset, every replica its log end offset, and the bytes
//!   counted in are the bytes the leaders' segment files hold;
//! - a librdkafka group member reads everything and commits offsets part way: the group's
//!   coordinator (and only it) reports each partition's committed offset and the lag (log end
//!   minus committed), with the sums and its member;
//! - a produce refused for not enough in-sync replicas is one failed produce request of its
//!   topic; a batch over `message.max.bytes` is counted in rejected bytes, not as failed;
//! - exactly one broker reports itself active controller, with the cluster's topics and
//!   partitions; after a broker is SIGKILLed the survivors report every partition it held a
//!   replica of as under-replicated, an ISR shrink for each partition it followed, its
//!   single-replica partition offline, one controller still, and the same lag;
//! - garbage on the metrics port is answered with an HTTP error and the broker goes on
//!   serving clients and scrapes.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::metrics::{create_topic, member_committed, produce, scrape_all, total, wait_scrapes};
use sluice_e2e::kafka::{idempotent_batch, KafkaConn};
use sluice_e2e::scrape::{http, scrape, Scrape};
use sluice_e2e::{free_port, KafkaCluster};

const TOPIC: &str = "events";
/// RF 3, min.insync.replicas 4: every acks=all write is refused.
const STRICT: &str = "strict";
/// RF 1: a partition on each broker.
const SINGLE: &str = "single";
const GROUP: &str = "metrics-readers";
const PARTITIONS: i32 = 3;
const RECORDS: usize = 900;
const SIZE: usize = 200;
/// Committed offsets, by partition (each partition holds 300 records).
const COMMITTED: [i64; 3] = [100, 150, 200];

fn cluster() -> KafkaCluster {
    KafkaCluster::start_each(
        3,
        3,
        "offsets.topic.replication.factor=3\noffsets.topic.num.partitions=3\n",
        &|_| format!("metrics.prometheus.listener=127.0.0.1:{}\n", free_port()),
    )
}

/// The one broker reporting `name{labels}`, with its value (panics unless exactly one does).
fn reported_once(
    scrapes: &BTreeMap<i32, Scrape>,
    name: &str,
    labels: &[(&str, &str)],
) -> (i32, f64) {
    let found: Vec<(i32, f64)> = scrapes
        .iter()
        .filter_map(|(id, s)| s.value(name, labels).map(|v| (*id, v)))
        .collect();
    assert_eq!(found.len(), 1, "{name}{labels:?} reported by {found:?}");
    found[0]
}

/// Bytes of the segment files of `dir` (a partition directory).
fn segment_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                .map(|e| e.metadata().unwrap().len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scraped_figures_are_what_the_clients_did() {
    let mut c = cluster();
    let bootstrap = c.bootstrap();
    create_topic(&bootstrap, TOPIC, PARTITIONS, 3, &[]).await;
    create_topic(&bootstrap, STRICT, 1, 3, &[("min.insync.replicas", "4")]).await;
    create_topic(&bootstrap, SINGLE, 3, 1, &[]).await;
    let value_bytes = produce(&bootstrap, TOPIC, PARTITIONS, RECORDS, SIZE).await;
    let per_partition = (RECORDS / PARTITIONS as usize) as i64;
    let member = member_committed(&bootstrap, GROUP, TOPIC, RECORDS, &COMMITTED);

    // Replication done: every replica's log ends after the last record.
    let s = wait_scrapes(
        &mut c,
        "every replica holds every record",
        Duration::from_secs(30),
        &[
            "kafka_log_log_logendoffset",
            "kafka_topic_partition_current_offset",
            "kafka_consumergroup_lag",
        ],
        |s| {
            let ends: Vec<f64> = s
                .values()
                .flat_map(|sc| sc.find("kafka_log_log_logendoffset", &[("topic", TOPIC)]))
                .map(|(_, _, v)| *v)
                .collect();
            ends.len() == 9
                && ends.iter().all(|v| *v == per_partition as f64)
                && total(
                    s,
                    "kafka_topic_partition_current_offset",
                    &[("topic", TOPIC)],
                ) == RECORDS as f64
                && total(s, "kafka_consumergroup_lag", &[("consumergroup", GROUP)]) > 0.0
        },
    );

    // Records in: the clients' count, over the brokers; the topic-less total of each broker
    // is its topics' sum.
    assert_eq!(
        total(
            &s,
            "kafka_server_brokertopicmetrics_messagesin_total",
            &[("topic", TOPIC)]
        ),
        RECORDS as f64
    );
    for (id, sc) in &s {
        let all = sc
            .value("kafka_server_brokertopicmetrics_messagesin_total", &[])
            .unwrap();
        let topics = sc
            .find("kafka_server_brokertopicmetrics_messagesin_total", &[])
            .iter()
            .filter(|(_, l, _)| l.contains_key("topic"))
            .map(|(_, _, v)| v)
            .sum::<f64>();
        assert_eq!(all, topics, "broker {id}");
    }
    // Each partition's leader, and only it, reports its offsets; bytes in are what the
    // leaders' segment files hold, at least the values' bytes.
    let mut leader_bytes = 0;
    for p in 0..PARTITIONS {
        let index = p.to_string();
        let labels = [("topic", TOPIC), ("partition", index.as_str())];
        let (leader, latest) = reported_once(&s, "kafka_topic_partition_current_offset", &labels);
        assert_eq!(latest, per_partition as f64);
        assert_eq!(
            reported_once(&s, "kafka_topic_partition_oldest_offset", &labels),
            (leader, 0.0)
        );
        assert_eq!(
            reported_once(&s, "kafka_topic_partition_leader", &labels),
            (leader, f64::from(leader))
        );
        assert_eq!(
            reported_once(&s, "kafka_topic_partition_in_sync_replica", &labels),
            (leader, 3.0)
        );
        assert_eq!(
            reported_once(
                &s,
                "kafka_topic_partition_under_replicated_partition",
                &labels
            ),
            (leader, 0.0)
        );
        let dir = c.broker(leader).log_dir.join(format!("{TOPIC}-{p}"));
        let on_disk = segment_bytes(&dir);
        assert_eq!(
            s[&leader].value("kafka_log_log_size", &labels),
            Some(on_disk as f64),
            "{TOPIC}-{p} on broker {leader}"
        );
        assert_eq!(
            s[&leader].value("kafka_log_log_numlogsegments", &labels),
            Some(1.0)
        );
        leader_bytes += on_disk;
    }
    // Each broker's log directory: free and total bytes of its filesystem, as statvfs says.
    for (id, scrape) in &s {
        let dir = c.broker(*id).log_dir.display().to_string();
        let free = scrape.value("sluice_log_dir_free_bytes", &[("dir", &dir)]);
        let size = scrape.value("sluice_log_dir_size_bytes", &[("dir", &dir)]);
        assert!(
            matches!((free, size), (Some(f), Some(t)) if f > 0.0 && f <= t),
            "broker {id}: {dir} free {free:?} of {size:?}"
        );
    }
    let bytes_in = total(
        &s,
        "kafka_server_brokertopicmetrics_bytesin_total",
        &[("topic", TOPIC)],
    );
    assert_eq!(bytes_in, leader_bytes as f64);
    assert!(bytes_in >= value_bytes as f64, "{bytes_in} < {value_bytes}");
    // The member read everything: at least every byte went out to consumers.
    let bytes_out = total(
        &s,
        "kafka_server_brokertopicmetrics_bytesout_total",
        &[("topic", TOPIC)],
    );
    assert!(bytes_out >= bytes_in, "{bytes_out} < {bytes_in}");
    // Followers copied every byte from the leaders (the group's commits included).
    assert!(
        total(
            &s,
            "kafka_server_brokertopicmetrics_replicationbytesin_total",
            &[]
        ) >= 2.0 * bytes_in
    );

    // Lag: from the group's coordinator only, latest minus committed.
    let mut lag_sum = 0;
    for (p, committed) in COMMITTED.iter().enumerate() {
        let index = p.to_string();
        let labels = [
            ("consumergroup", GROUP),
            ("topic", TOPIC),
            ("partition", index.as_str()),
        ];
        assert_eq!(
            reported_once(&s, "kafka_consumergroup_current_offset", &labels).1,
            *committed as f64
        );
        assert_eq!(
            reported_once(&s, "kafka_consumergroup_lag", &labels).1,
            (per_partition - committed) as f64
        );
        lag_sum += per_partition - committed;
    }
    let group_topic = [("consumergroup", GROUP), ("topic", TOPIC)];
    assert_eq!(
        reported_once(&s, "kafka_consumergroup_lag_sum", &group_topic).1,
        lag_sum as f64
    );
    assert_eq!(
        reported_once(&s, "kafka_consumergroup_current_offset_sum", &group_topic).1,
        COMMITTED.iter().sum::<i64>() as f64
    );
    assert_eq!(
        reported_once(
            &s,
            "kafka_consumergroup_members",
            &[("consumergroup", GROUP)]
        )
        .1,
        1.0
    );

    // One active controller, with the cluster's figures; 0 elsewhere.
    let (controller, _) = reported_once_with(
        &s,
        "kafka_controller_kafkacontroller_activecontrollercount",
        1.0,
    );
    let cs = &s[&controller];
    assert_eq!(cs.value("kafka_brokers", &[]), Some(3.0));
    assert_eq!(
        cs.value("kafka_topic_partitions", &[("topic", TOPIC)]),
        Some(3.0)
    );
    assert_eq!(
        cs.value("kafka_controller_kafkacontroller_globaltopiccount", &[]),
        Some(4.0)
    );
    assert_eq!(
        cs.value("kafka_controller_kafkacontroller_globalpartitioncount", &[]),
        Some(10.0),
        "events 3, strict 1, single 3, __consumer_offsets 3"
    );
    assert_eq!(
        total(
            &s,
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            &[]
        ),
        0.0
    );
    assert_eq!(
        total(&s, "kafka_brokers", &[]),
        3.0,
        "reported by the controller only"
    );
    // Replica counts: every partition once per replica, led once.
    assert_eq!(
        total(&s, "kafka_server_replicamanager_partitioncount", &[]),
        3.0 * 3.0 + 3.0 + 3.0 + 3.0 * 3.0
    );
    assert_eq!(
        total(&s, "kafka_server_replicamanager_leadercount", &[]),
        10.0
    );
    assert_eq!(
        total(
            &s,
            "kafka_server_replicamanager_underreplicatedpartitions",
            &[]
        ),
        0.0
    );
    assert_eq!(
        total(
            &s,
            "kafka_server_replicamanager_underminisrpartitioncount",
            &[]
        ),
        1.0,
        "{STRICT} wants 4 in-sync replicas of 3"
    );
    // Requests: produces and follower fetches were timed.
    assert!(
        total(
            &s,
            "kafka_network_requestmetrics_requests_total",
            &[("request", "Produce")]
        ) >= 1.0
    );
    assert!(
        total(
            &s,
            "kafka_network_requestmetrics_totaltimems_count",
            &[("request", "FetchFollower")]
        ) >= 1.0
    );
    let p99 = s
        .values()
        .flat_map(|sc| {
            sc.find(
                "kafka_network_requestmetrics_totaltimems",
                &[("request", "Produce"), ("quantile", "0.99")],
            )
        })
        .map(|(_, _, v)| *v)
        .find(|v| !v.is_nan())
        .expect("a produce p99");
    assert!((0.0..30_000.0).contains(&p99), "{p99}");

    // A produce refused for want of in-sync replicas is one failed produce of its topic.
    let (strict_leader, _) = reported_once(
        &s,
        "kafka_topic_partition_leader",
        &[("topic", STRICT), ("partition", "0")],
    );
    let mut conn = KafkaConn::connect(c.broker(strict_leader).addr());
    let (code, _) = conn.produce(STRICT, -1, &[b"refused"]);
    assert_eq!(code, 19, "NOT_ENOUGH_REPLICAS");
    // A batch over message.max.bytes: its bytes rejected, not a failure.
    let (leader0, _) = reported_once(
        &s,
        "kafka_topic_partition_leader",
        &[("topic", TOPIC), ("partition", "0")],
    );
    let big = vec![b'x'; 1_100_000];
    let batch_len = idempotent_batch(-1, -1, -1, &[&big]).len();
    let mut conn = KafkaConn::connect(c.broker(leader0).addr());
    let r = conn.produce_to(9, TOPIC, 0, 1, 5000, &[&big]);
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 10,
        "MESSAGE_TOO_LARGE"
    );
    let s = scrape_all(&mut c);
    assert_eq!(
        total(
            &s,
            "kafka_server_brokertopicmetrics_failedproducerequests_total",
            &[("topic", STRICT)]
        ),
        1.0
    );
    assert_eq!(
        total(
            &s,
            "kafka_server_brokertopicmetrics_failedproducerequests_total",
            &[("topic", TOPIC)]
        ),
        0.0
    );
    assert_eq!(
        total(
            &s,
            "kafka_server_brokertopicmetrics_bytesrejected_total",
            &[("topic", TOPIC)]
        ),
        batch_len as f64
    );
    assert_eq!(
        total(
            &s,
            "kafka_server_brokertopicmetrics_messagesin_total",
            &[("topic", TOPIC)]
        ),
        RECORDS as f64,
        "nothing refused was counted in"
    );

    // SIGKILL broker 3. Expected: every partition with a replica there under-replicated, one
    // ISR shrink for each partition it followed, its single-replica partition offline.
    let victim = 3;
    let followed = s
        .iter()
        .filter(|(id, _)| **id != victim)
        .flat_map(|(_, sc)| sc.find("kafka_topic_partition_in_sync_replica", &[]))
        .filter(|(_, _, isr)| *isr == 3.0)
        .count();
    let shrinks_before = total(&s, "kafka_server_replicamanager_isrshrinks_total", &[]);
    let single_there = s[&victim]
        .find("kafka_topic_partition_leader", &[("topic", SINGLE)])
        .len();
    assert!(single_there >= 1, "a partition of {SINGLE} on each broker");
    eprintln!(
        "killing broker {victim}: it follows {followed} partitions led elsewhere ({shrinks_before} ISR shrinks so far), leads {single_there} of {SINGLE}"
    );
    c.broker(victim).kill();
    let s = wait_scrapes(
        &mut c,
        "the survivors report broker 3's partitions",
        Duration::from_secs(60),
        &[
            "kafka_server_replicamanager_underreplicatedpartitions",
            "kafka_server_replicamanager_isrshrinks_total",
            "kafka_server_replicamanager_isrexpands_total",
            "kafka_controller_kafkacontroller_activecontrollercount",
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            "kafka_consumergroup_lag",
        ],
        |s| {
            s.len() == 2
                && total(
                    s,
                    "kafka_server_replicamanager_underreplicatedpartitions",
                    &[],
                ) == 7.0
                && total(s, "kafka_server_replicamanager_isrshrinks_total", &[])
                    == shrinks_before + followed as f64
                && total(
                    s,
                    "kafka_controller_kafkacontroller_activecontrollercount",
                    &[],
                ) == 1.0
                && total(
                    s,
                    "kafka_controller_kafkacontroller_offlinepartitionscount",
                    &[],
                ) == single_there as f64
                && total(s, "kafka_consumergroup_lag", &[("consumergroup", GROUP)])
                    == lag_sum as f64
        },
    );
    reported_once_with(
        &s,
        "kafka_controller_kafkacontroller_activecontrollercount",
        1.0,
    );
    assert_eq!(
        total(
            &s,
            "kafka_server_replicamanager_underminisrpartitioncount",
            &[]
        ),
        1.0
    );
    for p in 0..PARTITIONS {
        let index = p.to_string();
        let labels = [("topic", TOPIC), ("partition", index.as_str())];
        assert_eq!(
            reported_once(&s, "kafka_topic_partition_in_sync_replica", &labels).1,
            2.0
        );
        let group_labels = [
            ("consumergroup", GROUP),
            ("topic", TOPIC),
            ("partition", index.as_str()),
        ];
        assert_eq!(
            reported_once(&s, "kafka_consumergroup_lag", &group_labels).1,
            (per_partition - COMMITTED[p as usize]) as f64
        );
    }
    drop(member);
}

/// The one broker whose `name` has value `v`, the others having 0.
fn reported_once_with(scrapes: &BTreeMap<i32, Scrape>, name: &str, v: f64) -> (i32, f64) {
    let values: Vec<(i32, f64)> = scrapes
        .iter()
        .map(|(id, s)| (*id, s.value(name, &[]).unwrap_or(f64::NAN)))
        .collect();
    let with: Vec<&(i32, f64)> = values.iter().filter(|(_, x)| *x == v).collect();
    assert_eq!(with.len(), 1, "{name}: {values:?}");
    assert!(
        values.iter().all(|(_, x)| *x == v || *x == 0.0),
        "{name}: {values:?}"
    );
    *with[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_metrics_port_is_refused_and_the_broker_serves_on() {
    let mut c = KafkaCluster::start_each(1, 1, "", &|_| {
        format!("metrics.prometheus.listener=127.0.0.1:{}\n", free_port())
    });
    let addr: SocketAddr = c.brokers[0].metrics_addr().unwrap();
    for (request, status) in [
        (b"garbage\r\n\r\n".to_vec(), "400"),
        (
            b"\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x01\xff\xff\r\n\r\n".to_vec(),
            "400",
        ),
        (
            b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            "405",
        ),
        (b"GET /metrics HTTP/9.9\r\n\r\n".to_vec(), "400"),
        (
            b"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            "400",
        ),
        (
            format!("GET /{} HTTP/1.1\r\n", "a".repeat(20_000)).into_bytes(),
            "431",
        ),
        (b"GET /other HTTP/1.0\r\n\r\n".to_vec(), "404"),
    ] {
        let answer = http(addr, &request);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{:?}: {answer}",
            String::from_utf8_lossy(&request[..request.len().min(40)])
        );
    }
    // Half a request, then gone; and more idle connections than the endpoint serves at once,
    // held while the broker serves clients.
    {
        use std::io::Write;
        let mut half = std::net::TcpStream::connect(addr).unwrap();
        half.write_all(b"GET /met").unwrap();
    }
    let idle: Vec<_> = (0..64)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let mut conn = KafkaConn::connect(c.brokers[0].addr());
    let r = conn.create_topic("after", 1, 10_000);
    assert_eq!(r.topics[0].error_code, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (code, _) = conn.produce("after", 1, &[b"one", b"two"]);
        if code == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "produce: {code}");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(idle);
    // The endpoint answers again once the idle connections are gone, and counted the records.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !http(addr, b"GET /metrics HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200") {
        assert!(
            std::time::Instant::now() < deadline,
            "the endpoint does not answer again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = scrape(addr);
    assert_eq!(
        s.value(
            "kafka_server_brokertopicmetrics_messagesin_total",
            &[("topic", "after")]
        ),
        Some(2.0)
    );
    assert!(c.brokers[0].is_running());
}
