//! Per-connection limits on what a client can make the broker hold.

use std::time::{Duration, Instant};

use kafka_protocol::messages::{FetchRequest, MetadataRequest};
use protocol_tests::{fetch_request, request_frame, TestBroker};

/// At most two Fetch requests are in flight per connection: a third one is
/// not read (so not started) until one of the first two has been answered,
/// while responses still leave in request order.
#[tokio::test]
async fn third_pipelined_fetch_waits_for_a_slot() {
    let broker = TestBroker::start().await;
    let mut c = broker.connect().await;
    c.create_topic("empty", 1).await;
    let wait = 300;
    let fetch = |corr| {
        let req: FetchRequest = fetch_request(12, "empty", uuid::Uuid::nil(), &[(0, 0, 1 << 20)])
            .with_max_wait_ms(wait)
            .with_min_bytes(1);
        request_frame(12, corr, &req)
    };
    let mut batch = Vec::new();
    for corr in 100..103 {
        batch.extend_from_slice(&fetch(corr));
    }
    batch.extend_from_slice(&request_frame(
        12,
        103,
        &MetadataRequest::default().with_topics(None),
    ));
    let started = Instant::now();
    c.write(&batch).await;
    let mut order = Vec::new();
    let mut second_at = None;
    let mut third_at = None;
    for _ in 0..4 {
        let frame = c
            .try_read_frame(Duration::from_secs(10))
            .await
            .expect("answered");
        let corr = i32::from_be_bytes(frame[..4].try_into().unwrap());
        if corr == 101 {
            second_at = Some(started.elapsed());
        }
        if corr == 102 {
            third_at = Some(started.elapsed());
        }
        order.push(corr);
    }
    assert_eq!(
        order,
        vec![100, 101, 102, 103],
        "responses in request order"
    );
    // The other side of the limit: the second fetch ran alongside the first,
    // so it is answered well before a second wait has passed.
    let second_at = second_at.unwrap();
    assert!(
        second_at < Duration::from_millis(2 * wait as u64 - 50),
        "second fetch answered after {second_at:?}"
    );
    // The third fetch starts only after the first finished its full wait, so
    // it cannot be answered before two waits have passed.
    let third_at = third_at.unwrap();
    assert!(
        third_at >= Duration::from_millis(2 * wait as u64 - 20),
        "third fetch answered after {third_at:?}"
    );
}

/// Limits of i32::MAX (clamped to the 55 MiB broker cap) are served
/// normally, not treated as an allocation size.
#[tokio::test]
async fn fetch_with_the_largest_limits_is_served() {
    let broker = TestBroker::start().await;
    let mut c = broker.connect().await;
    c.create_topic("capped", 1).await;
    let value = vec![7u8; 1000];
    for _ in 0..3 {
        c.produce_ok("capped", 0, protocol_tests::batch(&[&value], 1, None))
            .await;
    }
    let req = fetch_request(12, "capped", uuid::Uuid::nil(), &[(0, 0, i32::MAX)])
        .with_max_bytes(i32::MAX);
    let resp = c.call(12, &req).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(p.high_watermark, 3);
    assert!(
        p.records.as_ref().unwrap().len() > 3000,
        "all three batches returned"
    );
}
