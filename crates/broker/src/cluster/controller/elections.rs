//! Leader elections the controller carries out on request (ElectLeaders) and on its own
//! (`auto.leader.rebalance.enable`): the preferred replica back to leadership when it is alive
//! and in sync, or, unclean, any live replica for a partition without one.

use std::collections::{BTreeMap, BTreeSet};

use super::super::znodes::{self, PartitionState};
use super::super::{Cluster, ElectionKind, ElectionOutcome, Metadata, Result};
use super::{Fence, Write};

/// Partitions to hand back to their preferred replica: those of every broker for which more
/// than `percentage` % of the partitions it is preferred for are led by another broker, where
/// the preferred replica is live and in sync (Kafka's `leader.imbalance.*`).
pub(super) fn imbalanced(
    m: &Metadata,
    live: &BTreeSet<i32>,
    percentage: u32,
) -> Vec<(String, i32)> {
    #[derive(Default)]
    struct Tally {
        total: usize,
        misplaced: usize,
        movable: Vec<(String, i32)>,
    }
    let mut by_preferred: BTreeMap<i32, Tally> = BTreeMap::new();
    for (t, tm) in &m.topics {
        for (p, pm) in &tm.partitions {
            let (Some(&first), Some(s)) = (pm.replicas.first(), &pm.state) else {
                continue;
            };
            let tally = by_preferred.entry(first).or_default();
            tally.total += 1;
            if s.leader != first {
                tally.misplaced += 1;
                if live.contains(&first) && s.isr.contains(&first) {
                    tally.movable.push((t.clone(), *p));
                }
            }
        }
    }
    by_preferred
        .into_iter()
        .filter(|(b, t)| live.contains(b) && t.misplaced * 100 > t.total * percentage as usize)
        .flat_map(|(_, t)| t.movable)
        .collect()
}

/// Carries out an election request (ElectLeaders, or the imbalance check). `Ok(None)` when this
/// controller was deposed.
pub(super) async fn elect(
    cluster: &Cluster,
    m: &Metadata,
    fence: Fence,
    live: &BTreeSet<i32>,
    kind: ElectionKind,
    partitions: Option<Vec<(String, i32)>>,
) -> Result<Option<Vec<((String, i32), ElectionOutcome)>>> {
    let wanted: Vec<(String, i32)> = partitions.unwrap_or_else(|| {
        m.topics
            .iter()
            .flat_map(|(t, tm)| tm.partitions.keys().map(|p| (t.clone(), *p)))
            .collect()
    });
    let client = cluster.client();
    let mut results = Vec::with_capacity(wanted.len());
    for (t, p) in wanted {
        let Some(pm) = m.topics.get(&t).and_then(|tm| tm.partitions.get(&p)) else {
            results.push(((t, p), ElectionOutcome::UnknownPartition));
            continue;
        };
        let Some(s) = &pm.state else {
            results.push(((t, p), ElectionOutcome::NotAvailable));
            continue;
        };
        let next = match kind {
            ElectionKind::Preferred => {
                let Some(&first) = pm.replicas.first() else {
                    results.push(((t, p), ElectionOutcome::NotAvailable));
                    continue;
                };
                if s.leader == first {
                    results.push(((t, p), ElectionOutcome::NotNeeded));
                    continue;
                }
                if !(live.contains(&first) && s.isr.contains(&first)) {
                    results.push(((t, p), ElectionOutcome::NotAvailable));
                    continue;
                }
                PartitionState {
                    controller_epoch: fence.epoch,
                    leader: first,
                    version: 1,
                    leader_epoch: s.leader_epoch + 1,
                    isr: s.isr.clone(),
                }
            }
            ElectionKind::Unclean => {
                if s.leader >= 0 && live.contains(&s.leader) {
                    results.push(((t, p), ElectionOutcome::NotNeeded));
                    continue;
                }
                let in_sync = pm
                    .replicas
                    .iter()
                    .find(|r| live.contains(r) && s.isr.contains(r));
                let Some(&leader) = in_sync.or(pm.replicas.iter().find(|r| live.contains(r)))
                else {
                    results.push(((t, p), ElectionOutcome::NotAvailable));
                    continue;
                };
                let isr = if s.isr.contains(&leader) {
                    s.isr.iter().copied().filter(|r| live.contains(r)).collect()
                } else {
                    tracing::warn!(
                        topic = t,
                        partition = p,
                        leader,
                        "unclean leader election: acknowledged records may be lost"
                    );
                    vec![leader]
                };
                PartitionState {
                    controller_epoch: fence.epoch,
                    leader,
                    version: 1,
                    leader_epoch: s.leader_epoch + 1,
                    isr,
                }
            }
        };
        let path = znodes::partition_state_path(&t, p);
        let data = serde_json::to_vec(&next).expect("json");
        let version = pm.state_version;
        match fence
            .write(&client, |w| w.add_set_data(&path, &data, Some(version)))
            .await?
        {
            Write::Done => {
                tracing::info!(
                    topic = t,
                    partition = p,
                    leader = next.leader,
                    leader_epoch = next.leader_epoch,
                    ?kind,
                    "leader elected"
                );
                results.push(((t, p), ElectionOutcome::Elected));
            }
            Write::Stale => results.push(((t, p), ElectionOutcome::NotAvailable)),
            Write::Deposed => return Ok(None),
        }
    }
    Ok(Some(results))
}
