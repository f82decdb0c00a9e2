//! Unit and property tests of the znode tree against ZooKeeper 3.8's behaviour.

use proptest::prelude::*;
use sluice_jute::{perms, Acl, CreateMode, ErrorCode, EventType, Id, Stat};

use super::acl::generate_digest;
use super::*;

const SESSION: i64 = 0x0100_0000_0000_0001;

fn id(scheme: &str, i: &str) -> Id {
    Id {
        scheme: scheme.into(),
        id: i.into(),
    }
}

fn acl(p: i32, scheme: &str, i: &str) -> Acl {
    Acl {
        perms: p,
        id: id(scheme, i),
    }
}

fn tx(zxid: i64) -> TxnContext<'static> {
    TxnContext {
        session_id: SESSION,
        auth: &[],
        zxid,
        time_ms: zxid * 1000,
    }
}

fn tx_as(zxid: i64, auth: &[Id]) -> TxnContext<'_> {
    TxnContext {
        session_id: SESSION,
        auth,
        zxid,
        time_ms: zxid * 1000,
    }
}

fn mk(t: &mut Tree, zxid: i64, path: &str, mode: CreateMode) -> Result<String, ErrorCode> {
    t.create(&tx(zxid), &CreateOp::new(path, b"d".to_vec(), mode))
        .map(|((p, _), _)| p)
}

/// `approximateDataSize` counted afresh from every node, to check the kept figure against.
fn recount_data_size(t: &Tree) -> u64 {
    let mut size = 0;
    t.for_each_node(|n| size += (n.path.len() + n.data.map_or(0, <[u8]>::len)) as u64);
    size
}

type NodeDump = (String, Option<Vec<u8>>, Vec<Acl>, PersistedStat, Stat);
type IndexDump = (Vec<(i64, Vec<String>)>, Vec<String>, Vec<String>);

/// Everything observable about a tree, for before/after comparisons.
fn dump(t: &Tree) -> Vec<NodeDump> {
    let mut v = Vec::new();
    t.for_each_node(|n| {
        v.push((
            n.path.to_owned(),
            n.data.map(<[u8]>::to_vec),
            n.acl.to_vec(),
            n.stat,
            t.stat(n.path).unwrap(),
        ))
    });
    v
}

fn index_dump(t: &Tree) -> IndexDump {
    let eph = t
        .ephemeral_owners()
        .map(|s| (s, t.get_ephemerals(s, "")))
        .collect();
    let containers = t.containers.iter().map(|p| p.to_string()).collect();
    let ttls = t.ttls.iter().map(|p| p.to_string()).collect();
    (eph, containers, ttls)
}

#[test]
fn fresh_tree_matches_zookeeper() {
    // A fresh ZooKeeper 3.8 answers zk_approximate_data_size 44.
    assert_eq!(Tree::new().approximate_data_size(), 44);
    let t = Tree::new();
    assert_eq!(t.node_count(), 4);
    // ... and zk_znode_count 5 (its node map holds the root as "" and as "/").
    assert_eq!(t.zookeeper_node_count(), 5);
    assert_eq!(t.ephemeral_count(), 0);
    let root = t.stat("/").unwrap();
    assert_eq!(root.num_children, 1);
    // Children added without counting: 0 * 2 - 1.
    assert_eq!(root.cversion, -1);
    assert_eq!(root.czxid, 0);
    assert_eq!(t.stat("/zookeeper").unwrap().cversion, -2);
    let (children, _) = t.get_children("/zookeeper", &[]).unwrap();
    assert_eq!(children, ["config", "quota"]);
    let (acl, _) = t.get_acl("/zookeeper/config", &[]).unwrap();
    assert_eq!(acl, vec![super::acl::read_acl_unsafe()[0].clone()]);
    assert_eq!(t.get_acl("/", &[]).unwrap().0, Acl::open_unsafe());
    // "" is the root's alias, as in ZooKeeper's node map.
    assert_eq!(t.stat(""), t.stat("/"));
}

#[test]
fn special_nodes_resist_change() {
    let mut t = Tree::new();
    for p in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        assert_eq!(t.delete(&tx(1), p, -1), Err(ErrorCode::BadArguments), "{p}");
    }
    // /zookeeper/config is READ-only for everyone but super.
    assert_eq!(
        t.set_data(&tx(1), "/zookeeper/config", Some(b"x".as_slice()), -1)
            .map(|_| ()),
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(
        t.set_acl(&tx(1), "/zookeeper/config", &Acl::open_unsafe(), -1)
            .map(|_| ()),
        Err(ErrorCode::NoAuth)
    );
    let su = [id("super", "")];
    assert!(t
        .set_data(
            &tx_as(2, &su),
            "/zookeeper/config",
            Some(b"x".as_slice()),
            -1
        )
        .is_ok());
    // The others are ordinary open nodes otherwise.
    assert!(t
        .set_data(&tx(3), "/zookeeper", Some(b"y".as_slice()), -1)
        .is_ok());
    assert_eq!(
        mk(&mut t, 4, "/zookeeper/quota/app", CreateMode::Persistent).as_deref(),
        Ok("/zookeeper/quota/app")
    );
    assert_eq!(
        mk(&mut t, 5, "/", CreateMode::Persistent),
        Err(ErrorCode::NodeExists)
    );
}

