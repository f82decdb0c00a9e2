//! `kafka-consumer-groups`: list, describe, reset the offsets of and delete consumer groups,
//! with Kafka 3.x's options and tables.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::props::{client_config, read_properties_file, runtime, REQUEST_TIMEOUT};
use super::topics::INTERNAL_TOPICS;

/// Command line of `kafka-consumer-groups`.
#[derive(Debug, Parser)]
#[command(
    name = "kafka-consumer-groups",
    about = "List all consumer groups, describe a consumer group, delete consumer group info, or reset consumer group offsets.",
    disable_version_flag = true
)]
pub struct GroupsArgs {
    /// The broker to connect to.
    #[arg(long = "bootstrap-server", value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// A properties file with librdkafka client settings.
    #[arg(long = "command-config", value_name = "FILE")]
    pub command_config: Option<PathBuf>,
    /// List all consumer groups.
    #[arg(long)]
    pub list: bool,
    /// Describe the group's committed offsets, lag and members.
    #[arg(long)]
    pub describe: bool,
    /// Reset the group's committed offsets (the group must have no active members).
    #[arg(long = "reset-offsets")]
    pub reset_offsets: bool,
    /// Delete the group.
    #[arg(long)]
    pub delete: bool,
    /// The consumer group (repeatable).
    #[arg(long)]
    pub group: Vec<String>,
    /// With --describe or --delete: every group.
    #[arg(long = "all-groups")]
    pub all_groups: bool,
    /// With --reset-offsets: a topic, optionally with partitions (`topic:0,1,2`; repeatable).
    #[arg(long)]
    pub topic: Vec<String>,
    /// With --reset-offsets: every topic the group has committed offsets for.
    #[arg(long = "all-topics")]
    pub all_topics: bool,
    /// Reset to the earliest offset.
    #[arg(long = "to-earliest")]
    pub to_earliest: bool,
    /// Reset to the latest offset.
    #[arg(long = "to-latest")]
    pub to_latest: bool,
    /// Reset to this offset (clamped to the partition's range).
    #[arg(long = "to-offset", value_name = "N")]
    pub to_offset: Option<i64>,
    /// Shift the committed offset by N (may be negative; clamped to the partition's range).
    #[arg(long = "shift-by", value_name = "N", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// Reset to the current committed offset.
    #[arg(long = "to-current")]
    pub to_current: bool,
    /// Only show the new offsets.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// Commit the new offsets.
    #[arg(long)]
    pub execute: bool,
}

/// The value Kafka prints for a missing column.
const MISSING: &str = "-";

/// Decodes a consumer-protocol member assignment: version (i16), then an array of (topic
/// string, array of i32 partitions), then user data (ignored).
pub fn parse_assignment(bytes: &[u8]) -> Result<Vec<(String, Vec<i32>)>, String> {
    let mut r = Reader { bytes, at: 0 };
    let _version = r.i16()?;
    let topics = r.i32()?;
    let mut out = Vec::new();
    for _ in 0..topics.max(0) {
        let len = usize::try_from(r.i16()?).map_err(|_| "null topic name".to_string())?;
        let name = String::from_utf8_lossy(r.take(len)?).into_owned();
        let n = r.i32()?;
        let mut partitions = Vec::new();
        for _ in 0..n.max(0) {
            partitions.push(r.i32()?);
        }
        out.push((name, partitions));
    }
    Ok(out)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!("assignment truncated at byte {}", self.at));
        };
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn i16(&mut self) -> Result<i16, String> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// One row of `--describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeRow {
    pub group: String,
    pub topic: Option<String>,
    pub partition: Option<i32>,
    pub current_offset: Option<i64>,
    pub log_end_offset: Option<i64>,
    pub consumer_id: Option<String>,
    pub host: Option<String>,
    pub client_id: Option<String>,
}

impl DescribeRow {
    /// Log-end offset minus committed offset, when both are known.
    pub fn lag(&self) -> Option<i64> {
        Some(self.log_end_offset? - self.current_offset?)
    }
}

fn or_missing<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or(MISSING.to_string(), T::to_string)
}

