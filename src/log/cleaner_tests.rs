//! Log compaction: unit tests of each cleaner rule and a property test of
//! the cleaned log against a model, with restarts and crashes at every step
//! of a cleaning.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use bytes::Bytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use proptest::prelude::*;
use uuid::Uuid;

use super::batch::{BatchHeader, BatchIter};
use super::cleaner::{self, Cleaner, CleanerConfig, CrashPoint};
use super::control::Marker;
use super::partition::{now_ms, OpenOptions as LogOpen, PartitionLog};
use super::tests::{record, topic_config};
use crate::config::{BrokerConfig, TopicConfig};

const HOUR: i64 = 3_600_000;

fn compact_config(segment_bytes: i32) -> TopicConfig {
    let mut c = topic_config(segment_bytes);
    c.cleanup_policy = "compact".into();
    c.index_interval_bytes = 128;
    c.delete_retention_ms = HOUR;
    c.min_cleanable_dirty_ratio = 0.5;
    c.min_compaction_lag_ms = 0;
    c
}

/// One batch of `(key, value)` records (`None` value: a tombstone).
fn kv_batch(
    recs: &[(u8, Option<u16>)],
    producer: Option<(i64, i16, i32)>,
    transactional: bool,
    compression: Compression,
) -> Bytes {
    let records: Vec<Record> = recs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            let key = Bytes::from(format!("k{k}"));
            let value = v.map(|v| Bytes::from(format!("value-{v}")));
            Record {
                transactional,
                ..record(i, 1_000 + i as i64, producer, key, value)
            }
        })
        .collect();
    crate::coordinator::codec::tests::raw_batch(&records, compression)
}

fn marker(pid: i64, commit: bool) -> Marker {
    super::tests::marker(pid, 0, commit)
}

fn open(root: &Path, config: TopicConfig, clean: bool) -> PartitionLog {
    open_at(root, config, clean, Some(0))
}

/// Opens with a recovery point: an unclean start re-validates the segments
/// from the one holding it (`Some(0)`: every segment).
fn open_at(root: &Path, config: TopicConfig, clean: bool, rp: Option<i64>) -> PartitionLog {
    PartitionLog::open(
        root,
        "t",
        0,
        Uuid::nil(),
        config,
        LogOpen {
            recovery_point: rp,
            log_start_offset: None,
            clean_shutdown: clean,
            now_ms: now_ms(),
        },
    )
    .expect("open")
}

fn create(root: &Path, config: TopicConfig) -> PartitionLog {
    PartitionLog::create(root, "t", 0, Uuid::nil(), config, now_ms()).unwrap()
}

/// A record as read back: data `(key, value)` or a marker.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Data(String, Option<String>),
    Marker(bool),
}

/// Reads the whole log from its start as a client would; checks offsets
/// strictly increase. Returns the records and the batch headers.
fn read_all(log: &PartitionLog) -> (Vec<(i64, Item)>, Vec<BatchHeader>) {
    let mut out: Vec<(i64, Item)> = Vec::new();
    let mut headers = Vec::new();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let r = log.read(offset, 4096).expect("read");
        if r.records.is_empty() {
            // Everything left below the end was compacted away (the model
            // comparison catches anything missing).
            break;
        }
        let mut last_base = -1;
        for (pos, h) in BatchIter::new(&r.records) {
            assert!(h.base_offset > last_base);
            last_base = h.base_offset;
            let mut one = r.records.slice(pos..pos + h.total_len());
            assert_eq!(
                crc32c::crc32c(&one[21..]),
                h.crc,
                "batch at {} has a bad CRC",
                h.base_offset
            );
            if h.last_offset() < offset {
                continue;
            }
            if h.records_count > 0 {
                let set = RecordBatchDecoder::decode(&mut one).expect("stored batches decode");
                for rec in set.records {
                    if rec.offset < offset {
                        continue;
                    }
                    assert!(rec.offset <= h.last_offset());
                    let item = if h.is_control() {
                        let key = rec.key.clone().unwrap();
                        Item::Marker(i16::from_be_bytes([key[2], key[3]]) == 1)
                    } else {
                        Item::Data(
                            String::from_utf8(rec.key.unwrap().to_vec()).unwrap(),
                            rec.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                        )
                    };
                    if let Some((prev, _)) = out.last() {
                        assert!(
                            rec.offset > *prev,
                            "offsets not increasing: {prev} then {}",
                            rec.offset
                        );
                    }
                    out.push((rec.offset, item));
                }
            }
            headers.push(h);
            offset = h.last_offset() + 1;
        }
    }
    (out, headers)
}

fn data(k: u8, v: Option<u16>) -> Item {
    Item::Data(format!("k{k}"), v.map(|v| format!("value-{v}")))
}

/// Appends values `0..n` of key 1, a batch each, and rolls: a sealed
/// segment in which only the last record is live.
fn versions_of_one_key(log: &PartitionLog, n: u16) {
    append_singles(log, n, |_| 1);
    log.roll_now(now_ms()).unwrap();
}

/// Appends values `0..n`, a batch each, value `i` under key `key(i)`.
fn append_singles(log: &PartitionLog, n: u16, key: impl Fn(u16) -> u8) {
    for i in 0..n {
        log.append_as_leader(
            &kv_batch(&[(key(i), Some(i))], None, false, Compression::None),
            0,
        )
        .unwrap();
    }
}

/// Each producer's id, epoch and last batch (first and last sequence,
/// first and last offset): what cleaning must not change.
fn last_batches(log: &PartitionLog) -> Vec<(i64, i16, i32, i32, i64, i64)> {
    log.producers()
        .into_iter()
        .map(|(id, e)| {
            let b = e.batches.back().copied().unwrap();
            (
                id,
                e.epoch,
                b.first_seq,
                b.last_seq,
                b.first_offset,
                b.last_offset,
            )
        })
        .collect()
}

fn cleaner_at(root: &Path) -> Cleaner {
    let c = Cleaner::new(root);
    // A read buffer smaller than most segments: batches straddle reads.
    *c.config.lock() = CleanerConfig {
        io_buffer_size: 256,
        ..CleanerConfig::default()
    };
    c
}

#[test]
fn keeps_latest_per_key_and_offsets_and_never_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = create(dir.path(), compact_config(300));
    append_singles(&log, 20, |i| (i % 3) as u8);
    let before = read_all(&log).0;
    assert_eq!(before.len(), 20);
    let cleaner = cleaner_at(dir.path());
    let stats = cleaner.clean(&log, now_ms(), None).unwrap();
    let active_base = *log.segment_bases().last().unwrap();
    assert_eq!(stats.new_first_dirty, Some(active_base));
    assert!(stats.segments_swapped > 0);
    let after = read_all(&log).0;
    // Below the active segment: only the latest of each key.
    let key = |item: &Item| match item {
        Item::Data(k, _) => k.clone(),
        Item::Marker(_) => unreachable!(),
    };
    let expected: Vec<(i64, Item)> = before
        .iter()
        .filter(|(o, item)| {
            *o >= active_base
                || !before
                    .iter()
                    .any(|(o2, i2)| o2 > o && *o2 < active_base && key(i2) == key(item))
        })
        .cloned()
        .collect();
    assert_eq!(after, expected);
    assert!(after.len() < before.len());
    // The active segment is untouched.
    assert!(after.iter().any(|(o, _)| *o >= active_base));
    let s = cleaner.metrics.snapshot();
    assert_eq!(s.cleanings, 1);
    assert!(s.records_removed > 0 && s.bytes_read > s.bytes_written);
    // A second pass with nothing new does nothing.
    let again = cleaner.clean(&log, now_ms(), None).unwrap();
    assert_eq!(again.new_first_dirty, None);
    // Appends after cleaning continue at the log end; a restart reads the same.
    log.append_as_leader(
        &kv_batch(&[(9, Some(99))], None, false, Compression::None),
        0,
    )
    .unwrap();
    let now = read_all(&log).0;
    log.close().unwrap();
    drop(log);
    let log = open(dir.path(), compact_config(300), true);
    assert_eq!(read_all(&log).0, now);
    drop(log);
    let log = open(dir.path(), compact_config(300), false);
    assert_eq!(read_all(&log).0, now);
}

