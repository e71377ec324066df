//! The partition log engine (DESIGN §3) and its manager: which partitions
//! exist on this node, start-up recovery, checkpoints, retention, and the
//! group-committed flusher.
//!
//! Files in `log.dirs` besides the `<topic>-<partition>/` directories:
//! `recovery-point-offset-checkpoint` and `log-start-offset-checkpoint`
//! (Kafka's format, see [`fsutil`]) and `.runnel_cleanshutdown`, present only
//! between a clean shutdown and the next start.

pub mod batch;
pub mod cleaner;
pub mod compression;
pub mod control;
pub mod fsutil;
pub mod index;
pub mod partition;
pub mod producer_state;
mod reader;
pub mod segment;
pub mod txn_index;
pub mod txn_state;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::metadata::{MetadataImage, TopicInfo};
pub use partition::{now_ms, Appended, Isolation, LogError, PartitionLog, ReadResult};

pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_CHECKPOINT: &str = "log-start-offset-checkpoint";
pub const CLEAN_SHUTDOWN_MARKER: &str = ".runnel_cleanshutdown";

type FlushRequest = (Arc<PartitionLog>, oneshot::Sender<io::Result<()>>);

pub struct LogManager {
    dir: PathBuf,
    partitions: RwLock<HashMap<(Uuid, i32), Arc<PartitionLog>>>,
    flush_tx: mpsc::UnboundedSender<FlushRequest>,
    flush_rx: parking_lot::Mutex<Option<mpsc::UnboundedReceiver<FlushRequest>>>,
    cleaner: cleaner::Cleaner,
}

impl LogManager {
    /// Opens every partition of every topic in `image`, recovering after an
    /// unclean shutdown, and removes directories of deleted topics.
    pub fn open(dir: &Path, image: &MetadataImage) -> io::Result<LogManager> {
        fs::create_dir_all(dir)?;
        let marker = dir.join(CLEAN_SHUTDOWN_MARKER);
        let clean = marker.exists();
        let recovery_points = fsutil::read_checkpoint(&dir.join(RECOVERY_POINT_CHECKPOINT));
        let log_starts = fsutil::read_checkpoint(&dir.join(LOG_START_CHECKPOINT));
        if !clean && !image.topics.is_empty() {
            tracing::warn!(dir = %dir.display(), "no clean shutdown marker: recovering unflushed segments");
        }
        let now = now_ms();
        let mut partitions = HashMap::new();
        let mut expected_dirs = std::collections::HashSet::new();
        for info in image.topics.values() {
            for p in 0..info.partitions {
                let pdir = partition::partition_dir(dir, &info.name, p);
                expected_dirs.insert(pdir.clone());
                let key = (info.name.clone(), p);
                let log = if pdir.exists() {
                    PartitionLog::open(
                        dir,
                        &info.name,
                        p,
                        info.id,
                        info.config.clone(),
                        partition::OpenOptions {
                            recovery_point: recovery_points.get(&key).copied(),
                            log_start_offset: log_starts.get(&key).copied(),
                            clean_shutdown: clean,
                            now_ms: now,
                        },
                    )?
                } else {
                    tracing::warn!(topic = %info.name, partition = p, "partition directory missing; creating it empty");
                    PartitionLog::create(dir, &info.name, p, info.id, info.config.clone(), now)?
                };
                partitions.insert((info.id, p), Arc::new(log));
            }
        }
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir()
                && !expected_dirs.contains(&entry.path())
                && is_partition_dir(&entry.path())
            {
                tracing::info!(path = %entry.path().display(), "removing directory of a deleted or never-created topic");
                fs::remove_dir_all(entry.path())?;
            }
        }
        // From here on a crash must be detected at the next start.
        if clean {
            fs::remove_file(&marker)?;
            fsutil::sync_dir(dir)?;
        }
        let (flush_tx, flush_rx) = mpsc::unbounded_channel();
        let manager = LogManager {
            dir: dir.to_path_buf(),
            partitions: RwLock::new(partitions),
            flush_tx,
            flush_rx: parking_lot::Mutex::new(Some(flush_rx)),
            cleaner: cleaner::Cleaner::new(dir),
        };
        manager.write_checkpoints()?;
        Ok(manager)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn get(&self, topic_id: &Uuid, partition: i32) -> Option<Arc<PartitionLog>> {
        self.partitions.read().get(&(*topic_id, partition)).cloned()
    }

