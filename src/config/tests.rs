use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::sources::{classify_env, parse_properties, EnvVar};
use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn flags(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

fn load_flags(args: &[&str]) -> Result<BrokerConfig, ConfigError> {
    BrokerConfig::load(None, Vec::new(), &flags(args))
}

fn map(pairs: &[(&str, &str)]) -> IndexMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A properties file in the temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "runnel-config-test-{}-{}.properties",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn expect_err(result: Result<BrokerConfig, ConfigError>) -> ConfigError {
    match result {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e,
    }
}

fn key_of(e: &ConfigError) -> Option<&str> {
    match e {
        ConfigError::InvalidValue { key, .. }
        | ConfigError::Unsupported { key, .. }
        | ConfigError::UnknownTopicConfig { key, .. } => Some(key),
        ConfigError::MalformedOverride { .. } | ConfigError::Io { .. } => None,
    }
}

fn endpoint(name: &str, host: &str, port: u16) -> Endpoint {
    Endpoint {
        listener_name: name.into(),
        host: host.into(),
        port,
    }
}

#[test]
fn defaults_with_no_sources() {
    let c = BrokerConfig::load(None, Vec::new(), &[]).unwrap();
    assert_eq!(c.node_id, 1);
    assert_eq!(c.listeners, vec![endpoint("PLAINTEXT", "localhost", 9092)]);
    assert_eq!(c.advertised_listeners, c.listeners);
    assert_eq!(c.log_dir, PathBuf::from("./runnel-data"));
    assert_eq!(c.num_partitions, 1);
    assert_eq!(c.default_replication_factor, 1);
    assert!(c.auto_create_topics_enable);
    assert_eq!(c.log_retention_check_interval_ms, 300_000);
    assert_eq!(c.message_max_bytes, 1_048_588);
    assert_eq!(c.socket_request_max_bytes, 104_857_600);
    assert_eq!(c.max_connections, i32::MAX);
    assert_eq!(c.cluster_id_override, None);
    assert_eq!(
        c.topic_defaults,
        TopicConfig {
            segment_bytes: 1_073_741_824,
            segment_ms: 168 * 3_600_000,
            retention_ms: 168 * 3_600_000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            message_timestamp_type: TimestampType::CreateTime,
            cleanup_policy: "delete".into(),
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            ..TopicConfig::blank()
        }
    );
}

#[test]
fn default_for_tests_uses_loopback_and_given_dir() {
    let c = BrokerConfig::default_for_tests(PathBuf::from("/tmp/some dir"));
    assert_eq!(c.listeners, vec![endpoint("PLAINTEXT", "127.0.0.1", 0)]);
    assert_eq!(c.advertised_listeners, c.listeners);
    assert_eq!(c.log_dir, PathBuf::from("/tmp/some dir"));
    assert_eq!(c.topic_defaults.segment_bytes, 1_073_741_824);
}

#[test]
fn properties_parsing() {
    let text = "# comment\n\
                ! also a comment\n\
                \n   \t\n\
                a=1\n\
                b: 2\n\
                c 3\n\
                  d   =   spaced value   \n\
                e = first, \\\n      second, \\\n\t third\n\
                f=ends with backslash\\\\\n\
                g\\:h = escaped\\tkey\n\
                i=\\u0041\\=\n\
                # comment ending in backslash \\\n\
                j=after comment\r\n\
                k=crlf\r\n\
                empty=\n\
                lonely\n\
                last=continued \\";
    let got = parse_properties(text);
    let want: Vec<(String, String)> = [
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
        ("d", "spaced value"),
        ("e", "first, second, third"),
        ("f", "ends with backslash\\"),
        ("g:h", "escaped\tkey"),
        ("i", "A="),
        ("j", "after comment"),
        ("k", "crlf"),
        ("empty", ""),
        ("lonely", ""),
        ("last", "continued"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn properties_file_is_loaded() {
    let file = TempFile::new(
        "# server.properties\nnode.id: 7\nlog.dirs = /var/lib/runnel\nnum.partitions=\\\n   3\n",
    );
    let c = BrokerConfig::load(Some(&file.0), Vec::new(), &[]).unwrap();
    assert_eq!(c.node_id, 7);
    assert_eq!(c.log_dir, PathBuf::from("/var/lib/runnel"));
    assert_eq!(c.num_partitions, 3);
}

#[test]
fn missing_file_is_an_io_error() {
    let e = expect_err(BrokerConfig::load(
        Some(Path::new("/nonexistent/runnel.properties")),
        Vec::new(),
        &[],
    ));
    assert!(matches!(e, ConfigError::Io { .. }));
    assert!(e.to_string().contains("/nonexistent/runnel.properties"));
}

#[test]
fn env_mapping() {
    let cases = [
        ("KAFKA_LOG_DIRS", "log.dirs"),
        ("KAFKA_LOG_RETENTION_MS", "log.retention.ms"),
        ("KAFKA_FOO__BAR", "foo_bar"),
        ("KAFKA_FOO___BAR", "foo-bar"),
        ("KAFKA_FOO____BAR", "foo-.bar"),
        ("KAFKA_FOO_____BAR", "foo-_bar"),
        (
            "KAFKA_LISTENER_NAME_INTERNAL_SSL_KEYSTORE__LOCATION",
            "listener.name.internal.ssl.keystore_location",
        ),
        ("KAFKA_NODE_ID", "node.id"),
    ];
    for (var, key) in cases {
        assert_eq!(classify_env(var), EnvVar::Config(key.into()), "{var}");
    }
    for var in [
        "KAFKA_HEAP_OPTS",
        "KAFKA_OPTS",
        "KAFKA_VERSION",
        "KAFKA_JMX_PORT",
        "KAFKA_LOG4J_ROOT_LOGLEVEL",
        "KAFKA_",
        "PATH",
        "kafka_log_dirs",
    ] {
        assert_eq!(classify_env(var), EnvVar::Ignored, "{var}");
    }
    assert_eq!(classify_env("CLUSTER_ID"), EnvVar::ClusterId);
    assert_eq!(classify_env("KAFKA_CLUSTER_ID"), EnvVar::ClusterId);
}

#[test]
fn env_is_applied_and_image_vars_ignored() {
    let c = BrokerConfig::load(
        None,
        env(&[
            ("KAFKA_LOG_DIRS", "/data"),
            ("KAFKA_LOG_RETENTION_MS", "5000"),
            ("KAFKA_HEAP_OPTS", "-Xmx1G"),
            ("KAFKA_JMX_PORT", "not-a-port"),
            ("HOME", "/root"),
        ]),
        &[],
    )
    .unwrap();
    assert_eq!(c.log_dir, PathBuf::from("/data"));
    assert_eq!(c.topic_defaults.retention_ms, 5000);
}

#[test]
fn cluster_id_from_env() {
    let load = |pairs: &[(&str, &str)]| {
        BrokerConfig::load(None, env(pairs), &[])
            .unwrap()
            .cluster_id_override
    };
    assert_eq!(load(&[]), None);
    assert_eq!(load(&[("KAFKA_CLUSTER_ID", "k")]).as_deref(), Some("k"));
    assert_eq!(
        load(&[("CLUSTER_ID", "MkU3OEVBNTcwNTJENDM2Qk")]).as_deref(),
        Some("MkU3OEVBNTcwNTJENDM2Qk")
    );
    assert_eq!(
        load(&[("CLUSTER_ID", "a"), ("KAFKA_CLUSTER_ID", "b")]).as_deref(),
        Some("a")
    );
    assert_eq!(load(&[("CLUSTER_ID", "  ")]), None);
}

#[test]
fn precedence_flags_over_env_over_file_over_defaults() {
    let file = TempFile::new("num.partitions=2\nmessage.max.bytes=2000\nmax.connections=10\n");
    let e = env(&[
        ("KAFKA_NUM_PARTITIONS", "3"),
        ("KAFKA_MESSAGE_MAX_BYTES", "3000"),
    ]);
    let c = BrokerConfig::load(Some(&file.0), e, &flags(&["num.partitions=4"])).unwrap();
    assert_eq!(c.num_partitions, 4, "flag beats env and file");
    assert_eq!(c.message_max_bytes, 3000, "env beats file");
    assert_eq!(c.max_connections, 10, "file beats default");
    assert_eq!(c.socket_request_max_bytes, 104_857_600, "default");
    assert_eq!(c.topic_defaults.max_message_bytes, 3000);
}

#[test]
fn retention_hours_minutes_ms_precedence() {
    let r = |args: &[&str]| load_flags(args).unwrap().topic_defaults.retention_ms;
    assert_eq!(r(&[]), 168 * 3_600_000);
    assert_eq!(r(&["log.retention.hours=1"]), 3_600_000);
    assert_eq!(
        r(&["log.retention.hours=1", "log.retention.minutes=2"]),
        120_000
    );
    assert_eq!(
        r(&[
            "log.retention.hours=1",
            "log.retention.minutes=2",
            "log.retention.ms=500"
        ]),
        500
    );
    assert_eq!(r(&["log.retention.ms=500", "log.retention.hours=1"]), 500);
    assert_eq!(r(&["log.retention.ms=-1"]), -1);
    assert_eq!(
        r(&["log.retention.hours=-5"]),
        -1,
        "negative means unlimited"
    );
    let e = expect_err(load_flags(&["log.retention.ms=0"]));
    assert_eq!(key_of(&e), Some("log.retention.ms"));
    let e = expect_err(load_flags(&["log.retention.hours=0"]));
    assert_eq!(key_of(&e), Some("log.retention.hours"));
}

#[test]
fn roll_and_flush_synonyms() {
    let t = load_flags(&["log.roll.hours=2"]).unwrap().topic_defaults;
    assert_eq!(t.segment_ms, 7_200_000);
    let t = load_flags(&["log.roll.hours=2", "log.roll.ms=1234"])
        .unwrap()
        .topic_defaults;
    assert_eq!(t.segment_ms, 1234);
    let t = load_flags(&["log.flush.scheduler.interval.ms=50"])
        .unwrap()
        .topic_defaults;
    assert_eq!(t.flush_ms, 50);
    let t = load_flags(&[
        "log.flush.scheduler.interval.ms=50",
        "log.flush.interval.ms=10",
    ])
    .unwrap()
    .topic_defaults;
    assert_eq!(t.flush_ms, 10);
    let e = expect_err(load_flags(&["log.flush.interval.ms=-1"]));
    assert_eq!(key_of(&e), Some("log.flush.interval.ms"));
}

#[test]
fn every_minimum_is_enforced_exactly() {
    let limits: &[(&str, i64)] = &[
        ("log.segment.bytes", 14),
        ("num.partitions", 1),
        ("log.retention.check.interval.ms", 1),
        ("socket.request.max.bytes", 1),
        ("max.connections", 0),
        ("message.max.bytes", 0),
        ("log.index.interval.bytes", 0),
        ("log.flush.interval.messages", 1),
        ("log.flush.interval.ms", 0),
        ("log.roll.hours", 1),
        ("log.roll.ms", 1),
        ("node.id", 0),
        ("default.replication.factor", 1),
    ];
    for &(key, min) in limits {
        let below = format!("{key}={}", min - 1);
        let e = expect_err(load_flags(&[&below]));
        let msg = e.to_string();
        assert!(
            msg.contains(key) && msg.contains(&(min - 1).to_string()),
            "{below}: {msg}"
        );
        assert_eq!(key_of(&e), Some(key));
        let at = format!("{key}={min}");
        load_flags(&[&at]).unwrap_or_else(|e| panic!("{at}: {e}"));
    }
}

#[test]
fn bad_values_name_the_key() {
    let e = expect_err(load_flags(&["log.segment.bytes=abc"]));
    assert_eq!(
        e.to_string(),
        "invalid value 'abc' for log.segment.bytes: not an integer"
    );
    let cases = [
        "log.segment.bytes=2147483648",
        "log.segment.bytes=1.5",
        "log.segment.bytes=",
        "log.retention.check.interval.ms=9223372036854775808",
        "default.replication.factor=32768",
        "auto.create.topics.enable=yes",
        "log.message.timestamp.type=createtime",
        "log.cleanup.policy=forever",
        "log.cleanup.policy=",
        "log.cleanup.policy=compact,compact",
        "node.id=one",
        "broker.id=x",
    ];
    for case in cases {
        let (key, value) = case.split_once('=').unwrap();
        let e = expect_err(load_flags(&[case]));
        let msg = e.to_string();
        assert!(
            msg.contains(key) && msg.contains(&format!("'{value}'")),
            "{case}: {msg}"
        );
        assert!(!msg.contains('\n'), "{case}: {msg}");
    }
}

#[test]
fn good_values_of_each_type_parse() {
    let c = load_flags(&[
        "auto.create.topics.enable=FALSE",
        "log.message.timestamp.type=LogAppendTime",
        "log.cleanup.policy= delete , compact ",
        "log.retention.bytes=-1",
        "default.replication.factor=3",
        "log.segment.bytes=+1024",
    ])
    .unwrap();
    assert!(!c.auto_create_topics_enable);
    assert_eq!(
        c.topic_defaults.message_timestamp_type,
        TimestampType::LogAppendTime
    );
    assert_eq!(c.topic_defaults.cleanup_policy, "delete,compact");
    assert_eq!(c.default_replication_factor, 3);
    assert_eq!(c.topic_defaults.segment_bytes, 1024);
}

#[test]
fn docker_compose_style_environment_loads() {
    let c = BrokerConfig::load(
        None,
        env(&[
            ("KAFKA_NODE_ID", "1"),
            ("KAFKA_PROCESS_ROLES", "broker,controller"),
            ("KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            ("KAFKA_ADVERTISED_LISTENERS", "PLAINTEXT://broker:9092"),
            ("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER"),
            (
                "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            ),
            ("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@broker:9093"),
            ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1"),
            ("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1"),
            ("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0"),
            ("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT"),
            ("CLUSTER_ID", "4L6g3nShT-eMCtK--X86sw"),
        ]),
        &[],
    )
    .unwrap();
    assert_eq!(c.node_id, 1);
    assert_eq!(c.listeners, vec![endpoint("PLAINTEXT", "", 9092)]);
    assert_eq!(
        c.advertised_listeners,
        vec![endpoint("PLAINTEXT", "broker", 9092)]
    );
    assert_eq!(
        c.cluster_id_override.as_deref(),
        Some("4L6g3nShT-eMCtK--X86sw")
    );
}

#[test]
fn ssl_listener_is_unsupported() {
    let e = expect_err(load_flags(&["listeners=PLAINTEXT://:9092,SSL://:9093"]));
    assert!(matches!(e, ConfigError::Unsupported { .. }), "{e}");
    assert_eq!(key_of(&e), Some("listeners"));
    assert!(
        e.to_string()
            .contains("SSL listeners are not supported yet"),
        "{e}"
    );
    assert!(e.to_string().contains("SSL://:9093"), "{e}");

    let e = expect_err(load_flags(&[
        "listeners=EXTERNAL://:9094",
        "listener.security.protocol.map=EXTERNAL:SASL_SSL",
    ]));
    assert!(
        e.to_string()
            .contains("SASL_SSL listeners are not supported yet"),
        "{e}"
    );
}

#[test]
fn listener_parsing() {
    let c = load_flags(&[
        "listeners=plaintext://[::1]:9092,INTERNAL://0.0.0.0:0",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:plaintext",
        "advertised.listeners=PLAINTEXT://[fe80::1%eth0]:19092",
    ])
    .unwrap();
    assert_eq!(
        c.listeners,
        vec![
            endpoint("PLAINTEXT", "::1", 9092),
            endpoint("INTERNAL", "0.0.0.0", 0)
        ]
    );
    assert_eq!(c.listeners[0].to_string(), "PLAINTEXT://[::1]:9092");
    // Matched by name; INTERNAL is not advertised explicitly so its own
    // address is used, with the wildcard replaced by the hostname.
    assert_eq!(
        c.advertised_listeners,
        vec![
            endpoint("PLAINTEXT", "fe80::1%eth0", 19092),
            endpoint("INTERNAL", &hostname(), 0)
        ]
    );

    let c = load_flags(&["listeners=PLAINTEXT://:9092"]).unwrap();
    assert_eq!(
        c.advertised_listeners,
        vec![endpoint("PLAINTEXT", &hostname(), 9092)]
    );

    let bad: &[(&[&str], &str)] = &[
        (&["listeners=PLAINTEXT://host:99999"], "listeners"),
        (&["listeners=PLAINTEXT://host"], "listeners"),
        (&["listeners=host:9092"], "listeners"),
        (&["listeners=PLAINTEXT://::1:9092"], "listeners"),
        (
            &["listeners=PLAINTEXT://:9092,PLAINTEXT://:9093"],
            "listeners",
        ),
        (&["listeners=OTHER://:9092"], "listeners"),
        (&["listeners="], "listeners"),
        (
            &["advertised.listeners=OTHER://h:1"],
            "advertised.listeners",
        ),
        (
            &["advertised.listeners=PLAINTEXT://0.0.0.0:9092"],
            "advertised.listeners",
        ),
        (
            &["listener.security.protocol.map=PLAINTEXT:TLS"],
            "listener.security.protocol.map",
        ),
        (
            &["listener.security.protocol.map=PLAINTEXT"],
            "listener.security.protocol.map",
        ),
        (&["controller.listener.names=PLAINTEXT"], "listeners"),
    ];
    for (args, key) in bad {
        let e = expect_err(load_flags(args));
        assert_eq!(key_of(&e), Some(*key), "{args:?}: {e}");
    }
}

#[test]
fn advertised_controller_entries_are_ignored() {
    let c = load_flags(&[
        "listeners=PLAINTEXT://:9092,CONTROLLER://:9093",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SSL",
        "controller.listener.names=controller",
        "advertised.listeners=PLAINTEXT://broker:9092,CONTROLLER://broker:9093",
    ])
    .unwrap();
    assert_eq!(c.listeners, vec![endpoint("PLAINTEXT", "", 9092)]);
    assert_eq!(
        c.advertised_listeners,
        vec![endpoint("PLAINTEXT", "broker", 9092)]
    );
}

#[test]
fn log_dirs() {
    assert_eq!(
        load_flags(&["log.dir=/a"]).unwrap().log_dir,
        PathBuf::from("/a")
    );
    assert_eq!(
        load_flags(&["log.dir=/a", "log.dirs=/b,"]).unwrap().log_dir,
        PathBuf::from("/b")
    );
    let e = expect_err(load_flags(&["log.dirs=/a,/b"]));
    assert!(matches!(e, ConfigError::Unsupported { .. }));
    assert_eq!(key_of(&e), Some("log.dirs"));
    assert!(e.to_string().contains("/a,/b"));
    let e = expect_err(load_flags(&["log.dirs= , "]));
    assert_eq!(key_of(&e), Some("log.dirs"));
}

#[test]
fn broker_id_is_an_alias_of_node_id() {
    assert_eq!(load_flags(&["broker.id=5"]).unwrap().node_id, 5);
    assert_eq!(
        load_flags(&["broker.id=5", "node.id=5"]).unwrap().node_id,
        5
    );
    let e = expect_err(load_flags(&["broker.id=5", "node.id=6"]));
    assert_eq!(key_of(&e), Some("broker.id"));
    let described = load_flags(&["broker.id=5"])
        .unwrap()
        .describe(Some(&["node.id".to_string()]), false);
    assert_eq!(described[0].value.as_deref(), Some("5"));
    assert_eq!(described[0].source, ConfigSource::StaticBroker);
}

#[test]
fn unknown_and_unused_keys_are_accepted() {
    let c = load_flags(&[
        "zookeeper.connect=localhost:2181",
        "process.roles=broker",
        "min.insync.replicas=2",
        "no.such.key=whatever",
        "retention.ms=abc",
    ])
    .unwrap();
    assert_eq!(c.node_id, 1);
}

#[test]
fn debug_output_hides_credentials() {
    let c = load_flags(&["ssl.keystore.password=hunter2", "some.other=visible"]).unwrap();
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("hunter2") && debug.contains("visible"),
        "{debug}"
    );
}

#[test]
fn malformed_override_is_an_error() {
    let e = expect_err(load_flags(&["num.partitions"]));
    assert!(matches!(e, ConfigError::MalformedOverride { .. }));
    assert!(e.to_string().contains("num.partitions"));
    expect_err(load_flags(&["=3"]));
    // Only the first '=' splits, so values may contain more.
    let c = load_flags(&[
        "advertised.listeners=PLAINTEXT://a:1",
        "controller.quorum.voters=1@a=b",
    ]);
    assert!(c.is_ok());
}

#[test]
fn set_rederives_and_is_atomic() {
    let mut c = BrokerConfig::default_for_tests(PathBuf::from("/tmp/x"));
    c.set("log.segment.bytes", "1024").unwrap();
    assert_eq!(c.topic_defaults.segment_bytes, 1024);
    c.set("log.retention.minutes", "1").unwrap();
    assert_eq!(c.topic_defaults.retention_ms, 60_000);
    c.set("num.partitions", "6").unwrap();
    assert_eq!(c.num_partitions, 6);
    assert_eq!(c.listeners, vec![endpoint("PLAINTEXT", "127.0.0.1", 0)]);
    assert_eq!(c.log_dir, PathBuf::from("/tmp/x"));

    let before = format!("{c:?}");
    let e = c.set("log.segment.bytes", "13").unwrap_err();
    assert_eq!(key_of(&e), Some("log.segment.bytes"));
    assert_eq!(
        format!("{c:?}"),
        before,
        "failed set leaves config unchanged"
    );

    c.set("log.dirs", "/tmp/y").unwrap();
    assert_eq!(c.log_dir, PathBuf::from("/tmp/y"));
}

#[test]
fn resolve_topic_overrides() {
    let defaults = BrokerConfig::default_for_tests(PathBuf::from("/tmp/x")).topic_defaults;
    let t = TopicConfig::resolve(
        &defaults,
        &map(&[
            ("retention.ms", "1000"),
            ("segment.bytes", " 2048 "),
            ("cleanup.policy", "compact,delete"),
            ("message.timestamp.type", "LogAppendTime"),
            ("max.message.bytes", "10"),
            ("flush.messages", "1"),
            ("flush.ms", "0"),
            ("index.interval.bytes", "0"),
            ("retention.bytes", "-1"),
            ("segment.ms", "1"),
            ("min.insync.replicas", "2"),
        ]),
    )
    .unwrap();
    assert_eq!(
        t,
        TopicConfig {
            segment_bytes: 2048,
            segment_ms: 1,
            retention_ms: 1000,
            retention_bytes: -1,
            index_interval_bytes: 0,
            max_message_bytes: 10,
            message_timestamp_type: TimestampType::LogAppendTime,
            cleanup_policy: "compact,delete".into(),
            flush_messages: 1,
            flush_ms: 0,
            ..TopicConfig::blank()
        }
    );
    assert_eq!(
        TopicConfig::resolve(&defaults, &IndexMap::new()).unwrap(),
        defaults
    );

    let e = TopicConfig::resolve(&defaults, &map(&[("no.such.config", "1")])).unwrap_err();
    assert!(matches!(e, ConfigError::UnknownTopicConfig { .. }));
    assert_eq!(key_of(&e), Some("no.such.config"));
    // Broker key names are not topic keys.
    let e = TopicConfig::resolve(&defaults, &map(&[("log.retention.ms", "1")])).unwrap_err();
    assert!(matches!(e, ConfigError::UnknownTopicConfig { .. }));

    for (key, value) in [
        ("segment.bytes", "13"),
        ("segment.ms", "0"),
        ("retention.ms", "-2"),
        ("retention.ms", "x"),
        ("flush.messages", "0"),
        ("flush.ms", "-1"),
        ("max.message.bytes", "-1"),
        ("message.timestamp.type", "Now"),
        ("cleanup.policy", "delete,forever"),
    ] {
        let e = TopicConfig::resolve(&defaults, &map(&[(key, value)])).unwrap_err();
        assert!(
            matches!(e, ConfigError::InvalidValue { .. }),
            "{key}={value}: {e}"
        );
        assert!(
            e.to_string().contains(key) && e.to_string().contains(value),
            "{e}"
        );
    }
    // At the topic minimum, not below it.
    let t = TopicConfig::resolve(
        &defaults,
        &map(&[("segment.bytes", "14"), ("retention.ms", "-1")]),
    )
    .unwrap();
    assert_eq!((t.segment_bytes, t.retention_ms), (14, -1));
}

fn find<'a>(configs: &'a [DescribedConfig], name: &str) -> &'a DescribedConfig {
    configs
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("{name} not described"))
}

fn syn(name: &str, value: &str, source: ConfigSource) -> Synonym {
    Synonym {
        name: name.into(),
        value: Some(value.into()),
        source,
    }
}

#[test]
fn describe_topic_sources_and_synonyms() {
    let broker = load_flags(&[
        "log.retention.hours=24",
        "log.retention.ms=5000",
        "log.segment.bytes=2048",
    ])
    .unwrap();
    let overrides = map(&[("retention.ms", "1000"), ("cleanup.policy", "compact")]);
    let none = DynamicBrokerConfigs::default();
    let all = describe_topic(
        &broker,
        &none,
        &broker.topic_defaults,
        &overrides,
        None,
        true,
    );
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
    assert_eq!(names.len(), defs::TOPIC_DEFS.len());

    let retention = find(&all, "retention.ms");
    assert_eq!(retention.value.as_deref(), Some("1000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    assert_eq!(retention.config_type, 5);
    assert!(!retention.read_only && !retention.is_sensitive);
    assert!(retention.documentation.is_some());
    assert_eq!(
        retention.synonyms,
        vec![
            syn("retention.ms", "1000", ConfigSource::DynamicTopic),
            syn("log.retention.ms", "5000", ConfigSource::StaticBroker),
            syn("log.retention.hours", "24", ConfigSource::StaticBroker),
            syn("log.retention.hours", "168", ConfigSource::Default),
        ]
    );

    let segment = find(&all, "segment.bytes");
    assert_eq!(segment.value.as_deref(), Some("2048"));
    assert_eq!(segment.source, ConfigSource::StaticBroker);
    assert_eq!(segment.config_type, 3);
    assert_eq!(
        segment.synonyms,
        vec![
            syn("log.segment.bytes", "2048", ConfigSource::StaticBroker),
            syn("log.segment.bytes", "1073741824", ConfigSource::Default),
        ]
    );

    let flush = find(&all, "flush.ms");
    assert_eq!(flush.source, ConfigSource::Default);
    assert_eq!(flush.value.as_deref(), Some(i64::MAX.to_string().as_str()));
    assert_eq!(
        flush.synonyms,
        vec![syn(
            "log.flush.scheduler.interval.ms",
            &i64::MAX.to_string(),
            ConfigSource::Default
        )]
    );

    let cleanup = find(&all, "cleanup.policy");
    assert_eq!(cleanup.value.as_deref(), Some("compact"));
    assert_eq!(cleanup.config_type, 7);
    assert_eq!(cleanup.source, ConfigSource::DynamicTopic);

    let segment_ms = find(&all, "segment.ms");
    assert_eq!(segment_ms.value.as_deref(), Some("604800000"));
    assert_eq!(
        segment_ms.synonyms,
        vec![syn("log.roll.hours", "168", ConfigSource::Default)]
    );

    // Filtering and no synonyms.
    let some = describe_topic(
        &broker,
        &none,
        &broker.topic_defaults,
        &overrides,
        Some(&["segment.bytes".to_string(), "nope".to_string()]),
        false,
    );
    assert_eq!(some.len(), 1);
    assert_eq!(some[0].name, "segment.bytes");
    assert!(some[0].synonyms.is_empty());
    assert_eq!(some[0].source, ConfigSource::StaticBroker);
}

#[test]
fn describe_broker() {
    let c = load_flags(&["log.retention.ms=5000", "num.partitions=3"]).unwrap();
    let all = c.describe(None, true);
    let names: HashSet<&str> = all.iter().map(|d| d.name.as_str()).collect();
    for key in [
        "node.id",
        "listeners",
        "log.dirs",
        "log.retention.hours",
        "message.max.bytes",
    ] {
        assert!(names.contains(key), "{key}");
    }
    assert!(!names.contains("broker.id") && !names.contains("process.roles"));
    assert_eq!(names.len(), defs::broker_keys().count());
    assert!(all.iter().all(|d| !d.is_sensitive));
    // Only the topic defaults Kafka reconfigures at run time are writable.
    for d in &all {
        let dynamic = defs::TOPIC_DEFS
            .iter()
            .any(|t| t.synonyms[0].key.name == d.name);
        assert_eq!(d.read_only, !dynamic, "{}", d.name);
    }
    assert!(!find(&all, "log.retention.ms").read_only);
    assert!(find(&all, "log.retention.hours").read_only);
    assert!(find(&all, "num.partitions").read_only);

    let partitions = find(&all, "num.partitions");
    assert_eq!(partitions.value.as_deref(), Some("3"));
    assert_eq!(partitions.source, ConfigSource::StaticBroker);
    assert_eq!(partitions.config_type, 3);
    assert_eq!(
        partitions.synonyms,
        vec![
            syn("num.partitions", "3", ConfigSource::StaticBroker),
            syn("num.partitions", "1", ConfigSource::Default),
        ]
    );

    let ms = find(&all, "log.retention.ms");
    assert_eq!(ms.value.as_deref(), Some("5000"));
    assert_eq!(ms.source, ConfigSource::StaticBroker);
    assert_eq!(
        ms.synonyms,
        vec![
            syn("log.retention.ms", "5000", ConfigSource::StaticBroker),
            syn("log.retention.hours", "168", ConfigSource::Default),
        ]
    );
    let hours = find(&all, "log.retention.hours");
    assert_eq!(hours.source, ConfigSource::Default);
    assert_eq!(
        hours.synonyms,
        vec![syn("log.retention.hours", "168", ConfigSource::Default)]
    );
    let minutes = find(&all, "log.retention.minutes");
    assert_eq!(
        (minutes.value.as_deref(), minutes.source),
        (None, ConfigSource::Default)
    );
    assert!(minutes.synonyms.is_empty());

    let bools = find(&all, "auto.create.topics.enable");
    assert_eq!(
        (bools.config_type, bools.value.as_deref()),
        (1, Some("true"))
    );
    let listeners = find(&all, "listeners");
    assert_eq!(
        listeners.value.as_deref(),
        Some("PLAINTEXT://localhost:9092")
    );
    assert_eq!(find(&all, "advertised.listeners").value, None);

    let one = c.describe(Some(&["num.partitions".to_string()]), false);
    assert_eq!(one.len(), 1);
    assert!(one[0].synonyms.is_empty());
    assert_eq!(c.describe(Some(&[]), false).len(), all.len());
}

#[test]
fn table_is_consistent() {
    let mut names = HashSet::new();
    for def in defs::broker_keys() {
        assert!(names.insert(def.name), "{} defined twice", def.name);
        if let Some(v) = def.default.value() {
            defs::check(def.check, &v).unwrap_or_else(|e| panic!("{} default: {e}", def.name));
            def.parse(&v.render())
                .unwrap_or_else(|e| panic!("{} default does not round-trip: {e}", def.name));
        }
    }
    for def in defs::TOPIC_DEFS {
        // compression.type is, as in Kafka, both a topic key and its own
        // broker synonym.
        let own_synonym = def.synonyms.iter().any(|s| s.key.name == def.name);
        assert!(
            names.insert(def.name) || own_synonym,
            "{} defined twice",
            def.name
        );
        assert!(
            def.synonyms.iter().any(|s| s.key.default.value().is_some()),
            "{} has no default",
            def.name
        );
    }
    let fields: HashSet<_> = defs::TOPIC_DEFS
        .iter()
        .map(|d| d.field)
        .map(|f| format!("{f:?}"))
        .collect();
    assert_eq!(
        fields.len(),
        17,
        "every TopicConfig field has exactly one key"
    );
    for key in defs::ACCEPTED_BROKER_KEYS {
        assert!(
            defs::broker_key(key).is_none(),
            "{key} is both honoured and ignored"
        );
    }
    for key in defs::ACCEPTED_TOPIC_KEYS {
        assert!(
            defs::topic_def(key).is_none(),
            "{key} is both honoured and ignored"
        );
    }
}

#[test]
fn source_codes_match_kafka() {
    assert_eq!(ConfigSource::DynamicTopic as i8, 1);
    assert_eq!(ConfigSource::DynamicBroker as i8, 2);
    assert_eq!(ConfigSource::DynamicDefaultBroker as i8, 3);
    assert_eq!(ConfigSource::StaticBroker as i8, 4);
    assert_eq!(ConfigSource::Default as i8, 5);
}

#[test]
fn shipped_example_file_loads_to_the_defaults() {
    // Relative to this source file so the check also runs when the module is
    // compiled outside the runnel crate.
    let root = Path::new(file!()).ancestors().nth(3).unwrap();
    let path = root.join("config/server.properties");
    let c = BrokerConfig::load(Some(&path), Vec::new(), &[]).unwrap();
    let d = BrokerConfig::load(None, Vec::new(), &[]).unwrap();
    assert_eq!(c.topic_defaults, d.topic_defaults);
    assert_eq!(c.listeners, d.listeners);
    assert_eq!(c.log_dir, d.log_dir);
    assert_eq!(c.num_partitions, d.num_partitions);
    assert_eq!(c.node_id, d.node_id);
    assert_eq!(c.group, d.group);
    assert_eq!(c.txn, d.txn);
}

#[test]
fn txn_config_defaults_and_overrides() {
    let c = BrokerConfig::load(None, Vec::new(), &[]).unwrap();
    assert_eq!(
        c.txn,
        crate::config::TxnConfig {
            state_log_num_partitions: 50,
            state_log_segment_bytes: 104_857_600,
            max_timeout_ms: 900_000,
            id_expiration_ms: 604_800_000,
            abort_timed_out_interval_ms: 10_000,
            remove_expired_interval_ms: 3_600_000,
            partition_verification: true,
        }
    );
    let mut c = c;
    c.set("transaction.max.timeout.ms", "1000").unwrap();
    c.set("transaction.partition.verification.enable", "false")
        .unwrap();
    assert_eq!(c.txn.max_timeout_ms, 1000);
    assert!(!c.txn.partition_verification);
    assert!(c.set("transaction.state.log.num.partitions", "0").is_err());
}

#[test]
fn group_config_defaults() {
    let c = BrokerConfig::load(None, Vec::new(), &[]).unwrap();
    assert_eq!(
        c.group,
        GroupConfig {
            offsets_topic_num_partitions: 50,
            offsets_topic_segment_bytes: 104_857_600,
            offsets_retention_ms: 10_080 * 60_000,
            offsets_retention_check_interval_ms: 600_000,
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX,
            offset_metadata_max_bytes: 4096,
        }
    );
    let described = c.describe(Some(&["group.max.size".to_string()]), false);
    assert_eq!(described[0].value.as_deref(), Some("2147483647"));
    assert_eq!(described[0].source, ConfigSource::Default);
    assert_eq!(described[0].config_type, 3);
}

#[test]
fn group_config_overrides() {
    let file = TempFile::new("offsets.topic.num.partitions=3\ngroup.max.size=10\n");
    let c = BrokerConfig::load(
        Some(&file.0),
        env(&[("KAFKA_OFFSETS_RETENTION_MINUTES", "2")]),
        &flags(&[
            "group.initial.rebalance.delay.ms=0",
            "group.min.session.timeout.ms=100",
            "group.max.session.timeout.ms=200",
            "offsets.retention.check.interval.ms=1000",
            "offsets.topic.segment.bytes=1024",
            "offset.metadata.max.bytes=-1",
            // Still accepted and ignored.
            "offsets.topic.replication.factor=3",
        ]),
    )
    .unwrap();
    assert_eq!(
        c.group,
        GroupConfig {
            offsets_topic_num_partitions: 3,
            offsets_topic_segment_bytes: 1024,
            offsets_retention_ms: 120_000,
            offsets_retention_check_interval_ms: 1000,
            initial_rebalance_delay_ms: 0,
            min_session_timeout_ms: 100,
            max_session_timeout_ms: 200,
            max_size: 10,
            offset_metadata_max_bytes: -1,
        }
    );
    let d = c.describe(Some(&["offsets.topic.num.partitions".to_string()]), true);
    assert_eq!(d[0].value.as_deref(), Some("3"));
    assert_eq!(d[0].source, ConfigSource::StaticBroker);
    assert!(defs::broker_key("offsets.topic.replication.factor").is_none());
    assert!(defs::ACCEPTED_BROKER_KEYS.contains(&"offsets.topic.replication.factor"));
    // The largest retention in minutes does not overflow once in ms.
    let c = load_flags(&["offsets.retention.minutes=2147483647"]).unwrap();
    assert_eq!(c.group.offsets_retention_ms, i64::from(i32::MAX) * 60_000);
}

#[test]
fn group_config_bad_values_name_the_key() {
    let minimums: &[(&str, i64)] = &[
        ("offsets.topic.num.partitions", 1),
        ("offsets.topic.segment.bytes", 1),
        ("offsets.retention.minutes", 1),
        ("offsets.retention.check.interval.ms", 1),
        ("group.initial.rebalance.delay.ms", 0),
        ("group.max.size", 1),
    ];
    for &(key, min) in minimums {
        let below = format!("{key}={}", min - 1);
        let e = expect_err(load_flags(&[&below]));
        assert_eq!(key_of(&e), Some(key), "{below}: {e}");
        assert_eq!(
            e.to_string(),
            format!(
                "invalid value '{}' for {key}: must be at least {min}",
                min - 1
            )
        );
        load_flags(&[&format!("{key}={min}")]).unwrap();
    }
    for case in [
        "group.min.session.timeout.ms=six",
        "group.max.session.timeout.ms=2147483648",
        "offset.metadata.max.bytes=1.5",
        "offsets.retention.minutes=2147483648",
        "offsets.retention.check.interval.ms=",
    ] {
        let (key, value) = case.split_once('=').unwrap();
        let e = expect_err(load_flags(&[case]));
        assert_eq!(key_of(&e), Some(key), "{case}: {e}");
        assert!(e.to_string().contains(&format!("'{value}'")), "{case}: {e}");
    }
}

#[test]
fn default_for_tests_has_no_initial_rebalance_delay() {
    let c = BrokerConfig::default_for_tests(PathBuf::from("/tmp/x"));
    assert_eq!(c.group.initial_rebalance_delay_ms, 0);
    // Supplied like the other programmatic keys, so DescribeConfigs says so.
    let d = c.describe(
        Some(&["group.initial.rebalance.delay.ms".to_string()]),
        true,
    );
    assert_eq!(d[0].value.as_deref(), Some("0"));
    assert_eq!(d[0].source, ConfigSource::StaticBroker);
    assert_eq!(
        d[0].synonyms,
        vec![
            syn(
                "group.initial.rebalance.delay.ms",
                "0",
                ConfigSource::StaticBroker
            ),
            syn(
                "group.initial.rebalance.delay.ms",
                "3000",
                ConfigSource::Default
            ),
        ]
    );
    // The rest keep Kafka's defaults.
    assert_eq!(c.group.offsets_topic_num_partitions, 50);
    // set() re-derives from the supplied keys and keeps the 0.
    let mut c = c;
    c.set("group.max.size", "5").unwrap();
    assert_eq!(
        (c.group.max_size, c.group.initial_rebalance_delay_ms),
        (5, 0)
    );
}

#[test]
fn new_topic_keys_resolve_and_validate() {
    let defaults = BrokerConfig::default_for_tests(PathBuf::from("/tmp/x")).topic_defaults;
    // Kafka 4 defaults.
    assert_eq!(defaults.message_timestamp_before_max_ms, i64::MAX);
    assert_eq!(defaults.message_timestamp_after_max_ms, 3_600_000);
    assert_eq!(defaults.min_compaction_lag_ms, 0);
    assert_eq!(defaults.max_compaction_lag_ms, i64::MAX);
    assert_eq!(defaults.delete_retention_ms, 86_400_000);
    assert_eq!(defaults.min_cleanable_dirty_ratio, 0.5);
    assert_eq!(defaults.compression_type, "producer");
    let t = TopicConfig::resolve(
        &defaults,
        &map(&[
            ("message.timestamp.before.max.ms", "1000"),
            ("message.timestamp.after.max.ms", "0"),
            ("min.compaction.lag.ms", "5"),
            ("max.compaction.lag.ms", "6"),
            ("delete.retention.ms", "7"),
            ("min.cleanable.dirty.ratio", " .25 "),
            ("compression.type", "lz4"),
            ("compression.zstd.level", "9"),
        ]),
    )
    .unwrap();
    assert_eq!(
        (
            t.message_timestamp_before_max_ms,
            t.message_timestamp_after_max_ms,
            t.min_compaction_lag_ms,
            t.max_compaction_lag_ms,
            t.delete_retention_ms,
            t.min_cleanable_dirty_ratio,
            t.compression_type.as_str()
        ),
        (1000, 0, 5, 6, 7, 0.25, "lz4")
    );
    for (key, value) in [
        ("message.timestamp.before.max.ms", "-1"),
        ("message.timestamp.after.max.ms", "x"),
        ("min.compaction.lag.ms", "-1"),
        ("max.compaction.lag.ms", "0"),
        ("delete.retention.ms", "-5"),
        ("min.cleanable.dirty.ratio", "1.01"),
        ("min.cleanable.dirty.ratio", "-0.1"),
        ("min.cleanable.dirty.ratio", "NaN"),
        ("min.cleanable.dirty.ratio", "half"),
        ("compression.type", "brotli"),
        ("compression.type", "GZIP"),
    ] {
        let e = TopicConfig::resolve(&defaults, &map(&[(key, value)])).unwrap_err();
        assert!(
            matches!(e, ConfigError::InvalidValue { .. }),
            "{key}={value}: {e}"
        );
    }
    let e = TopicConfig::resolve(
        &defaults,
        &map(&[
            ("min.compaction.lag.ms", "10"),
            ("max.compaction.lag.ms", "5"),
        ]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("conflict"), "{e}");
    // Broker synonyms feed the defaults.
    let c = load_flags(&[
        "log.cleaner.min.cleanable.ratio=0.9",
        "compression.type=gzip",
        "log.message.timestamp.after.max.ms=10",
        "log.cleaner.delete.retention.ms=11",
    ])
    .unwrap();
    let d = &c.topic_defaults;
    assert_eq!(d.min_cleanable_dirty_ratio, 0.9);
    assert_eq!(d.compression_type, "gzip");
    assert_eq!(d.message_timestamp_after_max_ms, 10);
    assert_eq!(d.delete_retention_ms, 11);
    assert!(load_flags(&["log.cleaner.min.cleanable.ratio=2"]).is_err());
}

#[test]
fn doubles_render_as_java_does() {
    for (f, want) in [
        (0.5, "0.5"),
        (1.0, "1.0"),
        (0.0, "0.0"),
        (0.25, "0.25"),
        (0.001, "0.001"),
        (0.0001, "1.0E-4"),
        (1.5e-5, "1.5E-5"),
        (12345678.0, "1.2345678E7"),
        (100.0, "100.0"),
    ] {
        assert_eq!(defs::java_double(f), want, "{f}");
    }
    let c = BrokerConfig::load(None, Vec::new(), &[]).unwrap();
    let d = c.describe(
        Some(&["log.cleaner.min.cleanable.ratio".to_string()]),
        false,
    );
    assert_eq!(d[0].value.as_deref(), Some("0.5"));
    assert_eq!(d[0].config_type, 6);
}

#[test]
fn key_kinds_for_alter_configs() {
    assert_eq!(
        topic_key_kind("cleanup.policy"),
        KeyKind::Alterable {
            list: true,
            default: Some("delete".into())
        }
    );
    assert_eq!(
        topic_key_kind("retention.ms"),
        KeyKind::Alterable {
            list: false,
            default: Some("604800000".into())
        }
    );
    assert!(matches!(
        topic_key_kind("leader.replication.throttled.replicas"),
        KeyKind::Alterable { list: true, .. }
    ));
    assert!(matches!(
        topic_key_kind("preallocate"),
        KeyKind::Alterable { list: false, .. }
    ));
    assert_eq!(topic_key_kind("log.retention.ms"), KeyKind::Unknown);
    assert_eq!(topic_key_kind("nope"), KeyKind::Unknown);

    assert!(matches!(
        broker_key_kind("log.cleanup.policy"),
        KeyKind::Alterable { list: true, .. }
    ));
    for key in [
        "log.retention.ms",
        "log.roll.ms",
        "message.max.bytes",
        "compression.type",
        "log.cleaner.min.cleanable.ratio",
        "log.message.timestamp.after.max.ms",
    ] {
        assert!(
            matches!(broker_key_kind(key), KeyKind::Alterable { list: false, .. }),
            "{key}"
        );
    }
    for key in [
        "log.retention.hours",
        "log.roll.hours",
        "log.flush.scheduler.interval.ms",
        "num.partitions",
        "listeners",
        "broker.id",
        "process.roles",
    ] {
        assert_eq!(broker_key_kind(key), KeyKind::ReadOnly, "{key}");
    }
    assert_eq!(broker_key_kind("retention.ms"), KeyKind::Unknown);
}

#[test]
fn dynamic_broker_configs_layer_over_static_ones() {
    let c = load_flags(&["log.retention.hours=24", "log.segment.bytes=5000"]).unwrap();
    let mut dynamic = DynamicBrokerConfigs::default();
    assert_eq!(c.topic_defaults_with(&dynamic).unwrap(), c.topic_defaults);
    dynamic
        .cluster
        .insert("log.retention.ms".into(), "60000".into());
    dynamic
        .cluster
        .insert("log.segment.bytes".into(), "7000".into());
    dynamic
        .per_broker
        .insert("log.segment.bytes".into(), "9000".into());
    let d = c.topic_defaults_with(&dynamic).unwrap();
    assert_eq!((d.retention_ms, d.segment_bytes), (60_000, 9000));

    let described = c.describe_dynamic(Some(&["log.segment.bytes".to_string()]), true, &dynamic);
    assert_eq!(described[0].value.as_deref(), Some("9000"));
    assert_eq!(described[0].source, ConfigSource::DynamicBroker);
    assert!(!described[0].read_only);
    assert_eq!(
        described[0].synonyms,
        vec![
            syn("log.segment.bytes", "9000", ConfigSource::DynamicBroker),
            syn(
                "log.segment.bytes",
                "7000",
                ConfigSource::DynamicDefaultBroker
            ),
            syn("log.segment.bytes", "5000", ConfigSource::StaticBroker),
            syn("log.segment.bytes", "1073741824", ConfigSource::Default),
        ]
    );
    let cluster = c.describe_cluster_defaults(None, true, &dynamic);
    let names: Vec<&str> = cluster.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["log.retention.ms", "log.segment.bytes"]);
    assert_eq!(cluster[1].value.as_deref(), Some("7000"));
    assert_eq!(cluster[1].source, ConfigSource::DynamicDefaultBroker);
    assert!(cluster[1]
        .synonyms
        .iter()
        .all(|s| s.source != ConfigSource::DynamicBroker));

    let topic = describe_topic(&c, &dynamic, &d, &IndexMap::new(), None, true);
    let retention = find(&topic, "retention.ms");
    assert_eq!(retention.value.as_deref(), Some("60000"));
    assert_eq!(retention.source, ConfigSource::DynamicDefaultBroker);
    assert_eq!(
        retention.synonyms,
        vec![
            syn(
                "log.retention.ms",
                "60000",
                ConfigSource::DynamicDefaultBroker
            ),
            syn("log.retention.hours", "24", ConfigSource::StaticBroker),
            syn("log.retention.hours", "168", ConfigSource::Default),
        ]
    );

    dynamic
        .per_broker
        .insert("log.retention.ms".into(), "0".into());
    let e = c.topic_defaults_with(&dynamic).unwrap_err();
    assert_eq!(key_of(&e), Some("log.retention.ms"));
}

#[test]
fn shipped_example_file_documents_every_key() {
    let root = Path::new(file!()).ancestors().nth(3).unwrap();
    let text = std::fs::read_to_string(root.join("config/server.properties")).unwrap();
    for def in defs::broker_keys() {
        assert!(
            text.contains(&format!("#{}=", def.name)),
            "config/server.properties lacks #{}=",
            def.name
        );
    }
    for def in defs::TOPIC_DEFS {
        assert!(
            text.contains(def.name),
            "config/server.properties does not name topic key {}",
            def.name
        );
    }
}
