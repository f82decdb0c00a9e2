//! Whole client-port messages after the handshake: the [`Request`] enum a server decodes from
//! a `RequestHeader` and body, the [`Response`] enum it encodes after a `ReplyHeader`, and the
//! reverse directions for clients ([`Request::encode`], [`ServerMessage::decode`]).
//!
//! Which body follows a header is decided by the op code alone, so a client must remember the op
//! of each outstanding xid to decode its reply.

use bytes::BytesMut;

use crate::multi::{MultiRequest, MultiResponse};
use crate::records::{
    AddWatchRequest, AuthPacket, CheckWatchesRequest, Create2Response, CreateRequest,
    CreateResponse, CreateTtlRequest, DeleteRequest, ErrorResponse, ExistsRequest, ExistsResponse,
    GetAclRequest, GetAclResponse, GetAllChildrenNumberRequest, GetAllChildrenNumberResponse,
    GetChildren2Request, GetChildren2Response, GetChildrenRequest, GetChildrenResponse,
    GetDataRequest, GetDataResponse, GetEphemeralsRequest, GetEphemeralsResponse, GetSaslRequest,
    ReconfigRequest, RemoveWatchesRequest, SetAclRequest, SetAclResponse, SetDataRequest,
    SetDataResponse, SetSaslResponse, SetWatches, SetWatches2, SyncRequest, SyncResponse,
    WhoAmIResponse,
};
use crate::session::{
    ReplyHeader, RequestHeader, WatcherEvent, AUTH_XID, NOTIFICATION_XID, PING_XID, SET_WATCHES_XID,
};
use crate::types::{ErrorCode, OpCode};
use crate::wire::{DecodeError, Reader, Record};

/// A client request, by op code. Ops without a body (`ping`, `closeSession`, `whoAmI`) are unit
/// variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create(CreateRequest),
    Create2(CreateRequest),
    CreateContainer(CreateRequest),
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    Exists(ExistsRequest),
    GetData(GetDataRequest),
    SetData(SetDataRequest),
    GetAcl(GetAclRequest),
    SetAcl(SetAclRequest),
    GetChildren(GetChildrenRequest),
    GetChildren2(GetChildren2Request),
    GetAllChildrenNumber(GetAllChildrenNumberRequest),
    GetEphemerals(GetEphemeralsRequest),
    Sync(SyncRequest),
    /// Only write and check ops; decoding guarantees it.
    Multi(MultiRequest),
    /// Only getData and getChildren ops; decoding guarantees it.
    MultiRead(MultiRequest),
    Reconfig(ReconfigRequest),
    SetWatches(SetWatches),
    SetWatches2(SetWatches2),
    AddWatch(AddWatchRequest),
    RemoveWatches(RemoveWatchesRequest),
    CheckWatches(CheckWatchesRequest),
    Auth(AuthPacket),
    Sasl(GetSaslRequest),
    WhoAmI,
    Ping,
    CloseSession,
}

impl Request {
    pub fn op_code(&self) -> OpCode {
        match self {
            Request::Create(_) => OpCode::Create,
            Request::Create2(_) => OpCode::Create2,
            Request::CreateContainer(_) => OpCode::CreateContainer,
            Request::CreateTtl(_) => OpCode::CreateTtl,
            Request::Delete(_) => OpCode::Delete,
            Request::Exists(_) => OpCode::Exists,
            Request::GetData(_) => OpCode::GetData,
            Request::SetData(_) => OpCode::SetData,
            Request::GetAcl(_) => OpCode::GetAcl,
            Request::SetAcl(_) => OpCode::SetAcl,
            Request::GetChildren(_) => OpCode::GetChildren,
            Request::GetChildren2(_) => OpCode::GetChildren2,
            Request::GetAllChildrenNumber(_) => OpCode::GetAllChildrenNumber,
            Request::GetEphemerals(_) => OpCode::GetEphemerals,
            Request::Sync(_) => OpCode::Sync,
            Request::Multi(_) => OpCode::Multi,
            Request::MultiRead(_) => OpCode::MultiRead,
            Request::Reconfig(_) => OpCode::Reconfig,
            Request::SetWatches(_) => OpCode::SetWatches,
            Request::SetWatches2(_) => OpCode::SetWatches2,
            Request::AddWatch(_) => OpCode::AddWatch,
            Request::RemoveWatches(_) => OpCode::RemoveWatches,
            Request::CheckWatches(_) => OpCode::CheckWatches,
            Request::Auth(_) => OpCode::Auth,
            Request::Sasl(_) => OpCode::Sasl,
            Request::WhoAmI => OpCode::WhoAmI,
            Request::Ping => OpCode::Ping,
            Request::CloseSession => OpCode::CloseSession,
        }
    }

