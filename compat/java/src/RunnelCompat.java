// The official Java client (kafka-clients) against Runnel.
//
// Usage: java -cp <kafka-clients and deps>:<classes> RunnelCompat BOOTSTRAP [--pending] [NAME...]
//
// Runs each scenario in order and prints `PASS name` or `FAIL name: reason`
// per scenario; compat/java/run.sh turns those lines into the summary. With
// NAME arguments only those scenarios run; --pending adds the scenarios that
// need broker features Runnel does not have yet (see FINDINGS.md).
//
// Every wait is bounded: admin calls by default.api.timeout.ms, producer sends
// by delivery.timeout.ms, consumer reads by an explicit deadline.

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.AbortTransactionSpec;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.AlterConfigsOptions;
import org.apache.kafka.clients.admin.AlterClientQuotasOptions;
import org.apache.kafka.clients.admin.CreatePartitionsOptions;
import org.apache.kafka.clients.admin.DescribeTopicsOptions;
import org.apache.kafka.clients.admin.LogDirDescription;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.PartitionReassignment;
import org.apache.kafka.clients.admin.ReplicaInfo;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.CreateTopicsOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.ListConsumerGroupsOptions;
import org.apache.kafka.clients.admin.ListGroupsOptions;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.ListTransactionsOptions;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.FinalizedVersionRange;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionListing;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.ElectionType;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.InvalidRecordException;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.IsolationLevel;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.ElectionNotNeededException;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.InvalidConfigurationException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.InvalidReplicaAssignmentException;
import org.apache.kafka.common.errors.InvalidRequestException;
import org.apache.kafka.common.errors.NoReassignmentInProgressException;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.GroupSubscribedToTopicException;
import org.apache.kafka.common.errors.InvalidReplicationFactorException;
import org.apache.kafka.common.errors.InvalidTopicException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.TransactionalIdNotFoundException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownMemberIdException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.quota.ClientQuotaAlteration;
import org.apache.kafka.common.quota.ClientQuotaEntity;
import org.apache.kafka.common.quota.ClientQuotaFilter;
import org.apache.kafka.common.quota.ClientQuotaFilterComponent;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class RunnelCompat {
    private static final int TIMEOUT_MS = 15_000;
    private static final String RUN_ID = UUID.randomUUID().toString().substring(0, 8);

    private final String bootstrap;
    private final Admin admin;

    /** The topic the 1000-record producer scenario fills and the consumer scenario reads. */
    private final String mainTopic = topic("main");

    interface Scenario {
        void run() throws Exception;
    }

    private RunnelCompat(String bootstrap) {
        this.bootstrap = bootstrap;
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, TIMEOUT_MS);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, TIMEOUT_MS);
        this.admin = Admin.create(p);
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: RunnelCompat BOOTSTRAP [--pending] [NAME...]");
            System.exit(2);
        }
        boolean pending = false;
        List<String> only = new ArrayList<>();
        for (int i = 1; i < args.length; i++) {
            if (args[i].equals("--pending")) {
                pending = true;
            } else {
                only.add(args[i]);
            }
        }
        RunnelCompat c = new RunnelCompat(args[0]);
        Map<String, Scenario> all = c.scenarios(pending);
        int passed = 0;
        int failed = 0;
        for (Map.Entry<String, Scenario> e : all.entrySet()) {
            if (!only.isEmpty() && !only.contains(e.getKey())) {
                continue;
            }
            long start = System.nanoTime();
            try {
                e.getValue().run();
                passed++;
                System.out.printf("PASS %s (%d ms)%n", e.getKey(), (System.nanoTime() - start) / 1_000_000);
            } catch (Throwable t) {
                failed++;
                Throwable cause = t instanceof ExecutionException && t.getCause() != null ? t.getCause() : t;
                String msg = String.valueOf(cause).replace('\n', ' ');
                System.out.printf("FAIL %s: %s%n", e.getKey(), msg);
                if (System.getenv("COMPAT_VERBOSE") != null) {
                    t.printStackTrace(System.out);
                }
            }
            System.out.flush();
        }
        c.admin.close(Duration.ofSeconds(5));
        System.out.printf("java: %d passed, %d failed%n", passed, failed);
        System.exit(failed == 0 ? 0 : 1);
    }

    private Map<String, Scenario> scenarios(boolean pending) {
        Map<String, Scenario> s = new LinkedHashMap<>();
        s.put("producer_default_1000", this::producerDefault1000);
        for (String codec : List.of("none", "gzip", "snappy", "lz4", "zstd")) {
            s.put("producer_compression_" + codec, () -> producerCompression(codec));
        }
        s.put("consumer_assign_seek", this::consumerAssignSeek);
        s.put("consumer_offsets_for_times", this::consumerOffsetsForTimes);
        s.put("headers_roundtrip", this::headersRoundtrip);
        s.put("admin_create_topics_with_configs", this::adminCreateWithConfigs);
        s.put("admin_create_validate_only", this::adminCreateValidateOnly);
        s.put("admin_create_invalid_name", this::adminCreateInvalidName);
        s.put("admin_create_rf3", this::adminCreateRf3);
        s.put("admin_create_existing", this::adminCreateExisting);
        s.put("admin_list_topics", this::adminListTopics);
        s.put("admin_describe_topics", this::adminDescribeTopics);
        s.put("admin_describe_topics_by_id", this::adminDescribeTopicsById);
        s.put("admin_describe_configs_topic", this::adminDescribeConfigsTopic);
        s.put("admin_describe_configs_broker", this::adminDescribeConfigsBroker);
        s.put("admin_list_offsets", this::adminListOffsets);
        s.put("admin_delete_records", this::adminDeleteRecords);
        s.put("admin_delete_topics", this::adminDeleteTopics);
        s.put("admin_describe_cluster", this::adminDescribeCluster);
        s.put("admin_delete_topics_by_id", this::adminDeleteTopicsById);
        s.put("admin_list_offsets_local_and_tiered", this::adminListOffsetsLocalTiered);
        s.put("producer_auto_create_topic", this::producerAutoCreate);
        s.put("producer_record_too_large", this::producerRecordTooLarge);
        s.put("consumer_out_of_range", this::consumerOutOfRange);
        s.put("consumer_small_fetch_limits", this::consumerSmallFetchLimits);
        s.put("log_append_time", this::logAppendTime);
        s.put("consumer_group_subscribe", this::consumerGroupSubscribe);
        s.put("consumer_group_three_members", this::consumerGroupThreeMembers);
        s.put("consumer_group_member_leaves", this::consumerGroupMemberLeaves);
        s.put("consumer_group_commit_resume", this::consumerGroupCommitResume);
        s.put("admin_consumer_groups", this::adminConsumerGroups);
        s.put("admin_offsets_topic_internal", this::adminOffsetsTopicInternal);
        s.put("txn_commit_abort_read_committed", this::txnCommitAbortReadCommitted);
        s.put("txn_open_holds_read_committed", this::txnOpenHoldsReadCommitted);
        s.put("txn_send_offsets_to_transaction", this::txnSendOffsetsToTransaction);
        s.put("txn_fencing", this::txnFencing);
        s.put("txn_admin_fence_producers", this::txnAdminFenceProducers);
        s.put("txn_invalid_timeout", this::txnInvalidTimeout);
        s.put("admin_transactions", this::adminTransactions);
        s.put("admin_abort_transaction", this::adminAbortTransaction);
        // Operations (issue 6): config, partition, cluster, log-dir, election,
        // reassignment and quota admin calls; configs taking effect; compaction.
        s.put("admin_incremental_alter_configs_topic", this::adminIncrementalAlterConfigsTopic);
        s.put("admin_incremental_alter_configs_errors", this::adminIncrementalAlterConfigsErrors);
        s.put("admin_incremental_alter_configs_broker", this::adminIncrementalAlterConfigsBroker);
        s.put("admin_create_partitions", this::adminCreatePartitions);
        s.put("admin_describe_cluster_api", this::adminDescribeClusterApi);
        s.put("admin_describe_log_dirs", this::adminDescribeLogDirs);
        s.put("admin_describe_topics_paged", this::adminDescribeTopicsPaged);
        s.put("admin_elect_leaders", this::adminElectLeaders);
        s.put("admin_partition_reassignments", this::adminPartitionReassignments);
        s.put("admin_client_quotas", this::adminClientQuotas);
        s.put("config_max_message_bytes_takes_effect", this::configMaxMessageBytesTakesEffect);
        s.put("config_timestamp_bounds", this::configTimestampBounds);
        s.put("compacted_keyless_rejected", this::compactedKeylessRejected);
        s.put("compacted_latest_values", this::compactedLatestValues);
        if (pending) {
            // Nothing is pending at the moment (see FINDINGS.md).
        }
        return s;
    }

    // ---------------------------------------------------------------- helpers

    private static String topic(String what) {
        return "java-" + what + "-" + RUN_ID;
    }

    private static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    private static String s(byte[] b) {
        return b == null ? null : new String(b, StandardCharsets.UTF_8);
    }

    private static void check(boolean cond, String what) {
        if (!cond) {
            throw new AssertionError(what);
        }
    }

    private static void checkEq(Object expected, Object actual, String what) {
        if (expected == null ? actual != null : !expected.equals(actual)) {
            throw new AssertionError(what + ": expected " + expected + ", got " + actual);
        }
    }

    /** Runs `call` and checks that it fails with `type` (directly or as the cause of an ExecutionException). */
    private static void expectError(Class<? extends Throwable> type, Scenario call) throws Exception {
        try {
            call.run();
        } catch (ExecutionException e) {
            if (type.isInstance(e.getCause())) {
                return;
            }
            throw new AssertionError("expected " + type.getSimpleName() + ", got " + e.getCause());
        } catch (Exception e) {
            if (type.isInstance(e)) {
                return;
            }
            throw new AssertionError("expected " + type.getSimpleName() + ", got " + e);
        }
        throw new AssertionError("expected " + type.getSimpleName() + ", got success");
    }

    private void createTopic(String name, int partitions, Map<String, String> configs) throws Exception {
        NewTopic t = new NewTopic(name, partitions, (short) 1).configs(configs);
        admin.createTopics(List.of(t)).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
    }

    private KafkaProducer<byte[], byte[]> producer(Map<String, Object> extra) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, TIMEOUT_MS);
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, TIMEOUT_MS);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, TIMEOUT_MS * 2);
        p.putAll(extra);
        return new KafkaProducer<>(p);
    }

    /** A consumer with no group: assign/seek only, nothing committed. */
    private KafkaConsumer<byte[], byte[]> consumer() {
        return consumer(new Properties());
    }

    private KafkaConsumer<byte[], byte[]> consumer(Properties extra) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, TIMEOUT_MS);
        p.put(ConsumerConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, TIMEOUT_MS);
        p.putAll(extra);
        return new KafkaConsumer<>(p);
    }

    /** Sends the records and waits for every ack; returns the metadata in send order. */
    private static List<RecordMetadata> sendAll(KafkaProducer<byte[], byte[]> p,
            List<ProducerRecord<byte[], byte[]>> records) throws Exception {
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        for (ProducerRecord<byte[], byte[]> r : records) {
            futures.add(p.send(r));
        }
        p.flush();
        List<RecordMetadata> out = new ArrayList<>();
        for (Future<RecordMetadata> f : futures) {
            out.add(f.get(TIMEOUT_MS, TimeUnit.MILLISECONDS));
        }
        return out;
    }

    /** The next n records (a poll may return more; the rest are dropped). */
    private static List<ConsumerRecord<byte[], byte[]>> readN(KafkaConsumer<byte[], byte[]> c, int n) {
        List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
        long deadline = System.currentTimeMillis() + TIMEOUT_MS;
        while (out.size() < n && System.currentTimeMillis() < deadline) {
            for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                out.add(r);
            }
        }
        check(out.size() >= n, "records consumed: expected " + n + ", got " + out.size());
        return out.subList(0, n);
    }

    private List<ConsumerRecord<byte[], byte[]>> readFromBeginning(String topic, int partition, int n) {
        try (KafkaConsumer<byte[], byte[]> c = consumer()) {
            TopicPartition tp = new TopicPartition(topic, partition);
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            return readN(c, n);
        }
    }

    // ---------------------------------------------------------------- producer

    private void producerDefault1000() throws Exception {
        createTopic(mainTopic, 1, Map.of());
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < 1000; i++) {
            records.add(new ProducerRecord<>(mainTopic, b("key-" + i), b("value-" + i)));
        }
        // Defaults since 3.0: enable.idempotence=true, acks=all.
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of())) {
            List<RecordMetadata> md = sendAll(p, records);
            for (int i = 0; i < md.size(); i++) {
                checkEq((long) i, md.get(i).offset(), "offset of record " + i);
                checkEq(0, md.get(i).partition(), "partition of record " + i);
            }
        }
    }

    private void producerCompression(String codec) throws Exception {
        String t = topic("codec-" + codec);
        createTopic(t, 1, Map.of());
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < 300; i++) {
            records.add(new ProducerRecord<>(t, b("k" + i), b(codec + "-" + i + "-" + "z".repeat(i % 64))));
        }
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of(
                ProducerConfig.COMPRESSION_TYPE_CONFIG, codec,
                ProducerConfig.LINGER_MS_CONFIG, 20))) {
            sendAll(p, records);
        }
        List<ConsumerRecord<byte[], byte[]>> got = readFromBeginning(t, 0, records.size());
        for (int i = 0; i < records.size(); i++) {
            checkEq((long) i, got.get(i).offset(), "offset");
            checkEq(s(records.get(i).value()), s(got.get(i).value()), "value at " + i);
            checkEq(s(records.get(i).key()), s(got.get(i).key()), "key at " + i);
        }
    }

    // ---------------------------------------------------------------- consumer

    private void consumerAssignSeek() throws Exception {
        TopicPartition tp = new TopicPartition(mainTopic, 0);
        try (KafkaConsumer<byte[], byte[]> c = consumer()) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            List<ConsumerRecord<byte[], byte[]>> all = readN(c, 1000);
            for (int i = 0; i < 1000; i++) {
                ConsumerRecord<byte[], byte[]> r = all.get(i);
                checkEq((long) i, r.offset(), "offset");
                checkEq("key-" + i, s(r.key()), "key");
                checkEq("value-" + i, s(r.value()), "value");
            }
            checkEq(1000L, c.position(tp), "position after reading all");

            c.seek(tp, 500);
            List<ConsumerRecord<byte[], byte[]>> tail = readN(c, 500);
            checkEq(500L, tail.get(0).offset(), "first offset after seek(500)");
            checkEq("value-999", s(tail.get(499).value()), "last value");

            checkEq(Map.of(tp, 0L), c.beginningOffsets(List.of(tp)), "beginningOffsets");
            checkEq(Map.of(tp, 1000L), c.endOffsets(List.of(tp)), "endOffsets");
            c.seekToEnd(List.of(tp));
            checkEq(1000L, c.position(tp), "position after seekToEnd");
            checkEq(0, c.poll(Duration.ofMillis(300)).count(), "records past the end");
        }
    }

    private void consumerOffsetsForTimes() throws Exception {
        String t = topic("times");
        createTopic(t, 1, Map.of());
        long base = System.currentTimeMillis() - 100_000;
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            records.add(new ProducerRecord<>(t, 0, base + i * 1000, null, b("t" + i)));
        }
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of())) {
            sendAll(p, records);
        }
        TopicPartition tp = new TopicPartition(t, 0);
        try (KafkaConsumer<byte[], byte[]> c = consumer()) {
            Map<TopicPartition, OffsetAndTimestamp> r = c.offsetsForTimes(Map.of(tp, base + 3500));
            checkEq(4L, r.get(tp).offset(), "offset for base+3.5s");
            checkEq(base + 4000, r.get(tp).timestamp(), "timestamp for base+3.5s");
            Map<TopicPartition, OffsetAndTimestamp> none = c.offsetsForTimes(Map.of(tp, base + 60_000));
            checkEq(null, none.get(tp), "offset past the last timestamp");
            c.assign(List.of(tp));
            c.seek(tp, r.get(tp).offset());
            ConsumerRecord<byte[], byte[]> rec = readN(c, 1).get(0);
            checkEq(base + 4000, rec.timestamp(), "record timestamp");
            checkEq("t4", s(rec.value()), "record value");
        }
    }

    private void headersRoundtrip() throws Exception {
        String t = topic("headers");
        createTopic(t, 1, Map.of());
        ProducerRecord<byte[], byte[]> r = new ProducerRecord<>(t, b("k"), b("v"));
        r.headers().add("a", b("1")).add("dup", b("x")).add("dup", b("y")).add("null", null).add("empty", new byte[0]);
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of())) {
            sendAll(p, List.of(r));
        }
        ConsumerRecord<byte[], byte[]> got = readFromBeginning(t, 0, 1).get(0);
        List<String> hs = new ArrayList<>();
        for (Header h : got.headers()) {
            hs.add(h.key() + "=" + s(h.value()));
        }
        checkEq(List.of("a=1", "dup=x", "dup=y", "null=null", "empty="), hs, "headers");
    }

    // ---------------------------------------------------------------- admin

    private void adminCreateWithConfigs() throws Exception {
        String t = topic("created");
        createTopic(t, 3, Map.of("retention.ms", "3600000", "cleanup.policy", "delete", "segment.bytes", "1048576"));
        TopicDescription d = admin.describeTopics(List.of(t)).allTopicNames().get().get(t);
        checkEq(3, d.partitions().size(), "partition count");
        Config cfg = describeConfig(new ConfigResource(ConfigResource.Type.TOPIC, t));
        checkEq("3600000", cfg.get("retention.ms").value(), "retention.ms");
        checkEq(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, cfg.get("retention.ms").source(), "retention.ms source");
        checkEq("1048576", cfg.get("segment.bytes").value(), "segment.bytes");
    }

    private void adminCreateValidateOnly() throws Exception {
        String t = topic("validate-only");
        admin.createTopics(List.of(new NewTopic(t, 2, (short) 1)), new CreateTopicsOptions().validateOnly(true))
                .all().get();
        check(!admin.listTopics().names().get().contains(t), "validateOnly created the topic");
        expectError(InvalidReplicationFactorException.class, () -> admin
                .createTopics(List.of(new NewTopic(t, 1, (short) 3)), new CreateTopicsOptions().validateOnly(true))
                .all().get());
    }

    private void adminCreateInvalidName() throws Exception {
        for (String name : List.of("bad name", "bad/name", "..", "x".repeat(250))) {
            expectError(InvalidTopicException.class,
                    () -> admin.createTopics(List.of(new NewTopic(name, 1, (short) 1))).all().get());
        }
    }

    private void adminCreateRf3() throws Exception {
        String t = topic("rf3");
        expectError(InvalidReplicationFactorException.class,
                () -> admin.createTopics(List.of(new NewTopic(t, 1, (short) 3))).all().get());
        check(!admin.listTopics().names().get().contains(t), "RF 3 created the topic");
    }

    private void adminCreateExisting() throws Exception {
        String t = topic("existing");
        createTopic(t, 1, Map.of());
        expectError(TopicExistsException.class, () -> createTopic(t, 1, Map.of()));
    }

    private void adminListTopics() throws Exception {
        Set<String> names = admin.listTopics().names().get();
        check(names.contains(mainTopic), "listTopics lacks " + mainTopic + ": " + names);
    }

    private void adminDescribeTopics() throws Exception {
        String t = topic("describe");
        createTopic(t, 4, Map.of());
        TopicDescription d = admin.describeTopics(List.of(t)).allTopicNames().get().get(t);
        checkEq(t, d.name(), "name");
        check(!d.isInternal(), "internal");
        check(d.topicId() != null && !d.topicId().equals(Uuid.ZERO_UUID), "topic id " + d.topicId());
        checkEq(4, d.partitions().size(), "partitions");
        for (int i = 0; i < 4; i++) {
            TopicPartitionInfo p = d.partitions().get(i);
            checkEq(i, p.partition(), "partition index");
            check(p.leader() != null && p.leader().id() >= 0, "leader of " + i);
            checkEq(List.of(p.leader()), p.replicas(), "replicas of " + i);
            checkEq(List.of(p.leader()), p.isr(), "isr of " + i);
        }
        // The id is stable.
        TopicDescription again = admin.describeTopics(List.of(t)).allTopicNames().get().get(t);
        checkEq(d.topicId(), again.topicId(), "topic id on second describe");
        expectError(UnknownTopicOrPartitionException.class,
                () -> admin.describeTopics(List.of(t + "-missing")).allTopicNames().get());
    }

    private void adminDescribeTopicsById() throws Exception {
        String t = topic("by-id");
        createTopic(t, 2, Map.of());
        Uuid id = admin.describeTopics(List.of(t)).allTopicNames().get().get(t).topicId();
        Map<Uuid, TopicDescription> byId = admin.describeTopics(TopicCollection.ofTopicIds(List.of(id)))
                .allTopicIds().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        checkEq(t, byId.get(id).name(), "name by id");
        checkEq(2, byId.get(id).partitions().size(), "partitions by id");
    }

    private Config describeConfig(ConfigResource r) throws Exception {
        return admin.describeConfigs(List.of(r)).all().get().get(r);
    }

    private void adminDescribeConfigsTopic() throws Exception {
        Config cfg = describeConfig(new ConfigResource(ConfigResource.Type.TOPIC, mainTopic));
        ConfigEntry policy = cfg.get("cleanup.policy");
        check(policy != null, "cleanup.policy missing");
        checkEq("delete", policy.value(), "cleanup.policy");
        checkEq(ConfigEntry.ConfigSource.DEFAULT_CONFIG, policy.source(), "cleanup.policy source");
        check(cfg.get("retention.ms") != null, "retention.ms missing");
        check(cfg.get("segment.bytes") != null, "segment.bytes missing");
        expectError(UnknownTopicOrPartitionException.class,
                () -> describeConfig(new ConfigResource(ConfigResource.Type.TOPIC, mainTopic + "-missing")));
    }

    private void adminDescribeConfigsBroker() throws Exception {
        Config cfg = describeConfig(new ConfigResource(ConfigResource.Type.BROKER, "1"));
        check(cfg.get("num.partitions") != null, "num.partitions missing: " + cfg.entries().size() + " entries");
        check(cfg.get("log.dirs") != null || cfg.get("log.dir") != null, "log.dirs missing");
    }

    private void adminListOffsets() throws Exception {
        String t = topic("list-offsets");
        createTopic(t, 1, Map.of());
        long base = System.currentTimeMillis() - 100_000;
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            records.add(new ProducerRecord<>(t, 0, base + i * 1000, null, b("x" + i)));
        }
        // an older timestamp last: the max timestamp stays at offset 9
        records.add(new ProducerRecord<>(t, 0, base - 5000, null, b("old")));
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of())) {
            sendAll(p, records);
        }
        TopicPartition tp = new TopicPartition(t, 0);
        checkEq(0L, listOffset(tp, OffsetSpec.earliest()).offset(), "earliest");
        checkEq(11L, listOffset(tp, OffsetSpec.latest()).offset(), "latest");
        ListOffsetsResult.ListOffsetsResultInfo max = listOffset(tp, OffsetSpec.maxTimestamp());
        checkEq(9L, max.offset(), "maxTimestamp offset");
        checkEq(base + 9000, max.timestamp(), "maxTimestamp timestamp");
        ListOffsetsResult.ListOffsetsResultInfo at = listOffset(tp, OffsetSpec.forTimestamp(base + 2500));
        checkEq(3L, at.offset(), "forTimestamp offset");
        checkEq(base + 3000, at.timestamp(), "forTimestamp timestamp");
        checkEq(-1L, listOffset(tp, OffsetSpec.forTimestamp(base + 60_000)).offset(), "forTimestamp past the end");
    }

    private ListOffsetsResult.ListOffsetsResultInfo listOffset(TopicPartition tp, OffsetSpec spec) throws Exception {
        return admin.listOffsets(Map.of(tp, spec)).partitionResult(tp).get();
    }

    private void adminDeleteRecords() throws Exception {
        String t = topic("delete-records");
        createTopic(t, 1, Map.of());
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            records.add(new ProducerRecord<>(t, 0, null, b("d" + i)));
        }
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of(ProducerConfig.BATCH_SIZE_CONFIG, 512))) {
            sendAll(p, records);
        }
        TopicPartition tp = new TopicPartition(t, 0);
        long low = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(120))).lowWatermarks().get(tp).get()
                .lowWatermark();
        checkEq(120L, low, "low watermark");
        checkEq(120L, listOffset(tp, OffsetSpec.earliest()).offset(), "earliest after deleteRecords");
        try (KafkaConsumer<byte[], byte[]> c = consumer()) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            List<ConsumerRecord<byte[], byte[]>> got = readN(c, 80);
            checkEq(120L, got.get(0).offset(), "first offset read");
            checkEq("d120", s(got.get(0).value()), "first value read");
        }
        // Beyond the end is OFFSET_OUT_OF_RANGE.
        expectError(org.apache.kafka.common.errors.OffsetOutOfRangeException.class,
                () -> admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(1000))).all().get());
    }

    private void adminDeleteTopics() throws Exception {
        String t = topic("to-delete");
        createTopic(t, 2, Map.of());
        admin.deleteTopics(List.of(t)).all().get();
        check(!admin.listTopics().names().get().contains(t), "topic still listed after delete");
        expectError(UnknownTopicOrPartitionException.class, () -> admin.deleteTopics(List.of(t)).all().get());
        // The name can be reused at once.
        createTopic(t, 1, Map.of());
        checkEq(1, admin.describeTopics(List.of(t)).allTopicNames().get().get(t).partitions().size(),
                "recreated partitions");
    }

    private void adminDescribeCluster() throws Exception {
        DescribeClusterResult r = admin.describeCluster();
        String clusterId = r.clusterId().get();
        Collection<Node> nodes = r.nodes().get();
        Node controller = r.controller().get();
        check(clusterId != null && !clusterId.isEmpty(), "cluster id");
        checkEq(1, nodes.size(), "node count");
        check(controller != null, "controller");
    }


    // ---------------------------------------------------------------- more edges

    private void adminDeleteTopicsById() throws Exception {
        String t = topic("delete-by-id");
        createTopic(t, 1, Map.of());
        Uuid id = admin.describeTopics(List.of(t)).allTopicNames().get().get(t).topicId();
        admin.deleteTopics(TopicCollection.ofTopicIds(List.of(id))).all().get();
        check(!admin.listTopics().names().get().contains(t), "topic still listed after delete by id");
        expectError(org.apache.kafka.common.errors.UnknownTopicIdException.class,
                () -> admin.deleteTopics(TopicCollection.ofTopicIds(List.of(id))).all().get());
    }

    private void adminListOffsetsLocalTiered() throws Exception {
        String t = topic("local-tiered");
        createTopic(t, 1, Map.of());
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            records.add(new ProducerRecord<>(t, 0, null, b("l" + i)));
        }
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of())) {
            sendAll(p, records);
        }
        TopicPartition tp = new TopicPartition(t, 0);
        admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(2))).all().get();
        // Without tiered storage the local log is the whole log (Kafka:
        // earliest-local = log start offset; latest-tiered = -1).
        checkEq(2L, listOffset(tp, OffsetSpec.earliestLocal()).offset(), "earliestLocal");
        checkEq(-1L, listOffset(tp, OffsetSpec.latestTiered()).offset(), "latestTiered");
    }

    private void producerAutoCreate() throws Exception {
        String t = topic("auto");
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of())) {
            RecordMetadata md = p.send(new ProducerRecord<>(t, b("auto"))).get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
            checkEq(0L, md.offset(), "offset");
        }
        check(admin.listTopics().names().get().contains(t), "auto-created topic not listed");
    }

    private void producerRecordTooLarge() throws Exception {
        String t = topic("too-large");
        createTopic(t, 1, Map.of("max.message.bytes", "10000"));
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of())) {
            expectError(org.apache.kafka.common.errors.RecordTooLargeException.class,
                    () -> p.send(new ProducerRecord<>(t, new byte[20_000])).get(TIMEOUT_MS, TimeUnit.MILLISECONDS));
            // The producer is still usable afterwards.
            checkEq(0L, p.send(new ProducerRecord<>(t, new byte[100])).get(TIMEOUT_MS, TimeUnit.MILLISECONDS)
                    .offset(), "offset of the small record");
        }
    }

    private void consumerOutOfRange() throws Exception {
        String t = topic("out-of-range");
        createTopic(t, 1, Map.of());
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            records.add(new ProducerRecord<>(t, 0, null, b("r" + i)));
        }
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of())) {
            sendAll(p, records);
        }
        TopicPartition tp = new TopicPartition(t, 0);
        Properties none = new Properties();
        none.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        try (KafkaConsumer<byte[], byte[]> c = consumer(none)) {
            c.assign(List.of(tp));
            c.seek(tp, 50);
            long deadline = System.currentTimeMillis() + TIMEOUT_MS;
            boolean raised = false;
            while (!raised && System.currentTimeMillis() < deadline) {
                try {
                    check(c.poll(Duration.ofMillis(200)).isEmpty(), "records from an out-of-range offset");
                } catch (org.apache.kafka.clients.consumer.OffsetOutOfRangeException e) {
                    raised = true;
                    checkEq(Map.of(tp, 50L), e.offsetOutOfRangePartitions(), "out-of-range partitions");
                }
            }
            check(raised, "no OffsetOutOfRangeException");
        }
        Properties earliest = new Properties();
        earliest.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        try (KafkaConsumer<byte[], byte[]> c = consumer(earliest)) {
            c.assign(List.of(tp));
            c.seek(tp, 50);
            checkEq(0L, readN(c, 1).get(0).offset(), "offset after reset to earliest");
        }
    }

    private void consumerSmallFetchLimits() throws Exception {
        String t = topic("small-fetch");
        createTopic(t, 3, Map.of());
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < 300; i++) {
            records.add(new ProducerRecord<>(t, i % 3, null, b("s" + i + "-" + "y".repeat(2000))));
        }
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of(ProducerConfig.BATCH_SIZE_CONFIG, 65536,
                ProducerConfig.LINGER_MS_CONFIG, 50))) {
            sendAll(p, records);
        }
        // Limits smaller than one batch still make progress (KIP-74: the
        // first batch is returned whole).
        Properties small = new Properties();
        small.put(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, 1024);
        small.put(ConsumerConfig.FETCH_MAX_BYTES_CONFIG, 4096);
        try (KafkaConsumer<byte[], byte[]> c = consumer(small)) {
            List<TopicPartition> tps = List.of(new TopicPartition(t, 0), new TopicPartition(t, 1),
                    new TopicPartition(t, 2));
            c.assign(tps);
            c.seekToBeginning(tps);
            List<ConsumerRecord<byte[], byte[]>> got = readN(c, 300);
            for (int part = 0; part < 3; part++) {
                long next = 0;
                for (ConsumerRecord<byte[], byte[]> r : got) {
                    if (r.partition() == part) {
                        checkEq(next, r.offset(), "offset in partition " + part);
                        checkEq("s" + (next * 3 + part), s(r.value()).split("-")[0], "value");
                        next++;
                    }
                }
                checkEq(100L, next, "records in partition " + part);
            }
        }
    }

    private void logAppendTime() throws Exception {
        String t = topic("log-append-time");
        createTopic(t, 1, Map.of("message.timestamp.type", "LogAppendTime"));
        long before = System.currentTimeMillis();
        RecordMetadata md;
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of())) {
            md = p.send(new ProducerRecord<>(t, 0, 1_000L, null, b("lat"))).get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        }
        long after = System.currentTimeMillis();
        // The produce response carries the broker's append time.
        check(md.timestamp() >= before - 1000 && md.timestamp() <= after + 1000, "ack timestamp " + md.timestamp());
        ConsumerRecord<byte[], byte[]> r = readFromBeginning(t, 0, 1).get(0);
        checkEq(org.apache.kafka.common.record.TimestampType.LOG_APPEND_TIME, r.timestampType(), "timestamp type");
        checkEq(md.timestamp(), r.timestamp(), "fetched timestamp");
    }

    // ---------------------------------------------------------------- groups
    //
    // Classic group protocol (group.protocol=classic, the 4.3 default):
    // FindCoordinator, JoinGroup/SyncGroup/Heartbeat/LeaveGroup,
    // OffsetCommit/OffsetFetch; the admin calls on top of ListGroups,
    // DescribeGroups, DeleteGroups, OffsetDelete.

    /** session.timeout.ms at the broker's minimum (6000, as Kafka's) and a fast heartbeat. */
    private KafkaConsumer<byte[], byte[]> groupConsumer(String group, String clientId, Map<String, Object> extra) {
        Properties p = new Properties();
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, clientId);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 6000);
        p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
        p.put(ConsumerConfig.CHECK_CRCS_CONFIG, true);
        p.putAll(extra);
        return consumer(p);
    }

    private static String group(String what) {
        return "java-group-" + what + "-" + RUN_ID;
    }

    /**
     * One subscribed consumer polling on its own thread (KafkaConsumer is
     * single-threaded): publishes its assignment after every poll and keeps
     * every record it got.
     */
    private final class Member implements Runnable {
        final String group;
        final String topic;
        final String clientId;
        final List<ConsumerRecord<byte[], byte[]>> got = Collections.synchronizedList(new ArrayList<>());
        volatile Set<TopicPartition> assignment = Set.of();
        volatile boolean stop;
        volatile Throwable error;
        final Thread thread;

        Member(String group, String topic, String clientId) {
            this.group = group;
            this.topic = topic;
            this.clientId = clientId;
            this.thread = new Thread(this, clientId);
            this.thread.setDaemon(true);
            this.thread.start();
        }

        @Override
        public void run() {
            try (KafkaConsumer<byte[], byte[]> c = groupConsumer(group, clientId, Map.of())) {
                c.subscribe(List.of(topic));
                while (!stop) {
                    for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(100))) {
                        got.add(r);
                    }
                    assignment = Set.copyOf(c.assignment());
                }
                // close() (end of try) sends LeaveGroup
            } catch (Throwable t) {
                error = t;
            }
        }

        void stopAndJoin() throws InterruptedException {
            stop = true;
            thread.join(30_000);
            check(!thread.isAlive(), clientId + " did not stop");
            if (error != null) {
                throw new AssertionError(clientId + " failed: " + error, error);
            }
        }
    }

    private static Set<Integer> partitionsOf(Set<TopicPartition> tps) {
        Set<Integer> out = new TreeSet<>();
        for (TopicPartition tp : tps) {
            out.add(tp.partition());
        }
        return out;
    }

    /**
     * Waits until the members together hold every partition once and none is
     * empty; the topic must be empty until then (nothing may be consumed).
     */
    private static void waitStable(List<Member> members, int partitions) {
        waitStable(members, partitions, true);
    }

    private static void waitStable(List<Member> members, int partitions, boolean topicEmpty) {
        long deadline = System.currentTimeMillis() + 30_000;
        while (System.currentTimeMillis() < deadline) {
            Set<Integer> all = new TreeSet<>();
            int sum = 0;
            boolean allHave = true;
            for (Member m : members) {
                check(m.error == null, m.clientId + " failed: " + m.error);
                Set<TopicPartition> a = m.assignment;
                allHave &= !a.isEmpty();
                sum += a.size();
                all.addAll(partitionsOf(a));
            }
            if (allHave && sum == partitions && all.size() == partitions) {
                for (Member m : members) {
                    if (!topicEmpty) {
                        break;
                    }
                    check(m.got.isEmpty(), "records consumed before the group was stable");
                }
                return;
            }
            sleepMs(50);
        }
        List<Object> now = new ArrayList<>();
        for (Member m : members) {
            now.add(m.clientId + "=" + partitionsOf(m.assignment));
        }
        throw new AssertionError("group not stable after 30 s: " + now);
    }

    private static void sleepMs(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted");
        }
    }

    /** Produces perPartition records "p<part>-<i>" to each partition. */
    private void produceSpread(String t, int partitions, int perPartition) throws Exception {
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int part = 0; part < partitions; part++) {
            for (int i = 0; i < perPartition; i++) {
                records.add(new ProducerRecord<>(t, part, null, b("p" + part + "-" + i)));
            }
        }
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of(ProducerConfig.LINGER_MS_CONFIG, 5))) {
            sendAll(p, records);
        }
    }

    private static int total(List<Member> members) {
        int n = 0;
        for (Member m : members) {
            n += m.got.size();
        }
        return n;
    }

    /** Waits for n records between the members, then one more second for duplicates. */
    private static void waitConsumed(List<Member> members, int n) {
        long deadline = System.currentTimeMillis() + 30_000;
        while (total(members) < n && System.currentTimeMillis() < deadline) {
            for (Member m : members) {
                check(m.error == null, m.clientId + " failed: " + m.error);
            }
            sleepMs(50);
        }
        checkEq(n, total(members), "records consumed by the group");
        sleepMs(1000);
        checkEq(n, total(members), "records consumed by the group a second later (duplicates?)");
    }

    private void consumerGroupSubscribe() throws Exception {
        // mainTopic: 1000 records from producer_default_1000
        String g = group("subscribe");
        TopicPartition tp = new TopicPartition(mainTopic, 0);
        try (KafkaConsumer<byte[], byte[]> c = groupConsumer(g, "java-subscribe", Map.of())) {
            c.subscribe(List.of(mainTopic));
            List<ConsumerRecord<byte[], byte[]>> got = readN(c, 1000);
            for (int i = 0; i < 1000; i++) {
                checkEq((long) i, got.get(i).offset(), "offset");
                checkEq("value-" + i, s(got.get(i).value()), "value");
            }
            checkEq(Set.of(tp), c.assignment(), "assignment");
            c.commitSync(Map.of(tp, new OffsetAndMetadata(1000)), Duration.ofSeconds(10));
            checkEq(1000L, c.committed(Set.of(tp)).get(tp).offset(), "committed");
        }
    }

    private void consumerGroupThreeMembers() throws Exception {
        String t = topic("group-three");
        createTopic(t, 6, Map.of());
        String g = group("three");
        List<Member> members = new ArrayList<>();
        try {
            for (int i = 0; i < 3; i++) {
                members.add(new Member(g, t, "java-m" + i));
            }
            waitStable(members, 6);
            for (Member m : members) {
                // RangeAssignor (the first default): 2 partitions each
                checkEq(2, m.assignment.size(), "partitions of " + m.clientId);
            }
            produceSpread(t, 6, 50);
            waitConsumed(members, 300);
            Set<String> values = new TreeSet<>();
            for (Member m : members) {
                Set<Integer> mine = partitionsOf(m.assignment);
                List<ConsumerRecord<byte[], byte[]>> got;
                synchronized (m.got) {
                    got = new ArrayList<>(m.got);
                }
                for (int part : mine) {
                    long next = 0;
                    for (ConsumerRecord<byte[], byte[]> r : got) {
                        check(mine.contains(r.partition()), m.clientId + " got a record of partition " + r.partition());
                        if (r.partition() == part) {
                            checkEq(next, r.offset(), "offset in partition " + part);
                            checkEq("p" + part + "-" + next, s(r.value()), "value");
                            next++;
                        }
                    }
                    checkEq(50L, next, "records of partition " + part);
                }
                for (ConsumerRecord<byte[], byte[]> r : got) {
                    check(values.add(s(r.value())), "duplicate " + s(r.value()));
                }
            }
            checkEq(300, values.size(), "distinct records");
        } finally {
            for (Member m : members) {
                m.stop = true;
            }
            for (Member m : members) {
                m.stopAndJoin();
            }
        }
    }

    private void consumerGroupMemberLeaves() throws Exception {
        String t = topic("group-leave");
        createTopic(t, 4, Map.of());
        String g = group("leave");
        Member a = new Member(g, t, "java-stay");
        Member b = new Member(g, t, "java-leave");
        try {
            waitStable(List.of(a, b), 4);
            checkEq(2, a.assignment.size(), "partitions of the first member");
            long t0 = System.currentTimeMillis();
            b.stopAndJoin(); // close(): LeaveGroup
            while (a.assignment.size() != 4 && System.currentTimeMillis() - t0 < 30_000) {
                sleepMs(20);
            }
            checkEq(Set.of(0, 1, 2, 3), partitionsOf(a.assignment), "partitions after the other member left");
            long took = System.currentTimeMillis() - t0;
            // A leave is acted on at once, not after the 6 s session timeout.
            check(took < 5500, "rebalance after LeaveGroup took " + took + " ms");
            produceSpread(t, 4, 3);
            waitConsumed(List.of(a), 12);
        } finally {
            a.stopAndJoin();
            if (b.thread.isAlive()) {
                b.stopAndJoin();
            }
        }
    }

    private void consumerGroupCommitResume() throws Exception {
        String t = topic("group-commit");
        createTopic(t, 2, Map.of());
        produceSpread(t, 2, 10);
        String g = group("commit");
        TopicPartition tp0 = new TopicPartition(t, 0);
        TopicPartition tp1 = new TopicPartition(t, 1);
        String meta = "java-meta-" + "m".repeat(100);
        try (KafkaConsumer<byte[], byte[]> c = groupConsumer(g, "java-commit", Map.of())) {
            c.subscribe(List.of(t));
            readN(c, 20);
            // commitSync() with no argument commits the positions
            c.commitSync(Duration.ofSeconds(10));
            Map<TopicPartition, OffsetAndMetadata> got = c.committed(Set.of(tp0, tp1));
            checkEq(10L, got.get(tp0).offset(), "committed position of partition 0");
            checkEq(10L, got.get(tp1).offset(), "committed position of partition 1");
            // explicit offsets with metadata
            c.commitSync(Map.of(tp0, new OffsetAndMetadata(4, meta), tp1, new OffsetAndMetadata(7)),
                    Duration.ofSeconds(10));
            got = c.committed(Set.of(tp0, tp1));
            checkEq(4L, got.get(tp0).offset(), "committed offset of partition 0");
            checkEq(meta, got.get(tp0).metadata(), "committed metadata of partition 0");
            checkEq(7L, got.get(tp1).offset(), "committed offset of partition 1");
            checkEq("", got.get(tp1).metadata(), "committed metadata of partition 1");
            check(!c.committed(Set.of(new TopicPartition(t + "-none", 0))).values().stream()
                    .anyMatch(v -> v != null), "committed offset for a partition never committed");
        }
        // A new member resumes from the commits.
        try (KafkaConsumer<byte[], byte[]> c = groupConsumer(g, "java-commit-2", Map.of())) {
            c.subscribe(List.of(t));
            List<ConsumerRecord<byte[], byte[]>> got = readN(c, 6 + 3);
            Set<String> seen = new TreeSet<>();
            for (ConsumerRecord<byte[], byte[]> r : got) {
                seen.add(r.partition() + ":" + r.offset());
            }
            Set<String> want = new TreeSet<>();
            for (int i = 4; i < 10; i++) {
                want.add("0:" + i);
            }
            for (int i = 7; i < 10; i++) {
                want.add("1:" + i);
            }
            checkEq(want, seen, "records after resume");
            checkEq(meta, c.committed(Set.of(tp0)).get(tp0).metadata(), "metadata seen by the new member");
        }
    }

    // Admin.listConsumerGroups and its types are deprecated for removal in
    // 4.x (listGroups replaces them) but are what applications still call.
    @SuppressWarnings({"deprecation", "removal"})
    private static Optional<GroupState> stateOf(ConsumerGroupListing l) {
        return l.groupState();
    }

    @SuppressWarnings({"deprecation", "removal"})
    private Map<String, ConsumerGroupListing> listGroups(ListConsumerGroupsOptions options) throws Exception {
        Map<String, ConsumerGroupListing> out = new HashMap<>();
        for (ConsumerGroupListing l : admin.listConsumerGroups(options).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
            out.put(l.groupId(), l);
        }
        return out;
    }

    @SuppressWarnings({"deprecation", "removal"})
    private void adminConsumerGroups() throws Exception {
        String t = topic("group-admin");
        createTopic(t, 2, Map.of());
        produceSpread(t, 2, 5);
        String g = group("admin");
        String simple = group("admin-simple");
        TopicPartition tp0 = new TopicPartition(t, 0);
        TopicPartition tp1 = new TopicPartition(t, 1);

        // A simple group: commits only (assign, never joins).
        try (KafkaConsumer<byte[], byte[]> s = groupConsumer(simple, "java-simple", Map.of())) {
            s.assign(List.of(tp0));
            s.commitSync(Map.of(tp0, new OffsetAndMetadata(3)), Duration.ofSeconds(10));
        }

        Member m = new Member(g, t, "java-admin");
        boolean stopped = false;
        try {
            waitStable(List.of(m), 2, false);
            long deadline = System.currentTimeMillis() + 30_000;
            while (m.got.size() < 10 && System.currentTimeMillis() < deadline) {
                sleepMs(50);
            }
            checkEq(10, m.got.size(), "records read by the member");
            // commit through the admin API is refused while the member lives,
            // so the offsets come from the member's own commit below
            expectError(UnknownMemberIdException.class,
                    () -> admin.alterConsumerGroupOffsets(g, Map.of(tp0, new OffsetAndMetadata(1))).all().get());

            // listConsumerGroups, all and by state
            Map<String, ConsumerGroupListing> all = listGroups(new ListConsumerGroupsOptions());
            check(all.containsKey(g) && all.containsKey(simple), "listConsumerGroups: " + all.keySet());
            checkEq(Optional.of(GroupState.STABLE), stateOf(all.get(g)), "state of the live group");
            check(!all.get(g).isSimpleConsumerGroup(), "live group listed as simple");
            checkEq(Optional.of(GroupState.EMPTY), stateOf(all.get(simple)), "state of the simple group");
            check(all.get(simple).isSimpleConsumerGroup(), "simple group not listed as simple");
            Map<String, ConsumerGroupListing> stable = listGroups(
                    new ListConsumerGroupsOptions().inGroupStates(Set.of(GroupState.STABLE)));
            check(stable.containsKey(g) && !stable.containsKey(simple), "Stable filter: " + stable.keySet());
            Map<String, ConsumerGroupListing> empty = listGroups(
                    new ListConsumerGroupsOptions().inGroupStates(Set.of(GroupState.EMPTY)));
            check(!empty.containsKey(g) && empty.containsKey(simple), "Empty filter: " + empty.keySet());

            // listGroups (KIP-1043): the type of a classic group
            boolean found = false;
            for (GroupListing l : admin.listGroups(ListGroupsOptions.forConsumerGroups()).all()
                    .get(TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
                if (l.groupId().equals(g)) {
                    found = true;
                    checkEq("consumer", l.protocol(), "protocol type");
                    checkEq(Optional.of(GroupType.CLASSIC), l.type(), "group type");
                }
            }
            check(found, "listGroups(forConsumerGroups) misses the live group");

            // describeConsumerGroups
            ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(g)).describedGroups().get(g)
                    .get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
            checkEq(g, d.groupId(), "described group id");
            checkEq(GroupState.STABLE, d.groupState(), "described state");
            checkEq(GroupType.CLASSIC, d.type(), "described type");
            checkEq("range", d.partitionAssignor(), "partition assignor");
            check(!d.isSimpleConsumerGroup(), "described as simple");
            Node node = admin.describeCluster().nodes().get().iterator().next();
            checkEq(node.id(), d.coordinator().id(), "coordinator");
            checkEq(1, d.members().size(), "members");
            MemberDescription md = d.members().iterator().next();
            checkEq("java-admin", md.clientId(), "member client id");
            check(md.consumerId().startsWith("java-admin-"), "member id " + md.consumerId());
            checkEq("/127.0.0.1", md.host(), "member host (Kafka: InetAddress.toString())");
            checkEq(Set.of(tp0, tp1), md.assignment().topicPartitions(), "member assignment");
            ConsumerGroupDescription ds = admin.describeConsumerGroups(List.of(simple)).describedGroups()
                    .get(simple).get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
            checkEq(GroupState.EMPTY, ds.groupState(), "simple group state");
            checkEq(0, ds.members().size(), "simple group members");

            // listConsumerGroupOffsets: nothing committed by the live group yet
            checkEq(Map.of(), admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata().get(),
                    "offsets before any commit");
            Map<TopicPartition, OffsetAndMetadata> so = admin.listConsumerGroupOffsets(simple)
                    .partitionsToOffsetAndMetadata().get();
            checkEq(Set.of(tp0), so.keySet(), "simple group partitions");
            checkEq(3L, so.get(tp0).offset(), "simple group offset");

            // deleteConsumerGroupOffsets / deleteConsumerGroups refused while the member is subscribed
            expectError(GroupNotEmptyException.class, () -> admin.deleteConsumerGroups(List.of(g)).all().get());
            admin.alterConsumerGroupOffsets(simple, Map.of(tp1, new OffsetAndMetadata(2, "s"))).all().get();
            so = admin.listConsumerGroupOffsets(simple).partitionsToOffsetAndMetadata().get();
            checkEq(2L, so.get(tp1).offset(), "altered offset of the simple group");
            checkEq("s", so.get(tp1).metadata(), "altered metadata of the simple group");

            m.stopAndJoin();
            stopped = true;
            // the member left (close() does not wait for the LeaveGroup
            // answer): the group turns Empty and its offsets can be set
            long until = System.currentTimeMillis() + 30_000;
            while (System.currentTimeMillis() < until && admin.describeConsumerGroups(List.of(g)).describedGroups()
                    .get(g).get().groupState() != GroupState.EMPTY) {
                sleepMs(50);
            }
            admin.alterConsumerGroupOffsets(g, Map.of(tp0, new OffsetAndMetadata(5, "a"),
                    tp1, new OffsetAndMetadata(1))).all().get();
            Map<TopicPartition, OffsetAndMetadata> go = admin.listConsumerGroupOffsets(g)
                    .partitionsToOffsetAndMetadata().get();
            checkEq(5L, go.get(tp0).offset(), "altered offset 0");
            checkEq("a", go.get(tp0).metadata(), "altered metadata 0");
            checkEq(1L, go.get(tp1).offset(), "altered offset 1");
            checkEq(Optional.of(GroupState.EMPTY), stateOf(listGroups(new ListConsumerGroupsOptions()).get(g)),
                    "state after the member left");

            admin.deleteConsumerGroupOffsets(g, Set.of(tp1)).all().get();
            go = admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata().get();
            checkEq(Set.of(tp0), go.keySet(), "partitions after deleteConsumerGroupOffsets");

            admin.deleteConsumerGroups(List.of(g, simple)).all().get();
            Map<String, ConsumerGroupListing> after = listGroups(new ListConsumerGroupsOptions());
            check(!after.containsKey(g) && !after.containsKey(simple), "deleted groups still listed");
            checkEq(Map.of(), admin.listConsumerGroupOffsets(g).partitionsToOffsetAndMetadata().get(),
                    "offsets of a deleted group");
            expectError(GroupIdNotFoundException.class, () -> admin.deleteConsumerGroups(List.of(g)).all().get());
        } finally {
            if (!stopped) {
                m.stopAndJoin();
            }
        }
    }

    /** Runs after the group scenarios: __consumer_offsets exists and is flagged internal. */
    private void adminOffsetsTopicInternal() throws Exception {
        Set<String> internal = admin.listTopics(new ListTopicsOptions().listInternal(true)).names().get();
        check(internal.contains("__consumer_offsets"), "__consumer_offsets missing with listInternal(true)");
        Set<String> plain = admin.listTopics().names().get();
        check(!plain.contains("__consumer_offsets"), "__consumer_offsets listed without listInternal (is_internal?)");
        TopicDescription d = admin.describeTopics(List.of("__consumer_offsets")).allTopicNames().get()
                .get("__consumer_offsets");
        check(d.isInternal(), "__consumer_offsets not internal");
        checkEq(50, d.partitions().size(), "partitions of __consumer_offsets (offsets.topic.num.partitions)");
    }

    // ---------------------------------------------------------------- transactions

    /** A transactional producer (classic transactions: transaction.version < 2 on Runnel). */
    private KafkaProducer<byte[], byte[]> txnProducer(String transactionalId) {
        KafkaProducer<byte[], byte[]> p = producer(Map.of(
                ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId,
                ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 60_000,
                ProducerConfig.LINGER_MS_CONFIG, 5));
        p.initTransactions();
        return p;
    }

    /**
     * Every value of the partition from the beginning up to its end offset for
     * the isolation level (the last stable offset for read_committed); checks
     * the position reaches that end (past the control records) and nothing
     * more arrives.
     */
    private List<String> readAll(String topic, int partition, String isolation, long expectedEnd) {
        Properties extra = new Properties();
        extra.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        List<String> out = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> c = consumer(extra)) {
            TopicPartition tp = new TopicPartition(topic, partition);
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            long end = c.endOffsets(List.of(tp)).get(tp);
            checkEq(expectedEnd, end, isolation + " end offset of " + tp);
            long deadline = System.currentTimeMillis() + TIMEOUT_MS;
            while (c.position(tp) < end) {
                check(System.currentTimeMillis() < deadline,
                        isolation + ": position " + c.position(tp) + " < " + end + " (read " + out + ")");
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                    out.add(s(r.value()));
                }
            }
            for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(300))) {
                out.add(s(r.value()));
            }
            checkEq(end, c.position(tp), isolation + " position");
        }
        return out;
    }

    private static void sendTo(KafkaProducer<byte[], byte[]> p, String topic, int partition, String... values)
            throws Exception {
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (String v : values) {
            records.add(new ProducerRecord<>(topic, partition, null, b(v)));
        }
        sendAll(p, records);
    }

    /**
     * Commit, abort, commit. A read_committed consumer reads exactly the
     * committed values up to the end (6 records + 3 markers = 9); a
     * read_uncommitted one reads every data record. Runnel finalizes no
     * transaction.version >= 2, so kafka-clients 4.3 runs classic
     * transactions (explicit AddPartitionsToTxn, Produce <= v11).
     */
    private void txnCommitAbortReadCommitted() throws Exception {
        Map<String, FinalizedVersionRange> features =
                admin.describeFeatures().featureMetadata().get(TIMEOUT_MS, TimeUnit.MILLISECONDS).finalizedFeatures();
        FinalizedVersionRange tv = features.get("transaction.version");
        check(tv == null || tv.maxVersionLevel() < 2, "transaction.version finalized at " + tv);

        String t = topic("txn-basic");
        createTopic(t, 1, Map.of());
        try (KafkaProducer<byte[], byte[]> p = txnProducer(t)) {
            p.beginTransaction();
            sendTo(p, t, 0, "c1-0", "c1-1", "c1-2");
            p.commitTransaction();
            p.beginTransaction();
            sendTo(p, t, 0, "a-0", "a-1");
            p.abortTransaction();
            p.beginTransaction();
            sendTo(p, t, 0, "c2-0");
            p.commitTransaction();
        }
        checkEq(List.of("c1-0", "c1-1", "c1-2", "c2-0"), readAll(t, 0, "read_committed", 9), "read_committed");
        checkEq(List.of("c1-0", "c1-1", "c1-2", "a-0", "a-1", "c2-0"), readAll(t, 0, "read_uncommitted", 9),
                "read_uncommitted");
        // ListOffsets with the isolation level: read_committed latest is the LSO.
        TopicPartition tp = new TopicPartition(t, 0);
        ListOffsetsResult lo = admin.listOffsets(Map.of(tp, OffsetSpec.latest()),
                new org.apache.kafka.clients.admin.ListOffsetsOptions(IsolationLevel.READ_COMMITTED));
        checkEq(9L, lo.partitionResult(tp).get(TIMEOUT_MS, TimeUnit.MILLISECONDS).offset(), "LSO");
    }

    /** An open transaction holds read_committed readers (and ListOffsets) at its first offset. */
    private void txnOpenHoldsReadCommitted() throws Exception {
        String t = topic("txn-open");
        createTopic(t, 1, Map.of());
        TopicPartition tp = new TopicPartition(t, 0);
        try (KafkaProducer<byte[], byte[]> plain = producer(Map.of());
                KafkaProducer<byte[], byte[]> p = txnProducer(t)) {
            sendTo(plain, t, 0, "before");
            p.beginTransaction();
            sendTo(p, t, 0, "t-0", "t-1");
            sendTo(plain, t, 0, "after");
            checkEq(List.of("before"), readAll(t, 0, "read_committed", 1), "while open");
            for (IsolationLevel iso : List.of(IsolationLevel.READ_COMMITTED, IsolationLevel.READ_UNCOMMITTED)) {
                long off = admin.listOffsets(Map.of(tp, OffsetSpec.latest()),
                        new org.apache.kafka.clients.admin.ListOffsetsOptions(iso))
                        .partitionResult(tp).get(TIMEOUT_MS, TimeUnit.MILLISECONDS).offset();
                checkEq(iso == IsolationLevel.READ_COMMITTED ? 1L : 4L, off, "latest offset, " + iso);
            }
            p.commitTransaction();
        }
        checkEq(List.of("before", "t-0", "t-1", "after"), readAll(t, 0, "read_committed", 5), "after commit");
    }

    /**
     * Consume-transform-produce with sendOffsetsToTransaction(offsets,
     * consumer.groupMetadata()): a committed round moves the group's offsets
     * with the output, an aborted one moves neither.
     */
    private void txnSendOffsetsToTransaction() throws Exception {
        String in = topic("txn-in");
        String out = topic("txn-out");
        String g = group("txn");
        createTopic(in, 1, Map.of());
        createTopic(out, 1, Map.of());
        try (KafkaProducer<byte[], byte[]> plain = producer(Map.of())) {
            for (int i = 0; i < 15; i++) {
                sendTo(plain, in, 0, "in-" + i);
            }
        }
        TopicPartition src = new TopicPartition(in, 0);
        try (KafkaProducer<byte[], byte[]> p = txnProducer(topic("txn-ctp"))) {
            for (Object[] round : new Object[][] {{10, true}, {5, false}, {5, true}}) {
                int n = (Integer) round[0];
                boolean commit = (Boolean) round[1];
                Properties extra = new Properties();
                extra.put(ConsumerConfig.GROUP_ID_CONFIG, g);
                extra.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
                extra.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
                try (KafkaConsumer<byte[], byte[]> c = consumer(extra)) {
                    c.assign(List.of(src));
                    List<ConsumerRecord<byte[], byte[]>> got = readN(c, n);
                    c.seek(src, got.get(n - 1).offset() + 1);
                    p.beginTransaction();
                    for (ConsumerRecord<byte[], byte[]> r : got) {
                        p.send(new ProducerRecord<>(out, 0, null, b(s(r.value()).replace("in-", "out-"))));
                    }
                    p.sendOffsetsToTransaction(Map.of(src, new OffsetAndMetadata(c.position(src))),
                            c.groupMetadata());
                    // abortTransaction() drops batches not yet sent (the log
                    // then holds only the ABORT marker); flush so the aborted
                    // records are in the log and read_committed must skip them.
                    p.flush();
                    if (commit) {
                        p.commitTransaction();
                    } else {
                        p.abortTransaction();
                    }
                }
                Map<TopicPartition, OffsetAndMetadata> committed = admin.listConsumerGroupOffsets(g)
                        .partitionsToOffsetAndMetadata().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
                long want = commit ? (n == 10 ? 10 : 15) : 10;
                checkEq(want, committed.get(src).offset(), "group offset after a " + (commit ? "commit" : "abort"));
            }
        }
        List<String> want = new ArrayList<>();
        for (int i = 0; i < 15; i++) {
            want.add("out-" + i);
        }
        // 20 records (5 aborted) + 3 markers
        checkEq(want, readAll(out, 0, "read_committed", 23), "output");
    }

    /** A second producer with the same transactional.id fences the first. */
    private void txnFencing() throws Exception {
        String t = topic("txn-fenced");
        createTopic(t, 1, Map.of());
        KafkaProducer<byte[], byte[]> p1 = txnProducer(t);
        try {
            p1.beginTransaction();
            sendTo(p1, t, 0, "old-0", "old-1");
            try (KafkaProducer<byte[], byte[]> p2 = txnProducer(t)) {
                expectError(ProducerFencedException.class, p1::commitTransaction);
                p2.beginTransaction();
                sendTo(p2, t, 0, "new-0");
                p2.commitTransaction();
            }
        } finally {
            p1.close(Duration.ZERO);
        }
        // old-0 old-1, ABORT marker (p2's init aborted p1's transaction), new-0, COMMIT marker
        checkEq(List.of("new-0"), readAll(t, 0, "read_committed", 5), "read_committed");
    }

    /** Admin.fenceProducers (KIP-618: InitProducerId from the admin client) fences a live producer. */
    private void txnAdminFenceProducers() throws Exception {
        String t = topic("txn-adminfence");
        createTopic(t, 1, Map.of());
        KafkaProducer<byte[], byte[]> p = txnProducer(t);
        try {
            p.beginTransaction();
            sendTo(p, t, 0, "doomed");
            admin.fenceProducers(List.of(t)).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
            expectError(ProducerFencedException.class, p::commitTransaction);
        } finally {
            p.close(Duration.ZERO);
        }
        TransactionDescription d = admin.describeTransactions(List.of(t)).description(t)
                .get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        // The fencing InitProducerId aborts the open transaction; whether the
        // admin client's retry (after CONCURRENT_TRANSACTIONS) has bumped the
        // epoch again by now decides between the two.
        check(d.state() == TransactionState.COMPLETE_ABORT || d.state() == TransactionState.EMPTY,
                "state after fencing: " + d.state());
        checkEq(List.of(), readAll(t, 0, "read_committed", 2), "read_committed");
    }

    /**
     * transaction.timeout.ms over transaction.max.timeout.ms (15 min by
     * default): INVALID_TRANSACTION_TIMEOUT. kafka-clients 4.3 has no case
     * for that code in its InitProducerId handler and raises a plain
     * KafkaException "Unexpected error in InitProducerIdResponse; " + the
     * error's message (against Kafka too), so the message identifies it.
     */
    private void txnInvalidTimeout() throws Exception {
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of(
                ProducerConfig.TRANSACTIONAL_ID_CONFIG, topic("txn-timeout"),
                ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 900_001))) {
            try {
                p.initTransactions();
                throw new AssertionError("initTransactions succeeded with transaction.timeout.ms 900001");
            } catch (KafkaException e) {
                check(String.valueOf(e.getMessage()).contains(
                        org.apache.kafka.common.protocol.Errors.INVALID_TRANSACTION_TIMEOUT.message()),
                        "expected INVALID_TRANSACTION_TIMEOUT, got " + e);
            }
        }
    }

    /**
     * Admin.listTransactions / describeTransactions / describeProducers of an
     * open and then committed transaction; an unknown transactional id is
     * TransactionalIdNotFoundException.
     */
    private void adminTransactions() throws Exception {
        String t = topic("txn-admin");
        createTopic(t, 2, Map.of());
        TopicPartition tp0 = new TopicPartition(t, 0);
        TopicPartition tp1 = new TopicPartition(t, 1);
        try (KafkaProducer<byte[], byte[]> p = txnProducer(t)) {
            p.beginTransaction();
            sendTo(p, t, 0, "x-0", "x-1");
            sendTo(p, t, 1, "y-0");

            TransactionDescription d = admin.describeTransactions(List.of(t)).description(t)
                    .get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
            checkEq(TransactionState.ONGOING, d.state(), "state");
            checkEq(Set.of(tp0, tp1), d.topicPartitions(), "partitions");
            checkEq(60_000L, d.transactionTimeoutMs(), "timeout");
            check(d.transactionStartTimeMs().isPresent(), "start time");
            int node = admin.describeCluster().nodes().get(TIMEOUT_MS, TimeUnit.MILLISECONDS).iterator().next().id();
            checkEq(node, d.coordinatorId(), "coordinator");
            long pid = d.producerId();
            int epoch = d.producerEpoch();

            Collection<TransactionListing> all = admin.listTransactions().all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
            check(all.contains(new TransactionListing(t, pid, TransactionState.ONGOING)), "listed: " + all);
            Collection<TransactionListing> ongoing = admin.listTransactions(
                    new ListTransactionsOptions().filterStates(List.of(TransactionState.ONGOING))
                            .filterProducerIds(List.of(pid)))
                    .all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
            checkEq(List.of(new TransactionListing(t, pid, TransactionState.ONGOING)), List.copyOf(ongoing),
                    "filtered");
            Collection<TransactionListing> longRunning = admin.listTransactions(
                    new ListTransactionsOptions().filterOnDuration(3_600_000L))
                    .all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
            check(longRunning.stream().noneMatch(l -> l.transactionalId().equals(t)),
                    "open for less than an hour: " + longRunning);

            List<ProducerState> ps = admin.describeProducers(List.of(tp0)).partitionResult(tp0)
                    .get(TIMEOUT_MS, TimeUnit.MILLISECONDS).activeProducers();
            checkEq(1, ps.size(), "producers of " + tp0 + ": " + ps);
            ProducerState st = ps.get(0);
            checkEq(pid, st.producerId(), "producer id");
            checkEq(epoch, st.producerEpoch(), "producer epoch");
            checkEq(1, st.lastSequence(), "last sequence");
            checkEq(java.util.OptionalLong.of(0L), st.currentTransactionStartOffset(), "open transaction");

            p.commitTransaction();
            long deadline = System.currentTimeMillis() + TIMEOUT_MS;
            while (true) {
                d = admin.describeTransactions(List.of(t)).description(t).get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
                if (d.state() == TransactionState.COMPLETE_COMMIT || System.currentTimeMillis() > deadline) {
                    break;
                }
                sleepMs(50);
            }
            checkEq(TransactionState.COMPLETE_COMMIT, d.state(), "state after commit");
            checkEq(Set.of(), d.topicPartitions(), "partitions after commit");
            st = admin.describeProducers(List.of(tp0)).partitionResult(tp0)
                    .get(TIMEOUT_MS, TimeUnit.MILLISECONDS).activeProducers().get(0);
            checkEq(java.util.OptionalLong.empty(), st.currentTransactionStartOffset(), "no open transaction");
        }
        expectError(TransactionalIdNotFoundException.class, () -> admin.describeTransactions(List.of(topic("txn-none")))
                .all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS));
    }

    /**
     * Admin.abortTransaction (WriteTxnMarkers to the partition leader, for a
     * hanging transaction): the partition's open transaction is aborted there,
     * so read_committed readers move past it.
     */
    private void adminAbortTransaction() throws Exception {
        String t = topic("txn-hanging");
        createTopic(t, 1, Map.of());
        TopicPartition tp = new TopicPartition(t, 0);
        KafkaProducer<byte[], byte[]> p = txnProducer(t);
        try {
            p.beginTransaction();
            sendTo(p, t, 0, "hanging");
            checkEq(List.of(), readAll(t, 0, "read_committed", 0), "while open");
            ProducerState st = admin.describeProducers(List.of(tp)).partitionResult(tp)
                    .get(TIMEOUT_MS, TimeUnit.MILLISECONDS).activeProducers().get(0);
            admin.abortTransaction(new AbortTransactionSpec(tp, st.producerId(), (short) st.producerEpoch(),
                    st.coordinatorEpoch().orElse(0))).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
            checkEq(List.of(), readAll(t, 0, "read_committed", 2), "after the abort marker");
        } finally {
            p.close(Duration.ZERO);
        }
    }

    // ---------------------------------------------------------------- operations (issue 6)

    private int nodeId() throws Exception {
        return admin.describeCluster().nodes().get(TIMEOUT_MS, TimeUnit.MILLISECONDS).iterator().next().id();
    }

    private void alter(ConfigResource r, AlterConfigOp... ops) throws Exception {
        admin.incrementalAlterConfigs(Map.of(r, List.of(ops))).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
    }

    private static AlterConfigOp op(String key, String value, AlterConfigOp.OpType type) {
        return new AlterConfigOp(new ConfigEntry(key, value), type);
    }

    /** Expects `call` to fail with `type` and a message that names `mention`. */
    private static void expectErrorMentioning(Class<? extends Throwable> type, String mention, Scenario call)
            throws Exception {
        try {
            call.run();
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            check(type.isInstance(c), "expected " + type.getSimpleName() + ", got " + c);
            check(String.valueOf(c.getMessage()).contains(mention),
                    "error message does not mention " + mention + ": " + c.getMessage());
            return;
        }
        throw new AssertionError("expected " + type.getSimpleName() + ", got success");
    }

    /** SET, APPEND, SUBTRACT, DELETE and validateOnly on a topic, read back with describeConfigs. */
    private void adminIncrementalAlterConfigsTopic() throws Exception {
        String t = topic("alter-configs");
        createTopic(t, 1, Map.of());
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, t);
        String defaultRetention = describeConfig(r).get("retention.ms").value();

        alter(r, op("retention.ms", "123456", AlterConfigOp.OpType.SET),
                op("max.message.bytes", "50000", AlterConfigOp.OpType.SET));
        Config cfg = describeConfig(r);
        checkEq("123456", cfg.get("retention.ms").value(), "retention.ms after SET");
        checkEq(ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, cfg.get("retention.ms").source(), "retention.ms source");
        checkEq("50000", cfg.get("max.message.bytes").value(), "max.message.bytes after SET");

        // cleanup.policy is a list: APPEND adds an element, SUBTRACT removes one.
        alter(r, op("cleanup.policy", "compact", AlterConfigOp.OpType.APPEND));
        checkEq("delete,compact", describeConfig(r).get("cleanup.policy").value(), "cleanup.policy after APPEND");
        alter(r, op("cleanup.policy", "delete", AlterConfigOp.OpType.SUBTRACT));
        checkEq("compact", describeConfig(r).get("cleanup.policy").value(), "cleanup.policy after SUBTRACT");

        // DELETE returns a key to its default; the other override stays.
        alter(r, op("retention.ms", null, AlterConfigOp.OpType.DELETE));
        cfg = describeConfig(r);
        checkEq(defaultRetention, cfg.get("retention.ms").value(), "retention.ms after DELETE");
        checkEq(ConfigEntry.ConfigSource.DEFAULT_CONFIG, cfg.get("retention.ms").source(), "source after DELETE");
        checkEq("50000", cfg.get("max.message.bytes").value(), "max.message.bytes untouched by DELETE");

        // validateOnly checks and changes nothing; it still reports errors.
        admin.incrementalAlterConfigs(Map.of(r, List.of(op("retention.ms", "999", AlterConfigOp.OpType.SET))),
                new AlterConfigsOptions().validateOnly(true)).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        checkEq(defaultRetention, describeConfig(r).get("retention.ms").value(), "retention.ms after validateOnly");
        expectError(InvalidConfigurationException.class, () -> admin.incrementalAlterConfigs(
                Map.of(r, List.of(op("retention.ms", "not-a-number", AlterConfigOp.OpType.SET))),
                new AlterConfigsOptions().validateOnly(true)).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS));
    }

    /** Per-resource errors: unknown key, bad value, APPEND to a non-list key, unknown topic. */
    private void adminIncrementalAlterConfigsErrors() throws Exception {
        String t = topic("alter-errors");
        createTopic(t, 1, Map.of());
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, t);
        expectErrorMentioning(InvalidConfigurationException.class, "no.such.config",
                () -> alter(r, op("no.such.config", "1", AlterConfigOp.OpType.SET)));
        expectError(InvalidConfigurationException.class,
                () -> alter(r, op("retention.ms", "soon", AlterConfigOp.OpType.SET)));
        expectError(InvalidConfigurationException.class,
                () -> alter(r, op("cleanup.policy", "sometimes", AlterConfigOp.OpType.SET)));
        expectError(InvalidConfigurationException.class,
                () -> alter(r, op("retention.ms", "5", AlterConfigOp.OpType.APPEND)));
        expectError(UnknownTopicOrPartitionException.class, () -> alter(
                new ConfigResource(ConfigResource.Type.TOPIC, t + "-missing"),
                op("retention.ms", "1000", AlterConfigOp.OpType.SET)));
        // One bad resource does not fail the other in the same request.
        ConfigResource missing = new ConfigResource(ConfigResource.Type.TOPIC, t + "-missing");
        Map<ConfigResource, org.apache.kafka.common.KafkaFuture<Void>> rs = admin.incrementalAlterConfigs(Map.of(
                r, List.of(op("retention.ms", "7777", AlterConfigOp.OpType.SET)),
                missing, List.of(op("retention.ms", "7777", AlterConfigOp.OpType.SET)))).values();
        rs.get(r).get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        expectError(UnknownTopicOrPartitionException.class, () -> rs.get(missing).get(TIMEOUT_MS, TimeUnit.MILLISECONDS));
        checkEq("7777", describeConfig(r).get("retention.ms").value(), "retention.ms set next to a failing resource");
    }

    /**
     * A dynamic broker config: per broker and cluster-wide default, seen by
     * describeConfigs on the broker and inherited by a topic without an
     * override; read-only keys are refused. (Another broker id cannot be
     * tried: the client sends a BROKER resource to that node, which does
     * not exist, and times out.)
     */
    private void adminIncrementalAlterConfigsBroker() throws Exception {
        String id = String.valueOf(nodeId());
        ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER, id);
        ConfigResource cluster = new ConfigResource(ConfigResource.Type.BROKER, "");
        String t = topic("broker-dynamic");
        createTopic(t, 1, Map.of());
        ConfigResource tr = new ConfigResource(ConfigResource.Type.TOPIC, t);
        try {
            alter(cluster, op("log.retention.ms", "7200000", AlterConfigOp.OpType.SET));
            ConfigEntry e = describeConfig(broker).get("log.retention.ms");
            checkEq("7200000", e.value(), "log.retention.ms after a cluster-default SET");
            checkEq(ConfigEntry.ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG, e.source(), "source (cluster default)");

            alter(broker, op("log.retention.ms", "3600000", AlterConfigOp.OpType.SET));
            e = describeConfig(broker).get("log.retention.ms");
            checkEq("3600000", e.value(), "log.retention.ms after a per-broker SET");
            checkEq(ConfigEntry.ConfigSource.DYNAMIC_BROKER_CONFIG, e.source(), "source (per broker)");
            ConfigEntry te = describeConfig(tr).get("retention.ms");
            checkEq("3600000", te.value(), "topic retention.ms inherits the dynamic broker value");
            checkEq(ConfigEntry.ConfigSource.DYNAMIC_BROKER_CONFIG, te.source(), "topic retention.ms source");

            alter(broker, op("log.retention.ms", null, AlterConfigOp.OpType.DELETE));
            checkEq("7200000", describeConfig(broker).get("log.retention.ms").value(),
                    "per-broker DELETE falls back to the cluster default");
        } finally {
            alter(broker, op("log.retention.ms", null, AlterConfigOp.OpType.DELETE));
            alter(cluster, op("log.retention.ms", null, AlterConfigOp.OpType.DELETE));
        }
        ConfigEntry after = describeConfig(broker).get("log.retention.ms");
        check(after == null || after.source() != ConfigEntry.ConfigSource.DYNAMIC_BROKER_CONFIG
                && after.source() != ConfigEntry.ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG,
                "log.retention.ms still dynamic after DELETE: " + after);
        // Kafka answers INVALID_REQUEST here ("Cannot update these configs
        // dynamically", KAFKA-13609); INVALID_CONFIG is accepted too. Either
        // way the error names the key.
        try {
            alter(broker, op("log.dirs", "/tmp/elsewhere", AlterConfigOp.OpType.SET));
            throw new AssertionError("log.dirs was altered dynamically");
        } catch (ExecutionException ex) {
            Throwable c = ex.getCause();
            check(c instanceof InvalidRequestException || c instanceof InvalidConfigurationException,
                    "read-only key: expected InvalidRequestException or InvalidConfigurationException, got " + c);
            check(String.valueOf(c.getMessage()).contains("log.dirs"), "error does not name log.dirs: " + c);
        }
    }

    private int partitionCount(String t) throws Exception {
        return admin.describeTopics(List.of(t)).allTopicNames().get(TIMEOUT_MS, TimeUnit.MILLISECONDS).get(t)
                .partitions().size();
    }

    private void adminCreatePartitions() throws Exception {
        String t = topic("create-partitions");
        createTopic(t, 2, Map.of());
        admin.createPartitions(Map.of(t, NewPartitions.increaseTo(4))).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        checkEq(4, partitionCount(t), "partitions after increaseTo(4)");
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of())) {
            checkEq(0L, p.send(new ProducerRecord<>(t, 3, null, b("new-partition"))).get(TIMEOUT_MS,
                    TimeUnit.MILLISECONDS).offset(), "offset in the new partition 3");
        }
        checkEq("new-partition", s(readFromBeginning(t, 3, 1).get(0).value()), "record read from partition 3");
        expectError(InvalidPartitionsException.class, () -> admin.createPartitions(Map.of(t,
                NewPartitions.increaseTo(3))).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS));
        expectError(InvalidPartitionsException.class, () -> admin.createPartitions(Map.of(t,
                NewPartitions.increaseTo(4))).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS));
        admin.createPartitions(Map.of(t, NewPartitions.increaseTo(8)), new CreatePartitionsOptions().validateOnly(true))
                .all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        checkEq(4, partitionCount(t), "partitions after a validateOnly increaseTo(8)");
        expectError(UnknownTopicOrPartitionException.class, () -> admin.createPartitions(Map.of(t + "-missing",
                NewPartitions.increaseTo(3))).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS));
        int node = nodeId();
        expectError(InvalidReplicaAssignmentException.class, () -> admin.createPartitions(Map.of(t,
                NewPartitions.increaseTo(5, List.of(List.of(node + 100))))).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS));
        admin.createPartitions(Map.of(t, NewPartitions.increaseTo(5, List.of(List.of(node))))).all()
                .get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        checkEq(5, partitionCount(t), "partitions after increaseTo(5) with an explicit assignment");
    }

    /** describeCluster (the DescribeCluster API when the broker advertises it). */
    private void adminDescribeClusterApi() throws Exception {
        DescribeClusterResult r = admin.describeCluster(
                new org.apache.kafka.clients.admin.DescribeClusterOptions().includeAuthorizedOperations(true));
        Collection<Node> nodes = r.nodes().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        checkEq(1, nodes.size(), "nodes");
        Node n = nodes.iterator().next();
        String[] hp = bootstrap.split(":");
        checkEq(hp[0], n.host(), "node host");
        checkEq(Integer.parseInt(hp[1]), n.port(), "node port");
        checkEq(n, r.controller().get(TIMEOUT_MS, TimeUnit.MILLISECONDS), "controller");
        String id = r.clusterId().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        check(id != null && !id.isEmpty(), "cluster id");
        checkEq(id, admin.describeCluster().clusterId().get(TIMEOUT_MS, TimeUnit.MILLISECONDS), "cluster id again");
        // Without an authorizer Kafka grants every operation a cluster has.
        Set<org.apache.kafka.common.acl.AclOperation> ops = r.authorizedOperations().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        checkEq(Set.of(AclOperation.CREATE, AclOperation.CLUSTER_ACTION, AclOperation.DESCRIBE_CONFIGS,
                AclOperation.ALTER_CONFIGS, AclOperation.IDEMPOTENT_WRITE, AclOperation.ALTER, AclOperation.DESCRIBE),
                ops, "cluster authorized operations");
        // Not asked for: left out.
        checkEq(null, admin.describeCluster().authorizedOperations().get(TIMEOUT_MS, TimeUnit.MILLISECONDS),
                "authorized operations when not requested");
    }

    private void adminDescribeLogDirs() throws Exception {
        String t = topic("log-dirs");
        createTopic(t, 2, Map.of());
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int i = 0; i < 100; i++) {
            records.add(new ProducerRecord<>(t, 0, null, b("log-dir-" + i + "-" + "x".repeat(100))));
        }
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of())) {
            sendAll(p, records);
        }
        int node = nodeId();
        Map<Integer, Map<String, LogDirDescription>> all = admin.describeLogDirs(List.of(node)).allDescriptions()
                .get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        Map<String, LogDirDescription> dirs = all.get(node);
        check(dirs != null && !dirs.isEmpty(), "no log dirs for node " + node + ": " + all);
        ReplicaInfo p0 = null;
        ReplicaInfo p1 = null;
        for (Map.Entry<String, LogDirDescription> d : dirs.entrySet()) {
            checkEq(null, d.getValue().error(), "error of " + d.getKey());
            check(d.getValue().totalBytes().orElse(0) > 0, "totalBytes of " + d.getKey());
            check(d.getValue().usableBytes().isPresent(), "usableBytes of " + d.getKey());
            ReplicaInfo a = d.getValue().replicaInfos().get(new TopicPartition(t, 0));
            ReplicaInfo c = d.getValue().replicaInfos().get(new TopicPartition(t, 1));
            p0 = a != null ? a : p0;
            p1 = c != null ? c : p1;
        }
        check(p0 != null && p1 != null, "partitions of " + t + " missing from describeLogDirs");
        // 100 records of ~120 bytes: at least the payload bytes are on disk.
        check(p0.size() >= 100 * 100, "size of partition 0: " + p0.size());
        checkEq(0L, p1.size(), "size of the empty partition 1");
        check(!p0.isFuture(), "partition 0 is not a future replica");
        // describeReplicaLogDirs is answered from DescribeLogDirs too.
        org.apache.kafka.common.TopicPartitionReplica replica = new org.apache.kafka.common.TopicPartitionReplica(t, 0, node);
        String dir = admin.describeReplicaLogDirs(List.of(replica)).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS)
                .get(replica).getCurrentReplicaLogDir();
        check(dir != null && dirs.containsKey(dir), "replica log dir " + dir + " not among " + dirs.keySet());
    }

    /** describeTopics pages through DescribeTopicPartitions with a small per-response partition limit. */
    private void adminDescribeTopicsPaged() throws Exception {
        String a = topic("paged-a");
        String c = topic("paged-b");
        createTopic(a, 5, Map.of());
        createTopic(c, 3, Map.of());
        Map<String, TopicDescription> d = admin.describeTopics(List.of(a, c),
                new DescribeTopicsOptions().partitionSizeLimitPerResponse(2)).allTopicNames()
                .get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        checkEq(5, d.get(a).partitions().size(), "partitions of " + a);
        checkEq(3, d.get(c).partitions().size(), "partitions of " + c);
        for (TopicDescription td : d.values()) {
            for (int i = 0; i < td.partitions().size(); i++) {
                TopicPartitionInfo p = td.partitions().get(i);
                checkEq(i, p.partition(), "partition index in " + td.name());
                check(p.leader() != null && p.leader().id() >= 0, "leader of " + td.name() + "-" + i);
                checkEq(List.of(p.leader()), p.isr(), "isr of " + td.name() + "-" + i);
            }
            check(td.topicId() != null && !td.topicId().equals(Uuid.ZERO_UUID), "topic id of " + td.name());
        }
        expectError(UnknownTopicOrPartitionException.class, () -> admin.describeTopics(List.of(a + "-missing"),
                new DescribeTopicsOptions().partitionSizeLimitPerResponse(2)).allTopicNames()
                .get(TIMEOUT_MS, TimeUnit.MILLISECONDS));
    }

    /** On one node every leader is already the preferred one: ELECTION_NOT_NEEDED per partition. */
    private void adminElectLeaders() throws Exception {
        String t = topic("elect");
        createTopic(t, 2, Map.of());
        TopicPartition p0 = new TopicPartition(t, 0);
        TopicPartition p1 = new TopicPartition(t, 1);
        TopicPartition missing = new TopicPartition(t, 7);
        for (ElectionType type : List.of(ElectionType.PREFERRED, ElectionType.UNCLEAN)) {
            Map<TopicPartition, Optional<Throwable>> r = admin.electLeaders(type, Set.of(p0, p1, missing))
                    .partitions().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
            checkEq(Set.of(p0, p1, missing), r.keySet(), type + " result partitions");
            for (TopicPartition tp : List.of(p0, p1)) {
                check(r.get(tp).isPresent() && r.get(tp).get() instanceof ElectionNotNeededException,
                        type + " " + tp + ": " + r.get(tp));
            }
            check(r.get(missing).isPresent() && r.get(missing).get() instanceof UnknownTopicOrPartitionException,
                    type + " " + missing + ": " + r.get(missing));
        }
        expectError(ElectionNotNeededException.class, () -> admin.electLeaders(ElectionType.PREFERRED, Set.of(p0))
                .all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS));
    }

    private void adminPartitionReassignments() throws Exception {
        String t = topic("reassign");
        createTopic(t, 2, Map.of());
        TopicPartition tp = new TopicPartition(t, 0);
        Map<TopicPartition, PartitionReassignment> none = admin.listPartitionReassignments()
                .reassignments().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        checkEq(Map.of(), none, "reassignments in progress");
        checkEq(Map.of(), admin.listPartitionReassignments(Set.of(tp)).reassignments()
                .get(TIMEOUT_MS, TimeUnit.MILLISECONDS), "reassignments of " + tp);
        int node = nodeId();
        expectError(NoReassignmentInProgressException.class, () -> admin.alterPartitionReassignments(
                Map.of(tp, Optional.empty())).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS));
        expectError(InvalidReplicaAssignmentException.class, () -> admin.alterPartitionReassignments(
                Map.of(tp, Optional.of(new NewPartitionReassignment(List.of(node + 100))))).all()
                .get(TIMEOUT_MS, TimeUnit.MILLISECONDS));
        // Moving a replica to where it already is completes at once.
        admin.alterPartitionReassignments(Map.of(tp, Optional.of(new NewPartitionReassignment(List.of(node)))))
                .all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        checkEq(Map.of(), admin.listPartitionReassignments().reassignments().get(TIMEOUT_MS, TimeUnit.MILLISECONDS),
                "reassignments after a no-op reassignment");
        checkEq(List.of(node), admin.describeTopics(List.of(t)).allTopicNames().get().get(t).partitions().get(0)
                .replicas().stream().map(Node::id).toList(), "replicas after a no-op reassignment");
    }

    private Map<ClientQuotaEntity, Map<String, Double>> quotas(ClientQuotaFilter f) throws Exception {
        return admin.describeClientQuotas(f).entities().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
    }

    /** Quotas are stored and described (Runnel does not enforce them). */
    private void adminClientQuotas() throws Exception {
        String user = "java-user-" + RUN_ID;
        ClientQuotaEntity u = new ClientQuotaEntity(Map.of(ClientQuotaEntity.USER, user));
        ClientQuotaEntity uc = new ClientQuotaEntity(Map.of(ClientQuotaEntity.USER, user,
                ClientQuotaEntity.CLIENT_ID, "app"));
        admin.alterClientQuotas(List.of(
                new ClientQuotaAlteration(u, List.of(new ClientQuotaAlteration.Op("producer_byte_rate", 1024.0),
                        new ClientQuotaAlteration.Op("consumer_byte_rate", 2048.0))),
                new ClientQuotaAlteration(uc, List.of(new ClientQuotaAlteration.Op("request_percentage", 25.0)))))
                .all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);

        ClientQuotaFilter onlyUser = ClientQuotaFilter.containsOnly(
                List.of(ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.USER, user)));
        checkEq(Map.of(u, Map.of("producer_byte_rate", 1024.0, "consumer_byte_rate", 2048.0)), quotas(onlyUser),
                "quotas of the user entity (containsOnly)");
        ClientQuotaFilter userAny = ClientQuotaFilter.contains(
                List.of(ClientQuotaFilterComponent.ofEntity(ClientQuotaEntity.USER, user)));
        checkEq(Map.of(u, Map.of("producer_byte_rate", 1024.0, "consumer_byte_rate", 2048.0),
                uc, Map.of("request_percentage", 25.0)), quotas(userAny), "quotas of the user and user+client");
        check(quotas(ClientQuotaFilter.all()).keySet().containsAll(List.of(u, uc)), "ClientQuotaFilter.all()");

        // validateOnly stores nothing; a null value removes one key.
        admin.alterClientQuotas(List.of(new ClientQuotaAlteration(u, List.of(
                new ClientQuotaAlteration.Op("producer_byte_rate", 1.0)))),
                new AlterClientQuotasOptions().validateOnly(true)).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        admin.alterClientQuotas(List.of(new ClientQuotaAlteration(u, List.of(
                new ClientQuotaAlteration.Op("consumer_byte_rate", null))))).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        checkEq(Map.of(u, Map.of("producer_byte_rate", 1024.0)), quotas(onlyUser), "after validateOnly and a removal");

        expectError(InvalidRequestException.class, () -> admin.alterClientQuotas(List.of(new ClientQuotaAlteration(u,
                List.of(new ClientQuotaAlteration.Op("no_such_rate", 5.0))))).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS));

        // Removing every key removes the entity.
        admin.alterClientQuotas(List.of(
                new ClientQuotaAlteration(u, List.of(new ClientQuotaAlteration.Op("producer_byte_rate", null))),
                new ClientQuotaAlteration(uc, List.of(new ClientQuotaAlteration.Op("request_percentage", null)))))
                .all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        checkEq(Map.of(), quotas(userAny), "quotas after removing every key");
    }

    /** max.message.bytes lowered with incrementalAlterConfigs rejects the next large send; DELETE restores it. */
    private void configMaxMessageBytesTakesEffect() throws Exception {
        String t = topic("max-message-bytes");
        createTopic(t, 1, Map.of());
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, t);
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of())) {
            checkEq(0L, p.send(new ProducerRecord<>(t, new byte[20_000])).get(TIMEOUT_MS, TimeUnit.MILLISECONDS)
                    .offset(), "20 kB record before the change");
            alter(r, op("max.message.bytes", "10000", AlterConfigOp.OpType.SET));
            expectError(RecordTooLargeException.class,
                    () -> p.send(new ProducerRecord<>(t, new byte[20_000])).get(TIMEOUT_MS, TimeUnit.MILLISECONDS));
            checkEq(1L, p.send(new ProducerRecord<>(t, new byte[100])).get(TIMEOUT_MS, TimeUnit.MILLISECONDS)
                    .offset(), "small record after the change");
            alter(r, op("max.message.bytes", null, AlterConfigOp.OpType.DELETE));
            checkEq(2L, p.send(new ProducerRecord<>(t, new byte[20_000])).get(TIMEOUT_MS, TimeUnit.MILLISECONDS)
                    .offset(), "20 kB record after DELETE");
        }
    }

    /**
     * message.timestamp.before/after.max.ms (KIP-937): a CreateTime too far in
     * the past or the future is INVALID_TIMESTAMP (InvalidTimestampException);
     * the producer goes on working, and lifting the bound takes effect.
     */
    private void configTimestampBounds() throws Exception {
        String t = topic("timestamp-bounds");
        createTopic(t, 1, Map.of("message.timestamp.before.max.ms", "3600000",
                "message.timestamp.after.max.ms", "3600000"));
        long now = System.currentTimeMillis();
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of())) {
            expectError(org.apache.kafka.common.errors.InvalidTimestampException.class, () -> p.send(
                    new ProducerRecord<>(t, 0, now - 2 * 3600_000L, null, b("old"))).get(TIMEOUT_MS, TimeUnit.MILLISECONDS));
            expectError(org.apache.kafka.common.errors.InvalidTimestampException.class, () -> p.send(
                    new ProducerRecord<>(t, 0, now + 2 * 3600_000L, null, b("future"))).get(TIMEOUT_MS, TimeUnit.MILLISECONDS));
            checkEq(0L, p.send(new ProducerRecord<>(t, 0, now - 60_000L, null, b("recent"))).get(TIMEOUT_MS,
                    TimeUnit.MILLISECONDS).offset(), "offset of a record within the bounds");
            alter(new ConfigResource(ConfigResource.Type.TOPIC, t),
                    op("message.timestamp.before.max.ms", null, AlterConfigOp.OpType.DELETE));
            checkEq(1L, p.send(new ProducerRecord<>(t, 0, now - 2 * 3600_000L, null, b("old again"))).get(TIMEOUT_MS,
                    TimeUnit.MILLISECONDS).offset(), "old record after the bound is deleted");
        }
    }

    /**
     * A compacted topic refuses keyless records (INVALID_RECORD with KIP-467
     * record errors): the keyless record fails with InvalidRecordException,
     * its keyed batch mates with a plain KafkaException, and the producer
     * goes on working.
     */
    private void compactedKeylessRejected() throws Exception {
        String t = topic("compact-keyless");
        createTopic(t, 1, Map.of("cleanup.policy", "compact"));
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of(ProducerConfig.LINGER_MS_CONFIG, 200))) {
            expectError(InvalidRecordException.class,
                    () -> p.send(new ProducerRecord<>(t, 0, null, b("no key"))).get(TIMEOUT_MS, TimeUnit.MILLISECONDS));
            // One batch: keyed, keyless, keyed.
            Future<RecordMetadata> a = p.send(new ProducerRecord<>(t, 0, b("k1"), b("v1")));
            Future<RecordMetadata> keyless = p.send(new ProducerRecord<>(t, 0, null, b("v2")));
            Future<RecordMetadata> c = p.send(new ProducerRecord<>(t, 0, b("k3"), b("v3")));
            p.flush();
            expectError(InvalidRecordException.class, () -> keyless.get(TIMEOUT_MS, TimeUnit.MILLISECONDS));
            for (Future<RecordMetadata> f : List.of(a, c)) {
                try {
                    f.get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
                    throw new AssertionError("a keyed record of the rejected batch was appended");
                } catch (ExecutionException e) {
                    check(e.getCause() instanceof KafkaException && !(e.getCause() instanceof InvalidRecordException),
                            "keyed batch mate: " + e.getCause());
                }
            }
            checkEq(0L, p.send(new ProducerRecord<>(t, 0, b("k"), b("keyed"))).get(TIMEOUT_MS, TimeUnit.MILLISECONDS)
                    .offset(), "offset of the first keyed record (nothing of the rejected batches was appended)");
        }
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, t);
        // Back to delete: keyless records are accepted again.
        alter(r, op("cleanup.policy", "delete", AlterConfigOp.OpType.SET));
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of())) {
            checkEq(1L, p.send(new ProducerRecord<>(t, 0, null, b("no key"))).get(TIMEOUT_MS, TimeUnit.MILLISECONDS)
                    .offset(), "keyless record after cleanup.policy=delete");
        }
    }

    /**
     * Compaction keeps the latest value per key: 10 keys x 20 rounds, one
     * batch per round, 1 kB segments, then unique-key filler records so the
     * last round leaves the active segment. Once the cleaner has run, each
     * key appears once, with its last value, at the offset it was written at;
     * a tombstone (within delete.retention.ms) stays; the filler is untouched.
     */
    private void compactedLatestValues() throws Exception {
        String t = topic("compact-latest");
        createTopic(t, 1, Map.of("cleanup.policy", "compact", "segment.bytes", "1024",
                "min.cleanable.dirty.ratio", "0.01"));
        TopicPartition tp = new TopicPartition(t, 0);
        Map<String, Long> lastOffset = new HashMap<>();
        Map<String, String> lastValue = new HashMap<>();
        List<String> fillerKeys = new ArrayList<>();
        int produced = 0;
        try (KafkaProducer<byte[], byte[]> p = producer(Map.of(ProducerConfig.LINGER_MS_CONFIG, 5))) {
            for (int round = 0; round < 20; round++) {
                List<ProducerRecord<byte[], byte[]>> batch = new ArrayList<>();
                for (int k = 0; k < 10; k++) {
                    boolean tombstone = k == 9 && round == 19;
                    batch.add(new ProducerRecord<>(t, 0, b("key-" + k), tombstone ? null : b("v-" + k + "-" + round)));
                }
                List<RecordMetadata> md = sendAll(p, batch);
                for (int k = 0; k < 10; k++) {
                    lastOffset.put("key-" + k, md.get(k).offset());
                    lastValue.put("key-" + k, s(batch.get(k).value()));
                }
                produced += batch.size();
            }
            for (int i = 0; i < 4; i++) {
                List<ProducerRecord<byte[], byte[]>> batch = new ArrayList<>();
                for (int j = 0; j < 5; j++) {
                    String k = "filler-" + i + "-" + j;
                    fillerKeys.add(k);
                    batch.add(new ProducerRecord<>(t, 0, b(k), b("f".repeat(100))));
                }
                sendAll(p, batch);
                produced += batch.size();
            }
        }
        long end = produced;
        long deadline = System.currentTimeMillis() + 60_000;
        List<ConsumerRecord<byte[], byte[]>> got = List.of();
        Map<String, Integer> counts = new HashMap<>();
        while (System.currentTimeMillis() < deadline) {
            got = readUntil(tp, end);
            counts.clear();
            for (ConsumerRecord<byte[], byte[]> r : got) {
                counts.merge(s(r.key()), 1, Integer::sum);
            }
            boolean clean = true;
            for (int k = 0; k < 10; k++) {
                clean &= counts.getOrDefault("key-" + k, 0) == 1;
            }
            if (clean) {
                break;
            }
            sleepMs(1000);
        }
        for (int k = 0; k < 10; k++) {
            checkEq(1, counts.getOrDefault("key-" + k, 0), "records of key-" + k + " after 60 s (read " + got.size()
                    + " of " + produced + ")");
        }
        long prev = -1;
        for (ConsumerRecord<byte[], byte[]> r : got) {
            check(r.offset() > prev, "offsets not increasing at " + r.offset());
            prev = r.offset();
            String k = s(r.key());
            if (k.startsWith("key-")) {
                checkEq(lastOffset.get(k), r.offset(), "offset of " + k);
                checkEq(lastValue.get(k), s(r.value()), "value of " + k);
            }
        }
        for (String f : fillerKeys) {
            checkEq(1, counts.getOrDefault(f, 0), "records of " + f);
        }
        checkEq(10 + fillerKeys.size(), got.size(), "records after compaction");
        checkEq(end, listOffset(tp, OffsetSpec.latest()).offset(), "log end offset is unchanged");
    }

    /** Every record of the partition below `end` (a compacted log has offset gaps). */
    private List<ConsumerRecord<byte[], byte[]>> readUntil(TopicPartition tp, long end) {
        List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> c = consumer()) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            long deadline = System.currentTimeMillis() + TIMEOUT_MS;
            while (c.position(tp) < end && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
                    out.add(r);
                }
            }
            check(c.position(tp) >= end, "position " + c.position(tp) + " never reached " + end);
        }
        return out;
    }
}
