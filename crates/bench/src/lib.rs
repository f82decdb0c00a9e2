//! `coord-load`: a load generator that speaks the ZooKeeper client protocol through the
//! independent `zookeeper-client` crate, so one run can target `coord` and a real ZooKeeper
//! ensemble alike and the numbers are comparable.
//!
//! - [`cpu`]: CPU seconds of the client and the servers during a measured window.
//! - [`options`]: the command line, its bounds (loopback targets only, bounded count and time).
//! - [`layout`]: where a run puts its znodes.
//! - [`stats`]: latency summaries, the longest gap between acknowledgements, the report lines.
//! - [`throughput`]: closed-loop workloads (`create`, `set`, `get`, `mixed`).
//! - [`failover`]: keep writing across a leader kill, then check that no acknowledged write is
//!   missing.
//! - [`probe`]: wait until one server answers a read (restart time).
//!
//! The crate also holds `kafka-load` ([`kafka`]), the broker's load generator: produce and
//! consume throughput and end-to-end latency through librdkafka. It shares [`cpu`] and [`stats`].

pub mod cpu;
pub mod failover;
pub mod kafka;
pub mod layout;
pub mod options;
pub mod probe;
pub mod stats;
pub mod throughput;

use std::time::Duration;

use anyhow::{Context, Result};
use zookeeper_client::Client;

pub use options::{Mode, Op, Options};

/// Runs what `opts` asks for and returns the process exit code: 0 on success, 1 when the run
/// itself shows a failure (errors in a throughput run, lost writes, a probe that timed out).
pub async fn run(opts: &Options) -> Result<u8> {
    let plan = opts.plan()?;
    match plan.mode {
        Mode::Throughput => throughput::run(&plan).await,
        Mode::Failover => failover::run(&plan).await,
        Mode::Probe => probe::run(&plan).await,
    }
}

/// Opens one session to `hosts`, giving up after `limit` (the client alone would keep retrying
/// until its session timeout, and an unbounded wait is not acceptable in a benchmark script).
pub async fn connect(hosts: &str, session_timeout: Duration, limit: Duration) -> Result<Client> {
    let connecting = Client::connector()
        .with_session_timeout(session_timeout)
        .connect(hosts);
    tokio::time::timeout(limit, connecting)
        .await
        .with_context(|| format!("no session with {hosts} within {limit:?}"))?
        .with_context(|| format!("connect to {hosts}"))
}

/// A short, stable name for a client error, used as a key when errors are counted.
pub fn error_kind(e: &zookeeper_client::Error) -> String {
    if let zookeeper_client::Error::Custom(c) = e {
        // The library's free-text errors (e.g. "no response from connection in 4000ms") say
        // more than their variant name; keep a bounded prefix.
        return format!(
            "Custom({})",
            c.to_string().chars().take(60).collect::<String>()
        );
    }
    let text = format!("{e:?}");
    // Variants with payloads (`UnexpectedErrorCode(-7)`, `Custom(..)`) keep their first token
    // only, so that counts do not split on details.
    text.split(['(', ' ', '{'])
        .next()
        .unwrap_or("unknown")
        .to_string()
}
