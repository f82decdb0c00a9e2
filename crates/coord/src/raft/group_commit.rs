//! Group commit for the Raft log: one thread fsyncs the log on behalf of every append that is
//! waiting, so the Raft core never waits for the disk and one fsync covers every append
//! written before it started.
//!
//! ```text
//!  openraft core ─ append ─► engine.append (in memory) ─► submit(callback) ──┐  returns at once
//!                                                                            ▼
//!                         "raft-log-sync" thread: take every waiting job ─► engine.sync()
//!                                                 ─► callbacks / barriers, in submission order
//!  truncate / purge / save_vote ─► barrier().await (everything written so far is on disk)
//! ```
//!
//! Ordering: jobs are completed in the order they were submitted, and a sync covers everything
//! the engine accepted before it began, so an append's callback ("flushed") is never reported
//! before an earlier append's, which is what openraft requires of `RaftLogStorage::append`.
//!
//! Before this, `append` awaited its own fsync inside the core task: the leader sent nothing to
//! its followers and took no new write while its disk worked, so each commit cost the leader's
//! fsync *plus* the followers' round trip instead of the larger of the two (decision 0003).

use std::io;
use std::sync::mpsc;
use std::sync::Arc;

use openraft::storage::LogFlushed;
use tokio::sync::oneshot;

use super::engine::LogEngine;
use super::stats::RaftStats;
use super::types::TypeConfig;

enum Job {
    /// Report an append as durable once a sync that began after it succeeded.
    Flushed(LogFlushed<TypeConfig>),
    /// Wake the waiter once everything written before the barrier is durable.
    Barrier(oneshot::Sender<io::Result<()>>),
}

/// The submitting side; cheap to clone. The thread ends when the last clone is dropped.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    pub(crate) fn start(engine: Arc<dyn LogEngine>, stats: Arc<RaftStats>) -> io::Result<Self> {
        let (jobs, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("raft-log-sync".into())
            .spawn(move || run(engine, rx, &stats))?;
        Ok(GroupCommit { jobs })
    }

    /// `callback` is told once everything written so far is on disk (or that the sync failed).
    pub(crate) fn submit(&self, callback: LogFlushed<TypeConfig>) {
        if let Err(mpsc::SendError(Job::Flushed(cb))) = self.jobs.send(Job::Flushed(callback)) {
            cb.log_io_completed(Err(stopped()));
        }
    }

    /// Returns once everything written before the call is on disk.
    pub(crate) async fn barrier(&self) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send(Job::Barrier(tx)).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

fn stopped() -> io::Error {
    io::Error::other("the raft log's sync thread has stopped")
}

fn run(engine: Arc<dyn LogEngine>, rx: mpsc::Receiver<Job>, stats: &RaftStats) {
    let mut batch = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        batch.extend(rx.try_iter());
        // ZooKeeper's `fsynctime`: one sample per fsync of the log, however many appends
        // it covers.
        let started = std::time::Instant::now();
        let result = engine.sync();
        stats.fsync.observe_millis(started.elapsed());
        for job in batch.drain(..) {
            let r = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            match job {
                Job::Flushed(cb) => cb.log_io_completed(r),
                Job::Barrier(tx) => {
                    let _ = tx.send(r);
                }
            }
        }
    }
}
