//! The three workloads, driven by librdkafka clients: produce throughput,
//! consume throughput and end-to-end latency at a fixed rate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use parking_lot::Mutex;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// Bound on every client-side wait: a stuck broker fails the bench instead
/// of hanging it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// Producer settings shared by the throughput runs (and printed in the report).
pub const PRODUCER_SETTINGS: &[(&str, &str)] = &[
    ("linger.ms", "5"),
    ("batch.size", "1000000"),
    ("batch.num.messages", "1000000"),
    ("queue.buffering.max.messages", "1000000"),
    ("queue.buffering.max.kbytes", "2097152"),
    ("compression.type", "none"),
    ("enable.idempotence", "false"),
];

/// Consumer settings for the throughput and latency runs.
pub const CONSUMER_SETTINGS: &[(&str, &str)] = &[
    // librdkafka's defaults, stated so that the report shows them. 10 MB
    // partition fetches made the broker slower, not faster, and raised its
    // peak RSS from ~25 to ~160 MiB: Fetch builds each response by copying
    // the record bytes into one freshly allocated buffer.
    ("fetch.max.bytes", "52428800"),
    ("max.partition.fetch.bytes", "1048576"),
    // librdkafka stops fetching a partition once its local queue holds
    // queued.min.messages (default 100000, about one 10 MB fetch of 100 B
    // records) and then backs off fetch.queue.backoff.ms (default 1 s): with
    // the defaults a fast reader spends most of its time waiting on itself.
    ("queued.min.messages", "10000000"),
    ("queued.max.messages.kbytes", "1048576"),
    ("fetch.queue.backoff.ms", "10"),
];

/// Settings of the latency producer: no batching delay, so that what is
/// measured is the broker and the fetch path, not the linger.
pub const LATENCY_PRODUCER_SETTINGS: &[(&str, &str)] = &[
    ("linger.ms", "0"),
    ("acks", "all"),
    ("compression.type", "none"),
    ("enable.idempotence", "false"),
];

/// One timed client phase and what the broker and the bench spent on it.
#[derive(Clone, Debug, Default)]
pub struct Throughput {
    pub records: u64,
    pub payload_bytes: u64,
    pub secs: f64,
    pub broker_cpu_secs: f64,
    pub client_cpu_secs: f64,
}

impl Throughput {
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.secs
    }
    pub fn mb_per_sec(&self) -> f64 {
        self.payload_bytes as f64 / 1e6 / self.secs
    }
}

/// Latencies (nanoseconds, produce call to consumer poll) of one latency run.
#[derive(Clone, Debug, Default)]
pub struct Latency {
    pub sorted_nanos: Vec<u64>,
    pub broker_cpu_secs: f64,
    pub secs: f64,
}

impl Latency {
    /// Nearest-rank percentile, in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        let v = &self.sorted_nanos;
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1] as f64 / 1e6
    }
}

pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = futures::executor::block_on(admin.create_topics(
        &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
        &opts,
    ))?;
    for r in results {
        r.map_err(|(t, e)| anyhow!("create topic {t}: {e}"))?;
    }
    Ok(())
}

/// Counts delivery reports; remembers when the last expected one arrived.
struct AckCounter {
    expected: u64,
    done: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    last_ack: Mutex<Option<Instant>>,
}

impl ClientContext for AckCounter {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_to_stderr(level, fac, message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("runnel-bench: producer error: {error}: {reason}");
    }
}

/// librdkafka's own log lines (warnings, and everything `debug=...` in
/// `--producer-config`/`--consumer-config` turns on) go to stderr.
fn log_to_stderr(level: RDKafkaLogLevel, fac: &str, message: &str) {
    let t = crate::started().elapsed().as_secs_f64();
    eprintln!("[{t:10.4}] librdkafka {level:?} {fac}: {message}");
}

/// Context of the bench consumers: logs to stderr, nothing else.
pub struct StderrLog;

impl ClientContext for StderrLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_to_stderr(level, fac, message);
    }
}

impl ConsumerContext for StderrLog {}

impl ProducerContext for AckCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            self.first_error.lock().get_or_insert_with(|| e.to_string());
        }
        if self.done.fetch_add(1, Ordering::Relaxed) + 1 == self.expected {
            *self.last_ack.lock() = Some(Instant::now());
        }
    }
}

/// Where the clients connect and the settings given on the command line,
/// which win over the bench's own.
pub struct Clients {
    pub bootstrap: String,
    pub producer_extra: Vec<(String, String)>,
    pub consumer_extra: Vec<(String, String)>,
}

