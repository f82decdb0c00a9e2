//! DescribeConfigs, IncrementalAlterConfigs and AlterConfigs for topics (overrides in
//! `/config/topics/<topic>`, checked by [`crate::topic_config`]), and DescribeConfigs for this
//! broker (its `server.properties`, read-only: there are no dynamic broker settings).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::topic_config::{self, source, ConfigType, TOPIC_KEYS};
use crate::Broker;

/// Kafka's ConfigResource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

pub async fn describe_configs(
    broker: &Broker,
    version: i16,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut resp = DescribeConfigsResponse::default();
    let flags = req_flags(&req);
    for r in req.resources {
        let mut out = DescribeConfigsResult::default();
        out.resource_type = r.resource_type;
        out.resource_name = r.resource_name.clone();
        let wanted = |name: &str| {
            r.configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
        };
        match r.resource_type {
            RESOURCE_TOPIC => {
                let m = broker.cluster.metadata();
                match m.topics.get(r.resource_name.as_str()) {
                    None => {
                        out.error_code = ResponseError::UnknownTopicOrPartition.code();
                        out.error_message = Some(s(format!(
                            "Topic {} does not exist.",
                            r.resource_name.as_str()
                        )));
                    }
                    Some(t) => {
                        // Coord holds the overrides; the metadata's copy may trail a change
                        // just made through another broker. Without coord, the copy answers.
                        let name = r.resource_name.as_str();
                        let config = match broker.cluster.read_topic_config(name).await {
                            Ok(c) => c,
                            Err(e) => {
                                tracing::warn!(topic = name, error = %e, "topic configuration read from the metadata: coord did not answer");
                                t.config.clone()
                            }
                        };
                        out.configs = TOPIC_KEYS
                            .iter()
                            .filter(|k| wanted(k.name))
                            .map(|k| topic_entry(broker, k, config.get(k.name), version, &flags))
                            .collect();
                    }
                }
            }
            RESOURCE_BROKER => {
                let name = r.resource_name.as_str();
                if !name.is_empty() && name != broker.id.to_string() {
                    out.error_code = ResponseError::InvalidRequest.code();
                    out.error_message = Some(s(format!(
                        "Unexpected broker id, expected {} or empty string, but received {name}",
                        broker.id
                    )));
                } else {
                    out.configs = broker
                        .config
                        .effective()
                        .into_iter()
                        .filter(|(k, _)| wanted(k))
                        .map(|(k, v)| {
                            let mut e = DescribeConfigsResourceResult::default();
                            e.name = s(k.clone());
                            e.value = Some(s(v.clone()));
                            e.read_only = true;
                            e.config_source = source::STATIC_BROKER;
                            e.config_type = ConfigType::String as i8;
                            if flags.synonyms {
                                let mut syn = DescribeConfigsSynonym::default();
                                syn.name = s(k);
                                syn.value = Some(s(v));
                                syn.source = source::STATIC_BROKER;
                                e.synonyms.push(syn);
                            }
                            e
                        })
                        .collect();
                }
            }
            other => {
                out.error_code = ResponseError::InvalidRequest.code();
                out.error_message = Some(s(format!(
                    "resource type {other} is not supported (topics: 2, brokers: 4)"
                )));
            }
        }
        resp.results.push(out);
    }
    resp
}

struct Flags {
    synonyms: bool,
    documentation: bool,
}

fn req_flags(req: &DescribeConfigsRequest) -> Flags {
    Flags {
        synonyms: req.include_synonyms,
        documentation: req.include_documentation,
    }
}

