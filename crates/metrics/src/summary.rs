//! A Prometheus summary of whole-number observations (milliseconds, bytes): count and sum since
//! start, minimum and maximum since start, and quantiles over a sliding window, recorded without
//! locks on the hot path.
//!
//! ```text
//!  observe(v) ─► count, sum, min, max (atomics, since start)
//!            └─► window slot of the current age bucket ─► bucket counter for v (atomic)
//!
//!  slot:  [ 0 ][ 1 ][ 2 ][ 3 ][ 4 ]   one per AGE_BUCKET (2 min); the oldest is cleared and
//!                                      reused when time moves into it
//!  snapshot(qs) ─► merge the slots of the last WINDOW (10 min) ─► the bucket holding rank ⌈q·n⌉
//! ```
//!
//! The window follows the Java `simpleclient` defaults that ZooKeeper's Prometheus provider
//! uses (`maxAgeSeconds` 600, five age buckets), so a quantile describes the last eight to ten
//! minutes as it does there. Buckets are exact below [`EXACT_BELOW`] and log-linear above (32
//! per power of two), so a quantile is the observed value when it is small, and otherwise within
//! 1/64 of it. An empty window gives NaN quantiles, as `simpleclient` does.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an observation counts towards the quantiles.
pub const WINDOW: Duration = Duration::from_secs(600);
/// The window is kept in this many slots; the oldest is dropped as a whole.
pub const AGE_BUCKETS: u64 = 5;
/// Values below this have a bucket each.
pub const EXACT_BELOW: u64 = 64;
/// Sub-buckets per power of two above [`EXACT_BELOW`].
const SUB_BUCKETS: u64 = 32;
/// Values at or above 2^MAX_BITS are counted as 2^MAX_BITS − 1 (about 35 years in
/// milliseconds, a terabyte in bytes).
const MAX_BITS: u32 = 40;
const BUCKETS: usize =
    (EXACT_BELOW + (MAX_BITS as u64 - EXACT_BELOW.trailing_zeros() as u64) * SUB_BUCKETS) as usize;

/// The bucket of `v`.
fn bucket_of(v: u64) -> usize {
    let v = v.min((1 << MAX_BITS) - 1);
    if v < EXACT_BELOW {
        return v as usize;
    }
    let k = 63 - v.leading_zeros() as u64; // 2^k <= v < 2^(k+1)
    let shift = k - SUB_BUCKETS.trailing_zeros() as u64;
    let sub = (v >> shift) - SUB_BUCKETS;
    (EXACT_BELOW + (k - EXACT_BELOW.trailing_zeros() as u64) * SUB_BUCKETS + sub) as usize
}

/// The value reported for bucket `b`: itself when exact, else the middle of its range.
fn value_of(b: usize) -> f64 {
    let b = b as u64;
    if b < EXACT_BELOW {
        return b as f64;
    }
    let k = (b - EXACT_BELOW) / SUB_BUCKETS + EXACT_BELOW.trailing_zeros() as u64;
    let sub = (b - EXACT_BELOW) % SUB_BUCKETS;
    let shift = k - SUB_BUCKETS.trailing_zeros() as u64;
    let low = (SUB_BUCKETS + sub) << shift;
    let width = 1u64 << shift;
    (low + (width - 1) / 2) as f64
}

struct Slot {
    /// The age bucket (time since creation / slot length) whose observations this holds.
    epoch: AtomicU64,
    counts: Box<[AtomicU32]>,
}

/// One summary family's figures (one label set). Cheap to observe from many threads.
pub struct Summary {
    count: AtomicU64,
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
    slots: Box<[Slot]>,
    /// Serialises clearing a slot for reuse; never taken by an observation in the same slot.
    rotating: Mutex<()>,
    origin: Instant,
    slot_length: Duration,
}

