//! One log segment: `<base>.log` holding record batches exactly as stored
//! (offsets assigned), with its sparse `.index` and `.timeindex`, and the
//! `.txnindex` of the aborted transactions whose ABORT marker is in it
//! (created on the first abort, as Kafka does).
//!
//! The `.log` file only grows at its end while the segment is active, so any
//! byte range below `size` is immutable: readers copy an `Arc<File>` and a
//! range under the partition lock and read outside it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch::{BatchHeader, HEADER_LEN};
use super::index::{OffsetIndex, TimeIndex};
use super::txn_index::{AbortedTxn, TxnIndex};

/// Read granularity for scans (recovery, index rebuild, producer replay).
const SCAN_CHUNK: usize = 1 << 20;

pub fn file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// Parses `00000000000000001234.log` → 1234.
pub fn parse_file_name(name: &str, ext: &str) -> Option<i64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// The bytes of a readable range of one segment file.
#[derive(Clone)]
pub struct FileRange {
    pub file: Arc<File>,
    pub start: u64,
    pub end: u64,
}

pub struct Segment {
    pub base_offset: i64,
    file: Arc<File>,
    log_path: PathBuf,
    /// Valid bytes in the `.log` file.
    pub size: u64,
    /// One past the last offset stored here (`base_offset` when empty).
    pub next_offset: i64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_index: u64,
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: i64,
    /// Max timestamp of the first batch (Kafka rolls on time from it), or the
    /// creation time of an empty segment.
    pub roll_base_timestamp: Option<i64>,
    pub created_ms: i64,
    /// Written since its last fsync.
    pub dirty: bool,
    /// `<base>.txnindex`, opened when the file exists or on the first abort.
    txn_index: Option<TxnIndex>,
    /// The transaction index has entries not yet fsynced; `.1`: the file was
    /// created since (its directory entry needs a sync too).
    txn_index_unsynced: Option<bool>,
    /// Bytes the last [`Segment::recover`] cut off (a torn or corrupt tail).
    pub truncated_bytes: u64,
}

/// Extensions of the files that belong to a segment.
pub const SEGMENT_FILE_EXTENSIONS: [&str; 4] = ["log", "index", "timeindex", "txnindex"];

/// What a [`scan`] learns of a range of batches.
#[derive(Default)]
pub struct ScanSummary {
    /// Position just after the last whole, valid batch.
    pub valid_len: u64,
    pub next_offset: Option<i64>,
    /// (max timestamp, last offset of the batch holding it).
    pub max_timestamp: Option<(i64, i64)>,
    pub first_batch_timestamp: Option<i64>,
}

