"""confluent-kafka (librdkafka) transactions against Runnel.

Transactional producer (FindCoordinator key type 1, InitProducerId with a
transactional id, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit,
EndTxn), read_committed consumers (Fetch isolation level 1: last stable
offset, aborted transactions, control records skipped by the client),
fencing, and consume-transform-produce with send_offsets_to_transaction.

Every wait is bounded; every check could fail (e.g. an aborted record seen
by a read_committed consumer, or an offset committed by an aborted
transaction).
"""

import time
import uuid

import pytest
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT = 15.0
DEADLINE = 30.0


def create_topic(broker, name, partitions=1):
    a = AdminClient({"bootstrap.servers": broker})
    a.create_topics([NewTopic(name, partitions, 1)], operation_timeout=10)[name].result(TIMEOUT)


def txn_producer(broker, txn_id, **extra):
    conf = {
        "bootstrap.servers": broker,
        "transactional.id": txn_id,
        "transaction.timeout.ms": 60000,
        "linger.ms": 5,
    }
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(TIMEOUT)
    return p


def produce_all(p, topic, values, partition=0):
    errors = []
    for v in values:
        p.produce(topic, v.encode(), partition=partition, on_delivery=lambda err, _m: err and errors.append(err))
    p.flush(TIMEOUT)
    assert not errors, errors[:3]


def read_all(broker, topic, isolation, partitions=(0,), group=None):
    """Every record of the partitions from the beginning up to the end (the
    last stable offset for read_committed), with the isolation level given.
    Returns (values, end positions)."""
    conf = {
        "bootstrap.servers": broker,
        "group.id": group or f"py-txn-reader-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "isolation.level": isolation,
        "enable.partition.eof": True,
    }
    c = Consumer(conf)
    tps = [TopicPartition(topic, p, 0) for p in partitions]
    c.assign(tps)
    got = []
    eof = set()
    deadline = time.monotonic() + DEADLINE
    try:
        while len(eof) < len(tps):
            assert time.monotonic() < deadline, f"no EOF on {topic} after {DEADLINE}s (got {got})"
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(m.partition())
                    continue
                raise KafkaException(m.error())
            got.append(m.value().decode())
        positions = {tp.partition: tp.offset for tp in c.position(tps)}
    finally:
        c.close()
    return got, positions


def watermarks(broker, topic, partition=0):
    c = Consumer({"bootstrap.servers": broker, "group.id": "py-txn-wm"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), TIMEOUT)
    finally:
        c.close()


def test_commit_and_abort_read_committed(broker, topic_name):
    """Commit, abort, commit: a read_committed consumer sees exactly the
    committed records in order and reaches the end of the log (the control
    records are skipped); read_uncommitted sees every data record."""
    create_topic(broker, topic_name)
    p = txn_producer(broker, topic_name)
    p.begin_transaction()
    produce_all(p, topic_name, ["c1-0", "c1-1", "c1-2"])
    p.commit_transaction(TIMEOUT)
    p.begin_transaction()
    produce_all(p, topic_name, ["a-0", "a-1"])
    p.abort_transaction(TIMEOUT)
    p.begin_transaction()
    produce_all(p, topic_name, ["c2-0"])
    p.commit_transaction(TIMEOUT)

    committed, pos = read_all(broker, topic_name, "read_committed")
    assert committed == ["c1-0", "c1-1", "c1-2", "c2-0"]
    uncommitted, _ = read_all(broker, topic_name, "read_uncommitted")
    assert uncommitted == ["c1-0", "c1-1", "c1-2", "a-0", "a-1", "c2-0"]
    # 6 data records + 3 markers; the consumer's position is past them all.
    low, high = watermarks(broker, topic_name)
    assert (low, high) == (0, 9)
    assert pos[0] == 9


def test_open_transaction_hidden_until_commit(broker, topic_name):
    """An open transaction holds read_committed consumers at its first offset
    (the last stable offset); non-transactional records produced after it
    wait behind it too; after the commit everything is visible in offset
    order."""
    create_topic(broker, topic_name)
    plain = Producer({"bootstrap.servers": broker, "linger.ms": 0})
    plain.produce(topic_name, b"before", partition=0)
    plain.flush(TIMEOUT)
    p = txn_producer(broker, topic_name)
    p.begin_transaction()
    produce_all(p, topic_name, ["t-0", "t-1"])
    plain.produce(topic_name, b"after", partition=0)
    assert plain.flush(TIMEOUT) == 0

    committed, pos = read_all(broker, topic_name, "read_committed")
    assert committed == ["before"]
    assert pos[0] == 1  # the LSO
    p.commit_transaction(TIMEOUT)
    committed, _ = read_all(broker, topic_name, "read_committed")
    assert committed == ["before", "t-0", "t-1", "after"]


