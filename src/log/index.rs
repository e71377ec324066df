//! Per-segment sparse indexes, in Kafka's on-disk format.
//!
//! Each log segment `<base>.log` has two companion index files. Both are flat
//! arrays of fixed-size, big-endian entries with no header and no padding;
//! they are written only by appending whole entries (no preallocation, unlike
//! Kafka's mmap'd files, so the file length is always `len * ENTRY_SIZE`
//! unless a write was torn by a crash).
//!
//! `<base>.index` (`OffsetIndex`), 8-byte entries:
//!
//! ```text
//! bytes 0..4  relative offset  u32 BE   (record offset - segment base offset)
//! bytes 4..8  file position    u32 BE   (byte position of the batch in .log)
//! ```
//!
//! Entries are strictly increasing in both fields.
//!
//! `<base>.timeindex` (`TimeIndex`), 12-byte entries:
//!
//! ```text
//! bytes 0..8   timestamp        i64 BE  (ms since epoch)
//! bytes 8..12  relative offset  u32 BE  (offset - segment base offset)
//! ```
//!
//! Timestamps are strictly increasing (an entry is appended only when its
//! timestamp is greater than the last entry's); offsets are non-decreasing.
//!
//! Both indexes keep a full in-memory copy of their entries; lookups never
//! touch the file. On open, the file is sanity-checked: the longest valid
//! prefix of entries (whole entries that keep the ordering invariants) is
//! kept, the file is truncated to that prefix, and the number of entries
//! dropped is reported by `dropped_on_open()` (a torn trailing partial entry
//! counts as one dropped entry) so that recovery can decide to rebuild the
//! index from the log.
//!
//! Consistency contract: after every call that returns (Ok or Err), the
//! in-memory entries equal the entries in the file, except when an error
//! happened *and* the best-effort repair (truncating the file back to the
//! in-memory length) failed as well; in that case the next `open` will
//! sanity-check the file again.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Largest entry size of any index kind (the transaction index's 34);
/// sizes the stack buffer for writes.
pub(super) const MAX_ENTRY_SIZE: usize = 34;

/// A fixed-size on-disk index entry (offset, time and transaction indexes).
pub(super) trait Entry: Copy {
    /// Encoded size in bytes (<= `MAX_ENTRY_SIZE`).
    const SIZE: usize;
    /// Encodes into `buf[..SIZE]`.
    fn encode(&self, buf: &mut [u8; MAX_ENTRY_SIZE]);
    /// Decodes from a slice of exactly `SIZE` bytes; `None` if the bytes are
    /// not a valid entry.
    fn decode(bytes: &[u8]) -> Option<Self>;
    /// Whether `self` may directly follow `prev` (the ordering invariant).
    fn follows(&self, prev: &Self) -> bool;
}

/// Offset index entry: (relative offset, position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OffsetEntry {
    rel: u32,
    pos: u32,
}

impl Entry for OffsetEntry {
    const SIZE: usize = 8;

    fn encode(&self, buf: &mut [u8; MAX_ENTRY_SIZE]) {
        buf[0..4].copy_from_slice(&self.rel.to_be_bytes());
        buf[4..8].copy_from_slice(&self.pos.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(OffsetEntry {
            rel: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            pos: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        })
    }

    fn follows(&self, prev: &Self) -> bool {
        self.rel > prev.rel && self.pos > prev.pos
    }
}

/// Time index entry: (timestamp, relative offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TimeEntry {
    ts: i64,
    rel: u32,
}

impl Entry for TimeEntry {
    const SIZE: usize = 12;

    fn encode(&self, buf: &mut [u8; MAX_ENTRY_SIZE]) {
        buf[0..8].copy_from_slice(&self.ts.to_be_bytes());
        buf[8..12].copy_from_slice(&self.rel.to_be_bytes());
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&bytes[0..8]);
        Some(TimeEntry {
            ts: i64::from_be_bytes(ts),
            rel: u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
        })
    }

    fn follows(&self, prev: &Self) -> bool {
        self.ts > prev.ts && self.rel >= prev.rel
    }
}

/// Shared file + in-memory entry storage for every index kind.
#[derive(Debug)]
pub(super) struct IndexFile<E: Entry> {
    pub(super) path: PathBuf,
    /// Opened read + append (+ create); every write lands at the end.
    file: File,
    pub(super) entries: Vec<E>,
    pub(super) dropped_on_open: usize,
}

