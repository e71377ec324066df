//! The cluster-level admin APIs of a one-node cluster: DescribeCluster,
//! DescribeLogDirs, DescribeTopicPartitions, ElectLeaders and the partition
//! reassignment pair. Each answers as a single KRaft broker would: this node
//! is every partition's only replica, its leader and the controller.

use std::collections::BTreeSet;
use std::path::Path;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    DescribeClusterRequest, DescribeClusterResponse, DescribeLogDirsRequest,
    DescribeLogDirsResponse, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
    ElectLeadersRequest, ElectLeadersResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{str_bytes, Code, RequestContext};
use crate::metadata::{topic_name, TopicInfo};

/// "Authorized operations not requested".
pub(crate) const OPERATIONS_OMITTED: i32 = i32::MIN;

/// Without an authorizer Kafka reports every operation the resource type
/// supports (AclEntry.supportedOperations) as a bit field of AclOperation
/// codes. Cluster: CREATE 5, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9,
/// DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12.
pub(crate) const CLUSTER_OPERATIONS: i32 =
    1 << 5 | 1 << 7 | 1 << 8 | 1 << 9 | 1 << 10 | 1 << 11 | 1 << 12;
/// Topic: READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8,
/// DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11.
pub(crate) const TOPIC_OPERATIONS: i32 =
    1 << 3 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 8 | 1 << 10 | 1 << 11;

/// KIP-919 endpoint types.
const ENDPOINT_BROKER: i8 = 1;
const ENDPOINT_CONTROLLER: i8 = 2;

fn endpoint_name(t: i8) -> &'static str {
    match t {
        ENDPOINT_BROKER => "BROKER",
        _ => "CONTROLLER",
    }
}

fn topic_name_of(name: &str) -> TopicName {
    TopicName(str_bytes(name))
}

pub fn describe_cluster(
    ctx: &RequestContext,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let broker = &ctx.broker;
    // v0 carries no endpoint type (it decodes as the default, brokers).
    let wanted = req.endpoint_type;
    let refused = if wanted != ENDPOINT_BROKER && wanted != ENDPOINT_CONTROLLER {
        Some((
            Code::UnsupportedEndpointType,
            format!("Unsupported endpoint type {wanted}"),
        ))
    } else if wanted != ENDPOINT_BROKER {
        // A broker's listener is not a controller endpoint; clients are told
        // so, as Kafka's broker tells them.
        Some((
            Code::MismatchedEndpointType,
            format!(
                "The request was sent to an endpoint of type {}, but we wanted an endpoint of type {}",
                endpoint_name(ENDPOINT_BROKER),
                endpoint_name(wanted)
            ),
        ))
    } else {
        None
    };
    if let Some((code, message)) = refused {
        // Both codes came with KIP-919 (v1): INVALID_REQUEST before.
        let code = if ctx.version == 0 {
            Code::InvalidRequest
        } else {
            code
        };
        return DescribeClusterResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(&message)));
    }
    let advertised = ctx.advertised();
    let node = broker.node_id();
    let resp = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(broker.metadata.cluster_id()))
        .with_controller_id(BrokerId(node))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(node))
            .with_host(str_bytes(&advertised.host))
            .with_port(advertised.port as i32)
            // `broker.rack` is accepted but not carried by the config yet.
            .with_rack(None)])
        .with_cluster_authorized_operations(if req.include_cluster_authorized_operations {
            CLUSTER_OPERATIONS
        } else {
            OPERATIONS_OMITTED
        });
    if ctx.version >= 1 {
        resp.with_endpoint_type(ENDPOINT_BROKER)
    } else {
        resp
    }
}

/// DescribeLogDirs: the one log directory, with every partition (or those
/// asked for that exist here; others are left out, as Kafka does).
pub fn describe_log_dirs(
    ctx: &RequestContext,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let broker = &ctx.broker;
    let image = broker.metadata.image();
    let mut wanted: Vec<(&TopicInfo, Vec<i32>)> = Vec::new();
    match &req.topics {
        None => {
            for info in image.topics.values() {
                wanted.push((info, (0..info.partitions).collect()));
            }
        }
        Some(list) => {
            for t in list {
                let Some(info) = image.topic(t.topic.as_str()) else {
                    continue;
                };
                let parts: BTreeSet<i32> = t
                    .partitions
                    .iter()
                    .copied()
                    .filter(|p| (0..info.partitions).contains(p))
                    .collect();
                if let Some((_, existing)) = wanted.iter_mut().find(|(i, _)| i.id == info.id) {
                    existing.extend(parts);
                    existing.sort_unstable();
                    existing.dedup();
                } else if !parts.is_empty() {
                    wanted.push((info, parts.into_iter().collect()));
                }
            }
        }
    }
    let topics = wanted
        .into_iter()
        .filter_map(|(info, parts)| {
            let partitions: Vec<_> = parts
                .into_iter()
                .filter_map(|p| broker.logs.get(&info.id, p))
                .map(|log| {
                    DescribeLogDirsPartition::default()
                        .with_partition_index(log.partition)
                        .with_partition_size(log.size_bytes() as i64)
                        .with_offset_lag(0)
                        .with_is_future_key(false)
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                DescribeLogDirsTopic::default()
                    .with_name(topic_name_of(&info.name))
                    .with_partitions(partitions)
            })
        })
        .collect();
    let dir = broker.logs.dir();
    let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(&shown.to_string_lossy()))
        .with_topics(topics);
    if ctx.version >= 4 {
        let (total, usable) = disk_space(dir).unwrap_or((-1, -1));
        result = result.with_total_bytes(total).with_usable_bytes(usable);
    }
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// Total and usable bytes of the file system holding `dir`, as Java's
/// FileStore reports them (f_blocks and f_bavail times the fragment size).
#[allow(unsafe_code)]
fn disk_space(dir: &Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `path` is a valid NUL-terminated string and `st` a properly
    // sized, writable statvfs that the call fills in; nothing is retained.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut st) != 0 {
            return None;
        }
        st
    };
    let unit = st.f_frsize as u64;
    let total = (st.f_blocks as u64).saturating_mul(unit);
    let usable = (st.f_bavail as u64).saturating_mul(unit);
    Some((
        i64::try_from(total).unwrap_or(i64::MAX),
        i64::try_from(usable).unwrap_or(i64::MAX),
    ))
}

