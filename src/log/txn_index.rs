//! Per-segment transaction index (`<base>.txnindex`), in Kafka's on-disk
//! format: the aborted transactions whose abort marker lies in the segment,
//! used to answer READ_COMMITTED fetches (the `AbortedTransactions` list).
//!
//! The file is a flat array of 34-byte, big-endian entries with no header and
//! no padding, written only by appending whole entries:
//!
//! ```text
//! bytes  0..2   version             i16 BE  (always 0)
//! bytes  2..10  producer id         i64 BE
//! bytes 10..18  first offset        i64 BE  (first offset of the transaction)
//! bytes 18..26  last offset         i64 BE  (offset of the abort marker)
//! bytes 26..34  last stable offset  i64 BE  (the partition LSO right after the abort)
//! ```
//!
//! Entries are strictly increasing in `last_offset`, and `last_offset` is not
//! below the segment's base offset (the marker is in this segment; a
//! transaction may start in an earlier one, so `first_offset` may be lower).
//!
//! As with [`super::index`], the whole index is kept in memory (one entry per
//! aborted transaction, so it is small); queries never touch the file. On
//! open the file is sanity-checked: the longest valid prefix (whole version-0
//! entries that keep the invariants above) is kept, the file is truncated to
//! it, and `dropped_on_open()` reports how many entries were dropped (a torn
//! trailing partial entry counts as one).
//!
//! Consistency contract (same as `index.rs`): after every call that returns,
//! the in-memory entries equal the file's, unless an error happened and the
//! best-effort repair failed too; the next `open` then sanity-checks again.

use std::fs;
use std::io;
use std::path::Path;

use super::index::{Entry, IndexFile, MAX_ENTRY_SIZE};

/// Size of one encoded entry.
pub const ENTRY_SIZE: usize = 34;
/// The only entry version Kafka defines.
const CURRENT_VERSION: i16 = 0;

