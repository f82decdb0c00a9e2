//! How idle the broker's threads are: Kafka's `NetworkProcessorAvgIdlePercent` and
//! `RequestHandlerAvgIdlePercent`, for a broker whose network and request handling share one
//! async runtime (a worker thread per core).
//!
//! ```text
//!  tokio RuntimeMetrics: each worker's total busy time ─► busy(now)
//!  recent():     1 − Δbusy / (Δt × workers) over the last interval of at least MIN_INTERVAL
//!                between two scrapes (Kafka's network processors report a recent ratio)
//!  since_start(): 1 − busy / (uptime × workers) (Kafka's handler pool meter's mean rate, the
//!                attribute the JMX exporter's percent rule reads)
//! ```
//!
//! Both are fractions from 0 (always busy) to 1 (always idle), as Kafka's are. Blocking work
//! (log appends and reads run on the blocking pool) is not in them, and a worker's busy time
//! is counted once it parks (tokio hands it over then), a moment late.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The shortest interval `recent` is measured over; scrapes closer together see the last one.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    busy: Duration,
}

/// The runtime's idle fractions.
#[derive(Debug)]
pub struct RuntimeIdle {
    runtime: Option<tokio::runtime::Handle>,
    start: Sample,
    /// The sample `recent` measures from, and the fraction it last gave.
    last: Mutex<(Sample, f64)>,
}

impl RuntimeIdle {
    /// Measures the runtime this is called from (none outside one: nothing is reported).
    pub fn new() -> RuntimeIdle {
        let runtime = tokio::runtime::Handle::try_current().ok();
        let start = Sample {
            at: Instant::now(),
            busy: runtime.as_ref().map_or(Duration::ZERO, busy),
        };
        RuntimeIdle {
            runtime,
            start,
            last: Mutex::new((start, f64::NAN)),
        }
    }

    fn workers(&self) -> Option<usize> {
        self.runtime.as_ref().map(|r| r.metrics().num_workers())
    }

    fn now(&self) -> Option<Sample> {
        let r = self.runtime.as_ref()?;
        Some(Sample {
            at: Instant::now(),
            busy: busy(r),
        })
    }

    /// Idle fraction since the broker started.
    pub fn since_start(&self) -> Option<f64> {
        let now = self.now()?;
        Some(idle_between(self.start, now, self.workers()?))
    }

    /// Idle fraction over the latest interval of at least [`MIN_INTERVAL`] ending at a scrape
    /// (until one has passed: since start).
    pub fn recent(&self) -> Option<f64> {
        let now = self.now()?;
        let workers = self.workers()?;
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if now.at.saturating_duration_since(last.0.at) >= MIN_INTERVAL {
            *last = (now, idle_between(last.0, now, workers));
        } else if last.1.is_nan() {
            return Some(idle_between(self.start, now, workers));
        }
        Some(last.1)
    }
}

impl Default for RuntimeIdle {
    fn default() -> Self {
        RuntimeIdle::new()
    }
}

/// Busy time of every worker, summed.
fn busy(r: &tokio::runtime::Handle) -> Duration {
    let m = r.metrics();
    (0..m.num_workers())
        .map(|w| m.worker_total_busy_duration(w))
        .sum()
}

fn idle_between(from: Sample, to: Sample, workers: usize) -> f64 {
    let span = to.at.saturating_duration_since(from.at).as_secs_f64() * workers.max(1) as f64;
    if span <= 0.0 {
        return 1.0;
    }
    let busy = to.busy.saturating_sub(from.busy).as_secs_f64();
    (1.0 - busy / span).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn busy_workers_are_less_idle() {
        let idle = RuntimeIdle::new();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let quiet = idle.since_start().unwrap();
        assert!(quiet > 0.5, "{quiet}");
        // Keep one of two workers spinning for a while.
        tokio::spawn(async {
            let until = Instant::now() + Duration::from_millis(600);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        })
        .await
        .unwrap();
        // Workers hand their busy time over when they park.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let after = idle.since_start().unwrap();
        // One of two workers busy for 600 of the 1000 ms: well below the quiet figure.
        assert!(after < quiet - 0.05, "{quiet} then {after}");
        let recent = idle.recent().unwrap();
        assert!((0.0..=1.0).contains(&recent));
    }

    #[test]
    fn outside_a_runtime_nothing_is_reported() {
        let idle = RuntimeIdle::new();
        assert_eq!(idle.since_start(), None);
        assert_eq!(idle.recent(), None);
    }
}
