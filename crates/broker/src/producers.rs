//! Idempotent producers: producer ids handed out by InitProducerId, and per-partition
//! sequence tracking so that a retried batch is acknowledged, not appended twice.
//!
//! ```text
//!  InitProducerId ─► ProducerIds::next ─► block of 1000 ids taken from the coordinator
//!                                          (/latest_producer_id_block, compare-and-set)
//!  Produce batch (producerId ≥ 0, baseSequence ≥ 0)
//!     └─► ProducerStates::check, under the partition's append lock
//!           same epoch, same first/last sequence as one of the last 5 batches ─► Duplicate
//!           older epoch                                  ─► INVALID_PRODUCER_EPOCH
//!           sequence not last + 1 (or not 0 in a new epoch) ─► OUT_OF_ORDER_SEQUENCE_NUMBER
//!           otherwise ─► append, then ProducerStates::record
//! ```
//!
//! The state is rebuilt lazily from the tail of the log (the batch headers of the last
//! [`REBUILD_WINDOW`] offsets) the first time an idempotent batch reaches the partition after
//! a start, so a producer retrying across a broker restart is still deduplicated. A producer the
//! partition has no state for (never seen, or its batches fell out of the window) is accepted
//! at any sequence, as Kafka accepts one whose state was removed.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use sluice_log::batch::BatchHeader;
use zookeeper_client as zk;

use crate::cluster::{persistent, ClusterError};

/// Batches remembered per producer for duplicate detection (the client's maximum in-flight).
pub const BATCHES_PER_PRODUCER: usize = 5;
/// How far back from the log end the producer state is rebuilt after a restart.
pub const REBUILD_WINDOW: u64 = 200_000;
/// Producers idle longer than this are forgotten (Kafka's `producer.id.expiration.ms`).
pub const PRODUCER_EXPIRATION_MS: u64 = 24 * 60 * 60 * 1000;

/// Why a producer's batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("producer {producer_id}: epoch {epoch} is older than the current epoch {current}")]
    StaleEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("producer {producer_id}: sequence {got} does not follow {last} (epoch {epoch})")]
    OutOfOrder {
        producer_id: i64,
        epoch: i16,
        last: i32,
        got: i32,
    },
    #[error("producer {producer_id}: a new epoch {epoch} must start at sequence 0, not {got}")]
    NewEpochNotAtZero {
        producer_id: i64,
        epoch: i16,
        got: i32,
    },
}

impl SequenceError {
    pub fn kafka_error_code(&self) -> i16 {
        use kafka_protocol::error::ResponseError;
        match self {
            SequenceError::StaleEpoch { .. } => ResponseError::InvalidProducerEpoch.code(),
            SequenceError::OutOfOrder { .. } | SequenceError::NewEpochNotAtZero { .. } => {
                ResponseError::OutOfOrderSequenceNumber.code()
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMeta {
    first_seq: i32,
    last_seq: i32,
    first_offset: u64,
    last_offset: u64,
}

#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
    last_ms: u64,
}

/// What to do with a produce payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Append,
    /// Already in the log: acknowledge with these offsets.
    Duplicate {
        first_offset: u64,
        last_offset: u64,
    },
}

fn in_sequence(last: i32, next: i32) -> bool {
    next == last.wrapping_add(1) || (next == 0 && last == i32::MAX)
}

fn is_idempotent(h: &BatchHeader) -> bool {
    h.producer_id >= 0 && h.base_sequence >= 0
}

/// The idempotent producers of one partition.
#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    loaded: bool,
}

impl ProducerStates {
    /// True once [`ProducerStates::rebuild`] has run (or was not needed).
    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// Rebuilds from stored batch headers, oldest first (the tail of the log).
    pub fn rebuild<'a>(&mut self, stored: impl IntoIterator<Item = &'a BatchHeader>, now_ms: u64) {
        self.producers.clear();
        for h in stored {
            self.record(h, now_ms);
        }
        self.loaded = true;
    }

