//! Kafka's coordinator layout (as Kafka 1.1 – 3.x write it), so `ls /brokers/ids` and
//! `get /brokers/topics/<t>` in a ZooKeeper shell show what operators expect:
//!
//! ```text
//! /brokers/ids/<id>                              ephemeral, BrokerRegistration JSON
//! /brokers/topics/<topic>                        TopicAssignment JSON (replicas per partition)
//! /brokers/topics/<topic>/partitions/<p>/state   PartitionState JSON (leader, epoch, ISR)
//! /controller                                    ephemeral, ControllerRegistration JSON
//! /controller_epoch                              a number
//! /config/topics/<topic>                         TopicConfig JSON
//! /admin/delete_topics/<topic>                   deletion request marker
//! /cluster/id                                    ClusterId JSON
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const BROKER_IDS: &str = "/brokers/ids";
pub const TOPICS: &str = "/brokers/topics";
pub const CONTROLLER: &str = "/controller";
pub const CONTROLLER_EPOCH: &str = "/controller_epoch";
pub const CONFIG_TOPICS: &str = "/config/topics";
pub const DELETE_TOPICS: &str = "/admin/delete_topics";
pub const CLUSTER_ID: &str = "/cluster/id";

/// The persistent paths a broker makes sure exist at start (Kafka's `persistentZkPaths`).
pub const PERSISTENT_PATHS: &[&str] = &[
    "/brokers",
    BROKER_IDS,
    TOPICS,
    "/brokers/seqid",
    "/config",
    "/config/changes",
    "/config/brokers",
    CONFIG_TOPICS,
    "/config/clients",
    "/config/users",
    "/admin",
    DELETE_TOPICS,
    "/isr_change_notification",
    "/latest_producer_id_block",
    "/log_dir_event_notification",
    "/cluster",
];

pub fn broker_path(id: i32) -> String {
    format!("{BROKER_IDS}/{id}")
}

pub fn topic_path(topic: &str) -> String {
    format!("{TOPICS}/{topic}")
}

pub fn partitions_path(topic: &str) -> String {
    format!("{TOPICS}/{topic}/partitions")
}

pub fn partition_path(topic: &str, partition: i32) -> String {
    format!("{TOPICS}/{topic}/partitions/{partition}")
}

pub fn partition_state_path(topic: &str, partition: i32) -> String {
    format!("{TOPICS}/{topic}/partitions/{partition}/state")
}

pub fn topic_config_path(topic: &str) -> String {
    format!("{CONFIG_TOPICS}/{topic}")
}

pub fn delete_topic_path(topic: &str) -> String {
    format!("{DELETE_TOPICS}/{topic}")
}

/// `/brokers/ids/<id>` (version 4/5 layout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub listener_security_protocol_map: BTreeMap<String, String>,
    pub endpoints: Vec<String>,
    #[serde(default = "minus_one")]
    pub jmx_port: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    pub host: Option<String>,
    #[serde(default)]
    pub timestamp: String,
    pub port: i32,
    pub version: i32,
}

fn minus_one() -> i32 {
    -1
}

/// One advertised endpoint parsed from `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub listener: String,
    pub host: String,
    pub port: i32,
}

impl BrokerRegistration {
    pub fn parsed_endpoints(&self) -> Vec<Endpoint> {
        self.endpoints
            .iter()
            .filter_map(|e| {
                let (name, rest) = e.split_once("://")?;
                let (host, port) = rest.rsplit_once(':')?;
                Some(Endpoint {
                    listener: name.to_string(),
                    host: host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string(),
                    port: port.parse().ok()?,
                })
            })
            .collect()
    }

    /// The endpoint of `listener`, or the first one when this broker has none by that name
    /// (a registration written before the listener was added).
    pub fn endpoint_for(&self, listener: &str) -> Option<Endpoint> {
        let all = self.parsed_endpoints();
        let pick = all.iter().position(|e| e.listener == listener).unwrap_or(0);
        all.into_iter().nth(pick)
    }
}

/// `/brokers/topics/<topic>`: replicas per partition, and the topic id (Kafka 2.8+).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicAssignment {
    pub version: i32,
    pub partitions: BTreeMap<String, Vec<i32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    #[serde(default)]
    pub adding_replicas: BTreeMap<String, Vec<i32>>,
    #[serde(default)]
    pub removing_replicas: BTreeMap<String, Vec<i32>>,
}

impl TopicAssignment {
    pub fn replicas(&self) -> BTreeMap<i32, Vec<i32>> {
        self.partitions
            .iter()
            .filter_map(|(p, r)| Some((p.parse().ok()?, r.clone())))
            .collect()
    }
}

/// `/brokers/topics/<t>/partitions/<p>/state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub controller_epoch: i32,
    pub leader: i32,
    pub version: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
}

/// `/controller`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerRegistration {
    pub version: i32,
    pub brokerid: i32,
    #[serde(default)]
    pub timestamp: String,
}

/// `/config/topics/<topic>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TopicConfig {
    pub version: i32,
    pub config: BTreeMap<String, String>,
}

/// `/cluster/id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterId {
    pub version: String,
    pub id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kafka_written_znodes() {
        let b: BrokerRegistration = serde_json::from_str(
            r#"{"listener_security_protocol_map":{"PLAINTEXT":"PLAINTEXT"},"endpoints":["PLAINTEXT://kafka1:9092"],"jmx_port":-1,"host":"kafka1","timestamp":"1533960000000","port":9092,"version":4}"#,
        )
        .unwrap();
        assert_eq!(
            b.parsed_endpoints(),
            vec![Endpoint {
                listener: "PLAINTEXT".into(),
                host: "kafka1".into(),
                port: 9092
            }]
        );
        let t: TopicAssignment =
            serde_json::from_str(r#"{"version":1,"partitions":{"1":[2,1],"0":[1,2]}}"#).unwrap();
        assert_eq!(t.replicas()[&1], vec![2, 1]);
        let s: PartitionState = serde_json::from_str(
            r#"{"controller_epoch":3,"leader":1,"version":1,"leader_epoch":7,"isr":[1,2]}"#,
        )
        .unwrap();
        assert_eq!(
            (s.leader, s.leader_epoch, s.isr.clone()),
            (1, 7, vec![1, 2])
        );
    }
}
