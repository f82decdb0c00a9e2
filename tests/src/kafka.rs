//! A minimal blocking Kafka protocol client for tests that need exact requests: one request,
//! one response, over a plain TCP connection, encoded and decoded by `kafka-protocol` (an
//! implementation independent of the broker's handlers).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// One connection to a broker, through the project's Kafka client module.
#[derive(Debug)]
pub struct KafkaConn {
    conn: sluice_kafka::Conn,
}

impl KafkaConn {
    pub fn connect(addr: SocketAddr) -> KafkaConn {
        KafkaConn::connect_as(addr, "sluice-e2e")
    }

    /// A connection whose requests carry `client_id`.
    pub fn connect_as(addr: SocketAddr, client_id: &str) -> KafkaConn {
        let mut conn = sluice_kafka::Conn::connect(addr, client_id).expect("connect to broker");
        conn.stream()
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        KafkaConn { conn }
    }

    /// Sends `req` as `key` v`version` and returns the decoded response.
    pub fn call(&mut self, key: ApiKey, version: i16, req: RequestKind) -> ResponseKind {
        self.conn
            .send_kind(key, version, &req)
            .expect("send request");
        let (_, _, mut body) = self.conn.receive().expect("response");
        let resp = ResponseKind::decode(key, &mut body, version).expect("decode response");
        assert!(body.is_empty(), "trailing bytes in the {key:?} response");
        resp
    }

    /// Produce v9 of one uncompressed batch of `values` to partition 0 of `topic` with `acks`
    /// (timeout 5 s): the partition's (error code, base offset).
    pub fn produce(&mut self, topic: &str, acks: i16, values: &[&[u8]]) -> (i16, i64) {
        let r = self.produce_to(9, topic, 0, acks, 5000, values);
        let p = &r.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    }

    /// Produce v`version` of one uncompressed batch of `values` to `topic`/`partition`: the
    /// whole answer.
    pub fn produce_to(
        &mut self,
        version: i16,
        topic: &str,
        partition: i32,
        acks: i16,
        timeout_ms: i32,
        values: &[&[u8]],
    ) -> kafka_protocol::messages::ProduceResponse {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_protocol::messages::{ProduceRequest, TopicName};
        let mut pd = PartitionProduceData::default();
        pd.index = partition;
        pd.records = Some(idempotent_batch(-1, -1, -1, values));
        let mut td = TopicProduceData::default();
        td.name = TopicName(kafka_protocol::protocol::StrBytes::from_string(
            topic.to_string(),
        ));
        td.partition_data = vec![pd];
        let mut req = ProduceRequest::default();
        req.acks = acks;
        req.timeout_ms = timeout_ms;
        req.topic_data = vec![td];
        match self.call(ApiKey::Produce, version, RequestKind::Produce(req)) {
            ResponseKind::Produce(r) => r,
            other => panic!("{other:?}"),
        }
    }

    /// CreateTopics v5 of one topic with `partitions` partitions and replication factor 1: the
    /// whole answer.
    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        timeout_ms: i32,
    ) -> kafka_protocol::messages::CreateTopicsResponse {
        use kafka_protocol::messages::create_topics_request::CreatableTopic;
        use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
        let mut t = CreatableTopic::default();
        t.name = TopicName(kafka_protocol::protocol::StrBytes::from_string(
            name.to_string(),
        ));
        t.num_partitions = partitions;
        t.replication_factor = 1;
        let mut req = CreateTopicsRequest::default();
        req.topics.push(t);
        req.timeout_ms = timeout_ms;
        match self.call(ApiKey::CreateTopics, 5, RequestKind::CreateTopics(req)) {
            ResponseKind::CreateTopics(r) => r,
            other => panic!("{other:?}"),
        }
    }
}

/// An uncompressed v2 batch of `values` (no keys) from an idempotent producer.
pub fn idempotent_batch(
    producer_id: i64,
    epoch: i16,
    first_seq: i32,
    values: &[&[u8]],
) -> bytes::Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: first_seq + i as i32,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(bytes::Bytes::copy_from_slice(v)),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// A TCP relay in front of a broker that can swallow the broker's answers and then cut every
/// connection: the client's requests were carried out, but it never heard back, so it must
/// retry them. Advertise the relay's port (`advertised.listeners`) so clients use it.
#[derive(Debug)]
pub struct LossyRelay {
    pub port: u16,
    swallow: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl LossyRelay {
    /// Listens on a free loopback port and relays each connection to `target`.
    pub fn start(port: u16, target: SocketAddr) -> LossyRelay {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("relay port");
        let swallow = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let (sw, gen) = (swallow.clone(), generation.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(target) else {
                    continue;
                };
                let born = gen.load(Ordering::SeqCst);
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                // client -> broker: always relayed.
                std::thread::spawn(move || {
                    let (mut from, mut to) = (c2, s2);
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
                // broker -> client: dropped while swallowing; cut when the generation moves.
                let (sw, gen) = (sw.clone(), gen.clone());
                std::thread::spawn(move || {
                    let (mut from, mut to) = (server, client);
                    from.set_read_timeout(Some(Duration::from_millis(20)))
                        .unwrap();
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        if gen.load(Ordering::SeqCst) != born {
                            break;
                        }
                        match from.read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                if !sw.load(Ordering::SeqCst) && to.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                            Err(e)
                                if matches!(
                                    e.kind(),
                                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                                ) => {}
                            Err(_) => break,
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Both);
                    let _ = from.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        LossyRelay {
            port,
            swallow,
            generation,
        }
    }

    /// Swallows every answer for `how_long`, then closes every connection open until then.
    pub fn lose_answers_then_cut(&self, how_long: Duration) {
        use std::sync::atomic::Ordering;
        self.swallow.store(true, Ordering::SeqCst);
        std::thread::sleep(how_long);
        self.generation.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
        self.swallow.store(false, Ordering::SeqCst);
    }
}
