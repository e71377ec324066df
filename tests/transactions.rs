//! Transactions through librdkafka (the `rdkafka` crate's transactional
//! producer API) against an in-process broker, and against the real binary
//! for kill -9: what read_committed and read_uncommitted consumers see of
//! committed, aborted and open transactions (control batches occupy
//! offsets; the last stable offset holds back everything after an open
//! transaction), zombie fencing, the coordinator's timeout abort,
//! `transaction.max.timeout.ms`, and consume-transform-produce exactly once
//! across broker crashes with `send_offsets_to_transaction`.
//!
//! Clients are blocking and driven from the test thread (the in-process
//! broker has a runtime of its own). A watchdog aborts a test whose client
//! call hangs, instead of hanging `cargo test`.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    admin, broker_runtime, close_bounded, consumer, consumer_config, create_topic, flush_all_ok,
    free_port, member_config, numbered_payload, partitions_tpl, recording_producer, send_blocking,
    wait_for, watchdog, BrokerProcess, Delivery, RecordingProducer, TestBroker, TIMEOUT,
};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

// ---------------------------------------------------------------------------
// Harness: transactional producers, readers (the watchdog and bounded
// waits are in common).

/// Code, flags and text of a client error, for messages and the report.
fn describe_err(e: &KafkaError) -> String {
    match e {
        KafkaError::Transaction(t) => format!(
            "{:?} (fatal {}, retriable {}, requires abort {}): {}",
            t.code(),
            t.is_fatal(),
            t.is_retriable(),
            t.txn_requires_abort(),
            t
        ),
        other => format!("{other:?}"),
    }
}

fn txn_ok(what: &str, r: KafkaResult<()>) {
    if let Err(e) = r {
        panic!("{what}: {}", describe_err(&e));
    }
}

/// A transactional producer (`transactional.id` implies idempotence and
/// acks=all) whose delivery reports land in its context.
fn txn_producer(bootstrap: &str, txn_id: &str, extra: &[(&str, &str)]) -> RecordingProducer {
    let mut settings = vec![("transactional.id", txn_id), ("linger.ms", "5")];
    settings.extend_from_slice(extra);
    recording_producer(bootstrap, &settings)
}

fn plain_producer(bootstrap: &str) -> RecordingProducer {
    recording_producer(
        bootstrap,
        &[("linger.ms", "5"), ("enable.idempotence", "true")],
    )
}

/// Sends `{tag}-{i}` for each `i` in `ids` to `partition` (opaque = i).
fn send_tagged(
    producer: &RecordingProducer,
    topic: &str,
    partition: i32,
    tag: &str,
    ids: std::ops::Range<usize>,
) {
    for i in ids {
        let value = format!("{tag}-{i}");
        send_blocking(
            producer,
            BaseRecord::<(), str, usize>::with_opaque_to(topic, i)
                .partition(partition)
                .payload(value.as_str()),
        );
    }
}

/// Asserts that the reports (sorted by id) landed at `offsets`.
fn assert_offsets(what: &str, reports: &[Delivery], offsets: std::ops::Range<i64>) {
    let mut got: Vec<(usize, i64)> = reports.iter().map(|d| (d.id, d.offset)).collect();
    got.sort_unstable();
    let got: Vec<i64> = got.into_iter().map(|(_, o)| o).collect();
    assert_eq!(
        got,
        offsets.collect::<Vec<_>>(),
        "{what}: acknowledged offsets"
    );
}

/// One record as a reader saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    partition: i32,
    offset: i64,
    value: String,
}

/// Consumer context printing librdkafka's log lines to stderr; set
/// `RUNNEL_TEST_RDKAFKA_DEBUG` (a librdkafka `debug` value such as `fetch`)
/// to see what the readers' fetches return.
struct StderrLog;

impl ClientContext for StderrLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        eprintln!("librdkafka {level:?} {fac}: {message}");
    }
}

impl ConsumerContext for StderrLog {}

type Reader = BaseConsumer<StderrLog>;

/// An assign-only reader at `isolation` ("read_committed" or
/// "read_uncommitted") that reports partition EOF, i.e. reaching the end of
/// what that isolation level may read (the high watermark, or the last
/// stable offset for read_committed).
fn reader(bootstrap: &str, isolation: &str) -> Reader {
    let mut cfg = consumer_config(
        bootstrap,
        &[
            ("isolation.level", isolation),
            ("enable.partition.eof", "true"),
            ("fetch.wait.max.ms", "100"),
        ],
    );
    debug_from_env(&mut cfg);
    cfg.create_with_context(StderrLog).expect("reader")
}

/// librdkafka debug logging as `RUNNEL_TEST_RDKAFKA_DEBUG` asks (see
/// [`StderrLog`]).
fn debug_from_env(cfg: &mut ClientConfig) {
    if let Ok(debug) = std::env::var("RUNNEL_TEST_RDKAFKA_DEBUG") {
        cfg.set("debug", &debug)
            .set_log_level(RDKafkaLogLevel::Debug);
    }
}

fn assign_at<C: ConsumerContext>(c: &BaseConsumer<C>, topic: &str, starts: &[(i32, Offset)]) {
    let mut tpl = TopicPartitionList::new();
    for &(p, o) in starts {
        tpl.add_partition_offset(topic, p, o).expect("tpl");
    }
    c.assign(&tpl).expect("assign");
}

/// Polls `topic`/`partition` until librdkafka reports EOF (the fetch
/// position reached the end offset of the reader's isolation level) with
/// the consumer's position at `end` or beyond, and returns the records
/// delivered before. An EOF below `end` is an earlier one still queued (the
/// end has moved since) and is passed over; `end` 0 takes any EOF. Panics
/// on any other consumer error or after [`TIMEOUT`].
fn read_to_eof<C: ConsumerContext>(
    c: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
    end: i64,
) -> Vec<Seen> {
    let deadline = Instant::now() + TIMEOUT;
    let mut got = Vec::new();
    let mut last_eof = None;
    loop {
        assert!(
            Instant::now() < deadline,
            "{topic}/{partition}: no EOF at position {end} or beyond within {TIMEOUT:?}; \
             {} records read: {:?}; last EOF at position {last_eof:?}",
            got.len(),
            offsets_values(&got)
        );
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => got.push(Seen {
                partition: m.partition(),
                offset: m.offset(),
                value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            }),
            Some(Err(KafkaError::PartitionEOF(p))) if p == partition => {
                let at = position(c, topic, partition);
                if end == 0 || matches!(at, Offset::Offset(o) if o >= end) {
                    return got;
                }
                last_eof = Some(at);
            }
            Some(Err(e)) => panic!("consumer error on {topic}/{partition}: {e}"),
        }
    }
}

/// (offset, value) pairs of `seen`.
fn offsets_values(seen: &[Seen]) -> Vec<(i64, String)> {
    seen.iter().map(|s| (s.offset, s.value.clone())).collect()
}

