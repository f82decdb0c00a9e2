//! Metrics in the Prometheus text format (version 0.0.4), as coord and the broker serve them.
//!
//! ```text
//!  scrape ─► http::serve ─► render() ─► Exposition ─► "# HELP name …\n# TYPE name gauge\nname{l="v"} 1\n"
//!            (bounded       (the daemon    (this module: no I/O, no registry; the daemon reads
//!             connections,   reads its      its live state at scrape time and writes families)
//!             GET /metrics)  own state)
//! ```
//!
//! There is no registry of metric objects: each daemon already keeps its figures (counters in
//! its server, state in its tree or partitions) and writes them out when scraped, so a scrape
//! costs what reading those figures costs and nothing is updated twice on the hot path. The
//! one figure a daemon cannot keep as a plain counter, a distribution with quantiles, is
//! [`summary::Summary`].

pub mod http;
pub mod summary;

use std::fmt::Write as _;

/// A metric family's type, as `# TYPE` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Summary,
    Histogram,
    Untyped,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
            Kind::Histogram => "histogram",
            Kind::Untyped => "untyped",
        }
    }
}

/// One scrape's text, written family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a family (`# HELP` and `# TYPE` lines); its samples follow through the returned
    /// writer. Each name must be started once per exposition.
    pub fn family<'a>(&'a mut self, name: &'a str, kind: Kind, help: &str) -> Family<'a> {
        debug_assert!(is_valid_name(name), "metric name {name:?}");
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        escape_help(&mut self.out, help);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind.as_str());
        self.out.push('\n');
        Family {
            out: &mut self.out,
            name,
        }
    }

    /// A family with one unlabelled gauge sample.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, Kind::Gauge, help).sample(&[], value);
    }

    /// A family with one unlabelled counter sample.
    pub fn counter(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, Kind::Counter, help).sample(&[], value);
    }

    /// The text, ready to serve.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Writes the samples of one family.
#[derive(Debug)]
pub struct Family<'a> {
    out: &'a mut String,
    name: &'a str,
}

impl Family<'_> {
    /// `name{labels} value`.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.write(None, labels, value);
        self
    }

    /// `name_suffix{labels} value`: a summary's or histogram's `_sum`, `_count`, `_bucket`.
    pub fn suffixed(&mut self, suffix: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.write(Some(suffix), labels, value);
        self
    }

    fn write(&mut self, suffix: Option<&str>, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(self.name);
        if let Some(s) = suffix {
            self.out.push('_');
            self.out.push_str(s);
        }
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                debug_assert!(is_valid_label(k), "label name {k:?}");
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_label_value(self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        write_value(self.out, value);
        self.out.push('\n');
    }
}

/// Integers print without a fraction; NaN and infinities as Prometheus spells them.
fn write_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        write_integer(out, v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// `v` in decimal, without the formatting machinery (most samples are whole numbers, and a
/// broker's scrape has thousands).
fn write_integer(out: &mut String, v: i64) {
    let mut digits = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push('-');
    }
    // ASCII digits only.
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
}

fn escape_help(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_label_value(out: &mut String, s: &str) {
    if !s.contains(['\\', '\n', '"']) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved).
pub fn is_valid_label(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escaping() {
        let mut e = Exposition::new();
        e.gauge("znode_count", "Number of z-nodes", 5.0);
        e.family("requests_total", Kind::Counter, "Requests,\nby \\ api")
            .sample(&[("api", "Produce")], 12.0)
            .sample(&[("api", "a\"b\\c\nd"), ("v", "9")], 0.5);
        e.family("latency", Kind::Summary, "Latency")
            .sample(&[("quantile", "0.99")], f64::NAN)
            .suffixed("sum", &[], 1e20)
            .suffixed("count", &[], f64::INFINITY);
        assert_eq!(
            e.finish(),
            "# HELP znode_count Number of z-nodes\n# TYPE znode_count gauge\nznode_count 5\n\
             # HELP requests_total Requests,\\nby \\\\ api\n# TYPE requests_total counter\n\
             requests_total{api=\"Produce\"} 12\n\
             requests_total{api=\"a\\\"b\\\\c\\nd\",v=\"9\"} 0.5\n\
             # HELP latency Latency\n# TYPE latency summary\nlatency{quantile=\"0.99\"} NaN\n\
             latency_sum 100000000000000000000\nlatency_count +Inf\n"
        );
    }

    #[test]
    fn names() {
        assert!(is_valid_name(
            "kafka_server_BrokerTopicMetrics_MessagesInPerSec:rate"
        ));
        assert!(!is_valid_name("9lives"));
        assert!(!is_valid_name("a-b"));
        assert!(!is_valid_name(""));
        assert!(is_valid_label("topic"));
        assert!(!is_valid_label("__name__"));
        assert!(!is_valid_label("a:b"));
    }

    #[test]
    fn whole_numbers_print_as_integers() {
        let mut e = Exposition::new();
        let mut f = e.family("n", Kind::Gauge, "n");
        for v in [
            0.0,
            7.0,
            -7.0,
            1234567890.0,
            -1e14,
            999_999_999_999_999.0,
            1e15,
            0.5,
        ] {
            f.sample(&[], v);
        }
        assert_eq!(
            e.finish(),
            "# HELP n n\n# TYPE n gauge\nn 0\nn 7\nn -7\nn 1234567890\nn -100000000000000\n\
             n 999999999999999\nn 1000000000000000\nn 0.5\n"
        );
    }
}
