//! ZooKeeper conformance through an independent client (the `zookeeper-client` crate): every
//! operation, its error codes, ephemerals, sequential names, watches, multi, chroot and ACLs.

mod common;

use std::time::Duration;

use common::{connect, standalone};
use zk::{Acls, AddWatchMode, CreateMode, EventType};
use zookeeper_client as zk;

fn persistent() -> zk::CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

fn ephemeral() -> zk::CreateOptions<'static> {
    CreateMode::Ephemeral.with_acls(Acls::anyone_all())
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

#[tokio::test]
async fn create_get_set_delete_with_stats_and_errors() {
    let node = standalone("").await;
    let c = connect(&node.connect_string()).await;

    let (stat, _) = c.create("/app", b"v1", &persistent()).await.unwrap();
    assert_eq!(
        (
            stat.version,
            stat.cversion,
            stat.num_children,
            stat.data_length
        ),
        (0, 0, 0, 2)
    );
    assert_eq!(stat.czxid, stat.mzxid);
    assert_eq!(stat.ephemeral_owner, 0);

    let (data, got) = c.get_data("/app").await.unwrap();
    assert_eq!(data, b"v1");
    assert_eq!(got, stat);

    assert_eq!(
        c.create("/app", b"", &persistent()).await.unwrap_err(),
        zk::Error::NodeExists
    );
    assert_eq!(
        c.create("/missing/child", b"", &persistent())
            .await
            .unwrap_err(),
        zk::Error::NoNode
    );
    assert_eq!(c.get_data("/nope").await.unwrap_err(), zk::Error::NoNode);
    assert_eq!(c.check_stat("/nope").await.unwrap(), None);

    let s1 = c.set_data("/app", b"v2", Some(0)).await.unwrap();
    assert_eq!(s1.version, 1);
    assert!(s1.mzxid > stat.mzxid);
    assert_eq!(s1.czxid, stat.czxid);
    assert_eq!(
        c.set_data("/app", b"v3", Some(0)).await.unwrap_err(),
        zk::Error::BadVersion
    );
    assert_eq!(c.set_data("/app", b"v3", None).await.unwrap().version, 2);

    c.create("/app/child", b"", &persistent()).await.unwrap();
    let parent = c.check_stat("/app").await.unwrap().unwrap();
    assert_eq!((parent.num_children, parent.cversion), (1, 1));
    assert_eq!(
        c.delete("/app", None).await.unwrap_err(),
        zk::Error::NotEmpty
    );
    assert_eq!(
        c.delete("/app/child", Some(5)).await.unwrap_err(),
        zk::Error::BadVersion
    );
    c.delete("/app/child", Some(0)).await.unwrap();
    let parent2 = c.check_stat("/app").await.unwrap().unwrap();
    assert_eq!((parent2.num_children, parent2.cversion), (0, 2));
    assert!(parent2.pzxid > parent.pzxid);
    c.delete("/app", None).await.unwrap();
    assert_eq!(
        c.list_children("/").await.unwrap(),
        vec!["zookeeper".to_string()]
    );
}

#[tokio::test]
async fn sequential_nodes_get_ten_digit_suffixes_from_the_parent_cversion() {
    let node = standalone("").await;
    let c = connect(&node.connect_string()).await;
    c.create("/q", b"", &persistent()).await.unwrap();
    c.create("/q/other", b"", &persistent()).await.unwrap();
    let seq = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
    let (_, s1) = c.create("/q/item-", b"", &seq).await.unwrap();
    let (_, s2) = c.create("/q/item-", b"", &seq).await.unwrap();
    assert_eq!((s1.into_i64(), s2.into_i64()), (1, 2));
    let mut children = c.list_children("/q").await.unwrap();
    children.sort();
    assert_eq!(
        children,
        vec!["item-0000000001", "item-0000000002", "other"]
    );
}

