//! Model-based tests of the partition log: random appends, reads, rolls,
//! retention, DeleteRecords, clean restarts and crashes with the active
//! segment torn at a random byte, checked against an in-memory model.

use std::fs::OpenOptions;
use std::path::Path;

use bytes::Bytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, TimestampType};
use proptest::prelude::*;
use uuid::Uuid;

use super::batch::BatchIter;
use super::control::{Marker, MarkerType};
use super::partition::{OpenOptions as LogOpen, PartitionLog};
use crate::config::{BrokerConfig, TopicConfig};

/// The test broker's topic defaults with small segments and a dense index.
pub(super) fn topic_config(segment_bytes: i32) -> TopicConfig {
    let mut c = BrokerConfig::default_for_tests("/nonexistent".into()).topic_defaults;
    c.segment_bytes = segment_bytes;
    c.index_interval_bytes = 256;
    c
}

/// One v2 batch of `count` records with payloads derived from `tag`.
pub(crate) fn make_batch(
    tag: u32,
    count: usize,
    value_len: usize,
    ts: i64,
    producer: Option<(i64, i16, i32)>,
) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| {
            let key = Bytes::from(format!("k{tag}-{i}"));
            let value = Bytes::from(vec![(tag % 251) as u8; value_len]);
            record(i, ts + i as i64, producer, key, Some(value))
        })
        .collect();
    crate::coordinator::codec::tests::raw_batch(&records, Compression::None)
}

/// A commit or abort marker of `pid` at `epoch` (coordinator epoch 0).
pub(crate) fn marker(pid: i64, epoch: i16, commit: bool) -> Marker {
    Marker {
        kind: if commit {
            MarkerType::Commit
        } else {
            MarkerType::Abort
        },
        producer_id: pid,
        producer_epoch: epoch,
        coordinator_epoch: 0,
    }
}

/// Record `i` of a test batch, keyed, stamped `ts`, not transactional;
/// `producer` is (id, epoch, base sequence) or none.
pub(super) fn record(
    i: usize,
    ts: i64,
    producer: Option<(i64, i16, i32)>,
    key: Bytes,
    value: Option<Bytes>,
) -> Record {
    Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: producer.map_or(-1, |p| p.0),
        producer_epoch: producer.map_or(-1, |p| p.1),
        timestamp_type: TimestampType::Creation,
        offset: i as i64,
        // The encoder groups records whose offset - sequence is constant;
        // -1 + i keeps the batch's base sequence at -1 (no producer).
        sequence: producer.map_or(i as i32 - 1, |p| p.2 + i as i32),
        timestamp: ts,
        key: Some(key),
        value,
        headers: Default::default(),
        delete_horizon: false,
    }
}

/// (offset, key) of every record in `bytes`.
fn decode_keys(bytes: &Bytes) -> Vec<(i64, String)> {
    let mut b = bytes.clone();
    let mut out = Vec::new();
    while !b.is_empty() {
        let set = RecordBatchDecoder::decode(&mut b).expect("stored batches decode");
        for r in set.records {
            out.push((
                r.offset,
                String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
            ));
        }
    }
    out
}

fn open(dir: &Path, config: TopicConfig, clean: bool, log_start: Option<i64>) -> PartitionLog {
    PartitionLog::open(
        dir,
        "t",
        0,
        Uuid::nil(),
        config,
        LogOpen {
            recovery_point: None,
            log_start_offset: log_start,
            clean_shutdown: clean,
            now_ms: 0,
        },
    )
    .expect("open")
}

#[derive(Debug, Clone)]
enum Op {
    Append { count: usize, value_len: usize },
    Read { at: u8, max_bytes: usize },
    CleanRestart,
    CrashTearing { keep_fraction: u8 },
    DeleteRecords { at: u8 },
    RetainBytes { bytes: u16 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..6, 0usize..300).prop_map(|(count, value_len)| Op::Append { count, value_len }),
        3 => (any::<u8>(), 1usize..3000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => Just(Op::CleanRestart),
        1 => any::<u8>().prop_map(|keep_fraction| Op::CrashTearing { keep_fraction }),
        1 => any::<u8>().prop_map(|at| Op::DeleteRecords { at }),
        1 => (0u16..4000).prop_map(|bytes| Op::RetainBytes { bytes }),
    ]
}

