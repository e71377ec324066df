//! Producer state for one partition: the idempotence and transaction parts of
//! Kafka's `ProducerStateManager` (epoch fencing, sequence checks, duplicate
//! detection over the last 5 batches of each producer, coordinator epochs and
//! each producer's open transaction).
//!
//! The set of open transactions ordered by first offset (for the last stable
//! offset) lives next to this in [`super::txn_state::TxnState`]; the
//! partition log updates both at the same points.
//!
//! # Invariants
//!
//! - Every cached batch of a producer belongs to its current `epoch`: recording
//!   a batch with a different epoch clears the cache first.
//! - At most [`MAX_CACHED_BATCHES`] batches are kept per producer, newest last.
//! - A producer with an open transaction (`current_txn_first_offset`) is never
//!   dropped by [`ProducerStateManager::truncate_head`].
//!
//! # Snapshot format
//!
//! Kafka's producer snapshot file (`ProducerSnapshot`, version 1), all fields
//! big-endian:
//!
//! ```text
//! Version                int16   = 1
//! Crc                    uint32  CRC-32C of every byte after this field
//! Count                  int32   number of entries that follow
//! Count × entry (46 bytes):
//!   ProducerId             int64
//!   Epoch                  int16
//!   LastSequence           int32   last sequence of the producer's newest batch
//!   LastOffset             int64   last offset of that batch (-1: no batch)
//!   OffsetDelta            int32   LastOffset - first offset of that batch
//!   Timestamp              int64   the producer's last timestamp
//!   CoordinatorEpoch       int32   coordinator epoch of the last marker (-1: none)
//!   CurrentTxnFirstOffset  int64   first offset of the open transaction (-1: none)
//! ```
//!
//! As in Kafka, only the newest batch of each producer survives a snapshot; on
//! load its first sequence is recovered as `LastSequence - OffsetDelta` (with
//! the same wrap as sequences). Entries are written in producer-id order.
//!
//! # Transactions
//!
//! Kafka's `ProducerAppendInfo` rules (transaction version 1):
//! - a transactional data batch opens the producer's transaction at its first
//!   offset if none is open ([`ProducerStateManager::record_data`]);
//! - a non-transactional batch of a producer with an open transaction is
//!   refused with INVALID_TXN_STATE ([`ProducerStateManager::check_txn`]);
//! - a COMMIT/ABORT marker with an epoch below the producer's is refused with
//!   INVALID_PRODUCER_EPOCH, one with a coordinator epoch below the last
//!   marker's with TRANSACTION_COORDINATOR_FENCED
//!   ([`ProducerStateManager::check_marker`]); an accepted marker sets the
//!   producer's epoch (a bump clears its cached batches) and coordinator
//!   epoch and closes its transaction ([`ProducerStateManager::record_marker`]).

use super::reader::Reader;

use std::collections::{BTreeMap, VecDeque};

/// Number of recent batches kept per producer for duplicate detection
/// (Kafka's `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`).
pub const MAX_CACHED_BATCHES: usize = 5;

/// Version of the snapshot format written and accepted.
pub const SNAPSHOT_VERSION: i16 = 1;

const NO_SEQUENCE: i32 = -1;
const NO_COORDINATOR_EPOCH: i32 = -1;
const NO_TXN_FIRST_OFFSET: i64 = -1;

/// Bytes before the CRC-covered part: Version (2) + Crc (4).
const SNAPSHOT_CRC_END: usize = 6;
/// Size of one snapshot entry.
const SNAPSHOT_ENTRY_LEN: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;

// Kafka error codes returned by `ProducerError::error_code`.
const CORRUPT_MESSAGE: i16 = 2;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const TRANSACTION_COORDINATOR_FENCED: i16 = 52;

/// One appended batch of a producer: its sequence range, offset range and
/// max timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub timestamp: i64,
}

/// State of one producer id.
#[derive(Clone, Debug, PartialEq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Most recent batches of `epoch`, newest last, at most
    /// [`MAX_CACHED_BATCHES`].
    pub batches: VecDeque<BatchMetadata>,
    /// Timestamp of the newest batch (or marker).
    pub last_timestamp: i64,
    /// Coordinator epoch of the newest marker, -1 if none was seen.
    pub coordinator_epoch: i32,
    /// First offset of the producer's open transaction (Kafka's
    /// `currentTxnFirstOffset`).
    pub current_txn_first_offset: Option<i64>,
    /// The entry was created by a marker for a producer this partition had
    /// forgotten (its batches left the log): its sequence is unknown, so the
    /// next batch at this epoch may carry any sequence, as for an unknown
    /// producer. Cleared by the next batch; not in snapshots (an entry
    /// without batches is dropped on load anyway).
    pub sequence_unknown: bool,
}

impl Default for ProducerEntry {
    fn default() -> Self {
        ProducerEntry {
            epoch: 0,
            batches: VecDeque::new(),
            last_timestamp: 0,
            coordinator_epoch: NO_COORDINATOR_EPOCH,
            current_txn_first_offset: None,
            sequence_unknown: false,
        }
    }
}

impl ProducerEntry {
    /// Last sequence of the newest batch, or -1 if there is none.
    fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }

    /// Kafka's `maybeUpdateProducerEpoch`: a different epoch replaces the
    /// current one and clears the cached batches.
    fn set_epoch(&mut self, epoch: i16) {
        if self.epoch != epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }
}

/// Outcome of [`ProducerStateManager::check`] for an acceptable batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// The batch is next in sequence (or the producer is unknown): append it.
    Append,
    /// The batch repeats a recently appended one: do not append; answer the
    /// producer with the original batch's offsets.
    Duplicate(BatchMetadata),
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ProducerError {
    #[error("producer {producer_id} epoch {epoch} is fenced by current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error(
        "out of order sequence for producer {producer_id} epoch {epoch}: \
         expected {expected}, got {got}"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        epoch: i16,
        expected: i32,
        got: i32,
    },
    /// A non-transactional batch of a producer with an open transaction, or
    /// a transactional batch the coordinator does not know about.
    #[error("invalid transaction state for producer {producer_id}: {reason}")]
    InvalidTxnState {
        producer_id: i64,
        reason: &'static str,
    },
    #[error(
        "marker for producer {producer_id} has coordinator epoch {coordinator_epoch}, \
         below the current {current} (zombie coordinator)"
    )]
    CoordinatorFenced {
        producer_id: i64,
        coordinator_epoch: i32,
        current: i32,
    },
    #[error("corrupt producer snapshot: {0}")]
    CorruptSnapshot(String),
}

