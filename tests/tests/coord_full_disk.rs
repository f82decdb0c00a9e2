//! Full `dataDir`s (a tmpfs per node, filled by a file beside the data): coord stops accepting
//! writes without losing or damaging what it acknowledged, keeps serving reads, and accepts
//! writes again once space returns, across a SIGKILL of every node too.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use sluice_e2e::disk::{fill, Tmpfs};
use sluice_e2e::CoordCluster;
use zookeeper_client as zk;

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

async fn connect(hosts: &str) -> zk::Client {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(hosts)
        .await
        .unwrap_or_else(|e| panic!("connect {hosts}: {e}"))
}

/// Creates `/full/k<i>` with 1 KiB of data, waiting at most 5 s for the answer.
async fn create(c: &zk::Client, i: u64) -> Result<(), String> {
    let data = vec![b'v'; 1024];
    match tokio::time::timeout(
        Duration::from_secs(5),
        c.create(&format!("/full/k{i}"), &data, &persistent()),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer in 5 s".into()),
    }
}

/// Bytes available in the filesystem holding `dir`.
fn available(dir: &std::path::Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .expect("df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df output")
}

/// Every `/full/k<i>` of `acked` reads back, through `c`.
async fn assert_all_present(c: &zk::Client, acked: &[u64], when: &str) {
    for i in acked {
        let got = tokio::time::timeout(Duration::from_secs(10), c.get_data(&format!("/full/k{i}")))
            .await
            .unwrap_or_else(|_| panic!("{when}: reading /full/k{i} timed out"));
        let (data, _) = got.unwrap_or_else(|e| panic!("{when}: /full/k{i} lost: {e}"));
        assert_eq!(data.len(), 1024, "{when}: /full/k{i} damaged");
    }
}

/// The ensemble fills its own disks: leaders keep `preAllocSize` free, so writes are refused
/// (the client sees a connection loss, as when ZooKeeper stops) before any node runs out; no
/// node dies, reads go on, and writes resume once space returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_stop_before_the_disks_fill_and_resume_when_space_returns() {
    let mounts = RefCell::new(Vec::new());
    let mut cluster = CoordCluster::start_prepared(3, "preAllocSize=4096\n", &|dir| {
        mounts.borrow_mut().push(Tmpfs::mount(dir, "32m"));
    });
    let c = connect(&cluster.connect_string()).await;
    c.create("/full", b"", &persistent()).await.unwrap();
    // Leave 8 MiB on every node: 4 MiB of it usable before the 4 MiB kept free.
    for n in &cluster.nodes {
        let keep = 8 << 20;
        let filler = vec![0u8; (available(&n.data_dir) - keep) as usize];
        std::fs::write(n.data_dir.join("filler"), filler).unwrap();
    }
    let mut acked = Vec::new();
    let mut refusals = 0;
    let mut i = 0;
    let started = Instant::now();
    // Writes until five in a row are refused.
    while refusals < 5 {
        assert!(i < 50_000, "50,000 writes and none refused");
        match create(&c, i).await {
            Ok(()) => {
                acked.push(i);
                refusals = 0;
            }
            Err(_) => refusals += 1,
        }
        i += 1;
    }
    println!(
        "{} writes acknowledged before the refusals ({:?}); free: {:?}",
        acked.len(),
        started.elapsed(),
        cluster
            .nodes
            .iter()
            .map(|n| available(&n.data_dir) >> 10)
            .collect::<Vec<_>>()
    );
    for n in &mut cluster.nodes {
        assert!(n.is_running(), "node {} died:\n{}", n.id, n.log_text());
    }
    assert_all_present(&c, &acked, "while writes are refused").await;
    assert!(
        cluster
            .nodes
            .iter()
            .any(|n| n.log_text().contains("kept free (preAllocSize)")),
        "the leader's log says why writes are refused"
    );

    // Space returns: writes resume.
    for n in &cluster.nodes {
        std::fs::remove_file(n.data_dir.join("filler")).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if create(&c, i).await.is_ok() {
            acked.push(i);
            break;
        }
        assert!(Instant::now() < deadline, "writes did not resume");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    i += 1;
    // SIGKILL of every node, then everything acknowledged is there.
    drop(c);
    for n in &mut cluster.nodes {
        n.kill();
    }
    for idx in 0..cluster.nodes.len() {
        cluster.start_node(idx);
    }
    cluster.wait_for_leader(Duration::from_secs(30));
    let c = connect(&cluster.connect_string()).await;
    assert_all_present(&c, &acked, "after a SIGKILL of every node").await;
    create(&c, i).await.expect("a write after the restart");
}

/// One follower's disk is filled to the last byte by something else: that node stops with the
/// cause (as ZooKeeper does), the two others go on accepting writes, and once space returns the
/// restarted node catches up with everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_disk_fills_stops_and_catches_up_after_a_restart() {
    let mounts = RefCell::new(Vec::new());
    let mut cluster = CoordCluster::start_prepared(3, "preAllocSize=1024\n", &|dir| {
        mounts.borrow_mut().push(Tmpfs::mount(dir, "24m"));
    });
    let leader = cluster.wait_for_leader(Duration::from_secs(30));
    let victim = (leader + 1) % 3;
    let others: Vec<String> = (0..3)
        .filter(|&i| i != victim)
        .map(|i| cluster.nodes[i].client.to_string())
        .collect();
    let c = connect(&others.join(",")).await;
    c.create("/full", b"", &persistent()).await.unwrap();
    let mut acked = Vec::new();
    for i in 0..200 {
        create(&c, i).await.unwrap();
        acked.push(i);
    }
    let filled = fill(&cluster.nodes[victim].data_dir.join("filler"));
    println!("node {}: filled {filled} bytes", cluster.nodes[victim].id);
    // Writes go on through the two others while the full node fails its first write and exits.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 200;
    while cluster.nodes[victim].is_running() {
        assert!(
            Instant::now() < deadline,
            "node {} still running after a minute on a full disk",
            cluster.nodes[victim].id
        );
        if create(&c, i).await.is_ok() {
            acked.push(i);
        }
        i += 1;
    }
    let log = cluster.nodes[victim].log_text();
    assert!(
        log.contains("the replicated log stopped") && log.contains("No space left on device"),
        "the stopped node says why:\n{}",
        log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    for _ in 0..100 {
        create(&c, i).await.expect("the two others accept writes");
        acked.push(i);
        i += 1;
    }

    std::fs::remove_file(cluster.nodes[victim].data_dir.join("filler")).unwrap();
    cluster.start_node(victim);
    let alone = connect(&cluster.nodes[victim].client.to_string()).await;
    // A sync makes the node catch up with the leader before it answers the reads.
    tokio::time::timeout(Duration::from_secs(30), alone.sync("/full"))
        .await
        .expect("sync in time")
        .expect("sync");
    assert_all_present(
        &alone,
        &acked,
        "on the node restarted after its disk filled",
    )
    .await;
}