/// The header of the stored batch holding `offset`.
fn header_at(log: &PartitionLog, offset: i64) -> BatchHeader {
    read_all(log)
        .1
        .into_iter()
        .find(|h| h.base_offset <= offset && offset <= h.last_offset())
        .unwrap_or_else(|| panic!("no batch holds offset {offset}"))
}

#[test]
fn tombstones_stay_until_the_delete_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let log = create(dir.path(), compact_config(200));
    log.append_as_leader(
        &kv_batch(
            &[(1, Some(1)), (2, Some(2))],
            None,
            false,
            Compression::None,
        ),
        0,
    )
    .unwrap();
    log.append_as_leader(&kv_batch(&[(1, None)], None, false, Compression::None), 0)
        .unwrap();
    log.roll_now(now_ms()).unwrap();
    log.append_as_leader(
        &kv_batch(&[(3, Some(3))], None, false, Compression::None),
        0,
    )
    .unwrap();
    // The first cleaning happens long after the segment was written: the
    // tombstone still stays, its batch gets a horizon one
    // delete.retention.ms after this pass.
    let first = now_ms() + 10 * HOUR;
    let cleaner = cleaner_at(dir.path());
    cleaner.clean(&log, first, None).unwrap();
    assert_eq!(
        read_all(&log).0,
        vec![
            (1, data(2, Some(2))),
            (2, data(1, None)),
            (3, data(3, Some(3)))
        ]
    );
    let h = header_at(&log, 2);
    assert_eq!(h.attributes & 0x40, 0x40, "delete horizon flag");
    assert_eq!(h.base_timestamp, first + HOUR);
    assert_eq!(h.max_timestamp, 1_000, "max timestamp unchanged");
    assert_eq!(
        header_at(&log, 1).attributes & 0x40,
        0,
        "no tombstone, no horizon"
    );
    // The record's own timestamp is unchanged.
    let r = log.read(2, 4096).unwrap();
    let mut one = r.records.slice(..h.total_len());
    let set = RecordBatchDecoder::decode(&mut one).unwrap();
    assert_eq!(set.records[0].timestamp, 1_000);
    assert!(set.records[0].value.is_none());

    // Before the horizon it stays, however often the log is cleaned, and
    // the horizon is not moved.
    let dirty = |k: u8| {
        log.append_as_leader(
            &kv_batch(&[(k, Some(u16::from(k)))], None, false, Compression::None),
            0,
        )
        .unwrap();
        log.roll_now(now_ms()).unwrap();
    };
    dirty(4);
    let stats = cleaner.clean(&log, first + HOUR - 1, None).unwrap();
    assert!(stats.new_first_dirty.is_some());
    assert!(read_all(&log).0.contains(&(2, data(1, None))));
    assert_eq!(header_at(&log, 2).base_timestamp, first + HOUR);
    // At the horizon, it goes at the next cleaning (one needs something
    // dirty).
    assert_eq!(
        cleaner
            .clean(&log, first + HOUR, None)
            .unwrap()
            .new_first_dirty,
        None
    );
    assert!(read_all(&log).0.contains(&(2, data(1, None))));
    dirty(5);
    cleaner.clean(&log, first + HOUR, None).unwrap();
    assert_eq!(
        read_all(&log).0,
        vec![
            (1, data(2, Some(2))),
            (3, data(3, Some(3))),
            (4, data(4, Some(4))),
            (5, data(5, Some(5)))
        ]
    );
}

#[test]
fn aborted_records_go_markers_stay_and_producer_state_survives() {
    let dir = tempfile::tempdir().unwrap();
    let config = compact_config(100_000);
    let log = create(dir.path(), config.clone());
    // pid 7: an aborted transaction; pid 8: a committed one; pid 9: an
    // idempotent producer whose batches are all superseded.
    log.append_as_leader(
        &kv_batch(&[(1, Some(1))], Some((7, 0, 0)), true, Compression::None),
        0,
    )
    .unwrap();
    log.append_as_leader(
        &kv_batch(&[(2, Some(2))], Some((8, 0, 0)), true, Compression::None),
        0,
    )
    .unwrap();
    log.append_as_leader(
        &kv_batch(&[(3, Some(3))], Some((9, 0, 0)), false, Compression::None),
        0,
    )
    .unwrap();
    log.append_marker(&marker(7, false), 0).unwrap(); // 3
    log.append_marker(&marker(8, true), 0).unwrap(); // 4
    log.append_as_leader(
        &kv_batch(&[(2, Some(20))], None, false, Compression::None),
        0,
    )
    .unwrap(); // 5
    log.append_as_leader(
        &kv_batch(&[(3, Some(30))], None, false, Compression::None),
        0,
    )
    .unwrap(); // 6
               // An open transaction of pid 10 bounds cleaning by the LSO.
    log.roll_now(now_ms()).unwrap();
    log.append_as_leader(
        &kv_batch(&[(4, Some(4))], Some((10, 0, 0)), true, Compression::None),
        0,
    )
    .unwrap(); // 7
    log.roll_now(now_ms()).unwrap();
    log.append_as_leader(
        &kv_batch(&[(4, Some(40))], None, false, Compression::None),
        0,
    )
    .unwrap(); // 8
    log.roll_now(now_ms()).unwrap();
    let producers_before = last_batches(&log);
    assert_eq!(log.last_stable_offset(), 7);
    let cleaner = cleaner_at(dir.path());
    let stats = cleaner.clean(&log, now_ms(), None).unwrap();
    assert_eq!(stats.new_first_dirty, Some(7), "the LSO bounds cleaning");
    let (items, headers) = read_all(&log);
    assert_eq!(
        items,
        vec![
            (3, Item::Marker(false)),
            (4, Item::Marker(true)),
            (5, data(2, Some(20))),
            (6, data(3, Some(30))),
            (7, data(4, Some(4))),
            (8, data(4, Some(40))),
        ]
    );
    // Emptied batches that were their producer's last stay as empty batches
    // with their producer id, epoch, sequence and offsets.
    let empty: Vec<(i64, i64, i32)> = headers
        .iter()
        .filter(|h| h.records_count == 0)
        .map(|h| (h.base_offset, h.producer_id, h.base_sequence))
        .collect();
    assert_eq!(empty, vec![(0, 7, 0), (1, 8, 0), (2, 9, 0)]);
    drop(log);
    // Producer state and the LSO are the same after a clean restart and a
    // crash (which replays the cleaned segments).
    for clean in [true, false] {
        let log = open(dir.path(), config.clone(), clean);
        let after = last_batches(&log);
        assert_eq!(after, producers_before, "clean restart: {clean}");
        assert_eq!(log.last_stable_offset(), 7);
        assert_eq!(log.open_transactions(), vec![(10, 0, 7)]);
        // The next sequence of pid 9 is accepted, a replay of its last is a
        // duplicate.
        let dup = log
            .append_as_leader(
                &kv_batch(&[(3, Some(3))], Some((9, 0, 0)), false, Compression::None),
                0,
            )
            .unwrap();
        assert!(dup.duplicate);
        if clean {
            log.close().unwrap();
        }
    }
}