impl<E: Entry> IndexFile<E> {
    pub(super) fn open(path: &Path) -> io::Result<Self> {
        Self::open_where(path, |_| true)
    }

    /// Opens keeping the longest prefix of valid entries that keep the
    /// ordering invariant and whose first entry passes `first_ok`.
    pub(super) fn open_where(path: &Path, first_ok: impl Fn(&E) -> bool) -> io::Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;

        let mut entries: Vec<E> = Vec::with_capacity(bytes.len() / E::SIZE);
        for chunk in bytes.chunks_exact(E::SIZE) {
            let Some(entry) = E::decode(chunk) else { break };
            let in_order = match entries.last() {
                Some(prev) => entry.follows(prev),
                None => first_ok(&entry),
            };
            if !in_order {
                break;
            }
            entries.push(entry);
        }
        let total = bytes.len().div_ceil(E::SIZE);
        let dropped = total - entries.len();
        let valid_len = (entries.len() * E::SIZE) as u64;
        if valid_len != bytes.len() as u64 {
            file.set_len(valid_len)?;
        }
        Ok(IndexFile {
            path: path.to_path_buf(),
            file,
            entries,
            dropped_on_open: dropped,
        })
    }

    /// Writes `entry` with a single write call, then records it in memory.
    /// On a failed write the file is truncated back (best effort) and the
    /// entry is not recorded.
    pub(super) fn push(&mut self, entry: E) -> io::Result<()> {
        let mut buf = [0u8; MAX_ENTRY_SIZE];
        entry.encode(&mut buf);
        if let Err(e) = self.file.write_all(&buf[..E::SIZE]) {
            let _ = self.file.set_len(self.byte_len());
            return Err(e);
        }
        self.entries.push(entry);
        Ok(())
    }

    fn byte_len(&self) -> u64 {
        (self.entries.len() * E::SIZE) as u64
    }

    /// Keeps only the first `keep` entries (file first, so an error leaves
    /// memory and file unchanged-or-repairable).
    pub(super) fn truncate_to(&mut self, keep: usize) -> io::Result<()> {
        if keep >= self.entries.len() {
            return Ok(());
        }
        self.file.set_len((keep * E::SIZE) as u64)?;
        self.entries.truncate(keep);
        Ok(())
    }

    pub(super) fn clear(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.entries.clear();
        Ok(())
    }

    pub(super) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// `offset - base` as a relative offset, or an InvalidInput error if it does
/// not fit in a u32.
fn relative(base: i64, offset: i64) -> io::Result<u32> {
    offset
        .checked_sub(base)
        .and_then(|d| u32::try_from(d).ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("offset {offset} not within u32 range of base offset {base}"),
            )
        })
}

fn absolute(base: i64, rel: u32) -> i64 {
    base.saturating_add(i64::from(rel))
}

/// Sparse offset -> .log file position index (`<base>.index`).
#[derive(Debug)]
pub struct OffsetIndex {
    base_offset: i64,
    inner: IndexFile<OffsetEntry>,
}

