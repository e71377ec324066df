//! Transactions in the partition log: markers, the last stable offset,
//! READ_COMMITTED reads with their aborted-transaction lists, the `.txnindex`
//! files and recovery; unit tests and a model-based property test.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::path::Path;

use bytes::Bytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use proptest::prelude::*;
use uuid::Uuid;

use super::batch::{BatchHeader, BatchIter};
use super::partition::{Isolation, OpenOptions as LogOpen, PartitionLog};
use super::tests::{marker, record, topic_config};
use super::txn_index::AbortedTxn;
use crate::config::TopicConfig;

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const COORDINATOR_FENCED: i16 = 52;

/// One v2 batch of `count` records keyed `k<tag>-<i>`; `producer` is
/// (id, epoch, base sequence) or none (-1, -1, -1); `transactional` sets the
/// attribute bit.
fn batch(tag: u32, count: usize, producer: Option<(i64, i16, i32)>, transactional: bool) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| {
            let key = Bytes::from(format!("k{tag}-{i}"));
            let value = Bytes::from(vec![(tag % 251) as u8; 20]);
            Record {
                transactional,
                ..record(i, 1_000 + i as i64, producer, key, Some(value))
            }
        })
        .collect();
    crate::coordinator::codec::tests::raw_batch(&records, Compression::None)
}

fn txn_batch(tag: u32, count: usize, pid: i64, epoch: i16, seq: i32) -> Bytes {
    batch(tag, count, Some((pid, epoch, seq)), true)
}

fn open(
    dir: &Path,
    config: TopicConfig,
    clean: bool,
    rp: Option<i64>,
    start: Option<i64>,
) -> PartitionLog {
    PartitionLog::open(
        dir,
        "t",
        0,
        Uuid::nil(),
        config,
        LogOpen {
            recovery_point: rp,
            log_start_offset: start,
            clean_shutdown: clean,
            now_ms: 0,
        },
    )
    .expect("open")
}

fn create(root: &Path, config: TopicConfig) -> PartitionLog {
    PartitionLog::create(root, "t", 0, Uuid::nil(), config, 0).unwrap()
}

/// A fetched batch as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fetched {
    base: i64,
    last: i64,
    pid: i64,
    transactional: bool,
    /// For control batches: Some(commit).
    control: Option<bool>,
    /// (offset, key) of data records.
    records: Vec<(i64, String)>,
}

fn decode(bytes: &Bytes) -> Vec<Fetched> {
    let mut out = Vec::new();
    for (pos, h) in BatchIter::new(bytes) {
        let mut one = bytes.slice(pos..pos + h.total_len());
        let set = RecordBatchDecoder::decode(&mut one).expect("stored batches decode");
        let control = h.is_control().then(|| {
            let key = set.records[0].key.clone().unwrap();
            i16::from_be_bytes([key[2], key[3]]) == 1
        });
        let records = if h.is_control() {
            Vec::new()
        } else {
            set.records
                .iter()
                .map(|r| {
                    (
                        r.offset,
                        String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap(),
                    )
                })
                .collect()
        };
        out.push(Fetched {
            base: h.base_offset,
            last: h.last_offset(),
            pid: h.producer_id,
            transactional: h.is_transactional(),
            control,
            records,
        });
    }
    out
}

/// What a READ_COMMITTED client (Java's `CompletedFetch`) keeps of one fetch
/// response: aborted transactions are consumed in first-offset order as the
/// batches pass them; a data batch of a producer in the aborted set is
/// skipped until that producer's ABORT marker; control batches are dropped.
fn client_filter(
    batches: &[Fetched],
    aborted: &[AbortedTxn],
    fetch_offset: i64,
) -> Vec<(i64, String)> {
    let mut pending: Vec<AbortedTxn> = aborted.to_vec();
    pending.sort_by_key(|t| t.first_offset);
    let mut pending = std::collections::VecDeque::from(pending);
    let mut aborted_pids = BTreeSet::new();
    let mut out = Vec::new();
    for b in batches {
        if b.pid >= 0 {
            while pending.front().is_some_and(|t| t.first_offset <= b.last) {
                aborted_pids.insert(pending.pop_front().unwrap().producer_id);
            }
            if let Some(commit) = b.control {
                if !commit {
                    aborted_pids.remove(&b.pid);
                }
                continue;
            }
            if b.transactional && aborted_pids.contains(&b.pid) {
                continue;
            }
        }
        if b.control.is_some() {
            continue;
        }
        out.extend(
            b.records
                .iter()
                .filter(|(o, _)| *o >= fetch_offset)
                .cloned(),
        );
    }
    out
}

/// Everything a READ_COMMITTED consumer gets from `from` on, fetching with
/// `max_bytes`; checks the fetch invariants on the way.
fn consume_committed(log: &PartitionLog, from: i64, max_bytes: usize) -> Vec<(i64, String)> {
    let mut offset = from;
    let mut out = Vec::new();
    loop {
        let r = log
            .read_isolated(offset, max_bytes, Isolation::ReadCommitted)
            .unwrap();
        let lso = r.last_stable_offset;
        assert_eq!(lso, log.last_stable_offset());
        let aborted = r.aborted.expect("READ_COMMITTED carries a list");
        let batches = decode(&r.records);
        if batches.is_empty() {
            assert!(
                offset >= lso,
                "nothing read at {offset} below the LSO {lso}"
            );
            assert!(aborted.iter().all(|t| t.first_offset < offset));
            return out;
        }
        let upper = batches.last().unwrap().last + 1;
        assert!(upper <= lso, "read past the LSO {lso}: {upper}");
        for t in &aborted {
            assert!(
                t.last_offset >= offset && t.first_offset < upper,
                "{t:?} outside [{offset}, {upper})"
            );
        }
        out.extend(client_filter(&batches, &aborted, offset));
        offset = upper;
    }
}

