"""confluent-kafka (librdkafka) consumer groups against Runnel.

Classic group protocol (librdkafka's default group.protocol=classic):
FindCoordinator, JoinGroup/SyncGroup/Heartbeat/LeaveGroup, OffsetCommit/
OffsetFetch, and the group admin APIs (ListGroups, DescribeGroups,
DeleteGroups, OffsetCommit/OffsetFetch through the AdminClient).

Every wait is bounded (DEADLINE); records are produced only once the group
is stable, so "exactly once between the members" is a real check and not
the luck of a rebalance.
"""

import time
import uuid

import pytest
from confluent_kafka import (
    ConsumerGroupState,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from test_confluent import consume_n

try:  # 2.16 moved the request/response type to the top-level package
    from confluent_kafka import ConsumerGroupTopicPartitions
except ImportError:  # pragma: no cover
    from confluent_kafka.admin import ConsumerGroupTopicPartitions

TIMEOUT = 15.0
DEADLINE = 30.0  # for a group to become stable / a rebalance to finish


def create_topic(a, name, partitions):
    a.create_topics([NewTopic(name, partitions, 1)], operation_timeout=10)[name].result(TIMEOUT)


def produce(broker, topic, partitions, per_partition):
    """per_partition records into each partition; returns the set of values."""
    p = Producer({"bootstrap.servers": broker, "acks": "all", "linger.ms": 5})
    values = set()
    errors = []
    for part in range(partitions):
        for i in range(per_partition):
            v = f"p{part}-{i}".encode()
            values.add(v)
            p.produce(topic, v, partition=part, on_delivery=lambda err, _m: err and errors.append(err))
    assert p.flush(TIMEOUT) == 0
    assert not errors, errors[:3]
    return values


def group_consumer(broker, group, **extra):
    conf = {
        "bootstrap.servers": broker,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        # group.min.session.timeout.ms is 6000, as in Kafka
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "check.crcs": True,
    }
    conf.update(extra)
    return Consumer(conf)


def assignment_of(c):
    return sorted((tp.topic, tp.partition) for tp in c.assignment())


def wait_stable(consumers, topic, partitions):
    """Polls every consumer (which serves the rebalance callbacks) until each
    has a non-empty assignment and together they hold every partition exactly
    once; returns the assignments. Fails on anything consumed meanwhile."""
    want = [(topic, p) for p in range(partitions)]
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        for c in consumers:
            msg = c.poll(0.1)
            assert msg is None or msg.error() is None, msg.error()
            assert msg is None, f"record consumed before the group was stable: {msg.value()}"
        got = [assignment_of(c) for c in consumers]
        if all(got) and sorted(x for a in got for x in a) == want:
            return got
    pytest.fail(f"group not stable after {DEADLINE}s: assignments {[assignment_of(c) for c in consumers]}")


def consume_all(consumers, n):
    """Round-robin polls until n records arrived in total; then polls another
    second to catch duplicates. Returns {consumer index: [msg, ...]}."""
    got = {i: [] for i in range(len(consumers))}
    total = 0
    deadline = time.monotonic() + DEADLINE
    while total < n and time.monotonic() < deadline:
        for i, c in enumerate(consumers):
            msg = c.poll(0.1)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got[i].append(msg)
            total += 1
    assert total == n, f"consumed {total} of {n}"
    extra_until = time.monotonic() + 1.0
    while time.monotonic() < extra_until:
        for c in consumers:
            msg = c.poll(0.05)
            assert msg is None, f"record delivered twice or unexpected: {msg.value()}"
    return got


@pytest.fixture
def adm(broker):
    return AdminClient({"bootstrap.servers": broker})


def group_name(topic):
    return f"{topic}-g-{uuid.uuid4().hex[:6]}"


# ------------------------------------------------------------------ consumers


def test_three_consumers_share_partitions_exactly_once(broker, adm, topic_name):
    create_topic(adm, topic_name, 6)
    group = group_name(topic_name)
    consumers = [group_consumer(broker, group, **{"client.id": f"c{i}"}) for i in range(3)]
    try:
        for c in consumers:
            c.subscribe([topic_name])
        assignments = wait_stable(consumers, topic_name, 6)
        # range assignor (librdkafka's first default): 2 partitions each
        assert [len(a) for a in assignments] == [2, 2, 2], assignments
        values = produce(broker, topic_name, 6, 50)
        got = consume_all(consumers, 300)
        seen = [m.value() for ms in got.values() for m in ms]
        assert sorted(seen) == sorted(values)
        for i, ms in got.items():
            mine = {p for _, p in assignments[i]}
            assert {m.partition() for m in ms} <= mine, (i, mine)
            # in order within each partition
            for part in mine:
                offs = [m.offset() for m in ms if m.partition() == part]
                assert offs == list(range(50)), (part, offs[:5])
    finally:
        for c in consumers:
            c.close()


def test_commit_close_reopen_resumes(broker, adm, topic_name):
    create_topic(adm, topic_name, 1)
    produce(broker, topic_name, 1, 10)
    group = group_name(topic_name)
    c = group_consumer(broker, group)
    try:
        c.subscribe([topic_name])
        got = consume_n(c, 4)
        assert [m.offset() for m in got] == [0, 1, 2, 3]
        c.commit(message=got[-1], asynchronous=False)
        tp = TopicPartition(topic_name, 0)
        assert c.committed([tp], timeout=TIMEOUT)[0].offset == 4
    finally:
        c.close()
    c = group_consumer(broker, group)
    try:
        c.subscribe([topic_name])
        got = consume_n(c, 6)
        assert [m.offset() for m in got] == list(range(4, 10))
        assert got[0].value() == b"p0-4"
    finally:
        c.close()



def test_auto_commit_on_close_resumes(broker, adm, topic_name):
    """enable.auto.commit=true: close() commits the stored offsets."""
    create_topic(adm, topic_name, 2)
    produce(broker, topic_name, 2, 5)
    group = group_name(topic_name)
    c = group_consumer(broker, group, **{"enable.auto.commit": True, "auto.commit.interval.ms": 60000})
    try:
        c.subscribe([topic_name])
        consume_n(c, 10, DEADLINE)
    finally:
        c.close()
    c = group_consumer(broker, group)
    try:
        tps = [TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)]
        assert [tp.offset for tp in c.committed(tps, timeout=TIMEOUT)] == [5, 5]
        produce(broker, topic_name, 2, 1)  # p0-0 and p1-0 again, at offset 5
        c.subscribe([topic_name])
        got = consume_n(c, 2)
        assert sorted((m.partition(), m.offset()) for m in got) == [(0, 5), (1, 5)]
    finally:
        c.close()


