#!/usr/bin/env bash
# A stand-in for Apache Kafka's bin/kafka-topics.sh, for librdkafka tests that
# shell out to "$KAFKA_PATH/bin/kafka-topics.sh" (test_kafka_topics in
# tests/test.c). No Kafka distribution is available here, so run.sh points
# KAFKA_PATH at this directory.
#
# It does only what kafka-topics.sh does for the same arguments, through the
# same client calls (kafka-topics.sh is TopicCommand on the Java Admin
# client; this is KafkaTopics.java on the same Admin client, 4.3.0):
#   --create --topic T --partitions N --replication-factor R [--config k=v]...
#                                  -> Admin.createTopics
#   --alter --topic T --partitions N -> Admin.createPartitions (increaseTo N)
#   --delete --topic T             -> Admin.deleteTopics
# with --bootstrap-server HOST:PORT. Any other option is refused (exit 1),
# so a test needing more fails instead of silently passing.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
. "$HERE/../../lib.sh"
CP="$(java_client_classpath)"
CLASSES="$(compat_cache librdkafka)/kafka-topics-classes"
if [ ! -f "$CLASSES/KafkaTopics.class" ] || [ "$HERE/KafkaTopics.java" -nt "$CLASSES/KafkaTopics.class" ]; then
  rm -rf "$CLASSES" && mkdir -p "$CLASSES"
  javac -Xlint:all -Werror -d "$CLASSES" -cp "$CP" "$HERE/KafkaTopics.java"
fi
exec java -Dlog4j2.level=WARN -cp "$CP$CLASSES" KafkaTopics "$@"