impl Segment {
    pub fn create(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Segment> {
        let log_path = dir.join(file_name(base_offset, "log"));
        // A leftover file at this name (a crash mid-roll) holds nothing we
        // need: the new segment starts at the log end.
        match fs::remove_file(&log_path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .append(true)
            .open(&log_path)?;
        let offset_index =
            OffsetIndex::open(&dir.join(file_name(base_offset, "index")), base_offset)?;
        let time_index =
            TimeIndex::open(&dir.join(file_name(base_offset, "timeindex")), base_offset)?;
        match fs::remove_file(dir.join(file_name(base_offset, "txnindex"))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut seg = Segment {
            base_offset,
            file: Arc::new(file),
            log_path,
            size: 0,
            next_offset: base_offset,
            offset_index,
            time_index,
            bytes_since_index: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            roll_base_timestamp: None,
            created_ms: now_ms,
            dirty: true,
            txn_index: None,
            txn_index_unsynced: None,
            truncated_bytes: 0,
        };
        seg.offset_index.clear()?;
        seg.time_index.clear()?;
        Ok(seg)
    }

    /// Opens an existing segment. With `recover`, every batch is re-validated
    /// (CRC, magic, monotonic offsets), the file is truncated after the last
    /// valid batch and both indexes are rebuilt; otherwise the indexes are
    /// trusted and only the tail after the last index entry is scanned.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        recover: bool,
        index_interval: u64,
        now_ms: i64,
    ) -> io::Result<Segment> {
        let log_path = dir.join(file_name(base_offset, "log"));
        let file = OpenOptions::new().read(true).append(true).open(&log_path)?;
        let file_len = file.metadata()?.len();
        let created_ms = file
            .metadata()?
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(now_ms, |d| d.as_millis() as i64);
        let offset_index =
            OffsetIndex::open(&dir.join(file_name(base_offset, "index")), base_offset)?;
        let time_index =
            TimeIndex::open(&dir.join(file_name(base_offset, "timeindex")), base_offset)?;
        let txn_path = dir.join(file_name(base_offset, "txnindex"));
        let txn_index = if txn_path.exists() {
            let idx = TxnIndex::open(&txn_path, base_offset)?;
            if idx.dropped_on_open() > 0 {
                tracing::warn!(
                    path = %txn_path.display(),
                    dropped = idx.dropped_on_open(),
                    "transaction index had invalid entries; truncated"
                );
            }
            Some(idx)
        } else {
            None
        };
        let mut seg = Segment {
            base_offset,
            file: Arc::new(file),
            log_path,
            size: file_len,
            next_offset: base_offset,
            offset_index,
            time_index,
            bytes_since_index: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            roll_base_timestamp: None,
            created_ms,
            dirty: false,
            txn_index,
            txn_index_unsynced: None,
            truncated_bytes: 0,
        };
        let index_suspect = seg.offset_index.dropped_on_open() > 0
            || seg.time_index.dropped_on_open() > 0
            || seg
                .offset_index
                .last_entry()
                .is_some_and(|(_, pos)| pos as u64 >= file_len);
        if recover || index_suspect {
            seg.recover(index_interval)?;
        } else {
            let (last_indexed_offset, start) =
                seg.offset_index.last_entry().unwrap_or((base_offset, 0));
            let summary = scan(
                &seg.file,
                start as u64,
                file_len,
                false,
                base_offset,
                |_, _| {},
            )?;
            seg.next_offset = summary
                .next_offset
                .unwrap_or(last_indexed_offset.max(base_offset));
            if summary.valid_len < file_len {
                // A clean segment should end on a batch boundary; if not,
                // fall back to full recovery rather than serve a torn tail.
                seg.recover(index_interval)?;
            } else if let Some((ts, off)) = seg.time_index.last_entry() {
                seg.max_timestamp = ts;
                seg.offset_of_max_timestamp = off;
                if let Some((tail_ts, tail_off)) = summary.max_timestamp {
                    if tail_ts > ts {
                        seg.max_timestamp = tail_ts;
                        seg.offset_of_max_timestamp = tail_off;
                    }
                }
                seg.roll_base_timestamp = first_batch_timestamp(&seg.file, file_len)?;
            } else {
                // Small segment without time index entries: one scan is cheap.
                let all = scan(&seg.file, 0, file_len, false, base_offset, |_, _| {})?;
                if let Some((ts, off)) = all.max_timestamp {
                    seg.max_timestamp = ts;
                    seg.offset_of_max_timestamp = off;
                }
                seg.roll_base_timestamp = all.first_batch_timestamp;
            }
        }
        Ok(seg)
    }

    /// Re-validates the whole file, truncates an invalid tail, rebuilds the
    /// indexes. Returns the number of bytes truncated.
    pub fn recover(&mut self, index_interval: u64) -> io::Result<u64> {
        let file_len = self.file.metadata()?.len();
        self.offset_index.clear()?;
        self.time_index.clear()?;
        let mut since_index = 0u64;
        let mut max_ts = (-1i64, -1i64);
        let mut entries: Vec<(i64, u32, i64, i64)> = Vec::new();
        let summary = scan(&self.file, 0, file_len, true, self.base_offset, |pos, h| {
            if h.max_timestamp > max_ts.0 {
                max_ts = (h.max_timestamp, h.last_offset());
            }
            since_index += h.total_len() as u64;
            if since_index >= index_interval {
                entries.push((h.last_offset(), pos as u32, max_ts.0, max_ts.1));
                since_index = 0;
            }
        })?;
        for (offset, pos, ts, ts_off) in entries {
            self.offset_index.append(offset, pos)?;
            self.time_index.maybe_append(ts, ts_off)?;
        }
        let truncated = file_len - summary.valid_len;
        if truncated > 0 {
            tracing::warn!(
                path = %self.log_path.display(),
                "truncating {truncated} invalid bytes after position {}",
                summary.valid_len
            );
            self.file.set_len(summary.valid_len)?;
        }
        self.size = summary.valid_len;
        self.next_offset = summary.next_offset.unwrap_or(self.base_offset);
        // Aborts whose marker was cut off are gone with it.
        self.truncate_txn_index_from(self.next_offset)?;
        self.bytes_since_index = since_index;
        self.max_timestamp = max_ts.0;
        self.offset_of_max_timestamp = max_ts.1;
        self.roll_base_timestamp = summary.first_batch_timestamp;
        self.dirty = truncated > 0;
        self.truncated_bytes = truncated;
        Ok(truncated)
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Appends one batch whose header (`header`, first `HEADER_LEN` bytes)
    /// was patched by the caller; `rest` is the batch after the header. On a
    /// failed write the file is cut back so no partial batch remains.
    pub fn append(
        &mut self,
        header_bytes: &[u8; HEADER_LEN],
        rest: &[u8],
        header: &BatchHeader,
        index_interval: u64,
    ) -> io::Result<()> {
        let position = self.size;
        let position32 = u32::try_from(position)
            .map_err(|_| io::Error::other("segment position exceeds 4 GiB"))?;
        if let Err(e) = write_all_vectored(
            &self.file,
            &[IoSlice::new(header_bytes), IoSlice::new(rest)],
        ) {
            let _ = self.file.set_len(position);
            return Err(e);
        }
        let len = (HEADER_LEN + rest.len()) as u64;
        self.size += len;
        self.dirty = true;
        self.next_offset = header.last_offset() + 1;
        if self.roll_base_timestamp.is_none() {
            self.roll_base_timestamp = Some(header.max_timestamp);
        }
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = header.last_offset();
        }
        self.bytes_since_index += len;
        if self.bytes_since_index >= index_interval {
            self.offset_index.append(header.last_offset(), position32)?;
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp)?;
            self.bytes_since_index = 0;
        }
        Ok(())
    }

    /// Called when the segment stops being active (roll, clean shutdown): the
    /// time index gets its final max-timestamp entry, as Kafka does, so a
    /// later open learns the max timestamp without a scan.
    pub fn seal(&mut self) -> io::Result<()> {
        if self.max_timestamp >= 0 {
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp)?;
        }
        Ok(())
    }

