//! The per-server watch manager (not replicated): which of this server's sessions watch what,
//! and which of them to notify when the tree changes. ZooKeeper 3.8's `WatchManager` rules.
//!
//! Data flow: read handlers register one-shot watches ([`WatchManager::add_data_watch`] for
//! getData/exists, [`WatchManager::add_child_watch`] for getChildren) and addWatch registers
//! persistent ones ([`WatchManager::add_watch`]). After the state machine applies a command,
//! the server passes the returned triggers to [`WatchManager::trigger`] and sends each
//! resulting notification to its session. On reconnect, [`WatchManager::set_watches`]
//! re-registers a client's watches and reports what it missed. Registration and triggering must
//! be serialised with the application of commands (hold the same lock) so that no change falls
//! between a read and its watch.
//!
//! As in ZooKeeper there are two tables: data watches (getData, exists) and child watches
//! (getChildren); persistent and persistent-recursive watches sit in both. Each (session, path)
//! has one mode per table, and the latest registration sets it — in 3.8 a one-shot watch set
//! after a persistent one on the same path replaces it (3.9 keeps both).
//!
//! Which watches an event reaches (`WatchManager.triggerWatch`):
//! - `NodeCreated`, `NodeDataChanged` on P: data table at P.
//! - `NodeDeleted` on P: data table at P, then child table at P minus the sessions already
//!   notified by the data table.
//! - `NodeChildrenChanged` on P (P is the parent of the created/deleted node): child table at P.
//! - At P itself, every watch fires; one-shot (standard) ones are removed.
//! - At ancestors of P, only persistent-recursive watches fire, and never for
//!   `NodeChildrenChanged` (a recursive watcher gets `NodeCreated`/`NodeDeleted` of the child
//!   instead). Recursive watches also fire at P itself, except for `NodeChildrenChanged`.
//! - A session is notified at most once per table per trigger, and only if it may READ the node
//!   the event is about (ZooKeeper 3.8.4+ filters delivery by ACL); a one-shot watch is used up
//!   even when delivery is filtered.

use std::collections::{BTreeSet, HashMap, HashSet};

use sluice_jute::{perms, AddWatchMode, ErrorCode, EventType, Id, WatcherType};

use crate::tree::acl::check_acl;
use crate::tree::path::self_and_ancestors;
use crate::tree::{Tree, Trigger};

/// A notification to send: (session id, event type, path).
pub type Notification = (i64, EventType, String);

/// How a watch behaves when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchMode {
    /// One-shot: removed when it fires.
    Standard,
    /// Stays; fires for events on its own path.
    Persistent,
    /// Stays; fires for events on its path and every descendant (except `NodeChildrenChanged`).
    PersistentRecursive,
}

/// The watches a reconnecting client re-registers (SetWatches / SetWatches2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetWatches {
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub persistent_recursive: Vec<String>,
}

/// One of the two tables: path → watching sessions with their mode, and the reverse index.
#[derive(Debug, Default)]
struct Table {
    by_path: HashMap<Box<str>, HashMap<i64, WatchMode>>,
    by_session: HashMap<i64, HashSet<Box<str>>>,
    /// Number of recursive watches; while zero, triggers skip the ancestor walk.
    recursive: usize,
}

impl Table {
    fn add(&mut self, session: i64, path: &str, mode: WatchMode) {
        let watchers = self.by_path.entry(path.into()).or_default();
        let old = watchers.insert(session, mode);
        if old == Some(WatchMode::PersistentRecursive) {
            self.recursive = self.recursive.saturating_sub(1);
        }
        if mode == WatchMode::PersistentRecursive {
            self.recursive += 1;
        }
        self.by_session
            .entry(session)
            .or_default()
            .insert(path.into());
    }

    fn contains(&self, session: i64, path: &str) -> bool {
        self.by_path
            .get(path)
            .is_some_and(|w| w.contains_key(&session))
    }

    fn remove(&mut self, session: i64, path: &str) -> bool {
        let Some(paths) = self.by_session.get_mut(&session) else {
            return false;
        };
        if !paths.remove(path) {
            return false;
        }
        if paths.is_empty() {
            self.by_session.remove(&session);
        }
        self.forget(session, path);
        true
    }

    /// Drops the path-side entry of (session, path).
    fn forget(&mut self, session: i64, path: &str) {
        if let Some(watchers) = self.by_path.get_mut(path) {
            if watchers.remove(&session) == Some(WatchMode::PersistentRecursive) {
                self.recursive = self.recursive.saturating_sub(1);
            }
            if watchers.is_empty() {
                self.by_path.remove(path);
            }
        }
    }