fn topic_entry(
    broker: &Broker,
    k: &topic_config::TopicKey,
    set: Option<&String>,
    version: i16,
    flags: &Flags,
) -> DescribeConfigsResourceResult {
    let default = topic_config::broker_default(&broker.config, k);
    let default_source = if default == k.kafka_default {
        source::DEFAULT
    } else {
        source::STATIC_BROKER
    };
    let mut e = DescribeConfigsResourceResult::default();
    e.name = s(k.name);
    let (value, src) = match set {
        Some(v) => (v.clone(), source::TOPIC),
        None => (default.clone(), default_source),
    };
    e.value = Some(s(value));
    e.config_source = src;
    e.is_default = version == 0 && src == source::DEFAULT;
    e.config_type = k.kind as i8;
    if flags.documentation {
        e.documentation = Some(s(k.doc));
    }
    if flags.synonyms {
        let syn = |name: &str, value: &str, source: i8| {
            let mut y = DescribeConfigsSynonym::default();
            y.name = s(name);
            y.value = Some(s(value));
            y.source = source;
            y
        };
        if let Some(v) = set {
            e.synonyms.push(syn(k.name, v, source::TOPIC));
        }
        if let (Some(bk), source::STATIC_BROKER) = (k.broker_key, default_source) {
            e.synonyms.push(syn(bk, &default, source::STATIC_BROKER));
        }
        if let Some(bk) = k.broker_key {
            e.synonyms.push(syn(bk, k.kafka_default, source::DEFAULT));
        }
    }
    e
}

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// One requested change, decoded from either alter API.
enum Change {
    Set(String, String),
    Delete(String),
    Append(String, String),
    Subtract(String, String),
}

