//! Moving partitions between brokers (AlterPartitionReassignments, KIP-455), as Kafka does it
//! in ZooKeeper mode:
//!
//! ```text
//!  start:    replicas = target ++ (original − target),  adding = target − original,
//!            removing = original − target                    (in /brokers/topics/<t>)
//!  then:     the new replicas open the partition, fetch from the leader, join the ISR
//!  complete: once every added replica is in the ISR: replicas = target, the removed ones leave
//!            the ISR, the leader moves if it was removed (leader epoch bumped), adding and
//!            removing cleared — state and assignment in one fenced transaction
//!  cancel:   replicas = original, adding and removing cleared
//! ```
//!
//! Every write is fenced by the controller epoch and a compare-and-set on the version the
//! decision was made from.

use std::collections::BTreeSet;

use super::super::znodes::{self, PartitionState, TopicAssignment};
use super::super::{Cluster, Metadata, ReassignOutcome, Result};
use super::{Fence, Write};

/// Starts or cancels reassignments. `Ok(None)` when this controller was deposed.
pub(super) async fn alter(
    cluster: &Cluster,
    m: &Metadata,
    fence: Fence,
    partitions: Vec<(String, i32, Option<Vec<i32>>)>,
) -> Result<Option<Vec<((String, i32), ReassignOutcome)>>> {
    let client = cluster.client();
    let mut results = Vec::new();
    for (topic, p, target) in partitions {
        let key = (topic.clone(), p);
        let Some(tm) = m.topics.get(&topic) else {
            results.push((key, ReassignOutcome::UnknownPartition));
            continue;
        };
        if !tm.partitions.contains_key(&p) {
            results.push((key, ReassignOutcome::UnknownPartition));
            continue;
        }
        // Read the assignment as it is now: the metadata may lag a write of this same pass.
        let path = znodes::topic_path(&topic);
        let (data, stat) = match client.get_data(&path).await {
            Ok(x) => x,
            Err(zookeeper_client::Error::NoNode) => {
                results.push((key, ReassignOutcome::UnknownPartition));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let mut a: TopicAssignment = super::super::parse(&path, &data)?;
        let pk = p.to_string();
        let current = a.partitions.get(&pk).cloned().unwrap_or_default();
        let adding = a.adding_replicas.get(&pk).cloned().unwrap_or_default();
        let outcome = match target {
            None => {
                if adding.is_empty() && !a.removing_replicas.contains_key(&pk) {
                    results.push((key, ReassignOutcome::NoneInProgress));
                    continue;
                }
                let original: Vec<i32> = current
                    .iter()
                    .copied()
                    .filter(|r| !adding.contains(r))
                    .collect();
                a.partitions.insert(pk.clone(), original);
                a.adding_replicas.remove(&pk);
                a.removing_replicas.remove(&pk);
                ReassignOutcome::Cancelled
            }
            Some(target) => {
                let distinct: BTreeSet<i32> = target.iter().copied().collect();
                if target.is_empty() || distinct.len() != target.len() {
                    results.push((
                        key,
                        ReassignOutcome::Invalid(format!(
                            "the target replicas {target:?} must be distinct and not empty"
                        )),
                    ));
                    continue;
                }
                if let Some(b) = target.iter().find(|b| !m.brokers.contains_key(b)) {
                    results.push((
                        key,
                        ReassignOutcome::Invalid(format!("broker {b} is not registered")),
                    ));
                    continue;
                }
                // A reassignment replacing an ongoing one starts from the original replicas.
                let original: Vec<i32> = current
                    .iter()
                    .copied()
                    .filter(|r| !adding.contains(r))
                    .collect();
                let mut replicas = target.clone();
                replicas.extend(original.iter().filter(|r| !target.contains(r)));
                let add: Vec<i32> = target
                    .iter()
                    .copied()
                    .filter(|r| !original.contains(r))
                    .collect();
                let remove: Vec<i32> = original
                    .iter()
                    .copied()
                    .filter(|r| !target.contains(r))
                    .collect();
                a.partitions.insert(pk.clone(), replicas);
                if add.is_empty() {
                    a.adding_replicas.remove(&pk);
                } else {
                    a.adding_replicas.insert(pk.clone(), add);
                }
                if remove.is_empty() {
                    a.removing_replicas.remove(&pk);
                } else {
                    a.removing_replicas.insert(pk.clone(), remove);
                }
                ReassignOutcome::Started
            }
        };
        let data = serde_json::to_vec(&a).expect("json");
        match fence
            .write(&client, |w| {
                w.add_set_data(&path, &data, Some(stat.version))
            })
            .await?
        {
            Write::Done => {
                tracing::info!(topic, partition = p, replicas = ?a.partitions.get(&pk), adding = ?a.adding_replicas.get(&pk), removing = ?a.removing_replicas.get(&pk), ?outcome, "reassignment");
                results.push((key, outcome));
            }
            Write::Stale => results.push((
                key,
                ReassignOutcome::Invalid("the assignment changed meanwhile; retry".into()),
            )),
            Write::Deposed => return Ok(None),
        }
    }
    Ok(Some(results))
}

/// Completes the reassignments whose added replicas are all in sync. `Ok(false)` when this
/// controller was deposed.
pub(super) async fn complete(
    cluster: &Cluster,
    m: &Metadata,
    fence: Fence,
    live: &BTreeSet<i32>,
) -> Result<bool> {
    let client = cluster.client();
    for (topic, tm) in &m.topics {
        for (&p, pm) in &tm.partitions {
            if pm.adding.is_empty() && pm.removing.is_empty() {
                continue;
            }
            let Some(s) = &pm.state else { continue };
            if !pm.adding.iter().all(|r| s.isr.contains(r)) {
                continue;
            }
            let target: Vec<i32> = pm
                .replicas
                .iter()
                .copied()
                .filter(|r| !pm.removing.contains(r))
                .collect();
            let isr: Vec<i32> = s
                .isr
                .iter()
                .copied()
                .filter(|r| target.contains(r))
                .collect();
            let leader = if target.contains(&s.leader) && live.contains(&s.leader) {
                s.leader
            } else {
                match target.iter().find(|r| isr.contains(r) && live.contains(r)) {
                    Some(l) => *l,
                    None => continue,
                }
            };
            let state = PartitionState {
                controller_epoch: fence.epoch,
                leader,
                version: 1,
                leader_epoch: s.leader_epoch + 1,
                isr,
            };
            let path = znodes::topic_path(topic);
            let (data, stat) = match client.get_data(&path).await {
                Ok(x) => x,
                Err(zookeeper_client::Error::NoNode) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut a: TopicAssignment = super::super::parse(&path, &data)?;
            let pk = p.to_string();
            a.partitions.insert(pk.clone(), target.clone());
            a.adding_replicas.remove(&pk);
            a.removing_replicas.remove(&pk);
            let assignment = serde_json::to_vec(&a).expect("json");
            let state_path = znodes::partition_state_path(topic, p);
            let state_data = serde_json::to_vec(&state).expect("json");
            let version = pm.state_version;
            match fence
                .write(&client, |w| {
                    w.add_set_data(&state_path, &state_data, Some(version))?;
                    w.add_set_data(&path, &assignment, Some(stat.version))
                })
                .await?
            {
                Write::Done => {
                    tracing::info!(topic, partition = p, replicas = ?target, leader, leader_epoch = state.leader_epoch, "reassignment completed")
                }
                Write::Stale => {}
                Write::Deposed => return Ok(false),
            }
        }
    }
    Ok(true)
}
