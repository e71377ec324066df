//! The single-node admin APIs over the wire, every advertised version:
//! CreatePartitions, DescribeCluster, DescribeLogDirs,
//! DescribeTopicPartitions, ElectLeaders, List/AlterPartitionReassignments
//! and Describe/AlterClientQuotas, with their error codes and what must
//! survive a restart.

use kafka_protocol::messages::alter_client_quotas_request::{
    EntityData as AlterEntity, EntryData as AlterEntry, OpData,
};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::*;
use protocol_tests::*;

const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const ELECTION_NOT_NEEDED: i16 = 84;
const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
const MISMATCHED_ENDPOINT_TYPE: i16 = 114;
const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const UNSUPPORTED_VERSION: i16 = 35;
/// What Kafka without an authorizer reports (all supported operations).
const CLUSTER_OPERATIONS: i32 = 8096;
const TOPIC_OPERATIONS: i32 = 3576;

fn msg(m: &Option<kafka_protocol::protocol::StrBytes>) -> Option<String> {
    m.as_ref().map(|s| s.to_string())
}

fn grow(name: &str, count: i32, assignments: Option<Vec<Vec<i32>>>) -> CreatePartitionsTopic {
    CreatePartitionsTopic::default()
        .with_name(topic_name(name))
        .with_count(count)
        .with_assignments(assignments.map(|list| {
            list.into_iter()
                .map(|ids| {
                    CreatePartitionsAssignment::default()
                        .with_broker_ids(ids.into_iter().map(BrokerId).collect())
                })
                .collect()
        }))
}

async fn create_partitions(
    c: &mut Client,
    version: i16,
    topics: Vec<CreatePartitionsTopic>,
    validate_only: bool,
) -> Vec<(String, i16, Option<String>)> {
    let req = CreatePartitionsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(10_000)
        .with_validate_only(validate_only);
    c.call(version, &req)
        .await
        .results
        .iter()
        .map(|r| (r.name.to_string(), r.error_code, msg(&r.error_message)))
        .collect()
}