#[test]
fn create_sets_stats_and_triggers() {
    let mut t = Tree::new();
    let op = CreateOp::new("/a", b"hello".to_vec(), CreateMode::Persistent);
    let ((path, stat), triggers) = t.create(&tx(7), &op).unwrap();
    assert_eq!(path, "/a");
    assert_eq!(
        stat,
        Stat {
            czxid: 7,
            mzxid: 7,
            ctime: 7000,
            mtime: 7000,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 0,
            data_length: 5,
            num_children: 0,
            pzxid: 7,
        }
    );
    assert_eq!(t.stat("/a"), Some(stat));
    let root = t.stat("/").unwrap();
    assert_eq!(root.pzxid, 7);
    assert_eq!(root.num_children, 2);
    // Persisted cversion 1, two children: 1 * 2 - 2.
    assert_eq!(root.cversion, 0);
    assert_eq!(t.persisted_stat("/").unwrap().cversion, 1);
    let kinds: Vec<_> = triggers
        .iter()
        .map(|t| (t.path.as_str(), t.event))
        .collect();
    assert_eq!(
        kinds,
        [
            ("/a", EventType::NodeCreated),
            ("/", EventType::NodeChildrenChanged)
        ]
    );
    let (data, s) = t.get_data("/a", &[]).unwrap();
    assert_eq!((data, s), (Some(&b"hello"[..]), stat));
}

#[test]
fn create_errors_in_zookeeper_order() {
    let mut t = Tree::new();
    mk(&mut t, 1, "/a", CreateMode::Persistent).unwrap();
    assert_eq!(
        mk(&mut t, 2, "/a", CreateMode::Persistent),
        Err(ErrorCode::NodeExists)
    );
    assert_eq!(
        mk(&mut t, 2, "/x/y", CreateMode::Persistent),
        Err(ErrorCode::NoNode)
    );
    // No slash at all, or a NUL: BadArguments before anything else.
    assert_eq!(
        mk(&mut t, 2, "a", CreateMode::Persistent),
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        mk(&mut t, 2, "/a\0", CreateMode::Persistent),
        Err(ErrorCode::BadArguments)
    );
    // The parent is looked up before the full path is validated (ZooKeeper's order).
    assert_eq!(
        mk(&mut t, 2, "a/b", CreateMode::Persistent),
        Err(ErrorCode::NoNode)
    );
    assert_eq!(
        mk(&mut t, 2, "/zz/", CreateMode::Persistent),
        Err(ErrorCode::NoNode)
    );
    assert_eq!(
        mk(&mut t, 2, "/a/", CreateMode::Persistent),
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        mk(&mut t, 2, "/a/.", CreateMode::Persistent),
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        mk(&mut t, 2, "//a", CreateMode::Persistent),
        Err(ErrorCode::BadArguments)
    );
    // Invalid ACL is reported before a missing parent.
    let mut op = CreateOp::new("/x/y", vec![], CreateMode::Persistent);
    op.acl.clear();
    assert_eq!(
        t.create(&tx(2), &op).map(|_| ()),
        Err(ErrorCode::InvalidAcl)
    );
    // Ephemeral parents take no children.
    mk(&mut t, 3, "/e", CreateMode::Ephemeral).unwrap();
    assert_eq!(
        mk(&mut t, 4, "/e/c", CreateMode::Persistent),
        Err(ErrorCode::NoChildrenForEphemerals)
    );
    // An existing ephemeral is still NodeExists.
    assert_eq!(
        mk(&mut t, 4, "/e", CreateMode::Persistent),
        Err(ErrorCode::NodeExists)
    );
    // CREATE permission on the parent.
    let mut op = CreateOp::new("/ro", vec![], CreateMode::Persistent);
    op.acl = vec![acl(perms::READ, "world", "anyone")];
    t.create(&tx(5), &op).unwrap();
    assert_eq!(
        mk(&mut t, 6, "/ro/c", CreateMode::Persistent),
        Err(ErrorCode::NoAuth)
    );
    // Nothing of the failures left a trace.
    assert_eq!(t.node_count(), 7);
}

#[test]
fn ttl_validation() {
    let mut t = Tree::new();
    let mut op = CreateOp::new("/t", vec![], CreateMode::PersistentWithTtl);
    for bad in [-1, 0, MAX_TTL_MS + 1] {
        op.ttl = bad;
        assert_eq!(
            t.create(&tx(1), &op).map(|_| ()),
            Err(ErrorCode::BadArguments),
            "{bad}"
        );
    }
    // A TTL on a non-TTL mode is refused too.
    let mut p = CreateOp::new("/p", vec![], CreateMode::Persistent);
    p.ttl = 0;
    assert_eq!(
        t.create(&tx(1), &p).map(|_| ()),
        Err(ErrorCode::BadArguments)
    );
    op.ttl = MAX_TTL_MS;
    assert!(t.create(&tx(1), &op).is_ok());
}