fn apply(config: &mut BTreeMap<String, String>, changes: &[Change]) -> Result<(), String> {
    for c in changes {
        match c {
            Change::Set(k, v) => {
                topic_config::validate(k, v)?;
                config.insert(k.clone(), v.clone());
            }
            Change::Delete(k) => {
                if topic_config::lookup(k).is_none() {
                    return Err(format!("Unknown topic config name: {k}"));
                }
                config.remove(k);
            }
            Change::Append(k, v) | Change::Subtract(k, v) => {
                let Some(key) = topic_config::lookup(k) else {
                    return Err(format!("Unknown topic config name: {k}"));
                };
                if key.kind != ConfigType::List {
                    return Err(format!(
                        "Config value append/subtract is not allowed for config key {k}, which is not a list"
                    ));
                }
                let mut items: Vec<String> = config
                    .get(k)
                    .map(|cur| {
                        cur.split(',')
                            .map(|x| x.trim().to_string())
                            .filter(|x| !x.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                let given = v.split(',').map(|x| x.trim().to_string());
                if matches!(c, Change::Append(..)) {
                    for g in given {
                        if !items.contains(&g) {
                            items.push(g);
                        }
                    }
                } else {
                    let drop: Vec<String> = given.collect();
                    items.retain(|i| !drop.contains(i));
                }
                let joined = items.join(",");
                topic_config::validate(k, &joined)?;
                config.insert(k.clone(), joined);
            }
        }
    }
    Ok(())
}

/// Applies `changes` (or, with `replace`, makes them the whole set) to one resource; returns
/// the error code and message.
async fn alter_resource(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    changes: Vec<Change>,
    replace: bool,
    validate_only: bool,
) -> (i16, Option<String>) {
    match resource_type {
        RESOURCE_TOPIC => {}
        RESOURCE_BROKER => {
            return (
                ResponseError::InvalidRequest.code(),
                Some(
                    "dynamic broker configuration is not supported: edit server.properties and restart the broker"
                        .into(),
                ),
            )
        }
        other => {
            return (
                ResponseError::InvalidRequest.code(),
                Some(format!("resource type {other} cannot be altered")),
            )
        }
    }
    if !broker.cluster.metadata().topics.contains_key(name) {
        return (
            ResponseError::UnknownTopicOrPartition.code(),
            Some(format!("Topic {name} does not exist.")),
        );
    }
    let result = broker
        .cluster
        .alter_topic_config(name, !validate_only, |config| {
            if replace {
                config.clear();
            }
            apply(config, &changes)
        })
        .await;
    match result {
        Ok(Ok(written)) => {
            // Read-your-writes: answer once this broker's metadata shows the change, so a
            // DescribeConfigs right after sees it.
            if !validate_only {
                broker
                    .cluster
                    .wait_for_topic_config(name, &written, std::time::Duration::from_secs(5))
                    .await;
            }
            (0, None)
        }
        Ok(Err(msg)) => (ResponseError::InvalidConfig.code(), Some(msg)),
        Err(e) => (
            ResponseError::UnknownServerError.code(),
            Some(e.to_string()),
        ),
    }
}

pub async fn incremental_alter_configs(
    broker: &Broker,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut resp = IncrementalAlterConfigsResponse::default();
    for r in req.resources {
        let mut changes = Vec::new();
        let mut bad_op = None;
        for c in &r.configs {
            let k = c.name.to_string();
            let v = c
                .value
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            changes.push(match c.config_operation {
                OP_SET => Change::Set(k, v),
                OP_DELETE => Change::Delete(k),
                OP_APPEND => Change::Append(k, v),
                OP_SUBTRACT => Change::Subtract(k, v),
                other => {
                    bad_op = Some(other);
                    continue;
                }
            });
        }
        let (code, msg) = match bad_op {
            Some(op) => (
                ResponseError::InvalidRequest.code(),
                Some(format!("unknown config operation {op}")),
            ),
            None => {
                alter_resource(
                    broker,
                    r.resource_type,
                    r.resource_name.as_str(),
                    changes,
                    false,
                    req.validate_only,
                )
                .await
            }
        };
        let mut out = incremental_alter_configs_response::AlterConfigsResourceResponse::default();
        out.error_code = code;
        out.error_message = msg.map(s);
        out.resource_type = r.resource_type;
        out.resource_name = r.resource_name;
        resp.responses.push(out);
    }
    resp
}

pub async fn alter_configs(broker: &Broker, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut resp = AlterConfigsResponse::default();
    for r in req.resources {
        let changes = r
            .configs
            .iter()
            .map(|c| {
                let k = c.name.to_string();
                match &c.value {
                    Some(v) => Change::Set(k, v.to_string()),
                    None => Change::Delete(k),
                }
            })
            .collect();
        let (code, msg) = alter_resource(
            broker,
            r.resource_type,
            r.resource_name.as_str(),
            changes,
            true,
            req.validate_only,
        )
        .await;
        let mut out = alter_configs_response::AlterConfigsResourceResponse::default();
        out.error_code = code;
        out.error_message = msg.map(s);
        out.resource_type = r.resource_type;
        out.resource_name = r.resource_name;
        resp.responses.push(out);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_values_append_and_subtract() {
        let mut c = BTreeMap::new();
        apply(
            &mut c,
            &[Change::Append(
                "leader.replication.throttled.replicas".into(),
                "0:1,1:2".into(),
            )],
        )
        .unwrap();
        apply(
            &mut c,
            &[Change::Subtract(
                "leader.replication.throttled.replicas".into(),
                "0:1".into(),
            )],
        )
        .unwrap();
        assert_eq!(c["leader.replication.throttled.replicas"], "1:2");
        assert!(apply(&mut c, &[Change::Append("retention.ms".into(), "5".into())]).is_err());
    }

    #[test]
    fn set_and_delete_are_checked() {
        let mut c = BTreeMap::new();
        apply(&mut c, &[Change::Set("retention.ms".into(), "1000".into())]).unwrap();
        assert_eq!(c["retention.ms"], "1000");
        assert!(apply(&mut c, &[Change::Set("retention.ms".into(), "x".into())]).is_err());
        apply(&mut c, &[Change::Delete("retention.ms".into())]).unwrap();
        assert!(c.is_empty());
        assert!(apply(&mut c, &[Change::Delete("bogus".into())]).is_err());
    }
}
