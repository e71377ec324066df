//! The `/metrics` and `/health` endpoint, scraped over a real socket while
//! real clients (librdkafka through `rdkafka`, and raw wire requests) use an
//! in-process broker. Every expectation is computed from what the test did.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{
    admin, broker_runtime, consume, consumer, create_topic, flush_all_ok, member_config,
    read_frame, recording_producer, send_blocking, wait_for, watchdog, write_frame, TestBroker,
    TIMEOUT,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::Offset;
use runnel::BrokerConfig;

fn with_metrics(c: &mut BrokerConfig) {
    c.set("runnel.metrics.listener", "http://127.0.0.1:0")
        .expect("metrics listener");
}

/// One HTTP/1.1 GET; returns (status, headers, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to metrics endpoint");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nAccept: */*\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.parse().ok())
        .expect("Content-Length");
    assert_eq!(length, body.len(), "Content-Length matches the body");
    (status, head.to_owned(), body.to_owned())
}

/// A scraped page: every sample by its `name{labels}` as printed, after
/// checking that each sample belongs to a family declared before it.
struct Scrape(HashMap<String, f64>);

impl Scrape {
    fn take(addr: SocketAddr) -> Scrape {
        let (status, head, body) = get(addr, "/metrics");
        assert_eq!(status, 200, "{body}");
        assert!(
            head.contains("Content-Type: text/plain; version=0.0.4"),
            "{head}"
        );
        let mut families: HashMap<String, String> = HashMap::new();
        let mut samples = HashMap::new();
        for line in body.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                assert!(
                    families.insert(name.to_owned(), kind.to_owned()).is_none(),
                    "family {name} declared twice"
                );
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (key, value) = line.rsplit_once(' ').expect("sample value");
            let name = key.split('{').next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|base| families.get(*base).map(String::as_str) == Some("histogram"))
                })
                .unwrap_or(name);
            assert!(
                families.contains_key(family),
                "sample before its TYPE: {line}"
            );
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
            };
            assert!(
                samples.insert(key.to_owned(), value).is_none(),
                "duplicate sample {key}"
            );
        }
        Scrape(samples)
    }

    fn get(&self, key: &str) -> f64 {
        *self
            .0
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key} in the scrape"))
    }

    fn or_zero(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }

    /// Sum of the samples of `name` whose labels include all of `labels`.
    fn sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| {
                k.split('{').next() == Some(name) && labels.iter().all(|l| k.contains(l))
            })
            .map(|(_, v)| v)
            .sum()
    }
}

fn topic_key(name: &str, topic: &str) -> String {
    format!("{name}{{topic=\"{topic}\"}}")
}

fn partition_key(name: &str, topic: &str, p: i32) -> String {
    format!("{name}{{topic=\"{topic}\",partition=\"{p}\"}}")
}

const BYTES_IN: &str = "kafka_server_brokertopicmetrics_bytesin_total";
const BYTES_OUT: &str = "kafka_server_brokertopicmetrics_bytesout_total";
const MESSAGES_IN: &str = "kafka_server_brokertopicmetrics_messagesin_total";
const PRODUCE_PARTITIONS: &str = "kafka_server_brokertopicmetrics_totalproducerequests_total";
const REQUESTS: &str = "kafka_network_requestmetrics_requests_total";
const TOTAL_TIME: &str = "kafka_network_requestmetrics_totaltimems";
const LOG_SIZE: &str = "kafka_log_log_size";
const LOG_END: &str = "kafka_log_log_logendoffset";
const LOG_START: &str = "kafka_log_log_logstartoffset";
const PARTITIONS: &str = "kafka_server_replicamanager_partitioncount";
const OPEN: &str = "kafka_server_socket_server_metrics_connection_count{listener=\"PLAINTEXT\"}";
const CREATED: &str =
    "kafka_server_socket_server_metrics_connection_creation_total{listener=\"PLAINTEXT\"}";
const FETCH_PURGATORY: &str =
    "kafka_server_delayedoperationpurgatory_purgatorysize{delayedOperation=\"Fetch\"}";
const PRODUCE_PURGATORY: &str =
    "kafka_server_delayedoperationpurgatory_purgatorysize{delayedOperation=\"Produce\"}";