impl Clients {
    fn config(&self, settings: &[(&str, &str)], extra: &[(String, String)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        for (k, v) in settings {
            c.set(*k, *v);
        }
        for (k, v) in extra {
            c.set(k, v);
            if k == "debug" {
                // librdkafka drops debug lines unless the log level allows them.
                c.set_log_level(RDKafkaLogLevel::Debug);
            }
        }
        c
    }

    fn producer(&self, settings: &[(&str, &str)]) -> ClientConfig {
        let mut c = self.config(settings, &self.producer_extra);
        if !self
            .producer_extra
            .iter()
            .any(|(k, _)| k == "message.timeout.ms")
        {
            c.set("message.timeout.ms", "120000");
        }
        c
    }

    fn consumer(&self) -> ClientConfig {
        self.config(CONSUMER_SETTINGS, &self.consumer_extra)
    }
}

/// Sends `records` records of `size` bytes to `topic` from `producers`
/// producer instances, one thread each (partitions chosen by librdkafka's
/// default partitioner, keys null), and times the first send to the last
/// acknowledgement.
#[allow(clippy::too_many_arguments)]
pub fn produce(
    clients: &Clients,
    topic: &str,
    size: usize,
    records: u64,
    acks: &str,
    producers: usize,
    broker_cpu: &dyn Fn() -> Result<f64>,
) -> Result<Throughput> {
    let producers = producers.max(1);
    let share =
        |i: usize| records / producers as u64 + u64::from((i as u64) < records % producers as u64);
    let instances = (0..producers)
        .map(|i| {
            let counter = AckCounter {
                expected: share(i),
                done: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                first_error: Mutex::new(None),
                last_ack: Mutex::new(None),
            };
            let producer: BaseProducer<AckCounter> = clients
                .producer(PRODUCER_SETTINGS)
                .set("acks", acks)
                .create_with_context(counter)?;
            // Metadata before the clock starts, so that the first batch goes out at once.
            producer
                .client()
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .context("metadata before produce")?;
            Ok(producer)
        })
        .collect::<Result<Vec<_>>>()?;
    let payload = vec![b'r'; size];

    let cpu0 = (broker_cpu()?, crate::broker::self_cpu_secs()?);
    let start = Instant::now();
    let ends = std::thread::scope(|s| {
        let threads: Vec<_> = instances
            .iter()
            .map(|p| s.spawn(|| send_all(p, topic, &payload, start)))
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().map_err(|_| anyhow!("producer thread panicked"))?)
            .collect::<Result<Vec<Instant>>>()
    })?;
    let end = ends.into_iter().max().unwrap_or(start);
    let cpu1 = (broker_cpu()?, crate::broker::self_cpu_secs()?);
    Ok(Throughput {
        records,
        payload_bytes: records * size as u64,
        secs: (end - start).as_secs_f64(),
        broker_cpu_secs: cpu1.0 - cpu0.0,
        client_cpu_secs: cpu1.1 - cpu0.1,
    })
}

/// One producer's share: sends `ctx.expected` records and returns when the
/// last acknowledgement arrived.
fn send_all(
    producer: &BaseProducer<AckCounter>,
    topic: &str,
    payload: &[u8],
    start: Instant,
) -> Result<Instant> {
    let ctx = producer.context();
    let records = ctx.expected;
    for i in 0..records {
        loop {
            match producer.send(BaseRecord::<(), [u8]>::to(topic).payload(payload)) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => bail!("send: {e}"),
            }
            if start.elapsed() > CLIENT_TIMEOUT {
                bail!("produce queue stayed full for {CLIENT_TIMEOUT:?}");
            }
        }
        if i.is_multiple_of(4096) {
            producer.poll(Duration::ZERO);
        }
    }
    while ctx.done.load(Ordering::Relaxed) < records {
        // Blocks on the event queue for up to 1 ms: the end time is exact to
        // about a millisecond without spinning a core the broker needs.
        producer.poll(Duration::from_millis(1));
        if start.elapsed() > CLIENT_TIMEOUT {
            bail!(
                "only {} of {records} acknowledged after {CLIENT_TIMEOUT:?}",
                ctx.done.load(Ordering::Relaxed)
            );
        }
    }
    let failed = ctx.failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!(
            "{failed} of {records} records failed: {}",
            ctx.first_error.lock().clone().unwrap_or_default()
        );
    }
    Ok(ctx.last_ack.lock().unwrap_or_else(Instant::now))
}

fn consumer_for(clients: &Clients, topic: &str) -> Result<BaseConsumer<StderrLog>> {
    // No group coordinator yet: assign-only, and no commits (a commit or a
    // group leave would wait for a coordinator that does not exist).
    let consumer: BaseConsumer<StderrLog> = clients
        .consumer()
        .set("group.id", "runnel-bench")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create_with_context(StderrLog)?;
    // Without the leader known at assign time, librdkafka waits for a 500 ms
    // offset-query timer before its first ListOffsets.
    consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("metadata before consume")?;
    Ok(consumer)
}

fn assign_from_beginning(
    consumer: &BaseConsumer<StderrLog>,
    topic: &str,
    partitions: i32,
) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    Ok(())
}

/// Reads `records` records from the beginning of every partition of `topic`
/// and times assignment to the last record.
pub fn consume(
    clients: &Clients,
    topic: &str,
    partitions: i32,
    records: u64,
    broker_cpu: &dyn Fn() -> Result<f64>,
) -> Result<Throughput> {
    let consumer = consumer_for(clients, topic)?;
    let cpu0 = (broker_cpu()?, crate::broker::self_cpu_secs()?);
    let start = Instant::now();
    assign_from_beginning(&consumer, topic, partitions)?;
    let (mut count, mut bytes) = (0u64, 0u64);
    while count < records {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                count += 1;
                bytes += m.payload_len() as u64;
                // The clock is read once per 64k records, not per record.
                if !count.is_multiple_of(65536) {
                    continue;
                }
            }
            Some(Err(e)) => bail!("consume: {e}"),
            None => {}
        }
        if start.elapsed() > CLIENT_TIMEOUT {
            bail!("consumed only {count} of {records} records in {CLIENT_TIMEOUT:?}");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu1 = (broker_cpu()?, crate::broker::self_cpu_secs()?);
    drop(consumer);
    Ok(Throughput {
        records: count,
        payload_bytes: bytes,
        secs,
        broker_cpu_secs: cpu1.0 - cpu0.0,
        client_cpu_secs: cpu1.1 - cpu0.1,
    })
}

/// Payload layout of the latency run: marker byte (0 = warm-up, 1 =
/// measured), then the send time as u64 LE nanoseconds since `epoch`.
const LATENCY_MEASURED: u8 = 1;