/// The model: every stored record as (offset, key), and the log start.
struct Model {
    records: Vec<(i64, String)>,
    log_start: i64,
}

impl Model {
    fn log_end(&self) -> i64 {
        self.records
            .last()
            .map_or(self.log_start, |r| r.0 + 1)
            .max(self.log_start)
    }
}

fn check_read(log: &PartitionLog, model: &Model, offset: i64, max_bytes: usize) {
    let end = model.log_end();
    match log.read(offset, max_bytes) {
        Ok(r) => {
            assert!(
                offset >= model.log_start && offset <= end,
                "read {offset} should be out of range"
            );
            assert_eq!(r.high_watermark, end);
            let got = decode_keys(&r.records);
            if offset < end {
                assert!(
                    !got.is_empty(),
                    "a read below the end returns at least one batch (KIP-74)"
                );
                let first = got
                    .iter()
                    .position(|(o, _)| *o == offset)
                    .expect("batch holding the offset");
                let expected: Vec<_> = model
                    .records
                    .iter()
                    .filter(|(o, _)| *o >= offset)
                    .take(got.len() - first)
                    .cloned()
                    .collect();
                assert_eq!(&got[first..], &expected[..]);
                // More than max_bytes only when a single batch is larger.
                if r.records.len() > max_bytes {
                    assert_eq!(BatchIter::new(&r.records).count(), 1);
                }
            } else {
                assert!(got.is_empty());
            }
        }
        Err(super::LogError::OffsetOutOfRange { .. }) => {
            assert!(
                offset < model.log_start || offset > end,
                "offset {offset} in [{}, {end}] refused",
                model.log_start
            );
        }
        Err(e) => panic!("read failed: {e}"),
    }
}

/// Tears the newest segment file at a fraction of its length, as a crash
/// mid-write would.
fn tear_active_segment(dir: &Path, keep_fraction: u8) -> Option<u64> {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    let last = logs.last()?;
    let len = std::fs::metadata(last).ok()?.len();
    let keep = len * keep_fraction as u64 / 255;
    OpenOptions::new()
        .write(true)
        .open(last)
        .unwrap()
        .set_len(keep)
        .unwrap();
    Some(keep)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in prop::collection::vec(op(), 1..60), segment_bytes in 400i32..4000) {
        let root = tempfile::tempdir().unwrap();
        let config = topic_config(segment_bytes);
        let mut log = PartitionLog::create(root.path(), "t", 0, Uuid::nil(), config.clone(), 0).unwrap();
        let dir = root.path().join("t-0");
        let mut model = Model { records: Vec::new(), log_start: 0 };
        let mut tag = 0u32;
        for op in ops {
            match op {
                Op::Append { count, value_len } => {
                    tag += 1;
                    let batch = make_batch(tag, count, value_len, 1_000 + tag as i64, None);
                    let appended = log.append_as_leader(&batch, 0).unwrap();
                    prop_assert_eq!(appended.base_offset, model.log_end());
                    let base = appended.base_offset;
                    for i in 0..count {
                        model.records.push((base + i as i64, format!("k{tag}-{i}")));
                    }
                }
                Op::Read { at, max_bytes } => {
                    let span = model.log_end() - model.log_start + 2;
                    let offset = model.log_start - 1 + (at as i64 % span);
                    check_read(&log, &model, offset, max_bytes);
                }
                Op::CleanRestart => {
                    log.close().unwrap();
                    let start = log.log_start_offset();
                    drop(log);
                    log = open(root.path(), config.clone(), true, Some(start));
                }
                Op::CrashTearing { keep_fraction } => {
                    let start = log.log_start_offset();
                    drop(log);
                    tear_active_segment(&dir, keep_fraction);
                    log = open(root.path(), config.clone(), false, Some(start));
                    // Recovery keeps exactly the whole batches before the tear.
                    let end = log.log_end_offset();
                    prop_assert!(end >= model.log_start.min(end));
                    model.records.retain(|(o, _)| *o < end);
                    if end < model.log_start {
                        model.log_start = end;
                    }
                    prop_assert_eq!(log.log_start_offset(), model.log_start);
                    prop_assert_eq!(end, model.log_end());
                }
                Op::DeleteRecords { at } => {
                    let span = model.log_end() - model.log_start + 1;
                    let target = model.log_start + at as i64 % span;
                    let low = log.delete_records_before(target).unwrap();
                    prop_assert_eq!(low, target);
                    model.log_start = target;
                    model.records.retain(|(o, _)| *o >= target);
                }
                Op::RetainBytes { bytes } => {
                    let mut c = config.clone();
                    c.retention_bytes = bytes as i64;
                    c.retention_ms = -1;
                    log.set_config(c);
                    log.apply_retention(0).unwrap();
                    log.set_config(config.clone());
                    let start = log.log_start_offset();
                    prop_assert!(start >= model.log_start);
                    model.log_start = start;
                    model.records.retain(|(o, _)| *o >= start);
                }
            }
            prop_assert_eq!(log.log_end_offset(), model.log_end());
            prop_assert_eq!(log.log_start_offset(), model.log_start);
        }
        // Everything in the model reads back in one pass.
        let mut offset = model.log_start;
        let mut seen = Vec::new();
        while offset < model.log_end() {
            let r = log.read(offset, 1 << 20).unwrap();
            let got = decode_keys(&r.records);
            prop_assert!(!got.is_empty());
            seen.extend(got.into_iter().filter(|(o, _)| *o >= offset));
            offset = seen.last().unwrap().0 + 1;
        }
        prop_assert_eq!(seen, model.records);
    }
}

