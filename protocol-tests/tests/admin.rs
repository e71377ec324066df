//! CreateTopics / Metadata topic errors and auto-creation, and
//! DescribeConfigs for topics and the broker.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::*;
use protocol_tests::*;

/// Kafka's ConfigSource codes.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DEFAULT_CONFIG: i8 = 5;

async fn topic_exists(c: &mut Client, name: &str) -> bool {
    let md = c.call(12, &metadata_request(12, None, false)).await;
    md.topics
        .iter()
        .any(|t| t.name.as_ref().map(|n| n.as_str()) == Some(name))
}

async fn create_one(c: &mut Client, topic: CreatableTopic, validate_only: bool) -> i16 {
    let name = topic.name.to_string();
    let req = create_topics_request(vec![topic]).with_validate_only(validate_only);
    let resp = c.call(7, &req).await;
    create_response_error(&resp, &name)
}

use kafka_protocol::messages::create_topics_request::CreatableTopic;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topics_errors() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    let long_ok = "a".repeat(249);
    let too_long = "a".repeat(250);
    for name in ["a b", "", ".", "..", "bad/slash", too_long.as_str()] {
        let code = create_one(&mut c, creatable_topic(name, 1, &[]), false).await;
        assert_eq!(code, 17, "INVALID_TOPIC_EXCEPTION for {name:?}");
    }
    assert_eq!(
        create_one(&mut c, creatable_topic(&long_ok, 1, &[]), false).await,
        0
    );
    assert!(topic_exists(&mut c, &long_ok).await);

    c.create_topic("exists", 1).await;
    let cases: Vec<(&str, CreatableTopic, i16)> = vec![
        ("duplicate", creatable_topic("exists", 1, &[]), 36),
        (
            "replication factor 3",
            creatable_topic("rf3", 1, &[]).with_replication_factor(3),
            38,
        ),
        ("0 partitions", creatable_topic("p0", 0, &[]), 37),
        ("-5 partitions", creatable_topic("pneg", -5, &[]), 37),
        (
            "unknown config",
            creatable_topic("badcfg", 1, &[("no.such.config", "1")]),
            40,
        ),
        (
            "bad config value",
            creatable_topic("badval", 1, &[("retention.ms", "soon")]),
            40,
        ),
    ];
    for (what, topic, want) in cases {
        let name = topic.name.to_string();
        for validate_only in [true, false] {
            let code = create_one(&mut c, topic.clone(), validate_only).await;
            assert_eq!(code, want, "{what} (validate_only {validate_only})");
        }
        if name != "exists" {
            assert!(!topic_exists(&mut c, &name).await, "{what}: not created");
        }
    }

    // The same name twice in one request: both refused, nothing created,
    // while another topic in the request is created.
    let req = create_topics_request(vec![
        creatable_topic("twice", 1, &[]),
        creatable_topic("once", 1, &[]),
        creatable_topic("twice", 2, &[]),
    ]);
    let resp = c.call(7, &req).await;
    for t in &resp.topics {
        let want = if t.name.as_str() == "twice" { 42 } else { 0 };
        assert_eq!(t.error_code, want, "{}", t.name.as_str());
    }
    assert!(!topic_exists(&mut c, "twice").await);
    assert!(topic_exists(&mut c, "once").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topics_validate_only_creates_nothing() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    let req = create_topics_request(vec![creatable_topic(
        "dry-run",
        4,
        &[("retention.ms", "1000")],
    )])
    .with_validate_only(true);
    let resp = c.call(7, &req).await;
    let t = &resp.topics[0];
    assert_eq!(t.error_code, 0);
    assert_eq!(t.num_partitions, 4);
    assert!(!topic_exists(&mut c, "dry-run").await);
    // Creating it for real afterwards works.
    c.create_topic("dry-run", 4).await;
    assert!(topic_exists(&mut c, "dry-run").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_topic_errors_and_auto_creation() {
    let b = TestBroker::start_with(|cfg| {
        cfg.set("num.partitions", "3").unwrap();
    })
    .await;
    let mut c = b.connect().await;

    for auto in [true, false] {
        let md = c
            .call(12, &metadata_request(12, Some(&["bad name!"]), auto))
            .await;
        assert_eq!(md.topics[0].error_code, 17, "invalid name, auto {auto}");
    }
    assert!(!topic_exists(&mut c, "bad name!").await);

    for v in 4..=13 {
        let md = c
            .call(v, &metadata_request(v, Some(&["missing"]), false))
            .await;
        assert_eq!(md.topics[0].error_code, 3, "v{v}");
    }
    assert!(!topic_exists(&mut c, "missing").await, "nothing created");

    // Auto-creation is on by default and uses num.partitions; v0–v3 have
    // no flag and always ask for it.
    for (v, name) in [(12, "auto-v12"), (1, "auto-v1")] {
        let md = c.call(v, &metadata_request(v, Some(&[name]), true)).await;
        let t = &md.topics[0];
        assert_eq!(t.error_code, 0, "v{v}");
        assert_eq!(t.partitions.len(), 3, "v{v}: num.partitions");
        assert!(topic_exists(&mut c, name).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_auto_create_can_be_disabled() {
    let b = TestBroker::start_with(|cfg| {
        cfg.set("auto.create.topics.enable", "false").unwrap();
    })
    .await;
    let mut c = b.connect().await;
    for v in [1, 12] {
        let md = c
            .call(v, &metadata_request(v, Some(&["never"]), true))
            .await;
        assert_eq!(md.topics[0].error_code, 3, "v{v}");
    }
    assert!(!topic_exists(&mut c, "never").await);
}

// ---------------------------------------------------------------------------
// DescribeConfigs

fn resource(kind: i8, name: &str, keys: Option<&[&str]>) -> DescribeConfigsResource {
    DescribeConfigsResource::default()
        .with_resource_type(kind)
        .with_resource_name(str_bytes(name))
        .with_configuration_keys(keys.map(|k| k.iter().map(|s| str_bytes(s)).collect()))
}

fn find<'a>(
    configs: &'a [DescribeConfigsResourceResult],
    name: &str,
) -> &'a DescribeConfigsResourceResult {
    configs
        .iter()
        .find(|c| c.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} not described"))
}

fn value(c: &DescribeConfigsResourceResult) -> Option<String> {
    c.value.as_ref().map(|v| v.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_configs_topic_sources_and_synonyms() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic_with("cfg", 1, &[("retention.ms", "12345")])
        .await;

    let req = DescribeConfigsRequest::default().with_resources(vec![resource(2, "cfg", None)]);
    let resp = c.call(4, &req).await;
    let r = &resp.results[0];
    assert_eq!(r.error_code, 0);
    assert_eq!(r.resource_type, 2);
    assert_eq!(r.resource_name.as_str(), "cfg");
    let retention = find(&r.configs, "retention.ms");
    assert_eq!(value(retention).as_deref(), Some("12345"));
    assert_eq!(retention.config_source, DYNAMIC_TOPIC_CONFIG);
    for (name, default) in [
        ("segment.bytes", "1073741824"),
        ("max.message.bytes", "1048588"),
        ("message.timestamp.type", "CreateTime"),
        ("cleanup.policy", "delete"),
    ] {
        let cfg = find(&r.configs, name);
        assert_eq!(cfg.config_source, DEFAULT_CONFIG, "{name}");
        assert_eq!(value(cfg).as_deref(), Some(default), "{name}");
        assert!(!cfg.is_sensitive);
        assert!(cfg.synonyms.is_empty(), "{name}: synonyms not asked for");
    }

    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![resource(
            2,
            "cfg",
            Some(&["retention.ms", "segment.bytes"]),
        )]);
    let resp = c.call(4, &req).await;
    let configs = &resp.results[0].configs;
    assert_eq!(configs.len(), 2, "only the keys asked for");
    let retention = find(configs, "retention.ms");
    let first = &retention.synonyms[0];
    assert_eq!(
        (first.name.as_str(), first.source),
        ("retention.ms", DYNAMIC_TOPIC_CONFIG)
    );
    assert!(
        retention
            .synonyms
            .iter()
            .any(|s| s.source == DEFAULT_CONFIG && s.name.as_str().starts_with("log.retention.")),
        "broker default among the synonyms"
    );
    let segment = find(configs, "segment.bytes");
    assert!(segment
        .synonyms
        .iter()
        .any(|s| s.name.as_str() == "log.segment.bytes" && s.source == DEFAULT_CONFIG));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_configs_broker_and_errors() {
    let b = TestBroker::start().await;
    let node = b.handle().broker.node_id().to_string();
    let mut c = b.connect().await;
    let req = DescribeConfigsRequest::default().with_resources(vec![
        resource(4, &node, None),
        resource(2, "no-such-topic", None),
        resource(4, "999", None),
    ]);
    let resp = c.call(4, &req).await;
    let broker = &resp.results[0];
    assert_eq!(broker.error_code, 0);
    assert_eq!(broker.resource_name.as_str(), node);
    for name in ["log.retention.ms", "log.segment.bytes", "num.partitions"] {
        find(&broker.configs, name);
    }
    assert_eq!(resp.results[1].error_code, 3, "unknown topic");
    assert!(resp.results[1].configs.is_empty());
    assert_ne!(resp.results[2].error_code, 0, "another broker's id");
}
