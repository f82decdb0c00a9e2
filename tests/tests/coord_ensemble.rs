//! A three-node coord ensemble as real processes, started from `zookeeper.properties` files,
//! under the faults of ZooKeeper's own operations guide: leader SIGKILL under load, losing the
//! quorum, SIGKILL of every node, a hung (SIGSTOP) leader, a node catching up by snapshot, and a
//! loop of SIGKILLs under load (200 by hand, 20 in the test run).

use std::time::{Duration, Instant};

use sluice_e2e::CoordCluster;
use zookeeper_client as zk;

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

async fn connect(hosts: &str) -> zk::Client {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(6))
        .connect(hosts)
        .await
        .unwrap_or_else(|e| panic!("connect {hosts}: {e}"))
}

/// Creates `/load/k<i>` for i = from.. until `stop` says so; returns the acknowledged keys and
/// the longest time between two acknowledgements.
async fn write_load(c: &zk::Client, from: u64, until: Instant) -> (Vec<u64>, Duration) {
    write_load_at_least(c, from, until, 0).await
}

/// [`write_load`], going on past `until` (for at most 60 s more) until `at_least` writes are
/// acknowledged.
async fn write_load_at_least(
    c: &zk::Client,
    from: u64,
    until: Instant,
    at_least: usize,
) -> (Vec<u64>, Duration) {
    let mut acked = Vec::new();
    let mut last_ack = Instant::now();
    let mut longest = Duration::ZERO;
    let mut i = from;
    let hard_stop = until + Duration::from_secs(60);
    while Instant::now() < until || (acked.len() < at_least && Instant::now() < hard_stop) {
        let path = format!("/load/k{i}");
        match tokio::time::timeout(Duration::from_secs(5), c.create(&path, b"v", &persistent()))
            .await
        {
            // NodeExists: an earlier attempt committed but its answer was lost.
            Ok(Ok(_)) | Ok(Err(zk::Error::NodeExists)) => {
                let now = Instant::now();
                longest = longest.max(now - last_ack);
                last_ack = now;
                acked.push(i);
                i += 1;
            }
            Ok(Err(_)) | Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    (acked, longest)
}

/// Every key in `acked` exists when read through each node the test has not stopped (after a
/// sync). Each of those must answer and know the leader: a node crash-looping after a fault
/// fails the check instead of being skipped.
async fn assert_all_present(cluster: &CoordCluster, acked: &[u64]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in &cluster.nodes {
        if n.pid().is_none() {
            continue; // stopped by the test
        }
        while !matches!(mode_of(n).as_deref(), Some("leader" | "follower")) {
            assert!(
                Instant::now() < deadline,
                "node {} does not rejoin: {:?}\n{}",
                n.id,
                sluice_e2e::four_letter_word(n.client, "srvr"),
                n.log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let c = connect(&n.client.to_string()).await;
        c.sync("/load").await.unwrap();
        let children: std::collections::HashSet<String> = c
            .list_children("/load")
            .await
            .unwrap()
            .into_iter()
            .collect();
        let missing: Vec<&u64> = acked
            .iter()
            .filter(|i| !children.contains(&format!("k{i}")))
            .collect();
        assert!(
            missing.is_empty(),
            "node {} lost acknowledged writes {missing:?}",
            n.id
        );
    }
}

fn mode_of(n: &sluice_e2e::CoordNode) -> Option<String> {
    sluice_e2e::mode(n.client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_from_properties_files_replicate_writes_to_every_member() {
    let cluster = CoordCluster::start(3, "");
    let modes: Vec<Option<String>> = cluster.nodes.iter().map(mode_of).collect();
    assert_eq!(
        modes
            .iter()
            .filter(|m| m.as_deref() == Some("leader"))
            .count(),
        1,
        "{modes:?}"
    );
    assert_eq!(
        modes
            .iter()
            .filter(|m| m.as_deref() == Some("follower"))
            .count(),
        2,
        "{modes:?}"
    );

    // Write through each node in turn (followers forward), read through every node.
    for (i, n) in cluster.nodes.iter().enumerate() {
        let c = connect(&n.client.to_string()).await;
        c.create(&format!("/from-{i}"), b"x", &persistent())
            .await
            .unwrap();
    }
    for n in &cluster.nodes {
        let c = connect(&n.client.to_string()).await;
        c.sync("/").await.unwrap();
        let mut children = c.list_children("/").await.unwrap();
        children.sort();
        assert_eq!(
            children,
            vec!["from-0", "from-1", "from-2", "zookeeper"],
            "node {}",
            n.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_sigkill_under_write_load_loses_no_acknowledged_write() {
    let mut cluster = CoordCluster::start(3, "");
    let c = connect(&cluster.connect_string()).await;
    c.create("/load", b"", &persistent()).await.unwrap();

    let (before, _) = write_load(&c, 0, Instant::now() + Duration::from_millis(500)).await;
    let leader = cluster.leader().expect("a leader");
    cluster.nodes[leader].kill();
    // Writes for 3 s, longer if none has resumed yet (a loaded machine elects slowly): the
    // outage is reported as a figure, the test only requires that writes resume.
    let (after, gap) = write_load_at_least(
        &c,
        before.len() as u64,
        Instant::now() + Duration::from_secs(3),
        1,
    )
    .await;
    assert!(
        !after.is_empty(),
        "writes never resumed within 60 s after the leader died"
    );
    let new_leader = cluster.wait_for_leader(Duration::from_secs(10));
    assert_ne!(new_leader, leader);
    println!("leader SIGKILL: longest gap between acknowledged writes {gap:?}");

    let acked: Vec<u64> = before.into_iter().chain(after).collect();
    assert_all_present(&cluster, &acked).await;
    // The old leader comes back as a follower with everything.
    cluster.start_node(leader);
    let deadline = Instant::now() + Duration::from_secs(20);
    while mode_of(&cluster.nodes[leader]).as_deref() != Some("follower") {
        assert!(
            Instant::now() < deadline,
            "restarted node did not rejoin:\n{}",
            cluster.nodes[leader].log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_all_present(&cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_fail_without_a_quorum_and_recover_when_a_node_returns() {
    let mut cluster = CoordCluster::start(3, "");
    let leader = cluster.leader().unwrap();
    let survivor = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let c = connect(&cluster.nodes[survivor].client.to_string()).await;
    c.create("/before", b"", &persistent()).await.unwrap();

    cluster.nodes[leader].kill();
    cluster.nodes[other].kill();
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        c.create("/during", b"", &persistent()),
    )
    .await
    .expect("a write without quorum must fail, not hang")
    .unwrap_err();
    assert!(
        matches!(
            err,
            zk::Error::ConnectionLoss | zk::Error::SessionExpired | zk::Error::Timeout
        ),
        "ZooKeeper reports a lost quorum as a connection loss, got {err:?}"
    );
    // The survivor says so as ZooKeeper 3.8 does, in the line monitoring scripts look for.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let srvr = sluice_e2e::four_letter_word(cluster.nodes[survivor].client, "srvr");
        if srvr == "This ZooKeeper instance is not currently serving requests\n" {
            break;
        }
        assert!(Instant::now() < deadline, "srvr without quorum: {srvr:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    cluster.start_node(other);
    cluster.wait_for_leader(Duration::from_secs(20));
    let c2 = connect(&format!(
        "{},{}",
        cluster.nodes[survivor].client, cluster.nodes[other].client
    ))
    .await;
    c2.create("/after", b"", &persistent()).await.unwrap();
    assert!(c2.check_stat("/before").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_every_node_mid_load_then_restart_loses_nothing() {
    let mut cluster = CoordCluster::start(3, "snapCount=200\n");
    let mut acked_all = Vec::new();
    {
        let c = connect(&cluster.connect_string()).await;
        c.create("/load", b"", &persistent()).await.unwrap();
    }
    for round in 0..3u64 {
        let c = connect(&cluster.connect_string()).await;
        let load = write_load(
            &c,
            round * 1_000_000,
            Instant::now() + Duration::from_millis(700),
        );
        let (acked, _) = load.await;
        // Kill everything at once, with a write in flight.
        let inflight = format!("/load/inflight-{round}");
        let opts = persistent();
        let pending = c.create(&inflight, b"", &opts);
        for n in &mut cluster.nodes {
            n.kill();
        }
        drop(pending);
        drop(c);
        acked_all.extend(acked);
        for i in 0..3 {
            cluster.start_node(i);
        }
        cluster.wait_for_leader(Duration::from_secs(30));
        assert_all_present(&cluster, &acked_all).await;
    }
    assert!(
        acked_all.len() > 50,
        "too little load to mean anything: {}",
        acked_all.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_leader_is_replaced() {
    let cluster = CoordCluster::start(3, "");
    let leader = cluster.leader().unwrap();
    let c = connect(&cluster.connect_string()).await;
    c.create("/x", b"", &persistent()).await.unwrap();
    cluster.nodes[leader].pause();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(15);
    let new_leader = loop {
        if let Some(l) = cluster
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != leader)
            .find_map(|(i, n)| (mode_of(n).as_deref() == Some("leader")).then_some(i))
        {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "nobody took over from the hung leader"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "SIGSTOP leader: node {} leads after {:?}",
        new_leader + 1,
        started.elapsed()
    );
    let others = cluster
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, n)| n.client.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let c2 = connect(&others).await;
    c2.create("/y", b"", &persistent()).await.unwrap();
    c2.set_data("/x", b"after", None).await.unwrap();
    cluster.nodes[leader].resume();

    // The old leader, woken up, serves nothing stale: through a client connected to it alone,
    // a synced read sees the write made while it was frozen, and a write either fails or is
    // one the new leader has too.
    let old = connect(&cluster.nodes[leader].client.to_string()).await;
    old.sync("/x").await.unwrap();
    assert_eq!(old.get_data("/x").await.unwrap().0, b"after");
    match old.create("/from-old", b"", &persistent()).await {
        Ok(_) => {
            c2.sync("/from-old").await.unwrap();
            assert!(
                c2.check_stat("/from-old").await.unwrap().is_some(),
                "a write acknowledged by the old leader is missing from the ensemble"
            );
        }
        Err(e) => println!("write through the old leader right after SIGCONT: {e:?}"),
    }
    assert!(old.check_stat("/y").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_down_for_long_catches_up_by_snapshot() {
    let mut cluster = CoordCluster::start(3, "snapCount=50\n");
    let leader = cluster.leader().unwrap();
    let lagger = (leader + 1) % 3;
    cluster.nodes[lagger].kill();
    let up = format!(
        "{},{}",
        cluster.nodes[leader].client,
        cluster.nodes[(leader + 2) % 3].client
    );
    let c = connect(&up).await;
    c.create("/bulk", b"", &persistent()).await.unwrap();
    // Sequential writes: each is its own log entry, so the log is compacted many times over.
    for i in 0..400 {
        c.create(&format!("/bulk/n{i}"), b"payload", &persistent())
            .await
            .unwrap();
    }
    cluster.start_node(lagger);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if mode_of(&cluster.nodes[lagger]).as_deref() == Some("follower") {
            let l = connect(&cluster.nodes[lagger].client.to_string()).await;
            l.sync("/bulk").await.unwrap();
            if l.list_children("/bulk").await.unwrap().len() == 400 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "lagging node did not catch up:\n{}",
            cluster.nodes[lagger].log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = cluster.nodes[lagger].log_text();
    assert!(
        log.contains("snapshot"),
        "expected the lagging node to install a snapshot:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_node_ensemble_survives_two_failures() {
    let mut cluster = CoordCluster::start(5, "");
    let c = connect(&cluster.connect_string()).await;
    c.create("/load", b"", &persistent()).await.unwrap();
    let leader = cluster.leader().unwrap();
    cluster.nodes[leader].kill();
    cluster.nodes[(leader + 1) % 5].kill();
    let (acked, gap) = write_load(&c, 0, Instant::now() + Duration::from_secs(2)).await;
    assert!(
        acked.len() > 10,
        "writes must go on with 3 of 5 nodes: {} acknowledged",
        acked.len()
    );
    println!("5 nodes, leader and one follower SIGKILLed: longest gap {gap:?}");
    assert_all_present(&cluster, &acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly_and_a_restart_keeps_the_data() {
    let mut cluster = CoordCluster::start(1, "");
    let c = connect(&cluster.connect_string()).await;
    c.create("/durable", b"kept", &persistent()).await.unwrap();
    drop(c);
    assert_eq!(cluster.nodes[0].stop(), Some(0), "exit code after SIGTERM");
    assert!(cluster.nodes[0].log_text().contains("shutting down"));
    cluster.start_node(0);
    cluster.wait_for_leader(Duration::from_secs(20));
    let c = connect(&cluster.connect_string()).await;
    assert_eq!(c.get_data("/durable").await.unwrap().0, b"kept");
}

#[test]
fn a_missing_or_wrong_myid_stops_the_daemon_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zookeeper.properties");
    std::fs::write(
        &cfg,
        format!(
            "dataDir={}\nclientPort={}\ninitLimit=5\nsyncLimit=2\nserver.1=127.0.0.1:1:2\nserver.2=127.0.0.1:3:4\nserver.3=127.0.0.1:5:6\n",
            dir.path().display(),
            sluice_e2e::free_port()
        ),
    )
    .unwrap();
    let run = || {
        std::process::Command::new(sluice_e2e::binary("coord"))
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("myid: missing"), "{err}");
    std::fs::write(dir.path().join("myid"), "4\n").unwrap();
    let out = run();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("id 4 has no server.4 line"), "{err}");
}

/// A client keeps its watches across reconnections (setWatches / setWatches2): with every
/// member restarted in turn, so that the watcher's connection drops at least once, a persistent
/// recursive watch and a one-shot data watch set before still fire for writes made afterwards.
/// (The brokers follow `/brokers` this way; a lost persistent watch left a controller blind to
/// every later ISR change.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_survive_reconnections_to_other_members() {
    let mut cluster = CoordCluster::start(3, "");
    let setup = connect(&cluster.connect_string()).await;
    setup.create("/w", b"", &persistent()).await.unwrap();
    setup.create("/w/state", b"0", &persistent()).await.unwrap();
    setup.create("/w/once", b"0", &persistent()).await.unwrap();
    drop(setup);

    let watcher = connect(&cluster.connect_string()).await;
    let mut sessions = watcher.state_watcher();
    let mut recursive = watcher
        .watch("/w", zk::AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    let (_, _, once) = watcher.get_and_watch_data("/w/once").await.unwrap();

    let mut reconnections = 0;
    for i in 0..3 {
        cluster.restart(i);
        cluster.wait_until_all_serve(Duration::from_secs(30));
        // Count the watcher's reconnections (a restart of another member leaves it alone).
        while let Ok(state) =
            tokio::time::timeout(Duration::from_millis(300), sessions.changed()).await
        {
            if state == zk::SessionState::SyncConnected {
                reconnections += 1;
            }
        }
    }
    assert!(reconnections >= 1, "the watcher never reconnected");
    // Session events were delivered on the persistent watch too; skip them.
    let writer = connect(&cluster.connect_string()).await;
    for round in 1..=3 {
        writer
            .set_data("/w/state", round.to_string().as_bytes(), None)
            .await
            .unwrap();
        let e = loop {
            let e = tokio::time::timeout(Duration::from_secs(5), recursive.changed())
                .await
                .unwrap_or_else(|_| {
                    panic!("no event for write {round} after {reconnections} reconnection(s)")
                });
            if e.event_type != zk::EventType::Session {
                break e;
            }
        };
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (zk::EventType::NodeDataChanged, "/w/state")
        );
    }
    writer.set_data("/w/once", b"1", None).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), once.changed())
        .await
        .expect("one-shot data watch lost");
    assert_eq!(e.event_type, zk::EventType::NodeDataChanged);
}

/// A member whose `dataDir` was wiped comes back under its old id. It replicates at once (the
/// leader's writes go on with it as a follower), but it grants no vote and asks for none until
/// every member has told it its term: the one it has not heard from may hold a term its lost
/// self voted in. In a five-node ensemble with one member down, once the leader goes too, the
/// three left need the wiped member's vote and do not get it: nobody is elected until the
/// missing member is back; then every member holds every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_a_wiped_data_dir_votes_only_after_hearing_every_member() {
    let mut cluster = CoordCluster::start(5, "");
    let c = connect(&cluster.connect_string()).await;
    c.create("/load", b"", &persistent()).await.unwrap();
    let (mut acked, _) = write_load(&c, 0, Instant::now() + Duration::from_millis(500)).await;
    drop(c);
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let (wiped, missing) = ((leader + 1) % 5, (leader + 2) % 5);

    cluster.nodes[missing].kill();
    cluster.nodes[wiped].kill();
    let dir = cluster.nodes[wiped].data_dir.clone();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n != "myid") {
            if path.is_dir() {
                std::fs::remove_dir_all(&path).unwrap();
            } else {
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
    let answered = |cluster: &CoordCluster| {
        cluster.nodes[wiped]
            .log_text()
            .matches("every member answered")
            .count()
    };
    let answered_before = answered(&cluster);
    cluster.start_node(wiped);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cluster.nodes[wiped]
        .log_text()
        .contains("takes no part in elections")
    {
        assert!(
            Instant::now() < deadline,
            "the wiped member never said it waits:\n{}",
            cluster.nodes[wiped].log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The leader keeps leading with the wiped member among its followers.
    let c = connect(&cluster.nodes[leader].client.to_string()).await;
    let (more, _) = write_load_at_least(
        &c,
        acked.len() as u64,
        Instant::now() + Duration::from_millis(500),
        10,
    )
    .await;
    acked.extend(more);
    drop(c);

    // Without the leader, three of five are up, the wiped member among them.
    cluster.nodes[leader].kill();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        cluster.leader(),
        None,
        "a leader was elected with the vote of a member that lost its data"
    );

    assert_eq!(
        answered(&cluster),
        answered_before,
        "the floor was set too early"
    );
    cluster.start_node(missing);
    cluster.wait_for_leader(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(20);
    while answered(&cluster) == answered_before {
        assert!(
            Instant::now() < deadline,
            "the wiped member's floor was never set"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.start_node(leader);
    assert_all_present(&cluster, &acked).await;
}

/// The storage under SIGKILL, again and again: a writer keeps creating znodes through every
/// member while one member at a time (now the leader, now a follower; every tenth time all
/// three at once) is killed at an arbitrary moment and started again. Every write acknowledged
/// before a check must be on every member at that check, and every member must come back each
/// time. `SLUICE_COORD_KILLS` sets the number of kills (20 in the test run; 200 by hand:
/// `SLUICE_COORD_KILLS=200 cargo nextest run -p sluice-e2e --test coord_ensemble kill_loop`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_loop_loses_no_acknowledged_write() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let kills: u64 = std::env::var("SLUICE_COORD_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    // Frequent snapshots and purges, so kills also land in the middle of those.
    let mut cluster = CoordCluster::start(3, "snapCount=40\n");
    {
        let c = connect(&cluster.connect_string()).await;
        c.create("/load", b"", &persistent()).await.unwrap();
    }
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (hosts, acked, stop) = (cluster.connect_string(), acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // A new session whenever the old one is gone (expired while all three were down).
                let Ok(Ok(c)) = tokio::time::timeout(
                    Duration::from_secs(10),
                    zk::Client::connector()
                        .with_session_timeout(Duration::from_secs(6))
                        .connect(&hosts),
                )
                .await
                else {
                    continue;
                };
                while !stop.load(Ordering::Relaxed) {
                    let path = format!("/load/k{i}");
                    match tokio::time::timeout(
                        Duration::from_secs(5),
                        c.create(&path, b"v", &persistent()),
                    )
                    .await
                    {
                        // NodeExists: an earlier attempt committed but its answer was lost.
                        Ok(Ok(_)) | Ok(Err(zk::Error::NodeExists)) => {
                            acked.lock().unwrap().push(i);
                            i += 1;
                        }
                        Ok(Err(zk::Error::SessionExpired | zk::Error::ClientClosed)) => break,
                        Ok(Err(_)) | Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
            }
        })
    };

    let started = Instant::now();
    let mut slowest_recovery = Duration::ZERO;
    for k in 0..kills {
        // An arbitrary moment: 150-650 ms into the load, spread by a simple hash of k.
        let pause = 150 + (k.wrapping_mul(2_654_435_761) % 500);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let leader = cluster.wait_for_leader(Duration::from_secs(60));
        let victims: Vec<usize> = if k % 10 == 9 {
            vec![0, 1, 2]
        } else if k % 2 == 0 {
            vec![leader]
        } else {
            vec![(leader + 1 + (k as usize / 2) % 2) % 3]
        };
        for &v in &victims {
            cluster.nodes[v].kill();
        }
        let down = Instant::now();
        for &v in &victims {
            cluster.start_node(v);
        }
        cluster.wait_for_leader(Duration::from_secs(60));
        slowest_recovery = slowest_recovery.max(down.elapsed());
        if k % 10 == 9 || k + 1 == kills {
            let so_far = acked.lock().unwrap().clone();
            assert_all_present(&cluster, &so_far).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let acked = acked.lock().unwrap().clone();
    assert_all_present(&cluster, &acked).await;
    println!(
        "{kills} kills in {:.1} s: {} acknowledged writes, all present on all three members; \
         slowest return to a leader {:?}",
        started.elapsed().as_secs_f64(),
        acked.len(),
        slowest_recovery
    );
    assert!(
        acked.len() as u64 > 5 * kills,
        "too little load to mean anything: {} writes over {kills} kills",
        acked.len()
    );
}