/// `(offset, "{tag}-{i}")` for consecutive offsets from `first`.
fn expect_run(tag: &str, ids: std::ops::Range<usize>, first: i64) -> Vec<(i64, String)> {
    ids.enumerate()
        .map(|(k, i)| (first + k as i64, format!("{tag}-{i}")))
        .collect()
}

/// Reads `topic`/`partition` from `start` to the current end offset of
/// `isolation` with a fresh reader.
fn read_partition(
    bootstrap: &str,
    isolation: &str,
    topic: &str,
    partition: i32,
    start: Offset,
) -> Vec<(i64, String)> {
    let end = end_offset(bootstrap, isolation, topic, partition);
    let r = reader(bootstrap, isolation);
    assign_at(&r, topic, &[(partition, start)]);
    offsets_values(&read_to_eof(&r, topic, partition, end))
}

/// The end offset ListOffsets(latest) reports at `isolation`: the high
/// watermark for read_uncommitted, the last stable offset for
/// read_committed (librdkafka's query uses the client's isolation.level).
fn end_offset(bootstrap: &str, isolation: &str, topic: &str, partition: i32) -> i64 {
    let c = consumer(bootstrap, &[("isolation.level", isolation)]);
    let (_, high) = c
        .fetch_watermarks(topic, partition, TIMEOUT)
        .unwrap_or_else(|e| panic!("watermarks of {topic}/{partition} ({isolation}): {e}"));
    high
}

/// The position (next offset to deliver) of `c` on `topic`/`partition`.
fn position<C: ConsumerContext>(c: &BaseConsumer<C>, topic: &str, partition: i32) -> Offset {
    let tpl = c.position().expect("position");
    let e = tpl
        .find_partition(topic, partition)
        .unwrap_or_else(|| panic!("no position for {topic}/{partition}"));
    e.offset()
}

const RC: &str = "read_committed";
const RU: &str = "read_uncommitted";

// ---------------------------------------------------------------------------
// 1. A committed and an aborted transaction with plain records around them:
// what each isolation level sees, and where the control batches sit.

#[test]
fn committed_and_aborted_transactions_by_isolation_level() {
    let _wd = watchdog(
        "committed_and_aborted_transactions_by_isolation_level",
        Duration::from_secs(120),
    );
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start());
    let bootstrap = broker.bootstrap();
    const TOPIC: &str = "txn-views";
    rt.block_on(create_topic(&admin(&bootstrap), TOPIC, 1, &[]));

    let txp = txn_producer(&bootstrap, "views-tx", &[]);
    txn_ok("init_transactions", txp.init_transactions(TIMEOUT));
    let plain = plain_producer(&bootstrap);

    // Committed: 10 records at 0..9, COMMIT marker at 10.
    txn_ok("begin_transaction", txp.begin_transaction());
    send_tagged(&txp, TOPIC, 0, "committed", 0..10);
    txn_ok("commit_transaction", txp.commit_transaction(TIMEOUT));
    assert_offsets("committed txn", &flush_all_ok(&txp, 10), 0..10);
    assert_eq!(end_offset(&bootstrap, RU, TOPIC, 0), 11, "high watermark");
    assert_eq!(
        end_offset(&bootstrap, RC, TOPIC, 0),
        11,
        "last stable offset"
    );

    // A read_committed reader gets the 10 records, and its position moves
    // past the marker.
    let rc = reader(&bootstrap, RC);
    assign_at(&rc, TOPIC, &[(0, Offset::Beginning)]);
    let first = read_to_eof(&rc, TOPIC, 0, 11);
    assert_eq!(
        offsets_values(&first),
        expect_run("committed", 0..10, 0),
        "read_committed after the first commit"
    );
    assert_eq!(
        position(&rc, TOPIC, 0),
        Offset::Offset(11),
        "read_committed position after the records and the COMMIT marker at 10"
    );

    // Plain records at 11..15.
    send_tagged(&plain, TOPIC, 0, "plain-a", 0..5);
    assert_offsets("plain-a", &flush_all_ok(&plain, 5), 11..16);

    // Aborted: 10 records at 16..25 (in the log before the abort), ABORT
    // marker at 26.
    txn_ok("begin_transaction", txp.begin_transaction());
    send_tagged(&txp, TOPIC, 0, "aborted", 0..10);
    assert_offsets("aborted txn", &flush_all_ok(&txp, 10), 16..26);
    txn_ok("abort_transaction", txp.abort_transaction(TIMEOUT));

    // Plain records at 27..31.
    send_tagged(&plain, TOPIC, 0, "plain-b", 0..5);
    assert_offsets("plain-b", &flush_all_ok(&plain, 5), 27..32);

    assert_eq!(end_offset(&bootstrap, RU, TOPIC, 0), 32, "high watermark");
    assert_eq!(
        end_offset(&bootstrap, RC, TOPIC, 0),
        32,
        "last stable offset with no open transaction"
    );

    let committed_view: Vec<(i64, String)> = [
        expect_run("committed", 0..10, 0),
        expect_run("plain-a", 0..5, 11),
        expect_run("plain-b", 0..5, 27),
    ]
    .concat();
    let uncommitted_view: Vec<(i64, String)> = [
        expect_run("committed", 0..10, 0),
        expect_run("plain-a", 0..5, 11),
        expect_run("aborted", 0..10, 16),
        expect_run("plain-b", 0..5, 27),
    ]
    .concat();

    // The reader that stopped at 11 continues: the aborted records skipped.
    let rest = read_to_eof(&rc, TOPIC, 0, 32);
    assert_eq!(
        offsets_values(&rest),
        committed_view[10..].to_vec(),
        "read_committed continuing from 11"
    );
    assert_eq!(position(&rc, TOPIC, 0), Offset::Offset(32));

    assert_eq!(
        read_partition(&bootstrap, RC, TOPIC, 0, Offset::Beginning),
        committed_view,
        "read_committed from the beginning"
    );
    let ru = reader(&bootstrap, RU);
    assign_at(&ru, TOPIC, &[(0, Offset::Beginning)]);
    assert_eq!(
        offsets_values(&read_to_eof(&ru, TOPIC, 0, 32)),
        uncommitted_view,
        "read_uncommitted from the beginning: every data record, aborted ones included"
    );
    assert_eq!(position(&ru, TOPIC, 0), Offset::Offset(32));

    // Starting on a control batch or inside the aborted transaction.
    assert_eq!(
        read_partition(&bootstrap, RC, TOPIC, 0, Offset::Offset(10)).first(),
        Some(&(11, "plain-a-0".to_owned())),
        "read_committed from the COMMIT marker's offset"
    );
    assert_eq!(
        read_partition(&bootstrap, RU, TOPIC, 0, Offset::Offset(10)).first(),
        Some(&(11, "plain-a-0".to_owned())),
        "read_uncommitted from the COMMIT marker's offset"
    );
    assert_eq!(
        read_partition(&bootstrap, RC, TOPIC, 0, Offset::Offset(20)),
        expect_run("plain-b", 0..5, 27),
        "read_committed from the middle of the aborted transaction"
    );
    assert_eq!(
        read_partition(&bootstrap, RU, TOPIC, 0, Offset::Offset(26)),
        expect_run("plain-b", 0..5, 27),
        "read_uncommitted from the ABORT marker's offset"
    );
}

