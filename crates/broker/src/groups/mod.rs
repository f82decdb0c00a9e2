//! The classic consumer-group coordinator (JoinGroup/SyncGroup/Heartbeat/LeaveGroup, offsets).
//!
//! ```text
//!  group id ─► partition abs(javaHash(id)) % offsets.topic.num.partitions of __consumer_offsets
//!  leader of that partition = the group's coordinator; it loads the partition when it starts
//!  leading it (metadata change) and appends every commit / group change to it (records.rs)
//!
//!  Empty ──join──► PreparingRebalance ──all joined / rebalance timeout──► CompletingRebalance
//!    ▲                 ▲   │ (nobody left: Empty)                              │ leader's SyncGroup
//!    └─last leaves─────┴───┴───────── join, leave, session expiry ◄──────── Stable
//! ```
//!
//! All groups of a broker live under one mutex; requests that must wait (JoinGroup until the
//! rebalance completes, SyncGroup until the leader's assignment) get a oneshot channel. Timers
//! (session expiry, rebalance deadlines, the initial rebalance delay) are checked by
//! [`GroupCoordinator::tick`], which the broker calls every 100 ms. The broker only relays
//! member metadata and assignments, so every client-side assignor works.

pub mod loader;
pub mod records;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use records::{GroupValue, Key, MemberValue, OffsetValue};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka error codes used by the group APIs.
pub mod err {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_INSTANCE_ID: i16 = 82;
}

/// Kafka's `offset.metadata.max.bytes` default.
const OFFSET_METADATA_MAX_BYTES: usize = 4096;

/// `String.hashCode()` of Java, over UTF-16 code units.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition of `group` (Kafka's `Utils.abs(hash) % n`).
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let h = java_string_hash(group);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Group-coordinator settings from `server.properties`.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    pub offsets_partitions: i32,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub initial_rebalance_delay: Duration,
    pub offsets_retention: Duration,
}

impl GroupConfig {
    pub fn of(c: &sluice_config::BrokerConfig) -> GroupConfig {
        let ms = |v: u32| v.min(i32::MAX as u32) as i32;
        GroupConfig {
            offsets_partitions: c.offsets_topic_num_partitions,
            min_session_timeout_ms: ms(c.group_min_session_timeout_ms),
            max_session_timeout_ms: ms(c.group_max_session_timeout_ms),
            initial_rebalance_delay: Duration::from_millis(u64::from(
                c.group_initial_rebalance_delay_ms,
            )),
            offsets_retention: Duration::from_secs(
                (c.offsets_retention_minutes.max(1) as u64).saturating_mul(60),
            ),
        }
    }
}

/// Kafka's group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// What a JoinGroup request is answered with.
#[derive(Debug, Clone, Default)]
pub struct JoinOutcome {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub skip_assignment: bool,
    /// Filled for the leader only: member id, instance id, metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    fn error(error: i16, member_id: &str) -> JoinOutcome {
        JoinOutcome {
            error,
            generation: -1,
            member_id: member_id.to_string(),
            ..JoinOutcome::default()
        }
    }
}

/// What a SyncGroup request is answered with.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    fn error(error: i16) -> SyncOutcome {
        SyncOutcome {
            error,
            ..SyncOutcome::default()
        }
    }
}

/// A JoinGroup request, protocol-version independent.
#[derive(Debug, Clone)]
pub struct JoinArgs {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    /// `-1` (v0) means the session timeout.
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: an unknown member first gets a member id (MEMBER_ID_REQUIRED), then joins with it.
    pub require_known_member_id: bool,
}

/// A committed offset as cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// When this record was last appended to `__consumer_offsets` (at most: after a reload,
    /// its commit time). [`GroupCoordinator::refresh_offsets`] rewrites old ones.
    pub written_ms: i64,
}

impl Committed {
    /// Its `__consumer_offsets` record (key and value) for `group`, `topic`, `partition`.
    fn record(&self, group: &str, topic: &str, partition: i32) -> (Bytes, Option<Bytes>) {
        let key = Key::Offset {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
        };
        let value = OffsetValue {
            offset: self.offset,
            leader_epoch: self.leader_epoch,
            metadata: self.metadata.clone(),
            commit_timestamp: self.commit_timestamp,
        };
        (key.encode(), Some(value.encode()))
    }
}

/// Committed offsets per topic and partition (`None`: nothing committed).
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<Committed>)>)>;

/// One partition of an OffsetCommit request.
#[derive(Debug, Clone)]
pub struct CommitArgs {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberSummary {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group's members and committed offsets, as the lag metrics read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffsets {
    pub group: String,
    pub members: usize,
    /// `(topic, partition, committed offset)`, by topic and partition.
    pub offsets: Vec<(String, i32, i64)>,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    pub error: i16,
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberSummary>,
}

#[derive(Debug)]
struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
    heartbeat_deadline: Instant,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Kafka's `shouldKeepAlive`: members waiting for a join or sync answer do not expire.
    fn expired(&self, now: Instant) -> bool {
        self.join_waiter.is_none() && self.sync_waiter.is_none() && now >= self.heartbeat_deadline
    }
}

#[derive(Debug)]
struct Group {
    id: String,
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// group.instance.id → member id.
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they join or time out.
    pending: HashMap<String, Instant>,
    rebalance_deadline: Instant,
    /// While set, an initial rebalance of an empty group waits for more members.
    initial_delay_until: Option<Instant>,
    state_timestamp: i64,
    offsets: BTreeMap<(String, i32), Committed>,
}

