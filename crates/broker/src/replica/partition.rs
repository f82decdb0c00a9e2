//! One partition on this broker: its log, its role (leader, follower or neither) and, as
//! leader, what each follower has replicated, the ISR and the high watermark.
//!
//! ```text
//!               become_leader(state) / become_follower(leader, epoch)   (the reconciler only)
//!                                 │ role write lock
//!                                 ▼
//!   Produce ─► append_as_leader ──┤ role read lock held across the append: the role cannot
//!   groups  ─► (acks=all: await    │ change between "am I the leader" and the write
//!               hw ≥ offset)       │
//!   Fetch (consumer) ─► read ──────┤ up to the high watermark
//!   Fetch (replica)  ─► read + record_follower_fetch ─► follower progress ─► HW may move
//!   fetcher          ─► append_as_follower / truncate (follower role only)
//! ```
//!
//! Lock order: `role` → `producers` → the log. The high watermark is the smallest log end of
//! the ISR (the leader included), never moves back, and is published on a watch channel that
//! waiting consumers and `acks=all` producers follow. A follower only counts towards it once
//! the ISR write that added it succeeded (its id is then in `Leadership::isr`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use sluice_log::batch::BatchHeader;
use sluice_log::{FetchSlice, LogConfig, LogError, SharedLog, TopicPartition};
use tokio::sync::watch;

use crate::metrics::counters::PartitionCounters;
use crate::producers::{ProducerStates, SequenceError, Verdict, REBUILD_WINDOW};

/// The partition state the controller (and the leader, for ISR changes) writes in
/// `/brokers/topics/<t>/partitions/<p>/state`, with the znode version it was read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderAndIsr {
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    pub replicas: Vec<i32>,
    /// Version of the state znode; the leader's ISR writes compare-and-set on it.
    pub zk_version: i32,
}

/// What this broker does for the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Assigned here, but there is no leader (offline) or no state yet.
    None,
    Leader(Leadership),
    Follower {
        leader: i32,
        epoch: i32,
    },
}

impl Role {
    pub fn epoch(&self) -> Option<i32> {
        match self {
            Role::None => None,
            Role::Leader(l) => Some(l.epoch),
            Role::Follower { epoch, .. } => Some(*epoch),
        }
    }
}

/// The leader's view of the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    pub epoch: i32,
    /// The ISR as last written to the coordinator (only these count for the HW).
    pub isr: Vec<i32>,
    pub replicas: Vec<i32>,
    pub zk_version: i32,
    /// The log end offset when this epoch began.
    pub epoch_start: u64,
    pub followers: BTreeMap<i32, Progress>,
}

impl Leadership {
    /// The ISR becomes `next`: a member that leaves it must fetch again before it may rejoin.
    /// Its last known progress is stale (a dead broker's stays caught up while nothing is
    /// written), and rejoining on it would put a broker that is gone back into the ISR at the
    /// next check, to be taken out again, over and over.
    fn left_isr(&mut self, next: &[i32]) {
        for r in self.isr.iter().filter(|r| !next.contains(r)) {
            if let Some(p) = self.followers.get_mut(r) {
                p.last_fetch_ms = 0;
            }
        }
    }
}

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// The follower's log end offset (the offset it last fetched from).
    pub log_end: u64,
    /// When the follower last had everything the leader had (Kafka's lastCaughtUpTimeMs).
    pub last_caught_up_ms: u64,
    last_fetch_ms: u64,
    /// The leader's log end offset when the follower last fetched.
    last_fetch_leader_end: u64,
}

/// Why a partition refused a request.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("this broker is not the leader (leader {leader:?}, epoch {epoch:?})")]
    NotLeader {
        leader: Option<i32>,
        epoch: Option<i32>,
    },
    #[error("this broker is not a follower of the partition")]
    NotFollower,
    #[error("the request's leader epoch {requested} is older than the current {current}")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    #[error("the request's leader epoch {requested} is newer than this broker knows ({current})")]
    UnknownLeaderEpoch { requested: i32, current: i32 },
    #[error("{isr} in-sync replicas, {min} required (min.insync.replicas)")]
    NotEnoughReplicas { isr: usize, min: usize },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Sequence(#[from] SequenceError),
}

