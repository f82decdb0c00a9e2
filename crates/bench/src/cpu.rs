//! CPU time of local processes, from `/proc/PID/stat`, to show how the shared cores were split
//! between the load generator and the servers during a measured window.

use std::collections::BTreeMap;

/// Clock ticks per second of the `utime`/`stime` fields. `USER_HZ` is part of Linux's ABI to
/// user space and is 100 on every architecture this runs on.
const USER_HZ: f64 = 100.0;

/// User plus system CPU seconds that process `pid` ("self" for this one) has used so far.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// Extracts `utime + stime` from a `/proc/PID/stat` line. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15 (1-based in proc(5)).
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// CPU seconds of this process and of `pids` at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    client: Option<f64>,
    pids: BTreeMap<u32, Option<f64>>,
}

impl Sample {
    pub fn take(pids: &[u32]) -> Sample {
        Sample {
            client: cpu_seconds("self"),
            pids: pids
                .iter()
                .map(|&p| (p, cpu_seconds(&p.to_string())))
                .collect(),
        }
    }

    /// CPU seconds used between `earlier` and `self`: the client's and each process's (a
    /// process that was not readable at either end is left out).
    pub fn since(&self, earlier: &Sample) -> CpuUse {
        let diff = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        CpuUse {
            client_s: diff(self.client, earlier.client),
            servers_s: self
                .pids
                .iter()
                .filter_map(|(p, now)| {
                    let before = earlier.pids.get(p).copied().flatten();
                    Some((p.to_string(), diff(*now, before)?))
                })
                .collect(),
        }
    }
}

/// CPU seconds used during a window.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CpuUse {
    pub client_s: Option<f64>,
    /// By PID (as a string: JSON object keys).
    pub servers_s: BTreeMap<String, f64>,
}

impl CpuUse {
    pub fn human(&self, window_s: f64) -> String {
        let cores = |s: f64| {
            if window_s > 0.0 {
                s / window_s
            } else {
                0.0
            }
        };
        let mut parts = Vec::new();
        if let Some(c) = self.client_s {
            parts.push(format!("coord-load {c:.2} s ({:.2} cores)", cores(c)));
        }
        for (pid, s) in &self.servers_s {
            parts.push(format!("pid {pid} {s:.2} s ({:.2} cores)", cores(*s)));
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_and_stime_after_an_awkward_name() {
        let line = "4242 (we ird) name) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3 0 100 0 0";
        assert_eq!(parse_stat(line), Some(3.0));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn own_process_is_readable_and_differences_are_per_pid() {
        let pid = std::process::id();
        let a = Sample::take(&[pid, u32::MAX]);
        let b = Sample::take(&[pid, u32::MAX]);
        let u = b.since(&a);
        assert!(u.client_s.is_some_and(|s| s >= 0.0));
        assert!(u.servers_s.contains_key(&pid.to_string()));
        assert!(!u.servers_s.contains_key(&u32::MAX.to_string()));
    }
}
