//! One shard of the transaction coordinator: every transactional id whose
//! hash maps to one `__transaction_state` partition. Pure state and logic
//! (Kafka's `TransactionCoordinator` + `TransactionMetadata` for transaction
//! version 1): each operation takes the time, changes the state, and records
//! in an [`Outcome`] the `TransactionLogValue` to write and the reply to send
//! once it is durable. Writing the COMMIT/ABORT markers to the partitions is
//! the owner task's job: an operation that reaches PrepareCommit or
//! PrepareAbort queues a [`MarkerJob`], and [`TxnShard::complete`] finishes
//! the transaction once the markers are written.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::sync::oneshot;

use super::records::{TxnKey, TxnPartitions, TxnStatus, TxnValue, NO_PRODUCER_ID};
use crate::api::Code;
use crate::config::TxnConfig;
use crate::coordinator::runtime::{Outcome, Record};

/// A transactional id's state (Kafka's `TransactionMetadata`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnMeta {
    pub producer_id: i64,
    /// The producer id before the last one was exhausted (epoch overflow).
    pub previous_producer_id: i64,
    pub epoch: i16,
    /// The identity the last bump replaced, when that bump was asked for by
    /// a producer stating it (KIP-360): its retry is answered again. `None`
    /// after a bump by a new instance, so a fenced one cannot claim it.
    pub last_producer: Option<Producer>,
    pub timeout_ms: i32,
    pub state: TxnStatus,
    pub partitions: BTreeSet<(String, i32)>,
    pub start_ms: i64,
    pub last_update_ms: i64,
}

impl TxnMeta {
    fn value(&self) -> TxnValue {
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in &self.partitions {
            topics.entry(t).or_default().push(*p);
        }
        TxnValue {
            producer_id: self.producer_id,
            previous_producer_id: self.previous_producer_id,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: self.epoch,
            timeout_ms: self.timeout_ms,
            status: self.state,
            partitions: topics
                .into_iter()
                .map(|(topic, partitions)| TxnPartitions {
                    topic: topic.to_owned(),
                    partitions,
                })
                .collect(),
            last_update_timestamp: self.last_update_ms,
            start_timestamp: self.start_ms,
            client_transaction_version: 0,
        }
    }

    fn from_value(v: TxnValue) -> TxnMeta {
        TxnMeta {
            producer_id: v.producer_id,
            previous_producer_id: v.previous_producer_id,
            epoch: v.producer_epoch,
            last_producer: None,
            timeout_ms: v.timeout_ms,
            state: v.status,
            partitions: v
                .partitions
                .into_iter()
                .flat_map(|t| {
                    let topic = t.topic;
                    t.partitions.into_iter().map(move |p| (topic.clone(), p))
                })
                .collect(),
            start_ms: v.start_timestamp,
            last_update_ms: v.last_update_timestamp,
        }
    }
}

/// Markers to write for a transaction in PrepareCommit/PrepareAbort.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerJob {
    pub transactional_id: String,
    pub producer_id: i64,
    pub epoch: i16,
    pub commit: bool,
    pub partitions: Vec<(String, i32)>,
}

/// What InitProducerId needs from the broker besides the shard: a fresh
/// producer id when the transactional id is new or its epochs are used up.
pub type AllocateId<'a> = &'a mut dyn FnMut() -> Result<i64, i16>;

/// A producer's identity as a request states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Producer {
    pub id: i64,
    pub epoch: i16,
}

/// Every transactional producer's current epoch and, while a transaction
/// is ongoing, its partitions, by producer id; shared by all shards and read
/// by Produce and TxnOffsetCommit without a round trip to a shard (KIP-890
/// part 1 verification happens in arrival order, before the append). A
/// shard updates it whenever it writes an id's state.
#[derive(Default)]
pub struct OngoingTxns {
    by_producer: RwLock<HashMap<i64, Known>>,
}

struct Known {
    transactional_id: String,
    epoch: i16,
    /// The ongoing transaction's partitions; `None` when none is ongoing.
    partitions: Option<BTreeSet<(String, i32)>>,
}

