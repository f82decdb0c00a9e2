//! Kafka's `BrokerTopicMetrics` and the ISR change meters as plain atomic counters, bumped on
//! the produce and fetch paths and read at scrape time.
//!
//! ```text
//!  ReplicaManager::create ─► BrokerCounters::for_partition(topic) ─► Partition.counters
//!                                 (the one lock: a topic's counters   (two Arcs: its topic's and
//!                                  are looked up when a partition is   the broker's; a request
//!                                  created here, never per request)    only does atomic adds)
//!  produce / fetch / replica fetcher ─► PartitionCounters::* ─► topic + all-topics counters
//!  scrape ─► BrokerCounters::topics() (one entry per topic, not per record)
//! ```
//!
//! What counts follows Kafka's `ReplicaManager`: every partition of a Produce or Fetch is one
//! "request" of `TotalProduceRequestsPerSec` / `TotalFetchRequestsPerSec`; a partition refused
//! for a reason Kafka calls expected (not the leader, unknown partition, a batch too large or
//! corrupt, a storage error, an offset out of range) is not a failed request, every other
//! refusal is ([`produce_failure_counts`], [`fetch_failure_counts`]). A batch over
//! `message.max.bytes` counts its bytes as rejected. Consumers' bytes are `BytesOut`,
//! followers' `ReplicationBytesOut`; what followers append is `ReplicationBytesIn`.
//!
//! A topic's counters live as long as the topic exists (a partition moved away keeps them, so
//! they never go back); a deleted topic's go with it, as Kafka removes its meters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kafka_protocol::error::ResponseError;

/// One topic's figures (or the broker's, over all topics), since start.
#[derive(Debug, Default)]
pub struct TopicCounters {
    pub messages_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub bytes_rejected: AtomicU64,
    pub failed_produce: AtomicU64,
    pub failed_fetch: AtomicU64,
    pub total_produce: AtomicU64,
    pub total_fetch: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Reads a counter for a scrape.
pub fn read(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// The broker's counters: over all topics, replication, ISR changes, and each topic's.
#[derive(Debug, Default)]
pub struct BrokerCounters {
    /// The topic-less series (`kafka_server_brokertopicmetrics_messagesin_total` without a
    /// `topic` label).
    pub all: TopicCounters,
    pub replication_bytes_in: AtomicU64,
    pub replication_bytes_out: AtomicU64,
    /// ISR changes of partitions led here: a member gone (shrink) or one added (expand), by
    /// this leader's own write or by the controller's.
    pub isr_shrinks: AtomicU64,
    pub isr_expands: AtomicU64,
    topics: Mutex<BTreeMap<String, Arc<TopicCounters>>>,
}

impl BrokerCounters {
    /// The counters a partition of `topic` held here bumps.
    pub fn for_partition(self: &Arc<Self>, topic: &str) -> PartitionCounters {
        let topic = self
            .topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(topic.to_string())
            .or_default()
            .clone();
        PartitionCounters {
            topic,
            broker: self.clone(),
        }
    }

    /// Drops the counters of topics for which `exists` is false (deleted topics).
    pub fn forget_deleted(&self, exists: impl Fn(&str) -> bool) {
        self.topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|t, _| exists(t));
    }

    /// Every topic's counters, by name.
    pub fn topics(&self) -> Vec<(String, Arc<TopicCounters>)> {
        self.topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(t, c)| (t.clone(), c.clone()))
            .collect()
    }
}

/// A partition's handle on its topic's counters and the broker's.
#[derive(Debug, Clone)]
pub struct PartitionCounters {
    topic: Arc<TopicCounters>,
    broker: Arc<BrokerCounters>,
}

impl PartitionCounters {
    fn both(&self, f: impl Fn(&TopicCounters)) {
        f(&self.topic);
        f(&self.broker.all);
    }

    /// One partition of a Produce request (or of an append by the group coordinator).
    pub fn produce_request(&self) {
        self.both(|c| add(&c.total_produce, 1));
    }

    /// Records appended as leader: `bytes` of batches holding `records` records.
    pub fn appended(&self, bytes: u64, records: u64) {
        self.both(|c| {
            add(&c.bytes_in, bytes);
            add(&c.messages_in, records);
        });
    }

    /// A partition's produce refused with `error`.
    pub fn produce_refused(&self, error: ResponseError, bytes: u64) {
        if error == ResponseError::MessageTooLarge {
            self.both(|c| add(&c.bytes_rejected, bytes));
        }
        if produce_failure_counts(error) {
            self.both(|c| add(&c.failed_produce, 1));
        }
    }

    /// One partition of a Fetch request, answered with `error` (0: none) and `bytes` of
    /// records, for a follower (`replica`) or a consumer.
    pub fn fetched(&self, error: i16, bytes: u64, replica: bool) {
        self.both(|c| add(&c.total_fetch, 1));
        if fetch_failure_counts(error) {
            self.both(|c| add(&c.failed_fetch, 1));
        }
        if replica {
            add(&self.broker.replication_bytes_out, bytes);
        } else {
            self.both(|c| add(&c.bytes_out, bytes));
        }
    }