/// What a leader append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: u64,
    pub last_offset: u64,
    pub log_start_offset: u64,
    /// A retried idempotent batch already in the log: nothing was written.
    pub duplicate: bool,
    /// The leader epoch the append happened in.
    pub epoch: i32,
    /// The time the batches were stamped with, on a LogAppendTime topic.
    pub log_append_time: Option<i64>,
}

/// A partition's offsets at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    pub log_start: u64,
    pub log_end: u64,
    pub high_watermark: u64,
}

impl Offsets {
    fn of(log: &sluice_log::Log) -> Offsets {
        Offsets {
            log_start: log.log_start_offset(),
            log_end: log.log_end_offset(),
            high_watermark: log.high_watermark(),
        }
    }
}

/// What changes a waiter cares about: the high watermark, the log end and the role generation
/// (bumped on every role change, so a waiting `acks=all` produce learns its leadership ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progressed {
    pub high_watermark: u64,
    pub log_end: u64,
    pub generation: u64,
}

/// One partition's log and live state.
#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub index: i32,
    log: SharedLog,
    role: RwLock<Role>,
    watch: watch::Sender<Progressed>,
    /// Idempotent producers' sequences; locked before the log on the append path.
    producers: Mutex<ProducerStates>,
    /// Its topic's metrics counters and the broker's (atomic adds, no lock).
    counters: PartitionCounters,
}

/// What the metrics read of a partition, in one visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionView {
    pub offsets: Offsets,
    pub size_bytes: u64,
    pub segments: usize,
    /// As leader: the partition's replicas and ISR.
    pub leading: Option<LeaderView>,
}

/// A leader's replica set as the metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderView {
    pub replicas: usize,
    pub isr: usize,
    /// This broker is the preferred (first) replica.
    pub preferred: bool,
}

impl Partition {
    pub fn new(tp: &TopicPartition, log: SharedLog, counters: PartitionCounters) -> Partition {
        let o = Offsets::of(&log.read().unwrap_or_else(|e| e.into_inner()));
        let (watch, _) = watch::channel(Progressed {
            high_watermark: o.high_watermark,
            log_end: o.log_end,
            generation: 0,
        });
        Partition {
            topic: tp.topic.clone(),
            index: tp.partition,
            log,
            role: RwLock::new(Role::None),
            watch,
            producers: Mutex::new(ProducerStates::default()),
            counters,
        }
    }

    /// The metrics counters its requests bump.
    pub fn counters(&self) -> &PartitionCounters {
        &self.counters
    }

    /// Offsets, size and, as leader, the replica set, for a scrape (the role's and the log's
    /// read locks, briefly; nothing is read from disk).
    pub fn view(&self, broker_id: i32) -> PartitionView {
        let leading = match &*self.read_role() {
            Role::Leader(l) => Some(LeaderView {
                replicas: l.replicas.len(),
                isr: l.isr.len(),
                preferred: l.replicas.first() == Some(&broker_id),
            }),
            _ => None,
        };
        let log = self.log_read();
        PartitionView {
            offsets: Offsets::of(&log),
            size_bytes: log.size_bytes(),
            segments: log.segment_count(),
            leading,
        }
    }

