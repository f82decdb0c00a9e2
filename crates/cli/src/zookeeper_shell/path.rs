//! znode path checks with the messages of ZooKeeper's `PathUtils.validatePath`.
//!
//! zkCli validates every path on the client before sending it and prints the Java message
//! (`Path must start with / character`, `Invalid path string "/a//b" caused by empty node name
//! specified @3`). The rules run over UTF-16 code units, as in Java, so positions after `@` are
//! Java string indices and any character outside the Basic Multilingual Plane is refused
//! (its surrogates fall in the forbidden `\ud800-\uf8ff` range). These rules are stricter than the
//! client library's own checks, so every path that passes here is accepted there too.

/// Checks `path`; a sequential create checks `path` + `1`, so `/queue/` is a valid prefix there.
pub fn validate(path: &str, sequential: bool) -> Result<(), String> {
    if sequential {
        validate_plain(&format!("{path}1"))
    } else {
        validate_plain(path)
    }
}

fn validate_plain(path: &str) -> Result<(), String> {
    let units: Vec<u16> = path.encode_utf16().collect();
    if units.is_empty() {
        return Err("Path length must be > 0".to_string());
    }
    if units[0] != u16::from(b'/') {
        return Err("Path must start with / character".to_string());
    }
    if units.len() == 1 {
        return Ok(());
    }
    if units[units.len() - 1] == u16::from(b'/') {
        return Err("Path must not end with / character".to_string());
    }
    let slash = u16::from(b'/');
    let dot = u16::from(b'.');
    let mut last = slash;
    for i in 1..units.len() {
        let c = units[i];
        let ends_name = |at: usize| at + 1 == units.len() || units[at + 1] == slash;
        let reason = if c == 0 {
            Some("null character not allowed")
        } else if c == slash && last == slash {
            Some("empty node name specified")
        } else if c == dot && last == dot {
            (units[i - 2] == slash && ends_name(i)).then_some("relative paths not allowed")
        } else if c == dot {
            (units[i - 1] == slash && ends_name(i)).then_some("relative paths not allowed")
        } else if (0x01..=0x1f).contains(&c)
            || (0x7f..=0x9f).contains(&c)
            || (0xd800..=0xf8ff).contains(&c)
            || c >= 0xfff0
        {
            Some("invalid character")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(format!(
                "Invalid path string \"{path}\" caused by {reason} @{i}"
            ));
        }
        last = c;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;

    fn message(path: &str) -> String {
        validate(path, false).unwrap_err()
    }

    #[test]
    fn valid_paths() {
        for path in ["/", "/a", "/a/b", "/a.b/..c/c..", "/路径", "/a b"] {
            assert_eq!(validate(path, false), Ok(()), "{path}");
        }
    }

    #[test]
    fn zkcli_messages() {
        assert_eq!(message(""), "Path length must be > 0");
        assert_eq!(message("bad"), "Path must start with / character");
        assert_eq!(message("/bad/"), "Path must not end with / character");
        assert_eq!(
            message("/a//b"),
            r#"Invalid path string "/a//b" caused by empty node name specified @3"#
        );
        assert_eq!(
            message("/x/.."),
            r#"Invalid path string "/x/.." caused by relative paths not allowed @4"#
        );
        assert_eq!(
            message("/x/./y"),
            r#"Invalid path string "/x/./y" caused by relative paths not allowed @3"#
        );
        assert_eq!(
            message("/a\u{1}"),
            "Invalid path string \"/a\u{1}\" caused by invalid character @2"
        );
        assert_eq!(
            message("/a\0"),
            "Invalid path string \"/a\0\" caused by null character not allowed @2"
        );
    }

    #[test]
    fn positions_count_utf16_units() {
        // The emoji is two surrogates; the first one is refused at its UTF-16 index.
        assert_eq!(
            message("/é😀"),
            "Invalid path string \"/é😀\" caused by invalid character @2"
        );
    }

    #[test]
    fn sequential_prefixes_may_end_with_a_slash() {
        assert_eq!(validate("/queue/", true), Ok(()));
        assert_eq!(validate("/queue/job-", true), Ok(()));
        assert!(validate("/queue//", true).is_err());
    }
}
