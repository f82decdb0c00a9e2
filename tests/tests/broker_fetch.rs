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