#[test]
fn rewritten_batches_keep_codec_offsets_and_header_fields() {
    for compression in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = create(dir.path(), compact_config(100_000));
        let recs: Vec<(u8, Option<u16>)> =
            (0..10).map(|i| ((i % 4) as u8, Some(i as u16))).collect();
        log.append_as_leader(&kv_batch(&recs, Some((5, 2, 0)), false, compression), 0)
            .unwrap();
        let original = read_all(&log).1[0];
        log.append_as_leader(
            &kv_batch(&[(0, Some(77))], None, false, Compression::None),
            0,
        )
        .unwrap();
        log.roll_now(now_ms()).unwrap();
        cleaner_at(dir.path()).clean(&log, now_ms(), None).unwrap();
        let (items, headers) = read_all(&log);
        // Keys 1, 2, 3 keep their last values (offsets 9, 6, 7); key 0 is at 10.
        assert_eq!(
            items,
            vec![
                (6, data(2, Some(6))),
                (7, data(3, Some(7))),
                (9, data(1, Some(9))),
                (10, data(0, Some(77))),
            ],
            "{compression:?}"
        );
        let h = headers[0];
        assert_eq!(h.compression(), original.compression(), "{compression:?}");
        assert_eq!(h.base_offset, 0);
        assert_eq!(h.last_offset(), original.last_offset());
        assert_eq!(
            (
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                h.base_timestamp,
                h.max_timestamp
            ),
            (5, 2, 0, original.base_timestamp, original.max_timestamp)
        );
        assert_eq!(h.records_count, 3);
    }
    // The max timestamp of a rewritten CreateTime batch is its records'.
    let dir = tempfile::tempdir().unwrap();
    let log = create(dir.path(), compact_config(100_000));
    log.append_as_leader(
        &kv_batch(
            &[(1, Some(1)), (2, Some(2)), (3, Some(3))],
            None,
            false,
            Compression::Gzip,
        ),
        0,
    )
    .unwrap();
    log.append_as_leader(
        &kv_batch(&[(3, Some(30))], None, false, Compression::None),
        0,
    )
    .unwrap();
    log.roll_now(now_ms()).unwrap();
    cleaner_at(dir.path()).clean(&log, now_ms(), None).unwrap();
    let h = read_all(&log).1[0];
    assert_eq!(
        (h.records_count, h.max_timestamp, h.last_offset()),
        (2, 1_001, 2)
    );
}

#[test]
fn a_small_dedupe_buffer_cleans_in_several_passes() {
    let dir = tempfile::tempdir().unwrap();
    let log = create(dir.path(), compact_config(250));
    append_singles(&log, 40, |i| (i % 10) as u8);
    log.roll_now(now_ms()).unwrap();
    let cleaner = cleaner_at(dir.path());
    // 8 slots (just under 9), 7 keys: each pass maps 7 batches.
    cleaner.config.lock().dedupe_buffer_size = (9 * cleaner::MAP_SLOT_BYTES - 1) as i64;
    assert_eq!(cleaner.config.lock().map_capacity(), 7);
    let first = cleaner.clean(&log, now_ms(), None).unwrap();
    assert_eq!(first.new_first_dirty, Some(7));
    let mut passes = 1;
    while cleaner
        .clean(&log, now_ms(), None)
        .unwrap()
        .new_first_dirty
        .is_some()
    {
        passes += 1;
        assert!(passes < 20);
    }
    assert_eq!(passes, 6);
    let items = read_all(&log).0;
    let expected: Vec<(i64, Item)> = (30..40)
        .map(|i| (i as i64, data((i % 10) as u8, Some(i))))
        .collect();
    assert_eq!(items, expected);
    assert_eq!(cleaner.first_dirty(&log), 40);
    // The first dirty offset is checkpointed.
    assert_eq!(cleaner_at(dir.path()).first_dirty(&log), 40);
}

#[test]
fn min_compaction_lag_and_dirty_ratio_decide_what_is_cleanable() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = compact_config(100);
    let log = create(dir.path(), config.clone());
    versions_of_one_key(&log, 6);
    let view = log.cleaner_view().unwrap();
    let p = cleaner::plan(&view, 0, now_ms()).unwrap();
    assert_eq!(p.dirty_ratio, 1.0);
    assert!(p.eligible(&config));
    // Records are timestamped 1000 (1970): a lag of 1 s excludes nothing,
    // a lag reaching back before them excludes everything.
    config.min_compaction_lag_ms = now_ms();
    log.set_config(config.clone());
    assert_eq!(
        cleaner::plan(&log.cleaner_view().unwrap(), 0, now_ms()),
        None
    );
    config.min_compaction_lag_ms = 1_000;
    log.set_config(config.clone());
    assert!(cleaner::plan(&log.cleaner_view().unwrap(), 0, now_ms()).is_some());
    // Not compacted: nothing to plan.
    config.cleanup_policy = "delete".into();
    log.set_config(config.clone());
    assert!(log.cleaner_view().is_none());
    config.cleanup_policy = "compact,delete".into();
    log.set_config(config.clone());
    // After cleaning, nothing is dirty; the ratio picks logs.
    let cleaner = cleaner_at(dir.path());
    let logs = vec![std::sync::Arc::new(log)];
    assert!(cleaner.clean_dirtiest(&logs, now_ms()));
    assert!(!cleaner.clean_dirtiest(&logs, now_ms()));
    assert_eq!(cleaner.metrics.snapshot().cleanings, 1);
}

#[test]
fn readers_holding_an_old_segment_keep_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = create(dir.path(), compact_config(100_000));
    versions_of_one_key(&log, 5);
    let old = log.cleaner_view().unwrap().segments[0].clone();
    let mut before = vec![0u8; old.size as usize];
    std::os::unix::fs::FileExt::read_exact_at(&*old.file, &mut before, 0).unwrap();
    cleaner_at(dir.path()).clean(&log, now_ms(), None).unwrap();
    assert_eq!(read_all(&log).0, vec![(4, data(1, Some(4)))]);
    let mut again = vec![0u8; old.size as usize];
    std::os::unix::fs::FileExt::read_exact_at(&*old.file, &mut again, 0).unwrap();
    assert_eq!(before, again);
}

