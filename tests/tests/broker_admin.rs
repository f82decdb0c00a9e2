//! Topic administration beyond create/delete, through librdkafka's admin client and exact
//! protocol requests: CreatePartitions, DescribeConfigs, AlterConfigs and
//! IncrementalAlterConfigs (and the overrides taking effect on the log), DeleteRecords,
//! DescribeCluster and OffsetForLeaderEpoch.

use std::time::{Duration, Instant};

use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeClusterRequest, IncrementalAlterConfigsRequest,
    OffsetForLeaderEpochRequest, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::TopicPartitionList;
use sluice_e2e::kafka::KafkaConn;
use sluice_e2e::{BrokerNode, CoordCluster};

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

fn opts() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))
}

async fn produce(bootstrap: &str, topic: &str, partition: i32, n: usize, size: usize) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .create()
        .unwrap();
    let value = vec![b'v'; size];
    for _ in 0..n {
        p.send(
            FutureRecord::<(), _>::to(topic)
                .partition(partition)
                .payload(&value),
            Duration::from_secs(10),
        )
        .await
        .expect("acknowledged");
    }
}

fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "watermarks")
        .create()
        .unwrap();
    c.fetch_watermarks(topic, partition, Duration::from_secs(10))
        .expect("watermarks")
}

fn config_value(entries: &rdkafka::admin::ConfigResource, name: &str) -> (Option<String>, String) {
    let e = entries.get(name).unwrap_or_else(|| panic!("{name} listed"));
    (e.value.clone(), format!("{:?}", e.source))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_configs_and_record_deletion_through_librdkafka() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "log.retention.check.interval.ms=200\nlog.retention.hours=168\n",
    );
    let b = broker.bootstrap();
    let a = admin(&b);

    // A per-topic segment size is applied by the log: small segments roll on disk.
    let topic = NewTopic::new("logs", 1, TopicReplication::Fixed(1)).set("segment.bytes", "2048");
    let r = a.create_topics([&topic], &opts()).await.unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let refused =
        NewTopic::new("compacted", 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    let r = a.create_topics([&refused], &opts()).await.unwrap();
    assert!(
        matches!(r[0], Err((_, RDKafkaErrorCode::InvalidConfig))),
        "{r:?}"
    );

    // CreatePartitions: 1 -> 3, each new partition gets a leader and takes records.
    let r = a
        .create_partitions([&NewPartitions::new("logs", 3)], &opts())
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let md = a
        .inner()
        .fetch_metadata(Some("logs"), Duration::from_secs(10))
        .unwrap();
    let parts = md.topics()[0].partitions();
    assert_eq!(parts.len(), 3);
    assert!(parts.iter().all(|p| p.leader() == 1), "leaders elected");
    produce(&b, "logs", 2, 3, 10).await;
    assert_eq!(watermarks(&b, "logs", 2), (0, 3));
    let r = a
        .create_partitions([&NewPartitions::new("logs", 2)], &opts())
        .await
        .unwrap();
    assert!(
        matches!(r[0], Err((_, RDKafkaErrorCode::InvalidPartitions))),
        "{r:?}"
    );

    // DescribeConfigs: the override is a topic setting, the rest come from the broker.
    let d = a
        .describe_configs([&ResourceSpecifier::Topic("logs")], &opts())
        .await
        .unwrap();
    let cfg = d[0].as_ref().expect("topic described");
    assert_eq!(
        config_value(cfg, "segment.bytes"),
        (Some("2048".into()), "DynamicTopic".to_string())
    );
    assert_eq!(
        config_value(cfg, "retention.ms"),
        (Some("604800000".into()), "Default".to_string())
    );
    let d = a
        .describe_configs([&ResourceSpecifier::Broker(1)], &opts())
        .await
        .unwrap();
    let cfg = d[0].as_ref().expect("broker described");
    assert_eq!(
        cfg.get("log.dirs").and_then(|e| e.value.clone()),
        Some(broker.log_dir.display().to_string())
    );

    // 60 records of ~100 B on partition 0 with 2 KiB segments: several segment files.
    produce(&b, "logs", 0, 60, 100).await;
    let dir = broker.log_dir.join("logs-0");
    let segments = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("log".as_ref()))
            .count()
    };
    assert!(segments() > 2, "segments rolled at segment.bytes=2048");

    // AlterConfigs: a bad value is refused; retention.ms=1 then deletes the old segments.
    let bad = AlterConfig::new(ResourceSpecifier::Topic("logs")).set("retention.ms", "soon");
    // (The rdkafka crate reports AlterConfigs per-resource errors as success: check the state.)
    a.alter_configs([&bad], &opts()).await.unwrap();
    let d = a
        .describe_configs([&ResourceSpecifier::Topic("logs")], &opts())
        .await
        .unwrap();
    let cfg = d[0].as_ref().unwrap();
    assert_eq!(
        config_value(cfg, "retention.ms").0,
        Some("604800000".into())
    );
    assert_eq!(config_value(cfg, "segment.bytes").0, Some("2048".into()));
    let short = AlterConfig::new(ResourceSpecifier::Topic("logs"))
        .set("segment.bytes", "2048")
        .set("retention.ms", "1");
    let r = a.alter_configs([&short], &opts()).await.unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (low, high) = watermarks(&b, "logs", 0);
        assert_eq!(high, 60);
        if low > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retention.ms=1 deleted nothing:\n{}",
            broker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // DeleteRecords on partition 2: the log start moves to 2.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("logs", 2, rdkafka::Offset::Offset(2))
        .unwrap();
    let r = a.delete_records(&tpl, &opts()).await.unwrap();
    let p = r.find_partition("logs", 2).unwrap();
    assert!(p.error().is_ok(), "{:?}", p.error());
    assert_eq!(watermarks(&b, "logs", 2), (2, 3));
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("logs", 2, rdkafka::Offset::Offset(99))
        .unwrap();
    let r = a.delete_records(&tpl, &opts()).await.unwrap();
    assert!(r.find_partition("logs", 2).unwrap().error().is_err());
}

