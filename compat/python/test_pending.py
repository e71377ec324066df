"""Scenarios that need broker features Runnel does not have yet.

They are marked `pending` and deselected by run.sh (RUN_PENDING=1 runs them);
FINDINGS.md lists each with the feature that will bring it. Every wait is
short and bounded so that running them fails fast instead of hanging.

Nothing is pending at the moment: the consumer-group scenarios that lived
here are test_groups_confluent.py / test_groups_kafka_python.py, and the
transactional producer is test_transactions_confluent.py /
test_transactions_kafka_python.py.
"""
