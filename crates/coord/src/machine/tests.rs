//! State machine tests: command semantics, determinism and snapshots.

use proptest::prelude::*;
use sluice_jute::{perms, Acl, CreateMode, ErrorCode, EventType, Id};

use super::*;
use crate::tree::acl::generate_digest;

fn create_session(m: &mut Machine, index: u64) -> i64 {
    let cmd = Command::CreateSession {
        timeout_ms: 30_000,
        password: [index as u8; 16],
        origin_node: 3,
    };
    match m.apply(index as i64, 1000, index, &cmd).0 {
        CommandResult::SessionCreated { session_id, .. } => session_id,
        other => panic!("{other:?}"),
    }
}

fn write(session_id: i64, op: WriteOp) -> Command {
    Command::Write {
        session_id,
        auth: vec![],
        op,
    }
}

fn create(path: &str, mode: CreateMode) -> WriteOp {
    WriteOp::Create(CreateOp::new(path, b"data".to_vec(), mode))
}

#[test]
fn session_lifecycle() {
    let mut m = Machine::new();
    let s = create_session(&mut m, 7);
    assert_eq!(s, (3i64 << 56) | 7);
    assert_eq!(m.sessions().get(s).unwrap().timeout_ms, 30_000);
    let (r, t) = m.apply(8, 2000, 8, &write(s, create("/e", CreateMode::Ephemeral)));
    assert!(
        matches!(r, CommandResult::Created { ref path, stat } if path == "/e" && stat.ephemeral_owner == s)
    );
    assert_eq!(t.len(), 2);
    assert_eq!(m.session_ephemerals(s), ["/e"]);

    let (r, t) = m.apply(9, 3000, 9, &Command::CloseSession { session_id: s });
    assert_eq!(r, CommandResult::SessionClosed { existed: true });
    assert_eq!(
        t.iter()
            .map(|t| (t.path.as_str(), t.event))
            .collect::<Vec<_>>(),
        [
            ("/e", EventType::NodeDeleted),
            ("/", EventType::NodeChildrenChanged)
        ]
    );
    assert!(m.tree().stat("/e").is_none());
    assert!(m.sessions().is_empty());
    // Closing again is harmless.
    let (r, _) = m.apply(10, 3000, 10, &Command::CloseSession { session_id: s });
    assert_eq!(r, CommandResult::SessionClosed { existed: false });
    // Writes from a gone session fail; a multi reports it on its first op.
    let (r, _) = m.apply(
        11,
        3000,
        11,
        &write(s, create("/x", CreateMode::Persistent)),
    );
    assert_eq!(r, CommandResult::Error(ErrorCode::SessionExpired));
    let multi = WriteOp::Multi(vec![
        Op::Check {
            path: "/".into(),
            version: -1,
        },
        Op::Check {
            path: "/".into(),
            version: -1,
        },
    ]);
    let (r, _) = m.apply(12, 3000, 12, &write(s, multi));
    assert_eq!(
        r,
        CommandResult::Multi(vec![
            OpResult::Error(ErrorCode::SessionExpired),
            OpResult::Error(ErrorCode::RuntimeInconsistency)
        ])
    );
    assert_eq!((m.last_zxid(), m.last_applied_index()), (12, 12));
}

#[test]
fn create_session_errors() {
    let mut m = Machine::new();
    let bad = Command::CreateSession {
        timeout_ms: 1,
        password: [0; 16],
        origin_node: 255,
    };
    assert_eq!(
        m.apply(1, 0, 1, &bad).0,
        CommandResult::Error(ErrorCode::BadArguments)
    );
    create_session(&mut m, 2);
    // The same log index again (never happens with a real log) cannot reuse the id.
    let again = Command::CreateSession {
        timeout_ms: 1,
        password: [0; 16],
        origin_node: 3,
    };
    assert_eq!(
        m.apply(3, 0, 2, &again).0,
        CommandResult::Error(ErrorCode::SystemError)
    );
}

