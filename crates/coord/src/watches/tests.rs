//! Watch firing rules against ZooKeeper 3.8's `WatchManager`, driven by real tree changes.

use proptest::prelude::*;
use sluice_jute::{perms, Acl, AddWatchMode, CreateMode, ErrorCode, EventType, Id, WatcherType};

use super::*;
use crate::tree::acl::generate_digest;
use crate::tree::{CreateOp, Tree, TxnContext};

const A: i64 = 1;
const B: i64 = 2;

use EventType::{
    NodeChildrenChanged as Children, NodeCreated as Created, NodeDataChanged as Changed,
    NodeDeleted as Deleted,
};

/// A tree plus a watch manager, with helpers that apply a change and return what fired.
struct World {
    tree: Tree,
    watches: WatchManager,
    zxid: i64,
}

impl World {
    fn new() -> World {
        World {
            tree: Tree::new(),
            watches: WatchManager::new(),
            zxid: 0,
        }
    }

    fn tx(&mut self) -> TxnContext<'static> {
        self.zxid += 1;
        TxnContext {
            session_id: 1,
            auth: &[],
            zxid: self.zxid,
            time_ms: self.zxid,
        }
    }

    fn create_with(&mut self, op: CreateOp) -> Vec<Notification> {
        let tx = self.tx();
        let (_, triggers) = self.tree.create(&tx, &op).unwrap();
        self.watches.trigger(&triggers)
    }

    fn create(&mut self, path: &str) -> Vec<Notification> {
        self.create_with(CreateOp::new(path, vec![], CreateMode::Persistent))
    }

    fn set(&mut self, path: &str) -> Vec<Notification> {
        let tx = self.tx();
        let (_, triggers) = self
            .tree
            .set_data(&tx, path, Some(b"x".as_slice()), -1)
            .unwrap();
        self.watches.trigger(&triggers)
    }

    fn delete(&mut self, path: &str) -> Vec<Notification> {
        let tx = self.tx();
        let triggers = self.tree.delete(&tx, path, -1).unwrap();
        self.watches.trigger(&triggers)
    }
}

fn n(session: i64, event: EventType, path: &str) -> Notification {
    (session, event, path.to_owned())
}

#[test]
fn one_shot_data_watch_fires_once() {
    let mut w = World::new();
    w.create("/a");
    w.watches.add_data_watch(A, "/a");
    assert_eq!(w.set("/a"), [n(A, Changed, "/a")]);
    assert_eq!(w.set("/a"), []);
    assert_eq!(w.watches.watch_count(), 0);
    // Re-registered, it fires on delete.
    w.watches.add_data_watch(A, "/a");
    assert_eq!(w.delete("/a"), [n(A, Deleted, "/a")]);
}

#[test]
fn exist_watch_fires_on_create() {
    let mut w = World::new();
    w.watches.add_data_watch(A, "/new");
    assert_eq!(w.create("/new"), [n(A, Created, "/new")]);
    assert_eq!(w.set("/new"), []);
}

#[test]
fn child_watch_rules() {
    let mut w = World::new();
    w.create("/p");
    w.watches.add_child_watch(A, "/p");
    // Data changes do not reach child watches.
    assert_eq!(w.set("/p"), []);
    assert_eq!(w.create("/p/c"), [n(A, Children, "/p")]);
    assert_eq!(w.create("/p/d"), []);
    // Child watches also fire when their node is deleted.
    w.delete("/p/c");
    w.delete("/p/d");
    w.watches.add_child_watch(A, "/p");
    w.watches.add_data_watch(A, "/p");
    w.watches.add_child_watch(B, "/p");
    // A has both watches but gets one NodeDeleted; both are used up.
    assert_eq!(w.delete("/p"), [n(A, Deleted, "/p"), n(B, Deleted, "/p")]);
    assert_eq!(w.watches.watch_count(), 0);
}

#[test]
fn data_watch_ignores_child_changes() {
    let mut w = World::new();
    w.create("/p");
    w.watches.add_data_watch(A, "/p");
    assert_eq!(w.create("/p/c"), []);
    assert_eq!(w.watches.check_watches(A, "/p", WatcherType::Data), Ok(()));
}

