//! One segment: `<20-digit base offset>.log` with its `.index` and `.timeindex`.
//!
//! A [`Segment`] owns the open log file (shared as `Arc<File>` so a fetch can `sendfile` from
//! it after the log's lock is released) and its committed size: bytes past `size` are never
//! served, even if the file is longer. Its index is loaded on first use ([`Segment::index`]):
//! opening a log only lists and stats segment files, which is what keeps start-up time
//! independent of the amount of flushed data. A missing or insane index file is rebuilt from
//! batch headers and written back.
//!
//! [`scan`] is the one pass over a segment's bytes: recovery (with CRC checks), index rebuilds
//! and truncation (headers only). It stops at the first batch that does not parse, is torn,
//! fails its CRC, or does not continue the offsets, and reports how many bytes are good.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::batch::{BatchHeader, CRC_START, HEADER_LEN};
use crate::epoch::EpochEntry;
use crate::error::{LogError, Result};
use crate::index::{Indexer, SegmentIndex};

pub(crate) const LOG_SUFFIX: &str = "log";
pub(crate) const INDEX_SUFFIX: &str = "index";
pub(crate) const TIME_INDEX_SUFFIX: &str = "timeindex";

/// `<dir>/<base:020>.<suffix>`
pub(crate) fn segment_path(dir: &Path, base: u64, suffix: &str) -> PathBuf {
    dir.join(format!("{base:020}.{suffix}"))
}

/// Parses `00000000000000001234.log` (or another suffix) into (base, suffix).
pub(crate) fn parse_segment_file_name(name: &str) -> Option<(u64, &str)> {
    let (stem, suffix) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, suffix))
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub base: u64,
    pub file: Arc<File>,
    /// Committed bytes: what has been written completely and may be served.
    pub size: u64,
    pub dir: PathBuf,
    /// `index_interval_bytes`, for rebuilding the index the way it was written.
    pub index_interval: u64,
    index: OnceLock<SegmentIndex>,
}

