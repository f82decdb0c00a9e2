//! Client quotas as a Kafka operator sets them: Apache Kafka's own `kafka-configs`
//! (`org.apache.kafka.tools.ConfigCommand` of kafka-tools 4.4, installed by
//! `scripts/setup.sh`) against real coord and broker processes, and raw requests through
//! [`KafkaConn`] to read `throttle_time_ms` exactly.
//!
//! Rates are printed; the bands asserted are wide (a loaded two-core machine), but each would
//! fail without enforcement: an unthrottled client here moves tens of MB/s.

use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    alter_client_quotas_request, describe_client_quotas_request, fetch_request,
    AlterClientQuotasRequest, ApiKey, DescribeClientQuotasRequest, FetchRequest, RequestKind,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_e2e::kafka::KafkaConn;
use sluice_e2e::{java_classpath, KafkaCluster};

/// The quota the rate tests set: 256 KiB/s.
const QUOTA: f64 = 262_144.0;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Apache Kafka's `kafka-configs.sh --bootstrap-server <bootstrap> <args>`: (success, output
/// without the tool's log lines).
fn kafka_configs(bootstrap: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("java")
        .arg("-cp")
        .arg(java_classpath("tools-4.4.0"))
        .arg("org.apache.kafka.tools.ConfigCommand")
        .args(["--bootstrap-server", bootstrap])
        .args(args)
        .output()
        .expect("java");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('[') && !l.starts_with('\t') && !l.trim().is_empty())
        .filter(|l| !l.starts_with("SLF4J"))
        .collect();
    (out.status.success(), kept.join("\n"))
}

fn create_topic(conn: &mut KafkaConn, name: &str, partitions: i32) {
    let r = conn.create_topic(name, partitions, 10_000);
    assert_eq!(r.topics[0].error_code, 0, "{r:?}");
}

/// Produce v9, acks=1, one batch of `count` values of `size` bytes to `topic`/`partition`:
/// (error code, throttle_time_ms).
fn produce(
    conn: &mut KafkaConn,
    topic: &str,
    partition: i32,
    size: usize,
    count: usize,
) -> (i16, i32) {
    produce_v(conn, 9, topic, partition, size, count)
}

/// [`produce`] as Produce v`version`.
fn produce_v(
    conn: &mut KafkaConn,
    version: i16,
    topic: &str,
    partition: i32,
    size: usize,
    count: usize,
) -> (i16, i32) {
    let value = vec![b'q'; size];
    let values: Vec<&[u8]> = (0..count).map(|_| value.as_slice()).collect();
    let r = conn.produce_to(version, topic, partition, 1, 10_000, &values);
    (
        r.responses[0].partition_responses[0].error_code,
        r.throttle_time_ms,
    )
}

/// One Fetch v11 answer, as far as quotas go.
struct Fetched {
    throttle_ms: i32,
    /// Partitions in the answer (a throttled fetch is answered with none).
    partitions: usize,
    record_bytes: usize,
    next_offset: i64,
}

fn fetch(conn: &mut KafkaConn, topic: &str, offset: i64, max_bytes: i32) -> Fetched {
    let mut p = fetch_request::FetchPartition::default();
    p.partition = 0;
    p.fetch_offset = offset;
    p.partition_max_bytes = max_bytes;
    p.log_start_offset = -1;
    p.current_leader_epoch = -1;
    let mut t = fetch_request::FetchTopic::default();
    t.topic = TopicName(s(topic));
    t.partitions = vec![p];
    let mut req = FetchRequest::default();
    req.replica_id = kafka_protocol::messages::BrokerId(-1);
    req.max_wait_ms = 100;
    req.min_bytes = 1;
    req.max_bytes = 50 << 20;
    req.session_epoch = -1;
    req.topics = vec![t];
    match conn.call(ApiKey::Fetch, 11, RequestKind::Fetch(req)) {
        ResponseKind::Fetch(r) => {
            let mut record_bytes = 0;
            let mut next_offset = offset;
            let partitions = r.responses.iter().map(|t| t.partitions.len()).sum();
            for pd in r.responses.iter().flat_map(|t| &t.partitions) {
                assert_eq!(pd.error_code, 0, "{pd:?}");
                let records = pd.records.clone().unwrap_or_default();
                record_bytes += records.len();
                // Batch headers: base offset (8), length (4), ..., last offset delta at 23.
                let mut at = 0;
                while at + 27 <= records.len() {
                    let base = i64::from_be_bytes(records[at..at + 8].try_into().unwrap());
                    let len =
                        i32::from_be_bytes(records[at + 8..at + 12].try_into().unwrap()) as usize;
                    let delta =
                        i32::from_be_bytes(records[at + 23..at + 27].try_into().unwrap()) as i64;
                    if at + 12 + len > records.len() {
                        break;
                    }
                    next_offset = base + delta + 1;
                    at += 12 + len;
                }
            }
            Fetched {
                throttle_ms: r.throttle_time_ms,
                partitions,
                record_bytes,
                next_offset,
            }
        }
        other => panic!("{other:?}"),
    }
}

