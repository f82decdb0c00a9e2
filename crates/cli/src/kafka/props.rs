//! Properties as Kafka's tools take them: `k=v` on the command line (`--config`, `--property`,
//! `--producer-property`, ...) and Java-style properties files (`--command-config`,
//! `--producer.config`, `--consumer.config`), plus building the librdkafka client config.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;

/// How long admin requests and metadata look-ups may take before the tool gives up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Parses one `key=value` argument (the value may itself contain `=`).
pub fn parse_property(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("Invalid property '{arg}': expected key=value")),
    }
}

/// Parses the text of a properties file: `key=value` or `key:value` lines, `#` and `!`
/// comments, blank lines skipped, whitespace around keys and values trimmed.
pub fn parse_properties_text(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let split = line.find(['=', ':']);
        let (k, v) = match split {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => return Err(format!("line {}: expected key=value: '{raw}'", n + 1)),
        };
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}

/// Reads a properties file (see [`parse_properties_text`]).
pub fn read_properties_file(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading properties file {}", path.display()))?;
    parse_properties_text(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The `--property` pairs of a tool as a map, later ones winning.
pub fn property_map(pairs: &[(String, String)]) -> HashMap<String, String> {
    pairs.iter().cloned().collect()
}

/// Reads a boolean tool property (`true`/`false`, case-insensitive; absent is `default`).
pub fn flag(map: &HashMap<String, String>, key: &str, default: bool) -> Result<bool, String> {
    match map.get(key) {
        None => Ok(default),
        Some(v) if v.trim().eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.trim().eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(format!(
            "Invalid value '{v}' for property {key}: expected true or false"
        )),
    }
}

/// A client config for `bootstrap`, with `defaults` first, then the properties file, then the
/// `overrides` given one by one on the command line (last wins, as in Kafka's tools).
pub fn client_config(
    bootstrap: &str,
    defaults: &[(&str, &str)],
    file: Option<&Path>,
    overrides: &[(String, String)],
) -> anyhow::Result<ClientConfig> {
    let mut config = ClientConfig::new();
    for (k, v) in defaults {
        config.set(*k, *v);
    }
    if let Some(path) = file {
        for (k, v) in read_properties_file(path)? {
            config.set(k, v);
        }
    }
    for (k, v) in overrides {
        config.set(k, v);
    }
    config.set("bootstrap.servers", bootstrap);
    Ok(config)
}

/// The single-threaded runtime the tools drive rdkafka's futures on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_splits_at_the_first_equals_sign() {
        assert_eq!(
            parse_property("sasl.jaas.config=a=b"),
            Ok(("sasl.jaas.config".into(), "a=b".into()))
        );
        assert_eq!(parse_property("k="), Ok(("k".into(), String::new())));
        assert!(parse_property("novalue").is_err());
        assert!(parse_property("=v").is_err());
    }

    #[test]
    fn properties_file_skips_comments_and_trims() {
        let text = "# comment\n! other\n\n acks = all\nclient.id:tool\nkey.separator=\\t\n";
        assert_eq!(
            parse_properties_text(text).unwrap(),
            vec![
                ("acks".into(), "all".into()),
                ("client.id".into(), "tool".into()),
                ("key.separator".into(), "\\t".into()),
            ]
        );
        assert!(parse_properties_text("just words").is_err());
    }

    #[test]
    fn flags_accept_true_and_false_only() {
        let map = property_map(&[("a".into(), "TRUE".into()), ("b".into(), "no".into())]);
        assert_eq!(flag(&map, "a", false), Ok(true));
        assert_eq!(flag(&map, "missing", true), Ok(true));
        assert!(flag(&map, "b", false).is_err());
    }

    #[test]
    fn command_line_overrides_win_and_bootstrap_is_set() {
        let config = client_config(
            "h:1",
            &[("acks", "-1"), ("linger.ms", "1000")],
            None,
            &[("acks".into(), "1".into())],
        )
        .unwrap();
        assert_eq!(config.get("acks"), Some("1"));
        assert_eq!(config.get("linger.ms"), Some("1000"));
        assert_eq!(config.get("bootstrap.servers"), Some("h:1"));
    }
}
