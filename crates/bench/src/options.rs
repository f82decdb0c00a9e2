//! The command line of `coord-load` and the checked [`Plan`] derived from it.
//!
//! The tool is meant for side-by-side measurements on one machine, so it refuses anything that
//! could turn it into a load source against someone else's servers: every host must be a loopback
//! address, and every run is bounded in time and in request count.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{bail, ensure, Result};
use clap::{Parser, ValueEnum};

/// Longest run accepted (seconds), warmup included.
pub const MAX_SECS: f64 = 600.0;
/// Most requests one run may issue with `--count`.
pub const MAX_COUNT: u64 = 10_000_000;
const MAX_SESSIONS: usize = 64;
const MAX_IN_FLIGHT: usize = 1024;
const MAX_SIZE: usize = 1 << 20;
/// Run length when neither `--duration` nor `--count` is given.
const DEFAULT_SECS: f64 = 10.0;

/// Which request a throughput run issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A new persistent znode per request (`create`).
    Create,
    /// `setData` on a znode owned by the issuing worker.
    Set,
    /// `getData` on a znode owned by the issuing worker.
    Get,
    /// 90 % `getData`, 10 % `setData` on the same znodes: a read-dominated coordination load.
    Mixed,
}

/// ZooKeeper-protocol load generator for loopback ensembles (coord or ZooKeeper).
///
/// Throughput mode runs `--sessions` sessions with `--in-flight` requests outstanding on each
/// (closed loop: a worker issues its next request when the previous one is answered) and prints
/// ops/s and latency percentiles, human-readable and as one JSON line. Sessions are spread
/// round-robin over the hosts of `--hosts`, one host each, so that every run loads the servers
/// the same way.
#[derive(Parser, Debug, Clone)]
#[command(name = "coord-load", version)]
pub struct Options {
    /// ZooKeeper connect string: loopback `host:port` pairs separated by commas.
    #[arg(long, default_value = "127.0.0.1:2181")]
    pub hosts: String,
    /// Number of ZooKeeper sessions (each one TCP connection).
    #[arg(long, default_value_t = 4)]
    pub sessions: usize,
    /// Requests outstanding per session.
    #[arg(long = "in-flight", default_value_t = 64)]
    pub in_flight: usize,
    /// Request type of a throughput run.
    #[arg(long, value_enum, default_value_t = Op::Create)]
    pub op: Op,
    /// Data bytes per znode written.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Measured seconds (after the warmup). Default 10 unless --count is given.
    #[arg(long, conflicts_with = "count")]
    pub duration: Option<f64>,
    /// Measured requests (after the warmup) instead of a duration.
    #[arg(long)]
    pub count: Option<u64>,
    /// Parent znode of everything the run creates (created if missing).
    #[arg(long, default_value = "/coord-load")]
    pub path: String,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Failover mode: keep creating znodes (every session may use every host), report the
    /// longest interval between two acknowledged writes, then check that every acknowledged
    /// write exists. Kill the leader while it runs.
    #[arg(long, conflicts_with_all = ["probe", "op"])]
    pub failover: bool,
    /// Probe mode: connect to --hosts and read --path until that succeeds (one attempt every
    /// 10 ms, at most --duration seconds, default 60); prints the time it took.
    #[arg(long, conflicts_with_all = ["op", "count", "warmup"])]
    pub probe: bool,
    /// Session timeout to negotiate, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub session_timeout: f64,
    /// A request not answered within this many seconds counts as an error.
    #[arg(long, default_value_t = 30.0)]
    pub request_timeout: f64,
    /// Also report the CPU time these local processes (the servers) used during the measured
    /// window, from /proc/PID/stat; comma-separated PIDs. Throughput mode only.
    #[arg(long, value_delimiter = ',')]
    pub cpu_pids: Vec<u32>,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = self.to_possible_value().expect("no skipped variants");
        f.write_str(v.get_name())
    }
}

/// What kind of run a [`Plan`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Throughput,
    Failover,
    Probe,
}

/// When the measured part of a run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    After(Duration),
    Count(u64),
}

/// Checked options: every bound holds and the hosts are split.
#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: Mode,
    pub hosts: Vec<String>,
    pub sessions: usize,
    pub in_flight: usize,
    pub op: Op,
    pub size: usize,
    pub stop: Stop,
    pub warmup: Duration,
    pub path: String,
    pub session_timeout: Duration,
    pub request_timeout: Duration,
    pub cpu_pids: Vec<u32>,
}

impl Plan {
    /// The whole connect string, for sessions that may move between hosts.
    pub fn all_hosts(&self) -> String {
        self.hosts.join(",")
    }

    /// The single host that throughput session `i` uses (round-robin).
    pub fn host_for(&self, i: usize) -> &str {
        &self.hosts[i % self.hosts.len()]
    }

