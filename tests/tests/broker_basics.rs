//! The broker as a process, registered in a coord node, driven by real Kafka clients
//! (librdkafka through `rdkafka`, and Debian's kcat): metadata, topic administration, chroot,
//! duplicate ids and bad input.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;
use sluice_e2e::{BrokerNode, CoordCluster};
use zookeeper_client as zk;

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

fn kcat(args: &[&str]) -> String {
    let out = Command::new("kcat")
        .args(args)
        .output()
        .expect("kcat (Debian package kcat, installed by scripts/setup.sh)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_under_the_chroot_and_serves_metadata_to_kcat() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(
        coord.dir.path(),
        7,
        &format!("{}/kafka", coord.connect_string()),
        "num.partitions=3\n",
    );

    let zkc = zk::Client::connector()
        .connect(&coord.connect_string())
        .await
        .unwrap();
    assert_eq!(
        zkc.list_children("/kafka/brokers/ids").await.unwrap(),
        vec!["7".to_string()]
    );
    let (data, stat) = zkc.get_data("/kafka/brokers/ids/7").await.unwrap();
    assert_ne!(
        stat.ephemeral_owner, 0,
        "broker registration must be ephemeral"
    );
    let text = String::from_utf8(data).unwrap();
    assert!(
        text.contains(&format!(
            "\"endpoints\":[\"PLAINTEXT://127.0.0.1:{}\"]",
            broker.port
        )),
        "{text}"
    );
    assert!(zkc
        .get_data("/kafka/controller")
        .await
        .unwrap()
        .0
        .starts_with(b"{\"version\":1,\"brokerid\":7"));

    // kcat -L on an unknown topic auto-creates it with num.partitions.
    let out = kcat(&["-b", &broker.bootstrap(), "-L", "-t", "weblogs"]);
    assert!(out.contains("topic \"weblogs\" with 3 partitions"), "{out}");
    assert!(
        out.contains("partition 2, leader 7, replicas: 7, isrs: 7"),
        "{out}"
    );
    let (assignment, _) = zkc.get_data("/kafka/brokers/topics/weblogs").await.unwrap();
    assert!(String::from_utf8(assignment)
        .unwrap()
        .contains("\"partitions\":{\"0\":[7],\"1\":[7],\"2\":[7]}"));
    let (state, _) = zkc
        .get_data("/kafka/brokers/topics/weblogs/partitions/0/state")
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(state).unwrap(),
        "{\"controller_epoch\":1,\"leader\":7,\"version\":1,\"leader_epoch\":0,\"isr\":[7]}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_client_creates_and_deletes_topics_with_kafkas_errors() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(coord.dir.path(), 1, &coord.connect_string(), "");
    let a = admin(&broker.bootstrap());
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = a
        .create_topics(
            &[
                NewTopic::new("orders", 4, TopicReplication::Fixed(1)),
                NewTopic::new("bad name!", 1, TopicReplication::Fixed(1)),
                NewTopic::new("too-replicated", 1, TopicReplication::Fixed(3)),
            ],
            &opts,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", broker.log_text()));
    assert_eq!(results[0], Ok("orders".to_string()));
    assert_eq!(
        results[1],
        Err(("bad name!".to_string(), RDKafkaErrorCode::InvalidTopic))
    );
    assert_eq!(
        results[2],
        Err((
            "too-replicated".to_string(),
            RDKafkaErrorCode::InvalidReplicationFactor
        ))
    );
    let again = a
        .create_topics(
            &[NewTopic::new("orders", 1, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(
        again[0],
        Err(("orders".to_string(), RDKafkaErrorCode::TopicAlreadyExists))
    );

    let out = kcat(&["-b", &broker.bootstrap(), "-L", "-t", "orders"]);
    assert!(out.contains("topic \"orders\" with 4 partitions"), "{out}");

    let deleted = a
        .delete_topics(&["orders", "missing"], &opts)
        .await
        .unwrap();
    assert_eq!(deleted[0], Ok("orders".to_string()));
    assert_eq!(
        deleted[1],
        Err((
            "missing".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))
    );
    let out = kcat(&["-b", &broker.bootstrap(), "-L"]);
    assert!(!out.contains("\"orders\""), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_deletion_can_be_disabled() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "delete.topic.enable=false\n",
    );
    let a = admin(&broker.bootstrap());
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    a.create_topics(
        &[NewTopic::new("keep", 1, TopicReplication::Fixed(1))],
        &opts,
    )
    .await
    .unwrap();
    let r = a.delete_topics(&["keep"], &opts).await.unwrap();
    assert_eq!(
        r[0],
        Err(("keep".to_string(), RDKafkaErrorCode::TopicDeletionDisabled))
    );
}

#[test]
fn a_second_broker_with_the_same_id_is_refused() {
    let coord = CoordCluster::start(1, "");
    let _first = BrokerNode::start(coord.dir.path(), 3, &coord.connect_string(), "");
    let dup_dir = coord.dir.path().join("dup");
    std::fs::create_dir_all(&dup_dir).unwrap();
    let port = sluice_e2e::free_port();
    let cfg = dup_dir.join("server.properties");
    std::fs::write(
        &cfg,
        format!("broker.id=3\nlisteners=PLAINTEXT://127.0.0.1:{port}\nlog.dirs={}\nzookeeper.connect={}\nzookeeper.session.timeout.ms=2000\n", dup_dir.join("logs").display(), coord.connect_string()),
    )
    .unwrap();
    let out = Command::new(sluice_e2e::binary("broker"))
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broker.id 3 is already registered by another live broker"),
        "{err}"
    );
}

/// A broker SIGKILLed and started again at once finds its previous process's registration
/// still there, and that can outlive the session timeout: a change of coord leader gives every
/// session a full timeout again, as in ZooKeeper. The registration names the restarted broker's
/// own endpoints, so it waits for it as long as it takes instead of calling its id a duplicate.
#[test]
fn a_restarted_broker_outwaits_its_previous_registration_across_a_coord_leader_change() {
    let mut cluster = sluice_e2e::KafkaCluster::start(3, 1, "");
    let started = std::time::Instant::now();
    let b = cluster.broker(1);
    b.kill();
    b.spawn();
    // Broker sessions time out after 6 s here; 4.5 s in, the coord leader goes, so the old
    // session ends about 11 s after the kill, later than a wait of 6 + 2 s.
    std::thread::sleep(Duration::from_millis(4500));
    let leader = cluster.coord.wait_for_leader(Duration::from_secs(30));
    cluster.coord.nodes[leader].kill();
    cluster.coord.wait_for_leader(Duration::from_secs(30));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let registered = zk_children(&cluster.coord, "/brokers/ids");
        let b = cluster.broker(1);
        assert!(
            b.is_running(),
            "the restarted broker gave up:\n{}",
            b.log_text()
        );
        let log = b.log_text();
        let waited = log.find("previous_process=true");
        let registered_again = waited.is_some_and(|w| log[w..].contains("Registered broker 1 at"));
        if registered == ["1"] && registered_again {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not registered again: {registered:?}\n{}",
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("registered again {:.1?} after the kill", started.elapsed());
    cluster.wait_for_brokers(1, Duration::from_secs(30));
}

/// The children of `path`, read through a fresh session.
fn zk_children(coord: &CoordCluster, path: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let Ok(c) = zk::Client::connect(&coord.connect_string()).await else {
            return Vec::new();
        };
        c.list_children(path).await.unwrap_or_default()
    })
}

/// Sends raw bytes; true when the broker closed the connection.
/// Whether the broker closes the connection after `bytes` without answering: the end of the
/// stream or a reset within 10 s. A read that times out is a hang, not a close.
fn closes(addr: std::net::SocketAddr, bytes: &[u8]) -> bool {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn frame(api_key: i16, version: i16, correlation: i32, rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&api_key.to_be_bytes());
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&correlation.to_be_bytes());
    body.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    body.extend_from_slice(rest);
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

#[test]
fn bad_input_closes_only_that_connection() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "socket.request.max.bytes=1048576\n",
    );
    let addr = broker.addr();
    assert!(
        closes(addr, &[0x7f, 0xff, 0xff, 0xff]),
        "2 GB length prefix"
    );
    assert!(closes(addr, &[0xff, 0xff, 0xff, 0xff]), "negative length");
    assert!(
        closes(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        "an HTTP request"
    );
    assert!(closes(addr, &frame(999, 0, 1, &[])), "unknown API key");
    assert!(
        closes(addr, &frame(3, 99, 1, &[])),
        "unsupported Metadata version"
    );
    assert!(
        closes(addr, &frame(3, 1, 1, &[0, 0, 0, 9])),
        "truncated Metadata body"
    );

    // ApiVersions with a version from the future: UNSUPPORTED_VERSION (35) in the v0 layout.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&frame(18, 77, 42, &[])).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    assert_eq!(
        i32::from_be_bytes(body[0..4].try_into().unwrap()),
        42,
        "correlation id"
    );
    assert_eq!(
        i16::from_be_bytes(body[4..6].try_into().unwrap()),
        35,
        "UNSUPPORTED_VERSION"
    );

    let log = broker.log_text();
    assert!(log.contains("exceeds socket.request.max.bytes"), "{log}");
    assert!(log.contains("unknown API key 999"), "{log}");
    // Still serving.
    let out = kcat(&["-b", &broker.bootstrap(), "-L"]);
    assert!(out.contains("1 brokers:"), "{out}");
}