impl Segment {
    /// Opens an existing segment file; the size is the file's length until a scan says less.
    pub fn open(dir: &Path, base: u64, index_interval: u64) -> Result<Segment> {
        let path = segment_path(dir, base, LOG_SUFFIX);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| LogError::io("open segment", &path, e))?;
        let size = file
            .metadata()
            .map_err(|e| LogError::io("stat segment", &path, e))?
            .len();
        Ok(Segment {
            base,
            file: Arc::new(file),
            size,
            dir: dir.to_path_buf(),
            index_interval,
            index: OnceLock::new(),
        })
    }

    /// Creates an empty segment (log and empty index files), replacing leftovers.
    pub fn create(dir: &Path, base: u64, index_interval: u64) -> Result<Segment> {
        let path = segment_path(dir, base, LOG_SUFFIX);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| LogError::io("create segment", &path, e))?;
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let p = segment_path(dir, base, suffix);
            File::create(&p).map_err(|e| LogError::io("create index", &p, e))?;
        }
        let index = OnceLock::new();
        let _ = index.set(SegmentIndex::default());
        Ok(Segment {
            base,
            file: Arc::new(file),
            size: 0,
            dir: dir.to_path_buf(),
            index_interval,
            index,
        })
    }

    pub fn path(&self, suffix: &str) -> PathBuf {
        segment_path(&self.dir, self.base, suffix)
    }

    /// The segment's indexes, loading (or rebuilding) them on first use.
    pub fn index(&self) -> &SegmentIndex {
        self.index.get_or_init(|| self.load_index())
    }

    /// Mutable access (the active segment appends entries).
    pub fn index_mut(&mut self) -> &mut SegmentIndex {
        self.index();
        // Just initialised above; `get_or_init` cannot leave it empty.
        self.index.get_mut().expect("index initialised")
    }

    /// Replaces the in-memory index (after a scan rebuilt it).
    pub fn set_index(&mut self, ix: SegmentIndex) {
        self.index = OnceLock::new();
        let _ = self.index.set(ix);
    }

    /// Largest batch timestamp of an inactive segment (last time entry), -1 if none.
    pub fn max_timestamp(&self) -> i64 {
        self.index().max_timestamp()
    }

    fn load_index(&self) -> SegmentIndex {
        if let Some(ix) = self.try_load_index() {
            return ix;
        }
        tracing::info!(segment = %self.path(LOG_SUFFIX).display(), "rebuilding segment index");
        match scan(
            &self.file,
            self.base,
            self.size,
            ScanStart::beginning(self.base),
            &ScanMode::HeadersOnly,
            self.index_interval,
            None,
        ) {
            Ok(mut out) => {
                if let Some(problem) = &out.problem {
                    tracing::warn!(segment = %self.path(LOG_SUFFIX).display(), %problem,
                        "segment has unreadable data after byte {}; it is served up to there",
                        out.valid_bytes);
                }
                out.indexer.finish(&mut out.index, self.base);
                write_index_files_or_drop(self, &out.index);
                out.index
            }
            Err(e) => {
                // An index is an optimisation: without one, lookups scan from the start.
                tracing::warn!(error = %e, segment = %self.path(LOG_SUFFIX).display(),
                    "could not rebuild index; lookups will scan the segment");
                SegmentIndex::default()
            }
        }
    }

    fn try_load_index(&self) -> Option<SegmentIndex> {
        let offsets = fs::read(self.path(INDEX_SUFFIX)).ok()?;
        let times = fs::read(self.path(TIME_INDEX_SUFFIX)).ok()?;
        if self.size > 0 && times.is_empty() && offsets.is_empty() {
            // A written segment whose files are both empty was probably never indexed (or the
            // files were replaced): rebuild rather than treat it as timestamp-less.
            let first = self.read_header(0).ok()??;
            if first.max_timestamp >= 0 {
                return None;
            }
        }
        let ix = SegmentIndex::decode(&offsets, &times, self.size)?;
        // The last entry must point at the start of a batch ending at that offset; this catches
        // index files left from another incarnation of the segment.
        if let Some(e) = ix.offsets.last() {
            let h = self.read_header(e.pos as u64).ok()??;
            if h.last_offset() != (self.base + e.rel as u64) as i64 {
                return None;
            }
        }
        Some(ix)
    }

    /// Where recovery can start when every offset below `recovery_point` is known to be on
    /// disk: the batch that starts at the recovery point, with the index entries and indexer
    /// state of the batches before it (from the index, plus a header walk from the last index
    /// entry below the recovery point). `None` means "scan from the beginning": no recovery
    /// point inside this segment, or the index and headers do not lead exactly to it.
    pub fn resume_point(&self, recovery_point: u64) -> Option<ScanStart> {
        if recovery_point <= self.base {
            return None;
        }
        let ix = self.index();
        let rel = recovery_point - self.base;
        // Index entries of batches ending before the recovery point; the walk starts at the
        // last of them (which was written with "bytes since the last entry" reset to 0).
        let k = ix.offsets.partition_point(|e| (e.rel as u64) < rel);
        let mut index = SegmentIndex::default();
        let mut indexer = Indexer::default();
        let mut pos = 0;
        if k > 0 {
            let last = ix.offsets[k - 1];
            index.offsets = ix.offsets[..k].to_vec();
            index.times = ix
                .times
                .iter()
                .copied()
                .filter(|t| t.rel <= last.rel)
                .collect();
            if let Some(t) = index.times.last() {
                indexer.max_ts = t.ts;
                indexer.offset_of_max_ts = self.base + t.rel as u64;
            }
            indexer.first_batch_ts = Some(self.read_header(0).ok()??.max_timestamp);
            pos = last.pos as u64;
        }
        loop {
            match self.read_header(pos).ok()? {
                Some(h) if h.base_offset as u64 == recovery_point => break,
                Some(h) if (h.last_offset() as u64) < recovery_point => {
                    indexer.observe(&mut index, self.base, pos, &h, self.index_interval);
                    pos += h.size();
                }
                // The committed data ends exactly at the recovery point.
                None if pos == self.size => break,
                _ => return None,
            }
        }
        Some(ScanStart {
            pos,
            next: recovery_point,
            index,
            indexer,
        })
    }

    /// The header of the batch at `pos`; `Ok(None)` at the committed end.
    pub fn read_header(&self, pos: u64) -> Result<Option<BatchHeader>> {
        if pos >= self.size {
            return Ok(None);
        }
        let corrupt = |reason: String| LogError::Corrupt {
            path: self.path(LOG_SUFFIX),
            position: pos,
            reason,
        };
        if self.size - pos < HEADER_LEN as u64 {
            return Err(corrupt("partial batch header".into()));
        }
        let mut buf = [0u8; HEADER_LEN];
        self.file
            .read_exact_at(&mut buf, pos)
            .map_err(|e| LogError::io("read segment", self.path(LOG_SUFFIX), e))?;
        let h = BatchHeader::parse(&buf).map_err(|e| corrupt(e.to_string()))?;
        if h.size() > self.size - pos {
            return Err(corrupt("batch extends past the end of the segment".into()));
        }
        if h.base_offset < 0 || h.last_offset_delta < 0 {
            return Err(corrupt("negative offset".into()));
        }
        Ok(Some(h))
    }

    /// The first batch at or after `start` whose last offset is `>= target`.
    pub fn find_batch(&self, target: u64, start: u64) -> Result<Option<(u64, BatchHeader)>> {
        let mut pos = start;
        while let Some(h) = self.read_header(pos)? {
            if h.last_offset() as u64 >= target {
                return Ok(Some((pos, h)));
            }
            pos += h.size();
        }
        Ok(None)
    }

    /// Where to start scanning for `offset` (index lookup).
    pub fn start_position_for(&self, offset: u64) -> u64 {
        self.index().position_for(offset.saturating_sub(self.base))
    }

    /// Deletes the segment's files (log first, so a crash half-way leaves orphan indexes, which
    /// the next open removes, rather than a log without them).
    pub fn delete_files(&self) -> Result<()> {
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            let p = self.path(suffix);
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io("delete segment file", &p, e)),
            }
        }
        Ok(())
    }

    /// fsyncs the log file (the index files are synced by the caller when it wrote them).
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| LogError::io("fsync segment", self.path(LOG_SUFFIX), e))
    }
}