def test_member_leaving_moves_partitions(broker, adm, topic_name):
    create_topic(adm, topic_name, 4)
    group = group_name(topic_name)
    events = {0: [], 1: []}

    def listener(i):
        return {
            "on_assign": lambda _c, parts: events[i].append(("assign", sorted(p.partition for p in parts))),
            "on_revoke": lambda _c, parts: events[i].append(("revoke", sorted(p.partition for p in parts))),
        }

    a = group_consumer(broker, group)
    b = group_consumer(broker, group)
    try:
        a.subscribe([topic_name], **listener(0))
        b.subscribe([topic_name], **listener(1))
        before = wait_stable([a, b], topic_name, 4)
        assert [len(x) for x in before] == [2, 2], before
        b.close()  # LeaveGroup: a rebalances at once, not after the session timeout
        b = None
        t0 = time.monotonic()
        while time.monotonic() - t0 < DEADLINE and len(a.assignment()) != 4:
            msg = a.poll(0.1)
            assert msg is None, msg
        assert assignment_of(a) == [(topic_name, p) for p in range(4)], events
        # Well within the 6 s session timeout: the leave was seen.
        assert time.monotonic() - t0 < 5.5, f"rebalance took {time.monotonic() - t0:.1f}s"
        assert ("assign", [0, 1, 2, 3]) in events[0], events[0]
        produce(broker, topic_name, 4, 3)
        got = consume_n(a, 12)
        assert {m.partition() for m in got} == {0, 1, 2, 3}
    finally:
        a.close()
        if b is not None:
            b.close()


