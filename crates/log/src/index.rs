//! The sparse offset and time indexes of a segment, in memory and in their files.
//!
//! Formats are Kafka's: `.index` holds 8-byte entries (offset relative to the segment's base
//! u32, byte position u32), `.timeindex` 12-byte entries (timestamp i64, relative offset u32),
//! big-endian. An offset entry names a batch's *last* offset and the position where that batch
//! starts, so the largest entry `<= target` gives a position from which a forward scan finds the
//! batch holding `target`. A time entry is (largest timestamp so far, last offset of the batch
//! that carried it).
//!
//! Files are appended, not preallocated: their length is exactly entries × entry size, so
//! nothing has to be trimmed on close and a torn tail is just a short final entry. Entries are
//! added every `index_interval_bytes` of batches by [`Indexer`], the one rule shared by appends
//! and by rebuilds, so a rebuilt index equals the one written on append.
//!
//! Indexes are caches: a file that is missing or fails [`SegmentIndex::decode`]'s sanity checks
//! is rebuilt from the segment (see `segment.rs`), never trusted.

use crate::batch::BatchHeader;

pub(crate) const OFFSET_ENTRY: usize = 8;
pub(crate) const TIME_ENTRY: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub rel: u32,
    pub pos: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub ts: i64,
    pub rel: u32,
}

/// Both indexes of one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SegmentIndex {
    pub offsets: Vec<OffsetEntry>,
    pub times: Vec<TimeEntry>,
}

impl SegmentIndex {
    /// Byte position from which to scan for relative offset `rel` (0 when no entry is lower).
    pub fn position_for(&self, rel: u64) -> u64 {
        let i = self.offsets.partition_point(|e| (e.rel as u64) <= rel);
        if i == 0 {
            0
        } else {
            self.offsets[i - 1].pos as u64
        }
    }

    /// The last time entry whose timestamp is strictly below `ts`: every batch up to and
    /// including the one it names has timestamps `< ts`, so the answer to "first record at or
    /// after `ts`" lies after it.
    pub fn time_entry_before(&self, ts: i64) -> Option<TimeEntry> {
        let i = self.times.partition_point(|e| e.ts < ts);
        i.checked_sub(1).map(|i| self.times[i])
    }

    /// The largest timestamp recorded (the last time entry), -1 if none.
    pub fn max_timestamp(&self) -> i64 {
        self.times.last().map_or(-1, |e| e.ts)
    }

    /// Appends a time entry if it raises the maximum (Kafka's `maybeAppend`).
    pub fn maybe_push_time(&mut self, ts: i64, rel: u32) {
        if ts < 0 {
            return;
        }
        match self.times.last() {
            Some(last) if ts <= last.ts || rel < last.rel => {}
            _ => self.times.push(TimeEntry { ts, rel }),
        }
    }

    pub fn encode_offsets(entries: &[OffsetEntry]) -> Vec<u8> {
        let mut out = Vec::with_capacity(entries.len() * OFFSET_ENTRY);
        for e in entries {
            out.extend_from_slice(&e.rel.to_be_bytes());
            out.extend_from_slice(&e.pos.to_be_bytes());
        }
        out
    }

    pub fn encode_times(entries: &[TimeEntry]) -> Vec<u8> {
        let mut out = Vec::with_capacity(entries.len() * TIME_ENTRY);
        for e in entries {
            out.extend_from_slice(&e.ts.to_be_bytes());
            out.extend_from_slice(&e.rel.to_be_bytes());
        }
        out
    }

    /// Parses both files' bytes and checks them against the segment: whole entries only,
    /// offsets and positions strictly increasing, positions inside the segment, timestamps
    /// strictly increasing. `None` means "rebuild".
    pub fn decode(offsets: &[u8], times: &[u8], segment_size: u64) -> Option<SegmentIndex> {
        if !offsets.len().is_multiple_of(OFFSET_ENTRY) || !times.len().is_multiple_of(TIME_ENTRY) {
            return None;
        }
        let mut ix = SegmentIndex::default();
        for c in offsets.chunks_exact(OFFSET_ENTRY) {
            let e = OffsetEntry {
                rel: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                pos: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
            };
            if e.pos as u64 >= segment_size {
                return None;
            }
            if let Some(last) = ix.offsets.last() {
                if e.rel <= last.rel || e.pos <= last.pos {
                    return None;
                }
            }
            ix.offsets.push(e);
        }
        for c in times.chunks_exact(TIME_ENTRY) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&c[..8]);
            let e = TimeEntry {
                ts: i64::from_be_bytes(ts),
                rel: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
            };
            if e.ts < 0 {
                return None;
            }
            if let Some(last) = ix.times.last() {
                if e.ts <= last.ts || e.rel < last.rel {
                    return None;
                }
            }
            ix.times.push(e);
        }
        Some(ix)
    }
}

