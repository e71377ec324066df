//! `__consumer_offsets` as storage: commits survive restarts, and the shard's
//! rewrite keeps the partition from growing without bound.

mod common;

use std::time::{Duration, Instant};

use common::TestBroker;
use runnel::coordinator::group::shard::{CommitPartition, CommitRequest};
use runnel::coordinator::group::OFFSETS_TOPIC;
use runnel::coordinator::partition_for;

const GROUP: &str = "storage-group";

async fn commit(b: &TestBroker, round: i64, partitions: i32) {
    let broker = b.handle.as_ref().unwrap().broker.clone();
    let req = CommitRequest {
        group_id: GROUP.into(),
        generation: -1,
        member_id: String::new(),
        group_instance_id: None,
        retention_ms: -1,
        api_version: 9,
        partitions: (0..partitions)
            .map(|p| CommitPartition {
                topic: "t".into(),
                partition: p,
                offset: round * 100 + p as i64,
                leader_epoch: -1,
                metadata: Some(format!("round {round}")),
                error: 0,
            })
            .collect(),
    };
    let errors = broker
        .groups
        .call(&broker, GROUP, move |shard, now, out| {
            shard.commit(req, now, out)
        })
        .await
        .expect("coordinator answers");
    assert!(errors.iter().all(|e| *e == 0), "{errors:?}");
}

async fn committed(b: &TestBroker) -> Vec<(i32, i64, String)> {
    let broker = b.handle.as_ref().unwrap().broker.clone();
    let found = broker
        .groups
        .call(&broker, GROUP, |shard, _, _| {
            shard.fetch_offsets(GROUP, None)
        })
        .await
        .expect("coordinator answers");
    found
        .into_iter()
        .flat_map(|(_, parts)| {
            parts
                .into_iter()
                .map(|o| (o.partition, o.offset, o.metadata))
        })
        .collect()
}

fn offsets_log(b: &TestBroker) -> std::sync::Arc<runnel::log::PartitionLog> {
    let broker = &b.handle.as_ref().unwrap().broker;
    let info = broker
        .metadata
        .image()
        .topic(OFFSETS_TOPIC)
        .cloned()
        .expect("topic created");
    broker
        .logs
        .get(&info.id, partition_for(GROUP, info.partitions))
        .expect("partition log")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_survive_restart_and_the_partition_is_rewritten_compactly() {
    let mut b = TestBroker::start_with(|c| {
        c.set("offsets.retention.check.interval.ms", "200").unwrap();
        c.set("offsets.topic.num.partitions", "4").unwrap();
        c.set("offsets.topic.segment.bytes", "65536").unwrap();
    })
    .await;
    // Rounds of 10 partitions (10 live records) until the partition holds
    // over 10,000 records past its start: a rewrite may come in the middle
    // (the retention timer runs meanwhile), so commit until the threshold is
    // reached with no rewrite after it, and the next one must cover the end.
    commit(&b, 0, 10).await;
    let log = offsets_log(&b);
    let mut round = 1;
    while log.log_end_offset() - log.log_start_offset() < 10_100 {
        commit(&b, round, 10).await;
        round += 1;
    }
    let last = round - 1;
    let want: Vec<(i32, i64, String)> = (0..10)
        .map(|p| (p, last * 100 + p as i64, format!("round {last}")))
        .collect();
    assert_eq!(committed(&b).await, want);

    let end = log.log_end_offset();
    let deadline = Instant::now() + Duration::from_secs(20);
    while log.log_start_offset() < end {
        assert!(
            Instant::now() < deadline,
            "the shard never rewrote its partition"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kept = log.log_end_offset() - log.log_start_offset();
    assert!(kept <= 20, "{kept} records kept for 10 live offsets");
    assert!(log.segment_count() <= 2, "{} segments", log.segment_count());

    // The rewritten partition replays to the same state.
    b.restart_with(|c| {
        c.set("offsets.topic.num.partitions", "4").unwrap();
    })
    .await;
    assert_eq!(committed(&b).await, want);
    // And commits go on from there.
    commit(&b, 2_000, 1).await;
    assert_eq!(
        committed(&b).await[0],
        (0, 200_000, "round 2000".to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_offsets_topic_keeps_its_partition_count() {
    let mut b = TestBroker::start_with(|c| {
        c.set("offsets.topic.num.partitions", "3").unwrap();
    })
    .await;
    commit(&b, 1, 2).await;
    // The configured count changes, the topic does not: groups stay put.
    b.restart_with(|c| {
        c.set("offsets.topic.num.partitions", "50").unwrap();
    })
    .await;
    let info = b
        .handle
        .as_ref()
        .unwrap()
        .broker
        .metadata
        .image()
        .topic(OFFSETS_TOPIC)
        .cloned()
        .unwrap();
    assert_eq!(info.partitions, 3);
    assert_eq!(committed(&b).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_operation_does_not_take_the_shard_down() {
    let b = TestBroker::start().await;
    commit(&b, 1, 3).await;
    let broker = b.handle.as_ref().unwrap().broker.clone();
    let r: Result<(), i16> = broker
        .groups
        .call(&broker, GROUP, |_, _, _| panic!("injected coordinator bug"))
        .await;
    assert_eq!(r, Err(15), "COORDINATOR_NOT_AVAILABLE for the failed call");
    // The shard was rebuilt from its log and keeps serving.
    assert_eq!(committed(&b).await.len(), 3);
    commit(&b, 2, 4).await;
    assert_eq!(committed(&b).await[3], (3, 203, "round 2".to_string()));
}
