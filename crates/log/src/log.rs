//! One partition log: a directory of segments, appended at the end, read anywhere, truncated
//! at either end.
//!
//! Data flow. `append` validates the payload's batches ([`crate::batch`]), copies it into a
//! reusable buffer, rewrites each batch's `baseOffset` (and `partitionLeaderEpoch`), writes it
//! with one positioned write at the active segment's committed size, then adds index entries
//! and advances the committed size and the log end offset. Nothing is fsynced unless the
//! flush policy says so or the segment rolls. `read` finds the segment holding the offset, uses
//! the sparse index and a header scan to find the first batch, and returns the file region of
//! whole batches ([`FetchSlice`]) without copying.
//!
//! Invariants the recovery design rests on (see docs/decisions/0004-partition-log.md):
//! - every segment but the last two is on disk: a roll fsyncs the segment it leaves on a
//!   background thread and waits for the previous roll's fsync first (recovery fsyncs what it
//!   checked), so after a crash at most the last two segments can hold unflushed data, and the
//!   recovery point says where to start;
//! - the recovery point (all offsets below it are on disk) only moves forward after an
//!   fsync, and moves back, durably, on truncation;
//! - bytes past a segment's committed size are never served.
//!
//! Concurrency: reads take `&self`, writes `&mut self`; the broker wraps a log in a `RwLock`
//! ([`crate::SharedLog`]). A [`FetchSlice`] holds its own `Arc<File>`, so it stays valid (as a
//! byte range of an open file) after the lock is released, even if the segment is deleted.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::batch::{
    validate_payload, BatchHeader, BatchLimits, Compression, PayloadBatch, TimestampType,
    CRC_START, HEADER_LEN, STAMPED_HEAD, TIMESTAMP_TYPE_BIT,
};

/// Largest batch a timestamp lookup reads to find a record inside it.
const MAX_SCANNED_BATCH: u64 = 64 << 20;
/// Most a compressed batch may inflate to for a timestamp lookup inside it; a batch inflating
/// further is answered by its base offset. 8 MiB holds a 1 MiB batch compressed eightfold.
pub const MAX_SCANNED_INFLATE: usize = 8 << 20;
use crate::config::LogConfig;
use crate::dir::{DirHandle, PartitionCheckpoint, TopicPartition};
use crate::epoch::{self, sync_dir, EpochEntry, LeaderEpochCache};
use crate::error::{LogError, Result};
use crate::index::{Indexer, SegmentIndex, OFFSET_ENTRY, TIME_ENTRY};
use crate::progress::Pace;
use crate::records::first_record_at_or_after;
use crate::segment::{
    parse_segment_file_name, scan, segment_path, write_index_files_or_drop, ScanMode, ScanOutcome,
    ScanStart, Segment, INDEX_SUFFIX, LOG_SUFFIX, TIME_INDEX_SUFFIX,
};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A producer's payload whose batches passed the produce-path checks (framing, offsets fields,
/// CRC-32C, size limits): the expensive part of an append, done without the log's lock.
#[derive(Debug)]
pub struct CheckedPayload<'a> {
    payload: &'a [u8],
    batches: Vec<PayloadBatch>,
}

impl<'a> CheckedPayload<'a> {
    /// Checks `payload` as [`Log::append`] would under `config`.
    pub fn check(payload: &'a [u8], config: &LogConfig) -> Result<CheckedPayload<'a>> {
        let batches = validate_payload(payload, &config.limits(true))?;
        Ok(CheckedPayload { payload, batches })
    }

    /// The batch headers as received.
    pub fn headers(&self) -> impl Iterator<Item = &BatchHeader> {
        self.batches.iter().map(|b| &b.header)
    }

    /// The payload re-encoded in the codec `config.compression` names, or `None` when every
    /// batch can be stored as received (`producer`, or already in that codec). Records inflate
    /// up to `max.message.bytes`; a batch that would inflate past it is refused.
    pub fn recoded(&self, config: &LogConfig) -> Result<Option<Vec<u8>>> {
        let Some(target) = config.compression else {
            return Ok(None);
        };
        if self
            .batches
            .iter()
            .all(|b| b.header.compression() == target || b.header.is_control())
        {
            return Ok(None);
        }
        let limit = usize::try_from(config.max_batch_bytes).unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(self.payload.len());
        for (index, b) in self.batches.iter().enumerate() {
            let bytes = &self.payload[b.position..b.position + b.header.size() as usize];
            match crate::compression::recode_batch(bytes, &b.header, target, limit) {
                Ok(Some(recoded)) => out.extend_from_slice(&recoded),
                Ok(None) => out.extend_from_slice(bytes),
                Err(e) => {
                    return Err(LogError::Batch {
                        index,
                        position: b.position,
                        source: e.into(),
                    })
                }
            }
        }
        Ok(Some(out))
    }
}

/// What an append wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record (base offset of the first batch).
    pub base_offset: u64,
    /// Offset of the last record.
    pub last_offset: u64,
    /// Largest `maxTimestamp` of the batches (-1 if none had one).
    pub max_timestamp: i64,
    /// Last offset of the batch carrying `max_timestamp`.
    pub offset_of_max_timestamp: u64,
    /// Records, as counted by the batch headers.
    pub record_count: u64,
    /// Bytes written.
    pub size_bytes: u64,
    /// Log start offset after the append (ProduceResponse's `log_start_offset`).
    pub log_start_offset: u64,
    /// The headers as written (offsets and leader epoch assigned): what the broker needs to
    /// update idempotent-producer state.
    pub batches: Vec<BatchHeader>,
    /// The time the batches were stamped with, for a LogAppendTime log (ProduceResponse's
    /// `log_append_time_ms`); `None` for CreateTime.
    pub log_append_time: Option<i64>,
}

/// A byte range of a segment file holding whole batches: what a fetch sends.
#[derive(Debug, Clone)]
pub struct FetchSlice {
    file: Arc<File>,
    /// Path of the segment file (for logging).
    pub path: PathBuf,
    /// Byte position of the first batch in the file.
    pub position: u64,
    /// Bytes to send (0 when there is nothing to return).
    pub len: u64,
    /// Base offset of the first batch (may be below the requested offset: Kafka returns the
    /// whole batch holding it and the consumer skips the records before).
    pub first_offset: u64,
    /// Offset after the last batch of the slice.
    pub next_offset: u64,
}

impl FetchSlice {
    /// The open segment file, e.g. for `sendfile(fd, position, len)`.
    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the slice into memory.
    pub fn read_to_vec(&self) -> Result<Vec<u8>> {
        let len = usize::try_from(self.len)
            .map_err(|_| LogError::OffsetOverflow("fetch slice larger than memory"))?;
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, self.position)
            .map_err(|e| LogError::io("read segment", &self.path, e))?;
        Ok(buf)
    }

    /// Same as [`FetchSlice::read_to_vec`], as `Bytes`.
    pub fn to_bytes(&self) -> Result<Bytes> {
        self.read_to_vec().map(Bytes::from)
    }
}

/// Answer to ListOffsets by timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: u64,
    /// The partition leader epoch of the batch holding the record (-1 if unknown).
    pub leader_epoch: i32,
}

/// What a retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub deleted_segments: usize,
    pub deleted_bytes: u64,
    pub log_start_offset: u64,
}

/// A batch header read back from the log, with where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBatch {
    pub segment_base_offset: u64,
    pub position: u64,
    pub header: BatchHeader,
}

