//! Kafka's `RequestMetrics` per API: requests by version, and the time a request spends in
//! each stage, as quantile summaries ([`sluice_metrics::summary::Summary`], in microseconds,
//! reported in milliseconds with fractions as Kafka's histograms are).
//!
//! ```text
//!  frame read whole ─► request queue ─► handler ─► (remote: long poll, acks=all) ─► response
//!   received            (queued.max.*,   started     handled        ready          queue ─► sent
//!                        in-flight cap)                                             write_start  done
//!  total = done − received        request queue = started − received
//!  local = handled − started − the handler's own waiting (a Fetch's long poll)
//!  remote = that waiting + (ready − handled)        response queue = write_start − ready
//!  response send = done − write_start (less a throttle held back before the write)
//! ```
//!
//! As in Kafka, Fetch is split by who asks: `FetchConsumer` and `FetchFollower`; every other
//! API is named as Kafka's `ApiKeys` names it (`Produce`, `Metadata`, `OffsetCommit`, ...).
//! An API's figures are allocated the first time it is used (a summary is a few tens of KiB),
//! and every observation is a handful of atomic adds, never a lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use sluice_metrics::summary::Summary;

use crate::api::SUPPORTED;

/// The quantiles exported, with the labels the JMX exporter gives Kafka's `NthPercentile`
/// attributes (`50thPercentile` → `0.50`).
pub const QUANTILES: [(f64, &str); 6] = [
    (0.50, "0.50"),
    (0.75, "0.75"),
    (0.95, "0.95"),
    (0.98, "0.98"),
    (0.99, "0.99"),
    (0.999, "0.999"),
];

/// Versions counted separately (every served version is below this).
const VERSIONS: usize = 32;

/// The stages of a request, as Kafka names their histograms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Total,
    RequestQueue,
    Local,
    Remote,
    Throttle,
    ResponseQueue,
    ResponseSend,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Total,
        Stage::RequestQueue,
        Stage::Local,
        Stage::Remote,
        Stage::Throttle,
        Stage::ResponseQueue,
        Stage::ResponseSend,
    ];

    /// The metric name (`kafka.network:type=RequestMetrics,name=TotalTimeMs` as the JMX
    /// exporter writes it).
    pub fn metric(self) -> &'static str {
        match self {
            Stage::Total => "kafka_network_requestmetrics_totaltimems",
            Stage::RequestQueue => "kafka_network_requestmetrics_requestqueuetimems",
            Stage::Local => "kafka_network_requestmetrics_localtimems",
            Stage::Remote => "kafka_network_requestmetrics_remotetimems",
            Stage::Throttle => "kafka_network_requestmetrics_throttletimems",
            Stage::ResponseQueue => "kafka_network_requestmetrics_responsequeuetimems",
            Stage::ResponseSend => "kafka_network_requestmetrics_responsesendtimems",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            Stage::Total => "Time from a request read whole to its response sent, ms",
            Stage::RequestQueue => {
                "Time a request waited for the request queue and the connection's turn, ms"
            }
            Stage::Local => "Time the broker spent handling a request, ms",
            Stage::Remote => {
                "Time a request waited on others: a fetch's long poll, acks=all replication, ms"
            }
            Stage::Throttle => "Time a response was throttled by client quotas, ms",
            Stage::ResponseQueue => {
                "Time a response waited behind earlier responses of its connection, ms"
            }
            Stage::ResponseSend => "Time to write a response to the socket, ms",
        }
    }
}

/// One API's figures.
#[derive(Debug)]
pub struct ApiStats {
    /// The `request` label.
    pub name: String,
    versions: [AtomicU64; VERSIONS],
    stages: [Summary; 7],
}

impl ApiStats {
    fn new(name: String) -> ApiStats {
        ApiStats {
            name,
            versions: std::array::from_fn(|_| AtomicU64::new(0)),
            stages: std::array::from_fn(|_| Summary::new()),
        }
    }

    /// `(version, requests)` for each version used.
    pub fn versions(&self) -> Vec<(usize, u64)> {
        self.versions
            .iter()
            .enumerate()
            .map(|(v, c)| (v, c.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// The summary of `stage`, in microseconds.
    pub fn stage(&self, stage: Stage) -> &Summary {
        &self.stages[stage as usize]
    }
}

/// When a request went through each stage.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub key: ApiKey,
    pub version: i16,
    /// A Fetch from a follower.
    pub follower: bool,
    pub received: Instant,
    pub started: Instant,
    pub handled: Instant,
    /// Waiting inside the handler (a Fetch's long poll).
    pub waited: Duration,
    /// The response was complete (Later futures resolve after `handled`).
    pub ready: Instant,
    pub throttle: Duration,
    /// The throttle was served before the write (clients older than KIP-219).
    pub throttle_before_write: bool,
}

/// Every API's figures.
#[derive(Debug)]
pub struct RequestMetrics {
    /// One per entry of [`SUPPORTED`], then FetchFollower.
    slots: Box<[OnceLock<Box<ApiStats>>]>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            slots: (0..=SUPPORTED.len()).map(|_| OnceLock::new()).collect(),
        }
    }
}