impl OngoingTxns {
    /// Is `partition` in the ongoing transaction of `transactional_id` at
    /// `producer`? `Err` is the Kafka error code for a write that fails the
    /// check: INVALID_PRODUCER_EPOCH for another epoch (an old one: a fenced
    /// instance),
    /// INVALID_PRODUCER_ID_MAPPING for a producer id that is not the id's,
    /// INVALID_TXN_STATE for a partition (or producer) not in an ongoing
    /// transaction.
    pub fn verify(
        &self,
        transactional_id: &str,
        producer: Producer,
        topic: &str,
        partition: i32,
    ) -> Result<(), i16> {
        let map = self.by_producer.read();
        let Some(known) = map.get(&producer.id) else {
            return Err(Code::InvalidProducerIdMapping.code());
        };
        if known.transactional_id != transactional_id {
            return Err(Code::InvalidProducerIdMapping.code());
        }
        if producer.epoch != known.epoch {
            // Older: a fenced instance. Newer: an epoch never handed out.
            return Err(Code::InvalidProducerEpoch.code());
        }
        let included = known
            .partitions
            .as_ref()
            .is_some_and(|ps| ps.iter().any(|(t, p)| t == topic && *p == partition));
        if included {
            Ok(())
        } else {
            Err(Code::InvalidTxnState.code())
        }
    }

    fn set(&self, id: &str, meta: &TxnMeta) {
        let mut map = self.by_producer.write();
        if meta.previous_producer_id >= 0 {
            // The id moved to a new producer id (epochs exhausted).
            map.remove(&meta.previous_producer_id);
        }
        map.insert(
            meta.producer_id,
            Known {
                transactional_id: id.to_owned(),
                epoch: meta.epoch,
                partitions: (meta.state == TxnStatus::Ongoing).then(|| meta.partitions.clone()),
            },
        );
    }

    fn remove_all(&self, ids: impl Iterator<Item = (i64, String)>) {
        let mut map = self.by_producer.write();
        for (pid, id) in ids {
            if map.get(&pid).is_some_and(|o| o.transactional_id == id) {
                map.remove(&pid);
            }
        }
    }

    /// Transactions ongoing now.
    pub fn ongoing(&self) -> usize {
        self.by_producer
            .read()
            .values()
            .filter(|k| k.partitions.is_some())
            .count()
    }

