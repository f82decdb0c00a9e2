//! Connection floods against a running coord node while one well-behaved client keeps writing:
//! 10,000 idle connections, connections opened and dropped in a loop, clients that send half a
//! frame and stall, sessions that never read their answers, requests at `jute.maxbuffer` back to
//! back. The node stays up, its memory stays bounded, every connection is released, and the
//! steady client's writes keep being answered (latency printed as a figure). `maxClientCnxns`
//! itself is tested in `crates/coord/tests/robustness.rs`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use sluice_e2e::{open_fds, proc_status_kib, CoordCluster};
use sluice_jute::{ConnectRequest, ConnectResponse, GetDataRequest, Record, Request};
use zookeeper_client as zk;

fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A raw connection with a new session.
fn session(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        time_out: 30_000,
        session_id: 0,
        passwd: Bytes::from_static(&[0; 16]),
        read_only: Some(false),
    };
    let mut b = BytesMut::new();
    req.write(&mut b);
    s.write_all(&framed(&b)).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len).clamp(0, 1 << 16) as usize];
    s.read_exact(&mut body).unwrap();
    let r = ConnectResponse::from_slice(&body).unwrap();
    assert!(r.session_id != 0, "no session");
    s
}

/// Latencies of `n` setData round trips: (median, p99, max).
async fn set_latency(c: &zk::Client, n: usize) -> (Duration, Duration, Duration) {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        tokio::time::timeout(
            Duration::from_secs(10),
            c.set_data("/steady", format!("v{i}").as_bytes(), None),
        )
        .await
        .expect("a steady write answered within 10 s")
        .expect("a steady write");
        lat.push(t.elapsed());
    }
    lat.sort();
    (lat[n / 2], lat[n * 99 / 100], lat[n - 1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_leave_coord_serving_with_bounded_memory() {
    let coord = CoordCluster::start(1, "maxClientCnxns=0\n");
    let addr = coord.nodes[0].client;
    let pid = coord.nodes[0].pid().unwrap();
    let c = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(20))
        .connect(&addr.to_string())
        .await
        .unwrap();
    c.create(
        "/steady",
        b"",
        &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
    )
    .await
    .unwrap();
    set_latency(&c, 200).await;
    let idle_kib = proc_status_kib(pid, "VmRSS");
    let idle_fds = open_fds(pid);
    let base = set_latency(&c, 300).await;
    println!("idle: {idle_kib} KiB, {idle_fds} fds; setData latency median/p99/max {base:?}");

    // 10,000 idle connections (no ConnectRequest yet).
    let idle = tokio::task::spawn_blocking(move || {
        let v: Vec<TcpStream> = (0..10_000)
            .map(|_| TcpStream::connect(addr).expect("connect"))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while open_fds(pid) < idle_fds + 9_990 {
            assert!(
                Instant::now() < deadline,
                "coord did not accept 10,000 connections: {} fds",
                open_fds(pid)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        v
    })
    .await
    .unwrap();
    let with_idle = set_latency(&c, 300).await;
    let idle_conns_kib = proc_status_kib(pid, "VmRSS");
    println!(
        "10,000 idle connections: {idle_conns_kib} KiB (+{} KiB, {} bytes each); setData latency {with_idle:?}",
        idle_conns_kib - idle_kib,
        (idle_conns_kib - idle_kib) * 1024 / 10_000
    );
    drop(idle);

    // Half frames, sessions that never read, requests at jute.maxbuffer back to back.
    let stalled = tokio::task::spawn_blocking(move || {
        let mut stalled = Vec::new();
        for _ in 0..200 {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&(60_000u32).to_be_bytes()).unwrap();
            s.write_all(&[7u8; 100]).unwrap();
            stalled.push(s);
        }
        let mut get = BytesMut::new();
        Request::GetData(GetDataRequest {
            path: "/steady".into(),
            watch: false,
        })
        .encode(1, &mut get);
        let get = framed(&get);
        for _ in 0..20 {
            let mut s = session(addr);
            s.set_write_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            while s.write_all(&get).is_ok() {}
            stalled.push(s);
        }
        stalled
    })
    .await
    .unwrap();
    let big = vec![b'm'; 1_000_000];
    for _ in 0..20 {
        c.set_data("/steady", &big, None)
            .await
            .expect("a write just under jute.maxbuffer");
    }
    let during = set_latency(&c, 300).await;
    println!(
        "200 half frames, 20 sessions not reading, 20 writes of 1 MB: setData latency {during:?}"
    );

    // Connections opened and dropped in a loop.
    tokio::task::spawn_blocking(move || {
        for i in 0..5_000 {
            let mut s = TcpStream::connect(addr).unwrap();
            if i % 2 == 0 {
                let _ = s.write_all(&[0, 0, 0, 44, 0, 0]);
            }
        }
    })
    .await
    .unwrap();
    drop(stalled);
    let deadline = Instant::now() + Duration::from_secs(30);
    while open_fds(pid) > idle_fds + 5 {
        assert!(
            Instant::now() < deadline,
            "connections left open: {} fds vs {idle_fds} idle",
            open_fds(pid)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = set_latency(&c, 300).await;
    let peak_kib = proc_status_kib(pid, "VmHWM");
    let end_kib = proc_status_kib(pid, "VmRSS");
    println!(
        "after: {end_kib} KiB, peak {peak_kib} KiB (+{} KiB over idle); setData latency {after:?}",
        peak_kib - idle_kib
    );
    assert!(
        peak_kib - idle_kib <= 160 * 1024,
        "peak {peak_kib} KiB vs idle {idle_kib} KiB"
    );
}
