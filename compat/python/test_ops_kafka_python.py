"""kafka-python admin calls of the operations surface (issue 6) against
Runnel: alter_configs (IncrementalAlterConfigs, and AlterConfigs when
forced), reset_configs, create_partitions."""

import pytest
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import InvalidPartitionsError, UnknownTopicOrPartitionError


def topic_configs(admin, name, config_filter="all"):
    res = ConfigResource(ConfigResourceType.TOPIC, name)
    return admin.describe_configs([res], config_filter=config_filter)["topic"][name]


def partitions(admin, name):
    (d,) = admin.describe_topics([name])
    assert d["error_code"] == 0
    return sorted(p["partition_index"] for p in d["partitions"])


def test_alter_configs_incremental(admin, topic_name):
    admin.create_topics([NewTopic(topic_name, 1, 1)])
    res = ConfigResource(ConfigResourceType.TOPIC, topic_name,
                         configs={"retention.ms": "1234567", "cleanup.policy": (AlterConfigOp.APPEND, "compact")})
    assert admin.alter_configs([res]) == {"topic": {topic_name: "OK"}}
    cfg = topic_configs(admin, topic_name)
    assert cfg["retention.ms"]["value"] == "1234567"
    assert cfg["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert cfg["cleanup.policy"]["value"] == "delete,compact"

    admin.reset_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name, configs=["retention.ms"])])
    cfg = topic_configs(admin, topic_name, config_filter="modified")
    assert "retention.ms" not in cfg
    assert cfg["cleanup.policy"]["value"] == "delete,compact"

    bad = ConfigResource(ConfigResourceType.TOPIC, topic_name, configs={"retention.ms": "later"})
    result = admin.alter_configs([bad])["topic"][topic_name]
    assert result.startswith("[Error 40] InvalidConfigurationError"), result


def test_alter_configs_legacy(admin, topic_name):
    """incremental=False sends AlterConfigs; kafka-python adds the other modified keys itself."""
    admin.create_topics([NewTopic(topic_name, 1, 1, topic_configs={"retention.ms": "3600000"})])
    res = ConfigResource(ConfigResourceType.TOPIC, topic_name, configs={"segment.ms": "7200000"})
    assert admin.alter_configs([res], incremental=False) == {"topic": {topic_name: "OK"}}
    cfg = topic_configs(admin, topic_name, config_filter="modified")
    assert cfg["segment.ms"]["value"] == "7200000"
    assert cfg["retention.ms"]["value"] == "3600000"

    missing = ConfigResource(ConfigResourceType.TOPIC, topic_name + "-missing", configs={"segment.ms": "1"})
    result = admin.alter_configs([missing], incremental=False, raise_on_unknown=False)["topic"][missing.name]
    assert result.startswith("[Error 3] UnknownTopicOrPartitionError"), result


def test_create_partitions(admin, topic_name):
    admin.create_topics([NewTopic(topic_name, 1, 1)])
    admin.create_partitions({topic_name: 3}, validate_only=True)
    assert partitions(admin, topic_name) == [0]
    admin.create_partitions({topic_name: 3})
    assert partitions(admin, topic_name) == [0, 1, 2]
    with pytest.raises(InvalidPartitionsError):
        admin.create_partitions({topic_name: 2})
    with pytest.raises(UnknownTopicOrPartitionError):
        admin.create_partitions({topic_name + "-missing": 2})
    assert partitions(admin, topic_name) == [0, 1, 2]
