//! Session-level records: the connect handshake, the request and reply headers, the special xids
//! and the watch notification.
//!
//! A connection starts with a bare [`ConnectRequest`] frame answered by a bare
//! [`ConnectResponse`]. After that every client frame starts with a [`RequestHeader`] and every
//! server frame with a [`ReplyHeader`]; a reply's body follows only when its `err` is `Ok`
//! (the 3.8 client does not read a body otherwise). Watch notifications are server frames with
//! xid [`NOTIFICATION_XID`] whose body is a [`WatcherEvent`].

use bytes::{Bytes, BytesMut};

use crate::records::read_error_code;
use crate::types::{ErrorCode, EventType, KeeperState, OpCode};
use crate::wire::{self, DecodeError, Reader, Record};

/// Xid of a server-initiated watch notification (`ClientCnxn.NOTIFICATION_XID`).
pub const NOTIFICATION_XID: i32 = -1;
/// Xid of pings and their replies (`ClientCnxn.PING_XID`).
pub const PING_XID: i32 = -2;
/// Xid of `auth` packets and their replies (`ClientCnxn.AUTHPACKET_XID`).
pub const AUTH_XID: i32 = -4;
/// Xid of `setWatches` / `setWatches2` after a reconnect (`ClientCnxn.SET_WATCHES_XID`).
pub const SET_WATCHES_XID: i32 = -8;

/// The zxid ZooKeeper puts in the reply header of a watch notification.
pub const NOTIFICATION_ZXID: i64 = -1;

/// Length of a session password: the server derives 16 bytes per session, and a client asking for
/// a new session sends 16 zero bytes.
pub const PASSWORD_LEN: usize = 16;

/// The first frame a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectRequest {
    /// Always 0.
    pub protocol_version: i32,
    /// Highest zxid the client has seen; a server behind it must refuse the session.
    pub last_zxid_seen: i64,
    /// Requested session timeout in milliseconds, to be clamped by the server.
    pub time_out: i32,
    /// 0 for a new session, otherwise the session to resume.
    pub session_id: i64,
    pub passwd: Bytes,
    /// The trailing "may connect to a read-only server" flag. It is not in `zookeeper.jute`: 3.x
    /// clients append it by hand, and clients older than 3.3 leave it out (`None`). The server
    /// must mirror that choice in its [`ConnectResponse`].
    pub read_only: Option<bool>,
}

impl Record for ConnectRequest {
    fn write(&self, buf: &mut BytesMut) {
        wire::put_i32(buf, self.protocol_version);
        wire::put_i64(buf, self.last_zxid_seen);
        wire::put_i32(buf, self.time_out);
        wire::put_i64(buf, self.session_id);
        wire::put_buffer(buf, &self.passwd);
        if let Some(ro) = self.read_only {
            wire::put_bool(buf, ro);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ConnectRequest {
            protocol_version: r.read_i32("ConnectRequest.protocolVersion")?,
            last_zxid_seen: r.read_i64("ConnectRequest.lastZxidSeen")?,
            time_out: r.read_i32("ConnectRequest.timeOut")?,
            session_id: r.read_i64("ConnectRequest.sessionId")?,
            passwd: r.read_buffer("ConnectRequest.passwd")?,
            read_only: read_trailing_flag(r, "ConnectRequest.readOnly")?,
        })
    }
}

/// ZooKeeper reads the trailing flag if at least one byte is left and otherwise treats the peer
/// as old.
fn read_trailing_flag(r: &mut Reader<'_>, what: &'static str) -> Result<Option<bool>, DecodeError> {
    if r.is_empty() {
        Ok(None)
    } else {
        r.read_bool(what).map(Some)
    }
}

/// The server's answer to a [`ConnectRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectResponse {
    /// Always 0.
    pub protocol_version: i32,
    /// Negotiated session timeout in milliseconds; 0 together with session id 0 tells the client
    /// its session is gone.
    pub time_out: i32,
    pub session_id: i64,
    pub passwd: Bytes,
    /// Whether this server is read-only. Sent only to clients that sent the flag themselves.
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    /// What a 3.8 server sends when the session to resume is expired or the password is wrong:
    /// zero timeout, zero session id, 16 zero bytes of password. The connection is then closed.
    pub fn session_invalid(read_only: Option<bool>) -> ConnectResponse {
        ConnectResponse {
            protocol_version: 0,
            time_out: 0,
            session_id: 0,
            passwd: Bytes::from_static(&[0; PASSWORD_LEN]),
            read_only,
        }
    }
}

impl Record for ConnectResponse {
    fn write(&self, buf: &mut BytesMut) {
        wire::put_i32(buf, self.protocol_version);
        wire::put_i32(buf, self.time_out);
        wire::put_i64(buf, self.session_id);
        wire::put_buffer(buf, &self.passwd);
        if let Some(ro) = self.read_only {
            wire::put_bool(buf, ro);
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ConnectResponse {
            protocol_version: r.read_i32("ConnectResponse.protocolVersion")?,
            time_out: r.read_i32("ConnectResponse.timeOut")?,
            session_id: r.read_i64("ConnectResponse.sessionId")?,
            passwd: r.read_buffer("ConnectResponse.passwd")?,
            read_only: read_trailing_flag(r, "ConnectResponse.readOnly")?,
        })
    }
}