#[test]
fn scraped_counters_move_by_what_clients_did() {
    let _dog = watchdog("scraped_counters_move_by_what_clients_did", TIMEOUT * 4);
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start_with(with_metrics));
    let handle = broker.handle.as_ref().unwrap();
    let http = handle.metrics_addr().expect("metrics endpoint enabled");
    let bootstrap = broker.bootstrap();

    let (status, _, body) = get(http, "/health");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert_eq!(get(http, "/nope").0, 404);

    let topic = "metrics-t";
    let before_topic = Scrape::take(http);
    let admin = admin(&bootstrap);
    rt.block_on(create_topic(&admin, topic, 2, &[]));
    drop(admin);
    let created = Scrape::take(http);
    assert_eq!(
        created.get(PARTITIONS) - before_topic.get(PARTITIONS),
        2.0,
        "partition count grows by the new topic's partitions"
    );
    for p in 0..2 {
        assert_eq!(created.get(&partition_key(LOG_SIZE, topic, p)), 0.0);
        assert_eq!(created.get(&partition_key(LOG_END, topic, p)), 0.0);
    }

    // 120 records to partition 0, 80 to partition 1, 100-byte payloads.
    let per_partition = [120usize, 80];
    let total: usize = per_partition.iter().sum();
    let producer = recording_producer(&bootstrap, &[("linger.ms", "5")]);
    let payload = vec![b'x'; 100];
    let mut id = 0;
    for (p, n) in per_partition.iter().enumerate() {
        for _ in 0..*n {
            send_blocking(
                &producer,
                BaseRecord::<(), _, usize>::with_opaque_to(topic, id)
                    .partition(p as i32)
                    .payload(&payload),
            );
            id += 1;
        }
    }
    flush_all_ok(&producer, total);
    drop(producer);

    let produced = Scrape::take(http);
    let messages_in = produced.or_zero(&topic_key(MESSAGES_IN, topic));
    assert_eq!(messages_in, total as f64, "messages in == records produced");
    assert_eq!(
        produced.get(MESSAGES_IN) - created.get(MESSAGES_IN),
        total as f64,
        "all-topics messages in"
    );
    let mut log_bytes = 0.0;
    for (p, n) in per_partition.iter().enumerate() {
        let p = p as i32;
        assert_eq!(
            produced.get(&partition_key(LOG_END, topic, p)),
            *n as f64,
            "log end offset of partition {p}"
        );
        assert_eq!(produced.get(&partition_key(LOG_START, topic, p)), 0.0);
        log_bytes += produced.get(&partition_key(LOG_SIZE, topic, p));
    }
    // Batches are stored as received: what came in is what the log holds.
    let bytes_in = produced.get(&topic_key(BYTES_IN, topic));
    assert_eq!(bytes_in, log_bytes, "bytes in == log size");
    assert!(
        bytes_in >= (total * payload.len()) as f64,
        "bytes in {bytes_in} covers the payloads"
    );
    assert_eq!(produced.get(BYTES_IN) - created.get(BYTES_IN), bytes_in);
    let produce_requests = produced.sum(REQUESTS, &["request=\"Produce\""])
        - created.sum(REQUESTS, &["request=\"Produce\""]);
    assert!(
        (1.0..=total as f64).contains(&produce_requests),
        "Produce requests: {produce_requests}"
    );
    // Both partitions were written, in at most one request per record each.
    let partitions_written = produced.get(&topic_key(PRODUCE_PARTITIONS, topic));
    assert!(
        (2.0..=total as f64).contains(&partitions_written),
        "{partitions_written}"
    );
    assert_eq!(
        produced.get(&format!("{TOTAL_TIME}_count{{request=\"Produce\"}}")),
        produced.sum(REQUESTS, &["request=\"Produce\""]),
        "one latency observation per Produce request"
    );
    assert_eq!(
        produced.get(&format!(
            "{TOTAL_TIME}_bucket{{request=\"Produce\",le=\"+Inf\"}}"
        )),
        produced.get(&format!("{TOTAL_TIME}_count{{request=\"Produce\"}}")),
    );

    // Consume everything once: each batch leaves exactly once.
    let c = consumer(&bootstrap, &[]);
    consume(&c, topic, &[0, 1], Offset::Beginning, total, TIMEOUT);
    drop(c);
    let consumed = Scrape::take(http);
    assert_eq!(
        consumed.get(&topic_key(BYTES_OUT, topic)),
        log_bytes,
        "bytes out == the log, read once"
    );
    assert!(
        consumed.sum(REQUESTS, &["request=\"Fetch\""])
            > produced.sum(REQUESTS, &["request=\"Fetch\""])
    );
    assert_eq!(
        consumed.get(&topic_key(MESSAGES_IN, topic)),
        total as f64,
        "consuming adds nothing in"
    );
    for key in [
        "kafka_server_replicamanager_underreplicatedpartitions",
        "kafka_server_replicamanager_underminisrpartitioncount",
    ] {
        assert_eq!(consumed.get(key), 0.0, "{key} on one node");
    }
    assert_eq!(
        consumed.get("kafka_server_replicamanager_atminisrpartitioncount"),
        consumed.get(PARTITIONS),
        "one in-sync replica each, min.insync.replicas 1"
    );
    assert_eq!(consumed.get(PRODUCE_PURGATORY), 0.0);
    // No compacted topic here: the cleaner had nothing to do.
    assert_eq!(consumed.get("runnel_log_cleaner_cleanings_total"), 0.0);

    // Connections, exactly: once the clients are gone, one raw connection
    // making five ApiVersions v3 requests.
    let idle = wait_for(
        TIMEOUT,
        || "client connections to close".into(),
        || {
            let s = Scrape::take(http);
            (s.get(OPEN) == 0.0).then_some(s)
        },
    );
    let stream = rt.block_on(async {
        let mut s = tokio::net::TcpStream::connect(handle.local_addr())
            .await
            .unwrap();
        for correlation in 0..5i32 {
            let mut req = Vec::new();
            req.extend_from_slice(&18i16.to_be_bytes());
            req.extend_from_slice(&3i16.to_be_bytes());
            req.extend_from_slice(&correlation.to_be_bytes());
            req.extend_from_slice(&4i16.to_be_bytes());
            req.extend_from_slice(b"test");
            req.push(0); // header tagged fields
            req.extend_from_slice(&[5, b'r', b'u', b's', b't', 2, b'1', 0]); // name, version, tags
            write_frame(&mut s, &req).await.expect("write request");
            let resp = read_frame(&mut s).await.expect("ApiVersions answer");
            assert_eq!(&resp[..4], &correlation.to_be_bytes());
        }
        s
    });
    let open = Scrape::take(http);
    assert_eq!(open.get(OPEN), 1.0);
    assert_eq!(open.get(CREATED) - idle.get(CREATED), 1.0);
    let versions =
        "kafka_network_requestmetrics_requests_total{request=\"ApiVersions\",version=\"3\"}";
    assert_eq!(open.get(versions) - idle.or_zero(versions), 5.0);
    drop(stream);
    wait_for(
        TIMEOUT,
        || "the raw connection to be counted closed".into(),
        || (Scrape::take(http).get(OPEN) == 0.0).then_some(()),
    );
}

