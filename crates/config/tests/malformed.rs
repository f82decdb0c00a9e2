//! Broken files give one precise error per problem (file, line, key, what was expected) and
//! never a panic.

use std::path::Path;

use sluice_config::{BrokerConfig, ConfigError, CoordConfig, Diagnostic, MyIdError};

const ZK_OK: &str = "dataDir=/tmp/zk\nclientPort=2181\ninitLimit=5\nsyncLimit=2\n\
server.1=localhost:2888:3888\nserver.2=localhost:2889:3889\nserver.3=localhost:2890:3890\n";

fn zk_errors(text: &[u8]) -> Vec<Diagnostic> {
    match CoordConfig::from_bytes(Path::new("zk.properties"), text) {
        Ok(l) => panic!("expected errors, loaded {:?}", l.config),
        Err(ConfigError::Invalid { errors, .. }) => errors,
        Err(e) => panic!("unexpected {e}"),
    }
}

fn broker_errors(text: &[u8]) -> Vec<Diagnostic> {
    match BrokerConfig::from_bytes(Path::new("server.properties"), text) {
        Ok(l) => panic!("expected errors, loaded {:?}", l.config),
        Err(ConfigError::Invalid { errors, .. }) => errors,
        Err(e) => panic!("unexpected {e}"),
    }
}

fn only(errors: &[Diagnostic]) -> &Diagnostic {
    assert_eq!(errors.len(), 1, "{errors:#?}");
    &errors[0]
}

#[test]
fn bad_number_names_line_key_and_expectation() {
    let e = zk_errors(b"dataDir=/tmp/zk\nclientPort=21x81\n");
    let e = only(&e);
    assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("clientPort")));
    assert!(
        e.message
            .contains("expected a whole number from 1 to 65535"),
        "{e}"
    );
    assert!(e.message.contains("21x81"), "{e}");
    assert_eq!(
        e.to_string(),
        format!("zk.properties:2: clientPort: {}", e.message)
    );

    let e = broker_errors(b"zookeeper.connect=localhost:2181\nnum.partitions=-3\n");
    let e = only(&e);
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(2), Some("num.partitions"))
    );
}

#[test]
fn duplicate_server_port_is_an_error_naming_both_servers() {
    let text = ZK_OK.replace(
        "server.3=localhost:2890:3890",
        "server.3=localhost:2889:3890",
    );
    let errors = zk_errors(text.as_bytes());
    let e = only(&errors);
    assert_eq!((e.line, e.key.as_deref()), (Some(7), Some("server.3")));
    assert!(
        e.message.contains("2889") && e.message.contains("server.2"),
        "{e}"
    );
}

#[test]
fn malformed_server_line_is_an_error() {
    let text = ZK_OK.replace("server.2=localhost:2889:3889", "server.2=localhost:2889");
    let e = zk_errors(text.as_bytes());
    let e = only(&e);
    assert_eq!(e.key.as_deref(), Some("server.2"));
    assert!(e.message.contains("host:peerPort:electionPort"), "{e}");
}

#[test]
fn ensemble_without_init_limit_is_an_error() {
    let text = ZK_OK.replace("initLimit=5\n", "");
    let e = zk_errors(text.as_bytes());
    assert_eq!(only(&e).key.as_deref(), Some("initLimit"));
}

#[test]
fn unterminated_continuation_is_an_error() {
    let e = zk_errors(b"dataDir=/tmp/zk\nclientPort=2181\nserver.1=localhost:2888:\\");
    let e = only(&e);
    assert_eq!((e.line, e.key.as_deref()), (Some(3), Some("server.1")));
    assert!(e.message.contains("continuation"), "{e}");
}

#[test]
fn invalid_utf8_is_an_error_naming_the_line() {
    let e = broker_errors(b"zookeeper.connect=localhost:2181\nlog.dirs=/data/\xc3\x28\n");
    let e = only(&e);
    assert_eq!(e.line, Some(2));
    assert!(e.message.contains("UTF-8"), "{e}");
}

#[test]
fn empty_files_are_an_error() {
    for text in [&b""[..], b"\n\n", b"# only a comment\n"] {
        let e = zk_errors(text);
        assert!(only(&e).message.contains("no settings"), "{e:?}");
        let e = broker_errors(text);
        assert!(only(&e).message.contains("no settings"), "{e:?}");
    }
}

#[test]
fn missing_required_keys_are_named() {
    let e = zk_errors(b"clientPort=2181\n");
    let e = only(&e);
    assert_eq!((e.line, e.key.as_deref()), (None, Some("dataDir")));
    let e = broker_errors(b"broker.id=1\n");
    assert_eq!(only(&e).key.as_deref(), Some("zookeeper.connect"));
}

