"""kafka-python (pure Python client) consumer groups against Runnel.

kafka-python implements the classic group protocol itself (its own
Range/RoundRobin assignors, heartbeat thread, OffsetCommit/OffsetFetch), so
it exercises the coordinator independently of librdkafka. kafka-python 3
names the admin calls list_groups / describe_groups / list_group_offsets /
alter_group_offsets / delete_group_offsets / delete_groups (2.x called them
list_consumer_groups, ...).
"""

import time
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import GroupSubscribedToTopicError, NoError, RebalanceInProgressError, UnknownMemberIdError
from kafka.structs import OffsetAndMetadata

TIMEOUT_MS = 15_000
DEADLINE = 30.0


def produce(broker, topic, partitions, per_partition):
    p = KafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=5)
    futures = [
        p.send(topic, value=f"p{part}-{i}".encode(), partition=part)
        for part in range(partitions)
        for i in range(per_partition)
    ]
    p.flush(timeout=TIMEOUT_MS / 1000)
    for f in futures:
        f.get(timeout=TIMEOUT_MS / 1000)
    p.close()
    return {f"p{part}-{i}".encode() for part in range(partitions) for i in range(per_partition)}


def group_consumer(broker, group, topic=None, **extra):
    conf = dict(
        bootstrap_servers=broker,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        request_timeout_ms=TIMEOUT_MS + 5000,
    )
    conf.update(extra)
    c = KafkaConsumer(**conf)
    if topic is not None:
        c.subscribe([topic])
        wait_metadata(c, topic)
    return c


def wait_metadata(c, topic):
    """Waits until kafka-python's coordinator has the subscribed topic's
    partitions in its metadata snapshot, before the first poll() joins.

    kafka-python 3.0.12 otherwise joins with an empty snapshot, assigns
    nothing ("No partition metadata for topic"), and rejoins as soon as its
    next metadata update changes the snapshot; a commit during that rejoin
    fails client-side, and now and then the member never re-enables its
    heartbeat after the second join, so the coordinator expires it after
    session.timeout.ms (what Kafka does too). The snapshot is private state;
    there is no public call for it."""
    deadline = time.monotonic() + DEADLINE
    while not c._coordinator._metadata_snapshot.get(topic):
        assert time.monotonic() < deadline, f"no metadata for {topic}"
        time.sleep(0.01)


def commit(c, offsets=None):
    """commit(), retried after a poll() while kafka-python reports its own
    rejoin in progress (it rejoins once its metadata snapshot of the
    subscribed topics changes, e.g. on the first metadata refresh after the
    join; the commit then fails client-side with RebalanceInProgressError,
    which asks the caller to poll and retry)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            return c.commit(offsets)
        except RebalanceInProgressError:
            if time.monotonic() > deadline:
                raise
            assert not c.poll(timeout_ms=100), "records while re-joining"


def wait_state(admin, group, state):
    """Polls ListGroups until the group shows `state` (a LeaveGroup sent by
    close() is answered after close() returns)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        groups = {g["group_id"]: g for g in admin.list_groups()}
        if groups.get(group, {}).get("group_state") == state:
            return
        time.sleep(0.05)
    pytest.fail(f"group {group} not {state}: {groups.get(group)}")


def assignment_of(c):
    return sorted((tp.topic, tp.partition) for tp in c.assignment())


def wait_stable(consumers, topic, partitions):
    """Polls every member until together they hold each partition exactly
    once and none is empty; fails on any record consumed meanwhile."""
    want = [(topic, p) for p in range(partitions)]
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        for c in consumers:
            recs = c.poll(timeout_ms=100)
            assert not recs, f"records consumed before the group was stable: {recs}"
        got = [assignment_of(c) for c in consumers]
        if all(got) and sorted(x for a in got for x in a) == want:
            return got
    pytest.fail(f"group not stable after {DEADLINE}s: {[assignment_of(c) for c in consumers]}")


def consume(consumers, n):
    got = {i: [] for i in range(len(consumers))}
    total = 0
    deadline = time.monotonic() + DEADLINE
    while total < n and time.monotonic() < deadline:
        for i, c in enumerate(consumers):
            for recs in c.poll(timeout_ms=100).values():
                got[i].extend(recs)
                total += len(recs)
    assert total == n, f"consumed {total} of {n}"
    until = time.monotonic() + 1.0
    while time.monotonic() < until:
        for c in consumers:
            extra = c.poll(timeout_ms=50)
            assert not extra, f"record delivered twice or unexpected: {extra}"
    return got


