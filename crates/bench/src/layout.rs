//! Where a run puts its znodes.
//!
//! `PREFIX/rMILLIS-PID/wSSS-WWW` is one directory per worker (session `S`, slot `W`). Creates go
//! to `…/wSSS-WWW/nSEQ`; `set` and `get` use `…/wSSS-WWW/key`. One directory per worker keeps
//! child lists short, so that the failover check can list a directory per worker instead of
//! issuing one read per acknowledged write, and no two workers ever touch the same znode (no
//! version conflicts, nothing shared but the servers).

use std::time::{SystemTime, UNIX_EPOCH};

/// The znode names of one run.
#[derive(Debug, Clone)]
pub struct Layout {
    run_dir: String,
}

impl Layout {
    /// A fresh run directory under `prefix`, unique per process and millisecond.
    pub fn new(prefix: &str) -> Layout {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Layout::with_tag(prefix, &format!("r{millis}-{}", std::process::id()))
    }

    pub fn with_tag(prefix: &str, tag: &str) -> Layout {
        Layout {
            run_dir: format!("{prefix}/{tag}"),
        }
    }

    pub fn run_dir(&self) -> &str {
        &self.run_dir
    }

    pub fn worker_dir(&self, session: usize, slot: usize) -> String {
        format!("{}/w{session:03}-{slot:03}", self.run_dir)
    }

    /// The znode that `set` and `get` workers use.
    pub fn key(&self, session: usize, slot: usize) -> String {
        format!("{}/key", self.worker_dir(session, slot))
    }

    /// The name (last component) of create number `seq` in a worker directory.
    pub fn created_name(seq: u64) -> String {
        format!("n{seq}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let l = Layout::with_tag("/coord-load", "r1-2");
        assert_eq!(l.run_dir(), "/coord-load/r1-2");
        assert_eq!(l.worker_dir(3, 17), "/coord-load/r1-2/w003-017");
        assert_eq!(l.key(0, 0), "/coord-load/r1-2/w000-000/key");
        assert_eq!(Layout::created_name(42), "n42");
    }

    #[test]
    fn fresh_run_dirs_are_under_the_prefix() {
        let l = Layout::new("/p");
        assert!(l.run_dir().starts_with("/p/r"));
    }
}
