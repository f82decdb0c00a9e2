//! Znode path rules: ZooKeeper's `PathUtils.validatePath` and the parent/name split that
//! `PrepRequestProcessor` and `DataTree` use.
//!
//! Paths arrive from clients as strings; everything here is a pure check on that string, so a
//! bad path is reported as `BadArguments` and never panics.

use sluice_jute::ErrorCode;

/// Checks `path` exactly as ZooKeeper's `PathUtils.validatePath(String)` does.
///
/// ZooKeeper walks UTF-16 code units, so every character outside the Basic Multilingual Plane
/// (a surrogate pair in Java) is rejected along with the control and private-use ranges.
pub fn validate_path(path: &str) -> Result<(), ErrorCode> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(ErrorCode::BadArguments);
    }
    if bytes.len() == 1 {
        return Ok(());
    }
    if bytes.last() == Some(&b'/') {
        return Err(ErrorCode::BadArguments);
    }
    // `/`, `.` and NUL are ASCII, and UTF-8 never reuses ASCII bytes inside multi-byte
    // sequences, so component checks on the byte string are exact.
    for component in path[1..].split('/') {
        if component.is_empty() || component == "." || component == ".." {
            return Err(ErrorCode::BadArguments);
        }
    }
    if path[1..].chars().any(invalid_char) {
        return Err(ErrorCode::BadArguments);
    }
    Ok(())
}

/// The characters `PathUtils` refuses (NUL included).
fn invalid_char(c: char) -> bool {
    let c = c as u32;
    c == 0
        || (0x01..=0x1f).contains(&c)
        || (0x7f..=0x9f).contains(&c)
        || (0xd800..=0xf8ff).contains(&c)
        || (0xfff0..=0xffff).contains(&c)
        // Java sees these as surrogate pairs, which fall in the 0xd800.. range above.
        || c > 0xffff
}

/// Splits `path` at its last `/` into (parent, last component), as `DataTree` does with
/// `lastIndexOf('/')`. The root's alias `""` is returned as `"/"`. `None` when there is no `/`.
pub fn split_parent(path: &str) -> Option<(&str, &str)> {
    let slash = path.rfind('/')?;
    let parent = if slash == 0 { "/" } else { &path[..slash] };
    Some((parent, &path[slash + 1..]))
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, name: &str) -> String {
    let mut s = String::with_capacity(parent.len() + 1 + name.len());
    s.push_str(parent);
    if parent != "/" {
        s.push('/');
    }
    s.push_str(name);
    s
}

/// `path` and each of its ancestors up to `/`, nearest first (ZooKeeper's `PathParentIterator`).
pub fn self_and_ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut next = if path.is_empty() { None } else { Some(path) };
    std::iter::from_fn(move || {
        let current = next?;
        next = if current == "/" {
            None
        } else {
            match current.rfind('/') {
                Some(0) => Some("/"),
                Some(i) => Some(&current[..i]),
                None => None,
            }
        };
        Some(current)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_paths() {
        for p in [
            "/",
            "/a",
            "/a/b",
            "/a.b",
            "/...",
            "/a/.b",
            "/a/..b",
            "/zookeeper",
            "/ü",
            "/a b",
        ] {
            assert_eq!(validate_path(p), Ok(()), "{p:?}");
        }
    }

    #[test]
    fn invalid_paths() {
        for p in [
            "",
            "a",
            "a/b",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/..",
            "/a/.",
            "/a/..",
            "/./a",
            "/../a",
            "/a\0b",
            "/a\u{1}",
            "/a\u{1f}",
            "/a\u{7f}",
            "/a\u{9f}",
            "/a\u{e000}",
            "/a\u{f8ff}",
            "/a\u{fff0}",
            "/a\u{ffff}",
            "/a\u{1f600}",
        ] {
            assert_eq!(validate_path(p), Err(ErrorCode::BadArguments), "{p:?}");
        }
    }

    #[test]
    fn split_and_join() {
        assert_eq!(split_parent("/a"), Some(("/", "a")));
        assert_eq!(split_parent("/a/b"), Some(("/a", "b")));
        assert_eq!(split_parent("/"), Some(("/", "")));
        assert_eq!(split_parent("/a/"), Some(("/a", "")));
        assert_eq!(split_parent("abc"), None);
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }

    #[test]
    fn ancestors() {
        let v: Vec<_> = self_and_ancestors("/a/b/c").collect();
        assert_eq!(v, ["/a/b/c", "/a/b", "/a", "/"]);
        let v: Vec<_> = self_and_ancestors("/").collect();
        assert_eq!(v, ["/"]);
        assert_eq!(self_and_ancestors("").count(), 0);
    }
}