impl ProducerError {
    /// The Kafka protocol error code for this error. `CorruptSnapshot` is a
    /// local storage problem, never sent to clients; it maps to
    /// CORRUPT_MESSAGE (2) for completeness.
    pub fn error_code(&self) -> i16 {
        match self {
            ProducerError::InvalidProducerEpoch { .. } => INVALID_PRODUCER_EPOCH,
            ProducerError::OutOfOrderSequence { .. } => OUT_OF_ORDER_SEQUENCE_NUMBER,
            ProducerError::InvalidTxnState { .. } => INVALID_TXN_STATE,
            ProducerError::CoordinatorFenced { .. } => TRANSACTION_COORDINATOR_FENCED,
            ProducerError::CorruptSnapshot(_) => CORRUPT_MESSAGE,
        }
    }
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap from
/// `i32::MAX` to 0. Total: the result is taken modulo 2^31.
fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    let sum = i64::from(sequence) + i64::from(increment);
    i32::try_from(sum.rem_euclid(1 << 31)).unwrap_or(0)
}

/// Kafka's `DefaultRecordBatch.decrementSequence`, the inverse of
/// [`increment_sequence`].
fn decrement_sequence(sequence: i32, decrement: i32) -> i32 {
    let diff = i64::from(sequence) - i64::from(decrement);
    i32::try_from(diff.rem_euclid(1 << 31)).unwrap_or(0)
}

/// Producer state of one partition, keyed by producer id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProducerStateManager {
    producers: BTreeMap<i64, ProducerEntry>,
}

