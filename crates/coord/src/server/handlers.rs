//! Client requests → state-machine commands and reads, and results → wire responses.
//!
//! Pure functions between the jute types (`sluice_jute`) and the machine's types
//! (`crate::machine`, `crate::tree`): the connection layer decides *when* to run something
//! (ordering, pipelining); this module decides *what* it means, with ZooKeeper 3.8's error codes.

use sluice_jute::{
    Create2Response, CreateResponse, ExistsResponse, GetAclResponse, GetAllChildrenNumberResponse,
    GetChildren2Response, GetEphemeralsResponse, SetAclResponse, SetDataResponse,
};
use sluice_jute::{
    CreateMode, CreateRequest, CreateTtlRequest, ErrorCode, GetChildrenResponse, GetDataResponse,
    Id, MultiOp, MultiRequest, MultiResponse, OpCode, Request, Response,
};

use crate::machine::{CommandResult, Machine, WriteOp};
use crate::tree::{CreateOp, Op, OpResult, ReadOp, ReadResult};
use crate::watches::{Notification, SetWatches, WatchManager};

/// What a request needs from the server.
#[derive(Debug)]
pub(crate) enum Kind {
    /// Goes through the replicated log.
    Write(WriteOp),
    /// A `sync`: a barrier through the log, answered with the path.
    Sync(String),
    /// Served from this node's state (reads, watch management, whoAmI).
    Local,
    Ping,
    Auth,
    Close,
    /// Refused with this code, and the connection is closed (ZooKeeper closes on requests it
    /// cannot process, such as `reconfig` when reconfiguration is disabled).
    Refuse(ErrorCode),
    /// Answered with this code; the session goes on.
    Fail(ErrorCode),
    /// A `reconfig`: an ensemble change, then a write of `/zookeeper/config` (reconfig.rs).
    Reconfig,
}

/// Classifies `req`, turning writes into replicated operations. `ttl_enabled` is
/// `extendedTypesEnabled`.
pub(crate) fn classify(req: &Request, ttl_enabled: bool) -> Kind {
    let write = |r: Result<WriteOp, ErrorCode>| match r {
        Ok(op) => Kind::Write(op),
        Err(code) => Kind::Fail(code),
    };
    match req {
        Request::Create(c) | Request::Create2(c) => {
            write(create_op(c, None, ttl_enabled).map(WriteOp::Create))
        }
        Request::CreateContainer(c) => write(container_op(c).map(WriteOp::Create)),
        Request::CreateTtl(c) => write(ttl_op(c, ttl_enabled).map(WriteOp::Create)),
        Request::Delete(d) => Kind::Write(WriteOp::Delete {
            path: d.path.clone(),
            version: d.version,
        }),
        Request::SetData(s) => Kind::Write(WriteOp::SetData {
            path: s.path.clone(),
            data: data_of(&s.data),
            version: s.version,
        }),
        Request::SetAcl(s) => Kind::Write(WriteOp::SetAcl {
            path: s.path.clone(),
            acl: s.acl.clone(),
            version: s.version,
        }),
        Request::Multi(m) => match multi_ops(m, ttl_enabled) {
            Ok(ops) => Kind::Write(WriteOp::Multi(ops)),
            Err(code) => Kind::Fail(code),
        },
        Request::Sync(s) => Kind::Sync(s.path.clone()),
        Request::Ping => Kind::Ping,
        Request::Auth(_) => Kind::Auth,
        Request::CloseSession => Kind::Close,
        Request::Reconfig(_) => Kind::Reconfig,
        Request::Sasl(_) => Kind::Refuse(ErrorCode::AuthFailed),
        Request::Exists(_)
        | Request::GetData(_)
        | Request::GetAcl(_)
        | Request::GetChildren(_)
        | Request::GetChildren2(_)
        | Request::GetAllChildrenNumber(_)
        | Request::GetEphemerals(_)
        | Request::MultiRead(_)
        | Request::SetWatches(_)
        | Request::SetWatches2(_)
        | Request::AddWatch(_)
        | Request::RemoveWatches(_)
        | Request::CheckWatches(_)
        | Request::WhoAmI => Kind::Local,
    }
}

