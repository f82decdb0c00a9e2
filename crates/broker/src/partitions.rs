//! The partitions this broker holds: one `sluice_log::Log` each, opened from `log.dirs` at start
//! (recovering after a crash) and created or removed as the metadata says.
//!
//! ```text
//!  metadata change ─► reconcile: open logs for partitions assigned here, drop deleted topics
//!  Produce ─► Partition::append (leader only) ─► HW = LEO (one replica) ─► wake waiting fetches
//!  Fetch   ─► Partition::read up to the HW ─► long-poll on `appended` until min_bytes or timeout
//!  timer   ─► retention and time-based flushes
//! ```
//!
//! Replication is not here yet: the leader's high watermark follows its own log end, so
//! `acks=all` is answered once the leader has the data. Partition state (leader, epoch, ISR)
//! comes from the coordinator and is kept per partition for the replication work to build on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use sluice_config::BrokerConfig;
use sluice_log::{FetchSlice, LogConfig, LogError, LogManager, SharedLog, TopicPartition};
use tokio::sync::watch;

use crate::cluster::Metadata;
use crate::producers::{ProducerStates, SequenceError, Verdict, REBUILD_WINDOW};

/// What a produce append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: u64,
    pub log_start_offset: u64,
    /// A retried idempotent batch already in the log: nothing was written.
    pub duplicate: bool,
}

/// Why a produce append was refused.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Sequence(#[from] SequenceError),
}

impl AppendError {
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            AppendError::Log(e) => e.kafka_error_code(),
            AppendError::Sequence(e) => e.kafka_error_code(),
        }
    }
}

/// One partition's log and live state.
#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub index: i32,
    log: SharedLog,
    /// Log end offset after every append; fetches wait on it.
    appended: watch::Sender<u64>,
    pub leader_epoch: AtomicI32,
    /// Idempotent producers' sequences; locked before the log on the append path.
    producers: Mutex<ProducerStates>,
}

impl Partition {
    fn new(tp: &TopicPartition, log: SharedLog) -> Partition {
        let (leo, epoch) = {
            let l = log.read().unwrap_or_else(|e| e.into_inner());
            (l.log_end_offset(), l.latest_epoch().unwrap_or(0))
        };
        let (appended, _) = watch::channel(leo);
        Partition {
            topic: tp.topic.clone(),
            index: tp.partition,
            log,
            appended,
            leader_epoch: AtomicI32::new(epoch),
            producers: Mutex::new(ProducerStates::default()),
        }
    }

    /// Appends a produce payload as leader; the high watermark follows (single replica). A
    /// retried idempotent batch that is already in the log is acknowledged with its original
    /// offsets and not written again.
    pub fn append(&self, payload: &[u8]) -> Result<Appended, AppendError> {
        let epoch = self.leader_epoch.load(Ordering::Relaxed);
        // Framing and CRC-32C are checked before any lock: appends from several connections
        // overlap their checks and serialise only the write.
        let config = self
            .log
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .config()
            .clone();
        let checked = sluice_log::CheckedPayload::check(payload, &config)?;
        let idempotent = checked
            .headers()
            .any(|h| h.producer_id >= 0 && h.base_sequence >= 0);
        let mut producers = self.producers.lock().unwrap_or_else(|e| e.into_inner());
        if idempotent {
            if !producers.is_loaded() {
                self.rebuild_producers(&mut producers)?;
            }
            let headers: Vec<sluice_log::batch::BatchHeader> = checked.headers().copied().collect();
            if let Verdict::Duplicate { first_offset, .. } = producers.check(&headers)? {
                let log_start_offset = self.offsets().log_start;
                return Ok(Appended {
                    base_offset: first_offset,
                    log_start_offset,
                    duplicate: true,
                });
            }
        }
        let mut log = self.log.write().unwrap_or_else(|e| e.into_inner());
        let info = log.append_checked(checked, epoch)?;
        let leo = log.log_end_offset();
        log.set_high_watermark(leo);
        drop(log);
        if producers.is_loaded() {
            let now = sluice_log::now_ms();
            for h in &info.batches {
                producers.record(h, now);
            }
        }
        drop(producers);
        self.appended.send_replace(leo);
        Ok(Appended {
            base_offset: info.base_offset,
            log_start_offset: info.log_start_offset,
            duplicate: false,
        })
    }

