//! `queued.max.request.bytes` and `queued.max.requests` on running brokers: a flood of large
//! produces stays within the byte pool (the broker's peak memory is printed with and without
//! the pool), one place for the whole broker still serves concurrent producers beside
//! consumers' long polls, and a three-broker cluster keeps replicating acks=all writes with
//! one place and a pool no larger than the largest request.

use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_e2e::kafka::KafkaConn;
use sluice_e2e::{proc_status_kib, BrokerNode, CoordCluster, KafkaCluster};

mod common;

const MIB: usize = 1 << 20;

/// `n` connections each send one Produce (acks=1) of one `size`-byte record at the same
/// moment; every answer must be a success. Returns the broker's peak resident memory growth
/// over the flood, in KiB.
fn flood(addr: SocketAddr, pid: u32, topic: &str, n: usize, size: usize) -> u64 {
    let conns: Vec<KafkaConn> = (0..n).map(|_| KafkaConn::connect(addr)).collect();
    let before = proc_status_kib(pid, "VmRSS");
    let start = Arc::new(Barrier::new(n));
    let threads: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let start = start.clone();
            let topic = topic.to_string();
            std::thread::spawn(move || {
                let value = vec![i as u8; size];
                start.wait();
                c.produce(&topic, 1, &[&value])
            })
        })
        .collect();
    let mut offsets: Vec<i64> = threads
        .into_iter()
        .map(|t| {
            let (e, offset) = t.join().unwrap();
            assert_eq!(e, 0, "produce error {e}");
            offset
        })
        .collect();
    offsets.sort();
    offsets.dedup();
    assert_eq!(offsets.len(), n, "every produce has its own offset");
    proc_status_kib(pid, "VmHWM").saturating_sub(before)
}

/// The same flood on a broker of its own with `settings`: its peak memory growth in KiB.
fn flood_growth(settings: &str) -> u64 {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(coord.dir.path(), 1, &coord.connect_string(), settings);
    let mut c = KafkaConn::connect(broker.addr());
    let r = c.create_topic("flood", 1, 10_000);
    assert_eq!(r.topics[0].error_code, 0, "{r:?}");
    // Warm up: the first append opens the segment and its indexes.
    assert_eq!(c.produce("flood", 1, &[&vec![0u8; MIB - 1024]]).0, 0);
    let pid = broker.pid().unwrap();
    // Peak growth over two rounds: the first settles the allocator's arenas.
    let first = flood(broker.addr(), pid, "flood", 40, MIB - 1024);
    let second = flood(broker.addr(), pid, "flood", 40, MIB - 1024);
    first.max(second)
}

#[test]
fn a_flood_of_large_produces_stays_within_queued_max_request_bytes() {
    let common = "socket.request.max.bytes=2097152\nnum.partitions=1\n";
    let t = Instant::now();
    let bounded = flood_growth(&format!("{common}queued.max.request.bytes=4194304\n"));
    let unbounded = flood_growth(common);
    println!(
        "40 concurrent produces of 1 MiB: peak RSS growth {} KiB with queued.max.request.bytes=4194304, {} KiB without ({:.1} s)",
        bounded,
        unbounded,
        t.elapsed().as_secs_f64()
    );
    // 4 MiB of requests in hand, plus the appends' and the allocator's own overhead (4 to
    // 6.5 MiB in all measured); without the pool most of the 40 frames are read at once (16 to
    // 25 MiB measured on a loaded two-core machine).
    assert!(
        bounded < 12 * 1024,
        "peak RSS grew by {bounded} KiB under a 4 MiB pool"
    );
}