/// A background fsync of a rolled segment; offsets below `upto` are on disk once it is done.
#[derive(Debug)]
struct RollFlush {
    upto: u64,
    path: PathBuf,
    handle: std::thread::JoinHandle<std::io::Result<()>>,
}

/// State of the active (last) segment that only appends need.
#[derive(Debug)]
struct Active {
    indexer: Indexer,
    offsets_written: usize,
    times_written: usize,
    /// Wall-clock time the segment became active (time-based rolling without timestamps).
    created_ms: u64,
    index_file: File,
    time_index_file: File,
}

/// A partition log. See the module documentation.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    tp: TopicPartition,
    config: LogConfig,
    /// By base offset; never empty (every operation that removes segments creates or keeps
    /// one first), the last one is the active segment. The `expect`s on it rely on this.
    segments: BTreeMap<u64, Segment>,
    /// Bytes of every segment but the active one, so the log's size is known without walking
    /// its segments (a metrics scrape reads it for every partition). Recounted whenever a
    /// segment other than the active one changes: open, roll, truncation, deletion.
    closed_bytes: u64,
    active: Active,
    next_offset: u64,
    log_start_offset: u64,
    high_watermark: u64,
    recovery_point: u64,
    epochs: LeaderEpochCache,
    unflushed_records: u64,
    last_flush_ms: u64,
    handle: Arc<DirHandle>,
    offline: bool,
    /// The fsync of the segment last rolled away from, running on its own thread so appends
    /// do not wait for a whole segment to reach the disk.
    roll_flush: Option<RollFlush>,
}

fn open_for_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| LogError::io("open index", path, e))
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, which must be named `<topic>-<partition>`;
    /// its parent is the log directory whose checkpoints are used. Recovers unflushed data.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Log> {
        let dir = dir.as_ref();
        let tp = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(TopicPartition::from_dir_name)
            .ok_or_else(|| LogError::NotAPartitionDir(dir.to_path_buf()))?;
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let handle = DirHandle::acquire(parent)?;
        Self::open_in(handle, tp, config)
    }

    pub(crate) fn open_in(
        handle: Arc<DirHandle>,
        tp: TopicPartition,
        config: LogConfig,
    ) -> Result<Log> {
        let dir = handle.path().join(tp.dir_name());
        fs::create_dir_all(&dir).map_err(|e| LogError::io("create partition dir", &dir, e))?;
        let clean = handle.take_clean_shutdown(&tp);
        let cp = handle.checkpoint_of(&tp);
        let interval = config.index_interval_bytes.max(1);

        // List the directory: segments, plus leftovers to clean up.
        let mut bases = Vec::new();
        let mut index_files = Vec::new();
        let entries = fs::read_dir(&dir).map_err(|e| LogError::io("list", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| LogError::io("list", &dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            match parse_segment_file_name(name) {
                Some((base, LOG_SUFFIX)) => bases.push(base),
                Some((base, INDEX_SUFFIX | TIME_INDEX_SUFFIX)) => index_files.push((base, path)),
                Some((_, s)) if s.ends_with(".tmp") || s.ends_with(".deleted") => {
                    remove_leftover(&path)
                }
                _ if name.ends_with(".tmp") => remove_leftover(&path),
                _ => {}
            }
        }
        bases.sort_unstable();
        for (base, path) in index_files {
            if bases.binary_search(&base).is_err() {
                remove_leftover(&path);
            }
        }
        let mut segments = BTreeMap::new();
        for base in bases {
            segments.insert(base, Segment::open(&dir, base, interval)?);
        }
        let fresh_base = cp.log_start_offset.unwrap_or(0);
        if segments.is_empty() {
            segments.insert(fresh_base, Segment::create(&dir, fresh_base, interval)?);
            sync_dir(&dir)?;
        }
        let (&last_base, last) = segments.iter().next_back().expect("at least one segment");
        let active = Active {
            indexer: Indexer::default(),
            offsets_written: 0,
            times_written: 0,
            created_ms: now_ms(),
            index_file: open_for_append(&last.path(INDEX_SUFFIX))?,
            time_index_file: open_for_append(&last.path(TIME_INDEX_SUFFIX))?,
        };
        let mut log = Log {
            epochs: LeaderEpochCache::load(&dir),
            dir,
            tp,
            config,
            segments,
            closed_bytes: 0,
            active,
            next_offset: last_base,
            log_start_offset: 0,
            high_watermark: 0,
            recovery_point: 0,
            unflushed_records: 0,
            last_flush_ms: now_ms(),
            handle,
            offline: false,
            roll_flush: None,
        };
        log.recover(clean, cp)?;
        log.recount_closed();
        Ok(log)
    }

    /// Sets [`Log::closed_bytes`] from the segments.
    fn recount_closed(&mut self) {
        let active = *self.segments.keys().next_back().expect("segments");
        self.closed_bytes = self.segments.range(..active).map(|(_, s)| s.size).sum();
    }

    /// Brings the log to a consistent state after open: scans what may be unflushed (only the
    /// last segment after a clean shutdown, headers only), truncates anything bad, and sets the
    /// offsets.
    fn recover(&mut self, clean: bool, cp: PartitionCheckpoint) -> Result<()> {
        let last_base = *self.segments.keys().next_back().expect("segments");
        let (from_base, mode) = if clean {
            (last_base, ScanMode::HeadersOnly)
        } else {
            // The segment holding the recovery point and everything after it.
            let rp = cp.recovery_point.unwrap_or(0);
            let from = self
                .segments
                .range(..=rp)
                .next_back()
                .map_or(*self.segments.keys().next().expect("segments"), |(b, _)| *b);
            (from, ScanMode::VerifyCrc)
        };
        let to_scan: Vec<u64> = self.segments.range(from_base..).map(|(b, _)| *b).collect();
        // Inside the first segment to recover, offsets below the recovery point were fsynced
        // (the checkpoint is written after the flush): start checking at the recovery point.
        let mut resume = match (mode, cp.recovery_point) {
            (ScanMode::VerifyCrc, Some(rp)) => self.segments[&from_base].resume_point(rp),
            _ => None,
        };
        let first_checked = resume.as_ref().map_or(from_base, |r| r.next);
        // The epoch checkpoint is written before any batch of a new epoch, so it vouches for
        // every stored batch's epoch, a field the CRC does not cover. Without a checkpoint
        // there is nothing to check against.
        let known_epochs: Option<Vec<EpochEntry>> =
            (!self.epochs.entries().is_empty()).then(|| self.epochs.entries().to_vec());
        if mode == ScanMode::VerifyCrc {
            self.epochs.truncate_from_end(first_checked);
            // A log just created has nothing to recover: not worth a line per partition.
            if to_scan.iter().any(|b| self.segments[b].size > 0) {
                tracing::info!(log = %self.dir.display(), segments = to_scan.len(),
                    from_offset = first_checked, "recovering unflushed data");
            }
        }
        let interval = self.config.index_interval_bytes.max(1);
        // Progress of a long CRC scan (gigabytes after a crash), by bytes.
        let mut pace = Pace::start();
        let scan_total: u64 = to_scan
            .iter()
            .map(|b| self.segments[b].size)
            .sum::<u64>()
            .saturating_sub(resume.as_ref().map_or(0, |r| r.pos));
        let mut scanned = 0u64;
        let mut prev_next = from_base;
        let mut changed_dir = false;
        let mut last_outcome: Option<(u64, ScanOutcome)> = None;
        let mut stop_after: Option<u64> = None;
        for base in to_scan {
            if stop_after.is_some() || base < prev_next {
                // After a truncated segment, or overlapping the previous one: drop it.
                let seg = self.segments.remove(&base).expect("listed");
                tracing::warn!(segment = %seg.path(LOG_SUFFIX).display(),
                    "deleting segment after corrupt data or overlapping offsets");
                seg.delete_files()?;
                changed_dir = true;
                continue;
            }
            if base > prev_next {
                tracing::warn!(log = %self.dir.display(), from = prev_next, to = base,
                    "offsets missing between two segments");
            }
            let seg = self.segments.get_mut(&base).expect("listed");
            // A segment's first batch starts at its base offset (segments are created at the
            // offset of the batch that opens them).
            let start = resume.take().unwrap_or(ScanStart::beginning(base));
            let start_pos = start.pos;
            let outcome = scan(
                &seg.file,
                base,
                seg.size,
                start,
                &mode,
                interval,
                known_epochs.as_deref(),
            )
            .map_err(|e| LogError::io("scan segment", seg.path(LOG_SUFFIX), e))?;
            scanned += seg.size.saturating_sub(start_pos);
            if mode == ScanMode::VerifyCrc && scanned < scan_total && pace.due() {
                tracing::info!(log = %self.dir.display(), scanned_mib = scanned >> 20,
                    total_mib = scan_total >> 20, elapsed_s = pace.elapsed().as_secs(),
                    remaining_s = pace.remaining_secs(scanned, scan_total), "recovering");
            }
            if outcome.valid_bytes < seg.size {
                tracing::warn!(segment = %seg.path(LOG_SUFFIX).display(),
                    problem = outcome.problem.as_deref().unwrap_or(""),
                    valid = outcome.valid_bytes, size = seg.size,
                    "truncating segment after its last good batch");
                seg.file
                    .set_len(outcome.valid_bytes)
                    .map_err(|e| LogError::io("truncate segment", seg.path(LOG_SUFFIX), e))?;
                seg.size = outcome.valid_bytes;
                stop_after = Some(base);
            }
            if stop_after.is_some() {
                // Make the cut durable before anything is appended after it.
                seg.sync()?;
            }
            if mode == ScanMode::VerifyCrc {
                for &(epoch, offset) in &outcome.epoch_starts {
                    self.epochs.assign(epoch, offset);
                }
            }
            prev_next = outcome.next_offset.unwrap_or(base);
            if let Some((prev_base, prev)) = last_outcome.take() {
                // The previous scanned segment is not the last: store its final index, and
                // fsync it, since every segment but the last must be on disk.
                self.segments[&prev_base].sync()?;
                self.store_inactive_index(prev_base, prev)?;
            }
            last_outcome = Some((base, outcome));
        }
        if changed_dir {
            sync_dir(&self.dir)?;
        }
        let (last_base, outcome) = last_outcome.expect("the last segment is always scanned");
        let next = outcome.next_offset.unwrap_or(last_base);
        self.activate(last_base, outcome)?;
        self.next_offset = next;

        let first_base = *self.segments.keys().next().expect("segments");
        self.log_start_offset = cp.log_start_offset.unwrap_or(0).max(first_base);
        if self.log_start_offset > self.next_offset {
            // Records were deleted up to an offset the recovered log no longer reaches.
            let start = self.log_start_offset;
            self.truncate_fully_and_start_at(start)?;
        }
        // After a clean shutdown everything was flushed. Otherwise the last segment was
        // checked but not fsynced (that would write back up to a whole segment of dirty pages
        // during start-up); the next flush or roll does it.
        self.recovery_point = if clean {
            self.next_offset
        } else {
            let last = *self.segments.keys().next_back().expect("segments");
            last.min(self.next_offset)
        };
        self.high_watermark = cp
            .high_watermark
            .unwrap_or(0)
            .clamp(self.log_start_offset, self.next_offset);
        let mut epochs_changed = self.epochs.truncate_from_end(self.next_offset);
        epochs_changed |= self.epochs.truncate_from_start(self.log_start_offset);
        if epochs_changed || mode == ScanMode::VerifyCrc {
            self.epochs.persist()?;
        }
        self.publish_checkpoint();
        Ok(())
    }

    /// Gives an inactive segment its finished index (from a scan) and writes the files.
    fn store_inactive_index(&mut self, base: u64, outcome: ScanOutcome) -> Result<()> {
        let ScanOutcome {
            mut index, indexer, ..
        } = outcome;
        indexer.finish(&mut index, base);
        let seg = self.segments.get_mut(&base).expect("segment exists");
        write_index_files_or_drop(seg, &index);
        seg.set_index(index);
        Ok(())
    }

    /// Makes segment `base` the active one from a scan of it.
    fn activate(&mut self, base: u64, mut outcome: ScanOutcome) -> Result<()> {
        let seg = self.segments.get_mut(&base).expect("segment exists");
        let index = std::mem::take(&mut outcome.index);
        // Without the files (a full disk), the appends write the whole index from the start.
        let (offsets_written, times_written) = if write_index_files_or_drop(seg, &index) {
            (index.offsets.len(), index.times.len())
        } else {
            (0, 0)
        };
        seg.set_index(index);
        self.active = Active {
            indexer: outcome.indexer,
            offsets_written,
            times_written,
            created_ms: now_ms(),
            index_file: open_for_append(&seg.path(INDEX_SUFFIX))?,
            time_index_file: open_for_append(&seg.path(TIME_INDEX_SUFFIX))?,
        };
        Ok(())
    }
}

fn remove_leftover(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        tracing::warn!(file = %path.display(), error = %e, "could not remove leftover file");
    }
}

