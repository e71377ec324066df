//! The group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit, TxnOffsetCommit, OffsetFetch, DescribeGroups,
//! ListGroups, DeleteGroups, OffsetDelete. Requests are translated for the owning shard
//! of the group coordinator (`coordinator::group`), and its answers shaped
//! for the request's version.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{str_bytes as s, Code, RequestContext, ResponseFuture, NO_ERROR};
use crate::broker::Broker;
use crate::coordinator::group::shard::{
    join_error, sync_error, CommitPartition, CommitRequest, FetchedOffset, JoinRequest, MemberRef,
    SyncRequest, TxnCommitRequest,
};
use crate::coordinator::group::OFFSETS_TOPIC;

/// FindCoordinator key types.
const KEY_GROUP: i8 = 0;
const KEY_TRANSACTION: i8 = 1;

/// DescribeGroups `authorized_operations` when the client did not ask.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;
/// READ (3), DELETE (6), DESCRIBE (8): what a group allows without ACLs.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

fn opt_string(v: &Option<StrBytes>) -> Option<String> {
    v.as_ref().map(|s| s.to_string())
}

// ---- FindCoordinator ------------------------------------------------------

pub fn find_coordinator(ctx: RequestContext, req: FindCoordinatorRequest) -> ResponseFuture {
    Box::pin(async move {
        let batched = ctx.version >= 4;
        let keys = if batched {
            req.coordinator_keys
        } else {
            vec![req.key]
        };
        let mut coordinators = Vec::with_capacity(keys.len());
        for key in keys {
            let code = match req.key_type {
                KEY_GROUP => match ctx.broker.groups.shard_of(&ctx.broker, &key).await {
                    Ok(_) => NO_ERROR,
                    Err(code) => code,
                },
                KEY_TRANSACTION => match ctx.broker.txns.shard_of(&ctx.broker, &key).await {
                    Ok(_) => NO_ERROR,
                    Err(code) => code,
                },
                _ => Code::InvalidRequest.code(),
            };
            coordinators.push(coordinator_for(&ctx, key, code));
        }
        let mut resp = FindCoordinatorResponse::default();
        if batched {
            resp.coordinators = coordinators;
        } else {
            let c = coordinators.pop().expect("one key");
            resp.error_code = c.error_code;
            resp.error_message = if ctx.version >= 1 {
                c.error_message
            } else {
                None
            };
            resp.node_id = c.node_id;
            resp.host = c.host;
            resp.port = c.port;
        }
        ctx.encode(&resp)
    })
}

fn coordinator_for(ctx: &RequestContext, key: StrBytes, code: i16) -> Coordinator {
    let mut c = Coordinator::default();
    c.key = key;
    c.error_code = code;
    if code == NO_ERROR {
        let advertised = ctx.advertised();
        c.node_id = BrokerId(ctx.broker.node_id());
        c.host = s(&advertised.host);
        c.port = advertised.port as i32;
    } else {
        c.node_id = BrokerId(-1);
        c.host = s("");
        c.port = -1;
        c.error_message =
            kafka_protocol::error::ResponseError::try_from_code(code).map(|e| s(&e.to_string()));
    }
    c
}

// ---- JoinGroup / SyncGroup / Heartbeat / LeaveGroup -------------------------

pub fn join_group(ctx: RequestContext, req: JoinGroupRequest) -> ResponseFuture {
    Box::pin(async move {
        let version = ctx.version;
        let group_id = req.group_id.to_string();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let join = JoinRequest {
            group_id: group_id.clone(),
            member_id: req.member_id.to_string(),
            group_instance_id: opt_string(&req.group_instance_id),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: if version >= 1 {
                req.rebalance_timeout_ms
            } else {
                req.session_timeout_ms
            },
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            client_id: ctx.client_id.clone().unwrap_or_default(),
            client_host: ctx.client_host.to_string(),
            require_known_member_id: version >= 4,
            reply: tx,
        };
        let broker = ctx.broker.clone();
        let queued = broker
            .groups
            .call(&broker, &group_id, move |shard, now, out| {
                shard.join(join, now, out)
            })
            .await;
        let mut resp = match queued {
            Ok(()) => rx.await.unwrap_or_else(|_| {
                join_error(Code::CoordinatorNotAvailable.code(), &req.member_id)
            }),
            Err(code) => join_error(code, &req.member_id),
        };
        shape_join(&mut resp, version);
        ctx.encode(&resp)
    })
}

