//! The metrics as an operator's monitoring reads them: a real Prometheus (Debian's) scraping a
//! three-node coord ensemble, then three brokers, every second, with the alert rules of
//! `deploy/prometheus` loaded (their `for:` durations set to zero so that a condition fires at
//! the next evaluation) and the queries of the Grafana dashboard in `deploy/grafana` asked of
//! it.
//!
//! Pass: every target is up; the values Prometheus holds match what the clients did (records
//! produced, latest offsets, a lagging group's lag); every dashboard query is valid PromQL and
//! returns data; the rules pass `promtool` and their unit tests
//! (`deploy/prometheus/alerts_test.yml`); each alert fires when its condition is made to
//! happen and not before: with two of three coord nodes killed, `SluiceCoordNoQuorum` and
//! `SluiceCoordNodeDown`; with records piling up behind a group, `SluiceConsumerLagGrowing`;
//! with a broker killed, `SluiceBrokerDown`, `SluiceUnderReplicatedPartitions`,
//! `SluiceUnderMinIsr` (a topic wanting all three replicas) and `SluiceOfflinePartitions` (its
//! single-replica partition); with every broker killed, `SluiceNoActiveController`.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::metrics::{create_topic, member_committed, produce};
use sluice_e2e::prometheus::{check_rules, test_rules, Prometheus};
use sluice_e2e::{free_port, CoordCluster, KafkaCluster};
use zookeeper_client as zk;

const PROVIDER: &str = "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\nmetricsProvider.httpHost=127.0.0.1\n";

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

fn metrics_target(config: &Path) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    let port = text
        .lines()
        .find_map(|l| l.strip_prefix("metricsProvider.httpPort="))
        .expect("httpPort")
        .trim()
        .to_string();
    format!("127.0.0.1:{port}")
}

/// deploy/prometheus/alerts.yml with every `for:` at 0s, written into `dir`.
fn immediate_rules(dir: &Path) -> PathBuf {
    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let immediate: String = rules
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("for:") {
                let indent = &l[..l.len() - l.trim_start().len()];
                format!("{indent}for: 0s\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let path = dir.join("alerts.yml");
    std::fs::write(&path, immediate).unwrap();
    path
}

/// Every query of the dashboard: (panel title, expression).
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy("grafana/sluice.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap_or("").to_string(),
                t["expr"].as_str().expect("expr").to_string(),
            ));
        }
    }
    assert!(out.len() > 20, "{} queries", out.len());
    out
}

