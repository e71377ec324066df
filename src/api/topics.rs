//! CreateTopics and DeleteTopics.

use std::collections::HashMap;

use indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::{Code, RequestContext};
use crate::config;
use crate::metadata::MetadataError;

fn message(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

pub fn create_topics(ctx: &RequestContext, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *seen.entry(t.name.to_string()).or_default() += 1;
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
    config::describe_topic(&ctx.broker.config, overrides, None, false)
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
