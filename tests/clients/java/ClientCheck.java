// The Java client family (org.apache.kafka:kafka-clients, the client inside Logstash, Kafka
// Connect, Flink and Spark) against a running cluster. Run by tests/tests/client_families.rs with
// Java's source launcher, once per client line (3.9 and the newest 4.x):
//
//   java -cp "<jars>/*" ClientCheck.java BOOTSTRAP BROKERS PREFIX
//
// Each step checks what the client observed and prints "ok <step> ..."; the first failure throws,
// which ends the program with a stack trace and a non-zero exit status.
//
//   admin      describe cluster, create/describe topics, describe/alter configs, create partitions
//   produce    idempotent producer, acks=all, every codec; offsets dense and in order per partition
//   groups     range and cooperative-sticky members: split on join, take over on leave; every
//              record read exactly once across the rebalances
//   restart    committed offsets: a member that closes and a new one resumes where it committed
//   offsets    list offsets (earliest, latest, max timestamp), delete records
//   cleanup    list/describe/delete groups, delete topics
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.*;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.*;

public class ClientCheck {
    static String bootstrap;
    static int brokers;
    static String prefix;
    static final int PARTITIONS = 4;
    static final String[] CODECS = {"none", "gzip", "snappy", "lz4", "zstd"};
    static final int PER_CODEC = 2000;

    static void check(boolean cond, String what) {
        if (!cond) throw new AssertionError(what);
    }

    static void ok(String step, String detail) {
        System.out.println("ok " + step + " " + detail);
        System.out.flush();
    }

