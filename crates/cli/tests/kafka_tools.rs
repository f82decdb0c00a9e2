//! The Kafka-style tools (`kafka-topics`, `kafka-console-producer`, `kafka-console-consumer`,
//! `kafka-consumer-groups`) against a real standalone `coord` and a real broker, asserting the
//! text Kafka 3.x's scripts print.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_e2e::{BrokerNode, CoordCluster};

const TOPICS: &str = env!("CARGO_BIN_EXE_kafka-topics");
const PRODUCER: &str = env!("CARGO_BIN_EXE_kafka-console-producer");
const CONSUMER: &str = env!("CARGO_BIN_EXE_kafka-console-consumer");
const GROUPS: &str = env!("CARGO_BIN_EXE_kafka-consumer-groups");
const CONFIGS: &str = env!("CARGO_BIN_EXE_kafka-configs");

/// What one run of a tool printed, and its exit status.
#[derive(Debug)]
struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

/// Runs `bin` with `--bootstrap-server` and `args`; `stdin` is piped in (and closed).
fn tool(bin: &str, bootstrap: &str, args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(bin)
        .arg("--bootstrap-server")
        .arg(bootstrap)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {bin}: {e}"));
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    Run {
        status: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Runs a tool that must succeed.
fn ok(bin: &str, bootstrap: &str, args: &[&str], stdin: &str) -> Run {
    let run = tool(bin, bootstrap, args, stdin);
    assert_eq!(run.status, 0, "{bin} {args:?} failed: {run:?}");
    run
}

/// Retries `check` for up to 15 s (for what the cluster applies asynchronously).
fn eventually(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn start() -> (CoordCluster, BrokerNode) {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "num.partitions=1\n",
    );
    (coord, broker)
}

/// The `Configs: ...` value of a `--describe` summary line.
fn configs_of(summary: &str) -> &str {
    summary.split("\tConfigs: ").nth(1).unwrap_or("")
}

#[test]
fn topics_create_list_describe_alter_and_delete() {
    let (_coord, broker) = start();
    let b = broker.bootstrap();

    let run = ok(
        TOPICS,
        &b,
        &[
            "--create",
            "--topic",
            "orders",
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=86400000",
        ],
        "",
    );
    assert_eq!(run.stdout, "Created topic orders.\n");
    ok(TOPICS, &b, &["--create", "--topic", "audit"], "");

    let run = ok(TOPICS, &b, &["--list", "--exclude-internal"], "");
    assert_eq!(run.stdout, "audit\norders\n");

    let run = ok(TOPICS, &b, &["--describe", "--topic", "orders"], "");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert!(
        lines[0].starts_with(
            "Topic: orders\tTopicId: \tPartitionCount: 3\tReplicationFactor: 1\tConfigs: "
        ),
        "{}",
        lines[0]
    );
    // Non-default configs when the broker answers DescribeConfigs, else an empty list.
    let configs = configs_of(lines[0]);
    assert!(
        configs.is_empty() || configs.split(',').any(|c| c == "retention.ms=86400000"),
        "{configs}"
    );
    for (p, line) in lines[1..].iter().enumerate() {
        assert_eq!(
            *line,
            format!("\tTopic: orders\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1")
        );
    }
    // Without --topic, every topic in name order.
    let run = ok(TOPICS, &b, &["--describe", "--exclude-internal"], "");
    let summaries: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("Topic: "))
        .collect();
    assert_eq!(summaries.len(), 2, "{}", run.stdout);
    assert!(summaries[0].starts_with("Topic: audit\tTopicId: \tPartitionCount: 1\t"));
    assert!(summaries[1].starts_with("Topic: orders\t"));

    // Filters: every partition has its leader and full ISR on one broker.
    for filter in ["--under-replicated-partitions", "--unavailable-partitions"] {
        let run = ok(TOPICS, &b, &["--describe", filter], "");
        assert_eq!(run.stdout, "", "{filter}");
    }
    let run = ok(TOPICS, &b, &["--describe", "--topics-with-overrides"], "");
    assert!(
        run.stdout.is_empty() || run.stdout.starts_with("Topic: orders\t"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("audit"), "{}", run.stdout);

    // Creating it again fails the way Kafka's tool does, unless --if-not-exists.
    let run = tool(TOPICS, &b, &["--create", "--topic", "orders"], "");
    assert_eq!(run.status, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        "Error while executing topic command : Topic 'orders' already exists.\n"
    );
    assert_eq!(run.stdout, "");
    let run = ok(
        TOPICS,
        &b,
        &["--create", "--topic", "orders", "--if-not-exists"],
        "",
    );
    assert_eq!(run.stdout, "");

    // Bad command lines.
    let run = tool(TOPICS, &b, &["--list", "--delete"], "");
    assert_eq!(run.status, 1);
    assert!(run
        .stderr
        .contains("Command must include exactly one action"));
    let run = tool(TOPICS, &b, &["--describe", "--topic", "missing"], "");
    assert_eq!(run.status, 1);
    assert_eq!(
        run.stderr,
        "Error while executing topic command : Topic 'missing' does not exist as expected\n"
    );

    // Adding partitions (CreatePartitions); shrinking is refused.
    let run = ok(
        TOPICS,
        &b,
        &["--alter", "--topic", "orders", "--partitions", "5"],
        "",
    );
    assert_eq!(run.stdout, "");
    eventually("5 partitions after --alter", || {
        let run = ok(TOPICS, &b, &["--describe", "--topic", "orders"], "");
        let first = run.stdout.lines().next().unwrap_or("").to_string();
        let parts = run
            .stdout
            .lines()
            .filter(|l| l.starts_with("\tTopic:"))
            .count();
        (first.contains("\tPartitionCount: 5\t") && parts == 5)
            .then_some(())
            .ok_or(run.stdout)
    });
    let run = tool(
        TOPICS,
        &b,
        &["--alter", "--topic", "orders", "--partitions", "2"],
        "",
    );
    assert_eq!(run.status, 1);
    assert!(
        run.stderr
            .contains("The number of partitions for a topic can only be increased."),
        "{run:?}"
    );

    // Delete, then it is gone; deleting again fails unless --if-exists.
    let run = ok(TOPICS, &b, &["--delete", "--topic", "orders"], "");
    assert_eq!(run.stdout, "");
    eventually("orders deleted", || {
        let run = ok(TOPICS, &b, &["--list", "--exclude-internal"], "");
        (run.stdout == "audit\n").then_some(()).ok_or(run.stdout)
    });
    let run = tool(TOPICS, &b, &["--delete", "--topic", "orders"], "");
    assert_eq!(run.status, 1);
    assert_eq!(
        run.stderr,
        "Error while executing topic command : Topic 'orders' does not exist as expected\n"
    );
    ok(
        TOPICS,
        &b,
        &["--delete", "--topic", "orders", "--if-exists"],
        "",
    );
}

#[test]
fn console_producer_and_consumer_round_trip_keys_headers_and_metadata() {
    let (_coord, broker) = start();
    let b = broker.bootstrap();
    ok(TOPICS, &b, &["--create", "--topic", "events"], "");

    let input = "h1:v1,h2:v2\tk1\tfirst value\n\
                 trace:abc\tk2\tsecond\tvalue\n\
                 lone:\tk3\t\n";
    let run = ok(
        PRODUCER,
        &b,
        &[
            "--topic",
            "events",
            "--property",
            "parse.key=true",
            "--property",
            "parse.headers=true",
        ],
        input,
    );
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr, "");

    // Keys with a custom separator, values only, compressed, acks=1.
    ok(
        PRODUCER,
        &b,
        &[
            "--topic",
            "events",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=::",
            "--compression-codec",
            "zstd",
            "--request-required-acks",
            "1",
        ],
        "k4::fourth\n",
    );
    ok(PRODUCER, &b, &["--topic", "events", "--sync"], "fifth\n");

    let run = ok(
        CONSUMER,
        &b,
        &[
            "--topic",
            "events",
            "--from-beginning",
            "--property",
            "print.key=true",
            "--property",
            "print.headers=true",
            "--max-messages",
            "5",
        ],
        "",
    );
    assert_eq!(
        run.stdout,
        "h1:v1,h2:v2\tk1\tfirst value\n\
         trace:abc\tk2\tsecond\tvalue\n\
         lone:\tk3\t\n\
         NO_HEADERS\tk4\tfourth\n\
         NO_HEADERS\tnull\tfifth\n"
    );
    assert_eq!(run.stderr, "Processed a total of 5 messages\n");

    // One partition from an offset, with partition, offset and timestamp columns.
    let run = ok(
        CONSUMER,
        &b,
        &[
            "--topic",
            "events",
            "--partition",
            "0",
            "--offset",
            "3",
            "--property",
            "print.partition=true",
            "--property",
            "print.offset=true",
            "--property",
            "print.timestamp=true",
            "--property",
            "print.key=true",
            "--property",
            "key.separator= | ",
            "--max-messages",
            "2",
        ],
        "",
    );
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    for (line, rest) in lines.iter().zip([
        "Partition:0 | Offset:3 | k4 | fourth",
        "Partition:0 | Offset:4 | null | fifth",
    ]) {
        let (ts, tail) = line.split_once(" | ").unwrap();
        let millis: i64 = ts.strip_prefix("CreateTime:").unwrap().parse().unwrap();
        assert!(millis > 1_600_000_000_000, "{line}");
        assert_eq!(tail, rest);
    }

    // --timeout-ms ends an idle consumer with Kafka's summary on stderr.
    let run = ok(
        CONSUMER,
        &b,
        &[
            "--topic",
            "events",
            "--partition",
            "0",
            "--offset",
            "latest",
            "--timeout-ms",
            "1500",
        ],
        "",
    );
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.ends_with("Processed a total of 0 messages\n"),
        "{}",
        run.stderr
    );

    // A line the reader cannot parse stops the producer with status 1; earlier lines are sent.
    let run = tool(
        PRODUCER,
        &b,
        &["--topic", "events", "--property", "parse.key=true"],
        "k6\tsixth\nno separator here\nk7\tseventh\n",
    );
    assert_eq!(run.status, 1, "{run:?}");
    assert_eq!(
        run.stderr,
        "ERROR No key separator found on line number 2: 'no separator here'\n"
    );
    let run = ok(
        CONSUMER,
        &b,
        &[
            "--topic",
            "events",
            "--partition",
            "0",
            "--offset",
            "5",
            "--timeout-ms",
            "2000",
        ],
        "",
    );
    assert_eq!(run.stdout, "sixth\n");
}

