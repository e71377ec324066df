//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topic and
//! broker resources. Topic overrides and dynamic broker configs are metadata
//! records; a change reaches every live partition log at once.

use std::collections::HashSet;

use indexmap::IndexMap;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{Code, RequestContext};
use crate::broker::Broker;
use crate::config::{self, ConfigError, DescribedConfig, KeyKind};
use crate::metadata::{topic_name, MetadataError, MetadataImage, TopicInfo};

/// Kafka's ConfigResource.Type codes.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

pub fn describe_configs(
    ctx: &RequestContext,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let broker = &ctx.broker;
    let with_docs = ctx.version >= 3 && req.include_documentation;
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let keys: Option<Vec<String>> = r
                .configuration_keys
                .as_ref()
                .map(|k| k.iter().map(|s| s.to_string()).collect());
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let image = broker.metadata.image();
            let dynamic = image.dynamic_broker(broker.node_id());
            let described = match r.resource_type {
                TOPIC => match image.topic(r.resource_name.as_str()) {
                    Some(info) => Ok(describe_topic(
                        ctx,
                        &dynamic,
                        &info.overrides,
                        keys.as_deref(),
                        req.include_synonyms,
                    )),
                    None => Err((
                        Code::UnknownTopicOrPartition,
                        format!("Topic {} does not exist", r.resource_name.as_str()),
                    )),
                },
                // An empty name asks for the cluster-wide dynamic defaults.
                BROKER if r.resource_name.is_empty() => Ok(broker
                    .config
                    .describe_cluster_defaults(keys.as_deref(), req.include_synonyms, &dynamic)),
                BROKER if r.resource_name.as_str() == broker.node_id().to_string() => Ok(broker
                    .config
                    .describe_dynamic(keys.as_deref(), req.include_synonyms, &dynamic)),
                BROKER => Err((
                    Code::InvalidRequest,
                    format!(
                        "Unexpected broker id, expected {} but received {}",
                        broker.node_id(),
                        r.resource_name.as_str()
                    ),
                )),
                other => Err((
                    Code::InvalidRequest,
                    format!("Unsupported resource type {other}"),
                )),
            };
            match described {
                Ok(configs) => result.with_configs(
                    configs
                        .into_iter()
                        .map(|c| convert(c, ctx.version, with_docs))
                        .collect(),
                ),
                Err((code, msg)) => result
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(msg))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// `config_type` and `documentation` exist from v3 on; below that they must
/// keep the crate's defaults.
fn convert(c: DescribedConfig, version: i16, with_docs: bool) -> DescribeConfigsResourceResult {
    let r = DescribeConfigsResourceResult::default();
    let r = if version >= 3 {
        r.with_config_type(c.config_type)
            .with_documentation(if with_docs {
                c.documentation.map(StrBytes::from_string)
            } else {
                None
            })
    } else {
        r
    };
    r.with_name(StrBytes::from_string(c.name))
        .with_value(c.value.map(StrBytes::from_string))
        .with_read_only(c.read_only)
        .with_config_source(c.source as i8)
        .with_is_sensitive(c.is_sensitive)
        .with_synonyms(
            c.synonyms
                .into_iter()
                .map(|s| {
                    DescribeConfigsSynonym::default()
                        .with_name(StrBytes::from_string(s.name))
                        .with_value(s.value.map(StrBytes::from_string))
                        .with_source(s.source as i8)
                })
                .collect(),
        )
}

/// IncrementalAlterConfigs `config_operation` codes (Kafka's `AlterConfigOp.OpType`).
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// One requested change to a resource's stored configs.
#[derive(Clone)]
enum Change {
    /// Legacy AlterConfigs: these become the whole set.
    Replace(Vec<(String, Option<String>)>),
    /// IncrementalAlterConfigs: (name, operation, value) applied in order.
    Ops(Vec<(String, i8, Option<String>)>),
}

type Failure = (Code, String);

pub fn alter_configs(ctx: &RequestContext, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let targets = req
        .resources
        .into_iter()
        .map(|r| {
            let change = Change::Replace(
                r.configs
                    .into_iter()
                    .map(|c| (c.name.to_string(), c.value.map(|v| v.to_string())))
                    .collect(),
            );
            (r.resource_type, r.resource_name, change)
        })
        .collect();
    let responses = alter_all(&ctx.broker, targets, req.validate_only, |a| {
        alter_configs_response::AlterConfigsResourceResponse::default()
            .with_error_code(a.code)
            .with_error_message(a.message)
            .with_resource_type(a.resource_type)
            .with_resource_name(a.name)
    });
    AlterConfigsResponse::default().with_responses(responses)
}

pub fn incremental_alter_configs(
    ctx: &RequestContext,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let targets = req
        .resources
        .into_iter()
        .map(|r| {
            let change = Change::Ops(
                r.configs
                    .into_iter()
                    .map(|c| {
                        (
                            c.name.to_string(),
                            c.config_operation,
                            c.value.map(|v| v.to_string()),
                        )
                    })
                    .collect(),
            );
            (r.resource_type, r.resource_name, change)
        })
        .collect();
    let responses = alter_all(&ctx.broker, targets, req.validate_only, |a| {
        incremental_alter_configs_response::AlterConfigsResourceResponse::default()
            .with_error_code(a.code)
            .with_error_message(a.message)
            .with_resource_type(a.resource_type)
            .with_resource_name(a.name)
    });
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

/// The outcome for one resource of either request, in request order.
struct Altered {
    resource_type: i8,
    name: StrBytes,
    code: i16,
    message: Option<StrBytes>,
}

/// Applies each (resource type, name, change) in request order and makes
/// each outcome into the request's response type with `respond`; both alter
/// requests answer per resource the same way.
fn alter_all<T>(
    broker: &Broker,
    targets: Vec<(i8, StrBytes, Change)>,
    validate_only: bool,
    respond: impl Fn(Altered) -> T,
) -> Vec<T> {
    let duplicates = duplicate_resources(
        targets
            .iter()
            .map(|(resource_type, name, _)| (*resource_type, name.to_string())),
    );
    targets
        .into_iter()
        .map(|(resource_type, name, change)| {
            let result = if duplicates.contains(&(resource_type, name.to_string())) {
                Err(each_once())
            } else {
                alter_resource(broker, resource_type, &name, change, validate_only)
            };
            let (code, message) = split(result);
            respond(Altered {
                resource_type,
                name,
                code,
                message,
            })
        })
        .collect()
}

/// Kafka fails every copy of a resource named twice in one request.
fn duplicate_resources(ids: impl Iterator<Item = (i8, String)>) -> HashSet<(i8, String)> {
    let mut seen = HashSet::new();
    let mut dup = HashSet::new();
    for id in ids {
        if !seen.insert(id.clone()) {
            dup.insert(id);
        }
    }
    dup
}

fn each_once() -> Failure {
    (
        Code::InvalidRequest,
        "Each resource must appear at most once.".to_owned(),
    )
}

fn split(result: Result<(), Failure>) -> (i16, Option<StrBytes>) {
    match result {
        Ok(()) => (0, None),
        Err((code, msg)) => (code.code(), Some(StrBytes::from_string(msg))),
    }
}

fn alter_resource(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    change: Change,
    validate_only: bool,
) -> Result<(), Failure> {
    check_request_shape(&change)?;
    match resource_type {
        TOPIC => alter_topic(broker, name, change, validate_only),
        BROKER => alter_broker(broker, name, change, validate_only),
        other => Err((
            Code::InvalidRequest,
            format!("Unknown resource type {other}"),
        )),
    }
}

/// The checks Kafka makes before looking at any key: no key twice, a value
/// for everything but DELETE, and known operations.
fn check_request_shape(change: &Change) -> Result<(), Failure> {
    let entries: Vec<(&str, Option<i8>, bool)> = match change {
        Change::Replace(configs) => configs
            .iter()
            .map(|(k, v)| (k.as_str(), None, v.is_none()))
            .collect(),
        Change::Ops(ops) => ops
            .iter()
            .map(|(k, op, v)| (k.as_str(), Some(*op), v.is_none() && *op != DELETE))
            .collect(),
    };
    let mut seen = HashSet::new();
    if !entries.iter().all(|(k, _, _)| seen.insert(*k)) {
        return Err((
            Code::InvalidRequest,
            "Error due to duplicate config keys".to_owned(),
        ));
    }
    let nulls: Vec<&str> = entries
        .iter()
        .filter(|(_, _, null)| *null)
        .map(|(k, _, _)| *k)
        .collect();
    if !nulls.is_empty() {
        return Err((
            Code::InvalidRequest,
            format!("Null value not supported for : {}", nulls.join(", ")),
        ));
    }
    if let Some((_, Some(op), _)) = entries
        .iter()
        .find(|(_, op, _)| op.is_some_and(|o| !(SET..=SUBTRACT).contains(&o)))
    {
        return Err((
            Code::InvalidRequest,
            format!("Unknown operations type {op}"),
        ));
    }
    Ok(())
}

/// The stored set after the change. `kind` says whether a key takes APPEND
/// and SUBTRACT, and from which default an unset list starts.
fn apply_change(
    current: &IndexMap<String, String>,
    change: Change,
    kind: impl Fn(&str) -> KeyKind,
    not_a_list: impl Fn(&str, i8) -> Failure,
) -> Result<IndexMap<String, String>, Failure> {
    let ops = match change {
        Change::Replace(configs) => {
            return Ok(configs
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect())
        }
        Change::Ops(ops) => ops,
    };
    let mut next = current.clone();
    for (key, op, value) in ops {
        let value = value.unwrap_or_default();
        match op {
            SET => {
                next.insert(key, value);
            }
            DELETE => {
                next.shift_remove(&key);
            }
            _ => {
                let KeyKind::Alterable {
                    list: true,
                    default,
                } = kind(&key)
                else {
                    return Err(not_a_list(&key, op));
                };
                let base = next.get(&key).cloned().or(default).unwrap_or_default();
                let mut items: Vec<String> = base
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                // Kafka's LIST parsing: items trimmed, an empty value no items.
                let value = value.trim();
                let given = value.split(',').map(str::trim);
                for v in given.filter(|_| !value.is_empty()) {
                    if op == APPEND {
                        if !items.iter().any(|i| i == v) {
                            items.push(v.to_owned());
                        }
                    } else if let Some(at) = items.iter().position(|i| i == v) {
                        items.remove(at);
                    }
                }
                next.insert(key, items.join(","));
            }
        }
    }
    Ok(next)
}

fn op_name(op: i8) -> &'static str {
    if op == APPEND {
        "APPEND"
    } else {
        "SUBTRACT"
    }
}

fn alter_topic(
    broker: &Broker,
    name: &str,
    change: Change,
    validate_only: bool,
) -> Result<(), Failure> {
    if name.is_empty() {
        return Err((
            Code::InvalidRequest,
            "Default topic resources are not allowed.".to_owned(),
        ));
    }
    topic_name::validate(name).map_err(|e| (Code::InvalidTopicException, e))?;
    let image = broker.metadata.image();
    let topic = image.topic(name).cloned();
    let current = topic
        .as_ref()
        .map(|t| t.overrides.clone())
        .unwrap_or_default();
    let not_a_list = |key: &str, op: i8| {
        (
            Code::InvalidConfig,
            format!(
                "Can't {} to key {key} because its type is not LIST.",
                op_name(op)
            ),
        )
    };
    let next = apply_change(&current, change.clone(), config::topic_key_kind, not_a_list)?;
    // As Kafka's controller: the configs are validated before the topic's
    // existence is checked.
    broker
        .metadata
        .validate_topic_overrides(&next)
        .map_err(|e| metadata_failure(e, Code::InvalidConfig))?;
    let Some(topic) = topic else {
        return Err((
            Code::UnknownTopicOrPartition,
            format!("The topic '{name}' does not exist."),
        ));
    };
    if validate_only {
        return Ok(());
    }
    // Applied again to the overrides as they stand under the metadata lock:
    // another request may have changed them since `current` was read.
    broker
        .metadata
        .alter_topic_configs(
            topic.id,
            |now| {
                apply_change(now, change, config::topic_key_kind, not_a_list)
                    .map_err(Refusal::Refused)
            },
            |info| push_to_logs(broker, info),
        )
        .map_err(|e| match e {
            Refusal::Refused(f) => f,
            Refusal::Store(MetadataError::UnknownTopic(_)) => (
                Code::UnknownTopicOrPartition,
                format!("The topic '{name}' does not exist."),
            ),
            Refusal::Store(e) => metadata_failure(e, Code::InvalidConfig),
        })?;
    tracing::info!(topic = name, "altered topic configs");
    Ok(())
}

fn alter_broker(
    broker: &Broker,
    name: &str,
    change: Change,
    validate_only: bool,
) -> Result<(), Failure> {
    let node_id = broker.node_id();
    let resource = if name.is_empty() {
        String::new()
    } else {
        let id: i32 = name.parse().map_err(|_| {
            (
                Code::InvalidRequest,
                format!("Node id must be an integer, but it is: {name}"),
            )
        })?;
        if id != node_id {
            return Err((
                Code::InvalidRequest,
                format!("Unexpected broker id, expected {node_id}, but received {name}"),
            ));
        }
        node_id.to_string()
    };
    // Worked out under the metadata lock from the configs stored then, so
    // concurrent incremental changes are applied one after the other.
    broker
        .metadata
        .alter_broker_configs(
            &resource,
            |current| broker_change(current, change).map_err(Refusal::Refused),
            validate_only,
            |image| push_all_to_logs(broker, image),
        )
        .map_err(|e| match e {
            Refusal::Refused(f) => f,
            Refusal::Store(e) => metadata_failure(e, Code::InvalidRequest),
        })?;
    if !validate_only {
        tracing::info!(resource = %resource, "altered dynamic broker configs");
    }
    Ok(())
}

/// The dynamic configs of a broker resource after `change`; every key must
/// be one that can be changed at run time.
fn broker_change(
    current: &IndexMap<String, String>,
    change: Change,
) -> Result<IndexMap<String, String>, Failure> {
    let next = apply_change(current, change, config::broker_key_kind, |key, op| {
        match config::broker_key_kind(key) {
            KeyKind::Unknown => (Code::InvalidConfig, format!("Unknown config name: {key}")),
            _ => (
                Code::InvalidConfig,
                format!(
                    "Config value {} is not allowed for config key: {key}",
                    op_name(op).to_lowercase()
                ),
            ),
        }
    })?;
    let mut unknown = Vec::new();
    let mut read_only = Vec::new();
    for key in next.keys() {
        match config::broker_key_kind(key) {
            KeyKind::Unknown => unknown.push(key.as_str()),
            KeyKind::ReadOnly => read_only.push(key.as_str()),
            KeyKind::Alterable { .. } => {}
        }
    }
    // Kafka stores unknown broker keys without complaint; Runnel refuses
    // them, as kafka-configs.sh does, so a typo is not silently kept.
    if !unknown.is_empty() {
        return Err((
            Code::InvalidConfig,
            format!("Unknown broker config name: {}", unknown.join(", ")),
        ));
    }
    // Kafka answers static keys with INVALID_REQUEST (KAFKA-13609).
    if !read_only.is_empty() {
        return Err((
            Code::InvalidRequest,
            format!(
                "Cannot update these configs dynamically: Set({})",
                read_only.join(", ")
            ),
        ));
    }
    Ok(next)
}

/// Why a change worked out under the metadata lock did not happen: refused
/// as the request stands, or the store failed.
enum Refusal {
    Refused(Failure),
    Store(MetadataError),
}

impl From<MetadataError> for Refusal {
    fn from(e: MetadataError) -> Self {
        Refusal::Store(e)
    }
}

/// Every live partition log of the topic takes the new effective config.
fn push_to_logs(broker: &Broker, info: &TopicInfo) {
    for p in 0..info.partitions {
        if let Some(log) = broker.logs.get(&info.id, p) {
            log.set_config(info.config.clone());
        }
    }
}

fn push_all_to_logs(broker: &Broker, image: &MetadataImage) {
    for info in image.topics.values() {
        push_to_logs(broker, info);
    }
}

/// A config that does not validate is `invalid` (INVALID_CONFIG for
/// topics, INVALID_REQUEST for broker configs, as Kafka answers).
fn metadata_failure(e: MetadataError, invalid: Code) -> Failure {
    match e {
        MetadataError::Config(e) => (invalid, config_message(&e)),
        MetadataError::UnknownTopic(t) => (
            Code::UnknownTopicOrPartition,
            format!("The topic '{t}' does not exist."),
        ),
        other => {
            tracing::error!("altering configs failed: {other}");
            (Code::UnknownServerError, other.to_string())
        }
    }
}

/// Kafka's wording for the config errors clients show.
fn config_message(e: &ConfigError) -> String {
    match e {
        ConfigError::UnknownTopicConfig { key, .. } => format!("Unknown topic config name: {key}"),
        ConfigError::InvalidValue { key, value, reason }
        | ConfigError::Unsupported { key, value, reason } => {
            format!("Invalid value {value} for configuration {key}: {reason}")
        }
        other => other.to_string(),
    }
}

/// A topic's configs as they stand now: its overrides over the broker's
/// static and dynamic defaults (DescribeConfigs and CreateTopics answers).
pub(super) fn describe_topic(
    ctx: &RequestContext,
    dynamic: &config::DynamicBrokerConfigs,
    overrides: &indexmap::IndexMap<String, String>,
    keys: Option<&[String]>,
    include_synonyms: bool,
) -> Vec<DescribedConfig> {
    config::describe_topic(
        &ctx.broker.config,
        dynamic,
        &ctx.broker.metadata.topic_defaults(),
        overrides,
        keys,
        include_synonyms,
    )
}
