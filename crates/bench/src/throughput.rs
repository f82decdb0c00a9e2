//! Closed-loop throughput runs: `sessions × in_flight` workers, each with exactly one request
//! outstanding, so the offered concurrency is fixed and the servers' speed decides the rate.
//!
//! A request counts when it completes inside the measured window (duration runs) or was issued
//! after the warmup (count runs); its latency is the time from handing it to the client library
//! to receiving the answer, so client-side queueing in the shared 2-core machine is included for
//! both systems alike.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::task::JoinSet;
use zookeeper_client::{Acls, Client, CreateMode, CreateOptions};

use crate::cpu::{CpuUse, Sample};
use crate::layout::Layout;
use crate::options::{Op, Plan, Stop};
use crate::stats::{self, Errors, Latency};
use crate::{connect, error_kind};

/// Options of every znode the tool creates: persistent, open ACL (as most benchmarks and
/// Kafka-era tools create them).
pub const CREATE: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());

/// How long opening one session may take before the run is abandoned.
pub const CONNECT_LIMIT: Duration = Duration::from_secs(15);

/// Pause after a failed request, so that a server answering every request with an error does
/// not turn a worker into a busy loop that starves the servers sharing the machine.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Payload of every write: `size` bytes of a fixed, non-repeating-looking pattern (neither
/// system compresses, but a constant byte would flatter any that did).
pub fn payload(size: usize) -> Arc<[u8]> {
    (0..size)
        .map(|i| (i.wrapping_mul(31).wrapping_add(7) % 251) as u8)
        .collect()
}

/// The measured window shared by all workers.
#[derive(Debug, Clone)]
struct Window {
    measure_start: Instant,
    end: Option<Instant>,
    count: Option<u64>,
    /// Requests issued in the measured phase (count runs stop at `count`).
    tickets: Arc<AtomicU64>,
}

#[derive(Debug)]
struct Worker {
    client: Client,
    op: Op,
    dir: String,
    key: String,
    data: Arc<[u8]>,
    request_timeout: Duration,
}

#[derive(Debug)]
struct WorkerResult {
    hist: Histogram<u64>,
    ops: u64,
    errors: Errors,
    last_done: Option<Instant>,
}

/// One throughput run's result: the JSON line scripts read.
#[derive(Debug, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub op: Op,
    pub hosts: String,
    pub sessions: usize,
    pub in_flight: usize,
    pub size: usize,
    pub warmup_s: f64,
    pub elapsed_s: f64,
    pub ops: u64,
    pub ops_per_s: f64,
    #[serde(flatten)]
    pub latency: Latency,
    pub errors: Errors,
    /// CPU seconds used in the measured window (duration runs only).
    pub cpu: Option<CpuUse>,
}

impl Report {
    pub fn human(&self) -> String {
        format!(
            "coord-load: {} on {}, {} sessions x {} in flight, {}-byte znodes\n  \
             measured {:.2} s after {:.1} s warmup: {} ops, errors: {}\n  \
             throughput {:.0} ops/s\n  latency    {}{}",
            self.op,
            self.hosts,
            self.sessions,
            self.in_flight,
            self.size,
            self.elapsed_s,
            self.warmup_s,
            self.ops,
            stats::human_errors(&self.errors),
            self.ops_per_s,
            self.latency.human(),
            self.cpu
                .as_ref()
                .map(|c| format!("\n  cpu        {}", c.human(self.elapsed_s)))
                .unwrap_or_default()
        )
    }
}

pub async fn run(plan: &Plan) -> Result<u8> {
    let report = measure(plan).await?;
    println!("{}", report.human());
    println!("{}", serde_json::to_string(&report)?);
    Ok(if report.errors.is_empty() && report.ops > 0 {
        0
    } else {
        1
    })
}