/// Produces `rate` records/s of `size` bytes for `duration` into `topic` (one
/// partition, empty) while a consumer thread reads them, and returns the
/// produce-call-to-poll latency of every record.
pub fn latency(
    clients: &Clients,
    topic: &str,
    size: usize,
    rate: u64,
    duration: Duration,
    broker_cpu: &dyn Fn() -> Result<f64>,
) -> Result<Latency> {
    assert!(size >= 9, "latency payload holds a marker and a timestamp");
    let epoch = Instant::now();
    let total = (rate as f64 * duration.as_secs_f64()) as u64;
    let warm = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));

    let consumer = consumer_for(clients, topic)?;
    assign_from_beginning(&consumer, topic, 1)?;
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Result<Vec<u64>>>();
    let reader = {
        let (warm, stop) = (warm.clone(), stop.clone());
        std::thread::spawn(move || {
            let _ = done_tx.send(read_latencies(consumer, epoch, total, &warm, &stop));
        })
    };

    let result = (|| -> Result<(f64, f64, f64)> {
        let producer: BaseProducer = clients.producer(LATENCY_PRODUCER_SETTINGS).create()?;
        let mut payload = vec![0u8; size];
        // Warm-up: one record every 10 ms until the consumer has seen one, so
        // that its fetch session is in place before the clock matters.
        let warm_deadline = Instant::now() + Duration::from_secs(30);
        while !warm.load(Ordering::Relaxed) {
            let _ = producer.send(BaseRecord::<(), [u8]>::to(topic).payload(&payload[..]));
            producer.poll(Duration::from_millis(10));
            if Instant::now() > warm_deadline {
                bail!("latency consumer saw no warm-up record in 30 s");
            }
        }
        let cpu0 = broker_cpu()?;
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < total {
            let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(total);
            while sent < due {
                payload[0] = LATENCY_MEASURED;
                let now = epoch.elapsed().as_nanos() as u64;
                payload[1..9].copy_from_slice(&now.to_le_bytes());
                match producer.send(BaseRecord::<(), [u8]>::to(topic).payload(&payload[..])) {
                    Ok(()) => sent += 1,
                    Err((e, _)) => bail!("latency send: {e}"),
                }
            }
            producer.poll(Duration::ZERO);
            std::thread::sleep(Duration::from_micros(500));
        }
        let secs = start.elapsed().as_secs_f64();
        producer.flush(Duration::from_secs(30))?;
        Ok((cpu0, broker_cpu()?, secs))
    })();
    if result.is_err() {
        stop.store(true, Ordering::Relaxed);
    }
    // The reader stops by itself once it has every record; bound the wait.
    let lat = match done_rx.recv_timeout(Duration::from_secs(30)) {
        Ok(r) => r,
        Err(_) => {
            stop.store(true, Ordering::Relaxed);
            done_rx
                .recv_timeout(Duration::from_secs(5))
                .map_err(|_| anyhow!("latency consumer did not stop"))
                .and_then(|r| r)
        }
    };
    let _ = reader.join();
    let lat = lat?;
    let (cpu0, cpu1, secs) = result?;
    if (lat.len() as u64) < total {
        bail!("latency consumer received {} of {total} records", lat.len());
    }
    let mut sorted_nanos = lat;
    sorted_nanos.sort_unstable();
    Ok(Latency {
        sorted_nanos,
        broker_cpu_secs: cpu1 - cpu0,
        secs,
    })
}

fn read_latencies(
    consumer: BaseConsumer<StderrLog>,
    epoch: Instant,
    total: u64,
    warm: &AtomicBool,
    stop: &AtomicBool,
) -> Result<Vec<u64>> {
    let mut lat = Vec::with_capacity(total as usize);
    while (lat.len() as u64) < total && !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                let now = epoch.elapsed().as_nanos() as u64;
                let p = m.payload().unwrap_or_default();
                if p.first() == Some(&LATENCY_MEASURED) && p.len() >= 9 {
                    let sent = u64::from_le_bytes(p[1..9].try_into().expect("8 bytes"));
                    lat.push(now.saturating_sub(sent));
                } else {
                    warm.store(true, Ordering::Relaxed);
                }
            }
            Some(Err(e)) => bail!("latency consumer: {e}"),
            None => {}
        }
    }
    Ok(lat)
}

// ---------------------------------------------------------------------------
// Consumer groups

/// Settings of the group consumers on top of [`CONSUMER_SETTINGS`]; the rest
/// is librdkafka's defaults (eager `range,roundrobin` assignment, so range;
/// `heartbeat.interval.ms=3000`, `session.timeout.ms=45000`).
pub const GROUP_CONSUMER_SETTINGS: &[(&str, &str)] = &[
    ("enable.auto.commit", "true"),
    ("auto.offset.reset", "earliest"),
];

/// Bound on group formation and on a rebalance: well above the 3 s heartbeat
/// interval through which members learn of a rebalance, well below the
/// 300 s rebalance timeout a lost member could hold the group for.
const GROUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the members may take to close (commit, LeaveGroup) once stopped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// What one group pass measured.
#[derive(Clone, Debug, Default)]
pub struct GroupRun {
    /// First subscribe until every member holds a non-empty assignment and
    /// together they hold each partition exactly once.
    pub formation_secs: f64,
    /// Assignments (rebalance callbacks that assigned partitions) over all
    /// members until formation: as many as members when the group formed in
    /// one generation.
    pub formation_assignments: u32,
    /// Distinct records delivered before the group was formed (members
    /// pause what they are assigned until then, so normally 0).
    pub before_formation: u64,
    /// Formation (members resume) to the last of the records the topic held:
    /// the records first delivered in that window, and what broker and bench
    /// spent.
    pub consume: Throughput,
    /// Deliveries beyond the distinct records (re-reads after a rebalance).
    pub redelivered: u64,
    /// Offsets no member ever received (gaps): anything but 0 is a bug.
    pub skipped: u64,
    /// A further member joining while records flow.
    pub join: Option<JoinRun>,
}

