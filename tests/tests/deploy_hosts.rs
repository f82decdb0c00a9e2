//! The three-host installation of `deploy/hosts`, proved on three hosts: one network namespace
//! per host, each with its own address and the names `sluice-1..3` (`tests/src/hosts.rs`),
//! every host running coord and a broker from the files of `deploy/hosts`, unchanged but for
//! where `/var/lib/sluice` is. Clients run on a fourth host, with the project's command-line
//! tools, the way `docs/operations.md` ("Three hosts") walks an operator through it:
//!
//! 1. install and first start: coord on every host, then the brokers; a replicated topic;
//! 2. a host lost with its disk (every process SIGKILLed, `/var/lib/sluice` emptied) and
//!    replaced under the same name: coord rejoins with only its `myid`, the broker copies its
//!    partitions back;
//! 3. a rolling upgrade: host by host, the broker (controlled shutdown) and coord stopped with
//!    SIGTERM and started again, the next host only once the ISRs are full;
//! 4. a broker added on a fourth host (server-3.properties with its id and name changed, as the
//!    guide says) and the topic moved from sluice-1 onto it with `kafka-reassign-partitions`.
//!
//! An idempotent `acks=all` console producer writes throughout 2, 3 and 4. Pass: it exits 0 (every
//! record acknowledged) and a consumer then reads each record exactly once.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_e2e::binary;
use sluice_e2e::hosts::Hosts;

const HOSTS: [&str; 3] = ["sluice-1", "sluice-2", "sluice-3"];
/// The host added in step 4 (a broker only).
const NEW_HOST: &str = "sluice-4";
const BOOTSTRAP: &str = "sluice-1:9092,sluice-2:9092,sluice-3:9092";
const TOPIC: &str = "logs";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/hosts")
}

/// One host's installation: its `/etc/sluice` and `/var/lib/sluice`, and what runs there.
struct Installed {
    etc: PathBuf,
    state: PathBuf,
    logs: PathBuf,
    coord: Option<Child>,
    broker: Option<Child>,
}

struct Cluster {
    hosts: Hosts,
    dir: tempfile::TempDir,
    installed: HashMap<&'static str, Installed>,
}

impl Cluster {
    /// Copies `deploy/hosts` onto each host as the guide says: the same zookeeper.properties
    /// everywhere, server-N.properties as server.properties, `myid` N in dataDir.
    fn install() -> Cluster {
        let hosts = Hosts::create(&[HOSTS[0], HOSTS[1], HOSTS[2], NEW_HOST]);
        let dir = tempfile::tempdir().unwrap();
        let mut installed = HashMap::new();
        for (i, host) in HOSTS.iter().enumerate() {
            let root = dir.path().join(host);
            let etc = root.join("etc/sluice");
            let state = root.join("var/lib/sluice");
            let logs = root.join("var/log");
            std::fs::create_dir_all(&etc).unwrap();
            std::fs::create_dir_all(&logs).unwrap();
            let relocate = |file: &str| {
                std::fs::read_to_string(deploy_dir().join(file))
                    .unwrap_or_else(|e| panic!("deploy/hosts/{file}: {e}"))
                    .replace("/var/lib/sluice", state.to_str().unwrap())
            };
            std::fs::write(
                etc.join("zookeeper.properties"),
                relocate("zookeeper.properties"),
            )
            .unwrap();
            std::fs::write(
                etc.join("server.properties"),
                relocate(&format!("server-{}.properties", i + 1)),
            )
            .unwrap();
            let inst = Installed {
                etc,
                state,
                logs,
                coord: None,
                broker: None,
            };
            write_myid(&inst, i + 1);
            installed.insert(*host, inst);
        }
        // The new host: a copy of server-3.properties with its own id and name.
        let root = dir.path().join(NEW_HOST);
        let inst = Installed {
            etc: root.join("etc/sluice"),
            state: root.join("var/lib/sluice"),
            logs: root.join("var/log"),
            coord: None,
            broker: None,
        };
        std::fs::create_dir_all(&inst.etc).unwrap();
        std::fs::create_dir_all(&inst.logs).unwrap();
        let server = std::fs::read_to_string(deploy_dir().join("server-3.properties"))
            .unwrap()
            .replace("/var/lib/sluice", inst.state.to_str().unwrap())
            .replace("broker.id=3", "broker.id=4")
            .replace("sluice-3:9092", "sluice-4:9092");
        assert!(server.contains("broker.id=4") && server.contains("//sluice-4:9092"));
        std::fs::write(inst.etc.join("server.properties"), server).unwrap();
        installed.insert(NEW_HOST, inst);
        Cluster {
            hosts,
            dir,
            installed,
        }
    }

