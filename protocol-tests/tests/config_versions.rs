//! AlterConfigs (v0-2) and IncrementalAlterConfigs (v0-1) on the wire: every
//! version, every operation, every error Kafka gives, `validate_only`,
//! persistence across a restart, and what DescribeConfigs reports (sources,
//! synonyms) after dynamic broker changes.

use kafka_protocol::messages::alter_configs_request::{
    AlterConfigsResource as LegacyResource, AlterableConfig as LegacyConfig,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource as IncrResource, AlterableConfig as IncrConfig,
};
use kafka_protocol::messages::*;
use protocol_tests::*;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

const INVALID_CONFIG: i16 = 40;
const INVALID_TOPIC: i16 = 17;
const MESSAGE_TOO_LARGE: i16 = 10;

// ConfigSource ids.
const DYNAMIC_TOPIC: i8 = 1;
const DYNAMIC_BROKER: i8 = 2;
const DYNAMIC_DEFAULT_BROKER: i8 = 3;
const DEFAULT: i8 = 5;

fn legacy(rtype: i8, name: &str, configs: &[(&str, Option<&str>)]) -> LegacyResource {
    LegacyResource::default()
        .with_resource_type(rtype)
        .with_resource_name(str_bytes(name))
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    LegacyConfig::default()
                        .with_name(str_bytes(k))
                        .with_value(v.map(str_bytes))
                })
                .collect(),
        )
}

fn incr(rtype: i8, name: &str, ops: &[(&str, i8, Option<&str>)]) -> IncrResource {
    IncrResource::default()
        .with_resource_type(rtype)
        .with_resource_name(str_bytes(name))
        .with_configs(
            ops.iter()
                .map(|(k, op, v)| {
                    IncrConfig::default()
                        .with_name(str_bytes(k))
                        .with_config_operation(*op)
                        .with_value(v.map(str_bytes))
                })
                .collect(),
        )
}

/// Sends an AlterConfigs or IncrementalAlterConfigs request (different types
/// with the same fields) and checks there is one answer per resource, in
/// order, naming it; gives (error code, message) per resource.
macro_rules! per_resource {
    ($c:expr, $v:expr, $req:expr) => {{
        let (v, req) = ($v, $req);
        let resp = $c.call(v, &req).await;
        assert_eq!(resp.responses.len(), req.resources.len(), "v{v}");
        resp.responses
            .iter()
            .zip(&req.resources)
            .map(|(r, q)| {
                assert_eq!(r.resource_type, q.resource_type, "v{v}");
                assert_eq!(r.resource_name, q.resource_name, "v{v}");
                (
                    r.error_code,
                    r.error_message.as_ref().map(|m| m.to_string()),
                )
            })
            .collect()
    }};
}

/// (error code, message) per resource.
async fn alter(
    c: &mut Client,
    v: i16,
    validate_only: bool,
    resources: Vec<LegacyResource>,
) -> Vec<(i16, Option<String>)> {
    let req = AlterConfigsRequest::default()
        .with_resources(resources)
        .with_validate_only(validate_only);
    per_resource!(c, v, req)
}

async fn incremental(
    c: &mut Client,
    v: i16,
    validate_only: bool,
    resources: Vec<IncrResource>,
) -> Vec<(i16, Option<String>)> {
    let req = IncrementalAlterConfigsRequest::default()
        .with_resources(resources)
        .with_validate_only(validate_only);
    per_resource!(c, v, req)
}

/// One incremental change to one resource that must succeed.
async fn incr_ok(c: &mut Client, rtype: i8, name: &str, ops: &[(&str, i8, Option<&str>)]) {
    let r = incremental(c, 1, false, vec![incr(rtype, name, ops)]).await;
    assert_eq!(r[0].0, NONE, "{name} {ops:?}: {:?}", r[0].1);
}

/// One incremental change to one resource that must fail with `code` and a
/// message containing `msg`.
async fn incr_fails(c: &mut Client, v: i16, resource: IncrResource, code: i16, msg: &str) {
    let what = format!("v{v} {resource:?}");
    let r = incremental(c, v, false, vec![resource]).await;
    assert_eq!(r[0].0, code, "{what}: {:?}", r[0].1);
    let got = r[0].1.clone().unwrap_or_default();
    assert!(got.contains(msg), "{what}: message {got:?} lacks {msg:?}");
}

/// DescribeConfigs v4 (with synonyms) of one resource.
async fn describe(c: &mut Client, rtype: i8, name: &str) -> Vec<DescribeConfigsResourceResult> {
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(rtype)
            .with_resource_name(str_bytes(name))]);
    let mut resp = c.call(4, &req).await;
    let r = resp.results.remove(0);
    assert_eq!(r.error_code, NONE, "describe {name}: {:?}", r.error_message);
    r.configs
}