/// Produces `n` 10-byte records to partition 0 of `topic` with a fresh
/// producer (one that has not cached an older topic id).
fn produce_n(bootstrap: &str, topic: &str, n: usize) {
    let producer = recording_producer(bootstrap, &[("linger.ms", "5")]);
    for i in 0..n {
        send_blocking(
            &producer,
            BaseRecord::<(), _, usize>::with_opaque_to(topic, i)
                .partition(0)
                .payload(&b"0123456789"[..]),
        );
    }
    flush_all_ok(&producer, n);
}

#[test]
fn a_topic_recreated_between_scrapes_starts_from_zero() {
    let _dog = watchdog(
        "a_topic_recreated_between_scrapes_starts_from_zero",
        TIMEOUT * 3,
    );
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start_with(with_metrics));
    let http = broker.handle.as_ref().unwrap().metrics_addr().unwrap();
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    let topic = "metrics-recreated";
    rt.block_on(create_topic(&admin, topic, 1, &[]));
    produce_n(&bootstrap, topic, 7);
    let first = Scrape::take(http);
    assert_eq!(first.get(&topic_key(MESSAGES_IN, topic)), 7.0);

    // Deleted and re-created with no scrape in between.
    let opts = rdkafka::admin::AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let deleted = rt
        .block_on(admin.delete_topics(&[topic], &opts))
        .expect("DeleteTopics");
    assert!(deleted.iter().all(|r| r.is_ok()), "{deleted:?}");
    rt.block_on(create_topic(&admin, topic, 1, &[]));
    produce_n(&bootstrap, topic, 3);
    let second = Scrape::take(http);
    assert_eq!(
        second.get(&topic_key(MESSAGES_IN, topic)),
        3.0,
        "the new topic counts only its own records"
    );
    assert_eq!(
        second.get(MESSAGES_IN) - first.get(MESSAGES_IN),
        3.0,
        "the all-topics sample keeps counting"
    );
    // The cleaner's give-ups are exported per log directory (none here).
    let uncleanable = "kafka_log_logcleanermanager_uncleanable_partitions_count";
    let dir = broker
        .handle
        .as_ref()
        .unwrap()
        .broker
        .config
        .log_dir
        .clone();
    assert_eq!(
        second.get(&format!(
            "{uncleanable}{{logDirectory=\"{}\"}}",
            dir.display()
        )),
        0.0
    );
}

