//! The fixed-layout records of `zookeeper.jute` (3.8) that client ops carry: `Stat`, `Id`, `ACL`,
//! `ClientInfo` and each op's request and response body, field for field in the order ZooKeeper
//! declares them.
//!
//! Nullability: znode data keeps null (`None`, length -1) apart from empty, because ZooKeeper
//! stores and returns a null payload as such. Other buffers, strings and vectors read null as
//! empty, since no client op gives null a meaning of its own there. Enum-like request fields
//! (create flags, watch modes, watcher types) stay raw `i32`: ZooKeeper answers an invalid value
//! with a `KeeperException` such as `BadArguments`, not a decoding failure, so the server must see
//! the number; each such record has a typed accessor.

use bytes::{Bytes, BytesMut};

use crate::types::{Acl, AddWatchMode, CreateMode, ErrorCode, Id, Stat, WatcherType};
use crate::wire::{self, DecodeError, Reader, Record};

/// Smallest encodings, used to bound vector counts before allocating.
const MIN_ACL_LEN: usize = 12;
const MIN_CLIENT_INFO_LEN: usize = 8;

/// Encodes and decodes one field by its jute kind.
macro_rules! field {
    (write int, $b:expr, $v:expr) => {
        wire::put_i32($b, *$v)
    };
    (write long, $b:expr, $v:expr) => {
        wire::put_i64($b, *$v)
    };
    (write boolean, $b:expr, $v:expr) => {
        wire::put_bool($b, *$v)
    };
    (write ustring, $b:expr, $v:expr) => {
        wire::put_ustring($b, $v)
    };
    (write opt_ustring, $b:expr, $v:expr) => {
        wire::put_opt_ustring($b, $v.as_deref())
    };
    (write buffer, $b:expr, $v:expr) => {
        wire::put_buffer($b, $v)
    };
    (write data, $b:expr, $v:expr) => {
        wire::put_opt_buffer($b, $v.as_deref())
    };
    (write strings, $b:expr, $v:expr) => {
        wire::put_string_vec($b, $v)
    };
    (write acls, $b:expr, $v:expr) => {
        wire::put_vec($b, $v, |b, a| a.write(b))
    };
    (write clients, $b:expr, $v:expr) => {
        wire::put_vec($b, $v, |b, c| c.write(b))
    };
    (write record, $b:expr, $v:expr) => {
        Record::write($v, $b)
    };
    (write error_code, $b:expr, $v:expr) => {
        wire::put_i32($b, $v.code())
    };

    (read int, $r:expr, $w:expr) => {
        $r.read_i32($w)
    };
    (read long, $r:expr, $w:expr) => {
        $r.read_i64($w)
    };
    (read boolean, $r:expr, $w:expr) => {
        $r.read_bool($w)
    };
    (read ustring, $r:expr, $w:expr) => {
        $r.read_ustring($w)
    };
    (read opt_ustring, $r:expr, $w:expr) => {
        $r.read_opt_ustring($w)
    };
    (read buffer, $r:expr, $w:expr) => {
        $r.read_buffer($w)
    };
    (read data, $r:expr, $w:expr) => {
        $r.read_opt_buffer($w)
    };
    (read strings, $r:expr, $w:expr) => {
        $r.read_string_vec($w)
    };
    (read acls, $r:expr, $w:expr) => {
        $r.read_vec($w, MIN_ACL_LEN, Acl::read)
    };
    (read clients, $r:expr, $w:expr) => {
        $r.read_vec($w, MIN_CLIENT_INFO_LEN, ClientInfo::read)
    };
    (read record, $r:expr, $w:expr) => {
        $r.read()
    };
    (read error_code, $r:expr, $w:expr) => {
        read_error_code($r, $w)
    };
}

/// Declares a record struct and its [`Record`] impl from `field: Type = kind` lines.
macro_rules! record {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty = $kind:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            $($(#[$fm])* pub $field: $ty,)*
        }

        impl Record for $name {
            fn write(&self, buf: &mut BytesMut) {
                $(field!(write $kind, buf, &self.$field);)*
            }

            fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                Ok($name {
                    $($field: field!(read $kind, r,
                        concat!(stringify!($name), ".", stringify!($field)))?,)*
                })
            }
        }
    };
}