    /// Checks the batches of one produce payload (headers as received) against the state.
    pub fn check(&self, batches: &[BatchHeader]) -> Result<Verdict, SequenceError> {
        let mut pending: HashMap<i64, (i16, i32)> = HashMap::new();
        for (i, h) in batches.iter().enumerate() {
            if !is_idempotent(h) {
                continue;
            }
            let pid = h.producer_id;
            let current = pending.get(&pid).copied().or_else(|| {
                self.producers.get(&pid).map(|e| {
                    (
                        e.epoch,
                        e.batches.back().map_or(-1, |b: &BatchMeta| b.last_seq),
                    )
                })
            });
            if let Some((epoch, _)) = current {
                if h.producer_epoch < epoch {
                    return Err(SequenceError::StaleEpoch {
                        producer_id: pid,
                        epoch: h.producer_epoch,
                        current: epoch,
                    });
                }
            }
            if i == 0 {
                if let Some(dup) = self.duplicate_of(h) {
                    return Ok(dup);
                }
            }
            match current {
                Some((epoch, _)) if epoch != h.producer_epoch && h.base_sequence != 0 => {
                    return Err(SequenceError::NewEpochNotAtZero {
                        producer_id: pid,
                        epoch: h.producer_epoch,
                        got: h.base_sequence,
                    });
                }
                // A new epoch starting at 0, or the same epoch with no sequence known yet.
                None | Some((_, -1)) => {}
                Some((epoch, _)) if epoch != h.producer_epoch => {}
                Some((epoch, last)) if !in_sequence(last, h.base_sequence) => {
                    return Err(SequenceError::OutOfOrder {
                        producer_id: pid,
                        epoch,
                        last,
                        got: h.base_sequence,
                    });
                }
                Some(_) => {}
            }
            pending.insert(pid, (h.producer_epoch, h.last_sequence()));
        }
        Ok(Verdict::Append)
    }

    fn duplicate_of(&self, h: &BatchHeader) -> Option<Verdict> {
        let e = self.producers.get(&h.producer_id)?;
        if e.epoch != h.producer_epoch {
            return None;
        }
        e.batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == h.last_sequence())
            .map(|b| Verdict::Duplicate {
                first_offset: b.first_offset,
                last_offset: b.last_offset,
            })
    }

    /// Records a batch as written (offsets assigned).
    pub fn record(&mut self, h: &BatchHeader, now_ms: u64) {
        if !is_idempotent(h) || h.base_offset < 0 {
            return;
        }
        let e = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: h.producer_epoch,
                batches: VecDeque::with_capacity(BATCHES_PER_PRODUCER),
                last_ms: now_ms,
            });
        if h.producer_epoch != e.epoch {
            e.epoch = h.producer_epoch;
            e.batches.clear();
        }
        if e.batches.len() == BATCHES_PER_PRODUCER {
            e.batches.pop_front();
        }
        e.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            first_offset: h.base_offset as u64,
            last_offset: h.last_offset() as u64,
        });
        e.last_ms = now_ms;
    }

    /// Forgets producers idle for longer than `max_idle_ms`.
    pub fn expire(&mut self, now_ms: u64, max_idle_ms: u64) {
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_ms) <= max_idle_ms);
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

/// `/latest_producer_id_block`, as Kafka (ZooKeeper mode) writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdBlock {
    pub version: i32,
    pub broker: i32,
    pub block_start: String,
    pub block_end: String,
}

pub const PRODUCER_ID_BLOCK: &str = "/latest_producer_id_block";
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// Hands out producer ids from blocks reserved in the coordinator, so ids are unique across
/// brokers and restarts.
#[derive(Debug, Default)]
pub struct ProducerIds {
    /// Next id to hand out and the end of the reserved block (inclusive).
    block: tokio::sync::Mutex<Option<(i64, i64)>>,
}

impl ProducerIds {
    pub async fn next(&self, client: &zk::Client, broker_id: i32) -> Result<i64, ClusterError> {
        let mut block = self.block.lock().await;
        if let Some((next, end)) = *block {
            if next <= end {
                *block = Some((next + 1, end));
                return Ok(next);
            }
        }
        let (start, end) = reserve_block(client, broker_id).await?;
        *block = Some((start + 1, end));
        Ok(start)
    }
}