fn pad(text: &str, width: usize) -> String {
    format!("{text:<width$}")
}

/// Kafka's `--describe` offsets table: a blank line, the header, one line per row. Group,
/// topic, consumer-id and host columns are at least 15 wide, wider for longer values.
pub fn format_describe(rows: &[DescribeRow], group: &str) -> String {
    let width =
        |f: &dyn Fn(&DescribeRow) -> usize, min: usize| rows.iter().map(f).fold(min, usize::max);
    let wg = width(&|r| r.group.len(), 15.max(group.len()));
    let wt = width(&|r| r.topic.as_deref().unwrap_or(MISSING).len(), 15);
    let wc = width(&|r| r.consumer_id.as_deref().unwrap_or(MISSING).len(), 15);
    let wh = width(&|r| r.host.as_deref().unwrap_or(MISSING).len(), 15);
    let line = |cols: [&str; 9]| {
        format!(
            "\n{} {} {} {} {} {} {} {} {}",
            pad(cols[0], wg),
            pad(cols[1], wt),
            pad(cols[2], 10),
            pad(cols[3], 15),
            pad(cols[4], 15),
            pad(cols[5], 15),
            pad(cols[6], wc),
            pad(cols[7], wh),
            cols[8]
        )
    };
    let mut out = line([
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]);
    for r in rows {
        out.push_str(&line([
            &r.group,
            r.topic.as_deref().unwrap_or(MISSING),
            &or_missing(&r.partition),
            &or_missing(&r.current_offset),
            &or_missing(&r.log_end_offset),
            &or_missing(&r.lag()),
            r.consumer_id.as_deref().unwrap_or(MISSING),
            r.host.as_deref().unwrap_or(MISSING),
            r.client_id.as_deref().unwrap_or(MISSING),
        ]));
    }
    out.push('\n');
    out
}

/// Kafka's `--reset-offsets` table: `GROUP TOPIC PARTITION NEW-OFFSET` in fixed columns.
pub fn format_reset(group: &str, offsets: &[(String, i32, i64)]) -> String {
    let line = |a: &str, b: &str, c: &str, d: &str| {
        format!(
            "{} {} {} {}\n",
            pad(a, 30),
            pad(b, 30),
            pad(c, 10),
            pad(d, 15)
        )
    };
    let mut out = String::from("\n");
    out.push_str(&line("GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"));
    for (topic, partition, offset) in offsets {
        out.push_str(&line(
            group,
            topic,
            &partition.to_string(),
            &offset.to_string(),
        ));
    }
    out.push('\n');
    out
}

/// How `--reset-offsets` picks the new offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetSpec {
    Earliest,
    Latest,
    To(i64),
    ShiftBy(i64),
    Current,
}

/// The new offset of one partition with watermarks `[low, high]` and the group's committed
/// offset; explicit and shifted targets are clamped to the range, as Kafka does.
pub fn reset_target(
    spec: ResetSpec,
    low: i64,
    high: i64,
    committed: Option<i64>,
    partition: &str,
) -> Result<i64, String> {
    let clamp = |o: i64| o.clamp(low, high.max(low));
    match spec {
        ResetSpec::Earliest => Ok(low),
        ResetSpec::Latest => Ok(high),
        ResetSpec::To(n) => Ok(clamp(n)),
        ResetSpec::ShiftBy(n) => committed.map(|c| clamp(c.saturating_add(n))).ok_or_else(|| {
            format!("Cannot shift offset for partition {partition} since there is no current committed offset")
        }),
        ResetSpec::Current => committed.ok_or_else(|| {
            format!("There is no current committed offset for partition {partition}")
        }),
    }
}

