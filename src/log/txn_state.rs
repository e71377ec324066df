//! Open transactions and the last stable offset (LSO) of one partition: the
//! transactional part of Kafka's `ProducerStateManager` (`ongoingTxns`,
//! `firstUndecidedOffset`, `completeTxn`, `lastStableOffset(CompletedTxn)`)
//! and `UnifiedLog`'s LSO rule, kept in memory only.
//!
//! Kept in the partition log's state next to the producer state (which holds
//! the same open transactions per producer for snapshots); rebuilt on open
//! from the snapshot's CurrentTxnFirstOffset fields and a log replay.
//!
//! # Rules
//!
//! - [`TxnState::begin_or_continue`] is called for every appended
//!   transactional data batch. The first one of a producer opens its
//!   transaction at that batch's first offset; later ones keep that offset
//!   (a higher epoch is remembered, the first offset is not moved).
//! - [`TxnState::end`] is called after a COMMIT/ABORT marker was appended. It
//!   closes the producer's transaction and returns the [`CompletedTxn`]
//!   (`last_offset` = marker offset). A marker for a producer without an open
//!   transaction returns `None`, as in Kafka (an empty transaction or a
//!   retried marker: nothing to index, no effect on the LSO).
//! - [`TxnState::first_unstable_offset`] is the smallest first offset of the
//!   open transactions; the LSO is `min(that, high watermark)`.
//! - [`TxnState::completion_lso`] is the LSO written into the aborted
//!   transaction index entry: the first unstable offset once the transaction
//!   is removed, or marker offset + 1 if no other transaction is open.
//!
//! # Epochs
//!
//! Kafka (`ProducerAppendInfo.checkProducerEpoch`, transaction versions 0/1)
//! rejects a marker whose producer epoch is *lower* than the producer's
//! current epoch with INVALID_PRODUCER_EPOCH before anything is written, and
//! leaves the transaction open; an equal or higher epoch (the coordinator
//! bumps the epoch when it aborts a timed-out transaction) is accepted and
//! completes the transaction with its original first offset. Replicated
//! markers with a lower epoch are only logged and still applied. Here the
//! pre-write check is [`TxnState::check_marker`] (pure); [`TxnState::end`]
//! itself never refuses, like Kafka's replication path. This tracker only
//! knows the epoch of producers with an open transaction; fencing a producer
//! without one is the idempotent [`ProducerStateManager`]'s job.
//! (Transaction version 2 — epoch bumped on every marker — requires a
//! strictly higher epoch and is not modelled.)
//!
//! # Differences from Kafka
//!
//! Kafka also keeps completed transactions whose marker is not yet below the
//! high watermark (`unreplicatedTxns`) in its first unstable offset. With one
//! node the high watermark is the log end offset, so a marker is always below
//! it right after its append and the set would always be empty; this tracker
//! leaves it out. It is needed once followers replicate: then
//! `min(first_unstable_offset, hw)` can exceed Kafka's LSO while a marker is
//! still at or above the high watermark.
//!
//! [`ProducerStateManager`]: super::producer_state::ProducerStateManager

use std::collections::{BTreeMap, BTreeSet};

/// Kafka's INVALID_PRODUCER_EPOCH error code.
const INVALID_PRODUCER_EPOCH: i16 = 47;

/// A transaction closed by a COMMIT or ABORT marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    /// First offset of the transaction's first data batch.
    pub first_offset: i64,
    /// Offset of the marker.
    pub last_offset: i64,
    pub is_aborted: bool,
}

/// The open transaction of one producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenTxn {
    /// Highest producer epoch seen in this transaction.
    pub epoch: i16,
    pub first_offset: i64,
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum TxnStateError {
    #[error(
        "marker for producer {producer_id} has epoch {epoch}, \
         lower than the epoch {current} of its open transaction"
    )]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
}

impl TxnStateError {
    /// The Kafka protocol error code for this error.
    pub fn error_code(&self) -> i16 {
        match self {
            TxnStateError::InvalidProducerEpoch { .. } => INVALID_PRODUCER_EPOCH,
        }
    }
}

