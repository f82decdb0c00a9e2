//! `kafka-topics`: create, list, describe, alter (add partitions to) and delete topics, with
//! Kafka 3.x's options and output.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rdkafka::admin::{
    AdminClient, AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;

use super::props::{client_config, parse_property, runtime, REQUEST_TIMEOUT};

/// Topics the broker keeps for itself; `--exclude-internal` hides them.
pub const INTERNAL_TOPICS: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

/// Command line of `kafka-topics`.
#[derive(Debug, Parser)]
#[command(
    name = "kafka-topics",
    about = "Create, delete, describe, or change a topic.",
    disable_version_flag = true
)]
pub struct TopicsArgs {
    /// The broker to connect to.
    #[arg(long = "bootstrap-server", value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// A properties file with librdkafka client settings.
    #[arg(long = "command-config", value_name = "FILE")]
    pub command_config: Option<PathBuf>,
    /// Create a new topic.
    #[arg(long)]
    pub create: bool,
    /// List all available topics.
    #[arg(long)]
    pub list: bool,
    /// List details for the given topics (all topics without --topic).
    #[arg(long)]
    pub describe: bool,
    /// Alter the number of partitions of a topic.
    #[arg(long)]
    pub alter: bool,
    /// Delete a topic.
    #[arg(long)]
    pub delete: bool,
    /// The topic to create, alter, describe or delete.
    #[arg(long)]
    pub topic: Option<String>,
    /// The number of partitions for the topic being created or altered.
    #[arg(long, value_name = "N")]
    pub partitions: Option<i32>,
    /// The replication factor for each partition of the topic being created.
    #[arg(long = "replication-factor", value_name = "R")]
    pub replication_factor: Option<i32>,
    /// A topic configuration override for the topic being created (repeatable).
    #[arg(long = "config", value_name = "NAME=VALUE", value_parser = parse_property)]
    pub config: Vec<(String, String)>,
    /// With --create, do nothing when the topic already exists.
    #[arg(long = "if-not-exists")]
    pub if_not_exists: bool,
    /// With --alter, --describe or --delete, do nothing when the topic does not exist.
    #[arg(long = "if-exists")]
    pub if_exists: bool,
    /// Leave out internal topics from --list and --describe.
    #[arg(long = "exclude-internal")]
    pub exclude_internal: bool,
    /// With --describe: only partitions whose ISR is smaller than their replica set.
    #[arg(long = "under-replicated-partitions")]
    pub under_replicated_partitions: bool,
    /// With --describe: only partitions without a leader.
    #[arg(long = "unavailable-partitions")]
    pub unavailable_partitions: bool,
    /// With --describe: only topics with configuration overrides (summary lines only).
    #[arg(long = "topics-with-overrides")]
    pub topics_with_overrides: bool,
}

/// Which part of `--describe` to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DescribeFilter {
    pub under_replicated: bool,
    pub unavailable: bool,
    pub with_overrides: bool,
}

impl DescribeFilter {
    fn of(args: &TopicsArgs) -> DescribeFilter {
        DescribeFilter {
            under_replicated: args.under_replicated_partitions,
            unavailable: args.unavailable_partitions,
            with_overrides: args.topics_with_overrides,
        }
    }

    fn partitions_only(self) -> bool {
        self.under_replicated || self.unavailable
    }

    fn keeps(self, p: &PartitionInfo) -> bool {
        (self.under_replicated && p.isr.len() < p.replicas.len())
            || (self.unavailable && p.leader < 0)
    }
}

/// One partition as `--describe` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub id: i32,
    /// `-1` when the partition has no leader.
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// One topic as `--describe` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: Vec<PartitionInfo>,
    /// The topic's non-default configuration entries.
    pub configs: Vec<(String, String)>,
}

fn join_ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

/// Kafka's `--describe` text for one topic: the summary line, then one line per partition.
/// The topic id is not available through librdkafka's metadata and is left blank. With a
/// partition filter only the matching partition lines are printed (no summary); with
/// `--topics-with-overrides` only the summary, and only for topics with overrides.
pub fn format_description(topic: &TopicInfo, filter: DescribeFilter) -> String {
    if filter.partitions_only() {
        return topic
            .partitions
            .iter()
            .filter(|p| filter.keeps(p))
            .map(|p| partition_line(&topic.name, p))
            .collect();
    }
    if filter.with_overrides {
        if topic.configs.is_empty() {
            return String::new();
        }
        return summary_line(topic);
    }
    let mut out = summary_line(topic);
    for p in &topic.partitions {
        out.push_str(&partition_line(&topic.name, p));
    }
    out
}

