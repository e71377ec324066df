//! Config admin through librdkafka's admin client (the `rdkafka` crate):
//! AlterConfigs and DescribeConfigs on topics and on the broker, and config
//! changes taking effect on live logs: retention and segment size shrink the
//! log, a lowered max.message.bytes rejects, and a dynamic broker
//! log.retention.ms reaches topics without their own value.

mod common;

use std::time::Duration;

use common::{
    admin, broker_runtime, broker_with_topic, consumer, create_topic, flush_all_ok, now_ms,
    recording_producer, send_blocking, wait_for, watchdog, TestBroker, TIMEOUT,
};
use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ConfigSource, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use tokio::runtime::Runtime;

fn opts() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(TIMEOUT))
}

/// Legacy AlterConfigs (what librdkafka's `rd_kafka_AlterConfigs` sends) of
/// one resource. rdkafka 0.39's `AlterConfigsFuture` reports every resource
/// as `Ok` whatever its error code (it never reads
/// `rd_kafka_ConfigResource_error`), so a refusal is checked by its having
/// changed nothing; protocol-tests/tests/config_versions.rs checks the codes.
fn alter(
    rt: &Runtime,
    admin: &AdminClient<DefaultClientContext>,
    specifier: ResourceSpecifier<'_>,
    entries: &[(&str, &str)],
) -> Result<(), RDKafkaErrorCode> {
    let mut config = AlterConfig::new(specifier);
    for (k, v) in entries {
        config = config.set(k, v);
    }
    let mut results = rt
        .block_on(admin.alter_configs([&config], &opts()))
        .expect("AlterConfigs request");
    assert_eq!(results.len(), 1);
    results.remove(0).map(|_| ()).map_err(|(_, code)| code)
}

/// (value, source, read-only) of `key` on the resource.
fn describe(
    rt: &Runtime,
    admin: &AdminClient<DefaultClientContext>,
    specifier: ResourceSpecifier<'_>,
    key: &str,
) -> (Option<String>, ConfigSource, bool) {
    let mut results = rt
        .block_on(admin.describe_configs([&specifier], &opts()))
        .expect("DescribeConfigs request");
    let resource = results.remove(0).expect("DescribeConfigs result");
    let entry = resource
        .entries
        .into_iter()
        .find(|e| e.name == key)
        .unwrap_or_else(|| panic!("{key} not described"));
    (entry.value, entry.source, entry.is_read_only)
}

/// Produces `n` records of 200 bytes stamped `timestamp` to partition 0.
fn produce(bootstrap: &str, topic: &str, n: usize, timestamp: i64) {
    let producer = recording_producer(
        bootstrap,
        &[("linger.ms", "0"), ("batch.num.messages", "1")],
    );
    let payload = vec![b'r'; 200];
    for i in 0..n {
        send_blocking(
            &producer,
            BaseRecord::<(), _, usize>::with_opaque_to(topic, i)
                .payload(&payload)
                .partition(0)
                .timestamp(timestamp),
        );
    }
    flush_all_ok(&producer, n);
}

fn watermarks(bootstrap: &str, topic: &str) -> (i64, i64) {
    consumer(bootstrap, &[])
        .fetch_watermarks(topic, 0, TIMEOUT)
        .expect("watermarks")
}

/// Sets `key` to `value` dynamically on broker `node` and checks that
/// DescribeConfigs shows it as a dynamic broker value, on the broker and as
/// `topic`'s `topic_key`.
fn set_broker_key(
    rt: &Runtime,
    admin: &AdminClient<DefaultClientContext>,
    node: i32,
    (key, value): (&str, &str),
    (topic, topic_key): (&str, &str),
) {
    let broker = ResourceSpecifier::Broker(node);
    alter(rt, admin, broker, &[(key, value)]).expect(key);
    let dynamic = (Some(value.to_owned()), ConfigSource::DynamicBroker, false);
    assert_eq!(describe(rt, admin, broker, key), dynamic, "{key}");
    assert_eq!(
        describe(rt, admin, ResourceSpecifier::Topic(topic), topic_key),
        dynamic,
        "{topic}: {topic_key}"
    );
}