    /// The connect string of failover session `i`: every host, starting at a different one per
    /// session (the client shuffles the list anyway; this only documents the intent).
    pub fn rotated_hosts(&self, i: usize) -> String {
        let n = self.hosts.len();
        (0..n)
            .map(|k| self.hosts[(i + k) % n].as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn workers(&self) -> usize {
        self.sessions * self.in_flight
    }
}

fn secs(what: &str, v: f64) -> Result<Duration> {
    ensure!(
        v.is_finite() && (0.0..=MAX_SECS).contains(&v),
        "{what} must be between 0 and {MAX_SECS} seconds, not {v}"
    );
    Ok(Duration::from_secs_f64(v))
}

impl Options {
    /// Validates the options and derives the plan.
    pub fn plan(&self) -> Result<Plan> {
        let mode = if self.failover {
            Mode::Failover
        } else if self.probe {
            Mode::Probe
        } else {
            Mode::Throughput
        };
        let hosts = parse_hosts(&self.hosts)?;
        ensure!(
            (1..=MAX_SESSIONS).contains(&self.sessions),
            "--sessions must be 1..={MAX_SESSIONS}"
        );
        ensure!(
            (1..=MAX_IN_FLIGHT).contains(&self.in_flight),
            "--in-flight must be 1..={MAX_IN_FLIGHT}"
        );
        ensure!(self.size <= MAX_SIZE, "--size must be at most {MAX_SIZE}");
        ensure!(
            self.path.starts_with('/') && self.path.len() > 1 && !self.path.ends_with('/'),
            "--path must be an absolute znode path other than /, without a trailing slash"
        );
        let warmup = secs("--warmup", self.warmup)?;
        let stop = match (self.duration, self.count) {
            (_, Some(n)) => {
                ensure!(
                    (1..=MAX_COUNT).contains(&n),
                    "--count must be 1..={MAX_COUNT}"
                );
                Stop::Count(n)
            }
            (Some(d), None) => Stop::After(secs("--duration", d)?),
            (None, None) if mode == Mode::Probe => Stop::After(Duration::from_secs(60)),
            (None, None) => Stop::After(Duration::from_secs_f64(DEFAULT_SECS)),
        };
        if let Stop::After(d) = stop {
            ensure!(
                (d + warmup).as_secs_f64() <= MAX_SECS,
                "--warmup plus --duration must be at most {MAX_SECS} seconds"
            );
        }
        let session_timeout = secs("--session-timeout", self.session_timeout)?;
        let request_timeout = secs("--request-timeout", self.request_timeout)?;
        ensure!(
            session_timeout >= Duration::from_secs(1) && request_timeout >= Duration::from_secs(1),
            "--session-timeout and --request-timeout must be at least 1 second"
        );
        Ok(Plan {
            mode,
            hosts,
            sessions: self.sessions,
            in_flight: self.in_flight,
            op: self.op,
            size: self.size,
            stop,
            warmup,
            path: self.path.clone(),
            session_timeout,
            request_timeout,
            cpu_pids: self.cpu_pids.clone(),
        })
    }
}

/// Splits a connect string into `host:port` entries and checks that every host is loopback.
pub fn parse_hosts(s: &str) -> Result<Vec<String>> {
    if s.contains('/') {
        bail!("--hosts must not carry a chroot; use --path instead");
    }
    let mut out = Vec::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (host, port) = entry
            .rsplit_once(':')
            .ok_or_else(|| anyhow::anyhow!("{entry:?} is not host:port"))?;
        port.parse::<u16>()
            .map_err(|_| anyhow::anyhow!("{entry:?}: bad port"))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = bare.eq_ignore_ascii_case("localhost")
            || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        ensure!(
            loopback,
            "{entry:?} is not a loopback address: coord-load only targets servers on this machine"
        );
        out.push(entry.to_string());
    }
    ensure!(!out.is_empty(), "--hosts names no server");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Plan> {
        let mut v = vec!["coord-load"];
        v.extend_from_slice(args);
        Options::try_parse_from(v)?.plan()
    }

    #[test]
    fn defaults_follow_the_brief() {
        let p = parse(&[]).unwrap();
        assert_eq!(p.mode, Mode::Throughput);
        assert_eq!((p.sessions, p.in_flight, p.size), (4, 64, 100));
        assert_eq!(p.op, Op::Create);
        assert_eq!(p.stop, Stop::After(Duration::from_secs(10)));
        assert_eq!(p.hosts, vec!["127.0.0.1:2181"]);
    }

    #[test]
    fn only_loopback_hosts_are_accepted() {
        assert!(parse(&["--hosts", "127.0.0.1:1,localhost:2,[::1]:3"]).is_ok());
        assert!(parse(&["--hosts", "10.0.0.1:2181"]).is_err());
        assert!(parse(&["--hosts", "example.com:2181"]).is_err());
        assert!(parse(&["--hosts", "127.0.0.1:2181/chroot"]).is_err());
        assert!(parse(&["--hosts", "127.0.0.1"]).is_err());
    }

    #[test]
    fn runs_are_bounded() {
        assert!(parse(&["--duration", "601"]).is_err());
        assert!(parse(&["--duration", "500", "--warmup", "200"]).is_err());
        assert!(parse(&["--count", "0"]).is_err());
        assert!(parse(&["--count", "10000001"]).is_err());
        assert!(parse(&["--duration", "1", "--count", "5"]).is_err());
        assert!(parse(&["--sessions", "0"]).is_err());
        assert!(parse(&["--in-flight", "5000"]).is_err());
        assert_eq!(
            parse(&["--count", "100000"]).unwrap().stop,
            Stop::Count(100_000)
        );
    }

    #[test]
    fn sessions_spread_round_robin() {
        let p = parse(&["--hosts", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"]).unwrap();
        let hosts: Vec<_> = (0..4).map(|i| p.host_for(i)).collect();
        assert_eq!(
            hosts,
            ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:1"]
        );
        assert_eq!(p.rotated_hosts(1), "127.0.0.1:2,127.0.0.1:3,127.0.0.1:1");
    }

    #[test]
    fn modes() {
        assert_eq!(parse(&["--failover"]).unwrap().mode, Mode::Failover);
        let probe = parse(&["--probe"]).unwrap();
        assert_eq!(probe.mode, Mode::Probe);
        assert_eq!(probe.stop, Stop::After(Duration::from_secs(60)));
        assert!(parse(&["--failover", "--op", "get"]).is_err());
        assert!(parse(&["--path", "relative"]).is_err());
        assert!(parse(&["--path", "/"]).is_err());
    }
}
