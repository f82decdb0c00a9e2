//! Session liveness, tracked by the leader only.
//!
//! Every server notes when its own clients were last heard from and passes those session ids to
//! the leader (its local ones directly, followers' over the peer port). The leader keeps one
//! deadline per session; a session whose deadline passes is expired by proposing a
//! `CloseSession` through the log, so every replica removes it and its ephemerals at the same
//! point. A new leader starts every known session with a full timeout, as ZooKeeper does, so a
//! leader change never expires a live client.
//!
//! Pure bookkeeping: the caller passes `now`, which keeps this testable without sleeping.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct ExpiryTracker {
    sessions: HashMap<i64, Entry>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    timeout: Duration,
    deadline: Instant,
    /// Set once the expiry was proposed, so it is not proposed again every tick.
    expiring: bool,
}

impl ExpiryTracker {
    /// Starts (or restarts) tracking `session` with a full timeout from `now`.
    pub fn add(&mut self, session: i64, timeout_ms: i32, now: Instant) {
        let timeout = Duration::from_millis(timeout_ms.max(0) as u64);
        self.sessions.insert(
            session,
            Entry {
                timeout,
                deadline: now + timeout,
                expiring: false,
            },
        );
    }

    /// The client was heard from: push its deadline out by its timeout. Unknown ids are ignored
    /// (the session may have been closed meanwhile).
    pub fn touch(&mut self, session: i64, now: Instant) {
        if let Some(e) = self.sessions.get_mut(&session) {
            e.deadline = now + e.timeout;
            e.expiring = false;
        }
    }

    pub fn remove(&mut self, session: i64) {
        self.sessions.remove(&session);
    }

    /// Replaces the tracked set with `sessions` (id, timeout), each given a full timeout: used
    /// when this node becomes leader.
    pub fn reset(&mut self, sessions: impl IntoIterator<Item = (i64, i32)>, now: Instant) {
        self.sessions.clear();
        for (id, timeout_ms) in sessions {
            self.add(id, timeout_ms, now);
        }
    }

    /// Sessions whose deadline has passed and whose expiry has not been proposed yet; they are
    /// marked so the next call does not return them again unless touched in between.
    pub fn take_expired(&mut self, now: Instant) -> Vec<i64> {
        let mut out: Vec<i64> = self
            .sessions
            .iter_mut()
            .filter(|(_, e)| !e.expiring && e.deadline <= now)
            .map(|(id, e)| {
                e.expiring = true;
                *id
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Clears the "expiry proposed" mark of `session`, e.g. when the proposal failed.
    pub fn retry(&mut self, session: i64) {
        if let Some(e) = self.sessions.get_mut(&session) {
            e.expiring = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_expires_only_after_its_timeout_without_touches() {
        let t0 = Instant::now();
        let mut t = ExpiryTracker::default();
        t.add(1, 4000, t0);
        t.add(2, 10_000, t0);
        assert!(t.take_expired(t0 + Duration::from_millis(3999)).is_empty());
        t.touch(1, t0 + Duration::from_millis(3000));
        assert!(t.take_expired(t0 + Duration::from_millis(6999)).is_empty());
        assert_eq!(t.take_expired(t0 + Duration::from_millis(7000)), vec![1]);
        // Proposed once; not returned again until touched.
        assert!(t.take_expired(t0 + Duration::from_millis(8000)).is_empty());
        assert_eq!(t.take_expired(t0 + Duration::from_secs(10)), vec![2]);
        t.retry(2);
        assert_eq!(t.take_expired(t0 + Duration::from_secs(11)), vec![2]);
    }

    #[test]
    fn reset_gives_every_session_a_full_timeout() {
        let t0 = Instant::now();
        let mut t = ExpiryTracker::default();
        t.add(1, 1000, t0);
        let later = t0 + Duration::from_secs(5);
        t.reset([(1, 1000), (3, 2000)], later);
        assert!(t
            .take_expired(later + Duration::from_millis(999))
            .is_empty());
        assert_eq!(
            t.take_expired(later + Duration::from_millis(2000)),
            vec![1, 3]
        );
    }

    #[test]
    fn removed_and_unknown_sessions_are_ignored() {
        let t0 = Instant::now();
        let mut t = ExpiryTracker::default();
        t.add(1, 1000, t0);
        t.remove(1);
        t.touch(1, t0);
        t.touch(99, t0);
        assert!(t.take_expired(t0 + Duration::from_secs(60)).is_empty());
    }
}
