//! Malformed and awkward input at the frame level. A frame that can never be
//! valid closes only its own connection: a connection opened before it keeps
//! working and new connections are served. Split and pipelined frames are
//! answered, in order.

use std::time::{Duration, Instant};

use bytes::BufMut;
use kafka_protocol::messages::*;
use protocol_tests::*;

const MAX_REQUEST: usize = 1 << 20;

async fn broker() -> TestBroker {
    TestBroker::start_with(|cfg| {
        cfg.set("socket.request.max.bytes", &MAX_REQUEST.to_string())
            .expect("socket.request.max.bytes");
    })
    .await
}

fn length_prefixed(len: i32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.put_i32(len);
    v.put_slice(body);
    v
}

/// A Metadata v12 body whose topic array claims two entries, followed by
/// deterministic pseudo-random bytes that do not decode as those entries.
/// (Garbage *lengths* are in `length_fields_beyond_the_frame_...` below.)
fn garbage_metadata_body(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = vec![0x03];
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(x as u8);
    }
    v
}

fn metadata_v12_body() -> Vec<u8> {
    use kafka_protocol::protocol::Encodable;
    let mut body = bytes::BytesMut::new();
    metadata_request(12, Some(&["some-topic", "another-topic"]), false)
        .encode(&mut body, 12)
        .unwrap();
    body.to_vec()
}

/// Writes what may be refused part-way: the broker is allowed to close
/// before it has read everything.
async fn write_tolerant(c: &mut Client, bytes: &[u8]) {
    use tokio::io::AsyncWriteExt;
    let _ = tokio::time::timeout(WAIT, c.stream.write_all(bytes))
        .await
        .expect("write within WAIT");
}

/// Sends `bytes` on a fresh connection, expects it closed with no reply, and
/// checks an older connection and a new one are still served.
async fn assert_closes_only_its_connection(b: &TestBroker, what: &str, bytes: &[u8]) {
    let mut bystander = b.connect().await;
    bystander.assert_serving(what).await;
    let mut bad = b.connect().await;
    write_tolerant(&mut bad, bytes).await;
    bad.expect_closed(what).await;
    bystander.assert_serving(what).await;
    b.connect().await.assert_serving(what).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_frames_close_only_their_connection() {
    let b = broker().await;
    let metadata = metadata_v12_body();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "length 4 < header prefix",
            length_prefixed(4, &[0, 18, 0, 3]),
        ),
        ("length 7 < header prefix", length_prefixed(7, &[0; 7])),
        ("length 0", length_prefixed(0, &[])),
        ("negative length", length_prefixed(-1, &[0; 16])),
        ("i32::MIN length", length_prefixed(i32::MIN, &[])),
        (
            "unknown api key 9999",
            header_v1_frame(9999, 0, 1, &[]).to_vec(),
        ),
        (
            "Metadata v99",
            header_v1_frame(ApiKey::Metadata as i16, 99, 1, &metadata).to_vec(),
        ),
        (
            "Metadata v-1",
            header_v1_frame(ApiKey::Metadata as i16, -1, 1, &metadata).to_vec(),
        ),
        (
            "Fetch v3 (below the advertised floor)",
            header_v1_frame(ApiKey::Fetch as i16, 3, 1, &[0; 32]).to_vec(),
        ),
        (
            "garbage Metadata v12 body",
            raw_request_frame(ApiKey::Metadata, 12, 1, &garbage_metadata_body(64)).to_vec(),
        ),
        (
            "truncated Metadata v12 body",
            raw_request_frame(ApiKey::Metadata, 12, 1, &metadata[..metadata.len() / 2]).to_vec(),
        ),
        (
            "truncated flexible header (client id cut)",
            length_prefixed(10, &[0, 3, 0, 12, 0, 0, 0, 1, 0, 40]),
        ),
    ];
    for (what, bytes) in &cases {
        assert_closes_only_its_connection(&b, what, bytes).await;
    }
}

