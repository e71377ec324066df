//! Log compaction (Kafka's `LogCleaner`) for topics whose `cleanup.policy`
//! contains `compact`.
//!
//! One pass over a partition: from a snapshot of its sealed segments taken
//! under the lock, the dirty section `[first dirty, first uncleanable)` is
//! scanned into a bounded key-hash → latest-offset map; then every sealed
//! segment below the map's end is recopied (adjacent ones grouped up to
//! `segment.bytes`) keeping per key only its latest record, and swapped in.
//! The heavy work runs without the partition lock: appends and fetches go on.
//!
//! Rules (Kafka's): the active segment is never touched; nothing at or past
//! the last stable offset or younger than `min.compaction.lag.ms` is cleaned;
//! offsets are kept (gaps are fine) and each rewritten batch keeps its base
//! offset, last offset delta, producer id/epoch/base sequence, timestamps and
//! attributes, recompressed with its own codec; records of aborted
//! transactions go; an emptied batch that is its producer's last stays as an
//! empty batch so producer state survives a rebuild.
//!
//! Tombstones (KIP-534): the first pass that keeps a batch holding a
//! tombstone rewrites it with a delete horizon (attributes bit 6, base
//! timestamp = pass time + `delete.retention.ms`, record timestamp deltas
//! re-based so each record keeps its timestamp); a later pass at or past
//! the horizon removes its tombstones. So a tombstone stays readable for at
//! least `delete.retention.ms` after the first cleaning that saw it,
//! however old its segment. Transaction markers are always kept (Kafka may
//! drop them after a horizon; keeping them is allowed and keeps every replay
//! exact).
//!
//! Crash safety: the new segment is written as `<base>.log.cleaned` (+
//! `.index.cleaned`, `.timeindex.cleaned`, `.txnindex.cleaned`), fsynced,
//! renamed to `.swap` (the log last, as `<base>.log.<end>.swap`: the commit
//! point, `end` being the first offset after the replaced segments, taken
//! under the partition lock once the replaced segments are known to be still
//! there); then the replaced segments' files are deleted and the swap files
//! renamed to their final names. At open, [`recover_files`] deletes `.cleaned` files and
//! completes any `.swap`.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::hash::BuildHasher;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::compression;
use super::control::put_varint;
use bytes::Bytes;

use super::batch::{self, BatchHeader, HEADER_LEN};
use super::fsutil;
use super::index::{OffsetIndex, TimeIndex};
use super::partition::PartitionLog;
use super::segment::{self, parse_file_name};
use super::txn_index::{AbortedTxn, TxnIndex};
use crate::config::TopicConfig;

/// Kafka's `cleaner-offset-checkpoint`: the first dirty offset per partition.
pub const CLEANER_CHECKPOINT: &str = "cleaner-offset-checkpoint";

/// Bytes a map slot takes: a 128-bit key hash and an offset (as Kafka's
/// `SkimpyOffsetMap` with MD5) plus the hash table's control byte.
pub const MAP_SLOT_BYTES: usize = 25;

/// Broker-level cleaner settings (Kafka's `log.cleaner.*`).
#[derive(Clone, Debug)]
pub struct CleanerConfig {
    pub enable: bool,
    pub backoff_ms: i64,
    pub dedupe_buffer_size: i64,
    pub io_buffer_size: i64,
    /// Accepted; one cleaner task runs whatever the value.
    pub threads: i32,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            enable: true,
            backoff_ms: 15_000,
            dedupe_buffer_size: 134_217_728,
            io_buffer_size: 524_288,
            threads: 1,
        }
    }
}

impl CleanerConfig {
    /// Keys the offset map may hold so that its table stays within the
    /// per-thread share of the dedupe buffer: the largest power-of-two slot
    /// count that fits, at the table's 7/8 load factor (Kafka's map fills
    /// its buffer to 0.9).
    pub fn map_capacity(&self) -> usize {
        let share = self.dedupe_buffer_size.max(0) as u64 / self.threads.max(1) as u64;
        let slots = (share / MAP_SLOT_BYTES as u64).max(1);
        let pow2 = 1u64 << (63 - slots.leading_zeros());
        ((pow2 * 7 / 8) as usize).max(1)
    }
}

/// Counters for metrics (`LogManager::cleaner_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanerStats {
    /// Partition cleanings that swapped in at least one segment.
    pub cleanings: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_removed: u64,
    /// Cleanings that failed with an I/O error.
    pub failures: u64,
    pub last_duration_ms: u64,
    /// Partitions skipped after a failed cleaning until the next start
    /// (Kafka's uncleanable partitions).
    pub uncleanable_partitions: u64,
}

#[derive(Default)]
pub struct CleanerMetrics {
    cleanings: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
    records_removed: AtomicU64,
    failures: AtomicU64,
    last_duration_ms: AtomicU64,
}

impl CleanerMetrics {
    pub fn snapshot(&self) -> CleanerStats {
        CleanerStats {
            cleanings: self.cleanings.load(Ordering::Relaxed),
            bytes_read: self.bytes_read.load(Ordering::Relaxed),
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            records_removed: self.records_removed.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            last_duration_ms: self.last_duration_ms.load(Ordering::Relaxed),
            uncleanable_partitions: 0,
        }
    }

