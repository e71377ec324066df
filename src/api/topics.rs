//! CreateTopics, DeleteTopics and CreatePartitions.

use std::collections::HashMap;

use indexmap::IndexMap;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{Code, RequestContext};
use crate::metadata::MetadataError;

fn message(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

pub fn create_topics(ctx: &RequestContext, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.to_string()).or_default() += 1;
    }
    // The records the valid topics would write (topic, partitions, configs),
    // counted before anything is created.
    let records: i64 = req
        .topics
        .iter()
        .filter(|t| seen.get(t.name.as_str()).copied().unwrap_or(0) == 1)
        .filter_map(|t| create_one(ctx, t, true).ok())
        .map(|(_, partitions, overrides)| 1 + i64::from(partitions) + overrides.len() as i64)
        .sum();
    if records > MAX_RECORDS_PER_REQUEST {
        let results = req
            .topics
            .into_iter()
            .map(|t| {
                let base = CreatableTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(Code::PolicyViolation.code())
                    .with_error_message(message(TOO_LARGE));
                if ctx.version >= 5 {
                    base.with_num_partitions(-1).with_replication_factor(-1)
                } else {
                    base
                }
            })
            .collect();
        return CreateTopicsResponse::default().with_topics(results);
    }
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let base = CreatableTopicResult::default().with_name(t.name.clone());
            if seen.get(t.name.as_str()).copied().unwrap_or(0) > 1 {
                return base
                    .with_error_code(Code::InvalidRequest.code())
                    .with_error_message(message(format!(
                        "Create topics request from client contains multiple entries for topic {}",
                        t.name.as_str()
                    )));
            }
            match create_one(ctx, &t, req.validate_only) {
                Ok((id, partitions, overrides)) => {
                    let configs = if ctx.version >= 5 {
                        Some(described_configs(ctx, &overrides))
                    } else {
                        None
                    };
                    // Partition count, replication factor and configs are
                    // v5+, the topic id v7+.
                    let base = if ctx.version >= 7 {
                        base.with_topic_id(id)
                    } else {
                        base
                    };
                    if ctx.version >= 5 {
                        base.with_num_partitions(partitions)
                            .with_replication_factor(1)
                            .with_configs(configs)
                    } else {
                        base
                    }
                }
                Err((code, msg)) => {
                    let base = base.with_error_code(code).with_error_message(message(msg));
                    if ctx.version >= 5 {
                        base.with_num_partitions(-1).with_replication_factor(-1)
                    } else {
                        base
                    }
                }
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

type CreateError = (i16, String);

fn create_one(
    ctx: &RequestContext,
    t: &CreatableTopic,
    validate_only: bool,
) -> Result<(Uuid, i32, IndexMap<String, String>), CreateError> {
    let broker = &ctx.broker;
    let name = t.name.as_str();
    let node = broker.node_id();
    let partitions = if !t.assignments.is_empty() {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err((
                Code::InvalidRequest.code(),
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
            ));
        }
        let mut indexes: Vec<i32> = t.assignments.iter().map(|a| a.partition_index).collect();
        indexes.sort_unstable();
        let contiguous = indexes.iter().enumerate().all(|(i, &p)| p == i as i32);
        let ours = t
            .assignments
            .iter()
            .all(|a| a.broker_ids.len() == 1 && a.broker_ids[0].0 == node);
        if !contiguous || !ours {
            return Err((
                Code::InvalidReplicaAssignment.code(),
                format!("Replica assignments must name partitions 0..n, each on broker {node} alone (single-node cluster)"),
            ));
        }
        indexes.len() as i32
    } else {
        match t.num_partitions {
            -1 => broker.config.num_partitions,
            n if n >= 1 => n,
            n => {
                return Err((
                    Code::InvalidPartitions.code(),
                    format!("Number of partitions was set to an invalid non-positive value: {n}"),
                ))
            }
        }
    };
    if t.assignments.is_empty() {
        let rf = if t.replication_factor == -1 {
            broker.config.default_replication_factor
        } else {
            t.replication_factor
        };
        if rf != 1 {
            return Err((
                Code::InvalidReplicationFactor.code(),
                format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only 1 broker(s) are registered."),
            ));
        }
    }
    let mut overrides = IndexMap::new();
    for c in &t.configs {
        match &c.value {
            Some(v) => {
                overrides.insert(c.name.to_string(), v.to_string());
            }
            None => {
                return Err((
                    Code::InvalidConfig.code(),
                    format!(
                        "Null value not supported for topic configs: {}",
                        c.name.as_str()
                    ),
                ));
            }
        }
    }
    let map_err = |e: MetadataError| -> CreateError {
        match e {
            MetadataError::TopicExists(n) => (
                Code::TopicAlreadyExists.code(),
                format!("Topic '{n}' already exists."),
            ),
            MetadataError::InvalidTopicName(m) => (Code::InvalidTopicException.code(), m),
            MetadataError::InvalidPartitions(n) => (
                Code::InvalidPartitions.code(),
                format!("Invalid number of partitions {n}"),
            ),
            MetadataError::Config(c) => (Code::InvalidConfig.code(), c.to_string()),
            other => {
                tracing::error!(topic = name, "create failed: {other}");
                (Code::UnknownServerError.code(), other.to_string())
            }
        }
    };
    if validate_only {
        broker
            .metadata
            .validate_new_topic(name, partitions, &overrides)
            .map_err(map_err)?;
        return Ok((Uuid::nil(), partitions, overrides));
    }
    let info = broker
        .create_topic(name, partitions, overrides)
        .map_err(map_err)?;
    Ok((info.id, info.partitions, info.overrides.clone()))
}

