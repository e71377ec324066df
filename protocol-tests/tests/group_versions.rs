//! The group APIs at every version the table in `runnel::protocol::apis`
//! advertises, over the wire: FindCoordinator, JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups,
//! ListGroups, DeleteGroups and OffsetDelete. A real single-member group is
//! driven through join (with KIP-394's MEMBER_ID_REQUIRED round from
//! JoinGroup v4), sync, heartbeat, commits and leave; then the error codes a
//! client meets on the wire, and `__consumer_offsets` as an internal topic.
//!
//! Requests are built per version: the encoder refuses a field a version does
//! not have when it is set.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use protocol_tests::*;

const PROTOCOL_TYPE: &str = "consumer";
const PROTOCOL: &str = "range";
/// Long enough that no member expires while a test runs on a busy machine.
const SESSION_MS: i32 = 30_000;

// Error codes (Kafka's `Errors`).
const OFFSET_METADATA_TOO_LARGE: i16 = 12;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const ILLEGAL_GENERATION: i16 = 22;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

/// DescribeGroups `authorized_operations` when not asked for.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;
/// AclOperation codes.
const OP_READ: i32 = 3;
const OP_DESCRIBE: i32 = 8;

// ---------------------------------------------------------------------------
// Consumer protocol payloads (ConsumerProtocolSubscription/Assignment v0)

fn put_str(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len() as i16);
    buf.put_slice(s.as_bytes());
}

fn subscription(topics: &[&str]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        put_str(&mut b, t);
    }
    b.put_i32(-1); // user data: null
    b.freeze()
}

fn assignment(topic: &str, partitions: &[i32]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(1);
    put_str(&mut b, topic);
    b.put_i32(partitions.len() as i32);
    for p in partitions {
        b.put_i32(*p);
    }
    b.put_i32(-1); // user data: null
    b.freeze()
}

// ---------------------------------------------------------------------------
// Request builders, per version

fn join_request(version: i16, group: &str, member_id: &str, metadata: &Bytes) -> JoinGroupRequest {
    let req = JoinGroupRequest::default()
        .with_group_id(gid(group))
        .with_session_timeout_ms(SESSION_MS)
        .with_member_id(str_bytes(member_id))
        .with_protocol_type(str_bytes(PROTOCOL_TYPE))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(str_bytes(PROTOCOL))
            .with_metadata(metadata.clone())]);
    let req = if version >= 1 {
        req.with_rebalance_timeout_ms(SESSION_MS)
    } else {
        req
    };
    if version >= 8 {
        req.with_reason(Some(str_bytes("protocol-tests")))
    } else {
        req
    }
}

fn sync_request(
    version: i16,
    group: &str,
    generation: i32,
    member_id: &str,
    assignments: &[(&str, Bytes)],
) -> SyncGroupRequest {
    let req = SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(str_bytes(member_id))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(str_bytes(m))
                        .with_assignment(a.clone())
                })
                .collect(),
        );
    if version >= 5 {
        req.with_protocol_type(Some(str_bytes(PROTOCOL_TYPE)))
            .with_protocol_name(Some(str_bytes(PROTOCOL)))
    } else {
        req
    }
}

fn heartbeat_request(group: &str, generation: i32, member_id: &str) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(str_bytes(member_id))
}

/// One committed partition: (topic, partition, offset, leader epoch, metadata).
type Commit<'a> = (&'a str, i32, i64, i32, Option<&'a str>);

fn commit_request(
    version: i16,
    group: &str,
    generation: i32,
    member_id: &str,
    commits: &[Commit],
) -> OffsetCommitRequest {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for &(topic, partition, offset, epoch, metadata) in commits {
        let mut p = OffsetCommitRequestPartition::default()
            .with_partition_index(partition)
            .with_committed_offset(offset)
            .with_committed_metadata(metadata.map(str_bytes));
        if version >= 6 {
            p = p.with_committed_leader_epoch(epoch);
        }
        match topics.iter_mut().find(|t| t.name.as_str() == topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![p]),
            ),
        }
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(str_bytes(member_id))
        .with_topics(topics);
    if version <= 4 {
        req.with_retention_time_ms(-1)
    } else {
        req
    }
}

/// Per-partition error codes of an OffsetCommit response, in order.
fn commit_errors(resp: &OffsetCommitResponse) -> Vec<(String, i32, i16)> {
    partition_errors!(resp.topics)
}

/// A group to fetch offsets of: its id and `(topic, partitions)`, or `None`
/// for every committed offset (OffsetFetch v2+).
type FetchGroup<'a> = (&'a str, Option<&'a [(&'a str, &'a [i32])]>);

/// One fetched offset: (group, topic, partition, offset, epoch, metadata, error).
type Fetched = (String, String, i32, i64, i32, String, i16);

/// Flattens an OffsetFetch response's topics (v1-v7 and v8+ use different
/// types with the same fields) into `Fetched` rows.
macro_rules! fetched {
    ($out:expr, $group:expr, $topics:expr) => {
        for t in $topics {
            for p in &t.partitions {
                $out.push((
                    $group,
                    t.name.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                    p.error_code,
                ));
            }
        }
    };
}