    /// The xid the Java client always uses for this request, if it has a fixed one. Servers key
    /// on the op code, not on these, but replies echo them and clients route by them.
    pub fn fixed_xid(&self) -> Option<i32> {
        match self {
            Request::Ping => Some(PING_XID),
            Request::Auth(_) => Some(AUTH_XID),
            Request::SetWatches(_) | Request::SetWatches2(_) => Some(SET_WATCHES_XID),
            _ => None,
        }
    }

    /// Decodes the body that follows `header`.
    ///
    /// Op codes ZooKeeper does not define are [`DecodeError::UnknownOpCode`]; defined ones a
    /// client may not send (`notification`, a stand-alone `check`, `deleteContainer`,
    /// `createSession`, `error`) are [`DecodeError::UnsupportedOpCode`]. A 3.8 server answers
    /// both with `Unimplemented` and closes the session.
    pub fn read(header: &RequestHeader, r: &mut Reader<'_>) -> Result<Request, DecodeError> {
        let op = header.op_code()?;
        Ok(match op {
            OpCode::Create => Request::Create(r.read()?),
            OpCode::Create2 => Request::Create2(r.read()?),
            OpCode::CreateContainer => Request::CreateContainer(r.read()?),
            OpCode::CreateTtl => Request::CreateTtl(r.read()?),
            OpCode::Delete => Request::Delete(r.read()?),
            OpCode::Exists => Request::Exists(r.read()?),
            OpCode::GetData => Request::GetData(r.read()?),
            OpCode::SetData => Request::SetData(r.read()?),
            OpCode::GetAcl => Request::GetAcl(r.read()?),
            OpCode::SetAcl => Request::SetAcl(r.read()?),
            OpCode::GetChildren => Request::GetChildren(r.read()?),
            OpCode::GetChildren2 => Request::GetChildren2(r.read()?),
            OpCode::GetAllChildrenNumber => Request::GetAllChildrenNumber(r.read()?),
            OpCode::GetEphemerals => Request::GetEphemerals(r.read()?),
            OpCode::Sync => Request::Sync(r.read()?),
            OpCode::Multi | OpCode::MultiRead => {
                let m: MultiRequest = r.read()?;
                m.check_kind(op)?;
                if op == OpCode::Multi {
                    Request::Multi(m)
                } else {
                    Request::MultiRead(m)
                }
            }
            OpCode::Reconfig => Request::Reconfig(r.read()?),
            OpCode::SetWatches => Request::SetWatches(r.read()?),
            OpCode::SetWatches2 => Request::SetWatches2(r.read()?),
            OpCode::AddWatch => Request::AddWatch(r.read()?),
            OpCode::RemoveWatches => Request::RemoveWatches(r.read()?),
            OpCode::CheckWatches => Request::CheckWatches(r.read()?),
            OpCode::Auth => Request::Auth(r.read()?),
            OpCode::Sasl => Request::Sasl(r.read()?),
            OpCode::WhoAmI => Request::WhoAmI,
            OpCode::Ping => Request::Ping,
            OpCode::CloseSession => Request::CloseSession,
            OpCode::Notification
            | OpCode::Check
            | OpCode::DeleteContainer
            | OpCode::CreateSession
            | OpCode::Error => return Err(DecodeError::UnsupportedOpCode(op)),
        })
    }