/// What a leader's append changes in each batch on its way to disk.
#[derive(Debug, Clone, Copy)]
struct Patch {
    /// The partition leader epoch written in.
    epoch: i32,
    /// Whether the batch headers carry a LogAppendTime stamp ([`stamp_log_append_time`]) to
    /// write in with their new CRC.
    stamped: bool,
}

/// Sets `header` (of `batch`, as received) to LogAppendTime `now`: the timestamp-type
/// attribute, `maxTimestamp`, and the CRC-32C over the changed bytes (attributes to the end).
/// The record bytes stay as they are; readers take every record's timestamp from the batch.
fn stamp_log_append_time(header: &mut BatchHeader, batch: &[u8], now: i64) {
    header.attributes |= TIMESTAMP_TYPE_BIT;
    header.max_timestamp = now;
    let mut head = [0u8; STAMPED_HEAD];
    head[..CRC_START].copy_from_slice(&batch[..CRC_START]);
    write_stamp(&mut head, header);
    header.crc = crc32c::crc32c_append(crc32c::crc32c(&head[CRC_START..]), &batch[STAMPED_HEAD..]);
}

/// Writes `header`'s attributes, last offset delta, base and max timestamps into `head`
/// (bytes `CRC_START..STAMPED_HEAD` of a batch).
fn write_stamp(head: &mut [u8; STAMPED_HEAD], header: &BatchHeader) {
    head[21..23].copy_from_slice(&header.attributes.to_be_bytes());
    head[23..27].copy_from_slice(&header.last_offset_delta.to_be_bytes());
    head[27..35].copy_from_slice(&header.base_timestamp.to_be_bytes());
    head[35..43].copy_from_slice(&header.max_timestamp.to_be_bytes());
}