#[test]
fn a_partition_the_cleaner_gives_up_on_is_counted() {
    let _dog = watchdog(
        "a_partition_the_cleaner_gives_up_on_is_counted",
        TIMEOUT * 3,
    );
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start_with(|c| {
        with_metrics(c);
        c.set("log.cleaner.backoff.ms", "20").unwrap();
    }));
    let http = broker.handle.as_ref().unwrap().metrics_addr().unwrap();
    let log_dir = broker
        .handle
        .as_ref()
        .unwrap()
        .broker
        .config
        .log_dir
        .clone();
    let uncleanable = format!(
        "kafka_log_logcleanermanager_uncleanable_partitions_count{{logDirectory=\"{}\"}}",
        log_dir.display()
    );
    assert_eq!(Scrape::take(http).get(&uncleanable), 0.0);

    // Keyed records over several small segments of a `delete` topic.
    let topic = "metrics-uncleanable";
    let admin = admin(&broker.bootstrap());
    let small = [
        ("segment.bytes", "1024"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("min.compaction.lag.ms", "0"),
    ];
    rt.block_on(create_topic(&admin, topic, 1, &small));
    let producer = recording_producer(&broker.bootstrap(), &[]);
    let payload = vec![b'v'; 100];
    for i in 0..40usize {
        let key = format!("k{}", i % 5);
        send_blocking(
            &producer,
            BaseRecord::with_opaque_to(topic, i)
                .partition(0)
                .key(&key)
                .payload(&payload),
        );
        flush_all_ok(&producer, 1);
    }
    drop(producer);
    // The first batch's records section turns into garbage on disk (an
    // over-long varint where the first record's length is).
    let first = log_dir
        .join(format!("{topic}-0"))
        .join("00000000000000000000.log");
    let mut bytes = std::fs::read(&first).unwrap();
    assert!(bytes.len() > 1024 / 2, "the first segment holds batches");
    bytes[61..66].fill(0xff);
    std::fs::write(&first, &bytes).unwrap();
    assert_eq!(Scrape::take(http).get(&uncleanable), 0.0);

    // Compacting it now fails, and the cleaner gives the partition up.
    let mut config =
        rdkafka::admin::AlterConfig::new(rdkafka::admin::ResourceSpecifier::Topic(topic));
    config = config.set("cleanup.policy", "compact");
    for (k, v) in small {
        config = config.set(k, v);
    }
    let opts = rdkafka::admin::AdminOptions::new().request_timeout(Some(TIMEOUT));
    let altered = rt
        .block_on(admin.alter_configs([&config], &opts))
        .expect("AlterConfigs");
    assert!(altered.iter().all(|r| r.is_ok()), "{altered:?}");
    let gave_up = wait_for(
        TIMEOUT,
        || "the cleaner to give the partition up".into(),
        || {
            let s = Scrape::take(http);
            (s.get(&uncleanable) > 0.0).then_some(s)
        },
    );
    assert_eq!(gave_up.get(&uncleanable), 1.0);
    assert!(gave_up.get("runnel_log_cleaner_failures_total") >= 1.0);
}

