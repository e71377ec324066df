//! The task that owns one transaction shard: replays its
//! `__transaction_state` partition on start (and finishes transactions that
//! were preparing), applies operations in arrival order, writes their records
//! and releases the replies once durable, writes the COMMIT/ABORT markers of
//! prepared transactions, and runs the timeout and expiration timers.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::shard::{MarkerJob, Producer, TxnShard};
use crate::api::Code;
use crate::broker::Broker;
use crate::config::TxnConfig;
use crate::coordinator::group::OFFSETS_TOPIC;
use crate::coordinator::runtime::{self, Op, Outcome, Replayed};
use crate::coordinator::Clock;
use crate::log::control::{Marker, MarkerType};
use crate::log::{LogError, PartitionLog};

/// Operations applied before their records are written together.
const MAX_OPS_PER_WRITE: usize = 256;
/// Rewrite the partition once it holds this many times more records than
/// are live (and at least `COMPACT_MIN_RECORDS`).
const COMPACT_RATIO: i64 = 4;
const COMPACT_MIN_RECORDS: i64 = 10_000;
/// Longest wait between attempts to write a marker that failed.
const MAX_MARKER_BACKOFF: Duration = Duration::from_secs(1);

pub struct TxnTask {
    pub shard: TxnShard,
    pub log: Arc<PartitionLog>,
    pub broker: Arc<Broker>,
    pub clock: Arc<dyn Clock>,
    pub config: TxnConfig,
    /// Marker writers in flight. Aborted when the shard reloads (the reload
    /// starts them again from what the log holds, and a stale writer must not
    /// put an old transaction's marker after a newer transaction's data) and
    /// when the task ends.
    pub markers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TxnTask {
    fn drop(&mut self) {
        for m in &self.markers {
            m.abort();
        }
    }
}

impl TxnTask {
    pub async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Op<TxnShard>>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<MarkerJob>();
        if !self.reload_or_stop() {
            return;
        }
        self.dispatch_markers(&done_tx);
        let mut timeouts = tokio::time::interval(Duration::from_millis(
            self.config.abort_timed_out_interval_ms.max(1) as u64,
        ));
        let mut expiration = tokio::time::interval(Duration::from_millis(
            self.config.remove_expired_interval_ms.max(1) as u64,
        ));
        timeouts.tick().await;
        expiration.tick().await;
        loop {
            let mut out = Outcome::default();
            tokio::select! {
                op = rx.recv() => {
                    let Some(op) = op else { break };
                    let mut healthy = self.apply(op, &mut out);
                    let mut n = 1;
                    while healthy && n < MAX_OPS_PER_WRITE {
                        match rx.try_recv() {
                            Ok(op) => healthy = self.apply(op, &mut out),
                            Err(_) => break,
                        }
                        n += 1;
                    }
                    if !self.finish(out).await || (!healthy && !self.reload_or_stop()) {
                        return;
                    }
                }
                job = done_rx.recv() => {
                    let Some(job) = job else { break };
                    let producer = Producer { id: job.producer_id, epoch: job.epoch };
                    let now = self.clock.now_ms();
                    self.shard.complete(&job.transactional_id, producer, now, &mut out);
                    if !self.finish(out).await {
                        return;
                    }
                    // Every transaction adds records: keep the partition
                    // bounded (cheap to check: two offsets).
                    self.maybe_compact().await;
                }
                _ = timeouts.tick() => {
                    self.shard.abort_timed_out(self.clock.now_ms(), &mut out);
                    if !self.finish(out).await {
                        return;
                    }
                }
                _ = expiration.tick() => {
                    let n = self.shard.expire_ids(self.clock.now_ms(), &mut out);
                    if n > 0 {
                        tracing::info!(partition = self.log.partition, expired = n, "expired transactional ids");
                    }
                    if !self.finish(out).await {
                        return;
                    }
                    self.maybe_compact().await;
                }
                _ = shutdown.changed() => break,
            }
            self.dispatch_markers(&done_tx);
        }
    }

    fn apply(&mut self, op: Op<TxnShard>, out: &mut Outcome) -> bool {
        let now = self.clock.now_ms();
        runtime::apply_contained(&mut self.shard, op, now, out, &self.log)
    }

    /// Writes the outcome, waits for durability, then replies. `false`: the
    /// shard could not be rebuilt after a failed write; the task stops.
    async fn finish(&mut self, out: Outcome) -> bool {
        if out.is_empty() {
            return true;
        }
        let now = self.clock.now_ms();
        match runtime::write_and_reply(&self.log, &self.broker.logs, now, out).await {
            Ok(()) => true,
            Err(_) => self.reload_or_stop(),
        }
    }