impl std::fmt::Debug for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Summary")
            .field("count", &self.count.load(Ordering::Relaxed))
            .field("sum", &self.sum.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for Summary {
    fn default() -> Self {
        Summary::new()
    }
}

/// What a summary held at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct SummarySnapshot {
    /// Observations since start.
    pub count: u64,
    pub sum: u64,
    /// Smallest and largest observation since start; `None` before the first.
    pub min_max: Option<(u64, u64)>,
    /// `(q, value)` for each quantile asked for, over the window; NaN when it is empty.
    pub quantiles: Vec<(f64, f64)>,
}

impl SummarySnapshot {
    /// The average since start, 0 before the first observation.
    pub fn average(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }
}

impl Summary {
    /// A summary with the 10-minute window of `simpleclient`.
    pub fn new() -> Summary {
        Summary::with_window(WINDOW)
    }

    /// A summary whose quantiles cover `window` (kept in [`AGE_BUCKETS`] slots).
    pub fn with_window(window: Duration) -> Summary {
        let slot_length = (window / AGE_BUCKETS as u32).max(Duration::from_millis(1));
        let slots = (0..AGE_BUCKETS)
            .map(|_| Slot {
                epoch: AtomicU64::new(u64::MAX),
                counts: (0..BUCKETS).map(|_| AtomicU32::new(0)).collect(),
            })
            .collect();
        Summary {
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
            slots,
            rotating: Mutex::new(()),
            origin: Instant::now(),
            slot_length,
        }
    }