/// Fields the version does not carry are cleared; names non-nullable before
/// v7 become "".
fn shape_join(resp: &mut JoinGroupResponse, version: i16) {
    if version < 7 {
        resp.protocol_type = None;
        if resp.protocol_name.is_none() {
            resp.protocol_name = Some(s(""));
        }
    }
    if version < 5 {
        for m in &mut resp.members {
            m.group_instance_id = None;
        }
    }
    if version < 9 {
        resp.skip_assignment = false;
    }
}

pub fn sync_group(ctx: RequestContext, req: SyncGroupRequest) -> ResponseFuture {
    Box::pin(async move {
        if ctx.version >= 5 && (req.protocol_type.is_none() || req.protocol_name.is_none()) {
            // Kafka: both are mandatory from v5.
            let code = Code::InconsistentGroupProtocol.code();
            return ctx.encode(&sync_error(code));
        }
        let group_id = req.group_id.to_string();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sync = SyncRequest {
            group_id: group_id.clone(),
            generation: req.generation_id,
            member_id: req.member_id.to_string(),
            group_instance_id: opt_string(&req.group_instance_id),
            protocol_type: opt_string(&req.protocol_type),
            protocol_name: opt_string(&req.protocol_name),
            assignments: req
                .assignments
                .iter()
                .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                .collect(),
            reply: tx,
        };
        let broker = ctx.broker.clone();
        let queued = broker
            .groups
            .call(&broker, &group_id, move |shard, now, out| {
                shard.sync(sync, now, out)
            })
            .await;
        let mut resp = match queued {
            Ok(()) => rx
                .await
                .unwrap_or_else(|_| sync_error(Code::CoordinatorNotAvailable.code())),
            Err(code) => sync_error(code),
        };
        if ctx.version < 5 {
            resp.protocol_type = None;
            resp.protocol_name = None;
        }
        ctx.encode(&resp)
    })
}

pub fn heartbeat(ctx: RequestContext, req: HeartbeatRequest) -> ResponseFuture {
    Box::pin(async move {
        let group_id = req.group_id.to_string();
        let member_id = req.member_id.to_string();
        let instance = opt_string(&req.group_instance_id);
        let generation = req.generation_id;
        let broker = ctx.broker.clone();
        let code = broker
            .groups
            .call(&broker, &req.group_id, move |shard, now, _| {
                shard.heartbeat(&group_id, generation, &member_id, instance.as_deref(), now)
            })
            .await
            .unwrap_or_else(|code| code);
        ctx.encode(&HeartbeatResponse::default().with_error_code(code))
    })
}

pub fn leave_group(ctx: RequestContext, req: LeaveGroupRequest) -> ResponseFuture {
    Box::pin(async move {
        let batched = ctx.version >= 3;
        let members: Vec<MemberRef> = if batched {
            req.members
                .iter()
                .map(|m| MemberRef {
                    member_id: m.member_id.to_string(),
                    group_instance_id: opt_string(&m.group_instance_id),
                })
                .collect()
        } else {
            vec![MemberRef {
                member_id: req.member_id.to_string(),
                group_instance_id: None,
            }]
        };
        let gid = req.group_id.to_string();
        let broker = ctx.broker.clone();
        let result = broker
            .groups
            .call(&broker, &req.group_id, move |shard, now, out| {
                shard.leave(&gid, &members, now, out)
            })
            .await
            .and_then(|r| r);
        let mut resp = LeaveGroupResponse::default();
        match result {
            Err(code) => resp.error_code = code,
            Ok(errors) if batched => {
                resp.members = req
                    .members
                    .iter()
                    .zip(errors)
                    .map(|(m, code)| {
                        MemberResponse::default()
                            .with_member_id(m.member_id.clone())
                            .with_group_instance_id(m.group_instance_id.clone())
                            .with_error_code(code)
                    })
                    .collect();
            }
            Ok(errors) => resp.error_code = errors.first().copied().unwrap_or(NO_ERROR),
        }
        ctx.encode(&resp)
    })
}

// ---- OffsetCommit / OffsetFetch / OffsetDelete ------------------------------

/// One partition of an (transactional) offset commit: UNKNOWN_TOPIC_OR_PARTITION
/// unless the topic has it. `(offset, leader epoch)`.
fn commit_partition(
    info: Option<&std::sync::Arc<crate::metadata::TopicInfo>>,
    topic: &str,
    partition: i32,
    (offset, leader_epoch): (i64, i32),
    metadata: &Option<StrBytes>,
) -> CommitPartition {
    let exists = info.is_some_and(|i| (0..i.partitions).contains(&partition));
    CommitPartition {
        topic: topic.to_string(),
        partition,
        offset,
        leader_epoch,
        metadata: opt_string(metadata),
        error: if exists {
            NO_ERROR
        } else {
            Code::UnknownTopicOrPartition.code()
        },
    }
}

