//! Failover runs: keep creating znodes while the operator (the benchmark script) kills the
//! leader, then report the longest stretch without an acknowledged write and check that every
//! acknowledged write survived.
//!
//! Only acknowledged writes are promised: a create that failed with *connection loss* may or may
//! not have been applied, so its name is never reused (the next request takes the next sequence
//! number) and it is neither lost nor counted. Every session is given every host, so a session
//! whose server dies moves to another one, as a real client would.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use tokio::task::JoinSet;
use zookeeper_client::Client;

use crate::layout::Layout;
use crate::options::{Plan, Stop};
use crate::stats::{self, Errors, Latency};
use crate::throughput::{self, CONNECT_LIMIT, CREATE};
use crate::{connect, error_kind};

/// Pause after a failed write. Short, because it bounds how precisely the end of an outage is
/// seen; non-zero, so a server that rejects everything does not get hammered in a busy loop.
const ERROR_PAUSE: Duration = Duration::from_millis(5);
/// How often the final check retries a directory whose read failed (the ensemble may still be
/// settling right after the kill), and how long it waits between tries.
const VERIFY_TRIES: u32 = 50;
const VERIFY_PAUSE: Duration = Duration::from_millis(200);

#[derive(Debug)]
struct Acked {
    dir: String,
    seqs: Vec<u64>,
    times: Vec<Instant>,
    errors: Errors,
    hist: hdrhistogram::Histogram<u64>,
}

/// The JSON line of a failover run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub hosts: String,
    pub sessions: usize,
    pub in_flight: usize,
    pub size: usize,
    pub elapsed_s: f64,
    /// Acknowledged creates.
    pub acked: u64,
    /// Longest interval without an acknowledgement (milliseconds) and when it began (seconds
    /// after the start of the run).
    pub max_gap_ms: f64,
    pub gap_at_s: f64,
    /// The three longest gaps as `[start s, length ms]`, longest first.
    pub top_gaps: Vec<[f64; 2]>,
    /// Acknowledged creates that the check did not find.
    pub lost: u64,
    /// Creates that were applied although the client saw them fail (harmless, informational).
    pub applied_unacked: u64,
    #[serde(flatten)]
    pub latency: Latency,
    pub errors: Errors,
}

impl Report {
    pub fn human(&self) -> String {
        format!(
            "coord-load failover on {}, {} sessions x {} in flight, {}-byte znodes, {:.1} s\n  \
             acknowledged writes {}, errors: {}\n  \
             longest gap between acknowledged writes {:.1} ms (starting {:.2} s into the run)\n  \
             three longest gaps {}\n  \
             lost acknowledged writes {} (applied but unacknowledged {})\n  latency {}",
            self.hosts,
            self.sessions,
            self.in_flight,
            self.size,
            self.elapsed_s,
            self.acked,
            stats::human_errors(&self.errors),
            self.max_gap_ms,
            self.gap_at_s,
            self.top_gaps
                .iter()
                .map(|[at, ms]| format!("{ms:.1} ms at {at:.2} s"))
                .collect::<Vec<_>>()
                .join(", "),
            self.lost,
            self.applied_unacked,
            self.latency.human()
        )
    }
}

pub async fn run(plan: &Plan) -> Result<u8> {
    let report = measure(plan).await?;
    println!("{}", report.human());
    println!("{}", serde_json::to_string(&report)?);
    Ok(if report.lost == 0 && report.acked > 0 {
        0
    } else {
        1
    })
}