    fn start(&mut self, host: &'static str, daemon: &str) {
        let inst = self.installed.get_mut(host).unwrap();
        let config = match daemon {
            "coord" => inst.etc.join("zookeeper.properties"),
            _ => inst.etc.join("server.properties"),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(inst.logs.join(format!("{daemon}.log")))
            .unwrap();
        let child = self
            .hosts
            .command(host, binary(daemon))
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {daemon} on {host}: {e}"));
        match daemon {
            "coord" => inst.coord = Some(child),
            _ => inst.broker = Some(child),
        }
    }

    /// SIGTERM (what `systemctl stop` sends) and the exit code.
    fn stop(&mut self, host: &'static str, daemon: &str) -> Option<i32> {
        let inst = self.installed.get_mut(host).unwrap();
        let mut child = match daemon {
            "coord" => inst.coord.take(),
            _ => inst.broker.take(),
        }
        .unwrap_or_else(|| panic!("{daemon} is not running on {host}"));
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st.code();
            }
            assert!(
                Instant::now() < deadline,
                "{daemon} on {host} ignored SIGTERM for 120 s\n{}",
                self.log_tail(host, daemon)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Power lost: every process of the host SIGKILLed.
    fn power_off(&mut self, host: &'static str) {
        self.hosts.kill_all(host);
        let inst = self.installed.get_mut(host).unwrap();
        for c in [inst.coord.take(), inst.broker.take()]
            .into_iter()
            .flatten()
        {
            let mut c = c;
            let _ = c.wait();
        }
    }

    fn log_tail(&self, host: &str, daemon: &str) -> String {
        let text = std::fs::read_to_string(self.installed[host].logs.join(format!("{daemon}.log")))
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- {daemon} on {host}:\n{}",
            lines[lines.len().saturating_sub(30)..].join("\n")
        )
    }

    fn all_logs(&self) -> String {
        HOSTS
            .iter()
            .flat_map(|h| [self.log_tail(h, "coord"), self.log_tail(h, "broker")])
            .chain(std::iter::once(self.log_tail(NEW_HOST, "broker")))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A command-line tool of the project, run on the client host.
    fn tool(&self, name: &str, args: &[&str]) -> std::process::Output {
        self.hosts
            .command("client", binary(name))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Waits, up to `limit`, until `ok` holds; returns how long it took.
    fn wait(&self, what: &str, limit: Duration, mut ok: impl FnMut(&Cluster) -> bool) -> Duration {
        let start = Instant::now();
        loop {
            if ok(self) {
                let took = start.elapsed();
                eprintln!("{what}: {took:.1?}");
                return took;
            }
            assert!(
                start.elapsed() < limit,
                "{what}: not within {limit:?}\n{}",
                self.all_logs()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The answer of `host`'s broker to `GET /metrics` on port 9404, from the client host.
    fn broker_metrics(&self, host: &str) -> String {
        let out = self.hosts.sh(
            "client",
            &format!("exec 3<>/dev/tcp/{host}/9404 && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && timeout 5 cat <&3"),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every host's coord answers `srvr` and one of them leads.
    fn ensemble_serving(&self) -> bool {
        let modes: Vec<String> = HOSTS
            .iter()
            .map(|h| {
                self.hosts
                    .four_letter_word(h, "srvr")
                    .lines()
                    .find_map(|l| l.strip_prefix("Mode: ").map(str::to_string))
                    .unwrap_or_default()
            })
            .collect();
        modes.iter().filter(|m| *m == "leader").count() == 1
            && modes.iter().filter(|m| *m == "follower").count() == 2
    }

    /// The broker ids registered in coord, as zookeeper-shell lists them.
    fn registered_brokers(&self) -> String {
        let out = self.tool("zookeeper-shell", &["sluice-1:2181", "ls", "/brokers/ids"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .to_string()
    }

    /// Every partition of the topic has a leader and all three replicas in its ISR.
    fn isr_full(&self) -> bool {
        self.replicated_on(None)
    }

    /// [`Cluster::isr_full`], with the replicas (in any order) `on` when given.
    fn replicated_on(&self, on: Option<&[&str]>) -> bool {
        let out = self.tool(
            "kafka-topics",
            &[
                "--bootstrap-server",
                BOOTSTRAP,
                "--describe",
                "--topic",
                TOPIC,
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let partitions: Vec<&str> = text.lines().filter(|l| l.contains("Partition:")).collect();
        out.status.success()
            && partitions.len() == 3
            && partitions.iter().all(|l| {
                l.split('\t')
                    .find_map(|f| f.trim().strip_prefix("Isr: "))
                    .is_some_and(|isr| isr.split(',').count() == 3)
                    && on.is_none_or(|want| {
                        l.split('\t')
                            .find_map(|f| f.trim().strip_prefix("Replicas: "))
                            .is_some_and(|r| {
                                let mut r: Vec<&str> = r.split(',').collect();
                                r.sort_unstable();
                                r == want
                            })
                    })
                    && !l.contains("Leader: none")
                    && !l.contains("Leader: -1")
            })
    }
}

fn write_myid(inst: &Installed, id: usize) {
    let data_dir = inst.state.join("coord");
    std::fs::create_dir_all(&data_dir).unwrap();
    std::fs::write(data_dir.join("myid"), format!("{id}\n")).unwrap();
}

impl Drop for Cluster {
    // Children first; the namespaces (and anything left in them) go with `hosts`.
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("SLUICE_KEEP_FAILED").is_some() {
            if let Ok(empty) = tempfile::tempdir() {
                let kept = std::mem::replace(&mut self.dir, empty).keep();
                eprintln!("SLUICE_KEEP_FAILED: kept {}", kept.display());
            }
        }
        for inst in self.installed.values_mut() {
            for mut c in [inst.coord.take(), inst.broker.take()]
                .into_iter()
                .flatten()
            {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// The idempotent `acks=all` console producer on the client host, fed one line every `every`
/// until stopped.
struct Feeding {
    log: PathBuf,
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    feeder: std::thread::JoinHandle<()>,
    producer: Child,
}

fn feed(cluster: &Cluster, prefix: &'static str, every: Duration) -> Feeding {
    let log_path = cluster.dir.path().join(format!("producer-{prefix}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut producer = cluster
        .hosts
        .command("client", binary("kafka-console-producer"))
        .args([
            "--bootstrap-server",
            BOOTSTRAP,
            "--topic",
            TOPIC,
            "--producer-property",
            "enable.idempotence=true",
            "--producer-property",
            "linger.ms=5",
        ])
        .stdin(Stdio::piped())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("kafka-console-producer");
    let mut stdin = producer.stdin.take().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let feeder = std::thread::spawn({
        let (stop, written) = (stop.clone(), written.clone());
        move || {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                if writeln!(stdin, "{prefix}-{n}").is_err() {
                    // The producer exited: `finish` reports how.
                    break;
                }
                n += 1;
                written.store(n, Ordering::SeqCst);
                std::thread::sleep(every);
            }
            // stdin closes here: the producer flushes and exits.
        }
    });
    Feeding {
        log: log_path,
        stop,
        written,
        feeder,
        producer,
    }
}

impl Feeding {
    /// Stops feeding; once the producer delivered everything: the lines written, its exit
    /// status and what it printed.
    fn finish(mut self) -> (u64, std::process::ExitStatus, String) {
        self.stop.store(true, Ordering::SeqCst);
        self.feeder.join().unwrap();
        let status = self.producer.wait().unwrap();
        let printed = std::fs::read_to_string(&self.log).unwrap_or_default();
        (self.written.load(Ordering::SeqCst), status, printed)
    }
}

/// Every record of the topic, read from the beginning on the client host.
fn consume_all(cluster: &Cluster, expected: u64) -> Vec<String> {
    let out = cluster.tool(
        "kafka-console-consumer",
        &[
            "--bootstrap-server",
            BOOTSTRAP,
            "--topic",
            TOPIC,
            "--from-beginning",
            "--max-messages",
            &expected.to_string(),
            "--timeout-ms",
            "60000",
        ],
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn assert_each_once(records: &[String], expected: &[(&str, u64)]) {
    let mut counts: HashMap<&str, u32> = HashMap::new();
    for r in records {
        *counts.entry(r.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).take(5).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    for (prefix, n) in expected {
        let missing: Vec<u64> = (0..*n)
            .filter(|i| !counts.contains_key(format!("{prefix}-{i}").as_str()))
            .take(10)
            .collect();
        assert!(missing.is_empty(), "{prefix}: missing {missing:?}");
    }
    let total: u64 = expected.iter().map(|(_, n)| n).sum();
    assert_eq!(records.len() as u64, total);
}

#[test]
fn three_hosts_installed_replaced_and_upgraded_from_the_deploy_files() {
    let mut c = Cluster::install();

    // 1. First start: coord everywhere, then the brokers.
    for h in HOSTS {
        c.start(h, "coord");
    }
    c.wait("coord ensemble serving", Duration::from_secs(60), |c| {
        c.ensemble_serving()
    });
    // Each coord serves its metrics on port 7000, where deploy/prometheus scrapes them.
    for h in HOSTS {
        let out = c.hosts.sh(
            "client",
            &format!("exec 3<>/dev/tcp/{h}/7000 && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && timeout 5 cat <&3"),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with("HTTP/1.1 200") && text.contains("\nznode_count "),
            "metrics of {h}: {text}"
        );
    }
    for h in HOSTS {
        c.start(h, "broker");
    }
    c.wait("three brokers registered", Duration::from_secs(60), |c| {
        c.registered_brokers() == "[1, 2, 3]"
    });
    // Each broker serves its metrics on port 9404, where deploy/prometheus scrapes them; one
    // of them is the active controller.
    for h in HOSTS {
        let text = c.broker_metrics(h);
        assert!(
            text.starts_with("HTTP/1.1 200")
                && text.contains("\nkafka_server_replicamanager_partitioncount "),
            "broker metrics of {h}: {text}"
        );
    }
    c.wait(
        "one active controller among the brokers' metrics",
        Duration::from_secs(30),
        |c| {
            HOSTS
                .iter()
                .filter(|h| {
                    c.broker_metrics(h)
                        .contains("\nkafka_controller_kafkacontroller_activecontrollercount 1\n")
                })
                .count()
                == 1
        },
    );
    let out = c.tool(
        "kafka-topics",
        &[
            "--bootstrap-server",
            BOOTSTRAP,
            "--create",
            "--topic",
            TOPIC,
            "--partitions",
            "3",
            "--replication-factor",
            "3",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    c.wait(
        "topic replicated",
        Duration::from_secs(60),
        Cluster::isr_full,
    );
    let (first, status, printed) = {
        let f = feed(&c, "first", Duration::from_millis(1));
        std::thread::sleep(Duration::from_secs(2));
        f.finish()
    };
    assert!(status.success(), "first producer: {status}\n{printed}");
    assert_each_once(&consume_all(&c, first), &[("first", first)]);

    // 2. sluice-3 loses its power and its disk, and is replaced under the same name.
    let feeding = feed(&c, "during", Duration::from_millis(2));
    std::thread::sleep(Duration::from_secs(1));
    c.power_off("sluice-3");
    let state = c.installed["sluice-3"].state.clone();
    std::fs::remove_dir_all(&state).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    write_myid(&c.installed["sluice-3"], 3);
    c.start("sluice-3", "coord");
    c.wait(
        "replaced coord member serving",
        Duration::from_secs(90),
        Cluster::ensemble_serving,
    );
    c.start("sluice-3", "broker");
    c.wait(
        "replaced broker back in every ISR",
        Duration::from_secs(120),
        Cluster::isr_full,
    );

    // 3. Rolling upgrade, one host at a time.
    for h in HOSTS {
        assert_eq!(c.stop(h, "broker"), Some(0), "broker on {h} exits 0");
        assert_eq!(c.stop(h, "coord"), Some(0), "coord on {h} exits 0");
        c.start(h, "coord");
        c.start(h, "broker");
        c.wait(
            &format!("{h} restarted: ensemble serving"),
            Duration::from_secs(90),
            Cluster::ensemble_serving,
        );
        c.wait(
            &format!("{h} restarted: every ISR full"),
            Duration::from_secs(120),
            Cluster::isr_full,
        );
    }

    // 4. A broker on a new host, and the topic moved from sluice-1 onto it.
    c.start(NEW_HOST, "broker");
    c.wait("four brokers registered", Duration::from_secs(60), |c| {
        c.registered_brokers() == "[1, 2, 3, 4]"
    });
    let plan = c.installed[NEW_HOST].etc.join("plan.json");
    std::fs::write(
        &plan,
        r#"{"version":1,"partitions":[
            {"topic":"logs","partition":0,"replicas":[2,3,4]},
            {"topic":"logs","partition":1,"replicas":[3,4,2]},
            {"topic":"logs","partition":2,"replicas":[4,2,3]}]}"#,
    )
    .unwrap();
    let plan = plan.to_str().unwrap();
    let reassign = |c: &Cluster, action: &str| {
        c.tool(
            "kafka-reassign-partitions",
            &[
                "--bootstrap-server",
                BOOTSTRAP,
                action,
                "--reassignment-json-file",
                plan,
            ],
        )
    };
    // The controller learns of broker 4 through a watch on /brokers/ids, a moment after
    // zookeeper-shell lists it; until then it refuses a plan naming broker 4 ("broker 4 is not
    // registered"), and the operator runs the command again.
    c.wait("reassignment accepted", Duration::from_secs(30), |c| {
        reassign(c, "--execute").status.success()
    });
    c.wait(
        "partitions moved onto the new host",
        Duration::from_secs(120),
        |c| {
            let out = reassign(c, "--verify");
            String::from_utf8_lossy(&out.stdout)
                .matches("is completed")
                .count()
                == 3
        },
    );
    c.wait(
        "replicas 2, 3, 4 all in sync",
        Duration::from_secs(60),
        |c| c.replicated_on(Some(&["2", "3", "4"])),
    );

    let (during, status, printed) = feeding.finish();
    assert!(
        status.success(),
        "the producer failed ({status}): {printed}\n{}",
        c.all_logs()
    );
    eprintln!("{first} records before, {during} during the replacement and the upgrade");
    assert_each_once(
        &consume_all(&c, first + during),
        &[("first", first), ("during", during)],
    );
}

/// The units of `deploy/systemd` pass `systemd-analyze verify` (syntax, known keys, an
/// executable to start), with their binaries where this build put them, and start what the
/// three-host test starts: the daemons on `/etc/sluice`'s files.
#[test]
fn systemd_units_verify() {
    let dir = tempfile::tempdir().unwrap();
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd");
    for (unit, daemon, config) in [
        ("sluice-coord.service", "coord", "zookeeper.properties"),
        ("sluice-broker.service", "broker", "server.properties"),
    ] {
        let text = std::fs::read_to_string(units.join(unit)).unwrap();
        let exec = format!("ExecStart=/usr/local/bin/{daemon} /etc/sluice/{config}\n");
        assert!(text.contains(&exec), "{unit} runs {exec}");
        let here = text.replace(
            &format!("/usr/local/bin/{daemon}"),
            binary(daemon).to_str().unwrap(),
        );
        std::fs::write(dir.path().join(unit), here).unwrap();
    }
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("sluice-coord.service"))
        .arg(dir.path().join("sluice-broker.service"))
        .output()
        .expect("systemd-analyze (Debian's systemd package; scripts/setup.sh installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.trim().is_empty(), "systemd-analyze verify: {said}");
}