/// Every batch from `from` on, READ_UNCOMMITTED.
fn consume_all(log: &PartitionLog, from: i64, max_bytes: usize) -> Vec<Fetched> {
    let mut offset = from;
    let mut out = Vec::new();
    loop {
        let r = log.read(offset, max_bytes).unwrap();
        assert!(r.aborted.is_none());
        let batches = decode(&r.records);
        let Some(last) = batches.last() else {
            assert_eq!(offset, log.log_end_offset());
            return out;
        };
        offset = last.last + 1;
        out.extend(batches);
    }
}

fn keys(tag: u32, base: i64, count: usize) -> Vec<(i64, String)> {
    (0..count)
        .map(|i| (base + i as i64, format!("k{tag}-{i}")))
        .collect()
}

fn abort_entry(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id: pid,
        first_offset: first,
        last_offset: last,
        last_stable_offset: lso,
    }
}

fn all_index_entries(log: &PartitionLog) -> Vec<AbortedTxn> {
    log.aborted_index()
        .into_iter()
        .flat_map(|(_, e)| e)
        .collect()
}

#[test]
fn commit_marker_closes_txn_and_moves_lso() {
    let root = tempfile::tempdir().unwrap();
    let log = create(root.path(), topic_config(1 << 20));
    assert_eq!(log.last_stable_offset(), 0);
    assert!(log.needs_txn_verification(7, 0));
    log.append_as_leader(&txn_batch(1, 3, 7, 0, 0), 0).unwrap();
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.last_stable_offset(), 0);
    assert_eq!(log.open_transactions(), vec![(7, 0, 0)]);
    assert!(!log.needs_txn_verification(7, 0));
    assert!(log.needs_txn_verification(7, 1), "another epoch");
    assert!(log.needs_txn_verification(8, 0), "another producer");
    log.append_as_leader(&txn_batch(2, 2, 7, 0, 3), 0).unwrap();
    let appended = log.append_marker(&marker(7, 0, true), 5_000).unwrap();
    assert_eq!(appended.base_offset, 5);
    assert!(!appended.duplicate);
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.last_stable_offset(), 6);
    assert!(log.open_transactions().is_empty());
    assert!(log.needs_txn_verification(7, 0));
    assert!(
        all_index_entries(&log).is_empty(),
        "commits are not indexed"
    );
    // The stored marker: transactional control batch, one offset.
    let all = consume_all(&log, 0, 1 << 20);
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].control, Some(true));
    assert_eq!((all[2].base, all[2].last, all[2].pid), (5, 5, 7));
    let mut want = keys(1, 0, 3);
    want.extend(keys(2, 3, 2));
    assert_eq!(consume_committed(&log, 0, 1 << 20), want);
    // The producer continues its sequence in the next transaction.
    log.append_as_leader(&txn_batch(3, 1, 7, 0, 5), 0).unwrap();
    assert_eq!(log.open_transactions(), vec![(7, 0, 6)]);
    assert_eq!(log.last_stable_offset(), 6);
}

#[test]
fn abort_is_indexed_with_completion_lso() {
    let root = tempfile::tempdir().unwrap();
    let log = create(root.path(), topic_config(1 << 20));
    log.append_as_leader(&txn_batch(1, 2, 1, 0, 0), 0).unwrap(); // 0-1
    log.append_as_leader(&txn_batch(2, 2, 2, 0, 0), 0).unwrap(); // 2-3
    log.append_as_leader(&batch(3, 1, None, false), 0).unwrap(); // 4
    assert_eq!(log.last_stable_offset(), 0);
    // Abort producer 2 while producer 1 is still open: LSO stays at 0.
    assert_eq!(
        log.append_marker(&marker(2, 0, false), 0)
            .unwrap()
            .base_offset,
        5
    );
    assert_eq!(all_index_entries(&log), vec![abort_entry(2, 2, 5, 0)]);
    assert_eq!(log.last_stable_offset(), 0);
    // Abort producer 1: nothing else open, LSO after the marker.
    log.append_marker(&marker(1, 0, false), 0).unwrap();
    assert_eq!(
        all_index_entries(&log),
        vec![abort_entry(2, 2, 5, 0), abort_entry(1, 0, 6, 7)]
    );
    assert_eq!(log.last_stable_offset(), 7);
    let r = log
        .read_isolated(0, 1 << 20, Isolation::ReadCommitted)
        .unwrap();
    assert_eq!(
        r.aborted.clone().unwrap(),
        vec![abort_entry(2, 2, 5, 0), abort_entry(1, 0, 6, 7)]
    );
    assert_eq!(consume_committed(&log, 0, 1 << 20), keys(3, 4, 1));
    // From offset 6 only producer 1's abort (its marker) overlaps.
    let r = log
        .read_isolated(6, 1 << 20, Isolation::ReadCommitted)
        .unwrap();
    assert_eq!(r.aborted.unwrap(), vec![abort_entry(1, 0, 6, 7)]);
    // READ_UNCOMMITTED sees everything and no list.
    let r = log.read(0, 1 << 20).unwrap();
    assert!(r.aborted.is_none());
    assert_eq!(r.last_stable_offset, 7);
    assert_eq!(decode(&r.records).len(), 5);
}

