//! Runs the `kafka-load` binary against a real one-node coord and one broker (the project's
//! `coord` and `broker` binaries, started by `sluice-e2e`; build them first, e.g.
//! `cargo build --bins`): produce, consume (librdkafka and `--wire`) and latency complete and their
//! JSON reports add up.

use std::process::Command;

use serde_json::Value;
use sluice_e2e::{BrokerNode, CoordCluster};

/// Runs `kafka-load ARGS`, checks that it exited with 0 and returns its JSON report.
fn kafka_load(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_kafka-load"))
        .args(args)
        .output()
        .expect("run kafka-load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kafka-load {args:?} failed with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let line = stdout.lines().last().expect("a JSON line on stdout");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}\nstderr:\n{stderr}"))
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[test]
fn produce_consume_and_latency_against_one_broker() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "num.partitions=1\n",
    );
    let bootstrap = broker.bootstrap();

    let p = kafka_load(&[
        "produce",
        "--bootstrap-server",
        &bootstrap,
        "--topic",
        "load",
        "--records",
        "20000",
        "--record-size",
        "200",
        "--partitions",
        "2",
        "--producers",
        "2",
    ]);
    assert_eq!(p["mode"], "produce");
    assert_eq!(p["producers"], 2);
    assert_eq!(p["records"], 20_000, "{p}");
    assert_eq!(p["sent"], 20_000);
    assert_eq!(p["delivery_errors"], 0);
    assert_eq!(p["undelivered"], 0);
    assert_eq!(p["bytes"], 20_000 * 200);
    assert_eq!(p["partitions"], 2);
    assert_eq!(p["topic_created"], true);
    assert!(num(&p, "records_per_s") > 0.0 && num(&p, "mb_per_s") > 0.0);

    let c = kafka_load(&[
        "consume",
        "--bootstrap-server",
        &bootstrap,
        "--topic",
        "load",
        "--records",
        "20000",
        "--idle-timeout",
        "20",
    ]);
    assert_eq!(c["mode"], "consume");
    assert_eq!(c["records"], 20_000, "{c}");
    assert_eq!(c["bytes"], 20_000 * 200);
    assert_eq!(c["partitions"], 2);
    assert!(c["errors"].as_object().unwrap().is_empty(), "{c}");
    assert!(num(&c, "records_per_s") > 0.0);

    // Wire mode: 2 connections x 12,500 records in batches of 1,000 (12 full batches and a
    // short one each), round robin over 2 partitions; then read back from the batch headers.
    let wp = kafka_load(&[
        "produce",
        "--wire",
        "--bootstrap-server",
        &bootstrap,
        "--topic",
        "wire",
        "--partitions",
        "2",
        "--producers",
        "2",
        "--records",
        "25000",
        "--record-size",
        "200",
        "--batch-records",
        "1000",
    ]);
    assert_eq!(
        (wp["mode"].as_str(), wp["client"].as_str()),
        (Some("produce"), Some("wire"))
    );
    assert_eq!(wp["records"], 25_000, "{wp}");
    assert_eq!(wp["sent"], 25_000);
    assert_eq!(wp["requests"], 26);
    assert_eq!(wp["bytes"], 25_000 * 200);
    assert_eq!(
        (wp["delivery_errors"].as_u64(), wp["undelivered"].as_u64()),
        (Some(0), Some(0))
    );
    let wc = kafka_load(&[
        "consume",
        "--wire",
        "--bootstrap-server",
        &bootstrap,
        "--topic",
        "wire",
        "--records",
        "25000",
        "--record-size",
        "200",
    ]);
    assert_eq!(wc["client"], "wire");
    assert_eq!(wc["records"], 25_000, "{wc}");
    assert_eq!(wc["batches"], 26);
    assert_eq!(wc["bytes"], 25_000 * 200);
    assert_eq!(wc["partitions"], 2);
    assert!(wc["errors"].as_object().unwrap().is_empty(), "{wc}");
    // The batches librdkafka wrote walk the same way.
    let wl = kafka_load(&[
        "consume",
        "--wire",
        "--bootstrap-server",
        &bootstrap,
        "--topic",
        "load",
        "--records",
        "20000",
    ]);
    assert_eq!(wl["records"], 20_000, "{wl}");
    assert!(
        wl["bytes"].as_u64().unwrap() > 20_000 * 200,
        "batch bytes include headers"
    );

    let l = kafka_load(&[
        "latency",
        "--bootstrap-server",
        &bootstrap,
        "--topic",
        "latency",
        "--rate",
        "500",
        "--duration",
        "2",
        "--warmup",
        "0.5",
    ]);
    assert_eq!(l["mode"], "latency");
    assert_eq!(l["delivery_errors"], 0, "{l}");
    assert_eq!(l["missing"], 0, "{l}");
    assert_eq!(l["foreign"], 0, "{l}");
    let sent = l["sent"].as_u64().unwrap();
    assert!((900..=1001).contains(&sent), "2 s at 500/s: {l}");
    assert_eq!(l["received"].as_u64(), Some(sent), "{l}");
    assert_eq!(l["linger_ms"], 0.0);
    let p50 = num(&l, "p50_ms");
    for key in ["p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms"] {
        assert!(num(&l, key) > 0.0, "{key} in {l}");
        assert!(num(&l, key) >= p50, "{key} below p50 in {l}");
    }
    // The broker answers a waiting fetch when data arrives: latency is far below
    // fetch.wait.max.ms (500 by default) even on a loaded test machine.
    assert!(p50 < 250.0, "{l}");
}