#[test]
fn sequential_names_use_parent_cversion() {
    let mut t = Tree::new();
    mk(&mut t, 1, "/q", CreateMode::Persistent).unwrap();
    assert_eq!(
        mk(&mut t, 2, "/q/n-", CreateMode::PersistentSequential).unwrap(),
        "/q/n-0000000000"
    );
    assert_eq!(
        mk(&mut t, 3, "/q/n-", CreateMode::EphemeralSequential).unwrap(),
        "/q/n-0000000001"
    );
    t.delete(&tx(4), "/q/n-0000000001", -1).unwrap();
    // Deletes do not move the persisted cversion, so numbers are never reused.
    assert_eq!(
        mk(&mut t, 5, "/q/", CreateMode::PersistentSequential).unwrap(),
        "/q/0000000002"
    );
    mk(&mut t, 6, "/q/plain", CreateMode::Persistent).unwrap();
    assert_eq!(
        mk(&mut t, 7, "/q/x", CreateMode::PersistentSequential).unwrap(),
        "/q/x0000000004"
    );
    // Root level: the root's persisted cversion starts at 0 despite /zookeeper.
    assert_eq!(
        mk(&mut t, 8, "/", CreateMode::PersistentSequential).unwrap(),
        "/0000000001"
    );
    let mut ttl = CreateOp::new("/q/t", vec![], CreateMode::PersistentSequentialWithTtl);
    ttl.ttl = 100;
    assert_eq!(t.create(&tx(9), &ttl).unwrap().0 .0, "/q/t0000000005");
}

#[test]
fn delete_rules_and_stats() {
    let mut t = Tree::new();
    mk(&mut t, 1, "/a", CreateMode::Persistent).unwrap();
    mk(&mut t, 2, "/a/b", CreateMode::Persistent).unwrap();
    mk(&mut t, 3, "/a/c", CreateMode::Persistent).unwrap();
    assert_eq!(t.delete(&tx(4), "/a", -1), Err(ErrorCode::NotEmpty));
    assert_eq!(t.delete(&tx(4), "/a/zz", -1), Err(ErrorCode::NoNode));
    assert_eq!(t.delete(&tx(4), "/zz/a", -1), Err(ErrorCode::NoNode));
    assert_eq!(t.delete(&tx(4), "/a/b", 3), Err(ErrorCode::BadVersion));
    assert_eq!(t.delete(&tx(4), "a", -1), Err(ErrorCode::BadArguments));
    assert_eq!(t.delete(&tx(4), "/a\0", -1), Err(ErrorCode::BadArguments));
    t.set_data(&tx(4), "/a/b", Some(b"x".as_slice()), -1)
        .unwrap();
    let before = t.stat("/a").unwrap();
    assert_eq!(before.cversion, 2);
    let triggers = t.delete(&tx(5), "/a/b", 1).unwrap();
    let kinds: Vec<_> = triggers
        .iter()
        .map(|t| (t.path.as_str(), t.event))
        .collect();
    assert_eq!(
        kinds,
        [
            ("/a/b", EventType::NodeDeleted),
            ("/a", EventType::NodeChildrenChanged)
        ]
    );
    let after = t.stat("/a").unwrap();
    assert_eq!(after.pzxid, 5);
    assert_eq!(after.num_children, 1);
    // Two creates and one delete: 2 * 2 - 1.
    assert_eq!(after.cversion, 3);
    assert_eq!(t.persisted_stat("/a").unwrap().cversion, 2);
    assert_eq!(after.mzxid, before.mzxid);
    assert!(t.stat("/a/b").is_none());
    t.delete(&tx(6), "/a/c", -1).unwrap();
    t.delete(&tx(7), "/a", 0).unwrap();
    assert_eq!(t.node_count(), 4);
}

#[test]
fn set_data_versions() {
    let mut t = Tree::new();
    mk(&mut t, 1, "/a", CreateMode::Persistent).unwrap();
    let (s1, trig) = t
        .set_data(&tx(2), "/a", Some(b"one".as_slice()), 0)
        .unwrap();
    assert_eq!(
        (s1.version, s1.mzxid, s1.mtime, s1.ctime, s1.czxid),
        (1, 2, 2000, 1000, 1)
    );
    assert_eq!(s1.data_length, 3);
    assert_eq!(trig.len(), 1);
    assert_eq!(
        (trig[0].path.as_str(), trig[0].event),
        ("/a", EventType::NodeDataChanged)
    );
    assert_eq!(
        t.set_data(&tx(3), "/a", Some(b"two".as_slice()), 0)
            .map(|_| ()),
        Err(ErrorCode::BadVersion)
    );
    let (s2, _) = t.set_data(&tx(3), "/a", Some(b"".as_slice()), -1).unwrap();
    assert_eq!((s2.version, s2.data_length, s2.pzxid), (2, 0, 1));
    assert_eq!(
        t.set_data(&tx(4), "/nope", Some(b"".as_slice()), -1)
            .map(|_| ()),
        Err(ErrorCode::NoNode)
    );
    assert_eq!(
        t.set_data(&tx(4), "/a/", Some(b"".as_slice()), -1)
            .map(|_| ()),
        Err(ErrorCode::BadArguments)
    );
    // Version wraps like Java's int.
    t.nodes.get_mut("/a").unwrap().stat.version = i32::MAX;
    assert_eq!(
        t.set_data(&tx(5), "/a", Some(b"".as_slice()), i32::MAX)
            .unwrap()
            .0
            .version,
        i32::MIN
    );
}

