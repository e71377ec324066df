mod common;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_then_consume() {
    let t0 = std::time::Instant::now();
    let b = common::TestBroker::start().await;
    eprintln!("started {:?}", t0.elapsed());
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .unwrap();
    for i in 0..10 {
        producer
            .send(
                FutureRecord::to("smoke")
                    .key(&format!("k{i}"))
                    .payload(&format!("v{i}")),
                common::TIMEOUT,
            )
            .await
            .unwrap();
    }
    eprintln!("produced {:?}", t0.elapsed());
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "unused")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("smoke", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    while got.len() < 10 && std::time::Instant::now() < deadline {
        if let Some(m) = consumer.poll(std::time::Duration::from_millis(100)) {
            let m = m.unwrap();
            got.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    eprintln!("consumed {:?}", t0.elapsed());
    assert_eq!(got, (0..10).map(|i| format!("v{i}")).collect::<Vec<_>>());
    drop(consumer);
    eprintln!("consumer dropped {:?}", t0.elapsed());
    drop(producer);
    eprintln!("producer dropped {:?}", t0.elapsed());
}