fn described_configs(
    ctx: &RequestContext,
    overrides: &IndexMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    let dynamic = ctx
        .broker
        .metadata
        .image()
        .dynamic_broker(ctx.broker.node_id());
    super::configs::describe_topic(ctx, &dynamic, overrides, None, false)
        .into_iter()
        .map(|c| {
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_string(c.name))
                .with_value(c.value.map(StrBytes::from_string))
                .with_read_only(c.read_only)
                .with_config_source(c.source as i8)
                .with_is_sensitive(c.is_sensitive)
        })
        .collect()
}

pub fn delete_topics(ctx: &RequestContext, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let broker = &ctx.broker;
    // v6 names topics by name or id; earlier versions by name only.
    let targets: Vec<(Option<TopicName>, Uuid)> = if ctx.version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n), Uuid::nil()))
            .collect()
    };
    let responses = targets
        .into_iter()
        .map(|(name, id)| {
            let result = DeletableTopicResult::default()
                .with_name(name.clone())
                .with_topic_id(id);
            let image = broker.metadata.image();
            let info = match (&name, id.is_nil()) {
                (Some(_), false) => {
                    return result
                        .with_error_code(Code::InvalidRequest.code())
                        .with_error_message(message(
                            "Topic name and topic id can not both be specified.",
                        ))
                        .with_topic_id(uuid::Uuid::nil())
                }
                (Some(n), true) => image
                    .topic(n.as_str())
                    .cloned()
                    .ok_or(Code::UnknownTopicOrPartition),
                (None, false) => image.topic_by_id(&id).cloned().ok_or(Code::UnknownTopicId),
                (None, true) => Err(Code::InvalidRequest),
            };
            match info {
                Err(code) => result.with_error_code(code.code()),
                // The coordinators' state lives there; Kafka refuses too.
                Ok(info) if info.is_internal() => result
                    .with_error_code(Code::InvalidTopicException.code())
                    .with_error_message(Some(StrBytes::from_static_str(
                        "Internal topics cannot be deleted",
                    ))),
                Ok(info) => match broker.delete_topic(info.id) {
                    Ok(info) => {
                        let result = result
                            .with_name(Some(TopicName(StrBytes::from_string(info.name.clone()))));
                        if ctx.version >= 6 {
                            result.with_topic_id(info.id)
                        } else {
                            result
                        }
                    }
                    Err(MetadataError::UnknownTopic(_)) => {
                        result.with_error_code(Code::UnknownTopicOrPartition.code())
                    }
                    Err(e) => {
                        tracing::error!("delete topic failed: {e}");
                        let result = result.with_error_code(Code::UnknownServerError.code());
                        if ctx.version >= 5 {
                            result.with_error_message(message(e.to_string()))
                        } else {
                            result
                        }
                    }
                },
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

/// CreatePartitions, answered as KRaft's controller does: the count must
/// grow, explicit assignments must name exactly the added partitions, each
/// on this broker alone (the only registered one).
pub fn create_partitions(
    ctx: &RequestContext,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.to_string()).or_default() += 1;
    }
    // Duplicated names first, one result each, as Kafka answers.
    let mut results = Vec::with_capacity(req.topics.len());
    let mut reported_duplicates = std::collections::HashSet::new();
    for t in &req.topics {
        let name = t.name.to_string();
        if seen.get(&name).copied().unwrap_or(0) > 1 && reported_duplicates.insert(name) {
            results.push(
                CreatePartitionsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(Code::InvalidRequest.code())
                    .with_error_message(message("Duplicate topic name.")),
            );
        }
    }
    // The partitions the valid topics would add, counted before any is made.
    let image = ctx.broker.metadata.image();
    let added: i64 = req
        .topics
        .iter()
        .filter(|t| seen.get(t.name.as_str()).copied().unwrap_or(0) == 1)
        .filter(|t| grow_one(ctx, t, true).is_ok())
        .filter_map(|t| {
            let info = image.topic(t.name.as_str())?;
            Some(i64::from(t.count) - i64::from(info.partitions))
        })
        .sum();
    if added > MAX_RECORDS_PER_REQUEST {
        let results = req
            .topics
            .into_iter()
            .map(|t| {
                CreatePartitionsTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(Code::PolicyViolation.code())
                    .with_error_message(message(TOO_LARGE))
            })
            .collect();
        return CreatePartitionsResponse::default().with_results(results);
    }
    for t in &req.topics {
        if seen.get(t.name.as_str()).copied().unwrap_or(0) > 1 {
            continue;
        }
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        results.push(match grow_one(ctx, t, req.validate_only) {
            Ok(()) => result,
            Err((code, msg)) => result.with_error_code(code).with_error_message(msg),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

fn grow_one(
    ctx: &RequestContext,
    t: &CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), (i16, Option<StrBytes>)> {
    let broker = &ctx.broker;
    let node = broker.node_id();
    let image = broker.metadata.image();
    let Some(info) = image.topic(t.name.as_str()) else {
        return Err((Code::UnknownTopicOrPartition.code(), None));
    };
    let current = info.partitions;
    if t.count == current {
        return Err((
            Code::InvalidPartitions.code(),
            message(format!("Topic already has {current} partition(s).")),
        ));
    }
    if t.count < current {
        return Err((
            Code::InvalidPartitions.code(),
            message(format!(
                "The topic {} currently has {current} partition(s); {} would not be an increase.",
                info.name, t.count
            )),
        ));
    }
    let additional = t.count - current;
    if let Some(assignments) = &t.assignments {
        if assignments.len() as i64 != additional as i64 {
            return Err((
                Code::InvalidReplicaAssignment.code(),
                message(format!(
                    "Attempted to add {additional} additional partition(s), but only {} assignment(s) were specified.",
                    assignments.len()
                )),
            ));
        }
        for a in assignments {
            check_manual_assignment(&a.broker_ids, node, Some(1))
                .map_err(|m| (Code::InvalidReplicaAssignment.code(), message(m)))?;
        }
    }
    if validate_only {
        return Ok(());
    }
    let logs = &broker.logs;
    match broker
        .metadata
        .create_partitions(
            info.id,
            t.count,
            |grown, from| {
                logs.create_partitions(grown, from)
                    .map_err(|source| MetadataError::Io {
                        path: logs.dir().to_path_buf(),
                        source,
                    })
            },
            |grown, from| {
                // The metadata write failed: what it does not record must
                // not stay live (or on disk) either.
                if let Err(e) = logs.forget_partitions(grown, from) {
                    tracing::error!(topic = %grown.name, from, "removing partitions after a failed metadata write: {e}");
                }
            },
        ) {
        Ok(grown) => {
            tracing::info!(topic = %grown.name, from = current, to = grown.partitions, "added partitions");
            Ok(())
        }
        // Deleted or grown by another request since the image was read.
        Err(MetadataError::UnknownTopic(_)) => Err((Code::UnknownTopicOrPartition.code(), None)),
        Err(MetadataError::InvalidPartitions(n)) => {
            let now = broker
                .metadata
                .image()
                .topic(t.name.as_str())
                .map_or(0, |i| i.partitions);
            Err((
                Code::InvalidPartitions.code(),
                message(format!(
                    "The topic {} currently has {now} partition(s); {n} would not be an increase.",
                    t.name.as_str()
                )),
            ))
        }
        Err(e) => {
            tracing::error!(topic = t.name.as_str(), "create partitions failed: {e}");
            Err((Code::UnknownServerError.code(), message(e.to_string())))
        }
    }
}

/// Kafka's controller refuses a request that would write more metadata
/// records than this (`MAX_RECORDS_PER_USER_OP`): every topic of it fails
/// with POLICY_VIOLATION. Here it also bounds the logs one request creates.
const MAX_RECORDS_PER_REQUEST: i64 = 10_000;
const TOO_LARGE: &str = "Unable to perform excessively large batch operation.";

/// Kafka's checks of a manual replica list (`validateManualPartitionAssignment`)
/// on a one-broker cluster: only `node` is registered. `replication_factor`
/// is the topic's, when the list must match it.
pub(crate) fn check_manual_assignment(
    replicas: &[BrokerId],
    node: i32,
    replication_factor: Option<usize>,
) -> Result<(), String> {
    if replicas.is_empty() {
        return Err("The manual partition assignment includes an empty replica list.".into());
    }
    let mut seen = std::collections::HashSet::new();
    for b in replicas {
        if b.0 != node {
            return Err(format!(
                "The manual partition assignment includes broker {}, but no such broker is registered.",
                b.0
            ));
        }
        if !seen.insert(b.0) {
            return Err(format!(
                "The manual partition assignment includes the broker {} more than once.",
                b.0
            ));
        }
    }
    if let Some(rf) = replication_factor {
        if replicas.len() != rf {
            return Err(format!(
                "The manual partition assignment includes a partition with {} replica(s), but this is not consistent with previous partitions, which have {rf} replica(s).",
                replicas.len()
            ));
        }
    }
    Ok(())
}
