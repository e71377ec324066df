//! Produce and Fetch on the wire: per-partition error codes (and that a
//! refused batch leaves the log untouched), Fetch errors and byte limits
//! (KIP-74), ListOffsets by time, and idempotent producers across a restart.

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use protocol_tests::*;

const MAX_MESSAGE_BYTES: usize = 1000;

/// (what, topic, partition, records, acks, expected error code)
type BadProduce = (&'static str, &'static str, i32, Option<Bytes>, i16, i16);

/// A one-record batch of exactly `size` bytes.
fn batch_of_size(size: usize) -> Bytes {
    (0..size)
        .map(|len| batch(&[&vec![b'x'; len]], 1, None))
        .find(|b| b.len() == size)
        .unwrap_or_else(|| panic!("no one-record batch is {size} bytes"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_errors_leave_the_log_unchanged() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic_with("pe", 1, &[("max.message.bytes", "1000")])
        .await;
    let good = values("good", 3);
    assert_eq!(
        c.produce_ok("pe", 0, batch(&as_slices(&good), 1, None))
            .await,
        0
    );
    let at_limit = batch_of_size(MAX_MESSAGE_BYTES);
    assert_eq!(
        c.produce_ok("pe", 0, at_limit).await,
        3,
        "exactly max.message.bytes"
    );
    let end = c.latest_offset("pe", 0).await;
    assert_eq!(end, 4);

    let valid = batch(&[b"bad-1", b"bad-2"], 1, None);
    let mut bad_crc = valid.to_vec();
    *bad_crc.last_mut().unwrap() ^= 0xFF;
    let mut bad_count = valid.to_vec();
    bad_count[layout::RECORDS_COUNT..layout::RECORDS_COUNT + 4]
        .copy_from_slice(&3i32.to_be_bytes());
    fix_crc(&mut bad_count);
    let mut magic1 = valid.to_vec();
    magic1[layout::MAGIC] = 1;
    let mut two_batches = valid.to_vec();
    two_batches.extend_from_slice(&valid);

    let cases: Vec<BadProduce> = vec![
        ("bad CRC", "pe", 0, Some(bad_crc.into()), -1, 2),
        (
            "count != lastOffsetDelta+1",
            "pe",
            0,
            Some(bad_count.into()),
            -1,
            87,
        ),
        (
            "max.message.bytes + 1",
            "pe",
            0,
            Some(batch_of_size(MAX_MESSAGE_BYTES + 1)),
            -1,
            10,
        ),
        (
            "unknown topic",
            "no-such-topic",
            0,
            Some(valid.clone()),
            -1,
            3,
        ),
        ("unknown partition", "pe", 5, Some(valid.clone()), -1, 3),
        ("acks=2", "pe", 0, Some(valid.clone()), 2, 21),
        ("magic 1", "pe", 0, Some(magic1.into()), -1, 87),
        ("null records", "pe", 0, None, -1, 87),
        ("two batches", "pe", 0, Some(two_batches.into()), -1, 87),
        (
            "producer id without sequences",
            "pe",
            0,
            Some(batch(&[b"no-seq"], 1, Some((7, 0, -1)))),
            -1,
            87,
        ),
    ];
    for (what, topic, partition, records, acks, want) in cases {
        let p = c.produce_acks(topic, partition, records, acks).await;
        assert_eq!(p.error_code, want, "{what}");
        assert_eq!(p.index, partition, "{what}");
        assert_eq!(p.base_offset, -1, "{what}");
        assert_eq!(c.latest_offset("pe", 0).await, end, "{what}: log end moved");
    }

    let p = c.fetch("pe", 0, 0).await;
    assert_eq!(p.high_watermark, end);
    let got = fetched_values(&p.records);
    assert_eq!(got.len(), 4);
    assert_eq!(&got[..3], ["good-0", "good-1", "good-2"]);
    assert!(got[3].bytes().all(|b| b == b'x'));
    let md = c
        .call(12, &metadata_request(12, Some(&["no-such-topic"]), false))
        .await;
    assert_eq!(md.topics[0].error_code, 3, "produce does not auto-create");
}

/// Partitions of one request are independent: a bad one does not stop a
/// good one beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_errors_are_per_partition() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic("pp", 2).await;
    let mut bad = batch(&[b"bad"], 1, None).to_vec();
    *bad.last_mut().unwrap() ^= 1;
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name("pp"))
            .with_partition_data(vec![
                PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(bad.into())),
                PartitionProduceData::default()
                    .with_index(1)
                    .with_records(Some(batch(&[b"ok"], 1, None))),
            ])]);
    let resp = c.call(9, &req).await;
    let parts = &resp.responses[0].partition_responses;
    assert_eq!((parts[0].index, parts[0].error_code), (0, 2));
    assert_eq!((parts[1].index, parts[1].error_code), (1, 0));
    assert_eq!(c.latest_offset("pp", 0).await, 0);
    assert_eq!(c.latest_offset("pp", 1).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_errors() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic("fe", 1).await;
    c.produce_ok("fe", 0, batch(&[b"a", b"b", b"c"], 1, None))
        .await;
    // Move the log start so both watermarks are distinguishable.
    let req = kafka_protocol::messages::DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            kafka_protocol::messages::delete_records_request::DeleteRecordsTopic::default()
                .with_name(topic_name("fe"))
                .with_partitions(vec![
                    kafka_protocol::messages::delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(1),
                ]),
        ]);
    assert_eq!(c.call(2, &req).await.topics[0].partitions[0].error_code, 0);

    for offset in [4, 100, 0] {
        let p = c.fetch("fe", 0, offset).await;
        assert_eq!(p.error_code, 1, "offset {offset}: OFFSET_OUT_OF_RANGE");
        assert_eq!(p.high_watermark, 3, "offset {offset}");
        assert_eq!(p.log_start_offset, 1, "offset {offset}");
        assert!(fetched_values(&p.records).is_empty());
    }
    // Fetching exactly at the end is not an error: there is just nothing yet.
    let p = c.fetch("fe", 0, 3).await;
    assert_eq!(p.error_code, 0);
    assert!(fetched_values(&p.records).is_empty());

    let p = c.fetch("no-such-topic", 0, 0).await;
    assert_eq!(p.error_code, 3, "v12 unknown topic");
    let p = c.fetch("fe", 7, 0).await;
    assert_eq!(p.error_code, 3, "unknown partition");

    let random = uuid::Uuid::new_v4();
    let resp = c
        .call(13, &fetch_request(13, "", random, &[(0, 0, 1 << 20)]))
        .await;
    let t = &resp.responses[0];
    assert_eq!(t.topic_id, random);
    assert_eq!(t.partitions[0].error_code, 100, "v13 UNKNOWN_TOPIC_ID");
}

