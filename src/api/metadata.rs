//! Metadata: brokers, cluster id, controller, topics (auto-created when
//! asked and allowed), partitions with leader epochs.

use indexmap::IndexMap;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{Code, RequestContext};
use crate::metadata::{topic_name, MetadataError, TopicInfo};

use super::cluster::OPERATIONS_OMITTED as AUTHORIZED_OPERATIONS_OMITTED;

pub fn handle(ctx: &RequestContext, req: MetadataRequest) -> MetadataResponse {
    let broker = &ctx.broker;
    let node = broker.node_id();
    // v0–v3 have no flag: they always auto-create, as Kafka does.
    let may_create = broker.config.auto_create_topics_enable
        && (ctx.version < 4 || req.allow_auto_topic_creation);
    // Without an authorizer every supported operation is allowed (v8+).
    let with_operations = ctx.version >= 8 && req.include_topic_authorized_operations;
    let mut topics = Vec::new();
    match req.topics {
        // v0 sends an empty list for "all topics"; v1+ sends null.
        Some(ref list) if !(ctx.version == 0 && list.is_empty()) => {
            for t in list {
                let image = broker.metadata.image();
                // A non-zero id wins over the name, as in Kafka: the Java
                // client asks by id with the name left at its default "".
                let by_name = t
                    .name
                    .as_ref()
                    .filter(|_| t.topic_id.is_nil())
                    .map(|n| n.as_str().to_string());
                let found = match &by_name {
                    Some(name) => image.topic(name).cloned(),
                    None => image.topic_by_id(&t.topic_id).cloned(),
                };
                let entry = match (found, by_name) {
                    (Some(info), _) => describe_topic(&info, node, ctx.version, with_operations),
                    // The internal topic is created by the group coordinator.
                    (None, Some(name)) if may_create && !topic_name::is_internal(&name) => {
                        match broker.create_topic(
                            &name,
                            broker.config.num_partitions,
                            IndexMap::new(),
                        ) {
                            Ok(info) => describe_topic(&info, node, ctx.version, with_operations),
                            // Another connection created it first.
                            Err(MetadataError::TopicExists(_)) => {
                                match broker.metadata.image().topic(&name) {
                                    Some(info) => {
                                        describe_topic(info, node, ctx.version, with_operations)
                                    }
                                    None => error_topic(
                                        ctx.version,
                                        Some(name),
                                        t.topic_id,
                                        Code::UnknownTopicOrPartition.code(),
                                    ),
                                }
                            }
                            Err(MetadataError::InvalidTopicName(_)) => error_topic(
                                ctx.version,
                                Some(name),
                                t.topic_id,
                                Code::InvalidTopicException.code(),
                            ),
                            Err(e) => {
                                tracing::error!(topic = %name, "auto-create failed: {e}");
                                error_topic(
                                    ctx.version,
                                    Some(name),
                                    t.topic_id,
                                    Code::UnknownServerError.code(),
                                )
                            }
                        }
                    }
                    (None, Some(name)) => {
                        let code = if topic_name::validate(&name).is_err() {
                            Code::InvalidTopicException
                        } else {
                            Code::UnknownTopicOrPartition
                        };
                        error_topic(ctx.version, Some(name), t.topic_id, code.code())
                    }
                    (None, None) => {
                        error_topic(ctx.version, None, t.topic_id, Code::UnknownTopicId.code())
                    }
                };
                topics.push(entry);
            }
        }
        _ => {
            let image = broker.metadata.image();
            topics.extend(
                image
                    .topics
                    .values()
                    .map(|info| describe_topic(info, node, ctx.version, with_operations)),
            );
        }
    }
    let advertised = ctx.advertised();
    let cluster_id =
        (ctx.version >= 2).then(|| StrBytes::from_string(broker.metadata.cluster_id().to_string()));
    let controller = if ctx.version >= 1 { node } else { -1 };
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(node))
            .with_host(StrBytes::from_string(advertised.host.clone()))
            .with_port(advertised.port as i32)])
        .with_cluster_id(cluster_id)
        .with_controller_id(BrokerId(controller))
        .with_topics(topics)
        .with_cluster_authorized_operations(
            if ctx.version <= 10 && req.include_cluster_authorized_operations {
                super::cluster::CLUSTER_OPERATIONS
            } else {
                AUTHORIZED_OPERATIONS_OMITTED
            },
        )
}

/// Fields newer than the request's version must stay at their defaults or
/// the encoder refuses them: leader epochs are v7+, topic ids v10+.
fn describe_topic(
    info: &TopicInfo,
    node: i32,
    version: i16,
    with_operations: bool,
) -> MetadataResponseTopic {
    let partitions = (0..info.partitions)
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p)
                .with_leader_id(BrokerId(node))
                .with_leader_epoch(if version >= 7 { 0 } else { -1 })
                .with_replica_nodes(vec![BrokerId(node)])
                .with_isr_nodes(vec![BrokerId(node)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(info.name.clone()))))
        .with_topic_id(if version >= 10 {
            info.id
        } else {
            uuid::Uuid::nil()
        })
        .with_partitions(partitions)
        .with_is_internal(info.is_internal())
        .with_topic_authorized_operations(if with_operations {
            super::cluster::TOPIC_OPERATIONS
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        })
}

fn error_topic(
    version: i16,
    name: Option<String>,
    id: uuid::Uuid,
    code: i16,
) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code)
        // Names are nullable from v12 (topics asked for by id); before that
        // an absent name is "".
        .with_name(match name {
            Some(n) => Some(TopicName(StrBytes::from_string(n))),
            None if version >= 12 => None,
            None => Some(TopicName(StrBytes::from_string(String::new()))),
        })
        .with_topic_id(if version >= 10 { id } else { uuid::Uuid::nil() })
        .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
}
