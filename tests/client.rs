//! Real-client tests: librdkafka (through the `rdkafka` crate) against an
//! in-process broker. Each test runs the broker on a runtime of its own and
//! drives the blocking client API from the test thread.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    broker_runtime, broker_with_topic, consume, consumer, flush_all_ok, now_ms, numbered_payload,
    read_frame, recording_producer, send_blocking, write_frame, TestBroker, TIMEOUT,
};
use rdkafka::admin::AdminOptions;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, Headers, OwnedHeaders, Timestamp};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------
// 1. Every compression codec, 100k records each.

const CODEC_RECORDS: usize = 100_000;

fn codec_round_trip(codec: &str) {
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start());
    let bootstrap = broker.bootstrap();
    let topic = format!("codec-{codec}");
    let t0 = Instant::now();

    let producer = recording_producer(&bootstrap, &[("compression.codec", codec)]);
    let payloads: Vec<Vec<u8>> = (0..CODEC_RECORDS)
        .map(|i| numbered_payload(codec, i))
        .collect();
    for (i, p) in payloads.iter().enumerate() {
        send_blocking(
            &producer,
            BaseRecord::<(), _, usize>::with_opaque_to(&topic, i).payload(p),
        );
    }
    let reports = flush_all_ok(&producer, CODEC_RECORDS);
    for d in &reports {
        assert_eq!((d.partition, d.offset), (0, d.id as i64), "{codec}: {d:?}");
    }
    let produced = t0.elapsed();

    let consumer = consumer(&bootstrap, &[]);
    let got = consume(
        &consumer,
        &topic,
        &[0],
        Offset::Beginning,
        CODEC_RECORDS,
        TIMEOUT,
    );
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.offset(), i as i64, "{codec}: offset at position {i}");
        assert_eq!(
            m.payload(),
            Some(&payloads[i][..]),
            "{codec}: payload at offset {i}"
        );
    }
    assert_eq!(
        consumer
            .fetch_watermarks(&topic, 0, TIMEOUT)
            .expect("watermarks"),
        (0, CODEC_RECORDS as i64)
    );
    eprintln!(
        "{codec}: produced {CODEC_RECORDS} in {produced:?}, consumed by {:?}",
        t0.elapsed()
    );
}

#[test]
fn codec_none_round_trips_100k_records() {
    codec_round_trip("none");
}

#[test]
fn codec_gzip_round_trips_100k_records() {
    codec_round_trip("gzip");
}

#[test]
fn codec_snappy_round_trips_100k_records() {
    codec_round_trip("snappy");
}

#[test]
fn codec_lz4_round_trips_100k_records() {
    codec_round_trip("lz4");
}

#[test]
fn codec_zstd_round_trips_100k_records() {
    codec_round_trip("zstd");
}

// ---------------------------------------------------------------------------
// 2. Keyed records keep to one partition per key, in send order.