#[test]
fn unknown_keys_are_warnings_not_errors() {
    let loaded = CoordConfig::from_bytes(
        Path::new("zk"),
        b"dataDir=/tmp/zk\nclientPort=2181\ntickTimee=5\n",
    )
    .unwrap();
    assert!(loaded
        .warnings
        .iter()
        .any(|w| w.key.as_deref() == Some("tickTimee") && w.message.contains("unknown")));
}

#[test]
fn broker_listener_and_connect_errors() {
    let e = broker_errors(b"zookeeper.connect=localhost:2181/kafka/\n");
    assert!(only(&e).message.contains("chroot"), "{e:?}");
    let e = broker_errors(b"zookeeper.connect=localhost:2181\nlisteners=SSL://:9093\n");
    assert!(only(&e).message.contains("has no certificate"), "{e:?}");
    let e = broker_errors(b"zookeeper.connect=localhost:2181\nlisteners=SASL_SSL://:9093\n");
    assert!(
        only(&e).message.contains("SASL is not supported yet")
            && only(&e).message.contains("listener.security.protocol.map"),
        "{e:?}"
    );
    let e = broker_errors(b"zookeeper.connect=localhost:2181\nlisteners=PLAINTEXT://:9092\nadvertised.listeners=PLAINTEXT://0.0.0.0:9092\n");
    assert!(only(&e).message.contains("wildcard"), "{e:?}");
    let loaded = BrokerConfig::from_bytes(
        Path::new("s"),
        b"zookeeper.connect=zk1:2181,zk2/kafka\nhost.name=10.0.0.5\nport=9093\n",
    )
    .unwrap();
    assert_eq!(
        loaded.config.zookeeper_connect.servers,
        vec![("zk1".into(), 2181), ("zk2".into(), 2181)]
    );
    assert_eq!(
        loaded.config.zookeeper_connect.chroot.as_deref(),
        Some("/kafka")
    );
    assert_eq!(
        loaded.config.listeners[0].to_string(),
        "PLAINTEXT://10.0.0.5:9093"
    );
    assert_eq!(
        loaded.config.advertised_listeners[0].to_string(),
        "PLAINTEXT://10.0.0.5:9093"
    );
}

#[test]
fn request_queue_limits_are_checked_and_named() {
    let e = broker_errors(b"zookeeper.connect=localhost:2181\nqueued.max.requests=0\n");
    let e = only(&e);
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(2), Some("queued.max.requests"))
    );
    assert!(e.message.contains("from 1 to"), "{e}");
    let e = broker_errors(b"zookeeper.connect=localhost:2181\nqueued.max.request.bytes=lots\n");
    assert_eq!(only(&e).key.as_deref(), Some("queued.max.request.bytes"));
    // As in Kafka, a pool must hold the largest request.
    let e = broker_errors(
        b"zookeeper.connect=localhost:2181\nsocket.request.max.bytes=2000000\nqueued.max.request.bytes=1000000\n",
    );
    let e = only(&e);
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(3), Some("queued.max.request.bytes"))
    );
    assert!(
        e.message.contains("socket.request.max.bytes (2000000)"),
        "{e}"
    );

    let load = |text: &[u8]| BrokerConfig::from_bytes(Path::new("s"), text).unwrap();
    let l = load(b"zookeeper.connect=localhost:2181\n");
    assert_eq!(l.config.queued_max_requests, 500);
    assert_eq!(l.config.queued_max_request_bytes, None);
    let l = load(b"zookeeper.connect=localhost:2181\nqueued.max.requests=7\nsocket.request.max.bytes=2097152\nqueued.max.request.bytes=4194304\n");
    assert_eq!(l.config.queued_max_requests, 7);
    assert_eq!(l.config.queued_max_request_bytes, Some(4_194_304));
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    // Kafka takes any value up to 0 as no limit.
    let l = load(b"zookeeper.connect=localhost:2181\nqueued.max.request.bytes=0\n");
    assert_eq!(l.config.queued_max_request_bytes, None);
}

#[test]
fn retention_precedence_is_ms_then_minutes_then_hours() {
    let load = |extra: &str| {
        let text = format!("zookeeper.connect=localhost:2181\n{extra}");
        BrokerConfig::from_bytes(Path::new("s"), text.as_bytes())
            .unwrap()
            .config
            .log_retention_ms
    };
    assert_eq!(load(""), Some(168 * 3_600_000));
    assert_eq!(load("log.retention.hours=1\n"), Some(3_600_000));
    assert_eq!(
        load("log.retention.hours=1\nlog.retention.minutes=2\n"),
        Some(120_000)
    );
    assert_eq!(
        load("log.retention.minutes=2\nlog.retention.ms=5\n"),
        Some(5)
    );
    assert_eq!(load("log.retention.ms=-1\n"), None);
}