/// Kafka's cap on partitions per DescribeTopicPartitions response
/// (`max.request.partition.size.limit`, default 2000).
const MAX_RESPONSE_PARTITIONS: i32 = 2000;

/// DescribeTopicPartitions (KIP-966): topics sorted by name, paged by
/// partition count with a cursor.
pub fn describe_topic_partitions(
    ctx: &RequestContext,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let broker = &ctx.broker;
    let node = broker.node_id();
    let image = broker.metadata.image();
    let all = req.topics.is_empty();
    let cursor_topic = req
        .cursor
        .as_ref()
        .map_or(String::new(), |c| c.topic_name.to_string());
    let names: BTreeSet<String> = if all {
        image
            .topics
            .keys()
            .filter(|n| n.as_str() >= cursor_topic.as_str())
            .cloned()
            .collect()
    } else {
        req.topics
            .iter()
            .map(|t| t.name.to_string())
            .filter(|n| n.as_str() >= cursor_topic.as_str())
            .collect()
    };
    if let Some(c) = &req.cursor {
        if !all && !names.contains(c.topic_name.as_str()) {
            // The whole request fails; each topic asked for carries the error.
            let topics = req
                .topics
                .iter()
                .map(|t| {
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_error_code(Code::InvalidRequest.code())
                        .with_name(Some(t.name.clone()))
                })
                .collect();
            return DescribeTopicPartitionsResponse::default().with_topics(topics);
        }
    }
    let mut remaining = MAX_RESPONSE_PARTITIONS.min(req.response_partition_limit);
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names {
        if remaining == 0 {
            // Everything before was complete; the next page starts here.
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(topic_name_of(&name))
                    .with_partition_index(0),
            );
            break;
        }
        if remaining < 0 {
            break;
        }
        let Some(info) = image.topic(&name) else {
            if !all {
                let code = if topic_name::validate(&name).is_err() {
                    Code::InvalidTopicException
                } else {
                    Code::UnknownTopicOrPartition
                };
                topics.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_error_code(code.code())
                        .with_name(Some(topic_name_of(&name)))
                        .with_is_internal(topic_name::is_internal(&name))
                        .with_topic_authorized_operations(TOPIC_OPERATIONS),
                );
            }
            continue;
        };
        let start = if name == cursor_topic {
            req.cursor.as_ref().map_or(0, |c| c.partition_index.max(0))
        } else {
            0
        };
        let upper = info.partitions.min(start.saturating_add(remaining));
        let partitions: Vec<_> = (start..upper)
            .map(|p| {
                let epoch = broker.logs.get(&info.id, p).map_or(0, |l| l.leader_epoch());
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(p)
                    .with_leader_id(BrokerId(node))
                    .with_leader_epoch(epoch)
                    .with_replica_nodes(vec![BrokerId(node)])
                    .with_isr_nodes(vec![BrokerId(node)])
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new()))
                    .with_offline_replicas(Vec::new())
            })
            .collect();
        let count = partitions.len() as i32;
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(topic_name_of(&info.name)))
                .with_topic_id(info.id)
                .with_is_internal(info.is_internal())
                .with_partitions(partitions)
                .with_topic_authorized_operations(TOPIC_OPERATIONS),
        );
        if upper < info.partitions {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(topic_name_of(&info.name))
                    .with_partition_index(upper),
            );
            break;
        }
        remaining -= count;
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