/// A consumer's Fetch that waits its whole `max_wait_ms` (it asks for more than is there).
fn long_poll(c: &mut KafkaConn, topic: &str, max_wait_ms: i32) {
    let mut fp = FetchPartition::default();
    fp.partition = 0;
    fp.fetch_offset = 0;
    fp.partition_max_bytes = 1 << 20;
    fp.log_start_offset = -1;
    fp.current_leader_epoch = -1;
    let mut ft = FetchTopic::default();
    ft.topic = TopicName(StrBytes::from_string(topic.to_string()));
    ft.partitions = vec![fp];
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(-1);
    req.max_wait_ms = max_wait_ms;
    req.min_bytes = 64 << 20;
    req.max_bytes = 64 << 20;
    req.topics = vec![ft];
    match c.call(ApiKey::Fetch, 11, RequestKind::Fetch(req)) {
        ResponseKind::Fetch(r) => assert_eq!(r.error_code, 0, "{r:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn one_place_serves_concurrent_producers_beside_long_polls() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "queued.max.requests=1\n",
    );
    let addr = broker.addr();
    let r = KafkaConn::connect(addr).create_topic("one", 1, 10_000);
    assert_eq!(r.topics[0].error_code, 0, "{r:?}");
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Consumers waiting 500 ms in every Fetch: if a waiting Fetch held the broker's one
    // place, each produce would wait out a long poll.
    let pollers: Vec<_> = (0..3)
        .map(|_| {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut c = KafkaConn::connect(addr);
                let mut polls = 0;
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    long_poll(&mut c, "one", 500);
                    polls += 1;
                }
                polls
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let producers: Vec<_> = (0..8)
        .map(|p| {
            std::thread::spawn(move || {
                let mut c = KafkaConn::connect(addr);
                for i in 0..25 {
                    let (e, _) = c.produce("one", 1, &[format!("{p}-{i}").as_bytes()]);
                    assert_eq!(e, 0, "produce error {e}");
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let took = t.elapsed();
    done.store(true, std::sync::atomic::Ordering::Release);
    let polls: usize = pollers.into_iter().map(|p| p.join().unwrap()).sum();
    println!(
        "queued.max.requests=1: 8 producers × 25 produces in {} ms beside {polls} long polls",
        took.as_millis()
    );
    let r = KafkaConn::connect(addr).produce("one", 1, &[b"last"]);
    assert_eq!(r, (0, 200), "every produce appended once");
    assert!(
        took < Duration::from_secs(10),
        "200 produces took {took:?} with one place"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_replication_keeps_flowing_with_one_place_and_a_request_sized_pool() {
    // One listener: followers' fetches come in beside the producers' requests.
    let settings = "queued.max.requests=1\nsocket.request.max.bytes=2097152\n\
        queued.max.request.bytes=2097152\nmessage.max.bytes=2000000\n\
        replica.fetch.max.bytes=2000000\nmin.insync.replicas=2\n";
    let cluster = KafkaCluster::start(1, 3, settings);
    common::replication::create_topic(&cluster.bootstrap(), "r", 1, 3).await;
    let leader = common::replication::wait_for_leader(&cluster, 1, "r", 0, -1, 3).await;
    let addr = cluster
        .brokers
        .iter()
        .find(|b| b.id == leader)
        .unwrap()
        .addr();
    let t = Instant::now();
    let producers: Vec<_> = (0..6)
        .map(|p| {
            std::thread::spawn(move || {
                let mut c = KafkaConn::connect(addr);
                for i in 0..15 {
                    // Each sixth write needs nearly the whole pool.
                    let size = if i % 6 == p { 1_900_000 } else { 1000 };
                    let r = c.produce_to(9, "r", 0, -1, 10_000, &[&vec![b'x'; size]]);
                    let e = r.responses[0].partition_responses[0].error_code;
                    assert_eq!(e, 0, "acks=all produce error {e}");
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let took = t.elapsed();
    println!(
        "queued.max.requests=1, pool = one request: 90 acks=all produces (15 of 1.9 MB) on a 3-broker cluster in {} ms",
        took.as_millis()
    );
    // About half a second when followers' fetches give their place back once decoded; many
    // seconds if a fetch's long poll held the broker's one place.
    assert!(
        took < Duration::from_secs(5),
        "90 acks=all produces took {took:?}"
    );
    let (_, isr) = cluster.leader(leader, "r", 0);
    assert_eq!(isr.len(), 3, "followers kept up: isr {isr:?}");
    let r = KafkaConn::connect(addr).produce("r", -1, &[b"last"]);
    assert_eq!(r, (0, 90));
}
