//! Configuration for both daemons, read from the same Java `.properties` files that ZooKeeper and
//! Kafka use.
//!
//! ```text
//!  file bytes ──► properties::Properties ──► reader::Reader ──► CoordConfig / BrokerConfig
//!                 (syntax, escapes,           (typed getters,       (validated; every problem
//!                  trailing comments)          unknown-key check)    is a Diagnostic with
//!                                                                    file, line and key)
//! ```
//!
//! Loading never stops at the first problem: all errors and warnings of a file are gathered so an
//! operator fixes them in one pass. Binaries decide how to show warnings; this crate only returns
//! them.

pub mod broker;
pub mod coord;
mod diag;
pub mod properties;
mod reader;
pub mod ssl;

use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;

pub use broker::{parse_zk_connect, BrokerConfig, Listener, MetricsListener, ZkConnect};
pub use coord::{CoordConfig, FourLetterWords, MetricsEndpoint, MyIdError, PeerRole, ServerSpec};
pub use diag::{ConfigError, Diagnostic, Diagnostics, Loaded};
pub use properties::{escape_key, escape_value, Entry, Properties};
pub use ssl::{ClientAuth, Keystore, Setting, SslSettings, TlsVersion, Truststore};

fn read_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A host name (RFC 1123 labels; `_` tolerated as many internal networks use it) or an IP
/// address. Placeholders such as `카프카서버IP` or `<your host>` are not.
pub fn is_valid_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().is_ok();
    }
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
}

/// The text `--check` prints on success: a verdict, then the effective settings one per line.
pub fn render_effective(path: &Path, effective: &[(String, String)]) -> String {
    let mut out = format!(
        "{}: configuration is valid\n# effective settings, defaults included\n",
        path.display()
    );
    for (k, v) in effective {
        out.push_str(k);
        out.push('=');
        out.push_str(v);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::is_valid_host;

    #[test]
    fn host_validation() {
        for ok in [
            "localhost",
            "kafka-1.example.com",
            "10.0.0.1",
            "::1",
            "[::1]",
            "my_host",
            "a.",
        ] {
            assert!(is_valid_host(ok), "{ok}");
        }
        for bad in ["", "카프카서버IP", "<host>", "-a", "a..b", "a b", "[nope]"] {
            assert!(!is_valid_host(bad), "{bad}");
        }
    }
}
