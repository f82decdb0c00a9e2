//! TLS on the broker's listeners, driven by real clients: librdkafka (through `rdkafka`), kcat,
//! `openssl s_client`, kafka-python and the Java client. Certificates are made per test with the
//! `openssl` tool ([`sluice_e2e::tls::Pki`]).
//!
//! - a PLAINTEXT and an SSL listener on one broker at once, each client told the brokers'
//!   endpoints of the listener it came in on, and the registration in Kafka's JSON;
//! - mutual TLS: client certificates required, the principal the broker derives is the one
//!   Java derives from the same certificate;
//! - clients that fail (plaintext on the TLS port, untrusted, expired or missing certificate,
//!   a stalled handshake) fail alone while another client keeps producing;
//! - three brokers replicating over an SSL inter-broker listener with client certificates;
//! - bad TLS settings stop the broker at start, naming the key.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sluice_e2e::tls::{Issued, Pki};
use sluice_e2e::{clients_src, free_ports, java_classpath, BrokerNode, CoordCluster, KafkaCluster};
use zookeeper_client as zk;

/// A coord node and one broker with a PLAINTEXT and an SSL listener.
struct TlsBroker {
    coord: CoordCluster,
    broker: BrokerNode,
    pki: Pki,
    ssl: SocketAddr,
}

/// The `ssl.*` lines of a listener keyed by `server` and trusting `pki`'s CA.
fn ssl_lines(prefix: &str, pki: &Pki, server: &Issued) -> String {
    format!(
        "{prefix}ssl.keystore.type=PEM\n{prefix}ssl.keystore.location={}\n{prefix}ssl.truststore.type=PEM\n{prefix}ssl.truststore.location={}\n",
        server.bundle.display(),
        pki.ca.display()
    )
}

fn start(extra: &str) -> TlsBroker {
    let coord = CoordCluster::start(1, "");
    let pki = Pki::new(coord.dir.path(), "test");
    let server = pki.issue("broker", "/CN=broker-1/O=Sluice");
    let ports = free_ports(2);
    let broker = BrokerNode::start_with_listeners(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        ports[0],
        &format!(
            "PLAINTEXT://127.0.0.1:{},SSL://127.0.0.1:{}",
            ports[0], ports[1]
        ),
        &format!("{}{extra}", ssl_lines("", &pki, &server)),
    );
    TlsBroker {
        coord,
        broker,
        pki,
        ssl: SocketAddr::from(([127, 0, 0, 1], ports[1])),
    }
}

/// librdkafka settings for `security.protocol=ssl`, presenting `client` if given.
fn ssl_config(bootstrap: &str, ca: &Path, client: Option<&Issued>) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", ca.to_str().unwrap());
    if let Some(i) = client {
        c.set("ssl.certificate.location", i.cert.to_str().unwrap())
            .set("ssl.key.location", i.key.to_str().unwrap());
    }
    c
}

fn plain_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

/// Produces `n` records `<prefix>-<i>` to partition 0 of `topic`; the first error if any.
async fn produce(config: &ClientConfig, topic: &str, prefix: &str, n: usize) -> Result<(), String> {
    let p: FutureProducer = config
        .clone()
        .set("message.timeout.ms", "15000")
        .set("linger.ms", "1")
        .create()
        .map_err(|e| e.to_string())?;
    for i in 0..n {
        let v = format!("{prefix}-{i}");
        p.send(
            FutureRecord::<(), _>::to(topic).payload(&v).partition(0),
            Duration::from_secs(15),
        )
        .await
        .map_err(|(e, _)| e.to_string())?;
    }
    Ok(())
}

/// Reads partition 0 of `topic` from the start until `n` records came (or 30 s passed).
async fn consume(config: &ClientConfig, topic: &str, n: usize) -> Vec<String> {
    let mut config = config.clone();
    config.set("group.id", "tls-check");
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = config.create().expect("consumer");
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, rdkafka::Offset::Beginning)
            .unwrap();
        c.assign(&tpl).unwrap();
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.len() < n && Instant::now() < deadline {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            }
        }
        got
    })
    .await
    .unwrap()
}