// ---------------------------------------------------------------------------
// 2. An open transaction holds back read_committed readers at its first
// offset (the LSO), plain records written after it included, until it
// commits.

#[test]
fn read_committed_never_sees_an_open_transaction() {
    let _wd = watchdog(
        "read_committed_never_sees_an_open_transaction",
        Duration::from_secs(120),
    );
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start());
    let bootstrap = broker.bootstrap();
    const TOPIC: &str = "txn-open";
    rt.block_on(create_topic(&admin(&bootstrap), TOPIC, 1, &[]));

    let txp = txn_producer(&bootstrap, "open-tx", &[]);
    txn_ok("init_transactions", txp.init_transactions(TIMEOUT));
    txn_ok("begin_transaction", txp.begin_transaction());
    send_tagged(&txp, TOPIC, 0, "open", 0..10);
    // Acknowledged (acks=all): in the log, transaction still open.
    assert_offsets("open txn", &flush_all_ok(&txp, 10), 0..10);
    let plain = plain_producer(&bootstrap);
    send_tagged(&plain, TOPIC, 0, "after", 0..5);
    assert_offsets("plain after the open txn", &flush_all_ok(&plain, 5), 10..15);

    assert_eq!(end_offset(&bootstrap, RU, TOPIC, 0), 15, "high watermark");
    assert_eq!(
        end_offset(&bootstrap, RC, TOPIC, 0),
        0,
        "ListOffsets latest at read_committed = last stable offset = the open txn's first offset"
    );
    assert_eq!(
        read_partition(&bootstrap, RU, TOPIC, 0, Offset::Beginning),
        [expect_run("open", 0..10, 0), expect_run("after", 0..5, 10)].concat(),
        "read_uncommitted sees the open transaction's records"
    );

    let rc = reader(&bootstrap, RC);
    assign_at(&rc, TOPIC, &[(0, Offset::Beginning)]);
    let before = read_to_eof(&rc, TOPIC, 0, 0);
    assert_eq!(
        offsets_values(&before),
        vec![],
        "read_committed before the commit (EOF at the LSO)"
    );
    // A reader starting above the LSO (at the plain records) gets no EOF
    // either (librdkafka's EOF is fetch position == LSO, as against Kafka):
    // it must simply receive nothing.
    let rc_late = reader(&bootstrap, RC);
    assign_at(&rc_late, TOPIC, &[(0, Offset::Offset(10))]);
    // Both keep fetching a while: nothing may arrive.
    let until = Instant::now() + Duration::from_millis(2000);
    while Instant::now() < until {
        for c in [&rc, &rc_late] {
            match c.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => panic!(
                    "read_committed delivered offset {} ({:?}) while the transaction is open",
                    m.offset(),
                    m.payload().map(String::from_utf8_lossy)
                ),
                Some(Err(KafkaError::PartitionEOF(_))) | None => {}
                Some(Err(e)) => panic!("read_committed consumer error: {e}"),
            }
        }
    }

    txn_ok("commit_transaction", txp.commit_transaction(TIMEOUT));
    assert_eq!(
        end_offset(&bootstrap, RU, TOPIC, 0),
        16,
        "high watermark after the COMMIT marker"
    );
    assert_eq!(
        end_offset(&bootstrap, RC, TOPIC, 0),
        16,
        "last stable offset after the commit"
    );
    let after = read_to_eof(&rc, TOPIC, 0, 16);
    assert_eq!(
        offsets_values(&after),
        [expect_run("open", 0..10, 0), expect_run("after", 0..5, 10)].concat(),
        "read_committed after the commit"
    );
    assert_eq!(position(&rc, TOPIC, 0), Offset::Offset(16));
    assert_eq!(
        offsets_values(&read_to_eof(&rc_late, TOPIC, 0, 16)),
        expect_run("after", 0..5, 10),
        "read_committed from offset 10 after the commit"
    );
}

// ---------------------------------------------------------------------------
// 4. Zombie fencing: a second producer with the same transactional.id
// aborts the first one's open transaction and fences it.

