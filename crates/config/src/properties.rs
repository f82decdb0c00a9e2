//! Java `.properties` syntax, as `java.util.Properties::load` reads it, with one deliberate change.
//!
//! Bytes → lines → logical lines (backslash continuations joined) → `key` / `value` entries with
//! escapes resolved. Every entry remembers the line it started on so later validation can name it.
//!
//! The deliberate change: the classic configs carry comments after values
//! (`clientPort=2181 # client port`). Java keeps that tail in the value and then fails to parse
//! the number. Here an unescaped `#` preceded by whitespace ends the value, and a warning names the
//! line. Write `\#` to keep a literal `#` after whitespace.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::diag::{Diagnostic, Diagnostics};

/// One `key=value` setting as written in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    /// 1-based line on which the setting starts.
    pub line: usize,
}

/// A parsed properties file: entries in file order (a repeated key keeps only its last entry,
/// as in Java) plus the file name for diagnostics.
#[derive(Debug, Clone, Default)]
pub struct Properties {
    pub path: PathBuf,
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
}

impl Properties {
    /// Parses `bytes` read from `path`. Problems that make a line unreadable are errors; the rest
    /// of the file is still read so that all problems are reported at once.
    pub fn parse(path: impl Into<PathBuf>, bytes: &[u8], diags: &mut Diagnostics) -> Properties {
        let path = path.into();
        let mut props = Properties {
            path: path.clone(),
            ..Properties::default()
        };
        let lines = split_lines(bytes);
        let mut i = 0;
        while i < lines.len() {
            let (line_no, raw) = lines[i];
            i += 1;
            let Some(text) = decode_line(&path, line_no, raw, diags) else {
                continue;
            };
            let trimmed = trim_leading(text);
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
                continue;
            }
            // Join continuation lines: a line ending in an odd number of backslashes continues.
            let mut logical = trimmed.to_string();
            let mut unterminated = false;
            while ends_with_continuation(&logical) {
                logical.pop();
                match lines.get(i) {
                    Some(&(next_no, next_raw)) => {
                        i += 1;
                        if let Some(next) = decode_line(&path, next_no, next_raw, diags) {
                            logical.push_str(trim_leading(next));
                        }
                    }
                    None => {
                        unterminated = true;
                        break;
                    }
                }
            }
            props.add_logical_line(&logical, line_no, unterminated, diags);
        }
        props
    }

    fn add_logical_line(
        &mut self,
        logical: &str,
        line: usize,
        unterminated: bool,
        diags: &mut Diagnostics,
    ) {
        let (raw_key, raw_value) = split_key_value(logical);
        let key = match unescape(raw_key) {
            Ok(k) => k,
            Err(e) => {
                diags.error(Diagnostic::at(&self.path, line, None, e));
                return;
            }
        };
        if unterminated {
            diags.error(Diagnostic::at(
                &self.path,
                line,
                Some(&key),
                "the line ends with a continuation backslash `\\` but the file ends there; \
                 remove the trailing backslash or add the continued line",
            ));
            return;
        }
        let raw_value = match find_trailing_comment(raw_value) {
            Some(cut) => {
                diags.warn(Diagnostic::at(
                    &self.path,
                    line,
                    Some(&key),
                    format!(
                        "ignoring the comment after the value (`{}`); write `\\#` to keep a `#` in a value",
                        raw_value[cut..].trim()
                    ),
                ));
                raw_value[..cut].trim_end_matches([' ', '\t', '\x0c'])
            }
            None => raw_value,
        };
        let value = match unescape(raw_value) {
            Ok(v) => v,
            Err(e) => {
                diags.error(Diagnostic::at(&self.path, line, Some(&key), e));
                return;
            }
        };
        if let Some(&prev) = self.index.get(&key) {
            diags.warn(Diagnostic::at(
                &self.path,
                line,
                Some(&key),
                format!(
                    "set again (first set on line {}); the last value wins",
                    self.entries[prev].line
                ),
            ));
            self.entries[prev] = Entry { key, value, line };
        } else {
            self.index.insert(key.clone(), self.entries.len());
            self.entries.push(Entry { key, value, line });
        }
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.index.get(key).map(|&i| &self.entries[i])
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Splits on `\n`, `\r\n` or `\r`, keeping 1-based line numbers.
fn split_lines(bytes: &[u8]) -> Vec<(usize, &[u8])> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut line = 1;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                out.push((line, &bytes[start..i]));
                line += 1;
                start = i + 1;
            }
            b'\r' => {
                out.push((line, &bytes[start..i]));
                line += 1;
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < bytes.len() {
        out.push((line, &bytes[start..]));
    }
    out
}

