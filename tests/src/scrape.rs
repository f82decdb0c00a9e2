//! A metrics endpoint read the way a scraper reads it: `GET /metrics` over a plain connection,
//! and the Prometheus text format parsed into families and samples (an implementation of its
//! own, independent of the daemons' writer).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One exchange on a new connection (the request should ask to close it): the whole answer,
/// head and body.
pub fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // A request the server refuses part-way may not be written whole; its answer still is.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /metrics` on `addr`: the parsed body of a 200 answer (panics on anything else).
pub fn scrape(addr: SocketAddr) -> Scrape {
    let text = http(addr, b"GET /metrics HTTP/1.0\r\n\r\n");
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{addr}: no HTTP answer: {text:?}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{addr}: {head}");
    Scrape::parse(body)
}

/// The families of one scrape: name → type, and every sample.
#[derive(Debug, Default, Clone)]
pub struct Scrape {
    pub types: BTreeMap<String, String>,
    pub samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    /// Reads the text format (version 0.0.4).
    pub fn parse(text: &str) -> Scrape {
        let mut s = Scrape::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE line");
                s.types.insert(name.to_string(), kind.to_string());
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, parse_labels(l.strip_suffix('}').expect("closing brace"))),
                None => (series, BTreeMap::new()),
            };
            let value = match value {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("value in {line:?}")),
            };
            s.samples.push((name.to_string(), labels, value));
        }
        s
    }

    /// Samples of `name` whose labels include every pair of `with`.
    pub fn find(
        &self,
        name: &str,
        with: &[(&str, &str)],
    ) -> Vec<&(String, BTreeMap<String, String>, f64)> {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && with
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The value of the one sample of `name` with exactly the labels `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| *v)
    }

    /// The sum of the samples [`Scrape::find`] gives.
    pub fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.find(name, with).iter().map(|(_, _, v)| v).sum()
    }
}

/// `a="x",b="y\"z"` → {a: x, b: y"z}.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("label");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(key.trim_start_matches(',').to_string(), value);
        rest = after[end..].trim_start_matches(',');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_families_labels_and_values() {
        let s = Scrape::parse(
            "# HELP a_total x\n# TYPE a_total counter\na_total 3\na_total{topic=\"t\",partition=\"0\"} 2.5\n\
             # TYPE l summary\nl{request=\"Produce\",quantile=\"0.99\"} NaN\nl_sum{request=\"q\\\"x\"} 1e3\n",
        );
        assert_eq!(s.types["a_total"], "counter");
        assert_eq!(s.value("a_total", &[]), Some(3.0));
        assert_eq!(
            s.value("a_total", &[("topic", "t"), ("partition", "0")]),
            Some(2.5)
        );
        assert_eq!(s.sum("a_total", &[]), 5.5);
        assert!(s
            .value("l", &[("request", "Produce"), ("quantile", "0.99")])
            .unwrap()
            .is_nan());
        assert_eq!(s.value("l_sum", &[("request", "q\"x")]), Some(1000.0));
    }
}
