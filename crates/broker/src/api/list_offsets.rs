//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3, KIP-734: the record with the
//! largest timestamp) or the first offset at or after a timestamp. v0 answers in the old layout (an `offsets` array), which lag monitors of the
//! seed's era (Burrow 1.2) still send.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::replica::{Partition, PartitionError};
use crate::Broker;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub async fn handle(broker: &Broker, version: i16, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let m = broker.cluster.metadata();
    let mut resp = ListOffsetsResponse::default();
    for t in req.topics {
        let topic = t.name.0.to_string();
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = t.name.clone();
        for p in t.partitions {
            let mut pr = ListOffsetsPartitionResponse::default();
            pr.partition_index = p.partition_index;
            pr.timestamp = -1;
            pr.offset = -1;
            pr.leader_epoch = -1;
            match super::led_here(broker, &m, &topic, p.partition_index) {
                Err(e) => pr.error_code = e.code(),
                Ok((part, leader_epoch)) => match lookup(&part, p.timestamp, leader_epoch) {
                    Err(e) => pr.error_code = e.code(),
                    Ok(found) => answer(&mut pr, version, &p, &part, found),
                },
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}

/// An answer: timestamp (-1 for the earliest and latest offsets), offset, leader epoch.
type Found = Option<(i64, i64, i32)>;

/// What Kafka answers (`Partition.fetchOffsetForTimestamp`): the latest offset is the high
/// watermark (no transactions are written here, so the last stable offset is the same), in the
/// current leader epoch; the earliest is the log start offset, in the epoch that wrote it; a
/// timestamp or the max timestamp (-3) names a record, with its batch's epoch, and only one
/// below the high watermark (a record not yet replicated is not offered to consumers).
fn lookup(part: &Partition, timestamp: i64, leader_epoch: i32) -> Result<Found, ResponseError> {
    let o = part.offsets();
    Ok(match timestamp {
        LATEST => Some((-1, o.high_watermark as i64, leader_epoch)),
        EARLIEST => Some((-1, o.log_start as i64, part.epoch_at(o.log_start))),
        ts => {
            let target = (ts != MAX_TIMESTAMP).then_some(ts);
            let (found, o) = part
                .offset_for_timestamp(target)
                .map_err(|e| super::partition_error(&PartitionError::Log(e)))?;
            found
                .filter(|f| f.offset < o.high_watermark)
                .map(|f| (f.timestamp, f.offset as i64, f.leader_epoch))
        }
    })
}

fn answer(
    pr: &mut ListOffsetsPartitionResponse,
    version: i16,
    p: &ListOffsetsPartition,
    part: &Partition,
    found: Found,
) {
    if version == 0 {
        // Old layout: offsets descending, at most max_num_offsets of them.
        let o = part.offsets();
        let mut offsets = Vec::new();
        if let Some((_, off, _)) = found {
            offsets.push(off);
        }
        if p.timestamp == LATEST && o.log_start != o.high_watermark && p.max_num_offsets > 1 {
            offsets.push(o.log_start as i64);
        }
        offsets.truncate(p.max_num_offsets.max(0) as usize);
        pr.old_style_offsets = offsets;
    } else if let Some((ts, off, epoch)) = found {
        pr.timestamp = ts;
        pr.offset = off;
        if version >= 4 {
            pr.leader_epoch = epoch;
        }
    }
}

/// OffsetForLeaderEpoch (KIP-101/320): the end offset of the requested epoch on the leader, so a
/// consumer can check its position after a leader change.
pub fn offset_for_leader_epoch(
    broker: &Broker,
    req: kafka_protocol::messages::OffsetForLeaderEpochRequest,
) -> kafka_protocol::messages::OffsetForLeaderEpochResponse {
    use kafka_protocol::messages::offset_for_leader_epoch_response::{
        EpochEndOffset, OffsetForLeaderTopicResult,
    };
    let mut resp = kafka_protocol::messages::OffsetForLeaderEpochResponse::default();
    let m = broker.cluster.metadata();
    for t in req.topics {
        let topic = t.topic.0.to_string();
        let mut tr = OffsetForLeaderTopicResult::default();
        tr.topic = t.topic.clone();
        for p in t.partitions {
            let mut e = EpochEndOffset::default();
            e.partition = p.partition;
            e.leader_epoch = -1;
            e.end_offset = -1;
            match super::led_here(broker, &m, &topic, p.partition) {
                Err(err) => e.error_code = err.code(),
                Ok((part, current)) => {
                    if p.current_leader_epoch >= 0 && p.current_leader_epoch < current {
                        e.error_code = ResponseError::FencedLeaderEpoch.code();
                    } else if p.current_leader_epoch > current {
                        e.error_code = ResponseError::UnknownLeaderEpoch.code();
                    } else if let Some((epoch, end)) = part.end_offset_for_epoch(p.leader_epoch) {
                        e.leader_epoch = epoch;
                        e.end_offset = end as i64;
                    }
                }
            }
            tr.partitions.push(e);
        }
        resp.topics.push(tr);
    }
    resp
}