impl OffsetIndex {
    /// Opens or creates the file and loads its entries. A file whose length
    /// is not a multiple of 8, or whose entries are not strictly increasing
    /// (in both fields), is sanity-checked: the valid prefix is kept and the
    /// file truncated to it; `dropped_on_open()` reports how many entries
    /// were dropped (a torn partial entry counts as one).
    pub fn open(path: &Path, base_offset: i64) -> io::Result<OffsetIndex> {
        Ok(OffsetIndex {
            base_offset,
            inner: IndexFile::open(path)?,
        })
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Appends (offset, position). Returns Ok(false) without writing if the
    /// offset or the position is not greater than the last entry's.
    /// `offset - base_offset` must fit a u32, else InvalidInput (checked
    /// first).
    pub fn append(&mut self, offset: i64, position: u32) -> io::Result<bool> {
        let rel = relative(self.base_offset, offset)?;
        let entry = OffsetEntry { rel, pos: position };
        if let Some(last) = self.inner.entries.last() {
            if !entry.follows(last) {
                return Ok(false);
            }
        }
        self.inner.push(entry)?;
        Ok(true)
    }

    /// Largest entry with offset <= `target` as (absolute offset, position);
    /// (base_offset, 0) if there is none.
    pub fn lookup(&self, target: i64) -> (i64, u32) {
        let rel = i128::from(target) - i128::from(self.base_offset);
        let idx = self
            .inner
            .entries
            .partition_point(|e| i128::from(e.rel) <= rel);
        match idx.checked_sub(1) {
            Some(i) => {
                let e = self.inner.entries[i];
                (absolute(self.base_offset, e.rel), e.pos)
            }
            None => (self.base_offset, 0),
        }
    }

    /// Removes entries with offset >= `offset` (the file is truncated too).
    pub fn truncate_from_offset(&mut self, offset: i64) -> io::Result<()> {
        let base = self.base_offset;
        let keep = self
            .inner
            .entries
            .partition_point(|e| absolute(base, e.rel) < offset);
        self.inner.truncate_to(keep)
    }

    /// Removes all entries (file truncated to 0), e.g. before a rebuild.
    pub fn clear(&mut self) -> io::Result<()> {
        self.inner.clear()
    }

    /// Last entry as (absolute offset, position).
    pub fn last_entry(&self) -> Option<(i64, u32)> {
        self.inner
            .entries
            .last()
            .map(|e| (absolute(self.base_offset, e.rel), e.pos))
    }

    pub fn len(&self) -> usize {
        self.inner.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.entries.is_empty()
    }

    /// Entries dropped by the sanity check in `open` (0 if the file was valid).
    pub fn dropped_on_open(&self) -> usize {
        self.inner.dropped_on_open
    }

    /// fsync of the file's data (`sync_data`).
    pub fn sync(&self) -> io::Result<()> {
        self.inner.sync()
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

/// Sparse timestamp -> offset index (`<base>.timeindex`).
#[derive(Debug)]
pub struct TimeIndex {
    base_offset: i64,
    inner: IndexFile<TimeEntry>,
}

impl TimeIndex {
    /// Opens or creates the file and loads its entries, with the same sanity
    /// rules as `OffsetIndex::open`: 12-byte entries, timestamps strictly
    /// increasing and offsets non-decreasing; the valid prefix is kept.
    pub fn open(path: &Path, base_offset: i64) -> io::Result<TimeIndex> {
        Ok(TimeIndex {
            base_offset,
            inner: IndexFile::open(path)?,
        })
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Appends (timestamp, offset) only if `timestamp` is greater than the
    /// last entry's timestamp (and `offset` is not below the last entry's
    /// offset, to keep offsets non-decreasing); returns whether it appended.
    /// `offset - base_offset` must fit a u32, else InvalidInput (checked
    /// first).
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) -> io::Result<bool> {
        let rel = relative(self.base_offset, offset)?;
        let entry = TimeEntry { ts: timestamp, rel };
        if let Some(last) = self.inner.entries.last() {
            if !entry.follows(last) {
                return Ok(false);
            }
        }
        self.inner.push(entry)?;
        Ok(true)
    }

    /// For offsets-for-times: the largest entry whose timestamp < `target_ts`
    /// as (timestamp, absolute offset); None if there is none (the caller
    /// then searches from the segment start).
    pub fn lookup_before(&self, target_ts: i64) -> Option<(i64, i64)> {
        let idx = self.inner.entries.partition_point(|e| e.ts < target_ts);
        idx.checked_sub(1).map(|i| {
            let e = self.inner.entries[i];
            (e.ts, absolute(self.base_offset, e.rel))
        })
    }

    /// Removes entries with offset >= `offset` (the file is truncated too).
    pub fn truncate_from_offset(&mut self, offset: i64) -> io::Result<()> {
        let base = self.base_offset;
        let keep = self
            .inner
            .entries
            .partition_point(|e| absolute(base, e.rel) < offset);
        self.inner.truncate_to(keep)
    }

    /// Removes all entries (file truncated to 0), e.g. before a rebuild.
    pub fn clear(&mut self) -> io::Result<()> {
        self.inner.clear()
    }

    /// Last entry as (timestamp, absolute offset).
    pub fn last_entry(&self) -> Option<(i64, i64)> {
        self.inner
            .entries
            .last()
            .map(|e| (e.ts, absolute(self.base_offset, e.rel)))
    }

    /// Timestamp of the last (= largest) entry.
    pub fn max_timestamp(&self) -> Option<i64> {
        self.inner.entries.last().map(|e| e.ts)
    }

    pub fn len(&self) -> usize {
        self.inner.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.entries.is_empty()
    }

    /// Entries dropped by the sanity check in `open` (0 if the file was valid).
    pub fn dropped_on_open(&self) -> usize {
        self.inner.dropped_on_open
    }

    /// fsync of the file's data (`sync_data`).
    pub fn sync(&self) -> io::Result<()> {
        self.inner.sync()
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tempfile::TempDir;

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    fn offset_entries(idx: &OffsetIndex) -> Vec<(i64, u32)> {
        idx.inner
            .entries
            .iter()
            .map(|e| (absolute(idx.base_offset, e.rel), e.pos))
            .collect()
    }

    fn time_entries(idx: &TimeIndex) -> Vec<(i64, i64)> {
        idx.inner
            .entries
            .iter()
            .map(|e| (e.ts, absolute(idx.base_offset, e.rel)))
            .collect()
    }

    #[test]
    fn offset_append_and_lookup() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("00000000000000000100.index");
        let mut idx = OffsetIndex::open(&path, 100).unwrap();
        assert!(idx.is_empty());
        assert_eq!(idx.base_offset(), 100);
        assert_eq!(idx.path(), path.as_path());
        assert_eq!(idx.lookup(50), (100, 0));
        assert_eq!(idx.lookup(150), (100, 0));
        assert_eq!(idx.last_entry(), None);

        assert!(idx.append(110, 1000).unwrap());
        assert!(idx.append(120, 2000).unwrap());
        assert!(idx.append(130, 3000).unwrap());
        assert_eq!(idx.len(), 3);
        assert_eq!(file_len(&path), 24);

        // before first
        assert_eq!(idx.lookup(99), (100, 0));
        assert_eq!(idx.lookup(100), (100, 0));
        assert_eq!(idx.lookup(109), (100, 0));
        // exact
        assert_eq!(idx.lookup(110), (110, 1000));
        assert_eq!(idx.lookup(120), (120, 2000));
        assert_eq!(idx.lookup(130), (130, 3000));
        // between / after
        assert_eq!(idx.lookup(115), (110, 1000));
        assert_eq!(idx.lookup(129), (120, 2000));
        assert_eq!(idx.lookup(i64::MAX), (130, 3000));
        assert_eq!(idx.lookup(i64::MIN), (100, 0));
        assert_eq!(idx.last_entry(), Some((130, 3000)));

        // non-increasing appends are ignored
        assert!(!idx.append(130, 4000).unwrap());
        assert!(!idx.append(125, 4000).unwrap());
        assert!(!idx.append(140, 3000).unwrap());
        assert!(!idx.append(140, 2500).unwrap());
        assert_eq!(idx.len(), 3);
        assert_eq!(file_len(&path), 24);

        // out of u32 range
        let err = idx.append(99, 5000).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let err = idx.append(100 + (1i64 << 32), 5000).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(idx.append(100 + u32::MAX as i64, 5000).unwrap());
        assert_eq!(idx.len(), 4);
        idx.sync().unwrap();
    }

    #[test]
    fn offset_on_disk_format() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("a.index");
        let mut idx = OffsetIndex::open(&path, 1000).unwrap();
        idx.append(1001, 0x0102_0304).unwrap();
        idx.append(1000 + 0x0A0B_0C0D, 0xFFFF_FFFF).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            bytes,
            vec![0, 0, 0, 1, 1, 2, 3, 4, 0x0A, 0x0B, 0x0C, 0x0D, 0xFF, 0xFF, 0xFF, 0xFF]
        );
    }

    #[test]
    fn offset_reopen_loads_same_entries() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("a.index");
        {
            let mut idx = OffsetIndex::open(&path, 5).unwrap();
            for i in 1..=50 {
                assert!(idx.append(5 + i * 3, (i * 100) as u32).unwrap());
            }
            idx.sync().unwrap();
        }
        let idx = OffsetIndex::open(&path, 5).unwrap();
        assert_eq!(idx.dropped_on_open(), 0);
        assert_eq!(idx.len(), 50);
        assert_eq!(idx.last_entry(), Some((155, 5000)));
        assert_eq!(idx.lookup(9), (8, 100));
        assert_eq!(idx.lookup(7), (5, 0));
        assert_eq!(file_len(&path), 400);
    }

