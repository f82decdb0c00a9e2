//! Writes through every member of an ensemble at once. A follower forwards its batch of writes
//! to the leader, which merges it into its own next log entry and hands each forwarded batch its
//! share of the results: these tests check that every client gets the answer to its own request,
//! in its own order, whichever member it writes through.

mod common;

use std::time::Duration;

use common::{connect, ensemble};
use zookeeper_client as zk;

fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

const CLIENTS_PER_MEMBER: usize = 2;
const WRITES: i32 = 300;

/// Six clients, two on each member of three, each pipelining 300 conditional sets on its own
/// znode: every set names the version the one before it produced, so a write applied out of its
/// session's order fails with BadVersion, and a reply carrying another command's result shows as
/// a wrong version or a zxid out of order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_writes_through_every_member_keep_their_order_and_their_own_results() {
    let e = ensemble(3).await;
    let setup = connect(&e.connect_string()).await;
    setup.create("/order", b"", &persistent()).await.unwrap();

    let mut tasks = Vec::new();
    for member in 0..3 {
        for c in 0..CLIENTS_PER_MEMBER {
            let addr = e.node(member).client_addr().to_string();
            tasks.push(tokio::spawn(async move {
                let client = connect(&addr).await;
                let path = format!("/order/m{member}c{c}");
                client.create(&path, b"", &persistent()).await.unwrap();
                // Sent in call order, all before the first answer comes back.
                let sets: Vec<_> = (0..WRITES)
                    .map(|k| client.set_data(&path, k.to_string().as_bytes(), Some(k)))
                    .collect();
                let mut last_zxid = 0;
                for (k, set) in sets.into_iter().enumerate() {
                    let stat = tokio::time::timeout(Duration::from_secs(60), set)
                        .await
                        .unwrap_or_else(|_| panic!("{path}: set {k} unanswered after 60 s"))
                        .unwrap_or_else(|err| panic!("{path}: set {k} failed: {err}"));
                    assert_eq!(
                        stat.version,
                        k as i32 + 1,
                        "{path}: set {k} got another's stat"
                    );
                    assert!(
                        stat.mzxid > last_zxid,
                        "{path}: set {k} zxid {:#x} not after {last_zxid:#x}",
                        stat.mzxid
                    );
                    last_zxid = stat.mzxid;
                }
                path
            }));
        }
    }
    let mut paths = Vec::new();
    for t in tasks {
        paths.push(t.await.unwrap());
    }

    // Every member holds the last value of every znode.
    for member in 0..3 {
        let reader = connect(&e.node(member).client_addr().to_string()).await;
        reader.sync("/order").await.unwrap();
        for path in &paths {
            let (data, stat) = reader.get_data(path).await.unwrap();
            assert_eq!(
                data,
                (WRITES - 1).to_string().as_bytes(),
                "{path} on member {member}"
            );
            assert_eq!(stat.version, WRITES, "{path} on member {member}");
        }
    }
}

/// Sequential creates through all three members at once: each client's names come back in the
/// order it asked, and no two clients are given the same name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_creates_through_every_member_get_distinct_increasing_names() {
    let e = ensemble(3).await;
    let setup = connect(&e.connect_string()).await;
    setup.create("/seq", b"", &persistent()).await.unwrap();
    let seq = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());

    let mut tasks = Vec::new();
    for member in 0..3 {
        let addr = e.node(member).client_addr().to_string();
        let seq = seq.clone();
        tasks.push(tokio::spawn(async move {
            let client = connect(&addr).await;
            let creates: Vec<_> = (0..200)
                .map(|k| client.create("/seq/n-", format!("{member}:{k}").as_bytes(), &seq))
                .collect();
            let mut names = Vec::new();
            for create in creates {
                let (_, sequence) = create.await.unwrap();
                names.push(sequence.into_i64());
            }
            assert!(
                names.windows(2).all(|w| w[0] < w[1]),
                "member {member}: sequence numbers out of order: {names:?}"
            );
            names
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let count = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), count, "a sequence number was given twice");

    // Each node's data names the client and the request that created it.
    let reader = connect(&e.connect_string()).await;
    reader.sync("/seq").await.unwrap();
    let children = reader.get_children("/seq").await.unwrap().0;
    assert_eq!(children.len(), 600);
}
