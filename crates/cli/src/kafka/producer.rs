//! `kafka-console-producer`: reads stdin line by line and produces one record per line, parsing
//! keys and headers out of the line the way Kafka 3.x's `LineMessageReader` does.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use super::props::{client_config, flag, parse_property, property_map, REQUEST_TIMEOUT};

/// Command line of `kafka-console-producer`.
#[derive(Debug, Parser)]
#[command(
    name = "kafka-console-producer",
    about = "Reads data from standard input and publishes it to a topic, one record per line.",
    disable_version_flag = true
)]
pub struct ProducerArgs {
    /// The broker to connect to.
    #[arg(long = "bootstrap-server", value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// The topic to produce to.
    #[arg(long)]
    pub topic: String,
    /// Line-reader properties: parse.key, key.separator, parse.headers, headers.delimiter,
    /// headers.separator, headers.key.separator, null.marker, ignore.error (repeatable).
    #[arg(long = "property", value_name = "PROP=VALUE", value_parser = parse_property)]
    pub property: Vec<(String, String)>,
    /// A librdkafka producer setting (repeatable).
    #[arg(long = "producer-property", value_name = "PROP=VALUE", value_parser = parse_property)]
    pub producer_property: Vec<(String, String)>,
    /// A properties file with librdkafka producer settings.
    #[arg(long = "producer.config", value_name = "FILE")]
    pub producer_config: Option<PathBuf>,
    /// The acks the producer asks for: -1 (all), 0 or 1.
    #[arg(
        long = "request-required-acks",
        default_value = "-1",
        allow_hyphen_values = true
    )]
    pub request_required_acks: String,
    /// none, gzip, snappy, lz4 or zstd; gzip when given without a value.
    #[arg(long = "compression-codec", num_args = 0..=1, default_missing_value = "gzip")]
    pub compression_codec: Option<String>,
    /// How long records may wait to be batched (linger.ms).
    #[arg(long = "timeout", value_name = "MS", default_value_t = 1000)]
    pub timeout: u64,
    /// Wait for each record to be acknowledged before reading the next line.
    #[arg(long)]
    pub sync: bool,
    /// How many times a failed send is retried.
    #[arg(long = "message-send-max-retries", value_name = "N")]
    pub message_send_max_retries: Option<u32>,
    /// How long the producer waits for the broker's answer to a request.
    #[arg(long = "request-timeout-ms", value_name = "MS")]
    pub request_timeout_ms: Option<u64>,
}

/// One record parsed from a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRecord {
    pub key: Option<String>,
    pub value: Option<String>,
    pub headers: Vec<(String, Option<String>)>,
}

/// How lines turn into records (Kafka's `--property` settings of the line reader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineReader {
    pub parse_key: bool,
    pub key_separator: String,
    pub parse_headers: bool,
    pub headers_delimiter: String,
    pub headers_separator: String,
    pub headers_key_separator: String,
    pub ignore_error: bool,
    pub null_marker: Option<String>,
}

impl Default for LineReader {
    fn default() -> Self {
        LineReader {
            parse_key: false,
            key_separator: "\t".into(),
            parse_headers: false,
            headers_delimiter: "\t".into(),
            headers_separator: ",".into(),
            headers_key_separator: ":".into(),
            ignore_error: false,
            null_marker: None,
        }
    }
}

impl LineReader {
    /// Reads the line-reader settings from `--property` pairs.
    pub fn from_properties(map: &HashMap<String, String>) -> Result<LineReader, String> {
        let d = LineReader::default();
        let text = |key: &str, default: String| map.get(key).cloned().unwrap_or(default);
        let reader = LineReader {
            parse_key: flag(map, "parse.key", false)?,
            key_separator: text("key.separator", d.key_separator),
            parse_headers: flag(map, "parse.headers", false)?,
            headers_delimiter: text("headers.delimiter", d.headers_delimiter),
            headers_separator: text("headers.separator", d.headers_separator),
            headers_key_separator: text("headers.key.separator", d.headers_key_separator),
            ignore_error: flag(map, "ignore.error", false)?,
            null_marker: map.get("null.marker").cloned(),
        };
        for (name, value) in [
            ("key.separator", &reader.key_separator),
            ("headers.delimiter", &reader.headers_delimiter),
            ("headers.separator", &reader.headers_separator),
            ("headers.key.separator", &reader.headers_key_separator),
        ] {
            if value.is_empty() {
                return Err(format!("{name} must not be empty"));
            }
        }
        Ok(reader)
    }