    static Admin admin() {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 15000);
        return Admin.create(p);
    }

    public static void main(String[] args) throws Exception {
        bootstrap = args[0];
        brokers = Integer.parseInt(args[1]);
        prefix = args[2];
        String topic = prefix + "-events";
        short rf = (short) Math.min(3, brokers);
        try (Admin admin = admin()) {
            adminStep(admin, topic, rf);
            long produced = produceStep(topic);
            groupsStep(topic, produced, "org.apache.kafka.clients.consumer.RangeAssignor", "range");
            groupsStep(topic, produced,
                    "org.apache.kafka.clients.consumer.CooperativeStickyAssignor", "cooperative");
            restartStep(topic, produced);
            offsetsStep(admin, topic);
            cleanupStep(admin, topic);
        }
        System.out.println("done");
    }

    static void adminStep(Admin admin, String topic, short rf) throws Exception {
        DescribeClusterResult cluster = admin.describeCluster();
        Collection<Node> nodes = cluster.nodes().get();
        check(nodes.size() == brokers, "describeCluster lists " + nodes.size() + " brokers");
        Node controller = cluster.controller().get();
        check(controller != null && controller.id() >= 0, "describeCluster names a controller");
        check(cluster.clusterId().get() != null, "describeCluster names the cluster id");

        NewTopic nt = new NewTopic(topic, PARTITIONS - 1, rf)
                .configs(Map.of("retention.ms", "3600000", "min.insync.replicas", "1"));
        admin.createTopics(List.of(nt)).all().get();
        // Kafka answers CreateTopics once the topic is known; wait until every partition leads.
        TopicDescription d = null;
        for (int i = 0; i < 100; i++) {
            d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
            if (d.partitions().stream().allMatch(p -> p.leader() != null && p.isr().size() == rf)) break;
            Thread.sleep(100);
        }
        check(d.partitions().size() == PARTITIONS - 1, "describeTopics partitions " + d.partitions().size());
        for (TopicPartitionInfo p : d.partitions()) {
            check(p.replicas().size() == rf, "partition " + p.partition() + " replicas " + p.replicas());
            check(p.leader() != null, "partition " + p.partition() + " has no leader");
        }
        admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(PARTITIONS))).all().get();
        for (int i = 0; i < 100; i++) {
            d = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic);
            if (d.partitions().size() == PARTITIONS
                    && d.partitions().stream().allMatch(p -> p.leader() != null)) break;
            Thread.sleep(100);
        }
        check(d.partitions().size() == PARTITIONS, "after createPartitions: " + d.partitions().size());

        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        Config cfg = admin.describeConfigs(List.of(res)).all().get().get(res);
        check("3600000".equals(cfg.get("retention.ms").value()), "retention.ms " + cfg.get("retention.ms"));
        admin.incrementalAlterConfigs(Map.of(res, List.of(
                new AlterConfigOp(new ConfigEntry("retention.ms", "7200000"), AlterConfigOp.OpType.SET),
                new AlterConfigOp(new ConfigEntry("min.insync.replicas", null), AlterConfigOp.OpType.DELETE))))
                .all().get();
        cfg = admin.describeConfigs(List.of(res)).all().get().get(res);
        check("7200000".equals(cfg.get("retention.ms").value()), "altered retention.ms " + cfg.get("retention.ms"));
        check(cfg.get("min.insync.replicas").source() != ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG,
                "min.insync.replicas override deleted: " + cfg.get("min.insync.replicas"));
        ConfigResource broker = new ConfigResource(ConfigResource.Type.BROKER, String.valueOf(controller.id()));
        Config bcfg = admin.describeConfigs(List.of(broker)).all().get().get(broker);
        check(bcfg.get("log.retention.hours") != null || bcfg.get("log.retention.ms") != null,
                "broker config lists log retention");
        Set<String> names = admin.listTopics().names().get();
        check(names.contains(topic), "listTopics lacks " + topic);
        ok("admin", nodes.size() + " brokers, controller " + controller.id() + ", " + PARTITIONS
                + " partitions rf " + rf);
    }

    static long produceStep(String topic) throws Exception {
        long total = 0;
        for (String codec : CODECS) {
            Properties p = new Properties();
            p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(ProducerConfig.ACKS_CONFIG, "all");
            p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
            p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
            p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
            p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            Map<Integer, List<Long>> offsets = new TreeMap<>();
            try (KafkaProducer<String, String> prod = new KafkaProducer<>(p)) {
                List<Future<RecordMetadata>> acks = new ArrayList<>();
                for (int i = 0; i < PER_CODEC; i++) {
                    String v = codec + "-" + i + "-" + "x".repeat(i % 200);
                    acks.add(prod.send(new ProducerRecord<>(topic, i % PARTITIONS, codec + "-" + i, v)));
                }
                prod.flush();
                for (Future<RecordMetadata> f : acks) {
                    RecordMetadata m = f.get(30, TimeUnit.SECONDS);
                    offsets.computeIfAbsent(m.partition(), k -> new ArrayList<>()).add(m.offset());
                }
            }
            for (Map.Entry<Integer, List<Long>> e : offsets.entrySet()) {
                List<Long> o = e.getValue();
                for (int i = 1; i < o.size(); i++) {
                    check(o.get(i) == o.get(i - 1) + 1,
                            codec + ": partition " + e.getKey() + " offsets not dense: " + o.get(i - 1) + " then " + o.get(i));
                }
            }
            total += PER_CODEC;
        }
        ok("produce", total + " records, idempotent, acks=all, codecs " + String.join(",", CODECS));
        return total;
    }

    /** A group member polling in its own thread, recording what it reads and holds. */
    static class Member implements Runnable {
        final KafkaConsumer<String, String> consumer;
        final Set<TopicPartition> assigned = ConcurrentHashMap.newKeySet();
        final ConcurrentHashMap<String, Integer> seen;
        final AtomicBoolean stop = new AtomicBoolean();
        final AtomicInteger revoked = new AtomicInteger();
        volatile Throwable failed;
        final Thread thread;
        final String topic;

        Member(String group, String topic, String assignor, ConcurrentHashMap<String, Integer> seen) {
            Properties p = new Properties();
            p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
            p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, assignor);
            p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 200);
            p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            consumer = new KafkaConsumer<>(p);
            this.seen = seen;
            this.topic = topic;
            thread = new Thread(this);
            thread.start();
        }

        public void run() {
            try {
                consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                    public void onPartitionsRevoked(Collection<TopicPartition> parts) {
                        // Commit what was read before giving the partitions away.
                        if (!parts.isEmpty()) consumer.commitSync();
                        assigned.removeAll(parts);
                        revoked.addAndGet(parts.size());
                    }

                    public void onPartitionsAssigned(Collection<TopicPartition> parts) {
                        assigned.addAll(parts);
                    }
                });
                while (!stop.get()) {
                    ConsumerRecords<String, String> rs = consumer.poll(Duration.ofMillis(100));
                    for (ConsumerRecord<String, String> r : rs) {
                        seen.merge(r.key(), 1, Integer::sum);
                        check(r.value().startsWith(r.key() + "-"), "value " + r.value() + " under key " + r.key());
                    }
                    if (!rs.isEmpty()) consumer.commitSync();
                }
                consumer.close(Duration.ofSeconds(10));
            } catch (Throwable t) {
                failed = t;
            }
        }

        void leave() throws Exception {
            stop.set(true);
            thread.join(30000);
            if (failed != null) throw new RuntimeException("member failed", failed);
        }
    }

    static void waitFor(String what, long timeoutMs, Callable<Boolean> cond, Member... members) throws Exception {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (!cond.call()) {
            for (Member m : members) {
                if (m.failed != null) throw new RuntimeException("member failed", m.failed);
            }
            check(System.currentTimeMillis() < deadline, "timed out waiting for " + what);
            Thread.sleep(50);
        }
    }

    static void groupsStep(String topic, long produced, String assignor, String name) throws Exception {
        String group = prefix + "-" + name;
        ConcurrentHashMap<String, Integer> seen = new ConcurrentHashMap<>();
        Member a = new Member(group, topic, assignor, seen);
        waitFor("first member holds every partition", 30000, () -> a.assigned.size() == PARTITIONS, a);
        Member b = new Member(group, topic, assignor, seen);
        waitFor("two members split the partitions", 30000,
                () -> a.assigned.size() == PARTITIONS / 2 && b.assigned.size() == PARTITIONS / 2
                        && Collections.disjoint(a.assigned, b.assigned), a, b);
        waitFor("every record read", 60000, () -> seen.size() == produced, a, b);
        b.leave();
        waitFor("the remaining member takes every partition back", 30000,
                () -> a.assigned.size() == PARTITIONS, a);
        // Nothing read twice: commits on revocation hand each partition over at its position.
        Thread.sleep(500);
        int revokedBeforeClose = a.revoked.get();
        a.leave();
        long twice = seen.values().stream().filter(n -> n > 1).count();
        check(seen.size() == produced, name + ": read " + seen.size() + " of " + produced);
        check(twice == 0, name + ": " + twice + " records read more than once");
        if (assignor.contains("Cooperative")) {
            // Cooperative rebalancing revokes only what moves: at most half when b joined, none when
            // it left (a keeps its own partitions).
            check(revokedBeforeClose <= PARTITIONS / 2, name + ": a gave up " + revokedBeforeClose + " partitions");
        }
        ok("groups", name + ": " + produced + " records once each across join and leave");
    }

    static void restartStep(String topic, long produced) throws Exception {
        String group = prefix + "-restart";
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        TopicPartition tp = new TopicPartition(topic, 0);
        long half;
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            long read = 0;
            long deadline = System.currentTimeMillis() + 30000;
            while (read < 300 && System.currentTimeMillis() < deadline) {
                read += c.poll(Duration.ofMillis(200)).count();
            }
            check(read >= 300, "read " + read + " records of partition 0");
            half = c.position(tp);
            c.commitSync(Map.of(tp, new OffsetAndMetadata(half, "restart-check")));
        }
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            OffsetAndMetadata committed = c.committed(Set.of(tp)).get(tp);
            check(committed != null && committed.offset() == half, "committed after restart " + committed);
            check("restart-check".equals(committed.metadata()), "commit metadata " + committed.metadata());
            c.assign(List.of(tp));
            ConsumerRecords<String, String> rs = ConsumerRecords.empty();
            long deadline = System.currentTimeMillis() + 30000;
            while (rs.isEmpty() && System.currentTimeMillis() < deadline) rs = c.poll(Duration.ofMillis(200));
            check(!rs.isEmpty(), "nothing read after the committed offset");
            long first = rs.iterator().next().offset();
            check(first == half, "resumed at " + first + ", committed " + half);
        }
        ok("restart", "resumed partition 0 at the committed offset " + half);
    }

    static void offsetsStep(Admin admin, String topic) throws Exception {
        TopicPartition tp = new TopicPartition(topic, 1);
        long earliest = admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).partitionResult(tp).get().offset();
        long latest = admin.listOffsets(Map.of(tp, OffsetSpec.latest())).partitionResult(tp).get().offset();
        check(earliest == 0, "earliest " + earliest);
        check(latest == CODECS.length * PER_CODEC / PARTITIONS, "latest " + latest);
        ListOffsetsResult.ListOffsetsResultInfo max =
                admin.listOffsets(Map.of(tp, OffsetSpec.maxTimestamp())).partitionResult(tp).get();
        check(max.offset() >= 0 && max.offset() < latest && max.timestamp() > 0, "max timestamp " + max);
        long cut = latest / 2;
        DeletedRecords del = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(cut)))
                .lowWatermarks().get(tp).get();
        check(del.lowWatermark() == cut, "low watermark " + del.lowWatermark());
        earliest = admin.listOffsets(Map.of(tp, OffsetSpec.earliest())).partitionResult(tp).get().offset();
        check(earliest == cut, "earliest after deleteRecords " + earliest);
        ok("offsets", "earliest 0, latest " + latest + ", max timestamp at " + max.offset()
                + ", deleteRecords to " + cut);
    }

    @SuppressWarnings("deprecation")
    static void cleanupStep(Admin admin, String topic) throws Exception {
        Set<String> groups = new TreeSet<>();
        for (ConsumerGroupListing g : admin.listConsumerGroups().all().get()) groups.add(g.groupId());
        String[] mine = {prefix + "-range", prefix + "-cooperative", prefix + "-restart"};
        for (String g : mine) check(groups.contains(g), "listConsumerGroups lacks " + g + ": " + groups);
        Map<String, ConsumerGroupDescription> desc = admin.describeConsumerGroups(List.of(mine)).all().get();
        for (ConsumerGroupDescription g : desc.values()) {
            check(g.members().isEmpty(), g.groupId() + " still has members " + g.members());
        }
        TopicPartition tp0 = new TopicPartition(topic, 0);
        Map<TopicPartition, OffsetAndMetadata> committed =
                admin.listConsumerGroupOffsets(prefix + "-restart").partitionsToOffsetAndMetadata().get();
        check(committed.containsKey(tp0), "listConsumerGroupOffsets " + committed);
        admin.deleteConsumerGroups(List.of(mine)).all().get();
        groups.clear();
        for (ConsumerGroupListing g : admin.listConsumerGroups().all().get()) groups.add(g.groupId());
        for (String g : mine) check(!groups.contains(g), "deleted group still listed: " + g);
        admin.deleteTopics(List.of(topic)).all().get();
        for (int i = 0; i < 100 && admin.listTopics().names().get().contains(topic); i++) Thread.sleep(100);
        check(!admin.listTopics().names().get().contains(topic), "deleted topic still listed");
        ok("cleanup", "groups listed, described, deleted; topic deleted");
    }
}