impl Group {
    fn new(id: &str, now: Instant) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending: HashMap::new(),
            rebalance_deadline: now,
            initial_delay_until: None,
            state_timestamp: now_ms(),
            offsets: BTreeMap::new(),
        }
    }

    fn set_state(&mut self, s: GroupState) {
        self.state = s;
        self.state_timestamp = now_ms();
    }

    /// Protocols every member supports, each member voting for its most preferred one.
    fn select_protocol(&self) -> Option<String> {
        let mut common: Option<Vec<&str>> = None;
        for m in self.members.values() {
            let names: Vec<&str> = m.protocols.iter().map(|(n, _)| n.as_str()).collect();
            common = Some(match common {
                None => names,
                Some(c) => c.into_iter().filter(|n| names.contains(n)).collect(),
            });
        }
        let common = common?;
        let mut votes: Vec<(&str, usize)> = common.iter().map(|n| (*n, 0)).collect();
        for m in self.members.values() {
            if let Some((n, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| common.contains(&n.as_str()))
            {
                if let Some(v) = votes.iter_mut().find(|(c, _)| c == n) {
                    v.1 += 1;
                }
            }
        }
        // The highest count; ties go to the first common protocol (the first member's order).
        let mut best: Option<(&str, usize)> = None;
        for (n, c) in votes {
            if best.is_none_or(|(_, bc)| c > bc) {
                best = Some((n, c));
            }
        }
        best.map(|(n, _)| n.to_string())
    }

    fn supports(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
        except: Option<&str>,
    ) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        let others: Vec<&Member> = self
            .members
            .values()
            .filter(|m| Some(m.id.as_str()) != except)
            .collect();
        if others.is_empty() {
            return true;
        }
        if self
            .protocol_type
            .as_deref()
            .is_some_and(|t| t != protocol_type)
        {
            return false;
        }
        protocols.iter().any(|(n, _)| {
            others
                .iter()
                .all(|m| m.protocols.iter().any(|(mn, _)| mn == n))
        })
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    fn to_value(&self) -> GroupValue {
        let protocol = self.protocol.clone();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout: m.rebalance_timeout.as_millis() as i32,
                    session_timeout: m.session_timeout.as_millis() as i32,
                    subscription: protocol
                        .as_deref()
                        .map(|p| m.metadata_for(p))
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}

/// Where an append to `__consumer_offsets` ended, for a caller that waits until every in-sync
/// replica has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub partition: i32,
    /// The offset after the last record written.
    pub end: u64,
    /// The leader epoch it was written in.
    pub epoch: i32,
}

/// Appends records to a `__consumer_offsets` partition (locally, at once); `Err` carries a
/// Kafka error code. `Some` says where the append ended, when its replication can be awaited.
pub type Persist =
    Box<dyn Fn(i32, &[(Bytes, Option<Bytes>)]) -> Result<Option<Written>, i16> + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Loading,
    Loaded,
}

#[derive(Debug, Default)]
struct Inner {
    groups: HashMap<String, Group>,
    partitions: HashMap<i32, Load>,
}