/// Writes both index files of `seg` in full, or, when that fails (a full disk), removes them so
/// that no stale index outlives the failure: an index is an optimisation, rebuilt from the
/// segment at the next start, and the one in memory serves meanwhile. Returns whether the
/// files were written.
pub(crate) fn write_index_files_or_drop(seg: &Segment, ix: &SegmentIndex) -> bool {
    match write_index_files(seg, ix) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, segment = %seg.path(LOG_SUFFIX).display(),
                "could not write the segment's index; it is kept in memory and rebuilt at the next start");
            for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
                let path = seg.path(suffix);
                let _ = fs::remove_file(path.with_extension(format!("{suffix}.tmp")));
                let _ = fs::remove_file(&path);
            }
            false
        }
    }
}

/// Writes both index files of `seg` in full (temporary file, then rename).
fn write_index_files(seg: &Segment, ix: &SegmentIndex) -> Result<()> {
    for (suffix, bytes) in [
        (INDEX_SUFFIX, SegmentIndex::encode_offsets(&ix.offsets)),
        (TIME_INDEX_SUFFIX, SegmentIndex::encode_times(&ix.times)),
    ] {
        let path = seg.path(suffix);
        let tmp = path.with_extension(format!("{suffix}.tmp"));
        fs::write(&tmp, &bytes).map_err(|e| LogError::io("write index", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| LogError::io("rename index", &path, e))?;
    }
    Ok(())
}

/// What [`scan`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanMode {
    /// Headers, lengths, offsets (index rebuilds, truncation).
    HeadersOnly,
    /// Also every batch's CRC-32C (recovery of unflushed data).
    VerifyCrc,
}

