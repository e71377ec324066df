//! What both coordinators share (DESIGN §4): the internal topic a set of
//! shards lives on, the per-shard operation channel, the [`Outcome`] an
//! operation produces, writing it to the shard's partition, and replaying the
//! partition on start-up.

use std::sync::Arc;

use bytes::{Buf, Bytes};
use indexmap::IndexMap;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, OnceCell};
use tokio::task::JoinHandle;

use crate::api::Code;
use crate::broker::Broker;
use crate::coordinator::codec::{decode_records, encode_batch_as, BatchProducer};
use crate::log::batch::{BatchHeader, BatchIter, LOG_OVERHEAD};
use crate::log::control::{self, Marker};
use crate::log::{LogManager, PartitionLog};
use crate::metadata::MetadataError;

/// A reply waiting for the outcome's records: called with `None` once they
/// are durable, or with the error code to answer instead.
pub type Reply = Box<dyn FnOnce(Option<i16>) + Send>;

/// (key, value) records of an internal topic; `None` is a tombstone.
pub type Record = (Vec<u8>, Option<Vec<u8>>);

/// Writes that belong to a producer's transaction (only the group
/// coordinator makes them: transactional offset commits and their markers).
pub enum TxnWrite {
    /// Records written as one transactional batch of the producer.
    Records {
        producer_id: i64,
        producer_epoch: i16,
        records: Vec<Record>,
    },
    /// A COMMIT or ABORT control batch.
    Marker(Marker),
}

/// What one or more operations produced: records to persist (plain ones
/// first, then the transactional writes in order) and the replies to release
/// once they are durable.
#[derive(Default)]
pub struct Outcome {
    pub records: Vec<Record>,
    pub txn_writes: Vec<TxnWrite>,
    pub replies: Vec<Reply>,
}

impl Outcome {
    /// Sends `value` on `tx` once the outcome's write is over — whether it
    /// succeeded or not (replies whose answer depends on it are built from
    /// [`Reply`] directly, as [`call_shard`] does).
    pub fn reply<T: Send + 'static>(&mut self, tx: oneshot::Sender<T>, value: T) {
        self.replies.push(Box::new(move |_| {
            let _ = tx.send(value);
        }));
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.txn_writes.is_empty() && self.replies.is_empty()
    }
}

/// One operation on a shard of type `S`, applied by its owner task in
/// arrival order with the current time.
pub type Op<S> = Box<dyn FnOnce(&mut S, i64, &mut Outcome) + Send>;

/// An internal topic whose partitions are a coordinator's shards.
pub struct InternalTopic {
    pub name: &'static str,
    pub partitions: i32,
    pub segment_bytes: i64,
    /// The topic's `compression.type`, fixed as Kafka fixes it
    /// (`producer` for offsets, `uncompressed` for transaction state), so a
    /// broker-wide codec never recompresses coordinator batches.
    pub compression: &'static str,
}

/// Records per batch (keeps batches well under `max.message.bytes`).
const MAX_RECORDS_PER_BATCH: usize = 2_000;
const MAX_BATCH_BYTES: usize = 512 * 1024;

/// The running shards of one coordinator: started (creating the topic if
/// needed) on first use, one owner task per partition.
pub struct Shards<S> {
    senders: OnceCell<Vec<mpsc::UnboundedSender<Op<S>>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl<S: Send + 'static> Default for Shards<S> {
    fn default() -> Self {
        Shards {
            senders: OnceCell::new(),
            tasks: Mutex::new(Vec::new()),
        }
    }
}