#[test]
fn new_producer_fences_the_zombie_and_aborts_its_transaction() {
    let _wd = watchdog(
        "new_producer_fences_the_zombie_and_aborts_its_transaction",
        Duration::from_secs(120),
    );
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start());
    let bootstrap = broker.bootstrap();
    const TOPIC: &str = "txn-zombie";
    rt.block_on(create_topic(&admin(&bootstrap), TOPIC, 1, &[]));

    let a = txn_producer(&bootstrap, "zombie-tx", &[]);
    txn_ok("A init_transactions", a.init_transactions(TIMEOUT));
    txn_ok("A begin_transaction", a.begin_transaction());
    send_tagged(&a, TOPIC, 0, "a", 0..5);
    assert_offsets("A's records", &flush_all_ok(&a, 5), 0..5);
    assert_eq!(end_offset(&bootstrap, RC, TOPIC, 0), 0, "LSO under A's txn");

    let b = txn_producer(&bootstrap, "zombie-tx", &[]);
    let t = Instant::now();
    txn_ok(
        "B init_transactions (same transactional.id, A's txn open)",
        b.init_transactions(TIMEOUT),
    );
    eprintln!("B's init_transactions took {:?}", t.elapsed());
    // InitProducerId answers only once A's transaction is fully aborted.
    assert_eq!(
        end_offset(&bootstrap, RU, TOPIC, 0),
        6,
        "high watermark: A's records and an ABORT marker"
    );
    assert_eq!(
        end_offset(&bootstrap, RC, TOPIC, 0),
        6,
        "last stable offset once B's init_transactions returned"
    );
    let rc = reader(&bootstrap, RC);
    assign_at(&rc, TOPIC, &[(0, Offset::Beginning)]);
    assert_eq!(
        offsets_values(&read_to_eof(&rc, TOPIC, 0, 6)),
        vec![],
        "read_committed sees none of A's records"
    );
    assert_eq!(position(&rc, TOPIC, 0), Offset::Offset(6));

    // The zombie carries on: its produce and its commit are refused.
    let late = "a-late";
    let sent = a.send(
        BaseRecord::<(), str, usize>::with_opaque_to(TOPIC, 99)
            .partition(0)
            .payload(late),
    );
    let send_outcome = match sent {
        Err((e, _)) => format!("send refused locally: {e}"),
        Ok(()) => {
            // Delivery fails (the producer turns fatal) or, at worst, the
            // flush gives up; either way no success may be reported.
            let _ = a.flush(TIMEOUT);
            let reports = a.context().take();
            assert_eq!(reports.len(), 1, "one delivery report for the late record");
            assert!(
                reports[0].error.is_some(),
                "the zombie's late record was acknowledged: {:?}",
                reports[0]
            );
            format!("delivery failed: {}", reports[0].error.as_ref().unwrap())
        }
    };
    let commit = a.commit_transaction(TIMEOUT);
    let commit_outcome = commit
        .as_ref()
        .err()
        .map(describe_err)
        .unwrap_or_else(|| "Ok".into());
    // Were the error only abortable, the zombie could abort and go on: its
    // abort must then be refused as fenced (EndTxn with the old epoch).
    let abort_outcome = match &commit {
        Err(KafkaError::Transaction(e)) if !e.is_fatal() && e.txn_requires_abort() => Some(
            a.abort_transaction(TIMEOUT)
                .err()
                .map(|e| describe_err(&e))
                .unwrap_or_else(|| "Ok".into()),
        ),
        _ => None,
    };
    let fatal = a.client().fatal_error();
    eprintln!(
        "zombie: {send_outcome}; commit_transaction: {commit_outcome}; \
         abort_transaction after it: {abort_outcome:?}; fatal_error: {fatal:?}"
    );
    drop(a);

    // B works normally.
    txn_ok("B begin_transaction", b.begin_transaction());
    send_tagged(&b, TOPIC, 0, "b", 0..5);
    txn_ok("B commit_transaction", b.commit_transaction(TIMEOUT));
    assert_offsets("B's records", &flush_all_ok(&b, 5), 6..11);
    assert_eq!(end_offset(&bootstrap, RC, TOPIC, 0), 12);
    assert_eq!(
        offsets_values(&read_to_eof(&rc, TOPIC, 0, 12)),
        expect_run("b", 0..5, 6),
        "read_committed: B's records only"
    );
    assert_eq!(
        read_partition(&bootstrap, RU, TOPIC, 0, Offset::Beginning),
        [expect_run("a", 0..5, 0), expect_run("b", 0..5, 6)].concat(),
        "read_uncommitted: A's aborted records and B's; the late record was never written"
    );

    // What Kafka makes of a zombie: its produce with the old epoch is
    // refused with INVALID_PRODUCER_EPOCH (TV1; a stale epoch in the
    // coordinator's partition verification is PRODUCER_FENCED, which the
    // produce path turns into INVALID_PRODUCER_EPOCH), which librdkafka
    // raises as the fatal ERR__FENCED; the commit then fails with it.
    match &commit {
        Err(KafkaError::Transaction(e)) => {
            assert!(
                e.is_fatal() && e.code() == RDKafkaErrorCode::Fenced,
                "the zombie is not fenced: its commit failed with {commit_outcome} (late \
                 record: {send_outcome}; abort after it: {abort_outcome:?}); librdkafka \
                 reports fencing (PRODUCER_FENCED or INVALID_PRODUCER_EPOCH from the broker) \
                 as the fatal ERR__FENCED"
            );
        }
        Err(other) => panic!("zombie's commit failed, but not as a transaction error: {other:?}"),
        Ok(()) => panic!("the fenced producer's commit_transaction succeeded"),
    }
}

// ---------------------------------------------------------------------------
// 5. A transaction left open past transaction.timeout.ms is aborted by the
// coordinator.

/// The broker's scan interval for timed-out transactions (Kafka's key;
/// default 10 s).
const ABORT_SCAN_KEY: &str = "transaction.abort.timed.out.transaction.cleanup.interval.ms";

#[test]
fn coordinator_aborts_a_timed_out_transaction() {
    let _wd = watchdog(
        "coordinator_aborts_a_timed_out_transaction",
        Duration::from_secs(120),
    );
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start_with(|c| {
        c.set(ABORT_SCAN_KEY, "200").expect("abort scan interval");
    }));
    let bootstrap = broker.bootstrap();
    const TOPIC: &str = "txn-timeout";
    rt.block_on(create_topic(&admin(&bootstrap), TOPIC, 1, &[]));

    let p = txn_producer(
        &bootstrap,
        "timeout-tx",
        &[("transaction.timeout.ms", "2000")],
    );
    txn_ok("init_transactions", p.init_transactions(TIMEOUT));
    let t0 = Instant::now();
    txn_ok("begin_transaction", p.begin_transaction());
    send_tagged(&p, TOPIC, 0, "doomed", 0..5);
    assert_offsets("doomed txn", &flush_all_ok(&p, 5), 0..5);
    assert_eq!(end_offset(&bootstrap, RC, TOPIC, 0), 0, "LSO under the txn");

    // The producer now idles; the coordinator must abort the transaction
    // (an ABORT marker at 5 moves the LSO to 6).
    let aborted_after = wait_for(
        Duration::from_secs(30),
        || {
            format!(
                "the LSO did not move past the open transaction (LSO {}, HWM {}); \
                 transaction.timeout.ms=2000, {ABORT_SCAN_KEY}=200",
                end_offset(&bootstrap, RC, TOPIC, 0),
                end_offset(&bootstrap, RU, TOPIC, 0)
            )
        },
        || (end_offset(&bootstrap, RC, TOPIC, 0) >= 6).then(|| t0.elapsed()),
    );
    eprintln!("timed-out transaction aborted {aborted_after:?} after begin_transaction");
    assert!(
        aborted_after >= Duration::from_millis(2000),
        "aborted {aborted_after:?} after the transaction began, before its 2000 ms timeout"
    );
    assert_eq!(
        end_offset(&bootstrap, RU, TOPIC, 0),
        6,
        "HWM: 5 records + ABORT marker"
    );

    let rc = reader(&bootstrap, RC);
    assign_at(&rc, TOPIC, &[(0, Offset::Beginning)]);
    assert_eq!(
        offsets_values(&read_to_eof(&rc, TOPIC, 0, 6)),
        vec![],
        "read_committed sees none of the timed-out transaction"
    );
    assert_eq!(position(&rc, TOPIC, 0), Offset::Offset(6));
    let plain = plain_producer(&bootstrap);
    send_tagged(&plain, TOPIC, 0, "later", 0..1);
    assert_offsets("plain after the abort", &flush_all_ok(&plain, 1), 6..7);
    assert_eq!(
        offsets_values(&read_to_eof(&rc, TOPIC, 0, 7)),
        expect_run("later", 0..1, 6)
    );

    // The producer's commit must fail: its transaction is gone (and its
    // epoch bumped by the coordinator).
    let commit = p.commit_transaction(TIMEOUT);
    eprintln!(
        "commit after the timeout abort: {}; fatal_error: {:?}",
        commit
            .as_ref()
            .err()
            .map(describe_err)
            .unwrap_or_else(|| "Ok".into()),
        p.client().fatal_error()
    );
    match &commit {
        Ok(()) => panic!("commit_transaction succeeded after the coordinator aborted the txn"),
        Err(KafkaError::Transaction(e)) => assert!(
            e.is_fatal() || e.txn_requires_abort(),
            "commit after the timeout abort failed with a retriable error only: {e}"
        ),
        Err(other) => panic!("commit failed, but not as a transaction error: {other:?}"),
    }
    assert_eq!(
        read_partition(&bootstrap, RC, TOPIC, 0, Offset::Beginning),
        expect_run("later", 0..1, 6),
        "read_committed after the failed commit"
    );
}

