"""kafka-python (pure Python client) against Runnel.

Consumers here use group_id=None with manual assignment; group consumers
and the group admin calls are in test_groups_kafka_python.py.
"""

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import (
    InvalidReplicationFactorError,
    InvalidTopicError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)

TIMEOUT_MS = 15_000


def new_producer(broker, **extra):
    return KafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=5, **extra)


def new_consumer(broker):
    return KafkaConsumer(
        bootstrap_servers=broker,
        group_id=None,
        enable_auto_commit=False,
        consumer_timeout_ms=TIMEOUT_MS,
        request_timeout_ms=TIMEOUT_MS + 5000,
    )


def read(consumer, n):
    out = []
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while len(out) < n and time.monotonic() < deadline:
        for recs in consumer.poll(timeout_ms=500, max_records=n - len(out)).values():
            out.extend(recs)
    assert len(out) == n, f"consumed {len(out)} of {n}"
    return out


def create(admin, name, partitions=1, configs=None):
    admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or {})])


@pytest.mark.parametrize("codec", [None, "gzip"])
def test_producer_consumer_roundtrip(broker, admin, topic_name, codec):
    create(admin, topic_name, partitions=2)
    p = new_producer(broker, compression_type=codec)
    futures = [
        p.send(
            topic_name,
            key=f"k{i}".encode(),
            value=f"v{i}".encode(),
            partition=i % 2,
            headers=[("h", f"{i}".encode())],
        )
        for i in range(200)
    ]
    p.flush(timeout=TIMEOUT_MS / 1000)
    metas = [f.get(timeout=TIMEOUT_MS / 1000) for f in futures]
    assert sorted(m.offset for m in metas if m.partition == 0) == list(range(100))
    p.close()

    c = new_consumer(broker)
    try:
        tps = [TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)]
        c.assign(tps)
        c.seek_to_beginning()
        got = read(c, 200)
        for part in (0, 1):
            recs = [r for r in got if r.partition == part]
            assert [r.offset for r in recs] == list(range(100))
            assert [r.value for r in recs] == [f"v{i}".encode() for i in range(part, 200, 2)]
            assert [r.key for r in recs] == [f"k{i}".encode() for i in range(part, 200, 2)]
            assert [r.headers for r in recs] == [[("h", f"{i}".encode())] for i in range(part, 200, 2)]
    finally:
        c.close()


def test_consumer_seek(broker, admin, topic_name):
    create(admin, topic_name)
    p = new_producer(broker)
    for i in range(50):
        p.send(topic_name, value=f"s{i}".encode(), partition=0)
    p.flush(timeout=TIMEOUT_MS / 1000)
    p.close()

    c = new_consumer(broker)
    try:
        tp = TopicPartition(topic_name, 0)
        c.assign([tp])
        c.seek(tp, 42)
        assert [r.value for r in read(c, 8)] == [f"s{i}".encode() for i in range(42, 50)]
        assert c.position(tp) == 50
        c.seek_to_beginning(tp)
        assert read(c, 1)[0].offset == 0
        c.seek_to_end(tp)
        assert c.position(tp) == 50
    finally:
        c.close()


def test_offsets_for_times_and_watermarks(broker, admin, topic_name):
    create(admin, topic_name)
    base = int(time.time() * 1000) - 60_000
    p = new_producer(broker)
    for i in range(10):
        p.send(topic_name, value=b"t", partition=0, timestamp_ms=base + i * 1000)
    p.flush(timeout=TIMEOUT_MS / 1000)
    p.close()

    c = new_consumer(broker)
    try:
        tp = TopicPartition(topic_name, 0)
        assert c.beginning_offsets([tp]) == {tp: 0}
        assert c.end_offsets([tp]) == {tp: 10}
        found = c.offsets_for_times({tp: base + 4500})[tp]
        assert (found.offset, found.timestamp) == (5, base + 5000)
        assert c.offsets_for_times({tp: base})[tp].offset == 0
        assert c.offsets_for_times({tp: base + 100_000})[tp] is None
    finally:
        c.close()


def test_admin_create_delete(admin, topic_name):
    admin.create_topics([NewTopic(topic_name, 3, 1, topic_configs={"retention.ms": "7200000"})])
    assert topic_name in admin.list_topics()
    described = admin.describe_topics([topic_name])
    assert len(described) == 1 and described[0]["error_code"] == 0
    assert sorted(p["partition_index"] for p in described[0]["partitions"]) == [0, 1, 2]
    assert all(p["leader_id"] >= 0 and p["error_code"] == 0 for p in described[0]["partitions"])

    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics([NewTopic(topic_name, 1, 1)])

    admin.delete_topics([topic_name])
    assert topic_name not in admin.list_topics()
    with pytest.raises(UnknownTopicOrPartitionError):
        admin.delete_topics([topic_name])


def test_admin_create_errors(admin, topic_name):
    with pytest.raises(InvalidReplicationFactorError):
        admin.create_topics([NewTopic(topic_name, 1, 3)])
    with pytest.raises(InvalidTopicError):
        admin.create_topics([NewTopic("no spaces allowed", 1, 1)])
    # validate_only creates nothing
    admin.create_topics([NewTopic(topic_name, 1, 1)], validate_only=True)
    assert topic_name not in admin.list_topics()


def test_admin_describe_configs(admin, topic_name):
    create(admin, topic_name, configs={"retention.ms": "5000000"})
    topic = ConfigResource(ConfigResourceType.TOPIC, topic_name)
    # kafka-python 3 filters to non-default ("modified") entries by default.
    modified = admin.describe_configs([topic])["topic"][topic_name]
    assert modified["retention.ms"]["value"] == "5000000"
    assert modified["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert "cleanup.policy" not in modified
    every = admin.describe_configs([topic], config_filter="all")["topic"][topic_name]
    assert every["cleanup.policy"]["value"] == "delete"
    assert every["retention.ms"]["value"] == "5000000"

    node = str(admin.describe_cluster()["brokers"][0]["broker_id"])
    res = ConfigResource(ConfigResourceType.BROKER, node)
    every = admin.describe_configs([res], config_filter="all")["broker"][node]
    assert every["num.partitions"]["value"] is not None
    assert "auto.create.topics.enable" in every


def test_idempotent_producer(broker, admin, topic_name):
    create(admin, topic_name)
    p = new_producer(broker, enable_idempotence=True, max_in_flight_requests_per_connection=5)
    futures = [p.send(topic_name, value=f"i{i}".encode(), partition=0) for i in range(1000)]
    p.flush(timeout=TIMEOUT_MS / 1000)
    assert [f.get(timeout=TIMEOUT_MS / 1000).offset for f in futures] == list(range(1000))
    p.close()
    c = new_consumer(broker)
    try:
        tp = TopicPartition(topic_name, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        assert [r.value for r in read(c, 1000)] == [f"i{i}".encode() for i in range(1000)]
        assert c.end_offsets([tp]) == {tp: 1000}
    finally:
        c.close()
