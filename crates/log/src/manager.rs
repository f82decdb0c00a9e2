//! Every partition log of the broker, across the directories of `log.dirs`.
//!
//! [`LogManager::open`] takes each directory's lock, then opens (and, after a crash, recovers)
//! all `<topic>-<partition>` directories in it with `num.recovery.threads.per.data.dir` threads
//! per directory, all directories at once (a line every few seconds says how far each
//! directory is, with an estimate of the time left, and one when it is done). A directory that fails (I/O error, locked by another
//! process) is reported offline and its logs are not served, as Kafka does; the open fails only
//! if every directory is offline.
//!
//! Logs are shared as [`SharedLog`] (`Arc<RwLock<Log>>`): fetches take the read lock, appends
//! and truncations the write lock. The manager's periodic duties (checkpoints, time-based
//! flush, retention) are methods the broker calls from its scheduler; [`LogManager::shutdown`]
//! flushes everything and writes the clean-shutdown marker.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::config::LogConfig;
use crate::dir::{DirHandle, TopicPartition};
use crate::epoch::sync_dir;
use crate::error::{LogError, Result};
use crate::log::{Log, RetentionOutcome};
use crate::progress::Pace;

/// A log shared between request handlers.
pub type SharedLog = Arc<RwLock<Log>>;

#[derive(Debug)]
struct Entry {
    dir: usize,
    log: SharedLog,
}

/// All partition logs of a broker.
#[derive(Debug)]
pub struct LogManager {
    dirs: Vec<Option<Arc<DirHandle>>>,
    dir_paths: Vec<PathBuf>,
    logs: RwLock<BTreeMap<TopicPartition, Entry>>,
    offline: Mutex<Vec<(PathBuf, String)>>,
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}
fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// Lists the partition directories of a log directory, removing `…-delete` leftovers.
fn partition_dirs(dir: &Path) -> Result<Vec<TopicPartition>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| LogError::io("list", dir, e))? {
        let entry = entry.map_err(|e| LogError::io("list", dir, e))?;
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with("-delete") {
            // A deletion that a crash interrupted.
            if let Err(e) = fs::remove_dir_all(entry.path()) {
                tracing::warn!(dir = %entry.path().display(), error = %e,
                    "could not remove deleted partition directory");
            }
            continue;
        }
        match TopicPartition::from_dir_name(name) {
            Some(tp) => out.push(tp),
            None => tracing::debug!(name, "not a partition directory; ignored"),
        }
    }
    out.sort();
    Ok(out)
}

impl LogManager {
    /// Opens every log under `dirs`, recovering with `recovery_threads_per_dir` threads per
    /// directory. `config_for` gives each partition its settings.
    pub fn open<F>(dirs: &[PathBuf], recovery_threads_per_dir: usize, config_for: F) -> Result<Self>
    where
        F: Fn(&TopicPartition) -> LogConfig + Sync,
    {
        let threads = recovery_threads_per_dir.max(1);
        let mut handles = Vec::new();
        let mut offline = Vec::new();
        let mut first_error = None;
        for d in dirs {
            match DirHandle::acquire(d) {
                Ok(h) => handles.push(Some(h)),
                Err(e) => {
                    tracing::error!(dir = %d.display(), error = %e, "log directory offline");
                    offline.push((d.clone(), e.to_string()));
                    handles.push(None);
                    first_error.get_or_insert(e);
                }
            }
        }
        let started = std::time::Instant::now();
        let config_for = &config_for;
        type DirResult = Result<Vec<(TopicPartition, Log)>>;
        let results: Vec<Option<DirResult>> = std::thread::scope(|s| {
            let jobs: Vec<_> = handles
                .iter()
                .map(|h| {
                    h.as_ref().map(|h| {
                        let h = h.clone();
                        s.spawn(move || open_dir(h, threads, config_for))
                    })
                })
                .collect();
            jobs.into_iter()
                .map(|j| {
                    j.map(|j| {
                        j.join()
                            .unwrap_or_else(|_| Err(LogError::Offline(PathBuf::from("<panic>"))))
                    })
                })
                .collect()
        });
        let mut logs = BTreeMap::new();
        for (i, r) in results.into_iter().enumerate() {
            let Some(r) = r else { continue };
            match r {
                Ok(opened) => {
                    if !opened.is_empty() {
                        tracing::info!(dir = %dirs[i].display(), partitions = opened.len(),
                            took_ms = started.elapsed().as_millis() as u64, "logs loaded");
                    }
                    for (tp, log) in opened {
                        if let Some(other) = logs.get(&tp) {
                            let other: &Entry = other;
                            return Err(LogError::Corrupt {
                                path: dirs[i].join(tp.dir_name()),
                                position: 0,
                                reason: format!(
                                    "partition {tp} also exists in {}",
                                    dirs[other.dir].display()
                                ),
                            });
                        }
                        logs.insert(
                            tp,
                            Entry {
                                dir: i,
                                log: Arc::new(RwLock::new(log)),
                            },
                        );
                    }
                }
                Err(e) => {
                    tracing::error!(dir = %dirs[i].display(), error = %e, "log directory offline");
                    offline.push((dirs[i].clone(), e.to_string()));
                    handles[i] = None;
                    first_error.get_or_insert(e);
                }
            }
        }
        if handles.iter().all(Option::is_none) {
            return Err(first_error.unwrap_or_else(|| LogError::Offline(PathBuf::new())));
        }
        Ok(LogManager {
            dirs: handles,
            dir_paths: dirs.to_vec(),
            logs: RwLock::new(logs),
            offline: Mutex::new(offline),
        })
    }