// ---------------------------------------------------------------------------
// 6. transaction.timeout.ms above the broker's transaction.max.timeout.ms.

#[test]
fn transaction_timeout_above_broker_max_is_refused() {
    let _wd = watchdog(
        "transaction_timeout_above_broker_max_is_refused",
        Duration::from_secs(120),
    );
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start_with(|c| {
        c.set("transaction.max.timeout.ms", "30000")
            .expect("transaction.max.timeout.ms");
    }));
    let bootstrap = broker.bootstrap();

    let too_long = txn_producer(
        &bootstrap,
        "too-long-tx",
        &[("transaction.timeout.ms", "30001")],
    );
    match too_long.init_transactions(TIMEOUT) {
        Ok(()) => {
            panic!("init_transactions with 30001 ms > transaction.max.timeout.ms=30000 succeeded")
        }
        Err(KafkaError::Transaction(e)) => {
            eprintln!(
                "30001 ms: {}",
                describe_err(&KafkaError::Transaction(e.clone()))
            );
            assert_eq!(e.code(), RDKafkaErrorCode::InvalidTransactionTimeout, "{e}");
            assert!(
                e.is_fatal(),
                "librdkafka treats INVALID_TRANSACTION_TIMEOUT as fatal: {e}"
            );
        }
        Err(other) => panic!("init_transactions failed with {other:?}"),
    }
    drop(too_long);

    // The maximum itself is allowed.
    let at_max = txn_producer(
        &bootstrap,
        "at-max-tx",
        &[("transaction.timeout.ms", "30000")],
    );
    txn_ok(
        "init_transactions at the maximum",
        at_max.init_transactions(TIMEOUT),
    );
    drop(at_max);

    // Kafka's default maximum is 15 minutes.
    let default_broker = rt.block_on(TestBroker::start());
    let over_default = txn_producer(
        &default_broker.bootstrap(),
        "over-default-tx",
        &[("transaction.timeout.ms", "900001")],
    );
    match over_default.init_transactions(TIMEOUT) {
        Err(KafkaError::Transaction(e))
            if e.code() == RDKafkaErrorCode::InvalidTransactionTimeout => {}
        other => panic!(
            "900001 ms against the default transaction.max.timeout.ms (900000): {:?}",
            other.map_err(|e| describe_err(&e))
        ),
    }
}

// ---------------------------------------------------------------------------
// 3. Consume-transform-produce exactly once across kill -9 of the broker.

const EOS_IN: &str = "eos-in";
const EOS_OUT: &str = "eos-out";
const EOS_PARTITIONS: i32 = 4;
const EOS_RECORDS: usize = 100_000;
const EOS_BATCH: usize = 500;
const EOS_GROUP: &str = "eos-copier";
const EOS_TXN_ID: &str = "eos-copier-tx";
/// Bound on each client call of a processor.
const OP_TIMEOUT: Duration = Duration::from_secs(20);

fn eos_value(payload: &[u8]) -> Option<usize> {
    // numbered_payload("eos", i): "eos-{i:010}-..."
    std::str::from_utf8(payload.get(4..14)?).ok()?.parse().ok()
}

/// What every processor instance committed, together.
#[derive(Default)]
struct Tally {
    txns: AtomicUsize,
    records: AtomicUsize,
}

/// What one processor instance did.
#[derive(Debug, Default)]
struct ProcessorReport {
    name: String,
    init: Option<Duration>,
    /// From the start to the first input record (group join, offsets).
    first_record: Option<Duration>,
    txns: usize,
    records: usize,
    /// Transactions committed after the broker was killed under it.
    txns_after_kill: usize,
    /// Of those, the ones begun before the kill (open across the restart).
    txns_across_kill: usize,
    /// Input values of the transaction left open on purpose (armed).
    armed_values: Vec<usize>,
    /// Records of a transaction the processor left open when it ended.
    open_at_exit: usize,
    /// An error that ended it while the broker was not being killed.
    error: Option<String>,
    /// Errors once the broker had been killed, for the report (the last
    /// one, if any, ended the processor).
    kill_errors: Vec<String>,
    close_error: Option<String>,
}

/// What the test tells a processor.
#[derive(Default)]
struct Signals {
    /// Finish the current transaction (or leave it open if armed) and end.
    stop: AtomicBool,
    /// Set by the processor once its armed transaction is flushed and its
    /// offsets are sent.
    armed: AtomicBool,
    /// The broker is being killed: errors are expected from now on, and the
    /// processor ends on the first one instead of failing the test.
    killed: AtomicBool,
}

struct Processor {
    signals: Arc<Signals>,
    thread: thread::JoinHandle<ProcessorReport>,
}

impl Processor {
    /// Starts a copier: a group member reading `eos-in` (read_committed)
    /// and a transactional producer writing each record to the same
    /// partition of `eos-out`, committing the consumer's offsets in the
    /// same transaction, `EOS_BATCH` records per transaction. With
    /// `arm_after`, the first transaction that begins once the tally has
    /// that many records is flushed and its offsets sent, then left open
    /// until the stop (the broker is killed under it).
    fn start(
        name: &str,
        bootstrap: &str,
        tally: Arc<Tally>,
        arm_after: Option<usize>,
    ) -> Processor {
        let signals = Arc::new(Signals::default());
        let (sig, bootstrap, name) = (signals.clone(), bootstrap.to_owned(), name.to_owned());
        let thread = thread::Builder::new()
            .name(name.clone())
            .spawn(move || run_processor(name, &bootstrap, &tally, arm_after, &sig))
            .expect("spawn processor");
        Processor { signals, thread }
    }