/// Lengths read from the body that the frame cannot hold (array counts up
/// to 2^32-1): the decoder must refuse them before allocating for them, or
/// 30 bytes take the whole process down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn length_fields_beyond_the_frame_close_only_their_connection() {
    let b = broker().await;
    let mut produce_v3 = Vec::new();
    produce_v3.put_i16(-1); // transactional id: null
    produce_v3.put_i16(-1); // acks
    produce_v3.put_i32(1000); // timeout
    produce_v3.put_i32(i32::MAX); // topic_data count
    let mut create_v2 = Vec::new();
    create_v2.put_i32(i32::MAX); // topics count
                                 // Group APIs: a JoinGroup whose protocols and an OffsetCommit whose
                                 // topics claim more entries than the frame holds.
    let mut join_v5 = Vec::new();
    join_v5.put_i16(1); // group id "g"
    join_v5.put_u8(b'g');
    join_v5.put_i32(30_000); // session timeout
    join_v5.put_i32(30_000); // rebalance timeout
    join_v5.put_i16(0); // member id ""
    join_v5.put_i16(-1); // group instance id: null
    join_v5.put_i16(8); // protocol type
    join_v5.put_slice(b"consumer");
    join_v5.put_i32(i32::MAX); // protocols count
    let mut join_v6 = vec![0x02, b'g']; // compact group id "g"
    join_v6.put_i32(30_000);
    join_v6.put_i32(30_000);
    join_v6.extend_from_slice(&[0x01, 0x00, 0x09]); // member "", instance null, type...
    join_v6.put_slice(b"consumer");
    join_v6.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0]); // protocols 2^32-2
    let mut commit_v7 = Vec::new();
    commit_v7.put_i16(1); // group id "g"
    commit_v7.put_u8(b'g');
    commit_v7.put_i32(-1); // generation
    commit_v7.put_i16(0); // member id ""
    commit_v7.put_i16(-1); // group instance id: null
    commit_v7.put_i32(i32::MAX); // topics count
    let mut commit_v8 = vec![0x02, b'g']; // compact group id "g"
    commit_v8.put_i32(-1); // generation
    commit_v8.extend_from_slice(&[0x01, 0x00]); // member "", instance null
    commit_v8.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0]); // topics 2^32-2
                                                                     // A JoinGroup v5 protocol whose metadata length runs past the frame.
    let mut join_v5_meta = join_v5[..join_v5.len() - 4].to_vec();
    join_v5_meta.put_i32(1); // one protocol
    join_v5_meta.put_i16(5);
    join_v5_meta.put_slice(b"range");
    join_v5_meta.put_i32(i32::MAX); // metadata bytes length
                                    // Transaction APIs: arrays and strings that claim more than the frame.
    const COMPACT_HUGE: [u8; 5] = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F]; // 2^32-1 => 2^32-2 entries
    let mut add_parts_v2 = Vec::new();
    add_parts_v2.put_i16(1); // transactional id "t"
    add_parts_v2.put_u8(b't');
    add_parts_v2.put_i64(1); // producer id
    add_parts_v2.put_i16(0); // producer epoch
    add_parts_v2.put_i32(i32::MAX); // topics count
    let mut add_parts_v3 = vec![0x02, b't']; // compact transactional id "t"
    add_parts_v3.put_i64(1);
    add_parts_v3.put_i16(0);
    add_parts_v3.extend_from_slice(&COMPACT_HUGE); // topics
    let add_parts_v4 = COMPACT_HUGE.to_vec(); // transactions
    let mut txn_commit_v2 = Vec::new();
    txn_commit_v2.put_i16(1); // transactional id "t"
    txn_commit_v2.put_u8(b't');
    txn_commit_v2.put_i16(1); // group id "g"
    txn_commit_v2.put_u8(b'g');
    txn_commit_v2.put_i64(1);
    txn_commit_v2.put_i16(0);
    txn_commit_v2.put_i32(i32::MAX); // topics count
    let mut txn_commit_v3 = vec![0x02, b't', 0x02, b'g'];
    txn_commit_v3.put_i64(1);
    txn_commit_v3.put_i16(0);
    txn_commit_v3.put_i32(-1); // generation
    txn_commit_v3.extend_from_slice(&[0x01, 0x00]); // member "", instance null
    txn_commit_v3.extend_from_slice(&COMPACT_HUGE); // topics
    let mut end_txn_v3 = COMPACT_HUGE.to_vec(); // transactional id length
    end_txn_v3.extend_from_slice(b"t");
    let mut add_offsets_v0 = Vec::new();
    add_offsets_v0.put_i16(i16::MAX); // transactional id length 32767
    add_offsets_v0.put_slice(b"t");
    let mut init_v2 = COMPACT_HUGE.to_vec(); // nullable transactional id length
    init_v2.put_i32(60_000);
    let mut txn_cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "AddPartitionsToTxn v2 topics count i32::MAX",
            header_v1_frame(ApiKey::AddPartitionsToTxn as i16, 2, 1, &add_parts_v2).to_vec(),
        ),
        (
            "AddPartitionsToTxn v3 topics count 2^32-2 (compact)",
            raw_request_frame(ApiKey::AddPartitionsToTxn, 3, 1, &add_parts_v3).to_vec(),
        ),
        (
            "AddPartitionsToTxn v4 transactions count 2^32-2 (compact)",
            raw_request_frame(ApiKey::AddPartitionsToTxn, 4, 1, &add_parts_v4).to_vec(),
        ),
        (
            "TxnOffsetCommit v2 topics count i32::MAX",
            header_v1_frame(ApiKey::TxnOffsetCommit as i16, 2, 1, &txn_commit_v2).to_vec(),
        ),
        (
            "TxnOffsetCommit v3 topics count 2^32-2 (compact)",
            raw_request_frame(ApiKey::TxnOffsetCommit, 3, 1, &txn_commit_v3).to_vec(),
        ),
        (
            "EndTxn v3 transactional id length 2^32-2",
            raw_request_frame(ApiKey::EndTxn, 3, 1, &end_txn_v3).to_vec(),
        ),
        (
            "AddOffsetsToTxn v0 transactional id length 32767",
            header_v1_frame(ApiKey::AddOffsetsToTxn as i16, 0, 1, &add_offsets_v0).to_vec(),
        ),
        (
            "InitProducerId v2 transactional id length 2^32-2",
            raw_request_frame(ApiKey::InitProducerId, 2, 1, &init_v2).to_vec(),
        ),
        (
            "WriteTxnMarkers v1 markers count 2^32-2 (compact)",
            raw_request_frame(ApiKey::WriteTxnMarkers, 1, 1, &COMPACT_HUGE).to_vec(),
        ),
        (
            "DescribeTransactions v0 ids count 2^32-2 (compact)",
            raw_request_frame(ApiKey::DescribeTransactions, 0, 1, &COMPACT_HUGE).to_vec(),
        ),
        (
            "DescribeProducers v0 topics count 2^32-2 (compact)",
            raw_request_frame(ApiKey::DescribeProducers, 0, 1, &COMPACT_HUGE).to_vec(),
        ),
    ];
    for v in [0, 1] {
        let mut list = COMPACT_HUGE.to_vec(); // state filters
        list.push(0);
        txn_cases.push((
            if v == 0 {
                "ListTransactions v0 state filters count 2^32-2 (compact)"
            } else {
                "ListTransactions v1 state filters count 2^32-2 (compact)"
            },
            raw_request_frame(ApiKey::ListTransactions, v, 1, &list).to_vec(),
        ));
    }
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "Metadata v12 topic count 2^32-2 (compact)",
            raw_request_frame(
                ApiKey::Metadata,
                12,
                1,
                &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0, 0],
            )
            .to_vec(),
        ),
        (
            "Metadata v1 topic count i32::MAX",
            header_v1_frame(ApiKey::Metadata as i16, 1, 1, &i32::MAX.to_be_bytes()).to_vec(),
        ),
        (
            "Produce v3 topic count i32::MAX",
            header_v1_frame(ApiKey::Produce as i16, 3, 1, &produce_v3).to_vec(),
        ),
        (
            "CreateTopics v2 topic count i32::MAX",
            header_v1_frame(ApiKey::CreateTopics as i16, 2, 1, &create_v2).to_vec(),
        ),
        (
            "JoinGroup v5 protocols count i32::MAX",
            header_v1_frame(ApiKey::JoinGroup as i16, 5, 1, &join_v5).to_vec(),
        ),
        (
            "JoinGroup v6 protocols count 2^32-2 (compact)",
            raw_request_frame(ApiKey::JoinGroup, 6, 1, &join_v6).to_vec(),
        ),
        (
            "JoinGroup v5 protocol metadata length i32::MAX",
            header_v1_frame(ApiKey::JoinGroup as i16, 5, 1, &join_v5_meta).to_vec(),
        ),
        (
            "OffsetCommit v7 topics count i32::MAX",
            header_v1_frame(ApiKey::OffsetCommit as i16, 7, 1, &commit_v7).to_vec(),
        ),
        (
            "OffsetCommit v8 topics count 2^32-2 (compact)",
            raw_request_frame(ApiKey::OffsetCommit, 8, 1, &commit_v8).to_vec(),
        ),
        (
            "Metadata v12 topic name length 2^32-2",
            raw_request_frame(
                ApiKey::Metadata,
                12,
                1,
                &[
                    0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
                    0x0F,
                ],
            )
            .to_vec(),
        ),
    ];
    cases.append(&mut txn_cases);
    for (what, bytes) in &cases {
        assert_closes_only_its_connection(&b, what, bytes).await;
    }
}