    pub fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    fn add(&self, pass: &PassStats, elapsed: Duration) {
        if pass.segments_swapped > 0 {
            self.cleanings.fetch_add(1, Ordering::Relaxed);
        }
        self.bytes_read
            .fetch_add(pass.bytes_read, Ordering::Relaxed);
        self.bytes_written
            .fetch_add(pass.bytes_written, Ordering::Relaxed);
        self.records_removed
            .fetch_add(pass.records_removed, Ordering::Relaxed);
        self.last_duration_ms
            .store(elapsed.as_millis() as u64, Ordering::Relaxed);
    }
}

/// A sealed segment as the cleaner sees it (taken under the partition lock).
#[derive(Clone)]
pub struct SegmentView {
    pub base: i64,
    /// The next segment's base offset: everything here is below it.
    pub end: i64,
    pub size: u64,
    pub file: Arc<File>,
    pub max_timestamp: i64,
    pub first_batch_timestamp: Option<i64>,
    pub aborted: Vec<AbortedTxn>,
}

/// What a cleaning pass needs of a partition, copied under its lock.
pub struct CleanerView {
    pub dir: PathBuf,
    pub config: TopicConfig,
    pub log_start: i64,
    pub last_stable_offset: i64,
    pub active_base: i64,
    /// Every segment but the active one, in offset order.
    pub segments: Vec<SegmentView>,
    /// Aborted transactions of every segment, the active one included.
    pub aborted: Vec<AbortedTxn>,
    /// Producer id → last offset of its newest data batch.
    pub producer_last_offsets: HashMap<i64, i64>,
    pub index_interval: u64,
}

/// Which part of a partition a pass would clean.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    pub first_dirty: i64,
    /// End of the last whole sealed segment below the first uncleanable
    /// offset.
    pub dirty_end: i64,
    pub dirty_ratio: f64,
    /// `max.compaction.lag.ms` has passed for the oldest dirty segment.
    pub overdue: bool,
    pub dirty_bytes: u64,
}

impl Plan {
    pub fn eligible(&self, config: &TopicConfig) -> bool {
        self.dirty_bytes > 0
            && (self.dirty_ratio >= config.min_cleanable_dirty_ratio || self.overdue)
    }
}

/// Kafka's `cleanableOffsets`: the dirty section runs from the checkpointed
/// first dirty offset up to the first uncleanable offset (the active
/// segment, the last stable offset, or the first segment younger than
/// `min.compaction.lag.ms`), in whole segments.
pub fn plan(view: &CleanerView, first_dirty: i64, now_ms: i64) -> Option<Plan> {
    if !view.config.compacted() {
        return None;
    }
    let mut uncleanable = view.active_base.min(view.last_stable_offset);
    let min_lag = view.config.min_compaction_lag_ms;
    if min_lag > 0 {
        if let Some(young) = view
            .segments
            .iter()
            .find(|s| s.max_timestamp > now_ms.saturating_sub(min_lag))
        {
            uncleanable = uncleanable.min(young.base);
        }
    }
    let cleanable: Vec<&SegmentView> = view
        .segments
        .iter()
        .take_while(|s| s.end <= uncleanable)
        .collect();
    let dirty_end = cleanable.last()?.end;
    // A checkpoint past the active segment belongs to an older log of the
    // same name: start over (Kafka resets an out-of-range checkpoint).
    let first_dirty = if first_dirty > view.active_base {
        view.log_start
    } else {
        first_dirty
    };
    let first_dirty = first_dirty.max(view.log_start).max(view.segments[0].base);
    if first_dirty >= dirty_end {
        return None;
    }
    let clean_bytes: u64 = cleanable
        .iter()
        .filter(|s| s.end <= first_dirty)
        .map(|s| s.size)
        .sum();
    let dirty: Vec<&&SegmentView> = cleanable.iter().filter(|s| s.end > first_dirty).collect();
    let dirty_bytes: u64 = dirty.iter().map(|s| s.size).sum();
    let total = clean_bytes + dirty_bytes;
    let dirty_ratio = if total == 0 {
        0.0
    } else {
        dirty_bytes as f64 / total as f64
    };
    let max_lag = view.config.max_compaction_lag_ms;
    let overdue = max_lag < i64::MAX
        && dirty.first().is_some_and(|s| {
            s.first_batch_timestamp
                .is_some_and(|ts| ts >= 0 && now_ms.saturating_sub(ts) > max_lag)
        });
    Some(Plan {
        first_dirty,
        dirty_end,
        dirty_ratio,
        overdue,
        dirty_bytes,
    })
}

/// Where a test stops a cleaning, as a crash would.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CrashPoint {
    /// `.cleaned` files written and fsynced.
    Cleaned,
    /// Index files renamed to `.swap`, the log not yet.
    IndexSwapped,
    /// The log renamed to `.swap` (committed).
    LogSwapped,
    /// The replaced segments (other than the one at the base) deleted.
    OldDeleted,
    /// Index `.swap` files renamed to their final names.
    IndexesInPlace,
}

/// Outcome of [`clean_partition`].
#[derive(Debug, Default, Clone, Copy)]
pub struct PassStats {
    /// The new first dirty offset (the map's end), if anything was mapped.
    pub new_first_dirty: Option<i64>,
    pub segments_swapped: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_removed: u64,
    /// A test crash point was reached: the pass stopped there.
    pub crashed: bool,
}