    fn finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Tells it to stop and waits (bounded) for its report.
    fn stop(self) -> ProcessorReport {
        self.signals.stop.store(true, Ordering::SeqCst);
        let limit = OP_TIMEOUT * 3 + TIMEOUT;
        let deadline = Instant::now() + limit;
        while !self.thread.is_finished() {
            assert!(
                Instant::now() < deadline,
                "processor did not stop within {limit:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
        self.thread.join().expect("processor thread panicked")
    }
}

fn run_processor(
    name: String,
    bootstrap: &str,
    tally: &Tally,
    arm_after: Option<usize>,
    sig: &Signals,
) -> ProcessorReport {
    let mut rep = ProcessorReport {
        name,
        ..ProcessorReport::default()
    };
    let t0 = Instant::now();
    let producer = txn_producer(bootstrap, EOS_TXN_ID, &[]);
    if let Err(e) = producer.init_transactions(OP_TIMEOUT) {
        rep.error = Some(format!("init_transactions: {}", describe_err(&e)));
        return rep;
    }
    rep.init = Some(t0.elapsed());
    let mut cfg = member_config(
        bootstrap,
        EOS_GROUP,
        &rep.name,
        &[
            ("isolation.level", RC),
            ("session.timeout.ms", "6000"),
            ("max.poll.interval.ms", "60000"),
        ],
    );
    debug_from_env(&mut cfg);
    let consumer: Reader = cfg
        .create_with_context(StderrLog)
        .expect("processor consumer");
    consumer.subscribe(&[EOS_IN]).expect("subscribe");

    // Enqueues one output record; waits while the local queue is full.
    let forward = |partition: i32, payload: &[u8]| -> Result<(), String> {
        let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(EOS_OUT, 0)
            .partition(partition)
            .payload(payload);
        let deadline = Instant::now() + OP_TIMEOUT;
        loop {
            match producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    if Instant::now() > deadline {
                        return Err("producer queue stayed full".into());
                    }
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(format!("send: {e}")),
            }
        }
    };
    // A consumer error: while the broker is down, librdkafka reports
    // transport errors (informational) through poll; they are noted and
    // passed over. Any other error ends the processor.
    let consumer_error = |e: KafkaError, rep: &mut ProcessorReport| -> bool {
        let msg = format!("consume: {e}");
        let fatal = matches!(e, KafkaError::MessageConsumptionFatal(_));
        if sig.killed.load(Ordering::SeqCst) {
            rep.kill_errors.push(msg);
            fatal
        } else {
            rep.error = Some(msg);
            true
        }
    };

    'run: while !sig.stop.load(Ordering::SeqCst) {
        let first = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(e)) => {
                if consumer_error(e, &mut rep) {
                    break;
                }
                continue;
            }
            Some(Ok(m)) => (
                m.partition(),
                m.offset(),
                m.payload().unwrap_or_default().to_vec(),
            ),
        };
        rep.first_record.get_or_insert_with(|| t0.elapsed());
        // One transaction.
        let arm = arm_after.is_some_and(|a| tally.records.load(Ordering::SeqCst) >= a);
        let begun_before_kill = !sig.killed.load(Ordering::SeqCst);
        let mut values = Vec::new();
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        let mut ended = false;
        let step = (|| -> Result<(), String> {
            let k =
                |what: &'static str| move |e: KafkaError| format!("{what}: {}", describe_err(&e));
            producer
                .begin_transaction()
                .map_err(k("begin_transaction"))?;
            let mut pending = Some(first);
            while values.len() < EOS_BATCH {
                let (p, o, payload) = match pending.take() {
                    Some(m) => m,
                    None => match consumer.poll(Duration::from_millis(10)) {
                        None => break,
                        Some(Ok(m)) => (
                            m.partition(),
                            m.offset(),
                            m.payload().unwrap_or_default().to_vec(),
                        ),
                        Some(Err(e)) => {
                            if consumer_error(e, &mut rep) {
                                ended = true;
                                return Err("consumer error".into());
                            }
                            continue;
                        }
                    },
                };
                forward(p, &payload)?;
                values.push(eos_value(&payload).unwrap_or(usize::MAX));
                next.insert(p, o + 1);
            }
            let mut tpl = TopicPartitionList::new();
            for (&p, &o) in &next {
                tpl.add_partition_offset(EOS_IN, p, Offset::Offset(o))
                    .expect("tpl");
            }
            let cgm = consumer
                .group_metadata()
                .ok_or("the consumer has no group metadata")?;
            settle(&producer)?;
            if arm {
                producer
                    .send_offsets_to_transaction(&tpl, &cgm, OP_TIMEOUT)
                    .map_err(k("send_offsets_to_transaction (armed)"))?;
                return Ok(());
            }
            producer
                .send_offsets_to_transaction(&tpl, &cgm, OP_TIMEOUT)
                .map_err(k("send_offsets_to_transaction"))?;
            producer
                .commit_transaction(OP_TIMEOUT)
                .map_err(k("commit_transaction"))?;
            Ok(())
        })();
        let reports = producer.context().take();
        match step {
            Ok(()) => {
                if let Some(d) = reports.iter().find(|d| d.error.is_some()) {
                    rep.error = Some(format!(
                        "a delivery failed in a {} transaction: {d:?}",
                        if arm { "flushed" } else { "committed" }
                    ));
                    break 'run;
                }
                if arm {
                    rep.armed_values = values;
                    sig.armed.store(true, Ordering::SeqCst);
                    // Leave the transaction open; the broker is killed now.
                    while !sig.stop.load(Ordering::SeqCst) {
                        thread::sleep(Duration::from_millis(10));
                    }
                    rep.open_at_exit = rep.armed_values.len();
                    break 'run;
                }
                rep.txns += 1;
                rep.records += values.len();
                if sig.killed.load(Ordering::SeqCst) {
                    rep.txns_after_kill += 1;
                    if begun_before_kill {
                        rep.txns_across_kill += 1;
                    }
                }
                tally.txns.fetch_add(1, Ordering::SeqCst);
                tally.records.fetch_add(values.len(), Ordering::SeqCst);
            }
            Err(e) => {
                rep.open_at_exit = values.len();
                if !ended {
                    let msg = format!("{e} (transaction of {} records)", values.len());
                    if sig.killed.load(Ordering::SeqCst) {
                        rep.kill_errors.push(msg);
                    } else {
                        rep.error = Some(msg);
                    }
                }
                break 'run;
            }
        }
    }
    // A crash: no abort, no commit. The next instance's init_transactions
    // must fence this producer and abort what it left open.
    drop(producer);
    rep.close_error = close_bounded(consumer, TIMEOUT).err();
    rep
}

