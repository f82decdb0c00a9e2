//! The ZooKeeper client wire protocol ("jute"), as ZooKeeper 3.8 speaks it on its client port.
//!
//! Pure codec: bytes in, typed values out, no sockets. The server reads length-prefixed frames and
//! hands their bodies here; responses are encoded into a `BytesMut`.
//!
//! - [`frame`]: splitting frames off a receive buffer and writing them, `jute.maxbuffer`.
//! - [`wire`]: jute primitives, the [`Record`] trait, [`Reader`] and [`DecodeError`].
//! - [`session`]: connect handshake, request/reply headers, special xids, watch events.
//! - [`records`]: the per-op request and response records of `zookeeper.jute`.
//! - [`multi`]: `multi` / `multiRead` op lists and results.
//! - [`message`]: the [`Request`] and [`Response`] enums that tie op codes to records.
//! - [`types`]: codes, modes, permissions, `Stat` and ACLs shared with the rest of the system.

pub mod frame;
pub mod message;
pub mod multi;
pub mod records;
pub mod session;
pub mod types;
pub mod wire;

pub use frame::{take_frame, write_frame, write_framed, FrameError, DEFAULT_MAX_BUFFER};
pub use message::{encode_reply, Request, Response, ServerMessage};
pub use multi::{MultiHeader, MultiOp, MultiRequest, MultiResponse, OpResult};
pub use records::*;
pub use session::*;
pub use types::*;
pub use wire::{DecodeError, Reader, Record};
