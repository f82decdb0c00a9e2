//! A warning logged at most once per period, with the count of those it stood for: conditions
//! a flood can repeat thousands of times a second (refused connections, a full disk) must not
//! flood the broker's own log, which may share the full disk.

use std::sync::atomic::{AtomicU64, Ordering};

/// The last time a warning went out, and how many were held back since.
#[derive(Debug)]
pub struct WarnEvery {
    every_ms: u64,
    last_ms: AtomicU64,
    held_back: AtomicU64,
}

impl WarnEvery {
    pub const fn new(every_ms: u64) -> WarnEvery {
        WarnEvery {
            every_ms,
            last_ms: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(held back since the last warning)` when this occurrence is to be logged, `None`
    /// when it is only counted.
    pub fn due(&self) -> Option<u64> {
        let now = sluice_log::now_ms();
        let last = self.last_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= self.every_ms
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.held_back.swap(0, Ordering::Relaxed));
        }
        self.held_back.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_period_counts_the_rest() {
        let w = WarnEvery::new(60_000);
        assert_eq!(w.due(), Some(0));
        assert_eq!(w.due(), None);
        assert_eq!(w.due(), None);
        w.last_ms.store(0, Ordering::Relaxed);
        assert_eq!(w.due(), Some(2));
    }
}