#[test]
fn marker_without_open_txn_is_written_and_indexes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let log = create(root.path(), topic_config(1 << 20));
    log.append_as_leader(&batch(1, 2, None, false), 0).unwrap();
    let a = log.append_marker(&marker(9, 3, false), 0).unwrap();
    assert_eq!(a.base_offset, 2);
    let a = log.append_marker(&marker(9, 3, true), 0).unwrap();
    assert_eq!(a.base_offset, 3);
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(log.last_stable_offset(), 4);
    assert!(all_index_entries(&log).is_empty());
    assert!(!root
        .path()
        .join("t-0/00000000000000000000.txnindex")
        .exists());
    // The marker registered the producer at its epoch: older epochs fenced.
    let err = log
        .append_as_leader(&txn_batch(2, 1, 9, 2, 0), 0)
        .unwrap_err();
    assert_eq!(err.error_code(), INVALID_PRODUCER_EPOCH);
    assert_eq!(consume_committed(&log, 0, 1 << 20), keys(1, 0, 2));
}

#[test]
fn marker_epoch_fencing_and_bump() {
    let root = tempfile::tempdir().unwrap();
    let log = create(root.path(), topic_config(1 << 20));
    log.append_as_leader(&txn_batch(1, 2, 5, 3, 0), 0).unwrap();
    // A marker of an older epoch is refused and writes nothing.
    let err = log.append_marker(&marker(5, 2, false), 0).unwrap_err();
    assert_eq!(err.error_code(), INVALID_PRODUCER_EPOCH);
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(log.open_transactions(), vec![(5, 3, 0)]);
    // The coordinator aborts on timeout with a bumped epoch.
    let a = log.append_marker(&marker(5, 4, false), 0).unwrap();
    assert_eq!(a.base_offset, 2);
    assert_eq!(all_index_entries(&log), vec![abort_entry(5, 0, 2, 3)]);
    assert!(log.open_transactions().is_empty());
    // The zombie at epoch 3 is fenced now, transactional or not.
    for transactional in [true, false] {
        let err = log
            .append_as_leader(&batch(2, 1, Some((5, 3, 2)), transactional), 0)
            .unwrap_err();
        assert_eq!(err.error_code(), INVALID_PRODUCER_EPOCH);
    }
    // The new epoch starts at sequence 0.
    let err = log
        .append_as_leader(&txn_batch(3, 1, 5, 4, 2), 0)
        .unwrap_err();
    assert_eq!(err.error_code(), 45);
    log.append_as_leader(&txn_batch(3, 1, 5, 4, 0), 0).unwrap();
    assert_eq!(log.open_transactions(), vec![(5, 4, 3)]);
    // Coordinator epochs: a marker from an older coordinator is fenced.
    let mut m = marker(5, 4, true);
    m.coordinator_epoch = 7;
    log.append_marker(&m, 0).unwrap();
    log.append_as_leader(&txn_batch(4, 1, 5, 4, 1), 0).unwrap();
    m.coordinator_epoch = 6;
    let err = log.append_marker(&m, 0).unwrap_err();
    assert_eq!(err.error_code(), COORDINATOR_FENCED);
    m.coordinator_epoch = 7;
    log.append_marker(&m, 0).unwrap();
    assert!(log.open_transactions().is_empty());
}

#[test]
fn non_transactional_batch_during_txn_is_invalid_txn_state() {
    let root = tempfile::tempdir().unwrap();
    let log = create(root.path(), topic_config(1 << 20));
    log.append_as_leader(&txn_batch(1, 1, 3, 0, 0), 0).unwrap();
    let err = log
        .append_as_leader(&batch(2, 1, Some((3, 0, 1)), false), 0)
        .unwrap_err();
    assert_eq!(err.error_code(), INVALID_TXN_STATE);
    assert_eq!(log.log_end_offset(), 1);
    // A retry of the stored transactional batch is still a duplicate.
    let dup = log.append_as_leader(&txn_batch(1, 1, 3, 0, 0), 0).unwrap();
    assert!(dup.duplicate);
    log.append_marker(&marker(3, 0, true), 0).unwrap();
    // After the commit the producer may write idempotently again.
    log.append_as_leader(&batch(2, 1, Some((3, 0, 1)), false), 0)
        .unwrap();
    // Other producers are never affected.
    log.append_as_leader(&txn_batch(3, 1, 4, 0, 0), 0).unwrap();
    log.append_as_leader(&batch(4, 1, None, false), 0).unwrap();
    log.append_as_leader(&batch(5, 1, Some((6, 0, 0)), false), 0)
        .unwrap();
}

#[test]
fn verification_guard_refuses_appends_after_the_txn_ended() {
    let root = tempfile::tempdir().unwrap();
    let log = create(root.path(), topic_config(1 << 20));
    // Verified, nothing happened meanwhile: the batch opens the transaction.
    let guard = log.txn_verification_guard();
    log.append_as_leader_verified(&txn_batch(1, 1, 1, 0, 0), 0, guard)
        .unwrap();
    // Ongoing at that epoch: later guards are irrelevant.
    log.append_marker(&marker(2, 0, true), 0).unwrap();
    log.append_as_leader_verified(&txn_batch(2, 1, 1, 0, 1), 0, guard)
        .unwrap();
    // Verified, then the transaction is aborted before the append lands.
    let guard = log.txn_verification_guard();
    log.append_marker(&marker(1, 0, false), 0).unwrap();
    let err = log
        .append_as_leader_verified(&txn_batch(3, 1, 1, 0, 2), 0, guard)
        .unwrap_err();
    assert_eq!(err.error_code(), INVALID_TXN_STATE);
    assert!(log.open_transactions().is_empty(), "no hanging transaction");
    // Another producer's marker does not affect it; a fresh guard passes.
    let guard = log.txn_verification_guard();
    log.append_marker(&marker(3, 0, false), 0).unwrap();
    log.append_as_leader_verified(&txn_batch(3, 1, 1, 0, 2), 0, guard)
        .unwrap();
    assert_eq!(log.open_transactions().len(), 1);
}

