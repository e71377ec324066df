//! Broker configuration, loaded the way Apache Kafka loads it: Kafka's property
//! names and defaults, from a `.properties` file, `KAFKA_*` environment
//! variables mapped as the official `apache/kafka` image maps them, and
//! `--override key=value` flags (flags > env > file > defaults). Also answers
//! DescribeConfigs for the broker and for topics.
//!
//! Every key we honour is defined once, in `defs.rs`.

mod defs;
pub(crate) mod listeners;
mod sources;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use defs::{KeyDef, TopicDef, Value};
pub use listeners::{bind_addr, log_skipped_listeners, Endpoint};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

impl TimestampType {
    /// The spelling Kafka uses in `message.timestamp.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampType::CreateTime => "CreateTime",
            TimestampType::LogAppendTime => "LogAppendTime",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "CreateTime" => Some(TimestampType::CreateTime),
            "LogAppendTime" => Some(TimestampType::LogAppendTime),
            _ => None,
        }
    }
}

impl fmt::Display for TimestampType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kafka's DescribeConfigs `config_source` codes (only the ones we produce).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigSource {
    DynamicTopic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
}

/// Broker configs changed at run time (AlterConfigs on a BROKER resource):
/// the ones set for this node, and the cluster-wide defaults (resource name
/// ""). Both layer over the static configuration, this node's first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DynamicBrokerConfigs {
    pub per_broker: IndexMap<String, String>,
    pub cluster: IndexMap<String, String>,
}

/// What AlterConfigs may do with a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// Not a key of this resource type.
    Unknown,
    /// A broker key that only the configuration file can set.
    ReadOnly,
    /// Alterable; `list` keys also take APPEND and SUBTRACT, starting from
    /// `default` when unset.
    Alterable { list: bool, default: Option<String> },
}

/// AlterConfigs on a TOPIC: every topic key we honour, and the recognised
/// but unused ones (stored, so they describe and survive as Kafka's do).
pub fn topic_key_kind(name: &str) -> KeyKind {
    if let Some(def) = defs::topic_def(name) {
        return KeyKind::Alterable {
            list: def.ty == defs::ConfigType::List,
            // The topic key's own default: the first broker default in its
            // unit (168 hours is 604800000 ms).
            default: def
                .synonyms
                .iter()
                .find_map(|s| s.key.default.value().map(|v| (s.scale, v)))
                .and_then(|(factor, v)| scale(def, factor, v).ok())
                .map(|v| v.render()),
        };
    }
    if defs::ACCEPTED_TOPIC_KEYS.contains(&name) {
        return KeyKind::Alterable {
            list: name.ends_with(".throttled.replicas"),
            default: None,
        };
    }
    KeyKind::Unknown
}

/// AlterConfigs on a BROKER: the topic-default keys Kafka reconfigures at
/// run time (the first broker synonym of each topic key, Kafka's
/// `DynamicLogConfig`); every other key we know is read-only.
pub fn broker_key_kind(name: &str) -> KeyKind {
    if let Some(def) = defs::TOPIC_DEFS
        .iter()
        .find(|t| t.synonyms.first().is_some_and(|s| s.key.name == name))
    {
        let key = &def.synonyms[0].key;
        return KeyKind::Alterable {
            list: key.ty == defs::ConfigType::List,
            default: key.default.value().map(|v| v.render()),
        };
    }
    if defs::accepted_dynamic_broker_key(name) {
        return KeyKind::Alterable {
            list: false,
            default: None,
        };
    }
    if defs::broker_key(name).is_some()
        || name == BROKER_ID.name
        || defs::ACCEPTED_BROKER_KEYS.contains(&name)
    {
        return KeyKind::ReadOnly;
    }
    KeyKind::Unknown
}

