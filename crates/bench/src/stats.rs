//! Summaries of what a run measured: latency percentiles from an HDR histogram, the longest gap
//! between acknowledged writes, and error counts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency the histograms hold, in microseconds (one hour: far above any request
/// timeout, so nothing is ever clamped).
const MAX_MICROS: u64 = 3_600_000_000;

/// A latency histogram in microseconds, three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

/// Records one latency, clamping into the histogram's range.
pub fn record(h: &mut Histogram<u64>, latency: Duration) {
    let us = u64::try_from(latency.as_micros())
        .unwrap_or(MAX_MICROS)
        .clamp(1, MAX_MICROS);
    h.record(us).expect("value within bounds");
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Latency {
                p50_ms: 0.0,
                p99_ms: 0.0,
                p999_ms: 0.0,
                max_ms: 0.0,
                mean_ms: 0.0,
            };
        }
        Latency {
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }

    pub fn human(&self) -> String {
        format!(
            "p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  (mean {:.3} ms)",
            self.p50_ms, self.p99_ms, self.p999_ms, self.max_ms, self.mean_ms
        )
    }
}

/// Error counts by kind.
pub type Errors = BTreeMap<String, u64>;

pub fn merge_errors(into: &mut Errors, from: Errors) {
    for (k, v) in from {
        *into.entry(k).or_default() += v;
    }
}

pub fn human_errors(e: &Errors) -> String {
    if e.is_empty() {
        return "none".into();
    }
    e.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The longest interval without an acknowledged write, and where it started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gap {
    pub length: Duration,
    /// Start of the gap (the acknowledgement before it), measured from the run's start.
    pub starts_at: Duration,
}

/// Finds the `n` longest intervals between consecutive acknowledgements in `acks` (any order),
/// longest first, also counting the stretch from the last acknowledgement to `end`: writes that
/// never resume must show as a gap, not vanish. The stretch before the first acknowledgement is
/// connection setup, not an outage, and is left out. Empty when there was no acknowledgement.
///
/// More than the longest is kept because on a shared machine a scheduling stall elsewhere in the
/// run can rival the failover itself; the runner-up shows whether that happened.
pub fn longest_gaps(acks: &mut [Instant], start: Instant, end: Instant, n: usize) -> Vec<Gap> {
    acks.sort_unstable();
    let Some(&first) = acks.first() else {
        return Vec::new();
    };
    let mut gaps = Vec::with_capacity(acks.len());
    let mut prev = first;
    for &t in acks[1..].iter().chain(std::iter::once(&end.max(first))) {
        gaps.push(Gap {
            length: t.saturating_duration_since(prev),
            starts_at: prev.saturating_duration_since(start),
        });
        prev = prev.max(t);
    }
    gaps.sort_by_key(|g| std::cmp::Reverse(g.length));
    gaps.truncate(n);
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_milliseconds() {
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            record(&mut h, Duration::from_micros(us * 10));
        }
        let l = Latency::of(&h);
        assert!((l.p50_ms - 5.0).abs() < 0.01, "{l:?}");
        assert!((l.p99_ms - 9.9).abs() < 0.01, "{l:?}");
        assert!((l.max_ms - 10.0).abs() < 0.01, "{l:?}");
        assert_eq!(Latency::of(&new_histogram()).p99_ms, 0.0);
    }

    #[test]
    fn extreme_latencies_are_clamped_not_lost() {
        let mut h = new_histogram();
        record(&mut h, Duration::ZERO);
        record(&mut h, Duration::from_secs(100_000));
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn longest_gaps_between_acks_and_up_to_the_end() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut acks = vec![at(30), at(10), at(20), at(400), at(410)];
        let g = longest_gaps(&mut acks, t0, at(420), 2);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].length, Duration::from_millis(370));
        assert_eq!(g[0].starts_at, Duration::from_millis(30));
        assert_eq!(g[1].length, Duration::from_millis(10));

        // Writes that never come back: the tail counts.
        let mut acks = vec![at(10), at(20)];
        let g = longest_gaps(&mut acks, t0, at(1020), 3);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].length, Duration::from_millis(1000));
        assert_eq!(g[0].starts_at, Duration::from_millis(20));

        assert!(longest_gaps(&mut [], t0, at(5), 3).is_empty());
    }

    #[test]
    fn error_counts_merge() {
        let mut a = Errors::from([("ConnectionLoss".to_string(), 2)]);
        merge_errors(
            &mut a,
            Errors::from([("ConnectionLoss".into(), 1), ("Timeout".into(), 1)]),
        );
        assert_eq!(human_errors(&a), "ConnectionLoss 3, Timeout 1");
        assert_eq!(human_errors(&Errors::new()), "none");
    }
}