fn alter(name: &str, op: i8, value: Option<&str>) -> AlterableConfig {
    let mut c = AlterableConfig::default();
    c.name = StrBytes::from_string(name.into());
    c.config_operation = op;
    c.value = value.map(|v| StrBytes::from_string(v.into()));
    c
}

fn incremental(topic: &str, configs: Vec<AlterableConfig>) -> RequestKind {
    let mut r = AlterConfigsResource::default();
    r.resource_type = 2;
    r.resource_name = StrBytes::from_string(topic.into());
    r.configs = configs;
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources = vec![r];
    RequestKind::IncrementalAlterConfigs(req)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_alter_describe_cluster_and_leader_epochs_over_the_wire() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "num.partitions=1\n",
    );
    let b = broker.bootstrap();
    let r = admin(&b)
        .create_topics(
            [&NewTopic::new("t", 1, TopicReplication::Fixed(1))],
            &opts(),
        )
        .await
        .unwrap();
    assert!(r[0].is_ok());
    produce(&b, "t", 0, 5, 10).await;

    let addr = broker.addr();
    let results = tokio::task::spawn_blocking(move || {
        let mut c = KafkaConn::connect(addr);
        let mut out = Vec::new();
        for version in [0, 1] {
            // SET two keys, APPEND to a list, then DELETE one.
            out.push(c.call(
                ApiKey::IncrementalAlterConfigs,
                version,
                incremental(
                    "t",
                    vec![
                        alter("retention.ms", 0, Some("3600000")),
                        alter("max.message.bytes", 0, Some("2000000")),
                        alter("leader.replication.throttled.replicas", 2, Some("0:1")),
                    ],
                ),
            ));
            out.push(c.call(
                ApiKey::IncrementalAlterConfigs,
                version,
                incremental("t", vec![alter("max.message.bytes", 1, None)]),
            ));
            out.push(c.call(
                ApiKey::IncrementalAlterConfigs,
                version,
                incremental("t", vec![alter("retention.ms", 0, Some("-5"))]),
            ));
            out.push(c.call(
                ApiKey::IncrementalAlterConfigs,
                version,
                incremental("missing", vec![alter("retention.ms", 0, Some("1"))]),
            ));
        }
        let mut dc = DescribeClusterRequest::default();
        dc.endpoint_type = 1;
        out.push(c.call(ApiKey::DescribeCluster, 1, RequestKind::DescribeCluster(dc)));
        let mut p = OffsetForLeaderPartition::default();
        p.partition = 0;
        p.current_leader_epoch = 0;
        p.leader_epoch = 0;
        let mut t = OffsetForLeaderTopic::default();
        t.topic = TopicName(StrBytes::from_static_str("t"));
        t.partitions = vec![p];
        let mut req = OffsetForLeaderEpochRequest::default();
        req.replica_id = BrokerId(-1);
        req.topics = vec![t];
        out.push(c.call(
            ApiKey::OffsetForLeaderEpoch,
            4,
            RequestKind::OffsetForLeaderEpoch(req.clone()),
        ));
        req.topics[0].partitions[0].current_leader_epoch = 7;
        out.push(c.call(
            ApiKey::OffsetForLeaderEpoch,
            4,
            RequestKind::OffsetForLeaderEpoch(req),
        ));
        out
    })
    .await
    .unwrap();

    let code = |r: &ResponseKind| match r {
        ResponseKind::IncrementalAlterConfigs(x) => x.responses[0].error_code,
        other => panic!("unexpected {other:?}"),
    };
    for v in 0..2 {
        let r = &results[v * 4..v * 4 + 4];
        assert_eq!(code(&r[0]), 0, "{:?}", r[0]);
        assert_eq!(code(&r[1]), 0);
        assert_eq!(code(&r[2]), 40, "INVALID_CONFIG for a negative retention");
        assert_eq!(code(&r[3]), 3, "UNKNOWN_TOPIC_OR_PARTITION");
    }
    let d = admin(&b)
        .describe_configs([&ResourceSpecifier::Topic("t")], &opts())
        .await
        .unwrap();
    let cfg = d[0].as_ref().unwrap();
    assert_eq!(
        config_value(cfg, "retention.ms"),
        (Some("3600000".into()), "DynamicTopic".to_string())
    );
    assert_eq!(
        config_value(cfg, "max.message.bytes").1,
        "Default".to_string()
    );
    assert_eq!(
        config_value(cfg, "leader.replication.throttled.replicas").0,
        Some("0:1".into())
    );

    match &results[8] {
        ResponseKind::DescribeCluster(d) => {
            assert_eq!(d.error_code, 0);
            assert!(!d.cluster_id.is_empty());
            assert_eq!(d.controller_id, BrokerId(1));
            assert_eq!(d.brokers.len(), 1);
            assert_eq!(
                (d.brokers[0].host.as_str(), d.brokers[0].port),
                ("127.0.0.1", i32::from(broker.port))
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    match (&results[9], &results[10]) {
        (ResponseKind::OffsetForLeaderEpoch(ok), ResponseKind::OffsetForLeaderEpoch(ahead)) => {
            let e = &ok.topics[0].partitions[0];
            assert_eq!((e.error_code, e.leader_epoch, e.end_offset), (0, 0, 5));
            assert_eq!(
                ahead.topics[0].partitions[0].error_code, 75,
                "UNKNOWN_LEADER_EPOCH for an epoch newer than the leader's"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// kafka-python's admin client (Debian's python3-kafka): topic configs at creation,
/// CreatePartitions, AlterConfigs (whole-set replacement) read back at once by DescribeConfigs,
/// and an `acks=all` producer on the new partitions.
const KAFKA_PYTHON_ADMIN: &str = r#"
import json, sys
from kafka.admin import KafkaAdminClient, NewTopic, NewPartitions, ConfigResource, ConfigResourceType
from kafka import KafkaProducer
b = sys.argv[1]
a = KafkaAdminClient(bootstrap_servers=b)
out = {}
r = a.create_topics([NewTopic("kp", 1, 1, topic_configs={"retention.ms": "3600000"})])
out["create"] = [e[1] for e in r.topic_errors]
r = a.create_partitions({"kp": NewPartitions(3)})
out["partitions"] = [e[1] for e in r.topic_errors]
def described():
    res = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "kp")])[0].resources[0]
    return {c[0]: [c[1], c[3]] for c in res[4] if c[0] in ("retention.ms", "segment.ms")}
out["before"] = described()
r = a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "kp", configs={"segment.ms": "600000"})])
out["alter"] = [x[0] for x in r.resources]
out["after"] = described()
p = KafkaProducer(bootstrap_servers=b, acks="all")
out["offsets"] = [p.send("kp", b"v", partition=i).get(10).offset for i in range(3)]
print(json.dumps(out, sort_keys=True))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_admin_partitions_and_configs() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(coord.dir.path(), 1, &coord.connect_string(), "");
    let b = broker.bootstrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("/usr/bin/python3")
            .args(["-c", KAFKA_PYTHON_ADMIN, &b])
            .output()
            .expect("/usr/bin/python3 with python3-kafka (scripts/setup.sh)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "kafka-python failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Sources: 1 = the topic's own setting, 5 = Kafka's default.
    assert_eq!(
        stdout.trim(),
        r#"{"after": {"retention.ms": ["604800000", 5], "segment.ms": ["600000", 1]}, "alter": [0], "before": {"retention.ms": ["3600000", 1], "segment.ms": ["604800000", 5]}, "create": [0], "offsets": [0, 0, 0], "partitions": [0]}"#
    );
}