/// A frame whose body never arrives: the client half-closes, the broker sees
/// end of stream mid-frame and closes without answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eof_inside_a_frame_closes() {
    use tokio::io::AsyncWriteExt;
    let b = broker().await;
    let mut bystander = b.connect().await;
    let mut c = b.connect().await;
    let frame = raw_request_frame(ApiKey::Metadata, 12, 1, &metadata_v12_body());
    c.write(&frame[..frame.len() - 3]).await;
    c.stream.shutdown().await.expect("half-close");
    c.expect_closed("eof mid-frame").await;
    bystander.assert_serving("after eof mid-frame").await;
    b.connect()
        .await
        .assert_serving("after eof mid-frame")
        .await;
}

/// socket.request.max.bytes on both sides: a frame of exactly the limit is
/// read whole (here an ApiVersions v0 padded with trailing bytes, which are
/// tolerated, so it is even answered); one byte more is refused on the
/// length alone, without the broker waiting for a body that never comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_size_limit_both_sides() {
    let b = broker().await;
    let mut bystander = b.connect().await;

    let mut c = b.connect().await;
    let header = header_v1_frame(ApiKey::ApiVersions as i16, 0, 7, &[]);
    let mut frame = header.to_vec();
    frame.resize(4 + MAX_REQUEST, 0);
    frame[..4].copy_from_slice(&(MAX_REQUEST as i32).to_be_bytes());
    c.write(&frame).await;
    let resp = c.recv::<ApiVersionsRequest>(0, 7).await;
    assert_eq!(resp.error_code, 0);
    c.assert_serving("after a maximal frame").await;

    let mut c = b.connect().await;
    c.write(&((MAX_REQUEST + 1) as i32).to_be_bytes()).await;
    let started = Instant::now();
    c.expect_closed("length max+1, no body sent").await;
    assert!(started.elapsed() < WAIT);

    bystander.assert_serving("after size limits").await;
    b.connect().await.assert_serving("after size limits").await;
}