/// Key hash → offset of the latest record with that key, bounded in entries.
pub struct OffsetMap {
    map: HashMap<u128, i64>,
    capacity: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl OffsetMap {
    /// A map for at most `capacity` keys, allocated once for `expected`
    /// (the records it may see), so it never grows past the buffer.
    pub fn new(capacity: usize, expected: usize) -> Self {
        OffsetMap {
            map: HashMap::with_capacity(capacity.min(expected)),
            capacity,
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// 128 bits from two SipHash runs over differently prefixed input.
    fn hash(&self, key: &[u8]) -> u128 {
        let a = self.hasher.hash_one((0u8, key));
        let b = self.hasher.hash_one((1u8, key));
        (u128::from(a) << 64) | u128::from(b)
    }

    pub fn put(&mut self, key: &[u8], offset: i64) {
        let h = self.hash(key);
        self.map.insert(h, offset);
    }

    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.map.get(&self.hash(key)).copied()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Room for `n` more keys (counting each as new).
    fn has_room(&self, n: usize) -> bool {
        self.map.len().saturating_add(n) <= self.capacity
    }
}

/// One record inside a (decompressed) batch: its raw bytes (length prefix
/// included), absolute offset, key and whether its value is null.
struct RawRecord<'a> {
    raw: &'a [u8],
    offset: i64,
    /// Relative to the batch's base timestamp.
    timestamp_delta: i64,
    key: Option<&'a [u8]>,
    tombstone: bool,
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    let mut shift = 0;
    loop {
        let b = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    Some(((value >> 1) as i64) ^ -((value & 1) as i64))
}

fn parse_records(data: &[u8], base_offset: i64, count: i32) -> Option<Vec<RawRecord<'_>>> {
    // The count comes from a stored header: a record takes at least 7
    // bytes, so never reserve more than the data can hold.
    let mut out = Vec::with_capacity((count.max(0) as usize).min(data.len() / 7));
    let mut pos = 0usize;
    for _ in 0..count.max(0) {
        let start = pos;
        let len = usize::try_from(varint(data, &mut pos)?).ok()?;
        let body_end = pos.checked_add(len)?;
        if body_end > data.len() {
            return None;
        }
        let body = &data[pos..body_end];
        let mut p = 1usize; // attributes
        let timestamp_delta = varint(body, &mut p)?;
        let offset_delta = varint(body, &mut p)?;
        let key_len = varint(body, &mut p)?;
        let key = if key_len < 0 {
            None
        } else {
            let end = p.checked_add(key_len as usize)?;
            let k = body.get(p..end)?;
            p = end;
            Some(k)
        };
        let value_len = varint(body, &mut p)?;
        out.push(RawRecord {
            raw: &data[start..body_end],
            // Stored unchecked if the topic was not compacted then.
            offset: base_offset.checked_add(offset_delta)?,
            timestamp_delta,
            key,
            tombstone: value_len < 0,
        });
        pos = body_end;
    }
    Some(out)
}

/// The records of a stored data batch (decompressed and parsed).
/// Decompression stops at `limit` bytes (a batch stored while the topic was
/// not compacted was never decompressed on append).
fn batch_records(batch: &[u8], h: &BatchHeader, limit: usize) -> io::Result<(Bytes, usize)> {
    let data = compression::decompress(h.compression(), &batch[HEADER_LEN..], limit)
        .map_err(|e| io::Error::other(format!("decompressing a batch: {e}")))?;
    Ok((data, h.records_count.max(0) as usize))
}

/// A batch header with new records and record count, every other field as
/// stored; the caller patches what else changes, then [`batch::seal`]s it
/// (batch length and CRC, computed once). Empty batches lose their codec
/// (there is nothing to decompress), as Kafka's `writeEmptyHeader`.
fn rebuild_batch(original: &[u8], count: i32, records: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + records.len());
    out.extend_from_slice(&original[..HEADER_LEN]);
    out.extend_from_slice(records);
    if count == 0 {
        batch::set_compression(&mut out, compression::NONE);
    }
    out[57..61].copy_from_slice(&count.to_be_bytes());
    out
}

/// Walks the whole batches of `file[0..size)`, reading `chunk` bytes at a
/// time (`log.cleaner.io.buffer.size`; a larger batch is read whole).
fn for_each_batch(
    file: &File,
    size: u64,
    chunk: usize,
    mut f: impl FnMut(&BatchHeader, &[u8]) -> io::Result<bool>,
) -> io::Result<()> {
    let chunk = chunk.max(HEADER_LEN);
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = 0u64;
    let mut pos = 0u64;
    let fill = |buf: &mut Vec<u8>, buf_start: &mut u64, at: u64, want: usize| {
        let len = (size - at).min(want as u64) as usize;
        buf.resize(len, 0);
        *buf_start = at;
        file.read_exact_at(buf, at)
    };
    while pos + HEADER_LEN as u64 <= size {
        if pos + HEADER_LEN as u64 > buf_start + buf.len() as u64 {
            fill(&mut buf, &mut buf_start, pos, chunk)?;
        }
        let off = (pos - buf_start) as usize;
        let h = BatchHeader::parse(&buf[off..]).map_err(|e| io::Error::other(e.to_string()))?;
        let total = h.total_len();
        if total < HEADER_LEN || pos + total as u64 > size {
            return Err(io::Error::other(format!("bad batch at position {pos}")));
        }
        if pos + total as u64 > buf_start + buf.len() as u64 {
            fill(&mut buf, &mut buf_start, pos, chunk.max(total))?;
        }
        let off = (pos - buf_start) as usize;
        if !f(&h, &buf[off..off + total])? {
            break;
        }
        pos += total as u64;
    }
    Ok(())
}

/// Aborted transactions per producer as (first offset, marker offset).
struct AbortedSet(HashMap<i64, Vec<(i64, i64)>>);

impl AbortedSet {
    fn new(all: &[AbortedTxn]) -> Self {
        let mut m: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for t in all {
            m.entry(t.producer_id)
                .or_default()
                .push((t.first_offset, t.last_offset));
        }
        AbortedSet(m)
    }