/// Parses a `--topic` scope of `--reset-offsets`: `topic` or `topic:0,1,2`.
pub fn parse_topic_scope(text: &str) -> Result<(String, Option<Vec<i32>>), String> {
    match text.split_once(':') {
        None => Ok((text.to_string(), None)),
        Some((topic, list)) => {
            let partitions = list
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<i32>()
                        .map_err(|_| format!("Invalid partition '{p}' in --topic {text}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((topic.to_string(), Some(partitions)))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    List,
    Describe,
    Reset,
    Delete,
}

fn action(args: &GroupsArgs) -> Result<Action, String> {
    super::exactly_one(
        &[
            (args.list, Action::List),
            (args.describe, Action::Describe),
            (args.reset_offsets, Action::Reset),
            (args.delete, Action::Delete),
        ],
        "Command must include exactly one action: --list, --describe, --delete, --reset-offsets",
    )
}

fn reset_spec(args: &GroupsArgs) -> Result<ResetSpec, String> {
    let specs: Vec<ResetSpec> = [
        args.to_earliest.then_some(ResetSpec::Earliest),
        args.to_latest.then_some(ResetSpec::Latest),
        args.to_offset.map(ResetSpec::To),
        args.shift_by.map(ResetSpec::ShiftBy),
        args.to_current.then_some(ResetSpec::Current),
    ]
    .into_iter()
    .flatten()
    .collect();
    match specs.as_slice() {
        [one] => Ok(*one),
        _ => Err("Option [reset-offsets] takes exactly one of these options: [to-earliest], [to-latest], [to-offset], [shift-by], [to-current]".into()),
    }
}

/// Runs the command; errors print on stderr as `Error: ...` and exit 1.
pub fn run(args: GroupsArgs) -> ExitCode {
    match execute(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nError: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What the tool needs to reach the cluster.
struct Cluster<'a> {
    args: &'a GroupsArgs,
    admin: AdminClient<DefaultClientContext>,
}

impl Cluster<'_> {
    fn config(&self) -> anyhow::Result<ClientConfig> {
        client_config(
            &self.args.bootstrap_server,
            &[],
            self.args.command_config.as_deref(),
            &[],
        )
    }

    /// A consumer of `group` that never joins it: it reads and commits offsets only.
    fn offsets_client(&self, group: &str) -> anyhow::Result<BaseConsumer> {
        let mut config = self.config()?;
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        Ok(config.create()?)
    }

    /// The group's state and members (`Dead` when the broker does not know it).
    fn group_state(&self, group: &str) -> anyhow::Result<GroupState> {
        let list = self
            .admin
            .inner()
            .fetch_group_list(Some(group), REQUEST_TIMEOUT)?;
        let Some(info) = list.groups().iter().find(|g| g.name() == group) else {
            return Ok(GroupState {
                state: "Dead".into(),
                members: Vec::new(),
            });
        };
        let consumer_protocol = matches!(info.protocol_type(), "consumer" | "");
        let members = info
            .members()
            .iter()
            .map(|m| Member {
                id: m.id().to_string(),
                client_id: m.client_id().to_string(),
                host: m.client_host().to_string(),
                assignment: m
                    .assignment()
                    .filter(|a| consumer_protocol && !a.is_empty())
                    .and_then(|a| parse_assignment(a).ok())
                    .unwrap_or_default(),
            })
            .collect();
        Ok(GroupState {
            state: info.state().to_string(),
            members,
        })
    }

    /// Every partition of every non-internal topic, by topic.
    fn all_partitions(&self) -> anyhow::Result<BTreeMap<String, Vec<i32>>> {
        let metadata = self.admin.inner().fetch_metadata(None, REQUEST_TIMEOUT)?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !INTERNAL_TOPICS.contains(&t.name()))
            .map(|t| {
                let mut ps: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
                ps.sort_unstable();
                (t.name().to_string(), ps)
            })
            .collect())
    }

    /// The group's committed offsets among `partitions`.
    fn committed(
        &self,
        group: &str,
        partitions: &BTreeSet<(String, i32)>,
    ) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
        if partitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        let consumer = self.offsets_client(group)?;
        let mut tpl = TopicPartitionList::new();
        for (t, p) in partitions {
            tpl.add_partition(t, *p);
        }
        let answer = consumer.committed_offsets(tpl, REQUEST_TIMEOUT)?;
        Ok(answer
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) if e.error().is_ok() => {
                    Some(((e.topic().to_string(), e.partition()), o))
                }
                _ => None,
            })
            .collect())
    }

    fn watermarks(&self, topic: &str, partition: i32) -> anyhow::Result<(i64, i64)> {
        Ok(self
            .admin
            .inner()
            .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)?)
    }

    fn all_groups(&self) -> anyhow::Result<Vec<String>> {
        let list = self.admin.inner().fetch_group_list(None, REQUEST_TIMEOUT)?;
        let mut names: Vec<String> = list.groups().iter().map(|g| g.name().to_string()).collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn groups(&self) -> anyhow::Result<Vec<String>> {
        if self.args.all_groups {
            return self.all_groups();
        }
        if self.args.group.is_empty() {
            anyhow::bail!(
                "Option [{}] takes one of these options: [all-groups], [group]",
                self.action_name()
            );
        }
        Ok(self.args.group.clone())
    }

    fn action_name(&self) -> &'static str {
        match action(self.args) {
            Ok(Action::Describe) => "describe",
            Ok(Action::Reset) => "reset-offsets",
            Ok(Action::Delete) => "delete",
            _ => "list",
        }
    }
}