fn entry<'a>(
    configs: &'a [DescribeConfigsResourceResult],
    key: &str,
) -> &'a DescribeConfigsResourceResult {
    configs
        .iter()
        .find(|c| c.name.as_str() == key)
        .unwrap_or_else(|| panic!("{key} not described"))
}

/// (value, source) of `key`.
async fn topic_value(c: &mut Client, topic: &str, key: &str) -> (String, i8) {
    let configs = describe(c, TOPIC, topic).await;
    let e = entry(&configs, key);
    (
        e.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        e.config_source,
    )
}

fn synonyms(e: &DescribeConfigsResourceResult) -> Vec<(String, String, i8)> {
    e.synonyms
        .iter()
        .map(|s| {
            (
                s.name.to_string(),
                s.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                s.source,
            )
        })
        .collect()
}

fn syn(name: &str, value: &str, source: i8) -> (String, String, i8) {
    (name.to_owned(), value.to_owned(), source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_configs_every_version_replaces_the_whole_set() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    for v in versions(ApiKey::AlterConfigs) {
        let t = format!("ac{v}");
        c.create_topic_with(&t, 2, &[("retention.ms", "1000"), ("segment.ms", "5000")])
            .await;
        let r = alter(
            &mut c,
            v,
            false,
            vec![legacy(
                TOPIC,
                &t,
                &[
                    ("retention.bytes", Some("5000")),
                    ("cleanup.policy", Some("compact,delete")),
                    ("min.cleanable.dirty.ratio", Some("0.25")),
                ],
            )],
        )
        .await;
        assert_eq!(r, vec![(NONE, None)], "v{v}");
        assert_eq!(
            topic_value(&mut c, &t, "retention.bytes").await,
            ("5000".into(), DYNAMIC_TOPIC)
        );
        assert_eq!(
            topic_value(&mut c, &t, "cleanup.policy").await,
            ("compact,delete".into(), DYNAMIC_TOPIC)
        );
        assert_eq!(
            topic_value(&mut c, &t, "min.cleanable.dirty.ratio").await,
            ("0.25".into(), DYNAMIC_TOPIC)
        );
        // Left out of the request, so removed.
        assert_eq!(
            topic_value(&mut c, &t, "retention.ms").await,
            ("604800000".into(), DEFAULT)
        );
        assert_eq!(
            topic_value(&mut c, &t, "segment.ms").await,
            ("604800000".into(), DEFAULT)
        );
        // Every live partition log has the new config.
        let broker = &b.handle().broker;
        let info = broker.metadata.image().topic(&t).unwrap().clone();
        for p in 0..2 {
            let cfg = broker.logs.get(&info.id, p).unwrap().config();
            assert_eq!(cfg.retention_bytes, 5000, "v{v} p{p}");
            assert_eq!(cfg.retention_ms, 604_800_000, "v{v} p{p}");
            assert!(cfg.compacted() && cfg.deletes(), "v{v} p{p}");
            assert_eq!(cfg.min_cleanable_dirty_ratio, 0.25);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_alter_configs_every_version_and_op() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    for v in versions(ApiKey::IncrementalAlterConfigs) {
        let t = format!("iac{v}");
        c.create_topic_with(&t, 1, &[("segment.ms", "5000")]).await;
        let one = |ops: &[(&str, i8, Option<&str>)]| vec![incr(TOPIC, &t, ops)];
        // SET keeps the others.
        let r = incremental(
            &mut c,
            v,
            false,
            one(&[("retention.ms", SET, Some("1234"))]),
        )
        .await;
        assert_eq!(r, vec![(NONE, None)], "v{v}");
        assert_eq!(
            topic_value(&mut c, &t, "retention.ms").await,
            ("1234".into(), DYNAMIC_TOPIC)
        );
        assert_eq!(
            topic_value(&mut c, &t, "segment.ms").await,
            ("5000".into(), DYNAMIC_TOPIC)
        );
        // APPEND starts from the default ("delete") and skips what is there;
        // items are trimmed, as Kafka parses a LIST.
        let r = incremental(
            &mut c,
            v,
            false,
            one(&[("cleanup.policy", APPEND, Some("compact , delete"))]),
        )
        .await;
        assert_eq!(r, vec![(NONE, None)], "v{v}");
        assert_eq!(
            topic_value(&mut c, &t, "cleanup.policy").await,
            ("delete,compact".into(), DYNAMIC_TOPIC)
        );
        // SUBTRACT.
        let r = incremental(
            &mut c,
            v,
            false,
            one(&[("cleanup.policy", SUBTRACT, Some("delete"))]),
        )
        .await;
        assert_eq!(r, vec![(NONE, None)], "v{v}");
        assert_eq!(
            topic_value(&mut c, &t, "cleanup.policy").await,
            ("compact".into(), DYNAMIC_TOPIC)
        );
        // An empty value is an empty list: nothing to append.
        let r = incremental(
            &mut c,
            v,
            false,
            one(&[("cleanup.policy", APPEND, Some(""))]),
        )
        .await;
        assert_eq!(r, vec![(NONE, None)], "v{v}");
        assert_eq!(
            topic_value(&mut c, &t, "cleanup.policy").await,
            ("compact".into(), DYNAMIC_TOPIC)
        );
        // DELETE (value may be null) falls back to the default.
        let r = incremental(
            &mut c,
            v,
            false,
            one(&[
                ("retention.ms", DELETE, None),
                ("segment.ms", DELETE, Some("ignored")),
            ]),
        )
        .await;
        assert_eq!(r, vec![(NONE, None)], "v{v}");
        assert_eq!(
            topic_value(&mut c, &t, "retention.ms").await,
            ("604800000".into(), DEFAULT)
        );
        assert_eq!(
            topic_value(&mut c, &t, "segment.ms").await,
            ("604800000".into(), DEFAULT)
        );
        // Several ops in one request, applied together.
        let r = incremental(
            &mut c,
            v,
            false,
            one(&[
                ("compression.type", SET, Some("zstd")),
                ("message.timestamp.after.max.ms", SET, Some("1000")),
                ("cleanup.policy", DELETE, None),
            ]),
        )
        .await;
        assert_eq!(r, vec![(NONE, None)], "v{v}");
        let broker = &b.handle().broker;
        let id = broker.metadata.image().topic(&t).unwrap().id;
        let cfg = broker.logs.get(&id, 0).unwrap().config();
        assert_eq!(cfg.compression_type, "zstd");
        assert_eq!(cfg.message_timestamp_after_max_ms, 1000);
        assert_eq!(cfg.cleanup_policy, "delete");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_errors_are_kafkas() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic_with("e", 1, &[("retention.ms", "1000")])
        .await;
    for v in versions(ApiKey::IncrementalAlterConfigs) {
        let cases: Vec<(IncrResource, i16, &str)> = vec![
            (
                incr(TOPIC, "e", &[("no.such.key", SET, Some("1"))]),
                INVALID_CONFIG,
                "Unknown topic config name: no.such.key",
            ),
            (
                incr(TOPIC, "e", &[("retention.ms", SET, Some("abc"))]),
                INVALID_CONFIG,
                "retention.ms",
            ),
            (
                incr(TOPIC, "e", &[("segment.bytes", SET, Some("10"))]),
                INVALID_CONFIG,
                "segment.bytes",
            ),
            (
                incr(
                    TOPIC,
                    "e",
                    &[("min.cleanable.dirty.ratio", SET, Some("1.5"))],
                ),
                INVALID_CONFIG,
                "min.cleanable.dirty.ratio",
            ),
            (
                incr(TOPIC, "e", &[("compression.type", SET, Some("brotli"))]),
                INVALID_CONFIG,
                "compression.type",
            ),
            (
                incr(
                    TOPIC,
                    "e",
                    &[("cleanup.policy", SET, Some("compact,shred"))],
                ),
                INVALID_CONFIG,
                "cleanup.policy",
            ),
            (
                incr(TOPIC, "e", &[("retention.ms", APPEND, Some("1"))]),
                INVALID_CONFIG,
                "Can't APPEND to key retention.ms because its type is not LIST.",
            ),
            (
                incr(TOPIC, "e", &[("retention.ms", SUBTRACT, Some("1"))]),
                INVALID_CONFIG,
                "Can't SUBTRACT to key retention.ms because its type is not LIST.",
            ),
            (
                incr(TOPIC, "missing", &[("retention.ms", SET, Some("1"))]),
                UNKNOWN_TOPIC_OR_PARTITION,
                "The topic 'missing' does not exist.",
            ),
            // Config validity is checked before existence, as in Kafka.
            (
                incr(TOPIC, "missing", &[("bogus", SET, Some("1"))]),
                INVALID_CONFIG,
                "bogus",
            ),
            (
                incr(TOPIC, "bad name!", &[("retention.ms", SET, Some("1"))]),
                INVALID_TOPIC,
                "",
            ),
            (
                incr(TOPIC, "", &[("retention.ms", SET, Some("1"))]),
                INVALID_REQUEST,
                "Default topic resources are not allowed.",
            ),
            (
                incr(TOPIC, "e", &[("retention.ms", SET, None)]),
                INVALID_REQUEST,
                "Null value not supported for : retention.ms",
            ),
            (
                incr(
                    TOPIC,
                    "e",
                    &[
                        ("retention.ms", SET, Some("1")),
                        ("retention.ms", DELETE, None),
                    ],
                ),
                INVALID_REQUEST,
                "Error due to duplicate config keys",
            ),
            (
                incr(TOPIC, "e", &[("retention.ms", 7, Some("1"))]),
                INVALID_REQUEST,
                "Unknown operations type 7",
            ),
            (
                incr(3, "e", &[("retention.ms", SET, Some("1"))]),
                INVALID_REQUEST,
                "Unknown resource type 3",
            ),
        ];
        for (resource, code, msg) in cases {
            incr_fails(&mut c, v, resource, code, msg).await;
        }
        // Nothing above changed the topic.
        assert_eq!(
            topic_value(&mut c, "e", "retention.ms").await,
            ("1000".into(), DYNAMIC_TOPIC)
        );
        assert!(b
            .handle()
            .broker
            .metadata
            .image()
            .topic("missing")
            .is_none());
    }
    for v in versions(ApiKey::AlterConfigs) {
        let r = alter(
            &mut c,
            v,
            false,
            vec![
                legacy(TOPIC, "e", &[("retention.ms", None)]),
                legacy(TOPIC, "e", &[("nope", Some("1"))]),
                legacy(TOPIC, "missing", &[("retention.ms", Some("1"))]),
            ],
        )
        .await;
        // "e" appears twice: both copies fail.
        assert_eq!(
            r[0],
            (
                INVALID_REQUEST,
                Some("Each resource must appear at most once.".into())
            ),
            "v{v}"
        );
        assert_eq!(
            r[1],
            (
                INVALID_REQUEST,
                Some("Each resource must appear at most once.".into())
            ),
            "v{v}"
        );
        assert_eq!(r[2].0, UNKNOWN_TOPIC_OR_PARTITION, "v{v}");
        let r = alter(
            &mut c,
            v,
            false,
            vec![legacy(TOPIC, "e", &[("nope", Some("1"))])],
        )
        .await;
        assert_eq!(
            r[0],
            (
                INVALID_CONFIG,
                Some("Unknown topic config name: nope".into())
            ),
            "v{v}"
        );
        let r = alter(
            &mut c,
            v,
            false,
            vec![legacy(TOPIC, "e", &[("retention.ms", None)])],
        )
        .await;
        assert_eq!(r[0].0, INVALID_REQUEST, "v{v}");
        assert_eq!(
            topic_value(&mut c, "e", "retention.ms").await,
            ("1000".into(), DYNAMIC_TOPIC)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_resource_does_not_stop_the_others() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic("good", 1).await;
    let r = incremental(
        &mut c,
        1,
        false,
        vec![
            incr(TOPIC, "missing", &[("retention.ms", SET, Some("1"))]),
            incr(TOPIC, "good", &[("retention.ms", SET, Some("777"))]),
        ],
    )
    .await;
    assert_eq!(r[0].0, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(r[1], (NONE, None));
    assert_eq!(
        topic_value(&mut c, "good", "retention.ms").await,
        ("777".into(), DYNAMIC_TOPIC)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_errors_are_kafkas() {
    let b = TestBroker::start().await;
    let node = b.handle().broker.node_id().to_string();
    let mut c = b.connect().await;
    for v in versions(ApiKey::IncrementalAlterConfigs) {
        let cases: Vec<(IncrResource, i16, String)> = vec![
            (
                incr(BROKER, "99", &[("log.retention.ms", SET, Some("1000"))]),
                INVALID_REQUEST,
                format!("Unexpected broker id, expected {node}, but received 99"),
            ),
            (
                incr(BROKER, "x", &[("log.retention.ms", SET, Some("1000"))]),
                INVALID_REQUEST,
                "Node id must be an integer, but it is: x".into(),
            ),
            (
                incr(BROKER, &node, &[("num.partitions", SET, Some("3"))]),
                INVALID_REQUEST,
                "Cannot update these configs dynamically: Set(num.partitions)".into(),
            ),
            (
                incr(BROKER, "", &[("log.retention.hours", SET, Some("3"))]),
                INVALID_REQUEST,
                "Cannot update these configs dynamically".into(),
            ),
            (
                incr(BROKER, &node, &[("log.retention.ms", SET, Some("abc"))]),
                INVALID_REQUEST,
                "log.retention.ms".into(),
            ),
            (
                incr(BROKER, &node, &[("log.retention.ms", SET, Some("0"))]),
                INVALID_REQUEST,
                "log.retention.ms".into(),
            ),
            (
                incr(BROKER, &node, &[("no.such.broker.key", SET, Some("1"))]),
                INVALID_CONFIG,
                "no.such.broker.key".into(),
            ),
            (
                incr(BROKER, &node, &[("log.retention.ms", APPEND, Some("1"))]),
                INVALID_CONFIG,
                "Config value append is not allowed for config key: log.retention.ms".into(),
            ),
            (
                incr(BROKER, &node, &[("log.retention.ms", SET, None)]),
                INVALID_REQUEST,
                "Null value not supported for : log.retention.ms".into(),
            ),
        ];
        for (resource, code, msg) in cases {
            incr_fails(&mut c, v, resource, code, &msg).await;
        }
    }
    for v in versions(ApiKey::AlterConfigs) {
        let r = alter(
            &mut c,
            v,
            false,
            vec![legacy(BROKER, "99", &[("log.retention.ms", Some("1000"))])],
        )
        .await;
        assert_eq!(r[0].0, INVALID_REQUEST, "v{v}");
        let r = alter(
            &mut c,
            v,
            false,
            vec![legacy(
                BROKER,
                &node,
                &[("listeners", Some("PLAINTEXT://:1"))],
            )],
        )
        .await;
        assert_eq!(r[0].0, INVALID_REQUEST, "v{v}");
    }
    // Nothing was stored.
    assert!(b.handle().broker.metadata.image().broker_configs.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_only_changes_nothing() {
    let b = TestBroker::start().await;
    let node = b.handle().broker.node_id().to_string();
    let mut c = b.connect().await;
    c.create_topic_with("vo", 1, &[("retention.ms", "1000")])
        .await;
    for v in versions(ApiKey::IncrementalAlterConfigs) {
        let r = incremental(
            &mut c,
            v,
            true,
            vec![
                incr(
                    TOPIC,
                    "vo",
                    &[
                        ("retention.ms", SET, Some("2000")),
                        ("cleanup.policy", APPEND, Some("compact")),
                    ],
                ),
                incr(BROKER, &node, &[("log.retention.ms", SET, Some("5000"))]),
                incr(BROKER, "", &[("log.segment.bytes", SET, Some("100000"))]),
                incr(TOPIC, "vo", &[("bogus", SET, Some("1"))]),
            ],
        )
        .await;
        // The duplicate "vo" resources fail; the brokers validate fine.
        assert_eq!(r[0].0, INVALID_REQUEST, "v{v}");
        assert_eq!(r[1], (NONE, None), "v{v}");
        assert_eq!(r[2], (NONE, None), "v{v}");
        let r = incremental(
            &mut c,
            v,
            true,
            vec![incr(
                TOPIC,
                "vo",
                &[
                    ("retention.ms", SET, Some("2000")),
                    ("cleanup.policy", APPEND, Some("compact")),
                ],
            )],
        )
        .await;
        assert_eq!(r[0], (NONE, None), "v{v}");
        // A validate_only failure is reported like a real one.
        let r = incremental(
            &mut c,
            v,
            true,
            vec![incr(TOPIC, "vo", &[("retention.ms", SET, Some("x"))])],
        )
        .await;
        assert_eq!(r[0].0, INVALID_CONFIG, "v{v}");
    }
    for v in versions(ApiKey::AlterConfigs) {
        let r = alter(
            &mut c,
            v,
            true,
            vec![legacy(TOPIC, "vo", &[("retention.bytes", Some("1"))])],
        )
        .await;
        assert_eq!(r[0], (NONE, None), "v{v}");
    }
    assert_eq!(
        topic_value(&mut c, "vo", "retention.ms").await,
        ("1000".into(), DYNAMIC_TOPIC)
    );
    assert_eq!(
        topic_value(&mut c, "vo", "cleanup.policy").await,
        ("delete".into(), DEFAULT)
    );
    assert_eq!(
        topic_value(&mut c, "vo", "retention.bytes").await,
        ("-1".into(), DEFAULT)
    );
    let broker = &b.handle().broker;
    assert!(broker.metadata.image().broker_configs.is_empty());
    let id = broker.metadata.image().topic("vo").unwrap().id;
    let cfg = broker.logs.get(&id, 0).unwrap().config();
    assert_eq!((cfg.retention_ms, cfg.retention_bytes), (1000, -1));
    assert_eq!(
        broker.metadata.topic_defaults().segment_bytes,
        1_073_741_824
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_broker_configs_describe_with_kafkas_sources_and_synonyms() {
    let b = TestBroker::start().await;
    let node = b.handle().broker.node_id().to_string();
    let mut c = b.connect().await;
    c.create_topic("plain", 1).await;
    c.create_topic_with("own", 1, &[("retention.ms", "1000")])
        .await;

    incr_ok(
        &mut c,
        BROKER,
        "",
        &[("log.retention.ms", SET, Some("60000"))],
    )
    .await;
    incr_ok(
        &mut c,
        BROKER,
        &node,
        &[("log.retention.ms", SET, Some("120000"))],
    )
    .await;
    incr_ok(
        &mut c,
        BROKER,
        "",
        &[("log.cleaner.min.cleanable.ratio", SET, Some("0.75"))],
    )
    .await;

    let configs = describe(&mut c, BROKER, &node).await;
    let ms = entry(&configs, "log.retention.ms");
    assert_eq!(ms.value.as_deref(), Some("120000"));
    assert_eq!(ms.config_source, DYNAMIC_BROKER);
    assert!(!ms.read_only);
    assert_eq!(
        synonyms(ms),
        vec![
            syn("log.retention.ms", "120000", DYNAMIC_BROKER),
            syn("log.retention.ms", "60000", DYNAMIC_DEFAULT_BROKER),
            syn("log.retention.hours", "168", DEFAULT),
        ]
    );
    let hours = entry(&configs, "log.retention.hours");
    assert!(hours.read_only);
    assert_eq!(hours.config_source, DEFAULT);
    let ratio = entry(&configs, "log.cleaner.min.cleanable.ratio");
    assert_eq!(ratio.value.as_deref(), Some("0.75"));
    assert_eq!(ratio.config_source, DYNAMIC_DEFAULT_BROKER);
    assert_eq!(ratio.config_type, 6);
    assert!(entry(&configs, "node.id").read_only);

    // The cluster-default resource lists only what is set there.
    let defaults = describe(&mut c, BROKER, "").await;
    let mut names: Vec<&str> = defaults.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["log.cleaner.min.cleanable.ratio", "log.retention.ms"]
    );
    let ms = entry(&defaults, "log.retention.ms");
    assert_eq!(ms.value.as_deref(), Some("60000"));
    assert_eq!(ms.config_source, DYNAMIC_DEFAULT_BROKER);
    assert_eq!(
        synonyms(ms),
        vec![
            syn("log.retention.ms", "60000", DYNAMIC_DEFAULT_BROKER),
            syn("log.retention.hours", "168", DEFAULT),
        ]
    );

    // Topics without an override follow the node's dynamic value.
    let topic = describe(&mut c, TOPIC, "plain").await;
    let rms = entry(&topic, "retention.ms");
    assert_eq!(rms.value.as_deref(), Some("120000"));
    assert_eq!(rms.config_source, DYNAMIC_BROKER);
    assert_eq!(
        synonyms(rms),
        vec![
            syn("log.retention.ms", "120000", DYNAMIC_BROKER),
            syn("log.retention.ms", "60000", DYNAMIC_DEFAULT_BROKER),
            syn("log.retention.hours", "168", DEFAULT),
        ]
    );
    assert_eq!(
        topic_value(&mut c, "own", "retention.ms").await,
        ("1000".into(), DYNAMIC_TOPIC)
    );
    let broker = &b.handle().broker;
    let image = broker.metadata.image();
    let plain = broker
        .logs
        .get(&image.topic("plain").unwrap().id, 0)
        .unwrap()
        .config();
    let own = broker
        .logs
        .get(&image.topic("own").unwrap().id, 0)
        .unwrap()
        .config();
    assert_eq!((plain.retention_ms, own.retention_ms), (120_000, 1000));
    assert_eq!(plain.min_cleanable_dirty_ratio, 0.75);

    // Removing the node's value falls back to the cluster default.
    incr_ok(&mut c, BROKER, &node, &[("log.retention.ms", DELETE, None)]).await;
    assert_eq!(
        topic_value(&mut c, "plain", "retention.ms").await,
        ("60000".into(), DYNAMIC_DEFAULT_BROKER)
    );
    let plain = broker
        .logs
        .get(&broker.metadata.image().topic("plain").unwrap().id, 0)
        .unwrap()
        .config();
    assert_eq!(plain.retention_ms, 60_000);
    // A topic created now starts from the dynamic defaults.
    c.create_topic("later", 1).await;
    let later = broker
        .logs
        .get(&broker.metadata.image().topic("later").unwrap().id, 0)
        .unwrap()
        .config();
    assert_eq!(later.retention_ms, 60_000);

    // Broker APPEND/SUBTRACT on a list key.
    incr_ok(
        &mut c,
        BROKER,
        "",
        &[("log.cleanup.policy", APPEND, Some("compact"))],
    )
    .await;
    let defaults = describe(&mut c, BROKER, "").await;
    assert_eq!(
        entry(&defaults, "log.cleanup.policy").value.as_deref(),
        Some("delete,compact")
    );
    incr_ok(
        &mut c,
        BROKER,
        "",
        &[("log.cleanup.policy", SUBTRACT, Some("delete"))],
    )
    .await;
    assert_eq!(
        topic_value(&mut c, "plain", "cleanup.policy").await,
        ("compact".into(), DYNAMIC_DEFAULT_BROKER)
    );

    // Legacy AlterConfigs replaces the node's whole set.
    incr_ok(
        &mut c,
        BROKER,
        &node,
        &[("log.segment.bytes", SET, Some("500000"))],
    )
    .await;
    let r = alter(
        &mut c,
        2,
        false,
        vec![legacy(
            BROKER,
            &node,
            &[("message.max.bytes", Some("2000"))],
        )],
    )
    .await;
    assert_eq!(r, vec![(NONE, None)]);
    let configs = describe(&mut c, BROKER, &node).await;
    assert_eq!(entry(&configs, "log.segment.bytes").config_source, DEFAULT);
    assert_eq!(
        entry(&configs, "message.max.bytes").config_source,
        DYNAMIC_BROKER
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_survive_a_restart() {
    let mut b = TestBroker::start().await;
    let node = b.handle().broker.node_id().to_string();
    let mut c = b.connect().await;
    c.create_topic_with("keep", 1, &[("segment.ms", "5000")])
        .await;
    c.create_topic("plain", 1).await;
    incr_ok(
        &mut c,
        TOPIC,
        "keep",
        &[
            ("retention.bytes", SET, Some("123456")),
            ("segment.ms", DELETE, None),
            ("delete.retention.ms", SET, Some("10")),
        ],
    )
    .await;
    incr_ok(
        &mut c,
        BROKER,
        "",
        &[("log.retention.bytes", SET, Some("999999"))],
    )
    .await;
    incr_ok(
        &mut c,
        BROKER,
        &node,
        &[("log.segment.bytes", SET, Some("200000"))],
    )
    .await;
    drop(c);
    b.restart().await;
    let mut c = b.connect().await;
    assert_eq!(
        topic_value(&mut c, "keep", "retention.bytes").await,
        ("123456".into(), DYNAMIC_TOPIC)
    );
    assert_eq!(
        topic_value(&mut c, "keep", "segment.ms").await,
        ("604800000".into(), DEFAULT)
    );
    assert_eq!(
        topic_value(&mut c, "keep", "delete.retention.ms").await,
        ("10".into(), DYNAMIC_TOPIC)
    );
    assert_eq!(
        topic_value(&mut c, "plain", "retention.bytes").await,
        ("999999".into(), DYNAMIC_DEFAULT_BROKER)
    );
    assert_eq!(
        topic_value(&mut c, "plain", "segment.bytes").await,
        ("200000".into(), DYNAMIC_BROKER)
    );
    let broker = &b.handle().broker;
    let image = broker.metadata.image();
    let keep = broker
        .logs
        .get(&image.topic("keep").unwrap().id, 0)
        .unwrap()
        .config();
    let plain = broker
        .logs
        .get(&image.topic("plain").unwrap().id, 0)
        .unwrap()
        .config();
    assert_eq!(
        (
            keep.retention_bytes,
            keep.segment_ms,
            keep.delete_retention_ms
        ),
        (123_456, 604_800_000, 10)
    );
    assert_eq!(
        (keep.segment_bytes, plain.segment_bytes),
        (200_000, 200_000)
    );
    assert_eq!(plain.retention_bytes, 999_999);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_message_bytes_change_takes_effect_at_once() {
    let b = TestBroker::start().await;
    let node = b.handle().broker.node_id().to_string();
    let mut c = b.connect().await;
    c.create_topic("mm", 1).await;
    c.create_topic("mm_own", 1).await;
    let big = vec![b'x'; 600];
    c.produce_ok("mm", 0, batch(&[&big], 1, None)).await;
    incr_ok(
        &mut c,
        TOPIC,
        "mm",
        &[("max.message.bytes", SET, Some("200"))],
    )
    .await;
    let p = c.produce("mm", 0, Some(batch(&[&big], 1, None))).await;
    assert_eq!(p.error_code, MESSAGE_TOO_LARGE);
    c.produce_ok("mm", 0, batch(&[b"small"], 1, None)).await;
    // A broker-wide default reaches topics without their own value.
    incr_ok(
        &mut c,
        TOPIC,
        "mm_own",
        &[("max.message.bytes", SET, Some("5000"))],
    )
    .await;
    c.create_topic("mm_plain", 1).await;
    incr_ok(
        &mut c,
        BROKER,
        &node,
        &[("message.max.bytes", SET, Some("300"))],
    )
    .await;
    let p = c
        .produce("mm_plain", 0, Some(batch(&[&big], 1, None)))
        .await;
    assert_eq!(p.error_code, MESSAGE_TOO_LARGE);
    c.produce_ok("mm_own", 0, batch(&[&big], 1, None)).await;
    incr_ok(
        &mut c,
        BROKER,
        &node,
        &[("message.max.bytes", DELETE, None)],
    )
    .await;
    c.produce_ok("mm_plain", 0, batch(&[&big], 1, None)).await;
}

/// Incremental changes to different keys of one resource, sent at the same
/// time on separate connections, must all be kept: Kafka's controller applies
/// them one after the other. A handler that reads the stored set before it
/// takes the metadata lock loses all but one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_incremental_changes_are_all_kept() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    let topic_keys = [
        ("retention.ms", "86400001"),
        ("segment.ms", "86400002"),
        ("retention.bytes", "86400003"),
        ("delete.retention.ms", "86400004"),
        ("flush.ms", "86400005"),
        ("min.compaction.lag.ms", "86400006"),
    ];
    let broker_keys = [
        ("log.retention.bytes", "96400001"),
        ("log.cleaner.delete.retention.ms", "96400002"),
        ("log.roll.ms", "96400003"),
        ("log.flush.interval.ms", "96400004"),
        ("log.message.timestamp.before.max.ms", "96400005"),
        ("log.cleaner.min.compaction.lag.ms", "96400006"),
    ];
    for round in 0..5 {
        let t = format!("race{round}");
        c.create_topic(&t, 1).await;
        let mut tasks = Vec::new();
        for (i, (key, value)) in topic_keys.iter().enumerate() {
            let mut conn = b.connect().await;
            let (t, key, value) = (t.clone(), *key, *value);
            let (bkey, bvalue) = broker_keys[i];
            let bvalue = format!("{bvalue}{round}");
            tasks.push(tokio::spawn(async move {
                incr_ok(&mut conn, TOPIC, &t, &[(key, SET, Some(value))]).await;
                incr_ok(&mut conn, BROKER, "", &[(bkey, SET, Some(&bvalue))]).await;
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        for (key, value) in topic_keys {
            assert_eq!(
                topic_value(&mut c, &t, key).await,
                (value.to_owned(), DYNAMIC_TOPIC),
                "round {round}: {key} lost"
            );
        }
        let configs = describe(&mut c, BROKER, "").await;
        for (key, value) in broker_keys {
            let e = entry(&configs, key);
            assert_eq!(
                e.value.as_ref().map(|v| v.to_string()),
                Some(format!("{value}{round}")),
                "round {round}: broker {key} lost"
            );
        }
    }
}

/// Kafka's dynamic broker keys Runnel does not act on (librdkafka's 0081
/// sets `sasl.kerberos.min.time.before.relogin`) are accepted and kept, as
/// Kafka accepts them; they change no topic default, and a bare prefix is
/// still an unknown key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unused_dynamic_broker_keys_are_accepted() {
    let b = TestBroker::start().await;
    let node = b.handle().broker.node_id().to_string();
    let mut c = b.connect().await;
    let before = b.handle().broker.metadata.topic_defaults();
    for v in versions(ApiKey::IncrementalAlterConfigs) {
        let ops = [
            ("sasl.kerberos.min.time.before.relogin", SET, Some("58000")),
            ("num.io.threads", SET, Some("4")),
        ];
        let r = incremental(&mut c, v, false, vec![incr(BROKER, &node, &ops)]).await;
        assert_eq!(r[0].0, NONE, "v{v}: {:?}", r[0].1);
        let r = incremental(
            &mut c,
            v,
            false,
            vec![incr(BROKER, &node, &[("ssl.", SET, Some("x"))])],
        )
        .await;
        assert_eq!(r[0].0, INVALID_CONFIG, "v{v}: {:?}", r[0].1);
    }
    for v in versions(ApiKey::AlterConfigs) {
        let r = alter(
            &mut c,
            v,
            false,
            vec![legacy(
                BROKER,
                &node,
                &[("sasl.kerberos.min.time.before.relogin", Some("58000"))],
            )],
        )
        .await;
        assert_eq!(r[0].0, NONE, "v{v}: {:?}", r[0].1);
    }
    let stored = b.handle().broker.metadata.image().broker_configs.clone();
    assert!(
        format!("{stored:?}").contains("sasl.kerberos.min.time.before.relogin"),
        "{stored:?}"
    );
    assert_eq!(b.handle().broker.metadata.topic_defaults(), before);
}
