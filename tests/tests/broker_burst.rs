//! A shipper fleet's burst on a running broker: `kafka-load latency` at 1,000 records/s jumps to
//! 20,000 records/s for 5 s and falls back. No record fails or goes missing, the broker's memory
//! stays bounded, and latency comes back after the burst (the per-second p99 is printed; the
//! figures at 100,000 records/s are measured by `PHASES=burst scripts/bench-broker.sh`).

use std::process::Command;

use sluice_e2e::{binary, proc_status_kib, BrokerNode, CoordCluster};

#[test]
fn a_burst_is_absorbed_without_errors_and_latency_recovers() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(coord.dir.path(), 1, &coord.connect_string(), "");
    let pid = broker.pid().unwrap();
    let idle_kib = proc_status_kib(pid, "VmRSS");
    let out = Command::new(binary("kafka-load"))
        .args(["latency", "--bootstrap-server", &broker.bootstrap()])
        .args(["--topic", "burst", "--acks", "1", "--linger-ms", "5"])
        .args(["--rate", "1000", "--duration", "15", "--warmup", "1"])
        .args([
            "--burst-rate",
            "20000",
            "--burst-after",
            "3",
            "--burst-for",
            "5",
        ])
        .output()
        .expect("run kafka-load");
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stderr}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "kafka-load saw delivery errors or missing records"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("kafka-load's JSON report");
    assert_eq!(report["delivery_errors"], 0);
    assert_eq!(report["missing"], 0);
    let sent = report["sent"].as_u64().unwrap();
    assert!(sent >= 100_000 + 10_000, "only {sent} records sent");
    assert_eq!(report["received"].as_u64(), Some(sent));
    let burst = &report["burst"];
    assert!(
        burst["recovered_after_s"].is_u64(),
        "latency never came back after the burst: {burst}"
    );
    let peak_kib = proc_status_kib(pid, "VmHWM");
    println!(
        "broker memory: {idle_kib} KiB idle, peak {peak_kib} KiB; recovered {} s after the burst",
        burst["recovered_after_s"]
    );
    assert!(
        peak_kib - idle_kib <= 64 * 1024,
        "the burst cost the broker {} KiB",
        peak_kib - idle_kib
    );
}
