//! sluice-log: the broker's partition log. No networking; synchronous `std::fs` calls that the
//! broker makes from its own tasks (e.g. `spawn_blocking`).
//!
//! The data are Kafka record batches (magic v2) stored exactly as clients and leaders send
//! them, so a fetch can hand a file range to `sendfile`. Layout, compatible with Kafka's:
//!
//! ```text
//! <log dir>/                                  LogManager: one per entry of log.dirs
//!   .lock  .kafka_cleanshutdown  recovery-point-offset-checkpoint
//!   log-start-offset-checkpoint  replication-offset-checkpoint
//!   <topic>-<partition>/                      Log
//!     00000000000000000000.log                record batches, as received (offsets assigned)
//!     00000000000000000000.index              sparse offset index
//!     00000000000000000000.timeindex          sparse time index
//!     00000000000000123456.log ...            next segment, named by its base offset
//!     leader-epoch-checkpoint                 epoch → start offset
//! ```
//!
//! Modules, in the order data flows through them:
//! - [`batch`]: batch header parsing, CRC-32C, payload splitting and validation;
//! - `segment` / `index`: one segment file and its indexes, the recovery scan;
//! - [`Log`]: append, read, truncate, retention, flush, recovery on open;
//! - `epoch`: the leader-epoch cache; `dir`: a log directory's lock and checkpoint files;
//! - [`LogManager`]: every log under several directories, parallel recovery at start;
//! - [`records`]: record-level decoding for ListOffsets and a batch builder.
//!
//! Durability and recovery are described in `docs/decisions/0004-partition-log.md`.

#![cfg(unix)]

pub mod batch;
pub mod compression;
mod config;
mod dir;
mod epoch;
mod error;
mod index;
mod log;
mod manager;
mod progress;
pub mod records;
mod segment;

pub use crate::config::LogConfig;
pub use crate::dir::TopicPartition;
pub use crate::epoch::EpochEntry;
pub use crate::error::{kafka_code, BatchError, LogError, Result};
pub use crate::log::{
    now_ms, segment_file, AppendInfo, BatchHeaders, CheckedPayload, FetchSlice, Log,
    RetentionOutcome, StoredBatch, TimestampOffset, LEADER_EPOCH_CHECKPOINT, MAX_SCANNED_INFLATE,
};
pub use crate::manager::{LogManager, SharedLog};