#[test]
fn persistent_watch_fires_every_time_on_its_path_only() {
    let mut w = World::new();
    w.watches.add_watch(A, "/p", AddWatchMode::Persistent);
    assert_eq!(w.create("/p"), [n(A, Created, "/p")]);
    assert_eq!(w.set("/p"), [n(A, Changed, "/p")]);
    assert_eq!(w.set("/p"), [n(A, Changed, "/p")]);
    assert_eq!(w.create("/p/c"), [n(A, Children, "/p")]);
    // Grandchildren are not its business.
    assert_eq!(w.create("/p/c/g"), []);
    assert_eq!(w.set("/p/c"), []);
    assert_eq!(w.delete("/p/c/g"), []);
    assert_eq!(w.delete("/p/c"), [n(A, Children, "/p")]);
    // Deleted once, not twice although it sits in both tables.
    assert_eq!(w.delete("/p"), [n(A, Deleted, "/p")]);
    assert_eq!(w.create("/p"), [n(A, Created, "/p")]);
}

#[test]
fn recursive_watch_fires_for_descendants_never_children_changed() {
    let mut w = World::new();
    w.create("/r");
    w.watches
        .add_watch(A, "/r", AddWatchMode::PersistentRecursive);
    assert_eq!(w.create("/r/a"), [n(A, Created, "/r/a")]);
    assert_eq!(w.create("/r/a/b"), [n(A, Created, "/r/a/b")]);
    assert_eq!(w.set("/r/a/b"), [n(A, Changed, "/r/a/b")]);
    assert_eq!(w.set("/r"), [n(A, Changed, "/r")]);
    assert_eq!(w.delete("/r/a/b"), [n(A, Deleted, "/r/a/b")]);
    assert_eq!(w.set("/r/a"), [n(A, Changed, "/r/a")]);
    // Outside the subtree: nothing (and no prefix confusion with /rx).
    w.create("/rx");
    assert_eq!(w.set("/rx"), []);
    assert_eq!(w.watches.watch_count(), 2);
}

#[test]
fn recursive_on_root_and_overlapping_watches() {
    let mut w = World::new();
    w.watches
        .add_watch(A, "/", AddWatchMode::PersistentRecursive);
    w.watches.add_watch(A, "/x", AddWatchMode::Persistent);
    w.watches.add_data_watch(B, "/x");
    w.watches.add_child_watch(B, "/");
    // A: the recursive and the persistent watch both match the data table: one event.
    // Then the parent's NodeChildrenChanged reaches B's child watch on /, not A's recursive.
    assert_eq!(
        w.create("/x"),
        [
            n(A, Created, "/x"),
            n(B, Created, "/x"),
            n(B, Children, "/")
        ]
    );
    assert_eq!(w.set("/x"), [n(A, Changed, "/x")]);
}

#[test]
fn notifications_filtered_by_read_acl() {
    let mut w = World::new();
    let bob = generate_digest("bob:pw");
    let mut op = CreateOp::new("/secret", vec![], CreateMode::Persistent);
    op.acl = vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "digest".into(),
            id: bob.clone(),
        },
    }];
    w.create_with(op);
    w.watches.add_data_watch(A, "/secret");
    w.watches.add_data_watch(B, "/secret");
    w.watches.set_auth(
        B,
        vec![Id {
            scheme: "digest".into(),
            id: bob,
        }],
    );
    let tx = w.tx();
    let su = [Id {
        scheme: "super".into(),
        id: String::new(),
    }];
    let (_, triggers) = w
        .tree
        .set_data(
            &TxnContext { auth: &su, ..tx },
            "/secret",
            Some(b"".as_slice()),
            -1,
        )
        .unwrap();
    assert_eq!(w.watches.trigger(&triggers), [n(B, Changed, "/secret")]);
    // A's one-shot watch was used up even though nothing was delivered.
    assert_eq!(
        w.watches.check_watches(A, "/secret", WatcherType::Data),
        Err(ErrorCode::NoWatcher)
    );
}