    fn epoch_at(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.origin);
        (elapsed.as_nanos() / self.slot_length.as_nanos()) as u64
    }

    /// Records one observation now.
    pub fn observe(&self, v: u64) {
        self.observe_at(v, Instant::now());
    }

    /// Records a duration in whole milliseconds (rounded down, as ZooKeeper measures).
    pub fn observe_millis(&self, d: Duration) {
        self.observe(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    }

    /// Records one observation made at `now`.
    pub fn observe_at(&self, v: u64, now: Instant) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
        self.min.fetch_min(v, Ordering::Relaxed);
        self.max.fetch_max(v, Ordering::Relaxed);
        let epoch = self.epoch_at(now);
        let slot = &self.slots[(epoch % AGE_BUCKETS) as usize];
        if slot.epoch.load(Ordering::Acquire) != epoch {
            let _guard = self.rotating.lock().unwrap_or_else(|p| p.into_inner());
            // Another observer may have cleared it meanwhile; a slot of a later epoch (a thread
            // that read the clock after this one) is left alone, this observation joins it.
            let held = slot.epoch.load(Ordering::Acquire);
            if held == u64::MAX || held < epoch {
                for c in slot.counts.iter() {
                    c.store(0, Ordering::Relaxed);
                }
                slot.epoch.store(epoch, Ordering::Release);
            }
        }
        slot.counts[bucket_of(v)].fetch_add(1, Ordering::Relaxed);
    }

    /// Count, sum, extremes and the quantiles `qs` (each in `[0, 1]`) now.
    pub fn snapshot(&self, qs: &[f64]) -> SummarySnapshot {
        self.snapshot_at(qs, Instant::now())
    }

    /// As [`snapshot`](Self::snapshot), the window ending at `now`.
    pub fn snapshot_at(&self, qs: &[f64], now: Instant) -> SummarySnapshot {
        let epoch = self.epoch_at(now);
        let oldest = epoch.saturating_sub(AGE_BUCKETS - 1);
        let mut merged = vec![0u64; BUCKETS];
        let mut total = 0u64;
        for slot in self.slots.iter() {
            let e = slot.epoch.load(Ordering::Acquire);
            if e == u64::MAX || e < oldest || e > epoch {
                continue;
            }
            for (m, c) in merged.iter_mut().zip(slot.counts.iter()) {
                let c = u64::from(c.load(Ordering::Relaxed));
                *m += c;
                total += c;
            }
        }
        let quantiles = qs
            .iter()
            .map(|&q| {
                if total == 0 {
                    return (q, f64::NAN);
                }
                // The smallest value with at least ⌈q·n⌉ observations at or below it.
                let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
                let mut seen = 0;
                let b = merged
                    .iter()
                    .position(|&c| {
                        seen += c;
                        seen >= rank
                    })
                    .unwrap_or(BUCKETS - 1);
                (q, value_of(b))
            })
            .collect();
        let count = self.count.load(Ordering::Relaxed);
        let min_max = (count > 0).then(|| {
            (
                self.min.load(Ordering::Relaxed),
                self.max.load(Ordering::Relaxed),
            )
        });
        SummarySnapshot {
            count,
            sum: self.sum.load(Ordering::Relaxed),
            min_max,
            quantiles,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_below_64_and_within_1_64th_above() {
        for v in 0..EXACT_BELOW {
            assert_eq!(value_of(bucket_of(v)), v as f64);
        }
        let mut last = 0;
        for v in [
            64u64,
            65,
            95,
            96,
            127,
            128,
            1000,
            4095,
            65_537,
            1 << 30,
            (1 << 40) - 1,
        ] {
            let b = bucket_of(v);
            assert!(b >= last, "buckets grow with the value ({v})");
            last = b;
            let reported = value_of(b);
            assert!(
                (reported - v as f64).abs() <= v as f64 / 64.0,
                "{v} reported as {reported}"
            );
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_of((1 << 40) - 1), BUCKETS - 1);
    }

    #[test]
    fn quantiles_count_sum_and_extremes() {
        let s = Summary::new();
        let empty = s.snapshot(&[0.5]);
        assert_eq!((empty.count, empty.sum, empty.min_max), (0, 0, None));
        assert!(empty.quantiles[0].1.is_nan());
        assert_eq!(empty.average(), 0.0);
        for v in 1..=100 {
            s.observe(v);
        }
        let snap = s.snapshot(&[0.5, 0.9, 0.99, 1.0]);
        assert_eq!((snap.count, snap.sum), (100, 5050));
        assert_eq!(snap.min_max, Some((1, 100)));
        assert_eq!(snap.average(), 50.5);
        assert_eq!(snap.quantiles[0], (0.5, 50.0));
        // 90, 99 and 100 lie in buckets two wide ([90, 92), [98, 100), [100, 102)).
        assert_eq!(snap.quantiles[1], (0.9, 90.0));
        assert_eq!(snap.quantiles[2], (0.99, 98.0));
        assert_eq!(snap.quantiles[3], (1.0, 100.0));
    }

    #[test]
    fn old_observations_leave_the_window_but_stay_in_count_and_sum() {
        let s = Summary::with_window(Duration::from_secs(10));
        let t0 = s.origin;
        s.observe_at(7, t0);
        s.observe_at(9, t0 + Duration::from_secs(4));
        let at = |secs| t0 + Duration::from_secs(secs);
        assert_eq!(s.snapshot_at(&[0.5], at(5)).quantiles, vec![(0.5, 7.0)]);
        // The 2-second slot holding 7 is older than the window at 10 s; 9 is still in.
        assert_eq!(s.snapshot_at(&[0.5], at(11)).quantiles, vec![(0.5, 9.0)]);
        let later = s.snapshot_at(&[0.5], at(30));
        assert!(later.quantiles[0].1.is_nan());
        assert_eq!(
            (later.count, later.sum, later.min_max),
            (2, 16, Some((7, 9)))
        );
        // A slot reused for a later age bucket starts empty.
        s.observe_at(3, at(30));
        assert_eq!(s.snapshot_at(&[1.0], at(30)).quantiles, vec![(1.0, 3.0)]);
    }

    #[test]
    fn observations_from_many_threads_are_all_counted() {
        let s = std::sync::Arc::new(Summary::new());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        s.observe(i % 10 + t);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let snap = s.snapshot(&[0.0, 1.0]);
        assert_eq!(snap.count, 40_000);
        assert_eq!(snap.min_max, Some((0, 12)));
        assert_eq!(snap.quantiles, vec![(0.0, 0.0), (1.0, 12.0)]);
    }
}