    pub fn all(&self) -> Vec<Arc<PartitionLog>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Creates the (empty) partition logs of a new topic.
    pub fn create_topic(&self, info: &TopicInfo) -> io::Result<()> {
        let now = now_ms();
        let mut created = Vec::new();
        for p in 0..info.partitions {
            created.push(Arc::new(PartitionLog::create(
                &self.dir,
                &info.name,
                p,
                info.id,
                info.config.clone(),
                now,
            )?));
        }
        let mut map = self.partitions.write();
        for log in created {
            map.insert((info.id, log.partition), log);
        }
        Ok(())
    }

    /// Creates the (empty) logs of partitions `from..info.partitions` of an
    /// existing topic (CreatePartitions). On failure the ones already made
    /// are removed again, so a retry starts clean.
    pub fn create_partitions(&self, info: &TopicInfo, from: i32) -> io::Result<()> {
        let now = now_ms();
        let mut created = Vec::new();
        for p in from..info.partitions {
            match PartitionLog::create(&self.dir, &info.name, p, info.id, info.config.clone(), now)
            {
                Ok(log) => created.push(Arc::new(log)),
                Err(e) => {
                    for log in created {
                        let _ = fs::remove_dir_all(log.dir());
                    }
                    return Err(e);
                }
            }
        }
        let mut map = self.partitions.write();
        for log in created {
            map.insert((info.id, log.partition), log);
        }
        Ok(())
    }

    /// Forgets a topic's partitions and removes their data: each directory is
    /// renamed (so the name is free at once, as Kafka does with `-delete`)
    /// and removed.
    pub fn delete_topic(&self, info: &TopicInfo) -> io::Result<()> {
        self.forget_partitions(info, 0)
    }

