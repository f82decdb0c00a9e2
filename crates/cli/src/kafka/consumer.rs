//! `kafka-console-consumer`: consumes a topic (in a group, or one partition from an offset)
//! and prints each record the way Kafka 3.x's `DefaultMessageFormatter` does.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message, Timestamp};
use rdkafka::{Offset, TopicPartitionList};

use super::props::{client_config, flag, parse_property, property_map, runtime};

/// Command line of `kafka-console-consumer`.
#[derive(Debug, Parser)]
#[command(
    name = "kafka-console-consumer",
    about = "Consumes records from a topic and prints them to standard output.",
    disable_version_flag = true
)]
pub struct ConsumerArgs {
    /// The broker to connect to.
    #[arg(long = "bootstrap-server", value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// The topic to consume.
    #[arg(long)]
    pub topic: Option<String>,
    /// A regular expression of the topics to consume (instead of --topic).
    #[arg(long, value_name = "REGEX")]
    pub include: Option<String>,
    /// The consumer group to join (default: a fresh console-consumer-N group, not committed).
    #[arg(long)]
    pub group: Option<String>,
    /// Start from the earliest offset when the group has no committed offset.
    #[arg(long = "from-beginning")]
    pub from_beginning: bool,
    /// Consume only this partition (no group membership).
    #[arg(long)]
    pub partition: Option<i32>,
    /// With --partition: earliest, latest or an offset number.
    #[arg(long)]
    pub offset: Option<String>,
    /// Exit after this many records.
    #[arg(long = "max-messages", value_name = "N")]
    pub max_messages: Option<u64>,
    /// Exit when no record arrived for this long.
    #[arg(long = "timeout-ms", value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// Formatter properties: print.key, print.value, print.headers, print.timestamp,
    /// print.partition, print.offset, key.separator, line.separator, headers.separator,
    /// headers.key.separator, null.literal (repeatable).
    #[arg(long = "property", value_name = "PROP=VALUE", value_parser = parse_property)]
    pub property: Vec<(String, String)>,
    /// A librdkafka consumer setting (repeatable).
    #[arg(long = "consumer-property", value_name = "PROP=VALUE", value_parser = parse_property)]
    pub consumer_property: Vec<(String, String)>,
    /// A properties file with librdkafka consumer settings.
    #[arg(long = "consumer.config", value_name = "FILE")]
    pub consumer_config: Option<PathBuf>,
    /// read_committed or read_uncommitted.
    #[arg(long = "isolation-level", value_name = "LEVEL")]
    pub isolation_level: Option<String>,
}

/// Where a partition consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOffset {
    Earliest,
    Latest,
    At(i64),
}

/// Parses `--offset`: `earliest`, `latest` or a non-negative offset.
pub fn parse_start_offset(text: &str) -> Result<StartOffset, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "earliest" => Ok(StartOffset::Earliest),
        "latest" => Ok(StartOffset::Latest),
        n => match n.parse::<i64>() {
            Ok(o) if o >= 0 => Ok(StartOffset::At(o)),
            _ => Err(format!(
                "The provided offset value '{text}' is incorrect. Valid values are 'earliest', 'latest', or a non-negative long."
            )),
        },
    }
}

/// One record as the formatter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView<'a> {
    pub timestamp: Timestamp,
    pub partition: i32,
    pub offset: i64,
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// Kafka's `DefaultMessageFormatter` and its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formatter {
    pub print_timestamp: bool,
    pub print_partition: bool,
    pub print_offset: bool,
    pub print_headers: bool,
    pub print_key: bool,
    pub print_value: bool,
    pub key_separator: String,
    pub line_separator: String,
    pub headers_separator: String,
    pub headers_key_separator: String,
    pub null_literal: String,
}

