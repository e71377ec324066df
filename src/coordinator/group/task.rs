//! The task that owns one shard: replays its `__consumer_offsets` partition
//! on start, then applies operations in arrival order, writes what they
//! produce as one batch, waits until it is durable, and only then releases
//! the replies. Timers fire from the shard's next deadline.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::shard::{GroupShard, Outcome, SnapshotChunk};
use super::Op;
use crate::config::GroupConfig;
use crate::coordinator::runtime::{self, Replayed};
use crate::coordinator::Clock;
use crate::log::{LogManager, PartitionLog};

/// Operations applied before their records are written together.
const MAX_OPS_PER_WRITE: usize = 256;
/// Rewrite the partition compactly once it holds this many times more
/// records than are live (and at least `COMPACT_MIN_RECORDS`).
const COMPACT_RATIO: i64 = 4;
const COMPACT_MIN_RECORDS: i64 = 10_000;

pub struct ShardTask {
    pub shard: GroupShard,
    pub log: Arc<PartitionLog>,
    pub logs: Arc<LogManager>,
    pub clock: Arc<dyn Clock>,
    pub config: GroupConfig,
}

impl ShardTask {
    pub async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Op>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        if !self.reload_or_stop() {
            return;
        }
        let mut retention = tokio::time::interval(Duration::from_millis(
            self.config.offsets_retention_check_interval_ms.max(1) as u64,
        ));
        retention.tick().await;
        loop {
            let now = self.clock.now_ms();
            let wait = self
                .shard
                .next_deadline()
                .map(|d| Duration::from_millis((d - now).clamp(0, 3_600_000) as u64))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                op = rx.recv() => {
                    let Some(op) = op else { break };
                    let mut out = Outcome::default();
                    let mut healthy = self.apply(op, &mut out);
                    let mut n = 1;
                    while healthy && n < MAX_OPS_PER_WRITE {
                        match rx.try_recv() {
                            Ok(op) => healthy = self.apply(op, &mut out),
                            Err(_) => break,
                        }
                        n += 1;
                    }
                    // After a panic the operations before the failed one are
                    // written and the shard's memory is rebuilt from the log.
                    if !self.finish(out).await || (!healthy && !self.reload_or_stop()) {
                        return;
                    }
                }
                _ = tokio::time::sleep(wait) => {
                    let mut out = Outcome::default();
                    self.shard.tick(self.clock.now_ms(), &mut out);
                    if !self.finish(out).await {
                        return;
                    }
                }
                _ = retention.tick() => {
                    let mut out = Outcome::default();
                    let n = self.shard.expire_offsets(self.clock.now_ms(), &mut out);
                    if n > 0 {
                        tracing::info!(partition = self.log.partition, expired = n, "expired committed offsets");
                    }
                    if !self.finish(out).await {
                        return;
                    }
                    self.maybe_compact().await;
                }
                _ = shutdown.changed() => break,
            }
        }
    }

    fn apply(&mut self, op: Op, out: &mut Outcome) -> bool {
        let now = self.clock.now_ms();
        runtime::apply_contained(&mut self.shard, op, now, out, &self.log)
    }

    /// Writes the outcome, waits for durability, then replies. `false`: the
    /// shard could not be rebuilt after a failed write; the task stops.
    async fn finish(&mut self, out: Outcome) -> bool {
        let now = self.clock.now_ms();
        match runtime::write_and_reply(&self.log, &self.logs, now, out).await {
            Ok(()) => {
                // What the next operations write stands after this.
                self.shard.outcome_written();
                true
            }
            Err(_) => self.reload_or_stop(),
        }
    }

    fn reload_or_stop(&mut self) -> bool {
        let result = self.reload();
        runtime::reloaded(result, &self.log)
    }

    async fn write(&self, chunk: &SnapshotChunk) -> anyhow::Result<()> {
        let now = self.clock.now_ms();
        runtime::write_outcome(
            &self.log,
            &self.logs,
            now,
            &chunk.records,
            &chunk.txn_writes,
        )
        .await
    }

    /// Rebuilds the shard from its partition.
    fn reload(&mut self) -> anyhow::Result<()> {
        let now = self.clock.now_ms();
        let mut shard = GroupShard::new(self.log.partition, self.config.clone());
        let records = runtime::replay(&self.log, |entry| match entry {
            Replayed::Record {
                offset,
                key,
                value,
                txn,
            } => shard.replay_record(offset, &key, value.as_deref(), txn, now),
            // Offsets still pending at the end stay pending: the transaction
            // coordinator completes the transaction on its recovery.
            Replayed::Marker { offset, marker } => shard.replay_marker(offset, &marker),
        })?;
        shard.loaded(self.log.log_end_offset());
        tracing::debug!(
            partition = self.log.partition,
            records,
            groups = shard.group_count(),
            "group shard loaded"
        );
        self.shard = shard;
        Ok(())
    }

    /// Keeps the partition from growing without bound: when it holds many
    /// more records than are live, roll, rewrite the live state into the new
    /// segment, make it durable, and drop everything before it.
    async fn maybe_compact(&mut self) {
        let total = self.log.log_end_offset() - self.log.log_start_offset();
        if !worth_compacting(total, self.shard.live_records() as i64) {
            return;
        }
        if let Err(e) = self.compact().await {
            tracing::error!(
                partition = self.log.partition,
                "compacting __consumer_offsets failed: {e}"
            );
        }
    }

    pub async fn compact(&mut self) -> anyhow::Result<()> {
        self.log.roll_now(self.clock.now_ms())?;
        let start = self.log.log_end_offset();
        let snapshot = self.shard.snapshot();
        let n: usize = snapshot.iter().map(SnapshotChunk::len).sum();
        // In order: where a partition has both a committed and pending
        // transactional offsets, which record is newer must not change.
        for chunk in &snapshot {
            self.write(chunk).await?;
        }
        // The rewrite must be on disk before what it replaces is deleted.
        self.logs.flush(self.log.clone()).await?;
        self.log.delete_records_before(start)?;
        tracing::info!(
            partition = self.log.partition,
            live = n,
            new_start = start,
            "compacted group shard"
        );
        Ok(())
    }
}

