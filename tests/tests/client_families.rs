//! The client families log pipelines reach Kafka through, each against a cluster of one coord
//! node and three brokers (replication factor 3), each with the client installed from its own
//! registry by `scripts/setup.sh`:
//!
//! ```text
//!   tests/clients/java    kafka-clients 3.9 and 4.x (Logstash, Kafka Connect, Flink, Spark),
//!                         and Apache Kafka's own command-line tools (kafka-tools 4.x)
//!   tests/clients/go      franz-go (kgo, kadm) and sarama (Filebeat's client)
//!   tests/clients/node    kafkajs
//! ```
//!
//! Each check program runs the steps its header lists (admin, idempotent acks=all produce with
//! the codecs the client has, consumer groups rebalancing on join and leave, committed offsets,
//! list offsets and delete records, group and topic clean-up), asserts what the client observed,
//! and prints `ok <step>` per step; a failed step exits non-zero and fails the test with the
//! program's output and the brokers' log tails. `docs/compatibility.md` is the table these tests
//! keep true.

use sluice_e2e::{clients_dir, clients_src, java_classpath, KafkaCluster};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SETTINGS: &str = "default.replication.factor=3\nmin.insync.replicas=2\noffsets.topic.replication.factor=3\nnum.partitions=3\n";

/// Runs `cmd` (stdout and stderr to files in `dir`) for at most `timeout`; returns its stdout,
/// or panics with both outputs and the last lines of every broker's log.
fn run_check(
    cluster: &KafkaCluster,
    dir: &Path,
    name: &str,
    cmd: &mut Command,
    timeout: Duration,
) -> String {
    let out_path = dir.join(format!("{name}.out"));
    let err_path = dir.join(format!("{name}.err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e} (run scripts/setup.sh)"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    if status.is_some_and(|s| s.success()) && stdout.lines().any(|l| l == "done") {
        return stdout;
    }
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let tails: String = cluster
        .brokers
        .iter()
        .map(|b| {
            let text = b.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(30);
            format!("--- broker {} ---\n{}\n", b.id, lines[from..].join("\n"))
        })
        .collect();
    panic!(
        "{name} {}:\n--- stdout ---\n{stdout}\n--- stderr (last 60 lines) ---\n{}\n{tails}",
        match status {
            Some(s) => format!("exited with {s}"),
            None => format!("still running after {timeout:?}"),
        },
        stderr
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn steps(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ok "))
        .map(|l| l.split(' ').next().unwrap())
        .collect()
}

/// The Java client of each line: the same program (Java's source launcher) against one cluster.
#[test]
fn java_kafka_clients_3_9_and_4_x() {
    let cluster = KafkaCluster::start(1, 3, SETTINGS);
    let dir = tempfile::tempdir().unwrap();
    for (line, prefix) in [("client-3.9.1", "java39"), ("client-4.4.0", "java44")] {
        let stdout = run_check(
            &cluster,
            dir.path(),
            line,
            Command::new("java")
                .arg("-cp")
                .arg(java_classpath(line))
                .arg(clients_src("java").join("ClientCheck.java"))
                .args([&cluster.bootstrap(), "3", prefix]),
            Duration::from_secs(240),
        );
        assert_eq!(
            steps(&stdout),
            ["admin", "produce", "groups", "groups", "restart", "offsets", "cleanup"],
            "{line}: {stdout}"
        );
    }
}

/// The Go clients: franz-go and sarama, built from tests/clients/go by scripts/setup.sh.
#[test]
fn go_franz_go_and_sarama() {
    let cluster = KafkaCluster::start(1, 3, SETTINGS);
    let dir = tempfile::tempdir().unwrap();
    let bin = clients_dir().join("go/bin");
    let franz = run_check(
        &cluster,
        dir.path(),
        "franz",
        Command::new(bin.join("franz")).args([&cluster.bootstrap(), "3", "franz"]),
        Duration::from_secs(180),
    );
    assert_eq!(
        steps(&franz),
        ["admin", "produce", "groups", "offsets", "cleanup"],
        "{franz}"
    );
    let sarama = run_check(
        &cluster,
        dir.path(),
        "sarama",
        Command::new(bin.join("sarama")).args([&cluster.bootstrap(), "3", "sarama"]),
        Duration::from_secs(180),
    );
    assert_eq!(
        steps(&sarama),
        ["admin", "sync", "async", "groups", "cleanup"],
        "{sarama}"
    );
}

/// kafkajs, installed into tests/clients/node/node_modules by scripts/setup.sh.
#[test]
fn node_kafkajs() {
    let cluster = KafkaCluster::start(1, 3, SETTINGS);
    let dir = tempfile::tempdir().unwrap();
    let src = clients_src("node");
    assert!(
        src.join("node_modules/kafkajs").exists(),
        "kafkajs is missing: run scripts/setup.sh"
    );
    let out = run_check(
        &cluster,
        dir.path(),
        "kafkajs",
        Command::new("node").current_dir(&src).args([
            "check.js",
            &cluster.bootstrap(),
            "3",
            "kafkajs",
        ]),
        Duration::from_secs(180),
    );
    assert_eq!(
        steps(&out),
        ["admin", "produce", "groups", "offsets", "cleanup"],
        "{out}"
    );
}

/// One of Apache Kafka's command-line tools (kafka-tools 4.x), as its `bin/kafka-*.sh` runs it.
fn kafka_tool(class: &str, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("java")
        .arg("-cp")
        .arg(java_classpath("tools-4.4.0"))
        .arg(class)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("java");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.success(), format!("{stdout}{stderr}"))
}

/// Apache Kafka's own tools, unchanged: kafka-topics, the console producer and consumer,
/// kafka-consumer-groups --describe with lag, kafka-producer-perf-test, kafka-get-offsets.
#[test]
fn apache_kafka_command_line_tools() {
    let cluster = KafkaCluster::start(1, 3, SETTINGS);
    let b = cluster.bootstrap();
    let b = b.as_str();
    let topics = "org.apache.kafka.tools.TopicCommand";

    let (ok, out) = kafka_tool(
        topics,
        &[
            "--bootstrap-server",
            b,
            "--create",
            "--topic",
            "access-log",
            "--partitions",
            "3",
            "--replication-factor",
            "3",
            "--config",
            "retention.ms=86400000",
        ],
        None,
    );
    assert!(ok && out.contains("Created topic access-log"), "{out}");
    let (ok, out) = kafka_tool(topics, &["--bootstrap-server", b, "--list"], None);
    assert!(ok && out.lines().any(|l| l == "access-log"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let described = loop {
        let (ok, out) = kafka_tool(
            topics,
            &[
                "--bootstrap-server",
                b,
                "--describe",
                "--topic",
                "access-log",
            ],
            None,
        );
        assert!(ok, "{out}");
        let full_isr = out
            .lines()
            .filter(|l| l.contains("Partition:") && l.contains("Isr:"))
            .filter(|l| {
                l.split("Isr:").nth(1).map_or(0, |isr| {
                    isr.split_whitespace()
                        .next()
                        .unwrap_or("")
                        .split(',')
                        .count()
                }) == 3
            })
            .count();
        if full_isr == 3 || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        described.contains("PartitionCount: 3")
            && described.contains("ReplicationFactor: 3")
            && described.contains("retention.ms=86400000"),
        "{described}"
    );

    // Keyed (`key:value` lines), so the records spread over every partition and the group
    // below holds a position, hence a committed offset, in each.
    let lines: Vec<String> = (0..300).map(|i| format!("GET /page/{i} 200")).collect();
    let input: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("host-{i}:{l}\n"))
        .collect();
    let (ok, out) = kafka_tool(
        "org.apache.kafka.tools.ConsoleProducer",
        &[
            "--bootstrap-server",
            b,
            "--topic",
            "access-log",
            "--producer-property",
            "acks=all",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
        ],
        Some(&input),
    );
    assert!(ok, "console producer: {out}");
    let (ok, out) = kafka_tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--bootstrap-server",
            b,
            "--topic",
            "access-log",
            "--from-beginning",
            "--group",
            "readers",
            "--max-messages",
            "300",
            "--timeout-ms",
            "30000",
        ],
        None,
    );
    assert!(ok, "console consumer: {out}");
    let mut read: Vec<&str> = out.lines().filter(|l| l.starts_with("GET ")).collect();
    let mut want: Vec<&str> = lines.iter().map(String::as_str).collect();
    read.sort_unstable();
    want.sort_unstable();
    assert_eq!(read, want, "console consumer read: {out}");

    // 20,000 more records behind the group's committed offsets: the lag the tool reports.
    let perf_props = format!("bootstrap.servers={b}");
    let (ok, out) = kafka_tool(
        "org.apache.kafka.tools.ProducerPerformance",
        &[
            "--topic",
            "access-log",
            "--num-records",
            "20000",
            "--record-size",
            "100",
            "--throughput",
            "-1",
            "--producer-props",
            &perf_props,
            "acks=all",
        ],
        None,
    );
    assert!(ok && out.contains("20000 records sent"), "perf test: {out}");
    let (ok, out) = kafka_tool(
        "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
        &["--bootstrap-server", b, "--describe", "--group", "readers"],
        None,
    );
    assert!(ok, "consumer groups: {out}");
    // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.len() >= 6 && c[0] == "readers" && c[1] == "access-log")
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    let lag: i64 = rows.iter().map(|c| c[5].parse::<i64>().unwrap()).sum();
    let committed: i64 = rows.iter().map(|c| c[3].parse::<i64>().unwrap()).sum();
    assert_eq!((committed, lag), (300, 20_000), "{out}");

    let (ok, out) = kafka_tool(
        "org.apache.kafka.tools.GetOffsetShell",
        &["--bootstrap-server", b, "--topic", "access-log"],
        None,
    );
    assert!(ok, "get offsets: {out}");
    let end: i64 = out
        .lines()
        .filter_map(|l| l.rsplit(':').next()?.parse::<i64>().ok())
        .sum();
    assert_eq!(end, 20_300, "{out}");

    let (ok, out) = kafka_tool(
        topics,
        &["--bootstrap-server", b, "--delete", "--topic", "access-log"],
        None,
    );
    assert!(ok, "{out}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, out) = kafka_tool(topics, &["--bootstrap-server", b, "--list"], None);
        if !out.lines().any(|l| l == "access-log") {
            break;
        }
        assert!(Instant::now() < deadline, "topic still listed: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
