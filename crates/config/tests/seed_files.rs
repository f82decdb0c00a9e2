//! The user's original `zookeeper.properties` and `server.properties` (copied verbatim into
//! `tests/fixtures/seed/`) load with the outcomes the operators expect.

use std::path::PathBuf;

use sluice_config::{BrokerConfig, ConfigError, CoordConfig, PeerRole};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/seed")
        .join(name)
}

#[test]
fn seed_zookeeper_properties_loads_with_warnings_for_inline_comments() {
    let loaded = CoordConfig::load(fixture("zookeeper.properties")).expect("seed file must load");
    let cfg = &loaded.config;
    assert_eq!(cfg.data_dir, PathBuf::from("/home/user/kafka/zkdata"));
    assert_eq!(cfg.data_log_dir, cfg.data_dir);
    assert_eq!(cfg.client_port, Some(2181));
    assert_eq!(cfg.max_client_cnxns, 0, "0 means unlimited");
    assert_eq!((cfg.init_limit, cfg.sync_limit), (5, 2));
    assert_eq!(cfg.tick_time_ms, 3000, "ZooKeeper's default tickTime");
    assert_eq!(
        (cfg.min_session_timeout_ms, cfg.max_session_timeout_ms),
        (6000, 60000)
    );
    assert!(!cfg.is_standalone());
    let servers: Vec<(u64, &str, u16, u16)> = cfg
        .servers
        .values()
        .map(|s| (s.id, s.host.as_str(), s.peer_port, s.election_port))
        .collect();
    assert_eq!(
        servers,
        vec![
            (1, "localhost", 2888, 3888),
            (2, "localhost", 2889, 3889),
            (3, "localhost", 2890, 3890)
        ]
    );
    assert!(cfg
        .servers
        .values()
        .all(|s| s.role == PeerRole::Participant));

    // One warning per value line that carries a trailing comment, each naming its line and key.
    let lines: Vec<(Option<usize>, Option<&str>)> = loaded
        .warnings
        .iter()
        .map(|w| (w.line, w.key.as_deref()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (Some(1), Some("dataDir")),
            (Some(2), Some("clientPort")),
            (Some(3), Some("maxClientCnxns")),
            (Some(4), Some("initLimit")),
            (Some(5), Some("syncLimit")),
        ]
    );
    for w in &loaded.warnings {
        assert!(w.message.contains("comment"), "{w}");
        assert!(w.to_string().contains("zookeeper.properties:"), "{w}");
    }
}

#[test]
fn seed_server_properties_fails_only_on_the_placeholder_advertised_host() {
    let err = BrokerConfig::load(fixture("server.properties"))
        .expect_err("placeholder host must be rejected");
    let ConfigError::Invalid { errors, warnings } = err else {
        panic!("expected a validation error, got {err}");
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert_eq!(e.line, Some(20));
    assert_eq!(e.key.as_deref(), Some("advertised.listeners"));
    assert!(e.message.contains("카프카서버IP"), "{e}");
    assert!(e.message.contains("not a valid host name"), "{e}");
    assert!(e.message.contains("resolvable host"), "{e}");
    let rendered = e.to_string();
    assert!(
        rendered.contains("server.properties:20: advertised.listeners:"),
        "{rendered}"
    );
    // The trailing comments on lines 1 and 3 are warnings, and every key is recognised.
    let comment_lines: Vec<Option<usize>> = warnings
        .iter()
        .filter(|w| w.message.contains("comment"))
        .map(|w| w.line)
        .collect();
    assert_eq!(comment_lines, vec![Some(1), Some(3)]);
    assert!(
        !warnings.iter().any(|w| w.message.contains("unknown")),
        "{warnings:?}"
    );
}

#[test]
fn seed_server_properties_with_a_real_host_loads_and_every_key_is_recognised() {
    let text = std::fs::read_to_string(fixture("server.properties")).unwrap();
    let text = text.replace("카프카서버IP", "192.0.2.10");
    let loaded =
        BrokerConfig::from_bytes(&fixture("server.properties"), text.as_bytes()).expect("loads");
    assert!(
        !loaded
            .warnings
            .iter()
            .any(|w| w.message.contains("unknown")),
        "{:?}",
        loaded.warnings
    );
    let c = &loaded.config;
    assert_eq!(c.broker_id, 1);
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(
        c.listeners[0].to_string(),
        "PLAINTEXT://:9092",
        "deprecated port maps onto listeners"
    );
    assert_eq!(
        c.advertised_listeners[0].to_string(),
        "PLAINTEXT://192.0.2.10:9092"
    );
    assert!(c.delete_topic_enable);
    assert_eq!((c.num_network_threads, c.num_io_threads), (3, 8));
    assert_eq!(
        (c.socket_send_buffer_bytes, c.socket_receive_buffer_bytes),
        (102_400, 102_400)
    );
    assert_eq!(c.socket_request_max_bytes, 104_857_600);
    assert_eq!(c.log_dirs, vec![PathBuf::from("/home/doyeon/kafka/kfdata")]);
    assert_eq!(
        (c.num_partitions, c.num_recovery_threads_per_data_dir),
        (1, 1)
    );
    assert_eq!(c.offsets_topic_replication_factor, 1);
    assert_eq!(
        (
            c.transaction_state_log_replication_factor,
            c.transaction_state_log_min_isr
        ),
        (1, 1)
    );
    assert_eq!(c.log_retention_ms, Some(168 * 3_600_000));
    assert_eq!(c.log_retention_bytes, None);
    assert_eq!(c.log_segment_bytes, 1_073_741_824);
    assert_eq!(c.log_retention_check_interval_ms, 300_000);
    assert_eq!(
        c.zookeeper_connect.to_string(),
        "localhost:2181,localhost:2182,localhost:2183"
    );
    assert_eq!(c.zookeeper_connect.chroot, None);
    assert_eq!(c.zookeeper_connection_timeout_ms, 6000);
    assert_eq!(c.group_initial_rebalance_delay_ms, 0);
    // Kafka's defaults for what the file leaves unset.
    assert_eq!(c.message_max_bytes, 1_048_588);
    assert_eq!(c.min_insync_replicas, 1);
    assert!(!c.unclean_leader_election_enable);
    assert!(c.auto_create_topics_enable);
    assert_eq!(c.zookeeper_session_timeout_ms, 18_000);
}