    fn is_null(&self, s: &str) -> bool {
        self.null_marker.as_deref() == Some(s)
    }

    /// The text before `sep` from `start` on, when `enabled`; `None` when disabled, or when
    /// the separator is missing and errors are ignored.
    fn field<'l>(
        &self,
        enabled: bool,
        line: &'l str,
        start: usize,
        sep: &str,
        name: &str,
        number: u64,
    ) -> Result<Option<&'l str>, String> {
        if !enabled {
            return Ok(None);
        }
        match line[start..].find(sep) {
            Some(i) => Ok(Some(&line[start..start + i])),
            None if self.ignore_error => Ok(None),
            None => Err(format!("No {name} found on line number {number}: '{line}'")),
        }
    }

    /// Parses line `number` (1-based) into a record: `headers<delim>key<sep>value` with the
    /// parts that are enabled.
    pub fn parse(&self, line: &str, number: u64) -> Result<LineRecord, String> {
        let headers = self.field(
            self.parse_headers,
            line,
            0,
            &self.headers_delimiter,
            "headers delimiter",
            number,
        )?;
        let after_headers = headers.map_or(0, |h| h.len() + self.headers_delimiter.len());
        let key = self.field(
            self.parse_key,
            line,
            after_headers,
            &self.key_separator,
            "key separator",
            number,
        )?;
        let after_key = key.map_or(0, |k| k.len() + self.key_separator.len());
        let value = &line[after_headers + after_key..];
        let headers = match headers {
            Some(h) if !self.is_null(h) => self.split_headers(h, number)?,
            _ => Vec::new(),
        };
        Ok(LineRecord {
            key: key.filter(|k| !self.is_null(k)).map(str::to_string),
            value: (!self.is_null(value)).then(|| value.to_string()),
            headers,
        })
    }

    fn split_headers(
        &self,
        text: &str,
        number: u64,
    ) -> Result<Vec<(String, Option<String>)>, String> {
        let mut pairs: Vec<&str> = text.split(self.headers_separator.as_str()).collect();
        // Like Java's String.split, trailing empty pairs are dropped (but not a lone one).
        while pairs.len() > 1 && pairs.last() == Some(&"") {
            pairs.pop();
        }
        let mut out = Vec::new();
        for pair in pairs {
            match pair.find(self.headers_key_separator.as_str()) {
                None if self.ignore_error => out.push((pair.to_string(), None)),
                None => {
                    return Err(format!(
                        "No header key separator found in pair '{pair}' on line number {number}"
                    ))
                }
                Some(i) => {
                    let key = &pair[..i];
                    if self.is_null(key) {
                        return Err(format!(
                            "Header keys should not be equal to the null marker '{key}' as they can't be null"
                        ));
                    }
                    let value = &pair[i + self.headers_key_separator.len()..];
                    let value = (!self.is_null(value)).then(|| value.to_string());
                    out.push((key.to_string(), value));
                }
            }
        }
        Ok(out)
    }
}

/// Counts failed deliveries and reports each on stderr.
#[derive(Debug, Default)]
struct DeliveryReporter {
    failed: AtomicU64,
}

impl ClientContext for DeliveryReporter {}

impl ProducerContext for DeliveryReporter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, msg)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            let key = msg
                .key()
                .map_or("null".to_string(), |k| format!("{} bytes", k.len()));
            let value = msg
                .payload()
                .map_or("null".to_string(), |v| format!("{} bytes", v.len()));
            eprintln!(
                "ERROR Error when sending message to topic {} with key: {key}, value: {value} with error: {e}",
                msg.topic()
            );
        }
    }
}

