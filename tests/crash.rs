//! kill -9 during an acks=all stream: the real binary runs as a child
//! process; producers stream numbered records while it is SIGKILLed and
//! restarted on the same data directory and port. Every acknowledged record
//! must be found at its acknowledged offset, offsets must stay contiguous,
//! and an idempotent producer's acknowledged records must appear once.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    consume, consumer, free_port, numbered_payload, recording_producer, BrokerProcess, Delivery,
    TIMEOUT,
};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Message, Offset};

const CYCLES: usize = 3;
/// Records each producer may send per cycle (bounds the test's volume; the
/// kill normally comes well before).
const MAX_PER_CYCLE: usize = 200_000;
/// The broker is killed once each producer has this many acknowledgements
/// in the current cycle, i.e. in the middle of the stream.
const ACKED_BEFORE_KILL: usize = 10_000;

const PLAIN: &str = "crash-plain";
const IDEMPOTENT: &str = "crash-idempotent";

/// One producer thread's stream for one cycle.
struct Stream {
    stop: Arc<AtomicBool>,
    acked: Arc<std::sync::Mutex<Vec<Delivery>>>,
    thread: thread::JoinHandle<(usize, Vec<Delivery>)>,
}

fn start_stream(
    bootstrap: String,
    topic: &'static str,
    idempotent: bool,
    first_id: usize,
) -> Stream {
    let stop = Arc::new(AtomicBool::new(false));
    let mut settings = vec![
        ("acks", "all"),
        ("queue.buffering.max.messages", "20000"),
        ("reconnect.backoff.ms", "20"),
        ("reconnect.backoff.max.ms", "200"),
    ];
    settings.push((
        "enable.idempotence",
        if idempotent { "true" } else { "false" },
    ));
    let producer = recording_producer(&bootstrap, &settings);
    let acked = producer.context().0.clone();
    let thread = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut sent = 0;
            for id in first_id..first_id + MAX_PER_CYCLE {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let payload = numbered_payload(topic, id);
                let mut record =
                    BaseRecord::<(), _, usize>::with_opaque_to(topic, id).payload(&payload);
                // While the broker is down the local queue fills: wait for
                // room or the stop signal.
                loop {
                    match producer.send(record) {
                        Ok(()) => {
                            sent += 1;
                            break;
                        }
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                            record = r;
                            producer.poll(Duration::from_millis(10));
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                        }
                        Err((e, _)) => panic!("{topic}: send failed: {e}"),
                    }
                }
                producer.poll(Duration::ZERO);
            }
            // Runs once the broker is back: in-flight and queued records are
            // retried and acknowledged (or fail) before this returns.
            if let Err(e) = producer.flush(TIMEOUT) {
                panic!("{topic}: flush after restart: {e}");
            }
            let reports = producer.context().take();
            (sent, reports)
        })
    };
    Stream {
        stop,
        acked,
        thread,
    }
}

fn acked_count(s: &Stream) -> usize {
    s.acked
        .lock()
        .unwrap()
        .iter()
        .filter(|d| d.error.is_none())
        .count()
}

/// Parses the id out of a [`numbered_payload`].
fn id_of(payload: &[u8], topic: &str) -> usize {
    let text = std::str::from_utf8(&payload[topic.len() + 1..topic.len() + 11]).unwrap();
    text.parse().unwrap()
}