/// Waits until every record sent is acknowledged and its report served.
/// commit_transaction and flush would do it too, but rust-rdkafka's flush
/// polls in 100 ms slices that do not end early: each transaction would
/// take 100 ms more.
fn settle(producer: &RecordingProducer) -> Result<(), String> {
    let deadline = Instant::now() + OP_TIMEOUT;
    while producer.in_flight_count() > 0 {
        if Instant::now() > deadline {
            return Err(format!(
                "{} records not acknowledged within {OP_TIMEOUT:?}",
                producer.in_flight_count()
            ));
        }
        producer.poll(Duration::ZERO);
        thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

/// Committed offsets of the copier group on `eos-in` (read_uncommitted:
/// OffsetFetch without require_stable, so pending transactional offsets do
/// not make it wait).
fn group_offsets(bootstrap: &str) -> Vec<Offset> {
    let c = consumer(
        bootstrap,
        &[("group.id", EOS_GROUP), ("isolation.level", RU)],
    );
    let partitions: Vec<i32> = (0..EOS_PARTITIONS).collect();
    let got = c
        .committed_offsets(partitions_tpl(EOS_IN, &partitions), TIMEOUT)
        .expect("committed offsets of the copier group");
    let mut v: Vec<(i32, Offset)> = got
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect();
    v.sort_by_key(|x| x.0);
    drop(got);
    v.into_iter().map(|x| x.1).collect()
}

/// Reads `eos-out` to the end at `isolation`; values per partition in
/// offset order.
fn read_out(bootstrap: &str, isolation: &str) -> BTreeMap<i32, Vec<usize>> {
    let r = reader(bootstrap, isolation);
    let parts: Vec<i32> = (0..EOS_PARTITIONS).collect();
    assign_at(
        &r,
        EOS_OUT,
        &parts
            .iter()
            .map(|&p| (p, Offset::Beginning))
            .collect::<Vec<_>>(),
    );
    let mut out: BTreeMap<i32, Vec<usize>> = parts.iter().map(|&p| (p, Vec::new())).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut waiting: BTreeSet<i32> = parts.iter().copied().collect();
    while !waiting.is_empty() {
        assert!(
            Instant::now() < deadline,
            "reading {EOS_OUT} at {isolation}: no EOF on {waiting:?} within 60 s"
        );
        match r.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => out.get_mut(&m.partition()).expect("partition").push(
                m.payload()
                    .and_then(eos_value)
                    .unwrap_or_else(|| panic!("bad payload at {}/{}", m.partition(), m.offset())),
            ),
            Some(Err(KafkaError::PartitionEOF(p))) => {
                waiting.remove(&p);
            }
            Some(Err(e)) => panic!("reading {EOS_OUT} at {isolation}: {e}"),
        }
    }
    out
}

/// Warning and error lines of a broker log.
fn notable_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("panicked"))
        .map(str::to_owned)
        .collect()
}

fn check_processor(r: &ProcessorReport, broker: &BrokerProcess) {
    if let Some(e) = &r.error {
        panic!(
            "processor {} failed: {e}\n({} txns committed, errors after a kill {:?})\n\
             broker log tail:\n{}",
            r.name,
            r.txns,
            r.kill_errors,
            broker.log_tail()
        );
    }
}

