//! The one table of configuration keys Runnel honours. Loading, `set`, topic
//! resolution and DescribeConfigs all read their names, types, defaults and
//! validators from here, so adding a key means adding one row.

use super::{TimestampType, TopicConfig};

/// Kafka's `ConfigDef.Type`, numbered the way DescribeConfigs reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

impl ConfigType {
    pub(crate) fn code(self) -> i8 {
        self as i8
    }
}

/// Validators, mirroring the ones Kafka attaches to the same keys.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Check {
    Any,
    AtLeast(i64),
    Between(i64, i64),
    /// A DOUBLE within a closed range (Kafka's `Range.between` on doubles).
    BetweenF(f64, f64),
    /// Kafka refuses a broker-wide retention of zero (it would delete every
    /// segment as soon as it rolls); negative values mean unlimited.
    NonZero,
    OneOf(&'static [&'static str]),
    SubsetOf(&'static [&'static str]),
}

/// A parsed value. Every integer width is held as `i64` after its range has
/// been checked against the key's declared type.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Bool(bool),
    Num(i64),
    Float(f64),
    Text(String),
}

impl Value {
    /// Kafka's `ConfigDef.convertToString` form, used in DescribeConfigs.
    pub(crate) fn render(&self) -> String {
        match self {
            Value::Bool(b) => b.to_string(),
            Value::Num(n) => n.to_string(),
            Value::Float(f) => java_double(*f),
            Value::Text(s) => s.clone(),
        }
    }