pub fn offset_commit(ctx: RequestContext, req: OffsetCommitRequest) -> ResponseFuture {
    Box::pin(async move {
        let image = ctx.broker.metadata.image();
        let mut partitions = Vec::new();
        for t in &req.topics {
            let info = image.topic(t.name.as_str());
            for p in &t.partitions {
                let epoch = if ctx.version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                };
                partitions.push(commit_partition(
                    info,
                    &t.name,
                    p.partition_index,
                    (p.committed_offset, epoch),
                    &p.committed_metadata,
                ));
            }
        }
        let commit = CommitRequest {
            group_id: req.group_id.to_string(),
            generation: req.generation_id_or_member_epoch,
            member_id: req.member_id.to_string(),
            group_instance_id: opt_string(&req.group_instance_id),
            retention_ms: if (2..=4).contains(&ctx.version) {
                req.retention_time_ms
            } else {
                -1
            },
            partitions,
            api_version: ctx.version,
        };
        let count = commit.partitions.len();
        let broker = ctx.broker.clone();
        let errors = broker
            .groups
            .call(&broker, &req.group_id, move |shard, now, out| {
                shard.commit(commit, now, out)
            })
            .await
            .unwrap_or_else(|code| vec![code; count]);
        let mut errors = errors.into_iter();
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(errors.next().unwrap_or(NO_ERROR))
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        ctx.encode(&OffsetCommitResponse::default().with_topics(topics))
    })
}

/// TxnOffsetCommit v0-v4 (Kafka's `handleTxnOffsetCommitRequest` and
/// `commitTransactionalOffsets`): after the transaction is verified (the
/// offsets partition of the group must be in it), the offsets are written
/// as the producer's transactional records and stay pending until the
/// transaction coordinator's marker.
pub fn txn_offset_commit(ctx: RequestContext, req: TxnOffsetCommitRequest) -> ResponseFuture {
    Box::pin(async move {
        let image = ctx.broker.metadata.image();
        let mut partitions = Vec::new();
        for t in &req.topics {
            let info = image.topic(t.name.as_str());
            for p in &t.partitions {
                let epoch = if ctx.version >= 2 {
                    p.committed_leader_epoch
                } else {
                    -1
                };
                partitions.push(commit_partition(
                    info,
                    &t.name,
                    p.partition_index,
                    (p.committed_offset, epoch),
                    &p.committed_metadata,
                ));
            }
        }
        let count = partitions.len();
        let group_id = req.group_id.to_string();
        let errors = if partitions.iter().all(|p| p.error != NO_ERROR) {
            // Nothing left to commit (Kafka answers without the coordinator).
            partitions.iter().map(|p| p.error).collect()
        } else if group_id.is_empty() {
            vec![Code::InvalidGroupId.code(); count]
        } else {
            let commit = TxnCommitRequest {
                group_id: group_id.clone(),
                producer_id: req.producer_id.0,
                producer_epoch: req.producer_epoch,
                generation: req.generation_id,
                member_id: req.member_id.to_string(),
                group_instance_id: opt_string(&req.group_instance_id),
                partitions,
            };
            txn_commit(&ctx.broker, &req.transactional_id, commit, ctx.version)
                .await
                .unwrap_or_else(|code| vec![code; count])
        };
        let mut errors = errors.into_iter();
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        TxnOffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(errors.next().unwrap_or(NO_ERROR))
                    })
                    .collect();
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        ctx.encode(&TxnOffsetCommitResponse::default().with_topics(topics))
    })
}

/// Verifies the transaction for the group's offsets partition, then
/// commits on the group's shard; `Err` answers every partition.
async fn txn_commit(
    broker: &Arc<Broker>,
    transactional_id: &str,
    commit: TxnCommitRequest,
    version: i16,
) -> Result<Vec<i16>, i16> {
    let shard = broker.groups.shard_of(broker, &commit.group_id).await?;
    broker
        .txns
        .verify(
            transactional_id,
            commit.producer_id,
            commit.producer_epoch,
            OFFSETS_TOPIC,
            shard as i32,
        )
        .map_err(|code| {
            // v4+ clients know TRANSACTION_ABORTABLE (KIP-890), as Produce
            // v11+ do: the offsets partition is not in the transaction.
            if code == Code::InvalidTxnState.code() && version >= 4 {
                Code::TransactionAbortable.code()
            } else {
                code
            }
        })?;
    broker
        .groups
        .call_shard(broker, shard, move |s, now, out| {
            s.txn_commit(commit, now, out)
        })
        .await
}

type TopicPartitions = Vec<(String, Vec<i32>)>;