/// One aborted transaction: `[first_offset, last_offset]` of producer
/// `producer_id` (`last_offset` is the abort marker), and the partition's
/// last stable offset once the abort completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl Entry for AbortedTxn {
    const SIZE: usize = ENTRY_SIZE;

    fn encode(&self, buf: &mut [u8; MAX_ENTRY_SIZE]) {
        buf[0..2].copy_from_slice(&CURRENT_VERSION.to_be_bytes());
        buf[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        buf[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        buf[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        buf[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
    }

    /// `None` for an unknown version.
    fn decode(bytes: &[u8]) -> Option<AbortedTxn> {
        let i64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            i64::from_be_bytes(b)
        };
        if i16::from_be_bytes([bytes[0], bytes[1]]) != CURRENT_VERSION {
            return None;
        }
        Some(AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        })
    }

    fn follows(&self, prev: &Self) -> bool {
        self.last_offset > prev.last_offset
    }
}

/// The aborted-transaction index of one segment (`<base>.txnindex`).
#[derive(Debug)]
pub struct TxnIndex {
    base_offset: i64,
    inner: IndexFile<AbortedTxn>,
}

impl TxnIndex {
    /// Opens or creates the file and loads its entries. The longest valid
    /// prefix is kept (version 0, `last_offset` strictly increasing and not
    /// below `base_offset`) and the file truncated to it; `dropped_on_open()`
    /// reports how many entries were dropped.
    pub fn open(path: &Path, base_offset: i64) -> io::Result<TxnIndex> {
        Ok(TxnIndex {
            base_offset,
            inner: IndexFile::open_where(path, |t: &AbortedTxn| t.last_offset >= base_offset)?,
        })
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Appends `txn` with a single write. InvalidInput (nothing written) if
    /// its `last_offset` is not greater than the last entry's or is below the
    /// base offset. On a failed write the file is truncated back (best
    /// effort) and the entry is not recorded.
    pub fn append(&mut self, txn: AbortedTxn) -> io::Result<()> {
        let in_order = match self.inner.entries.last() {
            Some(prev) => txn.follows(prev),
            None => txn.last_offset >= self.base_offset,
        };
        if !in_order {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "aborted txn last offset {} must be greater than the index's last offset {:?} \
                     and not below base offset {} ({})",
                    txn.last_offset,
                    self.last_offset(),
                    self.base_offset,
                    self.inner.path.display()
                ),
            ));
        }
        self.inner.push(txn)
    }

    /// Aborted transactions overlapping the fetch range
    /// `[fetch_offset, upper_bound)`: those with `last_offset >= fetch_offset`
    /// and `first_offset < upper_bound`, in index order. The flag is true if
    /// the search is complete, i.e. an entry with `last_stable_offset >=
    /// upper_bound` was reached (no later segment can hold an aborted
    /// transaction overlapping the range); the scan stops there, as Kafka's
    /// `collectAbortedTxns` does.
    pub fn collect_aborted(&self, fetch_offset: i64, upper_bound: i64) -> (Vec<AbortedTxn>, bool) {
        let mut out = Vec::new();
        for txn in &self.inner.entries {
            if txn.last_offset >= fetch_offset && txn.first_offset < upper_bound {
                out.push(*txn);
            }
            if txn.last_stable_offset >= upper_bound {
                return (out, true);
            }
        }
        (out, false)
    }

    /// Removes entries with `last_offset >= offset` (the file is truncated
    /// first, so an error leaves memory and file unchanged-or-repairable).
    pub fn truncate_from_offset(&mut self, offset: i64) -> io::Result<()> {
        let keep = self
            .inner
            .entries
            .partition_point(|t| t.last_offset < offset);
        self.inner.truncate_to(keep)
    }

    /// All entries, in order.
    pub fn all(&self) -> &[AbortedTxn] {
        &self.inner.entries
    }

    pub fn last_offset(&self) -> Option<i64> {
        self.inner.entries.last().map(|t| t.last_offset)
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

    /// Closes and removes the file; a file already gone is not an error.
    pub fn delete(self) -> io::Result<()> {
        let path = self.inner.path.clone();
        drop(self);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tempfile::TempDir;

    fn entry_bytes(t: &AbortedTxn) -> Vec<u8> {
        let mut buf = [0u8; MAX_ENTRY_SIZE];
        t.encode(&mut buf);
        buf[..ENTRY_SIZE].to_vec()
    }

    fn file_len(path: &Path) -> u64 {
        fs::metadata(path).unwrap().len()
    }

    fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn append_read_round_trip_and_reopen() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("00000000000000000100.txnindex");
        let mut idx = TxnIndex::open(&path, 100).unwrap();
        assert!(path.exists());
        assert!(idx.is_empty());
        assert_eq!(idx.base_offset(), 100);
        assert_eq!(idx.path(), path.as_path());
        assert_eq!(idx.last_offset(), None);
        let txns = vec![
            txn(7, 90, 105, 90), // started in an earlier segment
            txn(8, 106, 110, 111),
            txn(-1, i64::MIN, i64::MAX, -1),
        ];
        for t in &txns {
            idx.append(*t).unwrap();
        }
        assert_eq!(idx.all(), &txns[..]);
        assert_eq!(idx.len(), 3);
        assert_eq!(idx.last_offset(), Some(i64::MAX));
        assert_eq!(file_len(&path), 3 * ENTRY_SIZE as u64);
        idx.sync().unwrap();
        drop(idx);

        let mut idx = TxnIndex::open(&path, 100).unwrap();
        assert_eq!(idx.dropped_on_open(), 0);
        assert_eq!(idx.all(), &txns[..]);
        // the ordering check survives the reopen
        let err = idx.append(txn(9, 1, i64::MAX, 1)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(file_len(&path), 3 * ENTRY_SIZE as u64);
    }

    #[test]
    fn on_disk_format() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("a.txnindex");
        let mut idx = TxnIndex::open(&path, 0).unwrap();
        idx.append(txn(
            0x0102_0304_0506_0708,
            0x1112_1314_1516_1718,
            0x2122_2324_2526_2728,
            -2,
        ))
        .unwrap();
        let expect: Vec<u8> = [
            &[0x00, 0x00][..],                                 // version 0 (i16)
            &[0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08], // producer id
            &[0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18], // first offset
            &[0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28], // last offset
            &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE], // last stable offset (-2)
        ]
        .concat();
        assert_eq!(expect.len(), ENTRY_SIZE);
        assert_eq!(fs::read(&path).unwrap(), expect);
    }

    #[test]
    fn torn_trailing_entry_dropped_at_every_cut() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("a.txnindex");
        let txns = [txn(1, 0, 5, 6), txn(2, 3, 9, 10), txn(3, 8, 12, 13)];
        {
            let mut idx = TxnIndex::open(&path, 0).unwrap();
            for t in txns {
                idx.append(t).unwrap();
            }
        }
        let full = fs::read(&path).unwrap();
        for cut in 2 * ENTRY_SIZE..=3 * ENTRY_SIZE {
            fs::write(&path, &full[..cut]).unwrap();
            let mut idx = TxnIndex::open(&path, 0).unwrap();
            let whole = cut / ENTRY_SIZE;
            assert_eq!(idx.dropped_on_open(), usize::from(cut % ENTRY_SIZE != 0));
            assert_eq!(idx.all(), &txns[..whole]);
            assert_eq!(file_len(&path), (whole * ENTRY_SIZE) as u64);
            // appends continue cleanly after the repair
            let next = txn(4, 20, 30, 31);
            idx.append(next).unwrap();
            drop(idx);
            let idx = TxnIndex::open(&path, 0).unwrap();
            assert_eq!(idx.dropped_on_open(), 0);
            let mut expect = txns[..whole].to_vec();
            expect.push(next);
            assert_eq!(idx.all(), &expect[..]);
        }
    }

    #[test]
    fn invalid_entries_keep_valid_prefix() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("a.txnindex");
        let encode = |ts: &[AbortedTxn]| ts.iter().flat_map(entry_bytes).collect::<Vec<u8>>();

        // non-increasing last offset
        let ts = [
            txn(1, 0, 5, 6),
            txn(2, 0, 7, 8),
            txn(3, 0, 7, 8),
            txn(4, 0, 9, 9),
        ];
        fs::write(&path, encode(&ts)).unwrap();
        let idx = TxnIndex::open(&path, 0).unwrap();
        assert_eq!(idx.dropped_on_open(), 2);
        assert_eq!(idx.all(), &ts[..2]);
        assert_eq!(file_len(&path), 2 * ENTRY_SIZE as u64);
        drop(idx);

        // unknown version
        let mut bytes = encode(&ts[..2]);
        bytes[ENTRY_SIZE + 1] = 1;
        fs::write(&path, &bytes).unwrap();
        let idx = TxnIndex::open(&path, 0).unwrap();
        assert_eq!(idx.dropped_on_open(), 1);
        assert_eq!(idx.all(), &ts[..1]);
        drop(idx);

        // last offset below the base offset
        fs::write(&path, encode(&ts[..2])).unwrap();
        let idx = TxnIndex::open(&path, 6).unwrap();
        assert_eq!(idx.dropped_on_open(), 2);
        assert!(idx.is_empty());
        assert_eq!(file_len(&path), 0);
    }

    #[test]
    fn out_of_order_append_refused() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("a.txnindex");
        let mut idx = TxnIndex::open(&path, 10).unwrap();
        let err = idx.append(txn(1, 0, 9, 10)).unwrap_err(); // below base
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        idx.append(txn(1, 0, 10, 11)).unwrap(); // at base is fine
        idx.append(txn(1, 12, 20, 21)).unwrap();
        for last in [20, 19, i64::MIN] {
            let err = idx.append(txn(2, 0, last, 30)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
        assert_eq!(idx.len(), 2);
        assert_eq!(file_len(&path), 2 * ENTRY_SIZE as u64);
        idx.append(txn(2, 0, 21, 30)).unwrap();
        assert_eq!(idx.last_offset(), Some(21));
    }

    #[test]
    fn collect_aborted_boundaries() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("a.txnindex");
        let mut idx = TxnIndex::open(&path, 0).unwrap();
        // LSOs stay low so that no entry ends the search.
        let a = txn(1, 0, 9, 0); // ends at fetch_offset - 1
        let b = txn(2, 5, 10, 0); // ends exactly at fetch_offset
        let c = txn(3, 19, 25, 0); // starts at upper_bound - 1
        let d = txn(4, 20, 30, 0); // starts exactly at upper_bound
        for t in [a, b, c, d] {
            idx.append(t).unwrap();
        }
        assert_eq!(idx.collect_aborted(10, 20), (vec![b, c], false));
        assert_eq!(idx.collect_aborted(9, 21), (vec![a, b, c, d], false));
        assert_eq!(idx.collect_aborted(11, 19), (vec![], false));
        assert_eq!(idx.collect_aborted(31, 100), (vec![], false));
        // LSO 0 >= upper_bound 0: the first entry already ends the search
        assert_eq!(idx.collect_aborted(0, 0), (vec![], true));

        // completeness: the first entry with LSO >= upper_bound stops the scan
        let dir2 = TempDir::new().unwrap();
        let path = dir2.path().join("b.txnindex");
        let mut idx = TxnIndex::open(&path, 0).unwrap();
        let e = txn(1, 0, 9, 19); // LSO = upper_bound - 1: keep going
        let f = txn(2, 12, 15, 20); // LSO = upper_bound: stop after it
        let g = txn(3, 14, 18, 21);
        for t in [e, f, g] {
            idx.append(t).unwrap();
        }
        assert_eq!(idx.collect_aborted(0, 20), (vec![e, f], true));
        assert_eq!(idx.collect_aborted(0, 21), (vec![e, f, g], true));
        assert_eq!(idx.collect_aborted(0, 22), (vec![e, f, g], false));
        assert_eq!(idx.collect_aborted(10, 20), (vec![f], true));
        // an entry before fetch_offset can end the search too (as in Kafka)
        assert_eq!(idx.collect_aborted(10, 19), (vec![], true));
    }

    #[test]
    fn truncate_from_offset_boundaries() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("a.txnindex");
        let mut idx = TxnIndex::open(&path, 0).unwrap();
        let ts = [txn(1, 0, 10, 11), txn(2, 5, 20, 21), txn(3, 15, 30, 31)];
        for t in ts {
            idx.append(t).unwrap();
        }
        idx.truncate_from_offset(31).unwrap(); // beyond the end: no-op
        assert_eq!(idx.all(), &ts[..]);
        idx.truncate_from_offset(30).unwrap(); // exactly last_offset: removed
        assert_eq!(idx.all(), &ts[..2]);
        assert_eq!(file_len(&path), 2 * ENTRY_SIZE as u64);
        idx.truncate_from_offset(21).unwrap(); // last_offset + 1: kept
        assert_eq!(idx.all(), &ts[..2]);
        // truncating inside a transaction's range drops it (its marker is at/after the cut)
        idx.truncate_from_offset(15).unwrap();
        assert_eq!(idx.all(), &ts[..1]);
        assert_eq!(idx.last_offset(), Some(10));
        // offsets used before can be appended again
        idx.append(txn(4, 11, 12, 13)).unwrap();
        drop(idx);
        let mut idx = TxnIndex::open(&path, 0).unwrap();
        assert_eq!(idx.all(), &[ts[0], txn(4, 11, 12, 13)]);
        idx.truncate_from_offset(i64::MIN).unwrap();
        assert!(idx.is_empty());
        assert_eq!(file_len(&path), 0);
        idx.append(txn(5, 0, 0, 1)).unwrap();
    }

    #[test]
    fn delete_removes_file() {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("a.txnindex");
        let mut idx = TxnIndex::open(&path, 0).unwrap();
        idx.append(txn(1, 0, 1, 2)).unwrap();
        idx.delete().unwrap();
        assert!(!path.exists());
        // already gone: still Ok
        let idx = TxnIndex::open(&path, 0).unwrap();
        fs::remove_file(&path).unwrap();
        idx.delete().unwrap();
    }

    /// Kafka's collectAbortedTxns over a plain Vec.
    fn model_collect(model: &[AbortedTxn], fetch: i64, upper: i64) -> (Vec<AbortedTxn>, bool) {
        let mut out = Vec::new();
        for t in model {
            if t.last_offset >= fetch && t.first_offset < upper {
                out.push(*t);
            }
            if t.last_stable_offset >= upper {
                return (out, true);
            }
        }
        (out, false)
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// (pid, last-offset step from the previous last offset (may be <= 0),
        /// length of the txn, lso - last_offset)
        Append(i64, i64, i64, i64),
        Truncate(i64),
        Collect(i64, i64),
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0i64..5, -3i64..15, 0i64..30, -10i64..10)
                .prop_map(|(p, s, l, d)| Op::Append(p, s, l, d)),
            1 => (-10i64..400).prop_map(Op::Truncate),
            4 => (-10i64..400, -10i64..400).prop_map(|(f, u)| Op::Collect(f, u)),
            1 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn prop_txn_index_matches_model(
            base in 0i64..50,
            ops in prop::collection::vec(op(), 0..120),
        ) {
            let dir = TempDir::new().unwrap();
            let path = dir.path().join("p.txnindex");
            let mut idx = TxnIndex::open(&path, base).unwrap();
            let mut model: Vec<AbortedTxn> = Vec::new();
            for op in ops {
                match op {
                    Op::Append(pid, step, len, d) => {
                        let last = model.last().map_or(base, |t| t.last_offset) + step;
                        let t = txn(pid, last - len, last, last + d);
                        let ok = last >= base && model.last().is_none_or(|p| last > p.last_offset);
                        let res = idx.append(t);
                        prop_assert_eq!(res.is_ok(), ok, "{:?}", res);
                        if ok {
                            model.push(t);
                        }
                    }
                    Op::Truncate(o) => {
                        idx.truncate_from_offset(o).unwrap();
                        model.retain(|t| t.last_offset < o);
                    }
                    Op::Collect(f, u) => {
                        prop_assert_eq!(idx.collect_aborted(f, u), model_collect(&model, f, u));
                    }
                    Op::Reopen => {
                        drop(idx);
                        idx = TxnIndex::open(&path, base).unwrap();
                        prop_assert_eq!(idx.dropped_on_open(), 0);
                    }
                }
                prop_assert_eq!(idx.all(), &model[..]);
                prop_assert_eq!(file_len(&path), (model.len() * ENTRY_SIZE) as u64);
            }
            drop(idx);
            let idx = TxnIndex::open(&path, base).unwrap();
            prop_assert_eq!(idx.dropped_on_open(), 0);
            prop_assert_eq!(idx.all(), &model[..]);
        }
    }
}