pub async fn measure(plan: &Plan) -> Result<Report> {
    let layout = Layout::new(&plan.path);
    let data = throughput::payload(plan.size);
    let mut clients = Vec::with_capacity(plan.sessions);
    for s in 0..plan.sessions {
        clients.push(connect(&plan.rotated_hosts(s), plan.session_timeout, CONNECT_LIMIT).await?);
    }
    throughput::prepare(plan, &layout, &clients, &data).await?;

    // The benchmark script waits for this line before it starts the clock towards the kill, so
    // that connection setup (slow on a loaded JVM) does not shift the kill out of the run.
    eprintln!("coord-load failover: writing");
    let start = Instant::now();
    let (end, limit) = match plan.stop {
        Stop::After(d) => (Some(start + d), None),
        Stop::Count(n) => (None, Some(n)),
    };
    let tickets = Arc::new(AtomicU64::new(0));
    let mut workers = JoinSet::new();
    for (s, client) in clients.iter().enumerate() {
        for slot in 0..plan.in_flight {
            let client = client.clone();
            let dir = layout.worker_dir(s, slot);
            let data = data.clone();
            let tickets = tickets.clone();
            let request_timeout = plan.request_timeout;
            workers.spawn(async move {
                let mut a = Acked {
                    dir,
                    seqs: Vec::new(),
                    times: Vec::new(),
                    errors: Errors::new(),
                    hist: stats::new_histogram(),
                };
                let mut seq = 0u64;
                loop {
                    if end.is_some_and(|e| Instant::now() >= e) {
                        break;
                    }
                    if limit.is_some_and(|n| tickets.fetch_add(1, Ordering::Relaxed) >= n) {
                        break;
                    }
                    let path = format!("{}/{}", a.dir, Layout::created_name(seq));
                    let started = Instant::now();
                    let r =
                        tokio::time::timeout(request_timeout, client.create(&path, &data, &CREATE))
                            .await;
                    let done = Instant::now();
                    match r {
                        Ok(Ok(_)) => {
                            a.seqs.push(seq);
                            a.times.push(done);
                            stats::record(&mut a.hist, done - started);
                        }
                        Ok(Err(e)) => {
                            *a.errors.entry(error_kind(&e)).or_default() += 1;
                            tokio::time::sleep(ERROR_PAUSE).await;
                        }
                        Err(_) => {
                            *a.errors.entry("RequestTimeout".into()).or_default() += 1;
                        }
                    }
                    seq += 1;
                }
                a
            });
        }
    }
    let mut results = Vec::new();
    while let Some(r) = workers.join_next().await {
        results.push(r.context("worker task failed")?);
    }
    let stopped = end.unwrap_or_else(Instant::now);

    let mut times: Vec<Instant> = results.iter().flat_map(|a| a.times.clone()).collect();
    let gaps = stats::longest_gaps(&mut times, start, stopped, 3);
    let gap = gaps.first().copied();
    let mut hist = stats::new_histogram();
    let mut errors = Errors::new();
    for a in &results {
        hist.add(&a.hist).context("merge histograms")?;
        stats::merge_errors(&mut errors, a.errors.clone());
    }

    // A fresh session for the check, so that it does not depend on the state of the sessions
    // that lived through the kill.
    let checker = connect(&plan.all_hosts(), plan.session_timeout, CONNECT_LIMIT).await?;
    let mut lost = 0;
    let mut applied_unacked = 0;
    for a in &results {
        let present = list_synced(&checker, &a.dir).await?;
        let acked: HashSet<String> = a.seqs.iter().map(|&s| Layout::created_name(s)).collect();
        lost += acked.iter().filter(|n| !present.contains(*n)).count() as u64;
        applied_unacked += present.iter().filter(|n| !acked.contains(*n)).count() as u64;
    }
    Ok(Report {
        mode: "failover",
        hosts: plan.all_hosts(),
        sessions: plan.sessions,
        in_flight: plan.in_flight,
        size: plan.size,
        elapsed_s: (stopped - start).as_secs_f64(),
        acked: times.len() as u64,
        max_gap_ms: gap.map_or(f64::INFINITY, |g| g.length.as_secs_f64() * 1000.0),
        gap_at_s: gap.map_or(0.0, |g| g.starts_at.as_secs_f64()),
        top_gaps: gaps
            .iter()
            .map(|g| [g.starts_at.as_secs_f64(), g.length.as_secs_f64() * 1000.0])
            .collect(),
        lost,
        applied_unacked,
        latency: Latency::of(&hist),
        errors,
    })
}

/// Lists `dir` after a `sync`, so that a lagging follower cannot make an acknowledged write look
/// lost; retries while the ensemble settles.
async fn list_synced(client: &Client, dir: &str) -> Result<HashSet<String>> {
    let mut last = None;
    for _ in 0..VERIFY_TRIES {
        let attempt = async {
            client.sync(dir).await?;
            client.list_children(dir).await
        };
        match tokio::time::timeout(Duration::from_secs(10), attempt).await {
            Ok(Ok(children)) => return Ok(children.into_iter().collect()),
            Ok(Err(e)) => last = Some(e.to_string()),
            Err(_) => last = Some("timed out".into()),
        }
        tokio::time::sleep(VERIFY_PAUSE).await;
    }
    bail!(
        "could not list {dir} for the check: {}",
        last.unwrap_or_default()
    )
}
