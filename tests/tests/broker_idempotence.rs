//! Idempotent producers: InitProducerId hands out unique ids, a retried batch is acknowledged
//! with its original offset and not stored twice (also after a broker restart), gaps and stale
//! epochs are refused, and librdkafka's idempotent producer loses and duplicates nothing while
//! the broker is SIGKILLed under it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, MetadataRequest, ProduceRequest, RequestKind, ResponseKind,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sluice_e2e::kafka::{idempotent_batch, KafkaConn, LossyRelay};
use sluice_e2e::{BrokerNode, CoordCluster};

fn init_producer_id(c: &mut KafkaConn, broker: &BrokerNode) -> (i64, i16) {
    let mut req = InitProducerIdRequest::default();
    req.transaction_timeout_ms = 60_000;
    match c.call(ApiKey::InitProducerId, 4, RequestKind::InitProducerId(req)) {
        ResponseKind::InitProducerId(r) => {
            assert_eq!(r.error_code, 0, "{}", broker.log_text());
            (r.producer_id.0, r.producer_epoch)
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Produces one batch to `t`/0 with acks=-1; returns (error code, base offset).
fn produce(c: &mut KafkaConn, batch: bytes::Bytes) -> (i16, i64) {
    let mut pd = PartitionProduceData::default();
    pd.index = 0;
    pd.records = Some(batch);
    let mut td = TopicProduceData::default();
    td.name = TopicName(StrBytes::from_static_str("t"));
    td.partition_data = vec![pd];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 10_000;
    req.topic_data = vec![td];
    match c.call(ApiKey::Produce, 9, RequestKind::Produce(req)) {
        ResponseKind::Produce(r) => {
            let p = &r.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn log_end(bootstrap: &str) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "w")
        .create()
        .unwrap();
    c.fetch_watermarks("t", 0, Duration::from_secs(10))
        .unwrap()
        .1
}

#[test]
fn retried_batches_are_acknowledged_once_and_sequence_errors_refused() {
    let coord = CoordCluster::start(1, "");
    let mut broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "num.partitions=1\nlog.flush.interval.messages=1\n",
    );
    let mut c = KafkaConn::connect(broker.addr());
    // Metadata for "t" creates it (auto.create.topics.enable).
    let mut md = MetadataRequest::default();
    let mut mt = MetadataRequestTopic::default();
    mt.name = Some(TopicName(StrBytes::from_static_str("t")));
    md.topics = Some(vec![mt]);
    md.allow_auto_topic_creation = true;
    c.call(ApiKey::Metadata, 9, RequestKind::Metadata(md));
    let (pid, epoch) = init_producer_id(&mut c, &broker);
    let (pid2, _) = init_producer_id(&mut c, &broker);
    assert_ne!(pid, pid2, "producer ids are unique");
    assert_eq!(epoch, 0);

    let b0 = idempotent_batch(pid, 0, 0, &[b"a", b"b"]);
    assert_eq!(produce(&mut c, b0.clone()), (0, 0));
    assert_eq!(
        produce(&mut c, idempotent_batch(pid, 0, 2, &[b"c"])),
        (0, 2)
    );
    // The retry of the first batch: acknowledged with its original offset, not appended.
    assert_eq!(produce(&mut c, b0.clone()), (0, 0));
    assert_eq!(log_end(&broker.bootstrap()), 3);
    // A gap: OUT_OF_ORDER_SEQUENCE_NUMBER (45). An older epoch: INVALID_PRODUCER_EPOCH (47).
    assert_eq!(produce(&mut c, idempotent_batch(pid, 0, 9, &[b"x"])).0, 45);
    assert_eq!(
        produce(&mut c, idempotent_batch(pid, 1, 0, &[b"d"])),
        (0, 3)
    );
    assert_eq!(produce(&mut c, idempotent_batch(pid, 0, 3, &[b"y"])).0, 47);
    assert_eq!(log_end(&broker.bootstrap()), 4);

    // After a SIGKILL the state is rebuilt from the log: the retry is still a duplicate.
    drop(c);
    broker.kill();
    broker.spawn();
    broker.wait_until_listening(Duration::from_secs(30));
    let mut c = KafkaConn::connect(broker.addr());
    let deadline = Instant::now() + Duration::from_secs(20);
    let retried = loop {
        let r = produce(&mut c, idempotent_batch(pid, 1, 0, &[b"d"]));
        // NOT_LEADER_OR_FOLLOWER until the restarted broker has its partition back.
        if r.0 != 6 || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(retried, (0, 3));
    assert_eq!(
        produce(&mut c, idempotent_batch(pid, 1, 1, &[b"e"])),
        (0, 4)
    );
    let (pid3, _) = init_producer_id(&mut c, &broker);
    assert!(
        pid3 != pid && pid3 != pid2,
        "ids stay unique across restarts"
    );
    assert_eq!(log_end(&broker.bootstrap()), 5);
}

/// An idempotent librdkafka producer that retries patiently.
fn idempotent_producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "60000")
        .set("request.timeout.ms", "30000")
        .set("retry.backoff.ms", "50")
        .create()
        .unwrap()
}

/// Sends `record-000000`.. `record-{n-1}` to `t`/0, pausing 5 ms every `pause_every` records;
/// resolves to the number of records not acknowledged.
fn send_numbered(
    producer: &FutureProducer,
    n: usize,
    pause_every: usize,
) -> tokio::task::JoinHandle<usize> {
    let producer = producer.clone();
    tokio::spawn(async move {
        let mut pending = Vec::with_capacity(n);
        for i in 0..n {
            let value = format!("record-{i:06}");
            let f =
                producer.send_result(FutureRecord::<(), _>::to("t").partition(0).payload(&value));
            pending.push(f.expect("queued"));
            if i % pause_every == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let mut failed = 0;
        for f in pending {
            if !matches!(f.await, Ok(Ok(_))) {
                failed += 1;
            }
        }
        failed
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_idempotent_producer_loses_and_duplicates_nothing_across_sigkill() {
    let coord = CoordCluster::start(1, "");
    let mut broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "num.partitions=1\nlog.flush.interval.messages=1\n",
    );
    let bootstrap = broker.bootstrap();
    let producer = idempotent_producer(&bootstrap);
    const N: usize = 6000;
    let sender = send_numbered(&producer, N, 200);
    // Kill the broker while batches are in flight, twice.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        broker.kill();
        tokio::time::sleep(Duration::from_millis(200)).await;
        broker.spawn();
        broker.wait_until_listening(Duration::from_secs(30));
    }
    let failed = tokio::time::timeout(Duration::from_secs(90), sender)
        .await
        .expect("all deliveries reported")
        .unwrap();
    assert_eq!(failed, 0, "every record acknowledged");

    let records = tokio::task::spawn_blocking(move || read_all(&bootstrap, N))
        .await
        .unwrap();
    assert_exactly_once_in_order(&records, N);
}

/// Reads partition 0 of `t` from the start until `n` records have arrived (or 30 s).
fn read_all(bootstrap: &str, n: usize) -> Vec<String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "check")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("t", 0, Offset::Beginning).unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match c.poll(Duration::from_millis(300)) {
            Some(Ok(m)) => out.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap()),
            Some(Err(e)) => panic!("{e}"),
            None if out.len() >= n => break,
            None => {}
        }
    }
    out
}

