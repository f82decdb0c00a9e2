//! Where the shell writes: standard output and standard error, shared with the tasks that print
//! watch events.
//!
//! zkCli's streams flush at every line, and users pipe both into one file or terminal, so every
//! write here is flushed at once: the interleaving of results, errors and `WATCHER::` blocks is
//! the order in which they happened.

use std::io::Write;
use std::sync::{Arc, Mutex};

type Sink = Arc<Mutex<Box<dyn Write + Send>>>;

/// The shell's two output streams.
#[derive(Clone)]
pub struct Console {
    out: Sink,
    err: Sink,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").finish_non_exhaustive()
    }
}

impl Console {
    pub fn new(out: Box<dyn Write + Send>, err: Box<dyn Write + Send>) -> Self {
        Console {
            out: Arc::new(Mutex::new(out)),
            err: Arc::new(Mutex::new(err)),
        }
    }

    /// The process's stdout and stderr.
    pub fn stdio() -> Self {
        Console::new(Box::new(std::io::stdout()), Box::new(std::io::stderr()))
    }

    /// Writes `text` to stdout as is (no newline added).
    pub fn print(&self, text: &str) {
        write(&self.out, text);
    }

    /// Writes `line` and a newline to stdout.
    pub fn println(&self, line: &str) {
        write(&self.out, &format!("{line}\n"));
    }

    /// Writes `line` and a newline to stderr.
    pub fn eprintln(&self, line: &str) {
        write(&self.err, &format!("{line}\n"));
    }
}

fn write(sink: &Sink, text: &str) {
    // A closed pipe (`zookeeper-shell ... | head -1`) must not abort the shell with a panic; the
    // text just goes nowhere, as it does for zkCli.
    let mut w = sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let _ = w.write_all(text.as_bytes());
    let _ = w.flush();
}