    pub(crate) fn float(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    pub(crate) fn num(&self) -> Option<i64> {
        match self {
            Value::Num(n) => Some(*n),
            _ => None,
        }
    }

    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

/// Defaults are typed in the table so they never need parsing at runtime.
#[derive(Clone, Copy, Debug)]
pub(crate) enum DefaultValue {
    None,
    Bool(bool),
    Num(i64),
    Float(f64),
    Str(&'static str),
}

impl DefaultValue {
    pub(crate) fn value(self) -> Option<Value> {
        match self {
            DefaultValue::None => None,
            DefaultValue::Bool(b) => Some(Value::Bool(b)),
            DefaultValue::Num(n) => Some(Value::Num(n)),
            DefaultValue::Float(f) => Some(Value::Float(f)),
            DefaultValue::Str(s) => Some(Value::Text(s.to_owned())),
        }
    }
}

/// One broker-level key.
#[derive(Debug)]
pub(crate) struct KeyDef {
    pub name: &'static str,
    pub ty: ConfigType,
    pub default: DefaultValue,
    pub check: Check,
    pub doc: &'static str,
}

impl KeyDef {
    /// Parses and validates a raw value; the error is the reason only, the
    /// caller knows which key and source it came from.
    pub(crate) fn parse(&self, raw: &str) -> Result<Value, String> {
        let value = parse_typed(self.ty, raw)?;
        check(self.check, &value)?;
        Ok(value)
    }
}

/// A broker key that supplies a topic config's default, and the factor that
/// converts its unit into the topic key's unit (hours to ms, and so on).
#[derive(Debug)]
pub(crate) struct BrokerSynonym {
    pub key: KeyDef,
    pub scale: i64,
}

/// Which `TopicConfig` field a topic key lands in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TopicField {
    SegmentBytes,
    SegmentMs,
    RetentionMs,
    RetentionBytes,
    IndexIntervalBytes,
    MaxMessageBytes,
    MessageTimestampType,
    CleanupPolicy,
    FlushMessages,
    FlushMs,
    TimestampBeforeMaxMs,
    TimestampAfterMaxMs,
    MinCompactionLagMs,
    MaxCompactionLagMs,
    DeleteRetentionMs,
    MinCleanableDirtyRatio,
    CompressionType,
}

/// One topic-level key with its broker synonyms in Kafka's synonym order:
/// the first one that is set (or, failing that, has a default) wins.
#[derive(Debug)]
pub(crate) struct TopicDef {
    pub name: &'static str,
    pub ty: ConfigType,
    pub check: Check,
    pub field: TopicField,
    /// Kafka maps any negative broker-wide retention to -1 (unlimited).
    pub negative_is_unlimited: bool,
    pub synonyms: &'static [BrokerSynonym],
    pub doc: &'static str,
}

impl TopicDef {
    pub(crate) fn parse(&self, raw: &str) -> Result<Value, String> {
        let value = parse_typed(self.ty, raw)?;
        check(self.check, &value)?;
        Ok(value)
    }
}

const MS_PER_MINUTE: i64 = 60_000;
const MS_PER_HOUR: i64 = 3_600_000;
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
const CLEANUP_POLICIES: &[&str] = &["compact", "delete"];
const COMPRESSION_TYPES: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

pub(crate) static TOPIC_DEFS: &[TopicDef] = &[
    TopicDef {
        name: "cleanup.policy",
        ty: ConfigType::List,
        check: Check::SubsetOf(CLEANUP_POLICIES),
        field: TopicField::CleanupPolicy,
        negative_is_unlimited: false,
        synonyms: &[BrokerSynonym {
            key: KeyDef {
                name: "log.cleanup.policy",
                ty: ConfigType::List,
                default: DefaultValue::Str("delete"),
                check: Check::SubsetOf(CLEANUP_POLICIES),
                doc: "The default cleanup policy for segments beyond the retention window: delete, compact, or both.",
            },
            scale: 1,
        }],
        doc: "Retention policy for old log segments: \"delete\" discards them by time or size, \"compact\" keeps the latest value per key; both may be given.",
    },
    TopicDef {
        name: "flush.messages",
        ty: ConfigType::Long,
        check: Check::AtLeast(1),
        field: TopicField::FlushMessages,
        negative_is_unlimited: false,
        synonyms: &[BrokerSynonym {
            key: KeyDef {
                name: "log.flush.interval.messages",
                ty: ConfigType::Long,
                default: DefaultValue::Num(i64::MAX),
                check: Check::AtLeast(1),
                doc: "The number of messages accumulated on a log partition before they are fsynced to disk.",
            },
            scale: 1,
        }],
        doc: "Force an fsync of the log after this many messages have been appended.",
    },
    TopicDef {
        name: "flush.ms",
        ty: ConfigType::Long,
        check: Check::AtLeast(0),
        field: TopicField::FlushMs,
        negative_is_unlimited: false,
        synonyms: &[
            BrokerSynonym {
                key: KeyDef {
                    name: "log.flush.interval.ms",
                    ty: ConfigType::Long,
                    default: DefaultValue::None,
                    check: Check::Any,
                    doc: "The maximum time in ms that a message may sit in memory before it is fsynced to disk. If not set, log.flush.scheduler.interval.ms is used.",
                },
                scale: 1,
            },
            BrokerSynonym {
                key: KeyDef {
                    name: "log.flush.scheduler.interval.ms",
                    ty: ConfigType::Long,
                    default: DefaultValue::Num(i64::MAX),
                    check: Check::Any,
                    doc: "The default for log.flush.interval.ms when that is not set.",
                },
                scale: 1,
            },
        ],
        doc: "Force an fsync of the log once this much time has passed since the last one.",
    },
    TopicDef {
        name: "index.interval.bytes",
        ty: ConfigType::Int,
        check: Check::AtLeast(0),
        field: TopicField::IndexIntervalBytes,
        negative_is_unlimited: false,
        synonyms: &[BrokerSynonym {
            key: KeyDef {
                name: "log.index.interval.bytes",
                ty: ConfigType::Int,
                default: DefaultValue::Num(4096),
                check: Check::AtLeast(0),
                doc: "The interval in bytes at which an entry is added to the offset index.",
            },
            scale: 1,
        }],
        doc: "How many bytes of log to append between offset index entries.",
    },
    TopicDef {
        name: "max.message.bytes",
        ty: ConfigType::Int,
        check: Check::AtLeast(0),
        field: TopicField::MaxMessageBytes,
        negative_is_unlimited: false,
        synonyms: &[BrokerSynonym {
            key: KeyDef {
                name: "message.max.bytes",
                ty: ConfigType::Int,
                default: DefaultValue::Num(1_048_588),
                check: Check::AtLeast(0),
                doc: "The largest record batch size allowed, after compression.",
            },
            scale: 1,
        }],
        doc: "The largest record batch size allowed for this topic, after compression.",
    },
    TopicDef {
        name: "message.timestamp.type",
        ty: ConfigType::String,
        check: Check::OneOf(TIMESTAMP_TYPES),
        field: TopicField::MessageTimestampType,
        negative_is_unlimited: false,
        synonyms: &[BrokerSynonym {
            key: KeyDef {
                name: "log.message.timestamp.type",
                ty: ConfigType::String,
                default: DefaultValue::Str("CreateTime"),
                check: Check::OneOf(TIMESTAMP_TYPES),
                doc: "Whether record timestamps are the producer's create time or the broker's append time: CreateTime or LogAppendTime.",
            },
            scale: 1,
        }],
        doc: "Whether record timestamps are the producer's create time or the broker's append time: CreateTime or LogAppendTime.",
    },
    TopicDef {
        name: "retention.bytes",
        ty: ConfigType::Long,
        check: Check::Any,
        field: TopicField::RetentionBytes,
        negative_is_unlimited: false,
        synonyms: &[BrokerSynonym {
            key: KeyDef {
                name: "log.retention.bytes",
                ty: ConfigType::Long,
                default: DefaultValue::Num(-1),
                check: Check::Any,
                doc: "The maximum size of a partition's log before old segments are deleted; -1 means unlimited.",
            },
            scale: 1,
        }],
        doc: "The maximum size a partition's log may grow to before old segments are deleted; -1 means unlimited.",
    },
    TopicDef {
        name: "retention.ms",
        ty: ConfigType::Long,
        check: Check::AtLeast(-1),
        field: TopicField::RetentionMs,
        negative_is_unlimited: true,
        synonyms: &[
            BrokerSynonym {
                key: KeyDef {
                    name: "log.retention.ms",
                    ty: ConfigType::Long,
                    default: DefaultValue::None,
                    check: Check::NonZero,
                    doc: "How long to keep a log segment before deleting it, in ms; takes precedence over log.retention.minutes. -1 means unlimited.",
                },
                scale: 1,
            },
            BrokerSynonym {
                key: KeyDef {
                    name: "log.retention.minutes",
                    ty: ConfigType::Int,
                    default: DefaultValue::None,
                    check: Check::NonZero,
                    doc: "How long to keep a log segment before deleting it, in minutes; takes precedence over log.retention.hours.",
                },
                scale: MS_PER_MINUTE,
            },
            BrokerSynonym {
                key: KeyDef {
                    name: "log.retention.hours",
                    ty: ConfigType::Int,
                    default: DefaultValue::Num(168),
                    check: Check::NonZero,
                    doc: "How long to keep a log segment before deleting it, in hours.",
                },
                scale: MS_PER_HOUR,
            },
        ],
        doc: "How long to keep a log segment before deleting it, in ms; -1 means unlimited.",
    },
    TopicDef {
        name: "segment.bytes",
        ty: ConfigType::Int,
        check: Check::AtLeast(14),
        field: TopicField::SegmentBytes,
        negative_is_unlimited: false,
        synonyms: &[BrokerSynonym {
            key: KeyDef {
                name: "log.segment.bytes",
                ty: ConfigType::Int,
                default: DefaultValue::Num(1_073_741_824),
                check: Check::AtLeast(14),
                doc: "The maximum size of a single log segment file.",
            },
            scale: 1,
        }],
        doc: "The maximum size of a single log segment file.",
    },
    TopicDef {
        name: "segment.ms",
        ty: ConfigType::Long,
        check: Check::AtLeast(1),
        field: TopicField::SegmentMs,
        negative_is_unlimited: false,
        synonyms: &[
            BrokerSynonym {
                key: KeyDef {
                    name: "log.roll.ms",
                    ty: ConfigType::Long,
                    default: DefaultValue::None,
                    check: Check::AtLeast(1),
                    doc: "The maximum time before a new log segment is rolled out, in ms; takes precedence over log.roll.hours.",
                },
                scale: 1,
            },
            BrokerSynonym {
                key: KeyDef {
                    name: "log.roll.hours",
                    ty: ConfigType::Int,
                    default: DefaultValue::Num(168),
                    check: Check::AtLeast(1),
                    doc: "The maximum time before a new log segment is rolled out, in hours.",
                },
                scale: MS_PER_HOUR,
            },
        ],
        doc: "The maximum time before the active segment is rolled even if it is not full.",
    },
    TopicDef {
        name: "compression.type",
        ty: ConfigType::String,
        check: Check::OneOf(COMPRESSION_TYPES),
        field: TopicField::CompressionType,
        negative_is_unlimited: false,
        synonyms: &[BrokerSynonym {
            key: KeyDef {
                name: "compression.type",
                ty: ConfigType::String,
                default: DefaultValue::Str("producer"),
                check: Check::OneOf(COMPRESSION_TYPES),
                doc: "The final compression of data written to a topic: a codec (uncompressed, gzip, snappy, lz4, zstd), or producer to keep the producer's codec.",
            },
            scale: 1,
        }],
        doc: "The final compression of this topic's data: a codec (uncompressed, gzip, snappy, lz4, zstd), or producer to keep the codec the producer used.",
    },
    TopicDef {
        name: "delete.retention.ms",
        ty: ConfigType::Long,
        check: Check::AtLeast(0),
        field: TopicField::DeleteRetentionMs,
        negative_is_unlimited: false,
        synonyms: &[BrokerSynonym {
            key: KeyDef {
                name: "log.cleaner.delete.retention.ms",
                ty: ConfigType::Long,
                default: DefaultValue::Num(86_400_000),
                check: Check::AtLeast(0),
                doc: "How long tombstones are kept on compacted topics before the cleaner may remove them.",
            },
            scale: 1,
        }],
        doc: "How long a tombstone stays in a compacted log; a consumer reading from the start within this time sees every delete.",
    },
    TopicDef {
        name: "max.compaction.lag.ms",
        ty: ConfigType::Long,
        check: Check::AtLeast(1),
        field: TopicField::MaxCompactionLagMs,
        negative_is_unlimited: false,
        synonyms: &[BrokerSynonym {
            key: KeyDef {
                name: "log.cleaner.max.compaction.lag.ms",
                ty: ConfigType::Long,
                default: DefaultValue::Num(i64::MAX),
                check: Check::AtLeast(1),
                doc: "The longest a record may stay uncompacted in a compacted log.",
            },
            scale: 1,
        }],
        doc: "The longest a record may stay uncompacted: past it the segment is eligible for cleaning whatever the dirty ratio.",
    },
    TopicDef {
        name: "message.timestamp.after.max.ms",
        ty: ConfigType::Long,
        check: Check::AtLeast(0),
        field: TopicField::TimestampAfterMaxMs,
        negative_is_unlimited: false,
        synonyms: &[BrokerSynonym {
            key: KeyDef {
                name: "log.message.timestamp.after.max.ms",
                ty: ConfigType::Long,
                default: DefaultValue::Num(3_600_000),
                check: Check::AtLeast(0),
                doc: "How far in the future (ms) a CreateTime record timestamp may be relative to the broker's clock.",
            },
            scale: 1,
        }],
        doc: "How far in the future (ms) a CreateTime record timestamp may be relative to the broker's clock; later ones are rejected.",
    },
    TopicDef {
        name: "message.timestamp.before.max.ms",
        ty: ConfigType::Long,
        check: Check::AtLeast(0),
        field: TopicField::TimestampBeforeMaxMs,
        negative_is_unlimited: false,
        synonyms: &[BrokerSynonym {
            key: KeyDef {
                name: "log.message.timestamp.before.max.ms",
                ty: ConfigType::Long,
                default: DefaultValue::Num(i64::MAX),
                check: Check::AtLeast(0),
                doc: "How far in the past (ms) a CreateTime record timestamp may be relative to the broker's clock.",
            },
            scale: 1,
        }],
        doc: "How far in the past (ms) a CreateTime record timestamp may be relative to the broker's clock; older ones are rejected.",
    },
    TopicDef {
        name: "min.cleanable.dirty.ratio",
        ty: ConfigType::Double,
        check: Check::BetweenF(0.0, 1.0),
        field: TopicField::MinCleanableDirtyRatio,
        negative_is_unlimited: false,
        synonyms: &[BrokerSynonym {
            key: KeyDef {
                name: "log.cleaner.min.cleanable.ratio",
                ty: ConfigType::Double,
                default: DefaultValue::Float(0.5),
                check: Check::BetweenF(0.0, 1.0),
                doc: "The minimum share of a compacted log that must be dirty (uncleaned) before it is cleaned.",
            },
            scale: 1,
        }],
        doc: "The minimum share of the log that must be dirty (not yet compacted) before the cleaner compacts it.",
    },
    TopicDef {
        name: "min.compaction.lag.ms",
        ty: ConfigType::Long,
        check: Check::AtLeast(0),
        field: TopicField::MinCompactionLagMs,
        negative_is_unlimited: false,
        synonyms: &[BrokerSynonym {
            key: KeyDef {
                name: "log.cleaner.min.compaction.lag.ms",
                ty: ConfigType::Long,
                default: DefaultValue::Num(0),
                check: Check::AtLeast(0),
                doc: "The minimum time a record stays uncompacted in a compacted log.",
            },
            scale: 1,
        }],
        doc: "The minimum time a record stays uncompacted in the log.",
    },
];

/// Broker keys that are not a topic config's synonym.
pub(crate) static BROKER_DEFS: &[KeyDef] = &[
    KeyDef {
        name: "node.id",
        ty: ConfigType::Int,
        default: DefaultValue::Num(1),
        check: Check::AtLeast(0),
        doc: "The id of this node. broker.id is read as an alias when node.id is not set.",
    },
    KeyDef {
        name: "listeners",
        ty: ConfigType::List,
        default: DefaultValue::Str("PLAINTEXT://localhost:9092"),
        check: Check::Any,
        doc: "Comma-separated NAME://host:port listeners; an empty host binds every interface.",
    },
    KeyDef {
        name: "advertised.listeners",
        ty: ConfigType::List,
        default: DefaultValue::None,
        check: Check::Any,
        doc:
            "Listeners to publish to clients, matched to listeners by name; defaults to listeners.",
    },
    KeyDef {
        name: "listener.security.protocol.map",
        ty: ConfigType::String,
        default: DefaultValue::Str(
            "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        ),
        check: Check::Any,
        doc: "Map from listener name to security protocol, as NAME:PROTOCOL pairs.",
    },
    KeyDef {
        name: "controller.listener.names",
        ty: ConfigType::List,
        default: DefaultValue::None,
        check: Check::Any,
        doc: "Listener names used by the KRaft controller; Runnel does not open them.",
    },
    KeyDef {
        name: "log.dirs",
        ty: ConfigType::List,
        default: DefaultValue::None,
        check: Check::Any,
        doc: "The directory in which log data is kept (exactly one); overrides log.dir.",
    },
    KeyDef {
        name: "log.dir",
        ty: ConfigType::String,
        default: DefaultValue::Str("./runnel-data"),
        check: Check::Any,
        doc: "The directory in which log data is kept, used when log.dirs is not set.",
    },
    KeyDef {
        name: "num.partitions",
        ty: ConfigType::Int,
        default: DefaultValue::Num(1),
        check: Check::AtLeast(1),
        doc: "The default number of partitions for auto-created topics.",
    },
    KeyDef {
        name: "default.replication.factor",
        ty: ConfigType::Int,
        default: DefaultValue::Num(1),
        check: Check::Between(1, i16::MAX as i64),
        doc: "The default replication factor for auto-created topics.",
    },
    KeyDef {
        name: "auto.create.topics.enable",
        ty: ConfigType::Boolean,
        default: DefaultValue::Bool(true),
        check: Check::Any,
        doc:
            "Create a topic when a client asks for metadata or produces to one that does not exist.",
    },
    KeyDef {
        name: "log.retention.check.interval.ms",
        ty: ConfigType::Long,
        default: DefaultValue::Num(300_000),
        check: Check::AtLeast(1),
        doc:
            "How often, in ms, the log cleaner checks whether any segment is eligible for deletion.",
    },
    // Log cleaner (Kafka's CleanerConfig); one cleaner task runs.
    KeyDef {
        name: "log.cleaner.enable",
        ty: ConfigType::Boolean,
        default: DefaultValue::Bool(true),
        check: Check::Any,
        doc: "Run the log cleaner, which compacts topics whose cleanup.policy includes compact.",
    },
    KeyDef {
        name: "log.cleaner.backoff.ms",
        ty: ConfigType::Long,
        default: DefaultValue::Num(15_000),
        check: Check::AtLeast(0),
        doc: "How long the cleaner sleeps when no log needs cleaning.",
    },
    KeyDef {
        name: "log.cleaner.dedupe.buffer.size",
        ty: ConfigType::Long,
        default: DefaultValue::Num(134_217_728),
        check: Check::AtLeast(0),
        doc: "Memory for the cleaner's key map (24 bytes per key); a dirty section with more keys is cleaned in several passes.",
    },
    KeyDef {
        name: "log.cleaner.io.buffer.size",
        ty: ConfigType::Int,
        default: DefaultValue::Num(524_288),
        check: Check::AtLeast(0),
        doc: "How much of a segment the cleaner reads at a time (a larger batch is read whole).",
    },
    KeyDef {
        name: "log.cleaner.threads",
        ty: ConfigType::Int,
        default: DefaultValue::Num(1),
        check: Check::AtLeast(0),
        doc: "Accepted for compatibility; one cleaner task runs whatever the value (the dedupe buffer is divided by it, as Kafka does).",
    },
    KeyDef {
        name: "socket.request.max.bytes",
        ty: ConfigType::Int,
        default: DefaultValue::Num(104_857_600),
        check: Check::AtLeast(1),
        doc: "The largest request the broker will read from a socket.",
    },
    KeyDef {
        name: "max.connections",
        ty: ConfigType::Int,
        default: DefaultValue::Num(i32::MAX as i64),
        check: Check::AtLeast(0),
        doc: "The maximum number of connections the broker accepts at once.",
    },
    // Runnel's own keys (observability); Kafka has no equivalent.
    KeyDef {
        name: "runnel.metrics.listener",
        ty: ConfigType::String,
        default: DefaultValue::Str("http://0.0.0.0:9464"),
        check: Check::Any,
        doc: "http://host:port of the Prometheus /metrics and /health endpoint; empty disables it. A default that cannot be bound is skipped with a warning; an explicit one that cannot be bound stops the broker.",
    },
    KeyDef {
        name: "runnel.slow.request.ms",
        ty: ConfigType::Long,
        default: DefaultValue::Num(1000),
        check: Check::AtLeast(-1),
        doc: "Requests taking longer than this are logged at WARN (a Fetch's max.wait.ms and JoinGroup/SyncGroup waits are not counted); -1 disables the log.",
    },
    // Group coordinator (Kafka's GroupCoordinatorConfig).
    KeyDef {
        name: "offsets.topic.num.partitions",
        ty: ConfigType::Int,
        default: DefaultValue::Num(50),
        check: Check::AtLeast(1),
        doc: "The number of partitions for the offset commit topic (should not change after deployment).",
    },
    KeyDef {
        name: "offsets.topic.segment.bytes",
        ty: ConfigType::Int,
        default: DefaultValue::Num(104_857_600),
        check: Check::AtLeast(1),
        doc: "The offsets topic segment bytes should be kept relatively small in order to facilitate faster log compaction and cache loads.",
    },
    KeyDef {
        name: "offsets.retention.minutes",
        ty: ConfigType::Int,
        default: DefaultValue::Num(10_080),
        check: Check::AtLeast(1),
        doc: "How long committed offsets are kept: after the group becomes empty, or, for a partition the group no longer subscribes to (or a standalone consumer), after its last commit.",
    },
    KeyDef {
        name: "offsets.retention.check.interval.ms",
        ty: ConfigType::Long,
        default: DefaultValue::Num(600_000),
        check: Check::AtLeast(1),
        doc: "Frequency at which to check for stale offsets.",
    },
    KeyDef {
        name: "group.initial.rebalance.delay.ms",
        ty: ConfigType::Int,
        default: DefaultValue::Num(3000),
        check: Check::AtLeast(0),
        doc: "The amount of time the group coordinator will wait for more consumers to join a new group before performing the first rebalance. A longer delay means potentially fewer rebalances, but increases the time until processing begins.",
    },
    KeyDef {
        name: "group.min.session.timeout.ms",
        ty: ConfigType::Int,
        default: DefaultValue::Num(6000),
        check: Check::Any,
        doc: "The minimum allowed session timeout for registered consumers. Shorter timeouts result in quicker failure detection at the cost of more frequent consumer heartbeating, which can overwhelm broker resources.",
    },
    KeyDef {
        name: "group.max.session.timeout.ms",
        ty: ConfigType::Int,
        default: DefaultValue::Num(1_800_000),
        check: Check::Any,
        doc: "The maximum allowed session timeout for registered consumers. Longer timeouts give consumers more time to process messages in between heartbeats at the cost of a longer time to detect failures.",
    },
    KeyDef {
        name: "group.max.size",
        ty: ConfigType::Int,
        default: DefaultValue::Num(i32::MAX as i64),
        check: Check::AtLeast(1),
        doc: "The maximum number of consumers that a single consumer group can accommodate.",
    },
    KeyDef {
        name: "offset.metadata.max.bytes",
        ty: ConfigType::Int,
        default: DefaultValue::Num(4096),
        check: Check::Any,
        doc: "The maximum size for a metadata entry associated with an offset commit.",
    },
    // Transaction coordinator (Kafka's TransactionStateManagerConfig and
    // TransactionLogConfig).
    KeyDef {
        name: "transaction.state.log.num.partitions",
        ty: ConfigType::Int,
        default: DefaultValue::Num(50),
        check: Check::AtLeast(1),
        doc: "The number of partitions for the transaction topic (should not change after deployment).",
    },
    KeyDef {
        name: "transaction.state.log.segment.bytes",
        ty: ConfigType::Int,
        default: DefaultValue::Num(104_857_600),
        check: Check::AtLeast(1),
        doc: "The transaction topic segment bytes should be kept relatively small in order to facilitate faster log compaction and cache loads.",
    },
    KeyDef {
        name: "transaction.max.timeout.ms",
        ty: ConfigType::Int,
        default: DefaultValue::Num(900_000),
        check: Check::AtLeast(1),
        doc: "The maximum allowed timeout for transactions. If a client's requested transaction time exceeds this, the broker returns INVALID_TRANSACTION_TIMEOUT from InitProducerId.",
    },
    KeyDef {
        name: "transactional.id.expiration.ms",
        ty: ConfigType::Int,
        default: DefaultValue::Num(604_800_000),
        check: Check::AtLeast(1),
        doc: "The time in ms that the transaction coordinator waits without receiving any transaction status updates for the current transaction before expiring its transactional id.",
    },
    KeyDef {
        name: "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        ty: ConfigType::Int,
        default: DefaultValue::Num(10_000),
        check: Check::AtLeast(1),
        doc: "The interval at which to roll back transactions that have timed out.",
    },
    KeyDef {
        name: "transaction.remove.expired.transaction.cleanup.interval.ms",
        ty: ConfigType::Int,
        default: DefaultValue::Num(3_600_000),
        check: Check::AtLeast(1),
        doc: "The interval at which to remove transactions that have expired due to transactional.id.expiration.ms passing.",
    },
    KeyDef {
        name: "transaction.partition.verification.enable",
        ty: ConfigType::Boolean,
        default: DefaultValue::Bool(true),
        check: Check::Any,
        doc: "Enable verification that checks that the partition has been added to the transaction before writing transactional records to the partition.",
    },
];

/// Broker keys Kafka lets AlterConfigs change at run time
/// (`DynamicBrokerConfig.AllDynamicConfigs`) that Runnel has no use for yet:
/// stored like the others, acted on by nothing. With the prefixes below
/// (Kafka's dynamic security and per-listener keys).
pub(crate) static ACCEPTED_DYNAMIC_BROKER_KEYS: &[&str] = &[
    "background.threads",
    "follower.replication.throttled.rate",
    "leader.replication.throttled.rate",
    "log.cleaner.io.buffer.load.factor",
    "log.cleaner.io.max.bytes.per.second",
    "max.connection.creation.rate",
    "max.connections.per.ip",
    "max.connections.per.ip.overrides",
    "metric.reporters",
    "min.insync.replicas",
    "num.io.threads",
    "num.network.threads",
    "num.recovery.threads.per.data.dir",
    "num.replica.fetchers",
    "producer.id.expiration.ms",
    "replica.alter.log.dirs.io.max.bytes.per.second",
    "unclean.leader.election.enable",
];
pub(crate) static ACCEPTED_DYNAMIC_BROKER_PREFIXES: &[&str] = &["ssl.", "sasl.", "listener.name."];

pub(crate) fn accepted_dynamic_broker_key(name: &str) -> bool {
    ACCEPTED_DYNAMIC_BROKER_KEYS.contains(&name)
        || ACCEPTED_DYNAMIC_BROKER_PREFIXES
            .iter()
            .any(|p| name.starts_with(p) && name.len() > p.len())
}

/// Known Kafka broker keys that load without error but do nothing here yet.
pub(crate) static ACCEPTED_BROKER_KEYS: &[&str] = &[
    "broker.id",
    "broker.rack",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "controller.quorum.bootstrap.servers",
    "controller.quorum.voters",
    "delete.topic.enable",
    "inter.broker.listener.name",
    "log.segment.delete.delay.ms",
    "metadata.log.dir",
    "min.insync.replicas",
    "num.io.threads",
    "num.network.threads",
    "num.recovery.threads.per.data.dir",
    "offsets.topic.replication.factor",
    "process.roles",
    "share.coordinator.state.topic.min.isr",
    "share.coordinator.state.topic.replication.factor",
    "socket.receive.buffer.bytes",
    "socket.send.buffer.bytes",
    "transaction.state.log.min.isr",
    "transaction.state.log.replication.factor",
    "unclean.leader.election.enable",
    "zookeeper.connect",
];

/// Known Kafka topic keys that clients routinely send when creating topics
/// (Connect, Streams, Debezium and friends). Rejecting them would break those
/// clients for a setting we cannot act on anyway, so they are accepted and
/// ignored; truly unknown names are still an error, as in Kafka.
pub(crate) static ACCEPTED_TOPIC_KEYS: &[&str] = &[
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "file.delete.delay.ms",
    "follower.replication.throttled.replicas",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "message.downconversion.enable",
    "message.timestamp.difference.max.ms",
    "min.insync.replicas",
    "preallocate",
    "remote.storage.enable",
    "segment.index.bytes",
    "segment.jitter.ms",
    "unclean.leader.election.enable",
];

/// Every broker key we honour: the broker-only ones, then the topic synonyms.
pub(crate) fn broker_keys() -> impl Iterator<Item = &'static KeyDef> {
    BROKER_DEFS.iter().chain(
        TOPIC_DEFS
            .iter()
            .flat_map(|t| t.synonyms.iter().map(|s| &s.key)),
    )
}

pub(crate) fn broker_key(name: &str) -> Option<&'static KeyDef> {
    broker_keys().find(|k| k.name == name)
}

pub(crate) fn topic_def(name: &str) -> Option<&'static TopicDef> {
    TOPIC_DEFS.iter().find(|t| t.name == name)
}

