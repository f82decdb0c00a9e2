//! `kafka-reassign-partitions`: moving partitions between brokers, Kafka 3.x's options, JSON
//! files and output: `--generate` proposes an assignment (Kafka's rack-unaware layout over
//! `--broker-list`), `--execute` starts it (AlterPartitionReassignments) and prints the
//! current assignment to roll back with, `--verify` says which partitions are done, `--cancel`
//! stops them, `--list` shows those in progress. Replication throttles are not supported.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};

use super::controller;

#[derive(Debug, Parser)]
#[command(
    name = "kafka-reassign-partitions",
    about = "This tool helps to move topic partitions between replicas."
)]
pub struct ReassignArgs {
    #[arg(long = "bootstrap-server", value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    #[arg(long)]
    pub generate: bool,
    #[arg(long)]
    pub execute: bool,
    #[arg(long)]
    pub verify: bool,
    #[arg(long)]
    pub cancel: bool,
    #[arg(long)]
    pub list: bool,
    #[arg(long = "topics-to-move-json-file", value_name = "FILE")]
    pub topics_to_move_json_file: Option<PathBuf>,
    #[arg(long = "reassignment-json-file", value_name = "FILE")]
    pub reassignment_json_file: Option<PathBuf>,
    #[arg(long = "broker-list", value_name = "1,2,3")]
    pub broker_list: Option<String>,
    /// Accepted for compatibility; client properties do not apply to these requests.
    #[arg(long = "command-config", value_name = "FILE")]
    pub command_config: Option<PathBuf>,
}