/// What one client achieved in a timed run.
#[derive(Debug, Default)]
struct Run {
    bytes: usize,
    requests: usize,
    throttled: usize,
    max_throttle_ms: i32,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Run {
    fn rate(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&mut self, p: f64) -> Duration {
        self.latencies.sort();
        let i = ((self.latencies.len() as f64 * p) as usize).min(self.latencies.len() - 1);
        self.latencies[i]
    }
}

/// Produces batches of `batch` bytes (16 records) as fast as the broker lets `client_id` for
/// `how_long`.
fn produce_for(
    addr: std::net::SocketAddr,
    client_id: &str,
    topic: &str,
    batch: usize,
    how_long: Duration,
) -> Run {
    let mut conn = KafkaConn::connect_as(addr, client_id);
    let mut run = Run::default();
    let start = Instant::now();
    while start.elapsed() < how_long {
        let t = Instant::now();
        let (err, throttle) = produce(&mut conn, topic, 0, batch / 16, 16);
        run.latencies.push(t.elapsed());
        assert_eq!(err, 0, "{client_id}: produce error {err}");
        run.bytes += batch;
        run.requests += 1;
        if throttle > 0 {
            run.throttled += 1;
            run.max_throttle_ms = run.max_throttle_ms.max(throttle);
        }
    }
    run.elapsed = start.elapsed();
    run
}

/// A producer over `producer_byte_rate` (set with Apache's kafka-configs) is held near it and
/// told `throttle_time_ms`, while another client producing at the same time is not slowed.
#[test]
fn a_noisy_producer_is_held_to_its_byte_rate_and_a_quiet_one_keeps_flowing() {
    let cluster = KafkaCluster::start(1, 1, "");
    let b = cluster.brokers[0].bootstrap();
    let addr = cluster.brokers[0].addr();
    let mut admin = KafkaConn::connect(addr);
    create_topic(&mut admin, "loud", 1);
    create_topic(&mut admin, "calm", 1);
    let (ok, out) = kafka_configs(
        &b,
        &[
            "--alter",
            "--add-config",
            &format!("producer_byte_rate={QUOTA}"),
            "--entity-type",
            "clients",
            "--entity-name",
            "noisy",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(out, "Completed updating config for client noisy.");

    let how_long = Duration::from_secs(10);
    let noisy = std::thread::spawn(move || produce_for(addr, "noisy", "loud", 64 << 10, how_long));
    let quiet = std::thread::spawn(move || produce_for(addr, "quiet", "calm", 16 << 10, how_long));
    let noisy = noisy.join().unwrap();
    let mut quiet = quiet.join().unwrap();
    let (q50, q99, qmax) = (
        quiet.percentile(0.5),
        quiet.percentile(0.99),
        quiet.percentile(1.0),
    );
    println!(
        "noisy: {:.0} B/s against a quota of {QUOTA} B/s ({:.2}x), {} requests, {} throttled, max throttle_time_ms {}",
        noisy.rate(),
        noisy.rate() / QUOTA,
        noisy.requests,
        noisy.throttled,
        noisy.max_throttle_ms
    );
    println!(
        "quiet: {:.0} B/s, {} requests, {} throttled, latency p50 {q50:?} p99 {q99:?} max {qmax:?}",
        quiet.rate(),
        quiet.requests,
        quiet.throttled
    );
    assert!(
        noisy.rate() > 0.4 * QUOTA && noisy.rate() < 1.6 * QUOTA,
        "noisy produced {:.0} B/s, quota {QUOTA}",
        noisy.rate()
    );
    assert!(noisy.throttled > 0 && noisy.max_throttle_ms > 0);
    assert_eq!(quiet.throttled, 0, "quiet has no quota");
    assert!(
        quiet.rate() > 2.0 * QUOTA,
        "quiet produced only {:.0} B/s beside the throttled client",
        quiet.rate()
    );
    assert!(q50 < Duration::from_millis(500), "quiet p50 {q50:?}");
}

/// A consumer over `consumer_byte_rate` is held near it; its throttled fetches are answered
/// empty with the throttle time (as Kafka answers them), and another consumer reads at full
/// speed meanwhile.
#[test]
fn a_consumer_over_its_byte_rate_gets_empty_throttled_fetches() {
    let cluster = KafkaCluster::start(1, 1, "");
    let b = cluster.brokers[0].bootstrap();
    let addr = cluster.brokers[0].addr();
    let mut loader = KafkaConn::connect_as(addr, "loader");
    create_topic(&mut loader, "feed", 1);
    // 8 MiB: more than the slow reader may take in the run.
    for _ in 0..128 {
        assert_eq!(produce(&mut loader, "feed", 0, 4096, 16).0, 0);
    }
    let (ok, out) = kafka_configs(
        &b,
        &[
            "--alter",
            "--add-config",
            &format!("consumer_byte_rate={QUOTA}"),
            "--entity-type",
            "clients",
            "--entity-name",
            "slowreader",
        ],
    );
    assert!(ok, "{out}");

    let slow = std::thread::spawn(move || {
        let mut conn = KafkaConn::connect_as(addr, "slowreader");
        let mut run = Run::default();
        let (mut offset, mut empty_throttled) = (0, 0);
        let start = Instant::now();
        // 10 s: the burst a new rate allows (a whole measuring span's worth, padded) is still in
        // the span; at 11 s it leaves it and, as in Kafka, the next burst is allowed.
        while start.elapsed() < Duration::from_secs(10) {
            let f = fetch(&mut conn, "feed", offset, 256 << 10);
            run.bytes += f.record_bytes;
            run.requests += 1;
            offset = f.next_offset;
            if f.throttle_ms > 0 {
                run.throttled += 1;
                run.max_throttle_ms = run.max_throttle_ms.max(f.throttle_ms);
                assert_eq!(f.record_bytes, 0, "a throttled fetch carried records");
                if f.partitions == 0 {
                    empty_throttled += 1;
                }
            }
        }
        run.elapsed = start.elapsed();
        (run, empty_throttled)
    });
    let fast = std::thread::spawn(move || {
        let mut conn = KafkaConn::connect_as(addr, "fastreader");
        let mut run = Run::default();
        let mut offset = 0;
        let start = Instant::now();
        while run.bytes < 8 << 20 && start.elapsed() < Duration::from_secs(30) {
            let f = fetch(&mut conn, "feed", offset, 1 << 20);
            run.bytes += f.record_bytes;
            run.throttled += usize::from(f.throttle_ms > 0);
            offset = f.next_offset;
        }
        run.elapsed = start.elapsed();
        run
    });
    let (slow, empty_throttled) = slow.join().unwrap();
    let fast = fast.join().unwrap();
    println!(
        "slowreader: {:.0} B/s against a quota of {QUOTA} B/s ({:.2}x), {} fetches, {} throttled ({} answered empty), max throttle_time_ms {}",
        slow.rate(),
        slow.rate() / QUOTA,
        slow.requests,
        slow.throttled,
        empty_throttled,
        slow.max_throttle_ms
    );
    println!(
        "fastreader: {} bytes in {:?} ({:.0} B/s), {} throttled",
        fast.bytes,
        fast.elapsed,
        fast.rate(),
        fast.throttled
    );
    assert!(
        slow.rate() > 0.4 * QUOTA && slow.rate() < 1.6 * QUOTA,
        "slowreader fetched {:.0} B/s, quota {QUOTA}",
        slow.rate()
    );
    assert!(slow.throttled > 0 && empty_throttled > 0);
    assert_eq!(fast.throttled, 0);
    assert!(
        fast.bytes >= 8 << 20,
        "fastreader read {} bytes",
        fast.bytes
    );
    assert!(
        fast.rate() > 2.0 * QUOTA,
        "fastreader {:.0} B/s",
        fast.rate()
    );
}

/// A produce of 64 KiB by `client_id` on a new connection to `addr`: its throttle time.
fn throttle_of_one_produce(
    addr: std::net::SocketAddr,
    client_id: &str,
    topic: &str,
    p: i32,
) -> i32 {
    let mut conn = KafkaConn::connect_as(addr, client_id);
    let (err, throttle) = produce(&mut conn, topic, p, 4096, 16);
    assert_eq!(err, 0);
    throttle
}

/// Produce errors until the partition's leader has taken over, then its throttle time.
fn first_produce_throttle(addr: std::net::SocketAddr, client_id: &str, topic: &str, p: i32) -> i32 {
    let mut throttle = None;
    eventually("the partition leader accepts produce", || {
        let mut conn = KafkaConn::connect_as(addr, client_id);
        let (err, t) = produce(&mut conn, topic, p, 4096, 16);
        throttle = Some(t);
        err == 0
    });
    throttle.unwrap()
}

/// Waits (up to 20 s) until `f` holds, asking again every 200 ms.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "not within 20 s: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn zk_get(connect: &str, path: &str) -> Option<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = zookeeper_client::Client::connect(connect).await.unwrap();
        c.get_data(path)
            .await
            .ok()
            .map(|(d, _)| String::from_utf8_lossy(&d).into_owned())
    })
}