#[test]
fn set_acl_and_get_acl() {
    let mut t = Tree::new();
    let bob = generate_digest("bob:pw");
    let bob_id = [id("digest", &bob)];
    let mut op = CreateOp::new("/s", vec![], CreateMode::Persistent);
    op.acl = vec![
        acl(perms::READ, "world", "anyone"),
        acl(perms::ALL, "digest", &bob),
    ];
    t.create(&tx(1), &op).unwrap();
    // READ but not ADMIN: digest ids are masked.
    let (masked, _) = t.get_acl("/s", &[]).unwrap();
    assert_eq!(masked[1].id.id, "bob:x");
    let (full, _) = t.get_acl("/s", &bob_id).unwrap();
    assert_eq!(full[1].id.id, bob);
    // setACL needs ADMIN.
    let open = Acl::open_unsafe();
    assert_eq!(t.set_acl(&tx(2), "/s", &open, -1), Err(ErrorCode::NoAuth));
    assert_eq!(
        t.set_acl(&tx_as(2, &bob_id), "/s", &open, 5),
        Err(ErrorCode::BadVersion)
    );
    assert_eq!(
        t.set_acl(&tx_as(2, &bob_id), "/s", &[], -1),
        Err(ErrorCode::InvalidAcl)
    );
    assert_eq!(
        t.set_acl(&tx_as(2, &bob_id), "/nope", &open, -1),
        Err(ErrorCode::NoNode)
    );
    assert_eq!(
        t.set_acl(&tx_as(2, &bob_id), "/s/", &open, -1),
        Err(ErrorCode::BadArguments)
    );
    let stat = t.set_acl(&tx_as(2, &bob_id), "/s", &open, 0).unwrap();
    assert_eq!((stat.aversion, stat.version, stat.mzxid), (1, 0, 1));
    assert_eq!(t.get_acl("/s", &[]).unwrap().0, open);
    // Neither READ nor ADMIN: NoAuth.
    let mut op = CreateOp::new("/w", vec![], CreateMode::Persistent);
    op.acl = vec![acl(perms::WRITE, "world", "anyone")];
    t.create(&tx(3), &op).unwrap();
    assert_eq!(t.get_acl("/w", &[]).map(|_| ()), Err(ErrorCode::NoAuth));
    // ADMIN alone is enough for getACL.
    let mut op = CreateOp::new("/adm", vec![], CreateMode::Persistent);
    op.acl = vec![acl(perms::ADMIN, "world", "anyone")];
    t.create(&tx(4), &op).unwrap();
    assert!(t.get_acl("/adm", &[]).is_ok());
}