impl Formatter {
    /// Reads the formatter settings from `--property` pairs.
    pub fn from_properties(map: &HashMap<String, String>) -> Result<Formatter, String> {
        let text = |key: &str, default: &str| map.get(key).cloned().unwrap_or(default.into());
        Ok(Formatter {
            print_timestamp: flag(map, "print.timestamp", false)?,
            print_partition: flag(map, "print.partition", false)?,
            print_offset: flag(map, "print.offset", false)?,
            print_headers: flag(map, "print.headers", false)?,
            print_key: flag(map, "print.key", false)?,
            print_value: flag(map, "print.value", true)?,
            key_separator: text("key.separator", "\t"),
            line_separator: text("line.separator", "\n"),
            headers_separator: text("headers.separator", ","),
            headers_key_separator: text("headers.key.separator", ":"),
            null_literal: text("null.literal", "null"),
        })
    }

    fn bytes(&self, out: &mut Vec<u8>, data: Option<&[u8]>) {
        out.extend_from_slice(data.unwrap_or(self.null_literal.as_bytes()));
    }

    /// The bytes printed for one record, line separator included.
    pub fn format(&self, r: &RecordView<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        // Each column is followed by the separator when a later column is printed.
        let columns = [
            self.print_timestamp,
            self.print_partition,
            self.print_offset,
            self.print_headers,
            self.print_key,
            self.print_value,
        ];
        let more_after = |i: usize| columns[i + 1..].iter().any(|c| *c);
        let sep = self.key_separator.as_bytes();
        if self.print_timestamp {
            let text = match r.timestamp {
                Timestamp::CreateTime(t) => format!("CreateTime:{t}"),
                Timestamp::LogAppendTime(t) => format!("LogAppendTime:{t}"),
                Timestamp::NotAvailable => "NO_TIMESTAMP".to_string(),
            };
            out.extend_from_slice(text.as_bytes());
            if more_after(0) {
                out.extend_from_slice(sep);
            }
        }
        if self.print_partition {
            out.extend_from_slice(format!("Partition:{}", r.partition).as_bytes());
            if more_after(1) {
                out.extend_from_slice(sep);
            }
        }
        if self.print_offset {
            out.extend_from_slice(format!("Offset:{}", r.offset).as_bytes());
            if more_after(2) {
                out.extend_from_slice(sep);
            }
        }
        if self.print_headers {
            if r.headers.is_empty() {
                out.extend_from_slice(b"NO_HEADERS");
            }
            for (i, (key, value)) in r.headers.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(self.headers_separator.as_bytes());
                }
                out.extend_from_slice(key.as_bytes());
                out.extend_from_slice(self.headers_key_separator.as_bytes());
                self.bytes(&mut out, *value);
            }
            if more_after(3) {
                out.extend_from_slice(sep);
            }
        }
        if self.print_key {
            self.bytes(&mut out, r.key);
            if more_after(4) {
                out.extend_from_slice(sep);
            }
        }
        if self.print_value {
            self.bytes(&mut out, r.value);
        }
        out.extend_from_slice(self.line_separator.as_bytes());
        out
    }
}

/// A fresh group name like Kafka's `console-consumer-<n>` (n below 100000).
pub fn generated_group() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let n = (u64::from(nanos) ^ (u64::from(std::process::id()) * 7919)) % 100_000;
    format!("console-consumer-{n}")
}

/// Checks the option combinations Kafka's console consumer refuses.
fn validate(args: &ConsumerArgs) -> Result<Option<StartOffset>, String> {
    if args.topic.is_some() == args.include.is_some() {
        return Err("Exactly one of --include/--topic is required.".into());
    }
    if args.partition.is_some() && args.topic.is_none() {
        return Err("The topic is required when partition is specified.".into());
    }
    let Some(text) = &args.offset else {
        return Ok(None);
    };
    if args.partition.is_none() {
        return Err("The partition is required when offset is specified.".into());
    }
    if args.from_beginning {
        return Err("Options from-beginning and offset cannot be specified together.".into());
    }
    parse_start_offset(text).map(Some)
}