/// Committed offsets of one group, or a group-level error. With
/// `require_stable`, partitions with pending transactional offsets answer
/// UNSTABLE_OFFSET_COMMIT.
async fn fetch_group_offsets(
    broker: &Arc<Broker>,
    group_id: &str,
    topics: Option<TopicPartitions>,
    require_stable: bool,
) -> Result<Vec<(String, Vec<FetchedOffset>)>, i16> {
    let gid = group_id.to_owned();
    broker
        .groups
        .call(broker, group_id, move |shard, _, _| {
            shard.fetch_offsets_with(&gid, topics.as_deref(), require_stable)
        })
        .await
}

/// OffsetFetch v8+ (`groups`) topics.
fn grouped_topics(found: Vec<(String, Vec<FetchedOffset>)>) -> Vec<OffsetFetchResponseTopics> {
    let partition = |o: FetchedOffset| {
        OffsetFetchResponsePartitions::default()
            .with_partition_index(o.partition)
            .with_committed_offset(o.offset)
            .with_committed_leader_epoch(o.leader_epoch)
            .with_metadata(Some(s(&o.metadata)))
            .with_error_code(o.error)
    };
    found
        .into_iter()
        .map(|(topic, offsets)| {
            OffsetFetchResponseTopics::default()
                .with_name(TopicName(s(&topic)))
                .with_partitions(offsets.into_iter().map(partition).collect())
        })
        .collect()
}

/// OffsetFetch v1-v7 (one group) topics; the leader epoch exists from v5.
fn single_group_topics(
    found: Vec<(String, Vec<FetchedOffset>)>,
    version: i16,
) -> Vec<OffsetFetchResponseTopic> {
    let partition = |o: FetchedOffset| {
        OffsetFetchResponsePartition::default()
            .with_partition_index(o.partition)
            .with_committed_offset(o.offset)
            .with_committed_leader_epoch(if version >= 5 { o.leader_epoch } else { -1 })
            .with_metadata(Some(s(&o.metadata)))
            .with_error_code(o.error)
    };
    found
        .into_iter()
        .map(|(topic, offsets)| {
            OffsetFetchResponseTopic::default()
                .with_name(TopicName(s(&topic)))
                .with_partitions(offsets.into_iter().map(partition).collect())
        })
        .collect()
}