#[test]
fn sigterm_deregisters_at_once() {
    let coord = CoordCluster::start(1, "");
    let mut broker = BrokerNode::start(coord.dir.path(), 5, &coord.connect_string(), "");
    assert_eq!(broker.stop(), Some(0));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let zkc = zk::Client::connector()
            .connect(&coord.connect_string())
            .await
            .unwrap();
        assert!(zkc.list_children("/brokers/ids").await.unwrap().is_empty());
    });
}

#[test]
fn sigterm_stops_the_broker_even_when_the_coordinator_is_gone() {
    let mut coord = CoordCluster::start(1, "");
    let mut broker = BrokerNode::start(coord.dir.path(), 2, &coord.connect_string(), "");
    coord.nodes[0].kill();
    let started = std::time::Instant::now();
    assert_eq!(broker.stop(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

/// Auto-creation waits for `default.replication.factor` live brokers, answering
/// LEADER_NOT_AVAILABLE meanwhile (a topic created short of replicas would stay so, and with
/// `min.insync.replicas` above its size could never take an `acks=all` write).
#[test]
fn auto_creation_waits_for_enough_brokers() {
    let coord = CoordCluster::start(1, "");
    let extra = "default.replication.factor=2\nnum.partitions=2\n";
    let b1 = BrokerNode::start(coord.dir.path(), 1, &coord.connect_string(), extra);
    use rdkafka::producer::Producer;
    let client: rdkafka::producer::BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b1.bootstrap())
        .create()
        .unwrap();
    let md = client
        .client()
        .fetch_metadata(Some("early"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        md.topics()[0].error(),
        Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE),
        "one broker of the two needed"
    );
    assert!(md.topics()[0].partitions().is_empty());

    let _b2 = BrokerNode::start(coord.dir.path(), 2, &coord.connect_string(), extra);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let md = client
            .client()
            .fetch_metadata(Some("early"), Duration::from_secs(10))
            .unwrap();
        let t = &md.topics()[0];
        if t.error().is_none() && t.partitions().len() == 2 {
            assert!(
                t.partitions().iter().all(|p| p.replicas().len() == 2),
                "created with the full replication factor"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{:?}", t.error());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A broker frozen longer than its coordinator session (a long pause, a network partition from
/// the coordinator) finds the session expired when it wakes: it registers again with a new
/// session and keeps serving, as a Kafka broker does, instead of exiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_whose_session_expired_registers_again_and_keeps_serving() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let coord = CoordCluster::start(1, "");
    let mut broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "num.partitions=1\n",
    );
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    p.send(
        FutureRecord::<(), _>::to("t")
            .partition(0)
            .payload("before"),
        Duration::from_secs(10),
    )
    .await
    .expect("acknowledged");

    // zookeeper.session.timeout.ms=6000 in the test configuration.
    broker.freeze(true);
    tokio::time::sleep(Duration::from_secs(9)).await;
    broker.freeze(false);

    let zk = zk::Client::connect(&coord.connect_string()).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if zk.check_stat("/brokers/ids/1").await.unwrap().is_some()
            && broker.log_text().contains("registered again")
        {
            break;
        }
        assert!(
            broker.is_running(),
            "the broker exited:\n{}",
            broker.log_text()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "not registered again:\n{}",
            broker.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let d = p
        .send(
            FutureRecord::<(), _>::to("t").partition(0).payload("after"),
            Duration::from_secs(30),
        )
        .await
        .expect("acknowledged after the new session");
    assert_eq!(d.offset, 1);
    assert!(broker.is_running());
}

/// With two replicas the follower copies the leader: records acknowledged with acks=all are on
/// both, a stopped leader is replaced by its in-sync follower, which serves every record, and
/// the old leader comes back as a follower, catches up on what it missed and rejoins the ISR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_leader_is_replaced_by_its_in_sync_follower() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let coord = CoordCluster::start(1, "");
    let extra =
        "default.replication.factor=2\nnum.partitions=1\noffsets.topic.replication.factor=2\n";
    let mut brokers = [
        BrokerNode::start(coord.dir.path(), 1, &coord.connect_string(), extra),
        BrokerNode::start(coord.dir.path(), 2, &coord.connect_string(), extra),
    ];
    let all = format!("{},{}", brokers[0].bootstrap(), brokers[1].bootstrap());
    // Both brokers must know both before a topic with two replicas can be created.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for b in &brokers {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", b.bootstrap())
            .create()
            .unwrap();
        while c
            .fetch_metadata(None, Duration::from_secs(10))
            .unwrap()
            .brokers()
            .len()
            < 2
        {
            assert!(
                std::time::Instant::now() < deadline,
                "brokers never saw each other"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let r = admin(&all)
        .create_topics(
            [&NewTopic::new("r", 1, TopicReplication::Fixed(2))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap();
    assert!(r[0].is_ok());
    let meta = |bootstrap: &str| {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .unwrap();
        let md = c
            .fetch_metadata(Some("r"), Duration::from_secs(10))
            .unwrap();
        let p = &md.topics()[0].partitions()[0];
        (p.leader(), p.replicas().to_vec(), p.isr().to_vec())
    };
    let (leader, replicas, isr) = meta(&all);
    assert_eq!(replicas.len(), 2);
    let mut both = isr.clone();
    both.sort_unstable();
    assert_eq!(
        both,
        vec![1, 2],
        "a new partition's replicas are all in sync"
    );
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &all)
        .set("acks", "all")
        .create()
        .unwrap();
    for v in ["a", "b", "c"] {
        p.send(
            FutureRecord::<(), _>::to("r").partition(0).payload(v),
            Duration::from_secs(10),
        )
        .await
        .expect("acknowledged");
    }

    let (gone, other) = if leader == 1 { (0, 1) } else { (1, 0) };
    let follower = brokers[other].id;
    brokers[gone].stop();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while meta(&brokers[other].bootstrap()).0 != follower {
        assert!(
            std::time::Instant::now() < deadline,
            "the follower did not take over"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Written while the old leader is away: it must catch up on it.
    p.send(
        FutureRecord::<(), _>::to("r").partition(0).payload("d"),
        Duration::from_secs(10),
    )
    .await
    .expect("acknowledged by the new leader");
    drop(p);

    brokers[gone].spawn();
    brokers[gone].wait_until_listening(Duration::from_secs(30));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, mut isr) = meta(&brokers[other].bootstrap());
        isr.sort_unstable();
        if isr == vec![1, 2] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the old leader never rejoined the ISR: {isr:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let read = |bootstrap: String| {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "r")
            .create()
            .unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset("r", 0, rdkafka::Offset::Beginning)
            .unwrap();
        c.assign(&tpl).unwrap();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while got.len() < 4 && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                use rdkafka::message::Message;
                got.push(String::from_utf8_lossy(m.payload().unwrap()).into_owned());
            }
        }
        got
    };
    assert_eq!(read(all.clone()), ["a", "b", "c", "d"]);
    // The returning broker holds all four too: stop the current leader and read from it.
    brokers[other].stop();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while meta(&brokers[gone].bootstrap()).0 != brokers[gone].id {
        assert!(
            std::time::Instant::now() < deadline,
            "the old leader did not lead again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(read(brokers[gone].bootstrap()), ["a", "b", "c", "d"]);
}