    /// Where to start scanning for `offset`.
    pub fn position_hint(&self, offset: i64) -> u64 {
        self.offset_index.lookup(offset).1 as u64
    }

    /// Where to start scanning for the first record with timestamp >= `ts`.
    pub fn position_hint_for_timestamp(&self, ts: i64) -> u64 {
        match self.time_index.lookup_before(ts) {
            Some((_, offset)) => self.position_hint(offset),
            None => 0,
        }
    }

    pub fn range_from(&self, start: u64) -> FileRange {
        FileRange {
            file: self.file.clone(),
            start,
            end: self.size,
        }
    }

    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    pub fn sync_indexes(&mut self) -> io::Result<()> {
        self.offset_index.sync()?;
        self.time_index.sync()?;
        if let Some(idx) = &self.txn_index {
            idx.sync()?;
        }
        self.txn_index_unsynced = None;
        Ok(())
    }

    fn txn_index_path(&self) -> PathBuf {
        self.log_path.with_extension("txnindex")
    }

    /// Appends an aborted transaction whose ABORT marker is in this segment
    /// to `<base>.txnindex`, creating the file on the first one.
    pub fn append_aborted(&mut self, txn: AbortedTxn) -> io::Result<()> {
        let created = match &mut self.txn_index {
            Some(idx) => {
                idx.append(txn)?;
                false
            }
            None => {
                let mut idx = TxnIndex::open(&self.txn_index_path(), self.base_offset)?;
                idx.append(txn)?;
                self.txn_index = Some(idx);
                true
            }
        };
        let was_created = self.txn_index_unsynced.unwrap_or(false);
        self.txn_index_unsynced = Some(was_created || created);
        Ok(())
    }

    /// The aborted transactions indexed in this segment, in marker order.
    pub fn aborted_txns(&self) -> &[AbortedTxn] {
        self.txn_index.as_ref().map_or(&[], |idx| idx.all())
    }

    /// Kafka's `LogSegment.collectAbortedTxns`: see
    /// [`TxnIndex::collect_aborted`]. A segment without a transaction index
    /// has nothing and does not end the search.
    pub fn collect_aborted(&self, fetch_offset: i64, upper_bound: i64) -> (Vec<AbortedTxn>, bool) {
        match &self.txn_index {
            Some(idx) => idx.collect_aborted(fetch_offset, upper_bound),
            None => (Vec::new(), false),
        }
    }

    /// Removes the transaction index entries whose marker is at or after
    /// `offset`.
    pub fn truncate_txn_index_from(&mut self, offset: i64) -> io::Result<()> {
        if let Some(idx) = &mut self.txn_index {
            idx.truncate_from_offset(offset)?;
        }
        Ok(())
    }

    /// Entries the transaction index dropped when it was opened (a torn or
    /// invalid file).
    pub fn txn_index_dropped_on_open(&self) -> usize {
        self.txn_index
            .as_ref()
            .map_or(0, |idx| idx.dropped_on_open())
    }

    /// The transaction index file to fsync, if it has unsynced entries (and
    /// whether it was created since, so its directory needs a sync too);
    /// the caller syncs it outside the partition lock.
    pub fn take_unsynced_txn_index(&mut self) -> Option<(PathBuf, bool)> {
        let created = self.txn_index_unsynced.take()?;
        Some((self.txn_index_path(), created))
    }