    #[test]
    fn offset_torn_tail_truncated() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("a.index");
        {
            let mut idx = OffsetIndex::open(&path, 0).unwrap();
            idx.append(1, 10).unwrap();
            idx.append(2, 20).unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 3, 0]).unwrap();
        drop(f);
        assert_eq!(file_len(&path), 21);

        let mut idx = OffsetIndex::open(&path, 0).unwrap();
        assert_eq!(idx.dropped_on_open(), 1);
        assert_eq!(offset_entries(&idx), vec![(1, 10), (2, 20)]);
        assert_eq!(file_len(&path), 16);
        // appends continue cleanly after the repair
        assert!(idx.append(3, 30).unwrap());
        drop(idx);
        let idx = OffsetIndex::open(&path, 0).unwrap();
        assert_eq!(idx.dropped_on_open(), 0);
        assert_eq!(offset_entries(&idx), vec![(1, 10), (2, 20), (3, 30)]);
    }

    #[test]
    fn offset_non_increasing_entry_keeps_prefix() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("a.index");
        let mut bytes = Vec::new();
        for (rel, pos) in [(1u32, 10u32), (2, 20), (3, 30), (3, 40), (4, 50), (5, 60)] {
            bytes.extend_from_slice(&rel.to_be_bytes());
            bytes.extend_from_slice(&pos.to_be_bytes());
        }
        std::fs::write(&path, &bytes).unwrap();
        let idx = OffsetIndex::open(&path, 0).unwrap();
        assert_eq!(idx.dropped_on_open(), 3);
        assert_eq!(offset_entries(&idx), vec![(1, 10), (2, 20), (3, 30)]);
        assert_eq!(file_len(&path), 24);

        // non-increasing position also stops the prefix
        let mut bytes = Vec::new();
        for (rel, pos) in [(1u32, 10u32), (2, 5), (3, 30)] {
            bytes.extend_from_slice(&rel.to_be_bytes());
            bytes.extend_from_slice(&pos.to_be_bytes());
        }
        std::fs::write(&path, &bytes).unwrap();
        let idx = OffsetIndex::open(&path, 0).unwrap();
        assert_eq!(idx.dropped_on_open(), 2);
        assert_eq!(offset_entries(&idx), vec![(1, 10)]);
        assert_eq!(file_len(&path), 8);
    }

    #[test]
    fn offset_truncate_and_clear() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("a.index");
        let mut idx = OffsetIndex::open(&path, 100).unwrap();
        for i in 1..=5 {
            idx.append(100 + i * 10, (i * 1000) as u32).unwrap();
        }
        idx.truncate_from_offset(200).unwrap(); // beyond the end: no-op
        assert_eq!(idx.len(), 5);
        idx.truncate_from_offset(135).unwrap(); // removes 140, 150
        assert_eq!(
            offset_entries(&idx),
            vec![(110, 1000), (120, 2000), (130, 3000)]
        );
        assert_eq!(file_len(&path), 24);
        idx.truncate_from_offset(130).unwrap(); // exact: removes 130
        assert_eq!(idx.last_entry(), Some((120, 2000)));
        assert_eq!(file_len(&path), 16);
        // can re-append after truncation, at previously used offsets
        assert!(idx.append(125, 2500).unwrap());
        assert_eq!(idx.lookup(128), (125, 2500));
        idx.truncate_from_offset(0).unwrap();
        assert!(idx.is_empty());
        assert_eq!(file_len(&path), 0);

        idx.append(101, 1).unwrap();
        idx.append(102, 2).unwrap();
        idx.clear().unwrap();
        assert!(idx.is_empty());
        assert_eq!(file_len(&path), 0);
        assert_eq!(idx.lookup(150), (100, 0));
        drop(idx);
        let idx = OffsetIndex::open(&path, 100).unwrap();
        assert!(idx.is_empty());
        assert_eq!(idx.dropped_on_open(), 0);
    }

    #[test]
    fn time_only_appends_increasing_timestamps() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("a.timeindex");
        let mut idx = TimeIndex::open(&path, 1000).unwrap();
        assert_eq!(idx.max_timestamp(), None);
        assert!(idx.maybe_append(500, 1000).unwrap());
        assert!(!idx.maybe_append(500, 1001).unwrap()); // equal ts
        assert!(!idx.maybe_append(400, 1002).unwrap()); // smaller ts
        assert!(idx.maybe_append(600, 1002).unwrap());
        assert!(idx.maybe_append(700, 1002).unwrap()); // same offset is fine
        assert!(!idx.maybe_append(800, 1001).unwrap()); // offset goes back
        assert_eq!(idx.len(), 3);
        assert_eq!(idx.max_timestamp(), Some(700));
        assert_eq!(idx.last_entry(), Some((700, 1002)));
        assert_eq!(file_len(&path), 36);
        let err = idx.maybe_append(900, 999).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

        let bytes = std::fs::read(&path).unwrap();
        let mut expect = Vec::new();
        for (ts, rel) in [(500i64, 0u32), (600, 2), (700, 2)] {
            expect.extend_from_slice(&ts.to_be_bytes());
            expect.extend_from_slice(&rel.to_be_bytes());
        }
        assert_eq!(bytes, expect);
        idx.sync().unwrap();
    }

    #[test]
    fn time_lookup_before_semantics() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("a.timeindex");
        let mut idx = TimeIndex::open(&path, 0).unwrap();
        assert_eq!(idx.lookup_before(100), None);
        idx.maybe_append(100, 10).unwrap();
        idx.maybe_append(200, 20).unwrap();
        idx.maybe_append(300, 30).unwrap();
        assert_eq!(idx.lookup_before(50), None);
        assert_eq!(idx.lookup_before(100), None); // strictly less
        assert_eq!(idx.lookup_before(101), Some((100, 10)));
        assert_eq!(idx.lookup_before(200), Some((100, 10)));
        assert_eq!(idx.lookup_before(250), Some((200, 20)));
        assert_eq!(idx.lookup_before(300), Some((200, 20)));
        assert_eq!(idx.lookup_before(i64::MAX), Some((300, 30)));
        assert_eq!(idx.lookup_before(i64::MIN), None);
    }

    #[test]
    fn time_reopen_torn_and_invalid() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("a.timeindex");
        {
            let mut idx = TimeIndex::open(&path, 50).unwrap();
            idx.maybe_append(-5, 50).unwrap();
            idx.maybe_append(10, 60).unwrap();
            idx.maybe_append(20, 60).unwrap();
        }
        let idx = TimeIndex::open(&path, 50).unwrap();
        assert_eq!(idx.dropped_on_open(), 0);
        assert_eq!(time_entries(&idx), vec![(-5, 50), (10, 60), (20, 60)]);
        drop(idx);

        // torn tail
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0; 7]).unwrap();
        drop(f);
        let idx = TimeIndex::open(&path, 50).unwrap();
        assert_eq!(idx.dropped_on_open(), 1);
        assert_eq!(idx.len(), 3);
        assert_eq!(file_len(&path), 36);
        drop(idx);

        // non-increasing timestamp, then decreasing offset
        let mut bytes = Vec::new();
        for (ts, rel) in [(1i64, 0u32), (2, 1), (2, 2), (3, 3)] {
            bytes.extend_from_slice(&ts.to_be_bytes());
            bytes.extend_from_slice(&rel.to_be_bytes());
        }
        std::fs::write(&path, &bytes).unwrap();
        let idx = TimeIndex::open(&path, 0).unwrap();
        assert_eq!(idx.dropped_on_open(), 2);
        assert_eq!(time_entries(&idx), vec![(1, 0), (2, 1)]);
        assert_eq!(file_len(&path), 24);

        let mut bytes = Vec::new();
        for (ts, rel) in [(1i64, 5u32), (2, 4), (3, 6)] {
            bytes.extend_from_slice(&ts.to_be_bytes());
            bytes.extend_from_slice(&rel.to_be_bytes());
        }
        std::fs::write(&path, &bytes).unwrap();
        let idx = TimeIndex::open(&path, 0).unwrap();
        assert_eq!(idx.dropped_on_open(), 2);
        assert_eq!(time_entries(&idx), vec![(1, 5)]);
        assert_eq!(file_len(&path), 12);
    }

    #[test]
    fn time_truncate_and_clear() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("a.timeindex");
        let mut idx = TimeIndex::open(&path, 0).unwrap();
        idx.maybe_append(10, 1).unwrap();
        idx.maybe_append(20, 2).unwrap();
        idx.maybe_append(30, 2).unwrap();
        idx.maybe_append(40, 4).unwrap();
        idx.truncate_from_offset(3).unwrap();
        assert_eq!(time_entries(&idx), vec![(10, 1), (20, 2), (30, 2)]);
        assert_eq!(file_len(&path), 36);
        idx.truncate_from_offset(2).unwrap();
        assert_eq!(time_entries(&idx), vec![(10, 1)]);
        assert_eq!(idx.max_timestamp(), Some(10));
        assert_eq!(file_len(&path), 12);
        // after truncation a smaller timestamp than the removed ones can go in
        assert!(idx.maybe_append(15, 2).unwrap());
        idx.clear().unwrap();
        assert!(idx.is_empty());
        assert_eq!(idx.max_timestamp(), None);
        assert_eq!(file_len(&path), 0);
        assert!(idx.maybe_append(1, 0).unwrap());
    }

    /// Linear-scan model of `OffsetIndex::lookup`.
    fn model_lookup(model: &[(i64, u32)], base: i64, target: i64) -> (i64, u32) {
        model
            .iter()
            .rev()
            .find(|e| e.0 <= target)
            .copied()
            .unwrap_or((base, 0))
    }

    /// Linear-scan model of `TimeIndex::lookup_before`.
    fn model_lookup_before(model: &[(i64, i64)], target: i64) -> Option<(i64, i64)> {
        model.iter().rev().find(|e| e.0 < target).copied()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn prop_offset_index_matches_model(
            base in 0i64..1_000_000,
            steps in prop::collection::vec((-3i64..40, -3i64..400), 0..200),
            targets in prop::collection::vec(-50i64..10_000, 1..50),
        ) {
            let dir = TempDir::new().unwrap();
            let path = dir.path().join("p.index");
            let mut idx = OffsetIndex::open(&path, base).unwrap();
            let mut model: Vec<(i64, u32)> = Vec::new();
            let (mut off, mut pos) = (base, 0i64);
            for (d_off, d_pos) in steps {
                off = (off + d_off).max(base);
                pos = (pos + d_pos).max(0);
                let accept = model.last().is_none_or(|l| off > l.0 && pos as u32 > l.1);
                prop_assert_eq!(idx.append(off, pos as u32).unwrap(), accept);
                if accept {
                    model.push((off, pos as u32));
                }
            }
            prop_assert_eq!(idx.len(), model.len());
            prop_assert_eq!(idx.last_entry(), model.last().copied());
            for &t in &targets {
                prop_assert_eq!(idx.lookup(base + t), model_lookup(&model, base, base + t));
            }
            drop(idx);
            let idx = OffsetIndex::open(&path, base).unwrap();
            prop_assert_eq!(idx.dropped_on_open(), 0);
            prop_assert_eq!(offset_entries(&idx), model.clone());
            for &t in &targets {
                prop_assert_eq!(idx.lookup(base + t), model_lookup(&model, base, base + t));
            }
        }

        #[test]
        fn prop_time_index_matches_model(
            base in 0i64..1_000_000,
            steps in prop::collection::vec((-5i64..50, -2i64..10), 0..200),
            targets in prop::collection::vec(-100i64..10_000, 1..50),
        ) {
            let dir = TempDir::new().unwrap();
            let path = dir.path().join("p.timeindex");
            let mut idx = TimeIndex::open(&path, base).unwrap();
            let mut model: Vec<(i64, i64)> = Vec::new();
            let (mut ts, mut off) = (0i64, base);
            for (d_ts, d_off) in steps {
                ts += d_ts;
                off = (off + d_off).max(base);
                let accept = model.last().is_none_or(|l| ts > l.0 && off >= l.1);
                prop_assert_eq!(idx.maybe_append(ts, off).unwrap(), accept);
                if accept {
                    model.push((ts, off));
                }
            }
            prop_assert_eq!(idx.len(), model.len());
            prop_assert_eq!(idx.last_entry(), model.last().copied());
            prop_assert_eq!(idx.max_timestamp(), model.last().map(|e| e.0));
            for &t in &targets {
                prop_assert_eq!(idx.lookup_before(t), model_lookup_before(&model, t));
            }
            drop(idx);
            let idx = TimeIndex::open(&path, base).unwrap();
            prop_assert_eq!(idx.dropped_on_open(), 0);
            prop_assert_eq!(time_entries(&idx), model.clone());
            for &t in &targets {
                prop_assert_eq!(idx.lookup_before(t), model_lookup_before(&model, t));
            }
        }
    }
}
