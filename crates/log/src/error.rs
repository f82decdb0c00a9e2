//! Errors of the partition log and their Kafka error codes.
//!
//! Two families: [`BatchError`] says what is wrong with record batches received from a client or
//! a leader (the produce path maps it to a per-partition error code), [`LogError`] wraps it and
//! adds what can go wrong with the log itself (offsets out of range, I/O, a locked directory).
//! The broker never has to inspect error text: [`LogError::kafka_error_code`] gives the code to
//! put in the response.

use std::io;
use std::path::PathBuf;

/// Kafka protocol error codes the log's errors map to (`org.apache.kafka.common.protocol.Errors`).
pub mod kafka_code {
    /// UNKNOWN_SERVER_ERROR
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    /// OFFSET_OUT_OF_RANGE
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    /// CORRUPT_MESSAGE
    pub const CORRUPT_MESSAGE: i16 = 2;
    /// MESSAGE_TOO_LARGE
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    /// RECORD_LIST_TOO_LARGE
    pub const RECORD_LIST_TOO_LARGE: i16 = 18;
    /// KAFKA_STORAGE_ERROR
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    /// FENCED_LEADER_EPOCH
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    /// INVALID_RECORD
    pub const INVALID_RECORD: i16 = 87;
}

/// Something wrong with the bytes of a record batch (or of a payload of several).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The payload holds no batch at all.
    #[error("no record batch in the payload")]
    Empty,
    /// Fewer bytes than a batch header (61) or than `batchLength` announces.
    #[error("record batch truncated: {needed} bytes needed, {available} available")]
    Truncated { needed: u64, available: u64 },
    /// `batchLength` is below the v2 minimum (49) or negative.
    #[error("record batch length {0} is invalid")]
    BadLength(i32),
    /// magic 0 or 1 (legacy message sets) or an unknown magic.
    #[error("record batch magic {0} is not supported (only magic v2)")]
    UnsupportedMagic(i8),
    /// The stored CRC-32C does not match the bytes.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    /// Offsets or counts that contradict each other.
    #[error("invalid record batch: {0}")]
    Invalid(&'static str),
    /// The batch is larger than `message.max.bytes`.
    #[error("record batch of {size} bytes exceeds the maximum of {max}")]
    TooLarge { size: u64, max: u64 },
    /// The batch is larger than a whole segment (`segment.bytes`).
    #[error("record batch of {size} bytes is larger than a segment ({segment_bytes} bytes)")]
    LargerThanSegment { size: u64, segment_bytes: u64 },
    /// Re-encoding the batch in the topic's codec failed (see [`crate::compression`]).
    #[error("record batch could not be re-encoded: {0}")]
    Codec(#[from] crate::compression::CodecError),
}

impl BatchError {
    /// The Kafka error code a produce response carries for this error.
    pub fn kafka_error_code(&self) -> i16 {
        use kafka_code::*;
        match self {
            BatchError::Empty
            | BatchError::UnsupportedMagic(_)
            | BatchError::Invalid(_)
            | BatchError::BadLength(_) => INVALID_RECORD,
            BatchError::Truncated { .. } | BatchError::CrcMismatch { .. } => CORRUPT_MESSAGE,
            BatchError::TooLarge { .. } => MESSAGE_TOO_LARGE,
            BatchError::LargerThanSegment { .. } => RECORD_LIST_TOO_LARGE,
            BatchError::Codec(crate::compression::CodecError::TooLarge { .. }) => MESSAGE_TOO_LARGE,
            BatchError::Codec(crate::compression::CodecError::Malformed { .. }) => CORRUPT_MESSAGE,
            BatchError::Codec(crate::compression::CodecError::Unsupported(_)) => INVALID_RECORD,
        }
    }
}

/// An error of a log operation.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A batch of an appended payload was rejected; nothing of the payload was written.
    #[error("batch {index} of the payload (byte {position}): {source}")]
    Batch {
        index: usize,
        position: usize,
        #[source]
        source: BatchError,
    },
    /// A fetch, truncation or record deletion named an offset outside the log.
    #[error("offset {offset} is outside the log [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: u64,
        log_start_offset: u64,
        log_end_offset: u64,
    },
    /// A replicated append does not continue the log: offsets must follow the log end offset
    /// without gaps (this log never compacts, so a gap means damaged data).
    #[error(
        "replicated batch at offset {first_offset} does not follow log end offset {log_end_offset}"
    )]
    UnexpectedAppendOffset {
        first_offset: u64,
        log_end_offset: u64,
    },
    /// An append under a leader epoch older than one already in the log.
    #[error("leader epoch {epoch} is older than the log's latest epoch {latest}")]
    StaleLeaderEpoch { epoch: i32, latest: i32 },
    /// Offsets would leave the range Kafka allows (i64) or a segment's u32 relative range.
    #[error("offset overflow: {0}")]
    OffsetOverflow(&'static str),
    /// File system error; `op` says what was being done.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Data already in the log does not parse (found while serving, not during recovery, which
    /// truncates instead).
    #[error("corrupt log data in {} at byte {position}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// The directory name is not `<topic>-<partition>`.
    #[error("{} is not a partition directory (<topic>-<partition>)", .0.display())]
    NotAPartitionDir(PathBuf),
    /// Another process holds the log directory's `.lock`.
    #[error("log directory {} is in use by another process", .0.display())]
    DirLocked(PathBuf),
    /// A previous write failed half-way and could not be undone; the log refuses further writes
    /// until it is reopened (which recovers it).
    #[error("log {} is offline after an I/O error", .0.display())]
    Offline(PathBuf),
}

impl LogError {
    /// The Kafka error code for a response about this partition.
    pub fn kafka_error_code(&self) -> i16 {
        use kafka_code::*;
        match self {
            LogError::Batch { source, .. } => source.kafka_error_code(),
            LogError::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
            LogError::StaleLeaderEpoch { .. } => FENCED_LEADER_EPOCH,
            LogError::UnexpectedAppendOffset { .. } | LogError::OffsetOverflow(_) => {
                UNKNOWN_SERVER_ERROR
            }
            LogError::Io { .. }
            | LogError::Corrupt { .. }
            | LogError::NotAPartitionDir(_)
            | LogError::DirLocked(_)
            | LogError::Offline(_) => KAFKA_STORAGE_ERROR,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        LogError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Short for `Result<T, LogError>`.
pub type Result<T, E = LogError> = std::result::Result<T, E>;
