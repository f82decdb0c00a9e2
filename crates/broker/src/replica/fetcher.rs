//! Followers fetching from leaders: for each leader this broker follows partitions of,
//! `num.replica.fetchers` tasks each send Fetch requests (v12, with this broker's id as the
//! replica id) for their share of those partitions, and append what comes back with the
//! leader's offsets and epochs.
//!
//! ```text
//!  roles change ─► run: (leader, fetcher index) ─► set of follower partitions ─► fetch_loop
//!  fetch_loop: Fetch(offset = log end, last fetched epoch, current leader epoch)
//!     ├─ records             ─► Partition::append_as_follower (+ the leader's HW)
//!     ├─ diverging epoch     ─► Partition::truncate_to(min(its end on the leader,
//!     │                                         its end here))               (KIP-320)
//!     ├─ OFFSET_OUT_OF_RANGE ─► below the leader's log start: start over there;
//!     │                         past its end: truncate to its high watermark
//!     └─ NOT_LEADER / FENCED / UNKNOWN_LEADER_EPOCH ─► back off (25 ms, doubling up to
//!                               replica.fetch.backoff.ms) or until the metadata moves
//! ```
//!
//! A follower never serves clients and never decides anything: the leader it follows and the
//! epoch come from the reconciler, and a fetch in an epoch the leader does not hold is refused
//! by the leader.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_kafka::async_client::AsyncConn;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Partition, Role};
use crate::Broker;

/// The Fetch version followers send: flexible, topics by name, last fetched epoch and the
/// diverging-epoch answer.
const FETCH_VERSION: i16 = 12;

type Share = Vec<Arc<Partition>>;