#[tokio::test]
async fn ephemerals_belong_to_their_session_and_vanish_when_it_closes() {
    let node = standalone("").await;
    let a = connect(&node.connect_string()).await;
    let b = connect(&node.connect_string()).await;
    let (stat, _) = a.create("/eph", b"", &ephemeral()).await.unwrap();
    assert_eq!(stat.ephemeral_owner, a.session_id().0);
    assert_eq!(
        a.create("/eph/child", b"", &persistent())
            .await
            .unwrap_err(),
        zk::Error::NoChildrenForEphemerals
    );
    assert_eq!(
        a.list_ephemerals("/").await.unwrap(),
        vec!["/eph".to_string()]
    );
    assert!(b.list_ephemerals("/").await.unwrap().is_empty());

    let (_, watcher) = b.check_and_watch_stat("/eph").await.unwrap();
    drop(a); // closes the session
    let event = within("NodeDeleted", watcher.changed()).await;
    assert_eq!(event.event_type, EventType::NodeDeleted);
    assert_eq!(b.check_stat("/eph").await.unwrap(), None);
}

#[tokio::test]
async fn an_abandoned_session_expires_and_its_ephemerals_go() {
    let node = standalone("").await;
    let watcher_client = connect(&node.connect_string()).await;
    let doomed = zk::Client::connector()
        .with_session_timeout(Duration::from_millis(300))
        .with_detached()
        .connect(&node.connect_string())
        .await
        .unwrap();
    doomed.create("/lease", b"", &ephemeral()).await.unwrap();
    let (_, w) = watcher_client.check_and_watch_stat("/lease").await.unwrap();
    let session = doomed.session().clone();
    // Detached: dropping the client neither pings nor closes; the server must expire it.
    drop(doomed);
    let event = within("expiry", w.changed()).await;
    assert_eq!(event.event_type, EventType::NodeDeleted);
    let again = zk::Client::connector()
        .with_session(session)
        .connect(&node.connect_string())
        .await;
    assert!(matches!(again, Err(zk::Error::SessionExpired)), "{again:?}");
}

#[tokio::test]
async fn a_session_survives_reconnection_with_its_ephemerals() {
    let node = standalone("").await;
    let a = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(5))
        .with_detached()
        .connect(&node.connect_string())
        .await
        .unwrap();
    a.create("/keep", b"", &ephemeral()).await.unwrap();
    let session = a.session().clone();
    let id = a.session_id();
    drop(a);
    let b = zk::Client::connector()
        .with_session(session)
        .connect(&node.connect_string())
        .await
        .unwrap();
    assert_eq!(b.session_id(), id);
    assert_eq!(
        b.check_stat("/keep")
            .await
            .unwrap()
            .unwrap()
            .ephemeral_owner,
        id.0
    );
}

#[tokio::test]
async fn one_shot_watches_fire_exactly_once() {
    let node = standalone("").await;
    let c = connect(&node.connect_string()).await;
    let w = connect(&node.connect_string()).await;
    c.create("/w", b"0", &persistent()).await.unwrap();

    let (_, _, data_watch) = w.get_and_watch_data("/w").await.unwrap();
    let (_, child_watch) = w.list_and_watch_children("/w").await.unwrap();
    let exists_watch = w.check_and_watch_stat("/w/new").await.unwrap().1;

    c.set_data("/w", b"1", None).await.unwrap();
    let e = within("data change", data_watch.changed()).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeDataChanged, "/w")
    );

    c.create("/w/new", b"", &persistent()).await.unwrap();
    let e = within("creation", exists_watch.changed()).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeCreated, "/w/new")
    );
    let e = within("child change", child_watch.changed()).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeChildrenChanged, "/w")
    );

    // Used up: another change reaches a new watch only.
    let (_, _, again) = w.get_and_watch_data("/w").await.unwrap();
    c.set_data("/w", b"2", None).await.unwrap();
    c.set_data("/w", b"3", None).await.unwrap();
    let e = within("second data change", again.changed()).await;
    assert_eq!(e.event_type, EventType::NodeDataChanged);
}

