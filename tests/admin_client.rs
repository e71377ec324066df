//! The single-node admin APIs through librdkafka's admin client (the
//! `rdkafka` crate): CreatePartitions (validate-only, a count that is not an
//! increase, an unknown topic, assignments naming another broker) and the
//! new partitions taking produce and consume traffic; the cluster as
//! Metadata describes it (rust-rdkafka exposes no DescribeCluster call).

mod common;

use std::time::Duration;

use common::{
    admin, broker_runtime, broker_with_topic, consume, consumer, create_topic, flush_all_ok,
    recording_producer, send_blocking, wait_for, watchdog, TestBroker, TIMEOUT,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::producer::BaseRecord;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Offset;
use tokio::runtime::Runtime;

fn opts() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(TIMEOUT))
        .operation_timeout(Some(TIMEOUT))
}

fn create_partitions(
    rt: &Runtime,
    admin: &AdminClient<DefaultClientContext>,
    partitions: &NewPartitions<'_>,
    opts: &AdminOptions,
) -> Result<(), RDKafkaErrorCode> {
    let mut results = rt
        .block_on(admin.create_partitions([partitions], opts))
        .expect("CreatePartitions request");
    assert_eq!(results.len(), 1);
    results.remove(0).map(|_| ()).map_err(|(_, code)| code)
}

fn partition_count(admin: &AdminClient<DefaultClientContext>, topic: &str) -> usize {
    let md = admin
        .inner()
        .fetch_metadata(Some(topic), TIMEOUT)
        .expect("metadata");
    md.topics()[0].partitions().len()
}

#[test]
fn create_partitions_through_the_admin_client() {
    let _dog = watchdog(
        "create_partitions_through_the_admin_client",
        Duration::from_secs(120),
    );
    let (rt, broker, admin) = broker_with_topic("more", 2, &[]);
    let bootstrap = broker.bootstrap();

    // Validate-only: accepted, nothing changes.
    create_partitions(
        &rt,
        &admin,
        &NewPartitions::new("more", 4),
        &opts().validate_only(true),
    )
    .expect("validate-only");
    assert_eq!(partition_count(&admin, "more"), 2);

    for (count, what) in [(2, "equal"), (1, "smaller")] {
        for validate_only in [true, false] {
            assert_eq!(
                create_partitions(
                    &rt,
                    &admin,
                    &NewPartitions::new("more", count),
                    &opts().validate_only(validate_only),
                ),
                Err(RDKafkaErrorCode::InvalidPartitions),
                "{what} count"
            );
        }
    }
    assert_eq!(
        create_partitions(&rt, &admin, &NewPartitions::new("absent", 3), &opts()),
        Err(RDKafkaErrorCode::UnknownTopicOrPartition)
    );
    let node = admin
        .inner()
        .fetch_metadata(None, TIMEOUT)
        .expect("metadata")
        .brokers()[0]
        .id();
    let (ours, other) = ([node], [node + 1]);
    let elsewhere: &[&[i32]] = &[&ours, &other];
    assert_eq!(
        create_partitions(
            &rt,
            &admin,
            &NewPartitions::new("more", 4).assign(elsewhere),
            &opts()
        ),
        Err(RDKafkaErrorCode::InvalidReplicaAssignment)
    );
    assert_eq!(partition_count(&admin, "more"), 2);

    let here: &[&[i32]] = &[&ours, &ours];
    create_partitions(
        &rt,
        &admin,
        &NewPartitions::new("more", 4).assign(here),
        &opts(),
    )
    .expect("grow to 4");
    assert_eq!(partition_count(&admin, "more"), 4);

    // A producer that learns the new count writes to the new partitions,
    // and a consumer reads them back.
    let producer = recording_producer(
        &bootstrap,
        &[
            ("linger.ms", "0"),
            ("topic.metadata.refresh.interval.ms", "100"),
        ],
    );
    wait_for(
        Duration::from_secs(10),
        || "producer sees 4 partitions".to_string(),
        || {
            let md = rdkafka::producer::Producer::client(&producer)
                .fetch_metadata(Some("more"), TIMEOUT)
                .ok()?;
            (md.topics()[0].partitions().len() == 4).then_some(())
        },
    );
    for p in 0..4 {
        for i in 0..5usize {
            let payload = format!("p{p}-{i}");
            send_blocking(
                &producer,
                BaseRecord::<(), _, usize>::with_opaque_to("more", p as usize * 5 + i)
                    .payload(&payload)
                    .partition(p),
            );
        }
    }
    let reports = flush_all_ok(&producer, 20);
    for r in &reports {
        assert_eq!(r.partition as usize, r.id / 5, "delivery {}", r.id);
    }
    let c = consumer(&bootstrap, &[]);
    let got = consume(&c, "more", &[2, 3], Offset::Beginning, 10, TIMEOUT);
    let mut values: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8(rdkafka::Message::payload(m).unwrap().to_vec()).unwrap())
        .collect();
    values.sort();
    let mut want: Vec<String> = (2..4)
        .flat_map(|p| (0..5).map(move |i| format!("p{p}-{i}")))
        .collect();
    want.sort();
    assert_eq!(values, want);
    for p in 0..4 {
        let (lo, hi) = c.fetch_watermarks("more", p, TIMEOUT).expect("watermarks");
        assert_eq!((lo, hi), (0, 5), "partition {p}");
    }
}

#[test]
fn added_partitions_survive_a_restart_for_clients() {
    let _dog = watchdog(
        "added_partitions_survive_a_restart_for_clients",
        Duration::from_secs(120),
    );
    let rt = broker_runtime();
    let mut broker = rt.block_on(TestBroker::start());
    {
        let admin = admin(&broker.bootstrap());
        rt.block_on(create_topic(&admin, "grown", 1, &[]));
        create_partitions(&rt, &admin, &NewPartitions::new("grown", 3), &opts()).expect("grow");
        let producer = recording_producer(&broker.bootstrap(), &[("linger.ms", "0")]);
        send_blocking(
            &producer,
            BaseRecord::<(), _, usize>::with_opaque_to("grown", 0)
                .payload("on-2")
                .partition(2),
        );
        flush_all_ok(&producer, 1);
    }
    rt.block_on(broker.restart());
    let bootstrap = broker.bootstrap();
    let admin = admin(&bootstrap);
    assert_eq!(partition_count(&admin, "grown"), 3);
    let c = consumer(&bootstrap, &[]);
    let got = consume(&c, "grown", &[2], Offset::Beginning, 1, TIMEOUT);
    assert_eq!(rdkafka::Message::payload(&got[0]), Some(&b"on-2"[..]));
    assert_eq!(
        create_partitions(&rt, &admin, &NewPartitions::new("grown", 3), &opts()),
        Err(RDKafkaErrorCode::InvalidPartitions)
    );
}

#[test]
fn cluster_as_the_admin_client_sees_it() {
    let _dog = watchdog(
        "cluster_as_the_admin_client_sees_it",
        Duration::from_secs(60),
    );
    let (_rt, broker, admin) = broker_with_topic("seen", 3, &[]);
    let bootstrap = broker.bootstrap();
    let md = admin
        .inner()
        .fetch_metadata(None, TIMEOUT)
        .expect("metadata");
    assert_eq!(md.brokers().len(), 1);
    let b = &md.brokers()[0];
    assert_eq!(format!("{}:{}", b.host(), b.port()), bootstrap);
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == "seen")
        .expect("topic listed");
    for p in t.partitions() {
        assert_eq!(p.leader(), b.id());
        assert_eq!(p.replicas(), &[b.id()]);
        assert_eq!(p.isr(), &[b.id()]);
    }
}
