//! The task that owns one shard: replays its `__consumer_offsets` partition
//! on start, then applies operations in arrival order, writes what they
//! produce as one batch, waits until it is durable, and only then releases
//! the replies. Timers fire from the shard's next deadline.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::shard::{GroupShard, Outcome, Record};
use super::Op;
use crate::api::Code;
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

    /// Applies one operation. A bug that panics inside it must not take the
    /// shard down: the panic is contained, the operation's caller gets
    /// COORDINATOR_NOT_AVAILABLE (its reply is dropped), and `false` tells
    /// the loop to reload the shard.
    fn apply(&mut self, op: Op, out: &mut Outcome) -> bool {
        let now = self.clock.now_ms();
        let before = (out.records.len(), out.replies.len());
        let shard = &mut self.shard;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(shard, now, out)));
        if result.is_err() {
            tracing::error!(
                partition = self.log.partition,
                "a group operation panicked; reloading the shard"
            );
            out.records.truncate(before.0);
            out.replies.truncate(before.1);
            return false;
        }
        true
    }

    /// Writes the outcome's records, waits for durability, then replies.
    /// `false`: the shard could not be rebuilt after a failed write and the
    /// task must stop.
    async fn finish(&mut self, out: Outcome) -> bool {
        let Outcome {
            records,
            txn_writes,
            replies,
        } = out;
        let now = self.clock.now_ms();
        let written = runtime::write_outcome(&self.log, &self.logs, now, &records, &txn_writes);
        let (error, healthy) = match written.await {
            Ok(()) => (None, true),
            Err(e) => {
                tracing::error!(
                    partition = self.log.partition,
                    "writing group records failed: {e}; reloading the shard"
                );
                // Memory already holds what failed to be written: rebuild it
                // from what the log really has.
                let healthy = self.reload_or_stop();
                (Some(Code::CoordinatorNotAvailable.code()), healthy)
            }
        };
        for reply in replies {
            reply(error);
        }
        healthy
    }

    /// Rebuilds the shard from its partition. If that fails the shard must
    /// not serve from memory it cannot trust (an empty shard would answer
    /// "no committed offset" and consumers would reset): the task stops, and
    /// every request for its groups gets COORDINATOR_NOT_AVAILABLE.
    fn reload_or_stop(&mut self) -> bool {
        match self.reload() {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(
                    partition = self.log.partition,
                    "loading group shard failed, its groups are unavailable: {e}"
                );
                false
            }
        }
    }

    async fn write(&self, records: &[Record]) -> anyhow::Result<()> {
        let now = self.clock.now_ms();
        runtime::write_outcome(&self.log, &self.logs, now, records, &[]).await
    }

    /// Rebuilds the shard from its partition.
    fn reload(&mut self) -> anyhow::Result<()> {
        let now = self.clock.now_ms();
        let mut shard = GroupShard::new(self.log.partition, self.config.clone());
        let records = runtime::replay(&self.log, |entry| {
            // TXN-GROUP: transactional records and markers.
            if let Replayed::Record { key, value, .. } = entry {
                shard.replay(&key, value.as_deref(), now);
            }
        })?;
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
        let n = snapshot.len();
        self.write(&snapshot).await?;
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