/// Kafka's reassignment JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reassignment {
    pub version: i32,
    pub partitions: Vec<PartitionReplicas>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionReplicas {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_dirs: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct TopicsToMove {
    topics: Vec<TopicToMove>,
}

#[derive(Debug, Deserialize)]
struct TopicToMove {
    topic: String,
}

pub fn run(args: ReassignArgs) -> ExitCode {
    match execute(&args) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &std::path::Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn layout_json(layout: &BTreeMap<(String, i32), Vec<i32>>) -> String {
    let r = Reassignment {
        version: 1,
        partitions: layout
            .iter()
            .map(|((t, p), replicas)| PartitionReplicas {
                topic: t.clone(),
                partition: *p,
                replicas: replicas.clone(),
                log_dirs: Some(vec!["any".to_string(); replicas.len()]),
            })
            .collect(),
    };
    serde_json::to_string(&r).expect("json")
}

fn list(v: &[i32]) -> String {
    v.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// What an unfinished reassignment waits for, from its adding and removing replicas and the
/// partition's leader and in-sync replicas: the line `--verify` prints under Kafka's "still in
/// progress".
pub fn waiting_for(adding: &[i32], removing: &[i32], leader: i32, isr: &[i32]) -> String {
    if leader < 0 {
        return "waiting for the partition to have a leader again (no replica is leading it)"
            .into();
    }
    let behind: Vec<i32> = adding
        .iter()
        .copied()
        .filter(|r| !isr.contains(r))
        .collect();
    let then = if removing.is_empty() {
        String::new()
    } else {
        format!("; then {} will be removed", list(removing))
    };
    if behind.is_empty() {
        format!(
            "the new replicas are in sync (in-sync replicas {}); waiting for the controller to finish{then}",
            list(isr)
        )
    } else {
        format!(
            "waiting for replica{} {} to catch up with leader {leader} and join the in-sync replicas (now {}){then}",
            if behind.len() == 1 { "" } else { "s" },
            list(&behind),
            list(isr)
        )
    }
}

fn ids(v: &[BrokerId]) -> String {
    v.iter()
        .map(|b| b.0.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

pub fn execute(args: &ReassignArgs) -> Result<String> {
    let actions = [
        args.generate,
        args.execute,
        args.verify,
        args.cancel,
        args.list,
    ];
    if actions.iter().filter(|a| **a).count() != 1 {
        bail!("Command must include exactly one action: --generate, --execute, --verify, --cancel, or --list");
    }
    let cluster = controller::cluster(&args.bootstrap_server)?;
    let current_of = |topics: &[String]| -> Result<BTreeMap<(String, i32), Vec<i32>>> {
        let mut out = BTreeMap::new();
        for t in topics {
            let parts = cluster
                .topics
                .get(t)
                .with_context(|| format!("Topic {t} not found"))?;
            for (p, r) in parts {
                out.insert((t.clone(), *p), r.clone());
            }
        }
        Ok(out)
    };
    let mut out = String::new();
    if args.generate {
        let file = args
            .topics_to_move_json_file
            .as_ref()
            .context("--generate needs --topics-to-move-json-file")?;
        let brokers: Vec<i32> = args
            .broker_list
            .as_deref()
            .context("--generate needs --broker-list")?
            .split(',')
            .map(|b| {
                b.trim()
                    .parse()
                    .context("--broker-list is a comma-separated list of ids")
            })
            .collect::<Result<_>>()?;
        let topics: TopicsToMove = read_json(file)?;
        let names: Vec<String> = topics.topics.into_iter().map(|t| t.topic).collect();
        let current = current_of(&names)?;
        let mut proposed = BTreeMap::new();
        for t in &names {
            let parts = &cluster.topics[t];
            let rf = parts.values().next().map_or(1, Vec::len);
            if rf > brokers.len() {
                bail!(
                    "Replication factor: {rf} larger than available brokers: {}.",
                    brokers.len()
                );
            }
            let seed = t
                .bytes()
                .fold(7usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize));
            let layout = sluice_kafka::assignment::assign_replicas(
                &brokers,
                0,
                parts.len() as i32,
                rf,
                seed,
                seed / 7,
            );
            for (p, r) in parts.keys().zip(layout) {
                proposed.insert((t.clone(), *p), r);
            }
        }
        out.push_str("Current partition replica assignment\n");
        out.push_str(&layout_json(&current));
        out.push_str("\n\nProposed partition reassignment configuration\n");
        out.push_str(&layout_json(&proposed));
        out.push('\n');
        return Ok(out);
    }
    let mut c = controller::connect(&cluster)?;
    if args.list {
        let mut req = ListPartitionReassignmentsRequest::default();
        req.timeout_ms = 30_000;
        req.topics = None;
        let r: ListPartitionReassignmentsResponse =
            c.call(ApiKey::ListPartitionReassignments, 0, &req)?;
        if r.topics.is_empty() {
            out.push_str("No partition reassignments found.\n");
        } else {
            out.push_str("Current partition reassignments:\n");
            for t in &r.topics {
                for p in &t.partitions {
                    out.push_str(&format!(
                        "{}-{}: replicas: {}. adding: {}. removing: {}.\n",
                        t.name.0,
                        p.partition_index,
                        ids(&p.replicas),
                        ids(&p.adding_replicas),
                        ids(&p.removing_replicas)
                    ));
                }
            }
        }
        return Ok(out);
    }
    let file = args
        .reassignment_json_file
        .as_ref()
        .context("this action needs --reassignment-json-file")?;
    let wanted: Reassignment = read_json(file)?;
    let alter = |c: &mut sluice_kafka::Conn, cancel: bool| -> Result<Vec<String>> {
        let mut by_topic: BTreeMap<String, Vec<ReassignablePartition>> = BTreeMap::new();
        for p in &wanted.partitions {
            let mut rp = ReassignablePartition::default();
            rp.partition_index = p.partition;
            rp.replicas = (!cancel).then(|| p.replicas.iter().map(|b| BrokerId(*b)).collect());
            by_topic.entry(p.topic.clone()).or_default().push(rp);
        }
        let mut req = AlterPartitionReassignmentsRequest::default();
        req.timeout_ms = 30_000;
        req.topics = by_topic
            .into_iter()
            .map(|(t, partitions)| {
                let mut rt = ReassignableTopic::default();
                rt.name = TopicName(StrBytes::from_string(t));
                rt.partitions = partitions;
                rt
            })
            .collect();
        let r: AlterPartitionReassignmentsResponse =
            c.call(ApiKey::AlterPartitionReassignments, 0, &req)?;
        if r.error_code != 0 {
            bail!(
                "the controller refused: {}",
                r.error_message.map(|m| m.to_string()).unwrap_or_default()
            );
        }
        let mut done = Vec::new();
        let mut errors = Vec::new();
        for t in &r.responses {
            for p in &t.partitions {
                let tp = format!("{}-{}", t.name.0, p.partition_index);
                if p.error_code == 0 {
                    done.push(tp);
                } else {
                    errors.push(format!(
                        "{tp}: {}",
                        p.error_message
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_default()
                    ));
                }
            }
        }
        if !errors.is_empty() {
            bail!("Error reassignment partitions:\n{}", errors.join("\n"));
        }
        Ok(done)
    };
    if args.execute {
        let topics: Vec<String> = wanted
            .partitions
            .iter()
            .map(|p| p.topic.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let current = current_of(&topics)?;
        let current: BTreeMap<(String, i32), Vec<i32>> = current
            .into_iter()
            .filter(|((t, p), _)| {
                wanted
                    .partitions
                    .iter()
                    .any(|w| &w.topic == t && w.partition == *p)
            })
            .collect();
        let started = alter(&mut c, false)?;
        out.push_str("Current partition replica assignment\n\n");
        out.push_str(&layout_json(&current));
        out.push_str(
            "\n\nSave this to use as the --reassignment-json-file option during rollback\n",
        );
        out.push_str(&format!(
            "Successfully started partition reassignments for {}\n",
            started.join(",")
        ));
        return Ok(out);
    }
    if args.cancel {
        let cancelled = alter(&mut c, true)?;
        out.push_str(&format!(
            "Successfully cancelled partition reassignments for: {}\n",
            cancelled.join(",")
        ));
        return Ok(out);
    }
    // --verify
    let mut req = ListPartitionReassignmentsRequest::default();
    req.timeout_ms = 30_000;
    req.topics = None;
    let ongoing: ListPartitionReassignmentsResponse =
        c.call(ApiKey::ListPartitionReassignments, 0, &req)?;
    let in_progress: BTreeMap<(String, i32), (Vec<i32>, Vec<i32>)> = ongoing
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                let v = |b: &[BrokerId]| b.iter().map(|b| b.0).collect::<Vec<_>>();
                (
                    (t.name.0.to_string(), p.partition_index),
                    (v(&p.adding_replicas), v(&p.removing_replicas)),
                )
            })
        })
        .collect();
    out.push_str("Status of partition reassignment:\n");
    for p in &wanted.partitions {
        let tp = format!("{}-{}", p.topic, p.partition);
        let key = (p.topic.clone(), p.partition);
        if let Some((adding, removing)) = in_progress.get(&key) {
            out.push_str(&format!(
                "Reassignment of partition {tp} is still in progress.\n"
            ));
            let (leader, isr) = cluster.isr.get(&key).cloned().unwrap_or((-1, Vec::new()));
            out.push_str(&format!(
                "  {}\n",
                waiting_for(adding, removing, leader, &isr)
            ));
            continue;
        }
        let now = cluster
            .topics
            .get(&p.topic)
            .and_then(|ps| ps.get(&p.partition))
            .cloned()
            .unwrap_or_default();
        if now == p.replicas {
            out.push_str(&format!("Reassignment of partition {tp} is completed.\n"));
        } else {
            out.push_str(&format!(
                "There is no active reassignment of partition {tp}, but replica set is {} rather than {}.\n",
                list(&now),
                list(&p.replicas)
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::waiting_for;

    #[test]
    fn says_which_replicas_an_unfinished_reassignment_waits_for() {
        assert_eq!(
            waiting_for(&[4], &[3], 1, &[1, 2, 3]),
            "waiting for replica 4 to catch up with leader 1 and join the in-sync replicas (now 1,2,3); then 3 will be removed"
        );
        assert_eq!(
            waiting_for(&[4, 5], &[], 1, &[1]),
            "waiting for replicas 4,5 to catch up with leader 1 and join the in-sync replicas (now 1)"
        );
        assert!(waiting_for(&[4], &[3], 1, &[1, 4]).starts_with("the new replicas are in sync"));
        assert!(waiting_for(&[4], &[3], -1, &[]).contains("no replica is leading"));
    }
}
