//! `multi` (14) and `multiRead` (22): the `MultiHeader`-delimited op list of
//! `MultiOperationRecord` and the result list of `MultiResponse`.
//!
//! Both are a run of `MultiHeader {type, done, err}` each followed by one op's record, closed by a
//! header with `done = true` (ZooKeeper writes `{-1, true, -1}` and reads only `done`). In a
//! request every header has `done = false, err = -1`. In a reply `err` is the op's error for an
//! `error` (-1) result and 0 otherwise, and delete and check results have no record after their
//! header.
//!
//! When one op of a `multi` fails, a 3.8 server still replies with `err = Ok` in the reply
//! header and turns every result into an error result: `Ok` for the ops before the failure, the
//! failure's code, then `RuntimeInconsistency` for the ops after it
//! ([`MultiResponse::failed`]). `multiRead` ops succeed or fail one by one instead.

use bytes::BytesMut;

use crate::records::{
    CheckVersionRequest, Create2Response, CreateRequest, CreateResponse, CreateTtlRequest,
    DeleteRequest, ErrorResponse, GetChildrenRequest, GetChildrenResponse, GetDataRequest,
    GetDataResponse, SetDataRequest, SetDataResponse,
};
use crate::types::{ErrorCode, OpCode};
use crate::wire::{self, DecodeError, Reader, Record};

/// The header before each op or result, and the end marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultiHeader {
    /// The op code of what follows, or -1 (`OpCode.error`) for an error result or the end.
    pub op: i32,
    pub done: bool,
    pub err: i32,
}

impl MultiHeader {
    /// The header that closes every op and result list.
    pub const END: MultiHeader = MultiHeader {
        op: -1,
        done: true,
        err: -1,
    };
}

impl Record for MultiHeader {
    fn write(&self, buf: &mut BytesMut) {
        wire::put_i32(buf, self.op);
        wire::put_bool(buf, self.done);
        wire::put_i32(buf, self.err);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(MultiHeader {
            op: r.read_i32("MultiHeader.type")?,
            done: r.read_bool("MultiHeader.done")?,
            err: r.read_i32("MultiHeader.err")?,
        })
    }
}

/// One op of a `multi` or `multiRead` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    Create(CreateRequest),
    Create2(CreateRequest),
    CreateContainer(CreateRequest),
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    SetData(SetDataRequest),
    Check(CheckVersionRequest),
    /// `multiRead` only. The `watch` flag is sent (always false from the Java client) and ignored.
    GetChildren(GetChildrenRequest),
    /// `multiRead` only. The `watch` flag is sent and ignored, as for `GetChildren`.
    GetData(GetDataRequest),
}

impl MultiOp {
    pub fn op_code(&self) -> OpCode {
        match self {
            MultiOp::Create(_) => OpCode::Create,
            MultiOp::Create2(_) => OpCode::Create2,
            MultiOp::CreateContainer(_) => OpCode::CreateContainer,
            MultiOp::CreateTtl(_) => OpCode::CreateTtl,
            MultiOp::Delete(_) => OpCode::Delete,
            MultiOp::SetData(_) => OpCode::SetData,
            MultiOp::Check(_) => OpCode::Check,
            MultiOp::GetChildren(_) => OpCode::GetChildren,
            MultiOp::GetData(_) => OpCode::GetData,
        }
    }

    /// Read ops belong in `multiRead`, all others in `multi`.
    pub fn is_read(&self) -> bool {
        matches!(self, MultiOp::GetChildren(_) | MultiOp::GetData(_))
    }

    /// The node the op addresses.
    pub fn path(&self) -> &str {
        match self {
            MultiOp::Create(c) | MultiOp::Create2(c) | MultiOp::CreateContainer(c) => &c.path,
            MultiOp::CreateTtl(c) => &c.path,
            MultiOp::Delete(d) => &d.path,
            MultiOp::SetData(s) => &s.path,
            MultiOp::Check(c) => &c.path,
            MultiOp::GetChildren(g) => &g.path,
            MultiOp::GetData(g) => &g.path,
        }
    }

    fn write_body(&self, buf: &mut BytesMut) {
        match self {
            MultiOp::Create(c) | MultiOp::Create2(c) | MultiOp::CreateContainer(c) => c.write(buf),
            MultiOp::CreateTtl(c) => c.write(buf),
            MultiOp::Delete(d) => d.write(buf),
            MultiOp::SetData(s) => s.write(buf),
            MultiOp::Check(c) => c.write(buf),
            MultiOp::GetChildren(g) => g.write(buf),
            MultiOp::GetData(g) => g.write(buf),
        }
    }