#[tokio::test]
async fn persistent_and_recursive_watches_fire_repeatedly() {
    let node = standalone("").await;
    let c = connect(&node.connect_string()).await;
    let w = connect(&node.connect_string()).await;
    c.create("/p", b"", &persistent()).await.unwrap();
    let mut persistent_w = w.watch("/p", AddWatchMode::Persistent).await.unwrap();
    // One (session, path) holds one mode per table in 3.8, so the subtree is watched from a
    // second client.
    let w2 = connect(&node.connect_string()).await;
    let mut rec = w2
        .watch("/p", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();

    for i in 0..3 {
        c.set_data("/p", format!("{i}").as_bytes(), None)
            .await
            .unwrap();
        let e = within("persistent data change", persistent_w.changed()).await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeDataChanged, "/p")
        );
        let e = within("recursive data change", rec.changed()).await;
        assert_eq!(e.event_type, EventType::NodeDataChanged);
    }
    c.create("/p/a", b"", &persistent()).await.unwrap();
    c.create("/p/a/b", b"", &persistent()).await.unwrap();
    let e = within("persistent child change", persistent_w.changed()).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeChildrenChanged, "/p")
    );
    let e1 = within("recursive create 1", rec.changed()).await;
    let e2 = within("recursive create 2", rec.changed()).await;
    assert_eq!(
        (e1.event_type, e1.path.as_str()),
        (EventType::NodeCreated, "/p/a")
    );
    assert_eq!(
        (e2.event_type, e2.path.as_str()),
        (EventType::NodeCreated, "/p/a/b")
    );
}

#[tokio::test]
async fn multi_is_all_or_nothing_with_per_op_results() {
    let node = standalone("").await;
    let c = connect(&node.connect_string()).await;
    c.create("/m", b"", &persistent()).await.unwrap();

    let mut ok = c.new_multi_writer();
    ok.add_create("/m/a", b"a", &persistent()).unwrap();
    ok.add_set_data("/m", b"x", Some(0)).unwrap();
    ok.add_check_version("/m/a", 0).unwrap();
    let results = ok.commit().await.unwrap();
    assert_eq!(results.len(), 3);
    assert!(matches!(results[2], zk::MultiWriteResult::Check));

    let mut bad = c.new_multi_writer();
    bad.add_create("/m/b", b"", &persistent()).unwrap();
    bad.add_delete("/m/a", Some(7)).unwrap(); // wrong version: fails
    bad.add_set_data("/m", b"y", None).unwrap();
    match bad.commit().await {
        Err(zk::MultiWriteError::OperationFailed { index, source }) => {
            assert_eq!((index, source), (1, zk::Error::BadVersion));
        }
        other => panic!("expected op 1 to fail, got {other:?}"),
    }
    assert_eq!(
        c.check_stat("/m/b").await.unwrap(),
        None,
        "nothing of a failed multi applies"
    );
    assert_eq!(c.get_data("/m").await.unwrap().0, b"x");

    let mut reads = c.new_multi_reader();
    reads.add_get_data("/m/a").unwrap();
    reads.add_get_children("/m").unwrap();
    reads.add_get_data("/m/none").unwrap();
    let r = reads.commit().await.unwrap();
    assert!(matches!(&r[0], zk::MultiReadResult::Data { data, .. } if data == b"a"));
    assert!(
        matches!(&r[1], zk::MultiReadResult::Children { children } if children == &vec!["a".to_string()])
    );
    assert!(matches!(
        &r[2],
        zk::MultiReadResult::Error {
            err: zk::Error::NoNode
        }
    ));
}

#[tokio::test]
async fn chroot_confines_a_client_to_a_subtree() {
    let node = standalone("").await;
    let root = connect(&node.connect_string()).await;
    root.create("/kafka", b"", &persistent()).await.unwrap();
    let chrooted = connect(&format!("{}/kafka", node.connect_string())).await;
    chrooted
        .create("/brokers", b"", &persistent())
        .await
        .unwrap();
    assert_eq!(
        root.list_children("/kafka").await.unwrap(),
        vec!["brokers".to_string()]
    );
    assert_eq!(
        chrooted.list_children("/").await.unwrap(),
        vec!["brokers".to_string()]
    );
}