async fn reserve_block(client: &zk::Client, broker_id: i32) -> Result<(i64, i64), ClusterError> {
    loop {
        let (start, version) = match client.get_data(PRODUCER_ID_BLOCK).await {
            // Created empty with the rest of Kafka's layout: no block taken yet.
            Ok((data, stat)) if data.is_empty() => (0, Some(stat.version)),
            Ok((data, stat)) => {
                let last: ProducerIdBlock =
                    serde_json::from_slice(&data).map_err(|e| ClusterError::Malformed {
                        path: PRODUCER_ID_BLOCK.to_string(),
                        reason: e.to_string(),
                    })?;
                let end: i64 = last
                    .block_end
                    .parse()
                    .map_err(|_| ClusterError::Malformed {
                        path: PRODUCER_ID_BLOCK.to_string(),
                        reason: format!("block_end {:?} is not a number", last.block_end),
                    })?;
                (end + 1, Some(stat.version))
            }
            Err(zk::Error::NoNode) => (0, None),
            Err(e) => return Err(e.into()),
        };
        let end = start + PRODUCER_ID_BLOCK_SIZE - 1;
        let data = serde_json::to_vec(&ProducerIdBlock {
            version: 1,
            broker: broker_id,
            block_start: start.to_string(),
            block_end: end.to_string(),
        })
        .expect("json");
        let written = match version {
            Some(v) => client
                .set_data(PRODUCER_ID_BLOCK, &data, Some(v))
                .await
                .map(|_| ()),
            None => client
                .create(PRODUCER_ID_BLOCK, &data, &persistent())
                .await
                .map(|_| ()),
        };
        match written {
            Ok(()) => {
                tracing::info!(start, end, "reserved a block of producer ids");
                return Ok((start, end));
            }
            // Another broker took the block first: read again.
            Err(zk::Error::BadVersion) | Err(zk::Error::NodeExists) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, seq: i32, count: i32, offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset: offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: count,
        }
    }

    #[test]
    fn a_retried_batch_is_a_duplicate_with_its_original_offsets() {
        let mut s = ProducerStates::default();
        s.record(&batch(7, 0, 0, 10, 100), 0);
        s.record(&batch(7, 0, 10, 5, 110), 0);
        assert_eq!(
            s.check(&[batch(7, 0, 0, 10, 0)]),
            Ok(Verdict::Duplicate {
                first_offset: 100,
                last_offset: 109
            })
        );
        assert_eq!(s.check(&[batch(7, 0, 15, 1, 0)]), Ok(Verdict::Append));
    }

    #[test]
    fn gaps_and_stale_epochs_are_refused() {
        let mut s = ProducerStates::default();
        s.record(&batch(7, 3, 0, 10, 0), 0);
        assert!(matches!(
            s.check(&[batch(7, 3, 11, 1, 0)]),
            Err(SequenceError::OutOfOrder {
                last: 9,
                got: 11,
                ..
            })
        ));
        assert!(matches!(
            s.check(&[batch(7, 2, 10, 1, 0)]),
            Err(SequenceError::StaleEpoch { current: 3, .. })
        ));
        assert!(matches!(
            s.check(&[batch(7, 4, 5, 1, 0)]),
            Err(SequenceError::NewEpochNotAtZero { got: 5, .. })
        ));
        assert_eq!(s.check(&[batch(7, 4, 0, 1, 0)]), Ok(Verdict::Append));
    }

    #[test]
    fn unknown_producers_and_plain_batches_are_accepted() {
        let s = ProducerStates::default();
        assert_eq!(s.check(&[batch(9, 0, 42, 1, 0)]), Ok(Verdict::Append));
        assert_eq!(s.check(&[batch(-1, -1, -1, 3, 0)]), Ok(Verdict::Append));
    }

    #[test]
    fn only_the_last_five_batches_are_remembered_and_sequences_wrap() {
        let mut s = ProducerStates::default();
        for i in 0..6 {
            s.record(&batch(1, 0, i, 1, i64::from(i)), 0);
        }
        // Sequence 0 fell out of the window: it is now out of order, not a duplicate.
        assert!(matches!(
            s.check(&[batch(1, 0, 0, 1, 0)]),
            Err(SequenceError::OutOfOrder { .. })
        ));
        let mut w = ProducerStates::default();
        w.record(&batch(1, 0, i32::MAX, 1, 0), 0);
        assert_eq!(w.check(&[batch(1, 0, 0, 1, 0)]), Ok(Verdict::Append));
    }

    #[test]
    fn several_batches_of_one_payload_must_follow_each_other() {
        let s = ProducerStates::default();
        assert_eq!(
            s.check(&[batch(3, 0, 0, 2, 0), batch(3, 0, 2, 2, 0)]),
            Ok(Verdict::Append)
        );
        assert!(s
            .check(&[batch(3, 0, 0, 2, 0), batch(3, 0, 5, 2, 0)])
            .is_err());
    }

    #[test]
    fn idle_producers_expire() {
        let mut s = ProducerStates::default();
        s.record(&batch(1, 0, 0, 1, 0), 1_000);
        s.record(&batch(2, 0, 0, 1, 1), 50_000);
        s.expire(60_000, 20_000);
        assert_eq!(s.len(), 1);
        assert_eq!(s.check(&[batch(1, 0, 7, 1, 0)]), Ok(Verdict::Append));
    }
}