    /// Is the transactional batch of `pid` at `offset` part of an aborted
    /// transaction? (A producer has one transaction at a time, so it is if
    /// an aborted one of it spans the offset.)
    fn contains(&self, h: &BatchHeader) -> bool {
        h.is_transactional()
            && !h.is_control()
            && self.0.get(&h.producer_id).is_some_and(|v| {
                v.iter()
                    .any(|&(first, last)| first <= h.base_offset && h.base_offset < last)
            })
    }
}

/// Attributes bit 6: the batch's base timestamp is its delete horizon.
const DELETE_HORIZON_BIT: i16 = 0x40;

/// The delete horizon stored in a batch (KIP-534), if any.
fn delete_horizon(h: &BatchHeader) -> Option<i64> {
    (h.attributes & DELETE_HORIZON_BIT != 0).then_some(h.base_timestamp)
}

/// `raw` (one record: length, attributes, timestamp delta, rest) with its
/// timestamp delta replaced by `delta`; the rest is copied unchanged.
fn with_timestamp_delta(raw: &[u8], delta: i64, out: &mut Vec<u8>) -> Option<()> {
    let mut pos = 0usize;
    varint(raw, &mut pos)?;
    let body_start = pos;
    pos += 1; // attributes
    varint(raw, &mut pos)?;
    let mut body = Vec::with_capacity(raw.len() - body_start + 10);
    body.push(*raw.get(body_start)?);
    put_varint(&mut body, delta);
    body.extend_from_slice(raw.get(pos..)?);
    put_varint(out, i64::try_from(body.len()).ok()?);
    out.extend_from_slice(&body);
    Some(())
}

fn mtime_ms(file: &File) -> io::Result<i64> {
    Ok(file
        .metadata()?
        .modified()?
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64))
}

/// One cleaning pass over `log` from `first_dirty` (the caller checked the
/// [`plan`]). `crash` stops the pass at a step, leaving the files as a
/// crash there would (tests).
pub fn clean_partition(
    log: &PartitionLog,
    first_dirty: i64,
    cleaner: &CleanerConfig,
    now_ms: i64,
    crash: Option<CrashPoint>,
) -> io::Result<PassStats> {
    let mut stats = PassStats::default();
    let Some(view) = log.cleaner_view() else {
        return Ok(stats);
    };
    let Some(plan) = plan(&view, first_dirty, now_ms) else {
        return Ok(stats);
    };
    let aborted = AbortedSet::new(&view.aborted);
    let limit = compression::decompressed_limit(view.config.max_message_bytes);
    let io_buffer = cleaner.io_buffer_size.clamp(HEADER_LEN as i64, 64 << 20) as usize;

    // 1. The offset map over the dirty section, stopping at a batch
    //    boundary when it is full.
    let dirty: Vec<&SegmentView> = view
        .segments
        .iter()
        .filter(|s| s.end > plan.first_dirty && s.end <= plan.dirty_end)
        .collect();
    let mut records = 0usize;
    for seg in &dirty {
        segment::scan(&seg.file, 0, seg.size, false, seg.base, |_, h| {
            if !h.is_control() && h.last_offset() >= plan.first_dirty {
                records += h.records_count.max(0) as usize;
            }
        })?;
    }
    let mut map = OffsetMap::new(cleaner.map_capacity(), records);
    let mut map_end = plan.first_dirty;
    'segments: for seg in dirty {
        let mut full = false;
        for_each_batch(&seg.file, seg.size, io_buffer, |h, bytes| {
            stats.bytes_read += bytes.len() as u64;
            if h.last_offset() < plan.first_dirty {
                return Ok(true);
            }
            if !h.is_control() && !aborted.contains(h) {
                if !map.has_room(h.records_count.max(0) as usize) {
                    full = true;
                    return Ok(false);
                }
                let (data, count) = batch_records(bytes, h, limit)?;
                let records = parse_records(&data, h.base_offset, count as i32)
                    .ok_or_else(|| io::Error::other("undecodable records"))?;
                for r in records {
                    if let Some(k) = r.key {
                        map.put(k, r.offset);
                    }
                }
            }
            map_end = h.last_offset().saturating_add(1);
            Ok(true)
        })?;
        if full {
            tracing::debug!(topic = %log.topic, partition = log.partition, map_end,
                "offset map full; cleaning up to it");
            break 'segments;
        }
        map_end = map_end.max(seg.end);
    }
    if map_end <= plan.first_dirty {
        tracing::warn!(topic = %log.topic, partition = log.partition,
            "log.cleaner.dedupe.buffer.size too small for one batch; not cleaning");
        return Ok(stats);
    }
    stats.new_first_dirty = Some(map_end);

    // 2. Recopy every sealed segment below the map's end, in groups.
    let to_clean: Vec<&SegmentView> = view.segments.iter().filter(|s| s.base < map_end).collect();
    let ctx = Filter {
        map: &map,
        map_end,
        aborted: &aborted,
        producer_last: &view.producer_last_offsets,
        io_buffer,
        decompress_limit: limit,
        now_ms,
        delete_retention_ms: view.config.delete_retention_ms,
    };
    for group in group_segments(&to_clean, view.config.segment_bytes.max(1) as u64) {
        let done = clean_group(log, &view, &ctx, &group, &mut stats, crash)?;
        if stats.crashed {
            return Ok(stats);
        }
        if done {
            stats.segments_swapped += group.len();
        }
    }
    Ok(stats)
}