/// KIP-74: the first batch is returned whole even when it is larger than
/// partition_max_bytes or max_bytes, so a consumer always makes progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_returns_whole_first_batch_over_partition_limit() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic("big", 1).await;
    let vals: Vec<Vec<u8>> = (0..10).map(|i| vec![b'a' + i as u8; 50]).collect();
    let first = batch(&as_slices(&vals), 1, None);
    c.produce_ok("big", 0, first.clone()).await;
    c.produce_ok("big", 0, batch(&[b"second"], 1, None)).await;
    for (partition_max, max) in [(10, 1 << 20), (1 << 20, 10), (1, 1)] {
        let req = fetch_request(12, "big", uuid::Uuid::nil(), &[(0, 0, partition_max)])
            .with_max_bytes(max);
        let resp = c.call(12, &req).await;
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let records = p.records.as_ref().expect("records");
        assert_eq!(batch_count(records), 1, "limits {partition_max}/{max}");
        assert_eq!(records.len(), first.len(), "exactly the first batch");
        assert_eq!(decode_records(records).len(), 10);
    }
}

/// The response-wide max_bytes: once the first partition's data fills it,
/// the next partition's is left for the next fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_max_bytes_across_partitions() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic("two", 2).await;
    let p0 = batch(&[&[b'0'; 200]], 1, None);
    let p1 = batch(&[&[b'1'; 200]], 1, None);
    c.produce_ok("two", 0, p0.clone()).await;
    c.produce_ok("two", 1, p1.clone()).await;
    let both = [(0, 0, 1 << 20), (1, 0, 1 << 20)];
    for max in [10, p0.len() as i32, p0.len() as i32 + 10] {
        let req = fetch_request(12, "two", uuid::Uuid::nil(), &both).with_max_bytes(max);
        let resp = c.call(12, &req).await;
        let parts = &resp.responses[0].partitions;
        assert_eq!(parts.len(), 2);
        // The broker stamps the partition leader epoch, so compare contents.
        let first = parts[0].records.as_ref().expect("records");
        assert_eq!(first.len(), p0.len(), "max {max}: the whole first batch");
        assert_eq!(fetched_values(&parts[0].records), ["0".repeat(200)]);
        assert_eq!(parts[1].error_code, 0);
        assert_eq!(parts[1].high_watermark, 1);
        assert!(fetched_values(&parts[1].records).is_empty(), "max {max}");
    }
    let req = fetch_request(12, "two", uuid::Uuid::nil(), &both)
        .with_max_bytes((p0.len() + p1.len()) as i32);
    let resp = c.call(12, &req).await;
    let parts = &resp.responses[0].partitions;
    assert_eq!(
        fetched_values(&parts[1].records),
        ["1".repeat(200)],
        "both fit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_by_time() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic("times", 1).await;
    // offsets 0..=2 at 1000..=1002; 3 at 5000 and 4 at 3000; 5 at 2000.
    c.produce_ok("times", 0, batch(&[b"a", b"b", b"c"], 1000, None))
        .await;
    c.produce_ok(
        "times",
        0,
        batch_with_timestamps(&[b"d", b"e"], &[5000, 3000], None),
    )
    .await;
    c.produce_ok("times", 0, batch(&[b"f"], 2000, None)).await;

    let cases = [
        (-2, 0, -1),
        (-1, 6, -1),
        (-3, 3, 5000),
        (0, 0, 1000),
        (1000, 0, 1000),
        (1001, 1, 1001),
        (1002, 2, 1002),
        // The first record in offset order at or after the time, not the
        // closest timestamp.
        (1003, 3, 5000),
        (2000, 3, 5000),
        (5000, 3, 5000),
    ];
    for (ts, offset, timestamp) in cases {
        let p = c.list_offset("times", 0, ts).await;
        assert_eq!(p.error_code, 0, "ts {ts}");
        assert_eq!((p.offset, p.timestamp), (offset, timestamp), "ts {ts}");
    }
    let p = c.list_offset("times", 0, 5001).await;
    assert_eq!(p.error_code, 0);
    assert_eq!(
        (p.offset, p.timestamp),
        (-1, -1),
        "nothing at or after 5001"
    );
    let p = c.list_offset("no-such-topic", 0, -1).await;
    assert_eq!(p.error_code, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_on_the_wire() {
    let mut b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic("idem", 1).await;
    let init = c
        .call(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000),
        )
        .await;
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    assert!(pid >= 0);
    assert_eq!(init.producer_epoch, 0);

    let first_vals = values("e0", 5);
    let first = batch(&as_slices(&first_vals), 1, Some((pid, 0, 0)));
    assert_eq!(c.produce_ok("idem", 0, first.clone()).await, 0);
    // A retry of the same batch: acknowledged with its original offset.
    let retry = c.produce("idem", 0, Some(first.clone())).await;
    assert_eq!((retry.error_code, retry.base_offset), (0, 0), "duplicate");
    assert_eq!(c.latest_offset("idem", 0).await, 5);

    let gap = batch(&[b"gap"], 1, Some((pid, 0, 10)));
    let p = c.produce("idem", 0, Some(gap)).await;
    assert_eq!(p.error_code, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");

    let next_vals = values("e1", 3);
    let next_epoch = batch(&as_slices(&next_vals), 1, Some((pid, 1, 0)));
    assert_eq!(c.produce_ok("idem", 0, next_epoch.clone()).await, 5);
    let stale = batch(&[b"stale"], 1, Some((pid, 0, 5)));
    let p = c.produce("idem", 0, Some(stale)).await;
    assert_eq!(p.error_code, 47, "INVALID_PRODUCER_EPOCH");
    assert_eq!(c.latest_offset("idem", 0).await, 8);

    drop(c);
    b.restart().await;
    let mut c = b.connect().await;
    let retry = c.produce("idem", 0, Some(next_epoch)).await;
    assert_eq!(
        (retry.error_code, retry.base_offset),
        (0, 5),
        "duplicate recognised after restart"
    );
    assert_eq!(c.latest_offset("idem", 0).await, 8);
    let p = c.fetch("idem", 0, 0).await;
    let mut want: Vec<String> = first_vals
        .iter()
        .chain(&next_vals)
        .map(|v| String::from_utf8(v.clone()).unwrap())
        .collect();
    assert_eq!(fetched_values(&p.records), want);
    // And the sequence continues where it left off.
    let cont = batch(&[b"e1-3"], 1, Some((pid, 1, 3)));
    assert_eq!(c.produce_ok("idem", 0, cont).await, 8);
    want.push("e1-3".into());
    assert_eq!(fetched_values(&c.fetch("idem", 0, 0).await.records), want);
}

/// Kafka refuses ZStandard batches on Produce below v7 (KIP-110) with
/// UNSUPPORTED_COMPRESSION_TYPE, and accepts them from v7 on.
#[tokio::test]
async fn zstd_needs_produce_v7() {
    let broker = protocol_tests::TestBroker::start().await;
    let mut c = broker.connect().await;
    c.create_topic("z", 1).await;
    let zstd = protocol_tests::compressed_batch(
        &[b"zstd value zstd value"],
        kafka_protocol::records::Compression::Zstd,
    );
    for version in 3..=12i16 {
        let req = protocol_tests::produce_request(
            version,
            "z",
            uuid::Uuid::nil(),
            0,
            Some(zstd.clone()),
            -1,
        );
        let resp = c.call(version, &req).await;
        let code = resp.responses[0].partition_responses[0].error_code;
        let expected = if version < 7 { 76 } else { 0 };
        assert_eq!(code, expected, "produce v{version}");
    }
    assert_eq!(c.latest_offset("z", 0).await, 6, "only v7..=v12 appended");
}