#[test]
fn acl_enforcement_on_reads_and_writes() {
    let mut t = Tree::new();
    let alice = generate_digest("alice:secret");
    let alice_ids = [id("ip", "10.0.0.5"), id("digest", &alice)];
    // `auth` expands to the caller's digest ids (ip does not count).
    let mut op = CreateOp::new("/priv", b"x".to_vec(), CreateMode::Persistent);
    op.acl = vec![acl(perms::ALL, "auth", "")];
    assert_eq!(
        t.create(&tx_as(1, &[id("ip", "10.0.0.5")]), &op)
            .map(|_| ()),
        Err(ErrorCode::InvalidAcl)
    );
    t.create(&tx_as(1, &alice_ids), &op).unwrap();
    assert_eq!(
        t.get_acl("/priv", &alice_ids).unwrap().0,
        vec![acl(perms::ALL, "digest", &alice)]
    );
    // Others cannot read, write, list, count, check or create below it.
    let eve = [id("digest", &generate_digest("eve:x"))];
    assert_eq!(
        t.get_data("/priv", &eve).map(|_| ()),
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(
        t.get_children("/priv", &eve).map(|_| ()),
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(
        t.get_all_children_number("/priv", &eve),
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(t.exists("/priv", &eve), Err(ErrorCode::NoAuth));
    assert_eq!(t.check("/priv", -1, &eve), Err(ErrorCode::NoAuth));
    assert_eq!(
        t.set_data(&tx_as(2, &eve), "/priv", Some(b"y".as_slice()), -1)
            .map(|_| ()),
        Err(ErrorCode::NoAuth)
    );
    let child = CreateOp::new("/priv/c", vec![], CreateMode::Persistent);
    assert_eq!(
        t.create(&tx_as(2, &eve), &child).map(|_| ()),
        Err(ErrorCode::NoAuth)
    );
    // Alice and super can.
    assert!(t.get_data("/priv", &alice_ids).is_ok());
    assert!(t.get_data("/priv", &[id("super", "")]).is_ok());
    t.create(&tx_as(3, &alice_ids), &child).unwrap();
    // Delete needs DELETE on the parent, not on the node.
    assert_eq!(
        t.delete(&tx_as(4, &eve), "/priv/c", -1),
        Err(ErrorCode::NoAuth)
    );
    assert!(t.delete(&tx_as(4, &alice_ids), "/priv/c", -1).is_ok());
    // ip ACLs with a prefix length.
    let mut op = CreateOp::new("/net", vec![], CreateMode::Persistent);
    op.acl = vec![acl(perms::ALL, "ip", "10.0.0.0/8")];
    t.create(&tx(5), &op).unwrap();
    assert!(t.get_data("/net", &[id("ip", "10.9.9.9")]).is_ok());
    assert_eq!(
        t.get_data("/net", &[id("ip", "11.0.0.1")]).map(|_| ()),
        Err(ErrorCode::NoAuth)
    );
    // NoNode is reported before NoAuth for reads.
    assert_eq!(
        t.get_data("/none", &eve).map(|_| ()),
        Err(ErrorCode::NoNode)
    );
}

#[test]
fn exists_semantics() {
    let mut t = Tree::new();
    assert_eq!(t.exists("/a", &[]), Ok(None));
    assert_eq!(t.exists("/a\0", &[]), Err(ErrorCode::BadArguments));
    mk(&mut t, 1, "/a", CreateMode::Persistent).unwrap();
    assert_eq!(t.exists("/a", &[]).unwrap().unwrap().czxid, 1);
}

#[test]
fn children_and_counts() {
    let mut t = Tree::new();
    mk(&mut t, 1, "/p", CreateMode::Persistent).unwrap();
    for name in ["c", "a", "b"] {
        mk(&mut t, 2, &format!("/p/{name}"), CreateMode::Persistent).unwrap();
    }
    mk(&mut t, 3, "/p/a/x", CreateMode::Persistent).unwrap();
    let (children, stat) = t.get_children("/p", &[]).unwrap();
    assert_eq!(children, ["a", "b", "c"]);
    assert_eq!(stat.num_children, 3);
    assert_eq!(t.get_all_children_number("/p", &[]), Ok(4));
    assert_eq!(t.get_all_children_number("/p/b", &[]), Ok(0));
    // All nodes but the root, /zookeeper ones included.
    assert_eq!(t.get_all_children_number("/", &[]), Ok(8));
    assert_eq!(
        t.get_all_children_number("/nope", &[]),
        Err(ErrorCode::NoNode)
    );
    assert_eq!(
        t.get_children("/nope", &[]).map(|_| ()),
        Err(ErrorCode::NoNode)
    );
}

#[test]
fn ephemerals_and_kill_session() {
    let mut t = Tree::new();
    mk(&mut t, 1, "/app", CreateMode::Persistent).unwrap();
    mk(&mut t, 2, "/app/e1", CreateMode::Ephemeral).unwrap();
    mk(&mut t, 3, "/app/e2", CreateMode::EphemeralSequential).unwrap();
    mk(&mut t, 4, "/other", CreateMode::Ephemeral).unwrap();
    let other = TxnContext {
        session_id: 99,
        ..tx(5)
    };
    t.create(
        &other,
        &CreateOp::new("/app/theirs", vec![], CreateMode::Ephemeral),
    )
    .unwrap();
    assert_eq!(t.stat("/app/e1").unwrap().ephemeral_owner, SESSION);
    assert_eq!(
        t.get_ephemerals(SESSION, ""),
        ["/app/e1", "/app/e20000000001", "/other"]
    );
    assert_eq!(
        t.get_ephemerals(SESSION, " / "),
        t.get_ephemerals(SESSION, "/")
    );
    assert_eq!(
        t.get_ephemerals(SESSION, "/app"),
        ["/app/e1", "/app/e20000000001"]
    );
    // A plain string prefix, not a path prefix.
    assert_eq!(t.get_ephemerals(SESSION, "/app/e2"), ["/app/e20000000001"]);
    assert_eq!(t.get_ephemerals(SESSION, "/x"), Vec::<String>::new());
    assert_eq!(t.get_ephemerals(12345, ""), Vec::<String>::new());
    // Nodes, not the sessions that own them (ZooKeeper's zk_ephemerals_count).
    assert_eq!(t.ephemeral_count(), 4);

    let triggers = t.kill_session(SESSION, 10);
    assert_eq!(triggers.len(), 6);
    assert!(t.stat("/app/e1").is_none() && t.stat("/other").is_none());
    assert!(t.stat("/app/theirs").is_some());
    assert_eq!(t.stat("/app").unwrap().pzxid, 10);
    assert_eq!(t.get_ephemerals(SESSION, ""), Vec::<String>::new());
    assert_eq!(t.ephemeral_owners().collect::<Vec<_>>(), [99]);
    assert_eq!(t.ephemeral_count(), 1);
    assert!(t.kill_session(SESSION, 11).is_empty());
}

#[test]
fn containers_and_ttls() {
    let mut t = Tree::new();
    mk(&mut t, 1, "/c", CreateMode::Container).unwrap();
    let mut ttl = CreateOp::new("/t", vec![], CreateMode::PersistentWithTtl);
    ttl.ttl = 5_000;
    t.create(&tx(2), &ttl).unwrap();
    // Clients see ephemeralOwner 0 for both; the stored owner carries the type.
    assert_eq!(t.stat("/c").unwrap().ephemeral_owner, 0);
    assert_eq!(t.stat("/t").unwrap().ephemeral_owner, 0);
    assert_eq!(t.persisted_stat("/c").unwrap().ephemeral_owner, i64::MIN);
    assert_eq!(
        t.persisted_stat("/t").unwrap().ephemeral_owner,
        0xff00_0000_0000_1388_u64 as i64
    );
    assert_eq!(
        EphemeralType::of(0xff00_0000_0000_1388_u64 as i64),
        EphemeralType::Ttl(5000)
    );
    // A never-used container is not a candidate (unless it is older than max_never_used).
    assert_eq!(t.reap_candidates(2_000, 0), Vec::<String>::new());
    assert_eq!(t.reap_candidates(1_000 + 60_001, 60_000), ["/c", "/t"]);
    // TTL: more than 5 s after mtime (2000).
    assert_eq!(t.reap_candidates(7_000, 0), Vec::<String>::new());
    assert_eq!(t.reap_candidates(7_001, 0), ["/t"]);
    // A container becomes a candidate once it has had a child and is empty again.
    mk(&mut t, 3, "/c/x", CreateMode::Persistent).unwrap();
    mk(&mut t, 3, "/t/x", CreateMode::Persistent).unwrap();
    assert_eq!(t.reap_candidates(100_000, 0), Vec::<String>::new());
    assert_eq!(t.reap("/c", 4, 100_000), Err(ErrorCode::NotEmpty));
    t.delete(&tx(4), "/c/x", -1).unwrap();
    t.delete(&tx(4), "/t/x", -1).unwrap();
    assert_eq!(t.reap_candidates(100_000, 0), ["/c", "/t"]);
    // setData refreshes a TTL node; reap re-checks expiry at apply time.
    t.set_data(
        &TxnContext {
            time_ms: 99_000,
            ..tx(5)
        },
        "/t",
        Some(b"".as_slice()),
        -1,
    )
    .unwrap();
    assert_eq!(t.reap("/t", 6, 100_000), Err(ErrorCode::BadVersion));
    let trig = t.reap("/c", 6, 100_000).unwrap();
    assert_eq!(trig[0].event, EventType::NodeDeleted);
    assert!(t.stat("/c").is_none());
    assert!(t.reap("/t", 7, 104_001).is_ok());
    // Plain nodes, ephemerals and special nodes are never reaped.
    mk(&mut t, 8, "/p", CreateMode::Persistent).unwrap();
    mk(&mut t, 8, "/e", CreateMode::Ephemeral).unwrap();
    assert_eq!(t.reap("/p", 9, 0), Err(ErrorCode::BadVersion));
    assert_eq!(t.reap("/e", 9, 0), Err(ErrorCode::BadVersion));
    assert_eq!(t.reap("/zookeeper", 9, 0), Err(ErrorCode::BadArguments));
    assert_eq!(t.reap("/gone", 9, 0), Err(ErrorCode::NoNode));
    assert!(t.containers.is_empty() && t.ttls.is_empty());
}

#[test]
fn check_op() {
    let mut t = Tree::new();
    mk(&mut t, 1, "/a", CreateMode::Persistent).unwrap();
    assert_eq!(t.check("/a", 0, &[]), Ok(()));
    assert_eq!(t.check("/a", -1, &[]), Ok(()));
    assert_eq!(t.check("/a", 1, &[]), Err(ErrorCode::BadVersion));
    assert_eq!(t.check("/b", 0, &[]), Err(ErrorCode::NoNode));
    assert_eq!(t.check("/b/", 0, &[]), Err(ErrorCode::BadArguments));
}

fn create_op(path: &str, mode: CreateMode) -> Op {
    Op::Create(CreateOp::new(path, b"m".to_vec(), mode))
}

#[test]
fn multi_success_sees_earlier_ops() {
    let mut t = Tree::new();
    let ops = vec![
        create_op("/m", CreateMode::Persistent),
        create_op("/m/a", CreateMode::Persistent),
        create_op("/m/s-", CreateMode::PersistentSequential),
        create_op("/m/s-", CreateMode::PersistentSequential),
        Op::SetData {
            path: "/m/a".into(),
            data: Some(b"new".to_vec()),
            version: 0,
        },
        Op::Check {
            path: "/m/a".into(),
            version: 1,
        },
        Op::Delete {
            path: "/m/s-0000000001".into(),
            version: 0,
        },
    ];
    let (results, triggers) = t.multi(&tx(9), &ops);
    assert!(
        matches!(&results[0], OpResult::Create { path, stat } if path == "/m" && stat.num_children == 0)
    );
    assert!(matches!(&results[2], OpResult::Create { path, .. } if path == "/m/s-0000000001"));
    assert!(matches!(&results[3], OpResult::Create { path, .. } if path == "/m/s-0000000002"));
    assert!(
        matches!(&results[4], OpResult::SetData { stat } if stat.version == 1 && stat.mzxid == 9)
    );
    assert_eq!(results[5], OpResult::Check);
    assert_eq!(results[6], OpResult::Delete);
    assert_eq!(triggers.len(), 4 * 2 + 1 + 2);
    let m = t.stat("/m").unwrap();
    assert_eq!((m.num_children, m.pzxid, m.czxid), (2, 9, 9));
    // Empty multi: nothing happens, nothing fails.
    assert_eq!(t.multi(&tx(10), &[]), (vec![], vec![]));
}

#[test]
fn multi_failure_is_all_or_nothing() {
    let mut t = Tree::new();
    mk(&mut t, 1, "/a", CreateMode::Persistent).unwrap();
    mk(&mut t, 2, "/a/old", CreateMode::Ephemeral).unwrap();
    mk(&mut t, 2, "/c", CreateMode::Container).unwrap();
    let before = dump(&t);
    let before_index = index_dump(&t);
    let ops = vec![
        create_op("/a/new", CreateMode::Ephemeral),
        create_op("/a/seq-", CreateMode::PersistentSequential),
        create_op("/c/t", CreateMode::Persistent),
        Op::SetData {
            path: "/a".into(),
            data: Some(b"changed".to_vec()),
            version: -1,
        },
        Op::Delete {
            path: "/a/old".into(),
            version: -1,
        },
        Op::Check {
            path: "/a".into(),
            version: 0,
        },
        create_op("/after", CreateMode::Persistent),
        Op::Delete {
            path: "/nothing".into(),
            version: -1,
        },
    ];
    let (results, triggers) = t.multi(&tx(3), &ops);
    // The setData made /a version 1, so the check of version 0 fails.
    use ErrorCode::*;
    let codes: Vec<_> = results
        .iter()
        .map(|r| match r {
            OpResult::Error(c) => *c,
            other => panic!("not an error result: {other:?}"),
        })
        .collect();
    assert_eq!(
        codes,
        [
            Ok,
            Ok,
            Ok,
            Ok,
            Ok,
            BadVersion,
            RuntimeInconsistency,
            RuntimeInconsistency
        ]
    );
    assert!(triggers.is_empty());
    assert_eq!(dump(&t), before);
    assert_eq!(index_dump(&t), before_index);
    // The sequence number was not consumed either.
    assert_eq!(
        mk(&mut t, 4, "/a/seq-", CreateMode::PersistentSequential).unwrap(),
        "/a/seq-0000000001"
    );
    // First op failing.
    let (results, _) = t.multi(
        &tx(5),
        &[
            create_op("/a", CreateMode::Persistent),
            create_op("/z", CreateMode::Persistent),
        ],
    );
    assert_eq!(
        results,
        [
            OpResult::Error(NodeExists),
            OpResult::Error(RuntimeInconsistency)
        ]
    );
    assert!(t.stat("/z").is_none());
}

#[test]
fn multi_read_is_independent() {
    let mut t = Tree::new();
    mk(&mut t, 1, "/a", CreateMode::Persistent).unwrap();
    mk(&mut t, 2, "/a/b", CreateMode::Persistent).unwrap();
    let res = t.multi_read(
        &[
            ReadOp::GetData {
                path: "/nope".into(),
            },
            ReadOp::GetChildren { path: "/a".into() },
            ReadOp::GetData {
                path: "/a/b".into(),
            },
        ],
        &[],
    );
    assert_eq!(res[0], ReadResult::Error(ErrorCode::NoNode));
    assert_eq!(
        res[1],
        ReadResult::GetChildren {
            children: vec!["b".into()]
        }
    );
    assert!(
        matches!(&res[2], ReadResult::GetData { data, stat } if data.as_deref() == Some(b"d".as_slice()) && stat.czxid == 2)
    );
}

#[test]
fn builder_round_trip_and_errors() {
    let mut t = Tree::new();
    mk(&mut t, 1, "/a", CreateMode::Persistent).unwrap();
    mk(&mut t, 2, "/a/e", CreateMode::Ephemeral).unwrap();
    mk(&mut t, 3, "/c", CreateMode::Container).unwrap();
    let mut b = TreeBuilder::new();
    t.for_each_node(|n| {
        b.push(n.path, n.data.map(<[u8]>::to_vec), n.acl.clone(), n.stat)
            .unwrap()
    });
    let rebuilt = b.finish().unwrap();
    assert_eq!(dump(&rebuilt), dump(&t));
    assert_eq!(index_dump(&rebuilt), index_dump(&t));
    assert_eq!(rebuilt.approximate_data_size(), t.approximate_data_size());

    let open: AclList = Acl::open_unsafe().into();
    let st = PersistedStat::default();
    let mut b = TreeBuilder::new();
    assert_eq!(
        b.push("/a", None, open.clone(), st),
        Err(BuildError::RootFirst("/a".into()))
    );
    b.push("/", None, open.clone(), st).unwrap();
    assert_eq!(
        b.push("/", None, open.clone(), st),
        Err(BuildError::Duplicate("/".into()))
    );
    assert_eq!(
        b.push("/x/y", None, open.clone(), st),
        Err(BuildError::MissingParent("/x/y".into()))
    );
    assert_eq!(
        b.push("/x/", None, open.clone(), st),
        Err(BuildError::MissingParent("/x/".into()))
    );
    assert_eq!(
        TreeBuilder::new().finish().map(|_| ()),
        Err(BuildError::NoRoot)
    );
}

#[test]
fn deep_tree_does_not_overflow() {
    let mut t = Tree::new();
    let mut path = String::new();
    for i in 0..3_000 {
        path.push_str("/d");
        mk(&mut t, i + 1, &path, CreateMode::Persistent).unwrap();
    }
    let mut n = 0;
    t.for_each_node(|_| n += 1);
    assert_eq!(n, 3_004);
    assert_eq!(t.get_all_children_number("/d", &[]), Ok(2_999));
}

// ----- property tests -----

fn arb_path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..4)
        .prop_map(|parts| format!("/{}", parts.join("/")))
}

fn arb_op() -> impl Strategy<Value = Op> {
    let mode = prop::sample::select(vec![
        CreateMode::Persistent,
        CreateMode::Ephemeral,
        CreateMode::PersistentSequential,
        CreateMode::Container,
    ]);
    prop_oneof![
        (arb_path(), mode).prop_map(|(p, m)| create_op(&p, m)),
        (arb_path(), -1..2i32).prop_map(|(path, version)| Op::Delete { path, version }),
        (arb_path(), -1..2i32).prop_map(|(path, version)| Op::SetData {
            path,
            data: Some(b"p".to_vec()),
            version
        }),
        (arb_path(), -1..2i32).prop_map(|(path, version)| Op::Check { path, version }),
    ]
}

proptest! {
    /// A multi either applies every op exactly as the same ops applied one by one would, or
    /// leaves the tree untouched and reports ZooKeeper's result pattern.
    #[test]
    fn multi_matches_sequential_or_changes_nothing(
        setup in prop::collection::vec(arb_op(), 0..12),
        ops in prop::collection::vec(arb_op(), 0..8),
    ) {
        let mut t = Tree::new();
        let _ = t.multi(&tx(1), &[]);
        for (i, op) in setup.iter().enumerate() {
            let _ = t.multi(&tx(2 + i as i64), std::slice::from_ref(op));
        }
        let before = dump(&t);
        let before_index = index_dump(&t);
        let mut one_by_one = t.clone();
        let mut first_error = None;
        for (i, op) in ops.iter().enumerate() {
            let (r, _) = one_by_one.multi(&tx(100), std::slice::from_ref(op));
            if let [OpResult::Error(code)] = r.as_slice() {
                first_error = Some((i, *code));
                break;
            }
        }
        let (results, triggers) = t.multi(&tx(100), &ops);
        prop_assert_eq!(results.len(), ops.len());
        // Kept through creates, sets, deletes and rollbacks alike.
        prop_assert_eq!(t.approximate_data_size(), recount_data_size(&t));
        prop_assert_eq!(one_by_one.approximate_data_size(), recount_data_size(&one_by_one));
        match first_error {
            None => {
                prop_assert!(results.iter().all(|r| !matches!(r, OpResult::Error(_))));
                prop_assert_eq!(dump(&t), dump(&one_by_one));
                prop_assert_eq!(index_dump(&t), index_dump(&one_by_one));
            }
            Some((failed, code)) => {
                prop_assert!(triggers.is_empty());
                prop_assert_eq!(dump(&t), before);
                prop_assert_eq!(index_dump(&t), before_index);
                for (i, r) in results.iter().enumerate() {
                    let want = match i.cmp(&failed) {
                        std::cmp::Ordering::Less => ErrorCode::Ok,
                        std::cmp::Ordering::Equal => code,
                        std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
                    };
                    prop_assert_eq!(r, &OpResult::Error(want));
                }
            }
        }
        // Stat invariants hold on every node.
        t.for_each_node(|n| {
            let s = t.stat(n.path).unwrap();
            let kids = t.get_children(n.path, &[]).unwrap().0.len() as i32;
            assert_eq!(s.num_children, kids);
            assert_eq!(s.cversion, n.stat.cversion * 2 - kids);
            assert_eq!(s.data_length, n.data.map_or(0, <[u8]>::len) as i32);
        });
    }

    /// Arbitrary strings never panic the path checks, and anything accepted round-trips
    /// through split/join.
    #[test]
    fn path_validation_total(p in "\\PC{0,12}") {
        if path::validate_path(&p).is_ok() && p != "/" {
            let (parent, name) = path::split_parent(&p).unwrap();
            prop_assert_eq!(path::join(parent, name), p.clone());
        }
        let mut t = Tree::new();
        let _ = mk(&mut t, 1, &p, CreateMode::Persistent);
        let _ = t.delete(&tx(2), &p, -1);
        let _ = t.get_data(&p, &[]);
    }
}
