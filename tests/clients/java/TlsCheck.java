// The Java client (org.apache.kafka:kafka-clients) over a broker's SSL listener, run by
// tests/tests/broker_tls.rs with Java's source launcher:
//
//   java -cp "<jars>/*" TlsCheck.java BOOTSTRAP TOPIC COUNT [key=value ...]
//
// The key=value pairs are the client's security settings (security.protocol=SSL,
// ssl.truststore.type=PEM, ssl.truststore.location=..., ssl.keystore.* for mutual TLS). It
// produces COUNT records with acks=all, reads them back from the start of partition 0, and
// prints "produced N" and "consumed N"; any failure ends it with a stack trace and exit 1.
import java.time.Duration;
import java.util.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.*;
import org.apache.kafka.common.serialization.*;

public class TlsCheck {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int count = Integer.parseInt(args[2]);
        Properties security = new Properties();
        for (int i = 3; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            security.put(kv[0], kv[1]);
        }
        Properties p = new Properties();
        p.putAll(security);
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60000);
        try (Producer<String, String> producer = new KafkaProducer<>(p)) {
            List<java.util.concurrent.Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                sent.add(producer.send(new ProducerRecord<>(topic, 0, "k" + i, "java-tls-" + i)));
            }
            for (java.util.concurrent.Future<RecordMetadata> f : sent) f.get();
        }
        System.out.println("produced " + count);

        Properties c = new Properties();
        c.putAll(security);
        c.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        int consumed = 0;
        try (Consumer<String, String> consumer = new KafkaConsumer<>(c)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            consumer.assign(List.of(tp));
            consumer.seekToBeginning(List.of(tp));
            long deadline = System.currentTimeMillis() + 60000;
            while (consumed < count && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    if (!r.value().equals("java-tls-" + consumed)) {
                        throw new AssertionError("record " + consumed + " is " + r.value());
                    }
                    consumed++;
                }
            }
        }
        System.out.println("consumed " + consumed);
        if (consumed != count) System.exit(1);
    }
}