/// Leaves the files of a cleaning stopped at `point`, then reopens as after
/// a kill -9: the log is either the old one or the cleaned one, per segment.
#[test]
fn a_crash_at_any_step_of_a_cleaning_leaves_a_valid_log() {
    let points = [
        CrashPoint::Cleaned,
        CrashPoint::IndexSwapped,
        CrashPoint::LogSwapped,
        CrashPoint::OldDeleted,
        CrashPoint::IndexesInPlace,
    ];
    for point in points {
        let dir = tempfile::tempdir().unwrap();
        let config = compact_config(200);
        let log = create(dir.path(), config.clone());
        append_singles(&log, 30, |i| (i % 4) as u8);
        log.roll_now(now_ms()).unwrap();
        let before = read_all(&log).0;
        let cleaner = cleaner_at(dir.path());
        let stats = cleaner.clean(&log, now_ms(), Some(point)).unwrap();
        assert!(stats.crashed, "{point:?}");
        drop(log);
        let log = open(dir.path(), config.clone(), false);
        let crashed = read_all(&log).0;
        // Nothing that a finished cleaning keeps is missing, nothing new.
        let fully: Vec<_> = before.iter().filter(|(o, _)| *o >= 26).cloned().collect();
        for item in &fully {
            assert!(crashed.contains(item), "{point:?}: lost {item:?}");
        }
        for item in &crashed {
            assert!(before.contains(item), "{point:?}: invented {item:?}");
        }
        let leftovers: Vec<String> = std::fs::read_dir(dir.path().join("t-0"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
            .collect();
        assert!(leftovers.is_empty(), "{point:?}: {leftovers:?}");
        // The checkpoint did not move: the next pass finishes the job.
        let cleaner = cleaner_at(dir.path());
        assert_eq!(cleaner.first_dirty(&log), 0);
        cleaner.clean(&log, now_ms(), None).unwrap();
        assert_eq!(read_all(&log).0, fully, "{point:?}");
    }
}

// ---- property test against a model ----

#[derive(Debug, Clone)]
enum Op {
    Plain(Vec<(u8, Option<u16>)>, bool, u8),
    Txn(usize, Vec<(u8, Option<u16>)>),
    End(usize, bool),
    Roll,
    Clean(bool),
    CrashClean(bool, usize),
    /// 0: clean; 1: crash, every segment re-validated; 2: flush, then
    /// crash (recovery from the recovery point and a snapshot).
    Restart(u8),
}

fn recs() -> impl Strategy<Value = Vec<(u8, Option<u16>)>> {
    prop::collection::vec((0u8..6, prop::option::weighted(0.75, 0u16..1000)), 1..4)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (recs(), any::<bool>(), 0u8..3).prop_map(|(r, idem, c)| Op::Plain(r, idem, c)),
        3 => (0usize..2, recs()).prop_map(|(p, r)| Op::Txn(p, r)),
        2 => (0usize..2, any::<bool>()).prop_map(|(p, c)| Op::End(p, c)),
        2 => Just(Op::Roll),
        2 => any::<bool>().prop_map(Op::Clean),
        1 => (any::<bool>(), 0usize..5).prop_map(|(l, p)| Op::CrashClean(l, p)),
        1 => (0u8..3).prop_map(Op::Restart),
    ]
}

const TXN_PIDS: [i64; 2] = [10, 11];
const IDEMPOTENT_PID: i64 = 1;

#[derive(Clone, Debug)]
struct MRec {
    offset: i64,
    item: Item,
    /// Transaction id (index into `Model::txns`) of transactional records.
    txn: Option<usize>,
}

/// (first seq, last seq, first offset, last offset).
type LastBatch = (i32, i32, i64, i64);

#[derive(Default)]
struct Model {
    recs: Vec<MRec>,
    next_offset: i64,
    /// Outcome per transaction: None while open, Some(commit).
    txns: Vec<Option<bool>>,
    /// Open transaction per producer: (txn id, first offset).
    open: BTreeMap<i64, (usize, i64)>,
    /// Next sequence, last batch (first seq, last seq, first offset, last offset).
    producers: HashMap<i64, (i32, LastBatch)>,
    first_dirty: i64,
    /// Delete horizon of each kept tombstone's batch (KIP-534): set by the
    /// first pass that keeps it.
    horizons: HashMap<i64, i64>,
    /// Tombstones a pass at or past their horizon removed.
    purged: HashSet<i64>,
}

impl Model {
    fn lso(&self) -> i64 {
        self.open
            .values()
            .map(|&(_, first)| first)
            .min()
            .unwrap_or(self.next_offset)
    }

    fn aborted(&self, r: &MRec) -> bool {
        r.txn.is_some_and(|t| self.txns[t] == Some(false))
    }

    /// The log after complete cleanings up to `first_dirty` without the
    /// `purged` tombstones.
    fn expected(&self, first_dirty: i64, purged: &HashSet<i64>) -> Vec<(i64, Item)> {
        let mut latest: HashMap<String, i64> = HashMap::new();
        for r in &self.recs {
            if let Item::Data(k, _) = &r.item {
                if r.offset < first_dirty && !self.aborted(r) {
                    latest.insert(k.clone(), r.offset);
                }
            }
        }
        self.recs
            .iter()
            .filter(|r| match &r.item {
                Item::Marker(_) => true,
                Item::Data(_, _) if r.offset >= first_dirty => true,
                Item::Data(k, v) => {
                    !self.aborted(r)
                        && latest.get(k) == Some(&r.offset)
                        && (v.is_some() || !purged.contains(&r.offset))
                }
            })
            .map(|r| (r.offset, r.item.clone()))
            .collect()
    }

    /// A complete pass at `now` up to `end`: every tombstone it keeps below
    /// `end` goes if its horizon is at or before `now`, else gets one if it
    /// had none. Returns the (horizons, purged) after it.
    fn pass(&self, end: i64, now: i64) -> (HashMap<i64, i64>, HashSet<i64>) {
        let mut horizons = self.horizons.clone();
        let mut purged = self.purged.clone();
        for (offset, item) in self.expected(end, &self.purged) {
            if offset >= end || !matches!(item, Item::Data(_, None)) {
                continue;
            }
            match horizons.get(&offset) {
                Some(&at) if now >= at => {
                    purged.insert(offset);
                }
                Some(_) => {}
                None => {
                    horizons.insert(offset, now + HOUR);
                }
            }
        }
        (horizons, purged)
    }

    fn append(
        &mut self,
        pid: Option<i64>,
        records: &[(u8, Option<u16>)],
        txn: Option<usize>,
    ) -> Option<(i64, i16, i32)> {
        let producer = pid.map(|pid| {
            let (seq, _) = self
                .producers
                .get(&pid)
                .copied()
                .unwrap_or((0, (0, 0, 0, 0)));
            let n = records.len() as i32;
            self.producers.insert(
                pid,
                (
                    seq + n,
                    (
                        seq,
                        seq + n - 1,
                        self.next_offset,
                        self.next_offset + n as i64 - 1,
                    ),
                ),
            );
            (pid, 0i16, seq)
        });
        for (k, v) in records {
            self.recs.push(MRec {
                offset: self.next_offset,
                item: data(*k, *v),
                txn,
            });
            self.next_offset += 1;
        }
        producer
    }
}

struct Harness {
    dir: tempfile::TempDir,
    config: TopicConfig,
    log: PartitionLog,
    cleaner: Cleaner,
    model: Model,
}

impl Harness {
    fn check(&self) {
        let (items, _) = read_all(&self.log);
        assert_eq!(
            items,
            self.model
                .expected(self.model.first_dirty, &self.model.purged),
            "log differs from the model (first dirty {}, purged {:?})",
            self.model.first_dirty,
            self.model.purged
        );
        self.check_state();
    }

    fn check_state(&self) {
        assert_eq!(self.log.log_end_offset(), self.model.next_offset);
        assert_eq!(self.log.last_stable_offset(), self.model.lso());
        let open: Vec<(i64, i16, i64)> = self
            .model
            .open
            .iter()
            .map(|(&pid, &(_, first))| (pid, 0, first))
            .collect();
        assert_eq!(self.log.open_transactions(), open);
        let producers: HashMap<i64, _> = self.log.producers().into_iter().collect();
        for (pid, (_, (fs, ls, fo, lo))) in &self.model.producers {
            let e = producers
                .get(pid)
                .unwrap_or_else(|| panic!("producer {pid} lost"));
            assert_eq!(e.epoch, 0);
            let b = e.batches.back().expect("a last batch");
            assert_eq!(
                (b.first_seq, b.last_seq, b.first_offset, b.last_offset),
                (*fs, *ls, *fo, *lo),
                "producer {pid}"
            );
        }
        assert_eq!(self.cleaner.first_dirty(&self.log), self.model.first_dirty);
    }

    /// The first dirty offset a complete pass reaches now.
    fn expected_pass_end(&self) -> Option<i64> {
        let bases = self.log.segment_bases();
        let active = *bases.last().unwrap();
        let bound = active.min(self.model.lso());
        let end = bases.iter().copied().filter(|&b| b <= bound).max().unwrap();
        let start = self.model.first_dirty.max(bases[0]);
        (end > start && bases.len() > 1).then_some(end)
    }

    fn clean_time(late: bool) -> i64 {
        now_ms() + if late { 2 * HOUR } else { 0 }
    }

    fn apply(&mut self, op: &Op) {
        match op {
            Op::Plain(records, idempotent, codec) => {
                let compression =
                    [Compression::None, Compression::Gzip, Compression::Zstd][*codec as usize];
                let producer =
                    self.model
                        .append(idempotent.then_some(IDEMPOTENT_PID), records, None);
                self.log
                    .append_as_leader(&kv_batch(records, producer, false, compression), 0)
                    .unwrap();
            }
            Op::Txn(p, records) => {
                let pid = TXN_PIDS[*p];
                let txn = match self.model.open.get(&pid) {
                    Some(&(t, _)) => t,
                    None => {
                        self.model.txns.push(None);
                        let t = self.model.txns.len() - 1;
                        self.model.open.insert(pid, (t, self.model.next_offset));
                        t
                    }
                };
                let producer = self.model.append(Some(pid), records, Some(txn));
                self.log
                    .append_as_leader(&kv_batch(records, producer, true, Compression::None), 0)
                    .unwrap();
            }
            Op::End(p, commit) => {
                let pid = TXN_PIDS[*p];
                let Some((t, _)) = self.model.open.remove(&pid) else {
                    return;
                };
                self.model.txns[t] = Some(*commit);
                self.model.recs.push(MRec {
                    offset: self.model.next_offset,
                    item: Item::Marker(*commit),
                    txn: None,
                });
                self.model.next_offset += 1;
                self.log.append_marker(&marker(pid, *commit), 0).unwrap();
            }
            Op::Roll => self.log.roll_now(now_ms()).unwrap(),
            Op::Clean(late) => {
                let expected = self.expected_pass_end();
                let now = Self::clean_time(*late);
                let stats = self.cleaner.clean(&self.log, now, None).unwrap();
                assert_eq!(stats.new_first_dirty, expected);
                if let Some(end) = expected {
                    (self.model.horizons, self.model.purged) = self.model.pass(end, now);
                    self.model.first_dirty = end;
                }
            }
            Op::CrashClean(late, point) => {
                let point = [
                    CrashPoint::Cleaned,
                    CrashPoint::IndexSwapped,
                    CrashPoint::LogSwapped,
                    CrashPoint::OldDeleted,
                    CrashPoint::IndexesInPlace,
                ][*point];
                let now = Self::clean_time(*late);
                let expected = self.expected_pass_end();
                let stats = self.cleaner.clean(&self.log, now, Some(point)).unwrap();
                assert_eq!(stats.new_first_dirty, expected);
                let Some(end) = expected else { return };
                assert!(stats.crashed);
                self.reopen(false);
                // Some groups cleaned, others not: between the two logs.
                let (items, _) = read_all(&self.log);
                let old = self
                    .model
                    .expected(self.model.first_dirty, &self.model.purged);
                let (horizons, purged) = self.model.pass(end, now);
                let new = self.model.expected(end, &purged);
                for item in &new {
                    assert!(items.contains(item), "{point:?}: lost {item:?}");
                }
                for item in &items {
                    assert!(old.contains(item), "{point:?}: resurrected {item:?}");
                }
                self.check_state();
                // The next pass (same time) completes it.
                let stats = self.cleaner.clean(&self.log, now, None).unwrap();
                assert_eq!(stats.new_first_dirty, Some(end));
                self.model.first_dirty = end;
                self.model.horizons = horizons;
                self.model.purged = purged;
            }
            Op::Restart(0) => self.reopen(true),
            Op::Restart(1) => self.reopen(false),
            Op::Restart(_) => {
                self.log.flush().unwrap();
                let rp = self.log.recovery_point();
                let fresh = create_placeholder(self.dir.path());
                drop(std::mem::replace(&mut self.log, fresh));
                self.log = open_at(self.dir.path(), self.config.clone(), false, Some(rp));
                self.cleaner = cleaner_at(self.dir.path());
            }
        }
    }

    fn reopen(&mut self, clean: bool) {
        if clean {
            self.log.close().unwrap();
        }
        let fresh = create_placeholder(self.dir.path());
        drop(std::mem::replace(&mut self.log, fresh));
        self.log = open(self.dir.path(), self.config.clone(), clean);
        self.cleaner = cleaner_at(self.dir.path());
    }
}

/// A log in a scratch directory, only to stand in while the real one is
/// dropped and reopened.
fn create_placeholder(root: &Path) -> PartitionLog {
    PartitionLog::create(
        &root.join("scratch"),
        "p",
        0,
        Uuid::nil(),
        compact_config(1000),
        0,
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn compaction_matches_the_model(ops in prop::collection::vec(op(), 1..60), segment_bytes in 150i32..600) {
        let dir = tempfile::tempdir().unwrap();
        let config = compact_config(segment_bytes);
        let log = create(dir.path(), config.clone());
        let cleaner = cleaner_at(dir.path());
        let mut h = Harness { dir, config, log, cleaner, model: Model::default() };
        for op in &ops {
            h.apply(op);
            h.check();
        }
        // Finally: close every transaction, clean everything, restart.
        for p in 0..2 {
            h.apply(&Op::End(p, true));
        }
        h.apply(&Op::Roll);
        h.apply(&Op::Plain(vec![(0, Some(1))], false, 0));
        h.apply(&Op::Clean(false));
        h.check();
        h.apply(&Op::Restart(1));
        h.check();
    }
}

fn manager_with_topic(
    root: &Path,
    config: TopicConfig,
) -> (
    std::sync::Arc<super::LogManager>,
    std::sync::Arc<PartitionLog>,
) {
    let logs = std::sync::Arc::new(
        super::LogManager::open(root, &crate::metadata::MetadataImage::default()).unwrap(),
    );
    let info = crate::metadata::TopicInfo {
        name: "t".into(),
        id: Uuid::new_v4(),
        partitions: 1,
        overrides: Default::default(),
        config,
    };
    logs.create_topic(&info).unwrap();
    let log = logs.get(&info.id, 0).unwrap();
    (logs, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_cleaner_compacts_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (logs, log) = manager_with_topic(dir.path(), compact_config(300));
    append_singles(&log, 30, |i| (i % 2) as u8);
    log.roll_now(now_ms()).unwrap();
    // Disabled: nothing happens.
    logs.set_cleaner_config(CleanerConfig {
        enable: false,
        backoff_ms: 10,
        ..CleanerConfig::default()
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let tasks = logs.start_background(3_600_000, stop_rx);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(logs.cleaner_stats().cleanings, 0);
    assert_eq!(read_all(&log).0.len(), 30);
    logs.set_cleaner_config(CleanerConfig {
        backoff_ms: 10,
        ..CleanerConfig::default()
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while logs.cleaner_stats().cleanings == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the cleaner never ran"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        read_all(&log).0,
        vec![(28, data(0, Some(28))), (29, data(1, Some(29)))]
    );
    let stats = logs.cleaner_stats();
    assert_eq!(stats.records_removed, 28);
    assert!(stats.bytes_written < stats.bytes_read && stats.failures == 0);
    // The checkpoint file records where cleaning stopped (written just
    // after the counters move).
    let path = dir.path().join(cleaner::CLEANER_CHECKPOINT);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains("t 0 30") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "checkpoint: {text}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop_tx.send(true).unwrap();
    for t in tasks {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), t).await;
    }
}

/// Appends and reads go on while passes run; the result is the model's.
#[test]
fn cleaning_runs_alongside_appends() {
    let dir = tempfile::tempdir().unwrap();
    let (_logs, log) = manager_with_topic(dir.path(), compact_config(400));
    let cleaner = cleaner_at(dir.path());
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            append_singles(&log, 1500, |i| (i % 17) as u8);
        })
    };
    let mut passes = 0;
    while !writer.is_finished() {
        if cleaner
            .clean(&log, now_ms(), None)
            .unwrap()
            .segments_swapped
            > 0
        {
            passes += 1;
        }
        let _ = read_all(&log);
    }
    writer.join().unwrap();
    assert!(passes > 0);
    log.roll_now(now_ms()).unwrap();
    cleaner.clean(&log, now_ms(), None).unwrap();
    let expected: Vec<(i64, Item)> = (1500 - 17..1500u16)
        .map(|i| (i as i64, data((i % 17) as u8, Some(i))))
        .collect();
    assert_eq!(read_all(&log).0, expected);
}

#[test]
fn the_key_map_fits_the_dedupe_buffer() {
    // Tiny buffers still map one key at a time.
    for size in [0, 1, 24, 25, 60] {
        assert!(
            CleanerConfig {
                dedupe_buffer_size: size,
                ..CleanerConfig::default()
            }
            .map_capacity()
                >= 1
        );
    }
    for size in [1000i64, 4096, 1 << 20, 134_217_728, 134_217_727] {
        for threads in [1, 2, 3] {
            let c = CleanerConfig {
                dedupe_buffer_size: size,
                threads,
                ..CleanerConfig::default()
            };
            let keys = c.map_capacity();
            // The table for `keys` entries: a power of two of slots at 7/8.
            let slots = (keys * 8).div_ceil(7).next_power_of_two();
            let share = (size / threads as i64).max(cleaner::MAP_SLOT_BYTES as i64);
            assert!(
                slots * cleaner::MAP_SLOT_BYTES <= share as usize,
                "{size}/{threads}: {keys} keys"
            );
            assert!(
                keys * 2 * cleaner::MAP_SLOT_BYTES > share as usize / 2,
                "{size}/{threads}: wasteful"
            );
        }
    }
    assert_eq!(CleanerConfig::default().map_capacity(), 3_670_016);
}

#[test]
fn a_log_that_fails_to_clean_is_skipped_and_the_others_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let logs: Vec<std::sync::Arc<PartitionLog>> = ["bad", "good"]
        .iter()
        .map(|t| {
            let log = PartitionLog::create(
                dir.path(),
                t,
                0,
                Uuid::new_v4(),
                compact_config(100_000),
                now_ms(),
            )
            .unwrap();
            versions_of_one_key(&log, 4);
            std::sync::Arc::new(log)
        })
        .collect();
    // Undecodable records in the bad log's first batch.
    let seg = dir
        .path()
        .join("bad-0")
        .join(super::segment::file_name(0, "log"));
    let f = std::fs::OpenOptions::new().write(true).open(seg).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xff; 10], 61).unwrap();
    let cleaner = cleaner_at(dir.path());
    assert!(!cleaner.clean_dirtiest(&logs, now_ms()));
    let stats = cleaner.stats();
    assert_eq!((stats.failures, stats.uncleanable_partitions), (1, 1));
    assert!(cleaner.clean_dirtiest(&logs, now_ms()));
    assert_eq!(read_all(&logs[1]).0, vec![(3, data(1, Some(3)))]);
    assert!(!cleaner.clean_dirtiest(&logs, now_ms()));
    assert_eq!(cleaner.stats().cleanings, 1);
    // The bad log is untouched.
    assert_eq!(logs[0].segment_count(), 2);
}

