//! Connection floods against a running broker, while one well-behaved producer keeps writing:
//! 10,000 idle connections, connections opened and dropped in a loop, clients that send half a
//! frame and stall, clients that never read their answers, requests at the size limit back to
//! back. The broker stays up, its memory stays bounded, and the producer's requests keep being
//! answered (its latency is printed as a figure, before and during). The limits that bound
//! them (`max.connections`, `max.connections.per.ip`, `connections.max.idle.ms`) are checked
//! too.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestHeader};
use kafka_protocol::protocol::Encodable;
use sluice_e2e::kafka::KafkaConn;
use sluice_e2e::{open_fds, proc_status_kib, BrokerNode, CoordCluster};

mod common;

/// acks=1 produce of one small record on `c`; panics on an error.
fn produce_one(c: &mut KafkaConn, topic: &str, value: &[u8]) {
    let (e, _) = c.produce(topic, 1, &[value]);
    assert_eq!(e, 0, "produce error {e}");
}

/// Latencies of `n` produce round trips on one connection: (median, p99, max).
fn produce_latency(addr: SocketAddr, topic: &str, n: usize) -> (Duration, Duration, Duration) {
    let mut c = KafkaConn::connect(addr);
    let mut lat: Vec<Duration> = (0..n)
        .map(|i| {
            let t = Instant::now();
            produce_one(&mut c, topic, format!("steady-{i}").as_bytes());
            t.elapsed()
        })
        .collect();
    lat.sort();
    (lat[n / 2], lat[n * 99 / 100], lat[n - 1])
}