/// Reads an `int` that must be one of ZooKeeper's `KeeperException.Code` values.
pub fn read_error_code(r: &mut Reader<'_>, what: &'static str) -> Result<ErrorCode, DecodeError> {
    let v = r.read_i32(what)?;
    ErrorCode::from_i32(v).ok_or(DecodeError::UnknownErrorCode(v))
}

impl Record for Stat {
    fn write(&self, buf: &mut BytesMut) {
        wire::put_i64(buf, self.czxid);
        wire::put_i64(buf, self.mzxid);
        wire::put_i64(buf, self.ctime);
        wire::put_i64(buf, self.mtime);
        wire::put_i32(buf, self.version);
        wire::put_i32(buf, self.cversion);
        wire::put_i32(buf, self.aversion);
        wire::put_i64(buf, self.ephemeral_owner);
        wire::put_i32(buf, self.data_length);
        wire::put_i32(buf, self.num_children);
        wire::put_i64(buf, self.pzxid);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Stat {
            czxid: r.read_i64("Stat.czxid")?,
            mzxid: r.read_i64("Stat.mzxid")?,
            ctime: r.read_i64("Stat.ctime")?,
            mtime: r.read_i64("Stat.mtime")?,
            version: r.read_i32("Stat.version")?,
            cversion: r.read_i32("Stat.cversion")?,
            aversion: r.read_i32("Stat.aversion")?,
            ephemeral_owner: r.read_i64("Stat.ephemeralOwner")?,
            data_length: r.read_i32("Stat.dataLength")?,
            num_children: r.read_i32("Stat.numChildren")?,
            pzxid: r.read_i64("Stat.pzxid")?,
        })
    }
}

/// Encoded size of a `Stat`: 6 longs and 5 ints.
pub const STAT_LEN: usize = 68;

impl Record for Id {
    fn write(&self, buf: &mut BytesMut) {
        wire::put_ustring(buf, &self.scheme);
        wire::put_ustring(buf, &self.id);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Id {
            scheme: r.read_ustring("Id.scheme")?,
            id: r.read_ustring("Id.id")?,
        })
    }
}

impl Record for Acl {
    fn write(&self, buf: &mut BytesMut) {
        wire::put_i32(buf, self.perms);
        self.id.write(buf);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Acl {
            perms: r.read_i32("ACL.perms")?,
            id: r.read()?,
        })
    }
}

record! {
    /// One identity of the session, as `whoAmI` reports it (`org.apache.zookeeper.data.ClientInfo`).
    ClientInfo {
        auth_scheme: String = ustring,
        /// The user name or other id (an IP address for `ip`).
        user: String = ustring,
    }
}

record! {
    /// Body of `create` (1), `create2` (15) and `createContainer` (19).
    CreateRequest {
        path: String = ustring,
        data: Option<Bytes> = data,
        acl: Vec<Acl> = acls,
        /// A `CreateMode` flag; see [`CreateRequest::create_mode`].
        flags: i32 = int,
    }
}

impl CreateRequest {
    pub fn create_mode(&self) -> Option<CreateMode> {
        CreateMode::from_flag(self.flags)
    }
}

record! {
    /// Body of `createTTL` (21).
    CreateTtlRequest {
        path: String = ustring,
        data: Option<Bytes> = data,
        acl: Vec<Acl> = acls,
        flags: i32 = int,
        /// Milliseconds; see [`CreateMode::ttl_is_valid`].
        ttl: i64 = long,
    }
}

impl CreateTtlRequest {
    pub fn create_mode(&self) -> Option<CreateMode> {
        CreateMode::from_flag(self.flags)
    }
}

record! {
    /// Reply to `create` (1).
    CreateResponse { path: String = ustring }
}

record! {
    /// Reply to `create2`, `createContainer` and `createTTL`.
    Create2Response { path: String = ustring, stat: Stat = record }
}

record! {
    /// Body of `delete` (2). Version -1 matches any version.
    DeleteRequest { path: String = ustring, version: i32 = int }
}