/// A member joining a formed group while a producer writes into the topic.
#[derive(Clone, Debug, Default)]
pub struct JoinRun {
    /// Distinct records delivered per second while the new member joined.
    pub flow_rate: u64,
    /// The new member's subscribe until every member (new one included)
    /// holds an assignment received after it, together each partition once.
    pub rebalance_secs: f64,
    /// The new member's subscribe until the last of the old members had its
    /// partitions revoked (NaN if one never was).
    pub revoke_secs: f64,
    /// The new member's subscribe until each member has received a record
    /// under its new assignment (NaN if one received none within 10 s).
    pub resume_secs: f64,
    /// Partitions per member after the rebalance.
    pub assignment: Vec<usize>,
    /// Deliveries beyond the distinct records during the join phase.
    pub redelivered: u64,
    /// Offsets no member received during the join phase.
    pub skipped: u64,
}

/// An atomic on its own cache line: each partition's progress is written by
/// the member that owns it, at every record.
#[repr(align(64))]
#[derive(Default)]
struct Padded<T>(T);

/// What every member saw, shared with the thread that measures.
struct GroupState {
    topic: String,
    members: Mutex<Vec<Member>>,
    changed: parking_lot::Condvar,
    /// Per partition: one past the highest offset delivered to any member.
    next: Vec<Padded<std::sync::atomic::AtomicI64>>,
    /// Per partition: the log start offset when the pass began.
    low: Vec<i64>,
    /// Per partition: the end offset when the pass began (the backlog).
    target: Vec<i64>,
    partitions_left: std::sync::atomic::AtomicUsize,
    drained_at: Mutex<Option<Instant>>,
    /// Per member: records delivered, and "no record yet under the latest
    /// assignment".
    polled: Vec<Padded<AtomicU64>>,
    fresh: Vec<Padded<AtomicBool>>,
    /// Until the group has formed, members pause what they are assigned, so
    /// that a group formed over several generations does not read the
    /// backlog with fewer members; `paused` marks who has to resume.
    formed: AtomicBool,
    paused: Vec<Padded<AtomicBool>>,
    skipped: AtomicU64,
    stop: AtomicBool,
    error: Mutex<Option<String>>,
}

/// One member as its rebalance callbacks left it.
#[derive(Clone, Debug, Default)]
struct Member {
    subscribed_at: Option<Instant>,
    assignment: Vec<i32>,
    assigned_at: Option<Instant>,
    /// Distinct records delivered to the group when this assignment arrived.
    distinct_at_assign: u64,
    revoked_at: Option<Instant>,
    assigns: u32,
    first_record_at: Option<Instant>,
    closed: bool,
}

impl GroupState {
    fn distinct(&self) -> u64 {
        self.next
            .iter()
            .zip(&self.low)
            .map(|(n, low)| (n.0.load(Ordering::Acquire) - low).max(0) as u64)
            .sum()
    }

    fn polled(&self) -> u64 {
        self.polled
            .iter()
            .map(|p| p.0.load(Ordering::Relaxed))
            .sum()
    }

    fn fail(&self, what: String) {
        self.error.lock().get_or_insert(what);
        self.changed.notify_all();
    }

    fn record(&self, idx: usize, partition: i32, offset: i64) {
        self.polled[idx].0.fetch_add(1, Ordering::Relaxed);
        let Some(slot) = self.next.get(partition as usize) else {
            self.fail(format!("member {idx} received partition {partition}"));
            return;
        };
        let prev = slot.0.fetch_max(offset + 1, Ordering::AcqRel);
        if offset > prev {
            self.skipped
                .fetch_add((offset - prev) as u64, Ordering::Relaxed);
        }
        let target = self.target[partition as usize];
        if prev < target
            && offset + 1 >= target
            && self.partitions_left.fetch_sub(1, Ordering::AcqRel) == 1
        {
            *self.drained_at.lock() = Some(Instant::now());
            self.changed.notify_all();
        }
        let fresh = &self.fresh[idx].0;
        if fresh.load(Ordering::Relaxed) && fresh.swap(false, Ordering::AcqRel) {
            let now = Instant::now();
            self.members.lock()[idx].first_record_at = Some(now);
            self.changed.notify_all();
        }
    }
}

/// The context of a group member: rebalance callbacks update its entry in
/// the shared state.
struct MemberContext {
    idx: usize,
    state: Arc<GroupState>,
}

impl ClientContext for MemberContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_to_stderr(level, fac, message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("runnel-bench: group member {}: {error}: {reason}", self.idx);
    }
}

impl ConsumerContext for MemberContext {
    fn post_rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        use rdkafka::consumer::Rebalance;
        let now = Instant::now();
        let s = &self.state;
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts: Vec<i32> = tpl
                    .elements()
                    .iter()
                    .filter(|e| e.topic() == s.topic)
                    .map(|e| e.partition())
                    .collect();
                let distinct = s.distinct();
                let mut members = s.members.lock();
                let me = &mut members[self.idx];
                me.assignment = parts;
                me.assigned_at = Some(now);
                me.distinct_at_assign = distinct;
                me.assigns += 1;
                me.first_record_at = None;
                s.fresh[self.idx].0.store(true, Ordering::Release);
                drop(members);
                if !s.formed.load(Ordering::Acquire) {
                    match consumer.pause(tpl) {
                        Ok(()) => s.paused[self.idx].0.store(true, Ordering::Release),
                        Err(e) => s.fail(format!("member {}: pause: {e}", self.idx)),
                    }
                }
            }
            Rebalance::Revoke(_) => {
                let mut members = s.members.lock();
                let me = &mut members[self.idx];
                me.assignment.clear();
                me.revoked_at = Some(now);
            }
            Rebalance::Error(e) => s.fail(format!("member {}: rebalance: {e}", self.idx)),
        }
        s.changed.notify_all();
    }
}