#[test]
fn consume_transform_produce_exactly_once_across_kill_9() {
    let _wd = watchdog(
        "consume_transform_produce_exactly_once_across_kill_9",
        Duration::from_secs(300),
    );
    let t_start = Instant::now();
    let data = tempfile::tempdir().expect("data dir");
    let logs = tempfile::tempdir().expect("log dir");
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let log = |n: usize| logs.path().join(format!("broker-{n}.log"));
    let mut broker = BrokerProcess::start(data.path(), port, log(0));
    let rt = broker_runtime();
    let adm = admin(&bootstrap);
    rt.block_on(create_topic(&adm, EOS_IN, EOS_PARTITIONS, &[]));
    rt.block_on(create_topic(&adm, EOS_OUT, EOS_PARTITIONS, &[]));
    drop(adm);

    // Input: value i in partition i % 4, in order.
    let t = Instant::now();
    let filler = recording_producer(
        &bootstrap,
        &[
            ("linger.ms", "5"),
            ("enable.idempotence", "true"),
            ("queue.buffering.max.messages", "200000"),
        ],
    );
    for i in 0..EOS_RECORDS {
        let payload = numbered_payload("eos", i);
        send_blocking(
            &filler,
            BaseRecord::<(), [u8], usize>::with_opaque_to(EOS_IN, i)
                .partition(i as i32 % EOS_PARTITIONS)
                .payload(&payload[..]),
        );
    }
    let reports = flush_all_ok(&filler, EOS_RECORDS);
    drop(filler);
    for d in &reports {
        assert_eq!(
            (d.partition, d.offset),
            (
                d.id as i32 % EOS_PARTITIONS,
                (d.id / EOS_PARTITIONS as usize) as i64
            ),
            "input record {} placement",
            d.id
        );
    }
    let per_partition = (EOS_RECORDS / EOS_PARTITIONS as usize) as i64;
    eprintln!("input: {EOS_RECORDS} records written in {:?}", t.elapsed());

    let tally = Arc::new(Tally::default());
    let progress = |what: &str, broker: &BrokerProcess| {
        format!(
            "{what}: {} records in {} transactions committed so far\nbroker log tail:\n{}",
            tally.records.load(Ordering::SeqCst),
            tally.txns.load(Ordering::SeqCst),
            broker.log_tail()
        )
    };
    let mut reports: Vec<ProcessorReport> = Vec::new();
    let mut phases: Vec<(String, Duration)> = Vec::new();

    // Phase 1: up to ~40k, then a transaction left open (records flushed,
    // offsets sent) and the broker killed under it.
    let t = Instant::now();
    let p1 = Processor::start("copier-1", &bootstrap, tally.clone(), Some(40_000));
    {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !p1.signals.armed.load(Ordering::SeqCst) {
            if p1.finished() || Instant::now() > deadline {
                let r = p1.stop();
                check_processor(&r, &broker);
                panic!(
                    "{}",
                    progress("copier-1 never armed its open transaction", &broker)
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
    phases.push(("copier-1 to 40k + open txn".into(), t.elapsed()));
    p1.signals.killed.store(true, Ordering::SeqCst);
    broker.kill9();
    let t = Instant::now();
    broker = BrokerProcess::start(data.path(), port, log(1));
    phases.push(("restart after kill 1".into(), t.elapsed()));
    let r1 = p1.stop();
    check_processor(&r1, &broker);
    assert_eq!(
        r1.armed_values.len(),
        EOS_BATCH,
        "the open transaction's size"
    );
    let armed_values = r1.armed_values.clone();
    eprintln!(
        "kill 1: {} records committed in {} txns; copier-1 left {} records open",
        tally.records.load(Ordering::SeqCst),
        tally.txns.load(Ordering::SeqCst),
        r1.open_at_exit
    );
    reports.push(r1);

    // Phase 2: a new instance (same transactional.id, same group) fences
    // the old one and aborts its open transaction; at ~70k the broker is
    // killed again wherever the stream is. The processor either rides
    // through the restart (librdkafka retries) and commits on, or ends on
    // an error (then its open transaction is left to the next instance).
    let t = Instant::now();
    let p2 = Processor::start("copier-2", &bootstrap, tally.clone(), None);
    {
        let deadline = Instant::now() + Duration::from_secs(90);
        while tally.records.load(Ordering::SeqCst) < 70_000 {
            if p2.finished() || Instant::now() > deadline {
                let r = p2.stop();
                check_processor(&r, &broker);
                panic!("{}", progress("copier-2 did not reach 70k", &broker));
            }
            thread::sleep(Duration::from_millis(1));
        }
    }
    phases.push(("copier-2 to 70k".into(), t.elapsed()));
    let at_kill = tally.records.load(Ordering::SeqCst);
    p2.signals.killed.store(true, Ordering::SeqCst);
    broker.kill9();
    let t = Instant::now();
    broker = BrokerProcess::start(data.path(), port, log(2));
    phases.push(("restart after kill 2".into(), t.elapsed()));
    let t = Instant::now();
    {
        let limit = OP_TIMEOUT * 3;
        let deadline = Instant::now() + limit;
        while !p2.finished() && tally.records.load(Ordering::SeqCst) < at_kill + 2 * EOS_BATCH {
            if Instant::now() > deadline {
                let r = p2.stop();
                check_processor(&r, &broker);
                panic!(
                    "{}",
                    progress(
                        &format!(
                            "copier-2 neither committed on nor ended within {limit:?} of the restart"
                        ),
                        &broker
                    )
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
    phases.push(("copier-2 after the restart".into(), t.elapsed()));
    let r2 = p2.stop();
    check_processor(&r2, &broker);
    eprintln!(
        "kill 2 at {at_kill} committed records: copier-2 committed {} txns after the kill \
         ({} of them begun before it), errors after the kill {:?}, left {} records open; \
         {} records in {} txns committed",
        r2.txns_after_kill,
        r2.txns_across_kill,
        r2.kill_errors,
        r2.open_at_exit,
        tally.records.load(Ordering::SeqCst),
        tally.txns.load(Ordering::SeqCst),
    );
    reports.push(r2);

    // Phase 3: to the end of the input.
    let t = Instant::now();
    let p3 = Processor::start("copier-3", &bootstrap, tally.clone(), None);
    let want = vec![Offset::Offset(per_partition); EOS_PARTITIONS as usize];
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if group_offsets(&bootstrap) == want {
            break;
        }
        if p3.finished() || Instant::now() > deadline {
            let last = group_offsets(&bootstrap);
            let r = p3.stop();
            check_processor(&r, &broker);
            panic!(
                "{}; group offsets {last:?}, want {want:?}",
                progress("copier-3 did not finish the input", &broker)
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
    phases.push(("copier-3 to the end".into(), t.elapsed()));
    let r3 = p3.stop();
    check_processor(&r3, &broker);
    reports.push(r3);
    let processing: Duration = phases.iter().map(|(_, d)| *d).sum();

    // Verification: read_committed sees each input value exactly once, in
    // input order per partition.
    let t = Instant::now();
    let committed = read_out(&bootstrap, RC);
    let uncommitted = read_out(&bootstrap, RU);
    let mut problems = Vec::new();
    let mut committed_total = 0;
    for p in 0..EOS_PARTITIONS {
        let expected: Vec<usize> = (p as usize..EOS_RECORDS)
            .step_by(EOS_PARTITIONS as usize)
            .collect();
        let got = &committed[&p];
        committed_total += got.len();
        if got != &expected {
            let mut counts: HashMap<usize, usize> = HashMap::new();
            for &v in got {
                *counts.entry(v).or_default() += 1;
            }
            let dups: BTreeSet<usize> = counts
                .iter()
                .filter(|(_, &c)| c > 1)
                .map(|(&v, _)| v)
                .collect();
            let missing: Vec<usize> = expected
                .iter()
                .copied()
                .filter(|v| !counts.contains_key(v))
                .collect();
            let first_diff = got
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(expected.len()));
            problems.push(format!(
                "partition {p}: {} records, {} values duplicated (first {:?}), {} missing \
                 (first {:?}), first difference from input order at index {first_diff}",
                got.len(),
                dups.len(),
                dups.iter().take(5).collect::<Vec<_>>(),
                missing.len(),
                missing.iter().take(5).collect::<Vec<_>>()
            ));
        }
    }
    let uncommitted_total: usize = uncommitted.values().map(Vec::len).sum();
    let mut uncommitted_counts: HashMap<usize, usize> = HashMap::new();
    for v in uncommitted.values().flatten() {
        *uncommitted_counts.entry(*v).or_default() += 1;
    }
    let armed_in_log = armed_values
        .iter()
        .filter(|v| uncommitted_counts.get(v).copied().unwrap_or(0) >= 2)
        .count();
    eprintln!(
        "exactly-once copy of {EOS_RECORDS} records across 2 kill -9: processing {processing:?} \
         ({phases:?}); {} transactions committed ({} records counted by the processors); \
         {eos_out} read_committed: {committed_total}, read_uncommitted: {uncommitted_total} \
         ({} aborted copies); verification {:?}; total {:?}",
        tally.txns.load(Ordering::SeqCst),
        tally.records.load(Ordering::SeqCst),
        uncommitted_total.saturating_sub(committed_total),
        t.elapsed(),
        t_start.elapsed(),
        eos_out = EOS_OUT,
    );
    for r in &reports {
        eprintln!(
            "  {}: init_transactions {:?}, first input record after {:?}, {} txns / {} records \
             committed ({} txns after a kill), {} left open, errors after a kill {:?}, close {:?}",
            r.name,
            r.init,
            r.first_record,
            r.txns,
            r.records,
            r.txns_after_kill,
            r.open_at_exit,
            r.kill_errors,
            r.close_error
        );
    }
    let notable: Vec<String> = (0..3)
        .flat_map(|n| {
            notable_lines(&std::fs::read_to_string(log(n)).unwrap_or_default())
                .into_iter()
                .map(move |l| format!("broker-{n}: {l}"))
        })
        .collect();
    if !notable.is_empty() {
        eprintln!("broker warnings/errors:\n{}", notable.join("\n"));
    }
    assert!(
        problems.is_empty(),
        "read_committed view of {EOS_OUT} is not an exact copy of {EOS_IN}:\n{}",
        problems.join("\n")
    );
    assert_eq!(committed_total, EOS_RECORDS);
    // The transaction left open at the first kill was durable (acks=all)
    // and must have been aborted, not lost and not committed: each of its
    // values is in the log twice (aborted copy + committed copy).
    assert_eq!(
        armed_in_log,
        armed_values.len(),
        "values of the transaction open at kill 1 found twice in {EOS_OUT} at read_uncommitted"
    );
    let close_errors: Vec<String> = reports
        .iter()
        .filter_map(|r| r.close_error.as_ref().map(|e| format!("{}: {e}", r.name)))
        .collect();
    assert!(
        close_errors.is_empty(),
        "processor consumers did not close: {close_errors:?}"
    );
    drop(broker);
}
