//! The coordinator's replicated state machine: what Raft applies, in log order, on every replica.
//!
//! Data flow: a server turns a client write (or a session event, or the reaper's findings) into
//! a [`Command`], the Raft layer replicates it and hands each committed entry to
//! [`Machine::apply`] together with the entry's zxid, the leader-assigned time and the log
//! index. `apply` consults only the command, those three numbers and the current state, so all
//! replicas reach the same state; it returns the [`CommandResult`] for the client that asked
//! and the watch [`Trigger`]s for the local watch manager (`crate::watches`). Reads go straight
//! to [`Machine::tree`].
//!
//! The machine holds the znode tree (`crate::tree`), the session table (`crate::sessions`), the
//! last applied zxid and log index. [`Machine::snapshot`] / [`Machine::restore`] serialise all
//! of it (format in `snapshot.rs`).

mod snapshot;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use sluice_jute::{Acl, ErrorCode, Id, Stat};

pub use self::snapshot::{SnapshotError, SNAPSHOT_MAGIC, SNAPSHOT_VERSION};
use crate::sessions::{SessionError, SessionTable};
use crate::tree::{CreateOp, FrozenTree, Op, OpResult, Tree, Trigger, TxnContext};

/// A replicated command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A new session. Its id is derived from `origin_node` (the proposing server's id, at most
    /// 254) and the log index of this entry.
    CreateSession {
        timeout_ms: i32,
        password: [u8; 16],
        origin_node: u64,
    },
    /// Client close or expiry: removes the session and deletes its ephemeral nodes.
    CloseSession { session_id: i64 },
    /// A client write, with the caller's authenticated ids as the connection had them.
    Write {
        session_id: i64,
        auth: Vec<Id>,
        op: WriteOp,
    },
    /// Deletes containers / TTL nodes found by [`Tree::reap_candidates`] (ZooKeeper's
    /// `deleteContainer`), each checked again at apply time.
    ReapNodes { paths: Vec<String> },
    /// A sync barrier: changes nothing, answered once everything before it is applied.
    Sync { path: String },
    /// An entry with no effect (e.g. a new leader's first entry).
    Noop,
    /// Writes the ensemble's configuration into `/zookeeper/config` after a membership change.
    /// In a log entry it travels apart from the other commands (see `server::Batch`).
    SetConfig(ConfigWrite),
}

/// The ensemble's configuration as [`Command::SetConfig`] writes it: `server.N` lines, each
/// ending in a newline. The version is the command's zxid, or 0 when `static_version`
/// (reconfiguration disabled, as ZooKeeper shows a static ensemble). Unless `always`, lines
/// equal to the current ones change nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigWrite {
    pub servers: String,
    pub static_version: bool,
    pub always: bool,
}