impl ProducerStateManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pure check (no mutation) of a batch against current state, Kafka's rules
    /// (`ProducerAppendInfo.checkProducerEpoch` / `checkSequence`, plus
    /// `ProducerStateEntry.findDuplicateBatch`):
    /// - unknown producer: any sequence is accepted (its state may have been
    ///   removed by retention);
    /// - epoch < current epoch → `InvalidProducerEpoch`;
    /// - epoch > current epoch (bump): `first_seq` must be 0, else
    ///   `OutOfOrderSequence { expected: 0 }`;
    /// - same epoch: `(first_seq, last_seq)` equal to one of the cached batches
    ///   → `Duplicate(that batch)`; else `first_seq` must be the newest cached
    ///   `last_seq + 1` (wrapping `i32::MAX` → 0; 0 if nothing is cached), else
    ///   `OutOfOrderSequence`.
    ///
    /// Transactional rules are [`Self::check_txn`].
    pub fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Result<SequenceCheck, ProducerError> {
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        self.check_epoch(producer_id, epoch)?;
        if entry.sequence_unknown && epoch == entry.epoch {
            return Ok(SequenceCheck::Append);
        }
        let expected = if epoch > entry.epoch {
            0
        } else {
            if let Some(dup) = entry
                .batches
                .iter()
                .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            {
                return Ok(SequenceCheck::Duplicate(*dup));
            }
            increment_sequence(entry.last_seq(), 1)
        };
        if first_seq != expected {
            return Err(ProducerError::OutOfOrderSequence {
                producer_id,
                epoch,
                expected,
                got: first_seq,
            });
        }
        Ok(SequenceCheck::Append)
    }

    /// Kafka's `checkProducerEpoch` alone (for batches without sequence
    /// numbers, and markers): `epoch` below the producer's current epoch →
    /// `InvalidProducerEpoch`. Unknown producers pass.
    pub fn check_epoch(&self, producer_id: i64, epoch: i16) -> Result<(), ProducerError> {
        match self.producers.get(&producer_id) {
            Some(entry) if epoch < entry.epoch => Err(ProducerError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current: entry.epoch,
            }),
            _ => Ok(()),
        }
    }

    /// Kafka's `appendDataBatch` transaction rule: a non-transactional batch
    /// of a producer whose transaction is open → `InvalidTxnState`.
    pub fn check_txn(&self, producer_id: i64, transactional: bool) -> Result<(), ProducerError> {
        let open = self
            .producers
            .get(&producer_id)
            .is_some_and(|e| e.current_txn_first_offset.is_some());
        if open && !transactional {
            return Err(ProducerError::InvalidTxnState {
                producer_id,
                reason: "non-transactional batch while a transaction is open",
            });
        }
        Ok(())
    }

    /// Pure pre-write check of a COMMIT/ABORT marker (Kafka's
    /// `appendEndTxnMarker`, client/coordinator origin): epoch below the
    /// producer's → `InvalidProducerEpoch`; coordinator epoch below the one of
    /// the producer's last marker → `CoordinatorFenced`.
    pub fn check_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<(), ProducerError> {
        self.check_epoch(producer_id, epoch)?;
        match self.producers.get(&producer_id) {
            Some(entry) if entry.coordinator_epoch > coordinator_epoch => {
                Err(ProducerError::CoordinatorFenced {
                    producer_id,
                    coordinator_epoch,
                    current: entry.coordinator_epoch,
                })
            }
            _ => Ok(()),
        }
    }

    /// Whether the producer has an open transaction at exactly `epoch`
    /// (Kafka's `hasOngoingTransaction`).
    pub fn has_ongoing_txn(&self, producer_id: i64, epoch: i16) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|e| e.epoch == epoch && e.current_txn_first_offset.is_some())
    }

    /// Commits an appended batch (after the write succeeded). A different epoch
    /// replaces the producer's epoch and clears its cached batches; the newest
    /// [`MAX_CACHED_BATCHES`] batches are kept.
    pub fn record(&mut self, producer_id: i64, epoch: i16, batch: BatchMetadata) {
        let entry = self.producers.entry(producer_id).or_default();
        entry.set_epoch(epoch);
        entry.sequence_unknown = false;
        entry.batches.push_back(batch);
        while entry.batches.len() > MAX_CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.last_timestamp = batch.timestamp;
    }

    /// Commits an appended data batch of a producer: sequenced batches
    /// (`batch.first_seq >= 0`) are cached as by [`Self::record`]; batches
    /// without sequence numbers (written by a coordinator) only set the
    /// epoch and timestamp. A transactional batch opens the producer's
    /// transaction at `batch.first_offset` unless one is open. Returns true if
    /// it opened one.
    pub fn record_data(
        &mut self,
        producer_id: i64,
        epoch: i16,
        batch: BatchMetadata,
        transactional: bool,
    ) -> bool {
        if batch.first_seq >= 0 {
            self.record(producer_id, epoch, batch);
        } else {
            let entry = self.producers.entry(producer_id).or_default();
            entry.set_epoch(epoch);
            entry.last_timestamp = batch.timestamp;
        }
        let entry = self.producers.entry(producer_id).or_default();
        if transactional && entry.current_txn_first_offset.is_none() {
            entry.current_txn_first_offset = Some(batch.first_offset);
            return true;
        }
        false
    }

    /// Commits an appended COMMIT/ABORT marker (Kafka's `appendEndTxnMarker`
    /// then `ProducerStateEntry.update`): the producer's epoch becomes `epoch`
    /// (a change clears the cached batches), its coordinator epoch
    /// `coordinator_epoch`, its timestamp `timestamp`, and its transaction is
    /// closed. Returns the first offset of the transaction it closed, `None`
    /// if none was open. Unknown producers get an entry with no batch whose
    /// sequence is unknown (see [`ProducerEntry::sequence_unknown`]).
    pub fn record_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
        timestamp: i64,
    ) -> Option<i64> {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                sequence_unknown: true,
                ..Default::default()
            });
        entry.set_epoch(epoch);
        entry.coordinator_epoch = coordinator_epoch;
        entry.last_timestamp = timestamp;
        entry.current_txn_first_offset.take()
    }

    /// Producers with an open transaction as `(producer id, epoch, first
    /// offset)`, in producer-id order.
    pub fn open_txns(&self) -> impl Iterator<Item = (i64, i16, i64)> + '_ {
        self.producers
            .iter()
            .filter_map(|(&id, e)| e.current_txn_first_offset.map(|f| (id, e.epoch, f)))
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// All producers in producer-id order.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.producers.iter().map(|(&id, entry)| (id, entry))
    }

    /// Number of producers tracked.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The log start offset moved (retention / DeleteRecords): drops producers
    /// whose newest batch ends below `log_start_offset`, i.e. whose
    /// `last_offset < log_start_offset`. Producers still in the log keep all
    /// their cached batches (as in Kafka). Producers with no cached batch are
    /// dropped too. A producer with an open transaction is always kept: its
    /// marker is still to come and the last stable offset waits for it.
    pub fn truncate_head(&mut self, log_start_offset: i64) {
        self.producers.retain(|_, entry| {
            entry.current_txn_first_offset.is_some()
                || entry
                    .batches
                    .back()
                    .is_some_and(|b| b.last_offset >= log_start_offset)
        });
    }

    /// The log was truncated to end before `offset` (recovery / leader change):
    /// drops every cached batch that reaches `offset` (`last_offset >=
    /// offset`; truncation happens at batch boundaries) and every open
    /// transaction that starts at or after `offset`, then drops producers left
    /// with no batches and no open transaction. A producer's `last_timestamp`
    /// becomes that of its newest remaining batch. Epochs are kept: all cached
    /// batches belong to the producer's current epoch.
    ///
    /// Markers are not remembered: a transaction closed by a marker at or
    /// after `offset` is not reopened (rebuild from a snapshot instead).
    pub fn truncate_tail(&mut self, offset: i64) {
        self.producers.retain(|_, entry| {
            entry.batches.retain(|b| b.last_offset < offset);
            if entry.current_txn_first_offset.is_some_and(|f| f >= offset) {
                entry.current_txn_first_offset = None;
            }
            if let Some(newest) = entry.batches.back() {
                entry.last_timestamp = newest.timestamp;
            }
            !entry.batches.is_empty() || entry.current_txn_first_offset.is_some()
        });
    }

    /// Serialises the state in Kafka's snapshot format (see the module docs).
    /// Only each producer's newest batch is kept; a producer without cached
    /// batches is written with LastSequence -1, LastOffset -1, OffsetDelta 0.
    pub fn to_snapshot_bytes(&self) -> Vec<u8> {
        let count = self.producers.len();
        let mut out = Vec::with_capacity(SNAPSHOT_CRC_END + 4 + count * SNAPSHOT_ENTRY_LEN);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        // A partition never holds anywhere near 2^31 producers.
        out.extend_from_slice(&i32::try_from(count).unwrap_or(i32::MAX).to_be_bytes());
        for (&producer_id, entry) in &self.producers {
            let (last_seq, last_offset, offset_delta) = match entry.batches.back() {
                Some(b) => (
                    b.last_seq,
                    b.last_offset,
                    // Batches hold at most i32::MAX + 1 records.
                    i32::try_from(b.last_offset.saturating_sub(b.first_offset)).unwrap_or(i32::MAX),
                ),
                None => (NO_SEQUENCE, -1, 0),
            };
            out.extend_from_slice(&producer_id.to_be_bytes());
            out.extend_from_slice(&entry.epoch.to_be_bytes());
            out.extend_from_slice(&last_seq.to_be_bytes());
            out.extend_from_slice(&last_offset.to_be_bytes());
            out.extend_from_slice(&offset_delta.to_be_bytes());
            out.extend_from_slice(&entry.last_timestamp.to_be_bytes());
            out.extend_from_slice(&entry.coordinator_epoch.to_be_bytes());
            out.extend_from_slice(
                &entry
                    .current_txn_first_offset
                    .unwrap_or(NO_TXN_FIRST_OFFSET)
                    .to_be_bytes(),
            );
        }
        let crc = crc32c::crc32c(out.get(SNAPSHOT_CRC_END..).unwrap_or_default());
        if let Some(dst) = out.get_mut(2..SNAPSHOT_CRC_END) {
            dst.copy_from_slice(&crc.to_be_bytes());
        }
        out
    }

    /// Loads a snapshot written by [`Self::to_snapshot_bytes`] or by Kafka.
    /// Fails with `CorruptSnapshot` on a wrong version, a CRC mismatch, a
    /// length that disagrees with the entry count, or an entry with a
    /// negative OffsetDelta or a first offset below zero. An entry with
    /// LastOffset < 0 is loaded as a producer with no cached batch; a
    /// negative CurrentTxnFirstOffset as no open transaction. Later entries
    /// for the same producer id replace earlier ones.
    pub fn from_snapshot_bytes(bytes: &[u8]) -> Result<Self, ProducerError> {
        let corrupt = |what: String| ProducerError::CorruptSnapshot(what);
        let mut r = Reader(bytes);
        let version = r
            .i16()
            .ok_or_else(|| corrupt(format!("{} bytes is too short", bytes.len())))?;
        if version != SNAPSHOT_VERSION {
            return Err(corrupt(format!("unsupported version {version}")));
        }
        let stored_crc = r
            .u32()
            .ok_or_else(|| corrupt(format!("{} bytes is too short", bytes.len())))?;
        let computed_crc = crc32c::crc32c(r.0);
        if stored_crc != computed_crc {
            return Err(corrupt(format!(
                "crc mismatch: stored {stored_crc:#010x}, computed {computed_crc:#010x}"
            )));
        }
        let count = r
            .i32()
            .ok_or_else(|| corrupt(format!("{} bytes is too short", bytes.len())))?;
        let entries_len = r.0.len();
        let count_ok = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(SNAPSHOT_ENTRY_LEN))
            .is_some_and(|needed| needed == entries_len);
        if !count_ok {
            return Err(corrupt(format!(
                "{count} entries do not fit {entries_len} bytes of entries"
            )));
        }
        let mut producers = BTreeMap::new();
        while !r.0.is_empty() {
            let entry = read_entry(&mut r)
                .ok_or_else(|| corrupt("entry truncated".to_string()))
                .and_then(|raw| raw.into_entry().map_err(corrupt))?;
            producers.insert(entry.0, entry.1);
        }
        Ok(ProducerStateManager { producers })
    }
}

