//! Log compaction seen by a client across crashes: the real `runnel` binary,
//! a compacted topic with small segments and an eager cleaner, many updates
//! of a few keys, `kill -9` while the cleaner has a segment copy in flight
//! (its `.cleaned` / `.swap` files on disk), restart, and a consumer checks
//! that every key's latest acknowledged value survived and that the log
//! shrank.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{admin, api_versions_answered, consumer, create_topic, free_port, TIMEOUT};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

const TOPIC: &str = "compacted";
const KEYS: usize = 40;
const CRASHES: usize = 4;

/// The broker binary with an eager cleaner (common's BrokerProcess takes no
/// extra settings).
struct Broker {
    child: Child,
    log: PathBuf,
    port: u16,
}

impl Broker {
    fn start(data: &Path, log: PathBuf) -> Broker {
        let port = free_port();
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args([
                "--override",
                &format!("log.dirs={}", data.display()),
                "--override",
                &format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
                "--override",
                "log.cleaner.backoff.ms=20",
                "--override",
                "group.initial.rebalance.delay.ms=0",
            ])
            .env("RUNNEL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn runnel");
        let mut b = Broker { child, log, port };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + TIMEOUT;
        while !api_versions_answered(addr) {
            if let Some(status) = b.child.try_wait().unwrap() {
                panic!("broker exited with {status}:\n{}", b.log_tail());
            }
            assert!(Instant::now() < deadline, "broker not serving");
            std::thread::sleep(Duration::from_millis(20));
        }
        b
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Acknowledged (key, round) pairs.
#[derive(Clone, Default)]
struct Acks(Arc<Mutex<Vec<(usize, u64)>>>);

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = Box<(usize, u64)>;

    fn delivery(&self, result: &DeliveryResult<'_>, id: Box<(usize, u64)>) {
        if result.is_ok() {
            self.0.lock().unwrap().push(*id);
        }
    }
}

fn value(key: usize, round: u64) -> String {
    // Padding makes segments fill (and roll) quickly.
    format!("k{key}:{round}:{}", "x".repeat(60))
}

fn parse(key: &[u8], bytes: &[u8]) -> (usize, u64) {
    let key: usize = std::str::from_utf8(key).unwrap()[1..].parse().unwrap();
    let v = std::str::from_utf8(bytes).unwrap();
    let mut parts = v.split(':');
    assert_eq!(parts.next(), Some(format!("k{key}").as_str()), "{v}");
    let round: u64 = parts.next().unwrap().parse().unwrap();
    assert_eq!(v, value(key, round));
    (key, round)
}

/// Whether the cleaner has a copy in flight in `dir`.
fn cleaning_in_progress(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".cleaned") || name.ends_with(".swap")
        })
    })
}

fn log_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// A record read back: (offset, key, round).
type Stored = (i64, usize, u64);

/// Every record from the start up to the high watermark: (offset, key,
/// round), and the (low, high) watermarks.
fn read_all(bootstrap: &str) -> (Vec<Stored>, (i64, i64)) {
    let c = consumer(bootstrap, &[("fetch.wait.max.ms", "50")]);
    let (low, high) = c.fetch_watermarks(TOPIC, 0, TIMEOUT).expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let mut out = Vec::new();
    // The record at high - 1 is in the active segment, never cleaned.
    while out.last().is_none_or(|(o, _, _)| *o < high - 1) {
        assert!(
            Instant::now() < deadline,
            "read up to {high}: {:?}",
            out.last()
        );
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let (k, r) = parse(m.key().unwrap(), m.payload().unwrap());
                out.push((m.offset(), k, r));
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
        }
    }
    (out, (low, high))
}

/// The latest round per key in the log, checking offsets increase.
fn latest(records: &[Stored]) -> HashMap<usize, u64> {
    let mut last = HashMap::new();
    let mut prev = -1;
    for &(offset, key, round) in records {
        assert!(offset > prev, "offsets increase: {prev} then {offset}");
        prev = offset;
        last.insert(key, round);
    }
    last
}