/// A group member as DescribeGroups reports it, with its decoded assignment.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub client_id: String,
    pub host: String,
    pub assignment: Vec<(String, Vec<i32>)>,
}

#[derive(Debug)]
struct GroupState {
    state: String,
    members: Vec<Member>,
}

fn execute(args: &GroupsArgs) -> anyhow::Result<()> {
    let action = action(args).map_err(anyhow::Error::msg)?;
    if let Some(path) = &args.command_config {
        // Fail early and clearly on a bad file.
        read_properties_file(path)?;
    }
    let admin: AdminClient<DefaultClientContext> = client_config(
        &args.bootstrap_server,
        &[],
        args.command_config.as_deref(),
        &[],
    )?
    .create()?;
    let cluster = Cluster { args, admin };
    match action {
        Action::List => {
            for name in cluster.all_groups()? {
                println!("{name}");
            }
            Ok(())
        }
        Action::Describe => {
            for group in cluster.groups()? {
                describe(&cluster, &group)?;
            }
            Ok(())
        }
        Action::Reset => {
            let spec = reset_spec(args).map_err(anyhow::Error::msg)?;
            for group in cluster.groups()? {
                reset(&cluster, &group, spec)?;
            }
            Ok(())
        }
        Action::Delete => delete(&cluster),
    }
}

fn describe(cluster: &Cluster<'_>, group: &str) -> anyhow::Result<()> {
    let state = cluster.group_state(group)?;
    match state.state.as_str() {
        "Dead" => anyhow::bail!("Consumer group '{group}' does not exist."),
        "Empty" => eprintln!("\nConsumer group '{group}' has no active members."),
        "PreparingRebalance" | "CompletingRebalance" | "AwaitingSync" => {
            eprintln!("\nWarning: Consumer group '{group}' is rebalancing.")
        }
        _ => {}
    }
    let mut wanted: BTreeSet<(String, i32)> = BTreeSet::new();
    for (topic, partitions) in cluster.all_partitions()? {
        wanted.extend(partitions.into_iter().map(|p| (topic.clone(), p)));
    }
    for m in &state.members {
        for (topic, partitions) in &m.assignment {
            wanted.extend(partitions.iter().map(|p| (topic.clone(), *p)));
        }
    }
    let committed = cluster.committed(group, &wanted)?;
    // A partition whose log end cannot be read (e.g. a deleted topic) shows `-`.
    let log_end = |t: &str, p: i32| cluster.watermarks(t, p).ok().map(|(_, high)| high);
    let rows = group_rows(group, &state.members, &committed, log_end);
    print!("{}", format_describe(&rows, group));
    Ok(())
}

fn partition_count(m: &Member) -> usize {
    m.assignment.iter().map(|(_, ps)| ps.len()).sum()
}

