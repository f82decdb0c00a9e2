//! Values shared by the codec, the znode tree and the server: error codes, op codes, create modes,
//! permissions, `Stat`, ACLs and watch event kinds, with ZooKeeper 3.8's numeric values.

use serde::{Deserialize, Serialize};

/// ZooKeeper's `KeeperException.Code`, as sent in `ReplyHeader.err`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[repr(i32)]
pub enum ErrorCode {
    #[default]
    Ok = 0,
    SystemError = -1,
    RuntimeInconsistency = -2,
    DataInconsistency = -3,
    ConnectionLoss = -4,
    MarshallingError = -5,
    Unimplemented = -6,
    OperationTimeout = -7,
    BadArguments = -8,
    UnknownSession = -12,
    NewConfigNoQuorum = -13,
    ReconfigInProgress = -14,
    ApiError = -100,
    NoNode = -101,
    NoAuth = -102,
    BadVersion = -103,
    NoChildrenForEphemerals = -108,
    NodeExists = -110,
    NotEmpty = -111,
    SessionExpired = -112,
    InvalidCallback = -113,
    InvalidAcl = -114,
    AuthFailed = -115,
    SessionMoved = -118,
    NotReadOnly = -119,
    EphemeralOnLocalSession = -120,
    NoWatcher = -121,
    RequestTimeout = -122,
    ReconfigDisabled = -123,
    SessionClosedRequireSaslAuth = -124,
    QuotaExceeded = -125,
    Throttled = -127,
}

