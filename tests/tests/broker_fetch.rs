//! The Fetch answer byte for byte, across the versions clients use: a large partition slice
//! (sent from the segment file with sendfile) next to a small one (copied) in one response,
//! decoded by `kafka-protocol` at each version, non-flexible (v4–v11) and flexible (v12+, topic
//! ids from v13).

use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, MetadataRequest, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sluice_e2e::kafka::KafkaConn;
use sluice_e2e::{BrokerNode, CoordCluster};

fn value(partition: i32, i: usize) -> Vec<u8> {
    let mut v = format!("p{partition}-{i:05}-").into_bytes();
    v.resize(if partition == 0 { 1000 } else { 20 }, b'.');
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_answers_decode_at_every_version_with_large_and_small_slices() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(coord.dir.path(), 1, &coord.connect_string(), "");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let r = admin
        .create_topics([&NewTopic::new("f", 2, TopicReplication::Fixed(1))], &opts)
        .await
        .unwrap();
    assert!(r[0].is_ok());
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("linger.ms", "5")
        .create()
        .unwrap();
    // Partition 0: 300 KB in many batches; partition 1: 3 small records.
    let mut sends = Vec::new();
    for i in 0..300 {
        let v = value(0, i);
        sends.push(
            p.send_result(FutureRecord::<(), _>::to("f").partition(0).payload(&v))
                .unwrap(),
        );
    }
    for i in 0..3 {
        let v = value(1, i);
        sends.push(
            p.send_result(FutureRecord::<(), _>::to("f").partition(1).payload(&v))
                .unwrap(),
        );
    }
    for s in sends {
        s.await.unwrap().expect("acknowledged");
    }

    let addr = broker.addr();
    tokio::task::spawn_blocking(move || {
        let mut c = KafkaConn::connect(addr);
        let mut md = MetadataRequest::default();
        let mut t = MetadataRequestTopic::default();
        t.name = Some(TopicName(StrBytes::from_static_str("f")));
        md.topics = Some(vec![t]);
        let topic_id = match c.call(ApiKey::Metadata, 12, RequestKind::Metadata(md)) {
            ResponseKind::Metadata(m) => m.topics[0].topic_id,
            other => panic!("unexpected {other:?}"),
        };
        for version in [4, 7, 11, 12, 13, 15, 17] {
            let mut req = FetchRequest::default();
            req.replica_id = BrokerId(-1);
            req.max_wait_ms = 100;
            req.min_bytes = 1;
            req.max_bytes = 50 << 20;
            let mut ft = FetchTopic::default();
            ft.topic = TopicName(StrBytes::from_static_str("f"));
            ft.topic_id = topic_id;
            for partition in [0, 1] {
                let mut fp = FetchPartition::default();
                fp.partition = partition;
                fp.fetch_offset = 0;
                fp.partition_max_bytes = 1 << 20;
                fp.log_start_offset = -1;
                fp.current_leader_epoch = -1;
                fp.last_fetched_epoch = -1;
                ft.partitions.push(fp);
            }
            req.topics = vec![ft];
            let resp = match c.call(ApiKey::Fetch, version, RequestKind::Fetch(req)) {
                ResponseKind::Fetch(f) => f,
                other => panic!("unexpected {other:?}"),
            };
            let parts = &resp.responses[0].partitions;
            assert_eq!(parts.len(), 2, "v{version}");
            for pd in parts {
                assert_eq!(pd.error_code, 0, "v{version}");
                let n = if pd.partition_index == 0 { 300 } else { 3 };
                assert_eq!(pd.high_watermark, n as i64, "v{version}");
                let mut bytes = pd.records.clone().expect("records");
                let sets = RecordBatchDecoder::decode_all(&mut bytes).expect("batches decode");
                let records: Vec<_> = sets.into_iter().flat_map(|s| s.records).collect();
                assert_eq!(
                    records.len(),
                    n,
                    "v{version} partition {}",
                    pd.partition_index
                );
                for (i, r) in records.iter().enumerate() {
                    assert_eq!(r.offset, i as i64);
                    assert_eq!(
                        r.value.as_deref(),
                        Some(&value(pd.partition_index, i)[..]),
                        "v{version}"
                    );
                }
            }
        }
    })
    .await
    .unwrap();
}