def test_commit_metadata_and_committed(broker, adm, topic_name):
    create_topic(adm, topic_name, 3)
    group = group_name(topic_name)
    offsets = [
        TopicPartition(topic_name, 0, 2, metadata="zero"),
        TopicPartition(topic_name, 1, 4, metadata=""),
        TopicPartition(topic_name, 2, 1, metadata="x" * 300),
    ]
    want = [(0, 2, "zero"), (1, 4, ""), (2, 1, "x" * 300)]
    parts = [TopicPartition(topic_name, p) for p in range(3)]
    c = group_consumer(broker, group)
    try:
        c.subscribe([topic_name])
        wait_stable([c], topic_name, 3)  # the topic is empty: nothing consumed
        res = c.commit(offsets=offsets, asynchronous=False)
        assert all(tp.error is None for tp in res), res
        got = c.committed(parts, timeout=TIMEOUT)
        assert [(tp.partition, tp.offset, tp.metadata) for tp in got] == want
        # A partition never committed: no offset
        other = c.committed([TopicPartition(topic_name + "-none", 0)], timeout=TIMEOUT)
        assert other[0].offset < 0, other
    finally:
        c.close()
    produce(broker, topic_name, 3, 4)
    c = group_consumer(broker, group)
    try:
        # metadata survives the member; the new member starts at the commits
        got = c.committed(parts, timeout=TIMEOUT)
        assert [(tp.partition, tp.offset, tp.metadata) for tp in got] == want
        c.subscribe([topic_name])
        got = consume_n(c, 2 + 0 + 3)
        assert sorted((m.partition(), m.offset()) for m in got) == [(0, 2), (0, 3), (2, 1), (2, 2), (2, 3)]
    finally:
        c.close()


def test_commit_metadata_too_large(broker, adm, topic_name):
    """offset.metadata.max.bytes (4096): OFFSET_METADATA_TOO_LARGE per partition."""
    create_topic(adm, topic_name, 1)
    group = group_name(topic_name)
    c = group_consumer(broker, group)
    try:
        c.subscribe([topic_name])
        wait_stable([c], topic_name, 1)
        with pytest.raises(KafkaException) as ei:
            res = c.commit(offsets=[TopicPartition(topic_name, 0, 1, metadata="m" * 5000)], asynchronous=False)
            # some versions report it per partition instead of raising
            errs = [tp.error for tp in res if tp.error is not None]
            if errs:
                raise KafkaException(errs[0])
        assert ei.value.args[0].code() == KafkaError.OFFSET_METADATA_TOO_LARGE, ei.value
    finally:
        c.close()


# ------------------------------------------------------------------ admin


def _listing(adm, **kw):
    res = adm.list_consumer_groups(request_timeout=TIMEOUT, **kw).result(TIMEOUT)
    assert not res.errors, res.errors
    return {g.group_id: g for g in res.valid}