#[tokio::test]
async fn digest_acls_are_enforced() {
    let node = standalone("").await;
    let owner = zk::Client::connector()
        .with_auth("digest", b"alice:secret")
        .connect(&node.connect_string())
        .await
        .unwrap();
    let creator_only = CreateMode::Persistent.with_acls(Acls::creator_all());
    owner.create("/private", b"s", &creator_only).await.unwrap();
    let (acl, _) = owner.get_acl("/private").await.unwrap();
    assert_eq!(acl.len(), 1);
    assert_eq!(acl[0].scheme(), "digest");
    assert!(acl[0].id().starts_with("alice:"));

    let stranger = connect(&node.connect_string()).await;
    assert_eq!(
        stranger.get_data("/private").await.unwrap_err(),
        zk::Error::NoAuth
    );
    assert_eq!(
        stranger.set_data("/private", b"x", None).await.unwrap_err(),
        zk::Error::NoAuth
    );
    stranger.auth("digest", b"alice:secret").await.unwrap();
    assert_eq!(stranger.get_data("/private").await.unwrap().0, b"s");
    let users = stranger.list_auth_users().await.unwrap();
    assert!(
        users
            .iter()
            .any(|u| u.scheme() == "digest" && u.user() == "alice"),
        "{users:?}"
    );
    let anon = connect(&node.connect_string()).await;
    assert_eq!(
        anon.create(
            "/x",
            b"",
            &CreateMode::Persistent.with_acls(Acls::creator_all())
        )
        .await
        .unwrap_err(),
        zk::Error::InvalidAcl
    );
}

#[tokio::test]
async fn counts_sync_and_whoami() {
    let node = standalone("").await;
    let c = connect(&node.connect_string()).await;
    c.create("/n", b"", &persistent()).await.unwrap();
    c.create("/n/a", b"", &persistent()).await.unwrap();
    c.create("/n/a/b", b"", &persistent()).await.unwrap();
    assert_eq!(c.count_descendants_number("/n").await.unwrap(), 2);
    c.sync("/n").await.unwrap();
    let users = c.list_auth_users().await.unwrap();
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0].scheme(), "ip");
}

#[tokio::test]
async fn containers_and_ttl_need_their_switch() {
    let node = standalone("").await;
    let c = connect(&node.connect_string()).await;
    let (stat, _) = c
        .create(
            "/c",
            b"",
            &CreateMode::Container.with_acls(Acls::anyone_all()),
        )
        .await
        .unwrap();
    // ZooKeeper shows containers and TTL nodes with owner 0 (getClientEphemeralOwner).
    assert_eq!(stat.ephemeral_owner, 0);
    let ttl = CreateMode::Persistent
        .with_acls(Acls::anyone_all())
        .with_ttl(Duration::from_secs(60));
    assert_eq!(
        c.create("/t", b"", &ttl).await.unwrap_err(),
        zk::Error::Unimplemented
    );

    let node = standalone("extendedTypesEnabled=true\n").await;
    let c = connect(&node.connect_string()).await;
    let (stat, _) = c.create("/t", b"", &ttl).await.unwrap();
    assert_eq!(stat.ephemeral_owner, 0);
    assert!(c.check_stat("/t").await.unwrap().is_some());
}

#[tokio::test]
async fn an_unknown_auth_scheme_fails_cleanly() {
    let node = standalone("").await;
    let c = connect(&node.connect_string()).await;
    let err = tokio::time::timeout(Duration::from_secs(10), c.auth("kerberos", b"x"))
        .await
        .expect("the failure must be reported, not retried forever");
    assert!(err.is_err(), "{err:?}");
    // The node is fine for everyone else.
    let other = connect(&node.connect_string()).await;
    other
        .create("/after-auth-failure", b"", &persistent())
        .await
        .unwrap();
}
