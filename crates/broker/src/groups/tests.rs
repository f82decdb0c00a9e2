//! State-machine tests on a coordinator whose `__consumer_offsets` writes go to memory.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;

type Written = Arc<Mutex<Vec<(Bytes, Option<Bytes>)>>>;

fn coordinator(delay_ms: u64) -> (GroupCoordinator, Written) {
    let written: Written = Arc::default();
    let w = written.clone();
    let c = GroupCoordinator::new(
        GroupConfig {
            offsets_partitions: 1,
            min_session_timeout_ms: 100,
            max_session_timeout_ms: 60_000,
            initial_rebalance_delay: Duration::from_millis(delay_ms),
            offsets_retention: Duration::from_secs(60),
        },
        Box::new(move |_, entries| {
            w.lock().unwrap().extend(entries.iter().cloned());
            Ok(None)
        }),
    );
    c.begin_load(0);
    c.finish_load(0, Vec::new());
    (c, written)
}

fn args(member: &str, session_ms: i32) -> JoinArgs {
    JoinArgs {
        group_id: "g".into(),
        member_id: member.into(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: session_ms,
        rebalance_timeout_ms: 1_000,
        protocol_type: "consumer".into(),
        protocols: vec![
            ("range".into(), Bytes::from_static(b"r")),
            ("roundrobin".into(), Bytes::from_static(b"rr")),
        ],
        require_known_member_id: true,
    }
}

fn now_reply<T>(r: Reply<T>) -> T {
    match r {
        Reply::Now(t) => t,
        Reply::Wait(_) => panic!("expected an immediate answer"),
    }
}

fn waiting<T>(r: Reply<T>) -> oneshot::Receiver<T> {
    match r {
        Reply::Wait(rx) => rx,
        Reply::Now(_) => panic!("expected to wait"),
    }
}

/// MEMBER_ID_REQUIRED, then a join with the given id (which waits for the rebalance).
fn join_new(c: &GroupCoordinator, now: Instant) -> (String, oneshot::Receiver<JoinOutcome>) {
    let first = now_reply(c.join_now(args("", 1_000), now));
    assert_eq!(first.error, err::MEMBER_ID_REQUIRED);
    let id = first.member_id.clone();
    (id.clone(), waiting(c.join_now(args(&id, 1_000), now)))
}

fn sync(c: &GroupCoordinator, gen: i32, id: &str, a: Vec<(String, Bytes)>) -> Reply<SyncOutcome> {
    c.sync_now("g", gen, id, None, None, a)
}

fn state(c: &GroupCoordinator) -> GroupState {
    c.describe("g").state
}

#[test]
fn partition_follows_javas_string_hash() {
    assert_eq!(java_string_hash(""), 0);
    assert_eq!(java_string_hash("a"), 97);
    assert_eq!(java_string_hash("hello"), 99_162_322);
    // "polygenelubricants".hashCode() == Integer.MIN_VALUE; Utils.abs maps it to 0.
    assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
    assert_eq!(partition_for("polygenelubricants", 50), 0);
    assert_eq!(
        partition_for("console-consumer-1", 50),
        (java_string_hash("console-consumer-1").abs()) % 50
    );
}

#[test]
fn two_members_rebalance_to_a_stable_generation() {
    let (c, written) = coordinator(0);
    let t = Instant::now();
    let (a, mut ja) = join_new(&c, t);
    // Alone, the first member's join completes at once (no initial delay configured).
    let oa = ja.try_recv().expect("join completed");
    assert_eq!(
        (oa.error, oa.generation, oa.leader.as_str()),
        (err::NONE, 1, a.as_str())
    );
    assert_eq!(oa.protocol_name.as_deref(), Some("range"));
    assert_eq!(oa.members.len(), 1);
    assert!(matches!(
        sync(&c, 1, &a, vec![(a.clone(), Bytes::from_static(b"all"))]),
        Reply::Wait(_)
    ));
    assert_eq!(state(&c), GroupState::Stable);
    assert_eq!(c.heartbeat("g", 1, &a, None), err::NONE);

    // A second member triggers a rebalance: the first learns it through its heartbeat.
    let (b, mut jb) = join_new(&c, t);
    assert_eq!(state(&c), GroupState::PreparingRebalance);
    assert_eq!(c.heartbeat("g", 1, &a, None), err::REBALANCE_IN_PROGRESS);
    assert!(
        jb.try_recv().is_err(),
        "waits for the known member to rejoin"
    );
    let mut ja = waiting(c.join_now(args(&a, 1_000), t));
    let oa = ja.try_recv().unwrap();
    let ob = jb.try_recv().unwrap();
    assert_eq!((oa.generation, ob.generation), (2, 2));
    assert_eq!(oa.leader, a, "the leader stays the leader");
    assert_eq!((oa.members.len(), ob.members.len()), (2, 0));
    assert_eq!(state(&c), GroupState::CompletingRebalance);

    // The follower waits for the leader's assignment.
    let mut sb = waiting(sync(&c, 2, &b, vec![]));
    assert!(sb.try_recv().is_err());
    let mut sa = waiting(sync(
        &c,
        2,
        &a,
        vec![
            (a.clone(), Bytes::from_static(b"p0")),
            (b.clone(), Bytes::from_static(b"p1")),
        ],
    ));
    assert_eq!(sa.try_recv().unwrap().assignment, Bytes::from_static(b"p0"));
    assert_eq!(sb.try_recv().unwrap().assignment, Bytes::from_static(b"p1"));
    assert_eq!(state(&c), GroupState::Stable);
    assert_eq!(c.heartbeat("g", 1, &a, None), err::ILLEGAL_GENERATION);
    assert_eq!(c.heartbeat("g", 2, "nobody", None), err::UNKNOWN_MEMBER_ID);

    // The group metadata went to the log, decodable, with both members.
    let w = written.lock().unwrap();
    let (k, v) = w.last().unwrap();
    assert_eq!(
        records::Key::decode(k.clone()).unwrap(),
        records::Key::Group { group: "g".into() }
    );
    let gv = records::GroupValue::decode(v.clone().unwrap()).unwrap();
    assert_eq!((gv.generation, gv.members.len()), (2, 2));
}

#[test]
fn leave_and_session_expiry_rebalance_the_rest() {
    let (c, _) = coordinator(0);
    let t = Instant::now();
    let (a, _ja) = join_new(&c, t);
    let _sync = waiting(sync(&c, 1, &a, vec![]));
    let (b, _jb) = join_new(&c, t);
    let _ja = waiting(c.join_now(args(&a, 1_000), t));
    let _sync = waiting(sync(&c, 2, &b, vec![]));
    let _sync = waiting(sync(&c, 2, &a, vec![]));
    assert_eq!(state(&c), GroupState::Stable);

    // b leaves: a must rejoin; alone, the join completes at once with generation 3.
    assert_eq!(
        c.leave("g", &[(b.clone(), None)]),
        (err::NONE, vec![err::NONE])
    );
    assert_eq!(state(&c), GroupState::PreparingRebalance);
    let mut ja = waiting(c.join_now(args(&a, 1_000), t));
    assert_eq!(ja.try_recv().unwrap().generation, 3);
    let _sync = waiting(sync(&c, 3, &a, vec![]));
    assert_eq!(
        c.leave("g", &[("ghost".into(), None)]).1,
        vec![err::UNKNOWN_MEMBER_ID]
    );

    // a stops heartbeating: after its session timeout the group is empty.
    c.tick(t + Duration::from_millis(500));
    assert_eq!(state(&c), GroupState::Stable);
    c.tick(t + Duration::from_secs(5));
    assert_eq!(state(&c), GroupState::Empty, "nobody left to rejoin");
    assert_eq!(c.describe("g").members.len(), 0);
}

#[test]
fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout() {
    let (c, _) = coordinator(0);
    let t = Instant::now();
    let (a, _) = join_new(&c, t);
    let _sync = waiting(sync(&c, 1, &a, vec![]));
    let (_b, mut jb) = join_new(&c, t);
    c.tick(t + Duration::from_millis(500));
    assert!(jb.try_recv().is_err());
    c.tick(t + Duration::from_millis(1_100));
    let ob = jb.try_recv().unwrap();
    assert_eq!(
        (ob.generation, ob.members.len()),
        (2, 1),
        "b alone, and leader"
    );
}

#[test]
fn initial_delay_waits_for_more_members() {
    let (c, _) = coordinator(300);
    let t = Instant::now();
    let (_a, mut ja) = join_new(&c, t);
    assert!(ja.try_recv().is_err());
    let (_b, mut jb) = join_new(&c, t + Duration::from_millis(100));
    c.tick(t + Duration::from_millis(200));
    assert!(ja.try_recv().is_err());
    c.tick(t + Duration::from_millis(450));
    let (oa, ob) = (ja.try_recv().unwrap(), jb.try_recv().unwrap());
    assert_eq!((oa.generation, ob.generation), (1, 1));
    assert_eq!(oa.members.len() + ob.members.len(), 2);
}

#[test]
fn invalid_session_timeouts_and_protocols_are_refused() {
    let (c, _) = coordinator(0);
    let t = Instant::now();
    assert_eq!(
        now_reply(c.join_now(args("", 50), t)).error,
        err::INVALID_SESSION_TIMEOUT
    );
    assert_eq!(
        now_reply(c.join_now(args("", 90_000), t)).error,
        err::INVALID_SESSION_TIMEOUT
    );
    let mut bad = args("", 1_000);
    bad.protocols.clear();
    assert_eq!(
        now_reply(c.join_now(bad, t)).error,
        err::INCONSISTENT_GROUP_PROTOCOL
    );
    let (_a, _) = join_new(&c, t);
    let mut other = args("", 1_000);
    other.require_known_member_id = false;
    other.protocols = vec![("sticky".into(), Bytes::new())];
    assert_eq!(
        now_reply(c.join_now(other, t)).error,
        err::INCONSISTENT_GROUP_PROTOCOL
    );
    assert_eq!(
        now_reply(c.join_now(args("made-up", 1_000), t)).error,
        err::UNKNOWN_MEMBER_ID
    );
    let mut elsewhere = args("", 1_000);
    elsewhere.group_id = "h".into();
    let c2 = GroupCoordinator::new(c.config.clone(), Box::new(|_, _| Ok(None)));
    assert_eq!(
        now_reply(c2.join_now(elsewhere, t)).error,
        err::NOT_COORDINATOR
    );
}

#[test]
fn common_protocol_is_chosen_by_vote() {
    let (c, _) = coordinator(0);
    let t = Instant::now();
    let mut a = args("", 1_000);
    a.require_known_member_id = false;
    a.protocols = vec![
        ("roundrobin".into(), Bytes::new()),
        ("range".into(), Bytes::new()),
    ];
    let mut ra = waiting(c.join_now(a, t));
    assert_eq!(
        ra.try_recv().unwrap().protocol_name.as_deref(),
        Some("roundrobin")
    );
}

#[test]
fn static_member_rejoining_takes_over_without_rebalance() {
    let (c, _) = coordinator(0);
    let t = Instant::now();
    let mut a = args("", 1_000);
    a.group_instance_id = Some("i1".into());
    let mut ja = waiting(c.join_now(a.clone(), t));
    let oa = ja.try_recv().unwrap();
    let _sync = waiting(sync(&c, 1, &oa.member_id, vec![]));
    let mut b = args("", 1_000);
    b.group_instance_id = Some("i2".into());
    let _jb = waiting(c.join_now(b, t));
    let _ja = waiting(c.join_now(args(&oa.member_id, 1_000), t));
    let desc = c.describe("g");
    let follower = desc
        .members
        .iter()
        .find(|m| m.member_id != oa.member_id)
        .unwrap()
        .member_id
        .clone();
    let _sync = waiting(sync(&c, 2, &follower, vec![]));
    let _sync = waiting(sync(
        &c,
        2,
        &oa.member_id,
        vec![(follower.clone(), Bytes::from_static(b"x"))],
    ));
    assert_eq!(state(&c), GroupState::Stable);

    // i2 restarts (no member id): it gets a new id, same generation, and its assignment back.
    let mut b2 = args("", 1_000);
    b2.group_instance_id = Some("i2".into());
    let o = now_reply(c.join_now(b2, t));
    assert_eq!((o.error, o.generation), (err::NONE, 2));
    assert_ne!(o.member_id, follower);
    assert_eq!(state(&c), GroupState::Stable);
    match c.sync_now("g", 2, &o.member_id, Some("i2"), None, vec![]) {
        Reply::Now(s) => assert_eq!(s.assignment, Bytes::from_static(b"x")),
        Reply::Wait(_) => panic!("stable group answers at once"),
    }
    // The old id is fenced.
    assert_eq!(
        c.heartbeat("g", 2, &follower, Some("i2")),
        err::FENCED_INSTANCE_ID
    );
}

#[test]
fn offsets_commit_fetch_reload_delete_and_expire() {
    let (c, written) = coordinator(0);
    let known = |t: &str, _p: i32| t == "t";
    let commit = |o: i64, p: i32| CommitArgs {
        topic: "t".into(),
        partition: p,
        offset: o,
        leader_epoch: 3,
        metadata: Some("m".into()),
    };
    assert_eq!(
        c.commit_codes("g", -1, "", None, &[commit(10, 0), commit(20, 1)], &known),
        vec![0, 0]
    );
    let mut unknown = commit(1, 0);
    unknown.topic = "nope".into();
    assert_eq!(
        c.commit_codes("g", -1, "", None, &[unknown], &known),
        vec![err::UNKNOWN_TOPIC_OR_PARTITION]
    );
    let got = c
        .fetch_offsets("g", Some(vec![("t".into(), vec![0, 5])]))
        .unwrap();
    assert_eq!(got[0].1[0].1.as_ref().unwrap().offset, 10);
    assert!(got[0].1[1].1.is_none());
    assert_eq!(c.fetch_offsets("g", None).unwrap()[0].1.len(), 2);

    // A member of a live group must give the right generation.
    let (a, _) = join_new(&c, Instant::now());
    assert_eq!(
        c.commit_codes("g", -1, "", None, &[commit(1, 0)], &known),
        vec![err::UNKNOWN_MEMBER_ID]
    );
    assert_eq!(
        c.commit_codes("g", 7, &a, None, &[commit(1, 0)], &known),
        vec![err::ILLEGAL_GENERATION]
    );
    assert_eq!(
        c.commit_codes("g", 1, &a, None, &[commit(11, 0)], &known),
        vec![err::REBALANCE_IN_PROGRESS]
    );
    let _sync = waiting(sync(&c, 1, &a, vec![]));
    assert_eq!(
        c.commit_codes("g", 1, &a, None, &[commit(11, 0)], &known),
        vec![0]
    );
    assert_eq!(c.delete("g"), err::NON_EMPTY_GROUP);
    c.leave("g", &[(a, None)]);

    // Reloading the written records gives the same offsets and group.
    let records = written.lock().unwrap().clone();
    let (c2, written2) = coordinator(0);
    c2.begin_load(0);
    c2.finish_load(0, records);
    let got = c2.fetch_offsets("g", None).unwrap();
    let offs: Vec<i64> = got[0]
        .1
        .iter()
        .map(|(_, c)| c.as_ref().unwrap().offset)
        .collect();
    assert_eq!(offs, vec![11, 20]);
    assert_eq!(got[0].1[0].1.as_ref().unwrap().leader_epoch, 3);
    assert_eq!(c2.list().len(), 1);

    // Offsets not rewritten for a while are appended again, unchanged, ahead of retention.
    let before = written2.lock().unwrap().len();
    assert_eq!(
        c2.refresh_offsets(now_ms() + 1_000, 60_000),
        0,
        "all recent"
    );
    assert_eq!(c2.refresh_offsets(now_ms() + 120_000, 60_000), 2);
    assert_eq!(
        c2.refresh_offsets(now_ms() + 121_000, 60_000),
        0,
        "just rewritten"
    );
    {
        let w = written2.lock().unwrap();
        assert_eq!(w.len(), before + 2);
        let last = OffsetValue::decode(w.last().unwrap().1.clone().unwrap()).unwrap();
        assert!(last.offset == 11 || last.offset == 20);
    }
    assert_eq!(
        c2.fetch_offsets("g", None).unwrap()[0].1.len(),
        2,
        "refreshing changes nothing"
    );

    // Expiry drops old offsets of empty groups, then the group.
    c2.expire_offsets(now_ms() + 61_000);
    assert!(c2.list().is_empty());
    assert_eq!(c.delete("g"), err::NONE);
    assert_eq!(c.delete("g"), err::GROUP_ID_NOT_FOUND);
    let w = written.lock().unwrap();
    assert!(
        w.iter().rev().take(3).all(|(_, v)| v.is_none()),
        "tombstones"
    );
}

#[test]
fn unloading_answers_waiters_with_not_coordinator() {
    let (c, _) = coordinator(300);
    let (_a, mut ja) = join_new(&c, Instant::now());
    c.unload(0);
    assert!(matches!(
        ja.try_recv(),
        Err(oneshot::error::TryRecvError::Closed)
    ));
    assert_eq!(c.describe("g").error, err::NOT_COORDINATOR);
}

impl GroupCoordinator {
    fn commit_codes(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: &[CommitArgs],
        known_topic: &dyn Fn(&str, i32) -> bool,
    ) -> Vec<i16> {
        self.commit(
            group_id,
            generation,
            member_id,
            instance_id,
            offsets,
            known_topic,
        )
        .0
    }
}
