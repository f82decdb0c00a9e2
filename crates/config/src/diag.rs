//! Diagnostics that name the file, the line and the key, and say what was expected.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem found in a configuration file (or in the state it points at, like `myid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl Diagnostic {
    pub fn at(file: &Path, line: usize, key: Option<&str>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            line: Some(line),
            key: key.map(str::to_string),
            message: message.into(),
        }
    }

    /// A problem with the file as a whole, or with a key that is missing from it.
    pub fn file(file: &Path, key: Option<&str>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_path_buf(),
            line: None,
            key: key.map(str::to_string),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Errors and warnings gathered while reading one file, so that all of them can be shown at once.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn error(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }

    pub fn warn(&mut self, d: Diagnostic) {
        self.warnings.push(d);
    }

    pub fn is_clean(&self) -> bool {
        self.errors.is_empty() && self.warnings.is_empty()
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_invalid(errors))]
    Invalid {
        errors: Vec<Diagnostic>,
        /// Warnings found on the way; worth showing next to the errors.
        warnings: Vec<Diagnostic>,
    },
}

fn render_invalid(errors: &[Diagnostic]) -> String {
    let mut s = format!(
        "invalid configuration ({} error{}):",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
    for e in errors {
        s.push_str("\n  ");
        s.push_str(&e.to_string());
    }
    s
}

/// A configuration that passed validation, with the warnings met on the way.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    pub config: T,
    pub warnings: Vec<Diagnostic>,
}

impl ConfigError {
    /// Every error, then the warnings found on the way, one per line, for a terminal.
    pub fn report(&self) -> String {
        match self {
            ConfigError::Invalid { errors, warnings } => {
                let mut s = String::new();
                for d in errors {
                    s.push_str(&format!("error: {d}\n"));
                }
                for d in warnings {
                    s.push_str(&format!("warning: {d}\n"));
                }
                s.push_str(&format!(
                    "{} error(s): the configuration is not valid\n",
                    errors.len()
                ));
                s
            }
            other => format!("error: {other}\n"),
        }
    }
}