#[test]
fn coordinator_batches_without_sequence_open_and_close_txns() {
    // TxnOffsetCommit records in __consumer_offsets: transactional, with a
    // producer id and epoch, baseSequence -1.
    let root = tempfile::tempdir().unwrap();
    let log = create(root.path(), topic_config(1 << 20));
    let b = batch(1, 1, Some((11, 2, -1)), true);
    assert_eq!(BatchHeader::parse(&b).unwrap().base_sequence, -1);
    log.append_as_leader(&b, 0).unwrap();
    log.append_as_leader(&b, 0).unwrap();
    assert_eq!(log.open_transactions(), vec![(11, 2, 0)]);
    assert_eq!(log.last_stable_offset(), 0);
    let old = batch(2, 1, Some((11, 1, -1)), true);
    assert_eq!(
        log.append_as_leader(&old, 0).unwrap_err().error_code(),
        INVALID_PRODUCER_EPOCH
    );
    log.append_marker(&marker(11, 2, false), 0).unwrap();
    assert_eq!(all_index_entries(&log), vec![abort_entry(11, 0, 2, 3)]);
    assert_eq!(log.last_stable_offset(), 3);
}

#[test]
fn lso_with_interleaved_producers() {
    let root = tempfile::tempdir().unwrap();
    let log = create(root.path(), topic_config(1 << 20));
    let lso = |l: &PartitionLog| l.last_stable_offset();
    log.append_as_leader(&batch(1, 2, None, false), 0).unwrap(); // 0-1
    assert_eq!(lso(&log), 2);
    log.append_as_leader(&txn_batch(2, 1, 1, 0, 0), 0).unwrap(); // 2 p1
    log.append_as_leader(&txn_batch(3, 1, 2, 0, 0), 0).unwrap(); // 3 p2
    log.append_as_leader(&batch(4, 1, None, false), 0).unwrap(); // 4
    log.append_as_leader(&txn_batch(5, 1, 1, 0, 1), 0).unwrap(); // 5 p1
    assert_eq!(lso(&log), 2);
    log.append_marker(&marker(2, 0, true), 0).unwrap(); // 6 p2 commit
    assert_eq!(lso(&log), 2, "p1 still open from 2");
    log.append_as_leader(&txn_batch(6, 1, 3, 0, 0), 0).unwrap(); // 7 p3
    log.append_marker(&marker(1, 0, false), 0).unwrap(); // 8 p1 abort
    assert_eq!(lso(&log), 7, "p3 open from 7");
    assert_eq!(all_index_entries(&log), vec![abort_entry(1, 2, 8, 7)]);
    // Below the LSO: 0-1, p2's 3, the plain 4; p1's 2 and 5 aborted.
    let mut want = keys(1, 0, 2);
    want.extend(keys(3, 3, 1));
    want.extend(keys(4, 4, 1));
    assert_eq!(consume_committed(&log, 0, 1 << 20), want);
    log.append_marker(&marker(3, 0, true), 0).unwrap(); // 9
    assert_eq!(lso(&log), 10);
    want.extend(keys(6, 7, 1));
    assert_eq!(consume_committed(&log, 0, 1 << 20), want);
    // Small fetches give the same result.
    for max in [1, 100, 200] {
        assert_eq!(consume_committed(&log, 0, max), want);
    }
    // An offset between the LSO and the log end reads nothing; past the end
    // is out of range.
    log.append_as_leader(&txn_batch(7, 1, 4, 0, 0), 0).unwrap(); // 10
    log.append_as_leader(&batch(8, 1, None, false), 0).unwrap(); // 11
    let r = log
        .read_isolated(11, 1 << 20, Isolation::ReadCommitted)
        .unwrap();
    assert!(r.records.is_empty());
    assert_eq!((r.last_stable_offset, r.high_watermark), (10, 12));
    assert!(log
        .read_isolated(13, 1 << 20, Isolation::ReadCommitted)
        .is_err());
}

#[test]
fn read_committed_across_segment_rolls() {
    let root = tempfile::tempdir().unwrap();
    let log = create(root.path(), topic_config(400));
    // Producer 1's aborted transaction spans several segments, interleaved
    // with plain records; the abort marker lands in a later segment.
    let mut want = Vec::new();
    let mut tag = 0;
    let mut seq = 0;
    for _ in 0..6 {
        tag += 1;
        log.append_as_leader(&txn_batch(tag, 2, 1, 0, seq), 0)
            .unwrap();
        seq += 2;
        tag += 1;
        let a = log
            .append_as_leader(&batch(tag, 1, None, false), 0)
            .unwrap();
        want.extend(keys(tag, a.base_offset, 1));
    }
    assert!(log.segment_count() >= 3, "{} segments", log.segment_count());
    // A committed one too, and then the abort.
    tag += 1;
    let c = log
        .append_as_leader(&txn_batch(tag, 2, 2, 0, 0), 0)
        .unwrap();
    want.extend(keys(tag, c.base_offset, 2));
    log.append_marker(&marker(2, 0, true), 0).unwrap();
    let m = log.append_marker(&marker(1, 0, false), 0).unwrap();
    let index = log.aborted_index();
    let (base, entries) = index.last().unwrap();
    assert!(*base <= m.base_offset);
    assert_eq!(
        entries,
        &vec![abort_entry(1, 0, m.base_offset, m.base_offset + 1)]
    );
    want.sort();
    for max in [1, 90, 300, 1 << 20] {
        let mut got = consume_committed(&log, 0, max);
        got.sort();
        assert_eq!(got, want, "max_bytes {max}");
    }
    // A fetch from the middle of the aborted transaction still learns of it.
    let r = log
        .read_isolated(4, 1 << 20, Isolation::ReadCommitted)
        .unwrap();
    assert_eq!(r.aborted.unwrap(), entries.clone());
}

