//! `kafka-leader-election`: preferred or unclean leader election, Kafka 3.x's options and
//! output (`--election-type`, `--all-topic-partitions` | `--topic`/`--partition` |
//! `--path-to-json-file`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ApiKey, ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::controller;

#[derive(Debug, Parser)]
#[command(
    name = "kafka-leader-election",
    about = "This tool attempts to elect a new leader for a set of topic partitions. The type of elections supported are preferred replicas and unclean replicas."
)]
pub struct ElectionArgs {
    #[arg(long = "bootstrap-server", value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    #[arg(
        long = "election-type",
        value_name = "PREFERRED|UNCLEAN",
        ignore_case = true
    )]
    pub election_type: String,
    #[arg(long = "all-topic-partitions")]
    pub all_topic_partitions: bool,
    #[arg(long)]
    pub topic: Option<String>,
    #[arg(long)]
    pub partition: Option<i32>,
    #[arg(long = "path-to-json-file", value_name = "FILE")]
    pub path_to_json_file: Option<PathBuf>,
    /// Accepted for compatibility; client properties do not apply to these requests.
    #[arg(long = "admin.config", value_name = "FILE")]
    pub admin_config: Option<PathBuf>,
}

#[derive(Debug, serde::Deserialize)]
struct PartitionsFile {
    partitions: Vec<FilePartition>,
}

#[derive(Debug, serde::Deserialize)]
struct FilePartition {
    topic: String,
    partition: i32,
}

pub fn run(args: ElectionArgs) -> ExitCode {
    match execute(&args) {
        Ok((out, ok)) => {
            print!("{out}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The requested partitions: `None` for all of them.
fn partitions(args: &ElectionArgs) -> Result<Option<Vec<(String, i32)>>> {
    let chosen = [
        args.all_topic_partitions,
        args.topic.is_some(),
        args.path_to_json_file.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if chosen != 1 {
        bail!("One and only one of the following options is required: --all-topic-partitions, --topic, --path-to-json-file");
    }
    if args.all_topic_partitions {
        return Ok(None);
    }
    if let Some(t) = &args.topic {
        let p = args
            .partition
            .context("--partition is required with --topic")?;
        return Ok(Some(vec![(t.clone(), p)]));
    }
    let path = args.path_to_json_file.as_ref().expect("checked");
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let f: PartitionsFile =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(Some(
        f.partitions
            .into_iter()
            .map(|p| (p.topic, p.partition))
            .collect(),
    ))
}

/// Runs the election; returns the output and whether every partition succeeded.
pub fn execute(args: &ElectionArgs) -> Result<(String, bool)> {
    let kind = match args.election_type.to_ascii_uppercase().as_str() {
        "PREFERRED" => 0,
        "UNCLEAN" => 1,
        other => bail!("Unknown election type: {other} (expected PREFERRED or UNCLEAN)"),
    };
    let wanted = partitions(args)?;
    let cluster = controller::cluster(&args.bootstrap_server)?;
    let mut c = controller::connect(&cluster)?;
    let mut req = ElectLeadersRequest::default();
    req.election_type = kind;
    req.timeout_ms = 30_000;
    req.topic_partitions = wanted.map(|w| {
        let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (t, p) in w {
            by_topic.entry(t).or_default().push(p);
        }
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                let mut tp = TopicPartitions::default();
                tp.topic = TopicName(StrBytes::from_string(t));
                tp.partitions = ps;
                tp
            })
            .collect()
    });
    let resp: ElectLeadersResponse = c.call(ApiKey::ElectLeaders, 2, &req)?;
    if resp.error_code != 0 {
        bail!(
            "the controller refused the election: {}",
            error_name(resp.error_code)
        );
    }
    let name = if kind == 0 { "PREFERRED" } else { "UNCLEAN" };
    let mut elected = Vec::new();
    let mut not_needed = Vec::new();
    let mut failed = Vec::new();
    for t in &resp.replica_election_results {
        for p in &t.partition_result {
            let tp = format!("{}-{}", t.topic.0, p.partition_id);
            match ResponseError::try_from_code(p.error_code) {
                None => elected.push(tp),
                Some(ResponseError::ElectionNotNeeded) => not_needed.push(tp),
                Some(_) => failed.push((
                    tp,
                    error_name(p.error_code),
                    p.error_message
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                )),
            }
        }
    }
    let mut out = String::new();
    if !elected.is_empty() {
        out.push_str(&format!(
            "Successfully completed leader election ({name}) for partitions {}\n",
            elected.join(", ")
        ));
    }
    if !not_needed.is_empty() {
        out.push_str(&format!(
            "Valid replica already elected for partitions {}\n",
            not_needed.join(", ")
        ));
    }
    for (tp, err, msg) in &failed {
        out.push_str(&format!(
            "Error completing leader election ({name}) for partition: {tp}: {err}: {msg}\n"
        ));
    }
    Ok((out, failed.is_empty()))
}

fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(e) => format!("{e:?}"),
        None => format!("error {code}"),
    }
}