mod myid {
    use super::*;

    fn config(dir: &Path) -> CoordConfig {
        let text = ZK_OK.replace("/tmp/zk", dir.to_str().unwrap());
        CoordConfig::from_bytes(Path::new("zk.properties"), text.as_bytes())
            .unwrap()
            .config
    }

    #[test]
    fn present_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("myid"), "2\n").unwrap();
        assert_eq!(config(dir.path()).read_myid(), Ok(Some(2)));
    }

    #[test]
    fn missing_file_and_missing_dir() {
        let dir = tempfile::tempdir().unwrap();
        let err = config(dir.path()).read_myid().unwrap_err();
        assert!(matches!(err, MyIdError::Missing { .. }), "{err}");
        assert!(err.is_not_yet_created());
        assert!(err.to_string().contains("myid: missing"), "{err}");
        let err = config(&dir.path().join("nope")).read_myid().unwrap_err();
        assert!(matches!(err, MyIdError::DataDirMissing { .. }), "{err}");
    }

    #[test]
    fn not_a_number() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("myid"), "one\n").unwrap();
        let err = config(dir.path()).read_myid().unwrap_err();
        assert!(matches!(err, MyIdError::NotANumber { .. }), "{err}");
        assert!(!err.is_not_yet_created());
        assert!(err.to_string().contains("`one`"), "{err}");
    }

    #[test]
    fn id_without_server_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("myid"), "7").unwrap();
        let err = config(dir.path()).read_myid().unwrap_err();
        assert!(
            matches!(err, MyIdError::NotInEnsemble { id: 7, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("server.1, server.2, server.3"),
            "{err}"
        );
    }

    #[test]
    fn standalone_needs_no_myid() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("dataDir={}\nclientPort=2181\n", dir.path().display());
        let cfg = CoordConfig::from_bytes(Path::new("zk"), text.as_bytes())
            .unwrap()
            .config;
        assert!(cfg.is_standalone());
        assert_eq!(cfg.read_myid(), Ok(None));
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let _ = CoordConfig::from_bytes(Path::new("fuzz"), &bytes);
        let _ = BrokerConfig::from_bytes(Path::new("fuzz"), &bytes);
    }

    #[test]
    fn arbitrary_text_lines_never_panic(lines in proptest::collection::vec("[a-zA-Z.]{1,30}[=: ][ -~]{0,40}", 0..20)) {
        let text = lines.join("\n");
        let _ = CoordConfig::from_bytes(Path::new("fuzz"), text.as_bytes());
        let _ = BrokerConfig::from_bytes(Path::new("fuzz"), text.as_bytes());
    }
}

#[test]
fn reconfiguration_keys() {
    let load = |extra: &str| {
        CoordConfig::from_bytes(
            Path::new("zk.properties"),
            format!("{ZK_OK}{extra}").as_bytes(),
        )
        .unwrap()
        .config
    };
    let c = load("");
    assert!(!c.reconfig_enabled && !c.skip_acl && c.super_digest.is_none());
    let c = load(
        "reconfigEnabled=true\nskipACL=yes\nDigestAuthenticationProvider.superDigest=super:abc=\n",
    );
    assert!(c.reconfig_enabled && c.skip_acl);
    assert_eq!(c.super_digest.as_deref(), Some("super:abc="));
    // ZooKeeper compares skipACL with "yes"; anything else leaves the checks on.
    assert!(!load("skipACL=true\n").skip_acl);
    let e = zk_errors(format!("{ZK_OK}reconfigEnabled=maybe\n").as_bytes());
    assert_eq!(only(&e).key.as_deref(), Some("reconfigEnabled"));
    let e =
        zk_errors(format!("{ZK_OK}DigestAuthenticationProvider.superDigest=nocolon\n").as_bytes());
    let e = only(&e);
    assert!(e.message.contains("user:base64"), "{e}");
}

