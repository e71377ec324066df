//! Regressions found by running other clients against Runnel (compat/).
//! Each test names the client behaviour it reproduces on the wire.

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use protocol_tests::*;

const UNKNOWN_TOPIC_ID: i16 = 100;

/// The Java admin client's `describeTopics(TopicCollection.ofTopicIds(..))`
/// sends Metadata v12+ topics with a topic id and the name left at its
/// default, the empty string (not null). Kafka looks such topics up by id;
/// Runnel used to look up "" by name and answer INVALID_TOPIC_EXCEPTION.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_by_topic_id_ignores_empty_name() {
    let b = TestBroker::start().await;
    let mut c = b.connect().await;
    let id = c.create_topic("by-id", 3).await;
    for v in [12, 13] {
        for name in [Some(topic_name("")), None] {
            let req = MetadataRequest::default()
                .with_topics(Some(vec![MetadataRequestTopic::default()
                    .with_topic_id(id)
                    .with_name(name.clone())]))
                .with_allow_auto_topic_creation(false);
            let md = c.call(v, &req).await;
            assert_eq!(md.topics.len(), 1, "v{v} {name:?}");
            let t = &md.topics[0];
            assert_eq!(t.error_code, 0, "v{v} {name:?}");
            assert_eq!(t.topic_id, id, "v{v} {name:?}");
            assert_eq!(t.name.as_ref().map(|n| n.as_str()), Some("by-id"));
            assert_eq!(t.partitions.len(), 3, "v{v} {name:?}");
        }
        let unknown = uuid::Uuid::from_u128(42);
        let req = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default()
                .with_topic_id(unknown)
                .with_name(Some(topic_name("")))]))
            .with_allow_auto_topic_creation(true);
        let md = c.call(v, &req).await;
        assert_eq!(md.topics[0].error_code, UNKNOWN_TOPIC_ID, "v{v}");
        assert_eq!(md.topics[0].topic_id, unknown, "v{v}");
    }
}