pub fn offset_fetch(ctx: RequestContext, req: OffsetFetchRequest) -> ResponseFuture {
    Box::pin(async move {
        let broker = ctx.broker.clone();
        let mut resp = OffsetFetchResponse::default();
        // v7+: isolation.level=read_committed consumers ask for offsets no
        // open transaction is about to change.
        let require_stable = ctx.version >= 7 && req.require_stable;
        if ctx.version >= 8 {
            for g in &req.groups {
                let topics = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                let mut group =
                    OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                match fetch_group_offsets(&broker, &g.group_id, topics, require_stable).await {
                    Ok(found) => group.topics = grouped_topics(found),
                    Err(code) => group.error_code = code,
                }
                resp.groups.push(group);
            }
        } else {
            let topics = req.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            match fetch_group_offsets(&broker, &req.group_id, topics, require_stable).await {
                Ok(found) => resp.topics = single_group_topics(found, ctx.version),
                Err(code) if ctx.version >= 2 => resp.error_code = code,
                Err(code) => {
                    // v1 has no top-level error: every partition carries it.
                    resp.topics = req
                        .topics
                        .iter()
                        .flatten()
                        .map(|t| {
                            OffsetFetchResponseTopic::default()
                                .with_name(t.name.clone())
                                .with_partitions(
                                    t.partition_indexes
                                        .iter()
                                        .map(|&p| {
                                            OffsetFetchResponsePartition::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(-1)
                                                .with_committed_leader_epoch(-1)
                                                .with_metadata(Some(s("")))
                                                .with_error_code(code)
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                }
            }
        }
        ctx.encode(&resp)
    })
}

pub fn offset_delete(ctx: RequestContext, req: OffsetDeleteRequest) -> ResponseFuture {
    Box::pin(async move {
        let partitions: Vec<(String, i32)> = req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.to_string(), p.partition_index))
            })
            .collect();
        let gid = req.group_id.to_string();
        let broker = ctx.broker.clone();
        let result = broker
            .groups
            .call(&broker, &req.group_id, move |shard, _, out| {
                shard.delete_offsets(&gid, &partitions, out)
            })
            .await
            .and_then(|r| r);
        let mut resp = OffsetDeleteResponse::default();
        match result {
            Err(code) => resp.error_code = code,
            Ok(errors) => {
                let mut errors = errors.into_iter();
                resp.topics = req
                    .topics
                    .iter()
                    .map(|t| {
                        OffsetDeleteResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        OffsetDeleteResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(errors.next().unwrap_or(NO_ERROR))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
            }
        }
        ctx.encode(&resp)
    })
}

// ---- DescribeGroups / ListGroups / DeleteGroups -----------------------------

pub fn describe_groups(ctx: RequestContext, req: DescribeGroupsRequest) -> ResponseFuture {
    Box::pin(async move {
        let broker = ctx.broker.clone();
        let mut groups = Vec::with_capacity(req.groups.len());
        for gid in &req.groups {
            let id = gid.to_string();
            let found = broker
                .groups
                .call(&broker, gid, move |shard, _, _| shard.describe(&id))
                .await;
            let mut g = DescribedGroup::default().with_group_id(gid.clone());
            g.authorized_operations = if req.include_authorized_operations {
                GROUP_OPERATIONS
            } else {
                OPERATIONS_NOT_REQUESTED
            };
            match found {
                Err(code) => {
                    g.error_code = code;
                    g.group_state = s("");
                }
                Ok(None) => {
                    // Kafka reports an unknown group as Dead; v6 (KIP-1043)
                    // adds GROUP_ID_NOT_FOUND.
                    g.group_state = s("Dead");
                    if ctx.version >= 6 {
                        g.error_code = Code::GroupIdNotFound.code();
                        g.error_message = Some(s(&format!("Group {} not found.", gid.as_str())));
                    }
                }
                Ok(Some(d)) => {
                    g.group_state = s(d.state.as_str());
                    g.protocol_type = s(&d.protocol_type);
                    g.protocol_data = s(&d.protocol);
                    g.members = d
                        .members
                        .into_iter()
                        .map(|m| {
                            let mut dm = DescribedGroupMember::default();
                            dm.member_id = s(&m.member_id);
                            dm.group_instance_id = if ctx.version >= 4 {
                                m.group_instance_id.as_deref().map(s)
                            } else {
                                None
                            };
                            dm.client_id = s(&m.client_id);
                            dm.client_host = s(&m.client_host);
                            dm.member_metadata = m.metadata;
                            dm.member_assignment = m.assignment;
                            dm
                        })
                        .collect();
                }
            }
            if ctx.version < 6 {
                g.error_message = None;
            }
            if g.error_code != NO_ERROR {
                g.authorized_operations = OPERATIONS_NOT_REQUESTED;
            }
            groups.push(g);
        }
        ctx.encode(&DescribeGroupsResponse::default().with_groups(groups))
    })
}

pub fn list_groups(ctx: RequestContext, req: ListGroupsRequest) -> ResponseFuture {
    Box::pin(async move {
        let broker = ctx.broker.clone();
        let states = &req.states_filter;
        let types: Vec<String> = req.types_filter.iter().map(|s| s.to_lowercase()).collect();
        let mut resp = ListGroupsResponse::default();
        // Every group here is a classic one.
        let type_ok = types.is_empty() || types.iter().any(|t| t == "classic");
        // Listing does not create __consumer_offsets: no coordinator, no groups.
        let shards = if type_ok {
            broker.groups.running_shards()
        } else {
            None
        };
        for shard in 0..shards.unwrap_or(0) {
            let listed = match broker
                .groups
                .call_shard(&broker, shard, |s, _, _| s.list())
                .await
            {
                Ok(listed) => listed,
                Err(code) => {
                    resp.error_code = code;
                    continue;
                }
            };
            for g in listed {
                let state = g.state.as_str();
                if !states.is_empty() && !states.iter().any(|f| f.eq_ignore_ascii_case(state)) {
                    continue;
                }
                let mut l = ListedGroup::default();
                l.group_id = GroupId(s(&g.group_id));
                l.protocol_type = s(&g.protocol_type);
                l.group_state = s(state);
                l.group_type = s("classic");
                resp.groups.push(l);
            }
        }
        ctx.encode(&resp)
    })
}

pub fn delete_groups(ctx: RequestContext, req: DeleteGroupsRequest) -> ResponseFuture {
    Box::pin(async move {
        let broker = ctx.broker.clone();
        let mut results = Vec::with_capacity(req.groups_names.len());
        for gid in &req.groups_names {
            let id = gid.to_string();
            let code = broker
                .groups
                .call(&broker, gid, move |shard, now, out| {
                    shard.delete_group(&id, now, out)
                })
                .await
                .unwrap_or_else(|code| code);
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(gid.clone())
                    .with_error_code(code),
            );
        }
        ctx.encode(&DeleteGroupsResponse::default().with_results(results))
    })
}