/// A partition of `total` records of which `live` are current is rewritten
/// once it is both large and mostly dead.
fn worth_compacting(total: i64, live: i64) -> bool {
    total >= COMPACT_MIN_RECORDS && total >= COMPACT_RATIO * live.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;
    use crate::coordinator::group::shard::{CommitPartition, CommitRequest, TxnCommitRequest};
    use crate::coordinator::ManualClock;
    use crate::metadata::MetadataImage;

    fn partitions(offset: i64) -> Vec<CommitPartition> {
        vec![CommitPartition {
            topic: "t".into(),
            partition: 0,
            offset,
            leader_epoch: -1,
            metadata: None,
            error: 0,
        }]
    }

    fn txn_commit(pid: i64, offset: i64) -> Op {
        Box::new(move |s: &mut GroupShard, now, out: &mut Outcome| {
            let req = TxnCommitRequest {
                group_id: "g".into(),
                producer_id: pid,
                producer_epoch: 0,
                generation: -1,
                member_id: String::new(),
                group_instance_id: None,
                partitions: partitions(offset),
            };
            assert_eq!(s.txn_commit(req, now, out), [0]);
        })
    }

    fn commit(offset: i64) -> Op {
        Box::new(move |s: &mut GroupShard, now, out: &mut Outcome| {
            let req = CommitRequest {
                group_id: "g".into(),
                generation: -1,
                member_id: String::new(),
                group_instance_id: None,
                retention_ms: -1,
                api_version: 8,
                partitions: partitions(offset),
            };
            assert_eq!(s.commit(req, now, out), [0]);
        })
    }

    fn end_txn(pid: i64, commit: bool) -> Op {
        Box::new(move |s: &mut GroupShard, _, out: &mut Outcome| {
            assert_eq!(s.complete_txn(pid, 0, 0, commit, out), Ok(()));
        })
    }

    fn offset(shard: &GroupShard, stable: bool) -> (i64, i16) {
        let topics = [("t".to_string(), vec![0])];
        let o = &shard.fetch_offsets_with("g", Some(&topics), stable)[0].1[0];
        (o.offset, o.error)
    }

    const UNSTABLE: i16 = 88;

    async fn run(task: &mut ShardTask, ops: Vec<Op>) {
        let mut out = Outcome::default();
        for op in ops {
            assert!(task.apply(op, &mut out));
        }
        assert!(task.finish(out).await);
    }

    /// Transactional records and markers through the real partition log:
    /// written, replayed, and kept by the compacting rewrite.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn txn_offsets_replay_and_survive_the_rewrite_on_a_real_log() {
        let root = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let broker = BrokerConfig::default_for_tests(root.path().into());
        let logs = Arc::new(LogManager::open(root.path(), &MetadataImage::default()).unwrap());
        let (_stop, shutdown) = watch::channel(false);
        logs.start_background(60_000, shutdown);
        let log = PartitionLog::create(
            data.path(),
            "__consumer_offsets",
            0,
            uuid::Uuid::nil(),
            broker.topic_defaults.clone(),
            0,
        )
        .unwrap();
        let mut task = ShardTask {
            shard: GroupShard::new(0, broker.group.clone()),
            log: Arc::new(log),
            logs,
            clock: Arc::new(ManualClock::new(1_000_000)),
            config: broker.group.clone(),
        };
        // A committed transaction (5); then PID 2's pending 9 and, in the
        // same write, a plain commit (7) that the log holds before it.
        run(&mut task, vec![txn_commit(1, 5), end_txn(1, true)]).await;
        run(&mut task, vec![txn_commit(2, 9), commit(7)]).await;
        assert_eq!(offset(&task.shard, false), (7, 0));
        assert_eq!(offset(&task.shard, true), (-1, UNSTABLE));

        // Replayed from the partition: the same committed and pending state.
        task.reload().unwrap();
        assert_eq!(offset(&task.shard, false), (7, 0));
        assert_eq!(offset(&task.shard, true), (-1, UNSTABLE));
        assert!(task.shard.has_pending_txn(2));

        // The rewrite keeps the pending offset, after the plain one.
        let before = task.log.log_end_offset();
        task.compact().await.unwrap();
        assert_eq!(task.log.log_start_offset(), before);
        task.reload().unwrap();
        assert_eq!(offset(&task.shard, true), (-1, UNSTABLE));
        run(&mut task, vec![end_txn(2, true)]).await;
        assert_eq!(offset(&task.shard, false), (9, 0));
        task.reload().unwrap();
        assert_eq!(offset(&task.shard, true), (9, 0));
    }

    #[test]
    fn compaction_needs_a_large_and_mostly_dead_partition() {
        let min = COMPACT_MIN_RECORDS;
        assert!(!worth_compacting(min - 1, 1));
        assert!(worth_compacting(min, 1));
        let live = min / COMPACT_RATIO;
        assert!(worth_compacting(min, live));
        assert!(!worth_compacting(min, live + 1));
        assert!(worth_compacting(min, 0), "an empty shard with a long log");
    }
}