fn summary_line(topic: &TopicInfo) -> String {
    let rf = topic.partitions.first().map_or(0, |p| p.replicas.len());
    let configs = topic
        .configs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "Topic: {}\tTopicId: \tPartitionCount: {}\tReplicationFactor: {rf}\tConfigs: {configs}\n",
        topic.name,
        topic.partitions.len()
    )
}

fn partition_line(topic: &str, p: &PartitionInfo) -> String {
    let leader = if p.leader < 0 {
        "none".to_string()
    } else {
        p.leader.to_string()
    };
    format!(
        "\tTopic: {topic}\tPartition: {}\tLeader: {leader}\tReplicas: {}\tIsr: {}\n",
        p.id,
        join_ids(&p.replicas),
        join_ids(&p.isr)
    )
}

/// The error text Kafka's tools use for a broker error code.
pub fn error_text(topic: &str, code: RDKafkaErrorCode) -> String {
    match code {
        RDKafkaErrorCode::TopicAlreadyExists => format!("Topic '{topic}' already exists."),
        RDKafkaErrorCode::UnknownTopicOrPartition => {
            format!("Topic '{topic}' does not exist as expected")
        }
        other => format!("{other} (topic '{topic}')"),
    }
}

/// Which single action the command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Create,
    List,
    Describe,
    Alter,
    Delete,
}

fn action(args: &TopicsArgs) -> Result<Action, String> {
    super::exactly_one(
        &[
            (args.create, Action::Create),
            (args.list, Action::List),
            (args.describe, Action::Describe),
            (args.alter, Action::Alter),
            (args.delete, Action::Delete),
        ],
        "Command must include exactly one action: --list, --describe, --create, --alter or --delete",
    )
}

fn required_topic(args: &TopicsArgs) -> Result<&str, String> {
    args.topic
        .as_deref()
        .ok_or_else(|| "Missing required argument \"[topic]\"".to_string())
}

/// Runs the command; errors print as Kafka's `Error while executing topic command : ...`.
pub fn run(args: TopicsArgs) -> ExitCode {
    match execute(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error while executing topic command : {e}");
            ExitCode::FAILURE
        }
    }
}

fn execute(args: &TopicsArgs) -> anyhow::Result<()> {
    let action = action(args).map_err(anyhow::Error::msg)?;
    let config = client_config(
        &args.bootstrap_server,
        &[],
        args.command_config.as_deref(),
        &[],
    )?;
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let rt = runtime()?;
    let mut out = String::new();
    match action {
        Action::Create => rt.block_on(create(&admin, args, &mut out))?,
        Action::List => list(&admin, args, &mut out)?,
        Action::Describe => rt.block_on(describe(&admin, args, &mut out))?,
        Action::Alter => rt.block_on(alter(&admin, args))?,
        Action::Delete => rt.block_on(delete(&admin, args))?,
    }
    print!("{out}");
    Ok(())
}

fn options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .operation_timeout(Some(REQUEST_TIMEOUT))
}

/// The whole cluster's metadata (asking for one topic could auto-create it).
fn metadata(admin: &AdminClient<DefaultClientContext>) -> anyhow::Result<Metadata> {
    Ok(admin.inner().fetch_metadata(None, REQUEST_TIMEOUT)?)
}

fn topic_exists(metadata: &Metadata, topic: &str) -> bool {
    metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none())
}

async fn create(
    admin: &AdminClient<DefaultClientContext>,
    args: &TopicsArgs,
    out: &mut String,
) -> anyhow::Result<()> {
    let topic = required_topic(args).map_err(anyhow::Error::msg)?;
    if matches!(args.partitions, Some(n) if n < 1) {
        anyhow::bail!("The partitions must be greater than 0");
    }
    if matches!(args.replication_factor, Some(n) if n < 1) {
        anyhow::bail!("The replication factor must be greater than 0");
    }
    let mut new = NewTopic::new(
        topic,
        args.partitions.unwrap_or(-1),
        TopicReplication::Fixed(args.replication_factor.unwrap_or(-1)),
    );
    for (k, v) in &args.config {
        new = new.set(k, v);
    }
    let results = admin.create_topics([&new], &options()).await?;
    for result in results {
        match result {
            Ok(name) => out.push_str(&format!("Created topic {name}.\n")),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) if args.if_not_exists => {}
            Err((name, code)) => anyhow::bail!(error_text(&name, code)),
        }
    }
    Ok(())
}