def test_fencing(broker, topic_name):
    """A second producer with the same transactional.id fences the first:
    the first one's commit fails with a fatal _FENCED error and nothing it
    produced becomes visible; the second commits normally."""
    create_topic(broker, topic_name)
    p1 = txn_producer(broker, topic_name)
    p1.begin_transaction()
    produce_all(p1, topic_name, ["old-0", "old-1"])
    p2 = txn_producer(broker, topic_name)
    with pytest.raises(KafkaException) as e:
        p1.commit_transaction(TIMEOUT)
    err = e.value.args[0]
    assert err.fatal(), err
    assert err.code() == KafkaError._FENCED, err
    p2.begin_transaction()
    produce_all(p2, topic_name, ["new-0"])
    p2.commit_transaction(TIMEOUT)
    committed, _ = read_all(broker, topic_name, "read_committed")
    assert committed == ["new-0"]


def test_invalid_transaction_timeout(broker, topic_name):
    """transaction.timeout.ms above the broker's transaction.max.timeout.ms
    (15 min by default) makes init_transactions fail fatally with
    INVALID_TRANSACTION_TIMEOUT."""
    p = Producer({
        "bootstrap.servers": broker,
        "transactional.id": topic_name,
        "transaction.timeout.ms": 900_001,
    })
    with pytest.raises(KafkaException) as e:
        p.init_transactions(TIMEOUT)
    err = e.value.args[0]
    assert err.code() == KafkaError.INVALID_TRANSACTION_TIMEOUT, err
    assert err.fatal(), err


def test_consume_transform_produce(broker, topic_name):
    """Consume-transform-produce: the consumer's positions are sent to the
    transaction (AddOffsetsToTxn + TxnOffsetCommit). Committed: the output
    and the group's offsets appear together. Aborted: neither does, and a
    new consumer of the group starts again at the last committed offsets."""
    src, dst = f"{topic_name}-in", f"{topic_name}-out"
    group = f"{topic_name}-g"
    create_topic(broker, src)
    create_topic(broker, dst)
    plain = Producer({"bootstrap.servers": broker, "linger.ms": 5})
    for i in range(15):
        plain.produce(src, f"in-{i}".encode(), partition=0)
    assert plain.flush(TIMEOUT) == 0

    p = txn_producer(broker, f"{topic_name}-txn")

    def transform(n, commit):
        c = Consumer({
            "bootstrap.servers": broker,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        })
        c.assign([TopicPartition(src, 0)])  # position from the group's committed offset
        got = []
        deadline = time.monotonic() + DEADLINE
        while len(got) < n:
            assert time.monotonic() < deadline, f"consumed {len(got)} of {n}"
            m = c.poll(0.2)
            if m is None:
                continue
            assert not m.error(), m.error()
            got.append(m)
        p.begin_transaction()
        produce_all(p, dst, [m.value().decode().replace("in-", "out-") for m in got])
        p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), TIMEOUT)
        if commit:
            p.commit_transaction(TIMEOUT)
        else:
            p.abort_transaction(TIMEOUT)
        first = got[0].offset()
        c.close()
        return first

    def committed_offset():
        c = Consumer({"bootstrap.servers": broker, "group.id": group, "enable.auto.commit": False})
        try:
            return c.committed([TopicPartition(src, 0)], TIMEOUT)[0].offset
        finally:
            c.close()

    assert transform(10, commit=True) == 0
    assert committed_offset() == 10
    out, _ = read_all(broker, dst, "read_committed")
    assert out == [f"out-{i}" for i in range(10)]

    assert transform(5, commit=False) == 10
    assert committed_offset() == 10, "offsets of an aborted transaction must not count"
    out, _ = read_all(broker, dst, "read_committed")
    assert out == [f"out-{i}" for i in range(10)]

    # The aborted batch is consumed again, from the committed offset.
    assert transform(5, commit=True) == 10
    assert committed_offset() == 15
    out, _ = read_all(broker, dst, "read_committed")
    assert out == [f"out-{i}" for i in range(15)]


def test_multi_partition_transaction(broker, topic_name):
    """One transaction over three partitions: all of it or none of it."""
    create_topic(broker, topic_name, 3)
    p = txn_producer(broker, topic_name)
    p.begin_transaction()
    for part in range(3):
        produce_all(p, topic_name, [f"p{part}-ok"], partition=part)
    p.commit_transaction(TIMEOUT)
    p.begin_transaction()
    for part in range(3):
        produce_all(p, topic_name, [f"p{part}-no"], partition=part)
    p.abort_transaction(TIMEOUT)
    got, pos = read_all(broker, topic_name, "read_committed", partitions=(0, 1, 2))
    assert sorted(got) == ["p0-ok", "p1-ok", "p2-ok"]
    assert pos == {0: 4, 1: 4, 2: 4}
