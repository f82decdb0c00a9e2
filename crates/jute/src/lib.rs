//! The ZooKeeper client wire protocol ("jute"), as ZooKeeper 3.8 speaks it on its client port.
//!
//! Pure codec: bytes in, typed values out, no sockets. The server reads length-prefixed frames and
//! hands their bodies here; responses are encoded into a `BytesMut`.

pub mod types;

pub use types::*;