#[test]
fn write_results() {
    let mut m = Machine::new();
    let s = create_session(&mut m, 1);
    let (r, _) = m.apply(2, 10, 2, &write(s, create("/a", CreateMode::Persistent)));
    assert!(matches!(r, CommandResult::Created { .. }));
    let (r, t) = m.apply(
        3,
        11,
        3,
        &write(
            s,
            WriteOp::SetData {
                path: "/a".into(),
                data: Some(b"v".to_vec()),
                version: 0,
            },
        ),
    );
    assert!(matches!(r, CommandResult::DataSet { stat } if stat.version == 1 && stat.mtime == 11));
    assert_eq!(t[0].event, EventType::NodeDataChanged);
    let (r, t) = m.apply(
        4,
        12,
        4,
        &write(
            s,
            WriteOp::SetAcl {
                path: "/a".into(),
                acl: Acl::open_unsafe(),
                version: 0,
            },
        ),
    );
    assert!(matches!(r, CommandResult::AclSet { stat } if stat.aversion == 1));
    assert!(t.is_empty());
    let check = |version| {
        write(
            s,
            WriteOp::Check {
                path: "/a".into(),
                version,
            },
        )
    };
    assert_eq!(m.apply(5, 13, 5, &check(1)).0, CommandResult::Checked);
    assert_eq!(
        m.apply(6, 13, 6, &check(0)).0,
        CommandResult::Error(ErrorCode::BadVersion)
    );
    let del = |path: &str| {
        write(
            s,
            WriteOp::Delete {
                path: path.into(),
                version: -1,
            },
        )
    };
    assert_eq!(
        m.apply(7, 14, 7, &del("/nope")).0,
        CommandResult::Error(ErrorCode::NoNode)
    );
    assert_eq!(m.apply(8, 14, 8, &del("/a")).0, CommandResult::Deleted);
    // Authenticated ids travel with the command.
    let alice = generate_digest("alice:pw");
    let mut op = CreateOp::new("/p", vec![], CreateMode::Persistent);
    op.acl = vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "auth".into(),
            id: String::new(),
        },
    }];
    let cmd = Command::Write {
        session_id: s,
        auth: vec![Id {
            scheme: "digest".into(),
            id: alice.clone(),
        }],
        op: WriteOp::Create(op),
    };
    assert!(matches!(
        m.apply(9, 15, 9, &cmd).0,
        CommandResult::Created { .. }
    ));
    assert_eq!(m.tree().acl("/p").unwrap()[0].id.id, alice);
    assert_eq!(m.apply(10, 16, 10, &del("/p")).0, CommandResult::Deleted);
}

#[test]
fn reap_sync_noop() {
    let mut m = Machine::new();
    let s = create_session(&mut m, 1);
    m.apply(2, 100, 2, &write(s, create("/c", CreateMode::Container)));
    m.apply(3, 100, 3, &write(s, create("/c/x", CreateMode::Persistent)));
    m.apply(
        4,
        100,
        4,
        &write(
            s,
            WriteOp::Delete {
                path: "/c/x".into(),
                version: -1,
            },
        ),
    );
    let candidates = m.tree().reap_candidates(200, 0);
    assert_eq!(candidates, ["/c"]);
    let mut paths = candidates;
    paths.push("/missing".into());
    let (r, t) = m.apply(5, 200, 5, &Command::ReapNodes { paths });
    assert_eq!(
        r,
        CommandResult::Reaped(vec![ErrorCode::Ok, ErrorCode::NoNode])
    );
    assert_eq!(t.len(), 2);
    assert_eq!(
        m.apply(6, 200, 6, &Command::Sync { path: "/x".into() }).0,
        CommandResult::Synced { path: "/x".into() }
    );
    assert_eq!(m.apply(7, 200, 7, &Command::Noop).0, CommandResult::Noop);
    assert_eq!(m.last_zxid(), 7);
}

