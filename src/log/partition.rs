//! One partition's log: an ordered list of segments (the last one active),
//! the idempotent-producer state, the log start offset and the flush policy.
//!
//! Append order (DESIGN §3): validate → check producer state → assign offsets
//! by patching the header → write → index → commit producer state → advance
//! the log end offset → wake waiting fetches. Records are never decoded.
//!
//! Transactions (Kafka's `UnifiedLog` / `ProducerStateManager`): a
//! transactional data batch opens its producer's transaction (tracked in
//! [`TxnState`] for the last stable offset, and in the producer's entry for
//! snapshots); COMMIT/ABORT control batches written with
//! [`PartitionLog::append_marker`] close it, and an ABORT is recorded in the
//! `.txnindex` of the segment holding the marker. READ_COMMITTED reads stop
//! at the last stable offset and carry the aborted transactions overlapping
//! what they return. Markers are the only batches whose records the log
//! reads, and only during recovery.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use uuid::Uuid;

use super::batch::{self, BatchError, BatchHeader, HEADER_LEN};
use super::compression::{self, AppendRules};
use super::control::{self, Marker, MarkerType};
use super::fsutil;
use super::producer_state::{BatchMetadata, ProducerError, ProducerStateManager, SequenceCheck};
use super::segment::{self, FileRange, Segment, SEGMENT_FILE_EXTENSIONS};
use super::txn_index::AbortedTxn;
use super::txn_state::{CompletedTxn, TxnState};
use crate::config::{TimestampType, TopicConfig};
use crate::metadata::topic_name::uuid_to_base64;

/// Producer snapshots always kept per partition (newest first). Older ones
/// are kept too while at or above the base of the segment holding the
/// recovery point (and of the segment before the active one), as Kafka's
/// `minSnapshotsOffsetToRetain`: recovery replays from a snapshot at or below
/// the first segment it re-validates, to rebuild its transaction index.
const SNAPSHOTS_KEPT: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("offset {offset} out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error(transparent)]
    Producer(#[from] ProducerError),
    #[error("partition was deleted")]
    Deleted,
    #[error("storage error: {0}")]
    Io(#[from] io::Error),
}

impl LogError {
    pub fn error_code(&self) -> i16 {
        use kafka_protocol::error::ResponseError as E;
        match self {
            LogError::OffsetOutOfRange { .. } => E::OffsetOutOfRange.code(),
            LogError::Batch(e) => e.error_code(),
            LogError::Producer(e) => e.error_code(),
            LogError::Deleted => E::UnknownTopicOrPartition.code(),
            LogError::Io(_) => E::KafkaStorageError.code(),
        }
    }
}

/// The outcome of a successful append.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub base_offset: i64,
    /// The broker's timestamp for LogAppendTime topics, else -1.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// The flush policy wants this partition fsynced before the ack.
    pub needs_flush: bool,
    /// The batch was a retry of one already stored; nothing was written.
    pub duplicate: bool,
    /// A new segment was started: the sealed one should be fsynced in the
    /// background so the recovery point moves past it (Kafka flushes on roll).
    pub rolled: bool,
}

/// Taken by [`PartitionLog::txn_verification_guard`] before a transaction
/// is verified with the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnVerificationGuard(u64);

/// Fetch / ListOffsets isolation level (Kafka's `IsolationLevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    ReadUncommitted,
    ReadCommitted,
}

impl Isolation {
    /// The wire value: 1 is READ_COMMITTED, anything else READ_UNCOMMITTED.
    pub fn from_wire(level: i8) -> Isolation {
        if level == 1 {
            Isolation::ReadCommitted
        } else {
            Isolation::ReadUncommitted
        }
    }
}

/// What [`PartitionLog::write_batch`] wrote (its base offset is
/// `stored.base_offset`).
struct Written {
    stored: BatchHeader,
    log_append_time: i64,
    rolled: bool,
}

pub struct ReadResult {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub last_stable_offset: i64,
    /// READ_COMMITTED: the aborted transactions overlapping the returned
    /// range (Kafka's `collectAbortedTransactions`); `None` for
    /// READ_UNCOMMITTED (Kafka sends a null list then).
    pub aborted: Option<Vec<AbortedTxn>>,
}

struct LogState {
    segments: Vec<Segment>,
    config: TopicConfig,
    producers: ProducerStateManager,
    /// Open transactions ordered by first offset (the LSO).
    txns: TxnState,
    log_start_offset: i64,
    /// Everything below this offset is known to be on stable storage.
    recovery_point: i64,
    unflushed_messages: i64,
    last_flush_ms: i64,
    leader_epoch: i32,
    /// Markers appended since start-up, and the count when each producer's
    /// last one was appended (KIP-890 verification guards; in memory only).
    markers_appended: u64,
    last_marker: std::collections::HashMap<i64, u64>,
}

impl LogState {
    fn active(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
    }

    fn log_end(&self) -> i64 {
        self.segments.last().map_or(0, |s| s.next_offset)
    }

    /// Kafka's LSO: the first offset of the oldest open transaction (not
    /// below the log start offset), capped by the high watermark (= the log
    /// end on one node).
    fn last_stable_offset(&self) -> i64 {
        let hw = self.log_end();
        match self.txns.first_unstable_offset() {
            Some(first) => first.max(self.log_start_offset).min(hw),
            None => hw,
        }
    }

    /// The segment holding `offset` (the last one whose base is <= offset).
    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }
}

pub struct PartitionLog {
    pub topic: String,
    pub partition: i32,
    pub topic_id: Uuid,
    dir: PathBuf,
    state: Mutex<LogState>,
    /// Mirrors of the state's log end, log start and last stable offset for
    /// lock-free readers.
    log_end: AtomicI64,
    log_start: AtomicI64,
    lso: AtomicI64,
    deleted: AtomicBool,
    /// Flushes that reached the disk (fsync rounds), for tests and metrics.
    fsyncs: std::sync::atomic::AtomicU64,
    /// Woken after every append; long-polling fetches wait on it.
    pub appended: tokio::sync::Notify,
}

pub fn partition_dir(root: &Path, topic: &str, partition: i32) -> PathBuf {
    root.join(format!("{topic}-{partition}"))
}

pub struct OpenOptions {
    pub recovery_point: Option<i64>,
    pub log_start_offset: Option<i64>,
    /// The broker shut down cleanly last time: only segments past the
    /// recovery point are re-validated.
    pub clean_shutdown: bool,
    pub now_ms: i64,
}

