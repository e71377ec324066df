//! Topic configs honoured on the produce path, on the wire (Kafka's
//! LogValidator): keyless records on compacted topics and KIP-937 timestamp
//! bounds refused with KIP-467 per-record errors (carried from Produce v8),
//! and compression.type recompressing batches to the topic's codec.

use bytes::Bytes;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, RecordSet, TimestampType};
use protocol_tests::*;

const INVALID_TIMESTAMP: i16 = 32;
const INVALID_RECORD: i16 = 87;
const CODECS: [(&str, Compression); 5] = [
    ("uncompressed", Compression::None),
    ("gzip", Compression::Gzip),
    ("snappy", Compression::Snappy),
    ("lz4", Compression::Lz4),
    ("zstd", Compression::Zstd),
];

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One record: key `k{i}` unless keyless, a value, two headers, timestamp `ts`.
fn record(i: usize, keyed: bool, ts: i64, producer: Option<ProducerInfo>) -> Record {
    let mut headers = IndexMap::new();
    headers.insert(
        str_bytes(&format!("h{i}")),
        Some(Bytes::from(vec![i as u8; 4])),
    );
    headers.insert(str_bytes("null"), None);
    let key = keyed.then(|| Bytes::from(format!("k{i}")));
    let value = Some(Bytes::from(format!("value {i} ").repeat(10)));
    Record {
        headers,
        ..record_at(i, ts, producer, key, value)
    }
}

/// `records` as exactly one batch.
fn encode(records: &[Record], compression: Compression) -> Bytes {
    let b = encode_records(records, compression);
    assert_eq!(batch_count(&b), 1);
    b
}

/// `n` records timestamped now; those in `keyless` have no key.
fn keyed_batch(n: usize, keyless: &[usize], compression: Compression) -> Bytes {
    let ts = now();
    let records: Vec<Record> = (0..n)
        .map(|i| record(i, !keyless.contains(&i), ts, None))
        .collect();
    encode(&records, compression)
}

/// Produce of one partition at `version` (by topic id from v13).
async fn produce_v(
    c: &mut Client,
    version: i16,
    topic: &str,
    id: uuid::Uuid,
    records: Bytes,
) -> PartitionProduceResponse {
    let req = produce_request(version, topic, id, 0, Some(records), -1);
    let mut resp = c.call(version, &req).await;
    resp.responses.remove(0).partition_responses.remove(0)
}

/// Every batch of partition 0 from offset 0.
async fn fetch_all(c: &mut Client, topic: &str) -> Vec<RecordSet> {
    let p = c.fetch(topic, 0, 0).await;
    assert_eq!(p.error_code, 0);
    let mut bytes = p.records.unwrap_or_default();
    RecordBatchDecoder::decode_all(&mut bytes).unwrap()
}