#[test]
fn a_checkpoint_past_the_log_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let log = create(dir.path(), compact_config(100_000));
    versions_of_one_key(&log, 4);
    // As if a deleted topic of the same name had been cleaned up to 1000.
    super::fsutil::write_checkpoint(
        &dir.path().join(cleaner::CLEANER_CHECKPOINT),
        &[("t".to_string(), 0, 1000)],
    )
    .unwrap();
    let cleaner = cleaner_at(dir.path());
    assert_eq!(cleaner.first_dirty(&log), 1000);
    assert_eq!(
        cleaner.clean(&log, now_ms(), None).unwrap().new_first_dirty,
        Some(4)
    );
    assert_eq!(read_all(&log).0, vec![(3, data(1, Some(3)))]);
}

// ---- the group coordinator's replay of a cleaned __consumer_offsets ----

#[derive(Debug, Clone)]
enum GroupOp {
    Commit(i32, i64),
    /// An offset tombstone (OffsetDelete, expiry); the coordinator writes none
    /// while the partition has a pending transactional offset.
    Delete(i32),
    TxnCommit(usize, i32, i64),
    End(usize, bool),
    Roll,
}

fn group_op() -> impl Strategy<Value = GroupOp> {
    prop_oneof![
        4 => (0i32..4, 0i64..1000).prop_map(|(p, o)| GroupOp::Commit(p, o)),
        1 => (0i32..4).prop_map(GroupOp::Delete),
        3 => (0usize..2, 0i32..4, 0i64..1000).prop_map(|(t, p, o)| GroupOp::TxnCommit(t, p, o)),
        2 => (0usize..2, any::<bool>()).prop_map(|(t, c)| GroupOp::End(t, c)),
        2 => Just(GroupOp::Roll),
    ]
}

