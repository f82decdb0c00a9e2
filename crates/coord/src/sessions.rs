//! The replicated session table: session id → negotiated timeout and 16-byte password.
//!
//! Data flow: a server that accepts a new connection proposes `CreateSession` through Raft with
//! its own node id and the password it handed out; every replica applies it here with the log
//! index of that entry, so every replica derives the same session id without coordination.
//! `CloseSession` (client close or expiry decided by the leader) removes the entry; the session's
//! ephemeral nodes are owned and indexed by the znode tree (`crate::tree`, as ZooKeeper's
//! `DataTree.ephemerals`), which deletes them in the same command. Expiry timing lives outside
//! the replicated state: nothing here reads a clock.

use std::collections::BTreeMap;

use crate::tree::{CONTAINER_EPHEMERAL_OWNER, MAX_EXTENDED_SERVER_ID};

/// A live session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub timeout_ms: i32,
    pub password: [u8; 16],
}

/// Why a session could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Ids from such a node would have the high byte 0xff and read as TTL owners.
    #[error("origin node id {0} is above {max}", max = MAX_EXTENDED_SERVER_ID)]
    OriginTooLarge(u64),
    #[error("session id {0:#x} is already in use")]
    IdInUse(i64),
    #[error("session id {0:#x} is reserved")]
    Reserved(i64),
}

/// Session id for a `CreateSession` applied at `log_index` that came from `origin_node`:
/// the node id in the top byte, like ZooKeeper's `SessionTrackerImpl.initializeNextSessionId`,
/// and the low 56 bits of the Raft log index (unique per entry) below it.
pub fn session_id_for(origin_node: u64, log_index: u64) -> Result<i64, SessionError> {
    if origin_node > MAX_EXTENDED_SERVER_ID {
        return Err(SessionError::OriginTooLarge(origin_node));
    }
    let id = ((origin_node << 56) | (log_index & 0x00ff_ffff_ffff_ffff)) as i64;
    // 0 means "not ephemeral" and i64::MIN marks containers; neither may own nodes.
    if id == 0 || id == CONTAINER_EPHEMERAL_OWNER {
        return Err(SessionError::Reserved(id));
    }
    Ok(id)
}

/// The table, ordered by id so that iteration and snapshots are the same on every replica.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionTable {
    sessions: BTreeMap<i64, Session>,
}

impl SessionTable {
    pub fn new() -> SessionTable {
        SessionTable::default()
    }

    /// Creates the session decided by (`origin_node`, `log_index`) and returns its id.
    pub fn create(
        &mut self,
        origin_node: u64,
        log_index: u64,
        timeout_ms: i32,
        password: [u8; 16],
    ) -> Result<i64, SessionError> {
        let id = session_id_for(origin_node, log_index)?;
        self.insert(
            id,
            Session {
                timeout_ms,
                password,
            },
        )?;
        Ok(id)
    }

    /// Adds a session under a given id (snapshot restore, tests).
    pub fn insert(&mut self, id: i64, session: Session) -> Result<(), SessionError> {
        if id == 0 || id == CONTAINER_EPHEMERAL_OWNER {
            return Err(SessionError::Reserved(id));
        }
        if self.sessions.contains_key(&id) {
            return Err(SessionError::IdInUse(id));
        }
        self.sessions.insert(id, session);
        Ok(())
    }

    pub fn remove(&mut self, id: i64) -> Option<Session> {
        self.sessions.remove(&id)
    }

    pub fn get(&self, id: i64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    pub fn contains(&self, id: i64) -> bool {
        self.sessions.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Sessions in id order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &Session)> {
        self.sessions.iter().map(|(id, s)| (*id, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_tagged() {
        assert_eq!(session_id_for(1, 5), Ok((1i64 << 56) | 5));
        assert_eq!(session_id_for(254, 1), Ok(((254u64 << 56) | 1) as i64));
        assert_eq!(
            session_id_for(255, 1),
            Err(SessionError::OriginTooLarge(255))
        );
        assert_eq!(session_id_for(0, 0), Err(SessionError::Reserved(0)));
        assert_eq!(
            session_id_for(0x80, 0),
            Err(SessionError::Reserved(i64::MIN))
        );
        // Only the low 56 bits of the index are used; the node byte stays intact.
        assert_eq!(
            session_id_for(3, u64::MAX),
            Ok(((3u64 << 56) | 0x00ff_ffff_ffff_ffff) as i64)
        );
        // No session id reads as a container or TTL owner.
        for node in [1u64, 0x7f, 0x80, 0xfe] {
            let id = session_id_for(node, 42).unwrap();
            assert!(matches!(
                crate::tree::EphemeralType::of(id),
                crate::tree::EphemeralType::Normal(_)
            ));
        }
    }

    #[test]
    fn create_get_remove() {
        let mut t = SessionTable::new();
        let id = t.create(2, 10, 30_000, [7; 16]).unwrap();
        assert_eq!(
            t.get(id),
            Some(&Session {
                timeout_ms: 30_000,
                password: [7; 16]
            })
        );
        assert_eq!(t.create(2, 10, 1, [0; 16]), Err(SessionError::IdInUse(id)));
        assert_eq!(t.len(), 1);
        assert!(t.remove(id).is_some());
        assert!(t.remove(id).is_none());
        assert!(t.is_empty());
    }
}