    fn read_body(op: i32, r: &mut Reader<'_>) -> Result<MultiOp, DecodeError> {
        let code = OpCode::from_i32(op).ok_or(DecodeError::UnknownOpCode(op))?;
        Ok(match code {
            OpCode::Create => MultiOp::Create(r.read()?),
            OpCode::Create2 => MultiOp::Create2(r.read()?),
            OpCode::CreateContainer => MultiOp::CreateContainer(r.read()?),
            OpCode::CreateTtl => MultiOp::CreateTtl(r.read()?),
            OpCode::Delete => MultiOp::Delete(r.read()?),
            OpCode::SetData => MultiOp::SetData(r.read()?),
            OpCode::Check => MultiOp::Check(r.read()?),
            OpCode::GetChildren => MultiOp::GetChildren(r.read()?),
            OpCode::GetData => MultiOp::GetData(r.read()?),
            _ => {
                return Err(DecodeError::InvalidMultiOp {
                    multi: OpCode::Multi,
                    op,
                })
            }
        })
    }
}

/// The body of a `multi` or `multiRead` request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiRequest {
    pub ops: Vec<MultiOp>,
}

impl MultiRequest {
    /// Checks that every op suits the enclosing op code: writes and checks for `multi`, reads for
    /// `multiRead`.
    pub fn check_kind(&self, multi: OpCode) -> Result<(), DecodeError> {
        let want_read = multi == OpCode::MultiRead;
        match self.ops.iter().find(|op| op.is_read() != want_read) {
            Some(op) => Err(DecodeError::InvalidMultiOp {
                multi,
                op: op.op_code().code(),
            }),
            None => Ok(()),
        }
    }
}

impl Record for MultiRequest {
    fn write(&self, buf: &mut BytesMut) {
        for op in &self.ops {
            MultiHeader {
                op: op.op_code().code(),
                done: false,
                err: -1,
            }
            .write(buf);
            op.write_body(buf);
        }
        MultiHeader::END.write(buf);
    }

    /// Decodes the op list. Like ZooKeeper, rejects a list that mixes read and write ops; which
    /// kind the enclosing op code wants is [`MultiRequest::check_kind`]'s business.
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut ops: Vec<MultiOp> = Vec::new();
        loop {
            let h: MultiHeader = r.read()?;
            if h.done {
                return Ok(MultiRequest { ops });
            }
            let op = MultiOp::read_body(h.op, r)?;
            if let Some(first) = ops.first() {
                if first.is_read() != op.is_read() {
                    let multi = if first.is_read() {
                        OpCode::MultiRead
                    } else {
                        OpCode::Multi
                    };
                    return Err(DecodeError::InvalidMultiOp { multi, op: h.op });
                }
            }
            ops.push(op);
        }
    }
}

/// One entry of a multi reply (`OpResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// For a `create` op.
    Create(CreateResponse),
    /// For `create2`, `createContainer` and `createTTL` ops: ZooKeeper tags all three `create2`.
    Create2(Create2Response),
    Delete,
    SetData(SetDataResponse),
    Check,
    GetChildren(GetChildrenResponse),
    GetData(GetDataResponse),
    /// A failed op, or in a failed `multi` any op (then `Ok` for the ops before the failure).
    Error(ErrorCode),
}

impl OpResult {
    /// The `type` written in this result's `MultiHeader`.
    pub fn op_code(&self) -> OpCode {
        match self {
            OpResult::Create(_) => OpCode::Create,
            OpResult::Create2(_) => OpCode::Create2,
            OpResult::Delete => OpCode::Delete,
            OpResult::SetData(_) => OpCode::SetData,
            OpResult::Check => OpCode::Check,
            OpResult::GetChildren(_) => OpCode::GetChildren,
            OpResult::GetData(_) => OpCode::GetData,
            OpResult::Error(_) => OpCode::Error,
        }
    }
}

/// The body of a reply to `multi` or `multiRead`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiResponse {
    pub results: Vec<OpResult>,
}

impl MultiResponse {
    /// The reply to a `multi` of `op_count` ops whose op at `failed` failed with `err`.
    pub fn failed(op_count: usize, failed: usize, err: ErrorCode) -> MultiResponse {
        let results = (0..op_count)
            .map(|i| {
                OpResult::Error(match i.cmp(&failed) {
                    std::cmp::Ordering::Less => ErrorCode::Ok,
                    std::cmp::Ordering::Equal => err,
                    std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
                })
            })
            .collect();
        MultiResponse { results }
    }

    /// The first result carrying a real error, with its index: what a client reports for a
    /// failed `multi`.
    pub fn first_error(&self) -> Option<(usize, ErrorCode)> {
        self.results.iter().enumerate().find_map(|(i, r)| match r {
            OpResult::Error(e) if *e != ErrorCode::Ok => Some((i, *e)),
            _ => None,
        })
    }
}

