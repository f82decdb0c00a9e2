//! The metrics coord exports, as families in ZooKeeper 3.8's names, types and label sets, and
//! the two texts they are written as: the Prometheus exposition of `/metrics` and the lines of
//! `mntr` when ZooKeeper's Prometheus provider is configured (`zk_<sample>\t<Java double>`, as
//! ZooKeeper 3.8's `mntr` then prints every sample of its provider).
//!
//! ```text
//!  server::metrics (live state, at scrape time) ─► Vec<Family> ─┬─► prometheus_text ─► GET /metrics
//!                                                               └─► write_mntr ──────► mntr
//! ```
//!
//! Both texts come from the same families, so `mntr` and `/metrics` cannot disagree on a value
//! they share. This module does no I/O and reads no state; what each figure means is in
//! `docs/operations.md` ("Metrics").

use std::fmt::Write as _;

use sluice_metrics::summary::SummarySnapshot;
use sluice_metrics::{Exposition, Kind};

/// ZooKeeper's `DetailLevel.BASIC` summaries carry the median only.
pub const BASIC_QUANTILES: &[f64] = &[0.5];
/// `DetailLevel.ADVANCED` summaries (request latencies) carry 0.5, 0.9 and 0.99.
pub const ADVANCED_QUANTILES: &[f64] = &[0.5, 0.9, 0.99];

/// Prefix of the figures that are coord's own (Raft), apart from ZooKeeper's names.
pub const RAFT_PREFIX: &str = "sluice_raft_";

/// One sample: `name[_suffix]{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub suffix: Option<&'static str>,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// One metric family and its samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub samples: Vec<Sample>,
}

impl Family {
    fn one(name: &'static str, kind: Kind, help: &'static str, value: f64) -> Family {
        Family {
            name,
            kind,
            help,
            samples: vec![Sample {
                suffix: None,
                labels: Vec::new(),
                value,
            }],
        }
    }

    pub fn gauge(name: &'static str, help: &'static str, value: f64) -> Family {
        Family::one(name, Kind::Gauge, help, value)
    }

    pub fn counter(name: &'static str, help: &'static str, value: f64) -> Family {
        Family::one(name, Kind::Counter, help, value)
    }

    /// A gauge with one sample per label value of `label`.
    pub fn labelled_gauge(
        name: &'static str,
        help: &'static str,
        label: &'static str,
        values: impl IntoIterator<Item = (String, f64)>,
    ) -> Family {
        Family {
            name,
            kind: Kind::Gauge,
            help,
            samples: values
                .into_iter()
                .map(|(l, value)| Sample {
                    suffix: None,
                    labels: vec![(label, l)],
                    value,
                })
                .collect(),
        }
    }

    /// A summary as ZooKeeper's provider writes one: a `quantile` sample per quantile of the
    /// snapshot (NaN while its window is empty), then `_count` and `_sum`.
    pub fn summary(name: &'static str, help: &'static str, s: &SummarySnapshot) -> Family {
        let mut samples: Vec<Sample> = s
            .quantiles
            .iter()
            .map(|(q, v)| Sample {
                suffix: None,
                labels: vec![("quantile", q.to_string())],
                value: *v,
            })
            .collect();
        samples.push(Sample {
            suffix: Some("count"),
            labels: Vec::new(),
            value: s.count as f64,
        });
        samples.push(Sample {
            suffix: Some("sum"),
            labels: Vec::new(),
            value: s.sum as f64,
        });
        Family {
            name,
            kind: Kind::Summary,
            help,
            samples,
        }
    }

    /// The value of the sample without suffix and labels (a gauge's or counter's).
    pub fn value(&self) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.suffix.is_none() && s.labels.is_empty())
            .map(|s| s.value)
    }
}

/// The Prometheus text (format 0.0.4) of `families`.
pub fn prometheus_text(families: &[Family]) -> String {
    let mut e = Exposition::new();
    let mut labels: Vec<(&str, &str)> = Vec::new();
    for f in families {
        let mut w = e.family(f.name, f.kind, f.help);
        for s in &f.samples {
            labels.clear();
            labels.extend(s.labels.iter().map(|(k, v)| (*k, v.as_str())));
            match s.suffix {
                Some(suffix) => w.suffixed(suffix, &labels, s.value),
                None => w.sample(&labels, s.value),
            };
        }
    }
    e.finish()
}

/// `mntr`'s lines for `families` as ZooKeeper 3.8 prints them with the Prometheus provider:
/// `zk_` and the sample's name with its labels (`{quantile="0.5"}`), a tab, the value as Java
/// prints a double (`14.0`, `5.7826`, `NaN`, `1.7966765E9`).
pub fn write_mntr(out: &mut String, families: &[Family]) {
    for f in families {
        for s in &f.samples {
            out.push_str("zk_");
            out.push_str(f.name);
            if let Some(suffix) = s.suffix {
                out.push('_');
                out.push_str(suffix);
            }
            if !s.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in s.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k}=\"{v}\"");
                }
                out.push('}');
            }
            out.push('\t');
            out.push_str(&java_double(s.value));
            out.push('\n');
        }
    }
}