impl<S: Send + 'static> Shards<S> {
    /// The shard senders; on first use the topic is created (compacted) if
    /// missing and `spawn(partition, log, receiver)` starts each task.
    pub async fn get_or_start<F>(
        &self,
        broker: &Arc<Broker>,
        topic: &InternalTopic,
        spawn: F,
    ) -> Result<&[mpsc::UnboundedSender<Op<S>>], i16>
    where
        F: Fn(i32, Arc<PartitionLog>, mpsc::UnboundedReceiver<Op<S>>) -> JoinHandle<()>,
    {
        self.senders
            .get_or_try_init(|| async {
                let logs = ensure_topic(broker, topic).await?;
                let mut senders = Vec::with_capacity(logs.len());
                let mut tasks = self.tasks.lock();
                for (p, log) in (0..).zip(logs) {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tasks.push(spawn(p, log, rx));
                    senders.push(tx);
                }
                tracing::info!(
                    topic = topic.name,
                    partitions = senders.len(),
                    "coordinator started"
                );
                Ok(senders)
            })
            .await
            .map(Vec::as_slice)
    }

    /// The senders once started.
    pub fn senders(&self) -> Option<&[mpsc::UnboundedSender<Op<S>>]> {
        self.senders.get().map(Vec::as_slice)
    }

    /// How many shards run, without starting them.
    pub fn running(&self) -> Option<usize> {
        self.senders.get().map(Vec::len)
    }

    /// Stops the shard tasks (broker shutdown).
    pub fn stop(&self) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }
}

/// Runs `f` on the shard behind `sender` and returns its result once the
/// records it produced are durable.
pub async fn call_shard<S, T, F>(sender: &mpsc::UnboundedSender<Op<S>>, f: F) -> Result<T, i16>
where
    S: Send + 'static,
    T: Send + 'static,
    F: FnOnce(&mut S, i64, &mut Outcome) -> T + Send + 'static,
{
    let (tx, rx) = oneshot::channel::<Result<T, i16>>();
    let op: Op<S> = Box::new(move |shard, now, out| {
        let value = f(shard, now, out);
        out.replies.push(Box::new(move |err| {
            let _ = tx.send(match err {
                None => Ok(value),
                Some(code) => Err(code),
            });
        }));
    });
    sender
        .send(op)
        .map_err(|_| Code::CoordinatorNotAvailable.code())?;
    rx.await
        .unwrap_or(Err(Code::CoordinatorNotAvailable.code()))
}

/// The logs of `topic`'s partitions, creating the topic (compacted) first if
/// it does not exist. An existing topic keeps its partition count.
async fn ensure_topic(
    broker: &Arc<Broker>,
    topic: &InternalTopic,
) -> Result<Vec<Arc<PartitionLog>>, i16> {
    let name = topic.name;
    let info = match broker.metadata.image().topic(name) {
        Some(info) => info.clone(),
        None => {
            let mut overrides = IndexMap::new();
            overrides.insert("cleanup.policy".to_owned(), "compact".to_owned());
            overrides.insert("segment.bytes".to_owned(), topic.segment_bytes.to_string());
            overrides.insert("compression.type".to_owned(), topic.compression.to_owned());
            let b = broker.clone();
            let n = topic.partitions;
            let created = tokio::task::spawn_blocking(move || b.create_topic(name, n, overrides))
                .await
                .map_err(|_| Code::CoordinatorNotAvailable.code())?;
            match created {
                Ok(info) => info,
                Err(MetadataError::TopicExists(_)) => broker
                    .metadata
                    .image()
                    .topic(name)
                    .cloned()
                    .ok_or(Code::CoordinatorNotAvailable.code())?,
                Err(e) => {
                    tracing::error!("creating {name}: {e}");
                    return Err(Code::CoordinatorNotAvailable.code());
                }
            }
        }
    };
    // Every partition's log first, so a failure starts no task at all (a
    // retry must not find half the shards already running).
    (0..info.partitions)
        .map(|p| {
            broker.logs.get(&info.id, p).ok_or_else(|| {
                tracing::error!("{name}-{p} has no log");
                Code::CoordinatorNotAvailable.code()
            })
        })
        .collect()
}

