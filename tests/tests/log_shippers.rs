//! The seed's users ship logs with syslog daemons: Debian's rsyslog with its `omkafka` output
//! and syslog-ng with its `kafka-c` destination (both built on Debian's librdkafka 2.0.2) must
//! deliver every line to the broker, also lines written while the broker was down (they wait in
//! the shipper and librdkafka and arrive once it is back).

use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sluice_e2e::{free_port, BrokerNode, CoordCluster};

/// A log shipper process, killed when the test ends.
struct Shipper {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Shipper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_rsyslog(dir: &std::path::Path, bootstrap: &str) -> Shipper {
    let port = free_port();
    let work = dir.join("rsyslog-work");
    std::fs::create_dir_all(&work).unwrap();
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{work}")
module(load="imtcp")
module(load="omkafka")
template(name="line" type="string" string="%msg%")
input(type="imtcp" address="127.0.0.1" port="{port}")
action(type="omkafka" broker=["{bootstrap}"] topic="syslog" template="line"
       partitions.number="1" confParam=["queue.buffering.max.ms=5", "socket.timeout.ms=5000"]
       resubmitOnFailure="on" keepFailedMessages="on" failedMsgFile="{work}/failed"
       action.resumeRetryCount="-1" action.resumeInterval="1"
       queue.type="LinkedList" queue.size="100000")
"#,
            work = work.display()
        ),
    )
    .unwrap();
    let log = dir.join("rsyslogd.log");
    let child = Command::new("rsyslogd")
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("rsyslogd.pid"))
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(
            std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
        ))
        .spawn()
        .expect("rsyslogd (Debian package rsyslog) is installed");
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "rsyslogd did not listen:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Shipper { child, port, log }
}

fn send_lines(port: u16, from: usize, to: usize) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for i in from..to {
        // RFC 3164 framing over TCP: one message per line.
        writeln!(
            s,
            "<13>Nov 25 10:00:00 web1 nginx: request {i:05} GET /index.html"
        )
        .unwrap();
    }
    s.flush().unwrap();
}

/// The distinct request numbers found on `syslog`, sorted, waiting until there are `n` (or
/// 60 s). Delivery is at least once: a line may be stored twice, which is not counted twice.
fn consume_requests(bootstrap: &str, n: usize) -> Vec<usize> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "shipper-check")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("syslog", 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < n && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let text = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            let i = text
                .split("request ")
                .nth(1)
                .and_then(|r| r.get(..5))
                .and_then(|d| d.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {text:?}"));
            out.insert(i);
        }
    }
    out.into_iter().collect()
}

#[test]
fn rsyslog_omkafka_delivers_every_line_including_those_written_while_the_broker_was_down() {
    let coord = CoordCluster::start(1, "");
    let mut broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "num.partitions=1\n",
    );
    let rsyslog = start_rsyslog(coord.dir.path(), &broker.bootstrap());
    send_lines(rsyslog.port, 0, 500);
    let first = consume_requests(&broker.bootstrap(), 500);
    assert_eq!(
        first,
        (0..500).collect::<Vec<_>>(),
        "rsyslog log:\n{}",
        std::fs::read_to_string(&rsyslog.log).unwrap_or_default()
    );

    // The broker goes away; lines keep coming; it comes back.
    broker.stop();
    send_lines(rsyslog.port, 500, 1000);
    std::thread::sleep(Duration::from_secs(1));
    broker.spawn();
    broker.wait_until_listening(Duration::from_secs(30));
    let all = consume_requests(&broker.bootstrap(), 1000);
    assert_eq!(
        all,
        (0..1000).collect::<Vec<_>>(),
        "every line arrives once the broker is back; broker log:\n{}",
        broker
            .log_text()
            .lines()
            .filter(|l| !l.contains("__consumer_offsets"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Where `scripts/setup.sh` unpacked syslog-ng (its package conflicts with rsyslog's).
fn syslog_ng_root() -> std::path::PathBuf {
    std::path::PathBuf::from(
        std::env::var("SYSLOG_NG_ROOT").unwrap_or_else(|_| "/var/tmp/sluice-syslog-ng".into()),
    )
    .join("root")
}

/// Debian's syslog-ng 3.38 with its `kafka-c` destination (librdkafka 2.0.2) delivers every
/// line, also those written while the broker was stopped.
#[test]
fn syslog_ng_kafka_c_delivers_every_line_including_those_written_while_the_broker_was_down() {
    let root = syslog_ng_root();
    let bin = root.join("usr/sbin/syslog-ng");
    assert!(
        bin.exists(),
        "{} is missing: scripts/setup.sh unpacks syslog-ng there",
        bin.display()
    );
    let coord = CoordCluster::start(1, "");
    let mut broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "num.partitions=1\n",
    );
    let dir = coord.dir.path();
    let port = free_port();
    let conf = dir.join("syslog-ng.conf");
    std::fs::write(
        &conf,
        format!(
            r#"@version: 3.38
@module kafka
options {{ stats_freq(0); }};
source s_net {{ network(transport("tcp") ip("127.0.0.1") port({port}) flags(no-parse)); }};
destination d_kafka {{
  kafka-c(bootstrap-servers("{bootstrap}") topic("syslog")
          config(queue.buffering.max.ms("5") message.timeout.ms("120000")));
}};
log {{ source(s_net); destination(d_kafka); }};
"#,
            bootstrap = broker.bootstrap()
        ),
    )
    .unwrap();
    let log = dir.join("syslog-ng.log");
    let child = Command::new(&bin)
        .arg("-F")
        .arg("-f")
        .arg(&conf)
        .arg(format!(
            "--module-path={}",
            root.join("usr/lib/syslog-ng/3.38").display()
        ))
        .arg("-R")
        .arg(dir.join("syslog-ng.persist"))
        .arg("-p")
        .arg(dir.join("syslog-ng.pid"))
        .arg("-c")
        .arg(dir.join("syslog-ng.ctl"))
        .env("LD_LIBRARY_PATH", root.join("usr/lib/syslog-ng"))
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(
            std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
        ))
        .spawn()
        .expect("start syslog-ng");
    let shipper = Shipper {
        child,
        port,
        log: log.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "syslog-ng did not listen:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    send_lines(shipper.port, 0, 500);
    assert_eq!(
        consume_requests(&broker.bootstrap(), 500),
        (0..500).collect::<Vec<_>>(),
        "syslog-ng log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    broker.stop();
    send_lines(shipper.port, 500, 1000);
    std::thread::sleep(Duration::from_secs(1));
    broker.spawn();
    broker.wait_until_listening(Duration::from_secs(30));
    assert_eq!(
        consume_requests(&broker.bootstrap(), 1000),
        (0..1000).collect::<Vec<_>>(),
        "syslog-ng log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}