    fn read_role(&self) -> std::sync::RwLockReadGuard<'_, Role> {
        self.role.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_role(&self) -> std::sync::RwLockWriteGuard<'_, Role> {
        self.role.write().unwrap_or_else(|e| e.into_inner())
    }

    fn log_read(&self) -> std::sync::RwLockReadGuard<'_, sluice_log::Log> {
        self.log.read().unwrap_or_else(|e| e.into_inner())
    }

    fn log_write(&self) -> std::sync::RwLockWriteGuard<'_, sluice_log::Log> {
        self.log.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.read_role().clone()
    }

    /// The leader epoch if this broker leads the partition.
    pub fn leader_epoch(&self) -> Option<i32> {
        match &*self.read_role() {
            Role::Leader(l) => Some(l.epoch),
            _ => None,
        }
    }

    /// As leader: the log end offset when its leadership began. Everything below it was
    /// written by earlier leaders; it is all committed once the high watermark reaches it.
    pub fn leader_epoch_start(&self) -> Option<u64> {
        match &*self.read_role() {
            Role::Leader(l) => Some(l.epoch_start),
            _ => None,
        }
    }

    /// As follower: the leader followed and its epoch.
    pub fn followed_leader(&self) -> Option<(i32, i32)> {
        match &*self.read_role() {
            Role::Follower { leader, epoch } => Some((*leader, *epoch)),
            _ => None,
        }
    }

    /// Follows changes of the high watermark, the log end and the role.
    pub fn subscribe(&self) -> watch::Receiver<Progressed> {
        self.watch.subscribe()
    }

    fn publish(&self, bump_generation: bool) {
        let o = Offsets::of(&self.log_read());
        self.watch.send_if_modified(|p| {
            let next = Progressed {
                high_watermark: o.high_watermark,
                log_end: o.log_end,
                generation: p.generation + u64::from(bump_generation),
            };
            let changed = next != *p;
            *p = next;
            changed
        });
    }

    /// Becomes (or stays) the leader in `state.leader_epoch`. A state older than the one held
    /// is ignored (the reconciler may read an old version after a newer one was applied).
    /// Returns whether the role changed.
    pub fn become_leader(&self, state: &LeaderAndIsr, broker_id: i32) -> Result<bool, LogError> {
        let mut role = self.write_role();
        if let Some(current) = role.epoch() {
            if state.leader_epoch < current {
                return Ok(false);
            }
        }
        if let Role::Leader(l) = &mut *role {
            if l.epoch == state.leader_epoch {
                // The same leadership: take the ISR and version the coordinator holds now (an
                // ISR change written by this leader or a dead replica removed by the
                // controller).
                let newer = state.zk_version > l.zk_version;
                if newer {
                    // The controller took a dead replica out, or this leader's own write is
                    // seen before its answer came (`isr_written` then finds the version moved
                    // on and counts nothing): counted once either way.
                    if l.isr != state.isr {
                        self.counters.isr_changed(&l.isr, &state.isr);
                        l.left_isr(&state.isr);
                    }
                    l.isr = state.isr.clone();
                    l.zk_version = state.zk_version;
                }
                // The assignment can change without the state (a reassignment adds or drops
                // replicas): followers come and go with it.
                if l.replicas != state.replicas {
                    l.replicas = state.replicas.clone();
                    let now = sluice_log::now_ms();
                    l.followers.retain(|r, _| state.replicas.contains(r));
                    for r in &state.replicas {
                        if *r != broker_id {
                            l.followers.entry(*r).or_insert(Progress {
                                last_caught_up_ms: now,
                                ..Progress::default()
                            });
                        }
                    }
                }
                drop(role);
                if newer {
                    self.maybe_advance_hw(broker_id);
                }
                return Ok(false);
            }
        }
        let epoch_start = {
            let mut log = self.log_write();
            log.begin_epoch(state.leader_epoch)?;
            log.log_end_offset()
        };
        let now = sluice_log::now_ms();
        let followers = state
            .replicas
            .iter()
            .filter(|r| **r != broker_id)
            .map(|r| {
                (
                    *r,
                    Progress {
                        // Unknown until it fetches; an ISR member was caught up as of now.
                        last_caught_up_ms: now,
                        ..Progress::default()
                    },
                )
            })
            .collect();
        *role = Role::Leader(Leadership {
            epoch: state.leader_epoch,
            isr: state.isr.clone(),
            replicas: state.replicas.clone(),
            zk_version: state.zk_version,
            epoch_start,
            followers,
        });
        drop(role);
        // Followers' log ends are unknown until they fetch: the high watermark stays where it
        // is until then (unless this broker is the whole ISR).
        self.maybe_advance_hw(broker_id);
        self.publish(true);
        tracing::info!(topic = %self.topic, partition = self.index, epoch = state.leader_epoch, isr = ?state.isr, "leading");
        Ok(true)
    }

    /// Becomes (or stays) a follower of `leader` in `epoch`. Returns whether the role changed.
    pub fn become_follower(&self, leader: i32, epoch: i32) -> bool {
        let mut role = self.write_role();
        if let Some(current) = role.epoch() {
            if epoch < current {
                return false;
            }
        }
        let next = Role::Follower { leader, epoch };
        if *role == next {
            return false;
        }
        *role = next;
        drop(role);
        self.publish(true);
        tracing::info!(topic = %self.topic, partition = self.index, leader, epoch, "following");
        true
    }

    /// No leader (offline) or no state yet.
    pub fn become_none(&self) -> bool {
        let mut role = self.write_role();
        if *role == Role::None {
            return false;
        }
        *role = Role::None;
        drop(role);
        self.publish(true);
        true
    }

    /// Checks a client's `current_leader_epoch` (-1: not given) against the leader's.
    fn check_epoch(&self, role: &Role, requested: i32) -> Result<(), PartitionError> {
        let Some(current) = role.epoch() else {
            return Ok(());
        };
        if requested < 0 || requested == current {
            Ok(())
        } else if requested < current {
            Err(PartitionError::FencedLeaderEpoch { requested, current })
        } else {
            Err(PartitionError::UnknownLeaderEpoch { requested, current })
        }
    }

    fn not_leader(role: &Role) -> PartitionError {
        match role {
            Role::Follower { leader, epoch } => PartitionError::NotLeader {
                leader: Some(*leader),
                epoch: Some(*epoch),
            },
            _ => PartitionError::NotLeader {
                leader: None,
                epoch: None,
            },
        }
    }

    /// Appends a producer's payload as leader. `min_isr` is checked for `acks=all` before the
    /// append (NOT_ENOUGH_REPLICAS). A retried idempotent batch that is already in the log is
    /// acknowledged with its original offsets and not written again.
    pub fn append_as_leader(
        &self,
        payload: &[u8],
        min_isr: Option<usize>,
        broker_id: i32,
    ) -> Result<Appended, PartitionError> {
        // Framing and CRC-32C are checked before any lock: appends from several connections
        // overlap their checks and serialise only the write.
        let config = self.log_read().config().clone();
        let checked = sluice_log::CheckedPayload::check(payload, &config)?;
        // A topic with a `compression.type` codec stores batches re-encoded in it.
        let recoded: Vec<u8>;
        let checked = match checked.recoded(&config)? {
            Some(bytes) => {
                recoded = bytes;
                sluice_log::CheckedPayload::check(&recoded, &config)?
            }
            None => checked,
        };
        let role = self.read_role();
        let Role::Leader(l) = &*role else {
            return Err(Self::not_leader(&role));
        };
        if let Some(min) = min_isr {
            if l.isr.len() < min {
                return Err(PartitionError::NotEnoughReplicas {
                    isr: l.isr.len(),
                    min,
                });
            }
        }
        let epoch = l.epoch;
        let idempotent = checked
            .headers()
            .any(|h| h.producer_id >= 0 && h.base_sequence >= 0);
        let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        if idempotent {
            if !producers.is_loaded() {
                self.rebuild_producers(&mut producers)?;
            }
            let headers: Vec<BatchHeader> = checked.headers().copied().collect();
            if let Verdict::Duplicate {
                first_offset,
                last_offset,
            } = producers.check(&headers)?
            {
                let log_start_offset = self.log_read().log_start_offset();
                return Ok(Appended {
                    base_offset: first_offset,
                    last_offset,
                    log_start_offset,
                    duplicate: true,
                    log_append_time: None,
                    epoch,
                });
            }
        }
        let info = self.log_write().append_checked(checked, epoch)?;
        if producers.is_loaded() {
            let now = sluice_log::now_ms();
            for h in &info.batches {
                producers.record(h, now);
            }
        }
        drop(producers);
        drop(role);
        self.maybe_advance_hw(broker_id);
        self.publish(false);
        Ok(Appended {
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            log_start_offset: info.log_start_offset,
            duplicate: false,
            log_append_time: info.log_append_time,
            epoch,
        })
    }

    /// Appends batches fetched from the leader (offsets and epochs kept) as follower, takes
    /// the leader's high watermark (bounded by this log's end) and its log start offset
    /// (records deleted on the leader, by DeleteRecords, go here too; bounded by the HW).
    pub fn append_as_follower(
        &self,
        payload: &[u8],
        leader_hw: u64,
        leader_log_start: u64,
    ) -> Result<Option<u64>, PartitionError> {
        let role = self.read_role();
        if !matches!(&*role, Role::Follower { .. }) {
            return Err(PartitionError::NotFollower);
        }
        let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        let mut log = self.log_write();
        let appended = if payload.is_empty() {
            None
        } else {
            let info = log.append_as_follower(payload)?;
            if producers.is_loaded() {
                let now = sluice_log::now_ms();
                for h in &info.batches {
                    producers.record(h, now);
                }
            }
            Some(info.last_offset)
        };
        let hw = leader_hw.min(log.log_end_offset());
        if hw > log.high_watermark() {
            log.set_high_watermark(hw);
        }
        if leader_log_start > log.log_start_offset() && leader_log_start <= log.high_watermark() {
            log.delete_records_before(leader_log_start)?;
        }
        drop(log);
        drop(producers);
        drop(role);
        self.publish(false);
        Ok(appended)
    }

    /// Follower truncation (to a diverging epoch's end, or to what the leader has). The
    /// producer state is rebuilt from the log afterwards.
    pub fn truncate_to(&self, offset: u64) -> Result<u64, PartitionError> {
        let role = self.read_role();
        if !matches!(&*role, Role::Follower { .. }) {
            return Err(PartitionError::NotFollower);
        }
        let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        let end = self.log_write().truncate_to(offset)?;
        *producers = ProducerStates::default();
        drop(producers);
        drop(role);
        self.publish(false);
        Ok(end)
    }

    /// Follower behind the leader's log start: drops everything and starts at `offset`.
    pub fn restart_at(&self, offset: u64) -> Result<(), PartitionError> {
        let role = self.read_role();
        if !matches!(&*role, Role::Follower { .. }) {
            return Err(PartitionError::NotFollower);
        }
        let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        self.log_write().truncate_fully_and_start_at(offset)?;
        *producers = ProducerStates::default();
        drop(producers);
        drop(role);
        self.publish(false);
        Ok(())
    }

    /// Reads the producer state back from the batch headers at the tail of the log.
    fn rebuild_producers(&self, producers: &mut ProducerStates) -> Result<(), LogError> {
        let log = self.log_read();
        let from = log.log_end_offset().saturating_sub(REBUILD_WINDOW);
        let mut headers = Vec::new();
        for b in log.batch_headers(from) {
            headers.push(b?.header);
        }
        drop(log);
        producers.rebuild(&headers, sluice_log::now_ms());
        if !producers.is_empty() {
            tracing::debug!(topic = %self.topic, partition = self.index, producers = producers.len(), "rebuilt idempotent producer state");
        }
        Ok(())
    }

    /// Forgets idle idempotent producers.
    pub fn expire_producers(&self, now_ms: u64) {
        self.producers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expire(now_ms, crate::producers::PRODUCER_EXPIRATION_MS);
    }

    /// A consumer's read as leader: whole batches from `from`, up to the high watermark.
    /// `current_leader_epoch` (-1 if not sent) is checked against the leader's.
    pub fn read(
        &self,
        from: u64,
        max_bytes: u64,
        current_leader_epoch: i32,
    ) -> Result<(FetchSlice, Offsets), PartitionError> {
        let role = self.read_role();
        if !matches!(&*role, Role::Leader(_)) {
            return Err(Self::not_leader(&role));
        }
        self.check_epoch(&role, current_leader_epoch)?;
        let log = self.log_read();
        let offsets = Offsets::of(&log);
        let slice = log.read(from, max_bytes, Some(offsets.high_watermark))?;
        Ok((slice, offsets))
    }

    /// A follower's fetch as leader: the batches from `fetch_offset` to the log end, and, on
    /// the request's first read (`first`), the follower's progress recorded (it has everything
    /// before `fetch_offset`; the high watermark may move). A long poll's later reads record
    /// nothing: the follower may have died while its request waited, and counting its old
    /// request as a new fetch would put a dead broker back into the ISR. `last_fetched_epoch`
    /// (-1: not sent) is checked against this log's epochs: a follower whose last epoch ends
    /// earlier here is told where to truncate (the diverging epoch and its end offset) instead
    /// of getting data.
    #[allow(clippy::too_many_arguments)]
    pub fn read_for_follower(
        &self,
        replica: i32,
        fetch_offset: u64,
        max_bytes: u64,
        current_leader_epoch: i32,
        last_fetched_epoch: i32,
        broker_id: i32,
        first: bool,
    ) -> Result<FollowerRead, PartitionError> {
        let role = self.read_role();
        let Role::Leader(l) = &*role else {
            return Err(Self::not_leader(&role));
        };
        self.check_epoch(&role, current_leader_epoch)?;
        let epoch = l.epoch;
        drop(role);
        if last_fetched_epoch >= 0 {
            let log = self.log_read();
            if let Some((e, end)) = log.end_offset_for_epoch(last_fetched_epoch) {
                if e != last_fetched_epoch || end < fetch_offset {
                    let offsets = Offsets::of(&log);
                    return Ok(FollowerRead {
                        slice: None,
                        offsets,
                        diverging: Some((e, end)),
                        epoch,
                    });
                }
            }
        }
        let offsets = {
            let log = self.log_read();
            let o = Offsets::of(&log);
            if fetch_offset < o.log_start || fetch_offset > o.log_end {
                return Err(PartitionError::Log(LogError::OffsetOutOfRange {
                    offset: fetch_offset,
                    log_start_offset: o.log_start,
                    log_end_offset: o.log_end,
                }));
            }
            o
        };
        if first {
            self.record_follower_fetch(replica, fetch_offset, offsets.log_end, broker_id);
        }
        let log = self.log_read();
        let slice = log.read(fetch_offset, max_bytes, None)?;
        let offsets = Offsets::of(&log);
        Ok(FollowerRead {
            slice: Some(slice),
            offsets,
            diverging: None,
            epoch,
        })
    }

    /// Records that `replica` fetched from `fetch_offset` when the leader's log ended at
    /// `leader_end` (Kafka's rule for the last caught-up time), then moves the HW if it can.
    fn record_follower_fetch(&self, replica: i32, fetch_offset: u64, leader_end: u64, me: i32) {
        let now = sluice_log::now_ms();
        {
            let mut role = self.write_role();
            let Role::Leader(l) = &mut *role else { return };
            let Some(p) = l.followers.get_mut(&replica) else {
                return;
            };
            if fetch_offset >= leader_end {
                p.last_caught_up_ms = now;
            } else if fetch_offset >= p.last_fetch_leader_end {
                p.last_caught_up_ms = p.last_caught_up_ms.max(p.last_fetch_ms);
            }
            p.log_end = fetch_offset;
            p.last_fetch_ms = now;
            p.last_fetch_leader_end = leader_end;
        }
        self.maybe_advance_hw(me);
    }

    /// Moves the high watermark to the smallest log end in the ISR, if that is higher. Only
    /// log ends of this epoch count: a follower's offset from before it fetched here is
    /// unknown (0).
    fn maybe_advance_hw(&self, me: i32) {
        let role = self.read_role();
        let Role::Leader(l) = &*role else { return };
        let mut log = self.log_write();
        let mut hw = log.log_end_offset();
        for r in &l.isr {
            if *r == me {
                continue;
            }
            hw = hw.min(l.followers.get(r).map_or(0, |p| p.log_end));
        }
        if hw > log.high_watermark() {
            log.set_high_watermark(hw);
            drop(log);
            drop(role);
            self.publish(false);
        }
    }

    /// As leader: the ISR this partition should have now, if it differs from the one written.
    /// A follower joins once it has reached the high watermark (and this epoch's start); an
    /// ISR member leaves once it has not caught up for `lag_max_ms`.
    pub fn desired_isr(&self, me: i32, lag_max_ms: u64) -> Option<(Vec<i32>, i32, i32)> {
        let role = self.read_role();
        let Role::Leader(l) = &*role else {
            return None;
        };
        let now = sluice_log::now_ms();
        let hw = self.log_read().high_watermark();
        let mut isr: Vec<i32> = Vec::new();
        for r in &l.replicas {
            if *r == me {
                isr.push(me);
                continue;
            }
            let Some(p) = l.followers.get(r) else {
                continue;
            };
            let in_isr = l.isr.contains(r);
            let keep = if in_isr {
                now.saturating_sub(p.last_caught_up_ms) <= lag_max_ms
            } else {
                p.log_end >= hw && p.log_end >= l.epoch_start && p.last_fetch_ms > 0
            };
            if keep {
                isr.push(*r);
            }
        }
        let mut current = l.isr.clone();
        current.sort_unstable();
        let mut want = isr.clone();
        want.sort_unstable();
        (current != want).then_some((isr, l.epoch, l.zk_version))
    }

    /// As leader in `epoch`: the ISR write that replaced version `from_version` succeeded with
    /// `new_version`. Ignored if the leadership changed meanwhile.
    pub fn isr_written(
        &self,
        epoch: i32,
        isr: Vec<i32>,
        from_version: i32,
        new_version: i32,
        me: i32,
    ) {
        {
            let mut role = self.write_role();
            let Role::Leader(l) = &mut *role else { return };
            if l.epoch != epoch || l.zk_version != from_version {
                return;
            }
            tracing::info!(topic = %self.topic, partition = self.index, from = ?l.isr, to = ?isr, "ISR changed");
            self.counters.isr_changed(&l.isr, &isr);
            l.left_isr(&isr);
            l.isr = isr;
            l.zk_version = new_version;
        }
        self.maybe_advance_hw(me);
    }

    pub fn offsets(&self) -> Offsets {
        Offsets::of(&self.log_read())
    }

    /// ListOffsets by timestamp (`None` for the max timestamp, KIP-734): the record found and
    /// the log's offsets read under the same lock.
    pub fn offset_for_timestamp(
        &self,
        ts: Option<i64>,
    ) -> Result<(Option<sluice_log::TimestampOffset>, Offsets), LogError> {
        let log = self.log_read();
        let found = match ts {
            Some(ts) => log.offset_for_timestamp(ts)?,
            None => log.offset_of_max_timestamp()?,
        };
        Ok((found, Offsets::of(&log)))
    }

    /// The leader epoch `offset` was written in (the latest epoch starting at or before it;
    /// -1 if none is known): what ListOffsets answers for the log start offset.
    pub fn epoch_at(&self, offset: u64) -> i32 {
        self.log_read()
            .leader_epochs()
            .iter()
            .take_while(|e| e.start_offset <= offset)
            .last()
            .map_or(-1, |e| e.epoch)
    }

    /// OffsetForLeaderEpoch: (largest epoch <= `epoch`, its end offset).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, u64)> {
        self.log_read().end_offset_for_epoch(epoch)
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.log_read().latest_epoch()
    }

    pub fn delete_records_before(&self, offset: u64) -> Result<u64, LogError> {
        self.log_write().delete_records_before(offset)
    }

    /// Applies changed topic settings (a no-op when they are unchanged).
    pub fn set_log_config(&self, config: &LogConfig) {
        if self.log_read().config() == config {
            return;
        }
        self.log_write().set_config(config.clone());
        tracing::info!(topic = %self.topic, partition = self.index, ?config, "topic settings applied");
    }

    /// Waits until the high watermark reaches `offset` while this broker still leads in
    /// `epoch`; `false` if the leadership ended first.
    pub async fn wait_for_hw(&self, offset: u64, epoch: i32) -> bool {
        let mut rx = self.subscribe();
        loop {
            if self.leader_epoch() != Some(epoch) {
                return false;
            }
            if rx.borrow_and_update().high_watermark >= offset {
                return true;
            }
            if rx.changed().await.is_err() {
                return false;
            }
        }
    }

    /// The ISR as this leader holds it (empty when not leading).
    pub fn isr(&self) -> Vec<i32> {
        match &*self.read_role() {
            Role::Leader(l) => l.isr.clone(),
            _ => Vec::new(),
        }
    }
}

