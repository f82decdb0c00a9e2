//! coord: a ZooKeeper-compatible coordinator.
//!
//! Configuration comes from `zookeeper.properties` through `sluice-config`; the daemon itself
//! (znode tree, sessions, watches, the Raft-replicated log and the ZooKeeper wire server) is built
//! up in the modules of this crate.

pub mod fourlw;
pub mod raft;
pub mod server;

pub mod machine;
pub mod metrics;
pub mod quorum_config;
pub mod sessions;
pub mod tree;
pub mod watches;

use sluice_config::{CoordConfig, Diagnostic};

/// Outcome of `coord --check FILE`.
#[derive(Debug)]
pub struct CheckReport {
    pub ok: bool,
    /// Text for standard output (the effective settings) on success.
    pub stdout: String,
    /// Errors and warnings, one per line.
    pub stderr: String,
}

/// Validates `path` as `--check` does: the file must be valid; a missing `dataDir` or `myid` is
/// only a warning (the daemon refuses to start without them), a wrong `myid` is an error.
pub fn check(path: &std::path::Path) -> CheckReport {
    let mut stderr = String::new();
    match CoordConfig::load(path) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                stderr.push_str(&format!("warning: {w}\n"));
            }
            let cfg = loaded.config;
            let mut ok = true;
            let mut stdout = sluice_config::render_effective(path, &cfg.effective());
            if cfg.is_standalone() {
                stdout.push_str("# mode: standalone (no server.N lines)\n");
            } else {
                stdout.push_str(&format!(
                    "# mode: ensemble of {} servers\n",
                    cfg.servers.len()
                ));
                for s in cfg.servers.values() {
                    stdout.push_str(&format!(
                        "#   server.{} host {} peer port {} election port {} ({:?})\n",
                        s.id, s.host, s.peer_port, s.election_port, s.role
                    ));
                }
            }
            match cfg.read_myid() {
                Ok(Some(id)) => stdout.push_str(&format!("# this node: myid {id}\n")),
                Ok(None) => {}
                Err(e) if e.is_not_yet_created() => stderr.push_str(&format!(
                    "warning: {e} (needed before the node can start)\n"
                )),
                Err(e) => {
                    ok = false;
                    stderr.push_str(&format!("error: {e}\n"));
                }
            }
            CheckReport { ok, stdout, stderr }
        }
        Err(e) => CheckReport {
            ok: false,
            stdout: String::new(),
            stderr: e.report(),
        },
    }
}

/// Logs configuration warnings through `tracing`.
pub fn log_warnings(warnings: &[Diagnostic]) {
    for w in warnings {
        tracing::warn!("{w}");
    }
}