/// Starts every client frame after the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestHeader {
    /// Client-chosen id echoed in the reply; the special xids mark pings, auth and setWatches.
    pub xid: i32,
    /// The op code, kept raw so that a server can still answer an unknown op by its xid.
    pub op: i32,
}

/// Encoded size of a [`RequestHeader`].
pub const REQUEST_HEADER_LEN: usize = 8;

impl RequestHeader {
    pub fn new(xid: i32, op: OpCode) -> RequestHeader {
        RequestHeader { xid, op: op.code() }
    }

    pub fn op_code(&self) -> Result<OpCode, DecodeError> {
        OpCode::from_i32(self.op).ok_or(DecodeError::UnknownOpCode(self.op))
    }
}

impl Record for RequestHeader {
    fn write(&self, buf: &mut BytesMut) {
        wire::put_i32(buf, self.xid);
        wire::put_i32(buf, self.op);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(RequestHeader {
            xid: r.read_i32("RequestHeader.xid")?,
            op: r.read_i32("RequestHeader.type")?,
        })
    }
}

/// Starts every server frame after the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplyHeader {
    /// The request's xid, or [`NOTIFICATION_XID`] for a watch event.
    pub xid: i32,
    /// The last zxid the server has processed (-1 on notifications; 0 on auth replies).
    pub zxid: i64,
    pub err: ErrorCode,
}

/// Encoded size of a [`ReplyHeader`].
pub const REPLY_HEADER_LEN: usize = 16;

impl ReplyHeader {
    pub fn new(xid: i32, zxid: i64, err: ErrorCode) -> ReplyHeader {
        ReplyHeader { xid, zxid, err }
    }

    /// The header of a watch notification.
    pub fn notification() -> ReplyHeader {
        ReplyHeader::new(NOTIFICATION_XID, NOTIFICATION_ZXID, ErrorCode::Ok)
    }
}

impl Record for ReplyHeader {
    fn write(&self, buf: &mut BytesMut) {
        wire::put_i32(buf, self.xid);
        wire::put_i64(buf, self.zxid);
        wire::put_i32(buf, self.err.code());
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ReplyHeader {
            xid: r.read_i32("ReplyHeader.xid")?,
            zxid: r.read_i64("ReplyHeader.zxid")?,
            err: read_error_code(r, "ReplyHeader.err")?,
        })
    }
}

/// A watch firing, sent after a [`ReplyHeader::notification`] header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherEvent {
    pub event_type: EventType,
    pub state: KeeperState,
    /// The node's full server-side path (a chrooted client strips its prefix itself).
    pub path: String,
}

impl Record for WatcherEvent {
    fn write(&self, buf: &mut BytesMut) {
        wire::put_i32(buf, self.event_type.code());
        wire::put_i32(buf, self.state.code());
        wire::put_ustring(buf, &self.path);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let t = r.read_i32("WatcherEvent.type")?;
        let event_type = EventType::from_i32(t).ok_or(DecodeError::InvalidValue {
            what: "WatcherEvent.type",
            value: t,
        })?;
        let s = r.read_i32("WatcherEvent.state")?;
        let state = KeeperState::from_i32(s).ok_or(DecodeError::InvalidValue {
            what: "WatcherEvent.state",
            value: s,
        })?;
        Ok(WatcherEvent {
            event_type,
            state,
            path: r.read_ustring("WatcherEvent.path")?,
        })
    }
}