/// Writes the batches of `data` at `pos` with their first 16 bytes replaced by `baseOffset`
/// (from the parsed header), the original `batchLength` and the epoch (and, when stamped, the
/// bytes up to `maxTimestamp` from the header): one `pwritev` per 512 batches, without
/// copying the records.
fn write_patched_at(
    file: &File,
    data: &[u8],
    batches: &[PayloadBatch],
    patch: Patch,
    pos: u64,
) -> std::io::Result<()> {
    use std::io::IoSlice;
    // Bytes 0..16 (offset, length, epoch) always; up to the max timestamp when stamped.
    let head_len = if patch.stamped { STAMPED_HEAD } else { 16 };
    let heads: Vec<[u8; STAMPED_HEAD]> = batches
        .iter()
        .map(|b| {
            let mut h = [0u8; STAMPED_HEAD];
            h[..8].copy_from_slice(&b.header.base_offset.to_be_bytes());
            h[8..12].copy_from_slice(&data[b.position + 8..b.position + 12]);
            h[12..16].copy_from_slice(&patch.epoch.to_be_bytes());
            if patch.stamped {
                h[16] = data[b.position + 16];
                h[17..21].copy_from_slice(&b.header.crc.to_be_bytes());
                write_stamp(&mut h, &b.header);
            }
            h
        })
        .collect();
    let mut at = pos;
    for (chunk, chunk_heads) in batches.chunks(512).zip(heads.chunks(512)) {
        let mut iov: Vec<IoSlice<'_>> = Vec::with_capacity(chunk.len() * 2);
        for (b, h) in chunk.iter().zip(chunk_heads) {
            let end = b.position + b.header.size() as usize;
            iov.push(IoSlice::new(&h[..head_len]));
            iov.push(IoSlice::new(&data[b.position + head_len..end]));
        }
        let mut slices = &mut iov[..];
        while !slices.is_empty() {
            let n = rustix::io::pwritev(file, slices, at)?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            at += n as u64;
            IoSlice::advance_slices(&mut slices, n);
        }
    }
    Ok(())
}

/// Iterator over stored batch headers from an offset (see [`Log::batch_headers`]).
#[derive(Debug)]
pub struct BatchHeaders<'a> {
    log: &'a Log,
    from: u64,
    segment: Option<u64>,
    position: u64,
    done: bool,
}

