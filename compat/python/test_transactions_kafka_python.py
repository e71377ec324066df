"""kafka-python transactions against Runnel.

kafka-python 3.0.12 has its own transactional producer (KIP-98, with its
own TransactionManager: FindCoordinator key type 1, InitProducerId,
AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit, EndTxn) and
read_committed consumers (isolation_level), independent of librdkafka.
"""

import time
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

TIMEOUT_MS = 15_000
DEADLINE = 30.0


def txn_producer(broker, txn_id):
    p = KafkaProducer(
        bootstrap_servers=broker,
        transactional_id=txn_id,
        transaction_timeout_ms=60_000,
        linger_ms=5,
        request_timeout_ms=TIMEOUT_MS,
        max_block_ms=TIMEOUT_MS,
    )
    p.init_transactions()
    return p


def read_all(broker, topic, isolation, partition=0):
    """Values of every record of the partition up to its end (the LSO for
    read_committed), and the consumer's final position."""
    c = KafkaConsumer(
        bootstrap_servers=broker,
        isolation_level=isolation,
        enable_auto_commit=False,
        request_timeout_ms=TIMEOUT_MS + 5000,
    )
    tp = TopicPartition(topic, partition)
    c.assign([tp])
    c.seek_to_beginning(tp)
    end = c.end_offsets([tp])[tp]  # read_committed: the last stable offset
    got = []
    deadline = time.monotonic() + DEADLINE
    while c.position(tp) < end:
        assert time.monotonic() < deadline, f"position {c.position(tp)} < {end} after {DEADLINE}s"
        for recs in c.poll(timeout_ms=200).values():
            got.extend(r.value.decode() for r in recs)
    # Nothing more comes.
    for recs in c.poll(timeout_ms=300).values():
        got.extend(r.value.decode() for r in recs)
    pos = c.position(tp)
    c.close()
    return got, end, pos


def test_commit_and_abort_read_committed(broker, admin, topic_name):
    admin.create_topics([NewTopic(topic_name, 1, 1)])
    p = txn_producer(broker, topic_name)
    for values, commit in [(["c1-0", "c1-1"], True), (["a-0", "a-1", "a-2"], False), (["c2-0"], True)]:
        p.begin_transaction()
        futures = [p.send(topic_name, v.encode(), partition=0) for v in values]
        p.flush()
        for f in futures:
            f.get(timeout=TIMEOUT_MS / 1000)
        if commit:
            p.commit_transaction()
        else:
            p.abort_transaction()
    p.close()

    got, end, pos = read_all(broker, topic_name, "read_committed")
    assert got == ["c1-0", "c1-1", "c2-0"]
    assert end == 9 and pos == 9  # 6 data records + 3 markers
    got, _, _ = read_all(broker, topic_name, "read_uncommitted")
    assert got == ["c1-0", "c1-1", "a-0", "a-1", "a-2", "c2-0"]


def test_open_transaction_holds_the_lso(broker, admin, topic_name):
    admin.create_topics([NewTopic(topic_name, 1, 1)])
    plain = KafkaProducer(bootstrap_servers=broker)
    plain.send(topic_name, b"before", partition=0).get(timeout=TIMEOUT_MS / 1000)
    p = txn_producer(broker, topic_name)
    p.begin_transaction()
    p.send(topic_name, b"t-0", partition=0).get(timeout=TIMEOUT_MS / 1000)
    plain.send(topic_name, b"after", partition=0).get(timeout=TIMEOUT_MS / 1000)
    got, end, _ = read_all(broker, topic_name, "read_committed")
    assert (got, end) == (["before"], 1)
    p.commit_transaction()
    got, end, _ = read_all(broker, topic_name, "read_committed")
    assert got == ["before", "t-0", "after"]
    assert end == 4
    p.close()
    plain.close()


def test_fencing(broker, admin, topic_name):
    admin.create_topics([NewTopic(topic_name, 1, 1)])
    p1 = txn_producer(broker, topic_name)
    p1.begin_transaction()
    p1.send(topic_name, b"old", partition=0).get(timeout=TIMEOUT_MS / 1000)
    p2 = txn_producer(broker, topic_name)
    with pytest.raises(KafkaError) as e:
        p1.commit_transaction()
    # kafka-python raises ProducerFencedError for PRODUCER_FENCED and
    # INVALID_PRODUCER_EPOCH alike.
    assert type(e.value).__name__ == "ProducerFencedError", repr(e.value)
    p2.begin_transaction()
    p2.send(topic_name, b"new", partition=0).get(timeout=TIMEOUT_MS / 1000)
    p2.commit_transaction()
    got, _, _ = read_all(broker, topic_name, "read_committed")
    assert got == ["new"]
    p1.close(timeout=1)
    p2.close()


def test_send_offsets_to_transaction(broker, admin, topic_name):
    src, dst, group = f"{topic_name}-in", f"{topic_name}-out", f"{topic_name}-g"
    admin.create_topics([NewTopic(src, 1, 1), NewTopic(dst, 1, 1)])
    plain = KafkaProducer(bootstrap_servers=broker)
    for i in range(6):
        plain.send(src, f"in-{i}".encode(), partition=0)
    plain.flush()
    plain.close()
    tp = TopicPartition(src, 0)
    p = txn_producer(broker, f"{topic_name}-txn")

    def committed():
        c = KafkaConsumer(bootstrap_servers=broker, group_id=group, enable_auto_commit=False)
        try:
            return c.committed(tp)
        finally:
            c.close()

    for n, commit in [(4, True), (2, False)]:
        p.begin_transaction()
        start = committed() or 0
        for i in range(start, start + n):
            p.send(dst, f"out-{i}".encode(), partition=0)
        p.send_offsets_to_transaction({tp: OffsetAndMetadata(start + n, "", -1)}, group)
        if commit:
            p.commit_transaction()
        else:
            p.abort_transaction()
    assert committed() == 4
    got, _, _ = read_all(broker, dst, "read_committed")
    assert got == [f"out-{i}" for i in range(4)]
    p.close()
