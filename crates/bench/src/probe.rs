//! Probe mode: how long until a (re)starting server answers a read.
//!
//! Each attempt opens a new session with `fail_eagerly` (one pass over the hosts, no client-side
//! backoff) and reads `--path`; attempts follow each other every 10 ms. The client library's own
//! reconnect backoff grows exponentially, which would blur a measurement meant to be precise to
//! a few tens of milliseconds.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use serde::Serialize;
use zookeeper_client::Client;

use crate::options::{Plan, Stop};

const ATTEMPT_EVERY: Duration = Duration::from_millis(10);
/// Bound on one attempt (connect plus read): a server that accepts the connection but does not
/// answer yet must not stall the probe.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub hosts: String,
    pub path: String,
    pub ready: bool,
    /// From the probe's start until the first successful read.
    pub ready_ms: f64,
    pub attempts: u64,
    pub last_error: Option<String>,
}

pub async fn run(plan: &Plan) -> Result<u8> {
    let report = wait_readable(plan).await;
    if report.ready {
        println!(
            "coord-load probe: {} answered a read of {} after {:.1} ms ({} attempts)",
            report.hosts, report.path, report.ready_ms, report.attempts
        );
    } else {
        println!(
            "coord-load probe: {} did not answer a read of {} within {:.1} ms ({} attempts, last error: {})",
            report.hosts,
            report.path,
            report.ready_ms,
            report.attempts,
            report.last_error.as_deref().unwrap_or("none")
        );
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(if report.ready { 0 } else { 1 })
}

pub async fn wait_readable(plan: &Plan) -> Report {
    let start = Instant::now();
    let limit = match plan.stop {
        Stop::After(d) => d,
        Stop::Count(_) => Duration::from_secs(60),
    };
    let hosts = plan.all_hosts();
    let mut attempts = 0;
    let mut last_error = None;
    loop {
        attempts += 1;
        match tokio::time::timeout(ATTEMPT_LIMIT, attempt(&hosts, &plan.path, plan)).await {
            Ok(Ok(())) => {
                return Report {
                    mode: "probe",
                    hosts,
                    path: plan.path.clone(),
                    ready: true,
                    ready_ms: start.elapsed().as_secs_f64() * 1000.0,
                    attempts,
                    last_error,
                }
            }
            Ok(Err(e)) => last_error = Some(format!("{e:#}")),
            Err(_) => last_error = Some("attempt timed out".into()),
        }
        if start.elapsed() >= limit {
            return Report {
                mode: "probe",
                hosts,
                path: plan.path.clone(),
                ready: false,
                ready_ms: start.elapsed().as_secs_f64() * 1000.0,
                attempts,
                last_error,
            };
        }
        tokio::time::sleep(ATTEMPT_EVERY).await;
    }
}

async fn attempt(hosts: &str, path: &str, plan: &Plan) -> Result<()> {
    let client = Client::connector()
        .with_session_timeout(plan.session_timeout)
        .with_connection_timeout(ATTEMPT_LIMIT)
        .with_fail_eagerly()
        .connect(hosts)
        .await
        .map_err(|e| anyhow!("connect: {e}"))?;
    client
        .get_data(path)
        .await
        .map_err(|e| anyhow!("read {path}: {e}"))?;
    Ok(())
}