/// ElectLeaders: this node already leads every partition and is its
/// preferred replica, so no election is ever needed.
pub fn elect_leaders(ctx: &RequestContext, req: ElectLeadersRequest) -> ElectLeadersResponse {
    let image = ctx.broker.metadata.image();
    // v0 has no type: it always asks for the preferred leader (0).
    if !(0..=1).contains(&req.election_type) {
        let code = Code::InvalidRequest.code();
        let msg = format!("Unknown election type {}", req.election_type);
        let results = req
            .topic_partitions
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                ReplicaElectionResult::default()
                    .with_topic(t.topic)
                    .with_partition_result(
                        t.partitions
                            .into_iter()
                            .map(|p| {
                                PartitionResult::default()
                                    .with_partition_id(p)
                                    .with_error_code(code)
                                    .with_error_message(Some(str_bytes(&msg)))
                            })
                            .collect(),
                    )
            })
            .collect();
        let resp = ElectLeadersResponse::default().with_replica_election_results(results);
        return if ctx.version >= 1 {
            resp.with_error_code(code)
        } else {
            resp
        };
    }
    let not_needed = || {
        (
            Code::ElectionNotNeeded.code(),
            Some(str_bytes("Leader election not needed for topic partition.")),
        )
    };
    let results = match req.topic_partitions {
        // All partitions: Kafka lists every topic but leaves out the
        // partitions that needed no election, which here is all of them.
        None => image
            .topics
            .values()
            .map(|info| ReplicaElectionResult::default().with_topic(topic_name_of(&info.name)))
            .collect(),
        Some(list) => list
            .into_iter()
            .map(|t| {
                let info = image.topic(t.topic.as_str());
                let partition_result = t
                    .partitions
                    .iter()
                    .map(|&p| {
                        let (code, msg) = match info {
                            None => (
                                Code::UnknownTopicOrPartition.code(),
                                Some(str_bytes(&format!("No such topic as {}", t.topic.as_str()))),
                            ),
                            Some(i) if !(0..i.partitions).contains(&p) => (
                                Code::UnknownTopicOrPartition.code(),
                                Some(str_bytes(&format!(
                                    "No such partition as {}-{p}",
                                    t.topic.as_str()
                                ))),
                            ),
                            Some(_) => not_needed(),
                        };
                        PartitionResult::default()
                            .with_partition_id(p)
                            .with_error_code(code)
                            .with_error_message(msg)
                    })
                    .collect();
                ReplicaElectionResult::default()
                    .with_topic(t.topic)
                    .with_partition_result(partition_result)
            })
            .collect(),
    };
    ElectLeadersResponse::default().with_replica_election_results(results)
}

/// ListPartitionReassignments: nothing is ever being reassigned; topics or
/// partitions that do not exist are simply not listed, as in Kafka.
pub fn list_partition_reassignments(
    _ctx: &RequestContext,
    _req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    // Kafka's controller sends a null message, not the schema's "".
    ListPartitionReassignmentsResponse::default().with_error_message(None)
}

/// AlterPartitionReassignments: moving a partition to exactly this broker is
/// a no-op; any other broker is unknown (INVALID_REPLICA_ASSIGNMENT), and a
/// cancellation finds nothing in progress.
pub fn alter_partition_reassignments(
    ctx: &RequestContext,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let node = ctx.broker.node_id();
    let image = ctx.broker.metadata.image();
    let responses = req
        .topics
        .into_iter()
        .map(|t| {
            let info = image.topic(t.name.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let (code, msg): (i16, Option<StrBytes>) = match info {
                        None => (
                            Code::UnknownTopicOrPartition.code(),
                            Some(str_bytes(&format!(
                                "Unable to find topic {}",
                                t.name.as_str()
                            ))),
                        ),
                        Some(i) if !(0..i.partitions).contains(&p.partition_index) => (
                            Code::UnknownTopicOrPartition.code(),
                            Some(str_bytes(&format!(
                                "Unable to find partition {}:{}",
                                t.name.as_str(),
                                p.partition_index
                            ))),
                        ),
                        Some(_) => match &p.replicas {
                            None => (Code::NoReassignmentInProgress.code(), None),
                            Some(replicas) => {
                                match super::topics::check_manual_assignment(replicas, node, None) {
                                    Ok(()) => (0, None),
                                    Err(m) => {
                                        (Code::InvalidReplicaAssignment.code(), Some(str_bytes(&m)))
                                    }
                                }
                            }
                        },
                    };
                    ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                        .with_error_message(msg)
                })
                .collect();
            ReassignableTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    let resp = AlterPartitionReassignmentsResponse::default()
        .with_error_message(None)
        .with_responses(responses);
    if ctx.version >= 1 {
        resp.with_allow_replication_factor_change(req.allow_replication_factor_change)
    } else {
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_bit_fields_match_kafka() {
        // Values a Kafka broker without an authorizer reports.
        assert_eq!(CLUSTER_OPERATIONS, 8096);
        assert_eq!(TOPIC_OPERATIONS, 3576);
    }

    #[test]
    fn disk_space_of_a_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (total, usable) = disk_space(dir.path()).unwrap();
        assert!(
            total > 0 && usable >= 0 && usable <= total,
            "{total} {usable}"
        );
        assert!(disk_space(Path::new("/no/such/dir")).is_none());
    }
}