    /// Decodes a whole frame body: header, then request. A server that wants to answer a bad
    /// body by xid reads the [`RequestHeader`] itself and then calls [`Request::read`].
    pub fn decode_frame(frame: &[u8]) -> Result<(RequestHeader, Request), DecodeError> {
        let mut r = Reader::new(frame);
        let header: RequestHeader = r.read()?;
        let req = Request::read(&header, &mut r)?;
        Ok((header, req))
    }

    /// Appends the body alone.
    pub fn write_body(&self, buf: &mut BytesMut) {
        match self {
            Request::Create(c) | Request::Create2(c) | Request::CreateContainer(c) => c.write(buf),
            Request::CreateTtl(c) => c.write(buf),
            Request::Delete(x) => x.write(buf),
            Request::Exists(x) => x.write(buf),
            Request::GetData(x) => x.write(buf),
            Request::SetData(x) => x.write(buf),
            Request::GetAcl(x) => x.write(buf),
            Request::SetAcl(x) => x.write(buf),
            Request::GetChildren(x) => x.write(buf),
            Request::GetChildren2(x) => x.write(buf),
            Request::GetAllChildrenNumber(x) => x.write(buf),
            Request::GetEphemerals(x) => x.write(buf),
            Request::Sync(x) => x.write(buf),
            Request::Multi(m) | Request::MultiRead(m) => m.write(buf),
            Request::Reconfig(x) => x.write(buf),
            Request::SetWatches(x) => x.write(buf),
            Request::SetWatches2(x) => x.write(buf),
            Request::AddWatch(x) => x.write(buf),
            Request::RemoveWatches(x) => x.write(buf),
            Request::CheckWatches(x) => x.write(buf),
            Request::Auth(x) => x.write(buf),
            Request::Sasl(x) => x.write(buf),
            Request::WhoAmI | Request::Ping | Request::CloseSession => {}
        }
    }

    /// Appends a frame body (no length prefix): the header with `xid` and this op, then the body.
    /// Pass [`Request::fixed_xid`] where it is `Some`, as ZooKeeper clients do.
    pub fn encode(&self, xid: i32, buf: &mut BytesMut) {
        RequestHeader::new(xid, self.op_code()).write(buf);
        self.write_body(buf);
    }
}

/// A reply body, by the op it answers. `Empty` is the reply to ops without a response record
/// and the body of every reply whose header carries an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Empty,
    Create(CreateResponse),
    /// Also the reply to `createContainer` and `createTTL`.
    Create2(Create2Response),
    Exists(ExistsResponse),
    GetData(GetDataResponse),
    SetData(SetDataResponse),
    GetAcl(GetAclResponse),
    SetAcl(SetAclResponse),
    GetChildren(GetChildrenResponse),
    GetChildren2(GetChildren2Response),
    GetAllChildrenNumber(GetAllChildrenNumberResponse),
    GetEphemerals(GetEphemeralsResponse),
    Sync(SyncResponse),
    /// Also the reply to `multiRead`.
    Multi(MultiResponse),
    /// The new configuration and the config node's stat.
    Reconfig(GetDataResponse),
    /// ZooKeeper answers `addWatch` with an `ErrorResponse` holding `Ok`.
    AddWatch(ErrorResponse),
    WhoAmI(WhoAmIResponse),
    Sasl(SetSaslResponse),
}