fn offset_record(partition: i32, offset: Option<i64>) -> (Vec<u8>, Option<Vec<u8>>) {
    use crate::coordinator::group::records::{OffsetValue, RecordKey};
    let key = RecordKey::Offset {
        group: "g".into(),
        topic: "t".into(),
        partition,
    };
    let value = offset.map(|offset| {
        OffsetValue {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 0,
            expire_timestamp: None,
        }
        .encode()
    });
    (key.encode(), value)
}

/// What a group shard replaying `log` answers to OffsetFetch, plain and
/// with require_stable.
fn replayed_offsets(log: &PartitionLog) -> Vec<(i32, i64, i16, i64)> {
    use crate::coordinator::runtime::{replay, Replayed};
    let config = BrokerConfig::default_for_tests("/nonexistent".into()).group;
    let mut shard = crate::coordinator::group::shard::GroupShard::new(0, config);
    replay(log, |entry| match entry {
        Replayed::Record {
            offset,
            key,
            value,
            txn,
        } => shard.replay_record(offset, &key, value.as_deref(), txn, 0),
        Replayed::Marker { offset, marker } => shard.replay_marker(offset, &marker),
    })
    .unwrap();
    let plain = shard.fetch_offsets("g", None);
    let stable = shard.fetch_offsets_with("g", None, true);
    let mut out = Vec::new();
    for ((_, a), (_, b)) in plain.iter().zip(&stable) {
        for (x, y) in a.iter().zip(b) {
            out.push((x.partition, x.offset, y.error, y.offset));
        }
    }
    out.sort_unstable();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn group_replay_of_a_cleaned_log_gives_the_same_offsets(
        ops in prop::collection::vec(group_op(), 1..50),
        late in any::<bool>(),
    ) {
        use crate::coordinator::codec::{encode_batch, encode_batch_as, BatchProducer};
        let dir = tempfile::tempdir().unwrap();
        let log = create(dir.path(), compact_config(300));
        // Partitions with a pending transactional offset, per producer.
        let mut pending: [Vec<i32>; 2] = [Vec::new(), Vec::new()];
        for op in &ops {
            match op {
                GroupOp::Commit(p, o) => {
                    log.append_as_leader(&encode_batch(&[offset_record(*p, Some(*o))], 0), 0).unwrap();
                }
                GroupOp::Delete(p) => {
                    if pending.iter().any(|ps| ps.contains(p)) {
                        continue;
                    }
                    log.append_as_leader(&encode_batch(&[offset_record(*p, None)], 0), 0).unwrap();
                }
                GroupOp::TxnCommit(t, p, o) => {
                    let producer = BatchProducer { producer_id: TXN_PIDS[*t], producer_epoch: 0, transactional: true };
                    log.append_as_leader(&encode_batch_as(&[offset_record(*p, Some(*o))], 0, producer), 0)
                        .unwrap();
                    pending[*t].push(*p);
                }
                GroupOp::End(t, commit) => {
                    if pending[*t].is_empty() {
                        continue;
                    }
                    pending[*t].clear();
                    log.append_marker(&marker(TXN_PIDS[*t], *commit), 0).unwrap();
                }
                GroupOp::Roll => log.roll_now(now_ms()).unwrap(),
            }
        }
        let before = replayed_offsets(&log);
        log.roll_now(now_ms()).unwrap();
        let now = now_ms() + if late { 2 * HOUR } else { 0 };
        cleaner_at(dir.path()).clean(&log, now, None).unwrap();
        prop_assert_eq!(replayed_offsets(&log), before);
    }
}