    /// Forgets partitions `from..info.partitions` and removes their data, as
    /// [`LogManager::delete_topic`] does; undoes
    /// [`LogManager::create_partitions`] when the metadata write fails.
    pub fn forget_partitions(&self, info: &TopicInfo, from: i32) -> io::Result<()> {
        let removed: Vec<_> = {
            let mut map = self.partitions.write();
            (from..info.partitions)
                .filter_map(|p| map.remove(&(info.id, p)))
                .collect()
        };
        for log in removed {
            log.mark_deleted();
            self.cleaner.forget(&log.topic, log.partition);
            let src = log.dir().to_path_buf();
            let doomed = self.dir.join(format!(
                "{}-{}.{}-delete",
                info.name,
                log.partition,
                info.id.simple()
            ));
            match fs::rename(&src, &doomed) {
                Ok(()) => fs::remove_dir_all(&doomed)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        fsutil::sync_dir(&self.dir)
    }

    /// Waits until `log` has been fsynced up to at least its current end.
    /// Concurrent requests share fsyncs (group commit).
    pub async fn flush(&self, log: Arc<PartitionLog>) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        if self.flush_tx.send((log, tx)).is_err() {
            return Err(io::Error::other("flusher stopped"));
        }
        rx.await
            .unwrap_or_else(|_| Err(io::Error::other("flusher stopped")))
    }

    /// Fsyncs `log` in the background (after a roll: the sealed segment
    /// moves the recovery point; nothing waits for it).
    pub fn flush_in_background(self: &Arc<Self>, log: Arc<PartitionLog>) {
        let logs = self.clone();
        tokio::spawn(async move {
            if let Err(e) = logs.flush(log.clone()).await {
                tracing::error!(topic = %log.topic, partition = log.partition, "flush after roll failed: {e}");
            }
        });
    }

    pub fn write_checkpoints(&self) -> io::Result<()> {
        let logs = self.all();
        let mut rp = Vec::with_capacity(logs.len());
        let mut ls = Vec::with_capacity(logs.len());
        for log in logs {
            rp.push((log.topic.clone(), log.partition, log.recovery_point()));
            ls.push((log.topic.clone(), log.partition, log.log_start_offset()));
        }
        fsutil::write_checkpoint(&self.dir.join(RECOVERY_POINT_CHECKPOINT), &rp)?;
        fsutil::write_checkpoint(&self.dir.join(LOG_START_CHECKPOINT), &ls)
    }

    pub fn apply_retention(&self, now: i64) -> usize {
        let mut deleted = 0;
        for log in self.all() {
            match log.apply_retention(now) {
                Ok(n) => deleted += n,
                Err(e) => {
                    tracing::error!(topic = %log.topic, partition = log.partition, "retention failed: {e}")
                }
            }
        }
        deleted
    }

    /// The log cleaner's settings (`log.cleaner.*`); read by the cleaner
    /// task at every round.
    pub fn set_cleaner_config(&self, config: cleaner::CleanerConfig) {
        *self.cleaner.config.lock() = config;
    }

    /// Log cleaner counters (metrics).
    pub fn cleaner_stats(&self) -> cleaner::CleanerStats {
        self.cleaner.stats()
    }

    /// The log cleaner (tests and tools clean on demand through it).
    pub fn cleaner(&self) -> &cleaner::Cleaner {
        &self.cleaner
    }

    /// Starts the flusher, the retention task, the `flush.ms` timer and the
    /// log cleaner.
    pub fn start_background(
        self: &Arc<Self>,
        retention_check_interval_ms: i64,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        if let Some(mut rx) = self.flush_rx.lock().take() {
            tasks.push(tokio::spawn(async move {
                while let Some(first) = rx.recv().await {
                    let mut batch = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        batch.push(more);
                    }
                    let mut logs: Vec<Arc<PartitionLog>> = Vec::new();
                    for (log, _) in &batch {
                        if !logs.iter().any(|l| Arc::ptr_eq(l, log)) {
                            logs.push(log.clone());
                        }
                    }
                    let (logs, results) = tokio::task::spawn_blocking(move || {
                        let results: Vec<_> = logs
                            .iter()
                            .map(|l| l.flush().map_err(|e| e.to_string()))
                            .collect();
                        (logs, results)
                    })
                    .await
                    .unwrap_or_else(|_| (Vec::new(), Vec::new()));
                    for (log, reply) in batch {
                        let result = match logs
                            .iter()
                            .position(|l| Arc::ptr_eq(l, &log))
                            .and_then(|i| results.get(i))
                        {
                            Some(Ok(())) => Ok(()),
                            Some(Err(e)) => Err(io::Error::other(e.clone())),
                            None => Err(io::Error::other("flush task failed")),
                        };
                        let _ = reply.send(result);
                    }
                }
            }));
        }
        let manager = self.clone();
        let mut stop = shutdown.clone();
        let interval = Duration::from_millis(retention_check_interval_ms.max(1) as u64);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let m = manager.clone();
                        let _ = tokio::task::spawn_blocking(move || {
                            let n = m.apply_retention(now_ms());
                            if n > 0 {
                                tracing::info!("retention deleted {n} segments");
                            }
                            if let Err(e) = m.write_checkpoints() {
                                tracing::error!("writing checkpoints failed: {e}");
                            }
                        }).await;
                    }
                    _ = stop.changed() => break,
                }
            }
        }));
        tasks.push(self.start_cleaner(shutdown.clone()));
        let manager = self.clone();
        let mut stop = shutdown;
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let now = now_ms();
                        for log in manager.all() {
                            if log.flush_due(now) {
                                if let Err(e) = manager.flush(log.clone()).await {
                                    tracing::error!(topic = %log.topic, partition = log.partition, "flush failed: {e}");
                                }
                            }
                        }
                    }
                    _ = stop.changed() => break,
                }
            }
        }));
        tasks
    }

    /// The cleaner task (Kafka's `CleanerThread`, one of it): cleans the
    /// dirtiest eligible compacted partition on a blocking thread, and backs
    /// off `log.cleaner.backoff.ms` when there is none.
    fn start_cleaner(
        self: &Arc<Self>,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let manager = self.clone();
        tokio::spawn(async move {
            loop {
                let config = manager.cleaner.config.lock().clone();
                let mut cleaned = false;
                if config.enable {
                    let m = manager.clone();
                    cleaned = tokio::task::spawn_blocking(move || {
                        let logs = m.all();
                        m.cleaner.retain(&logs);
                        m.cleaner.clean_dirtiest(&logs, now_ms())
                    })
                    .await
                    .unwrap_or(false);
                }
                let pause = if cleaned {
                    0
                } else {
                    config.backoff_ms.max(1) as u64
                };
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(pause)) => {}
                    _ = stop.changed() => break,
                }
            }
        })
    }

    /// Clean shutdown: every partition sealed, snapshotted and fsynced, the
    /// checkpoints written, then the clean-shutdown marker.
    pub fn shutdown(&self) -> io::Result<()> {
        for log in self.all() {
            log.close()?;
        }
        self.write_checkpoints()?;
        fsutil::write_atomically(&self.dir.join(CLEAN_SHUTDOWN_MARKER), b"")?;
        Ok(())
    }
}

#[cfg(test)]
mod cleaner_tests;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod txn_tests;

/// Only directories that look like ours are ever removed at start-up: named
/// `<topic>-<partition>` (optionally with a `.<id>-delete` suffix) and holding
/// a `partition.metadata` file. Anything else in `log.dirs` is left alone.
fn is_partition_dir(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let base = match name.strip_suffix("-delete") {
        Some(rest) => rest.rsplit_once('.').map_or(rest, |(b, _)| b),
        None => name,
    };
    let named_like_partition = base.rsplit_once('-').is_some_and(|(topic, p)| {
        !topic.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
    });
    named_like_partition && path.join("partition.metadata").is_file()
}
