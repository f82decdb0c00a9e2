//! The leader's ISR changes (decision 0011): a follower that reached the high watermark joins,
//! an ISR member that has not caught up for `replica.lag.time.max.ms` leaves. The leader writes
//! the partition's state znode itself, with a compare-and-set on the version it holds, and only
//! counts a joining replica for the high watermark once that write succeeded. A write that finds
//! another version (the controller moved the partition) is dropped: the reconciler brings the
//! new state.

use std::sync::Arc;
use std::time::Duration;

use zookeeper_client as zk;

use crate::cluster::znodes::{self, PartitionState};
use crate::Broker;

/// How often leaders look at their followers. Expansion also waits for this tick, so it bounds
/// how soon a caught-up follower counts for `acks=all` again.
const TICK: Duration = Duration::from_millis(100);

pub async fn run(broker: Arc<Broker>) {
    let lag_max = broker.config.replica_lag_time_max_ms.max(1) as u64;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for part in broker.replicas.all() {
            let Some((isr, epoch, version)) = part.desired_isr(broker.id, lag_max) else {
                continue;
            };
            let controller_epoch = broker
                .cluster
                .metadata()
                .topics
                .get(&part.topic)
                .and_then(|t| t.partitions.get(&part.index))
                .and_then(|m| m.state.as_ref())
                .map_or(0, |s| s.controller_epoch);
            let state = PartitionState {
                controller_epoch,
                leader: broker.id,
                version: 1,
                leader_epoch: epoch,
                isr: isr.clone(),
            };
            let path = znodes::partition_state_path(&part.topic, part.index);
            let data = serde_json::to_vec(&state).expect("json");
            match broker
                .cluster
                .client()
                .set_data(&path, &data, Some(version))
                .await
            {
                Ok(stat) => part.isr_written(epoch, isr, version, stat.version, broker.id),
                Err(zk::Error::BadVersion) | Err(zk::Error::NoNode) => {
                    tracing::debug!(topic = %part.topic, partition = part.index, version,
                        "ISR change not written: the partition state moved on");
                }
                Err(e) => {
                    tracing::warn!(topic = %part.topic, partition = part.index, error = %e,
                        "cannot write the ISR change");
                }
            }
        }
    }
}