/// Waits for retention to delete from the start of partition 0 of `topic`;
/// the new earliest offset.
fn earliest_moved(bootstrap: &str, topic: &str) -> i64 {
    wait_for(
        Duration::from_secs(20),
        || {
            format!(
                "{topic}: earliest offset still {:?}",
                watermarks(bootstrap, topic)
            )
        },
        || {
            let (low, _) = watermarks(bootstrap, topic);
            (low > 0).then_some(low)
        },
    )
}

/// A broker whose retention task runs every 100 ms.
fn quick_retention_broker(rt: &Runtime) -> TestBroker {
    rt.block_on(TestBroker::start_with(|c| {
        c.set("log.retention.check.interval.ms", "100")
            .expect("log.retention.check.interval.ms");
    }))
}

#[test]
fn alter_and_describe_topic_configs() {
    let _dog = watchdog("alter_and_describe_topic_configs", Duration::from_secs(120));
    let (rt, broker, admin) = broker_with_topic("cfg", 1, &[("segment.ms", "100000")]);

    let topic = ResourceSpecifier::Topic("cfg");
    alter(
        &rt,
        &admin,
        topic,
        &[
            ("retention.ms", "12345"),
            ("cleanup.policy", "compact,delete"),
            ("min.cleanable.dirty.ratio", "0.1"),
        ],
    )
    .expect("alter");
    assert_eq!(
        describe(&rt, &admin, topic, "retention.ms"),
        (Some("12345".into()), ConfigSource::DynamicTopic, false)
    );
    assert_eq!(
        describe(&rt, &admin, topic, "cleanup.policy").0.as_deref(),
        Some("compact,delete")
    );
    assert_eq!(
        describe(&rt, &admin, topic, "min.cleanable.dirty.ratio")
            .0
            .as_deref(),
        Some("0.1")
    );
    // AlterConfigs replaces the set: segment.ms was not sent, so it is gone.
    assert_eq!(
        describe(&rt, &admin, topic, "segment.ms"),
        (Some("604800000".into()), ConfigSource::Default, false)
    );

    // Refused (INVALID_CONFIG): an unknown key next to a good value, a bad
    // value; and an unknown topic (UNKNOWN_TOPIC_OR_PARTITION).
    let _ = alter(
        &rt,
        &admin,
        topic,
        &[("no.such.config", "1"), ("retention.ms", "1")],
    );
    let _ = alter(&rt, &admin, topic, &[("retention.ms", "soon")]);
    let _ = alter(
        &rt,
        &admin,
        ResourceSpecifier::Topic("absent"),
        &[("retention.ms", "1")],
    );
    let h = broker.handle.as_ref().unwrap();
    assert!(h.broker.metadata.image().topic("absent").is_none());
    // The refused calls changed nothing.
    assert_eq!(
        describe(&rt, &admin, topic, "retention.ms").0.as_deref(),
        Some("12345")
    );

    // validate_only.
    let config = AlterConfig::new(topic).set("retention.ms", "1");
    let results = rt
        .block_on(admin.alter_configs([&config], &opts().validate_only(true)))
        .expect("AlterConfigs request");
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(
        describe(&rt, &admin, topic, "retention.ms").0.as_deref(),
        Some("12345")
    );

    // Broker resource: a static key is refused (INVALID_REQUEST, as Kafka),
    // a dynamic key is taken. (librdkafka sends a broker resource to that
    // broker, so another node's id cannot be tried here.)
    let node = h.broker.node_id();
    let _ = alter(
        &rt,
        &admin,
        ResourceSpecifier::Broker(node),
        &[("num.partitions", "4")],
    );
    assert_eq!(
        describe(
            &rt,
            &admin,
            ResourceSpecifier::Broker(node),
            "num.partitions"
        ),
        (Some("1".into()), ConfigSource::Default, true)
    );
    assert_eq!(
        describe(
            &rt,
            &admin,
            ResourceSpecifier::Broker(node),
            "log.retention.bytes"
        )
        .1,
        ConfigSource::Default
    );
    set_broker_key(
        &rt,
        &admin,
        node,
        ("log.retention.bytes", "1000000"),
        ("cfg", "retention.bytes"),
    );
}