/// Kafka's `groupSegmentsBySize`: adjacent segments whose sizes sum to at
/// most `max_bytes` and whose offsets fit one segment's relative range.
fn group_segments<'a>(segs: &[&'a SegmentView], max_bytes: u64) -> Vec<Vec<&'a SegmentView>> {
    let mut groups: Vec<Vec<&SegmentView>> = Vec::new();
    for &s in segs {
        if let Some(g) = groups.last_mut() {
            let size: u64 = g.iter().map(|x| x.size).sum();
            if size + s.size <= max_bytes && s.end - g[0].base <= i32::MAX as i64 {
                g.push(s);
                continue;
            }
        }
        groups.push(vec![s]);
    }
    groups
}

struct Filter<'a> {
    map: &'a OffsetMap,
    map_end: i64,
    aborted: &'a AbortedSet,
    producer_last: &'a HashMap<i64, i64>,
    /// Read size (`log.cleaner.io.buffer.size`).
    io_buffer: usize,
    decompress_limit: usize,
    /// The pass's time: tombstones of a batch whose delete horizon is at or
    /// before it go; a batch keeping tombstones without a horizon gets
    /// `now_ms + delete_retention_ms`.
    now_ms: i64,
    delete_retention_ms: i64,
}

enum Kept {
    Whole,
    Dropped,
    Rebuilt(Vec<u8>),
}

impl Filter<'_> {
    /// Kafka's `checkBatchRetention` + `shouldRetainRecord` for one batch.
    fn filter(&self, h: &BatchHeader, bytes: &[u8]) -> io::Result<(Kept, u64)> {
        if h.is_control() {
            return Ok((Kept::Whole, 0));
        }
        let last_of_producer =
            h.has_producer_id() && self.producer_last.get(&h.producer_id) == Some(&h.last_offset());
        let emptied = |removed: u64| {
            if last_of_producer {
                let mut empty = rebuild_batch(bytes, 0, &[]);
                batch::seal(&mut empty);
                (Kept::Rebuilt(empty), removed)
            } else {
                (Kept::Dropped, removed)
            }
        };
        if self.aborted.contains(h) {
            return Ok(emptied(h.records_count.max(0) as u64));
        }
        if h.base_offset >= self.map_end {
            return Ok((Kept::Whole, 0));
        }
        let (data, count) = batch_records(bytes, h, self.decompress_limit)?;
        let records = parse_records(&data, h.base_offset, count as i32)
            .ok_or_else(|| io::Error::other("undecodable records"))?;
        let horizon = delete_horizon(h);
        let retain_tombstones = horizon.is_none_or(|at| self.now_ms < at);
        let mut kept: Vec<&RawRecord<'_>> = Vec::new();
        let mut max_delta = i64::MIN;
        for r in &records {
            let retain = match r.key {
                None => false,
                Some(k) => {
                    r.offset >= self.map_end
                        || (self.map.get(k).is_none_or(|latest| r.offset >= latest)
                            && (!r.tombstone || retain_tombstones))
                }
            };
            if retain {
                kept.push(r);
                max_delta = max_delta.max(r.timestamp_delta);
            }
        }
        let kept_count = kept.len() as i32;
        let removed = (records.len() - kept.len()) as u64;
        // The first pass keeping a tombstone starts its horizon (KIP-534).
        let new_horizon = (horizon.is_none() && kept.iter().any(|r| r.tombstone))
            .then(|| self.now_ms.saturating_add(self.delete_retention_ms.max(0)));
        if removed == 0 && new_horizon.is_none() {
            return Ok((Kept::Whole, 0));
        }
        if kept_count == 0 {
            return Ok(emptied(removed));
        }
        let mut records_out = Vec::new();
        for r in &kept {
            match new_horizon {
                // The horizon becomes the base timestamp: each record's
                // delta is re-based so that base + delta is unchanged.
                Some(at) => h
                    .base_timestamp
                    .checked_add(r.timestamp_delta)
                    .and_then(|ts| ts.checked_sub(at))
                    .and_then(|delta| with_timestamp_delta(r.raw, delta, &mut records_out))
                    .ok_or_else(|| io::Error::other("record timestamp out of range"))?,
                None => records_out.extend_from_slice(r.raw),
            }
        }
        let mut payload = Vec::new();
        compression::compress_into(h.compression(), &records_out, &mut payload)
            .map_err(|e| io::Error::other(format!("compressing a batch: {e}")))?;
        let mut rebuilt = rebuild_batch(bytes, kept_count, &payload);
        if let Some(at) = new_horizon {
            let attributes = h.attributes | DELETE_HORIZON_BIT;
            rebuilt[21..23].copy_from_slice(&attributes.to_be_bytes());
            rebuilt[27..35].copy_from_slice(&at.to_be_bytes());
        }
        if removed > 0 && !h.is_log_append_time() {
            // CreateTime: the largest timestamp left, as Kafka's rebuilt
            // batches carry (LogAppendTime keeps the append time). Only
            // records were removed here: the stored base is still theirs.
            let max = h.base_timestamp.saturating_add(max_delta);
            rebuilt[35..43].copy_from_slice(&max.to_be_bytes());
        }
        batch::seal(&mut rebuilt);
        Ok((Kept::Rebuilt(rebuilt), removed))
    }
}