impl PartitionLog {
    pub fn create(
        root: &Path,
        topic: &str,
        partition: i32,
        topic_id: Uuid,
        config: TopicConfig,
        now_ms: i64,
    ) -> io::Result<PartitionLog> {
        let dir = partition_dir(root, topic, partition);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
        fsutil::write_atomically(
            &dir.join("partition.metadata"),
            format!("version: 0\ntopic_id: {}\n", uuid_to_base64(&topic_id)).as_bytes(),
        )?;
        let segment = Segment::create(&dir, 0, now_ms)?;
        fsutil::sync_dir(root)?;
        Ok(Self::assemble(
            topic,
            partition,
            topic_id,
            dir,
            config,
            vec![segment],
            ProducerStateManager::new(),
            TxnState::new(),
            0,
            0,
            now_ms,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        topic: &str,
        partition: i32,
        topic_id: Uuid,
        dir: PathBuf,
        config: TopicConfig,
        segments: Vec<Segment>,
        producers: ProducerStateManager,
        txns: TxnState,
        log_start_offset: i64,
        recovery_point: i64,
        now_ms: i64,
    ) -> PartitionLog {
        let log_end = segments.last().map_or(0, |s| s.next_offset);
        let state = LogState {
            segments,
            config,
            producers,
            txns,
            log_start_offset,
            recovery_point,
            unflushed_messages: 0,
            last_flush_ms: now_ms,
            leader_epoch: 0,
            markers_appended: 0,
            last_marker: std::collections::HashMap::new(),
        };
        let lso = state.last_stable_offset();
        PartitionLog {
            topic: topic.to_string(),
            partition,
            topic_id,
            dir,
            state: Mutex::new(state),
            log_end: AtomicI64::new(log_end),
            log_start: AtomicI64::new(log_start_offset),
            lso: AtomicI64::new(lso),
            deleted: AtomicBool::new(false),
            fsyncs: std::sync::atomic::AtomicU64::new(0),
            appended: tokio::sync::Notify::new(),
        }
    }

    /// Opens an existing partition directory, recovering after a crash:
    /// segments past the recovery point are re-validated and a torn or
    /// corrupt tail is truncated (later segments are deleted); producer state
    /// is rebuilt from the newest usable snapshot plus the log after it.
    pub fn open(
        root: &Path,
        topic: &str,
        partition: i32,
        topic_id: Uuid,
        config: TopicConfig,
        opts: OpenOptions,
    ) -> io::Result<PartitionLog> {
        let dir = partition_dir(root, topic, partition);
        // An interrupted cleaning is finished or undone before the segments
        // are listed.
        super::cleaner::recover_files(&dir)?;
        let mut bases = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(base) = segment::parse_file_name(&name, "log") {
                bases.push(base);
            } else if name.ends_with(".tmp") || name.ends_with(".deleted") {
                let _ = fs::remove_file(dir.join(&*name));
            }
        }
        bases.sort_unstable();
        let index_interval = config.index_interval_bytes.max(1) as u64;
        let recovery_point = opts.recovery_point.unwrap_or(0);
        let mut segments: Vec<Segment> = Vec::new();
        // Per segment: its transaction index must be rebuilt from the log
        // (the segment was re-validated, or its index was damaged).
        let mut rebuild_txn_index: Vec<bool> = Vec::new();
        let mut truncated_at: Option<usize> = None;
        for (i, &base) in bases.iter().enumerate() {
            let next_base = bases.get(i + 1).copied();
            let is_last = next_base.is_none();
            let needs_recovery =
                !opts.clean_shutdown && (is_last || next_base.is_some_and(|n| n > recovery_point));
            let mut seg = Segment::open(&dir, base, needs_recovery, index_interval, opts.now_ms)?;
            if let Some(prev) = segments.last() {
                if seg.base_offset < prev.next_offset {
                    tracing::warn!(
                        topic,
                        partition,
                        base,
                        "segment overlaps its predecessor; dropping it and later segments"
                    );
                    truncated_at = Some(i);
                    break;
                }
            }
            // A rolled segment ends where its successor begins; one that
            // recovery cut short makes everything after it unreachable. (A
            // cleaned segment may end early with nothing cut: compaction
            // leaves offset gaps.)
            let ends_early = needs_recovery
                && seg.truncated_bytes > 0
                && next_base.is_some_and(|n| seg.next_offset < n);
            seg.dirty = false;
            rebuild_txn_index.push(needs_recovery || seg.txn_index_dropped_on_open() > 0);
            segments.push(seg);
            if ends_early {
                truncated_at = Some(i + 1);
                break;
            }
        }
        if let Some(from) = truncated_at {
            for &base in &bases[from..] {
                tracing::warn!(
                    topic,
                    partition,
                    base,
                    "deleting segment after a corrupt one"
                );
                for ext in SEGMENT_FILE_EXTENSIONS {
                    let _ = fs::remove_file(dir.join(segment::file_name(base, ext)));
                }
            }
        }
        if segments.is_empty() {
            let base = opts.log_start_offset.unwrap_or(0).max(0);
            segments.push(Segment::create(&dir, base, opts.now_ms)?);
            rebuild_txn_index.push(false);
        }
        let log_end = segments.last().map_or(0, |s| s.next_offset);
        let first_base = segments[0].base_offset;
        let log_start_offset = opts
            .log_start_offset
            .unwrap_or(first_base)
            .clamp(first_base, log_end);
        let (producers, txns) = rebuild_producer_state(
            &dir,
            &mut segments,
            &rebuild_txn_index,
            log_start_offset,
            log_end,
        )?;
        let recovery_point = if opts.clean_shutdown {
            log_end
        } else {
            recovery_point.min(log_end)
        };
        let log = Self::assemble(
            topic,
            partition,
            topic_id,
            dir,
            config,
            segments,
            producers,
            txns,
            log_start_offset,
            recovery_point,
            opts.now_ms,
        );
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log_end.load(Ordering::Acquire)
    }

    /// On a single node every appended record is committed, so the high
    /// watermark is the log end offset.
    pub fn high_watermark(&self) -> i64 {
        self.log_end_offset()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }

    pub fn leader_epoch(&self) -> i32 {
        self.state.lock().leader_epoch
    }

    pub fn config(&self) -> TopicConfig {
        self.state.lock().config.clone()
    }

    pub fn set_config(&self, config: TopicConfig) {
        self.state.lock().config = config;
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    pub fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
        self.appended.notify_waiters();
    }

    /// Appends the `records` of one Produce partition (exactly one v2 batch).
    ///
    /// A transactional batch is accepted whether or not its producer has an
    /// open transaction here (it opens one); a Produce path that verified
    /// the transaction with the coordinator should use
    /// [`Self::append_as_leader_verified`].
    pub fn append_as_leader(&self, records: &[u8], now_ms: i64) -> Result<Appended, LogError> {
        self.append_guarded(records, now_ms, None)
    }

    /// KIP-890 part 1: take a guard before asking the transaction coordinator
    /// to verify a transactional batch (when [`Self::needs_txn_verification`]
    /// says so), then append with [`Self::append_as_leader_verified`].
    pub fn txn_verification_guard(&self) -> TxnVerificationGuard {
        TxnVerificationGuard(self.state.lock().markers_appended)
    }

    /// [`Self::append_as_leader`] after a successful verification: if the
    /// batch is transactional, its producer has no open transaction here at
    /// its epoch, and a marker for the producer was appended since `guard`
    /// was taken (the transaction the coordinator vouched for ended in
    /// between), the batch is refused with INVALID_TXN_STATE instead of
    /// opening a transaction the coordinator does not know (Kafka's
    /// `VerificationGuard`).
    pub fn append_as_leader_verified(
        &self,
        records: &[u8],
        now_ms: i64,
        guard: TxnVerificationGuard,
    ) -> Result<Appended, LogError> {
        self.append_guarded(records, now_ms, Some(guard))
    }

    fn append_guarded(
        &self,
        records: &[u8],
        now_ms: i64,
        guard: Option<TxnVerificationGuard>,
    ) -> Result<Appended, LogError> {
        // The topic config as of now (a changed config applies from the next
        // append); record checks and recompression run outside the lock.
        let rules = {
            let state = self.state.lock();
            if self.is_deleted() {
                return Err(LogError::Deleted);
            }
            AppendRules::new(&state.config)
        };
        let header = batch::validate_produce_batch(records, rules.max_message_bytes)?;
        let converted = compression::prepare_append(
            records,
            &header,
            &rules,
            now_ms,
            (&self.topic, self.partition),
        )?;
        let records = converted.as_deref().unwrap_or(records);
        let mut state = self.state.lock();
        if self.is_deleted() {
            return Err(LogError::Deleted);
        }
        let log_start_offset = state.log_start_offset;

        // Stage producer state: a retry of a stored batch returns its offsets.
        if header.has_producer_id() && header.base_sequence >= 0 {
            let check = state.producers.check(
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
                header.last_sequence(),
            )?;
            if let SequenceCheck::Duplicate(meta) = check {
                return Ok(Appended {
                    base_offset: meta.first_offset,
                    log_append_time: -1,
                    log_start_offset,
                    needs_flush: false,
                    duplicate: true,
                    rolled: false,
                });
            }
        } else if header.has_producer_id() && header.is_transactional() {
            // A coordinator's transactional batch without sequence numbers
            // (TxnOffsetCommit): only the epoch is checked, as Kafka does.
            state
                .producers
                .check_epoch(header.producer_id, header.producer_epoch)?;
        }
        if header.has_producer_id() {
            state
                .producers
                .check_txn(header.producer_id, header.is_transactional())?;
        }
        if let Some(TxnVerificationGuard(taken)) = guard {
            let pid = header.producer_id;
            if header.has_producer_id()
                && header.is_transactional()
                && !state.producers.has_ongoing_txn(pid, header.producer_epoch)
                && state.last_marker.get(&pid).is_some_and(|&m| m > taken)
            {
                return Err(ProducerError::InvalidTxnState {
                    producer_id: pid,
                    reason: "the transaction ended after it was verified",
                }
                .into());
            }
        }

        let written = self.write_batch(&mut state, records, now_ms)?;
        {
            let st = &mut *state;
            apply_data_batch(&mut st.producers, &mut st.txns, &written.stored);
        }
        Ok(self.publish(state, &written, now_ms))
    }

    /// Appends a COMMIT/ABORT control batch for `marker` (written by the
    /// transaction coordinator, never by clients): fences lower epochs,
    /// closes the producer's open transaction, indexes an abort.
    ///
    /// Kafka's `appendEndTxnMarker` (transaction version 1): a producer epoch
    /// below the producer's current one → INVALID_PRODUCER_EPOCH, a
    /// coordinator epoch below the one of the producer's last marker →
    /// TRANSACTION_COORDINATOR_FENCED; nothing is written then. Otherwise the
    /// marker takes one offset, the producer's epoch becomes the marker's (so
    /// older epochs are fenced) and, if a transaction was open, it is closed
    /// (an ABORT goes to the `.txnindex` of the segment the marker lands in).
    /// A marker for a producer without an open transaction is still written
    /// and indexes nothing.
    pub fn append_marker(&self, marker: &Marker, now_ms: i64) -> Result<Appended, LogError> {
        let mut state = self.state.lock();
        if self.is_deleted() {
            return Err(LogError::Deleted);
        }
        let pid = marker.producer_id;
        state
            .producers
            .check_marker(pid, marker.producer_epoch, marker.coordinator_epoch)?;
        let bytes = control::encode_marker(marker, now_ms);
        let written = self.write_batch(&mut state, &bytes, now_ms)?;
        let base_offset = written.stored.base_offset;

        // The abort goes to the index before the state commits: if the index
        // write fails the marker is cut off again and nothing happened.
        if marker.kind == MarkerType::Abort {
            if let Some(open) = state.txns.open_txn(pid) {
                let completed = CompletedTxn {
                    producer_id: pid,
                    first_offset: open.first_offset,
                    last_offset: base_offset,
                    is_aborted: true,
                };
                let entry = AbortedTxn {
                    producer_id: pid,
                    first_offset: open.first_offset,
                    last_offset: base_offset,
                    last_stable_offset: state.txns.completion_lso(&completed),
                };
                if let Err(e) = state.active().append_aborted(entry) {
                    let index_interval = state.config.index_interval_bytes.max(1) as u64;
                    if let Err(undo) = state
                        .active()
                        .truncate_to_offset(base_offset, index_interval)
                    {
                        tracing::error!(topic = %self.topic, partition = self.partition,
                            "cannot remove a marker whose abort was not indexed: {undo}");
                    }
                    return Err(e.into());
                }
            }
        }
        {
            let st = &mut *state;
            apply_marker(&mut st.producers, &mut st.txns, marker, &written.stored);
            st.markers_appended += 1;
            st.last_marker.insert(pid, st.markers_appended);
        }
        Ok(self.publish(state, &written, now_ms))
    }

    /// The last stable offset: the first offset of the oldest open
    /// transaction (not below the log start offset), capped by the high
    /// watermark. Lock-free.
    pub fn last_stable_offset(&self) -> i64 {
        self.lso.load(Ordering::Acquire)
    }

    /// Whether a transactional batch of `producer_id` at `epoch` must be
    /// checked with the transaction coordinator before it is appended
    /// (KIP-890 part 1): true unless the producer already has an open
    /// transaction here at that epoch (Kafka's `hasOngoingTransaction`).
    pub fn needs_txn_verification(&self, producer_id: i64, epoch: i16) -> bool {
        !self
            .state
            .lock()
            .producers
            .has_ongoing_txn(producer_id, epoch)
    }

    /// Open transactions here as `(producer id, epoch, first offset)` in
    /// producer-id order (DescribeProducers, tests).
    pub fn open_transactions(&self) -> Vec<(i64, i16, i64)> {
        self.state.lock().producers.open_txns().collect()
    }

    /// Every producer this partition tracks, in producer-id order
    /// (DescribeProducers).
    pub fn producers(&self) -> Vec<(i64, super::producer_state::ProducerEntry)> {
        let state = self.state.lock();
        state
            .producers
            .iter()
            .map(|(id, e)| (id, e.clone()))
            .collect()
    }

    /// Every `.txnindex` entry, per segment as `(segment base, entries)`
    /// (tests, tools).
    pub fn aborted_index(&self) -> Vec<(i64, Vec<AbortedTxn>)> {
        self.state
            .lock()
            .segments
            .iter()
            .map(|s| (s.base_offset, s.aborted_txns().to_vec()))
            .collect()
    }

    /// The end of an append (data or marker): counts the batch towards the
    /// flush policy, publishes the new log end and LSO, releases the lock
    /// and wakes waiting fetches.
    fn publish(
        &self,
        mut state: parking_lot::MutexGuard<'_, LogState>,
        written: &Written,
        now_ms: i64,
    ) -> Appended {
        let stored = &written.stored;
        state.unflushed_messages += stored.records_count as i64;
        let needs_flush = state.unflushed_messages >= state.config.flush_messages
            || now_ms.saturating_sub(state.last_flush_ms) >= state.config.flush_ms;
        self.log_end
            .store(stored.last_offset() + 1, Ordering::Release);
        self.lso
            .store(state.last_stable_offset(), Ordering::Release);
        let log_start_offset = state.log_start_offset;
        drop(state);
        self.appended.notify_waiters();
        Appended {
            base_offset: stored.base_offset,
            log_append_time: written.log_append_time,
            log_start_offset,
            needs_flush,
            duplicate: false,
            rolled: written.rolled,
        }
    }

    /// Writes one batch at the log end: base offset and partition leader
    /// epoch patched into a header copy (LogAppendTime set when the topic
    /// wants it), the segment rolled if due, the batch appended and indexed.
    /// Producer state and the log end mirror are the caller's.
    fn write_batch(
        &self,
        state: &mut LogState,
        records: &[u8],
        now_ms: i64,
    ) -> Result<Written, LogError> {
        let base_offset = state.log_end();
        let mut head = [0u8; HEADER_LEN];
        head.copy_from_slice(&records[..HEADER_LEN]);
        let rest = &records[HEADER_LEN..];
        batch::set_base_offset(&mut head, base_offset);
        batch::set_partition_leader_epoch(&mut head, state.leader_epoch);
        let log_append_time = if state.config.message_timestamp_type == TimestampType::LogAppendTime
        {
            set_log_append_time(&mut head, rest, now_ms);
            now_ms
        } else {
            -1
        };
        let stored = BatchHeader::parse(&head)?;
        let rolled = self.maybe_roll(state, &stored, records.len() as u64, now_ms)?;
        let index_interval = state.config.index_interval_bytes.max(1) as u64;
        state
            .active()
            .append(&head, rest, &stored, index_interval)?;
        Ok(Written {
            stored,
            log_append_time,
            rolled,
        })
    }

    fn maybe_roll(
        &self,
        state: &mut LogState,
        next: &BatchHeader,
        len: u64,
        now_ms: i64,
    ) -> io::Result<bool> {
        let config = &state.config;
        let active = state.segments.last().expect("active segment");
        if active.is_empty() {
            return Ok(false);
        }
        let full = active.size + len > config.segment_bytes as u64;
        let rel_overflow = next.last_offset() - active.base_offset > u32::MAX as i64;
        // Kafka's LogSegment.timeWaitedForRoll: message time against the
        // first batch's timestamp, or wall time against the creation time.
        let waited = match active.roll_base_timestamp {
            Some(first) if first >= 0 => next.max_timestamp.saturating_sub(first),
            _ => now_ms.saturating_sub(active.created_ms),
        };
        // Kafka's LogConfig.maxSegmentMs: a compacted log also rolls once
        // max.compaction.lag.ms has passed, or a quiet partition's active
        // segment (never cleaned) would keep its records past the lag.
        let max_segment_ms = if config.compacted() && config.max_compaction_lag_ms > 0 {
            config.segment_ms.min(config.max_compaction_lag_ms)
        } else {
            config.segment_ms
        };
        let aged = waited > max_segment_ms;
        let pos_overflow = active.size + len > u32::MAX as u64;
        if !(full || rel_overflow || aged || pos_overflow) {
            return Ok(false);
        }
        self.roll(state, now_ms)?;
        Ok(true)
    }

    /// Starts a new segment now unless the active one is empty (used by the
    /// coordinators to rewrite their partitions compactly).
    pub fn roll_now(&self, now_ms: i64) -> io::Result<()> {
        let mut state = self.state.lock();
        if self.is_deleted() || state.segments.last().is_some_and(|s| s.is_empty()) {
            return Ok(());
        }
        self.roll(&mut state, now_ms)
    }

    fn roll(&self, state: &mut LogState, now_ms: i64) -> io::Result<()> {
        let new_base = state.log_end();
        state.active().seal()?;
        let segment = Segment::create(&self.dir, new_base, now_ms)?;
        state.segments.push(segment);
        self.write_snapshot(state, new_base)?;
        tracing::debug!(topic = %self.topic, partition = self.partition, new_base, "rolled segment");
        Ok(())
    }

    fn write_snapshot(&self, state: &LogState, offset: i64) -> io::Result<()> {
        let path = self.dir.join(segment::file_name(offset, "snapshot"));
        fsutil::write_atomically(&path, &state.producers.to_snapshot_bytes())?;
        let recovery_base =
            state.segments[state.segment_index_for(state.recovery_point)].base_offset;
        let before_active = state.segments[state.segments.len().saturating_sub(2)].base_offset;
        let min_retain = recovery_base.min(before_active);
        let mut snaps = list_snapshots(&self.dir)?;
        snaps.sort_unstable_by(|a, b| b.cmp(a));
        for old in snaps.into_iter().skip(SNAPSHOTS_KEPT) {
            if old < min_retain {
                let _ = fs::remove_file(self.dir.join(segment::file_name(old, "snapshot")));
            }
        }
        Ok(())
    }

    /// Reads whole batches starting with the one holding `offset`, up to
    /// `max_bytes`; the first batch is returned whole even when larger
    /// (KIP-74). Reads stop at the end of the segment holding `offset`.
    /// READ_UNCOMMITTED; see [`Self::read_isolated`].
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, LogError> {
        self.read_isolated(offset, max_bytes, Isolation::ReadUncommitted)
    }

    /// [`Self::read`] at an isolation level. READ_COMMITTED returns only
    /// whole batches below the last stable offset (an open transaction's
    /// first batch starts at a batch boundary, so no batch straddles it) and
    /// the aborted transactions overlapping `[offset, next offset after the
    /// returned batches)`, collected from the transaction indexes of the
    /// segment holding `offset` and the later ones (Kafka's
    /// `collectAbortedTransactions`). An offset in `[LSO, log end]` reads
    /// nothing; beyond the log end is OFFSET_OUT_OF_RANGE.
    pub fn read_isolated(
        &self,
        offset: i64,
        max_bytes: usize,
        isolation: Isolation,
    ) -> Result<ReadResult, LogError> {
        let committed = isolation == Isolation::ReadCommitted;
        let (range, limit, high_watermark, last_stable_offset, log_start_offset, candidates) = {
            let state = self.state.lock();
            if self.is_deleted() {
                return Err(LogError::Deleted);
            }
            let log_end = state.log_end();
            if offset < state.log_start_offset || offset > log_end {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start: state.log_start_offset,
                    log_end,
                });
            }
            let lso = state.last_stable_offset();
            let limit = if committed { lso } else { log_end };
            if offset >= limit {
                return Ok(ReadResult {
                    records: Bytes::new(),
                    high_watermark: log_end,
                    log_start_offset: state.log_start_offset,
                    last_stable_offset: lso,
                    aborted: committed.then(Vec::new),
                });
            }
            let mut i = state.segment_index_for(offset);
            // The offset may sit past the end of its segment when a batch
            // spanning it was compacted away or the segment is empty.
            // (A cleaned segment may be empty: nothing at or after its base.)
            while i + 1 < state.segments.len()
                && state.segments[i].next_offset <= offset.max(state.segments[i].base_offset)
            {
                i += 1;
            }
            // Every aborted transaction that can overlap the read: the
            // returned range ends at or below the LSO.
            let candidates = committed.then(|| {
                let mut out = Vec::new();
                for seg in &state.segments[i..] {
                    let (found, complete) = seg.collect_aborted(offset, lso);
                    out.extend(found);
                    if complete {
                        break;
                    }
                }
                out
            });
            let seg = &state.segments[i];
            (
                seg.range_from(seg.position_hint(offset)),
                limit,
                log_end,
                lso,
                state.log_start_offset,
                candidates,
            )
        };
        let (records, upper_bound) = read_batches(&range, offset, max_bytes, limit)?;
        let aborted = candidates.map(|mut c| {
            c.retain(|t| t.first_offset < upper_bound);
            c
        });
        Ok(ReadResult {
            records,
            high_watermark,
            log_start_offset,
            last_stable_offset,
            aborted,
        })
    }

    /// ListOffsets by timestamp: the first offset whose record timestamp is
    /// >= `ts`, with that record's timestamp. `None` if there is none.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        let candidates: Vec<(FileRange, i64)> = {
            let state = self.state.lock();
            state
                .segments
                .iter()
                .filter(|s| s.max_timestamp >= ts && !s.is_empty())
                .map(|s| {
                    (
                        s.range_from(s.position_hint_for_timestamp(ts)),
                        s.base_offset,
                    )
                })
                .collect()
        };
        let log_start = self.log_start_offset();
        for (range, base) in candidates {
            let mut found = None;
            segment::scan(
                &range.file,
                range.start,
                range.end,
                false,
                base,
                |pos, h| {
                    if found.is_none() && h.max_timestamp >= ts && h.last_offset() >= log_start {
                        found = Some((pos, *h));
                    }
                },
            )?;
            if let Some((pos, h)) = found {
                return Ok(Some(find_record_by_timestamp(
                    &range.file,
                    pos,
                    &h,
                    ts,
                    log_start,
                )?));
            }
        }
        Ok(None)
    }

    /// ListOffsets -3: the largest timestamp and the offset holding it.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, LogError> {
        let best = {
            let state = self.state.lock();
            state
                .segments
                .iter()
                .filter(|s| !s.is_empty() && s.max_timestamp >= 0)
                .max_by_key(|s| s.max_timestamp)
                .map(|s| (s.max_timestamp, s.offset_of_max_timestamp))
        };
        let Some((max_ts, batch_offset)) =
            best.filter(|&(_, offset)| offset >= self.log_start_offset())
        else {
            return Ok(None);
        };
        // The segment knows the batch; Kafka (KAFKA-16310) answers with the
        // record itself: the first one carrying the maximum timestamp.
        Ok(Some(
            self.offset_for_timestamp(max_ts)?
                .unwrap_or((max_ts, batch_offset)),
        ))
    }

    /// DeleteRecords: moves the log start offset up to `offset` (-1 means the
    /// high watermark) and deletes whole segments below it.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let mut state = self.state.lock();
        let log_end = state.log_end();
        let target = if offset == -1 { log_end } else { offset };
        if target < 0 || target > log_end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: state.log_start_offset,
                log_end,
            });
        }
        if target > state.log_start_offset {
            state.log_start_offset = target;
            self.log_start.store(target, Ordering::Release);
            self.delete_segments_below_start(&mut state)?;
        }
        Ok(state.log_start_offset)
    }

    fn delete_segments_below_start(&self, state: &mut LogState) -> io::Result<usize> {
        let mut deleted = 0;
        while state.segments.len() > 1 && state.segments[1].base_offset <= state.log_start_offset {
            let seg = state.segments.remove(0);
            seg.delete_files(&self.dir)?;
            deleted += 1;
        }
        if state.log_start_offset >= state.log_end()
            && !state.segments.last().is_some_and(|s| s.is_empty())
        {
            // Everything is deleted: start a fresh segment at the start offset.
            let start = state.log_start_offset;
            self.roll_to(state, start)?;
            deleted += self.delete_segments_below_start(state)?;
        }
        let start = state.log_start_offset;
        state.producers.truncate_head(start);
        state.txns.truncate_head(start);
        let LogState {
            last_marker,
            producers,
            ..
        } = state;
        last_marker.retain(|pid, _| producers.get(*pid).is_some());
        self.lso
            .store(state.last_stable_offset(), Ordering::Release);
        Ok(deleted)
    }

    fn roll_to(&self, state: &mut LogState, base: i64) -> io::Result<()> {
        state.active().seal()?;
        let now = now_ms();
        state.segments.push(Segment::create(&self.dir, base, now)?);
        // Recovery replays from a snapshot at or below the first segment.
        self.write_snapshot(state, base)
    }

    /// Retention by time and size (never the active segment). Returns the
    /// number of segments deleted.
    pub fn apply_retention(&self, now_ms: i64) -> io::Result<usize> {
        let mut state = self.state.lock();
        if self.is_deleted() || !state.config.cleanup_policy.contains("delete") {
            return Ok(0);
        }
        let retention_ms = state.config.retention_ms;
        let retention_bytes = state.config.retention_bytes;
        let mut total: u64 = state.segments.iter().map(|s| s.size).sum();
        let mut new_start = state.log_start_offset;
        let sealed = state.segments.len() - 1;
        for (i, seg) in state.segments[..sealed].iter().enumerate() {
            // Kafka judges a segment by its largest timestamp; one without
            // timestamps by its file time.
            let age_base = if seg.max_timestamp >= 0 {
                seg.max_timestamp
            } else {
                seg.created_ms
            };
            let expired = retention_ms >= 0 && now_ms - age_base > retention_ms;
            let oversize = retention_bytes >= 0
                && total - seg.size >= retention_bytes as u64
                && total > retention_bytes as u64;
            if !(expired || oversize) {
                break;
            }
            total -= seg.size;
            // The next segment's base, as Kafka: a cleaned segment may end
            // before it (offset gaps), and a start inside the gap would
            // keep the expired segment forever.
            new_start = new_start.max(state.segments[i + 1].base_offset);
        }
        if new_start > state.log_start_offset {
            state.log_start_offset = new_start;
            self.log_start.store(new_start, Ordering::Release);
            return self.delete_segments_below_start(&mut state);
        }
        Ok(0)
    }

    /// Makes everything appended so far durable. The lock is held only to
    /// collect the files; fsync runs outside it.
    pub fn flush(&self) -> io::Result<()> {
        let (files, txn_indexes, target) = {
            let mut state = self.state.lock();
            let target = state.log_end();
            if target <= state.recovery_point && !state.segments.iter().any(|s| s.dirty) {
                return Ok(());
            }
            let mut txn_indexes = Vec::new();
            let files: Vec<_> = state
                .segments
                .iter_mut()
                .filter(|s| s.dirty)
                .map(|s| {
                    s.dirty = false;
                    txn_indexes.extend(s.take_unsynced_txn_index());
                    s.file()
                })
                .collect();
            state.unflushed_messages = 0;
            state.last_flush_ms = now_ms();
            (files, txn_indexes, target)
        };
        let synced = files
            .iter()
            .try_for_each(|f| f.sync_data())
            .and_then(|()| self.sync_txn_indexes(&txn_indexes));
        if let Err(e) = synced {
            // Not durable after all: the next flush must try again.
            let created = txn_indexes.iter().any(|(_, c)| *c);
            for seg in &mut self.state.lock().segments {
                seg.dirty = true;
                seg.mark_txn_index_unsynced(created);
            }
            return Err(e);
        }
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        let mut state = self.state.lock();
        state.recovery_point = state.recovery_point.max(target);
        Ok(())
    }

    /// fsyncs transaction index files (and the directory if one was created).
    /// The segment may have been deleted meanwhile: a missing file is fine.
    fn sync_txn_indexes(&self, files: &[(PathBuf, bool)]) -> io::Result<()> {
        for (path, _) in files {
            match fs::File::open(path) {
                Ok(f) => f.sync_data()?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if files.iter().any(|(_, created)| *created) {
            fsutil::sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Is a time-based flush (`flush.ms`) due?
    pub fn flush_due(&self, now_ms: i64) -> bool {
        let state = self.state.lock();
        state.config.flush_ms != i64::MAX
            && state.unflushed_messages > 0
            && now_ms.saturating_sub(state.last_flush_ms) >= state.config.flush_ms
    }

    pub fn fsync_count(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    pub fn recovery_point(&self) -> i64 {
        self.state.lock().recovery_point
    }

    /// Clean shutdown: seal the active segment, snapshot producer state at
    /// the log end, fsync everything.
    pub fn close(&self) -> io::Result<()> {
        {
            let mut state = self.state.lock();
            state.active().seal()?;
            let end = state.log_end();
            self.write_snapshot(&state, end)?;
            for s in &mut state.segments {
                s.dirty = true;
                s.sync_indexes()?;
            }
        }
        self.flush()
    }

    pub fn producer_count(&self) -> usize {
        self.state.lock().producers.len()
    }

    pub fn segment_count(&self) -> usize {
        self.state.lock().segments.len()
    }

    /// Bytes of record data on disk (segment files only, as Kafka's
    /// `Log.size` and DescribeLogDirs count them).
    pub fn size_bytes(&self) -> u64 {
        self.state.lock().segments.iter().map(|s| s.size).sum()
    }

    /// What the log cleaner needs: the sealed segments and the offsets that
    /// bound cleaning, copied under the lock (`cleaner.rs`).
    pub(crate) fn cleaner_view(&self) -> Option<super::cleaner::CleanerView> {
        let state = self.state.lock();
        if self.is_deleted() || !state.config.compacted() {
            return None;
        }
        let n = state.segments.len();
        let segments = (0..n.saturating_sub(1))
            .map(|i| {
                let s = &state.segments[i];
                super::cleaner::SegmentView {
                    base: s.base_offset,
                    end: state.segments[i + 1].base_offset,
                    size: s.size,
                    file: s.file(),
                    max_timestamp: s.max_timestamp,
                    first_batch_timestamp: s.roll_base_timestamp,
                    aborted: s.aborted_txns().to_vec(),
                }
            })
            .collect();
        let aborted = state
            .segments
            .iter()
            .flat_map(|s| s.aborted_txns().iter().copied())
            .collect();
        let producer_last_offsets = state
            .producers
            .iter()
            .filter_map(|(pid, e)| e.batches.back().map(|b| (pid, b.last_offset)))
            .collect();
        Some(super::cleaner::CleanerView {
            dir: self.dir.clone(),
            config: state.config.clone(),
            log_start: state.log_start_offset,
            last_stable_offset: state.last_stable_offset(),
            active_base: state.segments[n - 1].base_offset,
            segments,
            aborted,
            producer_last_offsets,
            index_interval: state.config.index_interval_bytes.max(1) as u64,
        })
    }

    /// Commits a cleaned copy (`<base>.log.cleaned`, its indexes already
    /// `.swap`) and swaps it in for `members` (base offset, file) under the
    /// lock, if they are still the log's segments; readers holding their
    /// files keep reading them.
    pub(crate) fn swap_cleaned(
        &self,
        members: &[(i64, std::sync::Arc<fs::File>)],
        end: i64,
        crash: Option<super::cleaner::CrashPoint>,
    ) -> io::Result<super::cleaner::SwapOutcome> {
        use super::cleaner::SwapOutcome;
        let mut state = self.state.lock();
        let base = members[0].0;
        let Some(first) = state.segments.iter().position(|s| s.base_offset == base) else {
            return Ok(SwapOutcome::Stale);
        };
        let count = members.len();
        let still_there = !self.is_deleted()
            && first + count < state.segments.len()
            && state.segments[first + count].base_offset == end
            && members.iter().enumerate().all(|(i, (b, f))| {
                let s = &state.segments[first + i];
                s.base_offset == *b && std::sync::Arc::ptr_eq(&s.file(), f)
            });
        if !still_there {
            return Ok(SwapOutcome::Stale);
        }
        if !super::cleaner::commit_swap(&self.dir, base, end, crash)? {
            return Ok(SwapOutcome::Crashed);
        }
        let index_interval = state.config.index_interval_bytes.max(1) as u64;
        let seg = Segment::open(&self.dir, base, false, index_interval, now_ms())?;
        state
            .segments
            .splice(first..first + count, std::iter::once(seg));
        Ok(SwapOutcome::Swapped)
    }

    pub fn segment_bases(&self) -> Vec<i64> {
        self.state
            .lock()
            .segments
            .iter()
            .map(|s| s.base_offset)
            .collect()
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Sets LogAppendTime in a header copy and recomputes the CRC over the
/// patched header tail and the untouched rest of the batch.
fn set_log_append_time(head: &mut [u8; HEADER_LEN], rest: &[u8], ts: i64) {
    let attributes = i16::from_be_bytes([head[21], head[22]]) | 0x08;
    head[21..23].copy_from_slice(&attributes.to_be_bytes());
    head[35..43].copy_from_slice(&ts.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head[21..]), rest);
    head[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Reads whole batches from `range` starting at the batch holding `offset`,
/// only batches that start below `limit`. Returns them and the offset after
/// the last one (`offset` if there is none).
fn read_batches(
    range: &FileRange,
    offset: i64,
    max_bytes: usize,
    limit: i64,
) -> io::Result<(Bytes, i64)> {
    // Find the first batch whose last offset >= `offset` from the index hint.
    let mut first: Option<(u64, usize)> = None;
    let mut pos = range.start;
    let mut head = [0u8; HEADER_LEN];
    while pos + HEADER_LEN as u64 <= range.end {
        range.file.read_exact_at(&mut head, pos)?;
        let Ok(h) = BatchHeader::parse(&head) else {
            break;
        };
        if h.last_offset() >= offset {
            if h.base_offset < limit {
                first = Some((pos, h.total_len()));
            }
            break;
        }
        pos += h.total_len() as u64;
    }
    let Some((start, first_len)) = first else {
        return Ok((Bytes::new(), offset));
    };
    let want = (range.end - start).min(max_bytes.max(first_len) as u64) as usize;
    let mut buf = vec![0u8; want];
    range.file.read_exact_at(&mut buf, start)?;
    // Trim to whole batches below the limit.
    let mut end = 0;
    let mut next_offset = offset;
    for (p, h) in batch::BatchIter::new(&buf) {
        if h.base_offset >= limit {
            break;
        }
        end = p + h.total_len();
        next_offset = h.last_offset() + 1;
    }
    buf.truncate(end);
    Ok((Bytes::from(buf), next_offset))
}

/// Within one batch, the first record with timestamp >= `ts`: decodes the
/// batch (the only place the broker does so on a client request, as Kafka).
fn find_record_by_timestamp(
    file: &std::fs::File,
    pos: u64,
    h: &BatchHeader,
    ts: i64,
    log_start: i64,
) -> io::Result<(i64, i64)> {
    if h.is_log_append_time() || h.records_count <= 1 {
        return Ok((h.max_timestamp, h.base_offset.max(log_start)));
    }
    let mut buf = vec![0u8; h.total_len()];
    file.read_exact_at(&mut buf, pos)?;
    let mut bytes = Bytes::from(buf);
    if let Ok(set) = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes) {
        for r in set.records {
            if r.timestamp >= ts && r.offset >= log_start {
                return Ok((r.timestamp, r.offset));
            }
        }
    }
    Ok((h.max_timestamp, h.base_offset.max(log_start)))
}

fn list_snapshots(dir: &Path) -> io::Result<Vec<i64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        if let Some(o) = segment::parse_file_name(&entry?.file_name().to_string_lossy(), "snapshot")
        {
            out.push(o);
        }
    }
    Ok(out)
}

/// Commits the producer and transaction effects of a stored data batch (the
/// append path after its write, and recovery replay): sequenced batches and
/// transactional ones update their producer; a transactional one opens or
/// continues its producer's transaction.
fn apply_data_batch(producers: &mut ProducerStateManager, txns: &mut TxnState, h: &BatchHeader) {
    if !h.has_producer_id() || (h.base_sequence < 0 && !h.is_transactional()) {
        return;
    }
    producers.record_data(
        h.producer_id,
        h.producer_epoch,
        BatchMetadata {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
            timestamp: h.max_timestamp,
        },
        h.is_transactional(),
    );
    if h.is_transactional() {
        txns.begin_or_continue(h.producer_id, h.producer_epoch, h.base_offset);
    }
}

/// Commits a stored COMMIT/ABORT marker `h` (offset `h.base_offset`):
/// producer epoch and coordinator epoch updated, the transaction closed.
/// Returns the transaction it closed with the LSO to index it with.
fn apply_marker(
    producers: &mut ProducerStateManager,
    txns: &mut TxnState,
    marker: &Marker,
    h: &BatchHeader,
) -> Option<(CompletedTxn, i64)> {
    let pid = marker.producer_id;
    producers.record_marker(
        pid,
        marker.producer_epoch,
        marker.coordinator_epoch,
        h.max_timestamp,
    );
    let commit = marker.kind == MarkerType::Commit;
    let completed = txns.end(pid, marker.producer_epoch, h.base_offset, commit)?;
    let lso = txns.completion_lso(&completed);
    Some((completed, lso))
}

/// Reads and decodes the marker of the control batch `h` at `pos`.
fn read_marker(file: &fs::File, pos: u64, h: &BatchHeader) -> io::Result<Option<Marker>> {
    let mut buf = vec![0u8; h.total_len()];
    file.read_exact_at(&mut buf, pos)?;
    Ok(control::decode_marker(&buf).ok())
}

/// Rebuilds producer and transaction state on open: the newest usable
/// snapshot (at or below the log end, and at or below the first segment whose
/// transaction index is rebuilt), then a header-only replay of every batch
/// after it. Control batches are decoded to close transactions. Segments
/// flagged in `rebuild_txn_index` (re-validated by recovery, or with a damaged
/// index) get their `.txnindex` rebuilt from the replay, as Kafka's
/// `LogSegment.recover` does; other segments only get entries they miss at
/// the end. Snapshots past the log end (left by a truncation) or unreadable
/// ones are deleted.
fn rebuild_producer_state(
    dir: &Path,
    segments: &mut [Segment],
    rebuild_txn_index: &[bool],
    log_start: i64,
    log_end: i64,
) -> io::Result<(ProducerStateManager, TxnState)> {
    let first_base = segments.first().map_or(0, |s| s.base_offset);
    let first_rebuilt = segments
        .iter()
        .zip(rebuild_txn_index)
        .find(|(_, &rebuild)| rebuild)
        .map(|(s, _)| s.base_offset);
    let mut snaps = list_snapshots(dir)?;
    snaps.sort_unstable_by(|a, b| b.cmp(a));
    let mut producers = ProducerStateManager::new();
    let mut replay_from = first_base;
    for snap in snaps {
        let path = dir.join(segment::file_name(snap, "snapshot"));
        if snap > log_end {
            let _ = fs::remove_file(&path);
            continue;
        }
        if first_rebuilt.is_some_and(|b| snap > b) || snap < first_base {
            // Valid, but too late to rebuild that segment's index from; or
            // older than the log, whose batches after it are gone (markers
            // among them would be missed).
            continue;
        }
        match fs::read(&path).map(|b| ProducerStateManager::from_snapshot_bytes(&b)) {
            Ok(Ok(p)) => {
                producers = p;
                replay_from = snap;
                break;
            }
            _ => {
                tracing::warn!(path = %path.display(), "unreadable producer snapshot; deleting");
                let _ = fs::remove_file(&path);
            }
        }
    }
    let mut txns = TxnState::new();
    for (pid, epoch, first_offset) in producers.open_txns() {
        txns.begin_or_continue(pid, epoch, first_offset);
    }
    for (seg, &rebuild) in segments.iter_mut().zip(rebuild_txn_index) {
        if seg.next_offset <= replay_from {
            continue;
        }
        if rebuild {
            seg.truncate_txn_index_from(replay_from.max(seg.base_offset))?;
        }
        let range = seg.range_from(seg.position_hint(replay_from));
        let mut failed: Option<io::Error> = None;
        segment::scan(
            &range.file,
            range.start,
            range.end,
            false,
            seg.base_offset,
            |pos, h| {
                if failed.is_some() || h.last_offset() < replay_from {
                    return;
                }
                if !h.is_control() {
                    apply_data_batch(&mut producers, &mut txns, h);
                    return;
                }
                if !h.has_producer_id() || !h.is_transactional() {
                    return;
                }
                let marker = match read_marker(&range.file, pos, h) {
                    Ok(Some(m)) => m,
                    Ok(None) => {
                        tracing::warn!(offset = h.base_offset, "undecodable control batch skipped");
                        return;
                    }
                    Err(e) => {
                        failed = Some(e);
                        return;
                    }
                };
                let Some((done, lso)) = apply_marker(&mut producers, &mut txns, &marker, h) else {
                    return;
                };
                if !done.is_aborted
                    || seg
                        .aborted_txns()
                        .last()
                        .is_some_and(|t| t.last_offset >= done.last_offset)
                {
                    return;
                }
                if !rebuild {
                    tracing::warn!(
                        offset = done.last_offset,
                        "re-adding an aborted transaction missing from the transaction index"
                    );
                }
                let entry = AbortedTxn {
                    producer_id: done.producer_id,
                    first_offset: done.first_offset,
                    last_offset: done.last_offset,
                    last_stable_offset: lso,
                };
                match seg.append_aborted(entry) {
                    // The next flush syncs the rebuilt index with the segment.
                    Ok(()) => seg.dirty = true,
                    Err(e) => failed = Some(e),
                }
            },
        )?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    producers.truncate_head(log_start);
    txns.truncate_head(log_start);
    Ok((producers, txns))
}