// ---- review: commit under the lock, retention after cleaning ----

fn seg_file_len(root: &Path, base: i64) -> u64 {
    std::fs::metadata(
        root.join("t-0")
            .join(super::segment::file_name(base, "log")),
    )
    .map_or(0, |m| m.len())
}

#[test]
fn a_cleaning_is_not_committed_for_segments_removed_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = compact_config(200);
    config.cleanup_policy = "compact,delete".into();
    config.retention_ms = -1;
    config.retention_bytes = -1;
    let log = std::sync::Arc::new(create(dir.path(), config.clone()));
    append_singles(&log, 30, |i| (i % 4) as u8);
    log.roll_now(now_ms()).unwrap();
    let bases = log.segment_bases();
    assert!(bases.len() > 4, "{bases:?}");
    let cut = bases[2];
    // DeleteRecords removes the first segments while the cleaned copy of
    // the first one is being written.
    let l = log.clone();
    cleaner::BEFORE_COMMIT.with(|h| {
        *h.borrow_mut() = Some(Box::new(move || {
            l.delete_records_before(cut).unwrap();
        }))
    });
    let cleaner = cleaner_at(dir.path());
    cleaner
        .clean(&log, now_ms(), Some(CrashPoint::LogSwapped))
        .unwrap();
    drop(log);
    // A crash now: the restart must not bring the removed segments back.
    let log = open(dir.path(), config, false);
    let after = log.segment_bases();
    assert!(after[0] >= cut, "removed segments came back: {after:?}");
    assert!(!dir
        .path()
        .join("t-0")
        .join(super::segment::file_name(0, "log"))
        .exists());
}

#[test]
fn retention_removes_segments_emptied_or_shortened_by_cleaning() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = compact_config(200);
    config.cleanup_policy = "compact,delete".into();
    config.retention_ms = -1;
    config.retention_bytes = -1;
    let log = create(dir.path(), config.clone());
    append_singles(&log, 30, |i| (i % 4) as u8);
    log.roll_now(now_ms()).unwrap();
    cleaner_at(dir.path()).clean(&log, now_ms(), None).unwrap();
    let bases = log.segment_bases();
    // Cleaning left empty segments at the log start.
    assert_eq!(seg_file_len(dir.path(), bases[0]), 0, "{bases:?}");
    let first_kept = *bases
        .iter()
        .find(|&&b| seg_file_len(dir.path(), b) > 0)
        .unwrap();
    // retention.bytes one byte below the log size: the empty segments
    // are over it, the first non-empty one is not.
    config.retention_bytes = log.size_bytes() as i64 - 1;
    log.set_config(config);
    log.apply_retention(now_ms()).unwrap();
    assert_eq!(log.segment_bases()[0], first_kept);
    assert_eq!(log.log_start_offset(), first_kept);
}

#[test]
fn a_log_deleted_during_a_pass_leaves_no_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = compact_config(200);
    let log = std::sync::Arc::new(create(dir.path(), config));
    append_singles(&log, 30, |i| (i % 4) as u8);
    log.roll_now(now_ms()).unwrap();
    let l = log.clone();
    cleaner::BEFORE_COMMIT.with(|h| *h.borrow_mut() = Some(Box::new(move || l.mark_deleted())));
    let cleaner = cleaner_at(dir.path());
    let pass = cleaner.clean(&log, now_ms(), None).unwrap();
    assert_eq!(pass.segments_swapped, 0);
    // A topic recreated as t-0 starts dirty from its beginning.
    assert_eq!(cleaner.first_dirty(&log), 0);
    assert!(
        !std::fs::read_to_string(dir.path().join(cleaner::CLEANER_CHECKPOINT))
            .unwrap_or_default()
            .contains("t 0")
    );
}

#[test]
fn max_compaction_lag_rolls_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = compact_config(1 << 20);
    config.segment_ms = 7 * 24 * HOUR;
    config.max_compaction_lag_ms = 1;
    let log = create(dir.path(), config.clone());
    // Record timestamps 1000, then 1000..=1002: 2 ms after the first.
    log.append_as_leader(
        &kv_batch(&[(1, Some(1))], None, false, Compression::None),
        0,
    )
    .unwrap();
    log.append_as_leader(
        &kv_batch(
            &[(1, Some(2)), (2, Some(3)), (1, Some(4))],
            None,
            false,
            Compression::None,
        ),
        0,
    )
    .unwrap();
    assert_eq!(log.segment_bases(), vec![0, 1]);
    // Not compacted: segment.ms alone decides.
    let dir = tempfile::tempdir().unwrap();
    config.cleanup_policy = "delete".into();
    let log = create(dir.path(), config);
    log.append_as_leader(
        &kv_batch(&[(1, Some(1))], None, false, Compression::None),
        0,
    )
    .unwrap();
    log.append_as_leader(
        &kv_batch(
            &[(1, Some(2)), (2, Some(3))],
            None,
            false,
            Compression::None,
        ),
        0,
    )
    .unwrap();
    assert_eq!(log.segment_bases(), vec![0]);
}

