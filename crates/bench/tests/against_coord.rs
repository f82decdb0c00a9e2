//! Drives `coord-load`'s library against an in-process standalone coord on a loopback port:
//! every workload completes without errors, counts add up, and the failover check finds every
//! acknowledged write.

use std::net::TcpListener;
use std::path::Path;

use clap::Parser;
use sluice_bench::options::Plan;
use sluice_bench::{failover, probe, throughput, Options};
use sluice_config::CoordConfig;
use sluice_coord::raft::RaftNodeConfig;
use sluice_coord::server::{CoordServer, ServerSettings};

async fn standalone(dir: &Path) -> CoordServer {
    let text = "dataDir=/unused\nclientPort=2181\ntickTime=2000\n4lw.commands.whitelist=*\n";
    let cfg = CoordConfig::from_bytes(Path::new("test.properties"), text.as_bytes())
        .expect("test config")
        .config;
    let raft = RaftNodeConfig::standalone(1, dir, dir);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    CoordServer::start_with(ServerSettings::from_config(&cfg, 1), raft, listener, None)
        .await
        .expect("start coord")
}

fn plan(hosts: &str, args: &[&str]) -> Plan {
    let mut v = vec!["coord-load", "--hosts", hosts, "--path", "/bench-test"];
    v.extend_from_slice(args);
    Options::try_parse_from(v).unwrap().plan().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_failover_check_and_probe_against_coord() {
    let dir = tempfile::tempdir().unwrap();
    let server = standalone(dir.path()).await;
    let hosts = server.client_addr().to_string();

    for op in ["create", "set", "get", "mixed"] {
        let p = plan(
            &hosts,
            &[
                "--op",
                op,
                "--sessions",
                "2",
                "--in-flight",
                "8",
                "--count",
                "400",
            ],
        );
        let r = throughput::measure(&p).await.unwrap();
        assert!(r.errors.is_empty(), "{op}: {:?}", r.errors);
        assert_eq!(
            r.ops, 400,
            "{op}: a count run completes exactly --count requests"
        );
        assert!(r.ops_per_s > 0.0 && r.latency.p99_ms >= r.latency.p50_ms);
    }

    let pid = std::process::id().to_string();
    let p = plan(
        &hosts,
        &[
            "--op",
            "get",
            "--sessions",
            "1",
            "--in-flight",
            "4",
            "--duration",
            "0.5",
            "--warmup",
            "0.2",
            "--cpu-pids",
            &pid,
        ],
    );
    let r = throughput::measure(&p).await.unwrap();
    assert!(r.ops > 0 && (r.elapsed_s - 0.5).abs() < 1e-6, "{r:?}");
    // The server runs in this process: its PID is readable, and the client used some CPU.
    let cpu = r.cpu.expect("duration runs sample CPU");
    assert!(cpu.client_s.is_some_and(|s| s > 0.0), "{cpu:?}");
    assert!(cpu.servers_s.contains_key(&pid), "{cpu:?}");

    let p = plan(
        &hosts,
        &[
            "--failover",
            "--sessions",
            "2",
            "--in-flight",
            "4",
            "--duration",
            "1",
        ],
    );
    let r = failover::measure(&p).await.unwrap();
    assert!(r.acked > 0, "{r:?}");
    assert_eq!(r.lost, 0, "{r:?}");
    assert_eq!(
        r.applied_unacked, 0,
        "no write failed, so none can be applied unacknowledged"
    );
    assert!(r.max_gap_ms < 1000.0, "{r:?}");

    let p = plan(&hosts, &["--probe", "--duration", "5"]);
    let r = probe::wait_readable(&p).await;
    assert!(r.ready, "{r:?}");

    server.shutdown().await;
    let p = plan(&hosts, &["--probe", "--duration", "0.2"]);
    let r = probe::wait_readable(&p).await;
    assert!(!r.ready && r.attempts >= 1, "{r:?}");
}