/// A request's data field: null stays null (ZooKeeper keeps it apart from empty).
fn data_of(data: &Option<bytes::Bytes>) -> Option<Vec<u8>> {
    data.as_deref().map(<[u8]>::to_vec)
}

fn create_op(
    c: &CreateRequest,
    ttl: Option<i64>,
    ttl_enabled: bool,
) -> Result<CreateOp, ErrorCode> {
    let mode = c.create_mode().ok_or(ErrorCode::BadArguments)?;
    if mode.is_ttl() && !ttl_enabled {
        return Err(ErrorCode::Unimplemented);
    }
    Ok(CreateOp {
        path: c.path.clone(),
        data: data_of(&c.data),
        acl: c.acl.clone(),
        mode,
        ttl: ttl.unwrap_or(-1),
    })
}

fn container_op(c: &CreateRequest) -> Result<CreateOp, ErrorCode> {
    let op = create_op(c, None, false)?;
    if op.mode != CreateMode::Container {
        return Err(ErrorCode::BadArguments);
    }
    Ok(op)
}

fn ttl_op(c: &CreateTtlRequest, ttl_enabled: bool) -> Result<CreateOp, ErrorCode> {
    if !ttl_enabled {
        return Err(ErrorCode::Unimplemented);
    }
    let mode = c.create_mode().ok_or(ErrorCode::BadArguments)?;
    Ok(CreateOp {
        path: c.path.clone(),
        data: data_of(&c.data),
        acl: c.acl.clone(),
        mode,
        ttl: c.ttl,
    })
}

fn multi_ops(m: &MultiRequest, ttl_enabled: bool) -> Result<Vec<Op>, ErrorCode> {
    m.ops
        .iter()
        .map(|op| {
            Ok(match op {
                MultiOp::Create(c) | MultiOp::Create2(c) => {
                    Op::Create(create_op(c, None, ttl_enabled)?)
                }
                MultiOp::CreateContainer(c) => Op::Create(container_op(c)?),
                MultiOp::CreateTtl(c) => Op::Create(ttl_op(c, ttl_enabled)?),
                MultiOp::Delete(d) => Op::Delete {
                    path: d.path.clone(),
                    version: d.version,
                },
                MultiOp::SetData(s) => Op::SetData {
                    path: s.path.clone(),
                    data: data_of(&s.data),
                    version: s.version,
                },
                MultiOp::Check(c) => Op::Check {
                    path: c.path.clone(),
                    version: c.version,
                },
                MultiOp::GetChildren(_) | MultiOp::GetData(_) => {
                    return Err(ErrorCode::BadArguments)
                }
            })
        })
        .collect()
}

/// The reply to a write, given the op code the client used and what the machine answered.
pub(crate) fn write_response(req: &Request, result: CommandResult) -> (ErrorCode, Response) {
    let op = req.op_code();
    match result {
        CommandResult::Error(code) => (code, Response::Empty),
        CommandResult::Created { path, stat } => match op {
            OpCode::Create => (ErrorCode::Ok, Response::Create(CreateResponse { path })),
            _ => (
                ErrorCode::Ok,
                Response::Create2(Create2Response { path, stat }),
            ),
        },
        CommandResult::Deleted => (ErrorCode::Ok, Response::Empty),
        CommandResult::DataSet { stat } => {
            (ErrorCode::Ok, Response::SetData(SetDataResponse { stat }))
        }
        CommandResult::AclSet { stat } => {
            (ErrorCode::Ok, Response::SetAcl(SetAclResponse { stat }))
        }
        CommandResult::Multi(results) => {
            let kinds: Vec<OpCode> = match req {
                Request::Multi(m) => m.ops.iter().map(MultiOp::op_code).collect(),
                _ => Vec::new(),
            };
            let results = results
                .into_iter()
                .enumerate()
                .map(|(i, r)| multi_result(kinds.get(i).copied(), r))
                .collect();
            (ErrorCode::Ok, Response::Multi(MultiResponse { results }))
        }
        CommandResult::Synced { path } => (
            ErrorCode::Ok,
            Response::Sync(sluice_jute::SyncResponse { path }),
        ),
        CommandResult::Config { data, stat } => (
            ErrorCode::Ok,
            Response::Reconfig(GetDataResponse {
                data: Some(data.into()),
                stat,
            }),
        ),
        CommandResult::Checked | CommandResult::Noop | CommandResult::Reaped(_) => {
            (ErrorCode::Ok, Response::Empty)
        }
        CommandResult::SessionCreated { .. } | CommandResult::SessionClosed { .. } => {
            (ErrorCode::Ok, Response::Empty)
        }
    }
}