/// Consumes the whole topic and checks it against every acknowledgement.
fn verify(bootstrap: &str, topic: &str, acked: &HashMap<usize, i64>, idempotent: bool) -> i64 {
    let query = consumer(bootstrap, &[]);
    let (low, high) = query
        .fetch_watermarks(topic, 0, TIMEOUT)
        .expect("watermarks");
    assert_eq!(low, 0, "{topic}: log start moved");
    let reader = consumer(bootstrap, &[]);
    let got = consume(
        &reader,
        topic,
        &[0],
        Offset::Offset(0),
        high as usize,
        Duration::from_secs(60),
    );
    let mut at_offset: Vec<usize> = Vec::with_capacity(got.len());
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.offset(), i as i64, "{topic}: offsets not contiguous");
        let payload = m.payload().expect("payload");
        let id = id_of(payload, topic);
        assert_eq!(payload, &numbered_payload(topic, id)[..], "{topic}@{i}");
        at_offset.push(id);
    }
    for (&id, &offset) in acked {
        assert!(
            offset < high,
            "{topic}: record {id} acknowledged at {offset}, high watermark {high}"
        );
        assert_eq!(
            at_offset[offset as usize], id,
            "{topic}: acknowledged record {id} not at its offset {offset}"
        );
    }
    let mut copies: HashMap<usize, usize> = HashMap::new();
    for &id in &at_offset {
        *copies.entry(id).or_default() += 1;
    }
    let duplicated_acked = acked.keys().filter(|id| copies[id] > 1).count();
    let duplicated_any = copies.values().filter(|&&c| c > 1).count();
    eprintln!(
        "{topic}: {high} records, {} acknowledged, {duplicated_any} ids stored more than once",
        acked.len()
    );
    if idempotent {
        assert_eq!(
            duplicated_acked, 0,
            "{topic}: acknowledged idempotent records stored twice"
        );
    }
    high
}

#[test]
fn kill_9_during_acks_all_stream_loses_nothing_acknowledged() {
    let t0 = Instant::now();
    let data = tempfile::tempdir().expect("data dir");
    let logs = tempfile::tempdir().expect("log dir");
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let mut acked: HashMap<&str, HashMap<usize, i64>> = HashMap::new();
    let mut broker = BrokerProcess::start(data.path(), port, logs.path().join("broker-0.log"));

    for cycle in 0..CYCLES {
        let first_id = cycle * MAX_PER_CYCLE;
        let streams = [
            (
                PLAIN,
                start_stream(bootstrap.clone(), PLAIN, false, first_id),
            ),
            (
                IDEMPOTENT,
                start_stream(bootstrap.clone(), IDEMPOTENT, true, first_id),
            ),
        ];
        let deadline = Instant::now() + TIMEOUT;
        while streams
            .iter()
            .any(|(_, s)| acked_count(s) < ACKED_BEFORE_KILL && !s.thread.is_finished())
        {
            assert!(
                Instant::now() < deadline,
                "cycle {cycle}: producers not acknowledged:\n{}",
                broker.log_tail()
            );
            thread::sleep(Duration::from_millis(5));
        }
        let at_kill: Vec<usize> = streams.iter().map(|(_, s)| acked_count(s)).collect();
        broker.kill9();
        for (_, s) in &streams {
            s.stop.store(true, Ordering::Relaxed);
        }
        broker = BrokerProcess::start(
            data.path(),
            port,
            logs.path().join(format!("broker-{}.log", cycle + 1)),
        );
        for ((topic, s), at_kill) in streams.into_iter().zip(at_kill) {
            let (sent, reports) = s.thread.join().expect("producer thread");
            let failed = reports.iter().filter(|d| d.error.is_some()).count();
            eprintln!(
                "cycle {cycle} {topic}: sent {sent}, acknowledged {} ({at_kill} before the kill), failed {failed}",
                reports.len() - failed
            );
            let map = acked.entry(topic).or_default();
            for d in reports.into_iter().filter(|d| d.error.is_none()) {
                assert_eq!(d.partition, 0);
                assert!(
                    map.insert(d.id, d.offset).is_none(),
                    "{topic}: id {} acked twice",
                    d.id
                );
            }
        }
        for (topic, idempotent) in [(PLAIN, false), (IDEMPOTENT, true)] {
            verify(&bootstrap, topic, &acked[topic], idempotent);
        }
        eprintln!("cycle {cycle} done at {:?}", t0.elapsed());
    }
    drop(broker);
}