/// What a follower's fetch returned.
#[derive(Debug)]
pub struct FollowerRead {
    /// Batches from the fetch offset (`None` when the follower must truncate first).
    pub slice: Option<FetchSlice>,
    pub offsets: Offsets,
    /// The follower's last epoch ends earlier here: `(epoch, end offset)` to truncate to.
    pub diverging: Option<(i32, u64)>,
    pub epoch: i32,
}

/// Shared handle.
pub type PartitionRef = Arc<Partition>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::counters::{read, BrokerCounters};

    fn leader_of_three(dir: &std::path::Path) -> (Partition, Arc<BrokerCounters>) {
        let tp = TopicPartition::new("t", 0);
        let log = sluice_log::Log::open(dir.join("t-0"), LogConfig::default()).unwrap();
        let counters = Arc::new(BrokerCounters::default());
        let p = Partition::new(&tp, Arc::new(RwLock::new(log)), counters.for_partition("t"));
        let state = LeaderAndIsr {
            leader: 1,
            leader_epoch: 0,
            isr: vec![1, 2, 3],
            replicas: vec![1, 2, 3],
            zk_version: 0,
        };
        assert!(p.become_leader(&state, 1).unwrap());
        (p, counters)
    }

    #[test]
    fn a_replica_taken_out_of_the_isr_rejoins_only_after_fetching_again() {
        let dir = tempfile::tempdir().unwrap();
        let (p, counters) = leader_of_three(dir.path());
        for r in [2, 3] {
            p.read_for_follower(r, 0, 1 << 20, 0, -1, 1, true).unwrap();
        }
        assert_eq!(p.desired_isr(1, 30_000), None);
        // The controller takes broker 3 (gone) out, in the same leader epoch.
        let shrunk = LeaderAndIsr {
            leader: 1,
            leader_epoch: 0,
            isr: vec![1, 2],
            replicas: vec![1, 2, 3],
            zk_version: 1,
        };
        assert!(!p.become_leader(&shrunk, 1).unwrap());
        assert_eq!(p.isr(), vec![1, 2]);
        assert_eq!(read(&counters.isr_shrinks), 1);
        // Its last fetch had everything, but it is not put back until it fetches again: a
        // long poll of its own begun before it died, read again, is not a new fetch.
        assert_eq!(p.desired_isr(1, 30_000), None);
        p.read_for_follower(3, 0, 1 << 20, 0, -1, 1, false).unwrap();
        assert_eq!(p.desired_isr(1, 30_000), None);
        p.read_for_follower(3, 0, 1 << 20, 0, -1, 1, true).unwrap();
        assert_eq!(p.desired_isr(1, 30_000), Some((vec![1, 2, 3], 0, 1)));
        p.isr_written(0, vec![1, 2, 3], 1, 2, 1);
        assert_eq!(read(&counters.isr_expands), 1);
        // The same state seen again (the watch after the write) counts nothing more.
        let expanded = LeaderAndIsr {
            isr: vec![1, 2, 3],
            zk_version: 2,
            ..shrunk
        };
        p.become_leader(&expanded, 1).unwrap();
        assert_eq!(
            (read(&counters.isr_shrinks), read(&counters.isr_expands)),
            (1, 1)
        );
    }
}
