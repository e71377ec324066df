"""Scenarios that need broker features Runnel does not have yet.

They are marked `pending` and deselected by run.sh (RUN_PENDING=1 runs them);
FINDINGS.md lists each with the feature that will bring it. Every wait is
short and bounded so that running them fails fast instead of hanging.
"""

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer

TIMEOUT = 10.0


@pytest.mark.pending("consumer groups")
def test_confluent_subscribe_commit(broker, topic_name):
    p = Producer({"bootstrap.servers": broker})
    p.produce(topic_name, b"g")
    assert p.flush(TIMEOUT) == 0
    c = Consumer(
        {
            "bootstrap.servers": broker,
            "group.id": topic_name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    try:
        c.subscribe([topic_name])
        msg = c.poll(TIMEOUT)
        assert msg is not None and msg.error() is None and msg.value() == b"g"
        c.commit(message=msg, asynchronous=False)
        committed = c.committed([TopicPartition(topic_name, msg.partition())], timeout=TIMEOUT)
        assert committed[0].offset == msg.offset() + 1
    finally:
        c.close()


@pytest.mark.pending("transactions")
def test_confluent_transactional_producer(broker, topic_name):
    p = Producer({"bootstrap.servers": broker, "transactional.id": topic_name})
    try:
        p.init_transactions(TIMEOUT)
    except KafkaException as e:
        pytest.fail(f"init_transactions: {e}")
    p.begin_transaction()
    p.produce(topic_name, b"txn")
    p.commit_transaction(TIMEOUT)


@pytest.mark.pending("consumer groups")
def test_kafka_python_group_consumer(broker, topic_name):
    p = KafkaProducer(bootstrap_servers=broker)
    p.send(topic_name, b"g").get(timeout=TIMEOUT)
    p.close()
    c = KafkaConsumer(
        topic_name,
        bootstrap_servers=broker,
        group_id=topic_name,
        auto_offset_reset="earliest",
        consumer_timeout_ms=int(TIMEOUT * 1000),
    )
    try:
        values = [r.value for r in c]
        assert values == [b"g"]
        c.commit()
    finally:
        c.close()