fn cleaned_path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{}.cleaned", segment::file_name(base, ext)))
}

fn swap_path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{}.swap", segment::file_name(base, ext)))
}

fn log_swap_path(dir: &Path, base: i64, end: i64) -> PathBuf {
    dir.join(format!("{base:020}.log.{end:020}.swap"))
}

const INDEX_EXTS: [&str; 3] = ["index", "timeindex", "txnindex"];

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Writes, fsyncs and swaps in the cleaned copy of one group. Returns false
/// if the log changed meanwhile (retention, DeleteRecords) and the copy was
/// discarded.
fn clean_group(
    log: &PartitionLog,
    view: &CleanerView,
    filter: &Filter<'_>,
    group: &[&SegmentView],
    stats: &mut PassStats,
    crash: Option<CrashPoint>,
) -> io::Result<bool> {
    if log.is_deleted() {
        return Ok(false);
    }
    let dir = &view.dir;
    let base = group[0].base;
    let end = group.last().map_or(base, |s| s.end);
    let log_path = cleaned_path(dir, base, "log");
    for ext in ["log", "index", "timeindex", "txnindex"] {
        remove_if_exists(&cleaned_path(dir, base, ext))?;
    }
    let out = OpenOptions::new()
        .create_new(true)
        .read(true)
        .append(true)
        .open(&log_path)?;
    let mut offset_index = OffsetIndex::open(&cleaned_path(dir, base, "index"), base)?;
    let mut time_index = TimeIndex::open(&cleaned_path(dir, base, "timeindex"), base)?;
    let mut txn_index = TxnIndex::open(&cleaned_path(dir, base, "txnindex"), base)?;
    let mut position = 0u64;
    let mut since_index = 0u64;
    let mut max_ts = (-1i64, -1i64);
    let mut newest_mtime = 0i64;
    let mut pending: Vec<u8> = Vec::new();
    let flush_at = 1 << 20;
    let write_out = |pending: &mut Vec<u8>, out: &File| -> io::Result<()> {
        use std::io::Write;
        let mut w = out;
        w.write_all(pending)?;
        pending.clear();
        Ok(())
    };
    for seg in group {
        newest_mtime = newest_mtime.max(mtime_ms(&seg.file)?);
        for_each_batch(&seg.file, seg.size, filter.io_buffer, |h, bytes| {
            stats.bytes_read += bytes.len() as u64;
            let (kept, removed) = filter.filter(h, bytes)?;
            stats.records_removed += removed;
            let written: &[u8] = match &kept {
                Kept::Whole => bytes,
                Kept::Dropped => return Ok(true),
                Kept::Rebuilt(b) => b,
            };
            let stored =
                BatchHeader::parse(written).map_err(|e| io::Error::other(e.to_string()))?;
            let pos32 = u32::try_from(position)
                .map_err(|_| io::Error::other("cleaned segment exceeds 4 GiB"))?;
            if stored.max_timestamp > max_ts.0 {
                max_ts = (stored.max_timestamp, stored.last_offset());
            }
            since_index += written.len() as u64;
            if since_index >= view.index_interval {
                offset_index.append(stored.last_offset(), pos32)?;
                time_index.maybe_append(max_ts.0, max_ts.1)?;
                since_index = 0;
            }
            pending.extend_from_slice(written);
            position += written.len() as u64;
            if pending.len() >= flush_at {
                write_out(&mut pending, &out)?;
            }
            Ok(true)
        })?;
        for t in &seg.aborted {
            txn_index.append(*t)?;
        }
    }
    write_out(&mut pending, &out)?;
    if max_ts.0 >= 0 {
        time_index.maybe_append(max_ts.0, max_ts.1)?;
    }
    stats.bytes_written += position;
    // The copy keeps the newest source's mtime, as Kafka does (set before
    // the fsync so that it is durable too); tombstones' horizons are in
    // their batches.
    out.set_modified(SystemTime::UNIX_EPOCH + Duration::from_millis(newest_mtime.max(0) as u64))?;
    out.sync_all()?;
    offset_index.sync()?;
    time_index.sync()?;
    txn_index.sync()?;
    drop((offset_index, time_index, txn_index));
    if crash == Some(CrashPoint::Cleaned) {
        stats.crashed = true;
        return Ok(false);
    }
    for ext in INDEX_EXTS {
        fs::rename(cleaned_path(dir, base, ext), swap_path(dir, base, ext))?;
    }
    // The index renames must be durable before the commit: a committed log
    // swap whose index swaps were lost would be completed with the old
    // segment's indexes.
    fsutil::sync_dir(dir)?;
    if crash == Some(CrashPoint::IndexSwapped) {
        stats.crashed = true;
        return Ok(false);
    }
    #[cfg(test)]
    BEFORE_COMMIT.with(|hook| {
        if let Some(f) = hook.borrow_mut().take() {
            f();
        }
    });
    // The commit (the log's rename to `.swap`) happens under the partition
    // lock once the replaced segments are known to be still there: a swap
    // committed for segments that retention or DeleteRecords removed
    // meanwhile would bring them back at the next start after a crash.
    let members: Vec<(i64, Arc<File>)> = group.iter().map(|s| (s.base, s.file.clone())).collect();
    match log.swap_cleaned(&members, end, crash)? {
        SwapOutcome::Swapped => Ok(true),
        SwapOutcome::Crashed => {
            stats.crashed = true;
            Ok(false)
        }
        SwapOutcome::Stale => {
            for ext in INDEX_EXTS {
                remove_if_exists(&swap_path(dir, base, ext))?;
            }
            remove_if_exists(&log_path)?;
            Ok(false)
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Runs once between writing a cleaned copy and committing it (tests
    /// change the log there, as a concurrent retention would).
    pub static BEFORE_COMMIT: std::cell::RefCell<Option<Box<dyn FnOnce()>>> =
        std::cell::RefCell::new(None);
}

/// Commits a cleaned copy of `[base, end)` (its `.cleaned` log renamed to
/// `<base>.log.<end>.swap`, the directory fsynced) and completes the swap.
/// Called under the partition lock. Returns false at a test crash point.
pub fn commit_swap(dir: &Path, base: i64, end: i64, crash: Option<CrashPoint>) -> io::Result<bool> {
    fs::rename(
        cleaned_path(dir, base, "log"),
        log_swap_path(dir, base, end),
    )?;
    fsutil::sync_dir(dir)?;
    if crash == Some(CrashPoint::LogSwapped) {
        return Ok(false);
    }
    finish_swap(dir, base, end, crash)
}

pub enum SwapOutcome {
    Swapped,
    /// The segments changed since the view: the copy is discarded.
    Stale,
    /// A test crash point inside the swap was reached.
    Crashed,
}

/// Completes a committed swap of `[base, end)`: deletes the files of the
/// segments strictly inside it, moves the index swap files and then the log
/// into place. Used by the cleaner and by [`recover_files`].
pub fn finish_swap(dir: &Path, base: i64, end: i64, crash: Option<CrashPoint>) -> io::Result<bool> {
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(b) = parse_file_name(&name.to_string_lossy(), "log") {
            if b > base && b < end {
                for ext in segment::SEGMENT_FILE_EXTENSIONS {
                    remove_if_exists(&dir.join(segment::file_name(b, ext)))?;
                }
            }
        }
    }
    if crash == Some(CrashPoint::OldDeleted) {
        return Ok(false);
    }
    for ext in INDEX_EXTS {
        let from = swap_path(dir, base, ext);
        if from.exists() {
            fs::rename(&from, dir.join(segment::file_name(base, ext)))?;
        }
    }
    if crash == Some(CrashPoint::IndexesInPlace) {
        return Ok(false);
    }
    fs::rename(
        log_swap_path(dir, base, end),
        dir.join(segment::file_name(base, "log")),
    )?;
    fsutil::sync_dir(dir)?;
    Ok(true)
}

/// Parses `<base>.log.<end>.swap`.
fn parse_log_swap(name: &str) -> Option<(i64, i64)> {
    let rest = name.strip_suffix(".swap")?;
    let (stem, end) = rest.split_once(".log.")?;
    if stem.len() != 20 || end.len() != 20 {
        return None;
    }
    Some((stem.parse().ok()?, end.parse().ok()?))
}

/// At open (Kafka's `LogLoader` rules): `.cleaned` files are an unfinished
/// cleaning and are deleted; a `<base>.log.<end>.swap` is a committed one and
/// is completed; index `.swap` files without their log were never
/// committed and are deleted.
pub fn recover_files(dir: &Path) -> io::Result<()> {
    let mut swaps = Vec::new();
    let mut orphans = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".cleaned") {
            remove_if_exists(&dir.join(&name))?;
        } else if let Some(range) = parse_log_swap(&name) {
            swaps.push(range);
        } else if name.ends_with(".swap") {
            orphans.push(name);
        }
    }
    swaps.sort_unstable();
    for &(base, end) in &swaps {
        tracing::info!(dir = %dir.display(), base, end, "completing an interrupted log cleaning");
        finish_swap(dir, base, end, None)?;
    }
    for name in orphans {
        let base = name.get(..20).and_then(|s| s.parse::<i64>().ok());
        if !base.is_some_and(|b| swaps.iter().any(|&(sb, _)| sb == b)) {
            remove_if_exists(&dir.join(&name))?;
        }
    }
    fsutil::sync_dir(dir)
}