fn decode_line<'a>(
    path: &Path,
    line: usize,
    raw: &'a [u8],
    diags: &mut Diagnostics,
) -> Option<&'a str> {
    match std::str::from_utf8(raw) {
        Ok(s) => Some(s),
        Err(e) => {
            diags.error(Diagnostic::at(
                path,
                line,
                None,
                format!(
                    "invalid UTF-8 at byte {} of the line; save the file as UTF-8",
                    e.valid_up_to() + 1
                ),
            ));
            None
        }
    }
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0c')
}

fn trim_leading(s: &str) -> &str {
    s.trim_start_matches(is_ws)
}

fn ends_with_continuation(s: &str) -> bool {
    s.bytes().rev().take_while(|&b| b == b'\\').count() % 2 == 1
}

/// Splits a logical line into raw (still escaped) key and value, as Java does: the key ends at the
/// first unescaped `=`, `:` or whitespace; whitespace, then at most one `=`/`:`, then whitespace
/// separate it from the value.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = line.len();
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => {
                key_end = i;
                break;
            }
            c if is_ws(c) => {
                key_end = i;
                break;
            }
            _ => {}
        }
    }
    let key = &line[..key_end];
    let mut rest = trim_leading(&line[key_end..]);
    if let Some(r) = rest.strip_prefix(['=', ':']) {
        rest = trim_leading(r);
    }
    (key, rest)
}

/// Byte index where an unescaped `#` preceded by whitespace starts a trailing comment.
fn find_trailing_comment(raw_value: &str) -> Option<usize> {
    let mut escaped = false;
    let mut prev_ws = false;
    for (i, c) in raw_value.char_indices() {
        if escaped {
            escaped = false;
            prev_ws = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            prev_ws = false;
        } else if c == '#' && prev_ws {
            return Some(i);
        } else {
            prev_ws = is_ws(c);
        }
    }
    None
}

/// Resolves `\t \n \r \f \uXXXX` and `\x` (any other character stands for itself).
fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let unit = |chars: &mut std::str::Chars<'_>| -> Result<u16, String> {
                    let hex: String = chars.by_ref().take(4).collect();
                    if hex.len() == 4 && hex.chars().all(|h| h.is_ascii_hexdigit()) {
                        Ok(u16::from_str_radix(&hex, 16).expect("checked hex"))
                    } else {
                        Err(format!(
                            "malformed \\uXXXX escape `\\u{hex}`: expected four hex digits"
                        ))
                    }
                };
                let first = unit(&mut chars)?;
                if (0xD800..0xDC00).contains(&first) {
                    // A high surrogate must be followed by `\uDC00`..`\uDFFF`.
                    let rest = chars.as_str();
                    if let Some(tail) = rest.strip_prefix("\\u") {
                        let mut tail_chars = tail.chars();
                        let second = unit(&mut tail_chars)?;
                        if (0xDC00..0xE000).contains(&second) {
                            chars = tail_chars;
                            let cp = 0x10000
                                + ((u32::from(first) - 0xD800) << 10)
                                + (u32::from(second) - 0xDC00);
                            out.push(char::from_u32(cp).expect("valid surrogate pair"));
                            continue;
                        }
                    }
                    return Err(format!(
                        "malformed \\uXXXX escape: high surrogate \\u{first:04X} is not followed by a low surrogate"
                    ));
                }
                match char::from_u32(u32::from(first)) {
                    Some(ch) => out.push(ch),
                    None => {
                        return Err(format!(
                            "malformed \\uXXXX escape: lone surrogate \\u{first:04X}"
                        ))
                    }
                }
            }
            Some(other) => out.push(other),
            // A lone trailing backslash (only reachable through an even/odd mismatch) is dropped,
            // as in Java.
            None => {}
        }
    }
    Ok(out)
}

/// Escapes a key so that [`Properties::parse`] reads it back unchanged.
pub fn escape_key(key: &str) -> String {
    escape(key, true)
}

/// Escapes a value so that [`Properties::parse`] reads it back unchanged.
pub fn escape_value(value: &str) -> String {
    escape(value, false)
}

