//! Entry points for the fuzz targets (`fuzz/`): the broker's own decode and validation paths
//! for bytes from outside, run without sockets or a cluster so a fuzzer can drive them millions
//! of times. Each calls the functions the live paths call, in the same order.

use bytes::Bytes;
use kafka_protocol::messages::RequestKind;
use sluice_log::batch::BatchHeader;
use sluice_log::{CheckedPayload, LogConfig};

use crate::groups::records::{decode_batches, GroupValue, Key, OffsetValue};
use crate::producers::ProducerStates;
use crate::{server, topic_config};

/// A request frame (the bytes after the size prefix) through [`server::decode`], then the
/// validation its handler does before touching state: record batches of a Produce, config
/// names and values of CreateTopics, AlterConfigs and IncrementalAlterConfigs.
pub fn kafka_request(frame: &[u8]) {
    let Ok(req) = server::decode(Bytes::copy_from_slice(frame)) else {
        return;
    };
    match req.body {
        RequestKind::Produce(p) => {
            for t in &p.topic_data {
                for pd in &t.partition_data {
                    if let Some(records) = &pd.records {
                        produce_payload(records);
                    }
                }
            }
        }
        RequestKind::CreateTopics(r) => {
            for t in &r.topics {
                for c in &t.configs {
                    if let Some(v) = &c.value {
                        let _ = topic_config::validate(&c.name, v);
                    }
                }
            }
        }
        RequestKind::AlterConfigs(r) => {
            for res in &r.resources {
                for c in &res.configs {
                    if let Some(v) = &c.value {
                        let _ = topic_config::validate(&c.name, v);
                    }
                }
            }
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            for res in &r.resources {
                for c in &res.configs {
                    if let Some(v) = &c.value {
                        let _ = topic_config::validate(&c.name, v);
                    }
                }
            }
        }
        _ => {}
    }
}

/// A Produce partition's records as the append path checks them: framing, CRC-32C, offsets and
/// size limits (the log crate), then the idempotent producers' sequence check.
pub fn produce_payload(payload: &[u8]) {
    let Ok(checked) = CheckedPayload::check(payload, &LogConfig::default()) else {
        return;
    };
    let headers: Vec<BatchHeader> = checked.headers().copied().collect();
    let mut producers = ProducerStates::default();
    if producers.check(&headers).is_ok() {
        for h in &headers {
            producers.record(h, 0);
        }
        let _ = producers.check(&headers);
    }
}

/// Bytes read back from `__consumer_offsets` as the group coordinator's loader decodes them:
/// batches, records, then each key and value.
pub fn offsets_topic(data: &[u8]) {
    let (records, _) = decode_batches(Bytes::copy_from_slice(data));
    for (_, key, value) in records {
        let Ok(key) = Key::decode(key) else { continue };
        let Some(value) = value else { continue };
        match key {
            Key::Offset { .. } => {
                let _ = OffsetValue::decode(value);
            }
            Key::Group { .. } => {
                let _ = GroupValue::decode(value);
            }
        }
    }
}

/// Largest inflated output the recoding target lets a batch have.
pub const RECODE_LIMIT: u64 = 256 << 10;

/// A produce payload as a topic with a `compression.type` codec re-encodes it: checked, then
/// every batch inflated (up to [`RECODE_LIMIT`]) and compressed again in each codec; and the
/// payload itself inflated as each codec's input.
pub fn recode_payload(payload: &[u8]) {
    use sluice_log::batch::Compression;
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    for codec in codecs {
        let _ = sluice_log::compression::decompress(codec, payload, RECODE_LIMIT as usize);
    }
    for target in codecs {
        let config = LogConfig {
            compression: Some(target),
            max_batch_bytes: RECODE_LIMIT,
            ..LogConfig::default()
        };
        let Ok(checked) = CheckedPayload::check(payload, &config) else {
            return;
        };
        if let Ok(Some(recoded)) = checked.recoded(&config) {
            let _ = CheckedPayload::check(&recoded, &config);
        }
    }
}