/// The cleaner's state on the `LogManager`: first dirty offsets (persisted
/// as `cleaner-offset-checkpoint`), settings and counters.
pub struct Cleaner {
    pub config: parking_lot::Mutex<CleanerConfig>,
    first_dirty: parking_lot::Mutex<HashMap<(String, i32), i64>>,
    pub metrics: CleanerMetrics,
    checkpoint: PathBuf,
    /// Partitions whose cleaning failed: skipped until the next start so
    /// one bad log does not stop the others being cleaned (Kafka's
    /// `markPartitionUncleanable`).
    uncleanable: parking_lot::Mutex<std::collections::HashSet<(String, i32)>>,
}

impl Cleaner {
    pub fn new(dir: &Path) -> Cleaner {
        let checkpoint = dir.join(CLEANER_CHECKPOINT);
        Cleaner {
            config: parking_lot::Mutex::new(CleanerConfig::default()),
            first_dirty: parking_lot::Mutex::new(fsutil::read_checkpoint(&checkpoint)),
            metrics: CleanerMetrics::default(),
            checkpoint,
            uncleanable: Default::default(),
        }
    }

    pub fn first_dirty(&self, log: &PartitionLog) -> i64 {
        self.first_dirty
            .lock()
            .get(&(log.topic.clone(), log.partition))
            .copied()
            .unwrap_or(0)
    }