/// Open transactions of one partition.
///
/// Invariant: `by_first` holds exactly `(t.first_offset, pid)` for every
/// `(pid, t)` in `open`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnState {
    open: BTreeMap<i64, OpenTxn>,
    by_first: BTreeSet<(i64, i64)>,
}

impl TxnState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an appended transactional data batch of `producer_id` whose
    /// first offset is `first_offset`: opens the producer's transaction there
    /// if none is open, otherwise keeps the open one (raising its epoch if
    /// `epoch` is higher).
    pub fn begin_or_continue(&mut self, producer_id: i64, epoch: i16, first_offset: i64) {
        match self.open.get_mut(&producer_id) {
            Some(txn) => txn.epoch = txn.epoch.max(epoch),
            None => {
                self.open.insert(
                    producer_id,
                    OpenTxn {
                        epoch,
                        first_offset,
                    },
                );
                self.by_first.insert((first_offset, producer_id));
            }
        }
    }

    /// Pure pre-write check of a COMMIT/ABORT marker: a marker whose epoch is
    /// lower than the epoch of the producer's open transaction is fenced
    /// (Kafka: INVALID_PRODUCER_EPOCH, nothing written). Anything else —
    /// including a marker for a producer without an open transaction — is
    /// accepted.
    pub fn check_marker(&self, producer_id: i64, epoch: i16) -> Result<(), TxnStateError> {
        match self.open.get(&producer_id) {
            Some(txn) if epoch < txn.epoch => Err(TxnStateError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current: txn.epoch,
            }),
            _ => Ok(()),
        }
    }

    /// Records an appended COMMIT (`commit`) or ABORT marker of `producer_id`
    /// at `marker_offset`: closes the producer's open transaction and returns
    /// it, or returns `None` if the producer had none. The epoch is not
    /// checked here (see [`TxnState::check_marker`]).
    pub fn end(
        &mut self,
        producer_id: i64,
        _epoch: i16,
        marker_offset: i64,
        commit: bool,
    ) -> Option<CompletedTxn> {
        let txn = self.open.remove(&producer_id)?;
        self.by_first.remove(&(txn.first_offset, producer_id));
        Some(CompletedTxn {
            producer_id,
            first_offset: txn.first_offset,
            last_offset: marker_offset,
            is_aborted: !commit,
        })
    }

    /// The producer's open transaction, if any.
    pub fn open_txn(&self, producer_id: i64) -> Option<OpenTxn> {
        self.open.get(&producer_id).copied()
    }

    /// Open transactions as `(producer_id, txn)`, in producer-id order.
    pub fn open_txns(&self) -> impl Iterator<Item = (i64, OpenTxn)> + '_ {
        self.open.iter().map(|(&pid, &txn)| (pid, txn))
    }

    /// Smallest first offset of the open transactions (Kafka's
    /// `firstUndecidedOffset`).
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.by_first.first().map(|&(offset, _)| offset)
    }

    /// `min(first_unstable_offset, high_watermark)`.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.first_unstable_offset()
            .map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// LSO to store with `completed` in the transaction index, called after
    /// [`TxnState::end`] returned it: the first unstable offset of the
    /// remaining open transactions, or `completed.last_offset + 1` if none
    /// is open. (Kafka computes it before removing the transaction by
    /// skipping the completing producer's entry; same result.)
    pub fn completion_lso(&self, completed: &CompletedTxn) -> i64 {
        self.by_first
            .iter()
            .find(|&&(_, pid)| pid != completed.producer_id)
            .map_or(completed.last_offset + 1, |&(offset, _)| offset)
    }

    /// Log truncation to `offset` (records at `offset` and above removed):
    /// drops the transactions whose first offset is `>= offset`; the others
    /// stay open with their first offset.
    ///
    /// Markers are not remembered, so a transaction that started below
    /// `offset` and was closed by a marker at or above it is NOT reopened.
    /// When truncation removes such a marker the caller must rebuild the
    /// state by replaying the log from a point before that transaction
    /// (Kafka reloads a producer snapshot and replays the log after any
    /// truncation that changes the map end offset).
    pub fn truncate_to(&mut self, offset: i64) {
        let dropped: Vec<(i64, i64)> = self.by_first.range((offset, i64::MIN)..).copied().collect();
        for key in dropped {
            self.by_first.remove(&key);
            self.open.remove(&key.1);
        }
    }

    /// The log start offset moved to `log_start` (retention, DeleteRecords).
    /// Open transactions are kept even if they started below it, as Kafka
    /// does (`onLogStartOffsetIncremented` only drops completed, unreplicated
    /// transactions): the transaction is still undecided and its marker will
    /// come, so the LSO must not pass it. Intentionally a no-op.
    pub fn truncate_head(&mut self, _log_start: i64) {}

    /// Forgets everything (Kafka's `truncateFullyAndStartAt`).
    pub fn clear(&mut self) {
        self.open.clear();
        self.by_first.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn completed(pid: i64, first: i64, last: i64, aborted: bool) -> CompletedTxn {
        CompletedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            is_aborted: aborted,
        }
    }

    #[test]
    fn empty_state_lso_is_high_watermark() {
        let s = TxnState::new();
        assert!(s.is_empty());
        assert_eq!(s.first_unstable_offset(), None);
        assert_eq!(s.last_stable_offset(0), 0);
        assert_eq!(s.last_stable_offset(17), 17);
    }

    #[test]
    fn first_batch_opens_later_batches_keep_first_offset() {
        let mut s = TxnState::new();
        s.begin_or_continue(1, 0, 10);
        assert_eq!(s.first_unstable_offset(), Some(10));
        s.begin_or_continue(1, 0, 15);
        s.begin_or_continue(1, 0, 20);
        assert_eq!(
            s.open_txn(1),
            Some(OpenTxn {
                epoch: 0,
                first_offset: 10
            })
        );
        assert_eq!(s.first_unstable_offset(), Some(10));
        assert_eq!(s.open_txns().count(), 1);
    }

    #[test]
    fn higher_epoch_batch_keeps_first_offset_and_raises_epoch() {
        let mut s = TxnState::new();
        s.begin_or_continue(1, 3, 10);
        s.begin_or_continue(1, 4, 12);
        assert_eq!(
            s.open_txn(1),
            Some(OpenTxn {
                epoch: 4,
                first_offset: 10
            })
        );
        // A lower epoch never lowers it.
        s.begin_or_continue(1, 2, 14);
        assert_eq!(s.open_txn(1).unwrap().epoch, 4);
    }

    #[test]
    fn lso_is_min_of_first_unstable_and_high_watermark() {
        let mut s = TxnState::new();
        s.begin_or_continue(1, 0, 10);
        // hw below, at, just above and far above the first unstable offset.
        assert_eq!(s.last_stable_offset(9), 9);
        assert_eq!(s.last_stable_offset(10), 10);
        assert_eq!(s.last_stable_offset(11), 10);
        assert_eq!(s.last_stable_offset(100), 10);
    }

    #[test]
    fn first_unstable_is_smallest_first_offset_regardless_of_order() {
        let mut s = TxnState::new();
        s.begin_or_continue(7, 0, 30);
        s.begin_or_continue(2, 0, 5);
        s.begin_or_continue(9, 0, 12);
        assert_eq!(s.first_unstable_offset(), Some(5));
        s.end(2, 0, 40, true);
        assert_eq!(s.first_unstable_offset(), Some(12));
        s.end(9, 0, 41, false);
        assert_eq!(s.first_unstable_offset(), Some(30));
        s.end(7, 0, 42, true);
        assert_eq!(s.first_unstable_offset(), None);
        assert_eq!(s.last_stable_offset(43), 43);
    }

    #[test]
    fn end_returns_completed_txn_commit_and_abort() {
        let mut s = TxnState::new();
        s.begin_or_continue(1, 0, 3);
        s.begin_or_continue(1, 0, 6);
        assert_eq!(s.end(1, 0, 9, true), Some(completed(1, 3, 9, false)));
        assert!(s.is_empty());
        s.begin_or_continue(1, 0, 10);
        assert_eq!(s.end(1, 0, 11, false), Some(completed(1, 10, 11, true)));
        assert!(s.is_empty());
    }

    #[test]
    fn marker_without_open_txn_returns_none_and_changes_nothing() {
        let mut s = TxnState::new();
        assert_eq!(s.end(1, 0, 0, true), None);
        s.begin_or_continue(2, 0, 1);
        let before = s.clone();
        // Unknown producer, and a retried marker after the real one.
        assert_eq!(s.end(1, 0, 2, false), None);
        assert_eq!(s, before);
        assert!(s.end(2, 0, 3, true).is_some());
        assert_eq!(s.end(2, 0, 4, true), None);
        assert!(s.is_empty());
    }

    #[test]
    fn new_txn_after_end_opens_at_new_offset() {
        let mut s = TxnState::new();
        s.begin_or_continue(1, 0, 0);
        s.end(1, 0, 2, true);
        s.begin_or_continue(1, 0, 3);
        assert_eq!(s.first_unstable_offset(), Some(3));
    }

    #[test]
    fn check_marker_epoch_rules() {
        let mut s = TxnState::new();
        // No open txn: nothing to judge.
        assert_eq!(s.check_marker(1, 0), Ok(()));
        s.begin_or_continue(1, 5, 0);
        let err = s.check_marker(1, 4).unwrap_err();
        assert_eq!(
            err,
            TxnStateError::InvalidProducerEpoch {
                producer_id: 1,
                epoch: 4,
                current: 5
            }
        );
        assert_eq!(err.error_code(), 47);
        // Equal and bumped epochs are accepted (coordinator abort on timeout).
        assert_eq!(s.check_marker(1, 5), Ok(()));
        assert_eq!(s.check_marker(1, 6), Ok(()));
        // Other producers are unaffected.
        assert_eq!(s.check_marker(2, 0), Ok(()));
        // A bumped-epoch marker completes the txn with its first offset.
        assert_eq!(s.end(1, 6, 4, false), Some(completed(1, 0, 4, true)));
    }

    #[test]
    fn end_does_not_check_epoch() {
        // Kafka's replication path: a lower-epoch marker is only logged.
        let mut s = TxnState::new();
        s.begin_or_continue(1, 5, 0);
        assert_eq!(s.end(1, 4, 1, true), Some(completed(1, 0, 1, false)));
    }

    #[test]
    fn completion_lso_is_marker_plus_one_when_nothing_open() {
        let mut s = TxnState::new();
        s.begin_or_continue(1, 0, 4);
        let c = s.end(1, 0, 8, false).unwrap();
        assert_eq!(s.completion_lso(&c), 9);
    }

    #[test]
    fn completion_lso_is_next_open_txn() {
        let mut s = TxnState::new();
        s.begin_or_continue(1, 0, 4);
        s.begin_or_continue(2, 0, 6);
        s.begin_or_continue(3, 0, 5);
        // Completing the earliest: the next earliest open one.
        let c = s.end(1, 0, 8, false).unwrap();
        assert_eq!(s.completion_lso(&c), 5);
        // Completing a later one: the earliest still open one, below it.
        let c = s.end(2, 0, 9, false).unwrap();
        assert_eq!(s.completion_lso(&c), 5);
        let c = s.end(3, 0, 10, true).unwrap();
        assert_eq!(s.completion_lso(&c), 11);
    }

    #[test]
    fn completion_lso_same_as_kafka_before_removal() {
        // Kafka's rule evaluated before `end`: skip the completing producer.
        let mut s = TxnState::new();
        s.begin_or_continue(1, 0, 4);
        s.begin_or_continue(2, 0, 6);
        let c = completed(1, 4, 8, true);
        assert_eq!(s.completion_lso(&c), 6);
        s.end(1, 0, 8, false);
        assert_eq!(s.completion_lso(&c), 6);
    }

    #[test]
    fn truncate_to_drops_txns_starting_at_or_above() {
        let mut s = TxnState::new();
        s.begin_or_continue(1, 0, 9);
        s.begin_or_continue(2, 0, 10);
        s.begin_or_continue(3, 0, 11);
        s.truncate_to(11);
        assert!(s.open_txn(3).is_none());
        assert!(s.open_txn(2).is_some());
        s.truncate_to(10);
        assert!(s.open_txn(2).is_none());
        assert_eq!(s.open_txn(1).unwrap().first_offset, 9);
        assert_eq!(s.first_unstable_offset(), Some(9));
        // Truncating inside a txn keeps it open at its first offset.
        s.begin_or_continue(1, 0, 12);
        s.truncate_to(12);
        assert_eq!(s.open_txn(1).unwrap().first_offset, 9);
        s.truncate_to(9);
        assert!(s.is_empty());
        assert_eq!(s.first_unstable_offset(), None);
        // The producer can open a new txn afterwards.
        s.begin_or_continue(1, 0, 9);
        assert_eq!(s.first_unstable_offset(), Some(9));
    }

    #[test]
    fn truncate_head_keeps_open_txns() {
        let mut s = TxnState::new();
        s.begin_or_continue(1, 0, 3);
        s.begin_or_continue(2, 0, 8);
        let before = s.clone();
        s.truncate_head(3);
        s.truncate_head(4);
        s.truncate_head(100);
        assert_eq!(s, before);
        assert_eq!(s.last_stable_offset(200), 3);
    }

    #[test]
    fn clear_forgets_everything() {
        let mut s = TxnState::new();
        s.begin_or_continue(1, 0, 3);
        s.clear();
        assert!(s.is_empty());
        assert_eq!(s.end(1, 0, 4, true), None);
    }

    // ---- model-based property test ----

    #[derive(Clone, Debug)]
    enum Op {
        Plain { count: i64 },
        TxnData { pid: i64, count: i64 },
        Marker { pid: i64, commit: bool, bump: bool },
        StaleMarker { pid: i64 },
        Truncate { frac: f64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (1i64..4).prop_map(|count| Op::Plain { count }),
            5 => (0i64..4, 1i64..4).prop_map(|(pid, count)| Op::TxnData { pid, count }),
            3 => (0i64..4, any::<bool>(), prop::bool::weighted(0.2))
                .prop_map(|(pid, commit, bump)| Op::Marker { pid, commit, bump }),
            1 => (0i64..4).prop_map(|pid| Op::StaleMarker { pid }),
            1 => (0.0f64..1.0).prop_map(|frac| Op::Truncate { frac }),
        ]
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Rec {
        Plain,
        /// Data of transaction number `usize` in `Model::txns`.
        Txn(usize),
        Marker,
    }

    #[derive(Clone, Debug)]
    struct ModelTxn {
        pid: i64,
        first: i64,
        /// Marker offset and whether it aborted, once decided.
        end: Option<(i64, bool)>,
    }

    #[derive(Default)]
    struct Model {
        records: Vec<Rec>,
        txns: Vec<ModelTxn>,
        epochs: [i16; 4],
        /// (pid, first, last, lso) of every abort, in marker order.
        aborted: Vec<(i64, i64, i64, i64)>,
    }

    impl Model {
        fn leo(&self) -> i64 {
            self.records.len() as i64
        }

        fn open_of(&self, pid: i64) -> Option<usize> {
            self.txns
                .iter()
                .position(|t| t.pid == pid && t.end.is_none())
        }

        fn lso(&self, hw: i64) -> i64 {
            self.txns
                .iter()
                .filter(|t| t.end.is_none())
                .map(|t| t.first)
                .fold(hw, i64::min)
        }

        fn is_decided(&self, offset: i64) -> bool {
            match self.records[offset as usize] {
                Rec::Plain | Rec::Marker => true,
                Rec::Txn(i) => self.txns[i].end.is_some(),
            }
        }
    }

    fn check(state: &TxnState, model: &Model, hw: i64) -> Result<(), TestCaseError> {
        let first = model
            .txns
            .iter()
            .filter(|t| t.end.is_none())
            .map(|t| t.first)
            .min();
        prop_assert_eq!(state.first_unstable_offset(), first);
        prop_assert_eq!(state.last_stable_offset(hw), model.lso(hw));
        let leo = model.leo();
        prop_assert_eq!(state.last_stable_offset(leo), model.lso(leo));
        for offset in 0..state.last_stable_offset(leo) {
            prop_assert!(
                model.is_decided(offset),
                "offset {} below LSO undecided",
                offset
            );
        }
        for (pid, txn) in state.open_txns() {
            let i = model.open_of(pid);
            prop_assert!(i.is_some());
            prop_assert_eq!(txn.first_offset, model.txns[i.unwrap()].first);
        }
        prop_assert_eq!(
            state.open_txns().count(),
            model.txns.iter().filter(|t| t.end.is_none()).count()
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

        #[test]
        fn tracker_matches_model(
            ops in prop::collection::vec((op(), 0.0f64..=1.0), 1..80),
        ) {
            let mut state = TxnState::new();
            let mut model = Model::default();
            let mut aborted: Vec<(i64, i64, i64, i64)> = Vec::new();
            for (op, hw_frac) in ops {
                match op {
                    Op::Plain { count } => {
                        for _ in 0..count {
                            model.records.push(Rec::Plain);
                        }
                    }
                    Op::TxnData { pid, count } => {
                        let base = model.leo();
                        let idx = match model.open_of(pid) {
                            Some(i) => i,
                            None => {
                                model.txns.push(ModelTxn { pid, first: base, end: None });
                                model.txns.len() - 1
                            }
                        };
                        for _ in 0..count {
                            model.records.push(Rec::Txn(idx));
                        }
                        state.begin_or_continue(pid, model.epochs[pid as usize], base);
                    }
                    Op::Marker { pid, commit, bump } => {
                        if bump {
                            model.epochs[pid as usize] += 1;
                        }
                        let epoch = model.epochs[pid as usize];
                        prop_assert_eq!(state.check_marker(pid, epoch), Ok(()));
                        let at = model.leo();
                        model.records.push(Rec::Marker);
                        let expected = model.open_of(pid).map(|i| {
                            model.txns[i].end = Some((at, !commit));
                            completed(pid, model.txns[i].first, at, !commit)
                        });
                        let got = state.end(pid, epoch, at, commit);
                        prop_assert_eq!(got, expected);
                        if let Some(c) = got {
                            if c.is_aborted {
                                let lso = state.completion_lso(&c);
                                aborted.push((pid, c.first_offset, c.last_offset, lso));
                            }
                        }
                        if !commit {
                            if let Some(c) = expected {
                                // Model: first offset of the other open txns, else marker + 1.
                                let lso = model
                                    .txns
                                    .iter()
                                    .filter(|t| t.end.is_none())
                                    .map(|t| t.first)
                                    .min()
                                    .unwrap_or(at + 1);
                                model.aborted.push((pid, c.first_offset, at, lso));
                            }
                        }
                    }
                    Op::StaleMarker { pid } => {
                        let epoch = model.epochs[pid as usize];
                        let result = state.check_marker(pid, epoch - 1);
                        if model.open_of(pid).is_some() {
                            prop_assert_eq!(
                                result,
                                Err(TxnStateError::InvalidProducerEpoch {
                                    producer_id: pid,
                                    epoch: epoch - 1,
                                    current: epoch,
                                })
                            );
                        } else {
                            prop_assert_eq!(result, Ok(()));
                        }
                        // Rejected: nothing written.
                    }
                    Op::Truncate { frac } => {
                        let to = (frac * model.leo() as f64) as i64;
                        // Contract of truncate_to: no removed marker closed a
                        // txn that started below `to`; otherwise skip.
                        let reopens = model.txns.iter().any(|t| {
                            t.first < to && matches!(t.end, Some((m, _)) if m >= to)
                        });
                        if !reopens {
                            state.truncate_to(to);
                            model.records.truncate(to as usize);
                            // Txns starting at or above `to` are gone (their
                            // records are); mark them so nothing refers to them.
                            for t in model.txns.iter_mut() {
                                if t.first >= to {
                                    t.end = Some((-1, false));
                                }
                            }
                            model.aborted.retain(|a| a.2 < to);
                            aborted.retain(|a| a.2 < to);
                        }
                    }
                }
                let hw = (hw_frac * model.leo() as f64) as i64;
                check(&state, &model, hw)?;
                prop_assert_eq!(&aborted, &model.aborted);
            }
        }
    }
}