/// Kafka's `brokerConfigSynonyms`: the keys that feed the same setting, in
/// precedence order. A key outside any group is its own only synonym.
pub(crate) fn synonym_group(name: &'static str) -> Vec<&'static str> {
    TOPIC_DEFS
        .iter()
        .find(|t| t.synonyms.iter().any(|s| s.key.name == name))
        .map(|t| t.synonyms.iter().map(|s| s.key.name).collect())
        .unwrap_or_else(|| vec![name])
}

fn parse_typed(ty: ConfigType, raw: &str) -> Result<Value, String> {
    // Kafka trims every value before parsing it.
    let s = raw.trim();
    match ty {
        ConfigType::Boolean => {
            if s.eq_ignore_ascii_case("true") {
                Ok(Value::Bool(true))
            } else if s.eq_ignore_ascii_case("false") {
                Ok(Value::Bool(false))
            } else {
                Err("not a boolean (expected true or false)".to_owned())
            }
        }
        ConfigType::Int => parse_int(s, i32::MIN.into(), i32::MAX.into(), "INT"),
        ConfigType::Long => parse_int(s, i64::MIN, i64::MAX, "LONG"),
        ConfigType::Double => match s.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Float(f)),
            _ => Err("not a number of type DOUBLE".to_owned()),
        },
        ConfigType::String => Ok(Value::Text(s.to_owned())),
        ConfigType::List => Ok(Value::Text(
            s.split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .collect::<Vec<_>>()
                .join(","),
        )),
    }
}