impl ErrorCode {
    pub fn from_i32(v: i32) -> Option<ErrorCode> {
        use ErrorCode::*;
        Some(match v {
            0 => Ok,
            -1 => SystemError,
            -2 => RuntimeInconsistency,
            -3 => DataInconsistency,
            -4 => ConnectionLoss,
            -5 => MarshallingError,
            -6 => Unimplemented,
            -7 => OperationTimeout,
            -8 => BadArguments,
            -12 => UnknownSession,
            -13 => NewConfigNoQuorum,
            -14 => ReconfigInProgress,
            -100 => ApiError,
            -101 => NoNode,
            -102 => NoAuth,
            -103 => BadVersion,
            -108 => NoChildrenForEphemerals,
            -110 => NodeExists,
            -111 => NotEmpty,
            -112 => SessionExpired,
            -113 => InvalidCallback,
            -114 => InvalidAcl,
            -115 => AuthFailed,
            -118 => SessionMoved,
            -119 => NotReadOnly,
            -120 => EphemeralOnLocalSession,
            -121 => NoWatcher,
            -122 => RequestTimeout,
            -123 => ReconfigDisabled,
            -124 => SessionClosedRequireSaslAuth,
            -125 => QuotaExceeded,
            -127 => Throttled,
            _ => return None,
        })
    }

    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Request types (`ZooDefs.OpCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(i32)]
pub enum OpCode {
    Notification = 0,
    Create = 1,
    Delete = 2,
    Exists = 3,
    GetData = 4,
    SetData = 5,
    GetAcl = 6,
    SetAcl = 7,
    GetChildren = 8,
    Sync = 9,
    Ping = 11,
    GetChildren2 = 12,
    Check = 13,
    Multi = 14,
    Create2 = 15,
    Reconfig = 16,
    CheckWatches = 17,
    RemoveWatches = 18,
    CreateContainer = 19,
    DeleteContainer = 20,
    CreateTtl = 21,
    MultiRead = 22,
    Auth = 100,
    SetWatches = 101,
    Sasl = 102,
    GetEphemerals = 103,
    GetAllChildrenNumber = 104,
    SetWatches2 = 105,
    AddWatch = 106,
    WhoAmI = 107,
    CreateSession = -10,
    CloseSession = -11,
    Error = -1,
}

impl OpCode {
    pub fn from_i32(v: i32) -> Option<OpCode> {
        use OpCode::*;
        Some(match v {
            0 => Notification,
            1 => Create,
            2 => Delete,
            3 => Exists,
            4 => GetData,
            5 => SetData,
            6 => GetAcl,
            7 => SetAcl,
            8 => GetChildren,
            9 => Sync,
            11 => Ping,
            12 => GetChildren2,
            13 => Check,
            14 => Multi,
            15 => Create2,
            16 => Reconfig,
            17 => CheckWatches,
            18 => RemoveWatches,
            19 => CreateContainer,
            20 => DeleteContainer,
            21 => CreateTtl,
            22 => MultiRead,
            100 => Auth,
            101 => SetWatches,
            102 => Sasl,
            103 => GetEphemerals,
            104 => GetAllChildrenNumber,
            105 => SetWatches2,
            106 => AddWatch,
            107 => WhoAmI,
            -10 => CreateSession,
            -11 => CloseSession,
            -1 => Error,
            _ => return None,
        })
    }

    /// The value sent in `RequestHeader.type` and `MultiHeader.type`.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// `CreateMode` flags as sent in create requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CreateMode {
    Persistent,
    Ephemeral,
    PersistentSequential,
    EphemeralSequential,
    Container,
    PersistentWithTtl,
    PersistentSequentialWithTtl,
}

impl CreateMode {
    pub fn from_flag(flag: i32) -> Option<CreateMode> {
        use CreateMode::*;
        Some(match flag {
            0 => Persistent,
            1 => Ephemeral,
            2 => PersistentSequential,
            3 => EphemeralSequential,
            4 => Container,
            5 => PersistentWithTtl,
            6 => PersistentSequentialWithTtl,
            _ => return None,
        })
    }

    pub fn flag(self) -> i32 {
        use CreateMode::*;
        match self {
            Persistent => 0,
            Ephemeral => 1,
            PersistentSequential => 2,
            EphemeralSequential => 3,
            Container => 4,
            PersistentWithTtl => 5,
            PersistentSequentialWithTtl => 6,
        }
    }

    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    pub fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }

    pub fn is_container(self) -> bool {
        self == CreateMode::Container
    }

    /// Whether `ttl` is acceptable for this mode, as `EphemeralType.validateTTL` decides: TTL modes
    /// need `0 < ttl <= MAX_TTL`; every other mode needs a negative ttl (plain creates carry -1).
    pub fn ttl_is_valid(self, ttl: i64) -> bool {
        if self.is_ttl() {
            ttl > 0 && ttl <= MAX_TTL
        } else {
            ttl < 0
        }
    }
}

/// Largest TTL in milliseconds (about 34 years): the 40 low bits of an extended `ephemeralOwner`.
pub const MAX_TTL: i64 = 0x00ff_ffff_ffff;

/// `Stat.ephemeralOwner` of a container node (`EphemeralType.CONTAINER_EPHEMERAL_OWNER`).
pub const CONTAINER_EPHEMERAL_OWNER: i64 = i64::MIN;

/// High byte that marks an `ephemeralOwner` as an extended type rather than a session id; this is
/// why ZooKeeper caps server ids at 254 when extended types are enabled.
const EXTENDED_MASK: i64 = 0xff00_0000_0000_0000_u64 as i64;

/// `Stat.ephemeralOwner` of a TTL node: the extended marker byte, TTL feature bits (zero) and the
/// TTL itself. `None` when `ttl` is out of range.
pub fn ttl_ephemeral_owner(ttl: i64) -> Option<i64> {
    (ttl > 0 && ttl <= MAX_TTL).then_some(EXTENDED_MASK | ttl)
}

/// The TTL encoded in an `ephemeralOwner`, if it marks a TTL node.
pub fn ttl_from_ephemeral_owner(owner: i64) -> Option<i64> {
    // Reserved bits 40..56 select the extended feature; zero means TTL.
    let reserved = (owner >> 40) & 0xffff;
    (owner & EXTENDED_MASK == EXTENDED_MASK && reserved == 0).then_some(owner & MAX_TTL)
}

/// `ZooDefs.Perms` bits.
pub mod perms {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const CREATE: i32 = 4;
    pub const DELETE: i32 = 8;
    pub const ADMIN: i32 = 16;
    pub const ALL: i32 = READ | WRITE | CREATE | DELETE | ADMIN;
}

/// A znode's metadata, field for field as ZooKeeper's `Stat` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

/// An authentication identity: `scheme` (`world`, `digest`, `ip`, `auth`, `super`) and `id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

/// One access-control entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Acl {
    pub perms: i32,
    pub id: Id,
}

impl Acl {
    /// `world:anyone` with all permissions (`ZooDefs.Ids.OPEN_ACL_UNSAFE`).
    pub fn open_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: perms::ALL,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }]
    }
}

/// `Watcher.Event.EventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(i32)]
pub enum EventType {
    None = -1,
    NodeCreated = 1,
    NodeDeleted = 2,
    NodeDataChanged = 3,
    NodeChildrenChanged = 4,
    DataWatchRemoved = 5,
    ChildWatchRemoved = 6,
    PersistentWatchRemoved = 7,
}

