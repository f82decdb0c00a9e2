//! `kafka-load scrape`: a Prometheus-like scraper of a broker's metrics endpoint, timing each
//! `GET /metrics` from the request to the last byte of the answer.
//!
//! ```text
//!  one keep-alive connection (as Prometheus keeps one) ─► GET /metrics ─► head, Content-Length
//!  bytes of body ─► latency into a histogram ─► sleep until the next --interval-ms tick
//!  report: scrapes, p50/p99/max, body size and samples of the last answer, errors, and the
//!          --cpu-pids' CPU time per scrape
//! ```
//!
//! With `--interval-ms 1000` and `--duration` it is the "scraped once a second" load of the
//! cost measurement (scripts/bench-broker.sh, phase `metrics`); with `--interval-ms 0` it
//! measures scrape latency back to back.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;

use super::options::ScrapeArgs;
use super::{emit, human_cpu, CpuWindow};
use crate::cpu::CpuUse;
use crate::stats::{new_histogram, record, Latency};

/// The largest answer read (a broker with 10,000 partitions answers a few MB).
const MAX_BODY: usize = 256 << 20;

/// What a scrape run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ScrapeReport {
    pub mode: &'static str,
    pub target: String,
    pub scrapes: u64,
    pub errors: u64,
    pub interval_ms: u64,
    pub elapsed_s: f64,
    #[serde(flatten)]
    pub latency: Latency,
    /// Size and sample lines of the last answer.
    pub body_bytes: usize,
    pub samples: usize,
    pub cpu: CpuUse,
    /// CPU time of the `--cpu-pids` per scrape, in milliseconds.
    pub server_cpu_ms_per_scrape: Option<f64>,
}

pub fn run(a: &ScrapeArgs) -> Result<u8> {
    let (stop, interval) = a.check()?;
    let addr = resolve(&a.target)?;
    let mut conn: Option<Conn> = None;
    let mut hist = new_histogram();
    let (mut scrapes, mut errors) = (0u64, 0u64);
    let (mut body_bytes, mut samples) = (0, 0);
    let start = Instant::now();
    let cpu = CpuWindow::start(&a.cpu_pids);
    let mut next = start;
    loop {
        let done = match stop {
            Stop::Scrapes(n) => scrapes + errors >= n,
            Stop::After(d) => start.elapsed() >= d,
        };
        if done {
            break;
        }
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += interval;
        let t0 = Instant::now();
        let got = match conn.as_mut() {
            Some(c) => c.get(&a.path),
            None => Conn::open(addr).and_then(|c| {
                let c = conn.insert(c);
                c.get(&a.path)
            }),
        };
        match got {
            Ok(body) => {
                record(&mut hist, t0.elapsed());
                scrapes += 1;
                body_bytes = body.len();
                samples = body
                    .lines()
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .count();
            }
            Err(e) => {
                errors += 1;
                conn = None;
                if errors <= 3 {
                    eprintln!("kafka-load scrape: {e:#}");
                }
            }
        }
    }
    let elapsed = start.elapsed();
    let cpu = cpu.stop();
    let server_s: f64 = cpu.servers_s.values().sum();
    let report = ScrapeReport {
        mode: "scrape",
        target: a.target.clone(),
        scrapes,
        errors,
        interval_ms: interval.as_millis() as u64,
        elapsed_s: elapsed.as_secs_f64(),
        latency: Latency::of(&hist),
        body_bytes,
        samples,
        server_cpu_ms_per_scrape: (!cpu.servers_s.is_empty() && scrapes > 0)
            .then(|| server_s * 1000.0 / scrapes as f64),
        cpu,
    };
    let human = format!(
        "{} scrapes of {} ({} samples, {} bytes), {} errors: {}\n{}",
        report.scrapes,
        report.target,
        report.samples,
        report.body_bytes,
        report.errors,
        report.latency.human(),
        human_cpu(&report.cpu, report.elapsed_s)
    );
    emit(&human, &report)?;
    Ok(u8::from(errors > 0))
}

/// When a scrape run ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    Scrapes(u64),
    After(Duration),
}

fn resolve(target: &str) -> Result<SocketAddr> {
    target
        .to_socket_addrs()
        .with_context(|| format!("resolve {target}"))?
        .next()
        .with_context(|| format!("{target}: no address"))
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("connect {addr}"))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Conn {
            reader: BufReader::with_capacity(1 << 16, s),
        })
    }

    /// `GET path`: the body of a 200 answer.
    fn get(&mut self, path: &str) -> Result<String> {
        write!(
            self.reader.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: kafka-load\r\nAccept: text/plain\r\n\r\n"
        )
        .context("send the request")?;
        let mut status = String::new();
        self.reader
            .read_line(&mut status)
            .context("read the status line")?;
        ensure!(
            status.starts_with("HTTP/1.1 200"),
            "answer {:?}",
            status.trim_end()
        );
        let mut length = None;
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).context("read a header")? == 0 {
                bail!("connection closed in the head");
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = Some(v.trim().parse::<usize>().context("Content-Length")?);
                }
            }
        }
        let length = length.context("no Content-Length")?;
        ensure!(length <= MAX_BODY, "answer of {length} bytes");
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body).context("read the body")?;
        String::from_utf8(body).context("the body is not UTF-8")
    }
}
