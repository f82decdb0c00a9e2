//! Entry points for the fuzz targets (`fuzz/`): the paths bytes from outside take through the
//! client port and the replicated log, run without sockets or Raft so a fuzzer can drive them
//! millions of times. They call the same functions the connection and the proposer call, in the
//! same order; anything they find is a defect of the daemon, not of a test double.

use bytes::BytesMut;
use sluice_jute::{
    encode_reply, take_frame, ConnectRequest, Reader, Record, ReplyHeader, Request, RequestHeader,
    Response,
};

use super::conn::auth_id;
use super::handlers::{self, Kind};
use super::{Batch, MAX_CLIENT_FRAME};
use crate::fourlw;
use crate::machine::{Command, CommandResult, Machine};
use crate::watches::WatchManager;

/// What a client connection reads, from its first byte: a four-letter word, or a ConnectRequest
/// frame and then request frames, each split off with the server's frame limit, decoded,
/// classified, and carried out against a state machine (writes applied, reads served with
/// watches registered), the replies encoded. Stops where the connection would close.
pub fn client_bytes(data: &[u8]) {
    if let Some(first) = data.first_chunk::<4>() {
        if fourlw::detect(first).is_some() {
            return;
        }
    }
    let mut buf = BytesMut::from(data);
    let Ok(Some(frame)) = take_frame(&mut buf, MAX_CLIENT_FRAME) else {
        return;
    };
    let Ok(connect) = ConnectRequest::from_slice(&frame) else {
        return;
    };
    let mut machine = Machine::new();
    let mut watches = WatchManager::new();
    let (result, _) = machine.apply(
        1,
        0,
        1,
        &Command::CreateSession {
            timeout_ms: connect.time_out.clamp(4000, 40000),
            password: [7; 16],
            origin_node: 1,
        },
    );
    let CommandResult::SessionCreated { session_id, .. } = result else {
        return;
    };
    let mut auth = vec![sluice_jute::Id {
        scheme: "ip".into(),
        id: "127.0.0.1".into(),
    }];
    let mut out = BytesMut::new();
    let mut zxid = 1;
    loop {
        let frame = match take_frame(&mut buf, MAX_CLIENT_FRAME) {
            Ok(Some(f)) => f,
            Ok(None) | Err(_) => return,
        };
        let mut r = Reader::new(&frame);
        let Ok(header) = RequestHeader::read(&mut r) else {
            return;
        };
        let Ok(req) = Request::read(&header, &mut r) else {
            return;
        };
        let (err, body) = match handlers::classify(&req, true) {
            Kind::Write(op) => {
                zxid += 1;
                let cmd = Command::Write {
                    session_id,
                    auth: auth.clone(),
                    op,
                };
                let (result, triggers) = machine.apply(zxid, 0, zxid as u64, &cmd);
                let _ = watches.trigger(&triggers);
                handlers::write_response(&req, result)
            }
            Kind::Sync(path) => {
                zxid += 1;
                let (result, _) = machine.apply(zxid, 0, zxid as u64, &Command::Sync { path });
                handlers::write_response(&req, result)
            }
            Kind::Local => {
                let (err, body, _) =
                    handlers::local(&req, session_id, &auth, &machine, &mut watches);
                (err, body)
            }
            Kind::Auth => {
                let Request::Auth(a) = &req else { return };
                match auth_id(&a.scheme, &a.auth) {
                    Some(id) => {
                        auth.push(id);
                        (sluice_jute::ErrorCode::Ok, Response::Empty)
                    }
                    None => return,
                }
            }
            Kind::Close | Kind::Refuse(_) => return,
            Kind::Ping => (sluice_jute::ErrorCode::Ok, Response::Empty),
            Kind::Fail(code) => (code, Response::Empty),
            // No ensemble here: the request's server lists still go through the parser.
            Kind::Reconfig => {
                let Request::Reconfig(r) = &req else { return };
                let args = crate::quorum_config::ReconfigArgs {
                    joining: r.joining_servers.clone(),
                    leaving: r.leaving_servers.clone(),
                    members: r.new_members.clone(),
                };
                let _ = crate::quorum_config::apply(&Default::default(), &args);
                (sluice_jute::ErrorCode::ReconfigDisabled, Response::Empty)
            }
        };
        out.clear();
        encode_reply(&mut out, &ReplyHeader::new(header.xid, zxid, err), &body);
    }
}

/// A replicated log entry's payload as the state machine decodes it (a [`Batch`] of
/// commands), applied to a state machine; then the same bytes as a snapshot to restore.
pub fn log_entry(data: &[u8]) {
    if let Ok(batch) = Batch::decode(data) {
        let mut machine = Machine::new();
        for (i, cmd) in batch.commands.iter().enumerate() {
            let zxid = i as i64 + 1;
            let _ = machine.apply(zxid, batch.time_ms, zxid as u64, cmd);
        }
        // Whatever the commands did, the state snapshots and restores to itself.
        let snap = machine.snapshot();
        let back = Machine::restore(&snap).expect("a snapshot of a live machine restores");
        assert_eq!(back.snapshot(), snap, "snapshot round trip");
    }
    let _ = Machine::restore(data);
}
