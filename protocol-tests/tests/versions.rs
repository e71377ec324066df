//! Every API at every version the table in `runnel::protocol::apis`
//! advertises: a valid request round-trips, decodes, and the answer makes
//! sense. Plus the ApiVersions special cases (KIP-511 fallback, byte layout)
//! and the refused Produce v0–v2.

use std::ops::RangeInclusive;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::*;
use protocol_tests::*;
use runnel::protocol::apis;

fn versions(key: ApiKey) -> RangeInclusive<i16> {
    let spec = apis::lookup(key).unwrap_or_else(|| panic!("{key:?} not in SUPPORTED"));
    spec.min..=spec.max
}

fn api_versions_request(version: i16) -> ApiVersionsRequest {
    let req = ApiVersionsRequest::default();
    if version >= 3 {
        req.with_client_software_name(str_bytes("protocol-tests"))
            .with_client_software_version(str_bytes("0.0.0"))
    } else {
        req
    }
}

/// Each API in the table has a round-trip test below; a new row in the
/// table fails here until it gets one.
#[test]
fn every_supported_api_is_covered() {
    let covered = [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::Metadata,
        ApiKey::ApiVersions,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
        ApiKey::DeleteRecords,
        ApiKey::InitProducerId,
        ApiKey::DescribeConfigs,
        // The config-altering APIs: tests/config_versions.rs.
        ApiKey::AlterConfigs,
        ApiKey::IncrementalAlterConfigs,
        // The group APIs: tests/group_versions.rs.
        ApiKey::FindCoordinator,
        ApiKey::JoinGroup,
        ApiKey::SyncGroup,
        ApiKey::Heartbeat,
        ApiKey::LeaveGroup,
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::DescribeGroups,
        ApiKey::ListGroups,
        ApiKey::DeleteGroups,
        ApiKey::OffsetDelete,
        // The transaction APIs: tests/txn_versions.rs.
        ApiKey::TxnOffsetCommit,
        ApiKey::AddPartitionsToTxn,
        ApiKey::AddOffsetsToTxn,
        ApiKey::EndTxn,
        ApiKey::WriteTxnMarkers,
        ApiKey::DescribeTransactions,
        ApiKey::ListTransactions,
        ApiKey::DescribeProducers,
        // The single-node admin APIs: tests/admin_versions.rs.
        ApiKey::DescribeLogDirs,
        ApiKey::CreatePartitions,
        ApiKey::ElectLeaders,
        ApiKey::AlterPartitionReassignments,
        ApiKey::ListPartitionReassignments,
        ApiKey::DescribeClientQuotas,
        ApiKey::AlterClientQuotas,
        ApiKey::DescribeCluster,
        ApiKey::DescribeTopicPartitions,
    ];
    for spec in SUPPORTED {
        assert!(covered.contains(&spec.key), "{:?} has no test", spec.key);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_every_version_lists_the_table() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    for v in versions(ApiKey::ApiVersions) {
        let resp = c.call(v, &api_versions_request(v)).await;
        assert_eq!(resp.error_code, 0, "v{v}");
        let got: Vec<(i16, i16, i16)> = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        let want: Vec<(i16, i16, i16)> = SUPPORTED
            .iter()
            .map(|s| (s.key as i16, s.min, s.max))
            .collect();
        assert_eq!(got, want, "v{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_every_version_lists_the_broker_and_topic() {
    let b = TestBroker::start().await;
    let node = b.handle().broker.node_id();
    let mut c = b.connect().await;
    c.create_topic("md", 3).await;
    for v in versions(ApiKey::Metadata) {
        for topics in [None, Some(&["md"][..])] {
            let resp = c.call(v, &metadata_request(v, topics, false)).await;
            assert_eq!(resp.brokers.len(), 1, "v{v}");
            let broker = &resp.brokers[0];
            assert_eq!(broker.node_id.0, node, "v{v}");
            assert_eq!(broker.port, b.addr().port() as i32, "v{v}");
            if v >= 1 {
                assert_eq!(resp.controller_id.0, node, "v{v}");
            }
            if v >= 2 {
                assert!(resp.cluster_id.is_some(), "v{v}: cluster id");
            }
            assert_eq!(resp.topics.len(), 1, "v{v} {topics:?}");
            let t = &resp.topics[0];
            assert_eq!(t.error_code, 0, "v{v}");
            assert_eq!(t.name.as_ref().map(|n| n.as_str()), Some("md"), "v{v}");
            if v >= 10 {
                assert!(!t.topic_id.is_nil(), "v{v}: topic id");
            }
            assert_eq!(t.partitions.len(), 3, "v{v}");
            for (i, p) in t.partitions.iter().enumerate() {
                assert_eq!(p.partition_index, i as i32);
                assert_eq!(p.leader_id.0, node);
                assert_eq!(p.replica_nodes, vec![BrokerId(node)]);
                assert_eq!(p.isr_nodes, vec![BrokerId(node)]);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topics_every_version_creates() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    for v in versions(ApiKey::CreateTopics) {
        let name = format!("ct-v{v}");
        let req = create_topics_request(vec![creatable_topic(&name, 2, &[])]);
        let resp = c.call(v, &req).await;
        assert_eq!(resp.topics.len(), 1);
        let t = &resp.topics[0];
        assert_eq!(t.name.as_str(), name);
        assert_eq!(t.error_code, 0, "v{v}: {:?}", t.error_message);
        if v >= 5 {
            assert_eq!(t.num_partitions, 2, "v{v}");
            assert_eq!(t.replication_factor, 1, "v{v}");
            let configs = t.configs.as_ref().expect("configs from v5");
            assert!(configs.iter().any(|c| c.name.as_str() == "retention.ms"));
        }
        if v >= 7 {
            assert!(!t.topic_id.is_nil(), "v{v}: topic id");
        }
        let md = c.metadata(12, &[&name]).await;
        assert_eq!(md.topics[0].error_code, 0, "v{v}: created topic visible");
        assert_eq!(md.topics[0].partitions.len(), 2);
    }
}

/// Produce v3..=13 each append a batch; Fetch at every version then returns
/// everything produced. Produce v13 and Fetch v13+ name the topic by id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_fetch_every_version() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    let id = c.create_topic("pf", 1).await;
    let mut expected = Vec::new();
    let produce = versions(ApiKey::Produce);
    for v in apis::PRODUCE_MIN_DECODABLE..=*produce.end() {
        let vals = values(&format!("p{v}"), 2);
        let records = batch(&as_slices(&vals), 1_000 + v as i64, None);
        let req = produce_request(v, "pf", id, 0, Some(records), -1);
        let resp = c.call(v, &req).await;
        assert_eq!(resp.responses.len(), 1, "v{v}");
        let t = &resp.responses[0];
        if v >= 13 {
            assert_eq!(t.topic_id, id, "v{v}");
        } else {
            assert_eq!(t.name.as_str(), "pf", "v{v}");
        }
        let p = &t.partition_responses[0];
        assert_eq!(p.error_code, 0, "produce v{v}");
        assert_eq!(p.base_offset, expected.len() as i64, "produce v{v}");
        if v >= 5 {
            assert_eq!(p.log_start_offset, 0, "produce v{v}");
        }
        expected.extend(vals.iter().map(|x| String::from_utf8(x.clone()).unwrap()));
    }
    for v in versions(ApiKey::Fetch) {
        let req = fetch_request(v, "pf", id, &[(0, 0, 1 << 20)]);
        let resp = c.call(v, &req).await;
        assert_eq!(resp.error_code, 0, "fetch v{v}");
        let t = &resp.responses[0];
        if v >= 13 {
            assert_eq!(t.topic_id, id, "fetch v{v}");
        } else {
            assert_eq!(t.topic.as_str(), "pf", "fetch v{v}");
        }
        let p = &t.partitions[0];
        assert_eq!(p.error_code, 0, "fetch v{v}");
        assert_eq!(p.high_watermark, expected.len() as i64, "fetch v{v}");
        if v >= 5 {
            assert_eq!(p.log_start_offset, 0, "fetch v{v}");
        }
        assert_eq!(fetched_values(&p.records), expected, "fetch v{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_every_version() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic("lo", 1).await;
    let vals = values("lo", 5);
    c.produce_ok("lo", 0, batch(&as_slices(&vals), 10_000, None))
        .await;
    for v in versions(ApiKey::ListOffsets) {
        for (ts, want) in [(-1, 5), (-2, 0), (10_002, 2)] {
            let resp = c.call(v, &list_offsets_request("lo", 0, ts)).await;
            let t = &resp.topics[0];
            assert_eq!(t.name.as_str(), "lo");
            let p = &t.partitions[0];
            assert_eq!(p.error_code, 0, "v{v} ts {ts}");
            assert_eq!(p.offset, want, "v{v} ts {ts}");
            if ts >= 0 {
                assert_eq!(p.timestamp, ts, "v{v}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_configs_every_version() {
    let b = TestBroker::start().await;
    let node = b.handle().broker.node_id();
    let mut c = b.connect().await;
    c.create_topic("dc", 1).await;
    for v in versions(ApiKey::DescribeConfigs) {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(str_bytes("dc")),
            DescribeConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(str_bytes(&node.to_string())),
        ]);
        let resp = c.call(v, &req).await;
        assert_eq!(resp.results.len(), 2, "v{v}");
        for (r, key) in resp
            .results
            .iter()
            .zip(["retention.ms", "log.retention.ms"])
        {
            assert_eq!(r.error_code, 0, "v{v} {:?}", r.error_message);
            assert!(
                r.configs.iter().any(|c| c.name.as_str() == key),
                "v{v}: {key} missing"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_every_version() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic("dr", 1).await;
    for i in 0..10 {
        c.produce_ok("dr", 0, batch(&[format!("r{i}").as_bytes()], 1, None))
            .await;
    }
    for v in versions(ApiKey::DeleteRecords) {
        let before = v as i64 + 1;
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(topic_name("dr"))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(before)])]);
        let resp = c.call(v, &req).await;
        let p = &resp.topics[0].partitions[0];
        assert_eq!(p.error_code, 0, "v{v}");
        assert_eq!(p.low_watermark, before, "v{v}");
        let earliest = c.list_offset("dr", 0, -2).await;
        assert_eq!(earliest.offset, before, "v{v}: earliest after delete");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_producer_id_every_version() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    let mut ids = Vec::new();
    for v in versions(ApiKey::InitProducerId) {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000);
        let resp = c.call(v, &req).await;
        assert_eq!(resp.error_code, 0, "v{v}");
        assert!(resp.producer_id.0 >= 0, "v{v}");
        assert_eq!(resp.producer_epoch, 0, "v{v}");
        ids.push(resp.producer_id.0);
    }
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "fresh id each time: {ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_topics_every_version() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    for v in versions(ApiKey::DeleteTopics) {
        let name = format!("dt-v{v}");
        let id = c.create_topic(&name, 1).await;
        let req = DeleteTopicsRequest::default().with_timeout_ms(10_000);
        let req = if v >= 6 {
            req.with_topics(vec![DeleteTopicState::default().with_topic_id(id)])
        } else {
            req.with_topic_names(vec![topic_name(&name)])
        };
        let resp = c.call(v, &req).await;
        assert_eq!(resp.responses.len(), 1, "v{v}");
        let r = &resp.responses[0];
        assert_eq!(r.error_code, 0, "v{v}");
        assert_eq!(r.name.as_ref().map(|n| n.as_str()), Some(name.as_str()));
        if v >= 6 {
            assert_eq!(r.topic_id, id, "v{v}");
        }
        let md = c
            .call(12, &metadata_request(12, Some(&[&name]), false))
            .await;
        assert_eq!(md.topics[0].error_code, 3, "v{v}: {name} gone");
    }
}

// ---------------------------------------------------------------------------
// ApiVersions special cases

/// The v0-layout reply to an ApiVersions version we do not know: header v0
/// (correlation id only), error 35, the key list, nothing else.
fn assert_unsupported_reply(mut frame: Bytes, correlation_id: i32) {
    assert_eq!(frame.get_i32(), correlation_id);
    assert_eq!(frame.get_i16(), 35, "UNSUPPORTED_VERSION");
    let n = frame.get_i32();
    assert_eq!(n as usize, SUPPORTED.len());
    for spec in SUPPORTED {
        assert_eq!(
            (frame.get_i16(), frame.get_i16(), frame.get_i16()),
            (spec.key as i16, spec.min, spec.max)
        );
    }
    assert_eq!(frame.remaining(), 0, "v0 layout has nothing after the keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_unknown_version_gets_v0_reply_and_connection_stays() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    for v in [5, 127] {
        let id = c.correlation_id();
        // A newer client's body: compact strings + tagged fields.
        let body = [0x05, b'n', b'e', b'w', 0x02, b'9', 0x00];
        c.write(&raw_request_frame(ApiKey::ApiVersions, v, id, &body))
            .await;
        let frame = c.read_frame().await;
        assert_unsupported_reply(frame, id);
        // The client retries with a version we do know.
        let resp = c.call(3, &api_versions_request(3)).await;
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.api_keys.len(), SUPPORTED.len());
    }
}

/// v3/v4 responses byte for byte: no tagged field is written when it holds
/// its default (no supported/finalized features), so the body ends with
/// throttle_time_ms and a tagged-field count of 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_flexible_response_bytes() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    for v in [3, 4] {
        let id = c.send(v, &api_versions_request(v)).await;
        let frame = c.read_frame().await;
        let mut want = BytesMut::new();
        want.put_i32(id); // response header v0, even for flexible versions
        want.put_i16(0);
        want.put_u8(SUPPORTED.len() as u8 + 1); // compact array length (< 127)
        for spec in SUPPORTED {
            want.put_i16(spec.key as i16);
            want.put_i16(spec.min);
            want.put_i16(spec.max);
            want.put_u8(0);
        }
        want.put_i32(0); // throttle_time_ms
        want.put_u8(0); // no tagged fields
        assert_eq!(frame.as_ref(), want.as_ref(), "ApiVersions v{v} bytes");
    }
}

// ---------------------------------------------------------------------------
// Produce v0–v2: advertised, refused per partition

/// A magic-0 message: offset, size, crc, magic, attributes, key, value.
fn legacy_message_set(value: &[u8]) -> Vec<u8> {
    let mut msg = Vec::new();
    msg.put_i8(0); // magic
    msg.put_i8(0); // attributes
    msg.put_i32(-1); // null key
    msg.put_i32(value.len() as i32);
    msg.put_slice(value);
    let mut set = Vec::new();
    set.put_i64(0);
    set.put_i32(4 + msg.len() as i32);
    set.put_u32(0); // crc (not checked: the version is refused first)
    set.put_slice(&msg);
    set
}

fn legacy_produce_body(acks: i16, topic: &str, partitions: &[i32]) -> Vec<u8> {
    let mut body = Vec::new();
    body.put_i16(acks);
    body.put_i32(10_000);
    body.put_i32(1);
    body.put_i16(topic.len() as i16);
    body.put_slice(topic.as_bytes());
    body.put_i32(partitions.len() as i32);
    for &p in partitions {
        let set = legacy_message_set(b"old");
        body.put_i32(p);
        body.put_i32(set.len() as i32);
        body.put_slice(&set);
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_v0_to_v2_answered_unsupported_version_per_partition() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic("legacy", 2).await;
    for v in 0..apis::PRODUCE_MIN_DECODABLE {
        assert!(versions(ApiKey::Produce).contains(&v), "v{v} advertised");
        let id = c.correlation_id();
        let body = legacy_produce_body(-1, "legacy", &[0, 1]);
        c.write(&header_v1_frame(ApiKey::Produce as i16, v, id, &body))
            .await;
        let mut f = c.read_frame().await;
        assert_eq!(f.get_i32(), id, "v{v}: header v0");
        assert_eq!(f.get_i32(), 1, "v{v}: one topic");
        let len = f.get_i16() as usize;
        assert_eq!(&f[..len], b"legacy");
        f.advance(len);
        assert_eq!(f.get_i32(), 2, "v{v}: two partitions");
        for want in [0, 1] {
            assert_eq!(f.get_i32(), want, "v{v}: partition index");
            assert_eq!(f.get_i16(), 35, "v{v}: UNSUPPORTED_VERSION");
            assert_eq!(f.get_i64(), -1, "v{v}: base offset");
            if v >= 2 {
                assert_eq!(f.get_i64(), -1, "v{v}: log append time");
            }
        }
        if v >= 1 {
            assert_eq!(f.get_i32(), 0, "v{v}: throttle time");
        }
        assert_eq!(f.remaining(), 0, "v{v}: trailing bytes");
    }
    assert_eq!(c.latest_offset("legacy", 0).await, 0, "nothing appended");
    assert_eq!(c.latest_offset("legacy", 1).await, 0, "nothing appended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_v2_acks_0_gets_no_response() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    let id = c.correlation_id();
    let body = legacy_produce_body(0, "legacy", &[0]);
    let mut both = header_v1_frame(ApiKey::Produce as i16, 2, id, &body).to_vec();
    let av = c.correlation_id();
    both.extend_from_slice(&request_frame(3, av, &api_versions_request(3)));
    c.write(&both).await;
    // The first frame back must be the ApiVersions answer.
    let resp = c.recv::<ApiVersionsRequest>(3, av).await;
    assert_eq!(resp.error_code, 0);
}