#[test]
fn long_polls_groups_and_transactions_show_up() {
    let _dog = watchdog("long_polls_groups_and_transactions_show_up", TIMEOUT * 4);
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start_with(with_metrics));
    let http = broker.handle.as_ref().unwrap().metrics_addr().unwrap();
    let bootstrap = broker.bootstrap();
    let topic = "metrics-poll";
    rt.block_on(create_topic(&admin(&bootstrap), topic, 1, &[]));

    // A consumer at the end of an empty partition waits in the purgatory.
    let waiting = consumer(&bootstrap, &[("fetch.wait.max.ms", "10000")]);
    consume(&waiting, topic, &[0], Offset::End, 0, TIMEOUT);
    wait_for(
        TIMEOUT,
        || "a long-polling fetch in the fetch purgatory".into(),
        || (Scrape::take(http).get(FETCH_PURGATORY) >= 1.0).then_some(()),
    );
    drop(waiting);

    // A group member: one stable group.
    let member: BaseConsumer = member_config(&bootstrap, "metrics-group", "m1", &[])
        .create()
        .expect("member");
    member.subscribe(&[topic]).expect("subscribe");
    let stable = "kafka_coordinator_group_groupmetadatamanager_numgroupsstable";
    wait_for(
        TIMEOUT,
        || "the group to become stable".into(),
        || {
            let _ = member.poll(Duration::from_millis(100));
            let s = Scrape::take(http);
            (s.get(stable) == 1.0).then_some(())
        },
    );
    let s = Scrape::take(http);
    assert_eq!(
        s.get("kafka_coordinator_group_groupmetadatamanager_numgroups"),
        1.0
    );
    drop(member);

    // A transaction: Ongoing while open, CompleteCommit after.
    let txn = recording_producer(&bootstrap, &[("transactional.id", "metrics-txn")]);
    txn.init_transactions(TIMEOUT).expect("init");
    txn.begin_transaction().expect("begin");
    send_blocking(
        &txn,
        BaseRecord::<(), _, usize>::with_opaque_to(topic, 0).payload("v"),
    );
    flush_all_ok(&txn, 1);
    let ongoing = Scrape::take(http);
    assert_eq!(ongoing.get("runnel_transactions{state=\"Ongoing\"}"), 1.0);
    txn.commit_transaction(TIMEOUT).expect("commit");
    wait_for(
        TIMEOUT,
        || "the transaction to complete".into(),
        || {
            let s = Scrape::take(http);
            (s.get("runnel_transactions{state=\"CompleteCommit\"}") == 1.0
                && s.get("runnel_transactions{state=\"Ongoing\"}") == 0.0)
                .then_some(())
        },
    );
    drop(txn);
}

#[test]
fn an_explicit_address_in_use_stops_start_up_and_the_default_does_not() {
    let rt = broker_runtime();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();

    let mut explicit = BrokerConfig::default_for_tests(dir.path().into());
    explicit
        .set(
            "runnel.metrics.listener",
            &format!("http://127.0.0.1:{port}"),
        )
        .unwrap();
    let err = rt
        .block_on(runnel::broker::start(explicit))
        .err()
        .expect("start fails on a taken explicit address");
    assert!(
        format!("{err:#}").contains("runnel.metrics.listener"),
        "{err:#}"
    );

    // The same address as an unrequested default: a warning, no endpoint.
    let mut default = BrokerConfig::default_for_tests(dir.path().into());
    default.metrics_listener = Some(runnel::metrics::MetricsListener {
        host: "127.0.0.1".into(),
        port,
        required: false,
    });
    let handle = rt
        .block_on(runnel::broker::start(default))
        .expect("starts without the endpoint");
    assert_eq!(handle.metrics_addr(), None);
    rt.block_on(handle.shutdown()).unwrap();
}