/// Appends a whole notification body: the notification header, then the event.
pub fn encode_notification(buf: &mut BytesMut, event: &WatcherEvent) {
    ReplyHeader::notification().write(buf);
    event.write(buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::write_framed;
    use proptest::prelude::*;

    /// A 3.8 client's first frame for a new session with a 30 s timeout, laid out by hand: the
    /// five `ConnectRequest` fields, then the appended read-only flag.
    #[test]
    fn golden_connect_request() {
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            time_out: 30_000,
            session_id: 0,
            passwd: Bytes::from_static(&[0; 16]),
            read_only: Some(false),
        };
        let mut frame = BytesMut::new();
        write_framed(&mut frame, |b| req.write(b)).unwrap();
        #[rustfmt::skip]
        let want: &[u8] = &[
            0, 0, 0, 45,                       // frame length
            0, 0, 0, 0,                        // protocolVersion
            0, 0, 0, 0, 0, 0, 0, 0,            // lastZxidSeen
            0, 0, 0x75, 0x30,                  // timeOut 30000
            0, 0, 0, 0, 0, 0, 0, 0,            // sessionId
            0, 0, 0, 16,                       // passwd length
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0,                                 // readOnly false
        ];
        assert_eq!(&frame[..], want);
        assert_eq!(ConnectRequest::from_slice(&want[4..]), Ok(req));
    }

    #[test]
    fn old_client_without_read_only_flag() {
        let req = ConnectRequest {
            time_out: 4000,
            session_id: 0x1234,
            passwd: Bytes::from_static(b"0123456789abcdef"),
            read_only: None,
            ..Default::default()
        };
        let b = req.to_bytes();
        assert_eq!(b.len(), 44);
        assert_eq!(ConnectRequest::from_slice(&b), Ok(req));
    }

    #[test]
    fn golden_connect_response() {
        let rsp = ConnectResponse {
            protocol_version: 0,
            time_out: 10_000,
            session_id: 0x0100_0000_0000_0002,
            passwd: Bytes::from_static(&[7; 16]),
            read_only: Some(true),
        };
        let mut want = vec![
            0, 0, 0, 0, 0, 0, 0x27, 0x10, 1, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 16,
        ];
        want.extend([7; 16]);
        want.push(1);
        assert_eq!(&rsp.to_bytes()[..], &want[..]);
        assert_eq!(ConnectResponse::from_slice(&want), Ok(rsp));
        let gone = ConnectResponse::session_invalid(None);
        assert_eq!(gone.to_bytes().len(), 36);
    }

    #[test]
    fn golden_ping_and_notification() {
        let ping = RequestHeader::new(PING_XID, OpCode::Ping).to_bytes();
        assert_eq!(&ping[..], &[0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 11]);

        let mut b = BytesMut::new();
        encode_notification(
            &mut b,
            &WatcherEvent {
                event_type: EventType::NodeDataChanged,
                state: KeeperState::SyncConnected,
                path: "/a".into(),
            },
        );
        #[rustfmt::skip]
        let want: &[u8] = &[
            0xff, 0xff, 0xff, 0xff,                          // xid -1
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  // zxid -1
            0, 0, 0, 0,                                      // err Ok
            0, 0, 0, 3,                                      // NodeDataChanged
            0, 0, 0, 3,                                      // SyncConnected
            0, 0, 0, 2, b'/', b'a',
        ];
        assert_eq!(&b[..], want);
        let mut r = Reader::new(want);
        assert_eq!(r.read::<ReplyHeader>(), Ok(ReplyHeader::notification()));
        assert_eq!(r.read::<WatcherEvent>().map(|e| e.path), Ok("/a".into()));
    }

    #[test]
    fn bad_event_and_op_values() {
        let b = [0, 0, 0, 9, 0, 0, 0, 3, 0, 0, 0, 0];
        assert_eq!(
            WatcherEvent::from_slice(&b),
            Err(DecodeError::InvalidValue {
                what: "WatcherEvent.type",
                value: 9
            })
        );
        let h = RequestHeader { xid: 1, op: 10 };
        assert_eq!(h.op_code(), Err(DecodeError::UnknownOpCode(10)));
    }

    fn event_type() -> impl Strategy<Value = EventType> {
        (-1i32..8).prop_filter_map("gap", EventType::from_i32)
    }

    fn keeper_state() -> impl Strategy<Value = KeeperState> {
        prop_oneof![Just(-112), 0i32..8].prop_filter_map("gap", KeeperState::from_i32)
    }

    proptest! {
        #[test]
        fn round_trips(
            (pv, z, t, sid) in (any::<i32>(), any::<i64>(), any::<i32>(), any::<i64>()),
            pw in proptest::collection::vec(any::<u8>(), 0..20),
            ro in proptest::option::of(any::<bool>()),
            xid in any::<i32>(),
            err in crate::records::strategies::error_code(),
            et in event_type(),
            st in keeper_state(),
            path in crate::records::strategies::path(),
        ) {
            let req = ConnectRequest {
                protocol_version: pv, last_zxid_seen: z, time_out: t, session_id: sid,
                passwd: Bytes::from(pw.clone()), read_only: ro,
            };
            prop_assert_eq!(ConnectRequest::from_slice(&req.to_bytes())?, req);
            let rsp = ConnectResponse {
                protocol_version: pv, time_out: t, session_id: sid,
                passwd: Bytes::from(pw), read_only: ro,
            };
            prop_assert_eq!(ConnectResponse::from_slice(&rsp.to_bytes())?, rsp);
            let rh = RequestHeader { xid, op: t };
            prop_assert_eq!(RequestHeader::from_slice(&rh.to_bytes())?, rh);
            let ph = ReplyHeader::new(xid, z, err);
            prop_assert_eq!(ReplyHeader::from_slice(&ph.to_bytes())?, ph);
            let ev = WatcherEvent { event_type: et, state: st, path };
            prop_assert_eq!(WatcherEvent::from_slice(&ev.to_bytes())?, ev);
        }

        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ConnectRequest::from_slice(&data);
            let _ = ConnectResponse::from_slice(&data);
            let _ = RequestHeader::from_slice(&data);
            let _ = ReplyHeader::from_slice(&data);
            let _ = WatcherEvent::from_slice(&data);
        }
    }
}
