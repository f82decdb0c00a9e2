//! The classic consumer-group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups. They turn
//! requests of every served version into calls on [`crate::groups::GroupCoordinator`] and its
//! answers back into the version's layout.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, RequestHeader, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::groups::{err, CommitArgs, Committed, FetchedOffsets, JoinArgs, OFFSETS_TOPIC};
use crate::Broker;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// `(error, node id, host, port)` of the coordinator of `key` as seen through `listener`.
async fn coordinator_of(
    broker: &Broker,
    listener: &str,
    key_type: i8,
    key: &str,
) -> (i16, i32, String, i32) {
    let none = |e| (e, -1, String::new(), -1);
    if key_type != 0 {
        // Transactions are not coordinated yet.
        return none(err::COORDINATOR_NOT_AVAILABLE);
    }
    if key.is_empty() {
        return none(err::INVALID_GROUP_ID);
    }
    let p = broker.groups.partition_for(key);
    if !broker.cluster.metadata().topics.contains_key(OFFSETS_TOPIC) {
        if let Err(e) = create_offsets_topic(broker).await {
            tracing::warn!(error = %e, "cannot create {OFFSETS_TOPIC}");
            return none(err::COORDINATOR_NOT_AVAILABLE);
        }
        broker
            .cluster
            .wait_for_leaders(OFFSETS_TOPIC, Duration::from_secs(5))
            .await;
    }
    let m = broker.cluster.metadata();
    let Some(leader) = m
        .topics
        .get(OFFSETS_TOPIC)
        .and_then(|t| t.partitions.get(&p))
        .and_then(|pm| pm.leader())
    else {
        return none(err::COORDINATOR_NOT_AVAILABLE);
    };
    let Some(ep) = m.brokers.get(&leader).and_then(|reg| {
        reg.parsed_endpoints()
            .into_iter()
            .find(|e| e.listener == listener)
    }) else {
        return none(err::COORDINATOR_NOT_AVAILABLE);
    };
    (err::NONE, leader, ep.host, ep.port)
}

/// `__consumer_offsets` with `offsets.topic.num.partitions` partitions, compacted. As in Kafka,
/// not while fewer brokers than `offsets.topic.replication.factor` are registered (FindCoordinator
/// answers COORDINATOR_NOT_AVAILABLE meanwhile, and clients retry).
async fn create_offsets_topic(broker: &Broker) -> Result<(), crate::cluster::ClusterError> {
    let live = broker.cluster.metadata().brokers.len() as i16;
    let rf = broker.config.offsets_topic_replication_factor.max(1);
    if live < rf {
        tracing::info!(
            live_brokers = live,
            replication_factor = rf,
            "not creating {OFFSETS_TOPIC} yet: fewer live brokers than offsets.topic.replication.factor"
        );
        return Ok(());
    }
    let mut config = BTreeMap::new();
    config.insert("cleanup.policy".to_string(), "compact".to_string());
    match broker
        .cluster
        .create_topic(
            OFFSETS_TOPIC,
            broker.config.offsets_topic_num_partitions,
            rf,
            config,
        )
        .await?
    {
        Ok(()) => tracing::info!(
            partitions = broker.config.offsets_topic_num_partitions,
            replication_factor = rf,
            "created {OFFSETS_TOPIC}"
        ),
        Err(e) => tracing::debug!(?e, "creating {OFFSETS_TOPIC} raced"),
    }
    Ok(())
}

pub async fn find_coordinator(
    broker: &Broker,
    listener: &str,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let mut resp = FindCoordinatorResponse::default();
    let key_type = if version >= 1 { req.key_type } else { 0 };
    if version >= 4 {
        for key in req.coordinator_keys {
            let (e, node, host, port) = coordinator_of(broker, listener, key_type, &key).await;
            let mut c = Coordinator::default();
            c.key = key;
            c.error_code = e;
            c.node_id = BrokerId(node);
            c.host = s(host);
            c.port = port;
            resp.coordinators.push(c);
        }
    } else {
        let (e, node, host, port) = coordinator_of(broker, listener, key_type, &req.key).await;
        resp.error_code = e;
        resp.node_id = BrokerId(node);
        resp.host = s(host);
        resp.port = port;
    }
    resp
}

pub async fn join_group(
    broker: &Broker,
    header: &RequestHeader,
    peer: SocketAddr,
    version: i16,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    let args = JoinArgs {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: if version >= 5 {
            req.group_instance_id.map(|i| i.to_string())
        } else {
            None
        },
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: format!("/{}", peer.ip()),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms
        } else {
            -1
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let o = broker.groups.join(args).await;
    let mut r = JoinGroupResponse::default();
    r.error_code = o.error;
    r.generation_id = o.generation;
    if version >= 7 {
        r.protocol_type = o.protocol_type.map(s);
        r.protocol_name = o.protocol_name.map(s);
    } else {
        r.protocol_name = Some(s(o.protocol_name.unwrap_or_default()));
    }
    r.leader = s(o.leader);
    r.skip_assignment = version >= 9 && o.skip_assignment;
    r.member_id = s(o.member_id);
    r.members = o
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            let mut m = JoinGroupResponseMember::default();
            m.member_id = s(id);
            if version >= 5 {
                m.group_instance_id = instance.map(s);
            }
            m.metadata = metadata;
            m
        })
        .collect();
    r
}