def group_name(topic):
    return f"{topic}-g-{uuid.uuid4().hex[:6]}"


def test_group_consumer(broker, admin, topic_name):
    """The former pending scenario: iterate a subscribed consumer, commit."""
    admin.create_topics([NewTopic(topic_name, 1, 1)])
    produce(broker, topic_name, 1, 1)
    c = KafkaConsumer(
        topic_name,
        bootstrap_servers=broker,
        group_id=topic_name,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        consumer_timeout_ms=1000,
    )
    wait_metadata(c, topic_name)
    try:
        values = []
        deadline = time.monotonic() + DEADLINE
        while not values and time.monotonic() < deadline:
            values = [r.value for r in c]
        assert values == [b"p0-0"]
        commit(c)
        assert c.committed(TopicPartition(topic_name, 0)) == 1
    finally:
        c.close()


def test_three_consumers_share_partitions_exactly_once(broker, admin, topic_name):
    admin.create_topics([NewTopic(topic_name, 6, 1)])
    group = group_name(topic_name)
    consumers = [group_consumer(broker, group, topic_name, client_id=f"kp{i}") for i in range(3)]
    try:
        assignments = wait_stable(consumers, topic_name, 6)
        assert [len(a) for a in assignments] == [2, 2, 2], assignments
        values = produce(broker, topic_name, 6, 40)
        got = consume(consumers, 240)
        seen = [r.value for rs in got.values() for r in rs]
        assert sorted(seen) == sorted(values)
        for i, rs in got.items():
            mine = {p for _, p in assignments[i]}
            assert {r.partition for r in rs} <= mine
            for part in mine:
                assert [r.offset for r in rs if r.partition == part] == list(range(40))
    finally:
        for c in consumers:
            c.close()


def test_commit_close_reopen_resumes(broker, admin, topic_name):
    admin.create_topics([NewTopic(topic_name, 2, 1)])
    produce(broker, topic_name, 2, 6)
    group = group_name(topic_name)
    c = group_consumer(broker, group, topic_name)
    try:
        recs = consume([c], 12)[0]
        assert len(recs) == 12
        # commit 3 on partition 0, 5 on partition 1
        commit(c, {
            TopicPartition(topic_name, 0): OffsetAndMetadata(3, "", -1),
            TopicPartition(topic_name, 1): OffsetAndMetadata(5, "", -1),
        })
    finally:
        c.close(autocommit=False)
    c = group_consumer(broker, group, topic_name)
    try:
        recs = consume([c], 3 + 1)[0]
        assert sorted((r.partition, r.offset) for r in recs) == [(0, 3), (0, 4), (0, 5), (1, 5)]
    finally:
        c.close(autocommit=False)


def test_autocommit_on_close(broker, admin, topic_name):
    admin.create_topics([NewTopic(topic_name, 1, 1)])
    produce(broker, topic_name, 1, 5)
    group = group_name(topic_name)
    c = group_consumer(broker, group, topic_name, enable_auto_commit=True, auto_commit_interval_ms=60000)
    try:
        consume([c], 5)
    finally:
        c.close()  # autocommit=True: commits the consumed position
    c = group_consumer(broker, group)
    try:
        assert c.committed(TopicPartition(topic_name, 0)) == 5
    finally:
        c.close(autocommit=False)


def test_member_leaving_moves_partitions(broker, admin, topic_name):
    admin.create_topics([NewTopic(topic_name, 4, 1)])
    group = group_name(topic_name)
    a = group_consumer(broker, group, topic_name)
    b = group_consumer(broker, group, topic_name)
    try:
        before = wait_stable([a, b], topic_name, 4)
        assert [len(x) for x in before] == [2, 2], before
        b.close(autocommit=False)  # LeaveGroup
        b = None
        t0 = time.monotonic()
        while time.monotonic() - t0 < DEADLINE and len(a.assignment()) != 4:
            assert not a.poll(timeout_ms=100)
        assert assignment_of(a) == [(topic_name, p) for p in range(4)]
        assert time.monotonic() - t0 < 5.5, f"rebalance took {time.monotonic() - t0:.1f}s"
        produce(broker, topic_name, 4, 2)
        recs = consume([a], 8)[0]
        assert {r.partition for r in recs} == {0, 1, 2, 3}
    finally:
        a.close(autocommit=False)
        if b is not None:
            b.close(autocommit=False)