#[test]
fn recovery_after_clean_close_keeps_open_txns_and_index() {
    let root = tempfile::tempdir().unwrap();
    let config = topic_config(300);
    let log = create(root.path(), config.clone());
    log.append_as_leader(&txn_batch(1, 2, 1, 0, 0), 0).unwrap(); // 0-1
    log.append_marker(&marker(1, 0, false), 0).unwrap(); // 2
    log.append_as_leader(&txn_batch(2, 2, 2, 5, 0), 0).unwrap(); // 3-4
    let mut m = marker(2, 5, false);
    m.coordinator_epoch = 3;
    log.append_as_leader(&txn_batch(3, 2, 1, 0, 2), 0).unwrap(); // 5-6
    log.append_marker(&m, 0).unwrap(); // 7
    log.append_as_leader(&txn_batch(4, 2, 2, 5, 2), 0).unwrap(); // 8-9 p2 again
    let index = all_index_entries(&log);
    assert_eq!(
        index,
        vec![abort_entry(1, 0, 2, 3), abort_entry(2, 3, 7, 5)]
    );
    assert_eq!(log.open_transactions(), vec![(1, 0, 5), (2, 5, 8)]);
    assert_eq!(log.last_stable_offset(), 5);
    let producers = log.producers();
    let p2 = &producers[1].1;
    assert_eq!(producers[1].0, 2);
    assert_eq!(
        (p2.epoch, p2.coordinator_epoch, p2.current_txn_first_offset),
        (5, 3, Some(8))
    );
    assert_eq!(p2.batches.back().map(|b| b.last_seq), Some(3));
    log.close().unwrap();
    drop(log);
    let log = open(root.path(), config, true, None, None);
    assert_eq!(all_index_entries(&log), index);
    assert_eq!(log.open_transactions(), vec![(1, 0, 5), (2, 5, 8)]);
    // What DescribeProducers reports survives (only the newest batch is in
    // a snapshot).
    let described = |ps: Vec<(i64, super::producer_state::ProducerEntry)>| {
        ps.into_iter()
            .map(|(id, e)| {
                let last_seq = e.batches.back().map(|b| b.last_seq);
                (
                    id,
                    e.epoch,
                    last_seq,
                    e.last_timestamp,
                    e.coordinator_epoch,
                    e.current_txn_first_offset,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(described(log.producers()), described(producers));
    assert_eq!(log.last_stable_offset(), 5);
    assert!(!log.needs_txn_verification(2, 5));
    // Fencing state survived: old coordinator epoch and producer epoch.
    let mut old = marker(2, 5, true);
    old.coordinator_epoch = 2;
    assert_eq!(
        log.append_marker(&old, 0).unwrap_err().error_code(),
        COORDINATOR_FENCED
    );
    assert_eq!(
        log.append_marker(&marker(2, 4, true), 0)
            .unwrap_err()
            .error_code(),
        INVALID_PRODUCER_EPOCH
    );
    log.append_marker(&marker(1, 0, true), 0).unwrap();
    assert_eq!(log.last_stable_offset(), 8);
    assert_eq!(
        consume_committed(&log, 0, 1 << 20),
        keys(3, 5, 2),
        "only producer 1's second transaction committed"
    );
}

fn txnindex_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".txnindex"))
        .collect();
    v.sort();
    v
}

fn tear_last_segment(dir: &Path, keep: impl Fn(u64) -> u64) {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    let last = logs.last().unwrap();
    let len = std::fs::metadata(last).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(keep(len))
        .unwrap();
}

#[test]
fn crash_rebuilds_txn_state_and_lost_index_entries() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("t-0");
    let config = topic_config(350);
    let log = create(root.path(), config.clone());
    let mut seq = [0i32; 3];
    let mut tag = 0;
    let mut append = |log: &PartitionLog, p: usize| {
        tag += 1;
        let a = log
            .append_as_leader(&txn_batch(tag, 2, p as i64, 0, seq[p]), 0)
            .unwrap();
        seq[p] += 2;
        a.base_offset
    };
    let first1 = append(&log, 1);
    append(&log, 2);
    append(&log, 1);
    let m1 = log
        .append_marker(&marker(1, 0, false), 0)
        .unwrap()
        .base_offset;
    let first1b = append(&log, 1);
    append(&log, 2);
    let m2 = log
        .append_marker(&marker(2, 0, false), 0)
        .unwrap()
        .base_offset;
    append(&log, 1);
    let want_index = all_index_entries(&log);
    assert_eq!(
        want_index,
        vec![
            abort_entry(1, first1, m1, 2),
            abort_entry(2, 2, m2, first1b)
        ]
    );
    assert!(log.segment_count() >= 3);
    let end = log.log_end_offset();
    // Crash, losing every transaction index (they were never fsynced).
    drop(log);
    for f in txnindex_files(&dir) {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
    let log = open(root.path(), config.clone(), false, None, None);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(all_index_entries(&log), want_index);
    assert_eq!(log.open_transactions(), vec![(1, 0, first1b)]);
    assert_eq!(log.last_stable_offset(), first1b);
    // Again, this time tearing the last batch (producer 1's last append).
    drop(log);
    tear_last_segment(&dir, |len| len - 1);
    let log = open(root.path(), config.clone(), false, None, None);
    assert_eq!(log.log_end_offset(), end - 2);
    assert_eq!(all_index_entries(&log), want_index);
    assert_eq!(log.open_transactions(), vec![(1, 0, first1b)]);
    // Tear into the abort marker of producer 2: its transaction is open
    // again and its index entry is gone.
    drop(log);
    tear_last_segment(&dir, |len| len.saturating_sub(1));
    let log = open(root.path(), config.clone(), false, None, None);
    assert!(log.log_end_offset() <= m2);
    let left: Vec<_> = want_index
        .iter()
        .copied()
        .filter(|t| t.last_offset < log.log_end_offset())
        .collect();
    assert_eq!(all_index_entries(&log), left);
    if log.log_end_offset() == m2 {
        assert_eq!(log.open_transactions(), vec![(1, 0, first1b), (2, 0, 2)]);
        assert_eq!(log.last_stable_offset(), 2);
        // The coordinator retries the marker.
        log.append_marker(&marker(2, 0, false), 0).unwrap();
        assert_eq!(all_index_entries(&log), want_index);
    }
}

#[test]
fn flushed_segments_keep_their_index_after_crash() {
    let root = tempfile::tempdir().unwrap();
    let config = topic_config(300);
    let log = create(root.path(), config.clone());
    log.append_as_leader(&txn_batch(1, 3, 1, 0, 0), 0).unwrap();
    log.append_marker(&marker(1, 0, false), 0).unwrap();
    for tag in 2..8 {
        log.append_as_leader(&batch(tag, 3, None, false), 0)
            .unwrap();
    }
    log.append_as_leader(&txn_batch(9, 1, 1, 0, 3), 0).unwrap();
    log.flush().unwrap();
    let rp = log.recovery_point();
    assert_eq!(rp, log.log_end_offset());
    let index = all_index_entries(&log);
    assert_eq!(index, vec![abort_entry(1, 0, 3, 4)]);
    drop(log);
    tear_last_segment(&root.path().join("t-0"), |len| len - 5);
    let log = open(root.path(), config, false, Some(rp), None);
    assert_eq!(all_index_entries(&log), index);
    assert!(log.open_transactions().is_empty(), "the torn batch is gone");
}

#[test]
fn retention_and_delete_records_delete_txnindex_files() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("t-0");
    let mut config = topic_config(250);
    config.retention_ms = -1;
    let log = create(root.path(), config.clone());
    let mut seq = 0;
    for tag in 0..6 {
        log.append_as_leader(&txn_batch(tag, 2, 1, 0, seq), 0)
            .unwrap();
        seq += 2;
        log.append_marker(&marker(1, 0, false), 0).unwrap();
    }
    // Producer 2 opens a transaction early and stays open.
    log.append_as_leader(&txn_batch(50, 1, 2, 0, 0), 0).unwrap();
    let open_at = log.log_end_offset() - 1;
    for tag in 6..10 {
        log.append_as_leader(&batch(tag, 2, None, false), 0)
            .unwrap();
    }
    let files = txnindex_files(&dir);
    assert!(files.len() >= 3, "{files:?}");
    // DeleteRecords past the first aborts.
    let bases = log.segment_bases();
    log.delete_records_before(bases[2]).unwrap();
    let after = txnindex_files(&dir);
    assert_eq!(after.len(), files.len() - 2, "{after:?}");
    for b in &bases[..2] {
        assert!(!dir.join(super::segment::file_name(*b, "txnindex")).exists());
        assert!(!dir.join(super::segment::file_name(*b, "log")).exists());
    }
    // Retention by size deletes the rest but the active segment; producer 2
    // stays tracked with its open transaction, the LSO at the log start.
    let mut c = config.clone();
    c.retention_bytes = 0;
    log.set_config(c);
    assert!(log.apply_retention(0).unwrap() > 0);
    assert_eq!(log.segment_count(), 1);
    let active = log.segment_bases()[0];
    assert!(active > open_at);
    let left = txnindex_files(&dir);
    assert!(
        left.iter().all(|f| f.starts_with(&format!("{active:020}"))),
        "{left:?}"
    );
    assert_eq!(log.open_transactions(), vec![(2, 0, open_at)]);
    assert_eq!(log.last_stable_offset(), log.log_start_offset());
    assert!(!log.needs_txn_verification(2, 0));
    // Also across a restart (snapshot keeps the open transaction).
    log.close().unwrap();
    let start = log.log_start_offset();
    drop(log);
    let log = open(root.path(), config.clone(), true, None, Some(start));
    assert_eq!(log.open_transactions(), vec![(2, 0, open_at)]);
    assert_eq!(log.last_stable_offset(), start);
    log.append_marker(&marker(2, 0, true), 0).unwrap();
    assert_eq!(log.last_stable_offset(), log.log_end_offset());
}

