//! Producing and consuming through the broker with real clients: librdkafka (`rdkafka`) and
//! kcat; records with keys, null values, headers and timestamps come back in order, once per
//! offset; a SIGKILLed broker comes back with every acknowledged record.

use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sluice_e2e::{BrokerNode, CoordCluster};

fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "10000")
        .set("linger.ms", "1");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("producer")
}

/// Reads partition 0 of `topic` from offset 0 until `n` records or 20 s.
fn consume(bootstrap: &str, topic: &str, n: usize) -> Vec<rdkafka::message::OwnedMessage> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "unused")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while out.len() < n && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            out.push(m.detach());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_round_trip_with_keys_null_values_headers_and_timestamps() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "num.partitions=1\n",
    );
    let p = producer(&broker.bootstrap(), &[]);
    let big = vec![b'x'; 900_000];
    for i in 0..200u32 {
        let key = format!("key-{i}");
        let value = format!("value-{i}");
        let mut rec = FutureRecord::to("events")
            .key(&key)
            .partition(0)
            .timestamp(1_700_000_000_000 + i64::from(i));
        if i % 10 == 0 {
            rec = rec.headers(OwnedHeaders::new().insert(Header {
                key: "trace",
                value: Some(key.as_bytes()),
            }));
        }
        if i % 7 != 0 {
            rec = rec.payload(&value);
        }
        let d = p
            .send(rec, Duration::from_secs(10))
            .await
            .expect("acknowledged");
        assert_eq!((d.partition, d.offset), (0, i64::from(i)));
    }
    p.send(
        FutureRecord::to("events")
            .key("big")
            .payload(&big)
            .partition(0),
        Duration::from_secs(10),
    )
    .await
    .expect("a record close to message.max.bytes");
    p.send(
        FutureRecord::<str, [u8]>::to("events")
            .key("empty")
            .payload(&[][..])
            .partition(0),
        Duration::from_secs(10),
    )
    .await
    .expect("an empty value");

    let got = tokio::task::spawn_blocking({
        let b = broker.bootstrap();
        move || consume(&b, "events", 202)
    })
    .await
    .unwrap();
    assert_eq!(got.len(), 202);
    for (i, m) in got.iter().take(200).enumerate() {
        assert_eq!(m.offset(), i as i64, "contiguous offsets");
        assert_eq!(m.key(), Some(format!("key-{i}").as_bytes()));
        if i % 7 == 0 {
            assert_eq!(m.payload(), None, "null value at {i}");
        } else {
            assert_eq!(m.payload(), Some(format!("value-{i}").as_bytes()));
        }
        assert_eq!(
            m.timestamp().to_millis(),
            Some(1_700_000_000_000 + i as i64)
        );
        if i % 10 == 0 {
            let h = m.headers().expect("headers").get(0);
            assert_eq!(
                (h.key, h.value),
                ("trace", Some(format!("key-{i}").as_bytes()))
            );
        }
    }
    assert_eq!(got[200].payload().map(<[u8]>::len), Some(900_000));
    assert_eq!(got[201].payload(), Some(&[][..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_records_are_refused_with_message_too_large() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "message.max.bytes=10000\nnum.partitions=1\n",
    );
    let p = producer(&broker.bootstrap(), &[("message.max.bytes", "1000000")]);
    let err = p
        .send(
            FutureRecord::to("small")
                .key("k")
                .payload(&vec![1u8; 50_000]),
            Duration::from_secs(10),
        )
        .await
        .expect_err("too large");
    assert_eq!(
        err.0.rdkafka_error_code(),
        Some(rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge),
        "{err:?}"
    );
    p.send(
        FutureRecord::to("small").key("k").payload("fits"),
        Duration::from_secs(10),
    )
    .await
    .expect("a small one still goes");
}

#[test]
fn kcat_produces_and_consumes_every_codec() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "num.partitions=1\n",
    );
    // Debian's kcat 1.7.1 is built without zstd.
    for codec in ["none", "gzip", "snappy", "lz4"] {
        let topic = format!("codec-{codec}");
        let mut child = Command::new("kcat")
            .args([
                "-b",
                &broker.bootstrap(),
                "-P",
                "-t",
                &topic,
                "-K",
                ":",
                "-z",
                codec,
            ])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let stdin = child.stdin.as_mut().unwrap();
            for i in 0..100 {
                writeln!(stdin, "k{i}:{codec} line {i}").unwrap();
            }
        }
        assert!(
            child.wait().unwrap().success(),
            "kcat producer with {codec}"
        );
        let out = Command::new("kcat")
            .args([
                "-b",
                &broker.bootstrap(),
                "-C",
                "-t",
                &topic,
                "-o",
                "beginning",
                "-e",
                "-f",
                "%o %k %s\n",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.len(),
            100,
            "{codec}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(lines[0], format!("0 k0 {codec} line 0"));
        assert_eq!(lines[99], format!("99 k99 {codec} line 99"));
    }
}