impl Response {
    /// Decodes the body of a successful reply to `op`. Do not call it when the reply header's
    /// `err` is not `Ok`: then there is no body to read (see [`ServerMessage::decode`]).
    pub fn read(op: OpCode, r: &mut Reader<'_>) -> Result<Response, DecodeError> {
        Ok(match op {
            OpCode::Create => Response::Create(r.read()?),
            OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
                Response::Create2(r.read()?)
            }
            OpCode::Exists => Response::Exists(r.read()?),
            OpCode::GetData => Response::GetData(r.read()?),
            OpCode::SetData => Response::SetData(r.read()?),
            OpCode::GetAcl => Response::GetAcl(r.read()?),
            OpCode::SetAcl => Response::SetAcl(r.read()?),
            OpCode::GetChildren => Response::GetChildren(r.read()?),
            OpCode::GetChildren2 => Response::GetChildren2(r.read()?),
            OpCode::GetAllChildrenNumber => Response::GetAllChildrenNumber(r.read()?),
            OpCode::GetEphemerals => Response::GetEphemerals(r.read()?),
            OpCode::Sync => Response::Sync(r.read()?),
            OpCode::Multi | OpCode::MultiRead => Response::Multi(r.read()?),
            OpCode::Reconfig => Response::Reconfig(r.read()?),
            OpCode::AddWatch => Response::AddWatch(r.read()?),
            OpCode::WhoAmI => Response::WhoAmI(r.read()?),
            OpCode::Sasl => Response::Sasl(r.read()?),
            OpCode::Delete
            | OpCode::SetWatches
            | OpCode::SetWatches2
            | OpCode::RemoveWatches
            | OpCode::CheckWatches
            | OpCode::Auth
            | OpCode::Ping
            | OpCode::CloseSession => Response::Empty,
            OpCode::Notification
            | OpCode::Check
            | OpCode::DeleteContainer
            | OpCode::CreateSession
            | OpCode::Error => return Err(DecodeError::UnsupportedOpCode(op)),
        })
    }

    /// Appends the body alone.
    pub fn write(&self, buf: &mut BytesMut) {
        match self {
            Response::Empty => {}
            Response::Create(x) => x.write(buf),
            Response::Create2(x) => x.write(buf),
            Response::Exists(x) => x.write(buf),
            Response::GetData(x) | Response::Reconfig(x) => x.write(buf),
            Response::SetData(x) => x.write(buf),
            Response::GetAcl(x) => x.write(buf),
            Response::SetAcl(x) => x.write(buf),
            Response::GetChildren(x) => x.write(buf),
            Response::GetChildren2(x) => x.write(buf),
            Response::GetAllChildrenNumber(x) => x.write(buf),
            Response::GetEphemerals(x) => x.write(buf),
            Response::Sync(x) => x.write(buf),
            Response::Multi(x) => x.write(buf),
            Response::AddWatch(x) => x.write(buf),
            Response::WhoAmI(x) => x.write(buf),
            Response::Sasl(x) => x.write(buf),
        }
    }
}

/// Appends a reply frame body (no length prefix): `header`, then `body`. When `header.err` is
/// not `Ok` the body is left out whatever it is, since clients never read it.
pub fn encode_reply(buf: &mut BytesMut, header: &ReplyHeader, body: &Response) {
    header.write(buf);
    if header.err == ErrorCode::Ok {
        body.write(buf);
    }
}

/// A decoded server frame, from a client's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage {
    /// A watch fired (xid -1).
    Notification(WatcherEvent),
    /// The answer to a request; `body` is `Empty` when `header.err` is not `Ok`.
    Reply { header: ReplyHeader, body: Response },
}

