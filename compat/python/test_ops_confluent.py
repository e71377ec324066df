"""confluent-kafka (librdkafka) admin calls of the operations surface
(issue 6) against Runnel: IncrementalAlterConfigs, AlterConfigs,
CreatePartitions, DescribeCluster, ListOffsets on added partitions,
ElectLeaders, and a compacted topic refusing keyless records.
"""

import pytest
from confluent_kafka import ElectionType, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    OffsetSpec,
)

from test_confluent import TIMEOUT, admin, create_topic, produce_all, producer


def describe(a, res):
    return a.describe_configs([res])[res].result(TIMEOUT)


def incremental(a, res, *entries, validate_only=False):
    r = ConfigResource(res.restype, res.name, incremental_configs=list(entries))
    return a.incremental_alter_configs([r], validate_only=validate_only)[r].result(TIMEOUT)


def entry(name, value, op):
    return ConfigEntry(name, value, incremental_operation=op)


def error_code(excinfo):
    return excinfo.value.args[0].code()


def test_incremental_alter_configs_topic(broker, topic_name):
    create_topic(broker, topic_name)
    a = admin(broker)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic_name)
    default_retention = describe(a, res)["retention.ms"].value

    incremental(a, res, entry("retention.ms", "86400000", AlterConfigOpType.SET))
    cfg = describe(a, res)
    assert cfg["retention.ms"].value == "86400000"
    assert cfg["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    incremental(a, res, entry("cleanup.policy", "compact", AlterConfigOpType.APPEND))
    assert describe(a, res)["cleanup.policy"].value == "delete,compact"
    incremental(a, res, entry("cleanup.policy", "delete", AlterConfigOpType.SUBTRACT))
    assert describe(a, res)["cleanup.policy"].value == "compact"

    incremental(a, res, entry("retention.ms", None, AlterConfigOpType.DELETE))
    cfg = describe(a, res)
    assert cfg["retention.ms"].value == default_retention
    assert cfg["retention.ms"].is_default

    incremental(a, res, entry("segment.ms", "60000", AlterConfigOpType.SET), validate_only=True)
    assert describe(a, res)["segment.ms"].is_default


def test_incremental_alter_configs_errors(broker, topic_name):
    create_topic(broker, topic_name)
    a = admin(broker)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic_name)
    with pytest.raises(KafkaException) as e:
        incremental(a, res, entry("no.such.config", "1", AlterConfigOpType.SET))
    assert error_code(e) == KafkaError.INVALID_CONFIG
    assert "no.such.config" in e.value.args[0].str()
    with pytest.raises(KafkaException) as e:
        incremental(a, res, entry("retention.ms", "x", AlterConfigOpType.SET))
    assert error_code(e) == KafkaError.INVALID_CONFIG
    missing = ConfigResource(ConfigResource.Type.TOPIC, topic_name + "-missing")
    with pytest.raises(KafkaException) as e:
        incremental(a, missing, entry("retention.ms", "1000", AlterConfigOpType.SET))
    assert error_code(e) == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_alter_configs_replaces_the_set(broker, topic_name):
    """Legacy AlterConfigs sets the whole override set: keys left out return to their defaults."""
    create_topic(broker, topic_name, config={"retention.ms": "3600000"})
    a = admin(broker)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic_name, set_config={"segment.ms": "7200000"})
    a.alter_configs([res])[res].result(TIMEOUT)
    cfg = describe(a, ConfigResource(ConfigResource.Type.TOPIC, topic_name))
    assert cfg["segment.ms"].value == "7200000"
    assert cfg["segment.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["retention.ms"].is_default, cfg["retention.ms"]

    bad = ConfigResource(ConfigResource.Type.TOPIC, topic_name, set_config={"retention.ms": "forever"})
    with pytest.raises(KafkaException) as e:
        a.alter_configs([bad])[bad].result(TIMEOUT)
    assert error_code(e) == KafkaError.INVALID_CONFIG
    assert describe(a, ConfigResource(ConfigResource.Type.TOPIC, topic_name))["segment.ms"].value == "7200000"


def test_create_partitions_and_list_offsets(broker, topic_name):
    create_topic(broker, topic_name, partitions=2)
    a = admin(broker)
    a.create_partitions([NewPartitions(topic_name, 4)], validate_only=True)[topic_name].result(TIMEOUT)
    assert len(a.list_topics(topic_name, timeout=TIMEOUT).topics[topic_name].partitions) == 2
    a.create_partitions([NewPartitions(topic_name, 4)], operation_timeout=10)[topic_name].result(TIMEOUT)
    assert len(a.list_topics(topic_name, timeout=TIMEOUT).topics[topic_name].partitions) == 4

    for bad in (4, 3):
        with pytest.raises(KafkaException) as e:
            a.create_partitions([NewPartitions(topic_name, bad)])[topic_name].result(TIMEOUT)
        assert error_code(e) == KafkaError.INVALID_PARTITIONS, bad

    produce_all(producer(broker), topic_name, [(None, f"p3-{i}".encode(), 3, None, None) for i in range(5)])
    specs = {TopicPartition(topic_name, p): OffsetSpec.latest() for p in range(4)}
    got = {tp.partition: f.result(TIMEOUT).offset for tp, f in a.list_offsets(specs).items()}
    assert got == {0: 0, 1: 0, 2: 0, 3: 5}
    earliest = a.list_offsets({TopicPartition(topic_name, 3): OffsetSpec.earliest()})
    assert [f.result(TIMEOUT).offset for f in earliest.values()] == [0]


def test_describe_cluster(broker):
    a = admin(broker)
    d = a.describe_cluster(request_timeout=TIMEOUT).result(TIMEOUT)
    assert d.cluster_id
    assert d.cluster_id == a.list_topics(timeout=TIMEOUT).cluster_id
    assert len(d.nodes) == 1
    host, port = broker.rsplit(":", 1)
    assert (d.nodes[0].host, d.nodes[0].port) == (host, int(port))
    assert d.controller.id == d.nodes[0].id


def test_elect_leaders_not_needed(broker, topic_name):
    create_topic(broker, topic_name, partitions=2)
    a = admin(broker)
    tps = [TopicPartition(topic_name, 0), TopicPartition(topic_name, 1)]
    result = a.elect_leaders(ElectionType.PREFERRED, tps).result(TIMEOUT)
    assert {(tp.topic, tp.partition) for tp in result} == {(topic_name, 0), (topic_name, 1)}
    for tp, err in result.items():
        assert err is not None and err.code() == KafkaError.ELECTION_NOT_NEEDED, (tp, err)


def test_compacted_topic_refuses_keyless(broker, topic_name):
    create_topic(broker, topic_name, config={"cleanup.policy": "compact"})
    p = producer(broker)
    errors = []
    p.produce(topic_name, value=b"no key", partition=0, on_delivery=lambda err, msg: errors.append(err))
    p.flush(TIMEOUT)
    assert len(errors) == 1 and errors[0] is not None and errors[0].code() == KafkaError.INVALID_RECORD, errors
    delivered = produce_all(p, topic_name, [(b"k", b"keyed", 0, None, None)])
    assert delivered[0].offset() == 0