impl Command {
    /// The data fields of this command, by position: 0 for a single create or setData, each
    /// op's index in a multi. What [`Command::null_data`] and [`Command::set_null_data`] count.
    fn data_fields(&mut self) -> Vec<(u32, &mut Option<Vec<u8>>)> {
        let Command::Write { op, .. } = self else {
            return Vec::new();
        };
        match op {
            WriteOp::Create(c) => vec![(0, &mut c.data)],
            WriteOp::SetData { data, .. } => vec![(0, data)],
            WriteOp::Multi(ops) => ops
                .iter_mut()
                .enumerate()
                .filter_map(|(i, op)| match op {
                    Op::Create(c) => Some((i as u32, &mut c.data)),
                    Op::SetData { data, .. } => Some((i as u32, data)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The positions whose data is null (see [`crate::tree::op_data`]: a log entry carries
    /// them beside the commands).
    pub fn null_data(&self) -> Vec<u32> {
        self.clone()
            .data_fields()
            .into_iter()
            .filter(|(_, d)| d.is_none())
            .map(|(i, _)| i)
            .collect()
    }

    /// Marks the data at position `i` null; false if there is no data field there.
    pub fn set_null_data(&mut self, i: u32) -> bool {
        match self.data_fields().into_iter().find(|(at, _)| *at == i) {
            Some((_, d)) => {
                *d = None;
                true
            }
            None => false,
        }
    }
}

/// The write operations a client can send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOp {
    Create(CreateOp),
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        /// `None`: null data.
        #[serde(with = "crate::tree::op_data")]
        data: Option<Vec<u8>>,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<Op>),
}

/// What applying a command produced, for the client that sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    SessionCreated {
        session_id: i64,
        timeout_ms: i32,
        password: [u8; 16],
    },
    /// `existed` is false when the session was already gone (closing twice is harmless).
    SessionClosed {
        existed: bool,
    },
    Created {
        path: String,
        stat: Stat,
    },
    Deleted,
    DataSet {
        stat: Stat,
    },
    AclSet {
        stat: Stat,
    },
    Checked,
    /// A multi's results; on failure all entries are `OpResult::Error` (see [`Tree::multi`]).
    /// ZooKeeper replies to a failed multi with header error 0 and these results.
    Multi(Vec<OpResult>),
    /// One code per requested path: `Ok` if it was deleted.
    Reaped(Vec<ErrorCode>),
    Synced {
        path: String,
    },
    Noop,
    /// The configuration `/zookeeper/config` holds after a `SetConfig`, and its stat.
    Config {
        data: Vec<u8>,
        stat: Stat,
    },
    /// The command failed as a whole. For writes this is ZooKeeper's error code; a write from
    /// a session that is not in the table gets `SessionExpired`; a `CreateSession` whose id
    /// cannot be formed gets `BadArguments` (origin node above 254) or `SystemError`.
    Error(ErrorCode),
}

/// The replicated state. See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    tree: Tree,
    sessions: SessionTable,
    last_zxid: i64,
    last_applied_index: u64,
}

impl Machine {
    /// An empty machine: a fresh tree and no sessions.
    pub fn new() -> Machine {
        Machine::default()
    }

    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    pub fn sessions(&self) -> &SessionTable {
        &self.sessions
    }

    /// The largest zxid applied so far (0 before any).
    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// The log index of the last command applied (0 before any).
    pub fn last_applied_index(&self) -> u64 {
        self.last_applied_index
    }

    /// The ephemeral paths a session owns, sorted.
    pub fn session_ephemerals(&self, session_id: i64) -> Vec<String> {
        self.tree.get_ephemerals(session_id, "")
    }

    /// Applies one committed command. `zxid` and `time_ms` are the entry's transaction id and
    /// the time the leader stamped on it; `log_index` is its Raft index. Deterministic: the
    /// same state and arguments give the same result, triggers and next state.
    pub fn apply(
        &mut self,
        zxid: i64,
        time_ms: i64,
        log_index: u64,
        cmd: &Command,
    ) -> (CommandResult, Vec<Trigger>) {
        self.last_zxid = self.last_zxid.max(zxid);
        self.last_applied_index = self.last_applied_index.max(log_index);
        match cmd {
            Command::CreateSession {
                timeout_ms,
                password,
                origin_node,
            } => {
                let result =
                    match self
                        .sessions
                        .create(*origin_node, log_index, *timeout_ms, *password)
                    {
                        Ok(session_id) => CommandResult::SessionCreated {
                            session_id,
                            timeout_ms: *timeout_ms,
                            password: *password,
                        },
                        Err(SessionError::OriginTooLarge(_)) => {
                            CommandResult::Error(ErrorCode::BadArguments)
                        }
                        Err(_) => CommandResult::Error(ErrorCode::SystemError),
                    };
                (result, Vec::new())
            }
            Command::CloseSession { session_id } => {
                let existed = self.sessions.remove(*session_id).is_some();
                let triggers = self.tree.kill_session(*session_id, zxid);
                (CommandResult::SessionClosed { existed }, triggers)
            }
            Command::Write {
                session_id,
                auth,
                op,
            } => {
                let tx = TxnContext {
                    session_id: *session_id,
                    auth,
                    zxid,
                    time_ms,
                };
                if !self.sessions.contains(*session_id) {
                    return (session_gone(op), Vec::new());
                }
                self.write(&tx, op)
            }
            Command::ReapNodes { paths } => {
                let mut triggers = Vec::new();
                let codes = paths
                    .iter()
                    .map(|p| match self.tree.reap(p, zxid, time_ms) {
                        Ok(t) => {
                            triggers.extend(t);
                            ErrorCode::Ok
                        }
                        Err(code) => code,
                    })
                    .collect();
                (CommandResult::Reaped(codes), triggers)
            }
            Command::Sync { path } => (CommandResult::Synced { path: path.clone() }, Vec::new()),
            Command::Noop => (CommandResult::Noop, Vec::new()),
            Command::SetConfig(ConfigWrite {
                servers,
                static_version,
                always,
            }) => {
                let current = self.tree.config_data();
                let unchanged = String::from_utf8_lossy(current)
                    .lines()
                    .filter(|l| !l.starts_with("version="))
                    .map(|l| format!("{l}\n"))
                    .collect::<String>()
                    == *servers;
                if unchanged && !*always && !current.is_empty() {
                    let stat = self.tree.stat(crate::tree::CONFIG).unwrap_or_default();
                    let data = current.to_vec();
                    return (CommandResult::Config { data, stat }, Vec::new());
                }
                let version = if *static_version { 0 } else { zxid };
                let data = format!("{servers}version={version:x}").into_bytes();
                let (stat, triggers) = self.tree.set_config(&data, version, time_ms);
                (CommandResult::Config { data, stat }, triggers)
            }
        }
    }

