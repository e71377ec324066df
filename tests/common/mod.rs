//! Shared helpers for client tests: a real broker started in-process on an
//! ephemeral port with its own temporary data directory.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use runnel::broker::{self, BrokerHandle};
use runnel::BrokerConfig;
use tempfile::TempDir;

pub struct TestBroker {
    pub handle: Option<BrokerHandle>,
    pub dir: TempDir,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
        let dir = tempfile::tempdir().expect("tempdir");
        let handle = start_in(dir.path(), configure).await;
        TestBroker {
            handle: Some(handle),
            dir,
        }
    }

    pub fn bootstrap(&self) -> String {
        self.handle.as_ref().expect("running").bootstrap_servers()
    }

    /// Clean shutdown and start again on the same data directory (the port
    /// changes).
    pub async fn restart_with(&mut self, configure: impl FnOnce(&mut BrokerConfig)) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await.expect("clean shutdown");
        }
        self.handle = Some(start_in(self.dir.path(), configure).await);
    }

    pub async fn restart(&mut self) {
        self.restart_with(|_| {}).await
    }

    pub async fn stop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await.expect("clean shutdown");
        }
    }
}

pub async fn start_in(dir: &Path, configure: impl FnOnce(&mut BrokerConfig)) -> BrokerHandle {
    let mut config = BrokerConfig::default_for_tests(dir.to_path_buf());
    configure(&mut config);
    broker::start(config).await.expect("broker starts")
}

pub const TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// rdkafka helpers. The broker runs on a runtime of its own so that the test
// thread may make blocking client calls (poll, flush, fetch_watermarks)
// without starving the broker's tasks.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

/// A multi-threaded runtime for an in-process broker (and test proxies).
/// Declare it before the clients so that it is dropped after them.
pub fn broker_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Wall-clock milliseconds, as record timestamps are stamped.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// One delivery report: `id` is the number the caller gave the record.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: usize,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: rdkafka::Timestamp,
    pub error: Option<String>,
}

/// Producer context that records every delivery report.
#[derive(Clone, Default)]
pub struct DeliveryLog(pub Arc<Mutex<Vec<Delivery>>>);

impl DeliveryLog {
    pub fn take(&self) -> Vec<Delivery> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

impl ClientContext for DeliveryLog {}

impl ProducerContext for DeliveryLog {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        let d = match result {
            Ok(m) => Delivery {
                id,
                partition: m.partition(),
                offset: m.offset(),
                timestamp: m.timestamp(),
                error: None,
            },
            Err((e, m)) => Delivery {
                id,
                partition: m.partition(),
                offset: m.offset(),
                timestamp: m.timestamp(),
                error: Some(e.to_string()),
            },
        };
        self.0.lock().unwrap().push(d);
    }
}

pub type RecordingProducer = BaseProducer<DeliveryLog>;

/// A producer whose delivery reports land in `producer.context()`.
pub fn recording_producer(bootstrap: &str, settings: &[(&str, &str)]) -> RecordingProducer {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap);
    for (k, v) in settings {
        cfg.set(*k, *v);
    }
    cfg.create_with_context(DeliveryLog::default())
        .expect("producer")
}

/// Enqueues one record, serving delivery reports while the local queue is
/// full. Panics on any other error or after [`TIMEOUT`].
pub fn send_blocking<K, P>(producer: &RecordingProducer, mut record: BaseRecord<'_, K, P, usize>)
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                assert!(Instant::now() < deadline, "producer queue stayed full");
                record = r;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => panic!("send failed: {e}"),
        }
    }
}

/// Flushes and returns every delivery report, asserting that none failed and
/// that there is one per record sent.
pub fn flush_all_ok(producer: &RecordingProducer, expected: usize) -> Vec<Delivery> {
    producer.flush(TIMEOUT).expect("flush");
    let reports = producer.context().take();
    let failed: Vec<_> = reports.iter().filter(|d| d.error.is_some()).collect();
    assert!(
        failed.is_empty(),
        "{} deliveries failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    assert_eq!(reports.len(), expected, "delivery report count");
    reports
}

/// An assign-only consumer (group id set, no auto commit: no coordinator
/// needed and a fast close) that verifies every batch's CRC.
pub fn consumer(bootstrap: &str, settings: &[(&str, &str)]) -> BaseConsumer {
    consumer_config(bootstrap, settings)
        .create()
        .expect("consumer")
}

/// The settings of [`consumer`], for a consumer with a context of its own.
pub fn consumer_config(bootstrap: &str, settings: &[(&str, &str)]) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("group.id", "runnel-tests")
        .set("enable.auto.commit", "false")
        .set("check.crcs", "true");
    for (k, v) in settings {
        cfg.set(*k, *v);
    }
    cfg
}

/// Assigns `partitions` of `topic` from `start` and polls until `count`
/// messages arrived (panics on a consumer error or after `timeout`).
pub fn consume<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: &[i32],
    start: Offset,
    count: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p, start).expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut got = Vec::with_capacity(count);
    while got.len() < count {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {count} messages from {topic} before the timeout",
            got.len()
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => got.push(m.detach()),
            Some(Err(e)) => panic!("consumer error on {topic}: {e}"),
        }
    }
    got
}