impl Record for MultiResponse {
    fn write(&self, buf: &mut BytesMut) {
        for result in &self.results {
            let err = match result {
                OpResult::Error(e) => e.code(),
                _ => 0,
            };
            MultiHeader {
                op: result.op_code().code(),
                done: false,
                err,
            }
            .write(buf);
            match result {
                OpResult::Create(c) => c.write(buf),
                OpResult::Create2(c) => c.write(buf),
                OpResult::Delete | OpResult::Check => {}
                OpResult::SetData(s) => s.write(buf),
                OpResult::GetChildren(g) => g.write(buf),
                OpResult::GetData(g) => g.write(buf),
                OpResult::Error(e) => ErrorResponse { err: *e }.write(buf),
            }
        }
        MultiHeader::END.write(buf);
    }

    /// Like ZooKeeper, takes an error result's code from its `ErrorResponse`, not its header.
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut results = Vec::new();
        loop {
            let h: MultiHeader = r.read()?;
            if h.done {
                return Ok(MultiResponse { results });
            }
            let code = OpCode::from_i32(h.op).ok_or(DecodeError::UnknownOpCode(h.op))?;
            results.push(match code {
                OpCode::Create => OpResult::Create(r.read()?),
                OpCode::Create2 => OpResult::Create2(r.read()?),
                OpCode::Delete => OpResult::Delete,
                OpCode::SetData => OpResult::SetData(r.read()?),
                OpCode::Check => OpResult::Check,
                OpCode::GetChildren => OpResult::GetChildren(r.read()?),
                OpCode::GetData => OpResult::GetData(r.read()?),
                OpCode::Error => OpResult::Error(r.read::<ErrorResponse>()?.err),
                _ => {
                    return Err(DecodeError::InvalidValue {
                        what: "MultiResponse result type",
                        value: h.op,
                    })
                }
            });
        }
    }
}

#[cfg(test)]
pub(crate) mod strategies {
    //! Generators for multi requests and replies.

    use super::*;
    use crate::records::strategies::*;
    use proptest::prelude::*;

    pub fn write_op() -> impl Strategy<Value = MultiOp> {
        prop_oneof![
            create().prop_map(MultiOp::Create),
            create().prop_map(MultiOp::Create2),
            create().prop_map(MultiOp::CreateContainer),
            create_ttl().prop_map(MultiOp::CreateTtl),
            (path(), any::<i32>())
                .prop_map(|(path, version)| MultiOp::Delete(DeleteRequest { path, version })),
            (path(), data(), any::<i32>()).prop_map(|(path, data, version)| MultiOp::SetData(
                SetDataRequest {
                    path,
                    data,
                    version
                }
            )),
            (path(), any::<i32>())
                .prop_map(|(path, version)| MultiOp::Check(CheckVersionRequest { path, version })),
        ]
    }

    pub fn read_op() -> impl Strategy<Value = MultiOp> {
        prop_oneof![
            (path(), any::<bool>())
                .prop_map(|(path, watch)| MultiOp::GetChildren(GetChildrenRequest { path, watch })),
            (path(), any::<bool>())
                .prop_map(|(path, watch)| MultiOp::GetData(GetDataRequest { path, watch })),
        ]
    }

