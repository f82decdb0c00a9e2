//! `kafka-load`: a Kafka-protocol load generator built on librdkafka (the `rdkafka` crate), for
//! measuring the broker's data path on this machine, with a wire-level mode (`--wire`) that
//! speaks the protocol itself (the `kafka-protocol` crate) at almost no cost per record.
//!
//! - [`options`]: the command line and its bounds (loopback brokers only, bounded runs).
//! - [`produce`]: producer throughput (`BaseProducer`, counted in the delivery callback).
//! - [`consume`]: consumer throughput (`BaseConsumer`, assigned partitions, tight poll loop).
//! - [`latency`]: end-to-end latency at a fixed rate, producer and consumer in one process.
//! - [`topic`]: topic creation through the admin API and waiting for partition leaders.
//! - [`scrape`]: the broker's metrics endpoint scraped as Prometheus does, timed.
//! - [`wire`]: the protocol layer of `--wire` (connection, batch encoding, batch header walking).
//! - [`wire_produce`], [`wire_consume`]: `produce --wire` and `consume --wire`.

pub mod consume;
pub mod latency;
pub mod options;
pub mod produce;
pub mod scrape;
pub mod topic;
pub mod wire;
pub mod wire_consume;
pub mod wire_produce;

use std::time::Duration;

use anyhow::Result;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use serde::Serialize;

use crate::cpu::{CpuUse, Sample};
pub use options::{Command, KafkaOptions};

/// Runs the subcommand and returns the exit code (0 clean, 1 errors in the run).
pub fn run(opts: &KafkaOptions) -> Result<u8> {
    let target = match &opts.command {
        Command::Produce(a) => Some(&a.target),
        Command::Consume(a) => Some(&a.target),
        Command::Latency(a) => Some(&a.target),
        Command::CreateTopic(a) => Some(&a.target),
        // An HTTP client of the metrics endpoint, no Kafka client.
        Command::Scrape(_) => None,
    };
    if let Some(target) = target {
        let _ = CLIENT_PROPERTIES.set(options::properties(&target.client_property)?);
    }
    match &opts.command {
        Command::Produce(a) => produce::run(a),
        Command::Consume(a) => consume::run(a),
        Command::Latency(a) => latency::run(a),
        Command::CreateTopic(a) => topic::run(a),
        Command::Scrape(a) => scrape::run(a),
    }
}

/// `--client-property` of the run, set once by [`run`] before any client is made.
static CLIENT_PROPERTIES: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

/// Base configuration of every client: the bootstrap servers, a client id, librdkafka's own
/// log lines limited to warnings, and the run's `--client-property` settings (TLS).
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("client.id", "kafka-load")
        .set_log_level(RDKafkaLogLevel::Warning);
    for (k, v) in CLIENT_PROPERTIES.get().map_or(&[][..], Vec::as_slice) {
        c.set(k, v);
    }
    c
}

/// Applies `key=value` properties (already checked) on top of `c`.
pub fn apply(c: &mut ClientConfig, props: &[String]) -> Result<()> {
    for (k, v) in options::properties(props)? {
        c.set(k, v);
    }
    Ok(())
}

/// Records and bytes over a measured interval.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Throughput {
    pub records: u64,
    pub bytes: u64,
    pub elapsed_s: f64,
    pub records_per_s: f64,
    /// 10^6 bytes per second (record values and keys only, no protocol overhead).
    pub mb_per_s: f64,
}

impl Throughput {
    pub fn of(records: u64, bytes: u64, elapsed: Duration) -> Throughput {
        let s = elapsed.as_secs_f64();
        let per_s = |x: u64| if s > 0.0 { x as f64 / s } else { 0.0 };
        Throughput {
            records,
            bytes,
            elapsed_s: s,
            records_per_s: per_s(records),
            mb_per_s: per_s(bytes) / 1e6,
        }
    }

