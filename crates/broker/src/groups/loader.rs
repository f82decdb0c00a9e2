//! Follows the partitions' roles (set by the replica manager's reconciler): loads the groups of
//! every `__consumer_offsets` partition this broker starts leading (reading the partition from
//! its start up to the high watermark), forgets those it stops leading, runs the group timers
//! every 100 ms and offset expiry every minute.
//!
//! A new leader loads a partition only once its high watermark has reached the offset its
//! leadership began at: a follower learns the high watermark one fetch late, so a commit its
//! old leader acknowledged just before dying is in the new leader's log but above its high
//! watermark until the other in-sync replicas fetch from it. Loading earlier would lose that
//! commit from the group's view.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{GroupCoordinator, OFFSETS_TOPIC};
use crate::replica::Partition;
use crate::Broker;

/// Reads `(key, value)` of every record of `part` up to its high watermark.
fn read_all(
    part: &Partition,
) -> Result<Vec<(Bytes, Option<Bytes>)>, crate::replica::PartitionError> {
    let mut out = Vec::new();
    let mut from = part.offsets().log_start;
    loop {
        let (slice, o) = part.read(from, 1 << 20, -1)?;
        if slice.is_empty() || from >= o.high_watermark {
            break;
        }
        let bytes = slice
            .to_bytes()
            .map_err(crate::replica::PartitionError::Log)?;
        let (recs, _) = super::records::decode_batches(bytes);
        out.extend(
            recs.into_iter()
                .filter(|(off, _, _)| *off >= from as i64)
                .map(|(_, k, v)| (k, v)),
        );
        if slice.next_offset <= from {
            break;
        }
        from = slice.next_offset;
    }
    Ok(out)
}

/// One pass: load newly led partitions, unload lost ones (as the partitions' roles say).
/// Returns whether a led partition waits for its high watermark (see the module header).
async fn reconcile(broker: &Arc<Broker>, groups: &Arc<GroupCoordinator>) -> bool {
    let mut waiting = false;
    let led = broker.replicas.led_partitions(OFFSETS_TOPIC);
    let owned = groups.owned_partitions();
    for p in owned.iter().filter(|p| !led.contains(p)) {
        groups.unload(*p);
    }
    for p in led.into_iter().filter(|p| !groups.is_loaded(*p)) {
        // The log may not be open yet (reconciled by another task); retry on the next pass.
        let Some(part) = broker.replicas.get(OFFSETS_TOPIC, p) else {
            continue;
        };
        // Its groups answer COORDINATOR_LOAD_IN_PROGRESS from now on, while waiting too.
        groups.begin_load(p);
        let committed = part
            .leader_epoch_start()
            .is_some_and(|start| part.offsets().high_watermark >= start);
        if !committed {
            waiting = true;
            continue;
        }
        let started = Instant::now();
        match tokio::task::spawn_blocking(move || read_all(&part)).await {
            Ok(Ok(records)) => {
                tracing::debug!(
                    partition = p,
                    records = records.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "read {OFFSETS_TOPIC}"
                );
                groups.finish_load(p, records);
            }
            Ok(Err(e)) => {
                tracing::error!(partition = p, error = %e, "cannot load {OFFSETS_TOPIC}");
                groups.unload(p);
            }
            Err(_) => groups.unload(p),
        }
    }
    waiting
}

pub async fn run(broker: Arc<Broker>) {
    let groups = broker.groups.clone();
    let mut rx = broker.replicas.subscribe_roles();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_reconcile = Instant::now() - Duration::from_secs(10);
    let mut waiting = false;
    let mut last_expiry = Instant::now();
    loop {
        let changed = tokio::select! {
            r = rx.changed() => {
                if r.is_err() {
                    return;
                }
                true
            }
            _ = tick.tick() => false,
        };
        let now = Instant::now();
        if changed || waiting || now.duration_since(last_reconcile) >= Duration::from_millis(500) {
            last_reconcile = now;
            waiting = reconcile(&broker, &groups).await;
        }
        groups.tick(Instant::now());
        if now.duration_since(last_expiry) >= Duration::from_secs(60) {
            last_expiry = now;
            groups.expire_offsets(super::now_ms());
            groups.refresh_offsets(super::now_ms(), refresh_age_ms(&broker));
        }
    }
}

/// How old a committed offset's record may get before it is rewritten: a third of the time
/// retention of `__consumer_offsets` (so two rewrites fit in it), at most a day, at least a
/// minute.
fn refresh_age_ms(broker: &Broker) -> i64 {
    let overrides = broker
        .cluster
        .metadata()
        .topics
        .get(super::OFFSETS_TOPIC)
        .map(|t| t.config.clone())
        .unwrap_or_default();
    let retention = crate::topic_config::log_config(&broker.config, &overrides).retention_ms;
    let day = 24 * 3_600_000;
    retention.map_or(day, |r| (r / 3).clamp(60_000, day as u64) as i64)
}