impl Iterator for BatchHeaders<'_> {
    type Item = Result<StoredBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let Some(base) = self.segment else {
                self.done = true;
                return None;
            };
            let seg = &self.log.segments[&base];
            match seg.read_header(self.position) {
                Ok(Some(header)) => {
                    let position = self.position;
                    self.position += header.size();
                    if (header.last_offset() as u64) < self.from {
                        continue;
                    }
                    return Some(Ok(StoredBatch {
                        segment_base_offset: base,
                        position,
                        header,
                    }));
                }
                Ok(None) => {
                    self.segment = self.log.segments.range(base + 1..).next().map(|(b, _)| *b);
                    self.position = 0;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

impl Log {
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Changes the settings (dynamic topic configuration). A new index interval applies to
    /// entries written from now on.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// First offset that may be read.
    pub fn log_start_offset(&self) -> u64 {
        self.log_start_offset
    }

    /// Offset the next appended record gets.
    pub fn log_end_offset(&self) -> u64 {
        self.next_offset
    }

    /// Offsets below this are known to be on disk.
    pub fn recovery_point(&self) -> u64 {
        self.recovery_point
    }

    /// The high watermark, as last set by the caller (replication decides it). Restored from
    /// `replication-offset-checkpoint` at open, clamped to the log.
    pub fn high_watermark(&self) -> u64 {
        self.high_watermark
    }

    /// Stores the high watermark, clamped to `[log_start_offset, log_end_offset]`; returns
    /// the stored value.
    pub fn set_high_watermark(&mut self, hw: u64) -> u64 {
        self.high_watermark = hw.clamp(self.log_start_offset, self.next_offset);
        self.high_watermark
    }

    /// Total bytes of all segments (kept as it changes: no walk over the segments).
    pub fn size_bytes(&self) -> u64 {
        let active = self.segments.values().next_back().map_or(0, |s| s.size);
        self.closed_bytes + active
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<u64> {
        self.segments.keys().copied().collect()
    }

    /// Records appended since the last fsync.
    pub fn unflushed_records(&self) -> u64 {
        self.unflushed_records
    }

    /// The leader-epoch cache: (epoch, start offset), oldest first.
    pub fn leader_epochs(&self) -> &[EpochEntry] {
        self.epochs.entries()
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// A new leader's first step: records that `epoch` starts at the log end offset (Kafka
    /// writes it on becoming leader, so OffsetsForLeaderEpoch answers before the first append).
    /// Durable before returning; a no-op for an epoch not newer than the latest.
    pub fn begin_epoch(&mut self, epoch: i32) -> Result<()> {
        if self.epochs.assign(epoch, self.next_offset) {
            self.epochs.persist()?;
        }
        Ok(())
    }

    /// OffsetsForLeaderEpoch: (largest epoch `<=` `epoch`, end offset of that epoch); `None`
    /// for UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, u64)> {
        self.epochs.end_offset_for(epoch, self.next_offset)
    }

    fn check_online(&self) -> Result<()> {
        if self.offline {
            return Err(LogError::Offline(self.dir.clone()));
        }
        Ok(())
    }

    fn limits(&self, strict: bool) -> BatchLimits {
        self.config.limits(strict)
    }

    /// Appends a producer's payload (one or more v2 batches) as leader in `leader_epoch`:
    /// validates every batch (nothing is written if one fails), assigns offsets from the log
    /// end offset and stamps the epoch. Not fsynced unless the flush policy asks for it.
    pub fn append(&mut self, payload: &[u8], leader_epoch: i32) -> Result<AppendInfo> {
        let checked = CheckedPayload::check(payload, &self.config)?;
        self.append_checked(checked, leader_epoch)
    }

    /// [`Log::append`] of a payload already checked (framing and CRC-32C) with
    /// [`CheckedPayload::check`], e.g. before taking the lock that serialises appends. The
    /// size limits are checked again against the current settings.
    pub fn append_checked(
        &mut self,
        checked: CheckedPayload<'_>,
        leader_epoch: i32,
    ) -> Result<AppendInfo> {
        self.check_online()?;
        if let Some(latest) = self.epochs.latest_epoch() {
            if leader_epoch < latest {
                return Err(LogError::StaleLeaderEpoch {
                    epoch: leader_epoch,
                    latest,
                });
            }
        }
        let CheckedPayload {
            payload,
            mut batches,
        } = checked;
        let limits = self.limits(true);
        for (index, b) in batches.iter().enumerate() {
            let size = b.header.size();
            let source = if size > limits.segment_bytes {
                Some(crate::BatchError::LargerThanSegment {
                    size,
                    segment_bytes: limits.segment_bytes,
                })
            } else if size > limits.max_batch_bytes {
                Some(crate::BatchError::TooLarge {
                    size,
                    max: limits.max_batch_bytes,
                })
            } else {
                None
            };
            if let Some(source) = source {
                return Err(LogError::Batch {
                    index,
                    position: b.position,
                    source,
                });
            }
        }
        let stamp = self.config.log_append_time.then(|| now_ms() as i64);
        if let Some(now) = stamp {
            for b in &mut batches {
                let end = b.position + b.header.size() as usize;
                stamp_log_append_time(&mut b.header, &payload[b.position..end], now);
            }
        }
        let mut next = self.next_offset;
        for b in &mut batches {
            b.header.base_offset = next as i64;
            b.header.partition_leader_epoch = leader_epoch;
            next = next
                .checked_add(b.header.last_offset_delta as u64 + 1)
                .filter(|n| *n <= i64::MAX as u64)
                .ok_or(LogError::OffsetOverflow("log end offset past i64::MAX"))?;
        }
        // Written straight from the payload, each batch's offset and epoch fields (and for
        // LogAppendTime its CRC, attributes and max timestamp) patched in on the way (a
        // vectored write): the record bytes are not copied.
        let mut info = self.write_batches(
            payload,
            &batches,
            Some(Patch {
                epoch: leader_epoch,
                stamped: stamp.is_some(),
            }),
        )?;
        info.log_append_time = stamp;
        Ok(info)
    }

    /// Appends batches replicated from the leader, keeping their offsets and leader epochs.
    /// They must continue the log exactly (no gaps: this log never compacts, and recovery
    /// relies on contiguous offsets to detect damaged headers), with non-decreasing epochs.
    pub fn append_as_follower(&mut self, payload: &[u8]) -> Result<AppendInfo> {
        self.check_online()?;
        let batches = validate_payload(payload, &self.limits(false))?;
        let mut expected = self.next_offset;
        let mut epoch = self.epochs.latest_epoch().unwrap_or(i32::MIN);
        for b in &batches {
            let base = b.header.base_offset;
            if b.header.partition_leader_epoch < epoch {
                return Err(LogError::StaleLeaderEpoch {
                    epoch: b.header.partition_leader_epoch,
                    latest: epoch,
                });
            }
            epoch = b.header.partition_leader_epoch;
            if base < 0 || base as u64 != expected {
                return Err(LogError::UnexpectedAppendOffset {
                    first_offset: base.max(0) as u64,
                    log_end_offset: expected,
                });
            }
            if b.header.last_offset() == i64::MAX {
                return Err(LogError::OffsetOverflow("log end offset past i64::MAX"));
            }
            expected = b.header.last_offset() as u64 + 1;
        }
        self.write_batches(payload, &batches, None)
    }

    /// The common write path: `data` holds `batches` with final offsets and epochs.
    /// Writes `data` (whole batches) at the log end. With `patch_epoch`, each batch is written
    /// with its header's `baseOffset` and that `partitionLeaderEpoch` instead of the bytes in
    /// `data`.
    fn write_batches(
        &mut self,
        data: &[u8],
        batches: &[PayloadBatch],
        patch: Option<Patch>,
    ) -> Result<AppendInfo> {
        let first = batches.first().expect("validated payload is not empty");
        let last = batches.last().expect("validated payload is not empty");
        let base_offset = first.header.base_offset as u64;
        let last_offset = last.header.last_offset() as u64;
        let len = data.len() as u64;
        let incoming_max_ts = batches
            .iter()
            .map(|b| b.header.max_timestamp)
            .max()
            .unwrap_or(-1);
        self.maybe_roll(len, base_offset, last_offset, incoming_max_ts)?;
        let active_base = *self.segments.keys().next_back().expect("segments");
        if last_offset - active_base > u32::MAX as u64 {
            // Only a payload spanning more than 2^32 offsets gets here, even after a roll.
            return Err(LogError::OffsetOverflow(
                "payload spans more than 2^32 offsets",
            ));
        }

        let mut epochs_changed = false;
        for b in batches {
            epochs_changed |= self
                .epochs
                .assign(b.header.partition_leader_epoch, b.header.base_offset as u64);
        }
        if epochs_changed {
            // Before the data: a batch on disk must never have an epoch the cache lacks.
            self.epochs.persist()?;
        }

        let base = *self.segments.keys().next_back().expect("segments");
        let seg = self.segments.get_mut(&base).expect("active segment");
        let pos0 = seg.size;
        if pos0 + len > u32::MAX as u64 {
            return Err(LogError::OffsetOverflow("segment larger than 4 GiB"));
        }
        let written = match patch {
            None => seg.file.write_all_at(data, pos0),
            Some(patch) => write_patched_at(&seg.file, data, batches, patch, pos0),
        };
        if let Err(e) = written {
            let path = seg.path(LOG_SUFFIX);
            // Undo the partial write so the file ends at the committed size again.
            if seg.file.set_len(pos0).is_err() {
                self.offline = true;
            }
            if self.epochs.truncate_from_end(self.next_offset) {
                let _ = self.epochs.persist();
            }
            return Err(LogError::io("append to segment", path, e));
        }
        let interval = self.config.index_interval_bytes.max(1);
        let mut record_count = 0u64;
        let mut max_ts = -1i64;
        let mut offset_of_max = base_offset;
        {
            let ix = seg.index_mut();
            for b in batches {
                self.active.indexer.observe(
                    ix,
                    base,
                    pos0 + b.position as u64,
                    &b.header,
                    interval,
                );
                record_count += b.header.record_count.max(0) as u64;
                if b.header.max_timestamp > max_ts {
                    max_ts = b.header.max_timestamp;
                    offset_of_max = b.header.last_offset() as u64;
                }
            }
        }
        seg.size = pos0 + len;
        self.next_offset = last_offset + 1;
        self.unflushed_records += record_count;
        self.write_pending_index_entries();

        let info = AppendInfo {
            base_offset,
            last_offset,
            max_timestamp: max_ts,
            offset_of_max_timestamp: offset_of_max,
            record_count,
            size_bytes: len,
            log_start_offset: self.log_start_offset,
            batches: batches.iter().map(|b| b.header).collect(),
            log_append_time: None,
        };
        self.maybe_flush(now_ms())?;
        Ok(info)
    }

    /// Writes index entries added since the last call to the active segment's index files.
    /// A failure only costs lookup speed (a bad index is rebuilt), so it is logged, and retried
    /// on the next append.
    fn write_pending_index_entries(&mut self) {
        let base = *self.segments.keys().next_back().expect("segments");
        let ix = self.segments[&base].index();
        let a = &mut self.active;
        if ix.offsets.len() > a.offsets_written {
            let bytes = SegmentIndex::encode_offsets(&ix.offsets[a.offsets_written..]);
            match a
                .index_file
                .write_all_at(&bytes, (a.offsets_written * OFFSET_ENTRY) as u64)
            {
                Ok(()) => a.offsets_written = ix.offsets.len(),
                Err(e) => tracing::warn!(error = %e, "could not write offset index entries"),
            }
        }
        if ix.times.len() > a.times_written {
            let bytes = SegmentIndex::encode_times(&ix.times[a.times_written..]);
            match a
                .time_index_file
                .write_all_at(&bytes, (a.times_written * TIME_ENTRY) as u64)
            {
                Ok(()) => a.times_written = ix.times.len(),
                Err(e) => tracing::warn!(error = %e, "could not write time index entries"),
            }
        }
    }

    fn maybe_roll(
        &mut self,
        len: u64,
        first_offset: u64,
        last_offset: u64,
        incoming_max_ts: i64,
    ) -> Result<()> {
        let (&base, seg) = self.segments.iter().next_back().expect("segments");
        let rel_overflow = last_offset - base > u32::MAX as u64;
        let full = seg.size > 0 && seg.size + len > self.config.effective_segment_bytes();
        let segment_ms = self.config.segment_ms;
        let aged = seg.size > 0
            && match self.active.indexer.first_batch_ts {
                // Kafka's rule: the incoming batch's timestamp against the segment's first.
                Some(first) if first >= 0 => {
                    incoming_max_ts.saturating_sub(first) > segment_ms as i64
                }
                _ => now_ms().saturating_sub(self.active.created_ms) > segment_ms,
            };
        if rel_overflow || full || aged {
            self.roll_at(first_offset)?;
        }
        Ok(())
    }

    /// Starts a new segment at the log end offset (fsyncing the current one), unless the
    /// active segment is empty.
    pub fn roll(&mut self) -> Result<()> {
        self.check_online()?;
        let next = self.next_offset;
        self.roll_at(next)
    }

    fn roll_at(&mut self, new_base: u64) -> Result<()> {
        let base = *self.segments.keys().next_back().expect("segments");
        let interval = self.config.index_interval_bytes.max(1);
        let replace_empty = self.segments[&base].size == 0;
        if replace_empty && new_base == base {
            return Ok(());
        }
        // One background fsync at a time: the previous roll's must be done before this one.
        self.reap_roll_flush(true)?;
        if !replace_empty {
            self.finish_active();
        }
        let seg = Segment::create(&self.dir, new_base, interval)?;
        if replace_empty {
            // An empty active segment is replaced rather than kept.
            let old = self.segments.remove(&base).expect("active");
            self.recount_closed();
            old.delete_files()?;
        }
        sync_dir(&self.dir)?;
        let old_active = std::mem::replace(
            &mut self.active,
            Active {
                indexer: Indexer::default(),
                offsets_written: 0,
                times_written: 0,
                created_ms: now_ms(),
                index_file: open_for_append(&seg.path(INDEX_SUFFIX))?,
                time_index_file: open_for_append(&seg.path(TIME_INDEX_SUFFIX))?,
            },
        );
        self.segments.insert(new_base, seg);
        self.recount_closed();
        if !replace_empty {
            // The old segment (and its indexes) reach the disk on their own thread, as Kafka's
            // asynchronous flush at roll; the recovery point moves past it when that is done
            // (`reap_roll_flush`), so recovery after a crash rescans it until then.
            let old = &self.segments[&base];
            let file = old.file.clone();
            let path = old.path(LOG_SUFFIX);
            let handle = std::thread::Builder::new()
                .name("segment-fsync".into())
                .spawn(move || {
                    file.sync_data()?;
                    old_active.index_file.sync_data()?;
                    old_active.time_index_file.sync_data()
                })
                .map_err(|e| LogError::io("start segment fsync", &path, e))?;
            self.roll_flush = Some(RollFlush {
                upto: self.next_offset,
                path,
                handle,
            });
        }
        Ok(())
    }

    /// Completes the background fsync of the last rolled segment if it is done (or, with
    /// `wait`, once it is): advances the recovery point and persists it.
    fn reap_roll_flush(&mut self, wait: bool) -> Result<()> {
        let Some(f) = self.roll_flush.take() else {
            return Ok(());
        };
        if !wait && !f.handle.is_finished() {
            self.roll_flush = Some(f);
            return Ok(());
        }
        let result = f
            .handle
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("fsync thread panicked")));
        result.map_err(|e| LogError::io("fsync segment", &f.path, e))?;
        let upto = f.upto.min(self.next_offset);
        if upto > self.recovery_point {
            self.recovery_point = upto;
            self.publish_checkpoint();
            // Persisting the recovery point here bounds recovery after a crash to the
            // segments written since.
            if let Err(e) = self.handle.write_recovery_points() {
                tracing::warn!(error = %e, "could not write checkpoints after roll");
            }
        }
        Ok(())
    }

    /// Final time entry and index entries of the active segment before it becomes inactive
    /// (its fsync runs in the background, see `roll_at`).
    fn finish_active(&mut self) {
        let base = *self.segments.keys().next_back().expect("segments");
        let indexer = self.active.indexer;
        indexer.finish(
            self.segments.get_mut(&base).expect("active").index_mut(),
            base,
        );
        self.write_pending_index_entries();
    }

    /// fsyncs everything appended so far; afterwards the recovery point is the log end offset.
    pub fn flush(&mut self) -> Result<()> {
        self.check_online()?;
        self.reap_roll_flush(true)?;
        if self.recovery_point >= self.next_offset && self.unflushed_records == 0 {
            return Ok(());
        }
        let base = *self.segments.keys().next_back().expect("segments");
        let seg = &self.segments[&base];
        seg.sync()?;
        // Index files are caches (rebuilt if wrong), but syncing them keeps restarts fast.
        for (f, suffix) in [
            (&self.active.index_file, INDEX_SUFFIX),
            (&self.active.time_index_file, TIME_INDEX_SUFFIX),
        ] {
            f.sync_data()
                .map_err(|e| LogError::io("fsync index", seg.path(suffix), e))?;
        }
        self.recovery_point = self.next_offset;
        self.unflushed_records = 0;
        self.last_flush_ms = now_ms();
        self.publish_checkpoint();
        Ok(())
    }

    /// Flushes if `flush_interval_ms` has passed since the last flush (for the broker's
    /// periodic flusher). Returns whether it flushed.
    pub fn flush_if_due(&mut self, now_ms: u64) -> Result<bool> {
        self.reap_roll_flush(false)?;
        match self.config.flush_interval_ms {
            Some(ms)
                if self.unflushed_records > 0
                    && now_ms.saturating_sub(self.last_flush_ms) >= ms =>
            {
                self.flush()?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn maybe_flush(&mut self, now: u64) -> Result<()> {
        let by_count = self
            .config
            .flush_interval_messages
            .is_some_and(|n| self.unflushed_records >= n.max(1));
        let by_time = self
            .config
            .flush_interval_ms
            .is_some_and(|ms| now.saturating_sub(self.last_flush_ms) >= ms);
        if by_count || by_time {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands this log's offsets to the directory handle (written by the next checkpoint).
    fn publish_checkpoint(&self) {
        self.handle.update(
            &self.tp,
            PartitionCheckpoint {
                recovery_point: Some(self.recovery_point),
                log_start_offset: Some(self.log_start_offset),
                high_watermark: Some(self.high_watermark),
            },
        );
    }

    /// Publishes this log's offsets (including the current high watermark) for the next
    /// checkpoint write; [`crate::LogManager::checkpoint`] calls it for every log.
    pub fn update_checkpoint(&self) {
        self.publish_checkpoint();
    }

    fn out_of_range(&self, offset: u64) -> LogError {
        LogError::OffsetOutOfRange {
            offset,
            log_start_offset: self.log_start_offset,
            log_end_offset: self.next_offset,
        }
    }

    /// Whole batches from the one holding `from_offset`, at most `max_bytes` (but always one
    /// whole batch, even if larger, as Kafka does), only batches ending below
    /// `max_offset_exclusive` (e.g. the high watermark for consumers), all from one segment so
    /// the result is a single file range. Empty at the log end offset; an error outside
    /// `[log_start_offset, log_end_offset]`.
    pub fn read(
        &self,
        from_offset: u64,
        max_bytes: u64,
        max_offset_exclusive: Option<u64>,
    ) -> Result<FetchSlice> {
        if from_offset < self.log_start_offset || from_offset > self.next_offset {
            return Err(self.out_of_range(from_offset));
        }
        let limit = max_offset_exclusive
            .unwrap_or(self.next_offset)
            .min(self.next_offset);
        let start_base = self
            .segments
            .range(..=from_offset)
            .next_back()
            .map(|(b, _)| *b)
            .unwrap_or(*self.segments.keys().next().expect("segments"));
        let empty = |seg: &Segment| FetchSlice {
            file: seg.file.clone(),
            path: seg.path(LOG_SUFFIX),
            position: seg.size,
            len: 0,
            first_offset: from_offset,
            next_offset: from_offset,
        };
        if from_offset >= limit {
            let seg = self.segments.values().next_back().expect("segments");
            return Ok(empty(seg));
        }
        for (&base, seg) in self.segments.range(start_base..) {
            let start = if base <= from_offset {
                seg.start_position_for(from_offset)
            } else {
                0
            };
            let Some((pos, first)) = seg.find_batch(from_offset, start)? else {
                continue;
            };
            if first.last_offset() as u64 >= limit {
                return Ok(empty(seg));
            }
            let mut len = first.size();
            let mut next = first.last_offset() as u64 + 1;
            while len < max_bytes {
                // A bad header later in the range ends the slice; the next fetch reports it.
                let Ok(Some(h)) = seg.read_header(pos + len) else {
                    break;
                };
                if h.last_offset() as u64 >= limit || len + h.size() > max_bytes {
                    break;
                }
                len += h.size();
                next = h.last_offset() as u64 + 1;
            }
            return Ok(FetchSlice {
                file: seg.file.clone(),
                path: seg.path(LOG_SUFFIX),
                position: pos,
                len,
                first_offset: first.base_offset as u64,
                next_offset: next,
            });
        }
        let seg = self.segments.values().next_back().expect("segments");
        Ok(empty(seg))
    }

    /// Headers of the stored batches from the one holding `from_offset` on (for rebuilding
    /// producer state after a restart). Starts at the log start offset if `from_offset` is
    /// below it.
    pub fn batch_headers(&self, from_offset: u64) -> BatchHeaders<'_> {
        let from = from_offset.max(self.log_start_offset);
        let segment = self
            .segments
            .range(..=from)
            .next_back()
            .or_else(|| self.segments.iter().next())
            .map(|(b, _)| *b);
        let position = segment.map_or(0, |b| self.segments[&b].start_position_for(from));
        BatchHeaders {
            log: self,
            from,
            segment,
            position,
            done: false,
        }
    }

    /// ListOffsets by timestamp: the first record with timestamp `>= ts` at or after the log
    /// start offset (compressed batches are inflated to find it, as Kafka does; in a
    /// LogAppendTime batch every record has the batch's timestamp).
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<TimestampOffset>> {
        for (&base, seg) in &self.segments {
            if self.segment_max_timestamp(base) < ts || seg.size == 0 {
                continue;
            }
            if let Some(found) = self.first_record_in_segment(seg, ts)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// ListOffsets for the max timestamp (KIP-734, timestamp -3): the record with the largest
    /// timestamp, the first one carrying it when several do (Kafka's answer since 3.8). `None`
    /// when the log holds no timestamped record.
    pub fn offset_of_max_timestamp(&self) -> Result<Option<TimestampOffset>> {
        // The earliest segment holding the largest timestamp.
        let mut best: Option<(i64, &Segment)> = None;
        for (&base, seg) in &self.segments {
            let max = self.segment_max_timestamp(base);
            if seg.size > 0 && max >= 0 && best.is_none_or(|(b, _)| max > b) {
                best = Some((max, seg));
            }
        }
        match best {
            Some((max, seg)) => self.first_record_in_segment(seg, max),
            None => Ok(None),
        }
    }

    /// The largest batch `maxTimestamp` of the segment based at `base` (-1 if none).
    fn segment_max_timestamp(&self, base: u64) -> i64 {
        let last_base = *self.segments.keys().next_back().expect("segments");
        if base == last_base {
            self.active.indexer.max_ts
        } else {
            self.segments[&base].max_timestamp()
        }
    }

    /// The first record of `seg` at or after the log start offset with a timestamp `>= ts`.
    fn first_record_in_segment(&self, seg: &Segment, ts: i64) -> Result<Option<TimestampOffset>> {
        let base = seg.base;
        let mut pos = match seg.index().time_entry_before(ts) {
            Some(e) => seg.start_position_for(base + e.rel as u64),
            None => 0,
        };
        while let Some(h) = seg.read_header(pos)? {
            let batch_pos = pos;
            pos += h.size();
            if h.max_timestamp < ts || (h.last_offset() as u64) < self.log_start_offset {
                continue;
            }
            let leader_epoch = h.partition_leader_epoch.max(-1);
            let at_batch = TimestampOffset {
                timestamp: h.max_timestamp,
                offset: (h.base_offset as u64).max(self.log_start_offset),
                leader_epoch,
            };
            // Record-level answers for CreateTime batches of a sane size (the header comes
            // from disk; never allocate on its word beyond that); in a LogAppendTime batch
            // every record has the batch's timestamp.
            if h.timestamp_type() == TimestampType::LogAppendTime || h.size() > MAX_SCANNED_BATCH {
                return Ok(Some(at_batch));
            }
            let mut bytes = vec![0u8; h.size() as usize];
            seg.file
                .read_exact_at(&mut bytes, batch_pos)
                .map_err(|e| LogError::io("read segment", seg.path(LOG_SUFFIX), e))?;
            if h.compression() != Compression::None {
                // The header, then the records inflated (bounded; a batch that does not
                // inflate cleanly is answered by its base offset).
                let limit = MAX_SCANNED_INFLATE;
                match crate::compression::decompress(h.compression(), &bytes[HEADER_LEN..], limit) {
                    Ok(records) => {
                        bytes.truncate(HEADER_LEN);
                        bytes.extend_from_slice(&records);
                    }
                    Err(_) => return Ok(Some(at_batch)),
                }
            }
            // Records below the log start offset do not count.
            let found = first_record_at_or_after(&bytes, &h, ts)
                .map(|(delta, t)| (h.base_offset as u64 + delta.max(0) as u64, t))
                .filter(|(o, _)| *o >= self.log_start_offset);
            return Ok(Some(match found {
                Some((offset, timestamp)) => TimestampOffset {
                    timestamp,
                    offset,
                    leader_epoch,
                },
                None => at_batch,
            }));
        }
        Ok(None)
    }

    /// Removes everything from `offset` on (follower truncation). Truncation is at batch
    /// granularity: if `offset` falls inside a batch, that whole batch goes, so the new log end
    /// offset is at most `offset`. Durable before returning. Returns the new log end offset.
    pub fn truncate_to(&mut self, offset: u64) -> Result<u64> {
        self.check_online()?;
        self.reap_roll_flush(true)?;
        if offset >= self.next_offset {
            // Nothing to cut from the segments, but an epoch this log began at its end and
            // never wrote in (it led briefly, then another leader was elected) goes: left in
            // place it would keep the follower asking the leader about an epoch the leader
            // never had, and truncating to here again, forever. (Kafka does the same.)
            if self.epochs.truncate_from_end(self.next_offset) {
                self.epochs.persist()?;
            }
            return Ok(self.next_offset);
        }
        if offset < self.log_start_offset {
            self.truncate_fully_and_start_at(offset)?;
            return Ok(self.next_offset);
        }
        let first_base = *self.segments.keys().next().expect("segments");
        let doomed: Vec<u64> = self
            .segments
            .range(offset..)
            .map(|(b, _)| *b)
            .filter(|b| *b != first_base)
            .collect();
        for b in doomed {
            let seg = self.segments.remove(&b).expect("listed");
            self.recount_closed();
            seg.delete_files()?;
        }
        let base = *self.segments.keys().next_back().expect("segments");
        let interval = self.config.index_interval_bytes.max(1);
        let seg = self.segments.get_mut(&base).expect("segment");
        let start = seg.start_position_for(offset);
        let cut = match seg.find_batch(offset, start)? {
            Some((_, h)) if (h.base_offset as u64) < self.log_start_offset => {
                // The batch to remove straddles the log start offset: nothing readable is
                // left, so the log restarts empty at `offset`.
                self.truncate_fully_and_start_at(offset)?;
                return Ok(self.next_offset);
            }
            Some((pos, _)) => pos,
            None => seg.size,
        };
        seg.file
            .set_len(cut)
            .and_then(|_| seg.file.sync_all())
            .map_err(|e| LogError::io("truncate segment", seg.path(LOG_SUFFIX), e))?;
        // The active segment: not in `closed_bytes`.
        seg.size = cut;
        let outcome = scan(
            &seg.file,
            base,
            cut,
            ScanStart::beginning(base),
            &ScanMode::HeadersOnly,
            interval,
            None,
        )
        .map_err(|e| LogError::io("scan segment", seg.path(LOG_SUFFIX), e))?;
        let next = outcome.next_offset.unwrap_or(base);
        self.activate(base, outcome)?;
        sync_dir(&self.dir)?;
        self.next_offset = next;
        self.recovery_point = self.recovery_point.min(next);
        self.high_watermark = self.high_watermark.min(next);
        self.unflushed_records = 0;
        if self.epochs.truncate_from_end(next) {
            self.epochs.persist()?;
        }
        self.publish_checkpoint();
        self.handle.write_checkpoints()?;
        Ok(next)
    }

    /// Deletes every segment and starts an empty log at `offset` (which becomes the log start
    /// offset too).
    pub fn truncate_fully_and_start_at(&mut self, offset: u64) -> Result<()> {
        self.check_online()?;
        self.reap_roll_flush(true)?;
        let interval = self.config.index_interval_bytes.max(1);
        // Create the new segment first (replacing one with the same base) so the log always
        // has an active segment, even if deleting the old files fails below.
        let seg = Segment::create(&self.dir, offset, interval)?;
        let old = std::mem::replace(&mut self.segments, BTreeMap::from([(offset, seg)]));
        self.closed_bytes = 0;
        self.activate(offset, ScanOutcome::default())?;
        self.next_offset = offset;
        self.log_start_offset = offset;
        self.recovery_point = offset;
        self.high_watermark = offset;
        self.unflushed_records = 0;
        self.epochs.clear();
        self.epochs.persist()?;
        for (base, seg) in old {
            if base != offset {
                if let Err(e) = seg.delete_files() {
                    // Left-over files would come back as segments on the next open.
                    self.offline = true;
                    return Err(e);
                }
            }
        }
        sync_dir(&self.dir)?;
        self.publish_checkpoint();
        self.handle.write_checkpoints()?;
        Ok(())
    }

    /// DeleteRecords: moves the log start offset up to `offset` (at most the log end offset)
    /// and deletes segments that lie wholly below it. Durable before returning. Returns the new
    /// log start offset.
    pub fn delete_records_before(&mut self, offset: u64) -> Result<u64> {
        self.check_online()?;
        if offset > self.next_offset {
            return Err(self.out_of_range(offset));
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        self.log_start_offset = offset;
        self.high_watermark = self.high_watermark.max(offset);
        if self.epochs.truncate_from_start(offset) {
            self.epochs.persist()?;
        }
        self.publish_checkpoint();
        self.handle.write_checkpoints()?;
        self.delete_segments_below_start()?;
        Ok(self.log_start_offset)
    }

    /// Deletes inactive segments whose every offset is below the log start offset.
    fn delete_segments_below_start(&mut self) -> Result<RetentionOutcome> {
        let bases: Vec<u64> = self.segments.keys().copied().collect();
        let lso = self.log_start_offset;
        let n = bases.windows(2).take_while(|w| w[1] <= lso).count();
        self.delete_oldest(n)
    }

    /// Deletes the `n` oldest segments (never the active one) and moves the log start offset
    /// to the new first segment if it was below.
    fn delete_oldest(&mut self, n: usize) -> Result<RetentionOutcome> {
        let n = n.min(self.segments.len().saturating_sub(1));
        let mut out = RetentionOutcome::default();
        for _ in 0..n {
            let (_, seg) = self.segments.pop_first().expect("n < len");
            // Never the active segment (n < len).
            self.closed_bytes -= seg.size;
            out.deleted_segments += 1;
            out.deleted_bytes += seg.size;
            seg.delete_files()?;
        }
        if n > 0 {
            let first = *self.segments.keys().next().expect("segments");
            if first > self.log_start_offset {
                self.log_start_offset = first;
                self.high_watermark = self.high_watermark.max(first);
                if self.epochs.truncate_from_start(first) {
                    self.epochs.persist()?;
                }
            }
            sync_dir(&self.dir)?;
            self.publish_checkpoint();
            self.handle.write_checkpoints()?;
        }
        out.log_start_offset = self.log_start_offset;
        Ok(out)
    }

    /// One retention pass at time `now_ms`: deletes the oldest inactive segments that lie
    /// below the log start offset, whose newest timestamp is older than `retention_ms` (file
    /// modification time for segments without timestamps), or that exceed `retention_bytes`.
    /// Only segments wholly below the high watermark are deleted, and never the active one.
    pub fn enforce_retention(&mut self, now_ms: u64) -> Result<RetentionOutcome> {
        self.check_online()?;
        let mut total = self.delete_segments_below_start()?;
        // Segments eligible at all: inactive and wholly below the high watermark.
        let bases: Vec<u64> = self.segments.keys().copied().collect();
        let hw = self.high_watermark;
        let eligible = bases.windows(2).take_while(|w| w[1] <= hw).count();
        let mut n = 0;
        if let Some(ms) = self.config.retention_ms {
            let cutoff = now_ms.saturating_sub(ms) as i64;
            while n < eligible {
                let seg = &self.segments[&bases[n]];
                let mut newest = seg.max_timestamp();
                if newest < 0 {
                    newest = fs::metadata(seg.path(LOG_SUFFIX))
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(i64::MAX, |d| d.as_millis() as i64);
                }
                if newest >= cutoff {
                    break;
                }
                n += 1;
            }
        }
        if let Some(limit) = self.config.retention_bytes {
            let mut excess = self
                .size_bytes()
                .saturating_sub(limit)
                .saturating_sub(bases[..n].iter().map(|b| self.segments[b].size).sum());
            while n < eligible {
                let size = self.segments[&bases[n]].size;
                if size > excess {
                    break;
                }
                excess -= size;
                n += 1;
            }
        }
        let more = self.delete_oldest(n)?;
        total.deleted_segments += more.deleted_segments;
        total.deleted_bytes += more.deleted_bytes;
        total.log_start_offset = self.log_start_offset;
        Ok(total)
    }

    /// Flushes, and writes this log's entries to its directory's checkpoint files. The log
    /// reopens without rescanning more than its last segment (a clean-shutdown marker, which
    /// skips CRC checks altogether, is [`crate::LogManager::shutdown`]'s business).
    pub fn close(mut self) -> Result<()> {
        if !self.offline {
            self.reap_roll_flush(true)?;
            self.flush()?;
        }
        self.publish_checkpoint();
        self.handle.write_checkpoints()
    }
}

/// Path of a segment file in `dir` (for tests and tools).
pub fn segment_file(dir: &Path, base_offset: u64) -> PathBuf {
    segment_path(dir, base_offset, LOG_SUFFIX)
}

/// Name of the leader-epoch checkpoint in a partition directory.
pub const LEADER_EPOCH_CHECKPOINT: &str = epoch::FILE_NAME;
