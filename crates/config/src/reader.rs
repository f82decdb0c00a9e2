//! Typed access to a [`Properties`] file that records every problem with its line and key, and
//! remembers which keys were read so the rest can be reported as unknown.

use std::collections::HashSet;
use std::fmt::Display;
use std::str::FromStr;

use crate::diag::{Diagnostic, Diagnostics};
use crate::properties::{Entry, Properties};

pub(crate) struct Reader<'a> {
    pub props: &'a Properties,
    pub diags: Diagnostics,
    used: HashSet<&'a str>,
}

impl<'a> Reader<'a> {
    pub fn new(props: &'a Properties, diags: Diagnostics) -> Self {
        Reader {
            props,
            diags,
            used: HashSet::new(),
        }
    }

    /// The entry for `key`, marking it as known.
    pub fn entry(&mut self, key: &'static str) -> Option<&'a Entry> {
        self.used.insert(key);
        self.props.get(key)
    }

    pub fn mark_used(&mut self, key: &'a str) {
        self.used.insert(key);
    }

    /// The trimmed value of `key`, or `None` when unset. An empty value counts as unset.
    pub fn string(&mut self, key: &'static str) -> Option<String> {
        self.entry(key)
            .map(|e| e.value.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    pub fn error(&mut self, entry: &Entry, message: impl Into<String>) {
        let d = Diagnostic::at(&self.props.path, entry.line, Some(&entry.key), message);
        self.diags.error(d);
    }

    pub fn warn(&mut self, entry: &Entry, message: impl Into<String>) {
        let d = Diagnostic::at(&self.props.path, entry.line, Some(&entry.key), message);
        self.diags.warn(d);
    }

    pub fn missing(&mut self, key: &str, message: impl Into<String>) {
        let d = Diagnostic::file(&self.props.path, Some(key), message);
        self.diags.error(d);
    }

    /// Parses `key` as `T`, checking `valid`; `expected` describes valid values for the message.
    pub fn parse_with<T>(
        &mut self,
        key: &'static str,
        expected: &str,
        valid: impl Fn(&T) -> bool,
    ) -> Option<T>
    where
        T: FromStr,
    {
        let entry = self.entry(key)?;
        let text = entry.value.trim();
        match text.parse::<T>() {
            Ok(v) if valid(&v) => Some(v),
            _ => {
                self.error(
                    entry,
                    format!("expected {expected}, found `{}`", entry.value),
                );
                None
            }
        }
    }

    /// Parses `key` as a number in `[min, max]`, returning `default` when unset or invalid.
    pub fn number<T>(&mut self, key: &'static str, default: T, min: T, max: T) -> T
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        let expected = format!("a whole number from {min} to {max}");
        self.parse_with(key, &expected, |v: &T| *v >= min && *v <= max)
            .unwrap_or(default)
    }

    /// Like [`Reader::number`] but `None` when unset.
    pub fn opt_number<T>(&mut self, key: &'static str, min: T, max: T) -> Option<T>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        let expected = format!("a whole number from {min} to {max}");
        self.parse_with(key, &expected, |v: &T| *v >= min && *v <= max)
    }

    pub fn boolean(&mut self, key: &'static str, default: bool) -> bool {
        let Some(entry) = self.entry(key) else {
            return default;
        };
        match entry.value.trim().to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                self.error(
                    entry,
                    format!("expected true or false, found `{}`", entry.value),
                );
                default
            }
        }
    }

    /// Keys that are valid for the daemon but have no effect here: accepted with a note.
    pub fn recognised_without_effect(&mut self, keys: &[&'static str], why: &str) {
        for &key in keys {
            if let Some(entry) = self.entry(key) {
                self.warn(entry, format!("accepted but has no effect: {why}"));
            }
        }
    }

    /// Keys accepted silently (their meaning is covered by something else here).
    pub fn accept(&mut self, keys: &[&'static str]) {
        for &key in keys {
            self.entry(key);
        }
    }

    /// Reports every key that nothing asked for, and returns the diagnostics.
    pub fn finish(mut self, what: &str) -> Diagnostics {
        for entry in self.props.entries() {
            if !self.used.contains(entry.key.as_str()) {
                let d = Diagnostic::at(
                    &self.props.path,
                    entry.line,
                    Some(&entry.key),
                    format!("unknown {what} setting; ignored (check the spelling)"),
                );
                self.diags.warn(d);
            }
        }
        self.diags
    }
}