#[test]
fn keyed_records_stay_on_one_partition_in_order() {
    let (_rt, broker, _admin) = broker_with_topic("keyed", 6, &[]);
    let bootstrap = broker.bootstrap();

    const N: usize = 1000;
    let producer = recording_producer(&bootstrap, &[]);
    let keys: Vec<String> = (0..N).map(|i| format!("key-{}", i % 10)).collect();
    let payloads: Vec<String> = (0..N).map(|i| format!("{i}")).collect();
    for i in 0..N {
        send_blocking(
            &producer,
            BaseRecord::with_opaque_to("keyed", i)
                .key(&keys[i])
                .payload(&payloads[i]),
        );
    }
    let reports = flush_all_ok(&producer, N);
    let reported: HashMap<usize, (i32, i64)> = reports
        .iter()
        .map(|d| (d.id, (d.partition, d.offset)))
        .collect();

    let consumer = consumer(&bootstrap, &[]);
    let got = consume(
        &consumer,
        "keyed",
        &[0, 1, 2, 3, 4, 5],
        Offset::Beginning,
        N,
        TIMEOUT,
    );
    let mut partitions_of: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    let mut order_of: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for m in &got {
        let key = std::str::from_utf8(m.key().expect("key"))
            .unwrap()
            .to_owned();
        let i: usize = std::str::from_utf8(m.payload().expect("payload"))
            .unwrap()
            .parse()
            .unwrap();
        assert!(seen.insert(i), "record {i} consumed twice");
        assert_eq!(key, keys[i], "key of record {i}");
        assert_eq!(
            reported[&i],
            (m.partition(), m.offset()),
            "record {i}: consumed where the delivery report said"
        );
        partitions_of
            .entry(key.clone())
            .or_default()
            .insert(m.partition());
        order_of.entry(key).or_default().push(i);
    }
    assert_eq!(partitions_of.len(), 10);
    for (key, parts) in &partitions_of {
        assert_eq!(parts.len(), 1, "{key} spread over {parts:?}");
    }
    let used: BTreeSet<i32> = partitions_of.values().flatten().copied().collect();
    assert!(used.len() > 1, "10 keys all hashed to {used:?}");
    for (key, order) in &order_of {
        let expected: Vec<usize> = (0..N).filter(|i| &keys[*i] == key).collect();
        assert_eq!(order, &expected, "{key} out of send order");
    }
    let mut total = 0;
    for p in 0..6 {
        let (low, high) = consumer
            .fetch_watermarks("keyed", p, TIMEOUT)
            .expect("watermarks");
        assert_eq!(low, 0);
        total += high;
    }
    assert_eq!(total, N as i64);
}

// ---------------------------------------------------------------------------
// 3. Headers, CreateTime, offsets_for_times, watermarks and DeleteRecords.

type HeaderList = Vec<(String, Option<Vec<u8>>)>;

