//! Topic configs on the produce path seen by a real client (librdkafka via
//! `rdkafka`): compression.type recompressing every producer codec, a
//! keyless record to a compacted topic failing with its per-message error
//! (KIP-467), and timestamps outside message.timestamp.(before|after).max.ms.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    admin, broker_runtime, broker_with_topic, consume, consumer, create_topic, now_ms, TestBroker,
    TIMEOUT,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Message, Offset};
use runnel::log::batch::{BatchHeader, BatchIter};

/// Delivery outcome per record id: the offset, or the error code.
type Outcomes = Arc<Mutex<Vec<(usize, Result<i64, RDKafkaErrorCode>)>>>;

#[derive(Clone, Default)]
struct Reports(Outcomes);

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        let outcome = match result {
            Ok(m) => Ok(m.offset()),
            Err((KafkaError::MessageProduction(code), _)) => Err(*code),
            Err((e, _)) => panic!("record {id}: unexpected delivery error {e}"),
        };
        self.0.lock().unwrap().push((id, outcome));
    }
}

fn producer(bootstrap: &str, settings: &[(&str, &str)]) -> BaseProducer<Reports> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        // Refused batches fail at once instead of being retried.
        .set("message.send.max.retries", "0");
    for (k, v) in settings {
        cfg.set(*k, *v);
    }
    cfg.create_with_context(Reports::default())
        .expect("producer")
}

/// Flushes and returns the outcomes sorted by record id.
fn outcomes(p: &BaseProducer<Reports>, expected: usize) -> Vec<Result<i64, RDKafkaErrorCode>> {
    p.flush(TIMEOUT).expect("flush");
    let mut got = std::mem::take(&mut *p.context().0.lock().unwrap());
    got.sort_by_key(|(id, _)| *id);
    assert_eq!(got.len(), expected, "delivery reports");
    got.into_iter().map(|(_, r)| r).collect()
}

/// The header of every batch stored in partition 0 of `topic`.
fn stored_headers(broker: &TestBroker, topic: &str) -> Vec<BatchHeader> {
    let dir = broker.dir.path().join(format!("{topic}-0"));
    let mut logs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let mut headers = Vec::new();
    for path in logs {
        let bytes = std::fs::read(&path).unwrap();
        headers.extend(BatchIter::new(&bytes).map(|(_, h)| h));
    }
    headers
}

/// The compression codec of every batch stored in partition 0 of `topic`.
fn stored_codecs(broker: &TestBroker, topic: &str) -> Vec<u8> {
    stored_headers(broker, topic)
        .iter()
        .map(|h| h.compression())
        .collect()
}

const PER_CODEC: usize = 300;
const PRODUCER_CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

#[test]
fn topic_codecs_recompress_every_producer_codec() {
    let rt = broker_runtime();
    let broker = rt.block_on(TestBroker::start());
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    for (topic_codec, id) in [("zstd", 4u8), ("gzip", 1), ("lz4", 3), ("snappy", 2)] {
        let topic = format!("tc-{topic_codec}");
        rt.block_on(create_topic(
            &admin,
            &topic,
            1,
            &[("compression.type", topic_codec)],
        ));
        let base_ts = now_ms() - 10_000;
        let mut sent = Vec::new();
        for codec in PRODUCER_CODECS {
            let p = producer(
                &bootstrap,
                &[("compression.codec", codec), ("linger.ms", "20")],
            );
            for i in 0..PER_CODEC {
                let n = sent.len();
                let key = format!("{codec}-k{i}");
                let value = format!("{codec} value {i} ").repeat(1 + i % 7);
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "codec",
                        value: Some(codec),
                    })
                    .insert(Header {
                        key: "n",
                        value: Some(&n.to_string()),
                    });
                let ts = base_ts + n as i64;
                p.send(
                    BaseRecord::with_opaque_to(&topic, n)
                        .key(&key)
                        .payload(&value)
                        .headers(headers)
                        .timestamp(ts),
                )
                .expect("enqueue");
                sent.push((key, value, ts, codec.to_string(), n.to_string()));
            }
            let out = outcomes(&p, PER_CODEC);
            assert!(out.iter().all(|r| r.is_ok()), "{topic} <- {codec}: {out:?}");
        }
        let c = consumer(&bootstrap, &[]);
        let got = consume(&c, &topic, &[0], Offset::Beginning, sent.len(), TIMEOUT);
        assert_eq!(got.len(), sent.len());
        for (i, (m, (key, value, ts, codec, n))) in got.iter().zip(&sent).enumerate() {
            let what = format!("{topic} record {i}");
            assert_eq!(m.offset(), i as i64, "{what}");
            assert_eq!(m.key(), Some(key.as_bytes()), "{what}");
            assert_eq!(m.payload(), Some(value.as_bytes()), "{what}");
            assert_eq!(m.timestamp().to_millis(), Some(*ts), "{what}");
            let h = m.headers().expect("headers");
            assert_eq!(h.count(), 2, "{what}");
            assert_eq!(h.get(0).value, Some(codec.as_bytes()), "{what}");
            assert_eq!(h.get(1).value, Some(n.as_bytes()), "{what}");
        }
        let codecs = stored_codecs(&broker, &topic);
        assert!(!codecs.is_empty());
        assert!(
            codecs.iter().all(|&c| c == id),
            "{topic}: stored codecs {codecs:?}"
        );
    }
}