impl ServerMessage {
    /// Decodes a server frame body after the handshake. `op_for_xid` names the op of the
    /// outstanding request with that xid; it is not asked about pings, auth or setWatches, whose
    /// replies never have a body. An xid it does not know is an error.
    pub fn decode(
        frame: &[u8],
        op_for_xid: impl FnOnce(i32) -> Option<OpCode>,
    ) -> Result<ServerMessage, DecodeError> {
        let mut r = Reader::new(frame);
        let header: ReplyHeader = r.read()?;
        if header.xid == NOTIFICATION_XID {
            return Ok(ServerMessage::Notification(r.read()?));
        }
        let body = if header.err != ErrorCode::Ok
            || matches!(header.xid, PING_XID | AUTH_XID | SET_WATCHES_XID)
        {
            Response::Empty
        } else {
            let op = op_for_xid(header.xid).ok_or(DecodeError::UnexpectedXid(header.xid))?;
            Response::read(op, &mut r)?
        };
        Ok(ServerMessage::Reply { header, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multi::strategies::{op_result, read_op, write_op};
    use crate::records::strategies::*;
    use crate::records::{ClientInfo, STAT_LEN};
    use crate::types::{Acl, EventType, KeeperState, Stat};
    use bytes::Bytes;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn request() -> impl Strategy<Value = Request> {
        let pw = || (path(), any::<bool>());
        prop_oneof![
            create().prop_map(Request::Create),
            create().prop_map(Request::Create2),
            create().prop_map(Request::CreateContainer),
            create_ttl().prop_map(Request::CreateTtl),
            (path(), any::<i32>())
                .prop_map(|(path, version)| Request::Delete(DeleteRequest { path, version })),
            pw().prop_map(|(path, watch)| Request::Exists(ExistsRequest { path, watch })),
            pw().prop_map(|(path, watch)| Request::GetData(GetDataRequest { path, watch })),
            (path(), data(), any::<i32>()).prop_map(|(path, data, version)| Request::SetData(
                SetDataRequest {
                    path,
                    data,
                    version
                }
            )),
            path().prop_map(|path| Request::GetAcl(GetAclRequest { path })),
            (path(), acls(), any::<i32>()).prop_map(|(path, acl, version)| Request::SetAcl(
                SetAclRequest { path, acl, version }
            )),
            pw().prop_map(|(path, watch)| Request::GetChildren(GetChildrenRequest { path, watch })),
            pw().prop_map(|(path, watch)| Request::GetChildren2(GetChildren2Request {
                path,
                watch
            })),
            path().prop_map(
                |path| Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path })
            ),
            path().prop_map(|prefix_path| Request::GetEphemerals(GetEphemeralsRequest {
                prefix_path
            })),
            path().prop_map(|path| Request::Sync(SyncRequest { path })),
            vec(write_op(), 0..4).prop_map(|ops| Request::Multi(MultiRequest { ops })),
            vec(read_op(), 0..4).prop_map(|ops| Request::MultiRead(MultiRequest { ops })),
            (any::<i64>(), vec(strings(), 5)).prop_map(|(z, l)| Request::SetWatches(SetWatches {
                relative_zxid: z,
                data_watches: l[0].clone(),
                exist_watches: l[1].clone(),
                child_watches: l[2].clone(),
            })),
            (any::<i64>(), vec(strings(), 5)).prop_map(|(z, l)| Request::SetWatches2(
                SetWatches2 {
                    relative_zxid: z,
                    data_watches: l[0].clone(),
                    exist_watches: l[1].clone(),
                    child_watches: l[2].clone(),
                    persistent_watches: l[3].clone(),
                    persistent_recursive_watches: l[4].clone(),
                }
            )),
            (path(), any::<i32>())
                .prop_map(|(path, mode)| Request::AddWatch(AddWatchRequest { path, mode })),
            (path(), any::<i32>()).prop_map(|(path, watcher_type)| Request::RemoveWatches(
                RemoveWatchesRequest { path, watcher_type }
            )),
            (path(), any::<i32>()).prop_map(|(path, watcher_type)| Request::CheckWatches(
                CheckWatchesRequest { path, watcher_type }
            )),
            ("[a-z]{0,6}", bytes()).prop_map(|(scheme, auth)| Request::Auth(AuthPacket {
                auth_type: 0,
                scheme,
                auth
            })),
            bytes().prop_map(|token| Request::Sasl(GetSaslRequest { token })),
            (
                proptest::option::of(".{0,5}"),
                proptest::option::of(".{0,5}"),
                any::<i64>()
            )
                .prop_map(|(j, l, id)| Request::Reconfig(ReconfigRequest {
                    joining_servers: j,
                    leaving_servers: l,
                    new_members: None,
                    cur_config_id: id,
                })),
            Just(Request::WhoAmI),
            Just(Request::Ping),
            Just(Request::CloseSession),
        ]
    }

    /// Each response paired with an op whose reply it is.
    fn response() -> impl Strategy<Value = (OpCode, Response)> {
        prop_oneof![
            Just((OpCode::Delete, Response::Empty)),
            Just((OpCode::CloseSession, Response::Empty)),
            path().prop_map(|path| (OpCode::Create, Response::Create(CreateResponse { path }))),
            (
                path(),
                stat(),
                prop_oneof![
                    Just(OpCode::Create2),
                    Just(OpCode::CreateContainer),
                    Just(OpCode::CreateTtl)
                ]
            )
                .prop_map(|(path, stat, op)| (
                    op,
                    Response::Create2(Create2Response { path, stat })
                )),
            stat().prop_map(|stat| (OpCode::Exists, Response::Exists(ExistsResponse { stat }))),
            (data(), stat()).prop_map(|(data, stat)| (
                OpCode::GetData,
                Response::GetData(GetDataResponse { data, stat })
            )),
            stat().prop_map(|stat| (OpCode::SetData, Response::SetData(SetDataResponse { stat }))),
            (acls(), stat()).prop_map(|(acl, stat)| (
                OpCode::GetAcl,
                Response::GetAcl(GetAclResponse { acl, stat })
            )),
            stat().prop_map(|stat| (OpCode::SetAcl, Response::SetAcl(SetAclResponse { stat }))),
            strings().prop_map(|children| (
                OpCode::GetChildren,
                Response::GetChildren(GetChildrenResponse { children })
            )),
            (strings(), stat()).prop_map(|(children, stat)| (
                OpCode::GetChildren2,
                Response::GetChildren2(GetChildren2Response { children, stat })
            )),
            any::<i32>().prop_map(|total_number| (
                OpCode::GetAllChildrenNumber,
                Response::GetAllChildrenNumber(GetAllChildrenNumberResponse { total_number })
            )),
            strings().prop_map(|ephemerals| (
                OpCode::GetEphemerals,
                Response::GetEphemerals(GetEphemeralsResponse { ephemerals })
            )),
            path().prop_map(|path| (OpCode::Sync, Response::Sync(SyncResponse { path }))),
            (
                vec(op_result(), 0..4),
                prop_oneof![Just(OpCode::Multi), Just(OpCode::MultiRead)]
            )
                .prop_map(|(results, op)| (op, Response::Multi(MultiResponse { results }))),
            (data(), stat()).prop_map(|(data, stat)| (
                OpCode::Reconfig,
                Response::Reconfig(GetDataResponse { data, stat })
            )),
            Just((
                OpCode::AddWatch,
                Response::AddWatch(ErrorResponse { err: ErrorCode::Ok })
            )),
            vec(("[a-z]{0,4}", ".{0,6}"), 0..3).prop_map(|v| (
                OpCode::WhoAmI,
                Response::WhoAmI(WhoAmIResponse {
                    client_info: v
                        .into_iter()
                        .map(|(auth_scheme, user)| ClientInfo { auth_scheme, user })
                        .collect()
                })
            )),
            bytes().prop_map(|token| (OpCode::Sasl, Response::Sasl(SetSaslResponse { token }))),
        ]
    }

    /// A client's `create("/a", "hi", OPEN_ACL_UNSAFE, PERSISTENT)` as xid 1, header included.
    #[test]
    fn golden_create_frame() {
        let req = Request::Create(CreateRequest {
            path: "/a".into(),
            data: Some(Bytes::from_static(b"hi")),
            acl: Acl::open_unsafe(),
            flags: 0,
        });
        let mut buf = BytesMut::new();
        crate::frame::write_framed(&mut buf, |b| req.encode(1, b)).unwrap();
        #[rustfmt::skip]
        let want: &[u8] = &[
            0, 0, 0, 51,                       // frame length
            0, 0, 0, 1, 0, 0, 0, 1,            // xid 1, op create
            0, 0, 0, 2, b'/', b'a',
            0, 0, 0, 2, b'h', b'i',
            0, 0, 0, 1, 0, 0, 0, 31,
            0, 0, 0, 5, b'w', b'o', b'r', b'l', b'd',
            0, 0, 0, 6, b'a', b'n', b'y', b'o', b'n', b'e',
            0, 0, 0, 0,
        ];
        assert_eq!(&buf[..], want);
        let (h, back) = Request::decode_frame(&want[4..]).unwrap();
        assert_eq!(h, RequestHeader::new(1, OpCode::Create));
        assert_eq!(back, req);
    }

    #[test]
    fn golden_error_reply_has_no_body() {
        let mut buf = BytesMut::new();
        let body = Response::Create(CreateResponse { path: "/a".into() });
        encode_reply(
            &mut buf,
            &ReplyHeader::new(7, 0x10, ErrorCode::NodeExists),
            &body,
        );
        #[rustfmt::skip]
        let want: &[u8] = &[
            0, 0, 0, 7,
            0, 0, 0, 0, 0, 0, 0, 0x10,
            0xff, 0xff, 0xff, 0x92,            // -110 NodeExists
        ];
        assert_eq!(&buf[..], want);
        let msg = ServerMessage::decode(want, |_| Some(OpCode::Create)).unwrap();
        assert_eq!(
            msg,
            ServerMessage::Reply {
                header: ReplyHeader::new(7, 0x10, ErrorCode::NodeExists),
                body: Response::Empty
            }
        );
    }

    #[test]
    fn golden_get_data_reply() {
        let stat = Stat {
            version: 2,
            data_length: 1,
            ..Default::default()
        };
        let mut buf = BytesMut::new();
        encode_reply(
            &mut buf,
            &ReplyHeader::new(3, 9, ErrorCode::Ok),
            &Response::GetData(GetDataResponse {
                data: Some(Bytes::from_static(b"x")),
                stat,
            }),
        );
        assert_eq!(buf.len(), 16 + 4 + 1 + STAT_LEN);
        assert_eq!(&buf[16..21], &[0, 0, 0, 1, b'x']);
        // Stat.version sits after four longs.
        assert_eq!(&buf[21 + 32..21 + 36], &[0, 0, 0, 2]);
    }

    #[test]
    fn unknown_and_unsupported_ops() {
        assert_eq!(
            Request::decode_frame(&[0, 0, 0, 1, 0, 0, 0, 10]),
            Err(DecodeError::UnknownOpCode(10))
        );
        let mut b = BytesMut::new();
        RequestHeader::new(1, OpCode::Check).write(&mut b);
        b.extend_from_slice(&[0, 0, 0, 1, b'/', 0, 0, 0, 0]);
        assert_eq!(
            Request::decode_frame(&b),
            Err(DecodeError::UnsupportedOpCode(OpCode::Check))
        );
    }

    #[test]
    fn multi_read_rejects_writes() {
        let req = Request::Multi(MultiRequest {
            ops: vec![crate::multi::MultiOp::Delete(DeleteRequest {
                path: "/a".into(),
                version: -1,
            })],
        });
        let mut b = BytesMut::new();
        req.write_body(&mut b);
        let h = RequestHeader::new(5, OpCode::MultiRead);
        assert_eq!(
            Request::read(&h, &mut Reader::new(&b)),
            Err(DecodeError::InvalidMultiOp {
                multi: OpCode::MultiRead,
                op: 2
            })
        );
    }

    #[test]
    fn fixed_xids() {
        assert_eq!(Request::Ping.fixed_xid(), Some(-2));
        assert_eq!(Request::Auth(AuthPacket::default()).fixed_xid(), Some(-4));
        assert_eq!(
            Request::SetWatches2(SetWatches2::default()).fixed_xid(),
            Some(-8)
        );
        assert_eq!(Request::WhoAmI.fixed_xid(), None);
    }

    #[test]
    fn special_replies_skip_the_lookup() {
        for xid in [PING_XID, AUTH_XID, SET_WATCHES_XID] {
            let h = ReplyHeader::new(xid, 5, ErrorCode::Ok);
            let msg = ServerMessage::decode(&h.to_bytes(), |_| None).unwrap();
            assert_eq!(
                msg,
                ServerMessage::Reply {
                    header: h,
                    body: Response::Empty
                }
            );
        }
        let h = ReplyHeader::new(42, 5, ErrorCode::Ok);
        assert_eq!(
            ServerMessage::decode(&h.to_bytes(), |_| None),
            Err(DecodeError::UnexpectedXid(42))
        );
    }

    #[test]
    fn notification_frame() {
        let ev = WatcherEvent {
            event_type: EventType::NodeCreated,
            state: KeeperState::SyncConnected,
            path: "/n".into(),
        };
        let mut b = BytesMut::new();
        crate::session::encode_notification(&mut b, &ev);
        assert_eq!(
            ServerMessage::decode(&b, |_| None),
            Ok(ServerMessage::Notification(ev))
        );
    }

    proptest! {
        #[test]
        fn requests_round_trip(req in request(), xid in any::<i32>()) {
            let mut b = BytesMut::new();
            req.encode(xid, &mut b);
            let (h, back) = Request::decode_frame(&b)?;
            prop_assert_eq!(h, RequestHeader::new(xid, req.op_code()));
            prop_assert_eq!(back, req);
        }

        #[test]
        fn responses_round_trip((op, rsp) in response(), xid in 0i32..1000, zxid in any::<i64>()) {
            let mut b = BytesMut::new();
            let header = ReplyHeader::new(xid, zxid, ErrorCode::Ok);
            encode_reply(&mut b, &header, &rsp);
            let mut r = Reader::new(&b);
            prop_assert_eq!(r.read::<ReplyHeader>()?, header);
            prop_assert_eq!(Response::read(op, &mut r)?, rsp.clone());
            prop_assert!(r.is_empty());
            let msg = ServerMessage::decode(&b, |x| (x == xid).then_some(op))?;
            prop_assert_eq!(msg, ServerMessage::Reply { header, body: rsp });
        }

        #[test]
        fn truncated_or_corrupted_requests_fail_cleanly(
            req in request(),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut b = BytesMut::new();
            req.encode(1, &mut b);
            let cut = cut.index(b.len());
            prop_assert!(Request::decode_frame(&b[..cut]).is_err());
            let i = flip.index(b.len());
            b[i] = byte;
            let _ = Request::decode_frame(&b);
        }

        #[test]
        fn truncated_or_corrupted_replies_fail_cleanly(
            (op, rsp) in response(),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut b = BytesMut::new();
            encode_reply(&mut b, &ReplyHeader::new(1, 1, ErrorCode::Ok), &rsp);
            let cut = cut.index(b.len());
            prop_assert!(ServerMessage::decode(&b[..cut], |_| Some(op)).is_err());
            let i = flip.index(b.len());
            b[i] = byte;
            let _ = ServerMessage::decode(&b, |_| Some(op));
        }

        #[test]
        fn request_decoding_never_panics(data in vec(any::<u8>(), 0..128)) {
            let _ = Request::decode_frame(&data);
        }

        #[test]
        fn bodies_never_panic_for_any_op(
            op in prop_oneof![-12i32..23, 100i32..108],
            data in vec(any::<u8>(), 0..128),
        ) {
            let h = RequestHeader { xid: 1, op };
            let _ = Request::read(&h, &mut Reader::new(&data));
            if let Some(code) = OpCode::from_i32(op) {
                let _ = Response::read(code, &mut Reader::new(&data));
                let _ = ServerMessage::decode(&data, |_| Some(code));
            }
        }
    }
}
