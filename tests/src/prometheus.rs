//! A real Prometheus server (Debian's `prometheus`) scraping the daemons a test runs, and its
//! HTTP API, so that metrics are checked the way an operator's monitoring reads them: through
//! scrapes, PromQL and alert rules.
//!
//! ```text
//!  test ── Prometheus::start(jobs, rules) ─► prometheus --config.file (scrape every 1 s)
//!       ── query("sum(kafka_…)") ─────────► GET /api/v1/query ─► [(labels, value)]
//!       ── alerts() ─────────────────────► GET /api/v1/alerts
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One sample of an instant vector: its labels and value.
pub type Sample = (BTreeMap<String, String>, f64);

/// A Prometheus server on a loopback port, stopped when dropped.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Prometheus {
    /// Starts Prometheus scraping each job's targets (`host:port`) every second, evaluating
    /// `rules` (rule files) every second.
    pub fn start(jobs: &[(&str, Vec<String>)], rules: &[&Path]) -> Prometheus {
        let binary = Path::new("/usr/bin/prometheus");
        assert!(
            binary.exists(),
            "/usr/bin/prometheus is missing: run scripts/setup.sh (Debian's prometheus package)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n",
        );
        if !rules.is_empty() {
            config.push_str("rule_files:\n");
            for r in rules {
                config.push_str(&format!("  - {}\n", r.display()));
            }
        }
        config.push_str("scrape_configs:\n");
        for (job, targets) in jobs {
            let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
                list.join(", ")
            ));
        }
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("prometheus.yml");
        let port = crate::free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let p = Prometheus { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while p.get("/-/ready").map(|(s, _)| s) != Some(200) {
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within 60 s:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET path` (HTTP/1.0, so the answer is not chunked): status and body.
    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).ok()?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
    }

    /// The `data` of a successful API answer.
    fn api(&self, path: &str) -> serde_json::Value {
        let (status, body) = self
            .get(path)
            .unwrap_or_else(|| panic!("prometheus did not answer {path}"));
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        assert!(
            status == 200 && v["status"] == "success",
            "{path}: {status} {body}"
        );
        v["data"].clone()
    }

    /// An instant query's samples.
    pub fn query(&self, promql: &str) -> Vec<Sample> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(promql)));
        data["result"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|s| {
                        let labels = s["metric"]
                            .as_object()
                            .map(|m| {
                                m.iter()
                                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").into()))
                                    .collect()
                            })
                            .unwrap_or_default();
                        let value = s["value"][1]
                            .as_str()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(f64::NAN);
                        (labels, value)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The single value of `promql` (a sum, say), if it has exactly one sample.
    pub fn value(&self, promql: &str) -> Option<f64> {
        let r = self.query(promql);
        (r.len() == 1).then(|| r[0].1)
    }

    /// Waits up to `timeout` until `ok(samples)` holds for `promql`; panics with the last
    /// samples otherwise. Returns how long it took.
    pub fn wait_for(
        &self,
        promql: &str,
        timeout: Duration,
        ok: impl Fn(&[Sample]) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let r = self.query(promql);
            if ok(&r) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < timeout,
                "{promql}: not as expected within {timeout:?}; last: {r:?}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Every scrape target's job, instance and health (`up`, `down`, `unknown`).
    pub fn targets(&self) -> Vec<(String, String, String)> {
        let data = self.api("/api/v1/targets");
        data["activeTargets"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| {
                        (
                            t["labels"]["job"].as_str().unwrap_or("").to_string(),
                            t["labels"]["instance"].as_str().unwrap_or("").to_string(),
                            t["health"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The alerts pending or firing: name and state.
    pub fn alerts(&self) -> Vec<(String, String)> {
        let data = self.api("/api/v1/alerts");
        data["alerts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        (
                            x["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                            x["state"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encoding of a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Checks rule files with `promtool check rules`; its output on failure.
pub fn check_rules(path: &Path) -> Result<String, String> {
    promtool(&["check", "rules"], path, None)
}

/// Runs the rule unit tests of `path` with `promtool test rules` (from the file's directory,
/// where its `rule_files` are found); its output on failure.
pub fn test_rules(path: &Path) -> Result<String, String> {
    let dir = path.parent().expect("a directory");
    promtool(
        &["test", "rules"],
        Path::new(path.file_name().expect("a file")),
        Some(dir),
    )
}

/// `promtool ARGS FILE` (in `dir` if given): its output, `Err` when it failed.
fn promtool(args: &[&str], file: &Path, dir: Option<&Path>) -> Result<String, String> {
    let mut cmd = Command::new("promtool");
    cmd.args(args).arg(file);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let out = cmd
        .output()
        .expect("promtool (Debian's prometheus package; scripts/setup.sh installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(said)
    } else {
        Err(said)
    }
}
