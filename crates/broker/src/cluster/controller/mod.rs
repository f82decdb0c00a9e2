//! The controller: one broker at a time (the one holding the ephemeral `/controller`) assigns
//! leaders and in-sync replica sets, and carries out topic deletions.
//!
//! Leaders are chosen from the ISR among live brokers only (an out-of-sync replica becomes leader
//! only with `unclean.leader.election.enable`); every leader change bumps the partition's
//! leader epoch. Writes are fenced: becoming controller creates `/controller` and bumps
//! `/controller_epoch` in one transaction, and every later write is a transaction that checks
//! `/controller_epoch` is still at the version this controller wrote, together with a
//! compare-and-set on the version of the partition state the decision was made from. A
//! controller whose session expired, or that was paused while another took over, can change
//! nothing. A broker whose registration changed between two passes (it restarted faster than
//! its session could expire) is treated as failed for that pass.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use zookeeper_client as zk;

use super::liveness::{self, Liveness, ProbeSet};
use super::znodes::{self, ControllerRegistration, PartitionState};
mod elections;
mod reassignment;

use super::{ensure, persistent, Cluster, ControllerRequest, ElectionKind, Metadata, Result};

/// Campaigns for `/controller` and, while holding it, keeps partition state in line with the
/// live brokers. A coordinator that is briefly unreachable is retried; after a session expiry
/// it campaigns again once the broker has a new session ([`Cluster::rejoin`]).
/// The controller's settings from `server.properties`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub unclean: bool,
    /// The inter-broker listener the liveness probes use, and how to connect to it.
    pub listener: String,
    pub connector: crate::tls::Connector,
    pub auto_rebalance: bool,
    pub imbalance_check: Duration,
    pub imbalance_percentage: u32,
}