/// One snapshot entry as stored.
struct RawEntry {
    producer_id: i64,
    epoch: i16,
    last_seq: i32,
    last_offset: i64,
    offset_delta: i32,
    timestamp: i64,
    coordinator_epoch: i32,
    current_txn_first_offset: i64,
}

impl RawEntry {
    fn into_entry(self) -> Result<(i64, ProducerEntry), String> {
        let mut entry = ProducerEntry {
            epoch: self.epoch,
            batches: VecDeque::new(),
            last_timestamp: self.timestamp,
            coordinator_epoch: self.coordinator_epoch,
            current_txn_first_offset: (self.current_txn_first_offset >= 0)
                .then_some(self.current_txn_first_offset),
            sequence_unknown: false,
        };
        if self.last_offset >= 0 {
            if self.offset_delta < 0 {
                return Err(format!(
                    "producer {} has negative offset delta {}",
                    self.producer_id, self.offset_delta
                ));
            }
            let first_offset = self.last_offset - i64::from(self.offset_delta);
            if first_offset < 0 {
                return Err(format!(
                    "producer {} batch starts at negative offset {first_offset}",
                    self.producer_id
                ));
            }
            entry.batches.push_back(BatchMetadata {
                first_seq: decrement_sequence(self.last_seq, self.offset_delta),
                last_seq: self.last_seq,
                first_offset,
                last_offset: self.last_offset,
                timestamp: self.timestamp,
            });
        }
        Ok((self.producer_id, entry))
    }
}