    /// The log of `tp`, if it exists.
    pub fn get(&self, tp: &TopicPartition) -> Option<SharedLog> {
        read(&self.logs).get(tp).map(|e| e.log.clone())
    }

    /// The log of `tp`, created in the online directory with the fewest logs if missing.
    pub fn get_or_create(&self, tp: &TopicPartition, config: LogConfig) -> Result<SharedLog> {
        if let Some(l) = self.get(tp) {
            return Ok(l);
        }
        let mut logs = write(&self.logs);
        if let Some(e) = logs.get(tp) {
            return Ok(e.log.clone());
        }
        let mut counts = vec![0usize; self.dirs.len()];
        for e in logs.values() {
            counts[e.dir] += 1;
        }
        let (i, handle) = self
            .dirs
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.as_ref().map(|h| (i, h)))
            .min_by_key(|(i, _)| counts[*i])
            .ok_or_else(|| LogError::Offline(PathBuf::new()))?;
        let log = Log::open_in(handle.clone(), tp.clone(), config)?;
        sync_dir(handle.path())?;
        let shared = Arc::new(RwLock::new(log));
        logs.insert(
            tp.clone(),
            Entry {
                dir: i,
                log: shared.clone(),
            },
        );
        Ok(shared)
    }

    /// Deletes a partition's log and directory. Callers must have stopped using the log (a
    /// handle still held keeps writing to unlinked files).
    pub fn delete(&self, tp: &TopicPartition) -> Result<()> {
        let Some(entry) = write(&self.logs).remove(tp) else {
            return Ok(());
        };
        let Some(handle) = self.dirs[entry.dir].clone() else {
            return Ok(());
        };
        let dir = write(&entry.log).dir().to_path_buf();
        handle.remove(tp);
        handle.write_checkpoints()?;
        // Rename first (one atomic step), so a crash leaves a `-delete` directory that the
        // next open removes, never a half-deleted log.
        let nanos = crate::log::now_ms();
        let doomed = handle
            .path()
            .join(format!("{}.{nanos}-delete", tp.dir_name()));
        fs::rename(&dir, &doomed).map_err(|e| LogError::io("rename", &dir, e))?;
        sync_dir(handle.path())?;
        fs::remove_dir_all(&doomed).map_err(|e| LogError::io("delete", &doomed, e))
    }

    /// Every open log.
    pub fn logs(&self) -> Vec<(TopicPartition, SharedLog)> {
        read(&self.logs)
            .iter()
            .map(|(tp, e)| (tp.clone(), e.log.clone()))
            .collect()
    }

    pub fn partitions(&self) -> Vec<TopicPartition> {
        read(&self.logs).keys().cloned().collect()
    }

    /// The log directories, as given.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dir_paths
    }

    /// Directories that are offline, with the reason.
    pub fn offline_dirs(&self) -> Vec<(PathBuf, String)> {
        self.offline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The log directory holding `tp`.
    pub fn dir_of(&self, tp: &TopicPartition) -> Option<PathBuf> {
        read(&self.logs)
            .get(tp)
            .map(|e| self.dir_paths[e.dir].clone())
    }

    /// Writes the recovery-point, log-start-offset and high-watermark checkpoints of every
    /// directory (Kafka does this every `log.flush.offset.checkpoint.interval.ms`).
    pub fn checkpoint(&self) -> Result<()> {
        for (_, log) in self.logs() {
            read(&log).update_checkpoint();
        }
        for h in self.dirs.iter().flatten() {
            h.write_checkpoints()?;
        }
        Ok(())
    }

    /// Flushes the logs whose `flush_interval_ms` has passed.
    pub fn flush_due(&self, now_ms: u64) -> Result<()> {
        for (_, log) in self.logs() {
            write(&log).flush_if_due(now_ms)?;
        }
        Ok(())
    }

    /// One retention pass over every log.
    pub fn enforce_retention(
        &self,
        now_ms: u64,
    ) -> Vec<(TopicPartition, Result<RetentionOutcome>)> {
        self.logs()
            .into_iter()
            .map(|(tp, log)| {
                let r = write(&log).enforce_retention(now_ms);
                (tp, r)
            })
            .collect()
    }

    /// Flushes every log, writes the checkpoints and, in each directory where all of that
    /// succeeded, the clean-shutdown marker, so the next start skips recovery there.
    pub fn shutdown(self) -> Result<()> {
        let mut failed = vec![false; self.dirs.len()];
        let mut first_error = None;
        for e in read(&self.logs).values() {
            let mut log = write(&e.log);
            if let Err(err) = log.flush() {
                failed[e.dir] = true;
                first_error.get_or_insert(err);
            }
            log.update_checkpoint();
        }
        for (i, h) in self.dirs.iter().enumerate() {
            let Some(h) = h else { continue };
            let r = h.write_checkpoints().and_then(|_| {
                if failed[i] {
                    Ok(())
                } else {
                    h.write_clean_shutdown_marker()
                }
            });
            if let Err(err) = r {
                first_error.get_or_insert(err);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Opens all logs of one directory with `threads` workers.
fn open_dir<F>(
    handle: Arc<DirHandle>,
    threads: usize,
    config_for: &F,
) -> Result<Vec<(TopicPartition, Log)>>
where
    F: Fn(&TopicPartition) -> LogConfig + Sync,
{
    let tps = partition_dirs(handle.path())?;
    let present: HashSet<TopicPartition> = tps.iter().cloned().collect();
    handle.retain(&present);
    let total = tps.len() as u64;
    let queue = Mutex::new(tps);
    let opened = Mutex::new(Vec::new());
    let error = Mutex::new(None);
    let pace = Mutex::new(Pace::start());
    let report = |done: u64| {
        let mut pace = pace.lock().unwrap_or_else(|p| p.into_inner());
        if done < total && pace.due() {
            tracing::info!(dir = %handle.path().display(), done, total,
                elapsed_s = pace.elapsed().as_secs(),
                remaining_s = pace.remaining_secs(done, total),
                "loading logs");
        }
    };
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                if error.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                    return;
                }
                let Some(tp) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop() else {
                    return;
                };
                let config = config_for(&tp);
                match Log::open_in(handle.clone(), tp.clone(), config) {
                    Ok(log) => {
                        let done = {
                            let mut opened = opened.lock().unwrap_or_else(|p| p.into_inner());
                            opened.push((tp, log));
                            opened.len() as u64
                        };
                        report(done);
                    }
                    Err(e) => {
                        error
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(opened.into_inner().unwrap_or_else(|p| p.into_inner()))
}
