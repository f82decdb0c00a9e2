//! A topic's `compression.type`: `producer` keeps batches as sent; a codec (`uncompressed`,
//! `gzip`, `snappy`, `lz4`, `zstd`) has the leader re-encode every batch in it before storing
//! it, as Kafka does. Checked with the client that found it refused (confluent-kafka 2.16,
//! librdkafka 2.16 inside), by reading the stored segment files, and with a raw Produce whose
//! small zstd batch would inflate past `max.message.bytes` (refused, never inflated; the broker
//! keeps serving).

use std::collections::BTreeMap;

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_e2e::kafka::KafkaConn;
use sluice_e2e::{BrokerNode, CoordCluster};
use sluice_log::batch::{BatchHeader, Compression};

const CODECS: &str = r#"
import json, sys, time
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap = sys.argv[1]
admin = AdminClient({'bootstrap.servers': bootstrap})
topics = ['producer', 'uncompressed', 'gzip', 'snappy', 'lz4', 'zstd']
for f in admin.create_topics([NewTopic('c-' + t, 1, 1, config={'compression.type': t})
                              for t in topics]).values():
    f.result()
values = [('line %d of a log that compresses well, ' % i * 4).encode() for i in range(200)]
for producer_codec in ['gzip', 'none', 'snappy']:
    p = Producer({'bootstrap.servers': bootstrap, 'compression.type': producer_codec,
                  'linger.ms': 50, 'acks': 'all'})
    for t in topics:
        for v in values:
            p.produce('c-' + t, value=v, partition=0)
    p.flush(20)
read = {}
for t in topics:
    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': 'codec-' + t})
    c.assign([TopicPartition('c-' + t, 0, 0)])
    got, deadline = [], time.time() + 20
    while len(got) < 3 * len(values) and time.time() < deadline:
        m = c.poll(0.3)
        if m is not None and m.error() is None:
            got.append(m.value())
    c.close()
    read[t] = got == values * 3
print(json.dumps(read))
"#;

/// The codec of every batch stored in partition 0 of `topic`.
fn stored_codecs(broker: &BrokerNode, topic: &str) -> Vec<Compression> {
    let dir = broker.log_dir.join(format!("{topic}-0"));
    let mut codecs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            let bytes = std::fs::read(&path).unwrap();
            let mut pos = 0;
            while pos < bytes.len() {
                let h = BatchHeader::parse(&bytes[pos..]).unwrap();
                codecs.push(h.compression());
                pos += h.size() as usize;
            }
        }
    }
    codecs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_store_batches_in_their_compression_type() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(coord.dir.path(), 1, &coord.connect_string(), "");
    let b = broker.bootstrap();
    let out = tokio::task::spawn_blocking(move || sluice_e2e::run_python(CODECS, &[&b]))
        .await
        .unwrap();
    let read: BTreeMap<String, bool> = serde_json::from_str(out.trim()).expect(&out);
    assert!(read.values().all(|ok| *ok), "every topic reads back: {out}");
    assert_eq!(read.len(), 6);
    for (topic, want) in [
        ("uncompressed", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ] {
        let codecs = stored_codecs(&broker, &format!("c-{topic}"));
        assert!(!codecs.is_empty());
        assert!(codecs.iter().all(|c| *c == want), "c-{topic}: {codecs:?}");
    }
    // `producer`: stored as the three producers sent them.
    let codecs = stored_codecs(&broker, "c-producer");
    for c in [Compression::Gzip, Compression::None, Compression::Snappy] {
        assert!(codecs.contains(&c), "c-producer: {codecs:?}");
    }
}

fn produce_raw(conn: &mut KafkaConn, topic: &str, records: bytes::Bytes) -> i16 {
    let mut pd = PartitionProduceData::default();
    pd.records = Some(records);
    let mut td = TopicProduceData::default();
    td.name = TopicName(StrBytes::from_string(topic.into()));
    td.partition_data.push(pd);
    let mut req = ProduceRequest::default();
    req.acks = 1;
    req.timeout_ms = 10_000;
    req.topic_data.push(td);
    match conn.call(ApiKey::Produce, 9, RequestKind::Produce(req)) {
        ResponseKind::Produce(r) => r.responses[0].partition_responses[0].error_code,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_inflating_past_the_limit_is_refused_not_inflated() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "compression.type=lz4\nnum.partitions=1\n",
    );
    let pid = broker.pid().unwrap();
    let mut conn = KafkaConn::connect(broker.addr());
    // 64 records of 1 MiB of zeros: 64 MiB inflated, a few KiB as zstd.
    let mut b = sluice_log::records::BatchBuilder::new();
    let zeros = vec![0u8; 1 << 20];
    for i in 0..64 {
        b.push(1_700_000_000_000 + i, None, Some(&zeros));
    }
    let plain = b.build();
    let h = BatchHeader::parse(&plain).unwrap();
    let bomb = sluice_log::compression::recode_batch(&plain, &h, Compression::Zstd, 1 << 27)
        .unwrap()
        .unwrap();
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    drop(plain);
    let before = sluice_e2e::proc_status_kib(pid, "VmHWM");
    assert_eq!(
        conn.create_topic("bombed", 1, 10_000).topics[0].error_code,
        0
    );
    // MESSAGE_TOO_LARGE (10), as many times as sent; nothing stored.
    for _ in 0..5 {
        let code = produce_raw(&mut conn, "bombed", bytes::Bytes::from(bomb.clone()));
        assert_eq!(code, 10);
    }
    let grown = sluice_e2e::proc_status_kib(pid, "VmHWM").saturating_sub(before);
    assert!(grown < 16 << 10, "peak memory grew {grown} KiB");
    // A small batch in any codec still goes in, re-encoded.
    let mut b = sluice_log::records::BatchBuilder::new();
    b.push(1_700_000_000_000, None, Some(b"fine"));
    let small = b.build();
    let h = BatchHeader::parse(&small).unwrap();
    let zstd = sluice_log::compression::recode_batch(&small, &h, Compression::Zstd, 1 << 20)
        .unwrap()
        .unwrap();
    assert_eq!(
        produce_raw(&mut conn, "bombed", bytes::Bytes::from(zstd)),
        0
    );
    assert_eq!(stored_codecs(&broker, "bombed"), vec![Compression::Lz4]);
}
