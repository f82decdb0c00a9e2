//! The controller: one broker at a time (the one holding the ephemeral `/controller`) assigns
//! leaders and in-sync replica sets, and carries out topic deletions.
//!
//! Leaders are chosen from the ISR among live brokers only (an out-of-sync replica becomes leader
//! only with `unclean.leader.election.enable`); every leader change bumps the partition's
//! leader epoch; every state write is a compare-and-set on the znode version, so a deposed
//! controller cannot overwrite its successor's decisions.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use zookeeper_client as zk;

use super::znodes::{self, ControllerRegistration, PartitionState};
use super::{ensure, persistent, Cluster, Metadata, Result};

/// Campaigns for `/controller` and, while holding it, keeps partition state in line with the
/// live brokers. A coordinator that is briefly unreachable is retried; after a session expiry
/// it campaigns again once the broker has a new session ([`Cluster::rejoin`]).
pub async fn run(cluster: Arc<Cluster>, unclean: bool) -> Result<()> {
    loop {
        let mut sessions = cluster.session_changes();
        sessions.borrow_and_update();
        match campaign(cluster.clone(), unclean).await {
            Err(super::ClusterError::Zk(zk::Error::SessionExpired)) => {
                tracing::info!("controller: session expired; campaigning again after rejoining");
                if sessions.changed().await.is_err() {
                    return Ok(());
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "controller: coordinator unavailable; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(()) => return Ok(()),
        }
    }
}

async fn campaign(cluster: Arc<Cluster>, unclean: bool) -> Result<()> {
    loop {
        let reg = ControllerRegistration {
            version: 1,
            brokerid: cluster.broker_id,
            timestamp: super::now_ms_string(),
        };
        let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        match cluster
            .client()
            .create(
                znodes::CONTROLLER,
                &serde_json::to_vec(&reg).expect("json"),
                &ephemeral,
            )
            .await
        {
            Ok(_) => {
                let epoch = bump_epoch(&cluster).await?;
                tracing::info!(broker = cluster.broker_id, epoch, "elected controller");
                return lead(cluster, epoch, unclean).await;
            }
            Err(zk::Error::NodeExists) => {
                // Wait until the current controller goes away.
                match cluster
                    .client()
                    .check_and_watch_stat(znodes::CONTROLLER)
                    .await
                {
                    Ok((Some(_), w)) => {
                        let ev = w.changed().await;
                        if matches!(
                            ev.session_state,
                            zk::SessionState::Expired | zk::SessionState::Closed
                        ) {
                            return Err(zk::Error::SessionExpired.into());
                        }
                    }
                    Ok((None, _)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn bump_epoch(cluster: &Cluster) -> Result<i32> {
    loop {
        match cluster.client().get_data(znodes::CONTROLLER_EPOCH).await {
            Ok((data, stat)) => {
                let cur: i32 = std::str::from_utf8(&data)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                let next = cur + 1;
                match cluster
                    .client()
                    .set_data(
                        znodes::CONTROLLER_EPOCH,
                        next.to_string().as_bytes(),
                        Some(stat.version),
                    )
                    .await
                {
                    Ok(_) => return Ok(next),
                    Err(zk::Error::BadVersion) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(zk::Error::NoNode) => match cluster
                .client()
                .create(znodes::CONTROLLER_EPOCH, b"1", &persistent())
                .await
            {
                Ok(_) => return Ok(1),
                Err(zk::Error::NodeExists) => continue,
                Err(e) => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        }
    }
}

async fn lead(cluster: Arc<Cluster>, epoch: i32, unclean: bool) -> Result<()> {
    let mut changes = cluster.subscribe();
    let mut deletions = cluster
        .client()
        .watch(znodes::DELETE_TOPICS, zk::AddWatchMode::PersistentRecursive)
        .await?;
    loop {
        process_deletions(&cluster).await?;
        let m = cluster.metadata();
        if let Err(e) = reconcile(&cluster, &m, epoch, unclean).await {
            tracing::warn!(error = %e, "controller pass failed; retrying");
        }
        tokio::select! {
            r = changes.changed() => if r.is_err() { return Ok(()) },
            ev = deletions.changed() => {
                if matches!(ev.session_state, zk::SessionState::Expired | zk::SessionState::Closed) {
                    return Err(zk::Error::SessionExpired.into());
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// One pass: states for new partitions, new leaders where the leader died, dead brokers out of
/// the ISR.
async fn reconcile(cluster: &Cluster, m: &Metadata, epoch: i32, unclean: bool) -> Result<()> {
    let live: BTreeSet<i32> = m.brokers.keys().copied().collect();
    for (topic, t) in &m.topics {
        for (&p, meta) in &t.partitions {
            let path = znodes::partition_state_path(topic, p);
            let desired = match &meta.state {
                None => {
                    // The first live replica leads; every live replica is in sync (a new
                    // partition is empty everywhere). Followers replicate from then on, and
                    // the leader drops those that fall behind (decision 0011).
                    let leader = meta
                        .replicas
                        .iter()
                        .copied()
                        .find(|r| live.contains(r))
                        .unwrap_or(-1);
                    let state = PartitionState {
                        controller_epoch: epoch,
                        leader,
                        version: 1,
                        leader_epoch: 0,
                        isr: if leader >= 0 {
                            meta.replicas
                                .iter()
                                .copied()
                                .filter(|r| live.contains(r))
                                .collect()
                        } else {
                            meta.replicas.clone()
                        },
                    };
                    ensure(&cluster.client(), &znodes::partitions_path(topic), b"").await?;
                    ensure(&cluster.client(), &znodes::partition_path(topic, p), b"").await?;
                    match cluster
                        .client()
                        .create(
                            &path,
                            &serde_json::to_vec(&state).expect("json"),
                            &persistent(),
                        )
                        .await
                    {
                        Ok(_) | Err(zk::Error::NodeExists) => {}
                        Err(zk::Error::NoNode) => {} // the topic is being deleted
                        Err(e) => return Err(e.into()),
                    }
                    continue;
                }
                Some(s) => next_state(s, &meta.replicas, &live, epoch, unclean),
            };
            let Some(new_state) = desired else { continue };
            // Compare-and-set against the version we read now.
            let Ok((_, stat)) = cluster.client().get_data(&path).await else {
                continue;
            };
            match cluster
                .client()
                .set_data(
                    &path,
                    &serde_json::to_vec(&new_state).expect("json"),
                    Some(stat.version),
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(topic, partition = p, leader = new_state.leader, leader_epoch = new_state.leader_epoch, isr = ?new_state.isr, "partition state changed")
                }
                Err(zk::Error::BadVersion) | Err(zk::Error::NoNode) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// The state a partition should move to, if any.
pub fn next_state(
    s: &PartitionState,
    replicas: &[i32],
    live: &BTreeSet<i32>,
    epoch: i32,
    unclean: bool,
) -> Option<PartitionState> {
    let leader_alive = s.leader >= 0 && live.contains(&s.leader);
    if leader_alive {
        let isr: Vec<i32> = s.isr.iter().copied().filter(|r| live.contains(r)).collect();
        if isr.len() == s.isr.len() {
            return None;
        }
        return Some(PartitionState {
            isr,
            controller_epoch: epoch,
            ..s.clone()
        });
    }
    let live_isr: Vec<i32> = s.isr.iter().copied().filter(|r| live.contains(r)).collect();
    // The first live ISR member in replica order: the preferred replica when it is in sync.
    let first = replicas
        .iter()
        .find(|r| live_isr.contains(r))
        .or(live_isr.first());
    let (leader, isr) = match first {
        Some(&l) => (l, live_isr.clone()),
        None if unclean => match replicas.iter().copied().find(|r| live.contains(r)) {
            Some(l) => (l, vec![l]),
            None => return offline(s, epoch),
        },
        None => return offline(s, epoch),
    };
    Some(PartitionState {
        controller_epoch: epoch,
        leader,
        version: 1,
        leader_epoch: s.leader_epoch + 1,
        isr,
    })
}

/// No eligible leader: mark the partition offline (leader -1), keeping the ISR so the last
/// in-sync replica can take over when it returns.
fn offline(s: &PartitionState, epoch: i32) -> Option<PartitionState> {
    if s.leader == -1 {
        return None;
    }
    Some(PartitionState {
        controller_epoch: epoch,
        leader: -1,
        version: 1,
        leader_epoch: s.leader_epoch + 1,
        isr: s.isr.clone(),
    })
}

async fn process_deletions(cluster: &Cluster) -> Result<()> {
    let pending = cluster
        .client()
        .list_children(znodes::DELETE_TOPICS)
        .await?;
    for topic in pending {
        delete_recursive(&cluster.client(), &znodes::topic_path(&topic)).await?;
        delete_recursive(&cluster.client(), &znodes::topic_config_path(&topic)).await?;
        match cluster
            .client()
            .delete(&znodes::delete_topic_path(&topic), None)
            .await
        {
            Ok(()) | Err(zk::Error::NoNode) => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!(topic, "topic deleted");
    }
    Ok(())
}

async fn delete_recursive(c: &zk::Client, path: &str) -> Result<()> {
    let children = match c.list_children(path).await {
        Ok(ch) => ch,
        Err(zk::Error::NoNode) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for child in children {
        Box::pin(delete_recursive(c, &format!("{path}/{child}"))).await?;
    }
    match c.delete(path, None).await {
        Ok(()) | Err(zk::Error::NoNode) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(leader: i32, epoch: i32, isr: &[i32]) -> PartitionState {
        PartitionState {
            controller_epoch: 1,
            leader,
            version: 1,
            leader_epoch: epoch,
            isr: isr.to_vec(),
        }
    }

    #[test]
    fn a_dead_leader_is_replaced_from_the_isr_with_a_new_epoch() {
        let live = BTreeSet::from([2, 3]);
        let n = next_state(&state(1, 4, &[1, 2]), &[1, 2, 3], &live, 2, false).unwrap();
        assert_eq!((n.leader, n.leader_epoch, n.isr), (2, 5, vec![2]));
    }

    #[test]
    fn no_live_isr_member_means_offline_unless_unclean() {
        let live = BTreeSet::from([3]);
        let n = next_state(&state(1, 4, &[1, 2]), &[1, 2, 3], &live, 2, false).unwrap();
        assert_eq!(n.leader, -1);
        assert_eq!(n.isr, vec![1, 2]);
        assert!(
            next_state(&n, &[1, 2, 3], &live, 2, false).is_none(),
            "stays offline"
        );
        let u = next_state(&state(1, 4, &[1, 2]), &[1, 2, 3], &live, 2, true).unwrap();
        assert_eq!((u.leader, u.isr), (3, vec![3]));
    }

    #[test]
    fn dead_followers_leave_the_isr_without_an_epoch_bump() {
        let live = BTreeSet::from([1, 2]);
        let n = next_state(&state(1, 4, &[1, 2, 3]), &[1, 2, 3], &live, 2, false).unwrap();
        assert_eq!((n.leader, n.leader_epoch, n.isr), (1, 4, vec![1, 2]));
        assert!(next_state(&state(1, 4, &[1, 2]), &[1, 2, 3], &live, 2, false).is_none());
    }

    #[test]
    fn a_returning_isr_member_brings_an_offline_partition_back() {
        let live = BTreeSet::from([2]);
        let n = next_state(&state(-1, 5, &[1, 2]), &[1, 2], &live, 2, false).unwrap();
        assert_eq!((n.leader, n.leader_epoch), (2, 6));
    }
}