/// Keeps one fetch task per (leader, fetcher index) with partitions to fetch.
pub async fn run(broker: Arc<Broker>) {
    let mut roles = broker.replicas.subscribe_roles();
    let mut metadata = broker.cluster.subscribe();
    let mut tasks: HashMap<(i32, u32), (watch::Sender<Share>, tokio::task::JoinHandle<()>)> =
        HashMap::new();
    let fetchers = broker.config.num_replica_fetchers.max(1);
    loop {
        let mut wanted: BTreeMap<(i32, u32), Share> = BTreeMap::new();
        for (leader, parts) in broker.replicas.followed() {
            for p in parts {
                let idx =
                    (crate::ids::hash_str(&p.topic) as u32).wrapping_add(p.index as u32) % fetchers;
                wanted.entry((leader, idx)).or_default().push(p);
            }
        }
        tasks.retain(|key, (_, handle)| {
            let keep = wanted.contains_key(key) && !handle.is_finished();
            if !keep {
                handle.abort();
            }
            keep
        });
        for (key, share) in wanted {
            match tasks.get(&key) {
                Some((tx, _)) => {
                    tx.send_if_modified(|cur| {
                        let same = cur.len() == share.len()
                            && cur.iter().zip(&share).all(|(a, b)| Arc::ptr_eq(a, b));
                        if !same {
                            *cur = share.clone();
                        }
                        !same
                    });
                }
                None => {
                    let (tx, rx) = watch::channel(share);
                    let handle = tokio::spawn(fetch_loop(broker.clone(), key.0, rx));
                    tasks.insert(key, (tx, handle));
                }
            }
        }
        tokio::select! {
            r = roles.changed() => if r.is_err() { return },
            r = metadata.changed() => if r.is_err() { return },
            // A task that ended (it should not) is started again.
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// The inter-broker endpoint of broker `leader`, from its registration: its host (which a TLS
/// certificate must name) and address.
pub async fn broker_address(broker: &Broker, leader: i32) -> Option<(String, SocketAddr)> {
    let endpoint = {
        let m = broker.cluster.metadata();
        m.brokers
            .get(&leader)?
            .endpoint_for(&broker.config.inter_broker_listener_name)?
    };
    let port = u16::try_from(endpoint.port).ok()?;
    let addr = tokio::net::lookup_host((endpoint.host.as_str(), port))
        .await
        .ok()?
        .next()?;
    Some((endpoint.host, addr))
}

async fn fetch_loop(broker: Arc<Broker>, leader: i32, mut share: watch::Receiver<Share>) {
    let cfg = &broker.config;
    let backoff = Duration::from_millis(cfg.replica_fetch_backoff_ms.max(0) as u64);
    let timeout = Duration::from_millis(cfg.replica_socket_timeout_ms.max(1) as u64);
    let wait = Duration::from_millis(cfg.replica_fetch_wait_max_ms.max(0) as u64);
    let client_id = format!("broker-{}-fetcher", broker.id);
    let mut conn: Option<AsyncConn> = None;
    // Partitions held back after an error, until this time (or until their role changes), and
    // how many fetches in a row each has failed.
    let mut held: HashMap<(String, i32), (Instant, Option<i32>)> = HashMap::new();
    let mut failures: HashMap<(String, i32), u32> = HashMap::new();
    loop {
        let now = Instant::now();
        let parts: Vec<Arc<Partition>> = share
            .borrow_and_update()
            .iter()
            .filter(|p| {
                let role = p.role();
                let following = matches!(role, Role::Follower { leader: l, .. } if l == leader);
                let free = match held.get(&(p.topic.clone(), p.index)) {
                    Some((until, epoch)) => *until <= now || role.epoch() != *epoch,
                    None => true,
                };
                following && free
            })
            .cloned()
            .collect();
        if parts.is_empty() {
            // Nothing to fetch now: wait for a change of the share, or until the first held
            // partition may be asked for again (25 ms after a first refusal: waiting the full
            // backoff here cost a second of acks=all writes at every leadership move).
            let wake = next_wake(held.values().map(|(until, _)| *until), now, backoff);
            tokio::select! {
                r = share.changed() => if r.is_err() { return },
                _ = tokio::time::sleep_until(wake) => {}
            }
            continue;
        }
        if conn.is_none() {
            let Some((host, addr)) = broker_address(&broker, leader).await else {
                tokio::time::sleep(backoff).await;
                continue;
            };
            match broker
                .connector
                .connect(
                    &host,
                    addr,
                    &client_id,
                    timeout,
                    cfg.replica_fetch_response_max_bytes.max(1) as usize + (1 << 20),
                )
                .await
            {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    if broker.connector.is_tls() {
                        // A certificate problem would otherwise stall replication silently.
                        tracing::info!(leader, error = %e, "cannot reach the leader");
                    } else {
                        tracing::debug!(leader, error = %e, "cannot reach the leader");
                    }
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            }
        }
        let req = request(&broker, &parts);
        let c = conn.as_mut().expect("connected");
        let resp: FetchResponse = match c.call(ApiKey::Fetch, FETCH_VERSION, &req, wait).await {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(leader, error = %e, "fetch from the leader failed");
                conn = None;
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        if resp.error_code != 0 {
            tracing::info!(
                leader,
                error = resp.error_code,
                "the leader refused the fetch"
            );
            tokio::time::sleep(backoff).await;
            continue;
        }
        let me = broker.id;
        let asked: Vec<(String, i32)> = parts.iter().map(|p| (p.topic.clone(), p.index)).collect();
        let outcome = tokio::task::spawn_blocking(move || apply(resp, parts, me)).await;
        let Ok(troubles) = outcome else { continue };
        let now = Instant::now();
        for key in asked {
            if !troubles.iter().any(|(k, _)| *k == key) {
                failures.remove(&key);
            }
        }
        for (key, epoch) in troubles {
            let n = failures.entry(key.clone()).or_insert(0);
            *n += 1;
            held.insert(key, (now + retry_delay(*n, backoff), epoch));
        }
        held.retain(|_, (t, _)| *t > now - Duration::from_secs(60));
        failures.retain(|k, _| held.contains_key(k));
    }
}

/// When a fetcher with nothing to fetch looks again: when the first partition held back
/// (`held`: until when each is) may be asked for again, and at the latest after the backoff
/// (at least 100 ms).
fn next_wake(held: impl Iterator<Item = Instant>, now: Instant, backoff: Duration) -> Instant {
    let idle = now + backoff.max(Duration::from_millis(100));
    held.filter(|until| *until > now)
        .min()
        .map_or(idle, |until| until.min(idle))
}

/// How long a partition the leader refused waits before it is asked for again, after `n`
/// refusals in a row: 25 ms, doubling up to `replica.fetch.backoff.ms`. The common refusal is
/// brief — a new leader that has not yet taken up the epoch this follower already knows
/// (UNKNOWN_LEADER_EPOCH), or an old one that has just let it go — and while the follower
/// waits, the new leader's high watermark (and every acks=all write) waits with it.
fn retry_delay(n: u32, backoff: Duration) -> Duration {
    let first = Duration::from_millis(25);
    first
        .saturating_mul(1u32 << n.saturating_sub(1).min(16))
        .min(backoff.max(first))
}

/// The Fetch request for `parts`, each from its log end.
fn request(broker: &Broker, parts: &[Arc<Partition>]) -> FetchRequest {
    let cfg = &broker.config;
    let mut by_topic: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    for p in parts {
        let o = p.offsets();
        let mut fp = FetchPartition::default();
        fp.partition = p.index;
        fp.fetch_offset = o.log_end as i64;
        fp.log_start_offset = o.log_start as i64;
        fp.current_leader_epoch = p.role().epoch().unwrap_or(-1);
        fp.last_fetched_epoch = p.latest_epoch().unwrap_or(-1);
        fp.partition_max_bytes = cfg.replica_fetch_max_bytes;
        by_topic.entry(&p.topic).or_default().push(fp);
    }
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(broker.id);
    req.max_wait_ms = cfg.replica_fetch_wait_max_ms;
    req.min_bytes = cfg.replica_fetch_min_bytes;
    req.max_bytes = cfg.replica_fetch_response_max_bytes;
    req.session_id = 0;
    req.session_epoch = -1;
    req.topics = by_topic
        .into_iter()
        .map(|(t, partitions)| {
            let mut ft = FetchTopic::default();
            ft.topic = TopicName(StrBytes::from_string(t.to_string()));
            ft.partitions = partitions;
            ft
        })
        .collect();
    req
}

/// Applies one Fetch answer; returns the partitions to hold back (with the epoch they were in).
fn apply(
    resp: FetchResponse,
    parts: Vec<Arc<Partition>>,
    _me: i32,
) -> Vec<((String, i32), Option<i32>)> {
    let mut troubles = Vec::new();
    for t in resp.responses {
        let topic = t.topic.0.to_string();
        for pd in t.partitions {
            let Some(part) = parts
                .iter()
                .find(|p| p.topic == topic && p.index == pd.partition_index)
            else {
                continue;
            };
            let key = (topic.clone(), pd.partition_index);
            let epoch = part.role().epoch();
            let result = match ResponseError::try_from_code(pd.error_code) {
                None if pd.diverging_epoch.epoch >= 0 => {
                    // As in Kafka: to where the leader's epoch ends, or where this log's copy
                    // of that epoch ends if earlier. A follower that was briefly leader in a
                    // later epoch holds records of that epoch below the leader's end; cutting
                    // only at the leader's end would keep them, and the leader would answer
                    // the same divergence for ever.
                    let epoch = pd.diverging_epoch.epoch;
                    let leader_end = pd.diverging_epoch.end_offset.max(0) as u64;
                    let own_end = part
                        .end_offset_for_epoch(epoch)
                        .map_or(leader_end, |(_, end)| end);
                    let to = leader_end.min(own_end).min(part.offsets().log_end);
                    tracing::info!(
                        topic,
                        partition = pd.partition_index,
                        diverging_epoch = epoch,
                        leader_end,
                        truncate_to = to,
                        "follower log diverges from the leader's; truncating"
                    );
                    part.truncate_to(to).map(|_| ())
                }
                None => {
                    let records = pd.records.unwrap_or_default();
                    part.append_as_follower(
                        &records,
                        pd.high_watermark.max(0) as u64,
                        pd.log_start_offset.max(0) as u64,
                    )
                    .map(|_| part.counters().replicated_in(records.len() as u64))
                }
                Some(ResponseError::OffsetOutOfRange) => {
                    let o = part.offsets();
                    if pd.log_start_offset >= 0 && o.log_end < pd.log_start_offset as u64 {
                        tracing::info!(
                            topic,
                            partition = pd.partition_index,
                            from = o.log_end,
                            to = pd.log_start_offset,
                            "follower is behind the leader's log start; starting over there"
                        );
                        part.restart_at(pd.log_start_offset as u64)
                    } else if pd.high_watermark >= 0 && o.log_end > pd.high_watermark as u64 {
                        tracing::info!(topic, partition = pd.partition_index, from = o.log_end, to = pd.high_watermark,
                            "follower is past the leader's log end; truncating to its high watermark");
                        part.truncate_to(pd.high_watermark as u64).map(|_| ())
                    } else {
                        troubles.push((key, epoch));
                        continue;
                    }
                }
                Some(e) => {
                    tracing::debug!(topic, partition = pd.partition_index, error = ?e, "leader refused the partition; backing off");
                    troubles.push((key, epoch));
                    continue;
                }
            };
            if let Err(e) = result {
                tracing::warn!(topic, partition = pd.partition_index, error = %e, "follower append failed");
                troubles.push((key, epoch));
            }
        }
    }
    troubles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_fetcher_wakes_when_the_first_held_partition_is_due() {
        let now = Instant::now();
        let backoff = Duration::from_secs(1);
        let ms = Duration::from_millis;
        // A partition refused once is due in 25 ms: the fetcher looks again then, not after
        // the whole backoff.
        assert_eq!(
            next_wake([now + ms(25), now + ms(400)].into_iter(), now, backoff),
            now + ms(25)
        );
        // Nothing held (or only past entries): the backoff, at least 100 ms.
        assert_eq!(next_wake([now].into_iter(), now, backoff), now + backoff);
        assert_eq!(
            next_wake(std::iter::empty(), now, Duration::ZERO),
            now + ms(100)
        );
        // A hold longer than the backoff does not keep the fetcher asleep past it.
        assert_eq!(
            next_wake([now + ms(5000)].into_iter(), now, backoff),
            now + backoff
        );
    }

    #[test]
    fn refused_partitions_are_retried_soon_then_less_often() {
        let b = Duration::from_millis(1000);
        let d: Vec<u64> = (1..=8)
            .map(|n| retry_delay(n, b).as_millis() as u64)
            .collect();
        assert_eq!(d, [25, 50, 100, 200, 400, 800, 1000, 1000]);
        assert_eq!(retry_delay(u32::MAX, b), b);
        // A backoff configured below the first step is not made longer than 25 ms.
        assert_eq!(retry_delay(3, Duration::ZERO), Duration::from_millis(25));
    }
}