/// Every codec through librdkafka (built here with zstd, which Debian's kcat lacks): the
/// broker stores the compressed batches as sent and consumers decompress them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_round_trips_every_codec_including_zstd() {
    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "num.partitions=1\n",
    );
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("rd-{codec}");
        let p = producer(
            &broker.bootstrap(),
            &[("compression.type", codec), ("linger.ms", "20")],
        );
        let sends: Vec<_> = (0..300)
            .map(|i| {
                let value = format!("{codec} record {i} {}", "x".repeat(i % 50));
                p.send_result(
                    FutureRecord::<(), _>::to(&topic)
                        .partition(0)
                        .payload(&value),
                )
                .expect("queued")
            })
            .collect();
        for s in sends {
            s.await.unwrap().expect("acknowledged");
        }
        let got = tokio::task::spawn_blocking({
            let (b, t) = (broker.bootstrap(), topic.clone());
            move || consume(&b, &t, 300)
        })
        .await
        .unwrap();
        assert_eq!(got.len(), 300, "{codec}");
        // The first stored batch carries the codec in its attributes (bits 0-2).
        let seg = broker
            .log_dir
            .join(format!("{topic}-0"))
            .join("00000000000000000000.log");
        let bytes = std::fs::read(&seg).unwrap();
        let attributes = i16::from_be_bytes([bytes[21], bytes[22]]);
        let expected = ["none", "gzip", "snappy", "lz4", "zstd"]
            .iter()
            .position(|c| *c == codec)
            .unwrap() as i16;
        assert_eq!(attributes & 7, expected, "{codec} stored as sent");
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m.offset(), i as i64);
            assert_eq!(
                m.payload(),
                Some(format!("{codec} record {i} {}", "x".repeat(i % 50)).as_bytes()),
                "{codec}"
            );
        }
    }
}

/// With every append flushed before it is acknowledged (`log.flush.interval.messages=1`): the
/// guarantee for acks=1 on a single replica that holds through a power loss too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_broker_restarts_with_every_acknowledged_record() {
    sigkill_rounds("num.partitions=1\nlog.flush.interval.messages=1\n").await;
}

/// With the default flush settings (Kafka's: the OS decides when to write back): an
/// acknowledged record has been written to the operating system, so a killed broker process
/// loses none of them (a machine that loses power may; replication is what covers that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_default_flush_settings_a_sigkilled_broker_loses_no_acknowledged_record() {
    sigkill_rounds("num.partitions=1\n").await;
}