    pub fn len(&self) -> usize {
        self.by_producer.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The highest epoch InitProducerId hands out before moving to a new
/// producer id (Kafka: at Short.MAX - 1); a timeout abort may still bump
/// to Short.MAX to fence.
const MAX_EPOCH: i16 = i16::MAX - 1;

pub struct TxnShard {
    pub partition: i32,
    config: TxnConfig,
    txns: BTreeMap<String, TxnMeta>,
    ongoing: Arc<OngoingTxns>,
    /// Markers to write, taken by the task after each write.
    jobs: Vec<MarkerJob>,
    /// EndTxn callers waiting for their transaction's markers.
    waiters: HashMap<String, Vec<oneshot::Sender<()>>>,
}

impl TxnShard {
    pub fn new(partition: i32, config: TxnConfig, ongoing: Arc<OngoingTxns>) -> TxnShard {
        TxnShard {
            partition,
            config,
            txns: BTreeMap::new(),
            ongoing,
            jobs: Vec::new(),
            waiters: HashMap::new(),
        }
    }

    /// The verification registry this shard publishes to.
    pub fn ongoing(&self) -> Arc<OngoingTxns> {
        self.ongoing.clone()
    }

    pub fn get(&self, transactional_id: &str) -> Option<&TxnMeta> {
        self.txns.get(transactional_id)
    }

    pub fn len(&self) -> usize {
        self.txns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &TxnMeta)> {
        self.txns.iter()
    }

    /// Marker jobs queued since the last call.
    pub fn take_jobs(&mut self) -> Vec<MarkerJob> {
        std::mem::take(&mut self.jobs)
    }

    /// Records the id's new state and publishes it to the verification
    /// registry.
    fn write(&self, id: &str, out: &mut Outcome) {
        let meta = &self.txns[id];
        self.ongoing.set(id, meta);
        out.records.push(record(id, Some(meta)));
    }

    /// InitProducerId with a transactional id (transaction version 1).
    pub fn init_producer_id(
        &mut self,
        id: &str,
        timeout_ms: i32,
        expected: Option<Producer>,
        now: i64,
        allocate: AllocateId<'_>,
        out: &mut Outcome,
    ) -> Result<Producer, i16> {
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(Code::InvalidTransactionTimeout.code());
        }
        let Some(meta) = self.txns.get_mut(id) else {
            // Also for a producer stating an id we do not know (its
            // transactional id expired): Kafka hands out a fresh one.
            let producer_id = allocate()?;
            let meta = TxnMeta {
                producer_id,
                previous_producer_id: NO_PRODUCER_ID,
                epoch: 0,
                last_producer: None,
                timeout_ms,
                state: TxnStatus::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                last_update_ms: now,
            };
            self.txns.insert(id.to_owned(), meta);
            self.write(id, out);
            return Ok(Producer {
                id: producer_id,
                epoch: 0,
            });
        };
        match meta.state {
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort | TxnStatus::PrepareEpochFence => {
                return Err(Code::ConcurrentTransactions.code())
            }
            TxnStatus::Ongoing => {
                // A new producer instance takes over: fence the old one by
                // bumping the epoch and abort its transaction; the caller
                // retries (CONCURRENT_TRANSACTIONS) until the abort is done.
                if let Some(p) = expected.filter(|p| p.id != NO_PRODUCER_ID) {
                    if p.id != meta.producer_id || p.epoch != meta.epoch {
                        return Err(Code::ProducerFenced.code());
                    }
                }
                self.fence_and_abort(id, now, out);
                return Err(Code::ConcurrentTransactions.code());
            }
            TxnStatus::Dead => return Err(Code::ConcurrentTransactions.code()),
            TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort => {}
        }
        let expected = expected.filter(|p| p.id != NO_PRODUCER_ID);
        if let Some(p) = expected {
            let current = p.id == meta.producer_id && p.epoch == meta.epoch;
            let retried = meta.last_producer == Some(p) && meta.state == TxnStatus::Empty;
            if retried {
                // The reply to an earlier bump was lost: answer it again.
                return Ok(Producer {
                    id: meta.producer_id,
                    epoch: meta.epoch,
                });
            }
            if !current {
                return Err(Code::ProducerFenced.code());
            }
        }
        let replaced = Producer {
            id: meta.producer_id,
            epoch: meta.epoch,
        };
        if meta.epoch >= MAX_EPOCH {
            let producer_id = allocate()?;
            meta.previous_producer_id = meta.producer_id;
            meta.producer_id = producer_id;
            meta.epoch = 0;
        } else {
            meta.epoch += 1;
        }
        meta.last_producer = expected.filter(|p| *p == replaced);
        meta.timeout_ms = timeout_ms;
        meta.state = TxnStatus::Empty;
        meta.partitions.clear();
        meta.start_ms = -1;
        meta.last_update_ms = now;
        let producer = Producer {
            id: meta.producer_id,
            epoch: meta.epoch,
        };
        self.write(id, out);
        Ok(producer)
    }

    /// The common checks of AddPartitionsToTxn, AddOffsetsToTxn and EndTxn.
    fn check_producer(&self, id: &str, producer: Producer) -> Result<&TxnMeta, i16> {
        let meta = self
            .txns
            .get(id)
            .ok_or(Code::InvalidProducerIdMapping.code())?;
        if meta.producer_id != producer.id {
            return Err(Code::InvalidProducerIdMapping.code());
        }
        if meta.epoch != producer.epoch {
            return Err(Code::ProducerFenced.code());
        }
        Ok(meta)
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: the partitions join the
    /// producer's transaction, which becomes Ongoing.
    pub fn add_partitions(
        &mut self,
        id: &str,
        producer: Producer,
        partitions: &[(String, i32)],
        now: i64,
        out: &mut Outcome,
    ) -> Result<(), i16> {
        let meta = self.check_producer(id, producer)?;
        match meta.state {
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort | TxnStatus::PrepareEpochFence => {
                return Err(Code::ConcurrentTransactions.code())
            }
            TxnStatus::Dead => return Err(Code::InvalidTxnState.code()),
            TxnStatus::Ongoing if partitions.iter().all(|tp| meta.partitions.contains(tp)) => {
                return Ok(());
            }
            _ => {}
        }
        let meta = self.txns.get_mut(id).expect("checked above");
        if meta.state != TxnStatus::Ongoing {
            meta.partitions.clear();
            meta.start_ms = now;
        }
        meta.state = TxnStatus::Ongoing;
        meta.partitions.extend(partitions.iter().cloned());
        meta.last_update_ms = now;
        self.write(id, out);
        Ok(())
    }

    /// Verification of a transactional write (AddPartitionsToTxn v4+
    /// verify_only, Produce, TxnOffsetCommit): is the partition part of the
    /// producer's ongoing transaction? Writes nothing.
    pub fn verify(
        &self,
        id: &str,
        producer: Producer,
        partition: &(String, i32),
    ) -> Result<(), i16> {
        let meta = self.check_producer(id, producer)?;
        match meta.state {
            TxnStatus::Ongoing if meta.partitions.contains(partition) => Ok(()),
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort => {
                Err(Code::ConcurrentTransactions.code())
            }
            _ => Err(Code::InvalidTxnState.code()),
        }
    }

    /// EndTxn: moves an ongoing transaction to PrepareCommit/PrepareAbort and
    /// queues its markers. Retries of a finished or finishing end are
    /// answered as Kafka does.
    pub fn end_txn(
        &mut self,
        id: &str,
        producer: Producer,
        commit: bool,
        now: i64,
        out: &mut Outcome,
    ) -> Result<(), i16> {
        let meta = self.check_producer(id, producer)?;
        // A retried EndTxn: fine once done, still finishing, or the wrong
        // kind. (was_commit, done)
        let ending = match meta.state {
            TxnStatus::Ongoing => None,
            TxnStatus::CompleteCommit => Some((true, true)),
            TxnStatus::CompleteAbort => Some((false, true)),
            TxnStatus::PrepareCommit => Some((true, false)),
            TxnStatus::PrepareAbort => Some((false, false)),
            TxnStatus::Empty | TxnStatus::Dead | TxnStatus::PrepareEpochFence => {
                return Err(Code::InvalidTxnState.code())
            }
        };
        if let Some((was_commit, done)) = ending {
            return match (was_commit == commit, done) {
                (false, _) => Err(Code::InvalidTxnState.code()),
                (true, true) => Ok(()),
                (true, false) => Err(Code::ConcurrentTransactions.code()),
            };
        }
        self.prepare(id, commit, now, out);
        Ok(())
    }

    /// A receiver that fires once the id's prepared transaction is complete
    /// (its markers written and CompleteCommit/CompleteAbort durable);
    /// `None` if it is not preparing.
    pub fn wait_for_completion(&mut self, id: &str) -> Option<oneshot::Receiver<()>> {
        let preparing = self
            .txns
            .get(id)
            .is_some_and(|m| matches!(m.state, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort));
        if !preparing {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.entry(id.to_owned()).or_default().push(tx);
        Some(rx)
    }

    /// Ongoing → PrepareCommit/PrepareAbort, record written, markers queued.
    fn prepare(&mut self, id: &str, commit: bool, now: i64, out: &mut Outcome) {
        let meta = self.txns.get_mut(id).expect("caller checked");
        meta.state = if commit {
            TxnStatus::PrepareCommit
        } else {
            TxnStatus::PrepareAbort
        };
        meta.last_update_ms = now;
        let job = job_for(id, meta);
        self.write(id, out);
        self.jobs.push(job);
    }

    /// Aborts an ongoing transaction under a bumped epoch, so the producer
    /// that opened it is fenced everywhere the markers land (timeouts and a
    /// new producer instance taking over).
    fn fence_and_abort(&mut self, id: &str, now: i64, out: &mut Outcome) {
        let meta = self.txns.get_mut(id).expect("caller checked");
        if meta.epoch == i16::MAX {
            // No epoch left to fence with: abort at the current one; the
            // next InitProducerId moves to a new producer id.
            tracing::warn!(
                transactional_id = id,
                "epoch exhausted; aborting without a bump"
            );
        } else {
            meta.last_producer = None;
            meta.epoch += 1;
        }
        self.prepare(id, false, now, out);
    }

    /// The markers of a PrepareCommit/PrepareAbort transaction are written:
    /// CompleteCommit/CompleteAbort. Stale calls (state moved on) do nothing.
    pub fn complete(&mut self, id: &str, producer: Producer, now: i64, out: &mut Outcome) {
        let Some(meta) = self.txns.get_mut(id) else {
            return;
        };
        if meta.producer_id != producer.id || meta.epoch != producer.epoch {
            return;
        }
        meta.state = match meta.state {
            TxnStatus::PrepareCommit => TxnStatus::CompleteCommit,
            TxnStatus::PrepareAbort => TxnStatus::CompleteAbort,
            _ => return,
        };
        meta.partitions.clear();
        meta.last_update_ms = now;
        self.write(id, out);
        for tx in self.waiters.remove(id).unwrap_or_default() {
            out.reply(tx, ());
        }
    }

    /// Periodic: transactions open longer than their timeout are aborted
    /// and their producers fenced (Kafka's
    /// `abortTimedOutTransactions`). Returns how many.
    pub fn abort_timed_out(&mut self, now: i64, out: &mut Outcome) -> usize {
        let expired: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, m)| {
                m.state == TxnStatus::Ongoing && m.start_ms + i64::from(m.timeout_ms) < now
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            tracing::info!(transactional_id = %id, "aborting a transaction past its timeout");
            self.fence_and_abort(id, now, out);
        }
        expired.len()
    }

    /// Periodic: transactional ids idle past `transactional.id.expiration.ms`
    /// are removed (a tombstone is written). Returns how many.
    pub fn expire_ids(&mut self, now: i64, out: &mut Outcome) -> usize {
        let limit = self.config.id_expiration_ms;
        let expired: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, m)| m.state.expiration_allowed() && m.last_update_ms + limit < now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            if let Some(meta) = self.txns.remove(id) {
                self.ongoing
                    .remove_all(std::iter::once((meta.producer_id, id.clone())));
            }
            out.records.push(record(id, None));
        }
        expired.len()
    }