// ---------------------------------------------------------------------------
// Model-based property test.

const PRODUCERS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Plain {
        count: usize,
    },
    /// A transactional batch of producer `p`.
    Txn {
        p: usize,
        count: usize,
    },
    /// An idempotent non-transactional batch of producer `p`.
    Idempotent {
        p: usize,
        count: usize,
    },
    /// COMMIT/ABORT marker for producer `p`; `bump`: with epoch + 1, as the
    /// coordinator aborts a timed-out transaction.
    End {
        p: usize,
        commit: bool,
        bump: bool,
    },
    Roll,
    Read {
        max_bytes: usize,
        at: u8,
    },
    CleanRestart,
    Crash {
        keep_fraction: u8,
        lose_indexes: bool,
    },
    FlushThenCrash {
        keep_fraction: u8,
    },
    DeleteRecords {
        at: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1usize..4).prop_map(|count| Op::Plain { count }),
        6 => (0..PRODUCERS, 1usize..4).prop_map(|(p, count)| Op::Txn { p, count }),
        1 => (0..PRODUCERS, 1usize..3).prop_map(|(p, count)| Op::Idempotent { p, count }),
        4 => (0..PRODUCERS, any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(p, commit, bump)| Op::End { p, commit, bump }),
        1 => Just(Op::Roll),
        2 => (1usize..600, any::<u8>()).prop_map(|(max_bytes, at)| Op::Read { max_bytes, at }),
        1 => Just(Op::CleanRestart),
        1 => (any::<u8>(), any::<bool>())
            .prop_map(|(keep_fraction, lose_indexes)| Op::Crash { keep_fraction, lose_indexes }),
        1 => any::<u8>().prop_map(|keep_fraction| Op::FlushThenCrash { keep_fraction }),
        1 => any::<u8>().prop_map(|at| Op::DeleteRecords { at }),
    ]
}