/// A machine with a bit of everything: sessions, ephemerals, containers, TTLs, ACLs.
fn sample_machine() -> Machine {
    let mut m = Machine::new();
    let s1 = create_session(&mut m, 1);
    let s2 = create_session(&mut m, 2);
    let mut i = 2;
    let mut apply = |m: &mut Machine, s: i64, op: WriteOp| {
        i += 1;
        let r = m.apply(i, i * 10, i as u64, &write(s, op)).0;
        assert!(!matches!(r, CommandResult::Error(_)), "{r:?}");
    };
    apply(&mut m, s1, create("/app", CreateMode::Persistent));
    apply(
        &mut m,
        s1,
        create("/app/e", CreateMode::EphemeralSequential),
    );
    apply(
        &mut m,
        s2,
        create("/app/e", CreateMode::EphemeralSequential),
    );
    apply(&mut m, s1, create("/c", CreateMode::Container));
    let mut ttl = CreateOp::new("/t", b"ttl".to_vec(), CreateMode::PersistentWithTtl);
    ttl.ttl = 1234;
    apply(&mut m, s1, WriteOp::Create(ttl));
    let mut secret = CreateOp::new("/secret", vec![1, 2, 3], CreateMode::Persistent);
    secret.acl = vec![
        Acl {
            perms: perms::READ,
            id: Id {
                scheme: "ip".into(),
                id: "10.0.0.0/8".into(),
            },
        },
        Acl {
            perms: perms::ALL,
            id: Id {
                scheme: "digest".into(),
                id: generate_digest("a:b"),
            },
        },
    ];
    apply(&mut m, s1, WriteOp::Create(secret));
    apply(
        &mut m,
        s2,
        WriteOp::SetData {
            path: "/app".into(),
            data: Some(vec![9; 300]),
            version: 0,
        },
    );
    m
}

#[test]
fn snapshot_round_trip() {
    let m = sample_machine();
    let bytes = m.snapshot();
    let r = Machine::restore(&bytes).unwrap();
    assert_eq!(r.snapshot(), bytes);
    assert_eq!(r.last_zxid(), m.last_zxid());
    assert_eq!(r.last_applied_index(), m.last_applied_index());
    assert_eq!(r.sessions(), m.sessions());
    for path in [
        "/",
        "/zookeeper/config",
        "/app",
        "/app/e0000000000",
        "/c",
        "/t",
        "/secret",
    ] {
        assert_eq!(r.tree().stat(path), m.tree().stat(path), "{path}");
        assert_eq!(r.tree().acl(path), m.tree().acl(path), "{path}");
        assert_eq!(
            r.tree().persisted_stat(path),
            m.tree().persisted_stat(path),
            "{path}"
        );
    }
    for (id, _) in m.sessions().iter() {
        assert_eq!(r.session_ephemerals(id), m.session_ephemerals(id));
    }
    assert_eq!(
        r.tree().reap_candidates(1_000_000, 1),
        m.tree().reap_candidates(1_000_000, 1)
    );
    // The restored machine keeps working the same way.
    let mut a = m.clone();
    let mut b = r;
    let ids: Vec<i64> = m.sessions().iter().map(|(id, _)| id).collect();
    for mm in [&mut a, &mut b] {
        mm.apply(100, 5, 100, &Command::CloseSession { session_id: ids[0] });
        let (r, _) = mm.apply(
            101,
            6,
            101,
            &write(ids[1], create("/app/e", CreateMode::PersistentSequential)),
        );
        assert!(matches!(r, CommandResult::Created { ref path, .. } if path == "/app/e0000000002"));
    }
    assert_eq!(a.snapshot(), b.snapshot());
}