#[test]
fn check_and_remove_watches() {
    let mut w = World::new();
    w.watches.add_data_watch(A, "/d");
    w.watches.add_child_watch(A, "/c");
    w.watches.add_watch(A, "/p", AddWatchMode::Persistent);
    assert_eq!(w.watches.check_watches(A, "/d", WatcherType::Data), Ok(()));
    assert_eq!(
        w.watches.check_watches(A, "/d", WatcherType::Children),
        Err(ErrorCode::NoWatcher)
    );
    assert_eq!(w.watches.check_watches(A, "/c", WatcherType::Any), Ok(()));
    // Another session's watch is not ours (unlike ZooKeeper 3.8's containsWatcher).
    assert_eq!(
        w.watches.check_watches(B, "/d", WatcherType::Any),
        Err(ErrorCode::NoWatcher)
    );
    assert_eq!(
        w.watches.remove_watches(B, "/d", WatcherType::Any),
        Err(ErrorCode::NoWatcher)
    );
    assert_eq!(
        w.watches.remove_watches(A, "/d", WatcherType::Children),
        Err(ErrorCode::NoWatcher)
    );
    assert_eq!(w.watches.remove_watches(A, "/d", WatcherType::Data), Ok(()));
    assert_eq!(
        w.watches.remove_watches(A, "/d", WatcherType::Data),
        Err(ErrorCode::NoWatcher)
    );
    // A persistent watch removed from the child table only still fires for data.
    assert_eq!(
        w.watches.remove_watches(A, "/p", WatcherType::Children),
        Ok(())
    );
    w.create("/p");
    assert_eq!(w.create("/p/k"), []);
    assert_eq!(w.set("/p"), [n(A, Changed, "/p")]);
    assert_eq!(w.watches.remove_watches(A, "/p", WatcherType::Any), Ok(()));
    assert_eq!(w.set("/p"), []);
    assert_eq!(w.watches.watch_count(), 1);
}

#[test]
fn remove_session_drops_everything() {
    let mut w = World::new();
    w.create("/a");
    w.watches.add_data_watch(A, "/a");
    w.watches
        .add_watch(A, "/", AddWatchMode::PersistentRecursive);
    w.watches.add_data_watch(B, "/a");
    w.watches.remove_session(A);
    assert_eq!(w.set("/a"), [n(B, Changed, "/a")]);
    assert_eq!(w.watches.watch_count(), 0);
    assert_eq!(w.watches.data.recursive + w.watches.child.recursive, 0);
}

#[test]
fn later_registration_sets_the_mode() {
    // ZooKeeper 3.8 keeps one mode per (session, path, table): a one-shot getData watch
    // registered after a persistent watch turns the data half into a one-shot.
    let mut w = World::new();
    w.create("/m");
    w.watches.add_watch(A, "/m", AddWatchMode::Persistent);
    w.watches.add_data_watch(A, "/m");
    assert_eq!(
        w.watches.watch_mode(A, "/m", WatcherType::Data),
        Some(WatchMode::Standard)
    );
    assert_eq!(w.set("/m"), [n(A, Changed, "/m")]);
    assert_eq!(w.set("/m"), []);
    assert_eq!(w.create("/m/c"), [n(A, Children, "/m")]);
    // And a persistent registration upgrades a one-shot one.
    w.watches.add_data_watch(B, "/m");
    w.watches
        .add_watch(B, "/m", AddWatchMode::PersistentRecursive);
    assert_eq!(w.set("/m"), [n(B, Changed, "/m")]);
    assert_eq!(w.set("/m"), [n(B, Changed, "/m")]);
}