fn zk_children(connect: &str, path: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = zookeeper_client::Client::connect(connect).await.unwrap();
        c.list_children(path).await.unwrap_or_default()
    })
}

/// Quotas set through one broker apply on the other at once, user and user/client entities
/// with Kafka's precedence, deleting lifts the throttle, kafka-configs --describe prints what
/// Kafka prints, coord holds Kafka's znodes, and request_percentage throttles a busy client.
#[test]
fn quotas_set_through_one_broker_apply_on_every_broker_until_deleted() {
    let cluster = KafkaCluster::start(1, 2, "");
    let (b1, b2) = (
        cluster.brokers[0].bootstrap(),
        cluster.brokers[1].bootstrap(),
    );
    let (a1, a2) = (cluster.brokers[0].addr(), cluster.brokers[1].addr());
    let zk = cluster.coord.connect_string();
    let mut admin = KafkaConn::connect(a1);
    create_topic(&mut admin, "spread", 2);
    // Which partition each broker leads.
    let mut led_by = std::collections::BTreeMap::new();
    eventually("both partitions have leaders", || {
        for p in 0..2 {
            let (leader, _) = cluster.leader(1, "spread", p);
            if leader > 0 {
                led_by.insert(leader, p);
            }
        }
        led_by.len() == 2
    });
    let (p1, p2) = (led_by[&1], led_by[&2]);

    // Within its quota before any is set.
    assert_eq!(first_produce_throttle(a2, "burst", "spread", p2), 0);
    assert_eq!(first_produce_throttle(a1, "burst", "spread", p1), 0);
    // 1 KiB/s set through broker 1; a 64 KiB produce on broker 2 is throttled.
    let (ok, out) = kafka_configs(
        &b1,
        &[
            "--alter",
            "--add-config",
            "producer_byte_rate=1024",
            "--entity-type",
            "clients",
            "--entity-name",
            "burst",
        ],
    );
    assert!(ok, "{out}");
    eventually("broker 2 throttles burst", || {
        throttle_of_one_produce(a2, "burst", "spread", p2) > 0
    });
    // Other client ids are not throttled.
    assert_eq!(throttle_of_one_produce(a2, "other", "spread", p2), 0);

    // Deleted through broker 2: no broker throttles it any more.
    let (ok, out) = kafka_configs(
        &b2,
        &[
            "--alter",
            "--delete-config",
            "producer_byte_rate",
            "--entity-type",
            "clients",
            "--entity-name",
            "burst",
        ],
    );
    assert!(ok, "{out}");
    eventually("the throttle is lifted on both brokers", || {
        throttle_of_one_produce(a1, "burst", "spread", p1) == 0
            && throttle_of_one_produce(a2, "burst", "spread", p2) == 0
    });

    // Precedence: ANONYMOUS (every client until authentication exists) / burst wins over a
    // generous client-id quota.
    for args in [
        &[
            "--alter",
            "--add-config",
            "producer_byte_rate=104857600",
            "--entity-type",
            "clients",
            "--entity-name",
            "burst",
        ][..],
        &[
            "--alter",
            "--add-config",
            "producer_byte_rate=2048",
            "--entity-type",
            "users",
            "--entity-name",
            "ANONYMOUS",
            "--entity-type",
            "clients",
            "--entity-name",
            "burst",
        ][..],
        &[
            "--alter",
            "--add-config",
            "request_percentage=50",
            "--entity-type",
            "clients",
            "--entity-default",
        ][..],
        &[
            "--alter",
            "--add-config",
            "consumer_byte_rate=4096",
            "--entity-type",
            "users",
            "--entity-default",
        ][..],
    ] {
        let (ok, out) = kafka_configs(&b1, args);
        assert!(ok, "{args:?}: {out}");
    }
    eventually(
        "broker 2 applies the user/client quota over the client's",
        || throttle_of_one_produce(a2, "burst", "spread", p2) > 0,
    );

    // kafka-configs --describe prints what it prints against Apache Kafka 4.1.
    let (ok, out) = kafka_configs(&b2, &["--describe", "--entity-type", "clients"]);
    assert!(ok, "{out}");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "Quota configs for client-id 'burst' are producer_byte_rate=1.048576E8",
            "Quota configs for the default client-id are request_percentage=50.0",
        ],
        "{out}"
    );
    let (ok, out) = kafka_configs(
        &b2,
        &[
            "--describe",
            "--entity-type",
            "users",
            "--entity-type",
            "clients",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(
        out,
        "Quota configs for user-principal 'ANONYMOUS', client-id 'burst' are producer_byte_rate=2048.0"
    );
    let (ok, out) = kafka_configs(&b1, &["--describe", "--entity-type", "users"]);
    assert!(ok, "{out}");
    assert_eq!(
        out,
        "Quota configs for the default user-principal are consumer_byte_rate=4096.0"
    );

    // Kafka's ZooKeeper layout in coord, and its change notifications.
    assert_eq!(
        zk_get(&zk, "/config/clients/<default>").as_deref(),
        Some(r#"{"version":1,"config":{"request_percentage":"50.0"}}"#)
    );
    assert_eq!(
        zk_get(&zk, "/config/users/ANONYMOUS/clients/burst").as_deref(),
        Some(r#"{"version":1,"config":{"producer_byte_rate":"2048"}}"#)
    );
    assert_eq!(
        zk_get(&zk, "/config/clients/burst").as_deref(),
        Some(r#"{"version":1,"config":{"producer_byte_rate":"104857600"}}"#)
    );
    let changes = zk_children(&zk, "/config/changes");
    assert!(
        changes.len() >= 6 && changes.iter().all(|c| c.starts_with("config_change_")),
        "{changes:?}"
    );
    let paths: Vec<String> = changes
        .iter()
        .filter_map(|c| zk_get(&zk, &format!("/config/changes/{c}")))
        .collect();
    assert!(
        paths.contains(
            &r#"{"version":2,"entity_path":"users/ANONYMOUS/clients/burst"}"#.to_string()
        ),
        "{paths:?}"
    );

    // request_percentage: a client with a tiny share of handler time is throttled by its
    // own requests alone.
    let (ok, out) = kafka_configs(
        &b1,
        &[
            "--alter",
            "--add-config",
            "request_percentage=0.01",
            "--entity-type",
            "clients",
            "--entity-name",
            "busy",
        ],
    );
    assert!(ok, "{out}");
    eventually("broker 2 knows busy's quota", || {
        let mut conn = KafkaConn::connect_as(a2, "busy");
        (0..2000).any(|_| {
            match conn.call(
                ApiKey::Metadata,
                9,
                RequestKind::Metadata(kafka_protocol::messages::MetadataRequest::default()),
            ) {
                ResponseKind::Metadata(m) => m.throttle_time_ms > 0,
                other => panic!("{other:?}"),
            }
        })
    });
}

/// KIP-219: a client of Produce v6+ is answered at once with the throttle time and its
/// connection then reads nothing for that long; an older client (v5), which would not wait by
/// itself, gets its answer that much later instead. Either way, the next request waits.
#[test]
fn throttled_answers_come_at_once_to_new_clients_and_late_to_old_ones() {
    let cluster = KafkaCluster::start(1, 1, "");
    let b = cluster.brokers[0].bootstrap();
    let addr = cluster.brokers[0].addr();
    let mut admin = KafkaConn::connect(addr);
    create_topic(&mut admin, "paced", 1);
    for client in ["newclient", "oldclient"] {
        let (ok, out) = kafka_configs(
            &b,
            &[
                "--alter",
                "--add-config",
                "producer_byte_rate=32768",
                "--entity-type",
                "clients",
                "--entity-name",
                client,
            ],
        );
        assert!(ok, "{out}");
    }
    // 64 KiB batches until one is throttled for 500 ms or more: (answer latency,
    // throttle_time_ms), and the round trip of the request after it.
    let run = |client: &str, version: i16| {
        let mut conn = KafkaConn::connect_as(addr, client);
        for _ in 0..50 {
            let t = Instant::now();
            let (err, throttle) = produce_v(&mut conn, version, "paced", 0, 4096, 16);
            let answered = t.elapsed();
            assert_eq!(err, 0);
            // The first throttles can be a few ms (just over the quota); each batch after adds
            // about 2 s (64 KiB at 32 KiB/s).
            if throttle >= 500 {
                let t = Instant::now();
                produce_v(&mut conn, version, "paced", 0, 16, 1);
                return (answered, throttle, t.elapsed());
            }
        }
        panic!("{client} was never throttled");
    };
    let (new_answer, new_throttle, new_next) = run("newclient", 9);
    let (old_answer, old_throttle, old_next) = run("oldclient", 5);
    println!(
        "v9: throttle_time_ms {new_throttle}, answered in {new_answer:?}, next request {new_next:?}; \
         v5: throttle_time_ms {old_throttle}, answered in {old_answer:?}, next request {old_next:?}"
    );
    let ms = |t: i32| Duration::from_millis(t as u64);
    assert!(new_answer < ms(new_throttle) / 2, "v9 answer held back");
    assert!(
        new_next >= ms(new_throttle) * 9 / 10,
        "v9 connection not muted"
    );
    assert!(
        old_answer >= ms(old_throttle) * 9 / 10,
        "v5 answer not held back"
    );
}

fn alter_one(
    conn: &mut KafkaConn,
    entity: &[(&str, Option<&str>)],
    key: &str,
    value: f64,
    validate_only: bool,
) -> (i16, Option<String>) {
    let mut e = alter_client_quotas_request::EntryData::default();
    e.entity = entity
        .iter()
        .map(|(t, n)| {
            let mut d = alter_client_quotas_request::EntityData::default();
            d.entity_type = s(t);
            d.entity_name = n.map(s);
            d
        })
        .collect();
    let mut op = alter_client_quotas_request::OpData::default();
    op.key = s(key);
    op.value = value;
    e.ops = vec![op];
    let mut req = AlterClientQuotasRequest::default();
    req.entries = vec![e];
    req.validate_only = validate_only;
    match conn.call(
        ApiKey::AlterClientQuotas,
        1,
        RequestKind::AlterClientQuotas(req),
    ) {
        ResponseKind::AlterClientQuotas(r) => (
            r.entries[0].error_code,
            r.entries[0].error_message.as_ref().map(|m| m.to_string()),
        ),
        other => panic!("{other:?}"),
    }
}

/// Invalid alterations get Kafka 4.1's error codes and messages (taken from a real broker),
/// through kafka-configs and raw requests; validate_only stores nothing.
#[test]
fn invalid_quota_alterations_get_kafkas_errors() {
    let cluster = KafkaCluster::start(1, 1, "");
    let b = cluster.brokers[0].bootstrap();
    let addr = cluster.brokers[0].addr();
    for (value, message) in [
        ("-5", "Quota producer_byte_rate must be greater than 0"),
        ("1.5", "producer_byte_rate cannot be a fractional value."),
    ] {
        let (ok, out) = kafka_configs(
            &b,
            &[
                "--alter",
                "--add-config",
                &format!("producer_byte_rate={value}"),
                "--entity-type",
                "clients",
                "--entity-name",
                "noisy",
            ],
        );
        assert!(!ok, "{out}");
        assert!(
            out.contains(&format!(
                "org.apache.kafka.common.errors.InvalidRequestException: {message}"
            )),
            "{out}"
        );
    }
    let mut conn = KafkaConn::connect(addr);
    let client = [("client-id", Some("x"))];
    let invalid_request = 42;
    for (entity, key, value, message) in [
        (
            &client[..],
            "bogus_rate",
            5.0,
            "Invalid configuration key bogus_rate",
        ),
        (
            &client[..],
            "request_percentage",
            0.0,
            "Quota request_percentage must be greater than 0",
        ),
        (
            &client[..],
            "producer_byte_rate",
            1e20,
            "Proposed value for producer_byte_rate is too large for a LONG.",
        ),
        (
            &[("client-id", Some(""))][..],
            "producer_byte_rate",
            1.0,
            "Empty client-id not supported",
        ),
        (
            &[("group", Some("g"))][..],
            "producer_byte_rate",
            1.0,
            "Unhandled client quota entity type: group",
        ),
        (
            &[][..],
            "producer_byte_rate",
            1.0,
            "Invalid empty client quota entity",
        ),
    ] {
        assert_eq!(
            alter_one(&mut conn, entity, key, value, false),
            (invalid_request, Some(message.to_string())),
            "{entity:?} {key}={value}"
        );
    }
    // validate_only: accepted, not stored.
    assert_eq!(
        alter_one(&mut conn, &client, "request_percentage", 0.5, true),
        (0, None)
    );
    let describe = |conn: &mut KafkaConn, t: &str, m: i8| {
        let mut c = describe_client_quotas_request::ComponentData::default();
        c.entity_type = s(t);
        c.match_type = m;
        c._match = None;
        let mut req = DescribeClientQuotasRequest::default();
        req.components = vec![c];
        match conn.call(
            ApiKey::DescribeClientQuotas,
            1,
            RequestKind::DescribeClientQuotas(req),
        ) {
            ResponseKind::DescribeClientQuotas(r) => r,
            other => panic!("{other:?}"),
        }
    };
    let r = describe(&mut conn, "client-id", 2);
    assert_eq!((r.error_code, r.entries.map(|e| e.len())), (0, Some(0)));
    // A fractional request_percentage is fine (a DOUBLE), and shows.
    assert_eq!(
        alter_one(&mut conn, &client, "request_percentage", 0.5, false),
        (0, None)
    );
    let r = describe(&mut conn, "client-id", 2);
    let entries = r.entries.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].values[0].key.as_str(), "request_percentage");
    assert_eq!(entries[0].values[0].value, 0.5);
    // An entity type Kafka does not know: UNSUPPORTED_VERSION (35), Kafka's message.
    let r = describe(&mut conn, "group", 2);
    assert_eq!(
        (r.error_code, r.error_message.map(|m| m.to_string())),
        (35, Some("Unsupported entity type group".into()))
    );
}