pub async fn sync_group(broker: &Broker, version: i16, req: SyncGroupRequest) -> SyncGroupResponse {
    let instance = if version >= 3 {
        req.group_instance_id.as_ref().map(|i| i.to_string())
    } else {
        None
    };
    let protocol = (version >= 5).then(|| {
        (
            req.protocol_type.as_ref().map(|t| t.to_string()),
            req.protocol_name.as_ref().map(|n| n.to_string()),
        )
    });
    let assignments: Vec<(String, Bytes)> = req
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let o = broker
        .groups
        .sync(
            &req.group_id.0,
            req.generation_id,
            &req.member_id,
            instance.as_deref(),
            protocol,
            assignments,
        )
        .await;
    let mut r = SyncGroupResponse::default();
    r.error_code = o.error;
    if version >= 5 {
        r.protocol_type = o.protocol_type.map(s);
        r.protocol_name = o.protocol_name.map(s);
    }
    r.assignment = o.assignment;
    r
}

pub fn heartbeat(broker: &Broker, version: i16, req: HeartbeatRequest) -> HeartbeatResponse {
    let instance = if version >= 3 {
        req.group_instance_id.as_ref().map(|i| i.to_string())
    } else {
        None
    };
    let mut r = HeartbeatResponse::default();
    r.error_code = broker.groups.heartbeat(
        &req.group_id.0,
        req.generation_id,
        &req.member_id,
        instance.as_deref(),
    );
    r
}

pub fn leave_group(broker: &Broker, version: i16, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let (e, codes) = broker.groups.leave(&req.group_id.0, &members);
    let mut r = LeaveGroupResponse::default();
    if version >= 3 {
        r.error_code = e;
        if e == err::NONE {
            r.members = members
                .into_iter()
                .zip(codes)
                .map(|((id, instance), code)| {
                    let mut m = MemberResponse::default();
                    m.member_id = s(id);
                    m.group_instance_id = instance.map(s);
                    m.error_code = code;
                    m
                })
                .collect();
        }
    } else {
        r.error_code = if e != err::NONE {
            e
        } else {
            codes.first().copied().unwrap_or(err::NONE)
        };
    }
    r
}

/// How long a commit waits for `__consumer_offsets`' in-sync replicas (Kafka's
/// `offsets.commit.timeout.ms` default).
const COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn offset_commit(
    broker: &Broker,
    version: i16,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let generation = if version >= 1 {
        req.generation_id_or_member_epoch
    } else {
        -1
    };
    let member_id = if version >= 1 {
        req.member_id.to_string()
    } else {
        String::new()
    };
    let instance = if version >= 7 {
        req.group_instance_id.as_ref().map(|i| i.to_string())
    } else {
        None
    };
    let mut args = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            args.push(CommitArgs {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            });
        }
    }
    let m = broker.cluster.metadata();
    let known = |t: &str, p: i32| {
        m.topics
            .get(t)
            .is_some_and(|tm| tm.partitions.contains_key(&p))
    };
    let (mut codes, written) = broker.groups.commit(
        &req.group_id.0,
        generation,
        &member_id,
        instance.as_deref(),
        &args,
        &known,
    );
    // Acknowledged only once every in-sync replica of the group's __consumer_offsets partition
    // has the records, so a coordinator failover never rewinds a consumer past it.
    if let Some(w) = written {
        let replicated = match broker
            .replicas
            .get(crate::groups::OFFSETS_TOPIC, w.partition)
        {
            Some(part) => {
                match tokio::time::timeout(COMMIT_TIMEOUT, part.wait_for_hw(w.end, w.epoch)).await {
                    Ok(true) => err::NONE,
                    Ok(false) => err::NOT_COORDINATOR,
                    Err(_) => err::COORDINATOR_NOT_AVAILABLE,
                }
            }
            None => err::NOT_COORDINATOR,
        };
        if replicated != err::NONE {
            for c in codes.iter_mut().filter(|c| **c == err::NONE) {
                *c = replicated;
            }
        }
    }
    let mut codes = codes.into_iter();
    let mut r = OffsetCommitResponse::default();
    for t in req.topics {
        let mut tr = OffsetCommitResponseTopic::default();
        tr.name = t.name;
        for p in t.partitions {
            let mut pr = OffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code = codes.next().unwrap_or(err::UNKNOWN_SERVER_ERROR);
            tr.partitions.push(pr);
        }
        r.topics.push(tr);
    }
    r
}