def test_commit_metadata_and_committed(broker, admin, topic_name):
    admin.create_topics([NewTopic(topic_name, 2, 1)])
    group = group_name(topic_name)
    c = group_consumer(broker, group, topic_name)
    tp0, tp1 = TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)
    try:
        wait_stable([c], topic_name, 2)
        commit(c, {tp0: OffsetAndMetadata(7, "meta-0", -1), tp1: OffsetAndMetadata(0, "", -1)})
        m0 = c.committed(tp0, metadata=True)
        assert (m0.offset, m0.metadata) == (7, "meta-0"), m0
        assert c.committed(tp1) == 0
        assert c.committed(TopicPartition(topic_name + "-none", 0)) is None
    finally:
        c.close(autocommit=False)


def test_admin_groups(broker, admin, topic_name):
    admin.create_topics([NewTopic(topic_name, 2, 1)])
    produce(broker, topic_name, 2, 5)
    group = group_name(topic_name)
    tp0, tp1 = TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)
    c = group_consumer(broker, group, topic_name, client_id="kp-admin")
    closed = False
    try:
        consume([c], 10)
        commit(c)

        # ListGroups (v4+ carries the state; with a state filter)
        groups = {g["group_id"]: g for g in admin.list_groups()}
        assert group in groups, sorted(groups)
        assert groups[group]["protocol_type"] == "consumer"
        assert groups[group]["group_state"] == "Stable", groups[group]
        stable = {g["group_id"] for g in admin.list_groups(states_filter=["Stable"])}
        empty = {g["group_id"] for g in admin.list_groups(states_filter=["Empty"])}
        assert group in stable and group not in empty

        # DescribeGroups
        d = admin.describe_groups([group])[group]
        assert d["error"] is None, d
        assert d["group_state"] == "Stable"
        assert d["protocol_type"] == "consumer"
        assert d["protocol_data"] == "range", d["protocol_data"]
        (m,) = d["members"]
        assert m["client_id"] == "kp-admin"
        assert m["member_id"].startswith("kp-admin-"), m["member_id"]
        text = str(m["member_assignment"])
        assert topic_name in text, text

        # OffsetFetch
        offs = admin.list_group_offsets(group)[group]
        assert {tp: o.offset for tp, o in offs.items()} == {tp0: 5, tp1: 5}

        # Altering a live group's offsets: UNKNOWN_MEMBER_ID (as Kafka)
        res = admin.alter_group_offsets(group, {tp0: OffsetAndMetadata(2, "", -1)})
        assert res == {tp0: UnknownMemberIdError}, res
        # Deleting offsets of a subscribed topic: GROUP_SUBSCRIBED_TO_TOPIC
        res = admin.delete_group_offsets(group, [tp0])
        assert res == {tp0: GroupSubscribedToTopicError}, res
        # Deleting a live group: NON_EMPTY_GROUP
        assert admin.delete_groups([group]) == {group: "NonEmptyGroupError"}

        c.close(autocommit=False)
        closed = True
        wait_state(admin, group, "Empty")
        res = admin.alter_group_offsets(group, {tp0: OffsetAndMetadata(2, "m", -1)})
        assert res == {tp0: NoError}, res
        offs = admin.list_group_offsets(group)[group]
        assert {tp: (o.offset, o.metadata) for tp, o in offs.items()} == {tp0: (2, "m"), tp1: (5, "")}
        res = admin.delete_group_offsets(group, [tp1])
        assert res == {tp1: NoError}, res
        offs = admin.list_group_offsets(group)[group]
        assert {tp: o.offset for tp, o in offs.items()} == {tp0: 2}

        assert admin.delete_groups([group]) == {group: "OK"}
        assert group not in {g["group_id"] for g in admin.list_groups()}
        assert admin.delete_groups([group]) == {group: "GroupIdNotFoundError"}
    finally:
        if not closed:
            c.close(autocommit=False)