/// Every group this broker coordinates.
pub struct GroupCoordinator {
    pub config: GroupConfig,
    inner: Mutex<Inner>,
    persist: Persist,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

enum Reply<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig, persist: Persist) -> GroupCoordinator {
        GroupCoordinator {
            config,
            inner: Mutex::new(Inner::default()),
            persist,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn partition_for(&self, group: &str) -> i32 {
        partition_for(group, self.config.offsets_partitions)
    }

    /// NONE when this broker coordinates `group` and has loaded its partition.
    fn check(&self, inner: &Inner, group: &str) -> i16 {
        if group.is_empty() {
            return err::INVALID_GROUP_ID;
        }
        match inner.partitions.get(&self.partition_for(group)) {
            Some(Load::Loaded) => err::NONE,
            Some(Load::Loading) => err::COORDINATOR_LOAD_IN_PROGRESS,
            None => err::NOT_COORDINATOR,
        }
    }

    /// The `__consumer_offsets` partitions loaded (or loading) here.
    pub fn owned_partitions(&self) -> HashSet<i32> {
        self.lock().partitions.keys().copied().collect()
    }

    /// Whether `partition`'s groups are loaded (not merely being loaded).
    pub fn is_loaded(&self, partition: i32) -> bool {
        self.lock().partitions.get(&partition) == Some(&Load::Loaded)
    }

    /// Marks `partition` as being loaded: its groups answer COORDINATOR_LOAD_IN_PROGRESS.
    pub fn begin_load(&self, partition: i32) {
        self.lock().partitions.insert(partition, Load::Loading);
    }

    /// Installs the groups read from `partition`: `(key, value)` records in log order.
    pub fn finish_load(&self, partition: i32, records: Vec<(Bytes, Option<Bytes>)>) {
        let now = Instant::now();
        let mut groups: HashMap<String, Group> = HashMap::new();
        for (k, v) in records {
            let key = match Key::decode(k) {
                Ok(k) => k,
                Err(e) => {
                    tracing::warn!(partition, error = %e, "skipping a record of {OFFSETS_TOPIC}");
                    continue;
                }
            };
            match (key, v) {
                (
                    Key::Offset {
                        group,
                        topic,
                        partition: p,
                    },
                    Some(v),
                ) => match OffsetValue::decode(v) {
                    Ok(o) => {
                        let g = groups
                            .entry(group.clone())
                            .or_insert_with(|| Group::new(&group, now));
                        g.offsets.insert(
                            (topic, p),
                            Committed {
                                offset: o.offset,
                                leader_epoch: o.leader_epoch,
                                metadata: o.metadata,
                                commit_timestamp: o.commit_timestamp,
                                written_ms: o.commit_timestamp,
                            },
                        );
                    }
                    Err(e) => tracing::warn!(group, error = %e, "skipping an offset record"),
                },
                (
                    Key::Offset {
                        group,
                        topic,
                        partition: p,
                    },
                    None,
                ) => {
                    if let Some(g) = groups.get_mut(&group) {
                        g.offsets.remove(&(topic, p));
                    }
                }
                (Key::Group { group }, Some(v)) => match GroupValue::decode(v) {
                    Ok(gv) => {
                        let g = groups
                            .entry(group.clone())
                            .or_insert_with(|| Group::new(&group, now));
                        g.generation = gv.generation;
                        g.protocol_type = Some(gv.protocol_type).filter(|t| !t.is_empty());
                        g.protocol = gv.protocol;
                        g.leader = gv.leader;
                        g.members.clear();
                        g.static_members.clear();
                        for m in gv.members {
                            if let Some(i) = &m.group_instance_id {
                                g.static_members.insert(i.clone(), m.member_id.clone());
                            }
                            let session = Duration::from_millis(m.session_timeout.max(0) as u64);
                            let protocols = g
                                .protocol
                                .clone()
                                .map(|p| vec![(p, m.subscription.clone())])
                                .unwrap_or_default();
                            g.members.insert(
                                m.member_id.clone(),
                                Member {
                                    id: m.member_id,
                                    instance_id: m.group_instance_id,
                                    client_id: m.client_id,
                                    client_host: m.client_host,
                                    session_timeout: session,
                                    rebalance_timeout: Duration::from_millis(
                                        m.rebalance_timeout.max(0) as u64,
                                    ),
                                    protocols,
                                    assignment: m.assignment,
                                    join_waiter: None,
                                    sync_waiter: None,
                                    heartbeat_deadline: now + session,
                                },
                            );
                        }
                        let state = if g.members.is_empty() {
                            GroupState::Empty
                        } else {
                            GroupState::Stable
                        };
                        g.set_state(state);
                    }
                    Err(e) => tracing::warn!(group, error = %e, "skipping a group record"),
                },
                (Key::Group { group }, None) => {
                    groups.remove(&group);
                }
            }
        }
        let mut inner = self.lock();
        if inner.partitions.get(&partition) != Some(&Load::Loading) {
            return; // unloaded meanwhile
        }
        let count = groups.len();
        inner
            .groups
            .retain(|id, _| partition_for(id, self.config.offsets_partitions) != partition);
        inner.groups.extend(groups);
        inner.partitions.insert(partition, Load::Loaded);
        tracing::info!(
            partition,
            groups = count,
            "loaded groups from {OFFSETS_TOPIC}"
        );
    }

    /// Forgets the groups of a partition this broker no longer leads; waiting requests get
    /// NOT_COORDINATOR.
    pub fn unload(&self, partition: i32) {
        let mut inner = self.lock();
        inner.partitions.remove(&partition);
        let n = self.config.offsets_partitions;
        inner
            .groups
            .retain(|id, _| partition_for(id, n) != partition);
        tracing::info!(
            partition,
            "no longer coordinating the groups of {OFFSETS_TOPIC}"
        );
    }

    fn write(
        &self,
        group: &str,
        entries: &[(Bytes, Option<Bytes>)],
    ) -> Result<Option<Written>, i16> {
        if entries.is_empty() {
            return Ok(None);
        }
        (self.persist)(self.partition_for(group), entries)
    }

    fn write_group(&self, g: &Group) {
        let key = Key::Group {
            group: g.id.clone(),
        }
        .encode();
        if let Err(code) = self.write(&g.id, &[(key, Some(g.to_value().encode()))]) {
            tracing::warn!(group = g.id, code, "cannot store the group metadata");
        }
    }

    // ----- rebalance machinery -----

    fn prepare_rebalance(&self, g: &mut Group, now: Instant) {
        if g.state == GroupState::CompletingRebalance {
            for m in g.members.values_mut() {
                m.assignment = Bytes::new();
            }
        }
        for m in g.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncOutcome::error(err::REBALANCE_IN_PROGRESS));
            }
        }
        let timeout = g
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        if g.state == GroupState::Empty && !self.config.initial_rebalance_delay.is_zero() {
            let delay = self.config.initial_rebalance_delay;
            g.initial_delay_until = Some(now + delay);
            g.rebalance_deadline = now + timeout.max(delay);
        } else {
            g.initial_delay_until = None;
            g.rebalance_deadline = now + timeout;
        }
        g.set_state(GroupState::PreparingRebalance);
        tracing::debug!(
            group = g.id,
            generation = g.generation,
            "preparing rebalance"
        );
    }

    fn maybe_complete_join(&self, g: &mut Group, now: Instant) {
        if g.state != GroupState::PreparingRebalance {
            return;
        }
        let delayed = g.initial_delay_until.is_some_and(|t| now < t);
        if (g.all_joined() && !delayed) || now >= g.rebalance_deadline {
            self.complete_join(g, now);
        }
    }

    fn complete_join(&self, g: &mut Group, now: Instant) {
        g.initial_delay_until = None;
        g.pending.clear();
        let gone: Vec<String> = g
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member_entry(g, &id);
        }
        g.generation += 1;
        if g.members.is_empty() {
            g.protocol = None;
            g.leader = None;
            g.set_state(GroupState::Empty);
            self.write_group(g);
            tracing::info!(group = g.id, generation = g.generation, "group is empty");
            return;
        }
        let protocol = g.select_protocol();
        g.protocol = protocol.clone();
        if !g.leader.as_ref().is_some_and(|l| g.members.contains_key(l)) {
            g.leader = g.members.keys().next().cloned();
        }
        g.set_state(GroupState::CompletingRebalance);
        let leader = g.leader.clone().unwrap_or_default();
        let p = protocol.clone().unwrap_or_default();
        let all: Vec<(String, Option<String>, Bytes)> = g
            .members
            .values()
            .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata_for(&p)))
            .collect();
        for m in g.members.values_mut() {
            m.heartbeat_deadline = now + m.session_timeout;
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinOutcome {
                    error: err::NONE,
                    generation: g.generation,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: protocol.clone(),
                    leader: leader.clone(),
                    member_id: m.id.clone(),
                    skip_assignment: false,
                    members: if m.id == leader {
                        all.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
        tracing::info!(
            group = g.id,
            generation = g.generation,
            members = g.members.len(),
            protocol = ?protocol,
            "rebalance: join completed"
        );
    }

    fn remove_member_entry(&self, g: &mut Group, id: &str) -> Option<Member> {
        let m = g.members.remove(id)?;
        if let Some(i) = &m.instance_id {
            if g.static_members.get(i).is_some_and(|mid| mid == id) {
                g.static_members.remove(i);
            }
        }
        if g.leader.as_deref() == Some(id) {
            g.leader = g.members.keys().next().cloned();
        }
        Some(m)
    }

    /// Removes a member and moves the group on, as Kafka's `removeMemberAndUpdateGroup`.
    fn remove_member(&self, g: &mut Group, id: &str, now: Instant) {
        if let Some(mut m) = self.remove_member_entry(g, id) {
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinOutcome::error(err::UNKNOWN_MEMBER_ID, id));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncOutcome::error(err::UNKNOWN_MEMBER_ID));
            }
        }
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(g, now),
            GroupState::PreparingRebalance => self.maybe_complete_join(g, now),
            _ => {}
        }
        if g.state == GroupState::PreparingRebalance {
            self.maybe_complete_join(g, now);
        }
    }

    /// Timers: session expiry, pending member ids, rebalance deadlines.
    pub fn tick(&self, now: Instant) {
        let mut inner = self.lock();
        for g in inner.groups.values_mut() {
            g.pending.retain(|_, deadline| now < *deadline);
            let expired: Vec<String> = g
                .members
                .values()
                .filter(|m| m.expired(now))
                .map(|m| m.id.clone())
                .collect();
            for id in expired {
                tracing::info!(group = g.id, member = id, "member session expired");
                self.remove_member(g, &id, now);
            }
            self.maybe_complete_join(g, now);
        }
    }

    // ----- APIs -----

    pub async fn join(&self, a: JoinArgs) -> JoinOutcome {
        let member_id = a.member_id.clone();
        match self.join_now(a, Instant::now()) {
            Reply::Now(o) => o,
            Reply::Wait(rx) => rx
                .await
                .unwrap_or_else(|_| JoinOutcome::error(err::NOT_COORDINATOR, &member_id)),
        }
    }

    fn join_now(&self, a: JoinArgs, now: Instant) -> Reply<JoinOutcome> {
        let mut inner = self.lock();
        let e = self.check(&inner, &a.group_id);
        if e != err::NONE {
            return Reply::Now(JoinOutcome::error(e, &a.member_id));
        }
        if a.session_timeout_ms < self.config.min_session_timeout_ms
            || a.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return Reply::Now(JoinOutcome::error(
                err::INVALID_SESSION_TIMEOUT,
                &a.member_id,
            ));
        }
        let g = inner
            .groups
            .entry(a.group_id.clone())
            .or_insert_with(|| Group::new(&a.group_id, now));
        if g.state == GroupState::Dead {
            return Reply::Now(JoinOutcome::error(
                err::COORDINATOR_NOT_AVAILABLE,
                &a.member_id,
            ));
        }
        let known = !a.member_id.is_empty();
        let except = known.then_some(a.member_id.as_str());
        if !g.supports(&a.protocol_type, &a.protocols, except) {
            return Reply::Now(JoinOutcome::error(
                err::INCONSISTENT_GROUP_PROTOCOL,
                &a.member_id,
            ));
        }
        let session = Duration::from_millis(a.session_timeout_ms.max(0) as u64);
        let rebalance = if a.rebalance_timeout_ms < 0 {
            session
        } else {
            Duration::from_millis(a.rebalance_timeout_ms as u64)
        };

        // A static member's id is looked up by its instance id.
        if let Some(instance) = &a.group_instance_id {
            if let Some(existing) = g.static_members.get(instance).cloned() {
                if !known {
                    // A restarted static member: it takes over the old member's place.
                    let new_id = format!("{instance}-{}", uuid::Uuid::new_v4());
                    let Some(mut old) = g.members.remove(&existing) else {
                        g.static_members.remove(instance);
                        return self.add_and_join(g, a, new_id, session, rebalance, now);
                    };
                    if let Some(w) = old.join_waiter.take() {
                        let _ = w.send(JoinOutcome::error(err::FENCED_INSTANCE_ID, &existing));
                    }
                    if let Some(w) = old.sync_waiter.take() {
                        let _ = w.send(SyncOutcome::error(err::FENCED_INSTANCE_ID));
                    }
                    let was_leader = g.leader.as_deref() == Some(existing.as_str());
                    let same_protocols = old.protocols == a.protocols
                        || g.protocol.as_ref().is_some_and(|p| {
                            old.metadata_for(p)
                                == a.protocols
                                    .iter()
                                    .find(|(n, _)| n == p)
                                    .map(|(_, m)| m.clone())
                                    .unwrap_or_default()
                        });
                    old.id = new_id.clone();
                    old.client_id = a.client_id.clone();
                    old.client_host = a.client_host.clone();
                    old.session_timeout = session;
                    old.rebalance_timeout = rebalance;
                    old.protocols = a.protocols.clone();
                    old.heartbeat_deadline = now + session;
                    g.members.insert(new_id.clone(), old);
                    g.static_members.insert(instance.clone(), new_id.clone());
                    if was_leader {
                        g.leader = Some(new_id.clone());
                    }
                    if g.state == GroupState::Stable && same_protocols && !was_leader {
                        // No rebalance: the member gets its old assignment through SyncGroup.
                        return Reply::Now(JoinOutcome {
                            error: err::NONE,
                            generation: g.generation,
                            protocol_type: g.protocol_type.clone(),
                            protocol_name: g.protocol.clone(),
                            leader: g.leader.clone().unwrap_or_default(),
                            member_id: new_id,
                            skip_assignment: false,
                            members: Vec::new(),
                        });
                    }
                    return self.update_and_join(g, &new_id, a.protocols, now);
                }
                if existing != a.member_id {
                    return Reply::Now(JoinOutcome::error(err::FENCED_INSTANCE_ID, &a.member_id));
                }
            } else if known
                && !g.members.contains_key(&a.member_id)
                && !g.pending.contains_key(&a.member_id)
            {
                return Reply::Now(JoinOutcome::error(err::UNKNOWN_MEMBER_ID, &a.member_id));
            } else if !known {
                let new_id = format!("{instance}-{}", uuid::Uuid::new_v4());
                return self.add_and_join(g, a, new_id, session, rebalance, now);
            }
        }

        if !known {
            let prefix = if a.client_id.is_empty() {
                "consumer"
            } else {
                a.client_id.as_str()
            };
            let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
            if a.require_known_member_id {
                g.pending.insert(new_id.clone(), now + session);
                return Reply::Now(JoinOutcome::error(err::MEMBER_ID_REQUIRED, &new_id));
            }
            return self.add_and_join(g, a, new_id, session, rebalance, now);
        }
        if g.pending.remove(&a.member_id).is_some() {
            let id = a.member_id.clone();
            return self.add_and_join(g, a, id, session, rebalance, now);
        }
        let Some(m) = g.members.get_mut(&a.member_id) else {
            return Reply::Now(JoinOutcome::error(err::UNKNOWN_MEMBER_ID, &a.member_id));
        };
        m.session_timeout = session;
        m.rebalance_timeout = rebalance;
        m.client_id = a.client_id.clone();
        m.client_host = a.client_host.clone();
        match g.state {
            GroupState::PreparingRebalance => {
                self.update_and_join(g, &a.member_id, a.protocols, now)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                let same = m.protocols == a.protocols;
                let is_leader = g.leader.as_deref() == Some(a.member_id.as_str());
                if same && (g.state == GroupState::CompletingRebalance || !is_leader) {
                    // Nothing changed: the current generation again.
                    m.heartbeat_deadline = now + m.session_timeout;
                    let p = g.protocol.clone().unwrap_or_default();
                    let members = if is_leader {
                        g.members
                            .values()
                            .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata_for(&p)))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    return Reply::Now(JoinOutcome {
                        error: err::NONE,
                        generation: g.generation,
                        protocol_type: g.protocol_type.clone(),
                        protocol_name: g.protocol.clone(),
                        leader: g.leader.clone().unwrap_or_default(),
                        member_id: a.member_id,
                        skip_assignment: false,
                        members,
                    });
                }
                self.update_and_join(g, &a.member_id, a.protocols, now)
            }
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(JoinOutcome::error(err::UNKNOWN_MEMBER_ID, &a.member_id))
            }
        }
    }

    fn add_and_join(
        &self,
        g: &mut Group,
        a: JoinArgs,
        id: String,
        session: Duration,
        rebalance: Duration,
        now: Instant,
    ) -> Reply<JoinOutcome> {
        if g.members.is_empty() {
            g.protocol_type = Some(a.protocol_type.clone());
        }
        if let Some(i) = &a.group_instance_id {
            g.static_members.insert(i.clone(), id.clone());
        }
        g.members.insert(
            id.clone(),
            Member {
                id: id.clone(),
                instance_id: a.group_instance_id.clone(),
                client_id: a.client_id,
                client_host: a.client_host,
                session_timeout: session,
                rebalance_timeout: rebalance,
                protocols: Vec::new(),
                assignment: Bytes::new(),
                join_waiter: None,
                sync_waiter: None,
                heartbeat_deadline: now + session,
            },
        );
        // A new member during the initial delay extends it (up to the rebalance deadline).
        if let Some(until) = g.initial_delay_until {
            let later = (now + self.config.initial_rebalance_delay).min(g.rebalance_deadline);
            g.initial_delay_until = Some(until.max(later));
        }
        self.update_and_join(g, &id, a.protocols, now)
    }

    fn update_and_join(
        &self,
        g: &mut Group,
        id: &str,
        protocols: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Reply<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if let Some(m) = g.members.get_mut(id) {
            m.protocols = protocols;
            if let Some(old) = m.join_waiter.replace(tx) {
                let _ = old.send(JoinOutcome::error(err::REBALANCE_IN_PROGRESS, id));
            }
        }
        if matches!(
            g.state,
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(g, now);
        }
        self.maybe_complete_join(g, now);
        Reply::Wait(rx)
    }

    pub async fn sync(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol: Option<(Option<String>, Option<String>)>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncOutcome {
        let r = self.sync_now(
            group_id,
            generation,
            member_id,
            instance_id,
            protocol,
            assignments,
        );
        match r {
            Reply::Now(o) => o,
            Reply::Wait(rx) => rx
                .await
                .unwrap_or_else(|_| SyncOutcome::error(err::NOT_COORDINATOR)),
        }
    }

    fn sync_now(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol: Option<(Option<String>, Option<String>)>,
        assignments: Vec<(String, Bytes)>,
    ) -> Reply<SyncOutcome> {
        let mut inner = self.lock();
        let e = self.check(&inner, group_id);
        if e != err::NONE {
            return Reply::Now(SyncOutcome::error(e));
        }
        let Some(g) = inner.groups.get_mut(group_id) else {
            return Reply::Now(SyncOutcome::error(err::UNKNOWN_MEMBER_ID));
        };
        if let Some(e) = member_error(g, member_id, instance_id) {
            return Reply::Now(SyncOutcome::error(e));
        }
        if generation != g.generation {
            return Reply::Now(SyncOutcome::error(err::ILLEGAL_GENERATION));
        }
        if let Some((pt, pn)) = &protocol {
            if pt
                .as_ref()
                .is_some_and(|t| Some(t) != g.protocol_type.as_ref())
                || pn.as_ref().is_some_and(|n| Some(n) != g.protocol.as_ref())
            {
                return Reply::Now(SyncOutcome::error(err::INCONSISTENT_GROUP_PROTOCOL));
            }
        }
        let ok = |g: &Group, assignment: Bytes| SyncOutcome {
            error: err::NONE,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol.clone(),
            assignment,
        };
        match g.state {
            GroupState::Empty | GroupState::Dead => {
                Reply::Now(SyncOutcome::error(err::UNKNOWN_MEMBER_ID))
            }
            GroupState::PreparingRebalance => {
                Reply::Now(SyncOutcome::error(err::REBALANCE_IN_PROGRESS))
            }
            GroupState::Stable => {
                let a = g
                    .members
                    .get(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                Reply::Now(ok(g, a))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = g.members.get_mut(member_id) {
                    m.sync_waiter = Some(tx);
                }
                if g.leader.as_deref() == Some(member_id) {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in g.members.values_mut() {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                    }
                    g.set_state(GroupState::Stable);
                    self.write_group(g);
                    let now = Instant::now();
                    let pt = g.protocol_type.clone();
                    let pn = g.protocol.clone();
                    for m in g.members.values_mut() {
                        m.heartbeat_deadline = now + m.session_timeout;
                        if let Some(w) = m.sync_waiter.take() {
                            let _ = w.send(SyncOutcome {
                                error: err::NONE,
                                protocol_type: pt.clone(),
                                protocol_name: pn.clone(),
                                assignment: m.assignment.clone(),
                            });
                        }
                    }
                    tracing::info!(
                        group = g.id,
                        generation = g.generation,
                        "rebalance: group is stable"
                    );
                }
                Reply::Wait(rx)
            }
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> i16 {
        let mut inner = self.lock();
        let e = self.check(&inner, group_id);
        if e != err::NONE {
            return e;
        }
        let Some(g) = inner.groups.get_mut(group_id) else {
            return err::UNKNOWN_MEMBER_ID;
        };
        if let Some(e) = member_error(g, member_id, instance_id) {
            return e;
        }
        match g.state {
            GroupState::Empty => return err::UNKNOWN_MEMBER_ID,
            GroupState::Dead => return err::COORDINATOR_NOT_AVAILABLE,
            _ => {}
        }
        if generation != g.generation {
            return err::ILLEGAL_GENERATION;
        }
        let now = Instant::now();
        if let Some(m) = g.members.get_mut(member_id) {
            m.heartbeat_deadline = now + m.session_timeout;
        }
        if g.state == GroupState::PreparingRebalance {
            err::REBALANCE_IN_PROGRESS
        } else {
            err::NONE
        }
    }

    /// Removes members; `(member_id, instance_id)` each, answered with an error code each.
    /// The first element is the group-level error.
    pub fn leave(&self, group_id: &str, members: &[(String, Option<String>)]) -> (i16, Vec<i16>) {
        let mut inner = self.lock();
        let e = self.check(&inner, group_id);
        if e != err::NONE {
            return (e, Vec::new());
        }
        let Some(g) = inner.groups.get_mut(group_id) else {
            return (err::NONE, vec![err::UNKNOWN_MEMBER_ID; members.len()]);
        };
        let now = Instant::now();
        let mut codes = Vec::new();
        for (mid, instance) in members {
            let id = match instance {
                Some(i) => match g.static_members.get(i) {
                    Some(existing) if mid.is_empty() || existing == mid => Some(existing.clone()),
                    Some(_) => {
                        codes.push(err::FENCED_INSTANCE_ID);
                        continue;
                    }
                    None => None,
                },
                None => Some(mid.clone()),
            };
            match id {
                Some(id) if g.members.contains_key(&id) => {
                    tracing::info!(group = g.id, member = id, "member left");
                    self.remove_member(g, &id, now);
                    codes.push(err::NONE);
                }
                Some(id) if g.pending.remove(&id).is_some() => {
                    self.maybe_complete_join(g, now);
                    codes.push(err::NONE);
                }
                _ => codes.push(err::UNKNOWN_MEMBER_ID),
            }
        }
        (err::NONE, codes)
    }

    /// Stores offsets; returns one error code per partition (a group-level error repeats), and
    /// where the records were appended: the commit is acknowledged only once every in-sync
    /// replica has them (the caller waits, without this coordinator's lock).
    pub fn commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        offsets: &[CommitArgs],
        known_topic: &dyn Fn(&str, i32) -> bool,
    ) -> (Vec<i16>, Option<Written>) {
        let mut inner = self.lock();
        let mut e = self.check(&inner, group_id);
        let now = Instant::now();
        if e == err::NONE && generation >= 0 && !inner.groups.contains_key(group_id) {
            // A generation of a group that does not exist (any more): as Kafka.
            e = err::ILLEGAL_GENERATION;
        }
        if e == err::NONE {
            let g = inner
                .groups
                .entry(group_id.to_string())
                .or_insert_with(|| Group::new(group_id, now));
            if generation < 0 {
                // A commit from outside group management (admin tools, assign()-only
                // consumers): only while the group has no members.
                if !g.members.is_empty() {
                    e = err::UNKNOWN_MEMBER_ID;
                }
            } else if let Some(me) = member_error(g, member_id, instance_id) {
                e = me;
            } else if generation != g.generation {
                e = err::ILLEGAL_GENERATION;
            } else if g.state == GroupState::CompletingRebalance {
                e = err::REBALANCE_IN_PROGRESS;
            } else if let Some(m) = g.members.get_mut(member_id) {
                m.heartbeat_deadline = now + m.session_timeout;
            }
        }
        if e != err::NONE {
            return (vec![e; offsets.len()], None);
        }
        let ts = now_ms();
        let mut codes = Vec::with_capacity(offsets.len());
        let mut entries = Vec::new();
        let mut accepted = Vec::new();
        for o in offsets {
            let md = o.metadata.clone().unwrap_or_default();
            if md.len() > OFFSET_METADATA_MAX_BYTES {
                codes.push(err::OFFSET_METADATA_TOO_LARGE);
            } else if !known_topic(&o.topic, o.partition) {
                codes.push(err::UNKNOWN_TOPIC_OR_PARTITION);
            } else {
                codes.push(err::NONE);
                let c = Committed {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata: md,
                    commit_timestamp: ts,
                    written_ms: ts,
                };
                entries.push(c.record(group_id, &o.topic, o.partition));
                accepted.push((codes.len() - 1, (o.topic.clone(), o.partition), c));
            }
        }
        let written = match self.write(group_id, &entries) {
            Ok(w) => w,
            Err(code) => {
                for (i, _, _) in &accepted {
                    codes[*i] = code;
                }
                return (codes, None);
            }
        };
        if let Some(g) = inner.groups.get_mut(group_id) {
            for (_, tp, c) in accepted {
                g.offsets.insert(tp, c);
            }
        }
        (codes, written)
    }

    /// Committed offsets of `group`: all of them (`None`) or the partitions asked for.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> Result<FetchedOffsets, i16> {
        let inner = self.lock();
        let e = self.check(&inner, group_id);
        if e != err::NONE {
            return Err(e);
        }
        let g = inner.groups.get(group_id);
        Ok(match wanted {
            Some(topics) => topics
                .into_iter()
                .map(|(t, ps)| {
                    let parts = ps
                        .into_iter()
                        .map(|p| (p, g.and_then(|g| g.offsets.get(&(t.clone(), p)).cloned())))
                        .collect();
                    (t, parts)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<Committed>)>> = BTreeMap::new();
                if let Some(g) = g {
                    for ((t, p), c) in &g.offsets {
                        by_topic
                            .entry(t.clone())
                            .or_default()
                            .push((*p, Some(c.clone())));
                    }
                }
                by_topic.into_iter().collect()
            }
        })
    }

    /// Every group coordinated here with its member count and committed offsets, by group
    /// id (what the lag metrics read; no records are read for it).
    pub fn committed(&self) -> Vec<GroupOffsets> {
        let inner = self.lock();
        let mut v: Vec<GroupOffsets> = inner
            .groups
            .values()
            .filter(|g| inner.partitions.get(&self.partition_for(&g.id)) == Some(&Load::Loaded))
            .map(|g| GroupOffsets {
                group: g.id.clone(),
                members: g.members.len(),
                offsets: g
                    .offsets
                    .iter()
                    .map(|((t, p), c)| (t.clone(), *p, c.offset))
                    .collect(),
            })
            .collect();
        v.sort_by(|a, b| a.group.cmp(&b.group));
        v
    }

    /// `(group, protocol type, state)` of every group coordinated here.
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        let inner = self.lock();
        let mut v: Vec<_> = inner
            .groups
            .values()
            .filter(|g| inner.partitions.get(&self.partition_for(&g.id)) == Some(&Load::Loaded))
            .map(|g| {
                (
                    g.id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state,
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn describe(&self, group_id: &str) -> GroupSummary {
        let inner = self.lock();
        let e = self.check(&inner, group_id);
        let dead = |error| GroupSummary {
            error,
            state: GroupState::Dead,
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
        };
        if e != err::NONE {
            return dead(e);
        }
        let Some(g) = inner.groups.get(group_id) else {
            return dead(err::NONE);
        };
        let stable = g.state == GroupState::Stable;
        let p = g.protocol.clone().unwrap_or_default();
        GroupSummary {
            error: err::NONE,
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable { p.clone() } else { String::new() },
            members: g
                .members
                .values()
                .map(|m| MemberSummary {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&p)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    /// Deletes an empty group and its offsets (tombstones in `__consumer_offsets`).
    pub fn delete(&self, group_id: &str) -> i16 {
        let mut inner = self.lock();
        let e = self.check(&inner, group_id);
        if e != err::NONE {
            return e;
        }
        let Some(g) = inner.groups.get(group_id) else {
            return err::GROUP_ID_NOT_FOUND;
        };
        if g.state != GroupState::Empty {
            return err::NON_EMPTY_GROUP;
        }
        let mut entries: Vec<(Bytes, Option<Bytes>)> = g
            .offsets
            .keys()
            .map(|(t, p)| {
                let k = Key::Offset {
                    group: group_id.to_string(),
                    topic: t.clone(),
                    partition: *p,
                };
                (k.encode(), None)
            })
            .collect();
        entries.push((
            Key::Group {
                group: group_id.to_string(),
            }
            .encode(),
            None,
        ));
        if let Err(code) = self.write(group_id, &entries) {
            return code;
        }
        inner.groups.remove(group_id);
        tracing::info!(group = group_id, "deleted group");
        err::NONE
    }

    /// Appends again, unchanged, every committed offset last written more than `max_age_ms`
    /// ago. `__consumer_offsets` is not compacted, so time retention deletes its old segments;
    /// rewriting live offsets well within the retention keeps a copy of each in the newer
    /// segments, and a reload (restart, new coordinator) still finds every one. Returns how
    /// many were rewritten.
    pub fn refresh_offsets(&self, now_ms: i64, max_age_ms: i64) -> usize {
        let mut inner = self.lock();
        let ids: Vec<String> = inner.groups.keys().cloned().collect();
        let mut total = 0;
        for id in ids {
            if inner.partitions.get(&self.partition_for(&id)) != Some(&Load::Loaded) {
                continue;
            }
            let Some(g) = inner.groups.get_mut(&id) else {
                continue;
            };
            let (stale, entries): (Vec<_>, Vec<_>) = g
                .offsets
                .iter()
                .filter(|(_, c)| c.written_ms.saturating_add(max_age_ms) <= now_ms)
                .map(|((t, p), c)| ((t.clone(), *p), c.record(&id, t, *p)))
                .unzip();
            if stale.is_empty() {
                continue;
            }
            if self.write(&id, &entries).is_err() {
                continue;
            }
            for k in &stale {
                if let Some(c) = g.offsets.get_mut(k) {
                    c.written_ms = now_ms;
                }
            }
            total += stale.len();
        }
        if total > 0 {
            tracing::info!(
                offsets = total,
                "rewrote committed offsets ahead of retention"
            );
        }
        total
    }

    /// `offsets.retention.minutes`: drops offsets of empty groups committed longer ago than
    /// the retention, and empty groups left without offsets.
    pub fn expire_offsets(&self, now_ms: i64) {
        let retention =
            i64::try_from(self.config.offsets_retention.as_millis()).unwrap_or(i64::MAX);
        let mut inner = self.lock();
        let mut dead_groups = Vec::new();
        let ids: Vec<String> = inner.groups.keys().cloned().collect();
        for id in ids {
            if inner.partitions.get(&self.partition_for(&id)) != Some(&Load::Loaded) {
                continue;
            }
            let Some(g) = inner.groups.get_mut(&id) else {
                continue;
            };
            if g.state != GroupState::Empty {
                continue;
            }
            let old: Vec<(String, i32)> = g
                .offsets
                .iter()
                .filter(|(_, c)| c.commit_timestamp.saturating_add(retention) <= now_ms)
                .map(|(k, _)| k.clone())
                .collect();
            let mut entries: Vec<(Bytes, Option<Bytes>)> = old
                .iter()
                .map(|(t, p)| {
                    let k = Key::Offset {
                        group: id.clone(),
                        topic: t.clone(),
                        partition: *p,
                    };
                    (k.encode(), None)
                })
                .collect();
            let now_empty = g.offsets.len() == old.len();
            if now_empty {
                entries.push((Key::Group { group: id.clone() }.encode(), None));
            }
            if entries.is_empty() {
                continue;
            }
            if self.write(&id, &entries).is_err() {
                continue;
            }
            for k in &old {
                g.offsets.remove(k);
            }
            if !old.is_empty() {
                tracing::info!(group = id, expired = old.len(), "expired committed offsets");
            }
            if now_empty {
                dead_groups.push(id);
            }
        }
        for id in dead_groups {
            inner.groups.remove(&id);
        }
    }
}

/// UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID checks shared by SyncGroup, Heartbeat, OffsetCommit.
fn member_error(g: &Group, member_id: &str, instance_id: Option<&str>) -> Option<i16> {
    if let Some(i) = instance_id {
        match g.static_members.get(i) {
            Some(id) if id != member_id => return Some(err::FENCED_INSTANCE_ID),
            None => return Some(err::UNKNOWN_MEMBER_ID),
            _ => {}
        }
    }
    if !g.members.contains_key(member_id) {
        return Some(err::UNKNOWN_MEMBER_ID);
    }
    None
}

/// The production `Persist`: one record batch appended to the partition's log as leader.
/// Appends to the partition as its leader, refusing when it has fewer in-sync replicas than
/// `min_isr` (what Kafka's `acks=all` append of the coordinator checks).
pub fn log_persist(parts: Arc<crate::replica::ReplicaManager>, min_isr: usize) -> Persist {
    Box::new(move |partition, entries| {
        let Some(part) = parts.get(OFFSETS_TOPIC, partition) else {
            return Err(err::NOT_COORDINATOR);
        };
        let me = parts.broker_id;
        let batch = records::encode_batch(entries, now_ms()).map_err(|e| {
            tracing::error!(error = %e, "cannot encode a {OFFSETS_TOPIC} batch");
            err::UNKNOWN_SERVER_ERROR
        })?;
        // Counted as Kafka counts the coordinator's appends: produce requests to the topic.
        part.counters().produce_request();
        let appended = part.append_as_leader(&batch, Some(min_isr), me);
        match &appended {
            Ok(a) => part
                .counters()
                .appended(batch.len() as u64, a.last_offset + 1 - a.base_offset),
            Err(e) => part
                .counters()
                .produce_refused(crate::api::partition_error(e), batch.len() as u64),
        }
        appended
            .map(|a| {
                Some(Written {
                    partition,
                    end: a.last_offset + 1,
                    epoch: a.epoch,
                })
            })
            .map_err(|e| match e {
                crate::replica::PartitionError::NotLeader { .. } => err::NOT_COORDINATOR,
                e => {
                    tracing::warn!(partition, error = %e, "cannot append to {OFFSETS_TOPIC}");
                    err::COORDINATOR_NOT_AVAILABLE
                }
            })
    })
}

#[cfg(test)]
mod tests;