#[test]
fn keyless_record_to_compacted_topic_fails_per_message() {
    let (_rt, broker, _admin) = broker_with_topic("kc", 1, &[("cleanup.policy", "compact")]);
    let bootstrap = broker.bootstrap();
    // One batch of 30 (every 10th keyless): the keyless records fail with
    // INVALID_RECORD, the others with librdkafka's INVALID_DIFFERENT_RECORD
    // (the response names the refused records, KIP-467).
    let p = producer(&bootstrap, &[("linger.ms", "500")]);
    for i in 0..30usize {
        let value = format!("v{i}");
        let key = format!("k{i}");
        let mut r = BaseRecord::with_opaque_to("kc", i).payload(&value);
        if i % 10 != 0 {
            r = r.key(&key);
        }
        p.send(r).expect("enqueue");
    }
    let out = outcomes(&p, 30);
    for (i, r) in out.iter().enumerate() {
        let want = if i % 10 == 0 {
            RDKafkaErrorCode::InvalidRecord
        } else {
            RDKafkaErrorCode::InvalidDifferentRecord
        };
        assert_eq!(*r, Err(want), "record {i}: {out:?}");
    }
    // One record per batch: only the keyless ones fail.
    let p = producer(&bootstrap, &[("batch.size", "1")]);
    for i in 0..20usize {
        let value = format!("w{i}");
        let key = format!("k{i}");
        let mut r = BaseRecord::with_opaque_to("kc", i).payload(&value);
        if i % 10 != 0 {
            r = r.key(&key);
        }
        p.send(r).expect("enqueue");
        p.flush(TIMEOUT).expect("flush");
    }
    let out = outcomes(&p, 20);
    for (i, r) in out.iter().enumerate() {
        if i % 10 == 0 {
            assert_eq!(*r, Err(RDKafkaErrorCode::InvalidRecord), "record {i}");
        } else {
            assert!(r.is_ok(), "record {i}: {r:?}");
        }
    }
    // Exactly the 18 keyed records of the second round are in the log.
    let c = consumer(&bootstrap, &[]);
    let got = consume(&c, "kc", &[0], Offset::Beginning, 18, TIMEOUT);
    let values: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8(m.payload().unwrap().to_vec()).unwrap())
        .collect();
    let want: Vec<String> = (0..20)
        .filter(|i| i % 10 != 0)
        .map(|i| format!("w{i}"))
        .collect();
    assert_eq!(values, want);
    let (low, high) = c.fetch_watermarks("kc", 0, TIMEOUT).expect("watermarks");
    assert_eq!((low, high), (0, 18));
}

