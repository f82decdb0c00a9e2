//! broker: a Kafka-compatible broker.
//!
//! Configuration comes from `server.properties` through `sluice-config`; the daemon (Kafka wire
//! protocol, partition log, controller and groups) is built up in the modules of this crate.

use sluice_config::BrokerConfig;

/// Outcome of `broker --check FILE`.
#[derive(Debug)]
pub struct CheckReport {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Validates `path` as `--check` does.
pub fn check(path: &std::path::Path) -> CheckReport {
    match BrokerConfig::load(path) {
        Ok(loaded) => {
            let mut stderr = String::new();
            for w in &loaded.warnings {
                stderr.push_str(&format!("warning: {w}\n"));
            }
            let cfg = loaded.config;
            let mut stdout = sluice_config::render_effective(path, &cfg.effective());
            for l in &cfg.advertised_listeners {
                stdout.push_str(&format!("# clients are told to connect to {l}\n"));
            }
            CheckReport {
                ok: true,
                stdout,
                stderr,
            }
        }
        Err(e) => CheckReport {
            ok: false,
            stdout: String::new(),
            stderr: e.report(),
        },
    }
}
