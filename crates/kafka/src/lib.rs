//! The Kafka wire protocol's framing, in one place for every part of the project that speaks it:
//! the broker's listeners, the load tool, the tests, and (with replication) the broker's own
//! follower fetchers.
//!
//! ```text
//!  bytes off a socket                                            bytes onto a socket
//!  ┌──────┬──────────────────────────────┐                        ┌──────┬────────────────────┐
//!  │ size │ api key │ version │ corr. id │ header rest │ body │   │ size │ corr. id │ body    │
//!  └──────┴──────────────────────────────┘                        └──────┴────────────────────┘
//!     │  frame::check_size (before any allocation)                    ▲
//!     ▼                                                               │ frame::encode_response
//!  frame::decode_request(frame, served) ──► Request { header, key, version, body }
//! ```
//!
//! [`frame`] does no I/O: it checks a frame's size against the limit before the caller reads
//! or allocates the frame, reads the fixed prefix, refuses APIs and versions the caller does not
//! serve, and decodes header and body with the `kafka-protocol` crate (whose decoders are
//! patched to allocate no more than the bytes received allow, decision 0010). [`client`] is a
//! blocking connection for tools and tests that send exact requests; [`async_client`] the same
//! on tokio, for the broker's own requests to other brokers (followers fetching from leaders).

pub mod assignment;
pub mod async_client;
pub mod client;
pub mod frame;

pub use client::{ClientError, Conn};
pub use frame::{decode_request, encode_response, Request, RequestError};