#[test]
fn timestamp_outside_the_bounds_fails() {
    let (_rt, broker, _admin) = broker_with_topic(
        "tb",
        1,
        &[
            ("message.timestamp.before.max.ms", "600000"),
            ("message.timestamp.after.max.ms", "600000"),
        ],
    );
    let bootstrap = broker.bootstrap();
    let p = producer(&bootstrap, &[("compression.codec", "lz4")]);
    let now = now_ms();
    let cases = [
        (now - 3_600_000, Err(RDKafkaErrorCode::InvalidTimestamp)),
        (now, Ok(0)),
        (now + 3_600_000, Err(RDKafkaErrorCode::InvalidTimestamp)),
        (now - 60_000, Ok(1)),
        (now + 60_000, Ok(2)),
    ];
    for (i, (ts, _)) in cases.iter().enumerate() {
        p.send(
            BaseRecord::with_opaque_to("tb", i)
                .key("k")
                .payload("v")
                .timestamp(*ts),
        )
        .expect("enqueue");
        // One batch per record.
        p.flush(TIMEOUT).expect("flush");
    }
    let out = outcomes(&p, cases.len());
    for (i, (r, (ts, want))) in out.iter().zip(&cases).enumerate() {
        assert_eq!(r, want, "record {i} at {ts} (now {now})");
    }
    let c = consumer(&bootstrap, &[]);
    let got = consume(
        &c,
        "tb",
        &[0],
        Offset::Beginning,
        3,
        Duration::from_secs(10),
    );
    let ts: Vec<Option<i64>> = got.iter().map(|m| m.timestamp().to_millis()).collect();
    assert_eq!(ts, [Some(now), Some(now - 60_000), Some(now + 60_000)]);
}

/// A broker-wide `compression.type` also applies to the coordinators'
/// internal topics: committed offsets and a committed transaction must
/// survive a restart (the coordinators load their recompressed batches).
#[test]
fn broker_wide_codec_keeps_coordinator_state_across_restart() {
    use rdkafka::consumer::CommitMode;
    use rdkafka::TopicPartitionList;
    let rt = broker_runtime();
    let mut broker = rt.block_on(TestBroker::start_with(|c| {
        c.set("compression.type", "gzip").expect("compression.type");
    }));
    let bootstrap = broker.bootstrap();
    rt.block_on(create_topic(&admin(&bootstrap), "bw", 1, &[]));
    // A committed transaction of 5 records.
    let tp: BaseProducer<Reports> = producer(
        &bootstrap,
        &[
            ("transactional.id", "bw-txn"),
            ("compression.codec", "lz4"),
            ("message.send.max.retries", "5"),
        ],
    );
    tp.init_transactions(TIMEOUT).expect("init_transactions");
    tp.begin_transaction().expect("begin");
    for i in 0..5usize {
        let v = format!("t{i}");
        tp.send(BaseRecord::with_opaque_to("bw", i).key("k").payload(&v))
            .expect("enqueue");
    }
    tp.commit_transaction(TIMEOUT).expect("commit");
    drop(tp);
    // A group commits offset 4.
    let group = [("group.id", "bw-group")];
    let c = consumer(&bootstrap, &group);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("bw", 0, Offset::Offset(4))
        .unwrap();
    c.commit(&tpl, CommitMode::Sync).expect("commit offsets");
    drop(c);
    // Data batches recompressed; the commit marker (a control batch) never is.
    let stored: Vec<(bool, u8)> = stored_headers(&broker, "bw")
        .iter()
        .map(|h| (h.is_control(), h.compression()))
        .collect();
    assert_eq!(stored, [(false, 1), (true, 0)]);

    rt.block_on(broker.restart());
    let bootstrap = broker.bootstrap();
    let c = consumer(&bootstrap, &group);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("bw", 0);
    let committed = c.committed_offsets(tpl, TIMEOUT).expect("committed");
    assert_eq!(
        committed.find_partition("bw", 0).unwrap().offset(),
        Offset::Offset(4)
    );
    // The transaction is committed for read_committed readers; the same
    // transactional id initialises again after the restart.
    let rc = consumer(&bootstrap, &[("isolation.level", "read_committed")]);
    let got = consume(&rc, "bw", &[0], Offset::Beginning, 5, TIMEOUT);
    let values: Vec<&[u8]> = got.iter().map(|m| m.payload().unwrap()).collect();
    assert_eq!(values, [b"t0", b"t1", b"t2", b"t3", b"t4"]);
    let tp: BaseProducer<Reports> = producer(
        &bootstrap,
        &[
            ("transactional.id", "bw-txn"),
            ("message.send.max.retries", "5"),
        ],
    );
    tp.init_transactions(TIMEOUT)
        .expect("init_transactions after restart");
}