/// The producer settings the console producer starts from (Kafka's defaults for the tool:
/// acks=all, a 1 s linger, Java's murmur2 partitioning so keys land where Java clients put them).
fn producer_defaults(args: &ProducerArgs) -> Vec<(String, String)> {
    let mut d = vec![
        ("acks".to_string(), args.request_required_acks.clone()),
        ("linger.ms".to_string(), args.timeout.to_string()),
        ("partitioner".to_string(), "murmur2_random".to_string()),
        ("message.timeout.ms".to_string(), "120000".to_string()),
    ];
    if let Some(codec) = &args.compression_codec {
        d.push(("compression.codec".into(), codec.clone()));
    }
    if let Some(n) = args.message_send_max_retries {
        d.push(("message.send.max.retries".into(), n.to_string()));
    }
    if let Some(ms) = args.request_timeout_ms {
        d.push(("request.timeout.ms".into(), ms.to_string()));
    }
    d
}

/// Runs the producer until end of input; exit status 1 when a line could not be parsed or a
/// record could not be delivered.
pub fn run(args: ProducerArgs) -> ExitCode {
    match produce(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ERROR {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn produce(args: &ProducerArgs) -> anyhow::Result<bool> {
    let reader =
        LineReader::from_properties(&property_map(&args.property)).map_err(anyhow::Error::msg)?;
    let defaults = producer_defaults(args);
    let defaults: Vec<(&str, &str)> = defaults
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let config = client_config(
        &args.bootstrap_server,
        &defaults,
        args.producer_config.as_deref(),
        &args.producer_property,
    )?;
    let producer: BaseProducer<DeliveryReporter> =
        config.create_with_context(DeliveryReporter::default())?;
    let prompt = std::io::stdin().is_terminal();
    let mut ok = true;
    let mut number = 0u64;
    let mut stdin = std::io::stdin().lock();
    loop {
        if prompt {
            print!(">");
            std::io::stdout().flush()?;
        }
        let Some(line) = read_line(&mut stdin)? else {
            break;
        };
        number += 1;
        let record = match reader.parse(&line, number) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("ERROR {e}");
                ok = false;
                break;
            }
        };
        send(&producer, &args.topic, &record)?;
        if args.sync {
            producer.flush(REQUEST_TIMEOUT * 4)?;
        }
    }
    producer.flush(Duration::from_secs(150))?;
    Ok(ok && producer.context().failed.load(Ordering::Relaxed) == 0)
}

/// The next line without its `\n` or `\r\n` (bytes that are not UTF-8 are replaced, as
/// Java's reader does); `None` at end of input.
pub fn read_line(input: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    if input.read_until(b'\n', &mut buf)? == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Queues one record, serving delivery reports while the local queue is full.
fn send(
    producer: &BaseProducer<DeliveryReporter>,
    topic: &str,
    record: &LineRecord,
) -> anyhow::Result<()> {
    let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
    for (key, value) in &record.headers {
        headers = headers.insert(Header {
            key,
            value: value.as_deref(),
        });
    }
    let mut base: BaseRecord<'_, str, str> = BaseRecord::to(topic).headers(headers);
    if let Some(k) = &record.key {
        base = base.key(k.as_str());
    }
    if let Some(v) = &record.value {
        base = base.payload(v.as_str());
    }
    loop {
        match producer.send(base) {
            Ok(()) => {
                producer.poll(Duration::ZERO);
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                base = back;
                producer.poll(Duration::from_millis(100));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(props: &[(&str, &str)]) -> LineReader {
        let pairs: Vec<(String, String)> = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LineReader::from_properties(&property_map(&pairs)).unwrap()
    }

    fn rec(key: Option<&str>, value: Option<&str>, headers: &[(&str, Option<&str>)]) -> LineRecord {
        LineRecord {
            key: key.map(str::to_string),
            value: value.map(str::to_string),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        }
    }

    #[test]
    fn plain_lines_are_values() {
        let r = reader(&[]);
        assert_eq!(r.parse("a\tb", 1), Ok(rec(None, Some("a\tb"), &[])));
        assert_eq!(r.parse("", 2), Ok(rec(None, Some(""), &[])));
    }

    #[test]
    fn keys_split_at_the_first_separator() {
        let r = reader(&[("parse.key", "true")]);
        assert_eq!(r.parse("k\tv\tw", 1), Ok(rec(Some("k"), Some("v\tw"), &[])));
        let r = reader(&[("parse.key", "true"), ("key.separator", "::")]);
        assert_eq!(r.parse("k::v", 1), Ok(rec(Some("k"), Some("v"), &[])));
        assert_eq!(
            r.parse("no separator", 7),
            Err("No key separator found on line number 7: 'no separator'".into())
        );
    }

    #[test]
    fn headers_then_key_then_value() {
        let r = reader(&[("parse.key", "true"), ("parse.headers", "true")]);
        assert_eq!(
            r.parse("h1:v1,h2:v2\tkey\tvalue", 1),
            Ok(rec(
                Some("key"),
                Some("value"),
                &[("h1", Some("v1")), ("h2", Some("v2"))]
            ))
        );
        assert_eq!(
            r.parse("h1\tk\tv", 3),
            Err("No header key separator found in pair 'h1' on line number 3".into())
        );
        assert_eq!(
            r.parse("novalue", 4),
            Err("No headers delimiter found on line number 4: 'novalue'".into())
        );
    }

    #[test]
    fn custom_header_separators_and_trailing_pairs() {
        let r = reader(&[
            ("parse.headers", "true"),
            ("headers.delimiter", "|"),
            ("headers.separator", ";"),
            ("headers.key.separator", "="),
        ]);
        assert_eq!(
            r.parse("a=1;b=x=y;|value", 1),
            Ok(rec(
                None,
                Some("value"),
                &[("a", Some("1")), ("b", Some("x=y"))]
            ))
        );
    }

    #[test]
    fn null_marker_makes_nulls_and_ignore_error_keeps_going() {
        let r = reader(&[
            ("parse.key", "true"),
            ("parse.headers", "true"),
            ("null.marker", "<null>"),
        ]);
        assert_eq!(
            r.parse("h:<null>\t<null>\t<null>", 1),
            Ok(rec(None, None, &[("h", None)]))
        );
        assert!(r.parse("<null>:v\tk\tv", 2).is_err());
        let r = reader(&[("parse.key", "true"), ("ignore.error", "true")]);
        assert_eq!(
            r.parse("just a value", 1),
            Ok(rec(None, Some("just a value"), &[]))
        );
    }

    #[test]
    fn lines_end_at_newlines_and_tolerate_bad_bytes() {
        let mut input: &[u8] = b"a\r\nb\n\xffc\nlast";
        let mut lines = Vec::new();
        while let Some(l) = read_line(&mut input).unwrap() {
            lines.push(l);
        }
        assert_eq!(lines, ["a", "b", "\u{fffd}c", "last"]);
    }

    #[test]
    fn defaults_follow_kafkas_console_producer() {
        let args = ProducerArgs::try_parse_from([
            "kafka-console-producer",
            "--bootstrap-server",
            "h:1",
            "--topic",
            "t",
            "--compression-codec",
        ])
        .unwrap();
        let d = producer_defaults(&args);
        assert!(d.contains(&("acks".into(), "-1".into())));
        assert!(d.contains(&("compression.codec".into(), "gzip".into())));
        assert!(d.contains(&("partitioner".into(), "murmur2_random".into())));
        let args = ProducerArgs::try_parse_from([
            "kafka-console-producer",
            "--bootstrap-server",
            "h:1",
            "--topic",
            "t",
            "--request-required-acks",
            "1",
        ])
        .unwrap();
        assert_eq!(args.request_required_acks, "1");
    }
}