/// A librdkafka consumer assigned a position outside the log gets OFFSET_OUT_OF_RANGE in the
/// Fetch answer (with empty records, as Kafka sends them) and applies `auto.offset.reset`:
/// below the log start after DeleteRecords it restarts at the log start (`earliest`), past the
/// end it moves to the end (`latest`) and reads what is produced next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_position_is_reset_by_librdkafka() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};

    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(coord.dir.path(), 1, &coord.connect_string(), "");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let r = admin
        .create_topics(
            [&NewTopic::new("oor", 1, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .unwrap();
    assert!(r[0].is_ok());
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    let send = |v: String| {
        let p = p.clone();
        async move {
            p.send(
                FutureRecord::<(), _>::to("oor").partition(0).payload(&v),
                Duration::from_secs(10),
            )
            .await
            .expect("acknowledged")
        }
    };
    for i in 0..10 {
        send(format!("r{i}")).await;
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("oor", 0, Offset::Offset(6))
        .unwrap();
    let r = admin.delete_records(&tpl, &opts).await.unwrap();
    assert!(r.find_partition("oor", 0).unwrap().error().is_ok());

    let bootstrap = broker.bootstrap();
    let consume = move |reset: &str, position: i64, want: usize| {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", format!("oor-{reset}"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", reset)
            .set("fetch.wait.max.ms", "50")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("oor", 0, Offset::Offset(position))
            .unwrap();
        c.assign(&tpl).unwrap();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while got.len() < want && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                got.push((
                    m.offset(),
                    String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                ));
            }
        }
        (c, got)
    };

    // Below the log start (offset 2 < 6): reset to the earliest offset, 6.
    let got = tokio::task::spawn_blocking({
        let consume = consume.clone();
        move || consume("earliest", 2, 4).1
    })
    .await
    .unwrap();
    let want: Vec<(i64, String)> = (6..10).map(|i| (i, format!("r{i}"))).collect();
    assert_eq!(got, want, "earliest reset below the log start");

    // Past the end (offset 50 > 10): reset to the end. The reset moment is not observable
    // through librdkafka's API, so records keep coming until the consumer reads one: it must be
    // a record produced after the reset (offset 10 or later, never an old one).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = tokio::task::spawn_blocking({
        let stop = stop.clone();
        move || {
            let (_c, got) = consume("latest", 50, 1);
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            got
        }
    });
    let mut sent = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) && sent < 60 {
        send(format!("after-{sent}")).await;
        sent += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let got = reader.await.unwrap();
    assert_eq!(got.len(), 1, "no record read after a reset past the end");
    let (offset, value) = &got[0];
    assert!(*offset >= 10, "read an old record: {got:?}");
    assert_eq!(value, &format!("after-{}", offset - 10), "{got:?}");
}

/// The client that found it: confluent-kafka 2.16 (librdkafka 2.16, Fetch v16) refused a null
/// records field in an errored partition ("invalid MessageSetSize -1"), so a consumer whose
/// position was out of range never saw the error and never reset.
const CONFLUENT_RESET: &str = r#"
import json, sys, time
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap = sys.argv[1]
admin = AdminClient({'bootstrap.servers': bootstrap})
for f in admin.create_topics([NewTopic('reset', 1, 1)]).values():
    f.result()
p = Producer({'bootstrap.servers': bootstrap})
for i in range(10):
    p.produce('reset', value=b'r%d' % i, partition=0)
p.flush(10)
for f in admin.delete_records([TopicPartition('reset', 0, 6)]).values():
    f.result()