record! {
    /// Body of `exists` (3).
    ExistsRequest { path: String = ustring, watch: bool = boolean }
}

record! {
    /// Reply to `exists` when the node exists; a missing node is `NoNode` in the reply header.
    ExistsResponse { stat: Stat = record }
}

record! {
    /// Body of `getData` (4).
    GetDataRequest { path: String = ustring, watch: bool = boolean }
}

record! {
    /// Reply to `getData` (and, carrying the config, to `reconfig`).
    GetDataResponse { data: Option<Bytes> = data, stat: Stat = record }
}

record! {
    /// Body of `setData` (5).
    SetDataRequest { path: String = ustring, data: Option<Bytes> = data, version: i32 = int }
}

record! {
    /// Reply to `setData`.
    SetDataResponse { stat: Stat = record }
}

record! {
    /// Body of `getACL` (6).
    GetAclRequest { path: String = ustring }
}

record! {
    /// Reply to `getACL`.
    GetAclResponse { acl: Vec<Acl> = acls, stat: Stat = record }
}

record! {
    /// Body of `setACL` (7). `version` is checked against the node's `aversion`.
    SetAclRequest { path: String = ustring, acl: Vec<Acl> = acls, version: i32 = int }
}

record! {
    /// Reply to `setACL`.
    SetAclResponse { stat: Stat = record }
}

record! {
    /// Body of `getChildren` (8).
    GetChildrenRequest { path: String = ustring, watch: bool = boolean }
}

record! {
    /// Reply to `getChildren`: child names, not full paths.
    GetChildrenResponse { children: Vec<String> = strings }
}

record! {
    /// Body of `getChildren2` (12).
    GetChildren2Request { path: String = ustring, watch: bool = boolean }
}

record! {
    /// Reply to `getChildren2`.
    GetChildren2Response { children: Vec<String> = strings, stat: Stat = record }
}

record! {
    /// Body of `sync` (9).
    SyncRequest { path: String = ustring }
}

record! {
    /// Reply to `sync`: the path that was synced.
    SyncResponse { path: String = ustring }
}

record! {
    /// Body of `check` (13). Only valid inside `multi`: a 3.8 server answers a stand-alone check
    /// with `Unimplemented`.
    CheckVersionRequest { path: String = ustring, version: i32 = int }
}

record! {
    /// Body of `getAllChildrenNumber` (104).
    GetAllChildrenNumberRequest { path: String = ustring }
}

record! {
    /// Reply to `getAllChildrenNumber`: descendants, not counting the node itself.
    GetAllChildrenNumberResponse { total_number: i32 = int }
}

record! {
    /// Body of `getEphemerals` (103).
    GetEphemeralsRequest { prefix_path: String = ustring }
}

record! {
    /// Reply to `getEphemerals`: full paths of the session's ephemeral nodes under the prefix.
    GetEphemeralsResponse { ephemerals: Vec<String> = strings }
}

record! {
    /// Body of `addWatch` (106).
    AddWatchRequest {
        path: String = ustring,
        /// An `AddWatchMode`; see [`AddWatchRequest::watch_mode`].
        mode: i32 = int,
    }
}

impl AddWatchRequest {
    pub fn watch_mode(&self) -> Option<AddWatchMode> {
        AddWatchMode::from_i32(self.mode)
    }
}

record! {
    /// Body of `checkWatches` (17).
    CheckWatchesRequest {
        path: String = ustring,
        /// A `WatcherType`; see [`CheckWatchesRequest::watcher`].
        watcher_type: i32 = int,
    }
}

impl CheckWatchesRequest {
    pub fn watcher(&self) -> Option<WatcherType> {
        WatcherType::from_i32(self.watcher_type)
    }
}

record! {
    /// Body of `removeWatches` (18).
    RemoveWatchesRequest {
        path: String = ustring,
        /// A `WatcherType`; see [`RemoveWatchesRequest::watcher`].
        watcher_type: i32 = int,
    }
}