fn headers_of(m: &impl Message<Headers = OwnedHeaders>) -> HeaderList {
    m.headers()
        .map(|hs| {
            hs.iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default()
}

fn offset_for_time(consumer: &rdkafka::consumer::BaseConsumer, topic: &str, ts: i64) -> Offset {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(ts))
        .unwrap();
    let found = consumer
        .offsets_for_times(tpl, TIMEOUT)
        .expect("offsets_for_times");
    let elem = found.find_partition(topic, 0).expect("partition in result");
    assert!(elem.error().is_ok(), "ts {ts}: {:?}", elem.error());
    elem.offset()
}

#[test]
fn headers_timestamps_offsets_for_times_watermarks_delete_records() {
    const TOPIC: &str = "meta";
    let (rt, broker, admin) = broker_with_topic(TOPIC, 1, &[]);
    let bootstrap = broker.bootstrap();
    // Offset queries go through a consumer that never fetches: on an
    // assigned consumer they would queue behind its fetch long-poll (one
    // request at a time per connection, as in Kafka).
    let consumer = consumer(&bootstrap, &[]);
    let reader = common::consumer(&bootstrap, &[]);
    assert_eq!(
        consumer.fetch_watermarks(TOPIC, 0, TIMEOUT).unwrap(),
        (0, 0)
    );

    const N: usize = 10;
    let expected_headers = |i: usize| -> HeaderList {
        vec![
            ("idx".into(), Some(i.to_string().into_bytes())),
            ("dup".into(), Some(b"first".to_vec())),
            ("null".into(), None),
            ("dup".into(), Some(b"second".to_vec())),
            ("empty".into(), Some(Vec::new())),
        ]
    };
    let producer = recording_producer(&bootstrap, &[("linger.ms", "0")]);
    let payloads: Vec<String> = (0..N).map(|i| format!("record {i}")).collect();
    for (i, payload) in payloads.iter().enumerate() {
        let mut headers = OwnedHeaders::new();
        for (k, v) in expected_headers(i) {
            headers = headers.insert(Header {
                key: &k,
                value: v.as_deref(),
            });
        }
        send_blocking(
            &producer,
            BaseRecord::<(), _, usize>::with_opaque_to(TOPIC, i)
                .payload(payload)
                .timestamp(1000 * (i as i64 + 1))
                .headers(headers),
        );
        // One batch per record: wait for this record's delivery report.
        let deadline = Instant::now() + TIMEOUT;
        while producer.context().len() <= i {
            assert!(Instant::now() < deadline, "no delivery report for {i}");
            producer.poll(Duration::from_millis(5));
        }
    }
    flush_all_ok(&producer, N);
    assert_eq!(
        consumer.fetch_watermarks(TOPIC, 0, TIMEOUT).unwrap(),
        (0, N as i64)
    );

    let got = consume(&reader, TOPIC, &[0], Offset::Beginning, N, TIMEOUT);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(m.payload(), Some(payloads[i].as_bytes()));
        assert_eq!(m.timestamp(), Timestamp::CreateTime(1000 * (i as i64 + 1)));
        assert_eq!(headers_of(m), expected_headers(i), "headers of offset {i}");
    }

    // Record i has timestamp 1000 * (i + 1).
    for (ts, expected) in [
        (0, Offset::Offset(0)),
        (1000, Offset::Offset(0)),
        (1001, Offset::Offset(1)),
        (1500, Offset::Offset(1)),
        (2000, Offset::Offset(1)),
        (9999, Offset::Offset(9)),
        (10_000, Offset::Offset(9)),
        (10_001, Offset::End),
        (i64::from(i32::MAX) * 1000, Offset::End),
    ] {
        assert_eq!(
            offset_for_time(&consumer, TOPIC, ts),
            expected,
            "offsets_for_times({ts})"
        );
    }

    // DeleteRecords before offset 4.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Offset(4))
        .unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let result = rt
        .block_on(async { tokio::time::timeout(TIMEOUT, admin.delete_records(&tpl, &opts)).await })
        .expect("DeleteRecords timed out")
        .expect("DeleteRecords");
    let elem = result.find_partition(TOPIC, 0).expect("partition");
    assert!(elem.error().is_ok(), "{:?}", elem.error());
    assert_eq!(elem.offset(), Offset::Offset(4), "new low watermark");
    assert_eq!(
        consumer.fetch_watermarks(TOPIC, 0, TIMEOUT).unwrap(),
        (4, N as i64)
    );
    // Before the log start: the first offset still in the log.
    assert_eq!(offset_for_time(&consumer, TOPIC, 1000), Offset::Offset(4));
    assert_eq!(offset_for_time(&consumer, TOPIC, 6000), Offset::Offset(5));
    let fresh = common::consumer(&bootstrap, &[]);
    let from_start = consume(&fresh, TOPIC, &[0], Offset::Beginning, 1, TIMEOUT);
    assert_eq!(from_start[0].offset(), 4);
    assert_eq!(from_start[0].payload(), Some(payloads[4].as_bytes()));

    // Delete everything (Offset::End): low == high.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::End).unwrap();
    let result = rt
        .block_on(async { tokio::time::timeout(TIMEOUT, admin.delete_records(&tpl, &opts)).await })
        .expect("DeleteRecords timed out")
        .expect("DeleteRecords");
    let elem = result.find_partition(TOPIC, 0).expect("partition");
    assert!(elem.error().is_ok(), "{:?}", elem.error());
    assert_eq!(elem.offset(), Offset::Offset(N as i64));
    assert_eq!(
        consumer.fetch_watermarks(TOPIC, 0, TIMEOUT).unwrap(),
        (N as i64, N as i64)
    );
}

// ---------------------------------------------------------------------------
// 4. LogAppendTime topics stamp the broker's clock.