/// Writes an outcome's records to the shard's partition (plain records in
/// batches bounded by count and bytes, then the transactional writes) and
/// waits for `fsync` when the flush policy asks for it.
pub async fn write_outcome(
    log: &Arc<PartitionLog>,
    logs: &Arc<LogManager>,
    now_ms: i64,
    records: &[Record],
    txn_writes: &[TxnWrite],
) -> anyhow::Result<()> {
    let mut needs_flush = false;
    let mut rolled = false;
    let mut append = |appended: crate::log::Appended| {
        needs_flush |= appended.needs_flush;
        rolled |= appended.rolled;
    };
    for chunk in chunks(records) {
        let batch = encode_batch_as(chunk, now_ms, BatchProducer::NONE);
        append(log.append_as_leader(&batch, now_ms)?);
    }
    for write in txn_writes {
        match write {
            TxnWrite::Records {
                producer_id,
                producer_epoch,
                records,
            } => {
                for chunk in chunks(records) {
                    let producer = BatchProducer::transactional(*producer_id, *producer_epoch);
                    let batch = encode_batch_as(chunk, now_ms, producer);
                    append(log.append_as_leader(&batch, now_ms)?);
                }
            }
            TxnWrite::Marker(marker) => append(log.append_marker(marker, now_ms)?),
        }
    }
    if needs_flush {
        logs.flush(log.clone()).await?;
    } else if rolled {
        logs.flush_in_background(log.clone());
    }
    Ok(())
}

/// Applies one operation to a shard. A bug that panics inside it must not
/// take the shard down: the panic is contained, what the operation added to
/// `out` is dropped (its caller gets COORDINATOR_NOT_AVAILABLE), and `false`
/// tells the owner task to rebuild the shard from its log.
pub fn apply_contained<S>(
    shard: &mut S,
    op: Op<S>,
    now_ms: i64,
    out: &mut Outcome,
    log: &PartitionLog,
) -> bool {
    let before = (out.records.len(), out.txn_writes.len(), out.replies.len());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op(shard, now_ms, out)));
    if result.is_err() {
        tracing::error!(
            topic = %log.topic,
            partition = log.partition,
            "a coordinator operation panicked; reloading the shard"
        );
        out.records.truncate(before.0);
        out.txn_writes.truncate(before.1);
        out.replies.truncate(before.2);
        return false;
    }
    true
}

/// Writes an outcome, waits for durability, then releases its replies —
/// with COORDINATOR_NOT_AVAILABLE if the write failed, in which case the
/// owner must rebuild the shard (its memory holds what was not written).
pub async fn write_and_reply(
    log: &Arc<PartitionLog>,
    logs: &Arc<LogManager>,
    now_ms: i64,
    out: Outcome,
) -> anyhow::Result<()> {
    let Outcome {
        records,
        txn_writes,
        replies,
    } = out;
    let result = write_outcome(log, logs, now_ms, &records, &txn_writes).await;
    if let Err(e) = &result {
        tracing::error!(
            topic = %log.topic,
            partition = log.partition,
            "writing coordinator records failed: {e}; reloading the shard"
        );
    }
    let error = result
        .is_err()
        .then(|| Code::CoordinatorNotAvailable.code());
    for reply in replies {
        reply(error);
    }
    result
}

/// The end of a shard reload: `true` if it worked. If it failed the shard
/// must not serve from memory it cannot trust (an empty group shard would
/// answer "no committed offset" and consumers would reset): the owner task
/// stops, and every request for the shard gets COORDINATOR_NOT_AVAILABLE.
pub fn reloaded(result: anyhow::Result<()>, log: &PartitionLog) -> bool {
    match result {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(
                topic = %log.topic,
                partition = log.partition,
                "loading a coordinator shard failed, it is unavailable: {e}"
            );
            false
        }
    }
}

/// Keeps an internal partition bounded: rolls, writes `live` (the shard's
/// whole state) into the new segment, makes it durable, then moves the log
/// start past everything before it. History before the rewrite is gone.
pub async fn rewrite(
    log: &Arc<PartitionLog>,
    logs: &Arc<LogManager>,
    now_ms: i64,
    live: &[Record],
) -> anyhow::Result<()> {
    log.roll_now(now_ms)?;
    let start = log.log_end_offset();
    write_outcome(log, logs, now_ms, live, &[]).await?;
    // The rewrite must be on disk before what it replaces is deleted.
    logs.flush(log.clone()).await?;
    log.delete_records_before(start)?;
    tracing::info!(
        topic = %log.topic,
        partition = log.partition,
        live = live.len(),
        new_start = start,
        "rewrote internal partition"
    );
    Ok(())
}