async fn partition_count(c: &mut Client, topic: &str) -> usize {
    let md = c.metadata(12, &[topic]).await;
    assert_eq!(md.topics[0].error_code, 0, "{topic}");
    md.topics[0].partitions.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_every_version_and_error() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    let node = c.advertised().await.0;
    for v in versions(ApiKey::CreatePartitions) {
        let t = format!("grow-v{v}");
        c.create_topic(&t, 1).await;

        // validate_only checks but changes nothing.
        let r = create_partitions(&mut c, v, vec![grow(&t, 3, None)], true).await;
        assert_eq!(r, vec![(t.clone(), 0, None)], "v{v} validate_only");
        assert_eq!(partition_count(&mut c, &t).await, 1, "v{v}");

        let r = create_partitions(&mut c, v, vec![grow(&t, 3, None)], false).await;
        assert_eq!(r, vec![(t.clone(), 0, None)], "v{v}");
        assert_eq!(partition_count(&mut c, &t).await, 3, "v{v}");

        for validate_only in [true, false] {
            let r = create_partitions(
                &mut c,
                v,
                vec![
                    grow(&t, 3, None),
                    grow(&t, 2, None),
                    grow("no-such-topic", 4, None),
                ],
                validate_only,
            )
            .await;
            // `t` twice: one INVALID_REQUEST for the name.
            assert_eq!(
                r,
                vec![
                    (
                        t.clone(),
                        INVALID_REQUEST,
                        Some("Duplicate topic name.".into())
                    ),
                    ("no-such-topic".into(), UNKNOWN_TOPIC_OR_PARTITION, None),
                ],
                "v{v}"
            );
            let cases = [
                (
                    grow(&t, 3, None),
                    INVALID_PARTITIONS,
                    "Topic already has 3 partition(s).".to_string(),
                ),
                (
                    grow(&t, 2, None),
                    INVALID_PARTITIONS,
                    format!("The topic {t} currently has 3 partition(s); 2 would not be an increase."),
                ),
                (
                    grow(&t, 5, Some(vec![vec![node]])),
                    INVALID_REPLICA_ASSIGNMENT,
                    "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified.".into(),
                ),
                (
                    grow(&t, 4, Some(vec![vec![node + 98]])),
                    INVALID_REPLICA_ASSIGNMENT,
                    format!(
                        "The manual partition assignment includes broker {}, but no such broker is registered.",
                        node + 98
                    ),
                ),
                (
                    grow(&t, 4, Some(vec![vec![node, node]])),
                    INVALID_REPLICA_ASSIGNMENT,
                    format!("The manual partition assignment includes the broker {node} more than once."),
                ),
                (
                    grow(&t, 4, Some(vec![vec![]])),
                    INVALID_REPLICA_ASSIGNMENT,
                    "The manual partition assignment includes an empty replica list.".into(),
                ),
            ];
            for (topic, code, text) in cases {
                let r = create_partitions(&mut c, v, vec![topic], validate_only).await;
                assert_eq!(
                    r,
                    vec![(t.clone(), code, Some(text))],
                    "v{v} {validate_only}"
                );
            }
            assert_eq!(partition_count(&mut c, &t).await, 3, "v{v}: unchanged");
        }

        // Explicit assignments on this broker are accepted.
        let r = create_partitions(
            &mut c,
            v,
            vec![grow(&t, 5, Some(vec![vec![node], vec![node]]))],
            false,
        )
        .await;
        assert_eq!(r, vec![(t.clone(), 0, None)], "v{v}");
        assert_eq!(partition_count(&mut c, &t).await, 5, "v{v}");

        // The new partitions take records like the old ones.
        for p in [0, 4] {
            let vals = values(&format!("{t}-{p}-"), 3);
            let base = c
                .produce_ok(&t, p, batch(&as_slices(&vals), 1000, None))
                .await;
            assert_eq!(base, 0, "v{v} p{p}");
            let fetched = c.fetch(&t, p, 0).await;
            assert_eq!(fetched.error_code, 0);
            assert_eq!(
                fetched_values(&fetched.records),
                vals.iter()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect::<Vec<_>>()
            );
            assert_eq!(c.latest_offset(&t, p).await, 3, "v{v} p{p}");
        }
        // Beyond the new count is still unknown.
        let p = c.produce(&t, 5, Some(batch(&[b"x"], 1, None))).await;
        assert_eq!(p.error_code, UNKNOWN_TOPIC_OR_PARTITION, "v{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_partitions_and_their_data_survive_restart() {
    let mut b = TestBroker::start().await;
    let mut c = b.connect().await;
    let id = c.create_topic("grown", 2).await;
    let r = create_partitions(&mut c, 3, vec![grow("grown", 4, None)], false).await;
    assert_eq!(r[0].1, 0);
    c.produce_ok("grown", 3, batch(&[b"kept"], 1, None)).await;
    b.restart().await;
    let mut c = b.connect().await;
    let md = c.metadata(12, &["grown"]).await;
    assert_eq!(md.topics[0].topic_id, id);
    assert_eq!(md.topics[0].partitions.len(), 4);
    let fetched = c.fetch("grown", 3, 0).await;
    assert_eq!(fetched_values(&fetched.records), vec!["kept".to_string()]);
    assert_eq!(c.latest_offset("grown", 2).await, 0);
    // And it keeps growing from the restored count.
    let r = create_partitions(&mut c, 3, vec![grow("grown", 4, None)], false).await;
    assert_eq!(r[0].2.as_deref(), Some("Topic already has 4 partition(s)."));
    let r = create_partitions(&mut c, 3, vec![grow("grown", 6, None)], false).await;
    assert_eq!(r[0].1, 0);
    b.restart().await;
    let mut c = b.connect().await;
    assert_eq!(partition_count(&mut c, "grown").await, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_cluster_every_version() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    let (node, host, port) = c.advertised().await;
    let md = c.call(12, &metadata_request(12, Some(&[]), false)).await;
    let cluster_id = md.cluster_id.unwrap().to_string();
    for v in versions(ApiKey::DescribeCluster) {
        for include_ops in [false, true] {
            let mut req = DescribeClusterRequest::default()
                .with_include_cluster_authorized_operations(include_ops);
            if v >= 2 {
                req = req.with_include_fenced_brokers(true);
            }
            let r = c.call(v, &req).await;
            assert_eq!((r.error_code, msg(&r.error_message)), (0, None), "v{v}");
            assert_eq!(r.cluster_id.to_string(), cluster_id, "v{v}");
            assert_eq!(r.controller_id.0, node, "v{v}");
            assert_eq!(r.brokers.len(), 1, "v{v}");
            let br = &r.brokers[0];
            assert_eq!(
                (
                    br.broker_id.0,
                    br.host.to_string(),
                    br.port,
                    br.rack.is_none(),
                    br.is_fenced
                ),
                (node, host.clone(), port, true, false),
                "v{v}"
            );
            assert_eq!(
                r.cluster_authorized_operations,
                if include_ops {
                    CLUSTER_OPERATIONS
                } else {
                    i32::MIN
                },
                "v{v}"
            );
            if v >= 1 {
                assert_eq!(r.endpoint_type, 1, "v{v}");
            }
        }
        if v >= 1 {
            // Controllers are not reachable through a broker listener.
            let r = c
                .call(v, &DescribeClusterRequest::default().with_endpoint_type(2))
                .await;
            assert_eq!(r.error_code, MISMATCHED_ENDPOINT_TYPE, "v{v}");
            assert_eq!(
                msg(&r.error_message).as_deref(),
                Some("The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER")
            );
            assert!(r.brokers.is_empty());
            for bad in [0i8, 3, -1] {
                let r = c
                    .call(
                        v,
                        &DescribeClusterRequest::default().with_endpoint_type(bad),
                    )
                    .await;
                assert_eq!(r.error_code, UNSUPPORTED_ENDPOINT_TYPE, "v{v} type {bad}");
                assert_eq!(
                    msg(&r.error_message),
                    Some(format!("Unsupported endpoint type {bad}"))
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_log_dirs_every_version() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic("dirs-a", 2).await;
    c.create_topic("dirs-b", 1).await;
    let vals = values("v", 10);
    c.produce_ok("dirs-a", 1, batch(&as_slices(&vals), 1, None))
        .await;
    let log_dir = std::path::absolute(b.dir.path()).unwrap();
    let part_size = |r: &DescribeLogDirsResponse, t: &str, p: i32| -> Option<i64> {
        r.results[0]
            .topics
            .iter()
            .find(|x| x.name.as_str() == t)
            .and_then(|x| x.partitions.iter().find(|y| y.partition_index == p))
            .map(|y| {
                assert_eq!((y.offset_lag, y.is_future_key), (0, false));
                y.partition_size
            })
    };
    for v in versions(ApiKey::DescribeLogDirs) {
        let r = c
            .call(v, &DescribeLogDirsRequest::default().with_topics(None))
            .await;
        assert_eq!(r.error_code, 0, "v{v}");
        assert_eq!(r.results.len(), 1, "v{v}");
        let d = &r.results[0];
        assert_eq!(d.error_code, 0);
        assert_eq!(std::path::Path::new(d.log_dir.as_str()), log_dir, "v{v}");
        let filled = part_size(&r, "dirs-a", 1).expect("dirs-a-1 listed");
        assert!(filled > 0, "v{v}: {filled}");
        assert_eq!(part_size(&r, "dirs-a", 0), Some(0), "v{v}");
        assert_eq!(part_size(&r, "dirs-b", 0), Some(0), "v{v}");
        if v >= 4 {
            assert!(d.total_bytes > 0 && d.usable_bytes >= 0, "v{v}");
            assert!(d.usable_bytes <= d.total_bytes, "v{v}");
        } else {
            assert_eq!((d.total_bytes, d.usable_bytes), (-1, -1), "v{v}");
        }

        // Asked-for partitions only; unknown topics and partitions left out.
        let ask = |t: &str, ps: &[i32]| {
            DescribableLogDirTopic::default()
                .with_topic(topic_name(t))
                .with_partitions(ps.to_vec())
        };
        let r = c
            .call(
                v,
                &DescribeLogDirsRequest::default().with_topics(Some(vec![
                    ask("dirs-a", &[1, 7]),
                    ask("nope", &[0]),
                    ask("dirs-b", &[3]),
                ])),
            )
            .await;
        let d = &r.results[0];
        assert_eq!(d.topics.len(), 1, "v{v}");
        assert_eq!(d.topics[0].partitions.len(), 1, "v{v}");
        assert_eq!(part_size(&r, "dirs-a", 1), Some(filled), "v{v}");

        let r = c
            .call(
                v,
                &DescribeLogDirsRequest::default().with_topics(Some(vec![])),
            )
            .await;
        assert!(r.results[0].topics.is_empty(), "v{v}");
    }
    // The size follows the log.
    let before = {
        let r = c
            .call(4, &DescribeLogDirsRequest::default().with_topics(None))
            .await;
        part_size(&r, "dirs-a", 1).unwrap()
    };
    c.produce_ok("dirs-a", 1, batch(&as_slices(&vals), 1, None))
        .await;
    let r = c
        .call(4, &DescribeLogDirsRequest::default().with_topics(None))
        .await;
    assert_eq!(part_size(&r, "dirs-a", 1), Some(2 * before));
}

fn dtp(topics: &[&str], limit: i32, cursor: Option<(&str, i32)>) -> DescribeTopicPartitionsRequest {
    DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| TopicRequest::default().with_name(topic_name(t)))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            Cursor::default()
                .with_topic_name(topic_name(t))
                .with_partition_index(p)
        }))
}

/// (topic, error, partition indexes) per topic, and the next cursor.
type Page = (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>);

fn page(r: &DescribeTopicPartitionsResponse) -> Page {
    (
        r.topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map_or(String::new(), |n| n.to_string()),
                    t.error_code,
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            })
            .collect(),
        r.next_cursor
            .as_ref()
            .map(|c| (c.topic_name.to_string(), c.partition_index)),
    )
}

fn owned(v: &[(&str, i16, &[i32])]) -> Vec<(String, i16, Vec<i32>)> {
    v.iter()
        .map(|(t, e, ps)| (t.to_string(), *e, ps.to_vec()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_topic_partitions_pages_and_errors() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    let node = c.advertised().await.0;
    let id_b = c.create_topic("dtp-b", 2).await;
    c.create_topic("dtp-a", 3).await;
    c.create_topic("dtp-c", 1).await;
    assert_eq!(versions(ApiKey::DescribeTopicPartitions), 0..=0);
    let v = 0;

    // All topics, sorted, in pages of 4 partitions.
    let r = c.call(v, &dtp(&[], 4, None)).await;
    assert_eq!(
        page(&r),
        (
            owned(&[("dtp-a", 0, &[0, 1, 2]), ("dtp-b", 0, &[0])]),
            Some(("dtp-b".into(), 1))
        )
    );
    let t = &r.topics[1];
    assert_eq!((t.topic_id, t.is_internal), (id_b, false));
    assert_eq!(t.topic_authorized_operations, TOPIC_OPERATIONS);
    let p = &t.partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(p.leader_id.0, node);
    assert_eq!(p.leader_epoch, 0);
    assert_eq!(p.replica_nodes, vec![BrokerId(node)]);
    assert_eq!(p.isr_nodes, vec![BrokerId(node)]);
    assert_eq!(p.eligible_leader_replicas, Some(vec![]));
    assert_eq!(p.last_known_elr, Some(vec![]));
    assert!(p.offline_replicas.is_empty());

    let r = c.call(v, &dtp(&[], 4, Some(("dtp-b", 1)))).await;
    assert_eq!(
        page(&r),
        (owned(&[("dtp-b", 0, &[1]), ("dtp-c", 0, &[0])]), None)
    );

    // A page that ends exactly at a topic boundary points at the next topic.
    let r = c.call(v, &dtp(&["dtp-b", "dtp-a"], 3, None)).await;
    assert_eq!(
        page(&r),
        (
            owned(&[("dtp-a", 0, &[0, 1, 2])]),
            Some(("dtp-b".into(), 0))
        )
    );

    // Named topics: unknown and invalid names are reported in order.
    let r = c
        .call(
            v,
            &dtp(&["dtp-c", "zz-missing", "bad name", "dtp-c"], 100, None),
        )
        .await;
    assert_eq!(
        page(&r),
        (
            owned(&[
                ("bad name", INVALID_TOPIC_EXCEPTION, &[]),
                ("dtp-c", 0, &[0]),
                ("zz-missing", UNKNOWN_TOPIC_OR_PARTITION, &[]),
            ]),
            None
        )
    );
    assert!(r.topics[2].topic_id.is_nil());

    // The cursor's topic must be among the named ones.
    let r = c
        .call(v, &dtp(&["dtp-a", "dtp-c"], 100, Some(("dtp-b", 0))))
        .await;
    assert_eq!(
        page(&r),
        (
            owned(&[
                ("dtp-a", INVALID_REQUEST, &[]),
                ("dtp-c", INVALID_REQUEST, &[])
            ]),
            None
        )
    );

    // A cursor past the end of its topic yields nothing of it.
    let r = c.call(v, &dtp(&["dtp-c"], 100, Some(("dtp-c", 5)))).await;
    assert_eq!(page(&r), (owned(&[("dtp-c", 0, &[])]), None));

    // A new partition appears at once.
    create_partitions(&mut c, 3, vec![grow("dtp-c", 2, None)], false).await;
    let r = c.call(v, &dtp(&["dtp-c"], 100, None)).await;
    assert_eq!(page(&r), (owned(&[("dtp-c", 0, &[0, 1])]), None));
}

fn elect(election_type: i8, topics: Option<Vec<(&str, Vec<i32>)>>) -> ElectLeadersRequest {
    ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_timeout_ms(10_000)
        .with_topic_partitions(topics.map(|list| {
            list.into_iter()
                .map(|(t, ps)| {
                    TopicPartitions::default()
                        .with_topic(topic_name(t))
                        .with_partitions(ps)
                })
                .collect()
        }))
}

type Elected = Vec<(String, Vec<(i32, i16, Option<String>)>)>;

fn elected(r: &ElectLeadersResponse) -> Elected {
    r.replica_election_results
        .iter()
        .map(|t| {
            (
                t.topic.to_string(),
                t.partition_result
                    .iter()
                    .map(|p| (p.partition_id, p.error_code, msg(&p.error_message)))
                    .collect(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elect_leaders_every_version() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic("el", 2).await;
    c.create_topic("el2", 1).await;
    let not_needed = Some("Leader election not needed for topic partition.".to_string());
    for v in versions(ApiKey::ElectLeaders) {
        // v0 carries no type and always means PREFERRED.
        let types: &[i8] = if v == 0 { &[0] } else { &[0, 1] };
        for &ty in types {
            let r = c
                .call(
                    v,
                    &elect(ty, Some(vec![("el", vec![0, 1, 2]), ("nope", vec![0])])),
                )
                .await;
            assert_eq!(r.error_code, 0, "v{v}");
            assert_eq!(
                elected(&r),
                vec![
                    (
                        "el".to_string(),
                        vec![
                            (0, ELECTION_NOT_NEEDED, not_needed.clone()),
                            (1, ELECTION_NOT_NEEDED, not_needed.clone()),
                            (
                                2,
                                UNKNOWN_TOPIC_OR_PARTITION,
                                Some("No such partition as el-2".into())
                            ),
                        ]
                    ),
                    (
                        "nope".to_string(),
                        vec![(
                            0,
                            UNKNOWN_TOPIC_OR_PARTITION,
                            Some("No such topic as nope".into())
                        )]
                    ),
                ],
                "v{v} type {ty}"
            );
            // All partitions: every topic, none needing an election.
            let r = c.call(v, &elect(ty, None)).await;
            let mut got = elected(&r);
            got.sort();
            assert_eq!(
                got,
                vec![("el".to_string(), vec![]), ("el2".to_string(), vec![])],
                "v{v} type {ty}"
            );
        }
        if v >= 1 {
            let r = c.call(v, &elect(7, Some(vec![("el", vec![0])]))).await;
            assert_eq!(r.error_code, INVALID_REQUEST, "v{v}");
            assert_eq!(
                elected(&r),
                vec![(
                    "el".to_string(),
                    vec![(0, INVALID_REQUEST, Some("Unknown election type 7".into()))]
                )]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_reassignments_every_version() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    let node = c.advertised().await.0;
    c.create_topic("ra", 2).await;
    for v in versions(ApiKey::ListPartitionReassignments) {
        for topics in [
            None,
            Some(vec![
                ListPartitionReassignmentsTopics::default()
                    .with_name(topic_name("ra"))
                    .with_partition_indexes(vec![0, 1, 9]),
                ListPartitionReassignmentsTopics::default()
                    .with_name(topic_name("nope"))
                    .with_partition_indexes(vec![0]),
            ]),
        ] {
            let r = c
                .call(
                    v,
                    &ListPartitionReassignmentsRequest::default()
                        .with_timeout_ms(10_000)
                        .with_topics(topics),
                )
                .await;
            assert_eq!((r.error_code, msg(&r.error_message)), (0, None), "v{v}");
            assert!(r.topics.is_empty(), "v{v}");
        }
    }
    let part = |p: i32, replicas: Option<Vec<i32>>| {
        ReassignablePartition::default()
            .with_partition_index(p)
            .with_replicas(replicas.map(|r| r.into_iter().map(BrokerId).collect()))
    };
    for v in versions(ApiKey::AlterPartitionReassignments) {
        let mut req = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![
                ReassignableTopic::default()
                    .with_name(topic_name("ra"))
                    .with_partitions(vec![
                        part(0, Some(vec![node])),
                        part(1, Some(vec![node + 1])),
                        part(0, Some(vec![node, node])),
                        part(1, Some(vec![])),
                        part(0, None),
                        part(2, Some(vec![node])),
                    ]),
                ReassignableTopic::default()
                    .with_name(topic_name("nope"))
                    .with_partitions(vec![part(0, Some(vec![node]))]),
            ]);
        if v >= 1 {
            req = req.with_allow_replication_factor_change(false);
        }
        let r = c.call(v, &req).await;
        assert_eq!((r.error_code, msg(&r.error_message)), (0, None), "v{v}");
        if v >= 1 {
            assert!(!r.allow_replication_factor_change, "v{v}: echoed");
        }
        let got: Vec<(String, i32, i16, Option<String>)> = r
            .responses
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        t.name.to_string(),
                        p.partition_index,
                        p.error_code,
                        msg(&p.error_message),
                    )
                })
            })
            .collect();
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            got,
            vec![
                ("ra".into(), 0, 0, None),
                (
                    "ra".into(),
                    1,
                    INVALID_REPLICA_ASSIGNMENT,
                    Some(format!(
                        "The manual partition assignment includes broker {}, but no such broker is registered.",
                        node + 1
                    ))
                ),
                (
                    "ra".into(),
                    0,
                    INVALID_REPLICA_ASSIGNMENT,
                    Some(format!(
                        "The manual partition assignment includes the broker {node} more than once."
                    ))
                ),
                (
                    "ra".into(),
                    1,
                    INVALID_REPLICA_ASSIGNMENT,
                    s("The manual partition assignment includes an empty replica list.")
                ),
                ("ra".into(), 0, NO_REASSIGNMENT_IN_PROGRESS, None),
                ("ra".into(), 2, UNKNOWN_TOPIC_OR_PARTITION, s("Unable to find partition ra:2")),
                ("nope".into(), 0, UNKNOWN_TOPIC_OR_PARTITION, s("Unable to find topic nope")),
            ],
            "v{v}"
        );
        // Nothing moved: still one replica here, nothing listed.
        let md = c.metadata(12, &["ra"]).await;
        assert!(md.topics[0]
            .partitions
            .iter()
            .all(|p| p.replica_nodes == vec![BrokerId(node)]));
        let r = c
            .call(
                0,
                &ListPartitionReassignmentsRequest::default().with_topics(None),
            )
            .await;
        assert!(r.topics.is_empty());
    }
}

fn entity(parts: &[(&str, Option<&str>)]) -> Vec<AlterEntity> {
    parts
        .iter()
        .map(|(t, n)| {
            AlterEntity::default()
                .with_entity_type(str_bytes(t))
                .with_entity_name(n.map(str_bytes))
        })
        .collect()
}

fn set(key: &str, value: f64) -> OpData {
    OpData::default().with_key(str_bytes(key)).with_value(value)
}

fn remove(key: &str) -> OpData {
    OpData::default().with_key(str_bytes(key)).with_remove(true)
}

async fn alter_quotas(
    c: &mut Client,
    v: i16,
    entries: Vec<(Vec<AlterEntity>, Vec<OpData>)>,
    validate_only: bool,
) -> Vec<(i16, Option<String>)> {
    let req = AlterClientQuotasRequest::default()
        .with_validate_only(validate_only)
        .with_entries(
            entries
                .into_iter()
                .map(|(e, ops)| AlterEntry::default().with_entity(e).with_ops(ops))
                .collect(),
        );
    c.call(v, &req)
        .await
        .entries
        .iter()
        .map(|e| (e.error_code, msg(&e.error_message)))
        .collect()
}

fn component(t: &str, match_type: i8, m: Option<&str>) -> ComponentData {
    ComponentData::default()
        .with_entity_type(str_bytes(t))
        .with_match_type(match_type)
        .with_match(m.map(str_bytes))
}

/// Sorted (entity as "type=name|type=<default>", sorted key=value list).
type Described = Vec<(String, Vec<(String, f64)>)>;

/// After requests that must store nothing (`v` is the version they used).
async fn assert_no_quotas(c: &mut Client, v: i16) {
    assert_eq!(
        describe_quotas(c, 1, vec![], false).await,
        Ok(vec![]),
        "v{v}"
    );
}

async fn describe_quotas(
    c: &mut Client,
    v: i16,
    components: Vec<ComponentData>,
    strict: bool,
) -> Result<Described, (i16, String)> {
    let r = c
        .call(
            v,
            &DescribeClientQuotasRequest::default()
                .with_components(components)
                .with_strict(strict),
        )
        .await;
    if r.error_code != 0 {
        assert!(r.entries.is_none());
        return Err((r.error_code, msg(&r.error_message).unwrap_or_default()));
    }
    let mut out: Described = r
        .entries
        .expect("entries")
        .iter()
        .map(|e| {
            let mut parts: Vec<String> = e
                .entity
                .iter()
                .map(|x| {
                    format!(
                        "{}={}",
                        x.entity_type.as_str(),
                        x.entity_name.as_ref().map_or("<default>", |n| n.as_str())
                    )
                })
                .collect();
            parts.sort();
            let mut vals: Vec<(String, f64)> = e
                .values
                .iter()
                .map(|x| (x.key.to_string(), x.value))
                .collect();
            vals.sort_by(|a, b| a.0.cmp(&b.0));
            (parts.join("|"), vals)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn described(v: &[(&str, &[(&str, f64)])]) -> Described {
    v.iter()
        .map(|(e, vals)| {
            (
                e.to_string(),
                vals.iter().map(|(k, x)| (k.to_string(), *x)).collect(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_quotas_every_version_and_restart() {
    let mut b = TestBroker::start().await;
    let mut c = b.connect().await;
    let alice = || entity(&[("user", Some("alice"))]);
    for v in versions(ApiKey::AlterClientQuotas) {
        let errors = [
            (
                entity(&[("user", Some("alice"))]),
                vec![set("no_such_quota", 1.0)],
                "Invalid configuration key no_such_quota".to_string(),
            ),
            (
                alice(),
                vec![set("producer_byte_rate", 10.5)],
                "producer_byte_rate cannot be a fractional value.".into(),
            ),
            (
                alice(),
                vec![set("consumer_byte_rate", -1.0)],
                "Quota consumer_byte_rate must be greater than 0".into(),
            ),
            (
                entity(&[("ip", Some("127.0.0.1"))]),
                vec![set("producer_byte_rate", 10.0)],
                "Invalid configuration key producer_byte_rate".into(),
            ),
            (
                entity(&[("ip", None), ("user", None)]),
                vec![set("connection_creation_rate", 1.0)],
                "Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId".into(),
            ),
            (
                entity(&[("user", Some(""))]),
                vec![set("producer_byte_rate", 1.0)],
                "Empty user not supported".into(),
            ),
            (
                entity(&[("group", Some("g"))]),
                vec![set("producer_byte_rate", 1.0)],
                "Unhandled client quota entity type: group".into(),
            ),
            (
                entity(&[]),
                vec![set("producer_byte_rate", 1.0)],
                "Invalid empty client quota entity".into(),
            ),
            (
                alice(),
                vec![set("producer_byte_rate", 1.0), set("producer_byte_rate", 2.0)],
                "Ignoring duplicate entity ClientQuotaEntity(entries={user=alice})".into(),
            ),
        ];
        for (e, ops, text) in errors {
            for validate_only in [true, false] {
                let r =
                    alter_quotas(&mut c, v, vec![(e.clone(), ops.clone())], validate_only).await;
                assert_eq!(r, vec![(INVALID_REQUEST, Some(text.clone()))], "v{v}");
            }
        }
        assert_no_quotas(&mut c, v).await;

        // validate_only stores nothing.
        let r = alter_quotas(
            &mut c,
            v,
            vec![(alice(), vec![set("producer_byte_rate", 1024.0)])],
            true,
        )
        .await;
        assert_eq!(r, vec![(0, None)]);
        assert_no_quotas(&mut c, v).await;
    }

    let r = alter_quotas(
        &mut c,
        1,
        vec![
            (
                alice(),
                vec![
                    set("producer_byte_rate", 1024.0),
                    set("request_percentage", 12.5),
                ],
            ),
            (
                entity(&[("user", None)]),
                vec![set("consumer_byte_rate", 2048.0)],
            ),
            (
                entity(&[("user", Some("alice")), ("client-id", Some("app"))]),
                vec![set("controller_mutation_rate", 3.0)],
            ),
            (
                entity(&[("client-id", None)]),
                vec![set("producer_byte_rate", 4096.0)],
            ),
            (
                entity(&[("ip", None)]),
                vec![set("connection_creation_rate", 10.0)],
            ),
            (
                entity(&[("ip", Some("127.0.0.1"))]),
                vec![set("connection_creation_rate", 5.0)],
            ),
            (
                entity(&[("user", Some("bob"))]),
                vec![remove("producer_byte_rate")],
            ),
        ],
        false,
    )
    .await;
    assert_eq!(r, vec![(0, None); 7]);
    let alice_vals: &[(&str, f64)] =
        &[("producer_byte_rate", 1024.0), ("request_percentage", 12.5)];
    let everything = described(&[
        ("client-id=<default>", &[("producer_byte_rate", 4096.0)]),
        (
            "client-id=app|user=alice",
            &[("controller_mutation_rate", 3.0)],
        ),
        ("ip=127.0.0.1", &[("connection_creation_rate", 5.0)]),
        ("ip=<default>", &[("connection_creation_rate", 10.0)]),
        ("user=<default>", &[("consumer_byte_rate", 2048.0)]),
        ("user=alice", alice_vals),
    ]);
    for restart in [false, true] {
        if restart {
            b.restart().await;
            c = b.connect().await;
        }
        for v in versions(ApiKey::DescribeClientQuotas) {
            let d = |x: &[(&str, &[(&str, f64)])]| Ok(described(x));
            assert_eq!(
                describe_quotas(&mut c, v, vec![], false).await,
                Ok(everything.clone()),
                "v{v}"
            );
            assert_eq!(
                describe_quotas(&mut c, v, vec![], true).await,
                Ok(vec![]),
                "v{v}"
            );
            assert_eq!(
                describe_quotas(&mut c, v, vec![component("user", 0, Some("alice"))], true).await,
                d(&[("user=alice", alice_vals)]),
                "v{v}"
            );
            assert_eq!(
                describe_quotas(&mut c, v, vec![component("user", 0, Some("alice"))], false).await,
                d(&[
                    (
                        "client-id=app|user=alice",
                        &[("controller_mutation_rate", 3.0)]
                    ),
                    ("user=alice", alice_vals)
                ]),
                "v{v}"
            );
            assert_eq!(
                describe_quotas(&mut c, v, vec![component("user", 1, None)], false).await,
                d(&[("user=<default>", &[("consumer_byte_rate", 2048.0)])]),
                "v{v}"
            );
            assert_eq!(
                describe_quotas(&mut c, v, vec![component("ip", 2, None)], true).await,
                d(&[
                    ("ip=127.0.0.1", &[("connection_creation_rate", 5.0)]),
                    ("ip=<default>", &[("connection_creation_rate", 10.0)])
                ]),
                "v{v}"
            );
            assert_eq!(
                describe_quotas(
                    &mut c,
                    v,
                    vec![
                        component("user", 2, None),
                        component("client-id", 0, Some("app"))
                    ],
                    true
                )
                .await,
                d(&[(
                    "client-id=app|user=alice",
                    &[("controller_mutation_rate", 3.0)]
                )]),
                "v{v}"
            );
            let errors = [
                (vec![component("group", 2, None)], UNSUPPORTED_VERSION, "Unsupported entity type group"),
                (vec![component("", 2, None)], INVALID_REQUEST, "Invalid empty entity type."),
                (
                    vec![component("user", 2, None), component("user", 1, None)],
                    INVALID_REQUEST,
                    "Entity type user cannot appear more than once in the filter.",
                ),
                (
                    vec![component("ip", 2, None), component("user", 2, None)],
                    INVALID_REQUEST,
                    "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component.",
                ),
                (
                    vec![component("user", 0, None)],
                    INVALID_REQUEST,
                    "Request specified MATCH_TYPE_EXACT, but set match string to null.",
                ),
                (
                    vec![component("user", 1, Some("x"))],
                    INVALID_REQUEST,
                    "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.",
                ),
                (
                    vec![component("user", 2, Some("x"))],
                    INVALID_REQUEST,
                    "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string.",
                ),
                (vec![component("user", 9, None)], INVALID_REQUEST, "Unknown match type 9"),
            ];
            for (components, code, text) in errors {
                assert_eq!(
                    describe_quotas(&mut c, v, components, false).await,
                    Err((code, text.to_string())),
                    "v{v}"
                );
            }
        }
    }

    // Removal (and removing what is not there) is stored too.
    let r = alter_quotas(
        &mut c,
        0,
        vec![(
            alice(),
            vec![remove("producer_byte_rate"), remove("consumer_byte_rate")],
        )],
        false,
    )
    .await;
    assert_eq!(r, vec![(0, None)]);
    b.restart().await;
    let mut c = b.connect().await;
    assert_eq!(
        describe_quotas(&mut c, 0, vec![component("user", 0, Some("alice"))], true).await,
        Ok(described(&[(
            "user=alice",
            &[("request_percentage", 12.5)]
        )]))
    );
}

/// Metadata v8+ reports authorized operations when asked (librdkafka's
/// DescribeCluster/DescribeTopics ask through Metadata); without an
/// authorizer that is every supported operation, as Kafka answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_authorized_operations_when_asked() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic("ops", 1).await;
    for v in versions(ApiKey::Metadata) {
        for ask in [false, true] {
            let mut req = metadata_request(v, Some(&["ops"]), false);
            if v >= 8 {
                req = req.with_include_topic_authorized_operations(ask);
            }
            if (8..=10).contains(&v) {
                req = req.with_include_cluster_authorized_operations(ask);
            }
            let r = c.call(v, &req).await;
            assert_eq!(r.topics[0].error_code, 0, "v{v}");
            let asked = ask && v >= 8;
            assert_eq!(
                r.topics[0].topic_authorized_operations,
                if asked { TOPIC_OPERATIONS } else { i32::MIN },
                "v{v} ask={ask}"
            );
            assert_eq!(
                r.cluster_authorized_operations,
                if asked && v <= 10 {
                    CLUSTER_OPERATIONS
                } else {
                    i32::MIN
                },
                "v{v} ask={ask}"
            );
        }
    }
}

/// Kafka's controller bounds the records one request makes (10000,
/// `MAX_RECORDS_PER_USER_OP`): a CreateTopics or CreatePartitions that would
/// add more partitions fails as a whole with POLICY_VIOLATION, before any
/// log is made. A huge count must neither hang the broker creating
/// directories nor create anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_partition_counts_are_a_policy_violation() {
    const POLICY_VIOLATION: i16 = 44;
    const TOO_LARGE: &str = "Unable to perform excessively large batch operation.";
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    let creatable = |name: &str, partitions: i32| {
        create_topics_request::CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
    };
    let within = std::time::Duration::from_secs(20);
    for (topics, validate_only) in [
        (vec![creatable("huge", i32::MAX)], true),
        (vec![creatable("huge", i32::MAX)], false),
        (
            vec![creatable("six-a", 6000), creatable("six-b", 6000)],
            false,
        ),
    ] {
        let names: Vec<String> = topics.iter().map(|t| t.name.to_string()).collect();
        let req = CreateTopicsRequest::default()
            .with_topics(topics)
            .with_timeout_ms(10_000)
            .with_validate_only(validate_only);
        let resp = tokio::time::timeout(within, c.call(7, &req))
            .await
            .expect("CreateTopics with a huge partition count must answer at once");
        let got: Vec<_> = resp
            .topics
            .iter()
            .map(|t| (t.name.to_string(), t.error_code, msg(&t.error_message)))
            .collect();
        let want: Vec<_> = names
            .iter()
            .map(|n| (n.clone(), POLICY_VIOLATION, Some(TOO_LARGE.to_owned())))
            .collect();
        assert_eq!(got, want);
        let md: MetadataResponse = c.call(12, &metadata_request(12, None, false)).await;
        assert!(md
            .topics
            .iter()
            .all(|t| !names.contains(&t.name.as_ref().unwrap().to_string())));
    }
    c.create_topic("g1", 1).await;
    c.create_topic("g2", 2).await;
    for (topics, validate_only) in [
        (vec![grow("g1", i32::MAX, None)], true),
        (vec![grow("g1", i32::MAX, None)], false),
        (vec![grow("g1", 6001, None), grow("g2", 6002, None)], false),
    ] {
        let names: Vec<String> = topics.iter().map(|t| t.name.to_string()).collect();
        let got = tokio::time::timeout(within, create_partitions(&mut c, 3, topics, validate_only))
            .await
            .expect("CreatePartitions with a huge count must answer at once");
        let want: Vec<_> = names
            .iter()
            .map(|n| (n.clone(), POLICY_VIOLATION, Some(TOO_LARGE.to_owned())))
            .collect();
        assert_eq!(got, want);
    }
    assert_eq!(partition_count(&mut c, "g1").await, 1);
    assert_eq!(partition_count(&mut c, "g2").await, 2);
    // Just within the bound in one request is fine.
    let got = create_partitions(
        &mut c,
        3,
        vec![grow("g1", 3, None), grow("g2", 4, None)],
        false,
    )
    .await;
    assert_eq!(got, vec![("g1".into(), 0, None), ("g2".into(), 0, None)]);
    // The bound itself: a topic record plus 9999 partition records is the
    // most one request may write; one partition more is refused.
    for (partitions, want) in [(9_999, 0), (10_000, POLICY_VIOLATION)] {
        let req = CreateTopicsRequest::default()
            .with_topics(vec![creatable("edge", partitions)])
            .with_timeout_ms(10_000)
            .with_validate_only(true);
        let resp: CreateTopicsResponse = c.call(7, &req).await;
        let got: Vec<_> = resp.topics.iter().map(|t| t.error_code).collect();
        assert_eq!(got, vec![want], "{partitions} partitions");
    }
}
