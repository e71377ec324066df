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
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
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