/// Decides when batches get index entries and tracks the segment's maximum timestamp.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Indexer {
    pub bytes_since_entry: u64,
    pub max_ts: i64,
    /// Absolute last offset of the batch that carried `max_ts`.
    pub offset_of_max_ts: u64,
    /// `maxTimestamp` of the segment's first batch (time-based rolling is measured from it).
    pub first_batch_ts: Option<i64>,
}

impl Default for Indexer {
    fn default() -> Self {
        Indexer {
            bytes_since_entry: 0,
            max_ts: -1,
            offset_of_max_ts: 0,
            first_batch_ts: None,
        }
    }
}

impl Indexer {
    /// Records a batch written at `pos` of the segment based at `base`. The caller has checked
    /// that `last_offset - base` and `pos` fit in u32.
    pub fn observe(
        &mut self,
        ix: &mut SegmentIndex,
        base: u64,
        pos: u64,
        header: &BatchHeader,
        interval: u64,
    ) {
        let last = header.last_offset().max(0) as u64;
        if self.first_batch_ts.is_none() {
            self.first_batch_ts = Some(header.max_timestamp);
        }
        if header.max_timestamp > self.max_ts {
            self.max_ts = header.max_timestamp;
            self.offset_of_max_ts = last;
        }
        if self.bytes_since_entry > interval {
            ix.offsets.push(OffsetEntry {
                rel: last.saturating_sub(base) as u32,
                pos: pos as u32,
            });
            ix.maybe_push_time(
                self.max_ts,
                self.offset_of_max_ts.saturating_sub(base) as u32,
            );
            self.bytes_since_entry = 0;
        }
        self.bytes_since_entry += header.size();
    }

    /// Adds the final time entry a segment gets when it stops being active, so the last entry
    /// of every inactive segment's time index is its maximum timestamp.
    pub fn finish(&self, ix: &mut SegmentIndex, base: u64) {
        ix.maybe_push_time(
            self.max_ts,
            self.offset_of_max_ts.saturating_sub(base) as u32,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_and_lookup() {
        let mut ix = SegmentIndex::default();
        ix.offsets.push(OffsetEntry { rel: 9, pos: 4200 });
        ix.offsets.push(OffsetEntry { rel: 20, pos: 9000 });
        ix.maybe_push_time(100, 9);
        ix.maybe_push_time(100, 12); // not a new maximum
        ix.maybe_push_time(150, 20);
        let o = SegmentIndex::encode_offsets(&ix.offsets);
        let t = SegmentIndex::encode_times(&ix.times);
        let back = SegmentIndex::decode(&o, &t, 10_000).unwrap();
        assert_eq!(back, ix);
        assert_eq!(ix.position_for(0), 0);
        assert_eq!(ix.position_for(9), 4200);
        assert_eq!(ix.position_for(19), 4200);
        assert_eq!(ix.position_for(25), 9000);
        assert_eq!(ix.time_entry_before(100), None);
        assert_eq!(ix.time_entry_before(101).unwrap().rel, 9);
        assert_eq!(ix.max_timestamp(), 150);
    }

    #[test]
    fn decode_rejects_nonsense() {
        assert!(SegmentIndex::decode(&[0; 7], &[], 100).is_none());
        // Position past the segment.
        let o = SegmentIndex::encode_offsets(&[OffsetEntry { rel: 1, pos: 100 }]);
        assert!(SegmentIndex::decode(&o, &[], 100).is_none());
        // Not increasing.
        let o = SegmentIndex::encode_offsets(&[
            OffsetEntry { rel: 5, pos: 10 },
            OffsetEntry { rel: 5, pos: 20 },
        ]);
        assert!(SegmentIndex::decode(&o, &[], 100).is_none());
        let t =
            SegmentIndex::encode_times(&[TimeEntry { ts: 5, rel: 1 }, TimeEntry { ts: 4, rel: 2 }]);
        assert!(SegmentIndex::decode(&[], &t, 100).is_none());
    }
}