/// A Metadata v1 request frame (all topics), size prefix included.
fn metadata_frame(correlation_id: i32) -> Vec<u8> {
    let mut h = RequestHeader::default();
    h.request_api_key = ApiKey::Metadata as i16;
    h.request_api_version = 1;
    h.correlation_id = correlation_id;
    let mut body = bytes::BytesMut::new();
    h.encode(&mut body, 1).unwrap();
    MetadataRequest::default().encode(&mut body, 1).unwrap();
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// Whether the broker closes `s` within `within` (EOF or reset; a timeout is not a close).
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_leave_the_broker_serving_with_bounded_memory() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "socket.request.max.bytes=1048576\nmessage.max.bytes=1000000\n",
    );
    common::replication::create_topic(&broker.bootstrap(), "steady", 1, 1).await;
    let addr = broker.addr();
    let pid = broker.pid().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let open_files: u64 = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    assert!(
        open_files >= 12_000,
        "10,000 connections need a descriptor limit of 12,000 or more (ulimit -n; scripts/test.sh raises it to the hard limit), it is {open_files}"
    );
    tokio::task::spawn_blocking(move || {
        // Warm up, then the idle figures.
        produce_latency(addr, "steady", 200);
        let idle_kib = proc_status_kib(pid, "VmRSS");
        let idle_fds = open_fds(pid);
        let base = produce_latency(addr, "steady", 500);
        println!("idle: {idle_kib} KiB, {idle_fds} fds; produce latency median/p99/max {base:?}");

        // 10,000 idle connections.
        let idle: Vec<TcpStream> = (0..10_000)
            .map(|_| TcpStream::connect(addr).expect("connect"))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while open_fds(pid) < idle_fds + 9_990 {
            assert!(
                Instant::now() < deadline,
                "the broker did not accept 10,000 connections: {} fds; {}",
                open_fds(pid),
                std::fs::read_to_string(format!("/proc/{pid}/limits"))
                    .unwrap()
                    .lines()
                    .find(|l| l.starts_with("Max open files"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let with_idle = produce_latency(addr, "steady", 500);
        let idle_conns_kib = proc_status_kib(pid, "VmRSS");
        println!(
            "10,000 idle connections: {idle_conns_kib} KiB (+{} KiB, {} bytes each); produce latency {with_idle:?}",
            idle_conns_kib - idle_kib,
            (idle_conns_kib - idle_kib) * 1024 / 10_000
        );
        drop(idle);

        // Half frames: a 1 MiB request announced, 100 bytes sent, then nothing; and clients
        // that send requests without ever reading the answers.
        let mut stalled = Vec::new();
        for _ in 0..200 {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&(1_000_000u32).to_be_bytes()).unwrap();
            s.write_all(&[7u8; 100]).unwrap();
            stalled.push(s);
        }
        let frame = metadata_frame(1);
        for _ in 0..50 {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
            // Until the socket buffers on both sides are full.
            while s.write_all(&frame).is_ok() {}
            stalled.push(s);
        }
        // Requests at the size limit back to back: Produce frames of just under 1 MiB.
        let big = vec![b'b'; 1_000_000 - 200];
        let mut c = KafkaConn::connect(addr);
        let mut at_limit = 0;
        for _ in 0..30 {
            let (e, _) = c.produce("steady", 1, &[&big[..]]);
            assert_eq!(e, 0);
            at_limit += 1;
        }
        assert_eq!(at_limit, 30);
        let during = produce_latency(addr, "steady", 500);
        println!("200 half frames, 50 clients not reading, 30 requests at the limit: produce latency {during:?}");

        // Connections opened and dropped in a loop.
        for i in 0..5_000 {
            let mut s = TcpStream::connect(addr).unwrap();
            if i % 2 == 0 {
                let _ = s.write_all(&frame[..7]);
            }
        }
        drop(stalled);
        let deadline = Instant::now() + Duration::from_secs(30);
        while open_fds(pid) > idle_fds + 5 {
            assert!(
                Instant::now() < deadline,
                "connections left open: {} fds vs {idle_fds} idle",
                open_fds(pid)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let after = produce_latency(addr, "steady", 500);
        let peak_kib = proc_status_kib(pid, "VmHWM");
        let end_kib = proc_status_kib(pid, "VmRSS");
        println!(
            "after: {end_kib} KiB, peak {peak_kib} KiB (+{} KiB over idle); produce latency {after:?}",
            peak_kib - idle_kib
        );
        assert!(
            peak_kib - idle_kib <= 128 * 1024,
            "peak {peak_kib} KiB vs idle {idle_kib} KiB"
        );
    })
    .await
    .unwrap();
}

/// `max.connections.per.ip` closes connections over the limit at once (others' are untouched),
/// `max.connections` makes new connections wait until one closes, and
/// `connections.max.idle.ms` closes a connection that stays silent, a half-sent frame included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_are_honoured() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "max.connections.per.ip=20\nmax.connections=30\nconnections.max.idle.ms=2000\n",
    );
    let addr = broker.addr();
    let log = broker.log.clone();
    let pid = broker.pid().unwrap();
    tokio::task::spawn_blocking(move || {
        // The start-up probe's connection must be gone first, or it takes one of the 20.
        let mut last = (open_fds(pid), Instant::now());
        let deadline = Instant::now() + Duration::from_secs(5);
        while last.1.elapsed() < Duration::from_millis(300) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            if open_fds(pid) != last.0 {
                last = (open_fds(pid), Instant::now());
            }
        }
        let log_tail = || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.lines().rev().take(30).collect::<Vec<_>>().join("\n")
        };
        // Per address: 20 from 127.0.0.1 are served, the 21st is closed at once.
        let mut first: Vec<TcpStream> =
            (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let mut extra = TcpStream::connect(addr).unwrap();
        assert!(
            closed_within(&mut extra, Duration::from_secs(2)),
            "the 21st connection from one address was not closed"
        );
        let frame = metadata_frame(7);
        first[0].write_all(&frame).unwrap();
        let mut len = [0u8; 4];
        first[0]
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        first[0]
            .read_exact(&mut len)
            .expect("an admitted connection is answered");

        // Another address (127.0.0.2, also loopback) has its own 20, but the broker-wide 30
        // stops at 10 more: the 11th waits in the backlog until a connection closes.
        let rt = tokio::runtime::Handle::current();
        let other = |_| {
            rt.block_on(async {
                let s = tokio::net::TcpSocket::new_v4().unwrap();
                s.bind(SocketAddr::from(([127, 0, 0, 2], 0))).unwrap();
                let s = s.connect(addr).await.unwrap().into_std().unwrap();
                s.set_nonblocking(false).unwrap();
                s
            })
        };
        let _ten: Vec<TcpStream> = (0..10).map(other).collect();
        let mut waiting = other(0);
        waiting.write_all(&frame).unwrap();
        waiting
            .set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        assert!(
            waiting.read_exact(&mut len).is_err(),
            "a connection past max.connections was served:\n{}",
            log_tail()
        );
        drop(first.pop());
        waiting
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        waiting
            .read_exact(&mut len)
            .expect("served once a slot was free");
        drop(first);

        // Idle connections close after connections.max.idle.ms, a half-sent frame too.
        let mut silent = TcpStream::connect(addr).unwrap();
        let mut half = TcpStream::connect(addr).unwrap();
        half.write_all(&frame[..frame.len() / 2]).unwrap();
        let t = Instant::now();
        assert!(
            closed_within(&mut silent, Duration::from_secs(10)),
            "an idle connection stayed open"
        );
        assert!(
            closed_within(&mut half, Duration::from_secs(10)),
            "a stalled half frame stayed open"
        );
        println!("idle connections closed after {:?}", t.elapsed());
        assert!(
            t.elapsed() >= Duration::from_millis(1500),
            "closed before connections.max.idle.ms"
        );
    })
    .await
    .unwrap();
}