    pub fn op_result() -> impl Strategy<Value = OpResult> {
        prop_oneof![
            path().prop_map(|path| OpResult::Create(CreateResponse { path })),
            (path(), stat())
                .prop_map(|(path, stat)| OpResult::Create2(Create2Response { path, stat })),
            Just(OpResult::Delete),
            stat().prop_map(|stat| OpResult::SetData(SetDataResponse { stat })),
            Just(OpResult::Check),
            strings().prop_map(|children| OpResult::GetChildren(GetChildrenResponse { children })),
            (data(), stat())
                .prop_map(|(data, stat)| OpResult::GetData(GetDataResponse { data, stat })),
            error_code().prop_map(OpResult::Error),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::strategies::*;
    use super::*;
    use proptest::prelude::*;

    /// `multi [check /a v0, delete /b v-1]`, laid out by hand from `MultiOperationRecord`.
    #[test]
    fn golden_multi_request() {
        let req = MultiRequest {
            ops: vec![
                MultiOp::Check(CheckVersionRequest {
                    path: "/a".into(),
                    version: 0,
                }),
                MultiOp::Delete(DeleteRequest {
                    path: "/b".into(),
                    version: -1,
                }),
            ],
        };
        #[rustfmt::skip]
        let want: &[u8] = &[
            0, 0, 0, 13, 0, 0xff, 0xff, 0xff, 0xff,       // header: check, !done, err -1
            0, 0, 0, 2, b'/', b'a', 0, 0, 0, 0,            // CheckVersionRequest
            0, 0, 0, 2, 0, 0xff, 0xff, 0xff, 0xff,         // header: delete
            0, 0, 0, 2, b'/', b'b', 0xff, 0xff, 0xff, 0xff, // DeleteRequest
            0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff, // end
        ];
        assert_eq!(&req.to_bytes()[..], want);
        assert_eq!(MultiRequest::from_slice(want), Ok(req));
    }

    /// The reply ZooKeeper 3.8 gives when the second of three ops fails with `NoNode`.
    #[test]
    fn golden_failed_multi_response() {
        let rsp = MultiResponse::failed(3, 1, ErrorCode::NoNode);
        #[rustfmt::skip]
        let want: &[u8] = &[
            0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0,          // error result, err Ok
            0, 0, 0, 0,                                     //   ErrorResponse Ok
            0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0x9b, // error result, err -101
            0xff, 0xff, 0xff, 0x9b,                         //   ErrorResponse NoNode
            0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0xfe, // error result, err -2
            0xff, 0xff, 0xff, 0xfe,                         //   RuntimeInconsistency
            0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff, // end
        ];
        assert_eq!(&rsp.to_bytes()[..], want);
        let back = MultiResponse::from_slice(want).unwrap();
        assert_eq!(back.first_error(), Some((1, ErrorCode::NoNode)));
        assert_eq!(back, rsp);
    }

    #[test]
    fn successful_results_layout() {
        let rsp = MultiResponse {
            results: vec![
                OpResult::Create(CreateResponse { path: "/x".into() }),
                OpResult::Delete,
            ],
        };
        #[rustfmt::skip]
        let want: &[u8] = &[
            0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, b'/', b'x',
            0, 0, 0, 2, 0, 0, 0, 0, 0,
            0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(&rsp.to_bytes()[..], want);
        assert_eq!(rsp.first_error(), None);
    }

    #[test]
    fn empty_multi_is_just_the_end_marker() {
        let b = MultiRequest::default().to_bytes();
        assert_eq!(b.len(), 9);
        assert_eq!(MultiRequest::from_slice(&b), Ok(MultiRequest::default()));
    }

    #[test]
    fn mixing_and_wrong_kinds_rejected() {
        let read = MultiOp::GetData(GetDataRequest {
            path: "/a".into(),
            watch: false,
        });
        let write = MultiOp::Delete(DeleteRequest {
            path: "/a".into(),
            version: -1,
        });
        let mixed = MultiRequest {
            ops: vec![write.clone(), read.clone()],
        };
        assert_eq!(
            MultiRequest::from_slice(&mixed.to_bytes()),
            Err(DecodeError::InvalidMultiOp {
                multi: OpCode::Multi,
                op: 4
            })
        );
        let reads = MultiRequest { ops: vec![read] };
        assert!(reads.check_kind(OpCode::MultiRead).is_ok());
        assert!(reads.check_kind(OpCode::Multi).is_err());
        let writes = MultiRequest { ops: vec![write] };
        assert!(writes.check_kind(OpCode::Multi).is_ok());
        assert!(writes.check_kind(OpCode::MultiRead).is_err());
    }

    #[test]
    fn non_multi_op_rejected() {
        let mut b = BytesMut::new();
        MultiHeader {
            op: OpCode::Sync.code(),
            done: false,
            err: -1,
        }
        .write(&mut b);
        assert!(matches!(
            MultiRequest::from_slice(&b),
            Err(DecodeError::InvalidMultiOp { op: 9, .. })
        ));
    }

    proptest! {
        #[test]
        fn requests_round_trip(
            writes in proptest::collection::vec(write_op(), 0..5),
            reads in proptest::collection::vec(read_op(), 0..5),
        ) {
            for ops in [writes, reads] {
                let req = MultiRequest { ops };
                let b = req.to_bytes();
                let mut r = Reader::new(&b);
                prop_assert_eq!(MultiRequest::read(&mut r)?, req);
                prop_assert!(r.is_empty());
            }
        }

        #[test]
        fn responses_round_trip(results in proptest::collection::vec(op_result(), 0..6)) {
            let rsp = MultiResponse { results };
            let b = rsp.to_bytes();
            let mut r = Reader::new(&b);
            prop_assert_eq!(MultiResponse::read(&mut r)?, rsp);
            prop_assert!(r.is_empty());
        }

        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = MultiRequest::from_slice(&data);
            let _ = MultiResponse::from_slice(&data);
        }
    }
}