#[derive(Debug, Default)]
pub(crate) struct ScanOutcome {
    /// Bytes from the start of the segment that hold good, complete batches.
    pub valid_bytes: u64,
    /// Offset after the last good batch, if there is one.
    pub next_offset: Option<u64>,
    pub index: SegmentIndex,
    pub indexer: Indexer,
    /// (partitionLeaderEpoch, baseOffset) where the epoch changes.
    pub epoch_starts: Vec<(i32, u64)>,
    pub batches: u64,
    /// Why the scan stopped before `len`, if it did.
    pub problem: Option<String>,
}

/// Where a [`scan`] starts: at the beginning of the segment, or (recovery) at the first batch
/// after the recovery point, with the index state of what lies before it.
#[derive(Debug, Default)]
pub(crate) struct ScanStart {
    pub pos: u64,
    /// Offset the batch at `pos` must start at.
    pub next: u64,
    pub index: SegmentIndex,
    pub indexer: Indexer,
}

impl ScanStart {
    pub fn beginning(base: u64) -> ScanStart {
        ScanStart {
            next: base,
            ..ScanStart::default()
        }
    }
}

/// Sequential reader over a file region with a reusable buffer.
struct Window<'f> {
    file: &'f File,
    len: u64,
    buf: Vec<u8>,
    start: u64,
    filled: usize,
}

impl<'f> Window<'f> {
    fn get(&mut self, pos: u64, n: usize, refill: usize) -> io::Result<&[u8]> {
        let inside = pos >= self.start && pos + n as u64 <= self.start + self.filled as u64;
        if !inside {
            let want = refill.max(n) as u64;
            let want = want.min(self.len.saturating_sub(pos)) as usize;
            if want < n {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "past end"));
            }
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf[..want], pos)?;
            self.start = pos;
            self.filled = want;
        }
        let at = (pos - self.start) as usize;
        Ok(&self.buf[at..at + n])
    }
}

const CRC_WINDOW: usize = 4 << 20;
const HEADER_WINDOW: usize = 256 << 10;