fn list(
    admin: &AdminClient<DefaultClientContext>,
    args: &TopicsArgs,
    out: &mut String,
) -> anyhow::Result<()> {
    let metadata = metadata(admin)?;
    let mut names: Vec<&str> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| t.name())
        .filter(|n| !(args.exclude_internal && INTERNAL_TOPICS.contains(n)))
        .filter(|n| args.topic.as_deref().is_none_or(|t| t == *n))
        .collect();
    names.sort_unstable();
    for n in names {
        out.push_str(n);
        out.push('\n');
    }
    Ok(())
}

/// The topic's configuration entries that are not defaults; empty when the broker cannot
/// answer DescribeConfigs.
async fn non_default_configs(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> Vec<(String, String)> {
    let spec = ResourceSpecifier::Topic(topic);
    let answer =
        tokio::time::timeout(REQUEST_TIMEOUT, admin.describe_configs([&spec], &options())).await;
    let Ok(Ok(results)) = answer else {
        return Vec::new();
    };
    let mut configs: Vec<(String, String)> = results
        .into_iter()
        .filter_map(Result::ok)
        .flat_map(|r| r.entries)
        .filter(|e| !e.is_default)
        .map(|e| {
            let value = e.value.unwrap_or_else(|| "null".to_string());
            (e.name, value)
        })
        .collect();
    configs.sort();
    configs
}

async fn describe(
    admin: &AdminClient<DefaultClientContext>,
    args: &TopicsArgs,
    out: &mut String,
) -> anyhow::Result<()> {
    let metadata = metadata(admin)?;
    if let Some(topic) = &args.topic {
        if !topic_exists(&metadata, topic) {
            if args.if_exists {
                return Ok(());
            }
            anyhow::bail!("Topic '{topic}' does not exist as expected");
        }
    }
    let mut topics: Vec<_> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .filter(|t| !(args.exclude_internal && INTERNAL_TOPICS.contains(&t.name())))
        .filter(|t| args.topic.as_deref().is_none_or(|n| n == t.name()))
        .collect();
    topics.sort_by_key(|t| t.name());
    for t in topics {
        let mut partitions: Vec<PartitionInfo> = t
            .partitions()
            .iter()
            .map(|p| PartitionInfo {
                id: p.id(),
                leader: p.leader(),
                replicas: p.replicas().to_vec(),
                isr: p.isr().to_vec(),
            })
            .collect();
        partitions.sort_by_key(|p| p.id);
        let filter = DescribeFilter::of(args);
        // The partition filters print no summary, so they need no configs either.
        let configs = if filter.partitions_only() {
            Vec::new()
        } else {
            non_default_configs(admin, t.name()).await
        };
        let info = TopicInfo {
            name: t.name().to_string(),
            partitions,
            configs,
        };
        out.push_str(&format_description(&info, filter));
    }
    Ok(())
}

async fn alter(admin: &AdminClient<DefaultClientContext>, args: &TopicsArgs) -> anyhow::Result<()> {
    let topic = required_topic(args).map_err(anyhow::Error::msg)?;
    let metadata = metadata(admin)?;
    let Some(current) = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
    else {
        if args.if_exists {
            return Ok(());
        }
        anyhow::bail!("Topic '{topic}' does not exist as expected");
    };
    let Some(wanted) = args.partitions else {
        anyhow::bail!("Missing required argument \"[partitions]\"");
    };
    let now = current.partitions().len();
    if usize::try_from(wanted).unwrap_or(0) <= now {
        anyhow::bail!(
            "The number of partitions for a topic can only be increased. Topic {topic} currently has {now} partitions, {wanted} would not be an increase."
        );
    }
    let new = NewPartitions::new(topic, usize::try_from(wanted)?);
    for result in admin.create_partitions([&new], &options()).await? {
        if let Err((name, code)) = result {
            anyhow::bail!(error_text(&name, code));
        }
    }
    Ok(())
}

async fn delete(
    admin: &AdminClient<DefaultClientContext>,
    args: &TopicsArgs,
) -> anyhow::Result<()> {
    let topic = required_topic(args).map_err(anyhow::Error::msg)?;
    let metadata = metadata(admin)?;
    if !topic_exists(&metadata, topic) {
        if args.if_exists {
            return Ok(());
        }
        anyhow::bail!("Topic '{topic}' does not exist as expected");
    }
    for result in admin.delete_topics(&[topic], &options()).await? {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) if args.if_exists => {}
            Err((name, code)) => anyhow::bail!(error_text(&name, code)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> TopicsArgs {
        let mut argv = vec!["kafka-topics", "--bootstrap-server", "h:1"];
        argv.extend_from_slice(extra);
        TopicsArgs::try_parse_from(argv).unwrap()
    }

    #[test]
    fn description_matches_kafkas_layout() {
        let info = TopicInfo {
            name: "orders".into(),
            partitions: vec![
                PartitionInfo {
                    id: 0,
                    leader: 1,
                    replicas: vec![1, 2, 3],
                    isr: vec![1, 2],
                },
                PartitionInfo {
                    id: 1,
                    leader: -1,
                    replicas: vec![2, 3, 1],
                    isr: vec![],
                },
            ],
            configs: vec![
                ("cleanup.policy".into(), "compact".into()),
                ("retention.ms".into(), "1000".into()),
            ],
        };
        assert_eq!(
            format_description(&info, DescribeFilter::default()),
            "Topic: orders\tTopicId: \tPartitionCount: 2\tReplicationFactor: 3\tConfigs: cleanup.policy=compact,retention.ms=1000\n\
             \tTopic: orders\tPartition: 0\tLeader: 1\tReplicas: 1,2,3\tIsr: 1,2\n\
             \tTopic: orders\tPartition: 1\tLeader: none\tReplicas: 2,3,1\tIsr: \n"
        );
    }

    #[test]
    fn describe_filters_pick_partitions_or_summaries() {
        let p = |id, leader, isr: Vec<i32>| PartitionInfo {
            id,
            leader,
            replicas: vec![1, 2],
            isr,
        };
        let mut info = TopicInfo {
            name: "t".into(),
            partitions: vec![p(0, 1, vec![1, 2]), p(1, 2, vec![2]), p(2, -1, vec![])],
            configs: vec![],
        };
        let under = DescribeFilter {
            under_replicated: true,
            ..DescribeFilter::default()
        };
        assert_eq!(
            format_description(&info, under),
            "\tTopic: t\tPartition: 1\tLeader: 2\tReplicas: 1,2\tIsr: 2\n\
             \tTopic: t\tPartition: 2\tLeader: none\tReplicas: 1,2\tIsr: \n"
        );
        let unavailable = DescribeFilter {
            unavailable: true,
            ..DescribeFilter::default()
        };
        assert_eq!(
            format_description(&info, unavailable),
            "\tTopic: t\tPartition: 2\tLeader: none\tReplicas: 1,2\tIsr: \n"
        );
        let overrides = DescribeFilter {
            with_overrides: true,
            ..DescribeFilter::default()
        };
        assert_eq!(format_description(&info, overrides), "");
        info.configs = vec![("retention.ms".into(), "1".into())];
        assert_eq!(
            format_description(&info, overrides),
            "Topic: t\tTopicId: \tPartitionCount: 3\tReplicationFactor: 2\tConfigs: retention.ms=1\n"
        );
    }

    #[test]
    fn exactly_one_action_is_required() {
        assert_eq!(action(&args(&["--list"])), Ok(Action::List));
        assert_eq!(
            action(&args(&["--describe", "--topic", "t"])),
            Ok(Action::Describe)
        );
        assert!(action(&args(&[])).is_err());
        assert!(action(&args(&["--list", "--delete"])).is_err());
    }

    #[test]
    fn configs_and_counts_parse() {
        let a = args(&[
            "--create",
            "--topic",
            "t",
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=10",
            "--config",
            "cleanup.policy=compact",
        ]);
        assert_eq!(a.partitions, Some(3));
        assert_eq!(a.replication_factor, Some(1));
        assert_eq!(
            a.config,
            vec![
                ("retention.ms".to_string(), "10".to_string()),
                ("cleanup.policy".to_string(), "compact".to_string())
            ]
        );
        assert!(TopicsArgs::try_parse_from(["kafka-topics", "--list"]).is_err());
    }

    #[test]
    fn broker_errors_read_like_kafkas() {
        assert_eq!(
            error_text("t", RDKafkaErrorCode::TopicAlreadyExists),
            "Topic 't' already exists."
        );
        assert_eq!(
            error_text("t", RDKafkaErrorCode::UnknownTopicOrPartition),
            "Topic 't' does not exist as expected"
        );
    }
}