/// Java's `Double.toString`: always a fraction digit ("1.0"), and
/// scientific notation ("1.0E-4") outside [1e-3, 1e7).
pub(crate) fn java_double(f: f64) -> String {
    let abs = f.abs();
    if f == 0.0 || (1e-3..1e7).contains(&abs) {
        return format!("{f:?}");
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    if mantissa.contains('.') {
        format!("{mantissa}E{exp}")
    } else {
        format!("{mantissa}.0E{exp}")
    }
}

fn parse_int(s: &str, min: i64, max: i64, ty: &str) -> Result<Value, String> {
    match s.parse::<i128>() {
        Ok(n) if n >= i128::from(min) && n <= i128::from(max) => Ok(Value::Num(n as i64)),
        Ok(_) => Err(format!("out of range for type {ty} ({min}..={max})")),
        Err(_) => Err("not an integer".to_owned()),
    }
}

pub(crate) fn check(check: Check, value: &Value) -> Result<(), String> {
    match (check, value) {
        (Check::Any, _) => Ok(()),
        (Check::AtLeast(min), Value::Num(n)) if *n < min => Err(format!("must be at least {min}")),
        (Check::Between(lo, hi), Value::Num(n)) if *n < lo || *n > hi => {
            Err(format!("must be between {lo} and {hi}"))
        }
        (Check::BetweenF(lo, hi), Value::Float(f)) if *f < lo || *f > hi => Err(format!(
            "must be between {} and {}",
            java_double(lo),
            java_double(hi)
        )),
        (Check::NonZero, Value::Num(0)) => Err("must be unlimited (-1) or at least 1".to_owned()),
        (Check::OneOf(allowed), Value::Text(s)) if !allowed.contains(&s.as_str()) => {
            Err(format!("must be one of {}", allowed.join(", ")))
        }
        (Check::SubsetOf(allowed), Value::Text(s)) => {
            let items: Vec<&str> = s.split(',').filter(|e| !e.is_empty()).collect();
            if items.is_empty() {
                return Err(format!("must list at least one of {}", allowed.join(", ")));
            }
            for (i, item) in items.iter().enumerate() {
                if !allowed.contains(item) {
                    return Err(format!("'{item}' is not one of {}", allowed.join(", ")));
                }
                if items[..i].contains(item) {
                    return Err(format!("'{item}' is listed twice"));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

impl TopicConfig {
    /// Stores an already validated value. Fails only if the table and the
    /// field disagree on type, which the tests rule out.
    pub(crate) fn store(&mut self, field: TopicField, value: &Value) -> Result<(), String> {
        let num = || value.num().ok_or_else(|| "expected a number".to_owned());
        let int =
            || num().and_then(|n| i32::try_from(n).map_err(|_| "out of range for type INT".into()));
        let text = || value.text().ok_or_else(|| "expected a string".to_owned());
        match field {
            TopicField::SegmentBytes => self.segment_bytes = int()?,
            TopicField::SegmentMs => self.segment_ms = num()?,
            TopicField::RetentionMs => self.retention_ms = num()?,
            TopicField::RetentionBytes => self.retention_bytes = num()?,
            TopicField::IndexIntervalBytes => self.index_interval_bytes = int()?,
            TopicField::MaxMessageBytes => self.max_message_bytes = int()?,
            TopicField::MessageTimestampType => {
                self.message_timestamp_type = TimestampType::from_name(text()?)
                    .ok_or_else(|| format!("must be one of {}", TIMESTAMP_TYPES.join(", ")))?
            }
            TopicField::CleanupPolicy => self.cleanup_policy = text()?.to_owned(),
            TopicField::FlushMessages => self.flush_messages = num()?,
            TopicField::FlushMs => self.flush_ms = num()?,
            TopicField::TimestampBeforeMaxMs => self.message_timestamp_before_max_ms = num()?,
            TopicField::TimestampAfterMaxMs => self.message_timestamp_after_max_ms = num()?,
            TopicField::MinCompactionLagMs => self.min_compaction_lag_ms = num()?,
            TopicField::MaxCompactionLagMs => self.max_compaction_lag_ms = num()?,
            TopicField::DeleteRetentionMs => self.delete_retention_ms = num()?,
            TopicField::MinCleanableDirtyRatio => {
                self.min_cleanable_dirty_ratio = value
                    .float()
                    .ok_or_else(|| "expected a DOUBLE".to_owned())?
            }
            TopicField::CompressionType => self.compression_type = text()?.to_owned(),
        }
        Ok(())
    }

    pub(crate) fn render(&self, field: TopicField) -> String {
        match field {
            TopicField::SegmentBytes => self.segment_bytes.to_string(),
            TopicField::SegmentMs => self.segment_ms.to_string(),
            TopicField::RetentionMs => self.retention_ms.to_string(),
            TopicField::RetentionBytes => self.retention_bytes.to_string(),
            TopicField::IndexIntervalBytes => self.index_interval_bytes.to_string(),
            TopicField::MaxMessageBytes => self.max_message_bytes.to_string(),
            TopicField::MessageTimestampType => self.message_timestamp_type.as_str().to_owned(),
            TopicField::CleanupPolicy => self.cleanup_policy.clone(),
            TopicField::FlushMessages => self.flush_messages.to_string(),
            TopicField::FlushMs => self.flush_ms.to_string(),
            TopicField::TimestampBeforeMaxMs => self.message_timestamp_before_max_ms.to_string(),
            TopicField::TimestampAfterMaxMs => self.message_timestamp_after_max_ms.to_string(),
            TopicField::MinCompactionLagMs => self.min_compaction_lag_ms.to_string(),
            TopicField::MaxCompactionLagMs => self.max_compaction_lag_ms.to_string(),
            TopicField::DeleteRetentionMs => self.delete_retention_ms.to_string(),
            TopicField::MinCleanableDirtyRatio => java_double(self.min_cleanable_dirty_ratio),
            TopicField::CompressionType => self.compression_type.clone(),
        }
    }
}