/// Kafka's name for the request metrics of `key` (Fetch split by who asks).
pub fn request_name(key: ApiKey, follower: bool) -> String {
    match key {
        ApiKey::Fetch if follower => "FetchFollower".into(),
        ApiKey::Fetch => "FetchConsumer".into(),
        other => format!("{other:?}"),
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl RequestMetrics {
    fn slot(key: ApiKey, follower: bool) -> Option<usize> {
        if key == ApiKey::Fetch && follower {
            return Some(SUPPORTED.len());
        }
        SUPPORTED.iter().position(|s| s.key == key)
    }

    /// Records a request answered: its response was written from `write_start` to `done`.
    pub fn record(&self, t: &Timing, write_start: Instant, done: Instant) {
        let Some(slot) = Self::slot(t.key, t.follower) else {
            return;
        };
        let stats = self.slots[slot]
            .get_or_init(|| Box::new(ApiStats::new(request_name(t.key, t.follower))));
        let v = usize::try_from(t.version).unwrap_or(0).min(VERSIONS - 1);
        stats.versions[v].fetch_add(1, Ordering::Relaxed);
        let since = |later: Instant, earlier: Instant| later.saturating_duration_since(earlier);
        let local = since(t.handled, t.started).saturating_sub(t.waited);
        let remote = t.waited + since(t.ready, t.handled);
        let mut send = since(done, write_start);
        if t.throttle_before_write {
            send = send.saturating_sub(t.throttle);
        }
        let observed = [
            (Stage::Total, since(done, t.received)),
            (Stage::RequestQueue, since(t.started, t.received)),
            (Stage::Local, local),
            (Stage::Remote, remote),
            (Stage::Throttle, t.throttle),
            (Stage::ResponseQueue, since(write_start, t.ready)),
            (Stage::ResponseSend, send),
        ];
        for (stage, d) in observed {
            stats.stage(stage).observe(micros(d));
        }
    }

    /// The APIs used so far.
    pub fn used(&self) -> impl Iterator<Item = &ApiStats> {
        self.slots.iter().filter_map(|s| s.get().map(|b| &**b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kafkas() {
        assert_eq!(request_name(ApiKey::Produce, false), "Produce");
        assert_eq!(request_name(ApiKey::Fetch, false), "FetchConsumer");
        assert_eq!(request_name(ApiKey::Fetch, true), "FetchFollower");
        assert_eq!(request_name(ApiKey::ListOffsets, false), "ListOffsets");
        assert_eq!(request_name(ApiKey::OffsetCommit, false), "OffsetCommit");
        assert_eq!(
            request_name(ApiKey::OffsetForLeaderEpoch, false),
            "OffsetForLeaderEpoch"
        );
        assert_eq!(
            request_name(ApiKey::InitProducerId, false),
            "InitProducerId"
        );
    }

    #[test]
    fn stages_add_up() {
        let m = RequestMetrics::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let t = Timing {
            key: ApiKey::Produce,
            version: 9,
            follower: false,
            received: t0,
            started: t0 + ms(1),
            handled: t0 + ms(4),
            waited: Duration::ZERO,
            ready: t0 + ms(10),
            throttle: Duration::ZERO,
            throttle_before_write: false,
        };
        m.record(&t, t0 + ms(12), t0 + ms(13));
        let s = m.used().next().unwrap();
        assert_eq!(s.name, "Produce");
        assert_eq!(s.versions(), vec![(9, 1)]);
        let q = |stage| s.stage(stage).snapshot(&[0.5]).quantiles[0].1;
        assert!((q(Stage::Total) - 13_000.0).abs() <= 13_000.0 / 64.0);
        assert!((q(Stage::RequestQueue) - 1000.0).abs() <= 1000.0 / 64.0);
        assert!((q(Stage::Local) - 3000.0).abs() <= 3000.0 / 64.0);
        assert!((q(Stage::Remote) - 6000.0).abs() <= 6000.0 / 64.0);
        assert!((q(Stage::ResponseQueue) - 2000.0).abs() <= 2000.0 / 64.0);
        assert!((q(Stage::ResponseSend) - 1000.0).abs() <= 1000.0 / 64.0);
        assert_eq!(q(Stage::Throttle), 0.0);
        // Fetch is split by who asks.
        let f = Timing {
            key: ApiKey::Fetch,
            follower: true,
            ..t
        };
        m.record(&f, t0 + ms(12), t0 + ms(13));
        let names: Vec<&str> = m.used().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["Produce", "FetchFollower"]);
    }
}
