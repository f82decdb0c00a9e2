//! Progress of long work at start (opening and recovering logs), for the operator watching a
//! broker come back: a line at most every [`REPORT_EVERY`], with what is done, what is left
//! and an estimate of the time left at the pace so far.
//!
//! ```text
//!  loading logs   dir=/var/lib/sluice/kafka-logs done=812 total=2000 elapsed_s=5 remaining_s≈7
//!  recovering     log=…/logs-3 scanned_mib=410 total_mib=1024 elapsed_s=5 remaining_s≈7
//! ```

use std::time::{Duration, Instant};

/// The least time between two progress lines of one piece of work.
pub(crate) const REPORT_EVERY: Duration = Duration::from_secs(5);

/// When the work started and when the next line is due.
#[derive(Debug)]
pub(crate) struct Pace {
    started: Instant,
    next_report: Instant,
    every: Duration,
}

impl Pace {
    pub(crate) fn start() -> Pace {
        Pace::every(REPORT_EVERY)
    }

    pub(crate) fn every(every: Duration) -> Pace {
        let now = Instant::now();
        Pace {
            started: now,
            next_report: now + every,
            every,
        }
    }

    /// Whether a line is due now; if so, the next one is due `every` later.
    pub(crate) fn due(&mut self) -> bool {
        let now = Instant::now();
        if now < self.next_report {
            return false;
        }
        self.next_report = now + self.every;
        true
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Seconds left to do `total` at the pace of `done` in the time elapsed (`None` until
    /// something is done).
    pub(crate) fn remaining_secs(&self, done: u64, total: u64) -> Option<u64> {
        remaining(done, total, self.elapsed()).map(|d| d.as_secs())
    }
}

/// What is left of `total` at the pace of `done` in `elapsed`.
pub(crate) fn remaining(done: u64, total: u64, elapsed: Duration) -> Option<Duration> {
    if done == 0 {
        return None;
    }
    let left = total.saturating_sub(done) as f64;
    Some(elapsed.mul_f64(left / done as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_follows_the_pace_so_far() {
        assert_eq!(remaining(0, 10, Duration::from_secs(3)), None);
        assert_eq!(
            remaining(25, 100, Duration::from_secs(5)),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            remaining(100, 100, Duration::from_secs(5)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            remaining(120, 100, Duration::from_secs(5)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn lines_are_due_at_most_once_per_interval() {
        let mut pace = Pace::every(Duration::from_millis(50));
        assert!(!pace.due());
        std::thread::sleep(Duration::from_millis(60));
        assert!(pace.due());
        assert!(!pace.due());
        let mut always = Pace::every(Duration::ZERO);
        assert!(always.due() && always.due());
    }
}