fn expected(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// The brokers' (id, port) that a client connected with `config` is told.
fn metadata_ports(config: &ClientConfig) -> Vec<(i32, i32)> {
    let c: BaseConsumer = config.create().expect("client");
    let m = c
        .fetch_metadata(None, Duration::from_secs(15))
        .expect("metadata");
    m.brokers().iter().map(|b| (b.id(), b.port())).collect()
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("run");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_and_ssl_listeners_serve_at_once_each_with_its_own_endpoints() {
    let t =
        start("ssl.cipher.suites=TLS_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n");
    let ssl = t.ssl.to_string();
    let plain = t.broker.bootstrap();

    // Registered as Kafka registers a broker with two listeners.
    let zkc = zk::Client::connector()
        .connect(&t.coord.connect_string())
        .await
        .unwrap();
    let (data, _) = zkc.get_data("/brokers/ids/1").await.unwrap();
    let reg: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(
        reg["endpoints"],
        serde_json::json!([format!("PLAINTEXT://{plain}"), format!("SSL://{ssl}")]),
        "{reg}"
    );
    assert_eq!(
        reg["listener_security_protocol_map"],
        serde_json::json!({"PLAINTEXT": "PLAINTEXT", "SSL": "SSL"}),
        "{reg}"
    );

    // Each client is told the endpoints of the listener it came in on.
    let over_ssl = ssl_config(&ssl, &t.pki.ca, None);
    assert_eq!(metadata_ports(&over_ssl), vec![(1, t.ssl.port() as i32)]);
    assert_eq!(
        metadata_ports(&plain_config(&plain)),
        vec![(1, t.broker.port as i32)]
    );

    // Written over TLS, read over plaintext, and the other way round, on one broker at once.
    produce(&over_ssl, "mixed", "tls", 200).await.unwrap();
    produce(&plain_config(&plain), "mixed", "plain", 200)
        .await
        .unwrap();
    let mut all = expected("tls", 200);
    all.extend(expected("plain", 200));
    assert_eq!(consume(&plain_config(&plain), "mixed", 400).await, all);
    assert_eq!(consume(&over_ssl, "mixed", 400).await, all);

    // kcat (Debian's librdkafka) over SSL.
    let (ok, out) = run(Command::new("kcat").args([
        "-b",
        &ssl,
        "-X",
        "security.protocol=ssl",
        "-X",
        &format!("ssl.ca.location={}", t.pki.ca.display()),
        "-C",
        "-t",
        "mixed",
        "-p",
        "0",
        "-o",
        "beginning",
        "-c",
        "3",
        "-e",
    ]));
    assert!(ok, "{out}");
    assert_eq!(
        out.lines().take(3).collect::<Vec<_>>(),
        ["tls-0", "tls-1", "tls-2"]
    );

    // ssl.cipher.suites: the TLS 1.2 suite named is offered, another one is not.
    let s_client = |cipher: &str| {
        run(Command::new("openssl")
            .args(["s_client", "-connect", &ssl, "-tls1_2", "-cipher", cipher])
            .arg("-CAfile")
            .arg(&t.pki.ca)
            .stdin(std::process::Stdio::null()))
    };
    let (ok, out) = s_client("ECDHE-RSA-AES256-GCM-SHA384");
    assert!(ok && out.contains("ECDHE-RSA-AES256-GCM-SHA384"), "{out}");
    let (ok, out) = s_client("ECDHE-RSA-AES128-GCM-SHA256");
    assert!(
        !ok,
        "a suite not in ssl.cipher.suites was negotiated:\n{out}"
    );
}

/// The subject DN Java's `X500Principal.getName()` gives for `cert` (what Kafka's principal is).
fn java_subject(dir: &Path, cert: &Path) -> String {
    let src = dir.join("Subject.java");
    std::fs::write(
        &src,
        "import java.io.*; import java.security.cert.*;\n\
         public class Subject { public static void main(String[] a) throws Exception {\n\
         X509Certificate c = (X509Certificate) CertificateFactory.getInstance(\"X.509\")\n\
           .generateCertificate(new FileInputStream(a[0]));\n\
         System.out.println(c.getSubjectX500Principal().getName()); } }\n",
    )
    .unwrap();
    let (ok, out) = run(Command::new("java").arg(&src).arg(cert));
    assert!(ok, "{out}");
    out.trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_takes_the_certificate_subject_as_principal_as_java_does() {
    let t = start("ssl.client.auth=required\n");
    let dir = t.coord.dir.path();
    let client = t.pki.issue(
        "client",
        "/C=DE/ST=Berlin/O=Acme, Inc./OU=ops/UID=svc/CN=app-1/emailAddress=ops@acme.test",
    );
    let ssl = t.ssl.to_string();
    let with_cert = ssl_config(&ssl, &t.pki.ca, Some(&client));
    produce(&with_cert, "audit", "mtls", 100).await.unwrap();
    assert_eq!(
        consume(&with_cert, "audit", 100).await,
        expected("mtls", 100)
    );

    let java = java_subject(dir, &client.cert);
    assert!(java.starts_with("1.2.840.113549.1.9.1=#16"), "{java}");
    let log = t.broker.log_text();
    assert!(
        log.contains(&format!("principal=User:{java}")),
        "Java's subject {java} not in the broker's log:\n{log}"
    );

    // Without a certificate the client is refused, and told nothing.
    let without = ssl_config(&ssl, &t.pki.ca, None);
    let err = produce(
        without.clone().set("message.timeout.ms", "4000"),
        "audit",
        "anon",
        1,
    )
    .await;
    assert!(err.is_err(), "a client without a certificate produced");
    let c: BaseConsumer = plain_config(&t.broker.bootstrap()).create().unwrap();
    let marks = c
        .fetch_watermarks("audit", 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        marks,
        (0, 100),
        "a record without a certificate was written"
    );
}

/// A producer over TLS that keeps producing one record every 20 ms, counting acknowledgements.
struct Steady {
    acked: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Steady {
    fn start(config: ClientConfig, topic: &'static str) -> Steady {
        let acked = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, f, s) = (acked.clone(), failed.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let p: FutureProducer = config
                .clone()
                .set("message.timeout.ms", "10000")
                .set("linger.ms", "0")
                .create()
                .unwrap();
            let mut i = 0;
            while !s.load(Ordering::Relaxed) {
                let v = format!("steady-{i}");
                match p
                    .send(
                        FutureRecord::<(), _>::to(topic).payload(&v).partition(0),
                        Duration::from_secs(10),
                    )
                    .await
                {
                    Ok(_) => a.fetch_add(1, Ordering::Relaxed),
                    Err(_) => f.fetch_add(1, Ordering::Relaxed),
                };
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let _ = p.flush(Duration::from_secs(5));
        });
        Steady {
            acked,
            failed,
            stop,
            task,
        }
    }

    /// Waits until `more` acknowledgements came after now (panics after 10 s).
    async fn keeps_going(&self, more: usize, during: &str) {
        let from = self.acked.load(Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.acked.load(Ordering::Relaxed) < from + more {
            assert!(
                Instant::now() < deadline,
                "the steady producer stalled {during}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Whether the broker ends a connection that sent `bytes` (EOF or reset within `within`).
fn closed_after(addr: SocketAddr, bytes: &[u8], within: Duration) -> (bool, Duration) {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(within)).unwrap();
    let _ = s.write_all(bytes);
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (true, start.elapsed()),
            // A TLS alert may come before the close.
            Ok(_) => continue,
            Err(e) => {
                let hang = matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
                return (!hang, start.elapsed());
            }
        }
    }
}

/// The broker logs at most one failed handshake a second: waiting that long after the last
/// one makes sure the next one is logged.
async fn past_the_log_limit() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

/// Waits until the broker's log has a line with all of `words` (10 s).
fn logged(broker: &BrokerNode, words: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = broker.log_text();
        if log.lines().any(|l| words.iter().all(|w| l.contains(w))) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {words:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_tls_clients_fail_alone_while_another_keeps_producing() {
    // connections.max.idle.ms bounds the handshake too: a stalled one is dropped after 2 s.
    let t = start("ssl.client.auth=required\nconnections.max.idle.ms=2000\n");
    let ssl = t.ssl.to_string();
    let good = t.pki.issue("good", "/CN=good-client");
    let expired = t.pki.issue_expired("expired", "/CN=expired-client");
    let rogue_ca = Pki::new(t.coord.dir.path(), "rogue");
    let untrusted = rogue_ca.issue("untrusted", "/CN=untrusted-client");
    let steady = Steady::start(ssl_config(&ssl, &t.pki.ca, Some(&good)), "steady");
    steady.keeps_going(20, "at the start").await;

    // 1. A plaintext Kafka client on the TLS port: an ApiVersions request is not a TLS record.
    let api_versions = [0u8, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff];
    let (closed, _) = closed_after(t.ssl, &api_versions, Duration::from_secs(5));
    assert!(
        closed,
        "a plaintext request on the SSL port was not refused"
    );
    let plain_on_tls: ClientConfig = plain_config(&ssl);
    let err = produce(
        plain_on_tls.clone().set("message.timeout.ms", "3000"),
        "steady",
        "plain",
        1,
    )
    .await;
    assert!(
        err.is_err(),
        "librdkafka over plaintext produced on the SSL port"
    );
    logged(&t.broker, &["TLS handshake failed", "plaintext client"]);
    steady
        .keeps_going(20, "while plaintext clients were refused")
        .await;

    // 2. An untrusted certificate, then 3. an expired one: refused, the others unaffected.
    past_the_log_limit().await;
    // An untrusted certificate presented by openssl s_client (librdkafka does not send one
    // that no CA of the server's CertificateRequest issued: it connects without, and fails).
    let (_, out) = run(Command::new("openssl")
        .args(["s_client", "-connect", &ssl])
        .arg("-cert")
        .arg(&untrusted.cert)
        .arg("-key")
        .arg(&untrusted.key)
        .arg("-CAfile")
        .arg(&t.pki.ca)
        .stdin(std::process::Stdio::null()));
    assert!(out.contains("CONNECTED"), "{out}");
    logged(
        &t.broker,
        &["TLS handshake failed", "UnknownIssuer", "peer=127.0.0.1:"],
    );
    for (who, cert, why) in [
        ("untrusted", &untrusted, "peer sent no certificates"),
        ("expired", &expired, "certificate expired"),
    ] {
        past_the_log_limit().await;
        let err = produce(
            ssl_config(&ssl, &t.pki.ca, Some(cert)).set("message.timeout.ms", "3000"),
            "steady",
            who,
            1,
        )
        .await;
        assert!(err.is_err(), "a client with an {who} certificate produced");
        logged(&t.broker, &["TLS handshake failed", why, "peer=127.0.0.1:"]);
        steady
            .keeps_going(20, &format!("while {who} clients were refused"))
            .await;
    }

    // 4. A handshake that stalls: a ClientHello cut short. Dropped after the timeout.
    past_the_log_limit().await;
    // Fifty of them at once, and meanwhile a new client connects and produces: handshakes
    // are not done by the accept loop.
    let partial_hello = [0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01];
    let stalled: Vec<_> = (0..50)
        .map(|_| {
            std::thread::spawn(move || closed_after(t.ssl, &partial_hello, Duration::from_secs(8)))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    produce(
        ssl_config(&ssl, &t.pki.ca, Some(&good)).set("message.timeout.ms", "1500"),
        "steady-new",
        "new",
        1,
    )
    .await
    .expect("a new client produced while fifty handshakes stalled");
    assert!(started.elapsed() < Duration::from_millis(1500));
    steady.keeps_going(40, "while handshakes stalled").await;
    for s in stalled {
        let (closed, after) = s.join().unwrap();
        assert!(closed, "a stalled handshake was never dropped");
        assert!(
            after >= Duration::from_millis(1900) && after < Duration::from_secs(6),
            "a stalled handshake was dropped after {after:?}"
        );
    }
    logged(
        &t.broker,
        &["TLS handshake failed", "not finished within 2000 ms"],
    );

    steady.stop.store(true, Ordering::Relaxed);
    steady.task.await.unwrap();
    assert_eq!(steady.failed.load(Ordering::Relaxed), 0);
    let acked = steady.acked.load(Ordering::Relaxed);
    let read = consume(&plain_config(&t.broker.bootstrap()), "steady", acked).await;
    assert_eq!(read, expected("steady", acked));
}

const KAFKA_PYTHON: &str = r#"
import sys
from kafka import KafkaProducer, KafkaConsumer, TopicPartition
bootstrap, topic, ca, cert, key = sys.argv[1:6]
tls = dict(security_protocol="SSL", ssl_cafile=ca)
if cert:
    tls.update(ssl_certfile=cert, ssl_keyfile=key)
p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **tls)
for i in range(50):
    p.send(topic, value=("py-%d" % i).encode(), partition=0).get(timeout=30)
p.close()
c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                  consumer_timeout_ms=10000, **tls)
tp = TopicPartition(topic, 0)
c.assign([tp])
c.seek_to_beginning(tp)
got = [m.value.decode() for m in c]
print("consumed", len(got), got[0], got[-1])
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_produces_and_consumes_over_ssl_and_mutual_tls() {
    let t = start(
        "listener.name.ssl.ssl.client.auth=requested\n\
         ssl.principal.mapping.rules=RULE:^CN=([a-z]+)-client$/$1/U,DEFAULT\n",
    );
    let client = t.pki.issue("py-client", "/CN=py-client");
    let ssl = t.ssl.to_string();
    let ca = t.pki.ca.to_str().unwrap().to_string();
    for (topic, cert, key) in [
        ("py-tls", String::new(), String::new()),
        (
            "py-mtls",
            client.cert.to_str().unwrap().to_string(),
            client.key.to_str().unwrap().to_string(),
        ),
    ] {
        let (ok, out) = run(Command::new("/usr/bin/python3").args([
            "-c",
            KAFKA_PYTHON,
            &ssl,
            topic,
            &ca,
            &cert,
            &key,
        ]));
        assert!(
            ok,
            "kafka-python over SSL ({topic}):\n{out}\n{}",
            t.broker.log_text()
        );
        assert!(out.contains("consumed 50 py-0 py-49"), "{out}");
    }
    logged(
        &t.broker,
        // ssl.principal.mapping.rules: `CN=py-client` is `PY`.
        &["TLS client connected", "principal=User:PY"],
    );
    logged(
        &t.broker,
        &["TLS client connected", "principal=User:ANONYMOUS"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_client_produces_and_consumes_over_ssl_with_pem_stores_and_client_certificates() {
    let t = start("ssl.client.auth=required\n");
    let client = t.pki.issue("java-client", "/CN=java-client/O=Sluice");
    // Kafka's client takes a PEM keystore file with an encrypted key and ssl.key.password.
    let keystore = t.pki.encrypted_bundle(&client, "java-secret", true);
    let ssl = t.ssl.to_string();
    let (ok, out) = run(Command::new("java")
        .arg("-cp")
        .arg(java_classpath("client-4.4.0"))
        .arg(clients_src("java").join("TlsCheck.java"))
        .args([&ssl, "java-tls", "500"])
        .arg("security.protocol=SSL")
        .arg("ssl.truststore.type=PEM")
        .arg(format!("ssl.truststore.location={}", t.pki.ca.display()))
        .arg("ssl.keystore.type=PEM")
        .arg(format!("ssl.keystore.location={}", keystore.display()))
        .arg("ssl.key.password=java-secret"));
    assert!(ok, "Java client over SSL:\n{out}\n{}", t.broker.log_text());
    assert!(
        out.contains("produced 500") && out.contains("consumed 500"),
        "{out}"
    );
    logged(
        &t.broker,
        &[
            "TLS client connected",
            "principal=User:O=Sluice,CN=java-client",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_brokers_replicate_over_an_ssl_inter_broker_listener() {
    let coord = CoordCluster::start(1, "");
    let pki = Pki::new(coord.dir.path(), "cluster");
    let mut brokers = Vec::new();
    for id in 1..=3 {
        let server = pki.issue(&format!("broker-{id}"), &format!("/CN=broker-{id}"));
        // Broker 2 keeps its key encrypted as Kafka's PEM keystores do (PBE-SHA1-3DES).
        let keystore = if id == 2 {
            format!(
                "listener.name.internal.ssl.keystore.location={}\nlistener.name.internal.ssl.key.password=b2-secret\n",
                pki.encrypted_bundle(&server, "b2-secret", true).display()
            )
        } else {
            format!(
                "listener.name.internal.ssl.keystore.location={}\n",
                server.bundle.display()
            )
        };
        let ports = free_ports(2);
        brokers.push(BrokerNode::start_with_listeners(
            coord.dir.path(),
            id,
            &coord.connect_string(),
            ports[0],
            &format!(
                "PLAINTEXT://127.0.0.1:{},INTERNAL://127.0.0.1:{}",
                ports[0], ports[1]
            ),
            &format!(
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:SSL\n\
                 inter.broker.listener.name=INTERNAL\n\
                 listener.name.internal.ssl.client.auth=required\n\
                 default.replication.factor=3\nmin.insync.replicas=3\n{keystore}\
                 listener.name.internal.ssl.truststore.location={}\n",
                pki.ca.display()
            ),
        ));
    }
    let cluster = KafkaCluster { coord, brokers };
    cluster.wait_for_brokers(3, Duration::from_secs(30));
    let bootstrap = cluster.bootstrap();

    // acks=all with min.insync.replicas=3: every write is fetched by both followers over TLS.
    let config = plain_config(&bootstrap);
    produce(config.clone().set("acks", "all"), "replicated", "r", 300)
        .await
        .unwrap();
    assert_eq!(
        consume(&config, "replicated", 300).await,
        expected("r", 300)
    );
    let (leader, isr) = cluster.leader(1, "replicated", 0);
    let mut isr = isr;
    isr.sort();
    assert_eq!(isr, vec![1, 2, 3]);
    // The followers' fetchers came in on the leader's INTERNAL listener with their certificates.
    let leader_node = cluster.brokers.iter().find(|b| b.id == leader).unwrap();
    for id in (1..=3).filter(|id| *id != leader) {
        logged(
            leader_node,
            &[
                "TLS client connected",
                "listener=\"INTERNAL\"",
                &format!("principal=User:CN=broker-{id}"),
            ],
        );
    }
}

#[test]
fn bad_tls_settings_stop_the_broker_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "check");
    let server = pki.issue("broker", "/CN=broker");
    let check = |extra: &str| {
        let file = dir.path().join("server.properties");
        std::fs::write(
            &file,
            format!(
                "zookeeper.connect=127.0.0.1:1\nlisteners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0\nssl.truststore.location={}\n{extra}",
                pki.ca.display()
            ),
        )
        .unwrap();
        let (check_ok, check_out) = run(Command::new(sluice_e2e::binary("broker"))
            .arg("--check")
            .arg(&file));
        let (start_ok, start_out) = run(Command::new(sluice_e2e::binary("broker")).arg(&file));
        assert!(!start_ok, "the broker started with {extra}:\n{start_out}");
        (check_ok, check_out, start_out)
    };
    // A good file passes --check.
    let file = dir.path().join("good.properties");
    std::fs::write(
        &file,
        format!(
            "zookeeper.connect=127.0.0.1:1\nlisteners=SSL://127.0.0.1:0\n{}",
            ssl_lines("", &pki, &server)
        ),
    )
    .unwrap();
    let (ok, out) = run(Command::new(sluice_e2e::binary("broker"))
        .arg("--check")
        .arg(&file));
    assert!(ok, "{out}");
    assert!(
        out.contains("listener.name.ssl.ssl.client.auth=none"),
        "{out}"
    );

    let keystore = format!("ssl.keystore.location={}\n", server.bundle.display());
    let (ok, check_out, start_out) = check(&format!(
        "{keystore}ssl.cipher.suites=TLS_AES_128_GCM_SHA256,TLS_RSA_WITH_RC4_128_MD5\n"
    ));
    for out in [&check_out, &start_out] {
        assert!(
            !ok && out.contains("ssl.cipher.suites")
                && out.contains("TLS_RSA_WITH_RC4_128_MD5 not supported"),
            "{out}"
        );
    }
    let binary = dir.path().join("keystore.jks");
    std::fs::write(&binary, [0xfeu8, 0xed, 0xfe, 0xed, 0, 0, 0, 2]).unwrap();
    let (ok, out, _) = check(&format!("ssl.keystore.location={}\n", binary.display()));
    assert!(
        !ok && out.contains("ssl.keystore.location") && out.contains("is not a PEM file"),
        "{out}"
    );
    // An encrypted key (Kafka's PEM keystore form): its password decrypts it, a wrong one or
    // none is named.
    let encrypted = pki.encrypted_bundle(&server, "secret", false);
    let file = dir.path().join("encrypted.properties");
    std::fs::write(
        &file,
        format!(
            "zookeeper.connect=127.0.0.1:1\nlisteners=SSL://127.0.0.1:0\nssl.keystore.location={}\nssl.key.password=secret\n",
            encrypted.display()
        ),
    )
    .unwrap();
    let (ok, out) = run(Command::new(sluice_e2e::binary("broker"))
        .arg("--check")
        .arg(&file));
    assert!(ok, "{out}");
    let (ok, out, _) = check(&format!(
        "ssl.keystore.location={}\nssl.key.password=wrong\n",
        encrypted.display()
    ));
    assert!(
        !ok && out.contains("ssl.key.password") && out.contains("wrong password"),
        "{out}"
    );
    let (ok, out, _) = check(&format!("ssl.keystore.location={}\n", encrypted.display()));
    assert!(
        !ok && out.contains("ssl.keystore.location")
            && out.contains("set its password as ssl.key.password"),
        "{out}"
    );
    let (ok, out, _) = check(&format!("{keystore}ssl.keystore.type=PKCS12\n"));
    assert!(
        !ok && out.contains("PKCS12 keystores are not supported yet")
            && out.contains("openssl pkcs12"),
        "{out}"
    );
}