#[test]
fn the_endpoint_stops_with_the_broker() {
    let rt = broker_runtime();
    let mut broker = rt.block_on(TestBroker::start_with(with_metrics));
    let http = broker.handle.as_ref().unwrap().metrics_addr().unwrap();
    assert_eq!(get(http, "/health").0, 200);
    rt.block_on(broker.stop());
    wait_for(
        TIMEOUT,
        || "the metrics listener to close".into(),
        || TcpStream::connect(http).is_err().then_some(()),
    );
}

/// Log lines of every broker in this test process, from the first call on.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "info,runnel::metrics=debug",
            ))
            .with_ansi(false)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber");
        buf
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The captured lines of requests from `client_id`.
fn lines_of(logs: &Mutex<Vec<u8>>, client_id: &str) -> Vec<String> {
    let needle = format!("client_id=\"{client_id}\"");
    String::from_utf8_lossy(&logs.lock().unwrap())
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_owned)
        .collect()
}

/// `request done` lines of `api` that took at least `min_us`.
fn done_at_least(lines: &[String], api: &str, min_us: u64) -> usize {
    let api = format!("api=\"{api}\"");
    lines
        .iter()
        .filter(|l| l.contains("request done") && l.contains(&api))
        .filter_map(|l| l.rsplit_once("elapsed_us=")?.1.trim().parse::<u64>().ok())
        .filter(|us| *us >= min_us)
        .count()
}

#[test]
fn slow_request_log_leaves_out_long_polls_and_group_waits() {
    let _dog = watchdog("slow_request_log", TIMEOUT * 4);
    let logs = captured_logs();
    let rt = broker_runtime();

    // Threshold 0: every request that is not a wait the client asked for is
    // logged as slow.
    let all = rt.block_on(TestBroker::start_with(|c| {
        c.set("runnel.slow.request.ms", "0").unwrap()
    }));
    let a = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", all.bootstrap())
        .set("client.id", "slow-a")
        .create::<rdkafka::admin::AdminClient<_>>()
        .expect("admin");
    rt.block_on(create_topic(&a, "slow-a", 1, &[]));
    drop(a);
    let lines = lines_of(&logs, "slow-a");
    for api in ["ApiVersions", "Metadata", "CreateTopics"] {
        assert!(
            lines.iter().any(|l| l.contains(" WARN ")
                && l.contains("slow request")
                && l.contains(&format!("api=\"{api}\""))),
            "{api} logged as slow with threshold 0:\n{}",
            lines.join("\n")
        );
    }

    // Threshold 200 ms: a group member whose JoinGroup waits for the
    // initial rebalance delay (1 s) and whose fetches long-poll an empty
    // partition for 1 s each is never slow.
    let b = rt.block_on(TestBroker::start_with(|c| {
        c.set("runnel.slow.request.ms", "200").unwrap();
        c.set("group.initial.rebalance.delay.ms", "1000").unwrap();
    }));
    let bootstrap = b.bootstrap();
    rt.block_on(create_topic(&admin(&bootstrap), "slow-b", 1, &[]));
    let member: BaseConsumer = member_config(
        &bootstrap,
        "slow-group",
        "slow-b",
        &[("fetch.wait.max.ms", "1000")],
    )
    .create()
    .expect("member");
    member.subscribe(&["slow-b"]).expect("subscribe");
    wait_for(
        TIMEOUT,
        || "two long polls of at least 900 ms".into(),
        || {
            let _ = member.poll(Duration::from_millis(100));
            (done_at_least(&lines_of(&logs, "slow-b"), "Fetch", 900_000) >= 2).then_some(())
        },
    );
    drop(member);
    let lines = lines_of(&logs, "slow-b");
    assert!(
        done_at_least(&lines, "JoinGroup", 900_000) >= 1,
        "JoinGroup waited for the rebalance delay:\n{}",
        lines.join("\n")
    );
    // (Other requests may really be slow here: the first FindCoordinator
    // creates the 50 partitions of __consumer_offsets.)
    let waits = ["Fetch", "JoinGroup", "SyncGroup"].map(|api| format!("api=\"{api}\""));
    let slow: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("slow request") && waits.iter().any(|w| l.contains(w)))
        .collect();
    assert!(slow.is_empty(), "waits logged as slow: {slow:#?}");
}