impl RemoveWatchesRequest {
    pub fn watcher(&self) -> Option<WatcherType> {
        WatcherType::from_i32(self.watcher_type)
    }
}

record! {
    /// A bare error code. ZooKeeper sends one (always `Ok`) as the reply to `addWatch`, and one
    /// per failed op in a multi reply.
    ErrorResponse { err: ErrorCode = error_code }
}

record! {
    /// Reply to `whoAmI` (107).
    WhoAmIResponse { client_info: Vec<ClientInfo> = clients }
}

record! {
    /// Body of `setWatches` (101), sent after a reconnect to re-arm watches; the server fires at
    /// once any watch whose node changed after `relative_zxid`.
    SetWatches {
        relative_zxid: i64 = long,
        data_watches: Vec<String> = strings,
        exist_watches: Vec<String> = strings,
        child_watches: Vec<String> = strings,
    }
}

record! {
    /// Body of `setWatches2` (105): [`SetWatches`] plus persistent and persistent-recursive watches.
    /// A 3.8 client sends it only when it has persistent watches to restore.
    SetWatches2 {
        relative_zxid: i64 = long,
        data_watches: Vec<String> = strings,
        exist_watches: Vec<String> = strings,
        child_watches: Vec<String> = strings,
        persistent_watches: Vec<String> = strings,
        persistent_recursive_watches: Vec<String> = strings,
    }
}

record! {
    /// Body of `auth` (100), always sent with xid -4. `auth_type` is always 0.
    AuthPacket { auth_type: i32 = int, scheme: String = ustring, auth: Bytes = buffer }
}

record! {
    /// Body of `sasl` (102): a SASL token (`GetSASLRequest`).
    GetSaslRequest { token: Bytes = buffer }
}

record! {
    /// Reply to `sasl`: the server's SASL token (`SetSASLResponse`).
    SetSaslResponse { token: Bytes = buffer }
}

record! {
    /// Body of `reconfig` (16). Null strings mean "not given", as distinct from empty.
    ReconfigRequest {
        joining_servers: Option<String> = opt_ustring,
        leaving_servers: Option<String> = opt_ustring,
        new_members: Option<String> = opt_ustring,
        cur_config_id: i64 = long,
    }
}

#[cfg(test)]
pub(crate) mod strategies {
    //! Proptest generators shared by the record, session, multi and message tests.

    use super::*;
    use proptest::collection::vec;
    use proptest::option;
    use proptest::prelude::*;

    pub fn path() -> impl Strategy<Value = String> {
        "(/[a-zé0-9_.-]{0,6}){0,3}"
    }

    pub fn bytes() -> impl Strategy<Value = Bytes> {
        vec(any::<u8>(), 0..24).prop_map(Bytes::from)
    }

    pub fn data() -> impl Strategy<Value = Option<Bytes>> {
        option::of(bytes())
    }

    pub fn strings() -> impl Strategy<Value = Vec<String>> {
        vec(path(), 0..4)
    }

    pub fn stat() -> impl Strategy<Value = Stat> {
        (
            (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>()),
            (any::<i32>(), any::<i32>(), any::<i32>()),
            (any::<i64>(), any::<i32>(), any::<i32>(), any::<i64>()),
        )
            .prop_map(|((cz, mz, ct, mt), (v, cv, av), (eo, dl, nc, pz))| Stat {
                czxid: cz,
                mzxid: mz,
                ctime: ct,
                mtime: mt,
                version: v,
                cversion: cv,
                aversion: av,
                ephemeral_owner: eo,
                data_length: dl,
                num_children: nc,
                pzxid: pz,
            })
    }

    pub fn acls() -> impl Strategy<Value = Vec<Acl>> {
        vec(
            (any::<i32>(), "[a-z]{0,6}", ".{0,8}").prop_map(|(perms, scheme, id)| Acl {
                perms,
                id: Id { scheme, id },
            }),
            0..3,
        )
    }

    pub fn error_code() -> impl Strategy<Value = ErrorCode> {
        (-130i32..=0).prop_filter_map("not a code", ErrorCode::from_i32)
    }