/// Keeps the watchdog thread waiting; dropping it (at the end of the test)
/// disarms the watchdog.
pub struct Watchdog(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

/// Aborts the test process if the test is still running after `limit` (a
/// hung client call or consumer close would otherwise hang the run).
/// Declare it first in a test so that it is dropped last.
pub fn watchdog(name: &'static str, limit: Duration) -> Watchdog {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            // Straight to the stderr handle: the test's captured output
            // would be lost with the abort.
            let _ = writeln!(
                std::io::stderr(),
                "watchdog: {name} still running after {limit:?} \
                 (a client call or a consumer close hung); aborting"
            );
            std::process::abort();
        }
    });
    Watchdog(tx)
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `limit`;
/// then panics with `what()`.
pub fn wait_for<T>(
    limit: Duration,
    what: impl Fn() -> String,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "after {limit:?}: {}", what());
        // Poll interval of a bounded wait, not synchronisation.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Group consumer settings ([`consumer_config`] in `group`): no auto
/// commit, CRC checks, earliest reset (a record
/// produced right after an assignment is never skipped), fast heartbeats so
/// members learn of a rebalance quickly; `extra` adds or overrides settings.
pub fn member_config(
    bootstrap: &str,
    group: &str,
    client_id: &str,
    extra: &[(&str, &str)],
) -> ClientConfig {
    let mut cfg = consumer_config(
        bootstrap,
        &[
            ("group.id", group),
            ("client.id", client_id),
            ("auto.offset.reset", "earliest"),
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "500"),
            ("max.poll.interval.ms", "30000"),
        ],
    );
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg
}

/// Closes a group consumer (revoke, commit if configured, LeaveGroup) for at
/// most `limit`. On timeout the consumer is leaked: its `Drop` would wait
/// for the close without a bound. Drop every `TopicPartitionList` the
/// consumer returned (committed(), assignment()) before: they hold
/// references that librdkafka's destroy waits for, forever.
pub fn close_bounded<C: ConsumerContext>(
    consumer: BaseConsumer<C>,
    limit: Duration,
) -> Result<(), String> {
    consumer
        .close_queue()
        .map_err(|e| format!("close_queue: {e}"))?;
    let deadline = Instant::now() + limit;
    while !consumer.closed() {
        if Instant::now() >= deadline {
            std::mem::forget(consumer);
            return Err(format!(
                "consumer did not close within {limit:?} (LeaveGroup or a commit not answered?)"
            ));
        }
        let _ = consumer.poll(Duration::from_millis(100));
    }
    // Fetched records still queued hold references to librdkafka's broker
    // handles, and its destroy (on drop) waits for those: serve them first.
    while consumer.poll(Duration::ZERO).is_some() {
        if Instant::now() >= deadline {
            std::mem::forget(consumer);
            return Err(format!("consumer queue not drained within {limit:?}"));
        }
    }
    Ok(())
}

/// `partitions` of `topic`, without offsets.
pub fn partitions_tpl(topic: &str, partitions: &[i32]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition(topic, p);
    }
    tpl
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

/// The start of most client tests: a runtime, a default broker on it, and
/// `topic` created through the returned admin client.
pub fn broker_with_topic(
    topic: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> (
    tokio::runtime::Runtime,
    TestBroker,
    AdminClient<DefaultClientContext>,
) {
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start());
    let admin = admin(&broker.bootstrap());
    rt.block_on(create_topic(&admin, topic, partitions, configs));
    (rt, broker, admin)
}

/// Creates a topic through the CreateTopics API and asserts success.
pub async fn create_topic(
    admin: &AdminClient<DefaultClientContext>,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = tokio::time::timeout(TIMEOUT, admin.create_topics([&topic], &opts))
        .await
        .expect("CreateTopics timed out")
        .expect("CreateTopics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
}

/// A 100-byte payload that embeds its index (and a tag), so a misplaced or
/// corrupted record is recognisable.
pub fn numbered_payload(tag: &str, i: usize) -> Vec<u8> {
    let mut p = format!("{tag}-{i:010}-").into_bytes();
    let mut fill = i as u8;
    while p.len() < 100 {
        p.push(b'a' + fill % 26);
        fill = fill.wrapping_add(7);
    }
    p.truncate(100);
    p
}

/// Reads one Kafka frame (i32 length prefix) and returns its body; `None`
/// at EOF, on error, or for an implausible length.
pub async fn read_frame(r: &mut (impl tokio::io::AsyncReadExt + Unpin)) -> Option<Vec<u8>> {
    let len = r.read_i32().await.ok()?;
    let len = usize::try_from(len).ok().filter(|&l| l <= 64 << 20)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.ok()?;
    Some(body)
}

/// Writes `body` as one length-prefixed Kafka frame.
pub async fn write_frame(
    w: &mut (impl tokio::io::AsyncWriteExt + Unpin),
    body: &[u8],
) -> std::io::Result<()> {
    w.write_all(&(body.len() as i32).to_be_bytes()).await?;
    w.write_all(body).await
}

// ---------------------------------------------------------------------------
// The `runnel` binary as a child process (crash tests: kill -9 needs a
// process of its own).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

pub struct BrokerProcess {
    child: Child,
    log: PathBuf,
}

impl BrokerProcess {
    /// Starts `runnel` on `data` and `port` (with the same initial group
    /// rebalance delay of 0 as in-process test brokers) and waits until it
    /// answers ApiVersions.
    pub fn start(data: &Path, port: u16, log: PathBuf) -> BrokerProcess {
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
            .arg("--override")
            .arg("group.initial.rebalance.delay.ms=0")
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
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (std's Child::kill) and reap.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    pub fn log_tail(&self) -> String {
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
pub fn api_versions_answered(addr: SocketAddr) -> bool {
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