#[test]
fn log_append_time_topic_stamps_broker_time() {
    let (_rt, broker, _admin) = broker_with_topic(
        "append-time",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    );
    let bootstrap = broker.bootstrap();

    // Uncompressed and compressed batches: both have their max timestamp
    // (and CRC, which the consumer checks) rewritten.
    const N: usize = 20;
    let before = now_ms();
    for (half, codec) in [(0, "none"), (1, "lz4")] {
        let producer = recording_producer(&bootstrap, &[("compression.codec", codec)]);
        for i in half * N / 2..(half + 1) * N / 2 {
            // An explicit CreateTime far in the past, which the broker must replace.
            send_blocking(
                &producer,
                BaseRecord::<(), _, usize>::with_opaque_to("append-time", i)
                    .payload("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
                    .timestamp(1000 + i as i64),
            );
        }
        // The produce response's log_append_time reaches the delivery report.
        for d in flush_all_ok(&producer, N / 2) {
            match d.timestamp {
                Timestamp::LogAppendTime(t) => assert!(t >= before, "{d:?}"),
                _ => panic!("delivery report without LogAppendTime: {d:?}"),
            }
        }
    }
    let after = now_ms();

    let consumer = consumer(&bootstrap, &[]);
    let got = consume(
        &consumer,
        "append-time",
        &[0],
        Offset::Beginning,
        N,
        TIMEOUT,
    );
    for m in &got {
        match m.timestamp() {
            Timestamp::LogAppendTime(t) => assert!(
                (before..=after).contains(&t),
                "offset {}: {t} outside [{before}, {after}]",
                m.offset()
            ),
            other => panic!("offset {}: {other:?}", m.offset()),
        }
    }
}

// ---------------------------------------------------------------------------
// 5. Producing to an unknown topic creates it with num.partitions.

#[test]
fn producing_auto_creates_topic_with_num_partitions() {
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start_with(|c| {
        c.set("num.partitions", "3").unwrap();
    }));
    let bootstrap = broker.bootstrap();
    let consumer = consumer(&bootstrap, &[]);

    // A consumer's metadata request does not create topics.
    let md = consumer
        .fetch_metadata(Some("auto-created"), TIMEOUT)
        .expect("metadata");
    assert_eq!(md.topics().len(), 1);
    assert!(
        md.topics()[0].error().is_some(),
        "topic exists before any produce"
    );

    let producer = recording_producer(&bootstrap, &[]);
    for i in 0..30 {
        send_blocking(
            &producer,
            BaseRecord::<(), _, usize>::with_opaque_to("auto-created", i).payload("v"),
        );
    }
    let reports = flush_all_ok(&producer, 30);
    assert!(reports.iter().all(|d| (0..3).contains(&d.partition)));

    let md = consumer
        .fetch_metadata(Some("auto-created"), TIMEOUT)
        .expect("metadata");
    let topic = &md.topics()[0];
    assert_eq!(topic.name(), "auto-created");
    assert_eq!(topic.error(), None);
    let mut ids: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
    ids.sort();
    assert_eq!(ids, vec![0, 1, 2]);
    for p in topic.partitions() {
        assert_eq!(p.leader(), 1, "partition {} leader", p.id());
        assert_eq!(p.error(), None);
    }
}

// ---------------------------------------------------------------------------
// 6. Idempotent producer: exactly once, in order; a duplicated Produce on
//    the wire is absorbed.

fn idempotent_settings() -> [(&'static str, &'static str); 2] {
    [("enable.idempotence", "true"), ("acks", "all")]
}

#[test]
fn idempotent_producer_delivers_exactly_once_in_order() {
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start());
    let bootstrap = broker.bootstrap();
    const N: usize = 10_000;
    let producer = recording_producer(&bootstrap, &idempotent_settings());
    let payloads: Vec<Vec<u8>> = (0..N).map(|i| numbered_payload("idem", i)).collect();
    for (i, p) in payloads.iter().enumerate() {
        send_blocking(
            &producer,
            BaseRecord::<(), _, usize>::with_opaque_to("idem", i).payload(p),
        );
    }
    for d in flush_all_ok(&producer, N) {
        assert_eq!((d.partition, d.offset), (0, d.id as i64));
    }
    let consumer = consumer(&bootstrap, &[]);
    let got = consume(&consumer, "idem", &[0], Offset::Beginning, N, TIMEOUT);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(m.payload(), Some(&payloads[i][..]));
    }
    assert_eq!(
        consumer.fetch_watermarks("idem", 0, TIMEOUT).unwrap(),
        (0, N as i64)
    );
}

/// What the duplicating proxy did.
#[derive(Default)]
struct ProxyStats {
    duplicated: AtomicBool,
    replies_dropped: AtomicUsize,
}

/// Correlation id given to the injected copy; librdkafka counts up from 1,
/// so it never uses this one on a short test connection.
const INJECTED_CORRELATION_ID: i32 = 0x7eed_0001;
const PRODUCE_API_KEY: i16 = 0;