type Fetched = Result<FetchedOffsets, i16>;

fn fetched_partition(p: i32, c: Option<Committed>, error: i16) -> OffsetFetchResponsePartition {
    let mut pr = OffsetFetchResponsePartition::default();
    pr.partition_index = p;
    pr.committed_offset = c.as_ref().map_or(-1, |c| c.offset);
    pr.committed_leader_epoch = c.as_ref().map_or(-1, |c| c.leader_epoch);
    pr.metadata = Some(s(c.map(|c| c.metadata).unwrap_or_default()));
    pr.error_code = error;
    pr
}

pub fn offset_fetch(broker: &Broker, version: i16, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let mut r = OffsetFetchResponse::default();
    if version >= 8 {
        for g in req.groups {
            let wanted = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            });
            let got: Fetched = broker.groups.fetch_offsets(&g.group_id.0, wanted);
            let mut gr = OffsetFetchResponseGroup::default();
            gr.group_id = g.group_id;
            match got {
                Err(e) => gr.error_code = e,
                Ok(topics) => {
                    for (t, parts) in topics {
                        let mut tr = OffsetFetchResponseTopics::default();
                        tr.name = TopicName(s(t));
                        for (p, c) in parts {
                            let f = fetched_partition(p, c, err::NONE);
                            let mut pr = OffsetFetchResponsePartitions::default();
                            pr.partition_index = f.partition_index;
                            pr.committed_offset = f.committed_offset;
                            pr.committed_leader_epoch = f.committed_leader_epoch;
                            pr.metadata = f.metadata;
                            tr.partitions.push(pr);
                        }
                        gr.topics.push(tr);
                    }
                }
            }
            r.groups.push(gr);
        }
        return r;
    }
    let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    match broker.groups.fetch_offsets(&req.group_id.0, wanted.clone()) {
        Ok(topics) => {
            for (t, parts) in topics {
                let mut tr = OffsetFetchResponseTopic::default();
                tr.name = TopicName(s(t));
                tr.partitions = parts
                    .into_iter()
                    .map(|(p, c)| fetched_partition(p, c, err::NONE))
                    .collect();
                r.topics.push(tr);
            }
        }
        Err(e) => {
            if version >= 2 {
                r.error_code = e;
            }
            // v0–1 carry the error per partition.
            for (t, parts) in wanted.unwrap_or_default() {
                let mut tr = OffsetFetchResponseTopic::default();
                tr.name = TopicName(s(t));
                tr.partitions = parts
                    .into_iter()
                    .map(|p| fetched_partition(p, None, e))
                    .collect();
                r.topics.push(tr);
            }
        }
    }
    r
}

pub fn list_groups(broker: &Broker, version: i16, req: ListGroupsRequest) -> ListGroupsResponse {
    let mut r = ListGroupsResponse::default();
    let states: Vec<String> = if version >= 4 {
        req.states_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    if version >= 5
        && !req.types_filter.is_empty()
        && !req
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case("classic"))
    {
        return r;
    }
    for (id, protocol_type, state) in broker.groups.list() {
        if !states.is_empty() && !states.contains(&state.name().to_lowercase()) {
            continue;
        }
        let mut g = ListedGroup::default();
        g.group_id = GroupId(s(id));
        g.protocol_type = s(protocol_type);
        if version >= 4 {
            g.group_state = s(state.name());
        }
        if version >= 5 {
            g.group_type = s("classic");
        }
        r.groups.push(g);
    }
    r
}

pub fn describe_groups(
    broker: &Broker,
    version: i16,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut r = DescribeGroupsResponse::default();
    for id in req.groups {
        let sum = broker.groups.describe(&id.0);
        let mut g = DescribedGroup::default();
        g.error_code = sum.error;
        g.group_id = id;
        g.group_state = s(sum.state.name());
        g.protocol_type = s(sum.protocol_type);
        g.protocol_data = s(sum.protocol);
        g.members = sum
            .members
            .into_iter()
            .map(|m| {
                let mut dm = DescribedGroupMember::default();
                dm.member_id = s(m.member_id);
                if version >= 4 {
                    dm.group_instance_id = m.group_instance_id.map(s);
                }
                dm.client_id = s(m.client_id);
                dm.client_host = s(m.client_host);
                dm.member_metadata = m.metadata;
                dm.member_assignment = m.assignment;
                dm
            })
            .collect();
        r.groups.push(g);
    }
    r
}

pub fn delete_groups(broker: &Broker, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut r = DeleteGroupsResponse::default();
    for id in req.groups_names {
        let mut d = DeletableGroupResult::default();
        d.error_code = broker.groups.delete(&id.0);
        d.group_id = id;
        r.results.push(d);
    }
    r
}
