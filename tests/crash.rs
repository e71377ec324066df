//! kill -9 during an acks=all stream: the real binary runs as a child
//! process; producers stream numbered records while it is SIGKILLed and
//! restarted on the same data directory and port. Every acknowledged record
//! must be found at its acknowledged offset, offsets must stay contiguous,
//! and an idempotent producer's acknowledged records must appear once.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{consume, consumer, numbered_payload, recording_producer, Delivery, TIMEOUT};
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

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// The `runnel` binary as a child process.
struct BrokerProcess {
    child: Child,
    log: PathBuf,
}

impl BrokerProcess {
    fn start(data: &Path, port: u16, log: PathBuf) -> BrokerProcess {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("broker log file");
        let child = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .arg("--override")
            .arg(format!("log.dirs={}", data.display()))
            .arg("--override")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
            .env("RUNNEL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("spawn runnel");
        let mut p = BrokerProcess { child, log };
        p.wait_serving(port);
        p
    }

    /// Bounded wait until the broker answers an ApiVersions request.
    fn wait_serving(&mut self, port: u16) {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("broker exited with {status}:\n{}", self.log_tail());
            }
            if api_versions_answered(addr) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "broker not serving on {addr} after {TIMEOUT:?}:\n{}",
                self.log_tail()
            );
            // Retry interval of a readiness probe, not synchronisation.
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (std's Child::kill) and reap.
    fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends ApiVersions v0 and reads the reply's correlation id.
fn api_versions_answered(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    // length, api key 18, version 0, correlation id 7, client id null.
    let mut req = Vec::new();
    req.extend_from_slice(&10i32.to_be_bytes());
    req.extend_from_slice(&18i16.to_be_bytes());
    req.extend_from_slice(&0i16.to_be_bytes());
    req.extend_from_slice(&7i32.to_be_bytes());
    req.extend_from_slice(&(-1i16).to_be_bytes());
    if s.write_all(&req).is_err() {
        return false;
    }
    let mut head = [0u8; 8];
    s.read_exact(&mut head).is_ok() && head[4..8] == 7i32.to_be_bytes()
}

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