/// Runs the consumer until --max-messages, --timeout-ms, Ctrl-C or SIGTERM; prints
/// `Processed a total of N messages` on stderr at the end, as Kafka does.
pub fn run(args: ConsumerArgs) -> ExitCode {
    let start = match validate(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let formatter = match Formatter::from_properties(&property_map(&args.property)) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime().and_then(|rt| rt.block_on(consume(&args, start, &formatter)));
    match result {
        Ok(count) => {
            eprintln!("Processed a total of {count} messages");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ERROR Unknown error when running consumer: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn create_consumer(args: &ConsumerArgs) -> anyhow::Result<(StreamConsumer, bool)> {
    let reset = if args.from_beginning {
        "earliest"
    } else {
        "latest"
    };
    let explicit_group = args.group.is_some();
    let group = args.group.clone().unwrap_or_else(generated_group);
    let commit = if explicit_group { "true" } else { "false" };
    let mut defaults = vec![
        ("auto.offset.reset", reset),
        ("enable.auto.commit", commit),
        ("client.id", "console-consumer"),
        ("enable.partition.eof", "false"),
    ];
    if let Some(level) = &args.isolation_level {
        defaults.push(("isolation.level", level.as_str()));
    }
    let mut config = client_config(
        &args.bootstrap_server,
        &defaults,
        args.consumer_config.as_deref(),
        &args.consumer_property,
    )?;
    if explicit_group || config.get("group.id").is_none() {
        config.set("group.id", &group);
    }
    let commits = config.get("enable.auto.commit") == Some("true");
    Ok((config.create()?, commits))
}

async fn consume(
    args: &ConsumerArgs,
    start: Option<StartOffset>,
    formatter: &Formatter,
) -> anyhow::Result<u64> {
    let (consumer, commits) = create_consumer(args)?;
    match (args.partition, &args.topic, &args.include) {
        (Some(p), Some(topic), _) => {
            let offset = match start {
                Some(StartOffset::Earliest) => Offset::Beginning,
                Some(StartOffset::At(n)) => Offset::Offset(n),
                Some(StartOffset::Latest) => Offset::End,
                None if args.from_beginning => Offset::Beginning,
                None => Offset::End,
            };
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(topic, p, offset)?;
            consumer.assign(&tpl)?;
        }
        (_, Some(topic), _) => consumer.subscribe(&[topic])?,
        (_, None, Some(regex)) => consumer.subscribe(&[&format!("^{regex}")])?,
        (_, None, None) => unreachable!("validated: a topic or a pattern is given"),
    }
    let count = pump(&consumer, args, formatter).await?;
    if commits {
        // Nothing consumed means nothing to commit; that error is expected.
        let _ = consumer.commit_consumer_state(CommitMode::Sync);
    }
    drop(consumer);
    Ok(count)
}

/// How the receive loop ended.
enum Next<M> {
    Record(M),
    Idle,
    Stop,
}

async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

async fn idle(timeout: Option<Duration>) {
    match timeout {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

async fn pump(
    consumer: &StreamConsumer,
    args: &ConsumerArgs,
    formatter: &Formatter,
) -> anyhow::Result<u64> {
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let stop = stop_signal();
    tokio::pin!(stop);
    let stdout = std::io::stdout();
    let mut count = 0u64;
    let mut last_error = String::new();
    while args.max_messages.is_none_or(|max| count < max) {
        let next = tokio::select! {
            m = consumer.recv() => Next::Record(m),
            () = idle(timeout) => Next::Idle,
            () = &mut stop => Next::Stop,
        };
        let message = match next {
            Next::Record(Ok(m)) => m,
            Next::Record(Err(e)) => {
                let text = e.to_string();
                if text != last_error {
                    eprintln!("WARN {text}");
                    last_error = text;
                }
                continue;
            }
            Next::Idle => {
                eprintln!("ERROR Error processing message, terminating consumer process: TimeoutException");
                break;
            }
            Next::Stop => break,
        };
        let headers: Vec<(&str, Option<&[u8]>)> = message
            .headers()
            .map(|hs| hs.iter().map(|h| (h.key, h.value)).collect())
            .unwrap_or_default();
        let view = RecordView {
            timestamp: message.timestamp(),
            partition: message.partition(),
            offset: message.offset(),
            headers,
            key: message.key(),
            value: message.payload(),
        };
        let bytes = formatter.format(&view);
        let mut out = stdout.lock();
        if out.write_all(&bytes).and_then(|()| out.flush()).is_err() {
            // The reader went away (e.g. `| head`): stop like a closed pipe would.
            break;
        }
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn formatter(props: &[(&str, &str)]) -> Formatter {
        let pairs: Vec<(String, String)> = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Formatter::from_properties(&property_map(&pairs)).unwrap()
    }

    fn view<'a>(
        headers: Vec<(&'a str, Option<&'a [u8]>)>,
        key: Option<&'a [u8]>,
    ) -> RecordView<'a> {
        RecordView {
            timestamp: Timestamp::CreateTime(1_700_000_000_000),
            partition: 0,
            offset: 5,
            headers,
            key,
            value: Some(b"value"),
        }
    }

    fn text(f: &Formatter, r: &RecordView<'_>) -> String {
        String::from_utf8(f.format(r)).unwrap()
    }

    #[test]
    fn value_only_by_default() {
        assert_eq!(text(&formatter(&[]), &view(vec![], Some(b"k"))), "value\n");
        let mut r = view(vec![], None);
        r.value = None;
        assert_eq!(text(&formatter(&[]), &r), "null\n");
    }

    #[test]
    fn every_column_in_kafkas_order() {
        let f = formatter(&[
            ("print.timestamp", "true"),
            ("print.partition", "true"),
            ("print.offset", "true"),
            ("print.headers", "true"),
            ("print.key", "true"),
        ]);
        let r = view(vec![("h1", Some(b"v1")), ("h2", None)], Some(b"k"));
        assert_eq!(
            text(&f, &r),
            "CreateTime:1700000000000\tPartition:0\tOffset:5\th1:v1,h2:null\tk\tvalue\n"
        );
    }

    #[test]
    fn missing_headers_and_keys_and_custom_separators() {
        let f = formatter(&[
            ("print.headers", "true"),
            ("print.key", "true"),
            ("key.separator", " | "),
        ]);
        assert_eq!(text(&f, &view(vec![], None)), "NO_HEADERS | null | value\n");
        let f = formatter(&[("print.key", "true"), ("print.value", "false")]);
        assert_eq!(text(&f, &view(vec![], Some(b"k"))), "k\n");
        let f = formatter(&[("print.timestamp", "true")]);
        let mut r = view(vec![], None);
        r.timestamp = Timestamp::LogAppendTime(7);
        assert_eq!(text(&f, &r), "LogAppendTime:7\tvalue\n");
        r.timestamp = Timestamp::NotAvailable;
        assert_eq!(text(&f, &r), "NO_TIMESTAMP\tvalue\n");
    }

    #[test]
    fn offsets_parse_like_kafkas() {
        assert_eq!(parse_start_offset("earliest"), Ok(StartOffset::Earliest));
        assert_eq!(parse_start_offset("LATEST"), Ok(StartOffset::Latest));
        assert_eq!(parse_start_offset("42"), Ok(StartOffset::At(42)));
        assert!(parse_start_offset("-1").is_err());
        assert!(parse_start_offset("soon").is_err());
    }

    #[test]
    fn option_combinations_are_checked() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["kafka-console-consumer", "--bootstrap-server", "h:1"];
            argv.extend_from_slice(extra);
            validate(&ConsumerArgs::try_parse_from(argv).unwrap())
        };
        assert_eq!(parse(&["--topic", "t"]), Ok(None));
        assert_eq!(
            parse(&["--topic", "t", "--partition", "0", "--offset", "3"]),
            Ok(Some(StartOffset::At(3)))
        );
        assert!(parse(&[]).is_err());
        assert!(parse(&["--topic", "t", "--include", "x.*"]).is_err());
        assert!(parse(&["--topic", "t", "--offset", "3"]).is_err());
        assert!(parse(&[
            "--topic",
            "t",
            "--partition",
            "0",
            "--offset",
            "3",
            "--from-beginning"
        ])
        .is_err());
    }

    #[test]
    fn generated_groups_look_like_kafkas() {
        let g = generated_group();
        let n: u32 = g
            .strip_prefix("console-consumer-")
            .unwrap()
            .parse()
            .unwrap();
        assert!(n < 100_000);
    }
}