/// The data rows (after the header) of a `--describe` table, split into columns.
fn describe_rows(stdout: &str) -> Vec<Vec<String>> {
    let mut lines = stdout.lines().skip_while(|l| l.is_empty());
    let header = lines.next().unwrap_or("");
    assert!(header.starts_with("GROUP "), "{stdout}");
    lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Sends SIGTERM and waits for the exit.
fn terminate(mut child: Child) -> std::process::Output {
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "consumer ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn consumer_groups_describe_lag_reset_offsets_list_and_delete() {
    let (_coord, broker) = start();
    let b = broker.bootstrap();
    ok(TOPICS, &b, &["--create", "--topic", "jobs"], "");
    ok(PRODUCER, &b, &["--topic", "jobs"], "1\n2\n3\n4\n5\n");

    let run = ok(
        CONSUMER,
        &b,
        &[
            "--topic",
            "jobs",
            "--group",
            "workers",
            "--from-beginning",
            "--max-messages",
            "5",
        ],
        "",
    );
    assert_eq!(run.stdout, "1\n2\n3\n4\n5\n");
    ok(PRODUCER, &b, &["--topic", "jobs"], "6\n7\n8\n");

    let run = ok(GROUPS, &b, &["--list"], "");
    assert!(run.stdout.lines().any(|l| l == "workers"), "{}", run.stdout);

    // Committed 5, log end 8, lag 3; nobody is consuming.
    let run = ok(GROUPS, &b, &["--describe", "--group", "workers"], "");
    assert_eq!(
        run.stderr,
        "\nConsumer group 'workers' has no active members.\n"
    );
    assert_eq!(
        run.stdout,
        "\nGROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG             CONSUMER-ID     HOST            CLIENT-ID\n\
         workers         jobs            0          5               8               3               -               -               -\n"
    );
    let run = tool(GROUPS, &b, &["--describe", "--group", "nobody"], "");
    assert_eq!(run.status, 1);
    assert!(run
        .stderr
        .contains("Consumer group 'nobody' does not exist."));

    // While a member is active, describe names it and resets are refused.
    let member = Command::new(CONSUMER)
        .args([
            "--bootstrap-server",
            &b,
            "--topic",
            "jobs",
            "--group",
            "workers",
        ])
        .args(["--timeout-ms", "60000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually("an active member in the group", || {
        let run = ok(GROUPS, &b, &["--describe", "--group", "workers"], "");
        let rows = describe_rows(&run.stdout);
        match rows.as_slice() {
            [row] if row[6].starts_with("console-consumer") => {
                assert_eq!(row[..3], ["workers", "jobs", "0"]);
                assert_eq!(row[8], "console-consumer");
                Ok(())
            }
            _ => Err(run.stdout),
        }
    });
    let run = tool(
        GROUPS,
        &b,
        &[
            "--reset-offsets",
            "--group",
            "workers",
            "--topic",
            "jobs",
            "--to-earliest",
            "--execute",
        ],
        "",
    );
    assert_eq!(run.status, 1);
    assert!(
        run.stderr.contains(
            "Assignments can only be reset if the group 'workers' is inactive, but the current state is Stable."
        ),
        "{run:?}"
    );
    // ... and it says whom it waits for: the one console consumer.
    assert!(
        run.stderr
            .contains("Waiting for 1 member to leave (stop them, or wait session.timeout.ms after they died):\n  console-consumer"),
        "{run:?}"
    );
    let out = terminate(member);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "6\n7\n8\n");
    assert!(String::from_utf8_lossy(&out.stderr).ends_with("Processed a total of 3 messages\n"));

    let table = |offset: &str| {
        format!(
            "\n{:<30} {:<30} {:<10} {:<15}\n{:<30} {:<30} {:<10} {:<15}\n\n",
            "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET", "workers", "jobs", "0", offset
        )
    };
    // A dry run shows the plan and changes nothing.
    let run = ok(
        GROUPS,
        &b,
        &[
            "--reset-offsets",
            "--group",
            "workers",
            "--topic",
            "jobs",
            "--to-earliest",
            "--dry-run",
        ],
        "",
    );
    assert_eq!(run.stdout, table("0"));
    let run = ok(GROUPS, &b, &["--describe", "--group", "workers"], "");
    assert_eq!(describe_rows(&run.stdout)[0][3..6], ["8", "8", "0"]);

    let run = ok(
        GROUPS,
        &b,
        &[
            "--reset-offsets",
            "--group",
            "workers",
            "--topic",
            "jobs:0",
            "--shift-by",
            "-3",
            "--execute",
        ],
        "",
    );
    assert_eq!(run.stdout, table("5"));
    let run = ok(
        GROUPS,
        &b,
        &[
            "--reset-offsets",
            "--group",
            "workers",
            "--topic",
            "jobs",
            "--to-earliest",
            "--execute",
        ],
        "",
    );
    assert_eq!(run.stdout, table("0"));
    let run = ok(GROUPS, &b, &["--describe", "--group", "workers"], "");
    assert_eq!(describe_rows(&run.stdout)[0][3..6], ["0", "8", "8"]);

    // The group reads everything again from the start.
    let run = ok(
        CONSUMER,
        &b,
        &[
            "--topic",
            "jobs",
            "--group",
            "workers",
            "--max-messages",
            "8",
        ],
        "",
    );
    assert_eq!(run.stdout, "1\n2\n3\n4\n5\n6\n7\n8\n");

    let run = ok(GROUPS, &b, &["--delete", "--group", "workers"], "");
    assert_eq!(
        run.stdout,
        "Deletion of requested consumer groups ('workers') was successful.\n"
    );
    let run = ok(GROUPS, &b, &["--list"], "");
    assert!(
        !run.stdout.lines().any(|l| l == "workers"),
        "{}",
        run.stdout
    );
}