/// A request dribbled one byte per write is reassembled and answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_split_into_single_bytes_is_answered() {
    use tokio::io::AsyncWriteExt;
    let b = broker().await;
    let mut c = b.connect().await;
    let id = c.correlation_id();
    let frame = request_frame(12, id, &metadata_request(12, None, false));
    for byte in frame.iter() {
        c.stream.write_all(&[*byte]).await.expect("write");
        c.stream.flush().await.expect("flush");
    }
    let resp = c.recv::<MetadataRequest>(12, id).await;
    assert_eq!(resp.brokers.len(), 1);
}

/// What each pipelined request was, to decode its answer.
enum Sent {
    ApiVersions(i32),
    Metadata(i32),
    ListOffsets(i32),
    Fetch(i32),
    LongPoll(i32),
}

/// 100 requests in one write come back in order, even when a long-polling
/// Fetch sits among them: the Metadata right after it is answered after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_answered_in_order() {
    let b = broker().await;
    let mut c = b.connect().await;
    let topic_id = c.create_topic("pipe", 1).await;
    c.create_topic("empty", 1).await;
    c.produce_ok("pipe", 0, batch(&[b"a", b"b"], 1, None)).await;

    let mut sent = Vec::new();
    let mut bytes = Vec::new();
    for i in 0..100 {
        let id = c.correlation_id();
        let (frame, kind) = match i {
            50 => {
                let req = fetch_request(12, "empty", uuid::Uuid::nil(), &[(0, 0, 1 << 20)])
                    .with_max_wait_ms(500)
                    .with_min_bytes(1);
                (request_frame(12, id, &req), Sent::LongPoll(id))
            }
            51 => (
                request_frame(12, id, &metadata_request(12, None, false)),
                Sent::Metadata(id),
            ),
            _ => match i % 4 {
                0 => (
                    request_frame(
                        3,
                        id,
                        &ApiVersionsRequest::default()
                            .with_client_software_name(str_bytes("pt"))
                            .with_client_software_version(str_bytes("1")),
                    ),
                    Sent::ApiVersions(id),
                ),
                1 => (
                    request_frame(12, id, &metadata_request(12, Some(&["pipe"]), false)),
                    Sent::Metadata(id),
                ),
                2 => (
                    request_frame(9, id, &list_offsets_request("pipe", 0, -1)),
                    Sent::ListOffsets(id),
                ),
                _ => (
                    request_frame(
                        13,
                        id,
                        &fetch_request(13, "pipe", topic_id, &[(0, 0, 1 << 20)]),
                    ),
                    Sent::Fetch(id),
                ),
            },
        };
        bytes.extend_from_slice(&frame);
        sent.push(kind);
    }
    let started = Instant::now();
    c.write(&bytes).await;
    let mut long_poll_done = None;
    for kind in &sent {
        match *kind {
            Sent::ApiVersions(id) => {
                let r = c.recv::<ApiVersionsRequest>(3, id).await;
                assert_eq!(r.error_code, 0);
            }
            Sent::Metadata(id) => {
                let r = c.recv::<MetadataRequest>(12, id).await;
                assert_eq!(r.brokers.len(), 1);
                if let Some(done) = long_poll_done {
                    assert!(started.elapsed() >= done, "Metadata after the long poll");
                }
            }
            Sent::ListOffsets(id) => {
                let r = c.recv::<ListOffsetsRequest>(9, id).await;
                assert_eq!(r.topics[0].partitions[0].offset, 2);
            }
            Sent::Fetch(id) => {
                let r = c.recv::<FetchRequest>(13, id).await;
                let p = &r.responses[0].partitions[0];
                assert_eq!(fetched_values(&p.records), ["a", "b"]);
            }
            Sent::LongPoll(id) => {
                let r = c.recv::<FetchRequest>(12, id).await;
                let waited = started.elapsed();
                let p = &r.responses[0].partitions[0];
                assert_eq!(p.error_code, 0);
                assert!(fetched_values(&p.records).is_empty());
                assert!(
                    waited >= Duration::from_millis(490),
                    "long poll answered after {waited:?}, before max_wait"
                );
                long_poll_done = Some(waited);
            }
        }
    }
    assert!(long_poll_done.is_some());
}

/// A Produce on another connection wakes a parked Fetch well before its
/// max_wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_wakes_long_poll_early() {
    let b = broker().await;
    let mut consumer = b.connect().await;
    let mut producer = b.connect().await;
    producer.create_topic("wake", 1).await;
    let req = fetch_request(12, "wake", uuid::Uuid::nil(), &[(0, 0, 1 << 20)])
        .with_max_wait_ms(500)
        .with_min_bytes(1);
    let started = Instant::now();
    let id = consumer.send(12, &req).await;
    // A round trip on the producer's connection first, so the fetch has
    // most likely parked before the append (if not, it answers at once,
    // which is just as correct).
    producer.metadata(12, &["wake"]).await;
    producer
        .produce_ok("wake", 0, batch(&[b"wake-up"], 1, None))
        .await;
    let resp = consumer.recv::<FetchRequest>(12, id).await;
    let elapsed = started.elapsed();
    let p = &resp.responses[0].partitions[0];
    assert_eq!(fetched_values(&p.records), ["wake-up"]);
    assert!(
        elapsed < Duration::from_millis(450),
        "fetch not woken by the produce: {elapsed:?}"
    );
}