    /// Marks the transaction index unsynced again after a failed fsync.
    pub fn mark_txn_index_unsynced(&mut self, created: bool) {
        if self.txn_index.is_some() {
            let was = self.txn_index_unsynced.unwrap_or(false);
            self.txn_index_unsynced = Some(was || created);
        }
    }

    /// Removes the batches at and after `offset`.
    pub fn truncate_to_offset(&mut self, offset: i64, index_interval: u64) -> io::Result<()> {
        let mut cut = None;
        scan(
            &self.file,
            self.position_hint(offset).min(self.size),
            self.size,
            false,
            self.base_offset,
            |pos, h| {
                if cut.is_none() && h.last_offset() >= offset {
                    cut = Some(pos);
                }
            },
        )?;
        if let Some(pos) = cut {
            self.file.set_len(pos)?;
            self.recover(index_interval)?;
        }
        Ok(())
    }

    /// Deletes the segment's files. Open readers keep their `Arc<File>`.
    pub fn delete_files(&self, dir: &Path) -> io::Result<()> {
        for ext in SEGMENT_FILE_EXTENSIONS {
            match fs::remove_file(dir.join(file_name(self.base_offset, ext))) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

fn first_batch_timestamp(file: &File, len: u64) -> io::Result<Option<i64>> {
    if len < HEADER_LEN as u64 {
        return Ok(None);
    }
    let mut buf = [0u8; HEADER_LEN];
    file.read_exact_at(&mut buf, 0)?;
    Ok(BatchHeader::parse(&buf).ok().map(|h| h.max_timestamp))
}

fn write_all_vectored(mut file: &File, slices: &[IoSlice<'_>]) -> io::Result<()> {
    let mut owned: Vec<IoSlice<'_>> = slices.to_vec();
    let mut bufs: &mut [IoSlice<'_>] = &mut owned;
    while !bufs.is_empty() {
        match file.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Checks the parts of a stored batch header that recovery relies on.
fn plausible(h: &BatchHeader) -> bool {
    h.magic == 2 && h.batch_length >= (HEADER_LEN - 12) as i32 && h.last_offset_delta >= 0
}

/// Walks whole batches in `file[start..end]`, calling `f(position, header)`.
/// Stops at the first batch that is incomplete, implausible, out of offset
/// order (base offset below `min_offset` or not above the previous batch), or
/// — with `verify_crc` — whose CRC-32C does not match.
pub fn scan(
    file: &File,
    start: u64,
    end: u64,
    verify_crc: bool,
    min_offset: i64,
    mut f: impl FnMut(u64, &BatchHeader),
) -> io::Result<ScanSummary> {
    let mut summary = ScanSummary {
        valid_len: start,
        ..Default::default()
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = start;
    let mut pos = start;
    let mut expected_min = min_offset;
    loop {
        if end.saturating_sub(pos) < HEADER_LEN as u64 {
            break;
        }
        let off = (pos - buf_start) as usize;
        if buf.len() < off + HEADER_LEN {
            buf_start = pos;
            let want = (end - pos).min(SCAN_CHUNK as u64) as usize;
            buf.resize(want, 0);
            file.read_exact_at(&mut buf, pos)?;
            continue;
        }
        let Ok(h) = BatchHeader::parse(&buf[off..]) else {
            break;
        };
        if !plausible(&h) || h.base_offset < expected_min {
            break;
        }
        let total = h.total_len();
        if pos + total as u64 > end {
            break;
        }
        if verify_crc {
            if buf.len() < off + total {
                buf_start = pos;
                let want = ((end - pos) as usize).min(SCAN_CHUNK.max(total));
                buf.resize(want, 0);
                file.read_exact_at(&mut buf, pos)?;
                continue;
            }
            let bytes = &buf[off..off + total];
            if crc32c::crc32c(&bytes[21..]) != h.crc {
                break;
            }
        }
        f(pos, &h);
        if summary.first_batch_timestamp.is_none() {
            summary.first_batch_timestamp = Some(h.max_timestamp);
        }
        if summary
            .max_timestamp
            .is_none_or(|(ts, _)| h.max_timestamp > ts)
        {
            summary.max_timestamp = Some((h.max_timestamp, h.last_offset()));
        }
        expected_min = h.last_offset() + 1;
        summary.next_offset = Some(expected_min);
        pos += total as u64;
        summary.valid_len = pos;
        if buf.len() < (pos - buf_start) as usize {
            // The batch was skipped past the buffer without being read.
            buf.clear();
            buf_start = pos;
        }
    }
    Ok(summary)
}
