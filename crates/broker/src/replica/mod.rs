//! The partitions this broker holds, and the one place that decides what it does for each.
//!
//! ```text
//!  coordinator znodes ─► Cluster metadata ─► ReplicaManager::apply (the reconciler)
//!                                              ├─ opens logs for partitions assigned here,
//!                                              │  deletes those of deleted topics
//!                                              ├─ Partition::become_leader / become_follower
//!                                              └─ bumps `roles` ─► the fetchers (follow leaders)
//!                                                               ─► the group coordinator
//!                                                                  (loads the __consumer_offsets
//!                                                                   partitions it now leads)
//!  isr::run   ─► as leader: ISR shrink / expand written with compare-and-set (decision 0011)
//!  fetcher    ─► as follower: Fetch from the leader, append, truncate (decision 0011)
//!  timer      ─► retention, time-based flushes, checkpoints
//! ```
//!
//! Handlers never decide leadership from cached metadata: they ask the partition, whose role
//! only the reconciler changes, under a lock that appends and reads also take.

pub mod fetcher;
pub mod isr;
pub mod partition;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use sluice_config::BrokerConfig;
use sluice_log::{LogConfig, LogError, LogManager, TopicPartition};
use tokio::sync::watch;

use crate::cluster::Metadata;
use crate::metrics::counters::BrokerCounters;
pub use partition::{
    Appended, LeaderAndIsr, LeaderView, Offsets, Partition, PartitionError, PartitionView,
    Progressed, Role,
};

/// Every partition held by this broker.
#[derive(Debug)]
pub struct ReplicaManager {
    config: BrokerConfig,
    pub broker_id: i32,
    logs: Mutex<Option<LogManager>>,
    partitions: RwLock<HashMap<(String, i32), Arc<Partition>>>,
    /// Bumped whenever some partition's role changes (or a partition comes or goes).
    roles: watch::Sender<u64>,
    /// The metrics counters, per topic and over all (each partition holds its own handle).
    pub counters: Arc<BrokerCounters>,
}

impl ReplicaManager {
    /// Opens every partition directory under `log.dirs`, recovering logs that were not closed
    /// cleanly with `num.recovery.threads.per.data.dir` threads per directory. Each log's high
    /// watermark is the one checkpointed (`replication-offset-checkpoint`), not its log end:
    /// records past it may not have been replicated.
    pub fn open(
        config: &BrokerConfig,
        broker_id: i32,
        counters: Arc<BrokerCounters>,
    ) -> Result<ReplicaManager, LogError> {
        let log_config = log_config(config);
        let logs = LogManager::open(
            &config.log_dirs,
            config.num_recovery_threads_per_data_dir as usize,
            |_| log_config.clone(),
        )?;
        let mut partitions = HashMap::new();
        for (tp, log) in logs.logs() {
            partitions.insert(
                (tp.topic.clone(), tp.partition),
                Arc::new(Partition::new(&tp, log, counters.for_partition(&tp.topic))),
            );
        }
        if !partitions.is_empty() {
            tracing::info!(count = partitions.len(), "opened partition logs");
        }
        let (roles, _) = watch::channel(0);
        Ok(ReplicaManager {
            config: config.clone(),
            broker_id,
            logs: Mutex::new(Some(logs)),
            partitions: RwLock::new(partitions),
            roles,
            counters,
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

    /// Every partition held here.
    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Follows role changes.
    pub fn subscribe_roles(&self) -> watch::Receiver<u64> {
        self.roles.subscribe()
    }

    /// The partitions of `topic` this broker leads.
    pub fn led_partitions(&self, topic: &str) -> Vec<i32> {
        let mut led: Vec<i32> = self
            .partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|((t, _), p)| t == topic && p.leader_epoch().is_some())
            .map(|((_, p), _)| *p)
            .collect();
        led.sort_unstable();
        led
    }

    /// The reconciler: opens logs for partitions assigned to this broker, turns each
    /// partition's state into a role, and removes partitions whose topic is gone.
    pub fn apply(&self, m: &Metadata) {
        let mut changed = false;
        for (topic, t) in &m.topics {
            for (&p, meta) in &t.partitions {
                if !meta.replicas.contains(&self.broker_id) {
                    // Reassigned away (or never here): the replica and its log go.
                    if self.get(topic, p).is_some() {
                        self.remove(topic, p);
                        changed = true;
                    }
                    continue;
                }
                let lc = crate::topic_config::log_config(&self.config, &t.config);
                let part = match self.get(topic, p) {
                    Some(part) => {
                        part.set_log_config(&lc);
                        part
                    }
                    None => match self.create(topic, p, lc) {
                        Ok(part) => {
                            changed = true;
                            part
                        }
                        Err(e) => {
                            tracing::error!(topic, partition = p, error = %e, "cannot create the partition log");
                            continue;
                        }
                    },
                };
                changed |= match &meta.state {
                    Some(s) if s.leader == self.broker_id => {
                        let state = LeaderAndIsr {
                            leader: s.leader,
                            leader_epoch: s.leader_epoch,
                            isr: s.isr.clone(),
                            replicas: meta.replicas.clone(),
                            zk_version: meta.state_version,
                        };
                        match part.become_leader(&state, self.broker_id) {
                            Ok(c) => c,
                            Err(e) => {
                                tracing::error!(topic, partition = p, error = %e, "cannot become leader");
                                false
                            }
                        }
                    }
                    Some(s) if s.leader >= 0 => part.become_follower(s.leader, s.leader_epoch),
                    _ => part.become_none(),
                };
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
            changed = true;
        }
        // A deleted topic's counters go with it (Kafka removes its meters).
        self.counters.forget_deleted(|t| m.topics.contains_key(t));
        if changed {
            self.roles.send_modify(|g| *g += 1);
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
            .or_insert_with(|| {
                Arc::new(Partition::new(&tp, log, self.counters.for_partition(topic)))
            })
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
        let Some(part) = part else { return };
        part.become_none();
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

    /// The follower partitions, by the leader they follow.
    pub fn followed(&self) -> BTreeMap<i32, Vec<Arc<Partition>>> {
        let mut out: BTreeMap<i32, Vec<Arc<Partition>>> = BTreeMap::new();
        for p in self.all() {
            if let Role::Follower { leader, .. } = p.role() {
                out.entry(leader).or_default().push(p);
            }
        }
        out
    }

    /// Retention and time-based flushes over every partition, and the offset checkpoints.
    pub fn housekeeping(&self, retention_due: bool) {
        let now = sluice_log::now_ms();
        for p in self.all() {
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
        log_append_time: c.log_message_timestamp_type == "LogAppendTime",
        compression: crate::topic_config::codec(&c.compression_type).unwrap_or(None),
        ..LogConfig::default()
    }
}