/// The `--describe` rows in Kafka's order: the partitions of each member with partitions
/// (members with more partitions first), then members without partitions, then committed
/// partitions no member is assigned.
pub fn group_rows(
    group: &str,
    members: &[Member],
    committed: &BTreeMap<(String, i32), i64>,
    log_end: impl Fn(&str, i32) -> Option<i64>,
) -> Vec<DescribeRow> {
    let row = |topic: &str, partition: i32, member: Option<&Member>| DescribeRow {
        group: group.to_string(),
        topic: Some(topic.to_string()),
        partition: Some(partition),
        current_offset: committed.get(&(topic.to_string(), partition)).copied(),
        log_end_offset: log_end(topic, partition),
        consumer_id: member.map(|m| m.id.clone()),
        host: member.map(|m| m.host.clone()),
        client_id: member.map(|m| m.client_id.clone()),
    };
    let mut sorted: Vec<&Member> = members.iter().collect();
    sorted.sort_by_key(|m| std::cmp::Reverse(partition_count(m)));
    let mut rows = Vec::new();
    let mut assigned: BTreeSet<(String, i32)> = BTreeSet::new();
    for m in sorted.iter().filter(|m| partition_count(m) > 0) {
        let mut tps: Vec<(String, i32)> = m
            .assignment
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
            .collect();
        tps.sort();
        for (t, p) in tps {
            rows.push(row(&t, p, Some(m)));
            assigned.insert((t, p));
        }
    }
    for m in sorted.iter().filter(|m| partition_count(m) == 0) {
        rows.push(DescribeRow {
            group: group.to_string(),
            topic: None,
            partition: None,
            current_offset: None,
            log_end_offset: None,
            consumer_id: Some(m.id.clone()),
            host: Some(m.host.clone()),
            client_id: Some(m.client_id.clone()),
        });
    }
    for (t, p) in committed.keys().filter(|tp| !assigned.contains(*tp)) {
        rows.push(row(t, *p, None));
    }
    rows
}

/// The partitions `--reset-offsets` applies to for `group`.
fn reset_scope(cluster: &Cluster<'_>, group: &str) -> anyhow::Result<BTreeSet<(String, i32)>> {
    let all = cluster.all_partitions()?;
    let mut scope = BTreeSet::new();
    if cluster.args.all_topics {
        let every: BTreeSet<(String, i32)> = all
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
            .collect();
        scope.extend(cluster.committed(group, &every)?.into_keys());
        return Ok(scope);
    }
    if cluster.args.topic.is_empty() {
        anyhow::bail!("One of the reset scopes should be defined: --all-topics, --topic.");
    }
    for text in &cluster.args.topic {
        let (topic, partitions) = parse_topic_scope(text).map_err(anyhow::Error::msg)?;
        let Some(existing) = all.get(&topic) else {
            anyhow::bail!("Topic '{topic}' does not exist.");
        };
        for p in partitions.unwrap_or_else(|| existing.clone()) {
            if !existing.contains(&p) {
                anyhow::bail!("Partition {topic}-{p} does not exist.");
            }
            scope.insert((topic.clone(), p));
        }
    }
    Ok(scope)
}

fn reset(cluster: &Cluster<'_>, group: &str, spec: ResetSpec) -> anyhow::Result<()> {
    let args = cluster.args;
    if args.dry_run && args.execute {
        anyhow::bail!("Option [reset-offsets] does not accept both [dry-run] and [execute].");
    }
    if !args.dry_run && !args.execute {
        eprintln!(
            "WARN: No action will be performed as the --execute option is missing. \
             Add --dry-run to show the new offsets without this warning, or --execute to apply them."
        );
    }
    let state = cluster.group_state(group)?;
    if !matches!(state.state.as_str(), "Empty" | "Dead") {
        anyhow::bail!(
            "Assignments can only be reset if the group '{group}' is inactive, but the current state is {}.\n{}",
            state.state,
            still_active(&state.members)
        );
    }
    let scope = reset_scope(cluster, group)?;
    let committed = cluster.committed(group, &scope)?;
    let mut new_offsets = Vec::new();
    for (topic, partition) in &scope {
        let (low, high) = cluster.watermarks(topic, *partition)?;
        let current = committed.get(&(topic.clone(), *partition)).copied();
        let target = reset_target(spec, low, high, current, &format!("{topic}-{partition}"))
            .map_err(anyhow::Error::msg)?;
        new_offsets.push((topic.clone(), *partition, target));
    }
    if args.execute && !new_offsets.is_empty() {
        let mut tpl = TopicPartitionList::new();
        for (t, p, o) in &new_offsets {
            tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
        }
        cluster
            .offsets_client(group)?
            .commit(&tpl, CommitMode::Sync)?;
    }
    print!("{}", format_reset(group, &new_offsets));
    Ok(())
}