/// One entry of an internal partition, in log order.
pub enum Replayed {
    Record {
        offset: i64,
        key: Bytes,
        value: Option<Bytes>,
        /// (producer id, epoch) when written in a transactional batch.
        txn: Option<(i64, i16)>,
    },
    Marker {
        offset: i64,
        marker: Marker,
    },
}

/// Reads the partition from its start and hands every keyed record and
/// marker to `f` in log order. Returns the number of entries replayed.
pub fn replay(log: &PartitionLog, mut f: impl FnMut(Replayed)) -> anyhow::Result<usize> {
    let mut offset = log.log_start_offset();
    let mut count = 0usize;
    loop {
        let read = log.read(offset, 4 * 1024 * 1024)?;
        if read.records.is_empty() {
            break;
        }
        let mut next = offset;
        let buf = read.records;
        for (pos, h) in BatchIter::new(&buf) {
            let batch = buf.slice(pos..pos + h.total_len());
            next = h.last_offset() + 1;
            if h.last_offset() < offset {
                continue;
            }
            count += replay_batch(&h, batch, offset, &mut f)?;
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok(count)
}

fn replay_batch(
    h: &BatchHeader,
    mut batch: Bytes,
    from: i64,
    f: &mut impl FnMut(Replayed),
) -> anyhow::Result<usize> {
    if h.is_control() {
        let marker = control::decode_marker(&batch)?;
        f(Replayed::Marker {
            offset: h.base_offset,
            marker,
        });
        return Ok(1);
    }
    let txn = h
        .is_transactional()
        .then_some((h.producer_id, h.producer_epoch));
    let mut n = 0;
    for (offset, key, value) in decode_records(&mut batch)? {
        if offset < from {
            continue;
        }
        if let Some(key) = key {
            f(Replayed::Record {
                offset,
                key,
                value,
                txn,
            });
            n += 1;
        }
    }
    debug_assert!(batch.remaining() == 0 || batch.len() < LOG_OVERHEAD);
    Ok(n)
}

/// Splits records into batches bounded by count and bytes.
fn chunks(records: &[Record]) -> impl Iterator<Item = &[Record]> {
    let mut rest = records;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut n = 0;
        while n < rest.len() && n < MAX_RECORDS_PER_BATCH {
            let (k, v) = &rest[n];
            let size = k.len() + v.as_ref().map_or(0, Vec::len) + 32;
            if n > 0 && bytes + size > MAX_BATCH_BYTES {
                break;
            }
            bytes += size;
            n += 1;
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Some(head)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize, value_len: usize) -> Vec<Record> {
        (0..n)
            .map(|i| (i.to_be_bytes().to_vec(), Some(vec![0; value_len])))
            .collect()
    }

    fn sizes(records: &[Record]) -> Vec<usize> {
        chunks(records).map(<[Record]>::len).collect()
    }

    #[test]
    fn batches_are_bounded_by_count_on_both_sides() {
        assert_eq!(
            sizes(&records(MAX_RECORDS_PER_BATCH, 1)),
            [MAX_RECORDS_PER_BATCH]
        );
        assert_eq!(
            sizes(&records(MAX_RECORDS_PER_BATCH + 1, 1)),
            [MAX_RECORDS_PER_BATCH, 1]
        );
        assert!(sizes(&[]).is_empty());
    }

    #[test]
    fn batches_are_bounded_by_bytes_on_both_sides() {
        // 8-byte key + value + 32 bytes of overhead per record.
        let per = MAX_BATCH_BYTES / 4;
        let value = per - 8 - 32;
        assert_eq!(sizes(&records(4, value)), [4]);
        assert_eq!(sizes(&records(4, value + 1)), [3, 1]);
        // A record larger than the limit still goes out, alone.
        assert_eq!(sizes(&records(2, MAX_BATCH_BYTES)), [1, 1]);
    }
}
