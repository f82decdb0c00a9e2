//! The ready-made configs in `deploy/local/` load cleanly and describe one consistent cluster.

use std::collections::HashSet;
use std::path::PathBuf;

use sluice_config::{BrokerConfig, CoordConfig};

fn deploy(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/local")
        .join(name)
}

#[test]
fn coord_configs_form_one_ensemble_with_distinct_ports_and_dirs() {
    let mut client_ports = HashSet::new();
    let mut dirs = HashSet::new();
    let mut ensembles = HashSet::new();
    for i in 1..=3u64 {
        let loaded = CoordConfig::load(deploy(&format!("zookeeper-{i}.properties"))).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let c = loaded.config;
        assert!(c.servers.contains_key(&i));
        assert!(client_ports.insert(c.client_port.unwrap()));
        assert!(dirs.insert(c.data_dir.clone()));
        assert!(c.data_dir.is_relative(), "state must follow STATE_DIR");
        ensembles.insert(format!(
            "{:?}",
            c.effective()
                .iter()
                .filter(|(k, _)| k.starts_with("server."))
                .collect::<Vec<_>>()
        ));
    }
    assert_eq!(client_ports, HashSet::from([2181, 2182, 2183]));
    assert_eq!(
        ensembles.len(),
        1,
        "all three files must list the same servers"
    );
}

#[test]
fn broker_configs_load_with_distinct_ids_ports_and_log_dirs() {
    let mut seen = HashSet::new();
    for i in 1..=3 {
        let loaded = BrokerConfig::load(deploy(&format!("server-{i}.properties"))).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let c = loaded.config;
        assert_eq!(c.broker_id, i);
        assert_eq!(c.listeners[0].port, 9091 + i as u16);
        assert_eq!(
            c.zookeeper_connect.to_string(),
            "localhost:2181,localhost:2182,localhost:2183"
        );
        assert!(seen.insert(c.log_dirs[0].clone()));
    }
}