    pub fn create() -> impl Strategy<Value = CreateRequest> {
        (path(), data(), acls(), any::<i32>()).prop_map(|(path, data, acl, flags)| CreateRequest {
            path,
            data,
            acl,
            flags,
        })
    }

    pub fn create_ttl() -> impl Strategy<Value = CreateTtlRequest> {
        (path(), data(), acls(), any::<i32>(), any::<i64>()).prop_map(
            |(path, data, acl, flags, ttl)| CreateTtlRequest {
                path,
                data,
                acl,
                flags,
                ttl,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::strategies::*;
    use super::*;
    use proptest::prelude::*;

    fn round_trip<T: Record + PartialEq + std::fmt::Debug>(v: &T) -> Result<(), TestCaseError> {
        let bytes = v.to_bytes();
        let mut r = Reader::new(&bytes);
        let back = T::read(&mut r)?;
        prop_assert_eq!(&back, v);
        prop_assert!(r.is_empty(), "{} bytes left over", r.remaining());
        Ok(())
    }

    #[test]
    fn stat_is_68_bytes() {
        assert_eq!(Stat::default().to_bytes().len(), STAT_LEN);
    }

    /// `CreateRequest` for `/a` with data `hi`, `OPEN_ACL_UNSAFE` and `PERSISTENT`, laid out by
    /// hand from `zookeeper.jute`.
    #[test]
    fn golden_create_open_acl_unsafe() {
        let req = CreateRequest {
            path: "/a".into(),
            data: Some(Bytes::from_static(b"hi")),
            acl: Acl::open_unsafe(),
            flags: CreateMode::Persistent.flag(),
        };
        #[rustfmt::skip]
        let want: &[u8] = &[
            0, 0, 0, 2, b'/', b'a',            // path
            0, 0, 0, 2, b'h', b'i',            // data
            0, 0, 0, 1,                        // acl: one entry
            0, 0, 0, 0x1f,                     //   perms ALL = 31
            0, 0, 0, 5, b'w', b'o', b'r', b'l', b'd',
            0, 0, 0, 6, b'a', b'n', b'y', b'o', b'n', b'e',
            0, 0, 0, 0,                        // flags PERSISTENT
        ];
        assert_eq!(&req.to_bytes()[..], want);
        assert_eq!(CreateRequest::from_slice(want), Ok(req));
    }

    #[test]
    fn null_data_survives() {
        let req = SetDataRequest {
            path: "/x".into(),
            data: None,
            version: -1,
        };
        let b = req.to_bytes();
        assert_eq!(&b[6..10], &[0xff; 4]);
        assert_eq!(SetDataRequest::from_slice(&b), Ok(req));
    }

    #[test]
    fn typed_accessors() {
        let c = CreateRequest {
            flags: 3,
            ..Default::default()
        };
        assert_eq!(c.create_mode(), Some(CreateMode::EphemeralSequential));
        let c = CreateRequest {
            flags: 9,
            ..Default::default()
        };
        assert_eq!(c.create_mode(), None);
        let w = AddWatchRequest {
            path: "/".into(),
            mode: 1,
        };
        assert_eq!(w.watch_mode(), Some(AddWatchMode::PersistentRecursive));
        let rw = RemoveWatchesRequest {
            path: "/".into(),
            watcher_type: 3,
        };
        assert_eq!(rw.watcher(), Some(WatcherType::Any));
    }

    #[test]
    fn unknown_error_code_rejected() {
        let b = (-9i32).to_be_bytes();
        assert_eq!(
            ErrorResponse::from_slice(&b),
            Err(DecodeError::UnknownErrorCode(-9))
        );
    }

    proptest! {
        #[test]
        fn create_requests(c in create(), t in create_ttl()) {
            round_trip(&c)?;
            round_trip(&t)?;
        }

        #[test]
        fn path_requests(p in path(), w in any::<bool>(), v in any::<i32>()) {
            round_trip(&DeleteRequest { path: p.clone(), version: v })?;
            round_trip(&ExistsRequest { path: p.clone(), watch: w })?;
            round_trip(&GetDataRequest { path: p.clone(), watch: w })?;
            round_trip(&GetAclRequest { path: p.clone() })?;
            round_trip(&GetChildrenRequest { path: p.clone(), watch: w })?;
            round_trip(&GetChildren2Request { path: p.clone(), watch: w })?;
            round_trip(&SyncRequest { path: p.clone() })?;
            round_trip(&SyncResponse { path: p.clone() })?;
            round_trip(&CheckVersionRequest { path: p.clone(), version: v })?;
            round_trip(&GetAllChildrenNumberRequest { path: p.clone() })?;
            round_trip(&GetEphemeralsRequest { prefix_path: p.clone() })?;
            round_trip(&AddWatchRequest { path: p.clone(), mode: v })?;
            round_trip(&CheckWatchesRequest { path: p.clone(), watcher_type: v })?;
            round_trip(&RemoveWatchesRequest { path: p.clone(), watcher_type: v })?;
            round_trip(&CreateResponse { path: p })?;
        }

        #[test]
        fn stat_responses(s in stat(), p in path(), d in data(), acl in acls(), ch in strings()) {
            round_trip(&s)?;
            round_trip(&Create2Response { path: p.clone(), stat: s })?;
            round_trip(&ExistsResponse { stat: s })?;
            round_trip(&GetDataResponse { data: d.clone(), stat: s })?;
            round_trip(&SetDataRequest { path: p.clone(), data: d, version: 4 })?;
            round_trip(&SetDataResponse { stat: s })?;
            round_trip(&GetAclResponse { acl: acl.clone(), stat: s })?;
            round_trip(&SetAclRequest { path: p, acl, version: -1 })?;
            round_trip(&SetAclResponse { stat: s })?;
            round_trip(&GetChildrenResponse { children: ch.clone() })?;
            round_trip(&GetChildren2Response { children: ch.clone(), stat: s })?;
            round_trip(&GetEphemeralsResponse { ephemerals: ch })?;
            round_trip(&GetAllChildrenNumberResponse { total_number: s.version })?;
        }

        #[test]
        fn session_records(
            z in any::<i64>(),
            lists in proptest::collection::vec(strings(), 5),
            b in bytes(),
            e in error_code(),
            who in proptest::collection::vec(("[a-z]{0,5}", ".{0,6}"), 0..3),
            opt in proptest::collection::vec(proptest::option::of(".{0,6}"), 3),
        ) {
            round_trip(&SetWatches {
                relative_zxid: z,
                data_watches: lists[0].clone(),
                exist_watches: lists[1].clone(),
                child_watches: lists[2].clone(),
            })?;
            round_trip(&SetWatches2 {
                relative_zxid: z,
                data_watches: lists[0].clone(),
                exist_watches: lists[1].clone(),
                child_watches: lists[2].clone(),
                persistent_watches: lists[3].clone(),
                persistent_recursive_watches: lists[4].clone(),
            })?;
            round_trip(&AuthPacket { auth_type: 0, scheme: "digest".into(), auth: b.clone() })?;
            round_trip(&GetSaslRequest { token: b.clone() })?;
            round_trip(&SetSaslResponse { token: b })?;
            round_trip(&ErrorResponse { err: e })?;
            round_trip(&WhoAmIResponse {
                client_info: who
                    .into_iter()
                    .map(|(auth_scheme, user)| ClientInfo { auth_scheme, user })
                    .collect(),
            })?;
            round_trip(&ReconfigRequest {
                joining_servers: opt[0].clone(),
                leaving_servers: opt[1].clone(),
                new_members: opt[2].clone(),
                cur_config_id: z,
            })?;
        }

        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = Stat::from_slice(&data);
            let _ = CreateRequest::from_slice(&data);
            let _ = CreateTtlRequest::from_slice(&data);
            let _ = SetAclRequest::from_slice(&data);
            let _ = GetAclResponse::from_slice(&data);
            let _ = GetChildren2Response::from_slice(&data);
            let _ = SetWatches2::from_slice(&data);
            let _ = WhoAmIResponse::from_slice(&data);
            let _ = ReconfigRequest::from_slice(&data);
            let _ = ErrorResponse::from_slice(&data);
        }
    }
}