/// `Double.toString`: plain notation with at least one decimal from 10^-3 to 10^7, computerized
/// scientific notation (`1.5E9`) outside it, the shortest digits that read back the same.
pub fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let a = v.abs();
    if a == 0.0 || (1e-3..1e7).contains(&a) {
        // Rust's `{:?}` is the shortest round-trip form and keeps `.0` on whole numbers.
        return format!("{v:?}");
    }
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    if mantissa.contains('.') {
        format!("{mantissa}E{exp}")
    } else {
        format!("{mantissa}.0E{exp}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(count: u64, sum: u64, qs: &[(f64, f64)]) -> SummarySnapshot {
        SummarySnapshot {
            count,
            sum,
            min_max: None,
            quantiles: qs.to_vec(),
        }
    }

    fn families() -> Vec<Family> {
        vec![
            Family::gauge("znode_count", "Znodes in the tree", 14.0),
            Family::gauge("avg_latency", "Average request latency (ms)", 5.7826),
            Family::counter("looking_count", "Times without a leader", 1.0),
            Family::summary(
                "readlatency",
                "Read latency (ms)",
                &summary(13, 22, &[(0.5, 1.0), (0.9, 3.0), (0.99, 5.0)]),
            ),
            Family::summary(
                "fsynctime",
                "Log fsync (ms)",
                &summary(0, 0, &[(0.5, f64::NAN)]),
            ),
            Family::labelled_gauge(
                "sluice_raft_state",
                "Raft state",
                "state",
                [("leader".to_string(), 1.0), ("follower".to_string(), 0.0)],
            ),
        ]
    }

    #[test]
    fn prometheus_text_has_zookeepers_names_types_and_labels() {
        let text = prometheus_text(&families());
        for line in [
            "# TYPE znode_count gauge\nznode_count 14\n",
            "avg_latency 5.7826\n",
            "# TYPE looking_count counter\nlooking_count 1\n",
            "# TYPE readlatency summary\nreadlatency{quantile=\"0.5\"} 1\n\
             readlatency{quantile=\"0.9\"} 3\nreadlatency{quantile=\"0.99\"} 5\n\
             readlatency_count 13\nreadlatency_sum 22\n",
            "fsynctime{quantile=\"0.5\"} NaN\nfsynctime_count 0\nfsynctime_sum 0\n",
            "sluice_raft_state{state=\"leader\"} 1\nsluice_raft_state{state=\"follower\"} 0\n",
        ] {
            assert!(text.contains(line), "{line:?} not in\n{text}");
        }
    }

    /// The layout of a ZooKeeper 3.8 `mntr` with the Prometheus provider (read from Debian's
    /// 3.8.0 with zookeeper-prometheus-metrics 3.8.0).
    #[test]
    fn mntr_lines_are_the_same_samples_as_zookeeper_prints_them() {
        let mut out = String::new();
        write_mntr(&mut out, &families());
        assert_eq!(
            out,
            "zk_znode_count\t14.0\n\
             zk_avg_latency\t5.7826\n\
             zk_looking_count\t1.0\n\
             zk_readlatency{quantile=\"0.5\"}\t1.0\n\
             zk_readlatency{quantile=\"0.9\"}\t3.0\n\
             zk_readlatency{quantile=\"0.99\"}\t5.0\n\
             zk_readlatency_count\t13.0\n\
             zk_readlatency_sum\t22.0\n\
             zk_fsynctime{quantile=\"0.5\"}\tNaN\n\
             zk_fsynctime_count\t0.0\n\
             zk_fsynctime_sum\t0.0\n\
             zk_sluice_raft_state{state=\"leader\"}\t1.0\n\
             zk_sluice_raft_state{state=\"follower\"}\t0.0\n"
        );
    }

    #[test]
    fn doubles_print_as_java_prints_them() {
        // Values as ZooKeeper 3.8's mntr printed them.
        for (v, java) in [
            (0.0, "0.0"),
            (14.0, "14.0"),
            (5.7826, "5.7826"),
            (1.79, "1.79"),
            (-1.0, "-1.0"),
            (40272.0, "40272.0"),
            (20000.0, "20000.0"),
            (9.363456e7, "9.363456E7"),
            (1.796676521161e9, "1.796676521161E9"),
            (1e7, "1.0E7"),
            (0.0005, "5.0E-4"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
        ] {
            assert_eq!(java_double(v), java, "{v}");
        }
    }

    #[test]
    fn value_reads_a_gauge() {
        let f = families();
        assert_eq!(f[0].value(), Some(14.0));
        assert_eq!(f[3].value(), None);
    }
}
