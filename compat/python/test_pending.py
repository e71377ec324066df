"""Scenarios that need broker features Runnel does not have yet.

They are marked `pending` and deselected by run.sh (RUN_PENDING=1 runs them);
FINDINGS.md lists each with the feature that will bring it. Every wait is
short and bounded so that running them fails fast instead of hanging.

The consumer-group scenarios that lived here are real tests now
(test_groups_confluent.py, test_groups_kafka_python.py).
"""

import pytest
from confluent_kafka import KafkaException, Producer

TIMEOUT = 10.0


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