#[test]
fn set_watches_catches_up() {
    let mut w = World::new();
    w.create("/same");
    w.create("/changed");
    w.create("/gone");
    w.create("/kids");
    w.create("/quiet");
    let relative = w.zxid;
    // While the client was away:
    w.set("/changed");
    w.delete("/gone");
    w.create("/kids/new");
    w.create("/born");
    let sw = SetWatches {
        data: vec!["/same".into(), "/changed".into(), "/gone".into()],
        exist: vec!["/born".into(), "/unborn".into()],
        child: vec!["/kids".into(), "/quiet".into(), "/gone".into()],
        persistent: vec!["/pp".into()],
        persistent_recursive: vec!["/rr".into()],
    };
    let fired = w.watches.set_watches(A, relative, &sw, &w.tree);
    assert_eq!(
        fired,
        [
            n(A, Changed, "/changed"),
            n(A, Deleted, "/gone"),
            n(A, Created, "/born"),
            n(A, Children, "/kids"),
            n(A, Deleted, "/gone"),
        ]
    );
    // The others are registered and fire later.
    assert_eq!(w.set("/same"), [n(A, Changed, "/same")]);
    assert_eq!(w.create("/unborn"), [n(A, Created, "/unborn")]);
    assert_eq!(w.create("/quiet/k"), [n(A, Children, "/quiet")]);
    assert_eq!(w.create("/pp"), [n(A, Created, "/pp")]);
    assert_eq!(w.create("/pp/x"), [n(A, Children, "/pp")]);
    w.create("/rr");
    assert_eq!(w.create("/rr/x"), [n(A, Created, "/rr/x")]);
    // Watches that fired at once were not registered.
    assert_eq!(
        w.watches.check_watches(A, "/changed", WatcherType::Data),
        Err(ErrorCode::NoWatcher)
    );
}

#[derive(Debug, Clone)]
enum Step {
    Create(usize),
    Set(usize),
    Delete(usize),
}

const PATHS: [&str; 4] = ["/w", "/w/a", "/w/a/b", "/w/c"];

fn apply(w: &mut World, step: &Step) -> Option<Vec<Notification>> {
    let tx = w.tx();
    let triggers = match *step {
        Step::Create(i) => {
            w.tree
                .create(
                    &tx,
                    &CreateOp::new(PATHS[i], vec![], CreateMode::Persistent),
                )
                .ok()?
                .1
        }
        Step::Set(i) => {
            w.tree
                .set_data(&tx, PATHS[i], Some(b"".as_slice()), -1)
                .ok()?
                .1
        }
        Step::Delete(i) => w.tree.delete(&tx, PATHS[i], -1).ok()?,
    };
    Some(w.watches.trigger(&triggers))
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..4usize).prop_map(Step::Create),
        (0..4usize).prop_map(Step::Set),
        (0..4usize).prop_map(Step::Delete),
    ]
}

proptest! {
    /// Over any sequence of changes: a one-shot data watch on /w fires exactly once (on the
    /// first change to /w itself), a persistent watch fires on every change to /w's data or
    /// existence, and a recursive watch on /w fires once per successful change in the subtree,
    /// never with NodeChildrenChanged.
    #[test]
    fn watch_kinds_over_random_histories(steps in prop::collection::vec(arb_step(), 0..40)) {
        let mut w = World::new();
        w.watches.add_data_watch(1, "/w");
        w.watches.add_watch(2, "/w", AddWatchMode::Persistent);
        w.watches.add_watch(3, "/w", AddWatchMode::PersistentRecursive);
        let mut one_shot = 0;
        let mut own_changes = 0;
        let mut persistent_data_events = 0;
        let mut subtree_changes = 0;
        let mut recursive = 0;
        for step in &steps {
            let Some(fired) = apply(&mut w, step) else { continue };
            subtree_changes += 1;
            let idx = match step { Step::Create(i) | Step::Set(i) | Step::Delete(i) => *i };
            if idx == 0 {
                own_changes += 1;
            }
            for (session, event, path) in &fired {
                match session {
                    1 => { one_shot += 1; prop_assert_eq!(path.as_str(), "/w"); }
                    2 => {
                        prop_assert_eq!(path.as_str(), "/w");
                        if *event != EventType::NodeChildrenChanged { persistent_data_events += 1; }
                    }
                    3 => {
                        recursive += 1;
                        prop_assert_ne!(*event, EventType::NodeChildrenChanged);
                    }
                    _ => prop_assert!(false),
                }
            }
            // At most one event per session per table per trigger: here at most 2 per session.
            for s in 1..=3 {
                prop_assert!(fired.iter().filter(|f| f.0 == s).count() <= 2);
            }
        }
        prop_assert_eq!(one_shot, own_changes.min(1));
        prop_assert_eq!(persistent_data_events, own_changes);
        prop_assert_eq!(recursive, subtree_changes);
    }
}