fn read_entry(r: &mut Reader<'_>) -> Option<RawEntry> {
    Some(RawEntry {
        producer_id: r.i64()?,
        epoch: r.i16()?,
        last_seq: r.i32()?,
        last_offset: r.i64()?,
        offset_delta: r.i32()?,
        timestamp: r.i64()?,
        coordinator_epoch: r.i32()?,
        current_txn_first_offset: r.i64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PID: i64 = 7;
    const INVALID_TXN_STATE: i16 = 48;
    const TRANSACTION_COORDINATOR_FENCED: i16 = 52;

    /// A batch of `n` records with sequences from `first_seq` (wrapping) and
    /// offsets from `first_offset`.
    fn batch(first_seq: i32, n: i32, first_offset: i64) -> BatchMetadata {
        BatchMetadata {
            first_seq,
            last_seq: increment_sequence(first_seq, n - 1),
            first_offset,
            last_offset: first_offset + i64::from(n) - 1,
            timestamp: 1_000 + first_offset,
        }
    }

    /// Producer `PID` at `epoch` after appending batches of 2 records with
    /// sequences 0,2,4,… and offsets 0,10,20,….
    fn with_batches(epoch: i16, count: usize) -> (ProducerStateManager, Vec<BatchMetadata>) {
        let mut m = ProducerStateManager::new();
        let mut all = Vec::new();
        for i in 0..count {
            let b = batch(2 * i as i32, 2, 10 * i as i64);
            assert_eq!(
                m.check(PID, epoch, b.first_seq, b.last_seq),
                Ok(SequenceCheck::Append)
            );
            m.record(PID, epoch, b);
            all.push(b);
        }
        (m, all)
    }

    type Checked = Result<SequenceCheck, ProducerError>;

    fn ooo(epoch: i16, expected: i32, got: i32) -> Checked {
        Err(ProducerError::OutOfOrderSequence {
            producer_id: PID,
            epoch,
            expected,
            got,
        })
    }

    #[test]
    fn sequence_rules_table() {
        // State: epoch 5, batches seq 0-1, 2-3, …, 12-13 (7 appended, 5 cached:
        // 4-5 … 12-13).
        let (m, all) = with_batches(5, 7);
        let fenced = |epoch| {
            Err(ProducerError::InvalidProducerEpoch {
                producer_id: PID,
                epoch,
                current: 5,
            })
        };
        let dup = |i: usize| Ok(SequenceCheck::Duplicate(all[i]));
        // (producer, epoch, first_seq, last_seq, expected)
        let cases: Vec<(i64, i16, i32, i32, Checked)> = vec![
            // Unknown producer: any sequence, any epoch.
            (8, 0, 0, 0, Ok(SequenceCheck::Append)),
            (8, 3, 17, 20, Ok(SequenceCheck::Append)),
            (8, i16::MAX, i32::MAX, 1, Ok(SequenceCheck::Append)),
            (-1, 0, 99, 99, Ok(SequenceCheck::Append)),
            // Old epoch: fenced, whatever the sequence (even a duplicate's).
            (PID, 4, 14, 15, fenced(4)),
            (PID, 4, 12, 13, fenced(4)),
            (PID, 0, 0, 0, fenced(0)),
            (PID, -1, 14, 14, fenced(-1)),
            (PID, i16::MIN, 14, 14, fenced(i16::MIN)),
            // Epoch bump: sequence must restart at 0.
            (PID, 6, 0, 0, Ok(SequenceCheck::Append)),
            (PID, 6, 0, 9, Ok(SequenceCheck::Append)),
            (PID, 6, 1, 1, ooo(6, 0, 1)),
            (PID, 6, 14, 15, ooo(6, 0, 14)),
            (PID, i16::MAX, 0, 3, Ok(SequenceCheck::Append)),
            (PID, i16::MAX, 12, 13, ooo(i16::MAX, 0, 12)),
            // Same epoch: next in sequence.
            (PID, 5, 14, 14, Ok(SequenceCheck::Append)),
            (PID, 5, 14, 20, Ok(SequenceCheck::Append)),
            // Duplicates of each of the 5 cached batches.
            (PID, 5, 4, 5, dup(2)),
            (PID, 5, 6, 7, dup(3)),
            (PID, 5, 8, 9, dup(4)),
            (PID, 5, 10, 11, dup(5)),
            (PID, 5, 12, 13, dup(6)),
            // Evicted batches (6th and 7th oldest) are no longer duplicates.
            (PID, 5, 2, 3, ooo(5, 14, 2)),
            (PID, 5, 0, 1, ooo(5, 14, 0)),
            // Same first_seq but different range: not a duplicate.
            (PID, 5, 12, 14, ooo(5, 14, 12)),
            (PID, 5, 4, 4, ooo(5, 14, 4)),
            // Gaps and sequence 0 in the same epoch.
            (PID, 5, 15, 15, ooo(5, 14, 15)),
            (PID, 5, 16, 17, ooo(5, 14, 16)),
            (PID, 5, 0, 0, ooo(5, 14, 0)),
            (PID, 5, i32::MAX, i32::MAX, ooo(5, 14, i32::MAX)),
            (PID, 5, -1, -1, ooo(5, 14, -1)),
        ];
        for (pid, epoch, first, last, want) in cases {
            assert_eq!(
                m.check(pid, epoch, first, last),
                want,
                "pid {pid} epoch {epoch} seq {first}..={last}"
            );
        }
    }

    #[test]
    fn each_of_the_last_five_is_a_duplicate_and_the_sixth_is_not() {
        for appended in 1..=8 {
            let (m, all) = with_batches(0, appended);
            let next = 2 * appended as i32;
            for (i, b) in all.iter().enumerate() {
                let got = m.check(PID, 0, b.first_seq, b.last_seq);
                if i + MAX_CACHED_BATCHES >= appended {
                    assert_eq!(
                        got,
                        Ok(SequenceCheck::Duplicate(*b)),
                        "{appended} appended, #{i}"
                    );
                } else {
                    assert_eq!(got, ooo(0, next, b.first_seq), "{appended} appended, #{i}");
                }
            }
            let entry = m.get(PID).unwrap();
            assert_eq!(entry.batches.len(), appended.min(MAX_CACHED_BATCHES));
            assert_eq!(entry.batches.back(), all.last());
            assert_eq!(entry.last_timestamp, all.last().unwrap().timestamp);
        }
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let mut m = ProducerStateManager::new();
        // Unknown producer may start anywhere; this batch ends at i32::MAX.
        let b1 = batch(i32::MAX - 2, 3, 0);
        assert_eq!(b1.last_seq, i32::MAX);
        m.record(PID, 0, b1);
        assert_eq!(m.check(PID, 0, 0, 4), Ok(SequenceCheck::Append));
        assert_eq!(m.check(PID, 0, i32::MIN, i32::MIN), ooo(0, 0, i32::MIN));
        assert_eq!(m.check(PID, 0, 1, 1), ooo(0, 0, 1));
        // A batch spanning the wrap: i32::MAX-1, i32::MAX, 0, 1.
        let mut m = ProducerStateManager::new();
        let b2 = batch(i32::MAX - 1, 4, 0);
        assert_eq!(b2.last_seq, 1);
        m.record(PID, 0, b2);
        assert_eq!(m.check(PID, 0, 2, 2), Ok(SequenceCheck::Append));
        assert_eq!(
            m.check(PID, 0, i32::MAX - 1, 1),
            Ok(SequenceCheck::Duplicate(b2))
        );
        assert_eq!(m.check(PID, 0, 0, 1), ooo(0, 2, 0));
    }

    #[test]
    fn record_new_epoch_clears_cache() {
        let (mut m, all) = with_batches(1, 4);
        let b = batch(0, 3, 100);
        assert_eq!(m.check(PID, 2, 0, 2), Ok(SequenceCheck::Append));
        m.record(PID, 2, b);
        let e = m.get(PID).unwrap();
        assert_eq!(e.epoch, 2);
        assert_eq!(e.batches, VecDeque::from([b]));
        assert_eq!(e.last_timestamp, b.timestamp);
        // Old epoch is now fenced; the old batches are not duplicates.
        assert!(matches!(
            m.check(PID, 1, all[3].first_seq, all[3].last_seq),
            Err(ProducerError::InvalidProducerEpoch { current: 2, .. })
        ));
        assert_eq!(m.check(PID, 2, 0, 1), ooo(2, 3, 0));
        assert_eq!(m.check(PID, 2, 3, 3), Ok(SequenceCheck::Append));
        assert_eq!(m.len(), 1);
        assert!(!m.is_empty());
        assert!(ProducerStateManager::new().is_empty());
        assert_eq!(m.get(8), None);
    }

    #[test]
    fn check_does_not_mutate() {
        let (m, _) = with_batches(3, 6);
        let before = m.clone();
        for (e, s) in [(2, 0), (3, 12), (3, 2), (3, 11), (4, 0), (4, 5)] {
            let _ = m.check(PID, e, s, s + 1);
            let _ = m.check(99, e, s, s);
        }
        assert_eq!(m, before);
    }

    #[test]
    fn error_codes_and_messages() {
        let e = ProducerError::InvalidProducerEpoch {
            producer_id: 1,
            epoch: 2,
            current: 3,
        };
        assert_eq!(e.error_code(), 47);
        assert_eq!(
            e.to_string(),
            "producer 1 epoch 2 is fenced by current epoch 3"
        );
        let e = ProducerError::OutOfOrderSequence {
            producer_id: 1,
            epoch: 2,
            expected: 5,
            got: 9,
        };
        assert_eq!(e.error_code(), 45);
        assert!(e.to_string().contains("expected 5, got 9"));
        assert_eq!(ProducerError::CorruptSnapshot("x".into()).error_code(), 2);
    }

    /// Producers 1..=3 with batches ending at offsets: 1 → 9, 19; 2 → 29;
    /// 3 → 39, 49, 59.
    fn three_producers() -> ProducerStateManager {
        let mut m = ProducerStateManager::new();
        m.record(1, 0, batch(0, 10, 0));
        m.record(1, 0, batch(10, 10, 10));
        m.record(2, 4, batch(0, 10, 20));
        m.record(3, 1, batch(0, 10, 30));
        m.record(3, 1, batch(10, 10, 40));
        m.record(3, 1, batch(20, 10, 50));
        m
    }

    #[test]
    fn truncate_head_drops_producers_whose_last_batch_is_gone() {
        // (log start offset, producers left)
        let cases: [(i64, &[i64]); 9] = [
            (i64::MIN, &[1, 2, 3]),
            (0, &[1, 2, 3]),
            (19, &[1, 2, 3]),
            (20, &[2, 3]),
            (29, &[2, 3]),
            (30, &[3]),
            (59, &[3]),
            (60, &[]),
            (i64::MAX, &[]),
        ];
        for (start, left) in cases {
            let mut m = three_producers();
            m.truncate_head(start);
            let ids: Vec<i64> = m.iter().map(|(id, _)| id).collect();
            assert_eq!(ids, left, "start {start}");
            // Survivors keep all their batches.
            for (id, entry) in m.iter() {
                assert_eq!(entry, three_producers().get(id).unwrap());
            }
        }
    }

    #[test]
    fn truncate_tail_drops_batches_at_or_beyond_offset() {
        // (truncation offset, batches left per producer 1, 2, 3)
        let cases: [(i64, [usize; 3]); 10] = [
            (i64::MAX, [2, 1, 3]),
            (60, [2, 1, 3]),
            (59, [2, 1, 2]),
            (50, [2, 1, 2]),
            (49, [2, 1, 1]),
            (30, [2, 1, 0]),
            (29, [2, 0, 0]),
            (19, [1, 0, 0]),
            (9, [0, 0, 0]),
            (i64::MIN, [0, 0, 0]),
        ];
        for (offset, left) in cases {
            let mut m = three_producers();
            let full = three_producers();
            m.truncate_tail(offset);
            for (i, &n) in left.iter().enumerate() {
                let id = i as i64 + 1;
                let orig = full.get(id).unwrap();
                match m.get(id) {
                    None => assert_eq!(n, 0, "offset {offset} producer {id}"),
                    Some(e) => {
                        assert_eq!(e.batches.len(), n, "offset {offset} producer {id}");
                        assert!(n > 0);
                        assert_eq!(e.epoch, orig.epoch);
                        assert!(e.batches.iter().eq(orig.batches.iter().take(n)));
                        assert_eq!(e.last_timestamp, e.batches.back().unwrap().timestamp);
                    }
                }
            }
            assert_eq!(m.len(), left.iter().filter(|&&n| n > 0).count());
        }
        // After truncation the producer continues from its newest remaining batch.
        let mut m = three_producers();
        m.truncate_tail(50);
        assert_eq!(m.check(3, 1, 20, 29), Ok(SequenceCheck::Append));
        assert!(matches!(
            m.check(3, 1, 30, 30),
            Err(ProducerError::OutOfOrderSequence { expected: 20, .. })
        ));
    }

    /// `m` as it reads back from a snapshot: only the newest batch per producer.
    fn newest_only(m: &ProducerStateManager) -> ProducerStateManager {
        let mut out = m.clone();
        for entry in out.producers.values_mut() {
            while entry.batches.len() > 1 {
                entry.batches.pop_front();
            }
        }
        out
    }

    #[test]
    fn snapshot_layout_is_kafkas() {
        let mut m = ProducerStateManager::new();
        m.record(
            0x0102_0304_0506_0708,
            0x0A0B,
            BatchMetadata {
                first_seq: 3,
                last_seq: 7,
                first_offset: 100,
                last_offset: 104,
                timestamp: 0x1122_3344_5566_7788,
            },
        );
        let bytes = m.to_snapshot_bytes();
        let mut want = vec![0x00, 0x01];
        want.extend_from_slice(&[0; 4]);
        want.extend_from_slice(&1i32.to_be_bytes());
        want.extend_from_slice(&0x0102_0304_0506_0708i64.to_be_bytes());
        want.extend_from_slice(&0x0A0Bi16.to_be_bytes());
        want.extend_from_slice(&7i32.to_be_bytes());
        want.extend_from_slice(&104i64.to_be_bytes());
        want.extend_from_slice(&4i32.to_be_bytes());
        want.extend_from_slice(&0x1122_3344_5566_7788i64.to_be_bytes());
        want.extend_from_slice(&(-1i32).to_be_bytes());
        want.extend_from_slice(&(-1i64).to_be_bytes());
        let crc = crc32c::crc32c(&want[6..]);
        want[2..6].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(bytes, want);
        assert_eq!(bytes.len(), 10 + SNAPSHOT_ENTRY_LEN);

        let empty = ProducerStateManager::new().to_snapshot_bytes();
        assert_eq!(empty.len(), 10);
        assert_eq!(
            ProducerStateManager::from_snapshot_bytes(&empty),
            Ok(ProducerStateManager::new())
        );
    }

    #[test]
    fn snapshot_round_trip() {
        let mut m = three_producers();
        let (w, _) = with_batches(9, 7);
        m.producers.insert(PID, w.get(PID).unwrap().clone());
        // A batch whose sequences wrap past i32::MAX.
        m.record(-5, 0, batch(i32::MAX - 1, 4, 500));
        let bytes = m.to_snapshot_bytes();
        let back = ProducerStateManager::from_snapshot_bytes(&bytes).unwrap();
        assert_eq!(back, newest_only(&m));
        assert_eq!(back.to_snapshot_bytes(), bytes);
        let wrapped = back.get(-5).unwrap().batches[0];
        assert_eq!((wrapped.first_seq, wrapped.last_seq), (i32::MAX - 1, 1));
        // The loaded state makes the same decisions for the next batch.
        for (id, e) in m.iter() {
            let next = increment_sequence(e.batches.back().unwrap().last_seq, 1);
            assert_eq!(
                back.check(id, e.epoch, next, next),
                Ok(SequenceCheck::Append)
            );
            let newest = e.batches.back().unwrap();
            assert_eq!(
                back.check(id, e.epoch, newest.first_seq, newest.last_seq),
                Ok(SequenceCheck::Duplicate(*newest))
            );
        }
    }

    #[test]
    fn snapshot_entries_without_a_batch() {
        // As Kafka writes a producer with no data batch: LastOffset -1.
        let mut m = ProducerStateManager::new();
        m.producers.insert(
            4,
            ProducerEntry {
                epoch: 2,
                batches: VecDeque::new(),
                last_timestamp: 77,
                ..Default::default()
            },
        );
        let bytes = m.to_snapshot_bytes();
        // Epoch 2, LastSequence -1, LastOffset -1, OffsetDelta 0.
        assert_eq!(&bytes[18..24], &[0, 2, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(&bytes[24..32], &(-1i64).to_be_bytes());
        assert_eq!(&bytes[32..36], &0i32.to_be_bytes());
        let back = ProducerStateManager::from_snapshot_bytes(&bytes).unwrap();
        assert_eq!(back, m);
        // Same epoch with nothing cached: the sequence must start at 0.
        assert_eq!(back.check(4, 2, 0, 0), Ok(SequenceCheck::Append));
        assert!(matches!(
            back.check(4, 2, 5, 5),
            Err(ProducerError::OutOfOrderSequence { expected: 0, .. })
        ));
        let mut t = back.clone();
        t.truncate_head(0);
        assert!(t.is_empty());
    }

    fn snapshot_with(entry: [u8; SNAPSHOT_ENTRY_LEN]) -> Vec<u8> {
        let mut b = vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        b.extend_from_slice(&entry);
        let crc = crc32c::crc32c(&b[6..]);
        b[2..6].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn snapshot_semantic_checks() {
        let good = three_producers().to_snapshot_bytes();
        let first: [u8; SNAPSHOT_ENTRY_LEN] = good[10..10 + SNAPSHOT_ENTRY_LEN].try_into().unwrap();
        assert!(ProducerStateManager::from_snapshot_bytes(&snapshot_with(first)).is_ok());
        // Negative OffsetDelta.
        let mut e = first;
        e[22..26].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(matches!(
            ProducerStateManager::from_snapshot_bytes(&snapshot_with(e)),
            Err(ProducerError::CorruptSnapshot(_))
        ));
        // OffsetDelta reaching below offset 0.
        let mut e = first;
        e[22..26].copy_from_slice(&20i32.to_be_bytes());
        assert!(matches!(
            ProducerStateManager::from_snapshot_bytes(&snapshot_with(e)),
            Err(ProducerError::CorruptSnapshot(_))
        ));
        // Version 0 and 2 (CRC correct).
        for v in [0u8, 2] {
            let mut b = snapshot_with(first);
            b[1] = v;
            assert_eq!(
                ProducerStateManager::from_snapshot_bytes(&b),
                Err(ProducerError::CorruptSnapshot(format!(
                    "unsupported version {v}"
                )))
            );
        }
        // Count disagreeing with the length (CRC correct).
        for count in [0i32, 2, -1, i32::MAX, i32::MIN] {
            let mut b = snapshot_with(first);
            b[6..10].copy_from_slice(&count.to_be_bytes());
            let crc = crc32c::crc32c(&b[6..]);
            b[2..6].copy_from_slice(&crc.to_be_bytes());
            assert!(
                matches!(
                    ProducerStateManager::from_snapshot_bytes(&b),
                    Err(ProducerError::CorruptSnapshot(_))
                ),
                "count {count}"
            );
        }
    }

    #[test]
    fn corrupt_snapshots_error_and_never_panic() {
        let mut m = three_producers();
        m.record(-5, 0, batch(i32::MAX - 1, 4, 500));
        let good = m.to_snapshot_bytes();
        assert!(ProducerStateManager::from_snapshot_bytes(&good).is_ok());
        for len in 0..good.len() {
            assert!(
                matches!(
                    ProducerStateManager::from_snapshot_bytes(&good[..len]),
                    Err(ProducerError::CorruptSnapshot(_))
                ),
                "truncated to {len}"
            );
        }
        for pos in 0..good.len() {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut bad = good.clone();
                bad[pos] ^= flip;
                assert!(
                    matches!(
                        ProducerStateManager::from_snapshot_bytes(&bad),
                        Err(ProducerError::CorruptSnapshot(_))
                    ),
                    "pos {pos} flip {flip:#x}"
                );
            }
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(ProducerStateManager::from_snapshot_bytes(&longer).is_err());
    }

    fn txn_batch(first_seq: i32, n: i32, first_offset: i64) -> BatchMetadata {
        batch(first_seq, n, first_offset)
    }

    #[test]
    fn transactional_batches_open_and_markers_close() {
        let mut m = ProducerStateManager::new();
        assert!(m.record_data(PID, 2, txn_batch(0, 2, 10), true));
        assert!(
            !m.record_data(PID, 2, txn_batch(2, 2, 20), true),
            "continues"
        );
        assert_eq!(m.get(PID).unwrap().current_txn_first_offset, Some(10));
        assert!(m.has_ongoing_txn(PID, 2));
        assert!(!m.has_ongoing_txn(PID, 3));
        assert_eq!(m.open_txns().collect::<Vec<_>>(), vec![(PID, 2, 10)]);
        // Non-transactional batches are refused while it is open.
        assert_eq!(
            m.check_txn(PID, false).unwrap_err().error_code(),
            INVALID_TXN_STATE
        );
        assert_eq!(m.check_txn(PID, true), Ok(()));
        assert_eq!(m.check_txn(99, false), Ok(()));
        // Marker checks: epoch, then coordinator epoch.
        assert_eq!(
            m.check_marker(PID, 1, 0).unwrap_err().error_code(),
            INVALID_PRODUCER_EPOCH
        );
        assert_eq!(m.check_marker(PID, 2, 0), Ok(()));
        assert_eq!(m.record_marker(PID, 2, 4, 555), Some(10));
        let e = m.get(PID).unwrap();
        assert_eq!(
            (e.epoch, e.coordinator_epoch, e.last_timestamp),
            (2, 4, 555)
        );
        assert_eq!(e.batches.len(), 2, "same epoch keeps the cached batches");
        assert_eq!(e.current_txn_first_offset, None);
        assert_eq!(
            m.check_marker(PID, 2, 3).unwrap_err().error_code(),
            TRANSACTION_COORDINATOR_FENCED
        );
        assert_eq!(m.record_marker(PID, 2, 4, 556), None, "nothing open");
        // Sequences continue across transactions of one epoch.
        assert_eq!(m.check(PID, 2, 4, 4), Ok(SequenceCheck::Append));
        // A bumped marker fences the old epoch and clears the batches.
        assert_eq!(m.record_marker(PID, 3, 4, 557), None);
        let e = m.get(PID).unwrap();
        assert!(e.batches.is_empty());
        assert!(!e.sequence_unknown);
        assert_eq!(
            m.check(PID, 2, 4, 4).unwrap_err().error_code(),
            INVALID_PRODUCER_EPOCH
        );
        assert_eq!(m.check(PID, 3, 4, 4), ooo(3, 0, 4));
        assert_eq!(m.check(PID, 3, 0, 0), Ok(SequenceCheck::Append));
    }

    #[test]
    fn coordinator_batches_without_sequence_are_not_cached() {
        let mut m = ProducerStateManager::new();
        let b = BatchMetadata {
            first_seq: -1,
            last_seq: -1,
            first_offset: 7,
            last_offset: 7,
            timestamp: 9,
        };
        assert!(m.record_data(PID, 1, b, true));
        let e = m.get(PID).unwrap();
        assert!(e.batches.is_empty());
        assert_eq!((e.epoch, e.current_txn_first_offset), (1, Some(7)));
        assert_eq!(
            m.check_epoch(PID, 0).unwrap_err().error_code(),
            INVALID_PRODUCER_EPOCH
        );
    }

    #[test]
    fn marker_for_a_forgotten_producer_accepts_any_sequence() {
        let mut m = ProducerStateManager::new();
        assert_eq!(m.record_marker(PID, 4, 0, 1), None);
        assert!(m.get(PID).unwrap().sequence_unknown);
        assert_eq!(m.check(PID, 4, 17, 18), Ok(SequenceCheck::Append));
        assert!(m.check(PID, 3, 0, 0).is_err(), "still fenced");
        m.record(PID, 4, batch(17, 2, 0));
        assert!(!m.get(PID).unwrap().sequence_unknown);
        assert_eq!(m.check(PID, 4, 20, 20), ooo(4, 19, 20));
    }

    #[test]
    fn open_transactions_survive_truncate_head_and_snapshots() {
        let mut m = three_producers();
        m.record_data(1, 0, batch(20, 5, 60), true); // producer 1 opens at 60
        m.record_marker(2, 4, 9, 70);
        m.truncate_head(1_000);
        let ids: Vec<i64> = m.iter().map(|(id, _)| id).collect();
        assert_eq!(ids, vec![1], "only the producer with an open txn is kept");
        let mut m = three_producers();
        m.record_data(1, 0, batch(20, 5, 60), true);
        m.record_marker(2, 4, 9, 70);
        let bytes = m.to_snapshot_bytes();
        // Producer 1's entry: CoordinatorEpoch -1, CurrentTxnFirstOffset 60.
        let e1 = &bytes[10..10 + SNAPSHOT_ENTRY_LEN];
        assert_eq!(&e1[34..38], &(-1i32).to_be_bytes());
        assert_eq!(&e1[38..46], &60i64.to_be_bytes());
        // Producer 2's: CoordinatorEpoch 9, no transaction.
        let e2 = &bytes[10 + SNAPSHOT_ENTRY_LEN..10 + 2 * SNAPSHOT_ENTRY_LEN];
        assert_eq!(&e2[34..38], &9i32.to_be_bytes());
        assert_eq!(&e2[38..46], &(-1i64).to_be_bytes());
        let back = ProducerStateManager::from_snapshot_bytes(&bytes).unwrap();
        // (One Timestamp field per entry: a marker's time becomes the
        // newest batch's on load, as in Kafka.)
        assert_eq!(back.to_snapshot_bytes(), bytes);
        assert_eq!(back.open_txns().collect::<Vec<_>>(), vec![(1, 0, 60)]);
        assert_eq!(back.get(2).unwrap().coordinator_epoch, 9);
        // Tail truncation drops a transaction starting at or after the cut.
        let mut t = back.clone();
        t.truncate_tail(61);
        assert_eq!(t.open_txns().count(), 1);
        t.truncate_tail(60);
        assert_eq!(t.open_txns().count(), 0);
    }

    proptest! {
        #[test]
        fn arbitrary_snapshot_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = ProducerStateManager::from_snapshot_bytes(&bytes);
        }

        /// Entries with arbitrary field values but a valid CRC and length.
        #[test]
        fn crc_valid_arbitrary_entries_never_panic(entries in proptest::collection::vec(any::<[u8; SNAPSHOT_ENTRY_LEN]>(), 0..5)) {
            let mut b = vec![0, 1, 0, 0, 0, 0];
            b.extend_from_slice(&(entries.len() as i32).to_be_bytes());
            for e in &entries {
                b.extend_from_slice(e);
            }
            let crc = crc32c::crc32c(&b[6..]);
            b[2..6].copy_from_slice(&crc.to_be_bytes());
            if let Ok(m) = ProducerStateManager::from_snapshot_bytes(&b) {
                prop_assert!(m.len() <= entries.len());
                let again = ProducerStateManager::from_snapshot_bytes(&m.to_snapshot_bytes());
                prop_assert_eq!(again, Ok(m.clone()));
                for (id, e) in m.iter() {
                    let _ = m.check(id, e.epoch, 0, 0);
                }
            }
        }

        /// Random operation sequences keep the invariants and round-trip.
        #[test]
        fn random_histories_keep_invariants(
            ops in proptest::collection::vec((0i64..4, 0i16..3, 1i32..5, 0u8..10), 0..60),
        ) {
            let mut m = ProducerStateManager::new();
            let mut next_offset = 0i64;
            for (pid, epoch, n, op) in ops {
                match op {
                    0 => m.truncate_head(next_offset / 2),
                    1 => m.truncate_tail(next_offset - 3),
                    _ => {
                        let first_seq = match m.get(pid) {
                            Some(e) if e.epoch == epoch => increment_sequence(e.last_seq(), 1),
                            _ => 0,
                        };
                        let b = batch(first_seq, n, next_offset);
                        match m.check(pid, epoch, b.first_seq, b.last_seq) {
                            Ok(SequenceCheck::Append) => {
                                m.record(pid, epoch, b);
                                next_offset += i64::from(n);
                            }
                            Ok(SequenceCheck::Duplicate(_)) => prop_assert!(false, "fresh batch seen as duplicate"),
                            Err(ProducerError::InvalidProducerEpoch { .. }) => {}
                            Err(e) => prop_assert!(false, "{}", e),
                        }
                    }
                }
                for (_, e) in m.iter() {
                    prop_assert!(!e.batches.is_empty() && e.batches.len() <= MAX_CACHED_BATCHES);
                    prop_assert_eq!(e.last_timestamp, e.batches.back().unwrap().timestamp);
                }
            }
            let back = ProducerStateManager::from_snapshot_bytes(&m.to_snapshot_bytes()).unwrap();
            prop_assert_eq!(back, newest_only(&m));
        }
    }
}
