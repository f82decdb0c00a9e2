//! coord under the most demanding ZooKeeper user there is: three Apache Kafka 3.9 brokers (the
//! last line with ZooKeeper mode; the jars and the real Java ZooKeeper client they bring come
//! from Maven Central through `scripts/setup.sh`) with `zookeeper.connect` naming a three-node
//! coord ensemble.
//!
//! ```text
//!   coord 1 ─┐                       Kafka 1 ─┐
//!   coord 2 ─┼── zookeeper.connect ──Kafka 2 ─┼── librdkafka: admin, acks=all producer, consumer
//!   coord 3 ─┘                       Kafka 3 ─┘
//! ```
//!
//! The brokers register and elect a controller in coord; topics are created and deleted; a
//! Kafka broker killed (SIGKILL) and then the coord leader killed each leave the partitions led
//! and writable; the killed broker comes back into every ISR; every record acknowledged before,
//! between and after the faults is read back in order.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, TopicPartitionList};
use sluice_e2e::{free_port, java_classpath, CoordCluster};
use zookeeper_client as zk;

const TOPIC: &str = "weblogs";
const PARTITIONS: i32 = 3;

/// One Apache Kafka 3.9 broker process in ZooKeeper mode.
struct KafkaBroker {
    id: i32,
    port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl KafkaBroker {
    fn start(dir: &Path, id: i32, zookeeper_connect: &str) -> KafkaBroker {
        let port = free_port();
        let config = dir.join(format!("kafka-{id}.properties"));
        std::fs::write(
            &config,
            format!(
                "broker.id={id}\nlisteners=PLAINTEXT://127.0.0.1:{port}\nlog.dirs={}\n\
                 zookeeper.connect={zookeeper_connect}\nzookeeper.session.timeout.ms=10000\n\
                 num.partitions=3\ndefault.replication.factor=3\nmin.insync.replicas=2\n\
                 offsets.topic.replication.factor=3\ngroup.initial.rebalance.delay.ms=0\n\
                 num.network.threads=2\nnum.io.threads=2\nlog.flush.interval.messages=1\n",
                dir.join(format!("kafka-logs-{id}")).display()
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("log4j.properties"),
            "log4j.rootLogger=INFO, file\nlog4j.appender.file=org.apache.log4j.ConsoleAppender\n\
             log4j.appender.file.layout=org.apache.log4j.PatternLayout\n\
             log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n\
             log4j.logger.org.apache.zookeeper=INFO\nlog4j.logger.kafka.request.logger=WARN\n",
        )
        .unwrap();
        let mut b = KafkaBroker {
            id,
            port,
            config,
            log: dir.join(format!("kafka-{id}.log")),
            child: None,
        };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let classpath = java_classpath("broker-3.9.1");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let log4j = self.config.parent().unwrap().join("log4j.properties");
        self.child = Some(
            Command::new("java")
                .args([
                    "-Xmx256m",
                    "-Xms64m",
                    "-XX:+UseG1GC",
                    "-XX:TieredStopAtLevel=1",
                ])
                .arg(format!("-Dlog4j.configuration=file:{}", log4j.display()))
                .arg("-cp")
                .arg(classpath)
                .arg("kafka.Kafka")
                .arg(&self.config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start Apache Kafka"),
        );
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for KafkaBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn tails(kafka: &[KafkaBroker], coord: &CoordCluster) -> String {
    let mut s = String::new();
    for b in kafka {
        s += &format!("--- Kafka {} ---\n{}\n", b.id, b.log_tail(25));
    }
    for n in &coord.nodes {
        let text = n.log_text();
        let lines: Vec<&str> = text.lines().collect();
        s += &format!(
            "--- coord {} ---\n{}\n",
            n.id,
            lines[lines.len().saturating_sub(15)..].join("\n")
        );
    }
    s
}

/// `{"controller_epoch":..,"leader":L,"version":1,"leader_epoch":..,"isr":[..]}`, as Kafka's
/// controller writes each partition's state into ZooKeeper.
fn leader_and_isr(data: &[u8]) -> (i32, Vec<i32>) {
    let v: serde_json::Value = serde_json::from_slice(data).expect("partition state JSON");
    let leader = v["leader"].as_i64().unwrap() as i32;
    let isr = v["isr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap() as i32)
        .collect();
    (leader, isr)
}

async fn partition_states(zkc: &zk::Client, topic: &str) -> Vec<(i32, Vec<i32>)> {
    let mut out = Vec::new();
    for p in 0..PARTITIONS {
        match zkc
            .get_data(&format!("/brokers/topics/{topic}/partitions/{p}/state"))
            .await
        {
            Ok((data, _)) => out.push(leader_and_isr(&data)),
            Err(_) => out.push((-1, vec![])),
        }
    }
    out
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, diag: impl Fn() -> String, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !cond().await {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            diag()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Produces `n` records (acks=all) numbered from `from`; returns once each is acknowledged, or
/// the first error.
async fn produce(bootstrap: &str, from: usize, n: usize) -> Result<(), String> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    // Enqueued in order (librdkafka keeps a partition's records in enqueue order), awaited after.
    let mut acks = Vec::new();
    for i in from..from + n {
        let key = format!("{i}");
        let value = format!("record-{i}");
        let record = FutureRecord::to(TOPIC)
            .partition((i % PARTITIONS as usize) as i32)
            .key(&key)
            .payload(&value);
        acks.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| format!("not enqueued: {e}"))?,
        );
    }
    for a in acks {
        a.await
            .map_err(|_| "delivery future cancelled".to_string())?
            .map_err(|(e, _)| format!("record not acknowledged: {e}"))?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_kafka_3_9_in_zookeeper_mode_runs_on_a_coord_ensemble() {
    let mut coord = CoordCluster::start(3, "");
    let dir = tempfile::tempdir().unwrap();
    let connect = coord.connect_string();
    let mut kafka: Vec<KafkaBroker> = (1..=3)
        .map(|id| KafkaBroker::start(dir.path(), id, &connect))
        .collect();
    let zkc = zk::Client::connect(&connect).await.unwrap();

    // Registration and controller election, as Kafka writes them.
    wait_until(
        "three Kafka brokers registered",
        Duration::from_secs(90),
        || tails(&kafka, &coord),
        || async {
            zkc.list_children("/brokers/ids")
                .await
                .map(|c| c.len() == 3)
                .unwrap_or(false)
        },
    )
    .await;
    // The controller is elected a moment after the registrations.
    wait_until(
        "a Kafka controller elected",
        Duration::from_secs(60),
        || tails(&kafka, &coord),
        || async {
            zkc.check_stat("/controller")
                .await
                .is_ok_and(|s| s.is_some())
        },
    )
    .await;
    let (controller, _) = zkc.get_data("/controller").await.unwrap();
    let controller: serde_json::Value = serde_json::from_slice(&controller).unwrap();
    assert!(controller["brokerid"].as_i64().is_some(), "{controller}");
    let (cluster_id, _) = zkc.get_data("/cluster/id").await.unwrap();
    assert!(String::from_utf8_lossy(&cluster_id).contains("\"id\""));

    let bootstrap = kafka
        .iter()
        .map(KafkaBroker::bootstrap)
        .collect::<Vec<_>>()
        .join(",");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for topic in [TOPIC, "short-lived"] {
        let r = admin
            .create_topics(
                [&NewTopic::new(
                    topic,
                    PARTITIONS,
                    TopicReplication::Fixed(3),
                )],
                &opts,
            )
            .await
            .unwrap();
        assert!(r[0].is_ok(), "{r:?}");
    }
    wait_until(
        "every partition led with a full ISR",
        Duration::from_secs(30),
        || tails(&kafka, &coord),
        || async {
            partition_states(&zkc, TOPIC)
                .await
                .iter()
                .all(|(l, isr)| *l > 0 && isr.len() == 3)
        },
    )
    .await;
    produce(&bootstrap, 0, 600)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&kafka, &coord)));

    // A topic deletion goes through /admin/delete_topics and the controller.
    let r = admin.delete_topics(&["short-lived"], &opts).await.unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    wait_until(
        "the deleted topic gone from coord",
        Duration::from_secs(30),
        || tails(&kafka, &coord),
        || async {
            zkc.list_children("/brokers/topics")
                .await
                .map(|t| !t.iter().any(|t| t == "short-lived"))
                .unwrap_or(false)
                && zkc
                    .list_children("/admin/delete_topics")
                    .await
                    .map(|c| c.is_empty())
                    .unwrap_or(true)
        },
    )
    .await;

    // A Kafka broker leading partition 0 is killed: the controller moves its leaderships.
    let (victim, _) = partition_states(&zkc, TOPIC).await[0].clone();
    kafka
        .iter_mut()
        .find(|b| b.id == victim)
        .expect("leader")
        .kill();
    wait_until(
        "leaders away from the killed broker",
        Duration::from_secs(60),
        || tails(&kafka, &coord),
        || async {
            partition_states(&zkc, TOPIC)
                .await
                .iter()
                .all(|(l, isr)| *l > 0 && *l != victim && !isr.contains(&victim))
        },
    )
    .await;
    let alive = kafka
        .iter()
        .filter(|b| b.id != victim)
        .map(KafkaBroker::bootstrap)
        .collect::<Vec<_>>()
        .join(",");
    produce(&alive, 600, 600)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&kafka, &coord)));

    // The coord leader is killed: the brokers' sessions move to the other members and survive.
    let leader = coord.wait_for_leader(Duration::from_secs(10));
    coord.nodes[leader].kill();
    coord.wait_for_leader(Duration::from_secs(30));
    produce(&alive, 1200, 600)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", tails(&kafka, &coord)));
    coord.restart(leader);
    let zkc = zk::Client::connect(&connect).await.unwrap();

    // The killed Kafka broker returns and is back in every ISR.
    kafka.iter_mut().find(|b| b.id == victim).unwrap().spawn();
    wait_until(
        "the restarted broker back in every ISR",
        Duration::from_secs(90),
        || tails(&kafka, &coord),
        || async {
            partition_states(&zkc, TOPIC)
                .await
                .iter()
                .all(|(l, isr)| *l > 0 && isr.len() == 3)
        },
    )
    .await;
    let registered = zkc.list_children("/brokers/ids").await.unwrap();
    assert_eq!(registered.len(), 3, "{registered:?}");

    // Every acknowledged record, in order per partition.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "verify")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut read: Vec<Vec<usize>> = vec![Vec::new(); PARTITIONS as usize];
    let deadline = Instant::now() + Duration::from_secs(60);
    while read.iter().map(Vec::len).sum::<usize>() < 1800 {
        assert!(
            Instant::now() < deadline,
            "read {} of 1800\n{}",
            read.iter().map(Vec::len).sum::<usize>(),
            tails(&kafka, &coord)
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let value = std::str::from_utf8(m.payload().unwrap()).unwrap();
            let i: usize = value.strip_prefix("record-").unwrap().parse().unwrap();
            read[m.partition() as usize].push(i);
        }
    }
    for (p, got) in read.iter().enumerate() {
        let want: Vec<usize> = (0..1800).filter(|i| i % PARTITIONS as usize == p).collect();
        assert_eq!(got, &want, "partition {p}");
    }
}