#[test]
fn segments_roll_by_size_and_indexes_survive_restart() {
    let root = tempfile::tempdir().unwrap();
    let config = topic_config(1024);
    let log = PartitionLog::create(root.path(), "t", 0, Uuid::nil(), config.clone(), 0).unwrap();
    for tag in 0..100 {
        log.append_as_leader(&make_batch(tag, 3, 50, 1000 + tag as i64, None), 0)
            .unwrap();
    }
    assert!(log.segment_count() > 10, "{} segments", log.segment_count());
    let bases = log.segment_bases();
    log.close().unwrap();
    drop(log);
    let log = open(root.path(), config, true, None);
    assert_eq!(log.segment_bases(), bases);
    assert_eq!(log.log_end_offset(), 300);
    for offset in [0, 1, 2, 150, 299] {
        let r = log.read(offset, 1).unwrap();
        assert!(decode_keys(&r.records).iter().any(|(o, _)| *o == offset));
    }
    // Batch `tag` holds offsets 3*tag.. with timestamps 1000+tag..: 1050 is
    // first reached by the last record of batch 48.
    assert_eq!(log.offset_for_timestamp(1050).unwrap(), Some((1050, 146)));
    assert_eq!(log.offset_for_timestamp(5000).unwrap(), None);
    assert_eq!(log.max_timestamp().unwrap(), Some((1099 + 2, 299)));
}

#[test]
fn time_roll_uses_message_timestamps() {
    let root = tempfile::tempdir().unwrap();
    let mut config = topic_config(1 << 20);
    config.segment_ms = 1000;
    let log = PartitionLog::create(root.path(), "t", 0, Uuid::nil(), config, 0).unwrap();
    log.append_as_leader(&make_batch(1, 1, 10, 10_000, None), 0)
        .unwrap();
    log.append_as_leader(&make_batch(2, 1, 10, 11_000, None), 0)
        .unwrap();
    assert_eq!(
        log.segment_count(),
        1,
        "exactly segment.ms later does not roll"
    );
    log.append_as_leader(&make_batch(3, 1, 10, 11_001, None), 0)
        .unwrap();
    assert_eq!(log.segment_count(), 2);
}

