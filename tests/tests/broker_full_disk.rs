//! A full log directory (a 16 MiB tmpfs the test mounts, filled by a file beside the log):
//! produce is refused with KAFKA_STORAGE_ERROR, reads keep working, nothing already written is
//! damaged, and writes resume where they stopped once space returns, across a restart too.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use sluice_e2e::disk::{fill, Tmpfs};
use sluice_e2e::kafka::KafkaConn;
use sluice_e2e::{BrokerNode, CoordCluster};

mod common;

/// One batch of `values` to partition 0 of `topic` with acks=1: (error code, base offset).
fn produce(addr: SocketAddr, topic: &str, values: &[Vec<u8>]) -> (i16, i64) {
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    KafkaConn::connect(addr).produce(topic, 1, &refs)
}

/// Every record of partition 0 of `topic`, read with Fetch v11 from offset 0: (offset, value),
/// or the partition's error code.
fn try_read_all(addr: SocketAddr, topic: &str) -> Result<Vec<(i64, Vec<u8>)>, i16> {
    let mut out = Vec::new();
    let mut c = KafkaConn::connect(addr);
    loop {
        let mut fp = FetchPartition::default();
        fp.partition = 0;
        fp.fetch_offset = out.last().map_or(0, |(o, _): &(i64, Vec<u8>)| o + 1);
        fp.partition_max_bytes = 1 << 20;
        let mut ft = FetchTopic::default();
        ft.topic = TopicName(StrBytes::from_string(topic.to_string()));
        ft.partitions = vec![fp];
        let mut req = FetchRequest::default();
        req.replica_id = kafka_protocol::messages::BrokerId(-1);
        req.max_wait_ms = 0;
        req.max_bytes = 4 << 20;
        req.topics = vec![ft];
        let ResponseKind::Fetch(r) = c.call(ApiKey::Fetch, 11, RequestKind::Fetch(req)) else {
            panic!("not a fetch response")
        };
        let p = &r.responses[0].partitions[0];
        if p.error_code != 0 {
            return Err(p.error_code);
        }
        let mut bytes = p.records.clone().unwrap_or_default();
        if bytes.is_empty() {
            return Ok(out);
        }
        let before = out.len();
        let sets = RecordBatchDecoder::decode_all(&mut bytes).expect("decode fetched batches");
        for rec in sets.into_iter().flat_map(|s| s.records) {
            let v = rec.value.map(|v| v.to_vec()).unwrap_or_default();
            out.push((rec.offset, v));
        }
        if out.len() == before {
            return Ok(out);
        }
    }
}

/// Produces 20 batches of 900 records (about 850 KB each) that a full disk must refuse;
/// returns how many were refused (all of them, or the test fails).
fn refuse_all(addr: SocketAddr, topic: &str, round: &mut u32) -> usize {
    let mut refused = 0;
    for _ in 0..20 {
        *round += 1;
        let (err, base) = produce(addr, topic, &values(*round, 900));
        assert_ne!(err, 0, "a batch was acknowledged at {base} on a full disk");
        if err == 6 {
            // NOT_LEADER_OR_FOLLOWER: just restarted, the partition is not led yet.
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        assert_eq!(
            err, 56,
            "a full disk answers KAFKA_STORAGE_ERROR, got {err}"
        );
        refused += 1;
    }
    assert!(refused > 0, "no produce reached the full log");
    refused
}

fn read_all(addr: SocketAddr, topic: &str) -> Vec<(i64, Vec<u8>)> {
    try_read_all(addr, topic).unwrap_or_else(|e| panic!("fetch error {e}"))
}

fn values(round: u32, n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("round-{round}-record-{i}-{}", "x".repeat(900)).into_bytes())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_log_dir_refuses_produce_keeps_reads_and_resumes_when_space_returns() {
    let coord = CoordCluster::start(1, "");
    let dir = coord.dir.path().join("broker");
    std::fs::create_dir_all(&dir).unwrap();
    // BrokerNode puts the log directory at <dir>/kafka-logs-1: that is the mount point.
    let _fs = Tmpfs::mount(&dir.join("kafka-logs-1"), "16m");
    let mut broker = BrokerNode::start(
        &dir,
        1,
        &coord.connect_string(),
        "log.segment.bytes=1048576\n",
    );
    let addr = broker.addr();
    let topic = "filling";
    common::replication::create_topic(&broker.bootstrap(), topic, 1, 1).await;

    // Acknowledged records, in order: (offset, value).
    let mut acked: Vec<(i64, Vec<u8>)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut round = 0;
    while acked.len() < 2_000 {
        let vs = values(round, 50);
        let (err, base) = produce(addr, topic, &vs);
        if err != 0 {
            // The new topic's leader is being set up (NOT_LEADER_OR_FOLLOWER for a moment).
            assert!(
                Instant::now() < deadline,
                "produce error {err} before filling"
            );
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        acked.extend(
            vs.into_iter()
                .enumerate()
                .map(|(i, v)| (base + i as i64, v)),
        );
        round += 1;
    }

    // Fill the filesystem, then try: every produce is refused with KAFKA_STORAGE_ERROR (56),
    // none acknowledged. The batches are large enough that the active segment (1 MiB) must roll.
    let filler = broker.log_dir.join("filler");
    let filled = fill(&filler);
    println!("filled {filled} bytes beside the log");
    let refused = refuse_all(addr, topic, &mut round);
    assert!(broker.is_running(), "the broker died on a full disk");
    println!("{refused} produces refused on a full disk");
    // Reads keep working and show exactly what was acknowledged.
    assert_eq!(read_all(addr, topic), acked, "reads on a full disk");

    // SIGKILL while the disk is full, and a restart that must recover on it.
    broker.kill();
    broker.spawn();
    broker.wait_until_listening(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut read = Vec::new();
    while Instant::now() < deadline {
        read = try_read_all(addr, topic).unwrap_or_default();
        if read.len() >= acked.len() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        read, acked,
        "reads after a SIGKILL and a restart on a full disk"
    );
    refuse_all(addr, topic, &mut round);

    // Space returns: writes resume right after the last acknowledged record.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        round += 1;
        let vs = values(round, 50);
        let (err, base) = produce(addr, topic, &vs);
        if err == 0 {
            assert_eq!(base, acked.len() as i64, "no gap after the full disk");
            acked.extend(
                vs.into_iter()
                    .enumerate()
                    .map(|(i, v)| (base + i as i64, v)),
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not resume when space returned: error {err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(read_all(addr, topic), acked, "reads after space returned");

    // A clean restart keeps them too.
    assert_eq!(broker.stop(), Some(0), "clean stop");
    broker.spawn();
    broker.wait_until_listening(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (err, base) = produce(addr, topic, &values(round + 1, 1));
        if err == 0 {
            assert_eq!(base, acked.len() as i64);
            acked.extend(values(round + 1, 1).into_iter().map(|v| (base, v)));
            break;
        }
        assert!(Instant::now() < deadline, "no produce after restart: {err}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(read_all(addr, topic), acked, "reads after a restart");
    // The refusals were logged as warnings (at most one per 10 s: the broker's own log may
    // share the full disk), naming the cause.
    let log = broker.log_text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("produce refused with KAFKA_STORAGE_ERROR"))
        .collect();
    assert!(
        !warnings.is_empty() && warnings.len() <= 4,
        "{} warnings for 40 refusals",
        warnings.len()
    );
    assert!(
        warnings[0].contains("No space left on device"),
        "the warning names the cause: {}",
        warnings[0]
    );
}