/// Members 0..n hold non-empty assignments, received at or after `since`,
/// that cover each of `partitions` exactly once: the time the last of them
/// arrived.
fn formed(
    members: &[Member],
    n: usize,
    partitions: usize,
    since: Option<Instant>,
) -> Option<Instant> {
    let ms = members.get(..n)?;
    let mut seen = vec![false; partitions];
    let mut total = 0;
    for m in ms {
        let at = m.assigned_at?;
        if m.assignment.is_empty() || since.is_some_and(|s| at < s) {
            return None;
        }
        for &p in &m.assignment {
            let slot = seen.get_mut(usize::try_from(p).ok()?)?;
            if *slot {
                return None;
            }
            *slot = true;
            total += 1;
        }
    }
    (total == partitions)
        .then(|| ms.iter().filter_map(|m| m.assigned_at).max())
        .flatten()
}

fn describe(members: &[Member], start: Instant) -> String {
    let ms = |t: Option<Instant>| {
        t.map_or("-".to_string(), |t| {
            format!(
                "{:.0}",
                t.saturating_duration_since(start).as_secs_f64() * 1e3
            )
        })
    };
    members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            format!(
                "member {i}: subscribed {} ms, {} assignments, last at {} ms {:?}, revoked at {} ms{}",
                ms(m.subscribed_at),
                m.assigns,
                ms(m.assigned_at),
                m.assignment,
                ms(m.revoked_at),
                if m.closed { ", closed" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Consumers with one group.id subscribed to one topic, each polling in its
/// own thread once told to subscribe.
struct Group {
    state: Arc<GroupState>,
    go: Vec<Option<std::sync::mpsc::Sender<()>>>,
    done: std::sync::mpsc::Receiver<usize>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// When the measuring started: the zero of the diagnostics.
    epoch: Instant,
}

impl Group {
    /// Creates `members` consumers (metadata fetched, connections up) whose
    /// threads wait for [`Group::go`].
    fn new(clients: &Clients, group_id: &str, topic: &str, members: usize) -> Result<Group> {
        let mut settings: Vec<(&str, &str)> = CONSUMER_SETTINGS.to_vec();
        settings.extend_from_slice(GROUP_CONSUMER_SETTINGS);
        settings.push(("group.id", group_id));
        let probe: BaseConsumer<StderrLog> = clients
            .config(&settings, &clients.consumer_extra)
            .create_with_context(StderrLog)?;
        let metadata = probe
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .context("metadata before the group")?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map_or(0, |t| t.partitions().len());
        if partitions == 0 {
            bail!("topic {topic} has no partitions");
        }
        let (mut low, mut target) = (Vec::new(), Vec::new());
        for p in 0..partitions as i32 {
            let (l, h) = probe
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .with_context(|| format!("watermarks of {topic}/{p}"))?;
            low.push(l);
            target.push(h);
        }
        drop(probe);
        let state = Arc::new(GroupState {
            topic: topic.to_string(),
            members: Mutex::new(vec![Member::default(); members]),
            changed: parking_lot::Condvar::new(),
            next: low
                .iter()
                .map(|&l| Padded(std::sync::atomic::AtomicI64::new(l)))
                .collect(),
            partitions_left: std::sync::atomic::AtomicUsize::new(
                low.iter().zip(&target).filter(|(l, h)| h > l).count(),
            ),
            low,
            target,
            drained_at: Mutex::new(None),
            polled: (0..members).map(|_| Padded::default()).collect(),
            fresh: (0..members).map(|_| Padded::default()).collect(),
            formed: AtomicBool::new(false),
            paused: (0..members).map(|_| Padded::default()).collect(),
            skipped: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            error: Mutex::new(None),
        });
        let (done_tx, done) = std::sync::mpsc::channel();
        let mut group = Group {
            state: state.clone(),
            go: Vec::new(),
            done,
            threads: Vec::new(),
            epoch: Instant::now(),
        };
        for idx in 0..members {
            let consumer: BaseConsumer<MemberContext> = clients
                .config(&settings, &clients.consumer_extra)
                .create_with_context(MemberContext {
                    idx,
                    state: state.clone(),
                })?;
            // Connections and metadata before the clock starts, as for the
            // assign-only consumer.
            consumer
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .context("metadata before subscribe")?;
            let (go_tx, go_rx) = std::sync::mpsc::channel();
            let (state, done_tx, topic) = (state.clone(), done_tx.clone(), topic.to_string());
            group.go.push(Some(go_tx));
            group.threads.push(std::thread::spawn(move || {
                member_thread(consumer, idx, &topic, &go_rx, &state);
                state.members.lock()[idx].closed = true;
                let _ = done_tx.send(idx);
            }));
        }
        Ok(group)
    }

    fn partitions(&self) -> usize {
        self.state.next.len()
    }

    /// Tells member `idx` to subscribe.
    fn go(&mut self, idx: usize) {
        if let Some(tx) = self.go[idx].take() {
            let _ = tx.send(());
        }
    }

    /// Waits up to `timeout` until `done` says yes, re-checking whenever a
    /// member's state changes (and every 5 ms for the lock-free counters).
    fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&[Member]) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        let mut members = self.state.members.lock();
        loop {
            if let Some(e) = self.state.error.lock().clone() {
                bail!("{what}: {e}; {}", describe(&members, self.epoch));
            }
            if let Some(t) = done(&members) {
                return Ok(t);
            }
            if Instant::now() > deadline {
                bail!(
                    "{what}: not within {timeout:?}; {}",
                    describe(&members, self.epoch)
                );
            }
            self.state
                .changed
                .wait_for(&mut members, Duration::from_millis(5));
        }
    }

    /// Stops every member and waits for them to close (commit, LeaveGroup).
    fn stop(mut self) -> Result<()> {
        self.state.stop.store(true, Ordering::Relaxed);
        self.go.clear();
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        let mut open = self.threads.len();
        while open > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.done.recv_timeout(left) {
                Ok(_) => open -= 1,
                Err(_) => {
                    // The threads are left behind: a close that hangs must not
                    // hang the bench.
                    let members = self.state.members.lock();
                    bail!(
                        "{open} group members did not close within {CLOSE_TIMEOUT:?}; {}",
                        describe(&members, self.epoch)
                    );
                }
            }
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        match self.state.error.lock().clone() {
            Some(e) => Err(anyhow!("{e}")),
            None => Ok(()),
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // Members not told to subscribe, or still polling after an error,
        // stop and close in their own threads.
        self.state.stop.store(true, Ordering::Relaxed);
    }
}

fn member_thread(
    consumer: BaseConsumer<MemberContext>,
    idx: usize,
    topic: &str,
    go: &std::sync::mpsc::Receiver<()>,
    state: &GroupState,
) {
    loop {
        match go.recv_timeout(Duration::from_millis(10)) {
            Ok(()) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                if !state.stop.load(Ordering::Relaxed) => {}
            Err(_) => return,
        }
    }
    state.members.lock()[idx].subscribed_at = Some(Instant::now());
    if let Err(e) = consumer.subscribe(&[topic]) {
        state.fail(format!("member {idx}: subscribe: {e}"));
        return;
    }
    while !state.stop.load(Ordering::Relaxed) {
        let paused = &state.paused[idx].0;
        let mut wait = Duration::from_millis(50);
        if paused.load(Ordering::Acquire) {
            if state.formed.load(Ordering::Acquire) {
                paused.store(false, Ordering::Release);
                if let Err(e) = consumer.assignment().and_then(|tpl| consumer.resume(&tpl)) {
                    state.fail(format!("member {idx}: resume: {e}"));
                }
            } else {
                // Resume within a few ms of formation.
                wait = Duration::from_millis(5);
            }
        }
        match consumer.poll(wait) {
            Some(Ok(m)) => state.record(idx, m.partition(), m.offset()),
            Some(Err(e)) => state.fail(format!("member {idx}: consume: {e}")),
            None => {}
        }
    }
    // Dropping closes: final commit, revocation, LeaveGroup.
    drop(consumer);
}

/// A group of `members` consumers reads `topic` (filled beforehand, records
/// of `size` bytes) from the beginning: group formation, then throughput
/// until the backlog is read. With `join_rate`, a producer then writes that
/// many records/s into the topic and one more member joins mid-stream.
pub fn group(
    clients: &Clients,
    group_id: &str,
    topic: &str,
    size: usize,
    members: usize,
    join_rate: Option<u64>,
    broker_cpu: &dyn Fn() -> Result<f64>,
) -> Result<GroupRun> {
    let total = members + usize::from(join_rate.is_some());
    let mut group = Group::new(clients, group_id, topic, total)?;
    let partitions = group.partitions();
    let state = group.state.clone();
    let backlog: u64 = state
        .target
        .iter()
        .zip(&state.low)
        .map(|(h, l)| (h - l) as u64)
        .sum();

    for idx in 0..members {
        group.go(idx);
    }
    let first_subscribe = group.wait_for("subscribe", GROUP_TIMEOUT, |m| {
        m[..members].iter().map(|m| m.subscribed_at).min().flatten()
    })?;
    let formed_at = group.wait_for(
        &format!("group of {members} forming over {partitions} partitions"),
        GROUP_TIMEOUT,
        |m| formed(m, members, partitions, None),
    )?;
    state.formed.store(true, Ordering::Release);
    let resumed = Instant::now();
    let cpu0 = (broker_cpu()?, crate::broker::self_cpu_secs()?);
    let before_formation = state.distinct();
    let formation_assignments = state.members.lock()[..members]
        .iter()
        .map(|m| m.assigns)
        .sum();
    let drained_at = group.wait_for(
        &format!("group reading {backlog} records"),
        CLIENT_TIMEOUT,
        |_| *state.drained_at.lock(),
    )?;
    let cpu1 = (broker_cpu()?, crate::broker::self_cpu_secs()?);
    let records = backlog.saturating_sub(before_formation);
    let mut run = GroupRun {
        formation_secs: (formed_at - first_subscribe).as_secs_f64(),
        formation_assignments,
        before_formation,
        consume: Throughput {
            records,
            payload_bytes: records * size as u64,
            secs: drained_at.saturating_duration_since(resumed).as_secs_f64(),
            broker_cpu_secs: cpu1.0 - cpu0.0,
            client_cpu_secs: cpu1.1 - cpu0.1,
        },
        redelivered: state.polled().saturating_sub(state.distinct()),
        skipped: state.skipped.load(Ordering::Relaxed),
        join: None,
    };
    if let Some(rate) = join_rate {
        run.join = Some(join_mid_stream(
            clients, &mut group, topic, size, members, rate,
        )?);
    }
    group.stop()?;
    Ok(run)
}

/// A producer writes `rate` records/s into `topic` while the formed group
/// reads them; once the flow has reached the group, member `joiner`
/// subscribes.
fn join_mid_stream(
    clients: &Clients,
    group: &mut Group,
    topic: &str,
    size: usize,
    joiner: usize,
    rate: u64,
) -> Result<JoinRun> {
    let state = group.state.clone();
    let partitions = group.partitions();
    let stop = AtomicBool::new(false);
    let (polled0, distinct0, skipped0) = (
        state.polled(),
        state.distinct(),
        state.skipped.load(Ordering::Relaxed),
    );
    std::thread::scope(|s| {
        let producer = s.spawn(|| paced_produce(clients, topic, size, rate, &stop));
        let result = (|| -> Result<JoinRun> {
            // A third of a second of flow delivered before the join.
            let flowing = distinct0 + (rate / 3).max(1);
            let flow_start = Instant::now();
            group.wait_for(
                "records flowing to the group",
                Duration::from_secs(10),
                |_| (state.distinct() >= flowing).then_some(()),
            )?;
            group.go(joiner);
            let joined = group.wait_for("new member subscribing", GROUP_TIMEOUT, |m| {
                m[joiner].subscribed_at
            })?;
            let n = joiner + 1;
            let rebalanced =
                group.wait_for(&format!("rebalance to {n} members"), GROUP_TIMEOUT, |m| {
                    formed(m, n, partitions, Some(joined))
                })?;
            let (revoked, assignment) = {
                let m = state.members.lock();
                let revoked = m[..joiner]
                    .iter()
                    .map(|m| m.revoked_at.filter(|&t| t >= joined))
                    .collect::<Option<Vec<_>>>()
                    .and_then(|v| v.into_iter().max());
                (revoked, m[..n].iter().map(|m| m.assignment.len()).collect())
            };
            // Every member receiving records again; bounded, since a member
            // could own only partitions the producer has not written to.
            let resumed = group
                .wait_for("members resuming", Duration::from_secs(10), |m| {
                    m[..n]
                        .iter()
                        .map(|m| m.first_record_at)
                        .collect::<Option<Vec<_>>>()
                        .and_then(|v| v.into_iter().max())
                })
                .ok();
            let secs = |t: Option<Instant>| {
                t.map_or(f64::NAN, |t| {
                    t.saturating_duration_since(joined).as_secs_f64()
                })
            };
            Ok(JoinRun {
                flow_rate: ((state.distinct() - distinct0) as f64
                    / flow_start.elapsed().as_secs_f64()) as u64,
                rebalance_secs: secs(Some(rebalanced)),
                revoke_secs: secs(revoked),
                resume_secs: secs(resumed),
                assignment,
                redelivered: 0,
                skipped: 0,
            })
        })();
        stop.store(true, Ordering::Relaxed);
        let produced = producer
            .join()
            .map_err(|_| anyhow!("flow producer panicked"))?;
        let mut run = result?;
        produced.context("flow producer")?;
        let distinct = state.distinct() - distinct0;
        run.redelivered = (state.polled() - polled0).saturating_sub(distinct);
        run.skipped = state.skipped.load(Ordering::Relaxed) - skipped0;
        Ok(run)
    })
}

/// Sends `rate` records/s of `size` bytes to `topic` until `stop`, then
/// waits for the acknowledgements; returns how many were sent.
fn paced_produce(
    clients: &Clients,
    topic: &str,
    size: usize,
    rate: u64,
    stop: &AtomicBool,
) -> Result<u64> {
    let producer: BaseProducer = clients
        .producer(PRODUCER_SETTINGS)
        .set("acks", "1")
        .create()?;
    let payload = vec![b'f'; size];
    let start = Instant::now();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64 + 1;
        while sent < due {
            match producer.send(BaseRecord::<(), [u8]>::to(topic).payload(&payload[..])) {
                Ok(()) => sent += 1,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => break,
                Err((e, _)) => bail!("send: {e}"),
            }
        }
        producer.poll(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(1));
        if start.elapsed() > CLIENT_TIMEOUT {
            bail!("flow producer ran for {CLIENT_TIMEOUT:?}");
        }
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(sent)
}

/// Group formation alone: `members` consumers subscribe to `topic` together.
pub fn group_formation(
    clients: &Clients,
    group_id: &str,
    topic: &str,
    members: usize,
) -> Result<f64> {
    let mut group = Group::new(clients, group_id, topic, members)?;
    let partitions = group.partitions();
    for idx in 0..members {
        group.go(idx);
    }
    let first = group.wait_for("subscribe", GROUP_TIMEOUT, |m| {
        m.iter().map(|m| m.subscribed_at).min().flatten()
    })?;
    let formed_at = group.wait_for(
        &format!("group of {members} forming over {partitions} partitions"),
        GROUP_TIMEOUT,
        |m| formed(m, members, partitions, None),
    )?;
    group.stop()?;
    Ok((formed_at - first).as_secs_f64())
}

// ---------------------------------------------------------------------------
// Transactions

/// Settings of the transactional producer (its `transactional.id` makes it
/// idempotent with acks=all; `enable.idempotence=false` would be refused).
pub const TXN_PRODUCER_SETTINGS: &[(&str, &str)] = &[
    // The bench waits for a transaction's acknowledgements before its
    // commit (see `transactions`): a linger would be waited out each time
    // (librdkafka's own commit flush skips it). Records sent while a
    // request is in flight are still batched.
    ("linger.ms", "0"),
    ("batch.size", "1000000"),
    ("batch.num.messages", "1000000"),
    ("queue.buffering.max.messages", "1000000"),
    ("queue.buffering.max.kbytes", "2097152"),
    ("compression.type", "none"),
    // librdkafka requires message.timeout.ms (120 s in the bench) <=
    // transaction.timeout.ms (default 60 s).
    ("transaction.timeout.ms", "120000"),
];

/// What one transactional produce pass measured.
#[derive(Clone, Debug, Default)]
pub struct TxnRun {
    /// First begin_transaction to the return of the last commit_transaction.
    pub produce: Throughput,
    pub txns: u64,
    /// init_transactions (FindCoordinator, InitProducerId), before the clock.
    pub init_secs: f64,
    /// From the last send of each transaction to the return of its
    /// commit_transaction (acknowledgement of its records, EndTxn), sorted.
    pub commits: Latency,
}

impl TxnRun {
    pub fn txns_per_sec(&self) -> f64 {
        self.txns as f64 / self.produce.secs
    }
}

/// Delivery reports of the transactional producer, served by its
/// background thread; the bench thread waits on `changed`.
struct TxnAcks {
    done: Mutex<u64>,
    changed: parking_lot::Condvar,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for TxnAcks {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_to_stderr(level, fac, message);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("runnel-bench: transactional producer error: {error}: {reason}");
    }
}

impl ProducerContext for TxnAcks {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            self.first_error.lock().get_or_insert_with(|| e.to_string());
        }
        *self.done.lock() += 1;
        self.changed.notify_all();
    }
}