def test_admin_groups(broker, adm, topic_name):
    create_topic(adm, topic_name, 2)
    produce(broker, topic_name, 2, 10)
    active = group_name(topic_name) + "-active"
    simple = group_name(topic_name) + "-simple"

    # A "simple" group: assign() + commit only, never joins.
    s = group_consumer(broker, simple)
    try:
        s.assign([TopicPartition(topic_name, 0, 0)])
        s.commit(offsets=[TopicPartition(topic_name, 0, 7)], asynchronous=False)
    finally:
        s.close()

    c = group_consumer(broker, active, **{"client.id": "compat-active"})
    closed = False
    try:
        c.subscribe([topic_name])
        consume_n(c, 20)
        c.commit(asynchronous=False)

        # ListGroups, with and without a state filter
        every = _listing(adm)
        assert active in every and simple in every, sorted(every)
        assert every[active].state == ConsumerGroupState.STABLE
        assert not every[active].is_simple_consumer_group
        assert every[simple].state == ConsumerGroupState.EMPTY
        assert every[simple].is_simple_consumer_group
        stable = _listing(adm, states={ConsumerGroupState.STABLE})
        assert active in stable and simple not in stable, sorted(stable)
        empty = _listing(adm, states={ConsumerGroupState.EMPTY})
        assert simple in empty and active not in empty, sorted(empty)

        # DescribeGroups
        d = adm.describe_consumer_groups([active, simple], request_timeout=TIMEOUT)
        da = d[active].result(TIMEOUT)
        assert da.group_id == active
        assert da.state == ConsumerGroupState.STABLE
        assert not da.is_simple_consumer_group
        assert da.partition_assignor == "range", da.partition_assignor
        assert len(da.members) == 1, da.members
        m = da.members[0]
        assert m.client_id == "compat-active"
        assert m.member_id.startswith("compat-active-"), m.member_id
        assert sorted((tp.topic, tp.partition) for tp in m.assignment.topic_partitions) == [
            (topic_name, 0),
            (topic_name, 1),
        ]
        node = adm.list_topics(timeout=TIMEOUT).brokers
        assert da.coordinator.id in node, (da.coordinator, node)
        ds = d[simple].result(TIMEOUT)
        assert ds.state == ConsumerGroupState.EMPTY and ds.members == []
        assert ds.is_simple_consumer_group

        # OffsetFetch through the admin API
        lo = adm.list_consumer_group_offsets([ConsumerGroupTopicPartitions(active)], request_timeout=TIMEOUT)
        got = lo[active].result(TIMEOUT)
        assert sorted((tp.topic, tp.partition, tp.offset) for tp in got.topic_partitions) == [
            (topic_name, 0, 10),
            (topic_name, 1, 10),
        ]
        lo = adm.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(simple, [TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)])]
        )
        got = lo[simple].result(TIMEOUT)
        assert sorted((tp.partition, tp.offset) for tp in got.topic_partitions) == [(0, 7), (1, -1001)]

        # Altering the offsets of a group with a live member: the broker
        # refuses (Kafka: UNKNOWN_MEMBER_ID for a generation -1 commit to a
        # non-empty group).
        al = adm.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(active, [TopicPartition(topic_name, 0, 3)])]
        )
        with pytest.raises(KafkaException) as ei:
            r = al[active].result(TIMEOUT)
            errs = [tp.error for tp in r.topic_partitions if tp.error is not None]
            if errs:
                raise KafkaException(errs[0])
        assert ei.value.args[0].code() == KafkaError.UNKNOWN_MEMBER_ID, ei.value

        # Deleting a group with a live member: NON_EMPTY_GROUP
        with pytest.raises(KafkaException) as ei:
            adm.delete_consumer_groups([active], request_timeout=TIMEOUT)[active].result(TIMEOUT)
        assert ei.value.args[0].code() == KafkaError.NON_EMPTY_GROUP, ei.value

        c.close()
        closed = True
        # The LeaveGroup may be answered after close() returns.
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline and _listing(adm)[active].state != ConsumerGroupState.EMPTY:
            time.sleep(0.05)

        # Empty now: altering works, and the group is listed as Empty
        al = adm.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(active, [TopicPartition(topic_name, 0, 3)])]
        )
        r = al[active].result(TIMEOUT)
        assert [(tp.partition, tp.offset, tp.error) for tp in r.topic_partitions] == [(0, 3, None)]
        got = adm.list_consumer_group_offsets([ConsumerGroupTopicPartitions(active)])[active].result(TIMEOUT)
        assert sorted((tp.partition, tp.offset) for tp in got.topic_partitions) == [(0, 3), (1, 10)]
        assert _listing(adm)[active].state == ConsumerGroupState.EMPTY

        # Delete both; they are gone from the listing and their offsets too
        fs = adm.delete_consumer_groups([active, simple], request_timeout=TIMEOUT)
        for g in (active, simple):
            fs[g].result(TIMEOUT)
        every = _listing(adm)
        assert active not in every and simple not in every, sorted(every)
        got = adm.list_consumer_group_offsets([ConsumerGroupTopicPartitions(active)])[active].result(TIMEOUT)
        assert got.topic_partitions == [] or all(tp.offset < 0 for tp in got.topic_partitions), got.topic_partitions

        # Deleting an unknown group: GROUP_ID_NOT_FOUND
        with pytest.raises(KafkaException) as ei:
            adm.delete_consumer_groups([active], request_timeout=TIMEOUT)[active].result(TIMEOUT)
        assert ei.value.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND, ei.value
    finally:
        if not closed:
            c.close()


def test_admin_describe_unknown_group(broker, adm):
    """DescribeGroups of a group that never existed: Kafka answers state Dead
    with no error; librdkafka reports it as GROUP_ID_NOT_FOUND or as DEAD."""
    g = f"py-never-{uuid.uuid4().hex[:8]}"
    f = adm.describe_consumer_groups([g], request_timeout=TIMEOUT)[g]
    try:
        d = f.result(TIMEOUT)
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND, e
    else:
        assert d.state == ConsumerGroupState.DEAD and d.members == [], vars(d)