    fn set_first_dirty(&self, log: &PartitionLog, offset: i64) -> io::Result<()> {
        let entries: Vec<(String, i32, i64)> = {
            let mut m = self.first_dirty.lock();
            m.insert((log.topic.clone(), log.partition), offset);
            m.iter().map(|((t, p), o)| (t.clone(), *p, *o)).collect()
        };
        fsutil::write_checkpoint(&self.checkpoint, &entries)
    }

    pub fn stats(&self) -> CleanerStats {
        CleanerStats {
            uncleanable_partitions: self.uncleanable.lock().len() as u64,
            ..self.metrics.snapshot()
        }
    }

    /// Forgets a deleted partition.
    pub fn forget(&self, topic: &str, partition: i32) {
        let key = (topic.to_string(), partition);
        self.first_dirty.lock().remove(&key);
        self.uncleanable.lock().remove(&key);
    }

    /// Forgets partitions that no longer exist.
    pub fn retain(&self, live: &[Arc<PartitionLog>]) {
        self.uncleanable
            .lock()
            .retain(|(t, p)| live.iter().any(|l| &l.topic == t && l.partition == *p));
        self.first_dirty
            .lock()
            .retain(|(t, p), _| live.iter().any(|l| &l.topic == t && l.partition == *p));
    }

    /// Cleans `log` now if anything is cleanable (tests, the task).
    pub fn clean(
        &self,
        log: &PartitionLog,
        now_ms: i64,
        crash: Option<CrashPoint>,
    ) -> io::Result<PassStats> {
        let config = self.config.lock().clone();
        let started = Instant::now();
        let result = clean_partition(log, self.first_dirty(log), &config, now_ms, crash);
        match &result {
            Ok(pass) => {
                self.metrics.add(pass, started.elapsed());
                // A log deleted during the pass must not leave its offset
                // to a topic recreated under the same name.
                if !pass.crashed && !log.is_deleted() {
                    if let Some(next) = pass.new_first_dirty {
                        self.set_first_dirty(log, next)?;
                    }
                }
            }
            Err(_) => self.metrics.record_failure(),
        }
        result
    }

    /// One round: cleans the dirtiest eligible partition. Returns whether
    /// one was cleaned.
    pub fn clean_dirtiest(&self, logs: &[Arc<PartitionLog>], now_ms: i64) -> bool {
        let mut best: Option<(f64, &Arc<PartitionLog>)> = None;
        for log in logs {
            if self
                .uncleanable
                .lock()
                .contains(&(log.topic.clone(), log.partition))
            {
                continue;
            }
            let Some(view) = log.cleaner_view() else {
                continue;
            };
            let Some(p) = plan(&view, self.first_dirty(log), now_ms) else {
                continue;
            };
            if !p.eligible(&view.config) {
                continue;
            }
            // Overdue logs first (Kafka's max.compaction.lag), then the
            // dirtiest.
            let score = p.dirty_ratio + if p.overdue { 1.0 } else { 0.0 };
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, log));
            }
        }
        let Some((_, log)) = best else { return false };
        match self.clean(log, now_ms, None) {
            Ok(pass) => {
                tracing::info!(topic = %log.topic, partition = log.partition,
                    swapped = pass.segments_swapped, removed = pass.records_removed,
                    read = pass.bytes_read, written = pass.bytes_written, "cleaned log");
                pass.new_first_dirty.is_some()
            }
            Err(e) => {
                if !log.is_deleted() {
                    tracing::error!(topic = %log.topic, partition = log.partition,
                        "log cleaning failed; not cleaning this partition again until restart: {e}");
                    self.uncleanable
                        .lock()
                        .insert((log.topic.clone(), log.partition));
                }
                false
            }
        }
    }
}