#[test]
fn compaction_keeps_latest_values_across_kill9() {
    let _w = common::watchdog(
        "compaction_keeps_latest_values_across_kill9",
        Duration::from_secs(300),
    );
    let data = tempfile::tempdir().unwrap();
    let broker_log = data.path().join("broker.log");
    let logs = data.path().join("data");
    let part = logs.join(format!("{TOPIC}-0"));
    // Highest acknowledged round per key, over all cycles.
    let mut acked: BTreeMap<usize, u64> = BTreeMap::new();
    let mut next_round = 0u64;
    let mut produced = 0u64;
    let mut acknowledged = 0usize;
    let mut mid_clean_kills = 0;
    for cycle in 0..CRASHES {
        let mut broker = Broker::start(&logs, broker_log.clone());
        let bootstrap = broker.bootstrap();
        if cycle == 0 {
            let rt = common::broker_runtime();
            rt.block_on(create_topic(
                &admin(&bootstrap),
                TOPIC,
                1,
                &[
                    ("cleanup.policy", "compact"),
                    ("segment.bytes", "8192"),
                    ("min.cleanable.dirty.ratio", "0.01"),
                    ("min.compaction.lag.ms", "0"),
                ],
            ));
        } else {
            check_survivors(&bootstrap, &acked, cycle);
        }
        // Produce rounds until the cleaner is caught mid-copy (or a bound).
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Acks::default();
        let producer_thread = {
            let stop = stop.clone();
            let acks = acks.clone();
            let bootstrap = bootstrap.clone();
            let first = next_round;
            std::thread::spawn(move || {
                let p: BaseProducer<Acks> = ClientConfig::new()
                    .set("bootstrap.servers", &bootstrap)
                    .set("acks", "all")
                    .set("linger.ms", "2")
                    .set("message.timeout.ms", "3000")
                    .create_with_context(acks)
                    .expect("producer");
                let mut round = first;
                let mut sent = 0u64;
                while !stop.load(Ordering::Acquire) {
                    for key in 0..KEYS {
                        let k = format!("k{key}");
                        let v = value(key, round);
                        let mut rec = BaseRecord::with_opaque_to(TOPIC, Box::new((key, round)))
                            .key(&k)
                            .payload(&v);
                        loop {
                            match p.send(rec) {
                                Ok(()) => break,
                                Err((_, r)) => {
                                    rec = r;
                                    p.poll(Duration::from_millis(5));
                                }
                            }
                        }
                        sent += 1;
                    }
                    p.poll(Duration::ZERO);
                    round += 1;
                }
                // Whatever was in flight at the kill fails or is acked.
                let _ = p.flush(Duration::from_secs(5));
                (round, sent)
            })
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut caught = false;
        // Let some dirty data accumulate first.
        std::thread::sleep(Duration::from_millis(300));
        while Instant::now() < deadline {
            if cleaning_in_progress(&part) {
                caught = true;
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        broker.kill9();
        stop.store(true, Ordering::Release);
        let (round, sent) = producer_thread.join().unwrap();
        next_round = round;
        produced += sent;
        let cycle_acks: Vec<(usize, u64)> = std::mem::take(&mut *acks.0.lock().unwrap());
        acknowledged += cycle_acks.len();
        for (key, round) in cycle_acks {
            let e = acked.entry(key).or_insert(round);
            *e = (*e).max(round);
        }
        if caught {
            mid_clean_kills += 1;
        }
        eprintln!(
            "cycle {cycle}: killed {} cleaning; {produced} records sent, {acknowledged} acknowledged so far",
            if caught { "while" } else { "without catching" }
        );
    }
    assert!(
        mid_clean_kills > 0,
        "no kill landed while the cleaner had a copy in flight"
    );
    assert_eq!(acked.len(), KEYS, "every key acknowledged at least once");

    // Final start: nothing acknowledged is lost, and the log shrinks.
    let broker = Broker::start(&logs, broker_log.clone());
    let bootstrap = broker.bootstrap();
    check_survivors(&bootstrap, &acked, CRASHES);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (records, (low, high)) = read_all(&bootstrap);
        let bytes = log_bytes(&part);
        // Compaction keeps offsets: the log start stays, records go.
        assert_eq!(low, 0);
        // Acknowledged records take well over 10 bytes each on disk.
        if records.len() * 10 < acknowledged && bytes * 10 < acknowledged as u64 * 100 {
            eprintln!(
                "log shrank to {} records ({bytes} bytes) of {acknowledged} acknowledged, high watermark {high}",
                records.len()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "log did not shrink: {} records, {bytes} bytes of {acknowledged} acknowledged\n{}",
            records.len(),
            broker.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every key's latest acknowledged round (or a later one that made it to
/// the log unacknowledged) is what a consumer reads last for it.
fn check_survivors(bootstrap: &str, acked: &BTreeMap<usize, u64>, cycle: usize) {
    let (records, _) = read_all(bootstrap);
    let last = latest(&records);
    for (&key, &round) in acked {
        let got = last.get(&key).copied();
        assert!(
            got.is_some_and(|g| g >= round),
            "after crash {cycle}: key {key} acknowledged up to round {round}, log has {got:?}"
        );
    }
}