/// Scans `len` bytes of a segment based at `base`. The first batch must start at `min_next`
/// and each further one right after the previous; leader epochs must not decrease; relative
/// offsets and positions must fit in u32.
pub(crate) fn scan(
    file: &File,
    base: u64,
    len: u64,
    start: ScanStart,
    mode: &ScanMode,
    index_interval: u64,
    epochs: Option<&[EpochEntry]>,
) -> io::Result<ScanOutcome> {
    let mut out = ScanOutcome {
        valid_bytes: start.pos,
        next_offset: (start.pos > 0).then_some(start.next),
        index: start.index,
        indexer: start.indexer,
        ..ScanOutcome::default()
    };
    let mut w = Window {
        file,
        len,
        buf: Vec::new(),
        start: 0,
        filled: 0,
    };
    let mut pos = start.pos;
    let mut next = start.next;
    let mut last_epoch = None;
    let mut last_size = 0u64;
    while pos < len {
        if len - pos < HEADER_LEN as u64 {
            out.problem = Some(format!("{} stray bytes at the end", len - pos));
            break;
        }
        // For big batches read only headers; for small ones read ahead a window.
        let refill = match mode {
            ScanMode::VerifyCrc => CRC_WINDOW,
            ScanMode::HeadersOnly if last_size >= 64 << 10 => HEADER_LEN,
            ScanMode::HeadersOnly => HEADER_WINDOW,
        };
        let header = match BatchHeader::parse(w.get(pos, HEADER_LEN, refill)?) {
            Ok(h) => h,
            Err(e) => {
                out.problem = Some(e.to_string());
                break;
            }
        };
        let size = header.size();
        if size > len - pos {
            out.problem = Some(format!(
                "torn batch: {size} bytes announced, {} left",
                len - pos
            ));
            break;
        }
        if let Err(e) = header.check_offsets(false) {
            out.problem = Some(e.to_string());
            break;
        }
        // Offsets are contiguous (no compaction), which is what detects a damaged baseOffset:
        // the CRC does not cover it.
        if header.base_offset < 0 || header.base_offset as u64 != next {
            out.problem = Some(format!(
                "batch base offset {} where {next} was expected",
                header.base_offset
            ));
            break;
        }
        // Leader epochs never decrease along the log (also not CRC-covered).
        if last_epoch.is_some_and(|e| header.partition_leader_epoch < e) {
            out.problem = Some(format!(
                "leader epoch {} after {}",
                header.partition_leader_epoch,
                last_epoch.unwrap_or_default()
            ));
            break;
        }
        if let Some(epochs) = epochs {
            if !epoch_matches(epochs, &header) {
                out.problem = Some(format!(
                    "batch at offset {} has leader epoch {}, which the leader-epoch checkpoint \
                     does not give for that offset",
                    header.base_offset, header.partition_leader_epoch
                ));
                break;
            }
        }
        let last = header.last_offset() as u64;
        if last - base > u32::MAX as u64 || pos > u32::MAX as u64 || last >= i64::MAX as u64 {
            out.problem = Some("offset or position out of the segment's range".into());
            break;
        }
        if *mode == ScanMode::VerifyCrc {
            let end = pos + size;
            let mut p = pos + CRC_START as u64;
            let mut crc = 0u32;
            while p < end {
                let n = (end - p).min(CRC_WINDOW as u64) as usize;
                crc = crc32c::crc32c_append(crc, w.get(p, n, CRC_WINDOW)?);
                p += n as u64;
            }
            if crc != header.crc {
                out.problem = Some(format!(
                    "CRC mismatch in batch at offset {}: stored {:#010x}, computed {crc:#010x}",
                    header.base_offset, header.crc
                ));
                break;
            }
        }
        out.indexer
            .observe(&mut out.index, base, pos, &header, index_interval);
        if last_epoch != Some(header.partition_leader_epoch) {
            last_epoch = Some(header.partition_leader_epoch);
            out.epoch_starts
                .push((header.partition_leader_epoch, header.base_offset as u64));
        }
        out.batches += 1;
        next = last + 1;
        out.next_offset = Some(next);
        pos += size;
        last_size = size;
        out.valid_bytes = pos;
    }
    Ok(out)
}

/// Whether a stored batch's `partitionLeaderEpoch` is the one the epoch cache (persisted before
/// any batch of a new epoch is written) gives for its base offset. Batches before the first
/// entry (below the log start offset, whose entry was moved up) may carry that entry's epoch or
/// older ones.
fn epoch_matches(epochs: &[EpochEntry], header: &BatchHeader) -> bool {
    let base = header.base_offset as u64;
    let i = epochs.partition_point(|e| e.start_offset <= base);
    match i.checked_sub(1) {
        Some(i) => epochs[i].epoch == header.partition_leader_epoch,
        None => epochs
            .first()
            .is_none_or(|f| header.partition_leader_epoch <= f.epoch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(
            parse_segment_file_name("00000000000000001234.log"),
            Some((1234, "log"))
        );
        assert_eq!(
            parse_segment_file_name("00000000000000001234.index.tmp"),
            Some((1234, "index.tmp"))
        );
        assert_eq!(parse_segment_file_name("1234.log"), None);
        assert_eq!(parse_segment_file_name("leader-epoch-checkpoint"), None);
        assert_eq!(
            segment_path(Path::new("d"), 7, "log"),
            Path::new("d/00000000000000000007.log")
        );
    }
}