/// One stored batch in the model.
#[derive(Debug, Clone)]
enum MBatch {
    Data {
        base: i64,
        tag: u32,
        count: usize,
        pid: i64,
        epoch: i16,
        first_seq: i32,
        txn: bool,
    },
    Marker {
        offset: i64,
        pid: i64,
        epoch: i16,
        commit: bool,
    },
}

impl MBatch {
    fn last(&self) -> i64 {
        match self {
            MBatch::Data { base, count, .. } => base + *count as i64 - 1,
            MBatch::Marker { offset, .. } => *offset,
        }
    }
}

#[derive(Default)]
struct Model {
    batches: Vec<MBatch>,
    log_start: i64,
}

/// What the model's log implies (a replay, as recovery does).
#[derive(Default, Debug)]
struct Derived {
    end: i64,
    /// pid → (epoch, first offset) of open transactions.
    open: BTreeMap<i64, (i16, i64)>,
    /// pid → (epoch, next sequence).
    producers: BTreeMap<i64, (i16, i32)>,
    /// Records a READ_COMMITTED reader may see (plain or committed), by
    /// offset; records of open transactions are not in it.
    visible: BTreeMap<i64, String>,
    aborted: Vec<AbortedTxn>,
}

impl Model {
    fn derive(&self) -> Derived {
        let mut d = Derived {
            end: self.log_start,
            ..Default::default()
        };
        // Records of open transactions per pid.
        let mut pending: BTreeMap<i64, Vec<(i64, String)>> = BTreeMap::new();
        for b in &self.batches {
            d.end = b.last() + 1;
            match *b {
                MBatch::Data {
                    base,
                    tag,
                    count,
                    pid,
                    epoch,
                    first_seq,
                    txn,
                } => {
                    let recs = keys(tag, base, count);
                    if pid >= 0 {
                        d.producers.insert(pid, (epoch, first_seq + count as i32));
                    }
                    if txn {
                        d.open.entry(pid).or_insert((epoch, base)).0 = epoch;
                        pending.entry(pid).or_default().extend(recs);
                    } else {
                        d.visible.extend(recs);
                    }
                }
                MBatch::Marker {
                    offset,
                    pid,
                    epoch,
                    commit,
                } => {
                    let next_seq = match d.producers.get(&pid) {
                        Some(&(e, s)) if e == epoch => s,
                        _ => 0,
                    };
                    d.producers.insert(pid, (epoch, next_seq));
                    if let Some((_, first)) = d.open.remove(&pid) {
                        let recs = pending.remove(&pid).unwrap_or_default();
                        if commit {
                            d.visible.extend(recs);
                        } else {
                            let lso = d.open.values().map(|&(_, f)| f).min().unwrap_or(offset + 1);
                            d.aborted.push(abort_entry(pid, first, offset, lso));
                        }
                    }
                }
            }
        }
        d
    }

    fn lso(&self, d: &Derived) -> i64 {
        match d.open.values().map(|&(_, f)| f).min() {
            Some(first) => first.max(self.log_start).min(d.end),
            None => d.end,
        }
    }

    /// Drops batches at or after `end` (a recovery truncation).
    fn truncate(&mut self, end: i64) {
        self.batches.retain(|b| b.last() < end);
        if end < self.log_start {
            self.log_start = end;
        }
    }
}

fn pid_of(p: usize) -> i64 {
    100 + p as i64
}

fn check_state(log: &PartitionLog, model: &Model) -> Result<(), TestCaseError> {
    let d = model.derive();
    prop_assert_eq!(log.log_end_offset(), d.end);
    prop_assert_eq!(log.log_start_offset(), model.log_start);
    prop_assert_eq!(log.last_stable_offset(), model.lso(&d));
    let open: Vec<(i64, i64)> = log
        .open_transactions()
        .into_iter()
        .map(|(pid, _, first)| (pid, first))
        .collect();
    let want_open: Vec<(i64, i64)> = d.open.iter().map(|(&pid, &(_, f))| (pid, f)).collect();
    prop_assert_eq!(open, want_open);
    // Index entries of the segments still there (the first one may hold
    // entries below the log start).
    let first_base = log.segment_bases()[0];
    let want_index: Vec<AbortedTxn> = d
        .aborted
        .iter()
        .copied()
        .filter(|t| t.last_offset >= first_base)
        .collect();
    prop_assert_eq!(all_index_entries(log), want_index);
    Ok(())
}