    /// Bytes a follower appended from its leader.
    pub fn replicated_in(&self, bytes: u64) {
        add(&self.broker.replication_bytes_in, bytes);
    }

    /// The ISR of a partition led here went from `before` to `after`.
    pub fn isr_changed(&self, before: &[i32], after: &[i32]) {
        if before.iter().any(|r| !after.contains(r)) {
            add(&self.broker.isr_shrinks, 1);
        }
        if after.iter().any(|r| !before.contains(r)) {
            add(&self.broker.isr_expands, 1);
        }
    }
}

impl BrokerCounters {
    /// A partition of a Produce this broker holds no replica of.
    pub fn produce_request_elsewhere(&self) {
        add(&self.all.total_produce, 1);
    }

    /// A partition of a Fetch this broker holds no replica of.
    pub fn fetch_request_elsewhere(&self, error: i16) {
        add(&self.all.total_fetch, 1);
        if fetch_failure_counts(error) {
            add(&self.all.failed_fetch, 1);
        }
    }
}

/// Whether a partition's produce refused with `e` counts in `FailedProduceRequestsPerSec`:
/// not for the refusals Kafka's `ReplicaManager.appendToLocalLog` lists as expected ("it is
/// supposed to indicate un-expected failures of a broker in handling a produce request").
pub fn produce_failure_counts(e: ResponseError) -> bool {
    !matches!(
        e,
        ResponseError::UnknownTopicOrPartition
            | ResponseError::NotLeaderOrFollower
            | ResponseError::MessageTooLarge
            | ResponseError::RecordListTooLarge
            | ResponseError::CorruptMessage
            | ResponseError::KafkaStorageError
            | ResponseError::UnknownTopicId
            | ResponseError::InvalidTopicException
    )
}

/// Whether a partition's fetch answered with `code` counts in `FailedFetchRequestsPerSec`:
/// not the errors Kafka's `ReplicaManager.readFromLocalLog` lists as expected.
pub fn fetch_failure_counts(code: i16) -> bool {
    match ResponseError::try_from_code(code) {
        None => false,
        Some(e) => !matches!(
            e,
            ResponseError::UnknownTopicOrPartition
                | ResponseError::NotLeaderOrFollower
                | ResponseError::UnknownLeaderEpoch
                | ResponseError::FencedLeaderEpoch
                | ResponseError::ReplicaNotAvailable
                | ResponseError::KafkaStorageError
                | ResponseError::OffsetOutOfRange
                | ResponseError::UnknownTopicId
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_and_broker_totals_move_together() {
        let b = Arc::new(BrokerCounters::default());
        let p0 = b.for_partition("t");
        let p1 = b.for_partition("t");
        let q = b.for_partition("u");
        p0.produce_request();
        p0.appended(100, 3);
        p1.produce_request();
        p1.produce_refused(ResponseError::NotEnoughReplicas, 50);
        q.produce_request();
        q.produce_refused(ResponseError::MessageTooLarge, 2000);
        q.produce_refused(ResponseError::NotLeaderOrFollower, 10);
        p0.fetched(0, 70, false);
        p0.fetched(ResponseError::OffsetOutOfRange.code(), 0, false);
        p0.fetched(0, 40, true);
        b.produce_request_elsewhere();
        let topics = b.topics();
        let t = &topics.iter().find(|(n, _)| n == "t").unwrap().1;
        let u = &topics.iter().find(|(n, _)| n == "u").unwrap().1;
        assert_eq!(read(&t.total_produce), 2);
        assert_eq!(read(&t.messages_in), 3);
        assert_eq!(read(&t.bytes_in), 100);
        assert_eq!(read(&t.failed_produce), 1);
        assert_eq!(read(&u.failed_produce), 0);
        assert_eq!(read(&u.bytes_rejected), 2000);
        assert_eq!(read(&t.total_fetch), 3);
        assert_eq!(read(&t.failed_fetch), 0);
        assert_eq!(read(&t.bytes_out), 70);
        assert_eq!(read(&b.replication_bytes_out), 40);
        assert_eq!(read(&b.all.total_produce), 4);
        assert_eq!(read(&b.all.messages_in), 3);
        assert_eq!(read(&b.all.bytes_rejected), 2000);
        b.forget_deleted(|t| t != "u");
        assert_eq!(b.topics().len(), 1);
        // Counters of a topic still held survive the forgetting of others.
        assert_eq!(read(&b.topics()[0].1.total_produce), 2);
    }

    #[test]
    fn isr_changes_count_shrinks_and_expands() {
        let b = Arc::new(BrokerCounters::default());
        let p = b.for_partition("t");
        p.isr_changed(&[1, 2, 3], &[1, 2]);
        p.isr_changed(&[1, 2], &[1, 2, 3]);
        p.isr_changed(&[1, 2, 3], &[1, 2, 3]);
        p.isr_changed(&[1, 2], &[1, 3]);
        assert_eq!(read(&b.isr_shrinks), 2);
        assert_eq!(read(&b.isr_expands), 2);
    }
}