def consume(reset, position, want, produce_meanwhile=False):
    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': 'g-' + reset,
                  'enable.auto.commit': False, 'auto.offset.reset': reset,
                  'fetch.wait.max.ms': 50})
    c.assign([TopicPartition('reset', 0, position)])
    got, sent, deadline = [], 0, time.time() + 20
    while len(got) < want and time.time() < deadline:
        if produce_meanwhile and sent < 60:
            p.produce('reset', value=b'after-%d' % sent, partition=0)
            p.flush(10)
            sent += 1
        m = c.poll(0.3)
        if m is not None and m.error() is None:
            got.append([m.offset(), m.value().decode()])
    c.close()
    return got

print(json.dumps({
    'earliest': consume('earliest', 2, 4),
    'latest': consume('latest', 50, 1, produce_meanwhile=True),
}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_position_is_reset_by_confluent_kafka() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(coord.dir.path(), 1, &coord.connect_string(), "");
    let b = broker.bootstrap();
    let out = tokio::task::spawn_blocking(move || sluice_e2e::run_python(CONFLUENT_RESET, &[&b]))
        .await
        .unwrap();
    assert!(
        out.contains(r#""earliest": [[6, "r6"], [7, "r7"], [8, "r8"], [9, "r9"]]"#),
        "{out}\n{}",
        broker.log_text()
    );
    // Past the end: the first record read is one produced after the reset, at its own offset.
    let latest = out
        .split(r#""latest": [["#)
        .nth(1)
        .expect("latest read something");
    let (offset, rest) = latest.split_once(", \"after-").expect("an after- record");
    let offset: i64 = offset.parse().unwrap();
    let k: i64 = rest.split('"').next().unwrap().parse().unwrap();
    assert_eq!(offset, 10 + k, "{out}");
}

/// As in Kafka, a Fetch that finds a partition in error is answered at once, not after
/// `max_wait_ms`: here one partition is read at its end (nothing to return yet, so it alone
/// would wait) and the other past its end (OFFSET_OUT_OF_RANGE). The same rule answers a
/// follower told where its log diverges at once, which keeps a leader change short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_with_a_partition_in_error_is_answered_without_waiting() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(coord.dir.path(), 1, &coord.connect_string(), "");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let r = admin
        .create_topics([&NewTopic::new("e", 2, TopicReplication::Fixed(1))], &opts)
        .await
        .unwrap();
    assert!(r[0].is_ok());
    let addr = broker.addr();
    tokio::task::spawn_blocking(move || {
        let mut c = KafkaConn::connect(addr);
        let wait = Duration::from_secs(20);
        let fetch = |c: &mut KafkaConn, offsets: [i64; 2]| {
            let mut req = FetchRequest::default();
            req.replica_id = BrokerId(-1);
            req.max_wait_ms = wait.as_millis() as i32;
            req.min_bytes = 1;
            req.max_bytes = 1 << 20;
            let mut ft = FetchTopic::default();
            ft.topic = TopicName(StrBytes::from_static_str("e"));
            for (partition, offset) in offsets.into_iter().enumerate() {
                let mut fp = FetchPartition::default();
                fp.partition = partition as i32;
                fp.fetch_offset = offset;
                fp.partition_max_bytes = 1 << 20;
                fp.log_start_offset = -1;
                fp.current_leader_epoch = -1;
                fp.last_fetched_epoch = -1;
                ft.partitions.push(fp);
            }
            req.topics = vec![ft];
            let started = std::time::Instant::now();
            let resp = match c.call(ApiKey::Fetch, 11, RequestKind::Fetch(req)) {
                ResponseKind::Fetch(f) => f,
                other => panic!("unexpected {other:?}"),
            };
            let codes: Vec<i16> = resp.responses[0]
                .partitions
                .iter()
                .map(|p| p.error_code)
                .collect();
            (codes, started.elapsed())
        };
        let (codes, took) = fetch(&mut c, [0, 1000]);
        assert_eq!(codes, [0, 1], "partition 1 is OFFSET_OUT_OF_RANGE");
        assert!(took < wait / 4, "answered after {took:?}, as if it waited");
    })
    .await
    .unwrap();
}