    pub fn human(&self) -> String {
        format!(
            "{} records, {:.1} MB in {:.3} s: {:.0} records/s, {:.1} MB/s",
            self.records,
            self.bytes as f64 / 1e6,
            self.elapsed_s,
            self.records_per_s,
            self.mb_per_s
        )
    }
}

/// CPU use over a window: this process and the `--cpu-pids`.
#[derive(Debug)]
pub struct CpuWindow {
    pids: Vec<u32>,
    start: Sample,
}

impl CpuWindow {
    pub fn start(pids: &[u32]) -> CpuWindow {
        CpuWindow {
            pids: pids.to_vec(),
            start: Sample::take(pids),
        }
    }

    pub fn stop(&self) -> CpuUse {
        Sample::take(&self.pids).since(&self.start)
    }
}

/// Runs `work(part, ready)` for each of `parts` on its own thread. Every thread calls
/// `ready.wait()` once connected; the CPU window starts when all have. Returns the results in
/// `parts` order (a panicked thread as an error) and the CPU used meanwhile.
pub fn run_producers<P: Sync, T: Send>(
    parts: &[P],
    cpu_pids: &[u32],
    work: impl Fn(&P, &std::sync::Barrier) -> Result<T> + Sync,
) -> (Result<Vec<T>>, CpuUse) {
    let ready = std::sync::Barrier::new(parts.len() + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .iter()
            .map(|part| {
                let (work, ready) = (&work, &ready);
                scope.spawn(move || work(part, ready))
            })
            .collect();
        ready.wait();
        let cpu = CpuWindow::start(cpu_pids);
        let results = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a producer thread panicked")))
            })
            .collect();
        (results, cpu.stop())
    })
}

/// One line describing CPU use in cores over `window_s`.
pub fn human_cpu(cpu: &CpuUse, window_s: f64) -> String {
    let cores = |s: f64| if window_s > 0.0 { s / window_s } else { 0.0 };
    let mut parts = Vec::new();
    if let Some(c) = cpu.client_s {
        parts.push(format!("kafka-load {c:.2} s ({:.2} cores)", cores(c)));
    }
    for (pid, s) in &cpu.servers_s {
        parts.push(format!("pid {pid} {s:.2} s ({:.2} cores)", cores(*s)));
    }
    parts.join(", ")
}

/// Prints the summary on stderr and the report as one JSON line on stdout.
pub fn emit<R: Serialize>(human: &str, report: &R) -> Result<()> {
    eprintln!("{human}");
    println!("{}", serde_json::to_string(report)?);
    Ok(())
}

/// Record values: one buffer of `size + VARIANTS` bytes of a fixed pattern, from which record `i`
/// takes the `size` bytes starting at `i % VARIANTS`, so consecutive records differ (a constant
/// payload would flatter compression) without building a buffer per record.
#[derive(Debug, Clone)]
pub struct Payloads {
    buf: Vec<u8>,
    size: usize,
}

impl Payloads {
    const VARIANTS: usize = 64;

    pub fn new(size: usize) -> Payloads {
        let buf = (0..size + Self::VARIANTS)
            .map(|i| (i.wrapping_mul(31).wrapping_add(7) % 251) as u8)
            .collect();
        Payloads { buf, size }
    }

    pub fn get(&self, i: u64) -> &[u8] {
        let at = (i % Self::VARIANTS as u64) as usize;
        &self.buf[at..at + self.size]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throughput_rates() {
        let t = Throughput::of(1_000_000, 100_000_000, Duration::from_millis(500));
        assert_eq!(t.records_per_s, 2_000_000.0);
        assert_eq!(t.mb_per_s, 200.0);
        assert_eq!(Throughput::of(5, 5, Duration::ZERO).records_per_s, 0.0);
    }

    #[test]
    fn payloads_have_the_size_and_differ() {
        let p = Payloads::new(100);
        assert_eq!(p.get(0).len(), 100);
        assert_eq!(p.get(12345).len(), 100);
        assert_ne!(p.get(0), p.get(1));
        assert_eq!(p.get(3), p.get(3 + 64));
        assert!(Payloads::new(0).get(7).is_empty());
    }
}