/// (batch index, message) of a response's record errors.
fn record_errors(p: &PartitionProduceResponse) -> Vec<(i32, String)> {
    p.record_errors
        .iter()
        .map(|e| {
            (
                e.batch_index,
                e.batch_index_error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_records_on_compacted_topics_per_produce_version() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    let id = c
        .create_topic_with("kc", 1, &[("cleanup.policy", "compact")])
        .await;
    let want = "Compacted topic cannot accept message without key in topic partition kc-0";
    for version in protocol_tests::versions(kafka_protocol::messages::ApiKey::Produce) {
        if version < 3 {
            continue; // magic 0/1 era: UNSUPPORTED_VERSION, covered elsewhere
        }
        let before = c.latest_offset("kc", 0).await;
        let p = produce_v(
            &mut c,
            version,
            "kc",
            id,
            keyed_batch(12, &[0, 5, 11], Compression::None),
        )
        .await;
        assert_eq!(p.error_code, INVALID_RECORD, "v{version}");
        assert_eq!(p.base_offset, -1, "v{version}");
        if version >= 8 {
            assert_eq!(
                record_errors(&p),
                [0, 5, 11].map(|i| (i, want.to_string())),
                "v{version}"
            );
            let msg = p.error_message.as_ref().expect("error_message").to_string();
            assert!(
                msg.starts_with(
                    "One or more records have been rejected due to 3 record errors in total"
                ),
                "v{version}: {msg}"
            );
            assert!(msg.contains(&format!("RecordError(batchIndex=5, message='{want}')")));
        } else {
            assert!(p.record_errors.is_empty(), "v{version}");
            assert_eq!(p.error_message, None, "v{version}");
        }
        // Nothing of the batch was appended.
        assert_eq!(c.latest_offset("kc", 0).await, before, "v{version}");
        // A keyed batch goes in.
        let p = produce_v(
            &mut c,
            version,
            "kc",
            id,
            keyed_batch(3, &[], Compression::None),
        )
        .await;
        assert_eq!(p.error_code, 0, "v{version}");
        assert_eq!(p.base_offset, before, "v{version}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_records_by_cleanup_policy_and_codec() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    for (policy, refused) in [
        ("delete", false),
        ("compact", true),
        ("compact,delete", true),
        ("delete,compact", true),
    ] {
        let topic = format!("kp-{}", policy.replace(',', "-"));
        c.create_topic_with(&topic, 1, &[("cleanup.policy", policy)])
            .await;
        for (name, codec) in CODECS {
            let p = c
                .produce(&topic, 0, Some(keyed_batch(4, &[2], codec)))
                .await;
            if refused {
                assert_eq!(p.error_code, INVALID_RECORD, "{policy} {name}");
                assert_eq!(record_errors(&p).len(), 1, "{policy} {name}");
                assert_eq!(record_errors(&p)[0].0, 2, "{policy} {name}");
            } else {
                assert_eq!(p.error_code, 0, "{policy} {name}");
                assert!(p.record_errors.is_empty());
            }
        }
        let stored = fetch_all(&mut c, &topic).await;
        assert_eq!(stored.len(), if refused { 0 } else { 5 }, "{policy}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_bounds_both_sides_per_produce_version() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    let bounds = [
        ("message.timestamp.before.max.ms", "600000"),
        ("message.timestamp.after.max.ms", "600000"),
    ];
    let id = c.create_topic_with("tsb", 1, &bounds).await;
    let mut lat = bounds.to_vec();
    lat.push(("message.timestamp.type", "LogAppendTime"));
    let lat_id = c.create_topic_with("tsb-lat", 1, &lat).await;
    for version in 3..=13 {
        for (side, offset_ms) in [("before", -3_600_000i64), ("after", 3_600_000)] {
            for (_, codec) in CODECS {
                if codec == Compression::Zstd && version < 7 {
                    continue; // zstd needs Produce v7+
                }
                let t = now();
                let records = [
                    record(0, true, t, None),
                    record(1, true, t + offset_ms, None),
                ];
                let sent = encode(&records, codec);
                let p = produce_v(&mut c, version, "tsb", id, sent.clone()).await;
                let what = format!("v{version} {side} {codec:?}");
                assert_eq!(p.error_code, INVALID_TIMESTAMP, "{what}");
                if version >= 8 {
                    let errs = record_errors(&p);
                    assert_eq!(errs.len(), 1, "{what}");
                    assert_eq!(errs[0].0, 1, "{what}");
                    let prefix = format!(
                        "Timestamp {} of message with offset 1 is out of range. The timestamp \
                         should be within [",
                        t + offset_ms
                    );
                    assert!(errs[0].1.starts_with(&prefix), "{what}: {}", errs[0].1);
                    assert_eq!(
                        p.error_message.as_ref().map(|m| m.to_string()).as_deref(),
                        Some("One or more records have been rejected due to invalid timestamp")
                    );
                } else {
                    assert!(p.record_errors.is_empty(), "{what}");
                    assert_eq!(p.error_message, None, "{what}");
                }
                // LogAppendTime ignores the bounds.
                let p = produce_v(&mut c, version, "tsb-lat", lat_id, sent).await;
                assert_eq!(p.error_code, 0, "{what} LogAppendTime");
                assert!(p.log_append_time_ms >= t, "{what}");
            }
        }
        // Inside the bounds on both sides: accepted.
        let t = now();
        let records = [
            record(0, true, t - 500_000, None),
            record(1, true, t + 500_000, None),
        ];
        let p = produce_v(
            &mut c,
            version,
            "tsb",
            id,
            encode(&records, Compression::None),
        )
        .await;
        assert_eq!(p.error_code, 0, "v{version} inside");
    }
    assert!(fetch_all(&mut c, "tsb")
        .await
        .iter()
        .all(|s| s.records.len() == 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_after_bound_is_one_hour_and_before_is_unbounded() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic("tsd", 1).await;
    let t = now();
    let old = encode(&[record(0, true, 1, None)], Compression::Gzip);
    assert_eq!(c.produce("tsd", 0, Some(old)).await.error_code, 0);
    let soon = encode(&[record(0, true, t + 3_000_000, None)], Compression::Lz4);
    assert_eq!(c.produce("tsd", 0, Some(soon)).await.error_code, 0);
    for codec in [Compression::None, Compression::Snappy] {
        let late = encode(&[record(0, true, t + 7_200_000, None)], codec);
        let p = c.produce("tsd", 0, Some(late)).await;
        assert_eq!(p.error_code, INVALID_TIMESTAMP, "{codec:?}");
    }
}

/// Key, value, timestamp and headers of one record.
type Content = (
    Option<Bytes>,
    Option<Bytes>,
    i64,
    Vec<(String, Option<Bytes>)>,
);

/// The records as a client sees them, without what the log rewrites
/// (offsets are the log's; timestamps are the producer's for CreateTime).
fn content(records: &[Record]) -> Vec<Content> {
    records
        .iter()
        .map(|r| {
            (
                r.key.clone(),
                r.value.clone(),
                r.timestamp,
                r.headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_type_recompresses_every_codec_pair() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    let mut topics = vec![("producer", None)];
    topics.extend(CODECS.map(|(n, c)| (n, Some(c))));
    for (topic_codec, target) in topics {
        let topic = format!("ct-{topic_codec}");
        c.create_topic_with(&topic, 1, &[("compression.type", topic_codec)])
            .await;
        let mut sent = Vec::new();
        for (i, (_, codec)) in CODECS.iter().enumerate() {
            // Idempotent producer fields must survive the rewrite.
            let producer = (1000 + i as i64, 2, 0);
            let ts = now();
            let records: Vec<Record> = (0..7)
                .map(|r| record(r, true, ts + r as i64, Some(producer)))
                .collect();
            let batch = encode(&records, *codec);
            let p = produce_v(&mut c, 9, &topic, uuid::Uuid::nil(), batch.clone()).await;
            assert_eq!(p.error_code, 0, "{topic} <- {codec:?}");
            assert_eq!(p.base_offset, 7 * i as i64);
            sent.push((
                *codec,
                producer,
                RecordBatchDecoder::decode(&mut batch.clone()).unwrap(),
            ));
        }
        let stored = fetch_all(&mut c, &topic).await;
        assert_eq!(stored.len(), sent.len(), "{topic}");
        for (i, (got, (codec, producer, want))) in stored.iter().zip(&sent).enumerate() {
            let what = format!("{topic} <- {codec:?}");
            assert_eq!(got.compression, target.unwrap_or(*codec), "{what}");
            assert_eq!(content(&got.records), content(&want.records), "{what}");
            for (j, r) in got.records.iter().enumerate() {
                assert_eq!(r.offset, (7 * i + j) as i64, "{what}");
                assert_eq!(
                    (r.producer_id, r.producer_epoch, r.sequence),
                    (producer.0, producer.1, j as i32),
                    "{what}"
                );
                assert_eq!(r.timestamp_type, TimestampType::Creation);
            }
        }
        // The producer's retry of the last batch is a duplicate, not a new
        // append, whatever the stored codec.
        let (codec, producer, want) = sent.last().unwrap();
        let retry = encode(
            &want
                .records
                .iter()
                .map(|r| record((r.offset) as usize, true, r.timestamp, Some(*producer)))
                .collect::<Vec<_>>(),
            *codec,
        );
        let p = produce_v(&mut c, 9, &topic, uuid::Uuid::nil(), retry).await;
        assert_eq!((p.error_code, p.base_offset), (0, 28), "{topic} retry");
        assert_eq!(c.latest_offset(&topic, 0).await, 35);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recompression_with_log_append_time() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic_with(
        "ct-lat",
        1,
        &[
            ("compression.type", "zstd"),
            ("message.timestamp.type", "LogAppendTime"),
        ],
    )
    .await;
    let t = now();
    let p = c
        .produce("ct-lat", 0, Some(keyed_batch(5, &[], Compression::Gzip)))
        .await;
    assert_eq!(p.error_code, 0);
    assert!(p.log_append_time_ms >= t);
    let stored = fetch_all(&mut c, "ct-lat").await;
    assert_eq!(stored[0].compression, Compression::Zstd);
    assert!(stored[0]
        .records
        .iter()
        .all(|r| r.timestamp_type == TimestampType::LogAppend));
    // Clients read a LogAppendTime batch's maxTimestamp as every record's
    // timestamp (the decoder here does not).
    let raw = c.fetch("ct-lat", 0, 0).await.records.unwrap();
    let max_ts = i64::from_be_bytes(raw[35..43].try_into().unwrap());
    assert_eq!(max_ts, p.log_append_time_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recompressed_batch_larger_than_max_message_bytes_is_refused() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic_with(
        "ct-big",
        1,
        &[
            ("compression.type", "uncompressed"),
            ("max.message.bytes", "2000"),
        ],
    )
    .await;
    // Compresses well below 2000 bytes, but not once uncompressed.
    let ts = now();
    let records: Vec<Record> = (0..40).map(|i| record(i, true, ts, None)).collect();
    let gz = encode(&records, Compression::Gzip);
    assert!(gz.len() < 2000, "{}", gz.len());
    let p = c.produce("ct-big", 0, Some(gz)).await;
    assert_eq!(p.error_code, 10, "MESSAGE_TOO_LARGE");
    assert_eq!(c.latest_offset("ct-big", 0).await, 0);
}

/// IncrementalAlterConfigs v1 of one topic config (op 0 SET, 2 APPEND, 3
/// SUBTRACT); must succeed.
async fn alter_topic(c: &mut Client, topic: &str, key: &str, op: i8, value: &str) {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::IncrementalAlterConfigsRequest;
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(str_bytes(topic))
            .with_configs(vec![AlterableConfig::default()
                .with_name(str_bytes(key))
                .with_config_operation(op)
                .with_value(Some(str_bytes(value)))]),
    ]);
    let resp = c.call(1, &req).await;
    assert_eq!(
        resp.responses[0].error_code, 0,
        "{topic} {key} {op} {value}: {:?}",
        resp.responses[0].error_message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn altered_configs_apply_to_the_next_append() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic("alt", 1).await;
    let batch = keyed_batch(4, &[1], Compression::None);
    assert_eq!(c.produce_ok("alt", 0, batch.clone()).await, 0);

    // max.message.bytes lowered below the batch: refused at once.
    let size = batch.len().to_string();
    let below = (batch.len() - 1).to_string();
    alter_topic(&mut c, "alt", "max.message.bytes", 0, &below).await;
    let p = c.produce("alt", 0, Some(batch.clone())).await;
    assert_eq!(p.error_code, 10, "MESSAGE_TOO_LARGE");
    alter_topic(&mut c, "alt", "max.message.bytes", 0, &size).await;
    assert_eq!(c.produce_ok("alt", 0, batch.clone()).await, 4);

    // cleanup.policy APPEND compact (what librdkafka's 0011 does): the
    // keyless record is refused at once; SUBTRACT compact takes it again.
    alter_topic(&mut c, "alt", "cleanup.policy", 2, "compact").await;
    let p = c.produce("alt", 0, Some(batch.clone())).await;
    assert_eq!(p.error_code, INVALID_RECORD);
    assert_eq!(record_errors(&p).len(), 1);
    alter_topic(&mut c, "alt", "cleanup.policy", 3, "compact").await;
    assert_eq!(c.produce_ok("alt", 0, batch.clone()).await, 8);

    // compression.type set at run time: the next batch is stored with it.
    alter_topic(&mut c, "alt", "compression.type", 0, "snappy").await;
    assert_eq!(c.produce_ok("alt", 0, batch.clone()).await, 12);
    let stored = fetch_all(&mut c, "alt").await;
    let codecs: Vec<Compression> = stored.iter().map(|s| s.compression).collect();
    assert_eq!(
        codecs,
        [
            Compression::None,
            Compression::None,
            Compression::None,
            Compression::Snappy
        ]
    );
    // And the timestamp bound.
    alter_topic(&mut c, "alt", "message.timestamp.before.max.ms", 0, "1000").await;
    let old = encode(&[record(0, true, now() - 60_000, None)], Compression::None);
    assert_eq!(
        c.produce("alt", 0, Some(old)).await.error_code,
        INVALID_TIMESTAMP
    );
}

/// A compression bomb: a gzip batch within max.message.bytes holding one
/// well-formed keyed record with a 100 MiB value of zeros, past the broker's
/// decompression limit (64 × max.message.bytes). Kafka would stream it; the
/// broker, which reads the records of a compacted topic (keys) in memory,
/// refuses it with INVALID_RECORD instead of holding the expansion (without
/// the limit it would be accepted). The connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_bomb_on_a_compacted_topic_is_refused_and_the_connection_serves_on() {
    use std::io::Write;
    const VALUE: usize = 100 << 20;
    fn varint(v: i64, out: &mut Vec<u8>) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push(z as u8 | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    c.create_topic_with("bomb", 1, &[("cleanup.policy", "compact")])
        .await;
    // attributes, timestampDelta, offsetDelta, key "k", value length; the
    // value's zeros; no headers. Fed in 1 MiB pieces: only the compressed
    // form is held.
    let mut head = vec![0, 0, 0];
    varint(1, &mut head);
    head.push(b'k');
    varint(VALUE as i64, &mut head);
    let mut record = Vec::new();
    varint((head.len() + VALUE + 1) as i64, &mut record);
    record.extend_from_slice(&head);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&record).unwrap();
    let piece = vec![0u8; 1 << 20];
    for _ in 0..VALUE / piece.len() {
        gz.write_all(&piece).unwrap();
    }
    gz.write_all(&[0]).unwrap();
    let payload = gz.finish().unwrap();
    // The header of a one-record batch, the bomb as its records section.
    let mut bomb = keyed_batch(1, &[], Compression::None)[..layout::HEADER_LEN].to_vec();
    bomb.extend_from_slice(&payload);
    let length = (bomb.len() - 12) as i32;
    bomb[layout::BATCH_LENGTH..layout::BATCH_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    bomb[layout::ATTRIBUTES + 1] |= 1; // gzip
    fix_crc(&mut bomb);
    assert!(bomb.len() < 1_048_588, "{} bytes", bomb.len());

    let p = c.produce("bomb", 0, Some(Bytes::from(bomb))).await;
    assert_eq!(p.error_code, INVALID_RECORD);
    assert_eq!(p.base_offset, -1);
    assert_eq!(c.latest_offset("bomb", 0).await, 0);
    // Same connection: a real gzip batch goes in.
    c.assert_serving("after the bomb").await;
    let good = keyed_batch(3, &[], Compression::Gzip);
    assert_eq!(c.produce_ok("bomb", 0, good).await, 0);
    assert_eq!(c.latest_offset("bomb", 0).await, 3);
}