/// The share of the filesystem holding `path` still available (`df`'s avail over size: the
/// ratio the disk alerts compute from statvfs).
fn disk_free_share(path: &Path) -> f64 {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=size,avail"])
        .arg(path)
        .output()
        .expect("df");
    let text = String::from_utf8_lossy(&out.stdout);
    let nums: Vec<f64> = text
        .lines()
        .nth(1)
        .map(|l| {
            l.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    match nums[..] {
        [size, avail] if size > 0.0 => avail / size,
        _ => panic!("df said {text:?}"),
    }
}

/// The disk alerts judge this machine's disk, shared with builds: they may fire in these tests
/// only while that disk is under 40% free (a condition of both of their arms).
fn disk_alert_allowed(name: &str) -> bool {
    name.ends_with("DiskFilling") && disk_free_share(&std::env::temp_dir()) < 0.40
}

fn is_coord_query(expr: &str) -> bool {
    !expr.contains("kafka")
}

#[test]
fn deploy_rules_pass_promtool() {
    let said = check_rules(&deploy("prometheus/alerts.yml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(said.contains("SUCCESS"), "{said}");
}

/// Every alert rule against made-up series (deploy/prometheus/alerts_test.yml): quiet while
/// healthy or not yet for long enough, firing with its labels and summary after its `for:`.
#[test]
fn every_alert_rule_fires_on_its_condition_and_only_then() {
    let said = test_rules(&deploy("prometheus/alerts_test.yml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(said.contains("SUCCESS"), "{said}");
    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(deploy("prometheus/alerts_test.yml")).unwrap();
    for name in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!("alertname: {name}\n")),
            "alerts_test.yml does not test {name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_coord_and_the_rules_and_dashboard_work() {
    let mut cluster = CoordCluster::start_each(3, PROVIDER, &|_, spare| {
        format!("metricsProvider.httpPort={spare}\n")
    });
    cluster.wait_until_all_serve(Duration::from_secs(30));
    let targets: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| metrics_target(&n.config))
        .collect();
    let rules_dir = tempfile::tempdir().unwrap();
    let rules = immediate_rules(rules_dir.path());
    let prom = Prometheus::start(&[("coord", targets.clone())], &[&rules]);

    // 40 znodes, 10 of them ephemeral, through one session.
    let server: SocketAddr = cluster.nodes[0].client;
    let client = zk::Client::connect(&server.to_string())
        .await
        .expect("connect");
    client
        .create(
            "/app",
            b"",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
        )
        .await
        .unwrap();
    for i in 0..30 {
        client
            .create(
                &format!("/app/p{i}"),
                b"x",
                &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all()),
            )
            .await
            .unwrap();
    }
    for i in 0..10 {
        client
            .create(
                &format!("/app/e{i}"),
                b"x",
                &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all()),
            )
            .await
            .unwrap();
    }

    let took = prom.wait_for("up{job=\"coord\"}", Duration::from_secs(30), |s| {
        s.len() == 3 && s.iter().all(|(_, v)| *v == 1.0)
    });
    eprintln!("three coord targets up in Prometheus after {took:.1?}");
    // Every node holds the same tree: 41 more znodes than before (/app and its children) and
    // the 10 ephemerals of the one session, wherever that session is connected.
    let took = prom.wait_for("ephemerals_count", Duration::from_secs(30), |s| {
        s.len() == 3 && s.iter().all(|(_, v)| *v == 10.0)
    });
    eprintln!("ephemerals seen by Prometheus after {took:.1?}");
    let counts = prom.query("znode_count");
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(
        counts.iter().all(|(_, v)| *v == counts[0].1 && *v >= 41.0),
        "{counts:?}"
    );
    assert_eq!(prom.value("count(leader_uptime)"), Some(1.0));
    assert_eq!(prom.value("max(quorum_size)"), Some(3.0));
    prom.wait_for("max(synced_followers)", Duration::from_secs(30), |s| {
        s.len() == 1 && s[0].1 == 2.0
    });

    // The dashboard's coord panels: valid, and each with data.
    for (title, expr) in dashboard_queries()
        .into_iter()
        .filter(|(_, e)| is_coord_query(e))
    {
        prom.wait_for(&expr, Duration::from_secs(30), |s| !s.is_empty());
        eprintln!("dashboard \"{title}\": {expr} has data");
    }
    // A healthy ensemble: no coord alert. (No brokers run here, so the broker rules' "no
    // active controller" fires, as it should.)
    // (The disk alert aside: see disk_alert_allowed.)
    let alerts = prom.alerts();
    assert!(
        alerts
            .iter()
            .all(|(name, _)| !name.starts_with("SluiceCoord") || disk_alert_allowed(name)),
        "{alerts:?}"
    );
    assert!(
        alerts.contains(&("SluiceNoActiveController".to_string(), "firing".to_string())),
        "{alerts:?}"
    );

    // Two of three coord nodes gone: no quorum.
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    cluster.nodes[leader].kill();
    cluster.nodes[others[0]].kill();
    let took = prom.wait_for(
        "ALERTS{alertstate=\"firing\"}",
        Duration::from_secs(60),
        |s| {
            let firing: Vec<&str> = s
                .iter()
                .filter_map(|(l, _)| l.get("alertname").map(String::as_str))
                .collect();
            firing.contains(&"SluiceCoordNoQuorum") && firing.contains(&"SluiceCoordNodeDown")
        },
    );
    eprintln!("coord alerts firing {took:.1?} after two nodes were killed");
    let down: Vec<_> = prom
        .query("ALERTS{alertname=\"SluiceCoordNodeDown\",alertstate=\"firing\"}")
        .into_iter()
        .filter_map(|(l, _)| l.get("instance").cloned())
        .collect();
    assert_eq!(down.len(), 2, "{down:?}");
    assert!(
        !down.contains(&targets[others[1]]),
        "the node still up is not reported down: {down:?}"
    );
    drop(client);
}

/// The broker alerts firing now.
/// The alerts firing now, apart from a disk alert this machine's disk allows.
fn firing(prom: &Prometheus) -> Vec<String> {
    prom.query("ALERTS{alertstate=\"firing\"}")
        .into_iter()
        .filter_map(|(l, _)| l.get("alertname").cloned())
        .filter(|name| !disk_alert_allowed(name))
        .collect()
}

fn wait_firing(prom: &Prometheus, alerts: &[&str], what: &str) {
    let took = prom.wait_for(
        "ALERTS{alertstate=\"firing\"}",
        Duration::from_secs(60),
        |s| {
            let names: Vec<&str> = s
                .iter()
                .filter_map(|(l, _)| l.get("alertname").map(String::as_str))
                .collect();
            alerts.iter().all(|a| names.contains(a))
        },
    );
    eprintln!("{alerts:?} firing {took:.1?} after {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_brokers_and_the_broker_rules_and_dashboard_work() {
    const TOPIC: &str = "logs";
    const GROUP: &str = "shippers-readers";
    let mut cluster = KafkaCluster::start_each(
        3,
        3,
        "offsets.topic.replication.factor=3\noffsets.topic.num.partitions=3\n",
        &|_| format!("metrics.prometheus.listener=127.0.0.1:{}\n", free_port()),
    );
    let targets: Vec<String> = cluster
        .brokers
        .iter()
        .map(|b| b.metrics_addr().unwrap().to_string())
        .collect();
    let rules_dir = tempfile::tempdir().unwrap();
    let rules = immediate_rules(rules_dir.path());
    let prom = Prometheus::start(&[("kafka", targets.clone())], &[&rules]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, TOPIC, 3, 3, &[]).await;
    // Wants all three replicas in sync: under min ISR as soon as one broker is gone.
    create_topic(
        &bootstrap,
        "all-three",
        1,
        3,
        &[("min.insync.replicas", "3")],
    )
    .await;
    // One replica per partition: offline when its broker is gone.
    create_topic(&bootstrap, "single", 3, 1, &[]).await;
    produce(&bootstrap, TOPIC, 3, 3000, 100).await;
    // A group that read everything but committed 200 per partition: 2400 behind.
    let member = member_committed(&bootstrap, GROUP, TOPIC, 3000, &[200, 200, 200]);

    let took = prom.wait_for("up{job=\"kafka\"}", Duration::from_secs(30), |s| {
        s.len() == 3 && s.iter().all(|(_, v)| *v == 1.0)
    });
    eprintln!("three broker targets up in Prometheus after {took:.1?}");
    let value_is = |promql: &str, want: f64| {
        let took = prom.wait_for(promql, Duration::from_secs(30), |s| {
            s.len() == 1 && s[0].1 == want
        });
        eprintln!("{promql} = {want} after {took:.1?}");
    };
    value_is(
        "sum(kafka_server_brokertopicmetrics_messagesin_total{topic=\"logs\"})",
        3000.0,
    );
    value_is(
        "sum(kafka_topic_partition_current_offset{topic=\"logs\"})",
        3000.0,
    );
    value_is(
        "count(kafka_topic_partition_current_offset{topic=\"logs\"})",
        3.0,
    );
    value_is(
        "sum(kafka_consumergroup_lag{consumergroup=\"shippers-readers\",topic=\"logs\"})",
        2400.0,
    );
    value_is(
        "sum(kafka_consumergroup_current_offset_sum{consumergroup=\"shippers-readers\"})",
        600.0,
    );
    value_is(
        "sum(kafka_controller_kafkacontroller_activecontrollercount)",
        1.0,
    );
    value_is(
        "sum(kafka_controller_kafkacontroller_offlinepartitionscount)",
        0.0,
    );
    value_is(
        "sum(kafka_server_replicamanager_underreplicatedpartitions)",
        0.0,
    );

    // The dashboard's broker panels: valid, and each with data.
    for (title, expr) in dashboard_queries()
        .into_iter()
        .filter(|(_, e)| !is_coord_query(e))
    {
        prom.wait_for(&expr, Duration::from_secs(30), |s| !s.is_empty());
        eprintln!("dashboard \"{title}\": {expr} has data");
    }
    // A healthy cluster: no broker alert (the rules evaluated before the first scrapes may
    // have fired "no active controller" for a moment).
    prom.wait_for(
        "ALERTS{alertstate=\"firing\"}",
        Duration::from_secs(30),
        |s| s.is_empty(),
    );

    // Records pile up behind the group: its lag grows past 1000.
    produce(&bootstrap, TOPIC, 3, 1500, 100).await;
    wait_firing(
        &prom,
        &["SluiceConsumerLagGrowing"],
        "1500 more records behind the group",
    );
    value_is(
        "sum(kafka_consumergroup_lag{consumergroup=\"shippers-readers\",topic=\"logs\"})",
        3900.0,
    );
    assert!(
        firing(&prom)
            .iter()
            .all(|a| a == "SluiceConsumerLagGrowing"),
        "{:?}",
        firing(&prom)
    );

    // A broker killed.
    cluster.broker(3).kill();
    wait_firing(
        &prom,
        &[
            "SluiceBrokerDown",
            "SluiceUnderReplicatedPartitions",
            "SluiceUnderMinIsr",
            "SluiceOfflinePartitions",
        ],
        "broker 3 was killed",
    );
    let down: Vec<String> = prom
        .query("ALERTS{alertname=\"SluiceBrokerDown\",alertstate=\"firing\"}")
        .into_iter()
        .filter_map(|(l, _)| l.get("instance").cloned())
        .collect();
    assert_eq!(down, vec![targets[2].clone()]);
    value_is(
        "sum(kafka_controller_kafkacontroller_activecontrollercount)",
        1.0,
    );

    // Every broker gone: no controller.
    cluster.broker(1).kill();
    cluster.broker(2).kill();
    wait_firing(
        &prom,
        &["SluiceNoActiveController"],
        "every broker was killed",
    );
    drop(member);
}
