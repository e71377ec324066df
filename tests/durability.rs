//! The flush policy: what an acknowledgement waits for.

mod common;

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()
        .unwrap()
}

fn the_partition(b: &common::TestBroker, topic: &str) -> std::sync::Arc<runnel::log::PartitionLog> {
    let broker = &b.handle.as_ref().unwrap().broker;
    let info = broker
        .metadata
        .image()
        .topic(topic)
        .cloned()
        .expect("topic exists");
    broker.logs.get(&info.id, 0).expect("partition 0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_messages_1_acks_only_after_fsync() {
    let b = common::TestBroker::start_with(|c| c.set("log.flush.interval.messages", "1").unwrap())
        .await;
    let p = producer(&b.bootstrap());
    for i in 0..50 {
        let offset = p
            .send(
                FutureRecord::to("durable")
                    .key("k")
                    .payload(&format!("{i}")),
                Duration::from_secs(10),
            )
            .await
            .unwrap()
            .offset;
        let log = the_partition(&b, "durable");
        // The ack for `offset` was sent after the fsync that covered it.
        assert!(
            log.recovery_point() > offset,
            "recovery point {} after ack of {offset}",
            log.recovery_point()
        );
    }
    let log = the_partition(&b, "durable");
    assert!(log.fsync_count() >= 1);
    assert!(
        log.fsync_count() <= 50,
        "at most one fsync per request, got {}",
        log.fsync_count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_policy_does_not_fsync_per_request() {
    let b = common::TestBroker::start().await;
    let p = producer(&b.bootstrap());
    for i in 0..50 {
        p.send(
            FutureRecord::to("fast").key("k").payload(&format!("{i}")),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    }
    let log = the_partition(&b, "fast");
    assert_eq!(log.log_end_offset(), 50);
    assert_eq!(
        log.fsync_count(),
        0,
        "the default policy leaves write-back to the OS"
    );
    assert_eq!(log.recovery_point(), 0);
}

/// Concurrent waiters on one partition share a single fsync (group commit).
#[tokio::test(flavor = "current_thread")]
async fn concurrent_flushes_share_one_fsync() {
    let b = common::TestBroker::start().await;
    let broker = b.handle.as_ref().unwrap().broker.clone();
    let info = broker.create_topic("gc", 1, Default::default()).unwrap();
    let log = broker.logs.get(&info.id, 0).unwrap();
    let batch = {
        use kafka_protocol::records::*;
        let mut buf = bytes::BytesMut::new();
        let record = Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 1,
            key: None,
            value: Some(bytes::Bytes::from_static(b"v")),
            headers: Default::default(),
            delete_horizon: false,
        };
        RecordBatchEncoder::encode(
            &mut buf,
            [&record],
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf
    };
    log.append_as_leader(&batch, 0).unwrap();
    // On a current-thread runtime join_all queues all 50 requests before the
    // flusher task runs, so it finds them together.
    let results = futures::future::join_all((0..50).map(|_| broker.logs.flush(log.clone()))).await;
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(log.fsync_count(), 1);
    assert_eq!(log.recovery_point(), 1);
}