#[test]
fn retention_bytes_and_segment_bytes_shrink_the_log() {
    let _dog = watchdog(
        "retention_bytes_and_segment_bytes_shrink_the_log",
        Duration::from_secs(120),
    );
    let rt = broker_runtime();
    let broker = quick_retention_broker(&rt);
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    rt.block_on(create_topic(&admin, "shrink", 1, &[]));
    // Small segments from now on: the log rolls while we produce.
    alter(
        &rt,
        &admin,
        ResourceSpecifier::Topic("shrink"),
        &[("segment.bytes", "4096")],
    )
    .expect("segment.bytes");
    produce(&bootstrap, "shrink", 300, now_ms());
    let (low, high) = watermarks(&bootstrap, "shrink");
    assert_eq!((low, high), (0, 300));
    let h = broker.handle.as_ref().unwrap();
    let id = h.broker.metadata.image().topic("shrink").unwrap().id;
    let log = h.broker.logs.get(&id, 0).unwrap();
    let before = log.size_bytes();
    assert!(before > 40_000, "log is {before} bytes");
    // Nothing is deleted while retention is unlimited.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(watermarks(&bootstrap, "shrink").0, 0);

    alter(
        &rt,
        &admin,
        ResourceSpecifier::Topic("shrink"),
        &[("segment.bytes", "4096"), ("retention.bytes", "10000")],
    )
    .expect("retention.bytes");
    let low = earliest_moved(&bootstrap, "shrink");
    assert!(low > 200, "earliest only moved to {low}");
    let after = log.size_bytes();
    assert!(
        after <= 10_000 + 4096 + 1024,
        "log still {after} bytes (was {before})"
    );
    assert_eq!(watermarks(&bootstrap, "shrink").1, 300);
}

#[test]
fn lowered_max_message_bytes_rejects_large_batches() {
    let _dog = watchdog(
        "lowered_max_message_bytes_rejects_large_batches",
        Duration::from_secs(120),
    );
    let (rt, broker, admin) = broker_with_topic("limit", 1, &[]);
    let bootstrap = broker.bootstrap();
    let producer = recording_producer(&bootstrap, &[("linger.ms", "0")]);
    let big = vec![b'b'; 2000];
    send_blocking(
        &producer,
        BaseRecord::<(), _, usize>::with_opaque_to("limit", 0).payload(&big),
    );
    flush_all_ok(&producer, 1);

    alter(
        &rt,
        &admin,
        ResourceSpecifier::Topic("limit"),
        &[("max.message.bytes", "1000")],
    )
    .expect("max.message.bytes");
    send_blocking(
        &producer,
        BaseRecord::<(), _, usize>::with_opaque_to("limit", 1).payload(&big),
    );
    producer.flush(TIMEOUT).expect("flush");
    let reports = producer.context().take();
    assert_eq!(reports.len(), 1);
    let err = reports[0]
        .error
        .clone()
        .expect("the large record must fail");
    assert!(
        err.contains("MessageSizeTooLarge") || err.contains("too large"),
        "{err}"
    );
    // A record under the new limit still goes through.
    send_blocking(
        &producer,
        BaseRecord::<(), _, usize>::with_opaque_to("limit", 2).payload(&big[..100]),
    );
    flush_all_ok(&producer, 1);
    assert_eq!(watermarks(&bootstrap, "limit"), (0, 2));
}

#[test]
fn dynamic_broker_log_retention_ms_reaches_topics_without_an_override() {
    let _dog = watchdog(
        "dynamic_broker_log_retention_ms_reaches_topics_without_an_override",
        Duration::from_secs(120),
    );
    let rt = broker_runtime();
    let broker = quick_retention_broker(&rt);
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    rt.block_on(create_topic(
        &admin,
        "follows",
        1,
        &[("segment.bytes", "4096")],
    ));
    rt.block_on(create_topic(
        &admin,
        "own",
        1,
        &[("segment.bytes", "4096"), ("retention.ms", "-1")],
    ));
    // Records from two hours ago: within the 7-day default, past a minute.
    let old = now_ms() - 2 * 3_600_000;
    produce(&bootstrap, "follows", 100, old);
    produce(&bootstrap, "own", 100, old);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(watermarks(&bootstrap, "follows").0, 0);

    let node = broker.handle.as_ref().unwrap().broker.node_id();
    set_broker_key(
        &rt,
        &admin,
        node,
        ("log.retention.ms", "60000"),
        ("follows", "retention.ms"),
    );
    let low = earliest_moved(&bootstrap, "follows");
    // Every sealed segment went; the active one stays.
    assert!(low > 50, "earliest only {low}");
    // The topic with its own retention.ms keeps everything.
    assert_eq!(watermarks(&bootstrap, "own"), (0, 100));
}