/// OffsetFetch at `version` of `groups` (several only from v8), with the
/// group-level errors.
async fn offset_fetch(
    c: &mut Client,
    version: i16,
    groups: &[FetchGroup<'_>],
) -> (Vec<Fetched>, Vec<i16>) {
    if version >= 8 {
        let req = OffsetFetchRequest::default()
            .with_require_stable(true)
            .with_groups(
                groups
                    .iter()
                    .map(|(g, topics)| {
                        OffsetFetchRequestGroup::default()
                            .with_group_id(gid(g))
                            .with_topics(topics.map(|ts| {
                                ts.iter()
                                    .map(|(t, ps)| {
                                        OffsetFetchRequestTopics::default()
                                            .with_name(topic_name(t))
                                            .with_partition_indexes(ps.to_vec())
                                    })
                                    .collect()
                            }))
                    })
                    .collect(),
            );
        let resp = c.call(version, &req).await;
        assert_eq!(resp.groups.len(), groups.len(), "v{version}: groups");
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (g, (want, _)) in resp.groups.iter().zip(groups) {
            assert_eq!(g.group_id.as_str(), *want, "v{version}: group order");
            errors.push(g.error_code);
            fetched!(out, want.to_string(), &g.topics);
        }
        (out, errors)
    } else {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (g, topics) in groups {
            let req = OffsetFetchRequest::default()
                .with_group_id(gid(g))
                .with_topics(topics.map(|ts| {
                    ts.iter()
                        .map(|(t, ps)| {
                            OffsetFetchRequestTopic::default()
                                .with_name(topic_name(t))
                                .with_partition_indexes(ps.to_vec())
                        })
                        .collect()
                }));
            let req = if version >= 7 {
                req.with_require_stable(true)
            } else {
                req
            };
            let resp = c.call(version, &req).await;
            errors.push(resp.error_code);
            fetched!(out, g.to_string(), &resp.topics);
        }
        (out, errors)
    }
}

fn describe_request(version: i16, groups: &[&str], include_ops: bool) -> DescribeGroupsRequest {
    let req = DescribeGroupsRequest::default().with_groups(groups.iter().map(|g| gid(g)).collect());
    if version >= 3 {
        req.with_include_authorized_operations(include_ops)
    } else {
        req
    }
}

async fn describe_one(c: &mut Client, version: i16, group: &str) -> DescribeGroupsResponse {
    let resp = c
        .call(version, &describe_request(version, &[group], false))
        .await;
    assert_eq!(resp.groups.len(), 1);
    resp
}

// ---------------------------------------------------------------------------
// Driving a group

/// A member of a formed group.
struct Member {
    id: String,
    generation: i32,
}

/// JoinGroup at `version` for a new member: v4+ first gets
/// MEMBER_ID_REQUIRED with the id to use, then joins with it. Returns the
/// final (successful) response.
async fn join(c: &mut Client, version: i16, group: &str, metadata: &Bytes) -> JoinGroupResponse {
    let mut resp = c
        .call(version, &join_request(version, group, "", metadata))
        .await;
    if version >= 4 {
        assert_eq!(
            resp.error_code, MEMBER_ID_REQUIRED,
            "JoinGroup v{version}: first join without an id"
        );
        assert_eq!(resp.generation_id, -1, "JoinGroup v{version}");
        assert!(
            resp.member_id.starts_with(&format!("{CLIENT_ID}-")),
            "JoinGroup v{version}: member id {:?} from the client id",
            resp.member_id.as_str()
        );
        let id = resp.member_id.to_string();
        resp = c
            .call(version, &join_request(version, group, &id, metadata))
            .await;
        assert_eq!(resp.member_id.as_str(), id, "JoinGroup v{version}: same id");
    }
    assert_eq!(resp.error_code, NONE, "JoinGroup v{version} ({group})");
    resp
}

/// A single-member consumer group subscribed to `topics`, synced with
/// `assignment` (JoinGroup v9, SyncGroup v5). The group is Stable after.
async fn form_group(c: &mut Client, group: &str, topics: &[&str], assigned: &Bytes) -> Member {
    let joined = join(c, 9, group, &subscription(topics)).await;
    let id = joined.member_id.to_string();
    let synced = c
        .call(
            5,
            &sync_request(
                5,
                group,
                joined.generation_id,
                &id,
                &[(&id, assigned.clone())],
            ),
        )
        .await;
    assert_eq!(synced.error_code, NONE, "SyncGroup ({group})");
    assert_eq!(synced.assignment, *assigned);
    Member {
        id,
        generation: joined.generation_id,
    }
}

/// An Empty group that only stores offsets (assign(): generation -1, no
/// member), created by committing `offset` to `topic`-0.
async fn assign_only_group(c: &mut Client, group: &str, topic: &str, offset: i64) {
    let resp = c
        .call(
            8,
            &commit_request(8, group, -1, "", &[(topic, 0, offset, -1, Some("assign"))]),
        )
        .await;
    assert_eq!(
        commit_errors(&resp),
        [(topic.to_owned(), 0, NONE)],
        "{group}"
    );
}

// ---------------------------------------------------------------------------
// FindCoordinator

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn find_coordinator_every_version() {
    let b = TestBroker::start_small_offsets().await;
    let mut c = b.connect().await;
    let (node, host, port) = c.advertised().await;
    assert_eq!(node, b.handle().broker.node_id());
    for v in versions(ApiKey::FindCoordinator) {
        if v <= 3 {
            let req = FindCoordinatorRequest::default().with_key(str_bytes(&format!("fc-v{v}")));
            let resp = c.call(v, &req).await;
            assert_single_coordinator(&resp, (node, &host, port), v);
            if v >= 1 {
                for (key_type, want) in [(0, NONE), (1, NONE), (7, INVALID_REQUEST)] {
                    let req = FindCoordinatorRequest::default()
                        .with_key(str_bytes("k"))
                        .with_key_type(key_type);
                    let resp = c.call(v, &req).await;
                    assert_eq!(resp.error_code, want, "v{v} key_type {key_type}");
                    if want != NONE {
                        assert_eq!(resp.node_id.0, -1, "v{v} key_type {key_type}");
                        assert_eq!(resp.port, -1, "v{v} key_type {key_type}");
                    }
                }
            }
        } else {
            let keys = ["fc-a", "fc-b", "fc-c", "fc-d"];
            for (key_type, want) in [(0, NONE), (1, NONE), (7, INVALID_REQUEST)] {
                let req = FindCoordinatorRequest::default()
                    .with_key_type(key_type)
                    .with_coordinator_keys(keys.iter().map(|k| str_bytes(k)).collect());
                let resp = c.call(v, &req).await;
                assert_eq!(
                    resp.coordinators.len(),
                    keys.len(),
                    "v{v} key_type {key_type}"
                );
                for (co, key) in resp.coordinators.iter().zip(keys) {
                    assert_eq!(co.key.as_str(), key, "v{v}: keys in order");
                    assert_eq!(co.error_code, want, "v{v} key_type {key_type} {key}");
                    if want == NONE {
                        assert_eq!(
                            (co.node_id.0, co.host.as_str(), co.port),
                            (node, host.as_str(), port),
                            "v{v} {key}"
                        );
                    } else {
                        assert_eq!(co.node_id.0, -1, "v{v} key_type {key_type}");
                        assert!(co.error_message.is_some(), "v{v} key_type {key_type}");
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// JoinGroup / SyncGroup / Heartbeat

/// One group per JoinGroup version: the single member is the leader, gets a
/// generation >= 1 and itself in `members`; SyncGroup (v0-5 across the
/// groups) hands back the leader's assignment; Heartbeat answers 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_sync_heartbeat_every_version() {
    let b = TestBroker::start_small_offsets().await;
    let mut c = b.connect().await;
    c.create_topic("jt", 2).await;
    let sub = subscription(&["jt"]);
    let assigned = assignment("jt", &[0, 1]);
    let mut last = None;
    for v in versions(ApiKey::JoinGroup) {
        let group = format!("join-v{v}");
        let resp = join(&mut c, v, &group, &sub).await;
        let id = resp.member_id.to_string();
        if v < 4 {
            assert!(
                id.starts_with(&format!("{CLIENT_ID}-")),
                "v{v}: member id {id:?}"
            );
        }
        assert!(resp.generation_id >= 1, "v{v}: generation");
        assert_eq!(resp.leader.as_str(), id, "v{v}: the only member leads");
        assert_eq!(
            resp.protocol_name.as_ref().map(|p| p.as_str()),
            Some(PROTOCOL),
            "v{v}"
        );
        if v >= 7 {
            assert_eq!(
                resp.protocol_type.as_ref().map(|p| p.as_str()),
                Some(PROTOCOL_TYPE),
                "v{v}"
            );
        }
        assert!(!resp.skip_assignment, "v{v}");
        assert_eq!(resp.members.len(), 1, "v{v}: the leader sees the members");
        let m = &resp.members[0];
        assert_eq!(m.member_id.as_str(), id, "v{v}");
        assert_eq!(m.group_instance_id, None, "v{v}");
        assert_eq!(m.metadata, sub, "v{v}: the member's subscription");

        let sv = v.min(*versions(ApiKey::SyncGroup).end());
        let synced = c
            .call(
                sv,
                &sync_request(
                    sv,
                    &group,
                    resp.generation_id,
                    &id,
                    &[(&id, assigned.clone())],
                ),
            )
            .await;
        assert_eq!(synced.error_code, NONE, "SyncGroup v{sv}");
        assert_eq!(synced.assignment, assigned, "SyncGroup v{sv}");
        if sv >= 5 {
            assert_eq!(
                synced.protocol_type.as_ref().map(|p| p.as_str()),
                Some(PROTOCOL_TYPE)
            );
            assert_eq!(
                synced.protocol_name.as_ref().map(|p| p.as_str()),
                Some(PROTOCOL)
            );
        }

        let hv = v.min(*versions(ApiKey::Heartbeat).end());
        let hb = c
            .call(hv, &heartbeat_request(&group, resp.generation_id, &id))
            .await;
        assert_eq!(hb.error_code, NONE, "Heartbeat v{hv}");

        let d = describe_one(&mut c, 5, &group).await;
        assert_eq!(
            d.groups[0].group_state.as_str(),
            "Stable",
            "after JoinGroup v{v}"
        );
        last = Some((group, id, resp.generation_id));
    }

    // On a Stable group every SyncGroup version returns the assignment and
    // every Heartbeat version answers 0.
    let (group, id, generation) = last.expect("a group");
    for v in versions(ApiKey::SyncGroup) {
        let synced = c
            .call(v, &sync_request(v, &group, generation, &id, &[]))
            .await;
        assert_eq!(synced.error_code, NONE, "SyncGroup v{v} (Stable)");
        assert_eq!(synced.assignment, assigned, "SyncGroup v{v} (Stable)");
    }
    for v in versions(ApiKey::Heartbeat) {
        let hb = c.call(v, &heartbeat_request(&group, generation, &id)).await;
        assert_eq!(hb.error_code, NONE, "Heartbeat v{v}");
    }
}

/// A static member (group.instance.id, JoinGroup v5+) joins at once, without
/// the MEMBER_ID_REQUIRED round, and is listed with its instance id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_member_joins_directly() {
    let b = TestBroker::start_small_offsets().await;
    let mut c = b.connect().await;
    let sub = subscription(&["st"]);
    for v in 5..=*versions(ApiKey::JoinGroup).end() {
        let group = format!("static-v{v}");
        let instance = format!("instance-{v}");
        let req =
            join_request(v, &group, "", &sub).with_group_instance_id(Some(str_bytes(&instance)));
        let resp = c.call(v, &req).await;
        assert_eq!(resp.error_code, NONE, "v{v}");
        assert!(
            resp.member_id.starts_with(&format!("{instance}-")),
            "v{v}: {:?}",
            resp.member_id.as_str()
        );
        assert_eq!(resp.members.len(), 1, "v{v}");
        assert_eq!(
            resp.members[0]
                .group_instance_id
                .as_ref()
                .map(|i| i.as_str()),
            Some(instance.as_str()),
            "v{v}"
        );
        let synced = c
            .call(
                3,
                &sync_request(3, &group, resp.generation_id, &resp.member_id, &[])
                    .with_group_instance_id(Some(str_bytes(&instance))),
            )
            .await;
        assert_eq!(synced.error_code, NONE, "v{v}: SyncGroup v3");
        let d = c.call(4, &describe_request(4, &[&group], false)).await;
        let m = &d.groups[0].members[0];
        assert_eq!(
            m.group_instance_id.as_ref().map(|i| i.as_str()),
            Some(instance.as_str()),
            "DescribeGroups v4: instance id"
        );
    }
}

// ---------------------------------------------------------------------------
// OffsetCommit / OffsetFetch

/// OffsetCommit at each version (partition `v - min`) in a real group with its
/// generation and member id, and in an assign-only group with -1/""; then
/// OffsetFetch at each version returns offset, metadata and (fetch v5+,
/// commit v6+) leader epoch, per partition and as "all offsets" (v2+).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_commit_and_fetch_every_version() {
    let b = TestBroker::start_small_offsets().await;
    let mut c = b.connect().await;
    let commit_versions = versions(ApiKey::OffsetCommit);
    let n = commit_versions.len() as i32;
    // One partition per commit version plus one never committed.
    c.create_topic("oc", n + 1).await;
    let member = form_group(&mut c, "oc-group", &["oc"], &assignment("oc", &[0])).await;

    let offset_of = |group: &str, v: i16| -> i64 {
        if group == "oc-group" {
            100 + v as i64
        } else {
            200 + v as i64
        }
    };
    for v in commit_versions.clone() {
        let p = (v - commit_versions.start()) as i32;
        let meta = format!("m{v}");
        for (group, generation, member_id) in [
            ("oc-group", member.generation, member.id.as_str()),
            ("oc-assign", -1, ""),
        ] {
            let req = commit_request(
                v,
                group,
                generation,
                member_id,
                &[("oc", p, offset_of(group, v), 10 + v as i32, Some(&meta))],
            );
            let resp = c.call(v, &req).await;
            assert_eq!(
                commit_errors(&resp),
                [("oc".to_owned(), p, NONE)],
                "OffsetCommit v{v} {group}"
            );
        }
    }

    let all: Vec<i32> = (0..=n).collect();
    let asked: [(&str, &[i32]); 1] = [("oc", &all)];
    for fv in versions(ApiKey::OffsetFetch) {
        let groups: [FetchGroup; 2] = [("oc-group", Some(&asked)), ("oc-assign", Some(&asked))];
        let (fetched, errors) = offset_fetch(&mut c, fv, &groups).await;
        assert_eq!(errors, [NONE, NONE], "OffsetFetch v{fv}");
        assert_eq!(
            fetched.len(),
            2 * all.len(),
            "OffsetFetch v{fv}: {fetched:?}"
        );
        for (group, topic, p, offset, epoch, metadata, error) in &fetched {
            assert_eq!(topic, "oc");
            assert_eq!(*error, NONE, "OffsetFetch v{fv} {group} p{p}");
            if *p == n {
                assert_eq!(
                    (*offset, *epoch, metadata.as_str()),
                    (-1, -1, ""),
                    "OffsetFetch v{fv} {group}: uncommitted p{p}"
                );
                continue;
            }
            let cv = commit_versions.start() + *p as i16;
            let want_epoch = if fv >= 5 && cv >= 6 {
                10 + cv as i32
            } else {
                -1
            };
            assert_eq!(
                (*offset, *epoch, metadata.clone()),
                (offset_of(group, cv), want_epoch, format!("m{cv}")),
                "OffsetFetch v{fv} {group}: p{p} committed at v{cv}"
            );
        }
        if fv >= 2 {
            let groups: [FetchGroup; 2] = [("oc-group", None), ("oc-assign", None)];
            let (fetched, errors) = offset_fetch(&mut c, fv, &groups).await;
            assert_eq!(errors, [NONE, NONE], "OffsetFetch v{fv} (all)");
            let mut got: Vec<(String, i32, i64)> = fetched
                .iter()
                .map(|(g, _, p, o, ..)| (g.clone(), *p, *o))
                .collect();
            got.sort();
            let mut want: Vec<(String, i32, i64)> = Vec::new();
            for g in ["oc-assign", "oc-group"] {
                for v in commit_versions.clone() {
                    want.push((
                        g.to_owned(),
                        (v - commit_versions.start()) as i32,
                        offset_of(g, v),
                    ));
                }
            }
            want.sort();
            assert_eq!(got, want, "OffsetFetch v{fv}: all committed offsets");
        }
    }
}

// ---------------------------------------------------------------------------
// DescribeGroups / ListGroups

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_groups_every_version() {
    let b = TestBroker::start_small_offsets().await;
    let mut c = b.connect().await;
    c.create_topic("dg", 1).await;
    let sub = subscription(&["dg"]);
    let assigned = assignment("dg", &[0]);
    let member = form_group(&mut c, "dg-group", &["dg"], &assigned).await;
    for v in versions(ApiKey::DescribeGroups) {
        let asks: &[bool] = if v >= 3 { &[false, true] } else { &[false] };
        for &include_ops in asks {
            let req = describe_request(v, &["dg-group", "dg-nobody"], include_ops);
            let resp = c.call(v, &req).await;
            assert_eq!(resp.groups.len(), 2, "v{v}");
            let g = &resp.groups[0];
            assert_eq!(g.group_id.as_str(), "dg-group");
            assert_eq!(g.error_code, NONE, "v{v}");
            assert_eq!(g.group_state.as_str(), "Stable", "v{v}");
            assert_eq!(g.protocol_type.as_str(), PROTOCOL_TYPE, "v{v}");
            assert_eq!(g.protocol_data.as_str(), PROTOCOL, "v{v}");
            assert_eq!(g.members.len(), 1, "v{v}");
            let m = &g.members[0];
            assert_eq!(m.member_id.as_str(), member.id, "v{v}");
            assert_eq!(m.group_instance_id, None, "v{v}");
            assert_eq!(m.client_id.as_str(), CLIENT_ID, "v{v}");
            assert_eq!(m.client_host.as_str(), "/127.0.0.1", "v{v}");
            assert_eq!(m.member_metadata, sub, "v{v}");
            assert_eq!(m.member_assignment, assigned, "v{v}");
            if v >= 3 {
                if include_ops {
                    let ops = g.authorized_operations;
                    assert_ne!(ops, OPERATIONS_NOT_REQUESTED, "v{v}");
                    for op in [OP_READ, OP_DESCRIBE] {
                        assert_ne!(ops & (1 << op), 0, "v{v}: operation {op} in {ops:#x}");
                    }
                } else {
                    assert_eq!(g.authorized_operations, OPERATIONS_NOT_REQUESTED, "v{v}");
                }
            }

            let unknown = &resp.groups[1];
            assert_eq!(unknown.group_id.as_str(), "dg-nobody");
            assert_eq!(unknown.group_state.as_str(), "Dead", "v{v}: unknown group");
            assert!(unknown.members.is_empty());
            if v >= 6 {
                assert_eq!(unknown.error_code, GROUP_ID_NOT_FOUND, "v{v}");
                assert!(unknown.error_message.is_some(), "v{v}");
            } else {
                assert_eq!(unknown.error_code, NONE, "v{v}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_groups_every_version() {
    let b = TestBroker::start_small_offsets().await;
    let mut c = b.connect().await;
    // Listing before any coordinator lookup: no groups, and no
    // __consumer_offsets created by it.
    let resp = c.call(4, &ListGroupsRequest::default()).await;
    assert_eq!(resp.error_code, NONE);
    assert!(resp.groups.is_empty());
    let md = c.call(12, &metadata_request(12, None, false)).await;
    assert!(
        md.topics
            .iter()
            .all(|t| t.name.as_ref().map(|n| n.as_str()) != Some(OFFSETS_TOPIC)),
        "ListGroups created {OFFSETS_TOPIC}"
    );

    c.create_topic("lg", 1).await;
    form_group(&mut c, "lg-stable", &["lg"], &assignment("lg", &[0])).await;
    assign_only_group(&mut c, "lg-empty", "lg", 3).await;

    let list = |resp: &ListGroupsResponse| -> Vec<(String, String, String, String)> {
        let mut v: Vec<_> = resp
            .groups
            .iter()
            .map(|g| {
                (
                    g.group_id.to_string(),
                    g.protocol_type.to_string(),
                    g.group_state.to_string(),
                    g.group_type.to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    for v in versions(ApiKey::ListGroups) {
        let resp = c.call(v, &ListGroupsRequest::default()).await;
        assert_eq!(resp.error_code, NONE, "v{v}");
        let state = |s: &str| if v >= 4 { s.to_owned() } else { String::new() };
        let kind = if v >= 5 { "classic" } else { "" };
        let stable = (
            "lg-stable".to_owned(),
            PROTOCOL_TYPE.to_owned(),
            state("Stable"),
            kind.to_owned(),
        );
        let empty = (
            "lg-empty".to_owned(),
            String::new(),
            state("Empty"),
            kind.to_owned(),
        );
        assert_eq!(list(&resp), [empty.clone(), stable.clone()], "v{v}");
        if v >= 4 {
            for (filter, want) in [
                (vec!["Stable"], vec![stable.clone()]),
                (vec!["Empty"], vec![empty.clone()]),
                (vec!["Empty", "Stable"], vec![empty.clone(), stable.clone()]),
                (vec!["Dead"], vec![]),
            ] {
                let req = ListGroupsRequest::default()
                    .with_states_filter(filter.iter().map(|s| str_bytes(s)).collect());
                let resp = c.call(v, &req).await;
                assert_eq!(list(&resp), want, "v{v} states {filter:?}");
            }
        }
        if v >= 5 {
            for (filter, want) in [
                ("classic", vec![empty.clone(), stable.clone()]),
                ("consumer", vec![]),
            ] {
                let req = ListGroupsRequest::default().with_types_filter(vec![str_bytes(filter)]);
                let resp = c.call(v, &req).await;
                assert_eq!(list(&resp), want, "v{v} types [{filter}]");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// LeaveGroup / DeleteGroups / OffsetDelete

/// Waits (bounded) until `group` reports `state`.
async fn wait_for_state(c: &mut Client, group: &str, state: &str) -> DescribeGroupsResponse {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let resp = describe_one(c, 5, group).await;
        if resp.groups[0].group_state.as_str() == state {
            return resp;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{group}: state {:?}, never {state}",
            resp.groups[0].group_state.as_str()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_group_every_version() {
    let b = TestBroker::start_small_offsets().await;
    let mut c = b.connect().await;
    c.create_topic("lv", 1).await;
    let assigned = assignment("lv", &[0]);
    for v in versions(ApiKey::LeaveGroup) {
        let group = format!("leave-v{v}");
        let member = form_group(&mut c, &group, &["lv"], &assigned).await;
        let req = LeaveGroupRequest::default().with_group_id(gid(&group));
        if v <= 2 {
            let unknown = c
                .call(v, &req.clone().with_member_id(str_bytes("nobody")))
                .await;
            assert_eq!(
                unknown.error_code, UNKNOWN_MEMBER_ID,
                "v{v}: unknown member"
            );
            let resp = c.call(v, &req.with_member_id(str_bytes(&member.id))).await;
            assert_eq!(resp.error_code, NONE, "v{v}");
        } else {
            let identity = |id: &str| {
                let m = MemberIdentity::default().with_member_id(str_bytes(id));
                if v >= 5 {
                    m.with_reason(Some(str_bytes("protocol-tests leaving")))
                } else {
                    m
                }
            };
            let resp = c
                .call(
                    v,
                    &req.with_members(vec![identity(&member.id), identity("nobody")]),
                )
                .await;
            assert_eq!(resp.error_code, NONE, "v{v}");
            let got: Vec<(String, i16)> = resp
                .members
                .iter()
                .map(|m| (m.member_id.to_string(), m.error_code))
                .collect();
            assert_eq!(
                got,
                [
                    (member.id.clone(), NONE),
                    ("nobody".to_owned(), UNKNOWN_MEMBER_ID)
                ],
                "v{v}: per-member results"
            );
        }
        let d = wait_for_state(&mut c, &group, "Empty").await;
        assert!(d.groups[0].members.is_empty(), "v{v}: nobody left");
        // The member is gone: its heartbeat is refused.
        let hb = c
            .call(4, &heartbeat_request(&group, member.generation, &member.id))
            .await;
        assert_eq!(
            hb.error_code, UNKNOWN_MEMBER_ID,
            "v{v}: heartbeat after leaving"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_groups_every_version() {
    let b = TestBroker::start_small_offsets().await;
    let mut c = b.connect().await;
    c.create_topic("dl", 1).await;
    let assigned = assignment("dl", &[0]);
    for v in versions(ApiKey::DeleteGroups) {
        let busy = format!("del-busy-v{v}");
        let empty = format!("del-empty-v{v}");
        form_group(&mut c, &busy, &["dl"], &assigned).await;
        assign_only_group(&mut c, &empty, "dl", 7).await;
        let req = DeleteGroupsRequest::default().with_groups_names(vec![gid(&busy), gid(&empty)]);
        let resp = c.call(v, &req).await;
        let got: Vec<(String, i16)> = resp
            .results
            .iter()
            .map(|r| (r.group_id.to_string(), r.error_code))
            .collect();
        assert_eq!(
            got,
            [(busy.clone(), NON_EMPTY_GROUP), (empty.clone(), NONE)],
            "v{v}"
        );
        let again = c
            .call(
                v,
                &DeleteGroupsRequest::default().with_groups_names(vec![gid(&empty)]),
            )
            .await;
        assert_eq!(again.results.len(), 1);
        assert_eq!(
            again.results[0].error_code, GROUP_ID_NOT_FOUND,
            "v{v}: again"
        );
        // Its offsets went with it.
        let asked: [(&str, &[i32]); 1] = [("dl", &[0])];
        let (fetched, _) = offset_fetch(&mut c, 8, &[(&empty, Some(&asked))]).await;
        assert_eq!(fetched[0].3, -1, "v{v}: offsets of the deleted group");
        let d = describe_one(&mut c, 5, &empty).await;
        assert_eq!(d.groups[0].group_state.as_str(), "Dead", "v{v}");
        let d = describe_one(&mut c, 5, &busy).await;
        assert_eq!(
            d.groups[0].group_state.as_str(),
            "Stable",
            "v{v}: busy kept"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_delete_subscribed_unsubscribed_unknown() {
    let b = TestBroker::start_small_offsets().await;
    let mut c = b.connect().await;
    c.create_topic("od-sub", 1).await;
    c.create_topic("od-other", 1).await;
    let member = form_group(&mut c, "od", &["od-sub"], &assignment("od-sub", &[0])).await;
    let resp = c
        .call(
            8,
            &commit_request(
                8,
                "od",
                member.generation,
                &member.id,
                &[("od-sub", 0, 5, -1, None), ("od-other", 0, 6, -1, None)],
            ),
        )
        .await;
    assert!(commit_errors(&resp).iter().all(|e| e.2 == NONE), "{resp:?}");

    let req = |group: &str| {
        OffsetDeleteRequest::default()
            .with_group_id(gid(group))
            .with_topics(
                ["od-sub", "od-other"]
                    .iter()
                    .map(|t| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(vec![
                                OffsetDeleteRequestPartition::default().with_partition_index(0)
                            ])
                    })
                    .collect(),
            )
    };
    for v in versions(ApiKey::OffsetDelete) {
        let resp = c.call(v, &req("od")).await;
        assert_eq!(resp.error_code, NONE, "v{v}");
        let got: Vec<(String, i32, i16)> = partition_errors!(resp.topics);
        assert_eq!(
            got,
            [
                ("od-sub".to_owned(), 0, GROUP_SUBSCRIBED_TO_TOPIC),
                ("od-other".to_owned(), 0, NONE)
            ],
            "v{v}"
        );
        let asked: [(&str, &[i32]); 2] = [("od-sub", &[0]), ("od-other", &[0])];
        let (fetched, _) = offset_fetch(&mut c, 8, &[("od", Some(&asked))]).await;
        let offsets: Vec<i64> = fetched.iter().map(|f| f.3).collect();
        assert_eq!(
            offsets,
            [5, -1],
            "v{v}: only the unsubscribed offset deleted"
        );

        let unknown = c.call(v, &req("od-nobody")).await;
        assert_eq!(
            unknown.error_code, GROUP_ID_NOT_FOUND,
            "v{v}: unknown group"
        );
        assert!(unknown.topics.is_empty(), "v{v}");
    }
}

// ---------------------------------------------------------------------------
// Error codes on the wire

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_group_errors() {
    let b = TestBroker::start_small_offsets().await;
    let mut c = b.connect().await;
    let sub = subscription(&["je"]);
    // group.min.session.timeout.ms (6000) and group.max.session.timeout.ms (1800000), both sides.
    for (timeout, want) in [
        (5_999, INVALID_SESSION_TIMEOUT),
        (6_000, NONE),
        (1_800_000, NONE),
        (1_800_001, INVALID_SESSION_TIMEOUT),
    ] {
        for v in [0, 5, 9] {
            let group = format!("je-timeout-{timeout}-v{v}");
            let req = join_request(v, &group, "", &sub).with_session_timeout_ms(timeout);
            let resp = c.call(v, &req).await;
            let want = if want == NONE && v >= 4 {
                MEMBER_ID_REQUIRED
            } else {
                want
            };
            assert_eq!(resp.error_code, want, "v{v} session timeout {timeout}");
        }
    }
    // An unknown non-empty member id: to a group that does not exist, and to
    // one that does.
    let member = form_group(&mut c, "je-group", &["je"], &assignment("je", &[])).await;
    for group in ["je-nobody", "je-group"] {
        for v in [0, 3, 4, 9] {
            let resp = c
                .call(v, &join_request(v, group, "ghost-member", &sub))
                .await;
            assert_eq!(resp.error_code, UNKNOWN_MEMBER_ID, "v{v} {group}");
        }
    }
    // No protocol type or no protocols at all; then a type or protocols the
    // group's member does not share.
    for v in [0, 5, 9] {
        let empty_type =
            join_request(v, &format!("je-proto-v{v}"), "", &sub).with_protocol_type(str_bytes(""));
        let resp = c.call(v, &empty_type).await;
        assert_eq!(
            resp.error_code, INCONSISTENT_GROUP_PROTOCOL,
            "v{v}: empty type"
        );
        let no_protocols =
            join_request(v, &format!("je-proto-v{v}"), "", &sub).with_protocols(vec![]);
        let resp = c.call(v, &no_protocols).await;
        assert_eq!(
            resp.error_code, INCONSISTENT_GROUP_PROTOCOL,
            "v{v}: no protocols"
        );
        let other_type =
            join_request(v, "je-group", "", &sub).with_protocol_type(str_bytes("connect"));
        let resp = c.call(v, &other_type).await;
        assert_eq!(
            resp.error_code, INCONSISTENT_GROUP_PROTOCOL,
            "v{v}: other type"
        );
        let other_protocol = join_request(v, "je-group", "", &sub).with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(str_bytes("roundrobin"))
                .with_metadata(sub.clone()),
        ]);
        let resp = c.call(v, &other_protocol).await;
        assert_eq!(
            resp.error_code, INCONSISTENT_GROUP_PROTOCOL,
            "v{v}: no shared protocol"
        );
    }
    // The group is untouched by the refused joins.
    let d = describe_one(&mut c, 5, "je-group").await;
    assert_eq!(d.groups[0].group_state.as_str(), "Stable");
    assert_eq!(d.groups[0].members.len(), 1);
    assert_eq!(d.groups[0].members[0].member_id.as_str(), member.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_heartbeat_commit_errors() {
    let b = TestBroker::start_small_offsets().await;
    let mut c = b.connect().await;
    c.create_topic("se", 2).await;
    let member = form_group(&mut c, "se-group", &["se"], &assignment("se", &[0, 1])).await;
    for v in versions(ApiKey::SyncGroup) {
        let resp = c
            .call(
                v,
                &sync_request(v, "se-group", member.generation + 1, &member.id, &[]),
            )
            .await;
        assert_eq!(resp.error_code, ILLEGAL_GENERATION, "SyncGroup v{v}");
        let resp = c
            .call(
                v,
                &sync_request(v, "se-group", member.generation, "ghost", &[]),
            )
            .await;
        assert_eq!(resp.error_code, UNKNOWN_MEMBER_ID, "SyncGroup v{v}");
    }
    for v in versions(ApiKey::Heartbeat) {
        let hb = c
            .call(
                v,
                &heartbeat_request("se-group", member.generation - 1, &member.id),
            )
            .await;
        assert_eq!(hb.error_code, ILLEGAL_GENERATION, "Heartbeat v{v}");
        let hb = c
            .call(
                v,
                &heartbeat_request("se-group", member.generation, "ghost"),
            )
            .await;
        assert_eq!(hb.error_code, UNKNOWN_MEMBER_ID, "Heartbeat v{v}");
    }
    for v in versions(ApiKey::OffsetCommit) {
        // Wrong generation of a real group.
        let resp = c
            .call(
                v,
                &commit_request(
                    v,
                    "se-group",
                    member.generation + 1,
                    &member.id,
                    &[("se", 0, 1, -1, None)],
                ),
            )
            .await;
        assert_eq!(
            commit_errors(&resp),
            [("se".to_owned(), 0, ILLEGAL_GENERATION)],
            "OffsetCommit v{v}"
        );
        // A topic that does not exist: every partition, the rest committed.
        let resp = c
            .call(
                v,
                &commit_request(
                    v,
                    "se-group",
                    member.generation,
                    &member.id,
                    &[
                        ("se-missing", 0, 1, -1, None),
                        ("se-missing", 1, 1, -1, None),
                        ("se", 5, 1, -1, None),
                        ("se", 1, 9, -1, None),
                    ],
                ),
            )
            .await;
        assert_eq!(
            commit_errors(&resp),
            [
                ("se-missing".to_owned(), 0, UNKNOWN_TOPIC_OR_PARTITION),
                ("se-missing".to_owned(), 1, UNKNOWN_TOPIC_OR_PARTITION),
                ("se".to_owned(), 5, UNKNOWN_TOPIC_OR_PARTITION),
                ("se".to_owned(), 1, NONE),
            ],
            "OffsetCommit v{v}"
        );
    }
}

/// offset.metadata.max.bytes (4096) on both sides, in a member's commit and
/// in an assign-only one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_commit_metadata_limit_both_sides() {
    let b = TestBroker::start_small_offsets().await;
    let mut c = b.connect().await;
    c.create_topic("ml", 1).await;
    let member = form_group(&mut c, "ml-group", &["ml"], &assignment("ml", &[0])).await;
    let at_limit = "x".repeat(4096);
    let over = "x".repeat(4097);
    for v in versions(ApiKey::OffsetCommit) {
        for (group, generation, member_id) in [
            ("ml-group", member.generation, member.id.as_str()),
            ("ml-assign", -1, ""),
        ] {
            let resp = c
                .call(
                    v,
                    &commit_request(
                        v,
                        group,
                        generation,
                        member_id,
                        &[("ml", 0, 40, -1, Some(&over))],
                    ),
                )
                .await;
            assert_eq!(
                commit_errors(&resp),
                [("ml".to_owned(), 0, OFFSET_METADATA_TOO_LARGE)],
                "v{v} {group}: 4097 bytes"
            );
            let resp = c
                .call(
                    v,
                    &commit_request(
                        v,
                        group,
                        generation,
                        member_id,
                        &[("ml", 0, 41 + v as i64, -1, Some(&at_limit))],
                    ),
                )
                .await;
            assert_eq!(
                commit_errors(&resp),
                [("ml".to_owned(), 0, NONE)],
                "v{v} {group}: 4096 bytes"
            );
            let asked: [(&str, &[i32]); 1] = [("ml", &[0])];
            let (fetched, _) = offset_fetch(&mut c, 8, &[(group, Some(&asked))]).await;
            assert_eq!(fetched[0].3, 41 + v as i64, "v{v} {group}");
            assert_eq!(fetched[0].5, at_limit, "v{v} {group}: metadata kept");
        }
    }
}

/// `__consumer_offsets` is created by the first coordinator lookup, listed
/// as internal, and neither written by Produce nor deleted by DeleteTopics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_offsets_is_internal() {
    let b = TestBroker::start_small_offsets().await;
    let mut c = b.connect().await;
    let md = c.call(12, &metadata_request(12, None, false)).await;
    assert!(md.topics.is_empty(), "no topics before the first lookup");
    // Metadata with auto-creation on does not create it with user defaults.
    let md = c.metadata(12, &[OFFSETS_TOPIC]).await;
    assert_eq!(md.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    let md = c.call(12, &metadata_request(12, None, false)).await;
    assert!(md.topics.is_empty(), "not auto-created by Metadata");

    let resp = c
        .call(
            4,
            &FindCoordinatorRequest::default().with_coordinator_keys(vec![str_bytes("g")]),
        )
        .await;
    assert_eq!(resp.coordinators[0].error_code, NONE);

    for v in [1, 9, 12] {
        let md = c.call(v, &metadata_request(v, None, false)).await;
        let t = md
            .topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(OFFSETS_TOPIC))
            .unwrap_or_else(|| panic!("Metadata v{v}: {OFFSETS_TOPIC} not listed"));
        assert_eq!(t.error_code, NONE, "Metadata v{v}");
        assert!(t.is_internal, "Metadata v{v}: is_internal");
        assert_eq!(
            t.partitions.len(),
            4,
            "Metadata v{v}: offsets.topic.num.partitions"
        );
    }
    let by_name = c.metadata(12, &[OFFSETS_TOPIC]).await;
    assert!(by_name.topics[0].is_internal);
    let id = by_name.topics[0].topic_id;

    let p = c
        .produce(OFFSETS_TOPIC, 0, Some(batch(&[b"forged"], 1, None)))
        .await;
    assert_eq!(p.error_code, INVALID_TOPIC_EXCEPTION, "Produce");
    assert_eq!(
        c.latest_offset(OFFSETS_TOPIC, 0).await,
        0,
        "nothing appended"
    );

    let by_name = DeleteTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topic_names(vec![topic_name(OFFSETS_TOPIC)]);
    let resp = c.call(5, &by_name).await;
    assert_eq!(
        resp.responses[0].error_code, INVALID_TOPIC_EXCEPTION,
        "DeleteTopics v5"
    );
    let by_id = DeleteTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![DeleteTopicState::default().with_topic_id(id)]);
    let resp = c.call(6, &by_id).await;
    assert_eq!(
        resp.responses[0].error_code, INVALID_TOPIC_EXCEPTION,
        "DeleteTopics v6"
    );
    let md = c.metadata(12, &[OFFSETS_TOPIC]).await;
    assert_eq!(md.topics[0].error_code, NONE, "still there");

    // And groups keep working on it.
    form_group(&mut c, "after", &["x"], &assignment("x", &[])).await;
}

// ---------------------------------------------------------------------------
// Details where an earlier Runnel differed from Kafka

/// Kafka: OffsetCommit v9+ to a group that does not exist, with a
/// generation >= 0, answers GROUP_ID_NOT_FOUND; older versions keep
/// ILLEGAL_GENERATION (OffsetMetadataManager.validateOffsetCommit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_offset_commit_v9_unknown_group_is_group_id_not_found() {
    let b = TestBroker::start_small_offsets().await;
    let mut c = b.connect().await;
    c.create_topic("pc", 1).await;
    for v in versions(ApiKey::OffsetCommit) {
        let resp = c
            .call(
                v,
                &commit_request(v, "pc-nobody", 1, "ghost", &[("pc", 0, 1, -1, None)]),
            )
            .await;
        let want = if v >= 9 {
            GROUP_ID_NOT_FOUND
        } else {
            ILLEGAL_GENERATION
        };
        assert_eq!(commit_errors(&resp), [("pc".to_owned(), 0, want)], "v{v}");
    }
}

/// Kafka measures offset.metadata.max.bytes in UTF-16 code units
/// (`String.length()`), not bytes: 4096 two-byte characters are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_offset_metadata_limit_counts_characters() {
    let b = TestBroker::start_small_offsets().await;
    let mut c = b.connect().await;
    c.create_topic("pm", 1).await;
    let wide = "é".repeat(4096);
    assert_eq!(wide.len(), 8192);
    let resp = c
        .call(
            8,
            &commit_request(8, "pm-assign", -1, "", &[("pm", 0, 1, -1, Some(&wide))]),
        )
        .await;
    assert_eq!(commit_errors(&resp), [("pm".to_owned(), 0, NONE)]);
}

/// Kafka: SyncGroup v5+ must carry protocol type and name
/// (SyncGroupRequest.areMandatoryProtocolTypeAndNamePresent), else
/// INCONSISTENT_GROUP_PROTOCOL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_sync_group_v5_requires_protocol_type_and_name() {
    let b = TestBroker::start_small_offsets().await;
    let mut c = b.connect().await;
    let joined = join(&mut c, 9, "ps", &subscription(&["ps"])).await;
    let id = joined.member_id.to_string();
    let req = sync_request(
        5,
        "ps",
        joined.generation_id,
        &id,
        &[(&id, assignment("ps", &[]))],
    )
    .with_protocol_type(None)
    .with_protocol_name(None);
    let resp = c.call(5, &req).await;
    assert_eq!(resp.error_code, INCONSISTENT_GROUP_PROTOCOL);
}

/// Kafka completes the join phase at once when the last member leaves
/// (GroupMetadataManager.prepareRebalance -> maybeCompleteJoinElseSchedule),
/// so the group is Empty as soon as LeaveGroup is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_group_empty_as_soon_as_last_member_left() {
    let b = TestBroker::start_small_offsets().await;
    let mut c = b.connect().await;
    let mut states = Vec::new();
    for i in 0..20 {
        let group = format!("pl-{i}");
        let member = form_group(&mut c, &group, &["pl"], &assignment("pl", &[])).await;
        let resp = c
            .call(
                4,
                &LeaveGroupRequest::default()
                    .with_group_id(gid(&group))
                    .with_members(vec![
                        MemberIdentity::default().with_member_id(str_bytes(&member.id))
                    ]),
            )
            .await;
        assert_eq!(resp.members[0].error_code, NONE);
        if i % 2 == 0 {
            let d = describe_one(&mut c, 5, &group).await;
            states.push(d.groups[0].group_state.to_string());
        } else {
            // What a client sees: an admin deleting the group right after
            // its last consumer closed.
            let del = c
                .call(
                    2,
                    &DeleteGroupsRequest::default().with_groups_names(vec![gid(&group)]),
                )
                .await;
            states.push(format!("DeleteGroups error {}", del.results[0].error_code));
        }
    }
    let want: Vec<String> = (0..20)
        .map(|i| {
            if i % 2 == 0 {
                "Empty".to_owned()
            } else {
                format!("DeleteGroups error {NONE}")
            }
        })
        .collect();
    assert_eq!(states, want);
}

/// Kafka sets authorized_operations only on groups described without error
/// (KafkaApis.handleDescribeGroupsRequest); GROUP_ID_NOT_FOUND keeps
/// i32::MIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parity_describe_v6_unknown_group_has_no_operations() {
    let b = TestBroker::start_small_offsets().await;
    let mut c = b.connect().await;
    let resp = c.call(6, &describe_request(6, &["pd-nobody"], true)).await;
    assert_eq!(resp.groups[0].error_code, GROUP_ID_NOT_FOUND);
    assert_eq!(
        resp.groups[0].authorized_operations,
        OPERATIONS_NOT_REQUESTED
    );
}