    /// Rebuilds state from one `__transaction_state` record.
    pub fn replay(&mut self, key: &[u8], value: Option<&[u8]>) {
        let key = match TxnKey::decode(key) {
            Ok(Some(k)) => k,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(
                    partition = self.partition,
                    "skipping a bad transaction key: {e}"
                );
                return;
            }
        };
        match value.map(TxnValue::decode) {
            None => {
                self.txns.remove(&key.transactional_id);
            }
            Some(Ok(v)) => {
                self.txns
                    .insert(key.transactional_id, TxnMeta::from_value(v));
            }
            Some(Err(e)) => {
                tracing::warn!(
                    partition = self.partition,
                    "skipping a bad transaction value: {e}"
                );
            }
        }
    }

    /// Before a reload: this shard's entries leave the registry (the reload
    /// publishes what the log really holds).
    pub fn unpublish(&self) {
        self.ongoing
            .remove_all(self.txns.iter().map(|(id, m)| (m.producer_id, id.clone())));
    }

    /// After a replay: transactions that were preparing when the broker
    /// stopped get their markers written again (markers are idempotent).
    /// Ongoing ones stay open; their timeout aborts them if the producer
    /// does not come back.
    pub fn resume_after_load(&mut self) {
        for (id, meta) in &self.txns {
            self.ongoing.set(id, meta);
        }
        let jobs: Vec<MarkerJob> = self
            .txns
            .iter()
            .filter(|(_, m)| matches!(m.state, TxnStatus::PrepareCommit | TxnStatus::PrepareAbort))
            .map(|(id, m)| job_for(id, m))
            .collect();
        self.jobs.extend(jobs);
    }

    /// The live state as records (the compaction rewrite).
    pub fn snapshot(&self) -> Vec<Record> {
        self.txns
            .iter()
            .map(|(id, m)| record(id, Some(m)))
            .collect()
    }

    /// The earliest time a timed-out transaction could be aborted.
    pub fn next_timeout(&self) -> Option<i64> {
        self.txns
            .values()
            .filter(|m| m.state == TxnStatus::Ongoing)
            .map(|m| m.start_ms + i64::from(m.timeout_ms))
            .min()
    }
}

fn job_for(id: &str, meta: &TxnMeta) -> MarkerJob {
    MarkerJob {
        transactional_id: id.to_owned(),
        producer_id: meta.producer_id,
        epoch: meta.epoch,
        commit: meta.state == TxnStatus::PrepareCommit,
        partitions: meta.partitions.iter().cloned().collect(),
    }
}

fn record(id: &str, meta: Option<&TxnMeta>) -> Record {
    let key = TxnKey {
        transactional_id: id.to_owned(),
    }
    .encode();
    (key, meta.map(|m| m.value().encode()))
}