#[test]
fn retention_by_time_keeps_the_active_segment() {
    let root = tempfile::tempdir().unwrap();
    let mut config = topic_config(200);
    config.retention_ms = 1000;
    let log = PartitionLog::create(root.path(), "t", 0, Uuid::nil(), config, 0).unwrap();
    for tag in 0..5 {
        log.append_as_leader(&make_batch(tag, 1, 150, 10_000 + tag as i64, None), 0)
            .unwrap();
    }
    assert_eq!(log.segment_count(), 5);
    assert_eq!(
        log.apply_retention(11_003).unwrap(),
        3,
        "segments with max ts 10000..10002 expire"
    );
    assert_eq!(log.log_start_offset(), 3);
    assert_eq!(log.apply_retention(1_000_000).unwrap(), 1);
    assert_eq!(log.segment_count(), 1, "the active segment stays");
    assert_eq!(log.log_start_offset(), 4);
}

#[test]
fn idempotent_duplicates_survive_clean_restart_and_crash() {
    let root = tempfile::tempdir().unwrap();
    let config = topic_config(1 << 20);
    let log = PartitionLog::create(root.path(), "t", 0, Uuid::nil(), config.clone(), 0).unwrap();
    let b0 = make_batch(1, 5, 10, 1000, Some((7, 0, 0)));
    let b1 = make_batch(2, 5, 10, 1000, Some((7, 0, 5)));
    assert_eq!(log.append_as_leader(&b0, 0).unwrap().base_offset, 0);
    assert_eq!(log.append_as_leader(&b1, 0).unwrap().base_offset, 5);
    let dup = log.append_as_leader(&b1, 0).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 5);
    assert_eq!(log.log_end_offset(), 10);
    // Crash: no snapshot at the end, state rebuilt from the log.
    drop(log);
    let log = open(root.path(), config.clone(), false, None);
    let dup = log.append_as_leader(&b1, 0).unwrap();
    assert!(dup.duplicate && dup.base_offset == 5);
    let gap = make_batch(3, 1, 10, 1000, Some((7, 0, 11)));
    assert_eq!(log.append_as_leader(&gap, 0).unwrap_err().error_code(), 45);
    let old_epoch = make_batch(3, 1, 10, 1000, Some((7, -1, 10)));
    assert!(log.append_as_leader(&old_epoch, 0).is_err());
    log.close().unwrap();
    drop(log);
    let log = open(root.path(), config, true, None);
    assert!(log.append_as_leader(&b1, 0).unwrap().duplicate);
    assert_eq!(
        log.append_as_leader(&make_batch(4, 1, 10, 1000, Some((7, 0, 10))), 0)
            .unwrap()
            .base_offset,
        10
    );
}

#[test]
fn corrupt_middle_of_active_segment_truncates_there() {
    let root = tempfile::tempdir().unwrap();
    let config = topic_config(1 << 20);
    let log = PartitionLog::create(root.path(), "t", 0, Uuid::nil(), config.clone(), 0).unwrap();
    let mut sizes = Vec::new();
    for tag in 0..10 {
        let b = make_batch(tag, 2, 40, 1000, None);
        sizes.push(b.len());
        log.append_as_leader(&b, 0).unwrap();
    }
    drop(log);
    // Flip a byte inside the 6th batch's records.
    let path = root.path().join("t-0").join("00000000000000000000.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let pos: usize = sizes[..5].iter().sum::<usize>() + 70;
    bytes[pos] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let log = open(root.path(), config, false, None);
    assert_eq!(
        log.log_end_offset(),
        10,
        "five whole batches of two records survive"
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().len() as usize,
        sizes[..5].iter().sum::<usize>()
    );
}

#[test]
fn startup_removes_only_directories_that_are_ours() {
    let root = tempfile::tempdir().unwrap();
    let stray = PartitionLog::create(
        root.path(),
        "gone.v2",
        0,
        Uuid::nil(),
        topic_config(1024),
        0,
    )
    .unwrap();
    drop(stray);
    std::fs::create_dir(root.path().join("notes-1")).unwrap();
    std::fs::create_dir(root.path().join("photos")).unwrap();
    let manager =
        super::LogManager::open(root.path(), &crate::metadata::MetadataImage::default()).unwrap();
    drop(manager);
    assert!(
        !root.path().join("gone.v2-0").exists(),
        "a partition of no topic is removed"
    );
    assert!(
        root.path().join("notes-1").exists(),
        "no partition.metadata: not ours"
    );
    assert!(root.path().join("photos").exists());
}