    /// Reads the producer state back from the batch headers at the tail of the log.
    fn rebuild_producers(&self, producers: &mut ProducerStates) -> Result<(), LogError> {
        let log = self.log.read().unwrap_or_else(|e| e.into_inner());
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

    pub fn read(
        &self,
        from: u64,
        max_bytes: u64,
        up_to_hw: bool,
    ) -> Result<(FetchSlice, Offsets), LogError> {
        let log = self.log.read().unwrap_or_else(|e| e.into_inner());
        let offsets = Offsets::of(&log);
        let limit = up_to_hw.then_some(offsets.high_watermark);
        let slice = log.read(from, max_bytes, limit)?;
        Ok((slice, offsets))
    }

    pub fn offsets(&self) -> Offsets {
        Offsets::of(&self.log.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn offset_for_timestamp(
        &self,
        ts: i64,
    ) -> Result<Option<sluice_log::TimestampOffset>, LogError> {
        self.log
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .offset_for_timestamp(ts)
    }

    /// OffsetForLeaderEpoch: (largest epoch <= `epoch`, its end offset).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, u64)> {
        self.log
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .end_offset_for_epoch(epoch)
    }

    pub fn delete_records_before(&self, offset: u64) -> Result<u64, LogError> {
        self.log
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .delete_records_before(offset)
    }

    /// Applies changed topic settings (a no-op when they are unchanged).
    pub fn set_log_config(&self, config: &LogConfig) {
        if self.log.read().unwrap_or_else(|e| e.into_inner()).config() == config {
            return;
        }
        self.log
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .set_config(config.clone());
        tracing::info!(topic = %self.topic, partition = self.index, ?config, "topic settings applied");
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }
}

/// A partition's offsets at one moment.
#[derive(Debug, Clone, Copy)]
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

/// Every partition held by this broker.
#[derive(Debug)]
pub struct PartitionManager {
    config: BrokerConfig,
    broker_id: i32,
    logs: Mutex<Option<LogManager>>,
    partitions: RwLock<HashMap<(String, i32), Arc<Partition>>>,
}

impl PartitionManager {
    /// Opens every partition directory under `log.dirs`, recovering logs that were not closed
    /// cleanly with `num.recovery.threads.per.data.dir` threads per directory.
    pub fn open(config: &BrokerConfig, broker_id: i32) -> Result<PartitionManager, LogError> {
        let log_config = log_config(config);
        let logs = LogManager::open(
            &config.log_dirs,
            config.num_recovery_threads_per_data_dir as usize,
            |_| log_config.clone(),
        )?;
        let mut partitions = HashMap::new();
        for (tp, log) in logs.logs() {
            {
                // Everything on disk at start-up is committed as far as this replica knows.
                let mut l = log.write().unwrap_or_else(|e| e.into_inner());
                let leo = l.log_end_offset();
                l.set_high_watermark(leo);
            }
            partitions.insert(
                (tp.topic.clone(), tp.partition),
                Arc::new(Partition::new(&tp, log)),
            );
        }
        if !partitions.is_empty() {
            tracing::info!(count = partitions.len(), "opened partition logs");
        }
        Ok(PartitionManager {
            config: config.clone(),
            broker_id,
            logs: Mutex::new(Some(logs)),
            partitions: RwLock::new(partitions),
        })
    }

    fn with_logs<T>(&self, f: impl FnOnce(&LogManager) -> T) -> Option<T> {
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(f)
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    /// Opens logs for partitions assigned to this broker, records leader epochs, and removes
    /// partitions whose topic is gone.
    pub fn reconcile(&self, m: &Metadata) {
        for (topic, t) in &m.topics {
            for (&p, meta) in &t.partitions {
                if !meta.replicas.contains(&self.broker_id) {
                    continue;
                }
                let lc = crate::topic_config::log_config(&self.config, &t.config);
                let part = match self.get(topic, p) {
                    Some(part) => {
                        part.set_log_config(&lc);
                        part
                    }
                    None => match self.create(topic, p, lc) {
                        Ok(part) => part,
                        Err(e) => {
                            tracing::error!(topic, partition = p, error = %e, "cannot create the partition log");
                            continue;
                        }
                    },
                };
                part.leader_epoch.store(
                    meta.state.as_ref().map_or(0, |s| s.leader_epoch),
                    Ordering::Relaxed,
                );
            }
        }
        let gone: Vec<(String, i32)> = self
            .partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .filter(|(t, p)| {
                !m.topics
                    .get(t)
                    .is_some_and(|tm| tm.partitions.contains_key(p))
            })
            .cloned()
            .collect();
        for (topic, p) in gone {
            self.remove(&topic, p);
        }
    }

    fn create(
        &self,
        topic: &str,
        partition: i32,
        config: LogConfig,
    ) -> Result<Arc<Partition>, LogError> {
        let tp = TopicPartition::new(topic, partition);
        let log = self
            .with_logs(|l| l.get_or_create(&tp, config))
            .unwrap_or_else(|| Err(LogError::Offline(std::path::PathBuf::from("(shut down)"))))?;
        let mut map = self.partitions.write().unwrap_or_else(|e| e.into_inner());
        let part = map
            .entry((topic.to_string(), partition))
            .or_insert_with(|| Arc::new(Partition::new(&tp, log)))
            .clone();
        tracing::info!(topic, partition, "partition log ready");
        Ok(part)
    }

    fn remove(&self, topic: &str, partition: i32) {
        let part = self
            .partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(topic.to_string(), partition));
        if part.is_none() {
            return;
        }
        drop(part);
        let tp = TopicPartition::new(topic, partition);
        match self.with_logs(|l| l.delete(&tp)) {
            Some(Err(e)) => {
                tracing::warn!(topic, partition, error = %e, "cannot delete the partition log")
            }
            Some(Ok(())) => tracing::info!(topic, partition, "deleted partition log"),
            None => {}
        }
    }

    /// Retention and time-based flushes over every partition, and the offset checkpoints.
    pub fn housekeeping(&self, retention_due: bool) {
        let now = sluice_log::now_ms();
        let parts: Vec<Arc<Partition>> = self
            .partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for p in parts {
            p.expire_producers(now);
        }
        self.with_logs(|logs| {
            if let Err(e) = logs.flush_due(now) {
                tracing::error!(error = %e, "flush failed");
            }
            if retention_due {
                for (tp, r) in logs.enforce_retention(now) {
                    match r {
                        Ok(o) if o.deleted_segments > 0 => tracing::info!(
                            topic = %tp.topic, partition = tp.partition, segments = o.deleted_segments,
                            bytes = o.deleted_bytes, log_start_offset = o.log_start_offset, "retention deleted segments"
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::error!(topic = %tp.topic, partition = tp.partition, error = %e, "retention failed"),
                    }
                }
            }
            if let Err(e) = logs.checkpoint() {
                tracing::error!(error = %e, "writing checkpoints failed");
            }
        });
    }

    /// Flushes and closes every log cleanly (the next start skips recovery).
    pub fn close_all(&self) {
        self.partitions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(logs) = logs {
            if let Err(e) = logs.shutdown() {
                tracing::error!(error = %e, "closing the logs failed");
            }
        }
    }

    /// Runs retention every `log.retention.check.interval.ms` and flush checks every second.
    pub async fn run_housekeeping(self: Arc<Self>) {
        let retention_every =
            Duration::from_millis(self.config.log_retention_check_interval_ms.max(100) as u64);
        let mut last_retention = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(
            1000.min(retention_every.as_millis() as u64).max(50),
        ));
        loop {
            tick.tick().await;
            let due = last_retention.elapsed() >= retention_every;
            if due {
                last_retention = tokio::time::Instant::now();
            }
            let me = self.clone();
            let _ = tokio::task::spawn_blocking(move || me.housekeeping(due)).await;
        }
    }
}

/// The log settings `server.properties` asks for.
pub fn log_config(c: &BrokerConfig) -> LogConfig {
    LogConfig {
        segment_bytes: c.log_segment_bytes as u64,
        segment_ms: c.log_roll_ms.max(1) as u64,
        max_batch_bytes: c.message_max_bytes.max(0) as u64,
        retention_ms: c.log_retention_ms.map(|v| v as u64),
        retention_bytes: c.log_retention_bytes.map(|v| v as u64),
        flush_interval_messages: c.log_flush_interval_messages.map(|v| v as u64),
        flush_interval_ms: c.log_flush_interval_ms.map(|v| v as u64),
        ..LogConfig::default()
    }
}