fn multi_result(kind: Option<OpCode>, r: OpResult) -> sluice_jute::OpResult {
    use sluice_jute::OpResult as J;
    match r {
        OpResult::Create { path, stat } => match kind {
            Some(OpCode::Create) | None => J::Create(CreateResponse { path }),
            _ => J::Create2(Create2Response { path, stat }),
        },
        OpResult::Delete => J::Delete,
        OpResult::SetData { stat } => J::SetData(SetDataResponse { stat }),
        OpResult::Check => J::Check,
        OpResult::Error(code) => J::Error(code),
    }
}

/// Serves a local request against `machine`, registering watches in `watches` under the same
/// lock (so no change can fall between the read and its watch). Notifications that a
/// `setWatches` finds missed are returned to be sent before the reply.
pub(crate) fn local(
    req: &Request,
    session: i64,
    auth: &[Id],
    machine: &Machine,
    watches: &mut WatchManager,
) -> (ErrorCode, Response, Vec<Notification>) {
    let tree = machine.tree();
    let ok = |r: Response| (ErrorCode::Ok, r, Vec::new());
    let err = |c: ErrorCode| (c, Response::Empty, Vec::new());
    match req {
        Request::Exists(r) => match tree.exists(&r.path, auth) {
            Ok(stat) => {
                if r.watch {
                    // An exists watch is set whether or not the node is there: on a missing
                    // node it waits for NodeCreated.
                    watches.add_data_watch(session, &r.path);
                }
                match stat {
                    Some(stat) => ok(Response::Exists(ExistsResponse { stat })),
                    None => err(ErrorCode::NoNode),
                }
            }
            Err(c) => err(c),
        },
        Request::GetData(r) => match tree.get_data(&r.path, auth) {
            Ok((data, stat)) => {
                if r.watch {
                    watches.add_data_watch(session, &r.path);
                }
                ok(Response::GetData(GetDataResponse {
                    data: data.map(bytes::Bytes::copy_from_slice),
                    stat,
                }))
            }
            Err(c) => err(c),
        },
        Request::GetChildren(r) => match tree.get_children(&r.path, auth) {
            Ok((children, _)) => {
                if r.watch {
                    watches.add_child_watch(session, &r.path);
                }
                ok(Response::GetChildren(GetChildrenResponse {
                    children: children.into_iter().map(str::to_string).collect(),
                }))
            }
            Err(c) => err(c),
        },
        Request::GetChildren2(r) => match tree.get_children(&r.path, auth) {
            Ok((children, stat)) => {
                if r.watch {
                    watches.add_child_watch(session, &r.path);
                }
                ok(Response::GetChildren2(GetChildren2Response {
                    children: children.into_iter().map(str::to_string).collect(),
                    stat,
                }))
            }
            Err(c) => err(c),
        },
        Request::GetAcl(r) => match tree.get_acl(&r.path, auth) {
            Ok((acl, stat)) => ok(Response::GetAcl(GetAclResponse { acl, stat })),
            Err(c) => err(c),
        },
        Request::GetAllChildrenNumber(r) => match tree.get_all_children_number(&r.path, auth) {
            Ok(total_number) => ok(Response::GetAllChildrenNumber(
                GetAllChildrenNumberResponse { total_number },
            )),
            Err(c) => err(c),
        },
        Request::GetEphemerals(r) => ok(Response::GetEphemerals(GetEphemeralsResponse {
            ephemerals: tree.get_ephemerals(session, &r.prefix_path),
        })),
        Request::MultiRead(m) => {
            let ops: Vec<ReadOp> = m
                .ops
                .iter()
                .filter_map(|op| match op {
                    MultiOp::GetChildren(g) => Some(ReadOp::GetChildren {
                        path: g.path.clone(),
                    }),
                    MultiOp::GetData(g) => Some(ReadOp::GetData {
                        path: g.path.clone(),
                    }),
                    _ => None,
                })
                .collect();
            let results = tree
                .multi_read(&ops, auth)
                .into_iter()
                .map(|r| match r {
                    ReadResult::GetChildren { children } => {
                        sluice_jute::OpResult::GetChildren(GetChildrenResponse { children })
                    }
                    ReadResult::GetData { data, stat } => {
                        sluice_jute::OpResult::GetData(GetDataResponse {
                            data: data.map(bytes::Bytes::from),
                            stat,
                        })
                    }
                    ReadResult::Error(c) => sluice_jute::OpResult::Error(c),
                })
                .collect();
            ok(Response::Multi(MultiResponse { results }))
        }
        Request::SetWatches(w) => {
            let set = SetWatches {
                data: w.data_watches.clone(),
                exist: w.exist_watches.clone(),
                child: w.child_watches.clone(),
                persistent: Vec::new(),
                persistent_recursive: Vec::new(),
            };
            let missed = watches.set_watches(session, w.relative_zxid, &set, tree);
            (ErrorCode::Ok, Response::Empty, missed)
        }
        Request::SetWatches2(w) => {
            let set = SetWatches {
                data: w.data_watches.clone(),
                exist: w.exist_watches.clone(),
                child: w.child_watches.clone(),
                persistent: w.persistent_watches.clone(),
                persistent_recursive: w.persistent_recursive_watches.clone(),
            };
            let missed = watches.set_watches(session, w.relative_zxid, &set, tree);
            (ErrorCode::Ok, Response::Empty, missed)
        }
        Request::AddWatch(a) => match a.watch_mode() {
            Some(mode) => {
                watches.add_watch(session, &a.path, mode);
                ok(Response::AddWatch(sluice_jute::ErrorResponse {
                    err: ErrorCode::Ok,
                }))
            }
            None => err(ErrorCode::BadArguments),
        },
        Request::RemoveWatches(r) => match r.watcher() {
            Some(kind) => match watches.remove_watches(session, &r.path, kind) {
                Ok(()) => ok(Response::Empty),
                Err(c) => err(c),
            },
            None => err(ErrorCode::BadArguments),
        },
        Request::CheckWatches(r) => match r.watcher() {
            Some(kind) => match watches.check_watches(session, &r.path, kind) {
                Ok(()) => ok(Response::Empty),
                Err(c) => err(c),
            },
            None => err(ErrorCode::BadArguments),
        },
        Request::WhoAmI => ok(Response::WhoAmI(sluice_jute::WhoAmIResponse {
            client_info: auth
                .iter()
                .map(|id| sluice_jute::ClientInfo {
                    auth_scheme: id.scheme.clone(),
                    // DigestAuthenticationProvider.getUserName: the name before the hash.
                    user: match id.scheme.as_str() {
                        "digest" => id.id.split(':').next().unwrap_or_default().to_string(),
                        _ => id.id.clone(),
                    },
                })
                .collect(),
        })),
        _ => err(ErrorCode::Unimplemented),
    }
}
