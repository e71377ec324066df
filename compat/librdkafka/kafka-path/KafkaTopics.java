// The subset of Kafka's kafka-topics.sh (TopicCommand) that librdkafka's
// test suite uses, on the same Java Admin client: --create (with
// --partitions, --replication-factor, --config), --alter --partitions and
// --delete. See bin/kafka-topics.sh.

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;

public final class KafkaTopics {
    private KafkaTopics() {
    }

    private static void usage(String why) {
        System.err.println("kafka-topics.sh (Runnel compat stand-in): " + why);
        System.err.println("supported: --bootstrap-server B (--create --topic T --partitions N "
                + "--replication-factor R [--config k=v]... | --alter --topic T --partitions N | --delete --topic T)");
        System.exit(1);
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = null;
        String action = null;
        String topic = null;
        Integer partitions = null;
        Short replicationFactor = null;
        Map<String, String> configs = new LinkedHashMap<>();
        List<String> rest = new ArrayList<>(List.of(args));
        while (!rest.isEmpty()) {
            String a = rest.remove(0);
            switch (a) {
                case "--create", "--alter", "--delete" -> {
                    if (action != null) {
                        usage("only one of --create, --alter, --delete");
                    }
                    action = a;
                }
                case "--bootstrap-server", "--topic", "--partitions", "--replication-factor", "--config" -> {
                    if (rest.isEmpty()) {
                        usage(a + " needs a value");
                    }
                    String v = rest.remove(0);
                    switch (a) {
                        case "--bootstrap-server" -> bootstrap = v;
                        case "--topic" -> topic = v;
                        case "--partitions" -> partitions = Integer.parseInt(v);
                        case "--replication-factor" -> replicationFactor = Short.parseShort(v);
                        default -> {
                            int eq = v.indexOf('=');
                            if (eq <= 0) {
                                usage("--config wants key=value, got " + v);
                            }
                            configs.put(v.substring(0, eq), v.substring(eq + 1));
                        }
                    }
                }
                default -> usage("unsupported argument " + a);
            }
        }
        if (bootstrap == null || action == null || topic == null) {
            usage("--bootstrap-server, an action and --topic are required");
        }
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(p)) {
            switch (action) {
                case "--create" -> {
                    // TopicCommand leaves unset counts to the broker's defaults.
                    NewTopic t = new NewTopic(topic, java.util.Optional.ofNullable(partitions),
                            java.util.Optional.ofNullable(replicationFactor)).configs(configs);
                    admin.createTopics(List.of(t)).all().get(30, TimeUnit.SECONDS);
                    System.out.println("Created topic " + topic + ".");
                }
                case "--alter" -> {
                    if (partitions == null || !configs.isEmpty() || replicationFactor != null) {
                        usage("--alter supports --partitions only");
                    }
                    admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(partitions))).all()
                            .get(30, TimeUnit.SECONDS);
                }
                default -> {
                    if (partitions != null || !configs.isEmpty() || replicationFactor != null) {
                        usage("--delete takes --topic only");
                    }
                    admin.deleteTopics(List.of(topic)).all().get(30, TimeUnit.SECONDS);
                }
            }
        }
    }
}