/// CreateTopics is answered once the receiving broker's metadata has every partition of the
/// new topic with a leader, as Kafka answers it: librdkafka creating a topic and producing to
/// its last partition right away through the same broker never meets "Unknown partition"
/// (it did, before), and that broker's Metadata names a leader for every partition as soon as
/// the answer arrives. Ten topics in a row. (One broker: librdkafka sends CreateTopics to the
/// controller, so only there is the receiving broker known.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_topic_is_writable_on_every_partition_at_once() {
    let cluster = sluice_e2e::KafkaCluster::start(1, 1, "");
    let via = cluster.brokers[0].bootstrap();
    let admin = admin(&via);
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &via)
        .set("linger.ms", "0")
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();
    for i in 0..10 {
        let topic = format!("fresh-{i}");
        let r = admin
            .create_topics(
                [&NewTopic::new(&topic, 4, TopicReplication::Fixed(1))],
                &opts(),
            )
            .await
            .unwrap();
        assert!(r[0].is_ok(), "{r:?}");
        // The answer came after the receiving broker's metadata had every partition led.
        for partition in 0..4 {
            let (leader, isr) = cluster.leader(1, &topic, partition);
            assert!(
                leader > 0,
                "{topic}-{partition}: no leader right after CreateTopics ({leader}, {isr:?})"
            );
        }
        let sent = p
            .send(
                FutureRecord::<(), _>::to(&topic)
                    .partition(3)
                    .payload("first"),
                Duration::from_secs(10),
            )
            .await;
        assert!(sent.is_ok(), "{topic}: {sent:?}");
    }
}