/// Runs the workload of `plan` and returns its report (no printing).
pub async fn measure(plan: &Plan) -> Result<Report> {
    let layout = Layout::new(&plan.path);
    let data = payload(plan.size);
    let mut clients = Vec::with_capacity(plan.sessions);
    for s in 0..plan.sessions {
        clients.push(connect(plan.host_for(s), plan.session_timeout, CONNECT_LIMIT).await?);
    }
    prepare(plan, &layout, &clients, &data).await?;

    let start = Instant::now();
    let measure_start = start + plan.warmup;
    let window = Window {
        measure_start,
        end: match plan.stop {
            Stop::After(d) => Some(measure_start + d),
            Stop::Count(_) => None,
        },
        count: match plan.stop {
            Stop::Count(n) => Some(n),
            Stop::After(_) => None,
        },
        tickets: Arc::new(AtomicU64::new(0)),
    };
    let mut workers = JoinSet::new();
    for (s, client) in clients.iter().enumerate() {
        for slot in 0..plan.in_flight {
            let w = Worker {
                client: client.clone(),
                op: plan.op,
                dir: layout.worker_dir(s, slot),
                key: layout.key(s, slot),
                data: data.clone(),
                request_timeout: plan.request_timeout,
            };
            workers.spawn(work(w, window.clone()));
        }
    }
    // CPU samples at the window's edges, taken by a task of their own so that no worker is
    // delayed; count runs have no fixed end and get none.
    let cpu = window.end.map(|end| {
        let pids = plan.cpu_pids.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_start.into()).await;
            let first = Sample::take(&pids);
            tokio::time::sleep_until(end.into()).await;
            Sample::take(&pids).since(&first)
        })
    });
    let mut hist = stats::new_histogram();
    let mut ops = 0;
    let mut errors = Errors::new();
    let mut last_done = None::<Instant>;
    while let Some(r) = workers.join_next().await {
        let r = r.context("worker task failed")?;
        hist.add(&r.hist).context("merge histograms")?;
        ops += r.ops;
        stats::merge_errors(&mut errors, r.errors);
        last_done = last_done.max(r.last_done);
    }
    let elapsed = match window.end {
        Some(end) => end - measure_start,
        None => last_done.map_or(Duration::ZERO, |t| t - measure_start),
    };
    let cpu = match cpu {
        Some(task) => Some(task.await.context("cpu sampling task failed")?),
        None => None,
    };
    let secs = elapsed.as_secs_f64();
    Ok(Report {
        mode: "throughput",
        op: plan.op,
        hosts: plan.all_hosts(),
        sessions: plan.sessions,
        in_flight: plan.in_flight,
        size: plan.size,
        warmup_s: plan.warmup.as_secs_f64(),
        elapsed_s: secs,
        ops,
        ops_per_s: if secs > 0.0 { ops as f64 / secs } else { 0.0 },
        latency: Latency::of(&hist),
        errors,
        cpu,
    })
}

/// Creates the run and worker directories and, for `set`/`get`/`mixed`, each worker's key. Each
/// worker's znodes are created through that worker's own session, so its first read sees them
/// (ZooKeeper's per-session ordering) even when it is served by a follower.
pub async fn prepare(plan: &Plan, layout: &Layout, clients: &[Client], data: &[u8]) -> Result<()> {
    clients[0]
        .mkdir(layout.run_dir(), &CREATE)
        .await
        .with_context(|| format!("create {}", layout.run_dir()))?;
    let needs_key = plan.op != Op::Create;
    let data: Arc<[u8]> = data.into();
    let mut setup = JoinSet::new();
    for (s, client) in clients.iter().enumerate() {
        for slot in 0..plan.in_flight {
            let client = client.clone();
            let dir = layout.worker_dir(s, slot);
            let key = layout.key(s, slot);
            let data = data.clone();
            setup.spawn(async move {
                create_if_missing(&client, &dir, &[]).await?;
                if needs_key {
                    create_if_missing(&client, &key, &data).await?;
                }
                anyhow::Ok(())
            });
        }
    }
    while let Some(r) = setup.join_next().await {
        r.context("setup task failed")??;
    }
    Ok(())
}

async fn create_if_missing(client: &Client, path: &str, data: &[u8]) -> Result<()> {
    match client.create(path, data, &CREATE).await {
        Ok(_) | Err(zookeeper_client::Error::NodeExists) => Ok(()),
        Err(e) => Err(e).with_context(|| format!("create {path}")),
    }
}

async fn work(w: Worker, window: Window) -> WorkerResult {
    let mut res = WorkerResult {
        hist: stats::new_histogram(),
        ops: 0,
        errors: Errors::new(),
        last_done: None,
    };
    let mut seq = 0u64;
    loop {
        let now = Instant::now();
        if window.end.is_some_and(|end| now >= end) {
            break;
        }
        if let Some(limit) = window.count {
            if now >= window.measure_start
                && window.tickets.fetch_add(1, Ordering::Relaxed) >= limit
            {
                break;
            }
        }
        let kind = match w.op {
            // Every tenth request of a mixed worker is a write.
            Op::Mixed if seq.is_multiple_of(10) => Op::Set,
            Op::Mixed => Op::Get,
            op => op,
        };
        let started = Instant::now();
        let result = tokio::time::timeout(w.request_timeout, issue(&w, kind, seq)).await;
        seq += 1;
        let done = Instant::now();
        let counted = match window.end {
            Some(end) => done >= window.measure_start && done <= end,
            None => started >= window.measure_start,
        };
        let failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(error_kind(&e)),
            Err(_) => Some("RequestTimeout".to_string()),
        };
        match failure {
            None if counted => {
                stats::record(&mut res.hist, done - started);
                res.ops += 1;
                res.last_done = Some(done);
            }
            None => {}
            Some(kind) => {
                // Errors count in every phase: a run that saw any is not a clean measurement.
                *res.errors.entry(kind).or_default() += 1;
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
    res
}

async fn issue(w: &Worker, kind: Op, seq: u64) -> Result<(), zookeeper_client::Error> {
    match kind {
        Op::Create => {
            let path = format!("{}/{}", w.dir, Layout::created_name(seq));
            w.client.create(&path, &w.data, &CREATE).await.map(drop)
        }
        Op::Set => w.client.set_data(&w.key, &w.data, None).await.map(drop),
        Op::Get | Op::Mixed => w.client.get_data(&w.key).await.map(drop),
    }
}