#[test]
fn metrics_provider_keys() {
    use sluice_config::MetricsEndpoint;
    const PROMETHEUS: &str =
        "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider\n";
    let load = |extra: &str| {
        CoordConfig::from_bytes(
            Path::new("zk.properties"),
            format!("{ZK_OK}{extra}").as_bytes(),
        )
        .unwrap()
    };
    assert_eq!(load("").config.metrics, None);
    // ZooKeeper's own defaults: all interfaces, port 7000, process figures on.
    let l = load(PROMETHEUS);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert_eq!(
        l.config.metrics,
        Some(MetricsEndpoint {
            http_host: "0.0.0.0".into(),
            http_port: 7000,
            export_process_info: true,
        })
    );
    assert!(l
        .config
        .effective()
        .contains(&("metricsProvider.httpPort".into(), "7000".into())));
    let c = load(&format!(
        "{PROMETHEUS}metricsProvider.httpHost=127.0.0.1\nmetricsProvider.httpPort=17000\nmetricsProvider.exportJvmInfo=false\n"
    ))
    .config;
    assert_eq!(
        c.metrics,
        Some(MetricsEndpoint {
            http_host: "127.0.0.1".into(),
            http_port: 17000,
            export_process_info: false,
        })
    );
    // ZooKeeper's default provider: no endpoint, and the endpoint's keys say they do nothing.
    let l = load(
        "metricsProvider.className=org.apache.zookeeper.metrics.impl.DefaultMetricsProvider\nmetricsProvider.httpPort=17000\n",
    );
    assert_eq!(l.config.metrics, None);
    let w = only(&l.warnings);
    assert_eq!(
        (w.line, w.key.as_deref()),
        (Some(9), Some("metricsProvider.httpPort"))
    );
    assert!(w.message.contains("no effect without"), "{w}");

    // ZooKeeper stops on a class it cannot load; so does coord, naming the line and the key.
    let e = zk_errors(
        format!("{ZK_OK}metricsProvider.className=com.example.StatsdProvider\n").as_bytes(),
    );
    let e = only(&e);
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(8), Some("metricsProvider.className"))
    );
    assert!(e.message.contains("com.example.StatsdProvider"), "{e}");
    assert!(e.message.contains("PrometheusMetricsProvider"), "{e}");
    for (bad, key, says) in [
        (
            "metricsProvider.httpPort=abc\n",
            "metricsProvider.httpPort",
            "0 to 65535",
        ),
        (
            "metricsProvider.httpPort=70000\n",
            "metricsProvider.httpPort",
            "0 to 65535",
        ),
        (
            "metricsProvider.httpPort=2181\n",
            "metricsProvider.httpPort",
            "clientPort",
        ),
        (
            "metricsProvider.httpHost=not a host\n",
            "metricsProvider.httpHost",
            "not a valid host",
        ),
        (
            "metricsProvider.exportJvmInfo=maybe\n",
            "metricsProvider.exportJvmInfo",
            "true or false",
        ),
    ] {
        let e = zk_errors(format!("{ZK_OK}{PROMETHEUS}{bad}").as_bytes());
        let e = only(&e);
        assert_eq!((e.line, e.key.as_deref()), (Some(9), Some(key)), "{bad}");
        assert!(e.message.contains(says), "{bad}: {e}");
        assert!(e.to_string().starts_with("zk.properties:9: "), "{e}");
    }
}

#[test]
fn broker_metrics_listener() {
    use sluice_config::MetricsListener;
    let load = |extra: &str| {
        BrokerConfig::from_bytes(
            Path::new("s"),
            format!("zookeeper.connect=localhost:2181\nlisteners=PLAINTEXT://:9092\n{extra}")
                .as_bytes(),
        )
        .unwrap()
    };
    // Off unless set (an empty value too), and `--check` says so with an empty value.
    let l = load("");
    assert_eq!(l.config.metrics_prometheus_listener, None);
    assert!(l
        .config
        .effective()
        .contains(&("metrics.prometheus.listener".into(), String::new())));
    assert_eq!(
        load("metrics.prometheus.listener=\n")
            .config
            .metrics_prometheus_listener,
        None
    );
    for (text, host, port) in [
        ("0.0.0.0:9404", "0.0.0.0", 9404),
        ("broker-1.example.com:7071", "broker-1.example.com", 7071),
        ("[::1]:9404", "::1", 9404),
        ("127.0.0.1:0", "127.0.0.1", 0),
    ] {
        let l = load(&format!("metrics.prometheus.listener={text}\n"));
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let m = l.config.metrics_prometheus_listener.clone().unwrap();
        assert_eq!(
            m,
            MetricsListener {
                host: host.into(),
                port
            }
        );
        assert!(l
            .config
            .effective()
            .contains(&("metrics.prometheus.listener".into(), text.into())));
    }
    for (bad, says) in [
        ("9404", "HOST:PORT"),
        ("0.0.0.0:", "HOST:PORT"),
        (":9404", "HOST:PORT"),
        ("0.0.0.0:70000", "HOST:PORT"),
        ("::1:9404", "HOST:PORT"),
        ("<host>:9404", "HOST:PORT"),
        ("0.0.0.0:9092", "listener PLAINTEXT://:9092"),
    ] {
        let e = broker_errors(
            format!(
                "zookeeper.connect=localhost:2181\nlisteners=PLAINTEXT://:9092\nmetrics.prometheus.listener={bad}\n"
            )
            .as_bytes(),
        );
        let e = only(&e);
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(3), Some("metrics.prometheus.listener")),
            "{bad}"
        );
        assert!(e.message.contains(says), "{bad}: {e}");
    }
}