/// `kafka-configs` sets, describes and deletes client and user quotas, printing what Apache
/// Kafka 4.x's tool prints (the lines compared with it against Apache Kafka 4.1.1), and
/// refuses what Kafka refuses.
#[test]
fn configs_alter_describe_and_delete_client_quotas() {
    let (_coord, broker) = start();
    let b = broker.bootstrap();
    let run = ok(
        CONFIGS,
        &b,
        &[
            "--alter",
            "--add-config",
            "producer_byte_rate=1024,consumer_byte_rate=2048",
            "--entity-type",
            "clients",
            "--entity-name",
            "noisy",
        ],
        "",
    );
    assert_eq!(run.stdout, "Completed updating config for client noisy.\n");
    ok(
        CONFIGS,
        &b,
        &[
            "--alter",
            "--add-config",
            "request_percentage=12.5",
            "--entity-type",
            "users",
            "--entity-default",
            "--entity-type",
            "clients",
            "--entity-name",
            "noisy",
        ],
        "",
    );
    ok(
        CONFIGS,
        &b,
        &[
            "--alter",
            "--add-config",
            "producer_byte_rate=104857600",
            "--entity-type",
            "clients",
            "--entity-default",
        ],
        "",
    );
    let run = ok(CONFIGS, &b, &["--describe", "--entity-type", "clients"], "");
    let mut lines: Vec<&str> = run.stdout.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "Quota configs for client-id 'noisy' are consumer_byte_rate=2048.0, producer_byte_rate=1024.0",
            "Quota configs for the default client-id are producer_byte_rate=1.048576E8",
        ]
    );
    let run = ok(
        CONFIGS,
        &b,
        &[
            "--describe",
            "--entity-type",
            "users",
            "--entity-type",
            "clients",
        ],
        "",
    );
    assert_eq!(
        run.stdout,
        "Quota configs for the default user-principal, client-id 'noisy' are request_percentage=12.5\n"
    );
    ok(
        CONFIGS,
        &b,
        &[
            "--alter",
            "--delete-config",
            "consumer_byte_rate",
            "--entity-type",
            "clients",
            "--entity-name",
            "noisy",
        ],
        "",
    );
    let run = ok(
        CONFIGS,
        &b,
        &[
            "--describe",
            "--entity-type",
            "clients",
            "--entity-name",
            "noisy",
        ],
        "",
    );
    assert_eq!(
        run.stdout,
        "Quota configs for client-id 'noisy' are producer_byte_rate=1024.0\n"
    );
    // Refused as Kafka refuses: by the broker, and by the tool itself.
    for (args, message) in [
        (
            &["--alter", "--add-config", "producer_byte_rate=-5", "--entity-type", "clients", "--entity-name", "noisy"][..],
            "org.apache.kafka.common.errors.InvalidRequestException: Quota producer_byte_rate must be greater than 0",
        ),
        (
            &["--alter", "--add-config", "producer_byte_rate=1.5", "--entity-type", "clients", "--entity-name", "noisy"][..],
            "org.apache.kafka.common.errors.InvalidRequestException: producer_byte_rate cannot be a fractional value.",
        ),
        (
            &["--alter", "--add-config", "producer_byte_rate=abc", "--entity-type", "clients", "--entity-name", "noisy"][..],
            "Cannot parse quota configuration value for producer_byte_rate: abc",
        ),
        (
            &["--alter", "--delete-config", "consumer_byte_rate", "--entity-type", "clients", "--entity-name", "noisy"][..],
            "Invalid config(s): consumer_byte_rate",
        ),
    ] {
        let run = tool(CONFIGS, &b, args, "");
        assert_eq!(run.status, 1, "{args:?}: {run:?}");
        assert!(run.stderr.contains(message), "{args:?}: {run:?}");
    }
}