/// Effective per-topic settings: broker defaults with the topic's overrides
/// layered on top.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicConfig {
    pub segment_bytes: i32,
    pub segment_ms: i64,
    /// -1 means unlimited.
    pub retention_ms: i64,
    /// -1 means unlimited.
    pub retention_bytes: i64,
    pub index_interval_bytes: i32,
    pub max_message_bytes: i32,
    pub message_timestamp_type: TimestampType,
    /// Kafka's list form: "delete", "compact", or both comma-separated.
    pub cleanup_policy: String,
    pub flush_messages: i64,
    pub flush_ms: i64,
    /// KIP-937: how far a CreateTime timestamp may lie before / after the
    /// broker's clock (ms); a record outside is INVALID_TIMESTAMP.
    pub message_timestamp_before_max_ms: i64,
    pub message_timestamp_after_max_ms: i64,
    /// Compaction (used when `cleanup_policy` contains "compact").
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
    pub delete_retention_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
    /// "producer" (keep the producer's codec) or a codec the log
    /// recompresses batches to on append: uncompressed, gzip, snappy, lz4, zstd.
    pub compression_type: String,
}

impl TopicConfig {
    pub fn compacted(&self) -> bool {
        self.cleanup_policy
            .split(',')
            .any(|p| p.trim() == "compact")
    }

    pub fn deletes(&self) -> bool {
        self.cleanup_policy.split(',').any(|p| p.trim() == "delete")
    }
}

impl TopicConfig {
    /// Validates per-topic overrides (topic key names only) and layers them on
    /// the broker defaults.
    pub fn resolve(
        defaults: &TopicConfig,
        overrides: &IndexMap<String, String>,
    ) -> Result<TopicConfig, ConfigError> {
        let mut config = defaults.clone();
        for (key, raw) in overrides {
            let Some(def) = defs::topic_def(key) else {
                if defs::ACCEPTED_TOPIC_KEYS.contains(&key.as_str()) {
                    tracing::info!(key = %key, value = %raw, "topic config is recognised but not used by Runnel yet");
                    continue;
                }
                return Err(ConfigError::UnknownTopicConfig {
                    key: key.clone(),
                    value: raw.clone(),
                });
            };
            def.parse(raw)
                .and_then(|value| config.store(def.field, &value))
                .map_err(|reason| ConfigError::invalid(key, raw, reason))?;
        }
        // Kafka's LogConfig.validateValues cross-check.
        if config.min_compaction_lag_ms > config.max_compaction_lag_ms {
            return Err(ConfigError::invalid(
                "min.compaction.lag.ms",
                &config.min_compaction_lag_ms.to_string(),
                format!(
                    "conflict topic config setting min.compaction.lag.ms ({}) > max.compaction.lag.ms ({})",
                    config.min_compaction_lag_ms, config.max_compaction_lag_ms
                ),
            ));
        }
        Ok(config)
    }

    /// [`TopicConfig::resolve`] for overrides already in the metadata log
    /// (replay, and re-deriving after a dynamic broker default changed): a
    /// value that no longer validates is skipped with a warning and the
    /// compaction-lag cross-check is not made, so one bad key never costs the
    /// topic its other overrides (`cleanup.policy=compact` above all). Kafka
    /// likewise builds a stored topic config without validating it again.
    pub fn resolve_stored(
        topic: &str,
        defaults: &TopicConfig,
        overrides: &IndexMap<String, String>,
    ) -> TopicConfig {
        let mut config = defaults.clone();
        for (key, raw) in overrides {
            let Some(def) = defs::topic_def(key) else {
                continue;
            };
            if let Err(reason) = def
                .parse(raw)
                .and_then(|value| config.store(def.field, &value))
            {
                tracing::warn!(topic, key = %key, value = %raw, "stored topic config no longer valid ({reason}); using the default for this key");
            }
        }
        config
    }

    /// Starting point that `derive_topic_defaults` overwrites field by field.
    pub(crate) fn blank() -> TopicConfig {
        TopicConfig {
            segment_bytes: 0,
            segment_ms: 0,
            retention_ms: 0,
            retention_bytes: 0,
            index_interval_bytes: 0,
            max_message_bytes: 0,
            message_timestamp_type: TimestampType::CreateTime,
            cleanup_policy: String::new(),
            flush_messages: 0,
            flush_ms: 0,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: 3_600_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 86_400_000,
            min_cleanable_dirty_ratio: 0.5,
            compression_type: "producer".to_owned(),
        }
    }
}

