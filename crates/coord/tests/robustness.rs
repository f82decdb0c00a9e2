//! Bad input and edge conditions on the client port: malformed and oversized frames, a client
//! ahead of the server, the per-IP connection limit, the 1 MB data limit, four-letter words,
//! and sessions and watches moving between ensemble members.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use common::{connect, ensemble, standalone};
use sluice_jute::{write_framed, ConnectRequest, Record};
use zookeeper_client as zk;

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

/// Sends raw bytes and reports whether the server closed the connection (EOF) within 5 s, and
/// what it sent before that.
fn send_raw(addr: SocketAddr, bytes: &[u8]) -> (bool, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (true, got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (true, got),
            Err(_) => return (false, got),
        }
    }
}

fn connect_frame(req: &ConnectRequest) -> Vec<u8> {
    let mut out = BytesMut::new();
    write_framed(&mut out, |b| req.write(b)).unwrap();
    out.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_frames_close_only_that_connection() {
    let node = standalone("").await;
    let addr = node.server.client_addr();
    let good = connect(&addr.to_string()).await;
    good.create("/survivor", b"", &persistent()).await.unwrap();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("2 GB length prefix", vec![0x7f, 0xff, 0xff, 0xff, 1, 2, 3]),
        ("negative length", vec![0xff, 0xff, 0xff, 0xf0]),
        ("garbage connect body", vec![0, 0, 0, 3, 1, 2, 3]),
        (
            "frame just above jute.maxbuffer",
            (0x100000u32 + 2048).to_be_bytes().to_vec(),
        ),
    ];
    for (what, bytes) in cases {
        let (closed, reply) = tokio::task::spawn_blocking(move || send_raw(addr, &bytes))
            .await
            .unwrap();
        assert!(closed, "{what}: connection left open");
        assert!(reply.is_empty(), "{what}: unexpected reply {reply:?}");
    }
    // A valid session followed by a request with an unknown op code.
    let mut bytes = connect_frame(&ConnectRequest {
        time_out: 4000,
        passwd: vec![0u8; 16].into(),
        ..Default::default()
    });
    bytes.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0x03, 0xe7]); // xid 1, op 999
    let (closed, reply) = tokio::task::spawn_blocking(move || send_raw(addr, &bytes))
        .await
        .unwrap();
    assert!(closed, "unknown op: connection left open");
    assert!(
        reply.len() > 36,
        "expected the connect reply and an error reply, got {} bytes",
        reply.len()
    );

    // The other client never noticed.
    assert!(good.check_stat("/survivor").await.unwrap().is_some());
    good.create("/still-here", b"", &persistent())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_has_seen_newer_state_is_refused() {
    let node = standalone("").await;
    let addr = node.server.client_addr();
    let bytes = connect_frame(&ConnectRequest {
        last_zxid_seen: 0x7fff_0000_0000,
        time_out: 4000,
        passwd: vec![0u8; 16].into(),
        ..Default::default()
    });
    let (closed, reply) = tokio::task::spawn_blocking(move || send_raw(addr, &bytes))
        .await
        .unwrap();
    assert!(
        closed && reply.is_empty(),
        "expected a silent close, got {reply:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_up_to_the_jute_limit_is_stored_and_larger_requests_drop_the_connection() {
    let node = standalone("").await;
    let c = connect(&node.connect_string()).await;
    let big = vec![7u8; 1_000_000];
    c.create("/big", &big, &persistent()).await.unwrap();
    assert_eq!(c.get_data("/big").await.unwrap().0.len(), big.len());
    let too_big = vec![7u8; 1_100_000];
    let err = c.set_data("/big", &too_big, None).await.unwrap_err();
    // The server closes as soon as it has read the length prefix; a client still writing the
    // rest of the frame then meets a broken pipe or a reset instead of a clean connection loss.
    let dropped = format!("{err:?}");
    assert!(
        matches!(err, zk::Error::ConnectionLoss | zk::Error::Timeout)
            || dropped.contains("BrokenPipe")
            || dropped.contains("ConnectionReset"),
        "{err:?}"
    );
    // The node serves on; the client reconnects and its session survives.
    let c2 = connect(&node.connect_string()).await;
    assert_eq!(c2.get_data("/big").await.unwrap().0.len(), big.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_client_cnxns_limits_connections_per_ip() {
    let node = standalone("maxClientCnxns=2\n").await;
    let hosts = node.connect_string();
    let a = connect(&hosts).await;
    let b = connect(&hosts).await;
    let third = tokio::time::timeout(
        Duration::from_secs(3),
        zk::Client::connector()
            .with_session_timeout(Duration::from_secs(4))
            .connect(&hosts),
    )
    .await;
    assert!(
        !matches!(third, Ok(Ok(_))),
        "a third connection from one IP was accepted"
    );
    drop(a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _c = connect(&hosts).await;
    b.create("/ok", b"", &persistent()).await.unwrap();
}

/// `mntr`'s latency and packet counters follow the requests served, and `srst` starts them
/// again (they answered 0 whatever was served); `zk_approximate_data_size` counts paths and
/// data as ZooKeeper 3.8 does (it answered 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mntr_reports_request_latency_and_srst_resets_it() {
    let node = standalone("4lw.commands.whitelist=*\n").await;
    let addr = node.server.client_addr();
    let ask = move |w: &'static str| {
        tokio::task::spawn_blocking(move || {
            let (_, reply) = send_raw(addr, w.as_bytes());
            String::from_utf8(reply).unwrap()
        })
    };
    let value = |mntr: &str, key: &str| -> f64 {
        mntr.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('\t'))
            .unwrap_or_else(|| panic!("no {key} in {mntr}"))
            .parse()
            .unwrap()
    };
    let idle = ask("mntr").await.unwrap();
    assert_eq!(value(&idle, "zk_max_latency"), 0.0, "{idle}");
    // Paths plus data: a fresh ZooKeeper 3.8 answers 44 too.
    assert_eq!(value(&idle, "zk_approximate_data_size"), 44.0, "{idle}");

    // 2,000 pipelined writes: the last ones wait for the first, so some take a millisecond or
    // more even on a fast machine.
    let c = connect(&node.connect_string()).await;
    c.create("/lat", b"", &persistent()).await.unwrap();
    let sets: Vec<_> = (0..2000)
        .map(|i| c.set_data("/lat", &[i as u8], None))
        .collect();
    for s in sets {
        s.await.unwrap();
    }
    let busy = ask("mntr").await.unwrap();
    assert!(value(&busy, "zk_max_latency") >= 1.0, "{busy}");
    // "/lat" and its one byte.
    assert_eq!(value(&busy, "zk_approximate_data_size"), 49.0, "{busy}");
    assert!(value(&busy, "zk_avg_latency") > 0.0, "{busy}");
    assert!(value(&busy, "zk_packets_received") >= 2000.0, "{busy}");
    let stat = ask("stat").await.unwrap();
    assert!(
        stat.lines()
            .any(|l| l.starts_with("Latency min/avg/max: ") && !l.ends_with("/0")),
        "{stat}"
    );

    assert_eq!(ask("srst").await.unwrap(), "Server stats reset.\n");
    let reset = ask("mntr").await.unwrap();
    assert_eq!(value(&reset, "zk_max_latency"), 0.0, "{reset}");
    assert_eq!(value(&reset, "zk_packets_received"), 0.0, "{reset}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_letter_words_answer_and_respect_the_whitelist() {
    let node = standalone("").await;
    let addr = node.server.client_addr();
    let ask = move |w: &'static str| {
        tokio::task::spawn_blocking(move || {
            let (_, reply) = send_raw(addr, w.as_bytes());
            String::from_utf8(reply).unwrap()
        })
    };
    assert_eq!(ask("ruok").await.unwrap(), "imok");
    let srvr = ask("srvr").await.unwrap();
    assert!(
        srvr.contains("Mode: standalone") && srvr.contains("Node count: "),
        "{srvr}"
    );
    let mntr = ask("mntr").await.unwrap();
    assert!(mntr.contains("zk_server_state\tstandalone"), "{mntr}");
    assert!(ask("envi")
        .await
        .unwrap()
        .contains("zookeeper.version=3.8.4"));

    let limited = standalone("4lw.commands.whitelist=srvr\n").await;
    let addr = limited.server.client_addr();
    let (_, reply) = tokio::task::spawn_blocking(move || send_raw(addr, b"ruok"))
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(reply).unwrap(),
        "ruok is not executed because it is not in the whitelist.\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_moves_to_another_member_with_its_ephemerals_and_watches() {
    let mut e = ensemble(3).await;
    let leader = e.leader().unwrap();
    let doomed = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let mover = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(6))
        .connect(&format!(
            "{},{}",
            e.node(doomed).client_addr(),
            e.node(other).client_addr()
        ))
        .await
        .unwrap();
    let writer = connect(&e.node(leader).client_addr().to_string()).await;
    writer
        .create("/watched", b"0", &persistent())
        .await
        .unwrap();
    mover
        .create(
            "/eph",
            b"",
            &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all()),
        )
        .await
        .unwrap();
    let (_, _, watch) = mover.get_and_watch_data("/watched").await.unwrap();
    let session = mover.session_id();

    // Take down the member the client is on; it must reconnect to the survivor.
    let on = [doomed, other]
        .into_iter()
        .find(|&i| {
            e.node(i)
                .info()
                .connections
                .iter()
                .any(|c| c.session_id == Some(session.0))
        })
        .expect("the session is attached to one of the two followers");
    e.nodes[on].take().unwrap().shutdown().await;
    writer.set_data("/watched", b"1", None).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(15), watch.changed())
        .await
        .expect("watch fired after moving");
    assert_eq!(ev.event_type, zk::EventType::NodeDataChanged);
    assert_eq!(mover.session_id(), session);
    let stat = writer
        .check_stat("/eph")
        .await
        .unwrap()
        .expect("ephemeral kept");
    assert_eq!(stat.ephemeral_owner, session.0);
}