#[test]
fn snapshot_rejects_damage() {
    let bytes = sample_machine().snapshot();
    assert_eq!(
        Machine::restore(b"nope").unwrap_err(),
        SnapshotError::BadMagic
    );
    assert_eq!(Machine::restore(&[]).unwrap_err(), SnapshotError::BadMagic);
    assert_eq!(
        Machine::restore(SNAPSHOT_MAGIC).unwrap_err(),
        SnapshotError::Truncated
    );
    for cut in [bytes.len() - 1, bytes.len() / 2, 13] {
        assert!(matches!(
            Machine::restore(&bytes[..cut]).unwrap_err(),
            SnapshotError::Checksum { .. } | SnapshotError::Truncated
        ));
    }
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    assert!(matches!(
        Machine::restore(&flipped).unwrap_err(),
        SnapshotError::Checksum { .. }
    ));
    // A future format version is refused even with a valid checksum.
    let mut future = bytes[..bytes.len() - 4].to_vec();
    future[8..12].copy_from_slice(&(SNAPSHOT_VERSION + 1).to_le_bytes());
    let crc = crc32fast::hash(&future);
    future.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(
        Machine::restore(&future).unwrap_err(),
        SnapshotError::UnsupportedVersion(SNAPSHOT_VERSION + 1)
    );
    // Structurally bad content behind a valid checksum is an error, not a panic.
    let mut body = bytes[..bytes.len() - 4].to_vec();
    body.extend_from_slice(&[0, 0, 0]);
    let crc = crc32fast::hash(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(
        Machine::restore(&body).unwrap_err(),
        SnapshotError::TrailingBytes(3)
    );
}

#[test]
fn snapshot_of_a_big_tree() {
    // 20k nodes here; `cargo bench -p sluice-coord --bench snapshot` times 100k.
    let m = big_machine(20_000);
    let bytes = m.snapshot();
    let r = Machine::restore(&bytes).unwrap();
    assert_eq!(r.tree().node_count(), m.tree().node_count());
    assert_eq!(r.snapshot(), bytes);
}

fn big_machine(nodes: usize) -> Machine {
    let mut m = Machine::new();
    let s = create_session(&mut m, 1);
    let mut zxid = 1;
    let parents = 100;
    for p in 0..parents {
        zxid += 1;
        m.apply(
            zxid,
            zxid,
            zxid as u64,
            &write(s, create(&format!("/p{p:03}"), CreateMode::Persistent)),
        );
    }
    for i in 0..nodes - parents {
        zxid += 1;
        let op = WriteOp::Create(CreateOp::new(
            format!("/p{:03}/node-{i:07}", i % parents),
            vec![(i % 251) as u8; 100],
            CreateMode::Persistent,
        ));
        let (r, _) = m.apply(zxid, zxid, zxid as u64, &write(s, op));
        debug_assert!(matches!(r, CommandResult::Created { .. }));
    }
    m
}

// ----- determinism -----

fn arb_command() -> impl Strategy<Value = Command> {
    let path = prop::sample::select(vec!["/a", "/a/b", "/c", "/c/d", "/e"]);
    let mode = prop::sample::select(vec![
        CreateMode::Persistent,
        CreateMode::Ephemeral,
        CreateMode::PersistentSequential,
        CreateMode::EphemeralSequential,
        CreateMode::Container,
        CreateMode::PersistentWithTtl,
    ]);
    let session = 0..3u64;
    let op = prop_oneof![
        (path.clone(), mode.clone()).prop_map(|(p, m)| {
            let mut c = CreateOp::new(p, b"x".to_vec(), m);
            if m.is_ttl() {
                c.ttl = 50;
            }
            WriteOp::Create(c)
        }),
        path.clone().prop_map(|p| WriteOp::Delete {
            path: p.into(),
            version: -1
        }),
        (path.clone(), any::<u8>()).prop_map(|(p, b)| WriteOp::SetData {
            path: p.into(),
            data: Some(vec![b]),
            version: -1
        }),
        prop::collection::vec(
            (path.clone(), mode).prop_map(|(p, m)| Op::Create(CreateOp::new(p, vec![], m))),
            0..3
        )
        .prop_map(WriteOp::Multi),
    ];
    prop_oneof![
        2 => (session.clone(), op).prop_map(|(s, op)| (s, Some(op))),
        1 => session.prop_map(|s| (s, None)),
        1 => Just((99, None)),
    ]
    .prop_map(|(s, op)| match (s, op) {
        (99, _) => Command::ReapNodes {
            paths: vec!["/a".into(), "/c".into(), "/c/d".into()],
        },
        // Session i is the one created at log index i + 1 from node 1.
        (s, Some(op)) => Command::Write {
            session_id: (1i64 << 56) | (s as i64 + 1),
            auth: vec![],
            op,
        },
        (s, None) => Command::CloseSession {
            session_id: (1i64 << 56) | (s as i64 + 1),
        },
    })
}

proptest! {
    /// Two replicas applying the same log reach the same state; a replica restored from a
    /// snapshot taken midway and fed the rest of the log reaches it too.
    #[test]
    fn replicas_agree(cmds in prop::collection::vec(arb_command(), 0..40), cut in 0usize..40) {
        let mut log: Vec<Command> = (0..3)
            .map(|_| Command::CreateSession { timeout_ms: 1000, password: [1; 16], origin_node: 1 })
            .collect();
        log.extend(cmds);
        let run = |m: &mut Machine, range: std::ops::Range<usize>| {
            let mut out = Vec::new();
            for i in range {
                let i64i = i as i64 + 1;
                out.push(m.apply(i64i, i64i * 37, i as u64 + 1, &log[i]));
            }
            out
        };
        let mut a = Machine::new();
        let mut b = Machine::new();
        let ra = run(&mut a, 0..log.len());
        let rb = run(&mut b, 0..log.len());
        prop_assert_eq!(ra, rb);
        prop_assert_eq!(a.snapshot(), b.snapshot());

        let cut = cut.min(log.len());
        let mut c = Machine::new();
        run(&mut c, 0..cut);
        let mut c = Machine::restore(&c.snapshot()).unwrap();
        run(&mut c, cut..log.len());
        prop_assert_eq!(c.snapshot(), a.snapshot());
    }
}

proptest! {
    /// A frozen copy keeps the state of the moment it was taken while the machine goes on
    /// applying (creates, deletes, sets, failed multis, closed sessions, reaps): its image is
    /// the one a snapshot at that moment gave, and the machine's own image is unaffected by
    /// the copy being alive (and by it being dropped before or after more commands).
    #[test]
    fn frozen_copy_is_unaffected_by_later_commands(
        cmds in prop::collection::vec(arb_command(), 0..60),
        cuts in prop::collection::vec(0usize..60, 1..4),
    ) {
        let mut log: Vec<Command> = (0..3)
            .map(|_| Command::CreateSession { timeout_ms: 1000, password: [1; 16], origin_node: 1 })
            .collect();
        log.extend(cmds);
        let apply = |m: &mut Machine, i: usize| {
            let i64i = i as i64 + 1;
            m.apply(i64i, i64i * 37, i as u64 + 1, &log[i]);
        };
        let mut m = Machine::new();
        let mut plain = Machine::new();
        let mut frozen: Vec<(FrozenMachine, Vec<u8>)> = Vec::new();
        for i in 0..log.len() {
            if cuts.contains(&i) {
                frozen.push((m.freeze(), m.snapshot()));
            }
            // Drop the oldest copy part-way, so that changes happen with and without one.
            if frozen.len() > 1 && i % 7 == 0 {
                let (f, expected) = frozen.remove(0);
                prop_assert_eq!(f.encode(), expected);
            }
            apply(&mut m, i);
            apply(&mut plain, i);
        }
        for (f, expected) in &frozen {
            prop_assert_eq!(&f.encode(), expected);
        }
        prop_assert_eq!(m.snapshot(), plain.snapshot());
        prop_assert_eq!(m.tree().approximate_data_size(), plain.tree().approximate_data_size());
    }
}

/// Null data (a create or setData whose data is null, single or in a multi) is kept apart from
/// empty, through a snapshot too; a version-1 image (which had no null) still restores.
#[test]
fn null_data_is_kept_apart_from_empty() {
    let mut m = Machine::new();
    let s = create_session(&mut m, 1);
    let mut null = CreateOp::new("/null", Vec::new(), CreateMode::Persistent);
    null.data = None;
    m.apply(2, 1000, 2, &write(s, WriteOp::Create(null.clone())));
    m.apply(
        3,
        1000,
        3,
        &write(
            s,
            WriteOp::Create(CreateOp::new("/empty", Vec::new(), CreateMode::Persistent)),
        ),
    );
    let mut in_multi = null.clone();
    in_multi.path = "/multi".into();
    m.apply(
        4,
        1000,
        4,
        &write(
            s,
            WriteOp::Multi(vec![
                Op::Create(in_multi),
                Op::SetData {
                    path: "/empty".into(),
                    data: None,
                    version: 0,
                },
            ]),
        ),
    );
    let data = |m: &Machine, p: &str| m.tree().get_data(p, &[]).unwrap().0.map(<[u8]>::to_vec);
    assert_eq!(data(&m, "/null"), None);
    assert_eq!(data(&m, "/multi"), None);
    assert_eq!(data(&m, "/empty"), None);
    assert_eq!(m.tree().get_data("/null", &[]).unwrap().1.data_length, 0);
    let bytes = m.snapshot();
    let back = Machine::restore(&bytes).unwrap();
    assert_eq!(data(&back, "/null"), None);
    assert_eq!(back.snapshot(), bytes);

    // A version-1 image: no null data, otherwise the same layout.
    let mut plain = Machine::new();
    let s = create_session(&mut plain, 1);
    plain.apply(2, 1000, 2, &write(s, create("/a", CreateMode::Persistent)));
    let mut v1 = plain.snapshot();
    v1.truncate(v1.len() - 4);
    v1[8..12].copy_from_slice(&1u32.to_le_bytes());
    let crc = crc32fast::hash(&v1);
    v1.extend_from_slice(&crc.to_le_bytes());
    let restored = Machine::restore(&v1).unwrap();
    assert_eq!(data(&restored, "/a"), Some(b"data".to_vec()));
    assert_eq!(restored.snapshot(), plain.snapshot());
}

/// `/zookeeper/config` as ZooKeeper 3.8 keeps it: the lines and `version=<hex zxid>`, mZxid
/// equal to the version, dataVersion -1, a data watch; with reconfiguration off, version 0;
/// lines already there change nothing unless the write is a reconfig's.
#[test]
fn set_config_writes_the_configuration_node() {
    let lines = "server.1=h:1:2:participant\nserver.2=h:3:4:participant\n";
    let set = |static_version, always| {
        Command::SetConfig(ConfigWrite {
            servers: lines.into(),
            static_version,
            always,
        })
    };
    let mut m = Machine::new();
    let (r, t) = m.apply(0x1_0000_0001, 5, 1, &set(true, false));
    let CommandResult::Config { data, stat } = r else {
        panic!("{r:?}")
    };
    assert_eq!(
        String::from_utf8(data).unwrap(),
        format!("{lines}version=0")
    );
    assert_eq!((stat.mzxid, stat.version, stat.mtime), (0, -1, 5));
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].path.as_str(), t[0].event),
        ("/zookeeper/config", EventType::NodeDataChanged)
    );

    // Same lines again: nothing changes, no watch fires.
    let (r, t) = m.apply(0x1_0000_0002, 6, 2, &set(false, false));
    assert!(
        matches!(&r, CommandResult::Config { stat, .. } if stat.mzxid == 0),
        "{r:?}"
    );
    assert!(t.is_empty());

    // A reconfig's write always makes a new version: its own zxid.
    let (r, t) = m.apply(0x1_0000_0003, 7, 3, &set(false, true));
    let CommandResult::Config { data, stat } = r else {
        panic!("{r:?}")
    };
    assert_eq!(
        String::from_utf8(data).unwrap(),
        format!("{lines}version=100000003")
    );
    assert_eq!((stat.mzxid, stat.version), (0x1_0000_0003, -1));
    assert_eq!(t.len(), 1);
    assert_eq!(
        m.tree().config_data(),
        format!("{lines}version=100000003").as_bytes()
    );
    // The node keeps its read-only ACL: clients cannot write it.
    let s = create_session(&mut m, 9);
    let (r, _) = m.apply(
        0x1_0000_0004,
        8,
        4,
        &write(
            s,
            WriteOp::SetData {
                path: "/zookeeper/config".into(),
                data: Some(b"x".to_vec()),
                version: -1,
            },
        ),
    );
    assert_eq!(r, CommandResult::Error(ErrorCode::NoAuth));
}