    fn remove_session(&mut self, session: i64) {
        if let Some(paths) = self.by_session.remove(&session) {
            for path in paths {
                self.forget(session, &path);
            }
        }
    }

    /// Sessions whose watches fire for `event` on `path`, in id order; consumes one-shot ones.
    fn fire(&mut self, path: &str, event: EventType) -> BTreeSet<i64> {
        let mut fired = BTreeSet::new();
        let walk_ancestors = self.recursive > 0;
        for (level, local) in self_and_ancestors(path).enumerate() {
            let at_parent = level > 0;
            if at_parent && !walk_ancestors {
                break;
            }
            let Some(watchers) = self.by_path.get_mut(local) else {
                continue;
            };
            let mut used_up = Vec::new();
            for (&session, &mode) in watchers.iter() {
                match mode {
                    WatchMode::PersistentRecursive => {
                        if event != EventType::NodeChildrenChanged {
                            fired.insert(session);
                        }
                    }
                    _ if at_parent => {}
                    WatchMode::Persistent => {
                        fired.insert(session);
                    }
                    WatchMode::Standard => {
                        fired.insert(session);
                        used_up.push(session);
                    }
                }
            }
            for session in &used_up {
                watchers.remove(session);
            }
            if watchers.is_empty() {
                self.by_path.remove(local);
            }
            for session in used_up {
                if let Some(paths) = self.by_session.get_mut(&session) {
                    paths.remove(local);
                    if paths.is_empty() {
                        self.by_session.remove(&session);
                    }
                }
            }
        }
        fired
    }

    fn watch_count(&self) -> usize {
        self.by_session.values().map(HashSet::len).sum()
    }
}

/// This server's watches. See the module documentation.
#[derive(Debug, Default)]
pub struct WatchManager {
    data: Table,
    child: Table,
    /// Each session's authenticated ids, for the READ filter on delivery.
    auth: HashMap<i64, Vec<Id>>,
}

impl WatchManager {
    pub fn new() -> WatchManager {
        WatchManager::default()
    }

    /// Records the ids a session's connection has authenticated as (update after addauth).
    /// A session without any gets only events on nodes readable by everyone.
    pub fn set_auth(&mut self, session_id: i64, ids: Vec<Id>) {
        self.auth.insert(session_id, ids);
    }

    /// A one-shot data watch (getData or exists with `watch` set). For exists on a missing
    /// node this is the exist watch that fires on `NodeCreated`.
    pub fn add_data_watch(&mut self, session_id: i64, path: &str) {
        self.data.add(session_id, path, WatchMode::Standard);
    }

    /// A one-shot child watch (getChildren with `watch` set).
    pub fn add_child_watch(&mut self, session_id: i64, path: &str) {
        self.child.add(session_id, path, WatchMode::Standard);
    }

    /// addWatch: a persistent or persistent-recursive watch, in both tables.
    pub fn add_watch(&mut self, session_id: i64, path: &str, mode: AddWatchMode) {
        let mode = match mode {
            AddWatchMode::Persistent => WatchMode::Persistent,
            AddWatchMode::PersistentRecursive => WatchMode::PersistentRecursive,
        };
        self.data.add(session_id, path, mode);
        self.child.add(session_id, path, mode);
    }

    /// The mode of a session's watch on exactly `path` in the data / child table.
    pub fn watch_mode(&self, session_id: i64, path: &str, kind: WatcherType) -> Option<WatchMode> {
        let table = match kind {
            WatcherType::Data => &self.data,
            WatcherType::Children => &self.child,
            WatcherType::Any => {
                return self
                    .watch_mode(session_id, path, WatcherType::Data)
                    .or_else(|| self.watch_mode(session_id, path, WatcherType::Children));
            }
        };
        table.by_path.get(path)?.get(&session_id).copied()
    }

    /// checkWatches: `NoWatcher` unless the session has a watch of that type on exactly `path`.
    /// (ZooKeeper 3.8's `containsWatcher` answers yes when *any* session watches the path; that
    /// is a bug we do not copy.)
    pub fn check_watches(
        &self,
        session_id: i64,
        path: &str,
        kind: WatcherType,
    ) -> Result<(), ErrorCode> {
        let found = match kind {
            WatcherType::Data => self.data.contains(session_id, path),
            WatcherType::Children => self.child.contains(session_id, path),
            WatcherType::Any => {
                self.data.contains(session_id, path) || self.child.contains(session_id, path)
            }
        };
        if found {
            Ok(())
        } else {
            Err(ErrorCode::NoWatcher)
        }
    }