/// The other side of the roll: a segment whose records span exactly
/// `max.compaction.lag.ms` (2 ms here) is not rolled; one more ms is.
#[test]
fn max_compaction_lag_rolls_only_past_the_lag() {
    for (lag, bases) in [(2, vec![0]), (1, vec![0, 1])] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = compact_config(1 << 20);
        config.segment_ms = 7 * 24 * HOUR;
        config.max_compaction_lag_ms = lag;
        let log = create(dir.path(), config);
        // Timestamps 1000, then 1000..=1002: the second batch is 2 ms on.
        for recs in [
            &[(1, Some(1))][..],
            &[(1, Some(2)), (2, Some(3)), (1, Some(4))],
        ] {
            log.append_as_leader(&kv_batch(recs, None, false, Compression::None), 0)
                .unwrap();
        }
        assert_eq!(log.segment_bases(), bases, "max.compaction.lag.ms={lag}");
    }
}

/// One batch of `(key, value, timestamp)` records.
fn stamped_batch(recs: &[(u8, Option<u16>, i64)], compression: Compression) -> Bytes {
    let records: Vec<Record> = recs
        .iter()
        .enumerate()
        .map(|(i, &(k, v, ts))| {
            let value = v.map(|v| Bytes::from(format!("value-{v}")));
            record(i, ts, None, Bytes::from(format!("k{k}")), value)
        })
        .collect();
    crate::coordinator::codec::tests::raw_batch(&records, compression)
}

/// (offset, timestamp, tombstone) of every record, as a client decodes them.
fn stamps(log: &PartitionLog) -> Vec<(i64, i64, bool)> {
    let r = log.read(log.log_start_offset(), 1 << 20).unwrap();
    let mut bytes = r.records.clone();
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let set = RecordBatchDecoder::decode(&mut bytes).expect("stored batches decode");
        out.extend(
            set.records
                .iter()
                .map(|r| (r.offset, r.timestamp, r.value.is_none())),
        );
    }
    out
}

/// ListOffsets by timestamp over `expected` records: the first (in offset
/// order) whose timestamp is at least `ts`, as (timestamp, offset).
fn first_at_or_after(expected: &[(i64, i64, bool)], ts: i64) -> Option<(i64, i64)> {
    expected
        .iter()
        .find(|&&(_, t, _)| t >= ts)
        .map(|&(o, t, _)| (t, o))
}

fn check_timestamps(log: &PartitionLog, expected: &[(i64, i64, bool)], what: &str) {
    assert_eq!(stamps(log), expected, "{what}: records and timestamps");
    for ts in (0..=10_500).step_by(250) {
        assert_eq!(
            log.offset_for_timestamp(ts).unwrap(),
            first_at_or_after(expected, ts),
            "{what}: ListOffsets({ts})"
        );
    }
    let max = expected.iter().map(|&(_, t, _)| t).max().unwrap();
    let at = expected.iter().find(|&&(_, t, _)| t == max).unwrap().0;
    assert_eq!(log.max_timestamp().unwrap(), Some((max, at)), "{what}: max");
}

#[test]
fn rebased_batches_keep_every_record_timestamp_with_every_codec() {
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let what = format!("{compression:?}");
        let dir = tempfile::tempdir().unwrap();
        let log = create(dir.path(), compact_config(1 << 20));
        // Offsets 0-4 (timestamps out of order, two tombstones; key 1 is
        // replaced below): rebuilt with a horizon and one record fewer.
        let a = [
            (1, Some(1), 5_000),
            (2, None, 3_000),
            (3, Some(3), 9_000),
            (4, None, 4_000),
            (5, Some(5), 7_000),
        ];
        log.append_as_leader(&stamped_batch(&a, compression), 0)
            .unwrap();
        // Offset 5.
        log.append_as_leader(&stamped_batch(&[(1, Some(11), 6_000)], compression), 0)
            .unwrap();
        // Offsets 6-7: nothing removed, only the horizon set.
        let c = [(6, None, 2_000), (7, Some(7), 8_000)];
        log.append_as_leader(&stamped_batch(&c, compression), 0)
            .unwrap();
        log.roll_now(now_ms()).unwrap();
        let all = stamps(&log);
        check_timestamps(&log, &all, &format!("{what} before"));

        let first = now_ms() + 10 * HOUR;
        let cleaner = cleaner_at(dir.path());
        cleaner.clean(&log, first, None).unwrap();
        let kept: Vec<_> = all.iter().copied().filter(|r| r.0 != 0).collect();
        check_timestamps(&log, &kept, &format!("{what} first pass"));
        for (offset, max) in [(1, 9_000), (6, 8_000)] {
            let h = header_at(&log, offset);
            assert_eq!(h.attributes & 0x40, 0x40, "{what}: horizon at {offset}");
            assert_eq!(
                h.base_timestamp,
                first + HOUR,
                "{what}: horizon at {offset}"
            );
            assert_eq!(h.max_timestamp, max, "{what}: max at {offset}");
            assert_eq!(h.compression(), header_at(&log, 5).compression(), "{what}");
        }
        assert_eq!(header_at(&log, 5).attributes & 0x40, 0, "{what}");

        // Past the horizon the tombstones go; the rest keep their times.
        log.append_as_leader(&stamped_batch(&[(8, Some(8), 10_000)], compression), 0)
            .unwrap();
        log.roll_now(now_ms()).unwrap();
        let mut expected: Vec<_> = kept.iter().copied().filter(|r| !r.2).collect();
        expected.push((8, 10_000, false));
        cleaner.clean(&log, first + HOUR, None).unwrap();
        check_timestamps(&log, &expected, &format!("{what} after the horizon"));
        let h = header_at(&log, 1);
        assert_eq!(h.records_count, 2, "{what}");
        assert_eq!(h.base_timestamp, first + HOUR, "{what}: horizon kept");

        // A restart re-validates every batch (CRCs, time index).
        drop(log);
        let log = open(dir.path(), compact_config(1 << 20), false);
        check_timestamps(&log, &expected, &format!("{what} after restart"));
    }
}

#[test]
fn a_log_append_time_batch_keeps_its_time_under_a_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = compact_config(1 << 20);
    config.message_timestamp_type = crate::config::TimestampType::LogAppendTime;
    let log = create(dir.path(), config);
    log.append_as_leader(
        &stamped_batch(&[(1, None, 1_000), (2, Some(2), 2_000)], Compression::Lz4),
        0,
    )
    .unwrap();
    log.roll_now(now_ms()).unwrap();
    let before = header_at(&log, 0);
    assert!(before.is_log_append_time());
    let appended = before.max_timestamp;
    let first = now_ms() + 10 * HOUR;
    cleaner_at(dir.path()).clean(&log, first, None).unwrap();
    let h = header_at(&log, 0);
    assert_eq!(h.attributes & 0x40, 0x40);
    assert_eq!(h.base_timestamp, first + HOUR);
    assert_eq!(h.max_timestamp, appended);
    assert!(h.is_log_append_time());
    assert_eq!(
        log.offset_for_timestamp(appended).unwrap(),
        Some((appended, 0))
    );
    assert_eq!(log.max_timestamp().unwrap(), Some((appended, 0)));
    assert_eq!(stamps(&log).len(), 2);
}