fn escape(s: &str, is_key: bool) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            ' ' if is_key || i == 0 => out.push_str("\\ "),
            '=' | ':' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Properties, Diagnostics) {
        let mut d = Diagnostics::default();
        let p = Properties::parse("t.properties", text.as_bytes(), &mut d);
        (p, d)
    }

    fn value<'a>(p: &'a Properties, k: &str) -> &'a str {
        &p.get(k).unwrap_or_else(|| panic!("missing {k}")).value
    }

    #[test]
    fn separators_comments_and_whitespace() {
        let (p, d) =
            parse("# comment\n! also comment\n  a=1\nb : 2\nc 3\nd\t=\t4\ne\nf=\ng==x\n h:=y\n");
        assert!(d.is_clean(), "{d:?}");
        assert_eq!(value(&p, "a"), "1");
        assert_eq!(value(&p, "b"), "2");
        assert_eq!(value(&p, "c"), "3");
        assert_eq!(value(&p, "d"), "4");
        assert_eq!(value(&p, "e"), "");
        assert_eq!(value(&p, "f"), "");
        assert_eq!(value(&p, "g"), "=x");
        assert_eq!(value(&p, "h"), "=y");
        assert_eq!(p.get("h").map(|e| e.line), Some(10));
    }

    #[test]
    fn continuation_joins_lines_and_skips_leading_whitespace() {
        let (p, d) = parse("list=a,\\\n    b,\\\n\tc\nnext=1\r\nlast=2\rend=3");
        assert!(d.is_clean(), "{d:?}");
        assert_eq!(value(&p, "list"), "a,b,c");
        assert_eq!(p.get("next").map(|e| e.line), Some(4));
        assert_eq!(value(&p, "end"), "3");
        assert_eq!(p.get("end").map(|e| e.line), Some(6));
    }

    #[test]
    fn even_backslashes_do_not_continue() {
        let (p, d) = parse("path=c:\\\\\nx=1\n");
        assert!(d.is_clean(), "{d:?}");
        assert_eq!(value(&p, "path"), "c:\\");
        assert_eq!(value(&p, "x"), "1");
    }

    #[test]
    fn escapes() {
        let (p, d) = parse("k\\ ey\\=x=a\\tb\\u00e9\\uD83D\\uDE00\\q\n");
        assert!(d.is_clean(), "{d:?}");
        assert_eq!(value(&p, "k ey=x"), "a\tbé😀q");
    }

    #[test]
    fn trailing_comment_is_stripped_with_a_warning() {
        let (p, d) = parse("clientPort=2181 # client port\nx=a\\ #b\ny=a#b\n");
        assert_eq!(value(&p, "clientPort"), "2181");
        assert_eq!(value(&p, "x"), "a #b");
        assert_eq!(value(&p, "y"), "a#b");
        assert_eq!(d.warnings.len(), 1);
        assert_eq!(d.warnings[0].line, Some(1));
        assert!(d.errors.is_empty());
    }

    #[test]
    fn unterminated_continuation_is_an_error_naming_the_line() {
        let (_, d) = parse("a=1\nb=2,\\");
        assert_eq!(d.errors.len(), 1, "{d:?}");
        let e = &d.errors[0];
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("b")));
        assert!(e.message.contains("continuation"), "{e}");
    }

    #[test]
    fn invalid_utf8_names_the_line_and_keeps_reading() {
        let mut d = Diagnostics::default();
        let p = Properties::parse("t", b"a=1\nb=\xff\xfe\nc=3\n", &mut d);
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].line, Some(2));
        assert!(d.errors[0].message.contains("UTF-8"));
        assert_eq!(value(&p, "c"), "3");
    }

    #[test]
    fn malformed_unicode_escape_is_an_error() {
        let (_, d) = parse("a=\\u12G4\n");
        assert_eq!(d.errors.len(), 1);
        assert!(d.errors[0].message.contains("\\uXXXX"), "{}", d.errors[0]);
    }

    #[test]
    fn repeated_key_last_wins_with_warning() {
        let (p, d) = parse("a=1\na=2\n");
        assert_eq!(value(&p, "a"), "2");
        assert_eq!(p.entries().len(), 1);
        assert_eq!(d.warnings.len(), 1);
        assert!(d.warnings[0].message.contains("line 1"));
    }

    proptest::proptest! {
        #[test]
        fn escape_then_parse_round_trips(key in ".*", val in ".*") {
            let text = format!("{}={}\n", escape_key(&key), escape_value(&val));
            let (p, d) = parse(&text);
            proptest::prop_assert!(d.is_clean(), "{:?} for {:?}", d, text);
            let e = p.get(&key);
            proptest::prop_assert!(e.is_some(), "key lost in {:?}", text);
            proptest::prop_assert_eq!(&e.unwrap().value, &val);
        }

        #[test]
        fn parser_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let mut d = Diagnostics::default();
            let _ = Properties::parse("fuzz", &bytes, &mut d);
        }
    }
}