/// Forwards one client connection to `upstream`; the first Produce request
/// seen by any connection is sent twice, and the reply to the copy dropped.
async fn proxy_connection(client: TcpStream, upstream: SocketAddr, stats: Arc<ProxyStats>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    // Correlation ids whose replies the client must not see. Inserted before
    // the copy is written, so always present when its reply arrives.
    let drop_ids: Arc<Mutex<HashSet<i32>>> = Arc::default();
    let to_server = {
        let stats = stats.clone();
        let drop_ids = drop_ids.clone();
        async move {
            while let Some(frame) = read_frame(&mut client_r).await {
                if write_frame(&mut server_w, &frame).await.is_err() {
                    break;
                }
                let api_key = i16::from_be_bytes([frame[0], frame[1]]);
                if api_key == PRODUCE_API_KEY && !stats.duplicated.swap(true, Ordering::SeqCst) {
                    let mut copy = frame.clone();
                    copy[4..8].copy_from_slice(&INJECTED_CORRELATION_ID.to_be_bytes());
                    drop_ids.lock().unwrap().insert(INJECTED_CORRELATION_ID);
                    if write_frame(&mut server_w, &copy).await.is_err() {
                        break;
                    }
                }
            }
            let _ = server_w.shutdown().await;
        }
    };
    let to_client = async move {
        while let Some(frame) = read_frame(&mut server_r).await {
            let id = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
            if drop_ids.lock().unwrap().remove(&id) {
                stats.replies_dropped.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            if write_frame(&mut client_w, &frame).await.is_err() {
                break;
            }
        }
        let _ = client_w.shutdown().await;
    };
    tokio::join!(to_server, to_client);
}

#[test]
fn duplicated_produce_request_is_deduplicated() {
    let rt = broker_runtime();
    let stats = Arc::new(ProxyStats::default());
    // The proxy's port must be known before the broker starts, so the broker
    // advertises it and clients never reach the broker directly.
    let proxy = rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("proxy bind");
    let proxy_port = proxy.local_addr().unwrap().port();
    let broker = rt.block_on(TestBroker::start_with(|c| {
        c.set(
            "advertised.listeners",
            &format!("PLAINTEXT://127.0.0.1:{proxy_port}"),
        )
        .unwrap();
    }));
    let upstream = broker.handle.as_ref().unwrap().local_addr();
    assert_ne!(upstream.port(), proxy_port);
    assert_eq!(broker.bootstrap(), format!("127.0.0.1:{proxy_port}"));
    {
        let stats = stats.clone();
        rt.spawn(async move {
            while let Ok((client, _)) = proxy.accept().await {
                tokio::spawn(proxy_connection(client, upstream, stats.clone()));
            }
        });
    }
    let bootstrap = format!("127.0.0.1:{proxy_port}");

    const N: usize = 2000;
    let producer = recording_producer(&bootstrap, &idempotent_settings());
    let payloads: Vec<Vec<u8>> = (0..N).map(|i| numbered_payload("dup", i)).collect();
    for (i, p) in payloads.iter().enumerate() {
        send_blocking(
            &producer,
            BaseRecord::<(), _, usize>::with_opaque_to("dup", i).payload(p),
        );
        if i == 0 {
            // The first Produce (the duplicated one) carries record 0 alone,
            // so later batches must follow the duplicate's sequence.
            let deadline = Instant::now() + TIMEOUT;
            while producer.context().len() == 0 {
                assert!(Instant::now() < deadline, "record 0 not acknowledged");
                producer.poll(Duration::from_millis(5));
            }
        }
    }
    for d in flush_all_ok(&producer, N) {
        assert_eq!((d.partition, d.offset), (0, d.id as i64));
    }
    assert!(
        stats.duplicated.load(Ordering::SeqCst),
        "no Produce went through the proxy"
    );
    assert_eq!(stats.replies_dropped.load(Ordering::SeqCst), 1);

    let consumer = consumer(&bootstrap, &[]);
    assert_eq!(
        consumer.fetch_watermarks("dup", 0, TIMEOUT).unwrap(),
        (0, N as i64),
        "high watermark counts a duplicate"
    );
    let got = consume(&consumer, "dup", &[0], Offset::Beginning, N, TIMEOUT);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(m.payload(), Some(&payloads[i][..]), "offset {i}");
    }
}