/// One transactional producer sends `records` records of `size` bytes to
/// `topic`, round-robin over its `partitions` (so that every transaction
/// spans all of them), in transactions of `per_txn` records: begin, send,
/// wait for the acknowledgements, commit; one after the other. Times the
/// first begin to the last commit's return.
///
/// The producer is a `ThreadedProducer` (delivery reports served by its
/// own thread, the bench woken by a condition variable) and the bench waits
/// for a transaction's acknowledgements before commit_transaction:
/// commit_transaction first calls rust-rdkafka's flush, which polls in
/// 100 ms slices that do not end early, so with a record still in flight
/// every commit would take 100 ms more.
#[allow(clippy::too_many_arguments)]
pub fn transactions(
    clients: &Clients,
    topic: &str,
    partitions: i32,
    size: usize,
    records: u64,
    per_txn: u64,
    transactional_id: &str,
    broker_cpu: &dyn Fn() -> Result<f64>,
) -> Result<TxnRun> {
    if per_txn == 0 || partitions < 1 {
        bail!("transactions of {per_txn} records over {partitions} partitions");
    }
    let acks = TxnAcks {
        done: Mutex::new(0),
        changed: parking_lot::Condvar::new(),
        failed: AtomicU64::new(0),
        first_error: Mutex::new(None),
    };
    let mut config = clients.producer(TXN_PRODUCER_SETTINGS);
    config.set("transactional.id", transactional_id);
    let producer: ThreadedProducer<TxnAcks> = config.create_with_context(acks)?;
    producer
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("metadata before the transactions")?;
    let init = Instant::now();
    producer
        .init_transactions(CLIENT_TIMEOUT)
        .map_err(|e| anyhow!("init_transactions: {e}"))?;
    let init_secs = init.elapsed().as_secs_f64();
    let payload = vec![b't'; size];
    let ctx = producer.context();

    let cpu0 = (broker_cpu()?, crate::broker::self_cpu_secs()?);
    let start = Instant::now();
    let mut commits = Vec::with_capacity((records / per_txn + 1) as usize);
    let mut sent = 0u64;
    let mut txns = 0u64;
    while sent < records {
        let n = per_txn.min(records - sent);
        producer
            .begin_transaction()
            .map_err(|e| anyhow!("begin_transaction {txns}: {e}"))?;
        for i in sent..sent + n {
            let mut record = Some(
                BaseRecord::<(), [u8]>::to(topic)
                    .partition((i % partitions as u64) as i32)
                    .payload(&payload[..]),
            );
            while let Some(r) = record.take() {
                match producer.send(r) {
                    Ok(()) => {}
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = Some(r);
                        std::thread::sleep(Duration::from_millis(1));
                        if start.elapsed() > CLIENT_TIMEOUT {
                            bail!("produce queue stayed full for {CLIENT_TIMEOUT:?}");
                        }
                    }
                    Err((e, _)) => bail!("send in transaction {txns}: {e}"),
                }
            }
        }
        let t = Instant::now();
        {
            let mut done = ctx.done.lock();
            while *done < sent + n {
                if ctx
                    .changed
                    .wait_for(&mut done, Duration::from_millis(100))
                    .timed_out()
                    && t.elapsed() > CLIENT_TIMEOUT
                {
                    bail!(
                        "transaction {txns}: {} of {n} records acknowledged after {CLIENT_TIMEOUT:?}",
                        *done - sent
                    );
                }
            }
        }
        // The reports are counted inside the callback, before librdkafka
        // releases the messages: until it has, its flush would still see
        // them in flight.
        while producer.in_flight_count() > 0 {
            std::thread::sleep(Duration::from_micros(20));
            if t.elapsed() > CLIENT_TIMEOUT {
                bail!("transaction {txns}: messages still in flight after their reports");
            }
        }
        producer
            .commit_transaction(CLIENT_TIMEOUT)
            .map_err(|e| anyhow!("commit_transaction {txns}: {e}"))?;
        commits.push(t.elapsed().as_nanos() as u64);
        sent += n;
        txns += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu1 = (broker_cpu()?, crate::broker::self_cpu_secs()?);
    let (done, failed) = (*ctx.done.lock(), ctx.failed.load(Ordering::Relaxed));
    if done != records || failed > 0 {
        bail!(
            "{done} delivery reports for {records} committed records, {failed} failed: {}",
            ctx.first_error.lock().clone().unwrap_or_default()
        );
    }
    commits.sort_unstable();
    Ok(TxnRun {
        produce: Throughput {
            records,
            payload_bytes: records * size as u64,
            secs,
            broker_cpu_secs: cpu1.0 - cpu0.0,
            client_cpu_secs: cpu1.1 - cpu0.1,
        },
        txns,
        init_secs,
        commits: Latency {
            sorted_nanos: commits,
            broker_cpu_secs: cpu1.0 - cpu0.0,
            secs,
        },
    })
}
