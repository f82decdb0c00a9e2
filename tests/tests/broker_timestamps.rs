//! Record timestamps as clients see them, each checked with the client that found it missing
//! (confluent-kafka 2.16, librdkafka 2.16 inside): a LogAppendTime topic, where the broker
//! stamps each batch when it appends it, and ListOffsets for the max timestamp (KIP-734, -3),
//! which names the record with the largest timestamp, and `offsets_for_times` on partitions
//! that do not exist. The expected answers are what Apache Kafka 4.1 gave the same scripts.

use sluice_e2e::{BrokerNode, CoordCluster};

const LOG_APPEND_TIME: &str = r#"
import json, sys, time
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap = sys.argv[1]
admin = AdminClient({'bootstrap.servers': bootstrap})
for f in admin.create_topics([NewTopic('stamped', 1, 1,
                                       config={'message.timestamp.type': 'LogAppendTime'})]).values():
    f.result()
before = int(time.time() * 1000)
p = Producer({'bootstrap.servers': bootstrap, 'acks': 'all', 'linger.ms': 20})
reports = []
def report(err, m):
    reports.append([str(err), m.timestamp()[0], m.timestamp()[1]])
for i in range(5):
    # Producer timestamps from 1970: the topic keeps the append time instead.
    p.produce('stamped', value=b'v%d' % i, timestamp=1000 + i, on_delivery=report)
p.flush(10)
after = int(time.time() * 1000)
c = Consumer({'bootstrap.servers': bootstrap, 'group.id': 'stamped'})
c.assign([TopicPartition('stamped', 0, 0)])
got, deadline = [], time.time() + 15
while len(got) < 5 and time.time() < deadline:
    m = c.poll(0.3)
    if m is not None and m.error() is None:
        got.append([m.offset(), m.timestamp()[0], m.timestamp()[1]])
c.close()
print(json.dumps({'before': before, 'after': after, 'reports': reports, 'got': got}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_append_time_topic_stamps_records_when_appended() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(coord.dir.path(), 1, &coord.connect_string(), "");
    let b = broker.bootstrap();
    let out = tokio::task::spawn_blocking(move || sluice_e2e::run_python(LOG_APPEND_TIME, &[&b]))
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect(&out);
    let (before, after) = (v["before"].as_i64().unwrap(), v["after"].as_i64().unwrap());
    // librdkafka's TIMESTAMP_LOG_APPEND_TIME is 2; the delivery report carries the broker's
    // stamp from the Produce answer, the consumer the one stored in the batch.
    for key in ["reports", "got"] {
        let rows = v[key].as_array().unwrap();
        assert_eq!(rows.len(), 5, "{key}: {out}");
        for row in rows {
            assert_eq!(row[1], 2, "{key}: not LogAppendTime: {out}");
            let ts = row[2].as_i64().unwrap();
            assert!(
                (before..=after).contains(&ts),
                "{key}: {ts} outside [{before}, {after}]: {out}"
            );
        }
    }
    assert!(
        v["reports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r[0] == "None"),
        "{out}"
    );
}

const MAX_TIMESTAMP: &str = r#"
import json, sys
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap = sys.argv[1]
admin = AdminClient({'bootstrap.servers': bootstrap})
for f in admin.create_topics([NewTopic('times', 3, 1)]).values():
    f.result()
def batch(partition, timestamps):
    p = Producer({'bootstrap.servers': bootstrap, 'linger.ms': 100, 'acks': 'all'})
    for ts in timestamps:
        p.produce('times', value=b'v', partition=partition, timestamp=ts)
    p.flush(10)
batch(0, [10, 30, 20])                   # the largest in the middle of a batch: offset 1
batch(1, [10, 50, 20]); batch(1, [50, 5])  # reached again later: the first one, offset 1
# partition 2 stays empty: no offset
c = Consumer({'bootstrap.servers': bootstrap, 'group.id': 'times'})
found = c.offsets_for_times([TopicPartition('times', p, -3) for p in range(3)], timeout=10)
by_time = c.offsets_for_times([TopicPartition('times', p, 25) for p in range(3)], timeout=10)
c.close()
print(json.dumps({'max': [[x.partition, x.offset, str(x.error)] for x in found],
                  'at_25': [[x.partition, x.offset, str(x.error)] for x in by_time]}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_for_the_max_timestamp_names_its_record() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(coord.dir.path(), 1, &coord.connect_string(), "");
    let b = broker.bootstrap();
    let out = tokio::task::spawn_blocking(move || sluice_e2e::run_python(MAX_TIMESTAMP, &[&b]))
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect(&out);
    assert_eq!(
        v["max"],
        serde_json::json!([[0, 1, "None"], [1, 1, "None"], [2, -1, "None"]]),
        "{out}"
    );
    assert_eq!(
        v["at_25"],
        serde_json::json!([[0, 1, "None"], [1, 1, "None"], [2, -1, "None"]]),
        "{out}"
    );
}

const MISSING_PARTITIONS: &str = r#"
import json, sys
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap = sys.argv[1]
admin = AdminClient({'bootstrap.servers': bootstrap})
for f in admin.create_topics([NewTopic('present', 1, 1)]).values():
    f.result()
c = Consumer({'bootstrap.servers': bootstrap, 'group.id': 'missing'})
out = []
for tps in ([TopicPartition('present', 0, 1000), TopicPartition('present', 99, 1000)],
            [TopicPartition('present', 0, 1000), TopicPartition('absent', 0, 1000)],
            [TopicPartition('absent', 0, 1000)]):
    try:
        found = c.offsets_for_times(tps, timeout=10)
        out.append([[x.topic, x.partition, x.offset, x.error.code() if x.error else 0]
                    for x in found])
    except Exception as e:
        out.append(str(e.args[0].code()))
c.close()
print(json.dumps(out))
"#;

/// `offsets_for_times` on partitions that do not exist (librdkafka's C and C++ API, here
/// through confluent-kafka): the answers Apache Kafka 4.1 gives the same script, one error
/// per partition (UNKNOWN_TOPIC_OR_PARTITION for a topic the broker does not have, librdkafka's
/// own "unknown partition" for a partition past the topic's count) and the others answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_times_on_missing_partitions_answers_each_partition() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "auto.create.topics.enable=false\n",
    );
    let b = broker.bootstrap();
    let out =
        tokio::task::spawn_blocking(move || sluice_e2e::run_python(MISSING_PARTITIONS, &[&b]))
            .await
            .unwrap();
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect(&out);
    // -190: RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION; 3: UNKNOWN_TOPIC_OR_PARTITION.
    assert_eq!(
        v,
        serde_json::json!([
            [["present", 0, -1, 0], ["present", 99, 1000, -190]],
            [["present", 0, -1, 0], ["absent", 0, 1000, 3]],
            "-190"
        ]),
        "{out}"
    );
}