/// One entry of a DescribeConfigs result.
#[derive(Clone, Debug, PartialEq)]
pub struct DescribedConfig {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub is_sensitive: bool,
    /// Kafka ConfigType codes: 1 BOOLEAN, 2 STRING, 3 INT, 4 SHORT, 5 LONG,
    /// 6 DOUBLE, 7 LIST.
    pub config_type: i8,
    pub documentation: Option<String>,
    pub synonyms: Vec<Synonym>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Synonym {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
}

#[derive(thiserror::Error, Debug)]
pub enum ConfigError {
    #[error("invalid value '{value}' for {key}: {reason}")]
    InvalidValue {
        key: String,
        value: String,
        reason: String,
    },
    #[error("unsupported value '{value}' for {key}: {reason}")]
    Unsupported {
        key: String,
        value: String,
        reason: String,
    },
    /// Kafka answers this with INVALID_CONFIG.
    #[error("unknown topic config {key} (value '{value}')")]
    UnknownTopicConfig { key: String, value: String },
    #[error("invalid --override '{arg}': expected key=value")]
    MalformedOverride { arg: String },
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    fn invalid(key: &str, value: &str, reason: impl Into<String>) -> Self {
        ConfigError::InvalidValue {
            key: key.to_owned(),
            value: value.trim().to_owned(),
            reason: reason.into(),
        }
    }
}

/// Where a supplied value came from; kept for log messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    File,
    Environment,
    Override,
    Programmatic,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::File => "config file",
            Origin::Environment => "environment",
            Origin::Override => "--override",
            Origin::Programmatic => "set()",
        })
    }
}

#[derive(Clone, Debug)]
struct Supplied {
    value: String,
    origin: Origin,
}

#[derive(Clone)]
struct SuppliedMap(IndexMap<String, Supplied>);

/// Hides values that look like credentials, since a config is the kind of
/// thing that gets logged with `{:?}` at startup.
impl fmt::Debug for SuppliedMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |k: &str| ["password", "secret", "jaas"].iter().any(|w| k.contains(w));
        f.debug_map()
            .entries(self.0.iter().map(|(k, s)| {
                let value = if secret(k) {
                    "[hidden]"
                } else {
                    s.value.as_str()
                };
                (k, value)
            }))
            .finish()
    }
}

/// Kafka's alias for node.id; kept out of the table so it is not described
/// separately from node.id.
static BROKER_ID: KeyDef = KeyDef {
    name: "broker.id",
    ty: defs::ConfigType::Int,
    default: defs::DefaultValue::None,
    check: defs::Check::AtLeast(0),
    doc: "Alias of node.id.",
};