fn assert_exactly_once_in_order(records: &[String], n: usize) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for r in records {
        *seen.entry(r).or_default() += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, k)| **k > 1).take(5).collect();
    assert!(dups.is_empty(), "duplicates: {dups:?}");
    assert_eq!(records.len(), n, "every record exactly once");
    let mut sorted = records.to_vec();
    sorted.sort();
    assert_eq!(records, &sorted[..], "in send order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_retries_of_unanswered_batches_are_not_stored_twice() {
    let coord = CoordCluster::start(1, "");
    let relay_port = sluice_e2e::free_port();
    let broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        &format!("num.partitions=1\nadvertised.listeners=PLAINTEXT://127.0.0.1:{relay_port}\n"),
    );
    let relay = LossyRelay::start(relay_port, broker.addr());
    let bootstrap = format!("127.0.0.1:{relay_port}");
    let producer = idempotent_producer(&bootstrap);
    const N: usize = 4000;
    let sender = send_numbered(&producer, N, 10);
    // Twice: the broker appends what it receives, the answers are lost, the connection drops.
    // librdkafka then starts a new producer epoch (KIP-360) for the batches in doubt; whatever
    // path it takes, each record must be stored exactly once.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let r = &relay;
        tokio::task::block_in_place(|| r.lose_answers_then_cut(Duration::from_millis(150)));
    }
    let failed = tokio::time::timeout(Duration::from_secs(90), sender)
        .await
        .expect("all deliveries reported")
        .unwrap();
    assert_eq!(failed, 0, "every record acknowledged");
    let b = bootstrap.clone();
    let records = tokio::task::spawn_blocking(move || read_all(&b, N))
        .await
        .unwrap();
    assert_exactly_once_in_order(&records, N);
}