pub async fn run(cluster: Arc<Cluster>, settings: Settings) -> Result<()> {
    loop {
        let mut sessions = cluster.session_changes();
        sessions.borrow_and_update();
        match campaign(cluster.clone(), &settings).await {
            Err(super::ClusterError::Zk(zk::Error::SessionExpired)) => {
                tracing::info!("controller: session expired; campaigning again after rejoining");
                if sessions.changed().await.is_err() {
                    return Ok(());
                }
            }
            Err(super::ClusterError::Deposed) => {}
            Err(e) => {
                tracing::warn!(error = %e, "controller: coordinator unavailable; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(()) => return Ok(()),
        }
    }
}

async fn campaign(cluster: Arc<Cluster>, settings: &Settings) -> Result<()> {
    let listener = settings.listener.as_str();
    loop {
        let reg = ControllerRegistration {
            version: 1,
            brokerid: cluster.broker_id,
            timestamp: super::now_ms_string(),
        };
        // Taking the role and bumping the epoch are one transaction: a controller always holds
        // an epoch no other controller held, and the version of /controller_epoch it wrote is
        // what every later write checks.
        let (current, version) = match cluster.client().get_data(znodes::CONTROLLER_EPOCH).await {
            Ok((data, stat)) => (
                std::str::from_utf8(&data)
                    .ok()
                    .and_then(|s| s.trim().parse::<i32>().ok())
                    .unwrap_or(0),
                Some(stat.version),
            ),
            Err(zk::Error::NoNode) => (0, None),
            Err(e) => return Err(e.into()),
        };
        let epoch = current + 1;
        let client = cluster.client();
        let mut multi = client.new_multi_writer();
        let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        multi.add_create(
            znodes::CONTROLLER,
            &serde_json::to_vec(&reg).expect("json"),
            &ephemeral,
        )?;
        match version {
            Some(v) => multi.add_set_data(
                znodes::CONTROLLER_EPOCH,
                epoch.to_string().as_bytes(),
                Some(v),
            )?,
            None => multi.add_create(
                znodes::CONTROLLER_EPOCH,
                epoch.to_string().as_bytes(),
                &persistent(),
            )?,
        }
        match multi.commit().await {
            Ok(results) => {
                let epoch_version = match results.get(1) {
                    Some(zk::MultiWriteResult::SetData { stat }) => stat.version,
                    _ => 0,
                };
                tracing::info!(broker = cluster.broker_id, epoch, "elected controller");
                let fence = Fence {
                    epoch,
                    epoch_version,
                };
                return lead(cluster, fence, settings).await;
            }
            Err(zk::MultiWriteError::OperationFailed {
                index: 0,
                source: zk::Error::NodeExists,
            }) => {
                // Another broker is controller: wait until it goes away — its session ends,
                // or its process is found gone (then its /controller is removed at once, in a
                // transaction that checks the epoch is still the one it held, so a controller
                // elected meanwhile is never touched).
                let (data, w) = match cluster
                    .client()
                    .get_and_watch_data(znodes::CONTROLLER)
                    .await
                {
                    Ok((data, _, w)) => (data, w),
                    Err(zk::Error::NoNode) => continue,
                    Err(e) => return Err(e.into()),
                };
                let holder = serde_json::from_slice::<ControllerRegistration>(&data)
                    .map(|r| r.brokerid)
                    .unwrap_or(-1);
                let gone = liveness::until_gone(
                    cluster.clone(),
                    holder,
                    listener.to_string(),
                    settings.connector.clone(),
                );
                tokio::select! {
                    ev = w.changed() => {
                        if matches!(
                            ev.session_state,
                            zk::SessionState::Expired | zk::SessionState::Closed
                        ) {
                            return Err(zk::Error::SessionExpired.into());
                        }
                    }
                    _ = gone, if holder >= 0 && holder != cluster.broker_id => {
                        if let Some(v) = version {
                            let client = cluster.client();
                            let mut multi = client.new_multi_writer();
                            multi.add_check_version(znodes::CONTROLLER_EPOCH, v)?;
                            multi.add_delete(znodes::CONTROLLER, None)?;
                            if multi.commit().await.is_ok() {
                                tracing::warn!(controller = holder, "the controller's process is gone; taking over without waiting for its session to expire");
                            }
                        }
                    }
                }
            }
            // The epoch moved (or appeared) between the read and the write: read it again.
            Err(zk::MultiWriteError::OperationFailed { index: 1, .. }) => {}
            Err(e) => return Err(zk::Error::from(e).into()),
        }
    }
}

/// What every controller write is conditional on: `/controller_epoch` still at the version this
/// controller wrote. A controller that was replaced (its session expired, a new one bumped the
/// epoch) can no longer change anything.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fence {
    pub(crate) epoch: i32,
    epoch_version: i32,
}

/// Why a fenced write did not happen.
pub(crate) enum Write {
    Done,
    /// The node moved on (another version, created or deleted meanwhile): decide again.
    Stale,
    /// This controller was replaced.
    Deposed,
}

impl Fence {
    pub(crate) async fn write(
        &self,
        client: &zk::Client,
        op: impl FnOnce(&mut zk::MultiWriter<'_>) -> std::result::Result<(), zk::Error>,
    ) -> Result<Write> {
        let mut multi = client.new_multi_writer();
        multi.add_check_version(znodes::CONTROLLER_EPOCH, self.epoch_version)?;
        op(&mut multi)?;
        match multi.commit().await {
            Ok(_) => Ok(Write::Done),
            Err(zk::MultiWriteError::OperationFailed { index: 0, .. }) => Ok(Write::Deposed),
            Err(zk::MultiWriteError::OperationFailed {
                source:
                    zk::Error::BadVersion
                    | zk::Error::NoNode
                    | zk::Error::NodeExists
                    | zk::Error::NotEmpty,
                ..
            }) => Ok(Write::Stale),
            Err(e) => Err(zk::Error::from(e).into()),
        }
    }
}

/// The controller's memory between passes.
#[derive(Debug, Default)]
struct Seen {
    /// Each live broker's epoch (registration czxid) at the previous pass.
    broker_epochs: BTreeMap<i32, i64>,
}

/// Marks the broker as the active controller while it leads (the metrics read it).
struct Active<'a>(&'a Cluster);

impl<'a> Active<'a> {
    fn mark(cluster: &'a Cluster) -> Active<'a> {
        cluster
            .active_controller
            .store(true, std::sync::atomic::Ordering::Release);
        Active(cluster)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0
            .active_controller
            .store(false, std::sync::atomic::Ordering::Release);
    }
}

async fn lead(cluster: Arc<Cluster>, fence: Fence, settings: &Settings) -> Result<()> {
    let _active = Active::mark(&cluster);
    let unclean = settings.unclean;
    let listener = settings.listener.as_str();
    let mut changes = cluster.subscribe();
    let mut requests = cluster.request_queue.lock().await;
    let mut rebalance = tokio::time::interval(settings.imbalance_check);
    rebalance.tick().await;
    let liveness = Liveness::new();
    let mut gone = liveness.subscribe();
    let mut drains = cluster.subscribe_drains();
    let _probes = ProbeSet(liveness::watch_brokers(
        cluster.clone(),
        listener.to_string(),
        settings.connector.clone(),
        liveness.clone(),
    ));
    let mut deletions = cluster
        .client()
        .watch(znodes::DELETE_TOPICS, zk::AddWatchMode::PersistentRecursive)
        .await?;
    let mut seen = Seen::default();
    loop {
        match process_deletions(&cluster, fence).await {
            Ok(true) => {}
            Ok(false) => return deposed(&cluster, fence),
            Err(e) => tracing::warn!(error = %e, "controller: topic deletion failed; retrying"),
        }
        // /controller must still be ours (an operator deletes it to move the role elsewhere).
        let holder = match cluster.client().get_data(znodes::CONTROLLER).await {
            Ok((data, _)) => serde_json::from_slice::<ControllerRegistration>(&data)
                .ok()
                .map(|r| r.brokerid),
            Err(zk::Error::NoNode) => None,
            Err(e) => return Err(e.into()),
        };
        if holder != Some(cluster.broker_id) {
            return deposed(&cluster, fence);
        }
        let m = cluster.metadata();
        match reconcile(&cluster, &m, fence, unclean, &mut seen, &liveness).await {
            Ok(true) => {}
            Ok(false) => return deposed(&cluster, fence),
            Err(e) => tracing::warn!(error = %e, "controller pass failed; retrying"),
        }
        let live = live_brokers(&cluster, &m, &BTreeSet::new(), &liveness);
        match reassignment::complete(&cluster, &m, fence, &live).await {
            Ok(true) => {}
            Ok(false) => return deposed(&cluster, fence),
            Err(e) => tracing::warn!(error = %e, "controller: completing reassignments failed"),
        }
        tokio::select! {
            r = changes.changed() => if r.is_err() { return Ok(()) },
            r = gone.changed() => if r.is_err() { return Ok(()) },
            r = drains.changed() => if r.is_err() { return Ok(()) },
            Some(req) = requests.recv() => {
                let m = cluster.metadata();
                let live = live_brokers(&cluster, &m, &BTreeSet::new(), &liveness);
                let done = match req {
                    ControllerRequest::Elect(req) => {
                        elections::elect(&cluster, &m, fence, &live, req.kind, req.partitions)
                            .await
                            .map(|r| r.map(|r| { let _ = req.reply.send(r); }))
                    }
                    ControllerRequest::Reassign(req) => {
                        reassignment::alter(&cluster, &m, fence, req.partitions)
                            .await
                            .map(|r| r.map(|r| { let _ = req.reply.send(r); }))
                    }
                };
                match done {
                    Ok(Some(())) => {}
                    Ok(None) => return deposed(&cluster, fence),
                    Err(e) => tracing::warn!(error = %e, "controller: request failed"),
                }
            }
            _ = rebalance.tick(), if settings.auto_rebalance => {
                let m = cluster.metadata();
                let live = live_brokers(&cluster, &m, &BTreeSet::new(), &liveness);
                let wanted = elections::imbalanced(&m, &live, settings.imbalance_percentage);
                if !wanted.is_empty() {
                    tracing::info!(partitions = wanted.len(), "leader imbalance above leader.imbalance.per.broker.percentage; electing preferred leaders");
                    if let Ok(None) = elections::elect(&cluster, &m, fence, &live, ElectionKind::Preferred, Some(wanted)).await {
                        return deposed(&cluster, fence);
                    }
                }
            }
            ev = deletions.changed() => {
                if matches!(ev.session_state, zk::SessionState::Expired | zk::SessionState::Closed) {
                    return Err(zk::Error::SessionExpired.into());
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// This controller lost `/controller` or its writes are fenced off: stop, and campaign again
/// (the session may well still be alive).
fn deposed(cluster: &Cluster, fence: Fence) -> Result<()> {
    tracing::warn!(
        broker = cluster.broker_id,
        epoch = fence.epoch,
        "no longer controller: /controller_epoch moved on"
    );
    Err(super::ClusterError::Deposed)
}

/// One pass: states for new partitions, new leaders where the leader died (or restarted), dead
/// brokers out of the ISR. Each decision is written conditionally on the state version it was
/// made from. Returns `false` when this controller was deposed.
async fn reconcile(
    cluster: &Cluster,
    m: &Metadata,
    fence: Fence,
    unclean: bool,
    seen: &mut Seen,
    liveness: &Liveness,
) -> Result<bool> {
    // A broker whose registration is newer than the one seen last pass restarted in between:
    // it lost whatever it held in memory, so for this pass it counts as failed (its
    // leaderships move, it leaves the ISRs) and it rejoins as a follower.
    let restarted: BTreeSet<i32> = m
        .broker_epochs
        .iter()
        .filter(|(b, e)| seen.broker_epochs.get(b).is_some_and(|old| old != *e))
        .map(|(b, _)| *b)
        .collect();
    if !restarted.is_empty() {
        tracing::info!(brokers = ?restarted, "brokers restarted since the last pass");
    }
    // Registered, not restarted, not stopping (controlled shutdown) and not known to be gone
    // (a killed broker's registration outlives it until its session expires; the probes know
    // sooner).
    let draining = cluster.draining();
    let live = live_brokers(cluster, m, &restarted, liveness);
    let client = cluster.client();
    let mut all_done = true;
    for (topic, t) in &m.topics {
        for (&p, meta) in &t.partitions {
            let path = znodes::partition_state_path(topic, p);
            let (new_state, create) = match &meta.state {
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
                        controller_epoch: fence.epoch,
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
                    ensure(&client, &znodes::partitions_path(topic), b"").await?;
                    ensure(&client, &znodes::partition_path(topic, p), b"").await?;
                    (state, true)
                }
                // A stopping leader with no other in-sync replica keeps leading until it is
                // gone (then the partition goes offline as for any lost leader).
                Some(s)
                    if draining.contains(&s.leader)
                        && !s.isr.iter().any(|r| *r != s.leader && live.contains(r)) =>
                {
                    continue
                }
                Some(s) => match next_state(s, &meta.replicas, &live, fence.epoch, unclean) {
                    Some(n) => (n, false),
                    None => continue,
                },
            };
            let data = serde_json::to_vec(&new_state).expect("json");
            let version = meta.state_version;
            let written = fence
                .write(&client, |w| {
                    if create {
                        w.add_create(&path, &data, &persistent())
                    } else {
                        w.add_set_data(&path, &data, Some(version))
                    }
                })
                .await?;
            match written {
                Write::Done => {
                    tracing::info!(topic, partition = p, leader = new_state.leader, leader_epoch = new_state.leader_epoch, isr = ?new_state.isr, "partition state changed")
                }
                // Decided from an old version (a leader's ISR write, a deletion): the next
                // metadata refresh brings the new one and the next pass decides again.
                Write::Stale => all_done = false,
                Write::Deposed => return Ok(false),
            }
        }
    }
    // Remember the incarnations only once every decision for them was written.
    if all_done {
        seen.broker_epochs = m.broker_epochs.clone();
    } else {
        for (b, e) in &m.broker_epochs {
            if !restarted.contains(b) {
                seen.broker_epochs.insert(*b, *e);
            }
        }
    }
    Ok(true)
}

/// Brokers that may lead or be in sync: registered, not restarted since the last pass, not
/// stopping (controlled shutdown) and not known to be gone (a killed broker's registration
/// outlives it until its session expires; the probes know sooner).
fn live_brokers(
    cluster: &Cluster,
    m: &Metadata,
    restarted: &BTreeSet<i32>,
    liveness: &Liveness,
) -> BTreeSet<i32> {
    let draining = cluster.draining();
    m.brokers
        .keys()
        .copied()
        .filter(|b| !restarted.contains(b) && !draining.contains(b))
        .filter(|b| {
            m.broker_epochs
                .get(b)
                .is_none_or(|e| !liveness.is_dead(*b, *e))
        })
        .collect()
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

/// Carries out `/admin/delete_topics/<t>` requests, each znode deletion fenced. Returns
/// `false` when this controller was deposed.
async fn process_deletions(cluster: &Cluster, fence: Fence) -> Result<bool> {
    let client = cluster.client();
    let pending = client.list_children(znodes::DELETE_TOPICS).await?;
    for topic in pending {
        for root in [
            znodes::topic_path(&topic),
            znodes::topic_config_path(&topic),
        ] {
            if !delete_recursive(&client, &root, fence).await? {
                return Ok(false);
            }
        }
        if !delete_recursive(&client, &znodes::delete_topic_path(&topic), fence).await? {
            return Ok(false);
        }
        tracing::info!(topic, "topic deleted");
    }
    Ok(true)
}

/// Deletes `path` and everything under it, each deletion fenced; `false` if deposed.
async fn delete_recursive(c: &zk::Client, path: &str, fence: Fence) -> Result<bool> {
    let children = match c.list_children(path).await {
        Ok(ch) => ch,
        Err(zk::Error::NoNode) => return Ok(true),
        Err(e) => return Err(e.into()),
    };
    for child in children {
        if !Box::pin(delete_recursive(c, &format!("{path}/{child}"), fence)).await? {
            return Ok(false);
        }
    }
    match fence.write(c, |w| w.add_delete(path, None)).await? {
        Write::Done | Write::Stale => Ok(true),
        Write::Deposed => Ok(false),
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