/// Three rounds of 300 acks=1 records, the broker SIGKILLed with the last 50 in flight and
/// restarted; then every acknowledged record is read at its acknowledged offset.
async fn sigkill_rounds(settings: &str) {
    let coord = CoordCluster::start(1, "");
    let mut broker = BrokerNode::start(coord.dir.path(), 1, &coord.connect_string(), settings);
    // Every acknowledged record, by the offset its acknowledgement named.
    let mut acked: std::collections::BTreeMap<i64, String> = Default::default();
    for round in 0..3 {
        let p = producer(&broker.bootstrap(), &[("acks", "1"), ("retries", "0")]);
        let mut sends = Vec::new();
        for i in 0..300 {
            let key = format!("r{round}-{i}");
            let send = p
                .send_result(
                    FutureRecord::to("crash")
                        .key(&key)
                        .payload("v")
                        .partition(0),
                )
                .unwrap();
            sends.push((key, send));
        }
        // Kill while the last ones may still be in flight.
        for (i, (key, s)) in sends.into_iter().enumerate() {
            if i == 250 {
                broker.kill();
            }
            if let Ok(Ok(d)) = s.await {
                assert!(
                    acked.insert(d.offset, key).is_none(),
                    "offset {} acknowledged twice",
                    d.offset
                );
            }
        }
        drop(p);
        broker.spawn();
        broker.wait_until_listening(Duration::from_secs(30));
    }
    let end = acked.keys().next_back().map_or(0, |o| o + 1);
    let got = tokio::task::spawn_blocking({
        let b = broker.bootstrap();
        move || consume(&b, "crash", end as usize)
    })
    .await
    .unwrap();
    for (i, m) in got.iter().enumerate() {
        assert_eq!(
            m.offset(),
            i as i64,
            "offsets stay contiguous across crashes"
        );
    }
    // Each acknowledged record is there, at the offset it was acknowledged with: a lost record
    // overwritten by a later round at the same offset would show here.
    for (offset, key) in &acked {
        let m = got
            .get(*offset as usize)
            .unwrap_or_else(|| panic!("acknowledged offset {offset} ({key}) is gone"));
        assert_eq!(
            m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            Some(key.clone()),
            "offset {offset}"
        );
    }
    assert!(!broker.log_text().contains("panicked"));
}

/// A byte flipped in the last batch on disk while the broker is down: on restart the batch's
/// CRC fails, the tail is cut there, the records before it are served, the damaged one never
/// is, and new records continue from the cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_tail_byte_is_truncated_at_restart_not_served() {
    let coord = CoordCluster::start(1, "");
    let mut broker = BrokerNode::start(
        coord.dir.path(),
        1,
        &coord.connect_string(),
        "num.partitions=1\n",
    );
    let p = producer(&broker.bootstrap(), &[("linger.ms", "0")]);
    for i in 0..20 {
        // One batch per record: each send waits for the previous acknowledgement.
        p.send(
            FutureRecord::<(), _>::to("tail")
                .partition(0)
                .payload(&format!("record-{i}")),
            Duration::from_secs(10),
        )
        .await
        .expect("acknowledged");
    }
    drop(p);
    broker.kill();
    let seg = broker
        .log_dir
        .join("tail-0")
        .join("00000000000000000000.log");
    let mut bytes = std::fs::read(&seg).unwrap();
    let last = bytes.len() - 3; // inside the last record's value
    bytes[last] ^= 0xff;
    std::fs::write(&seg, &bytes).unwrap();
    broker.spawn();
    broker.wait_until_listening(Duration::from_secs(30));
    assert!(
        broker
            .log_text()
            .contains("truncating segment after its last good batch"),
        "the truncation is logged:\n{}",
        broker.log_text()
    );
    let p = producer(&broker.bootstrap(), &[]);
    let d = p
        .send(
            FutureRecord::<(), _>::to("tail")
                .partition(0)
                .payload("after"),
            Duration::from_secs(10),
        )
        .await
        .expect("acknowledged");
    assert_eq!(d.offset, 19, "appends continue from the cut");
    let got = tokio::task::spawn_blocking({
        let b = broker.bootstrap();
        move || consume(&b, "tail", 20)
    })
    .await
    .unwrap();
    let values: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap()).into_owned())
        .collect();
    let mut expected: Vec<String> = (0..19).map(|i| format!("record-{i}")).collect();
    expected.push("after".into());
    assert_eq!(
        values, expected,
        "the damaged last batch is cut, never served"
    );
}