impl EventType {
    pub fn from_i32(v: i32) -> Option<EventType> {
        use EventType::*;
        Some(match v {
            -1 => None,
            1 => NodeCreated,
            2 => NodeDeleted,
            3 => NodeDataChanged,
            4 => NodeChildrenChanged,
            5 => DataWatchRemoved,
            6 => ChildWatchRemoved,
            7 => PersistentWatchRemoved,
            _ => return Option::None,
        })
    }

    pub fn code(self) -> i32 {
        self as i32
    }
}

/// `Watcher.Event.KeeperState` values a server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(i32)]
pub enum KeeperState {
    Disconnected = 0,
    SyncConnected = 3,
    AuthFailed = 4,
    ConnectedReadOnly = 5,
    SaslAuthenticated = 6,
    Expired = -112,
    Closed = 7,
}

impl KeeperState {
    /// Only the states listed above; Java's deprecated `Unknown` (-1) and `NoSyncConnected` (1)
    /// are never sent by a 3.8 server.
    pub fn from_i32(v: i32) -> Option<KeeperState> {
        use KeeperState::*;
        Some(match v {
            0 => Disconnected,
            3 => SyncConnected,
            4 => AuthFailed,
            5 => ConnectedReadOnly,
            6 => SaslAuthenticated,
            -112 => Expired,
            7 => Closed,
            _ => return None,
        })
    }

    pub fn code(self) -> i32 {
        self as i32
    }
}

/// `AddWatchMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AddWatchMode {
    Persistent = 0,
    PersistentRecursive = 1,
}

impl AddWatchMode {
    pub fn from_i32(v: i32) -> Option<AddWatchMode> {
        match v {
            0 => Some(AddWatchMode::Persistent),
            1 => Some(AddWatchMode::PersistentRecursive),
            _ => None,
        }
    }

    pub fn code(self) -> i32 {
        self as i32
    }
}

/// `WatcherType` in removeWatches / checkWatches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WatcherType {
    Children = 1,
    Data = 2,
    Any = 3,
}

impl WatcherType {
    pub fn from_i32(v: i32) -> Option<WatcherType> {
        match v {
            1 => Some(WatcherType::Children),
            2 => Some(WatcherType::Data),
            3 => Some(WatcherType::Any),
            _ => None,
        }
    }

    pub fn code(self) -> i32 {
        self as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_owner_layout() {
        assert_eq!(
            ttl_ephemeral_owner(1),
            Some(0xff00_0000_0000_0001_u64 as i64)
        );
        assert_eq!(
            ttl_ephemeral_owner(MAX_TTL),
            Some(0xff00_00ff_ffff_ffff_u64 as i64)
        );
        assert_eq!(ttl_ephemeral_owner(0), None);
        assert_eq!(ttl_ephemeral_owner(MAX_TTL + 1), None);
        assert_eq!(ttl_from_ephemeral_owner(EXTENDED_MASK | 5000), Some(5000));
        assert_eq!(ttl_from_ephemeral_owner(0x1234), None);
        assert_eq!(ttl_from_ephemeral_owner(CONTAINER_EPHEMERAL_OWNER), None);
    }

    #[test]
    fn ttl_validity_by_mode() {
        assert!(CreateMode::PersistentWithTtl.ttl_is_valid(1000));
        assert!(!CreateMode::PersistentWithTtl.ttl_is_valid(0));
        assert!(!CreateMode::PersistentSequentialWithTtl.ttl_is_valid(-1));
        assert!(CreateMode::Persistent.ttl_is_valid(-1));
        assert!(!CreateMode::Ephemeral.ttl_is_valid(0));
    }

    #[test]
    fn enum_codes_round_trip() {
        for v in -200..200 {
            if let Some(e) = ErrorCode::from_i32(v) {
                assert_eq!(e.code(), v);
            }
            if let Some(o) = OpCode::from_i32(v) {
                assert_eq!(o.code(), v);
            }
            if let Some(e) = EventType::from_i32(v) {
                assert_eq!(e.code(), v);
            }
            if let Some(s) = KeeperState::from_i32(v) {
                assert_eq!(s.code(), v);
            }
            if let Some(m) = AddWatchMode::from_i32(v) {
                assert_eq!(m.code(), v);
            }
            if let Some(w) = WatcherType::from_i32(v) {
                assert_eq!(w.code(), v);
            }
        }
    }
}