    fn write(&mut self, tx: &TxnContext<'_>, op: &WriteOp) -> (CommandResult, Vec<Trigger>) {
        let outcome = match op {
            WriteOp::Create(create) => self
                .tree
                .create(tx, create)
                .map(|((path, stat), t)| (CommandResult::Created { path, stat }, t)),
            WriteOp::Delete { path, version } => self
                .tree
                .delete(tx, path, *version)
                .map(|t| (CommandResult::Deleted, t)),
            WriteOp::SetData {
                path,
                data,
                version,
            } => self
                .tree
                .set_data(tx, path, data.as_deref(), *version)
                .map(|(stat, t)| (CommandResult::DataSet { stat }, t)),
            WriteOp::SetAcl { path, acl, version } => self
                .tree
                .set_acl(tx, path, acl, *version)
                .map(|stat| (CommandResult::AclSet { stat }, Vec::new())),
            WriteOp::Check { path, version } => self
                .tree
                .check(path, *version, tx.auth)
                .map(|()| (CommandResult::Checked, Vec::new())),
            WriteOp::Multi(ops) => {
                let (results, triggers) = self.tree.multi(tx, ops);
                Ok((CommandResult::Multi(results), triggers))
            }
        };
        outcome.unwrap_or_else(|code| (CommandResult::Error(code), Vec::new()))
    }

    /// Serialises the whole replicated state (format: see `snapshot.rs`). Equal states give
    /// equal bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        self.freeze().encode()
    }

    /// The replicated state as it is now, to be serialised later (on another thread, while
    /// this machine goes on applying): the tree's nodes are shared, not copied (see
    /// [`Tree::freeze`]); the session table, a few entries per client, is copied.
    pub fn freeze(&self) -> FrozenMachine {
        FrozenMachine {
            tree: self.tree.freeze(),
            sessions: self.sessions.clone(),
            last_zxid: self.last_zxid,
            last_applied_index: self.last_applied_index,
        }
    }

    /// Rebuilds a machine from [`Machine::snapshot`] output, verifying its checksum.
    pub fn restore(bytes: &[u8]) -> Result<Machine, SnapshotError> {
        snapshot::decode(bytes)
    }
}

/// A [`Machine`]'s replicated state at one moment, made by [`Machine::freeze`].
#[derive(Debug, Clone)]
pub struct FrozenMachine {
    tree: FrozenTree,
    sessions: SessionTable,
    last_zxid: i64,
    last_applied_index: u64,
}

impl FrozenMachine {
    /// The snapshot image: the same bytes [`Machine::snapshot`] gave at the moment of the
    /// freeze.
    pub fn encode(&self) -> Vec<u8> {
        snapshot::encode(self)
    }
}

/// The reply to a write from a session that is not (or no longer) in the table. ZooKeeper's
/// `checkSession` fails each op of a multi in turn, so a multi reports it on its first op.
fn session_gone(op: &WriteOp) -> CommandResult {
    match op {
        WriteOp::Multi(ops) => CommandResult::Multi(
            (0..ops.len())
                .map(|i| {
                    OpResult::Error(if i == 0 {
                        ErrorCode::SessionExpired
                    } else {
                        ErrorCode::RuntimeInconsistency
                    })
                })
                .collect(),
        ),
        _ => CommandResult::Error(ErrorCode::SessionExpired),
    }
}