    /// removeWatches: removes the session's watch of that type on exactly `path` (both tables
    /// for `Any`, whatever the mode); `NoWatcher` when nothing was removed.
    pub fn remove_watches(
        &mut self,
        session_id: i64,
        path: &str,
        kind: WatcherType,
    ) -> Result<(), ErrorCode> {
        let removed = match kind {
            WatcherType::Data => self.data.remove(session_id, path),
            WatcherType::Children => self.child.remove(session_id, path),
            WatcherType::Any => {
                let d = self.data.remove(session_id, path);
                let c = self.child.remove(session_id, path);
                d || c
            }
        };
        if removed {
            Ok(())
        } else {
            Err(ErrorCode::NoWatcher)
        }
    }

    /// Forgets a session entirely: on close, expiry, or when its connection to this server
    /// goes (the client re-registers through setWatches on its next connection).
    pub fn remove_session(&mut self, session_id: i64) {
        self.data.remove_session(session_id);
        self.child.remove_session(session_id);
        self.auth.remove(&session_id);
    }

    /// Total number of (session, path) watches over both tables.
    pub fn watch_count(&self) -> usize {
        self.data.watch_count() + self.child.watch_count()
    }

    fn may_read(&self, session_id: i64, t: &Trigger) -> bool {
        let ids = self.auth.get(&session_id).map_or(&[][..], Vec::as_slice);
        check_acl(&t.acl, perms::READ, ids)
    }

    /// Fires the watches the triggers reach (rules in the module documentation) and returns
    /// the notifications to send, in trigger order and session-id order within a trigger.
    pub fn trigger(&mut self, triggers: &[Trigger]) -> Vec<Notification> {
        let mut out = Vec::new();
        for t in triggers {
            let (first, second) = match t.event {
                EventType::NodeCreated | EventType::NodeDataChanged => {
                    (self.data.fire(&t.path, t.event), BTreeSet::new())
                }
                EventType::NodeDeleted => {
                    let data = self.data.fire(&t.path, t.event);
                    let child = self.child.fire(&t.path, t.event);
                    let child_only = child.difference(&data).copied().collect();
                    (data, child_only)
                }
                EventType::NodeChildrenChanged => {
                    (self.child.fire(&t.path, t.event), BTreeSet::new())
                }
                _ => continue,
            };
            for session in first.into_iter().chain(second) {
                if self.may_read(session, t) {
                    out.push((session, t.event, t.path.clone()));
                }
            }
        }
        out
    }

    /// setWatches / setWatches2 on reconnect (`DataTree.setWatches`), against the current tree:
    /// - data watch: node gone → `NodeDeleted` now; changed since `relative_zxid` (mzxid
    ///   greater) → `NodeDataChanged` now; otherwise re-registered;
    /// - exist watch: node now exists → `NodeCreated` now; otherwise re-registered;
    /// - child watch: node gone → `NodeDeleted` now; children changed since (pzxid greater) →
    ///   `NodeChildrenChanged` now; otherwise re-registered;
    /// - persistent and persistent-recursive watches are re-registered, with no catch-up.
    ///
    /// Returns the events to send at once, in list order (data, exist, child). As in ZooKeeper
    /// these are not filtered by ACL.
    pub fn set_watches(
        &mut self,
        session_id: i64,
        relative_zxid: i64,
        watches: &SetWatches,
        tree: &Tree,
    ) -> Vec<Notification> {
        let mut out = Vec::new();
        for path in &watches.data {
            match tree.stat(path) {
                None => out.push((session_id, EventType::NodeDeleted, path.clone())),
                Some(s) if s.mzxid > relative_zxid => {
                    out.push((session_id, EventType::NodeDataChanged, path.clone()))
                }
                Some(_) => self.add_data_watch(session_id, path),
            }
        }
        for path in &watches.exist {
            match tree.stat(path) {
                Some(_) => out.push((session_id, EventType::NodeCreated, path.clone())),
                None => self.add_data_watch(session_id, path),
            }
        }
        for path in &watches.child {
            match tree.stat(path) {
                None => out.push((session_id, EventType::NodeDeleted, path.clone())),
                Some(s) if s.pzxid > relative_zxid => {
                    out.push((session_id, EventType::NodeChildrenChanged, path.clone()))
                }
                Some(_) => self.add_child_watch(session_id, path),
            }
        }
        for path in &watches.persistent {
            self.add_watch(session_id, path, AddWatchMode::Persistent);
        }
        for path in &watches.persistent_recursive {
            self.add_watch(session_id, path, AddWatchMode::PersistentRecursive);
        }
        out
    }
}

#[cfg(test)]
mod tests;