    /// Starts writing the markers of transactions that reached
    /// PrepareCommit/PrepareAbort (their records are durable by now).
    fn dispatch_markers(&mut self, done: &mpsc::UnboundedSender<MarkerJob>) {
        self.markers.retain(|m| !m.is_finished());
        for job in self.shard.take_jobs() {
            let broker = self.broker.clone();
            let done = done.clone();
            let clock = self.clock.clone();
            self.markers.push(tokio::spawn(async move {
                write_markers(&broker, &job, clock.as_ref()).await;
                let _ = done.send(job);
            }));
        }
    }

    fn reload_or_stop(&mut self) -> bool {
        let result = self.reload();
        runtime::reloaded(result, &self.log)
    }

    fn reload(&mut self) -> anyhow::Result<()> {
        for m in self.markers.drain(..) {
            m.abort();
        }
        self.shard.unpublish();
        let mut shard = TxnShard::new(
            self.log.partition,
            self.config.clone(),
            self.shard.ongoing(),
        );
        let records = runtime::replay(&self.log, |entry| {
            if let Replayed::Record { key, value, .. } = entry {
                shard.replay(&key, value.as_deref());
            }
        })?;
        shard.resume_after_load();
        tracing::debug!(
            partition = self.log.partition,
            records,
            ids = shard.len(),
            "transaction shard loaded"
        );
        self.shard = shard;
        Ok(())
    }

    async fn maybe_compact(&mut self) {
        let total = self.log.log_end_offset() - self.log.log_start_offset();
        if total < COMPACT_MIN_RECORDS || total < COMPACT_RATIO * (self.shard.len() as i64).max(1) {
            return;
        }
        let now = self.clock.now_ms();
        let snapshot = self.shard.snapshot();
        if let Err(e) = runtime::rewrite(&self.log, &self.broker.logs, now, &snapshot).await {
            tracing::error!(
                partition = self.log.partition,
                "compacting __transaction_state failed: {e}"
            );
        }
    }
}

/// Writes the job's marker to every partition of the transaction; retries
/// storage and coordinator errors until they succeed (the transaction stays
/// in its Prepare state meanwhile, as in Kafka). A deleted partition, or one
/// that already holds a newer epoch of the producer, is done.
async fn write_markers(broker: &Arc<Broker>, job: &MarkerJob, clock: &dyn Clock) {
    let marker = Marker {
        kind: if job.commit {
            MarkerType::Commit
        } else {
            MarkerType::Abort
        },
        producer_id: job.producer_id,
        producer_epoch: job.epoch,
        coordinator_epoch: 0,
    };
    for (topic, partition) in &job.partitions {
        let mut backoff = Duration::from_millis(20);
        loop {
            let code = match write_marker(broker, topic, *partition, &marker, clock.now_ms()).await
            {
                Ok(()) => break,
                Err(code) => code,
            };
            let done = [
                Code::UnknownTopicOrPartition,
                Code::InvalidProducerEpoch,
                Code::TransactionCoordinatorFenced,
            ]
            .iter()
            .any(|c| c.code() == code);
            if done {
                tracing::warn!(
                    transactional_id = %job.transactional_id,
                    topic, partition, code, "transaction marker not written"
                );
                break;
            }
            tracing::warn!(
                transactional_id = %job.transactional_id,
                topic, partition, code, "writing a transaction marker failed; retrying"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_MARKER_BACKOFF);
        }
    }
}

/// Writes one marker (WriteTxnMarkers' per-partition work): into the
/// partition's log, made durable as the flush policy asks, or through the
/// group coordinator for `__consumer_offsets` (which also completes the
/// transaction's offset commits). `Err` is the Kafka error code.
pub async fn write_marker(
    broker: &Arc<Broker>,
    topic: &str,
    partition: i32,
    marker: &Marker,
    now_ms: i64,
) -> Result<(), i16> {
    let Some(info) = broker.metadata.image().topic(topic).cloned() else {
        return Err(Code::UnknownTopicOrPartition.code());
    };
    if !(0..info.partitions).contains(&partition) {
        return Err(Code::UnknownTopicOrPartition.code());
    }
    if topic == OFFSETS_TOPIC {
        let commit = marker.kind == MarkerType::Commit;
        return broker
            .groups
            .complete_txn(
                broker,
                partition,
                marker.producer_id,
                marker.producer_epoch,
                marker.coordinator_epoch,
                commit,
            )
            .await;
    }
    let log = broker
        .logs
        .get(&info.id, partition)
        .ok_or(Code::UnknownTopicOrPartition.code())?;
    let appended = log.append_marker(marker, now_ms).map_err(|e| {
        if let LogError::Io(err) = &e {
            tracing::error!(topic, partition, "writing a marker failed: {err}");
        }
        e.error_code()
    })?;
    if appended.needs_flush {
        broker.logs.flush(log.clone()).await.map_err(|e| {
            tracing::error!(topic, partition, "flushing a marker failed: {e}");
            Code::KafkaStorageError.code()
        })?;
    } else if appended.rolled {
        broker.logs.flush_in_background(log);
    }
    Ok(())
}