/// Group coordinator settings (Kafka's `GroupCoordinatorConfig` keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupConfig {
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.segment.bytes`.
    pub offsets_topic_segment_bytes: i32,
    /// `offsets.retention.minutes`, in ms.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: i64,
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay_ms: i32,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout_ms: i32,
    /// `group.max.size`.
    pub max_size: i32,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: i32,
}

/// Transaction coordinator settings (Kafka's `TransactionStateManagerConfig`
/// and `TransactionLogConfig` keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.state.log.num.partitions`.
    pub state_log_num_partitions: i32,
    /// `transaction.state.log.segment.bytes`.
    pub state_log_segment_bytes: i32,
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`.
    pub id_expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub abort_timed_out_interval_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub remove_expired_interval_ms: i64,
    /// `transaction.partition.verification.enable`.
    pub partition_verification: bool,
}

#[derive(Clone, Debug)]
pub struct BrokerConfig {
    pub node_id: i32,
    /// Listeners to bind, controller listeners already removed.
    pub listeners: Vec<Endpoint>,
    /// Same length and order as `listeners`: how each one is published to
    /// clients, with wildcard hosts replaced by the machine's hostname.
    pub advertised_listeners: Vec<Endpoint>,
    pub log_dir: PathBuf,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub log_retention_check_interval_ms: i64,
    /// `log.cleaner.*`.
    pub log_cleaner: crate::log::cleaner::CleanerConfig,
    pub message_max_bytes: i32,
    pub socket_request_max_bytes: i32,
    pub max_connections: i32,
    /// `runnel.metrics.listener`; `None` when disabled.
    pub metrics_listener: Option<crate::metrics::MetricsListener>,
    /// `runnel.slow.request.ms`; negative disables the slow-request log.
    pub slow_request_ms: i64,
    pub topic_defaults: TopicConfig,
    pub group: GroupConfig,
    pub txn: TxnConfig,
    pub cluster_id_override: Option<String>,
    /// Everything the sources supplied, known or not, so `set` can re-derive
    /// the whole config from scratch.
    supplied: SuppliedMap,
    /// Honoured keys that were set explicitly, parsed; this is what
    /// DescribeConfigs reports as STATIC_BROKER_CONFIG.
    explicit: IndexMap<&'static str, Value>,
}

impl BrokerConfig {
    /// Loads from an optional properties file, the environment and
    /// `--override key=value` strings, later sources winning.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[String],
    ) -> Result<BrokerConfig, ConfigError> {
        let mut supplied = IndexMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                path: path.to_owned(),
                source,
            })?;
            for (key, value) in sources::parse_properties(&text) {
                supply(&mut supplied, key, value, Origin::File);
            }
        }
        let (mut cluster_id, mut kafka_cluster_id) = (None, None);
        for (name, value) in env {
            match sources::classify_env(&name) {
                sources::EnvVar::Config(key) => {
                    supply(&mut supplied, key, value, Origin::Environment)
                }
                // The official image reads CLUSTER_ID; KAFKA_CLUSTER_ID is the
                // Confluent images' spelling, so the former wins.
                sources::EnvVar::ClusterId if name == "CLUSTER_ID" => cluster_id = Some(value),
                sources::EnvVar::ClusterId => kafka_cluster_id = Some(value),
                sources::EnvVar::Ignored => sources::log_ignored_env(&name),
            }
        }
        for arg in overrides {
            let (key, value) = sources::parse_override(arg)?;
            supply(&mut supplied, key, value, Origin::Override);
        }
        for (key, s) in &supplied {
            log_unused(key, s);
        }
        let cluster_id_override = cluster_id
            .or(kafka_cluster_id)
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty());
        Self::build(supplied, cluster_id_override)
    }

    /// Defaults with a loopback listener on an ephemeral port, the given log
    /// directory, and no initial rebalance delay (as Kafka's shipped
    /// server.properties sets it for development).
    pub fn default_for_tests(log_dir: PathBuf) -> BrokerConfig {
        let mut supplied = IndexMap::new();
        for (key, value) in [
            ("listeners", "PLAINTEXT://127.0.0.1:0".to_owned()),
            ("log.dirs", log_dir.to_string_lossy().into_owned()),
            ("group.initial.rebalance.delay.ms", "0".to_owned()),
            // Parallel test brokers: tests that scrape set their own port 0.
            ("runnel.metrics.listener", String::new()),
        ] {
            supply(&mut supplied, key.to_owned(), value, Origin::Programmatic);
        }
        let mut config = Self::build(supplied, None)
            .unwrap_or_else(|e| panic!("default_for_tests({}): {e}", log_dir.display()));
        // The string form above is lossy for non-UTF-8 paths; keep the original.
        config.log_dir = log_dir;
        config
    }

    /// Applies one broker property as if it had been supplied last, and
    /// re-derives everything (including `topic_defaults`). On error the
    /// config is left unchanged. Direct edits to public fields are discarded.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let key = key.trim();
        let mut supplied = self.supplied.0.clone();
        supply(
            &mut supplied,
            key.to_owned(),
            value.to_owned(),
            Origin::Programmatic,
        );
        let mut rebuilt = Self::build(supplied, self.cluster_id_override.clone())?;
        if key != "log.dirs" && key != "log.dir" {
            rebuilt.log_dir = std::mem::take(&mut self.log_dir);
        }
        if let Some(s) = rebuilt.supplied.0.get(key) {
            log_unused(key, s);
        }
        *self = rebuilt;
        Ok(())
    }

    /// The topic defaults with dynamic broker configs layered over the static
    /// ones (this node's over the cluster-wide ones). Fails, naming the key,
    /// if a dynamic value does not validate.
    pub fn topic_defaults_with(
        &self,
        dynamic: &DynamicBrokerConfigs,
    ) -> Result<TopicConfig, ConfigError> {
        let mut merged = self.explicit.clone();
        for (key, raw) in dynamic.cluster.iter().chain(&dynamic.per_broker) {
            if defs::accepted_dynamic_broker_key(key) {
                continue;
            }
            let Some(def) = defs::broker_key(key) else {
                return Err(ConfigError::invalid(key, raw, "not a broker config"));
            };
            let value = def
                .parse(raw)
                .map_err(|reason| ConfigError::invalid(key, raw, reason))?;
            merged.insert(def.name, value);
        }
        Effective { explicit: &merged }.topic_defaults()
    }

    /// [`BrokerConfig::topic_defaults_with`] for stored dynamic configs at
    /// start-up: a value that no longer validates (after an upgrade, say) is
    /// left out on its own, as Kafka drops just the invalid dynamic keys,
    /// instead of costing every other one. Keys are tried in layering order
    /// and each is kept if the set so far still validates. Returns the
    /// defaults and the left-out (layer, key, reason); the layer is `""` for
    /// cluster-wide, `"broker"` for this node's own.
    pub fn topic_defaults_skipping_invalid(
        &self,
        dynamic: &DynamicBrokerConfigs,
    ) -> (TopicConfig, Vec<(&'static str, String, ConfigError)>) {
        if let Ok(defaults) = self.topic_defaults_with(dynamic) {
            return (defaults, Vec::new());
        }
        let mut kept = DynamicBrokerConfigs::default();
        let mut skipped = Vec::new();
        let layers = [("", &dynamic.cluster), ("broker", &dynamic.per_broker)];
        for (layer, entries) in layers {
            for (key, value) in entries {
                let mut trial = kept.clone();
                let target = if layer.is_empty() {
                    &mut trial.cluster
                } else {
                    &mut trial.per_broker
                };
                target.insert(key.clone(), value.clone());
                match self.topic_defaults_with(&trial) {
                    Ok(_) => kept = trial,
                    Err(e) => skipped.push((layer, key.clone(), e)),
                }
            }
        }
        let defaults = self
            .topic_defaults_with(&kept)
            .unwrap_or_else(|_| self.topic_defaults.clone());
        (defaults, skipped)
    }

    /// DescribeConfigs for this broker: every broker key we honour, sorted by
    /// name. `keys` of `None` or empty means all of them.
    pub fn describe(
        &self,
        keys: Option<&[String]>,
        include_synonyms: bool,
    ) -> Vec<DescribedConfig> {
        self.describe_dynamic(keys, include_synonyms, &DynamicBrokerConfigs::default())
    }

    /// DescribeConfigs for the cluster-wide default resource (name ""): only
    /// the keys set there, as Kafka answers; this node's own dynamic values
    /// are left out of the synonyms.
    pub fn describe_cluster_defaults(
        &self,
        keys: Option<&[String]>,
        include_synonyms: bool,
        dynamic: &DynamicBrokerConfigs,
    ) -> Vec<DescribedConfig> {
        let cluster_only = DynamicBrokerConfigs {
            per_broker: IndexMap::new(),
            cluster: dynamic.cluster.clone(),
        };
        self.describe_dynamic(keys, include_synonyms, &cluster_only)
            .into_iter()
            .filter(|c| dynamic.cluster.contains_key(&c.name))
            .collect()
    }

    /// DescribeConfigs for this broker with its dynamic configs: the value and
    /// source are those of the highest-precedence layer that sets the key.
    pub fn describe_dynamic(
        &self,
        keys: Option<&[String]>,
        include_synonyms: bool,
        dynamic: &DynamicBrokerConfigs,
    ) -> Vec<DescribedConfig> {
        let mut wanted: Vec<&KeyDef> = defs::broker_keys()
            .filter(|d| is_wanted(keys, d.name))
            .collect();
        wanted.sort_by_key(|d| d.name);
        wanted
            .into_iter()
            .map(|def| {
                let group = defs::synonym_group(def.name);
                let mut synonyms = self.broker_synonyms(&group, dynamic);
                let value = synonyms
                    .iter()
                    .find(|s| s.name == def.name)
                    .and_then(|s| s.value.clone());
                // Kafka drops the higher-precedence synonyms when describing a
                // lower one: log.retention.hours does not list log.retention.ms.
                let first = synonyms
                    .iter()
                    .position(|s| s.name == def.name)
                    .unwrap_or(synonyms.len());
                synonyms.drain(..first);
                DescribedConfig {
                    name: def.name.to_owned(),
                    value,
                    source: synonyms.first().map_or(ConfigSource::Default, |s| s.source),
                    read_only: broker_key_kind(def.name) == KeyKind::ReadOnly,
                    is_sensitive: false,
                    config_type: def.ty.code(),
                    documentation: Some(def.doc.to_owned()),
                    synonyms: if include_synonyms {
                        synonyms
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect()
    }

    /// Kafka's synonym order: the group's keys set dynamically for this node,
    /// then those set as cluster defaults, then the statically set ones, then
    /// the defaults. A stored dynamic value is shown as parsed (Kafka's form).
    fn broker_synonyms(
        &self,
        group: &[&'static str],
        dynamic: &DynamicBrokerConfigs,
    ) -> Vec<Synonym> {
        let layer = |map: &IndexMap<String, String>, source: ConfigSource| {
            group
                .iter()
                .filter_map(|name| {
                    let raw = map.get(*name)?;
                    let value = defs::broker_key(name)
                        .and_then(|d| d.parse(raw).ok())
                        .map_or_else(|| raw.clone(), |v| v.render());
                    Some(Synonym {
                        name: (*name).to_owned(),
                        value: Some(value),
                        source,
                    })
                })
                .collect::<Vec<_>>()
        };
        let mut out = layer(&dynamic.per_broker, ConfigSource::DynamicBroker);
        out.extend(layer(&dynamic.cluster, ConfigSource::DynamicDefaultBroker));
        let set = group.iter().filter_map(|name| {
            self.explicit.get(name).map(|v| Synonym {
                name: (*name).to_owned(),
                value: Some(v.render()),
                source: ConfigSource::StaticBroker,
            })
        });
        let defaults = group.iter().filter_map(|name| {
            defs::broker_key(name)
                .and_then(|d| d.default.value())
                .map(|v| Synonym {
                    name: (*name).to_owned(),
                    value: Some(v.render()),
                    source: ConfigSource::Default,
                })
        });
        out.extend(set.chain(defaults));
        out
    }

    fn build(
        supplied: IndexMap<String, Supplied>,
        cluster_id_override: Option<String>,
    ) -> Result<BrokerConfig, ConfigError> {
        let mut explicit: IndexMap<&'static str, Value> = IndexMap::new();
        for (key, s) in &supplied {
            if let Some(def) = defs::broker_key(key) {
                let value = def
                    .parse(&s.value)
                    .map_err(|reason| ConfigError::invalid(key, &s.value, reason))?;
                explicit.insert(def.name, value);
            }
        }
        if let Some(s) = supplied.get(BROKER_ID.name) {
            let broker_id = BROKER_ID
                .parse(&s.value)
                .map_err(|reason| ConfigError::invalid(BROKER_ID.name, &s.value, reason))?;
            match explicit.get("node.id") {
                None => {
                    explicit.insert("node.id", broker_id);
                }
                Some(node_id) if *node_id != broker_id => {
                    return Err(ConfigError::invalid(
                        BROKER_ID.name,
                        &s.value,
                        format!(
                            "must equal node.id ({}) when both are set",
                            node_id.render()
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        let eff = Effective {
            explicit: &explicit,
        };

        let (listeners, advertised_listeners) = listeners::resolve(
            &listeners::ListenerSettings {
                listeners: &eff.text("listeners").unwrap_or_default(),
                advertised: eff.text("advertised.listeners").as_deref(),
                protocol_map: &eff
                    .text("listener.security.protocol.map")
                    .unwrap_or_default(),
                controller_names: eff.text("controller.listener.names").as_deref(),
            },
            hostname,
        )?;

        Ok(BrokerConfig {
            node_id: eff.int("node.id")?,
            listeners,
            advertised_listeners,
            log_dir: eff.log_dir()?,
            num_partitions: eff.int("num.partitions")?,
            default_replication_factor: {
                let n = eff.num("default.replication.factor");
                i16::try_from(n).map_err(|_| {
                    ConfigError::invalid(
                        "default.replication.factor",
                        &n.to_string(),
                        "out of range",
                    )
                })?
            },
            auto_create_topics_enable: eff
                .get("auto.create.topics.enable")
                .and_then(|v| v.bool())
                .unwrap_or_default(),
            log_retention_check_interval_ms: eff.num("log.retention.check.interval.ms"),
            log_cleaner: crate::log::cleaner::CleanerConfig {
                enable: eff
                    .get("log.cleaner.enable")
                    .and_then(|v| v.bool())
                    .unwrap_or(true),
                backoff_ms: eff.num("log.cleaner.backoff.ms"),
                dedupe_buffer_size: eff.num("log.cleaner.dedupe.buffer.size"),
                io_buffer_size: eff.num("log.cleaner.io.buffer.size"),
                threads: eff.int("log.cleaner.threads")?,
            },
            message_max_bytes: eff.int("message.max.bytes")?,
            socket_request_max_bytes: eff.int("socket.request.max.bytes")?,
            max_connections: eff.int("max.connections")?,
            metrics_listener: {
                let key = crate::metrics::LISTENER_KEY;
                let raw = eff.text(key).unwrap_or_default();
                crate::metrics::MetricsListener::parse(&raw, explicit.contains_key(key))
                    .map_err(|reason| ConfigError::invalid(key, &raw, reason))?
            },
            slow_request_ms: eff.num("runnel.slow.request.ms"),
            topic_defaults: eff.topic_defaults()?,
            group: GroupConfig {
                offsets_topic_num_partitions: eff.int("offsets.topic.num.partitions")?,
                offsets_topic_segment_bytes: eff.int("offsets.topic.segment.bytes")?,
                // An INT of minutes; cannot overflow once widened.
                offsets_retention_ms: eff.num("offsets.retention.minutes") * 60_000,
                offsets_retention_check_interval_ms: eff.num("offsets.retention.check.interval.ms"),
                initial_rebalance_delay_ms: eff.int("group.initial.rebalance.delay.ms")?,
                min_session_timeout_ms: eff.int("group.min.session.timeout.ms")?,
                max_session_timeout_ms: eff.int("group.max.session.timeout.ms")?,
                max_size: eff.int("group.max.size")?,
                offset_metadata_max_bytes: eff.int("offset.metadata.max.bytes")?,
            },
            txn: TxnConfig {
                state_log_num_partitions: eff.int("transaction.state.log.num.partitions")?,
                state_log_segment_bytes: eff.int("transaction.state.log.segment.bytes")?,
                max_timeout_ms: eff.int("transaction.max.timeout.ms")?,
                id_expiration_ms: eff.num("transactional.id.expiration.ms"),
                abort_timed_out_interval_ms: eff
                    .num("transaction.abort.timed.out.transaction.cleanup.interval.ms"),
                remove_expired_interval_ms: eff
                    .num("transaction.remove.expired.transaction.cleanup.interval.ms"),
                partition_verification: eff
                    .get("transaction.partition.verification.enable")
                    .and_then(|v| v.bool())
                    .unwrap_or(true),
            },
            cluster_id_override,
            explicit,
            supplied: SuppliedMap(supplied),
        })
    }
}

/// Explicit values over table defaults.
struct Effective<'a> {
    explicit: &'a IndexMap<&'static str, Value>,
}

impl Effective<'_> {
    fn get(&self, name: &str) -> Option<Value> {
        let value = self
            .explicit
            .get(name)
            .cloned()
            .or_else(|| defs::broker_key(name).and_then(|d| d.default.value()));
        debug_assert!(
            defs::broker_key(name).is_some(),
            "{name} is missing from the config table"
        );
        value
    }

    fn text(&self, name: &str) -> Option<String> {
        self.get(name).and_then(|v| v.text().map(str::to_owned))
    }

    fn num(&self, name: &str) -> i64 {
        self.get(name).and_then(|v| v.num()).unwrap_or_default()
    }

    fn int(&self, name: &str) -> Result<i32, ConfigError> {
        let n = self.num(name);
        i32::try_from(n).map_err(|_| ConfigError::invalid(name, &n.to_string(), "out of range"))
    }

    fn log_dir(&self) -> Result<PathBuf, ConfigError> {
        let (key, dirs) = match self.text("log.dirs") {
            Some(dirs) => ("log.dirs", dirs),
            None => ("log.dir", self.text("log.dir").unwrap_or_default()),
        };
        let entries: Vec<&str> = dirs
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .collect();
        match entries[..] {
            [dir] => Ok(PathBuf::from(dir)),
            [] => Err(ConfigError::invalid(key, &dirs, "no directory given")),
            _ => Err(ConfigError::Unsupported {
                key: key.to_owned(),
                value: dirs.clone(),
                reason: "Runnel supports exactly one log directory".to_owned(),
            }),
        }
    }

    /// Each topic key takes the first of its broker synonyms that is set, or
    /// else the first that has a default, converted to the topic's unit.
    fn topic_defaults(&self) -> Result<TopicConfig, ConfigError> {
        let mut config = TopicConfig::blank();
        for def in defs::TOPIC_DEFS {
            let Some((syn, value)) = def
                .synonyms
                .iter()
                .find_map(|s| self.get(s.key.name).map(|v| (s, v)))
            else {
                continue;
            };
            let raw = value.render();
            let invalid = |reason: String| ConfigError::invalid(syn.key.name, &raw, reason);
            let value = scale(def, syn.scale, value).map_err(invalid)?;
            defs::check(def.check, &value)
                .and_then(|()| config.store(def.field, &value))
                .map_err(invalid)?;
        }
        Ok(config)
    }
}

fn scale(def: &TopicDef, factor: i64, value: Value) -> Result<Value, String> {
    let Value::Num(n) = value else {
        return Ok(value);
    };
    let n = n
        .checked_mul(factor)
        .ok_or_else(|| format!("too large once converted to {}", def.name))?;
    Ok(Value::Num(if def.negative_is_unlimited && n < 0 {
        -1
    } else {
        n
    }))
}

fn supply(supplied: &mut IndexMap<String, Supplied>, key: String, value: String, origin: Origin) {
    supplied.insert(key, Supplied { value, origin });
}

/// Kafka logs unknown keys rather than failing; so do we, and we also say
/// which known keys we accept without acting on them.
fn log_unused(key: &str, s: &Supplied) {
    if defs::broker_key(key).is_some() || key == BROKER_ID.name {
        return;
    }
    if defs::ACCEPTED_BROKER_KEYS.contains(&key) {
        tracing::info!(key, value = %s.value, source = %s.origin, "config is recognised but not used by Runnel yet");
    } else {
        tracing::warn!(
            "The configuration '{key}' was supplied (from {}) but isn't a known config.",
            s.origin
        );
    }
}

fn is_wanted(keys: Option<&[String]>, name: &str) -> bool {
    match keys {
        None | Some([]) => true,
        Some(keys) => keys.iter().any(|k| k == name),
    }
}

/// The name to advertise in place of a wildcard host.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// DescribeConfigs for a topic: every topic config we honour, sorted by name.
/// The source is DynamicTopic if overridden, StaticBroker if a broker synonym
/// was set explicitly, else Default; synonyms list the override, then the
/// explicitly set broker keys, then the broker defaults. Unlike Kafka, a set
/// lower-precedence synonym (log.retention.hours for retention.ms) is listed
/// rather than hidden, since it is what actually supplies the value.
/// `defaults` are the effective topic defaults the dynamic configs produce.
pub fn describe_topic(
    broker: &BrokerConfig,
    dynamic: &DynamicBrokerConfigs,
    defaults: &TopicConfig,
    overrides: &IndexMap<String, String>,
    keys: Option<&[String]>,
    include_synonyms: bool,
) -> Vec<DescribedConfig> {
    let mut wanted: Vec<&TopicDef> = defs::TOPIC_DEFS
        .iter()
        .filter(|d| is_wanted(keys, d.name))
        .collect();
    wanted.sort_by_key(|d| d.name);
    wanted
        .into_iter()
        .map(|def| {
            // A stored override that no longer validates is ignored, the way
            // topic resolution falls back to the broker default.
            let overridden = overrides
                .get(def.name)
                .and_then(|raw| def.parse(raw).ok())
                .map(|v| v.render());
            let value = overridden
                .clone()
                .unwrap_or_else(|| defaults.render(def.field));
            let group: Vec<&'static str> = def.synonyms.iter().map(|s| s.key.name).collect();
            let mut synonyms = Vec::new();
            if let Some(v) = overridden {
                synonyms.push(Synonym {
                    name: def.name.to_owned(),
                    value: Some(v),
                    source: ConfigSource::DynamicTopic,
                });
            }
            synonyms.extend(broker.broker_synonyms(&group, dynamic));
            DescribedConfig {
                name: def.name.to_owned(),
                value: Some(value),
                source: synonyms.first().map_or(ConfigSource::Default, |s| s.source),
                read_only: false,
                is_sensitive: false,
                config_type: def.ty.code(),
                documentation: Some(def.doc.to_owned()),
                synonyms: if include_synonyms {
                    synonyms
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}