fn check_reads(
    log: &PartitionLog,
    model: &Model,
    max_bytes: usize,
    from: i64,
) -> Result<(), TestCaseError> {
    let d = model.derive();
    let lso = model.lso(&d);
    let want: Vec<(i64, String)> = d
        .visible
        .range(from..lso.max(from))
        .map(|(o, k)| (*o, k.clone()))
        .collect();
    let got = consume_committed(log, from, max_bytes);
    prop_assert_eq!(got, want, "READ_COMMITTED from {} (lso {})", from, lso);
    // READ_UNCOMMITTED: every batch, markers included.
    let all = consume_all(log, from, max_bytes);
    let want_all: Vec<(i64, i64, Option<bool>)> = model
        .batches
        .iter()
        .filter(|b| b.last() >= from)
        .map(|b| match b {
            MBatch::Data { base, .. } => (*base, b.last(), None),
            MBatch::Marker { offset, commit, .. } => (*offset, *offset, Some(*commit)),
        })
        .collect();
    let got_all: Vec<(i64, i64, Option<bool>)> =
        all.iter().map(|f| (f.base, f.last, f.control)).collect();
    prop_assert_eq!(got_all, want_all);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, .. ProptestConfig::default() })]

    #[test]
    fn transactions_match_model(ops in prop::collection::vec(op(), 1..70), segment_bytes in 300i32..1500) {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("t-0");
        let config = topic_config(segment_bytes);
        let mut log = create(root.path(), config.clone());
        let mut model = Model::default();
        let mut tag = 0u32;
        // Epoch each producer uses for its next batch (a bump is remembered
        // even if a crash later cuts the bumping marker off).
        let mut epochs = [0i16; PRODUCERS];
        for op in ops {
            let d = model.derive();
            match op {
                Op::Plain { count } => {
                    tag += 1;
                    let a = log.append_as_leader(&batch(tag, count, None, false), 0).unwrap();
                    prop_assert_eq!(a.base_offset, d.end);
                    model.batches.push(MBatch::Data { base: a.base_offset, tag, count, pid: -1, epoch: -1, first_seq: -1, txn: false });
                }
                Op::Txn { p, count } | Op::Idempotent { p, count } => {
                    let txn = matches!(op, Op::Txn { .. });
                    let pid = pid_of(p);
                    let (epoch, seq) = match d.producers.get(&pid) {
                        Some(&(e, s)) if e >= epochs[p] => (e, s),
                        _ => (epochs[p], 0),
                    };
                    tag += 1;
                    let res = log.append_as_leader(&batch(tag, count, Some((pid, epoch, seq)), txn), 0);
                    if !txn && d.open.contains_key(&pid) {
                        prop_assert_eq!(res.unwrap_err().error_code(), INVALID_TXN_STATE);
                        continue;
                    }
                    let a = res.unwrap();
                    prop_assert!(!a.duplicate);
                    prop_assert_eq!(a.base_offset, d.end);
                    model.batches.push(MBatch::Data { base: a.base_offset, tag, count, pid, epoch, first_seq: seq, txn });
                }
                Op::End { p, commit, bump } => {
                    let pid = pid_of(p);
                    let current = d.producers.get(&pid).map_or(epochs[p], |&(e, _)| e.max(epochs[p]));
                    let epoch = if bump { current + 1 } else { current };
                    epochs[p] = epoch;
                    let a = log.append_marker(&marker(pid, epoch, commit), 0).unwrap();
                    prop_assert_eq!(a.base_offset, d.end);
                    model.batches.push(MBatch::Marker { offset: a.base_offset, pid, epoch, commit });
                    // A lower epoch is fenced and writes nothing.
                    if epoch > 0 {
                        let err = log.append_marker(&marker(pid, epoch - 1, true), 0).unwrap_err();
                        prop_assert_eq!(err.error_code(), INVALID_PRODUCER_EPOCH);
                    }
                }
                Op::Roll => log.roll_now(0).unwrap(),
                Op::Read { max_bytes, at } => {
                    let span = d.end - model.log_start + 1;
                    let from = model.log_start + at as i64 % span;
                    check_reads(&log, &model, max_bytes, from)?;
                }
                Op::CleanRestart => {
                    log.close().unwrap();
                    let start = log.log_start_offset();
                    drop(log);
                    log = open(root.path(), config.clone(), true, None, Some(start));
                }
                Op::Crash { keep_fraction, lose_indexes } => {
                    // The recovery point a checkpoint would hold: segments
                    // below it were fsynced (indexes included) and are not
                    // re-validated; the others may lose their index.
                    let start = log.log_start_offset();
                    let rp = log.recovery_point();
                    let bases = log.segment_bases();
                    let recovered_from = bases[bases.partition_point(|&b| b <= rp).saturating_sub(1)];
                    drop(log);
                    tear_last_segment(&dir, |len| len * keep_fraction as u64 / 255);
                    if lose_indexes {
                        for f in txnindex_files(&dir) {
                            let base: i64 = f[..20].parse().unwrap();
                            if base >= recovered_from {
                                std::fs::remove_file(dir.join(f)).unwrap();
                            }
                        }
                    }
                    log = open(root.path(), config.clone(), false, Some(rp), Some(start));
                    model.truncate(log.log_end_offset());
                }
                Op::FlushThenCrash { keep_fraction } => {
                    log.flush().unwrap();
                    let rp = log.recovery_point();
                    let start = log.log_start_offset();
                    drop(log);
                    tear_last_segment(&dir, |len| len * keep_fraction as u64 / 255);
                    log = open(root.path(), config.clone(), false, Some(rp), Some(start));
                    model.truncate(log.log_end_offset());
                }
                Op::DeleteRecords { at } => {
                    let span = d.end - model.log_start + 1;
                    let target = model.log_start + at as i64 % span;
                    prop_assert_eq!(log.delete_records_before(target).unwrap(), target);
                    // Batches below it stay in the model: the producer and
                    // transaction state they created lives on.
                    model.log_start = target;
                }
            }
            check_state(&log, &model)?;
        }
        let start = model.log_start;
        check_reads(&log, &model, 1 << 20, start)?;
        check_reads(&log, &model, 150, start)?;
    }
}