/// Who keeps a group active, for the refusal of `--reset-offsets`: the reset waits for these
/// members to leave (stop them, or let `session.timeout.ms` pass after they died).
pub fn still_active(members: &[Member]) -> String {
    if members.is_empty() {
        return "Waiting for the group to finish rebalancing; try again in a few seconds.".into();
    }
    let mut text = format!(
        "Waiting for {} member{} to leave (stop them, or wait session.timeout.ms after they died):",
        members.len(),
        if members.len() == 1 { "" } else { "s" }
    );
    for m in members {
        text.push_str(&format!(
            "\n  {} (client id {}, host {})",
            m.id, m.client_id, m.host
        ));
    }
    text
}

fn delete(cluster: &Cluster<'_>) -> anyhow::Result<()> {
    let groups = cluster.groups()?;
    let names: Vec<&str> = groups.iter().map(String::as_str).collect();
    let options = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
    let results = runtime()?.block_on(cluster.admin.delete_groups(&names, &options))?;
    let failures: Vec<String> = results
        .into_iter()
        .filter_map(Result::err)
        .map(|(name, code)| format!("* Group '{name}' could not be deleted due to: {code}"))
        .collect();
    if failures.is_empty() {
        let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
        println!(
            "Deletion of requested consumer groups ({}) was successful.",
            quoted.join(", ")
        );
        return Ok(());
    }
    anyhow::bail!(
        "Deletion of some consumer groups failed:\n{}",
        failures.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment_bytes(topics: &[(&str, &[i32])], user_data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 1];
        b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for (t, ps) in topics {
            b.extend_from_slice(&(t.len() as i16).to_be_bytes());
            b.extend_from_slice(t.as_bytes());
            b.extend_from_slice(&(ps.len() as i32).to_be_bytes());
            for p in *ps {
                b.extend_from_slice(&p.to_be_bytes());
            }
        }
        b.extend_from_slice(&(user_data.len() as i32).to_be_bytes());
        b.extend_from_slice(user_data);
        b
    }

    #[test]
    fn assignments_decode() {
        let bytes = assignment_bytes(&[("orders", &[0, 2]), ("audit", &[])], b"xy");
        assert_eq!(
            parse_assignment(&bytes),
            Ok(vec![
                ("orders".into(), vec![0, 2]),
                ("audit".into(), vec![])
            ])
        );
        assert!(parse_assignment(&bytes[..9]).is_err());
        assert!(parse_assignment(&[]).is_err());
    }

    fn row(
        topic: &str,
        partition: i32,
        current: Option<i64>,
        end: i64,
        member: bool,
    ) -> DescribeRow {
        DescribeRow {
            group: "g".into(),
            topic: Some(topic.into()),
            partition: Some(partition),
            current_offset: current,
            log_end_offset: Some(end),
            consumer_id: member.then(|| "rdkafka-0a1b".into()),
            host: member.then(|| "/127.0.0.1".into()),
            client_id: member.then(|| "rdkafka".into()),
        }
    }

    #[test]
    fn describe_table_matches_kafkas_columns() {
        let rows = vec![row("t", 0, Some(3), 5, true), row("t", 1, None, 4, false)];
        let expected = "\n\
GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID     HOST            CLIENT-ID\n\
g               t               0          3               5               2               rdkafka-0a1b    /127.0.0.1      rdkafka\n\
g               t               1          -               4               -               -               -               -\n";
        assert_eq!(format_describe(&rows, "g"), expected);
    }

    #[test]
    fn describe_columns_widen_for_long_values() {
        let mut r = row("a-rather-long-topic-name", 0, Some(1), 1, false);
        r.group = "g".into();
        let text = format_describe(&[r], "g");
        let header = text.lines().nth(1).unwrap();
        assert!(header.starts_with("GROUP           TOPIC                    PARTITION"));
        assert_eq!(format_describe(&[], "g").lines().count(), 2);
    }

    #[test]
    fn rows_list_busier_members_first_then_idle_members_then_unassigned_offsets() {
        let member = |id: &str, assignment: Vec<(String, Vec<i32>)>| Member {
            id: id.into(),
            client_id: "c".into(),
            host: "/10.0.0.1".into(),
            assignment,
        };
        let members = vec![
            member("m1", vec![("t".into(), vec![2])]),
            member("idle", vec![]),
            member("m2", vec![("u".into(), vec![0]), ("t".into(), vec![1, 0])]),
        ];
        let committed: BTreeMap<(String, i32), i64> = [
            (("t".to_string(), 0), 4),
            (("t".to_string(), 3), 9),
            (("u".to_string(), 0), 1),
        ]
        .into_iter()
        .collect();
        let rows = group_rows("g", &members, &committed, |t, p| {
            (t == "t").then_some(10 + i64::from(p))
        });
        let summary: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {} {}",
                    or_missing(&r.topic),
                    or_missing(&r.partition),
                    or_missing(&r.current_offset),
                    or_missing(&r.lag()),
                    or_missing(&r.consumer_id)
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                "t 0 4 6 m2",
                "t 1 - - m2",
                "u 0 1 - m2",
                "t 2 - - m1",
                "- - - - idle",
                "t 3 9 4 -",
            ]
        );
    }

    #[test]
    fn reset_table_uses_fixed_columns() {
        let text = format_reset("g", &[("t".into(), 0, 7)]);
        assert_eq!(
            text,
            format!(
                "\n{:<30} {:<30} {:<10} {:<15}\n{:<30} {:<30} {:<10} {:<15}\n\n",
                "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET", "g", "t", "0", "7"
            )
        );
    }

    #[test]
    fn reset_targets_clamp_to_the_log() {
        assert_eq!(reset_target(ResetSpec::Earliest, 2, 9, None, "t-0"), Ok(2));
        assert_eq!(reset_target(ResetSpec::Latest, 2, 9, Some(4), "t-0"), Ok(9));
        assert_eq!(reset_target(ResetSpec::To(100), 2, 9, None, "t-0"), Ok(9));
        assert_eq!(reset_target(ResetSpec::To(0), 2, 9, None, "t-0"), Ok(2));
        assert_eq!(
            reset_target(ResetSpec::ShiftBy(-3), 2, 9, Some(4), "t-0"),
            Ok(2)
        );
        assert_eq!(
            reset_target(ResetSpec::ShiftBy(3), 2, 9, Some(4), "t-0"),
            Ok(7)
        );
        assert!(reset_target(ResetSpec::ShiftBy(1), 2, 9, None, "t-0").is_err());
        assert_eq!(
            reset_target(ResetSpec::Current, 2, 9, Some(5), "t-0"),
            Ok(5)
        );
    }

    #[test]
    fn topic_scopes_and_specs_parse() {
        assert_eq!(parse_topic_scope("t"), Ok(("t".into(), None)));
        assert_eq!(
            parse_topic_scope("t:0,2"),
            Ok(("t".into(), Some(vec![0, 2])))
        );
        assert!(parse_topic_scope("t:x").is_err());
        let parse = |extra: &[&str]| {
            let mut argv = vec!["kafka-consumer-groups", "--bootstrap-server", "h:1"];
            argv.extend_from_slice(extra);
            GroupsArgs::try_parse_from(argv).unwrap()
        };
        let a = parse(&["--reset-offsets", "--group", "g", "--shift-by", "-2"]);
        assert_eq!(action(&a), Ok(Action::Reset));
        assert_eq!(reset_spec(&a), Ok(ResetSpec::ShiftBy(-2)));
        assert!(reset_spec(&parse(&["--reset-offsets", "--to-earliest", "--to-latest"])).is_err());
        assert!(reset_spec(&parse(&["--reset-offsets"])).is_err());
        assert!(action(&parse(&["--list", "--describe"])).is_err());
    }
}
