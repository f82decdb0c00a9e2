//! Kafka's windowed rate (`org.apache.kafka.common.metrics.stats.Rate` over a `WindowedSum`),
//! the measure client quotas are checked against, with its exact arithmetic: the same
//! measurements give the same throttle times as Kafka's `ClientQuotaManager`.
//!
//! The rate is the sum of up to `samples` windows of `window_ms` each, divided by the time they
//! span; while fewer than `samples - 1` whole windows have elapsed, the span is padded to that
//! many, so a new client's first burst is spread over the full window instead of measured
//! over a few milliseconds. Pure: times are passed in (milliseconds on any monotonic clock).

/// One window: its start, and what was recorded in it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    start_ms: u64,
    value: f64,
}

/// A rate per second measured over `samples` windows of `window_ms`.
#[derive(Debug, Clone)]
pub struct Rate {
    samples: Vec<Sample>,
    current: usize,
    max_samples: usize,
    window_ms: u64,
}

impl Rate {
    pub fn new(samples: u32, window_ms: u64) -> Rate {
        Rate {
            samples: Vec::new(),
            current: 0,
            max_samples: samples.max(1) as usize,
            window_ms: window_ms.max(1),
        }
    }

    /// Adds `value` at `now_ms` (a negative value takes back what was recorded, as Kafka's
    /// `unrecordQuotaSensor` does for a throttled fetch).
    pub fn record(&mut self, value: f64, now_ms: u64) {
        if self.samples.is_empty() {
            self.samples.push(Sample {
                start_ms: now_ms,
                value: 0.0,
            });
            self.current = 0;
        }
        let cur = self.samples[self.current];
        if now_ms.saturating_sub(cur.start_ms) >= self.window_ms {
            // The new window starts where whole windows after the previous one end (Kafka's
            // SampledStat aligns them so).
            let prev_end = cur.start_ms + self.window_ms;
            let start = now_ms - (now_ms - prev_end) % self.window_ms;
            self.current = (self.current + 1) % self.max_samples;
            let fresh = Sample {
                start_ms: start,
                value: 0.0,
            };
            if self.current >= self.samples.len() {
                self.samples.push(fresh);
            } else {
                self.samples[self.current] = fresh;
            }
        }
        self.samples[self.current].value += value;
    }

    /// Windows that ended `samples` windows ago or more count for nothing (Kafka resets them
    /// to start now).
    fn purge(&mut self, now_ms: u64) {
        let expire = self.max_samples as u64 * self.window_ms;
        for s in &mut self.samples {
            if now_ms.saturating_sub(s.start_ms) >= expire {
                *s = Sample {
                    start_ms: now_ms,
                    value: 0.0,
                };
            }
        }
    }

    /// The span the rate is measured over at `now_ms`, in milliseconds (at least 1).
    pub fn window_size_ms(&mut self, now_ms: u64) -> u64 {
        self.purge(now_ms);
        let oldest = self
            .samples
            .iter()
            .map(|s| s.start_ms)
            .min()
            .unwrap_or(now_ms);
        let mut elapsed = now_ms.saturating_sub(oldest);
        let full = elapsed / self.window_ms;
        let min_full = self.max_samples as u64 - 1;
        if full < min_full {
            elapsed += (min_full - full) * self.window_ms;
        }
        elapsed.max(1)
    }

    /// The rate per second at `now_ms`.
    pub fn measure(&mut self, now_ms: u64) -> f64 {
        let window = self.window_size_ms(now_ms);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        total / (window as f64 / 1000.0)
    }

    /// Records `value` and checks the rate against `bound`: the throttle time in milliseconds
    /// when it is over (Kafka's `QuotaUtils.throttleTime`: the excess over the bound, as a
    /// fraction of the bound, times the window), else 0.
    pub fn record_and_throttle(&mut self, value: f64, bound: f64, now_ms: u64) -> u64 {
        self.record(value, now_ms);
        let rate = self.measure(now_ms);
        if rate <= bound {
            return 0;
        }
        let window = self.window_size_ms(now_ms) as f64;
        ((rate - bound) / bound * window).round().max(0.0) as u64
    }

    /// The last time anything was recorded, or the window start if nothing was.
    pub fn last_window_start(&self) -> Option<u64> {
        self.samples.get(self.current).map(|s| s.start_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_rate_is_spread_over_the_padded_window() {
        // 11 samples of 1 s: the first second is measured over 10 s.
        let mut r = Rate::new(11, 1000);
        r.record(10_000.0, 0);
        assert_eq!(r.window_size_ms(0), 10_000);
        assert!((r.measure(0) - 1000.0).abs() < 1e-9);
        // After 15 s the span is the elapsed time itself.
        for t in 1..=15 {
            r.record(1000.0, t * 1000);
        }
        assert_eq!(r.window_size_ms(15_500), 10_500);
    }

    #[test]
    fn throttle_time_is_kafkas() {
        // A fresh rate with a quota of 1,000 B/s: 20,000 bytes at once is 2,000 B/s over the
        // padded 10 s, 1,000 over: (2000 - 1000) / 1000 * 10,000 ms.
        let mut r = Rate::new(11, 1000);
        assert_eq!(r.record_and_throttle(20_000.0, 1000.0, 5), 10_000);
        // Within the quota: no throttle.
        let mut r = Rate::new(11, 1000);
        assert_eq!(r.record_and_throttle(5_000.0, 1000.0, 0), 0);
    }

    #[test]
    fn old_windows_expire_and_unrecord_takes_back() {
        let mut r = Rate::new(11, 1000);
        r.record(5_000.0, 0);
        r.record(-5_000.0, 0);
        assert_eq!(r.measure(0), 0.0);
        r.record(5_000.0, 100);
        // 11 windows later the sample is gone.
        assert_eq!(r.measure(11_100), 0.0);
    }

    #[test]
    fn windows_are_aligned_to_the_previous_ones() {
        let mut r = Rate::new(3, 1000);
        r.record(1.0, 0);
        r.record(1.0, 2_500);
        assert_eq!(r.last_window_start(), Some(2_000));
    }
}
