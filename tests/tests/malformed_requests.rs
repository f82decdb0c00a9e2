//! Bytes that are not valid requests, sent to running daemons: for every API and version the
//! broker serves, and every request type coord serves, a request with a valid header and then
//! a random body, a truncated body, and every 4-byte field (and, in flexible versions, every
//! varint) in turn set to a count of 0x7FFFFFF0. Each probe must end with an answer or with
//! the connection closed, never with the process gone; a client already connected keeps
//! working through all of it; and the daemon's peak resident memory stays within 64 MiB of
//! its idle figure (decision 0010).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sluice_e2e::kafka::KafkaConn;
use sluice_e2e::{proc_status_kib, BrokerNode, CoordCluster};

/// The count every probe plants.
const HUGE: i32 = 0x7FFF_FFF0;
/// Peak resident memory allowed above the idle figure.
const MAX_GROWTH_KIB: u64 = 64 * 1024;
/// Probing threads.
const THREADS: usize = 4;

/// How one probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    Answered,
    Closed,
    /// No answer within the read timeout (a valid long-poll, say); the connection is dropped.
    Waiting,
}

/// Deterministic bytes (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = (self.next() % (max as u64 + 1)) as usize;
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn unsigned_varint(mut v: u32, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The malformed bodies made from one valid `body`: random bodies, truncations, a 0x7FFFFFF0
/// written over every 4-byte position, and (when `varints`) a varint of 0x7FFFFFF0 put in place
/// of every byte (compact arrays, strings and bytes carry their lengths as varints).
fn mutations(body: &[u8], varints: bool, rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..3 {
        out.push(rng.bytes(400));
    }
    for cut in [0, body.len() / 2, body.len().saturating_sub(1)] {
        if cut < body.len() {
            out.push(body[..cut].to_vec());
        }
    }
    let positions = body.len().min(256);
    for i in 0..positions.saturating_sub(3) {
        let mut b = body.to_vec();
        b[i..i + 4].copy_from_slice(&HUGE.to_be_bytes());
        out.push(b);
    }
    if varints {
        for i in 0..positions {
            let mut b = body[..i].to_vec();
            unsigned_varint(HUGE as u32 + 1, &mut b);
            b.extend_from_slice(&body[i + 1..]);
            out.push(b);
        }
    }
    out
}

/// A connection that probes one frame at a time, opened again whenever the daemon closes it.
struct Prober {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    /// Run on each new connection before probing (coord's session handshake).
    open: Box<dyn FnMut(&mut TcpStream) -> bool + Send>,
}

impl Prober {
    fn new(addr: SocketAddr, open: Box<dyn FnMut(&mut TcpStream) -> bool + Send>) -> Prober {
        Prober {
            addr,
            stream: None,
            open,
        }
    }

    /// Sends `frame` (with its size prefix) and waits for an answer or the end of the
    /// connection.
    fn probe(&mut self, frame: &[u8]) -> Seen {
        if self.stream.is_none() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match TcpStream::connect(self.addr) {
                    Ok(mut s) => {
                        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
                        if (self.open)(&mut s) {
                            self.stream = Some(s);
                            break;
                        }
                    }
                    Err(e) => assert!(
                        Instant::now() < deadline,
                        "the daemon stopped accepting connections: {e}"
                    ),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let s = self.stream.as_mut().expect("connected");
        if s.write_all(frame).is_err() {
            self.stream = None;
            return Seen::Closed;
        }
        let seen = read_frame(s);
        if seen != Seen::Answered {
            self.stream = None;
        }
        seen
    }
}

/// Reads one size-prefixed answer.
fn read_frame(s: &mut TcpStream) -> Seen {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            return Seen::Waiting
        }
        Err(_) => return Seen::Closed,
    }
    let len = i32::from_be_bytes(len);
    if !(0..=64 << 20).contains(&len) {
        return Seen::Closed;
    }
    let mut body = vec![0u8; len as usize];
    match s.read_exact(&mut body) {
        Ok(()) => Seen::Answered,
        Err(_) => Seen::Closed,
    }
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

/// Runs every `(label, frame)` through `THREADS` probers and counts the outcomes per label.
fn storm(
    frames: Vec<(String, Vec<u8>)>,
    make: impl Fn() -> Prober,
) -> BTreeMap<String, BTreeMap<Seen, usize>> {
    let shares: Vec<Vec<(String, Vec<u8>)>> = (0..THREADS)
        .map(|t| frames.iter().skip(t).step_by(THREADS).cloned().collect())
        .collect();
    let handles: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let mut p = make();
            std::thread::spawn(move || {
                let mut seen: BTreeMap<String, BTreeMap<Seen, usize>> = BTreeMap::new();
                for (label, frame) in share {
                    let s = p.probe(&frame);
                    *seen.entry(label).or_default().entry(s).or_default() += 1;
                }
                seen
            })
        })
        .collect();
    let mut all: BTreeMap<String, BTreeMap<Seen, usize>> = BTreeMap::new();
    for h in handles {
        for (label, m) in h.join().expect("probing thread") {
            for (s, n) in m {
                *all.entry(label.clone()).or_default().entry(s).or_default() += n;
            }
        }
    }
    all
}

// ---------------------------------------------------------------- broker

/// A default request of `key` (every array empty), for the APIs the broker serves.
fn default_request(key: ApiKey) -> Option<RequestKind> {
    Some(match key {
        ApiKey::Produce => RequestKind::Produce(ProduceRequest::default()),
        ApiKey::Fetch => RequestKind::Fetch(FetchRequest::default()),
        ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default()),
        ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default()),
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ApiKey::CreateTopics => RequestKind::CreateTopics(CreateTopicsRequest::default()),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(DeleteTopicsRequest::default()),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(FindCoordinatorRequest::default()),
        ApiKey::JoinGroup => RequestKind::JoinGroup(JoinGroupRequest::default()),
        ApiKey::SyncGroup => RequestKind::SyncGroup(SyncGroupRequest::default()),
        ApiKey::Heartbeat => RequestKind::Heartbeat(HeartbeatRequest::default()),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(LeaveGroupRequest::default()),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(OffsetCommitRequest::default()),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(OffsetFetchRequest::default()),
        ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(DescribeGroupsRequest::default()),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(DeleteGroupsRequest::default()),
        ApiKey::InitProducerId => RequestKind::InitProducerId(InitProducerIdRequest::default()),
        ApiKey::OffsetForLeaderEpoch => {
            RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default())
        }
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(DeleteRecordsRequest::default()),
        ApiKey::CreatePartitions => {
            RequestKind::CreatePartitions(CreatePartitionsRequest::default())
        }
        ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(DescribeConfigsRequest::default()),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(AlterConfigsRequest::default()),
        ApiKey::IncrementalAlterConfigs => {
            RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default())
        }
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        ApiKey::ElectLeaders => RequestKind::ElectLeaders(ElectLeadersRequest::default()),
        ApiKey::ControlledShutdown => {
            RequestKind::ControlledShutdown(ControlledShutdownRequest::default())
        }
        ApiKey::AlterPartitionReassignments => {
            RequestKind::AlterPartitionReassignments(AlterPartitionReassignmentsRequest::default())
        }
        ApiKey::ListPartitionReassignments => {
            RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default())
        }
        ApiKey::DescribeClientQuotas => {
            RequestKind::DescribeClientQuotas(DescribeClientQuotasRequest::default())
        }
        ApiKey::AlterClientQuotas => {
            RequestKind::AlterClientQuotas(AlterClientQuotasRequest::default())
        }
        ApiKey::DescribeUserScramCredentials => {
            RequestKind::DescribeUserScramCredentials(DescribeUserScramCredentialsRequest::default())
        }
        _ => return None,
    })
}

/// Requests real clients sent (the fuzz seed corpus, recorded from librdkafka, kafka-python,
/// confluent-kafka and the project's tools), decoded, by API: their arrays are not empty, so
/// probing them reaches nested counts too.
fn recorded_requests() -> BTreeMap<i16, Vec<RequestKind>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/kafka_request");
    let mut out: BTreeMap<i16, Vec<RequestKind>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return out;
    };
    let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    for f in files {
        let Ok(raw) = std::fs::read(&f) else { continue };
        if raw.len() < 8 || raw.len() > 4096 {
            continue;
        }
        let key = i16::from_be_bytes([raw[0], raw[1]]);
        let version = i16::from_be_bytes([raw[2], raw[3]]);
        let Ok(api) = ApiKey::try_from(key) else {
            continue;
        };
        let mut b = Bytes::from(raw);
        if RequestHeader::decode(&mut b, api.request_header_version(version)).is_err() {
            continue;
        }
        if let Ok(req) = RequestKind::decode(api, &mut b, version) {
            let list = out.entry(key).or_default();
            if list.len() < 2 {
                list.push(req);
            }
        }
    }
    out
}

fn encode_body(req: &RequestKind, version: i16) -> Option<Vec<u8>> {
    let mut b = BytesMut::new();
    req.encode(&mut b, version).ok()?;
    Some(b.to_vec())
}

fn kafka_header(key: ApiKey, version: i16) -> Vec<u8> {
    let mut h = RequestHeader::default();
    h.request_api_key = key as i16;
    h.request_api_version = version;
    h.correlation_id = 7;
    h.client_id = Some(StrBytes::from_static_str("malformed"));
    let mut b = BytesMut::new();
    h.encode(&mut b, key.request_header_version(version))
        .unwrap();
    b.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_kafka_requests_close_the_connection_and_harm_no_one() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let coord = CoordCluster::start(1, "");
    let mut broker = BrokerNode::start(coord.dir.path(), 1, &coord.connect_string(), "");
    let pid = broker.pid().unwrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let r = admin
        .create_topics(
            [&NewTopic::new("steady", 1, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .unwrap();
    assert!(r[0].is_ok());

    // A producer connected before the storm keeps producing through it.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("acks", "all")
        .set("message.timeout.ms", "15000")
        .set("linger.ms", "0")
        .create()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let steady = tokio::spawn({
        let (stop, acked, producer) = (stop.clone(), acked.clone(), producer.clone());
        async move {
            let mut i = 0u64;
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let v = format!("steady-{i}");
                match producer
                    .send(
                        FutureRecord::<(), _>::to("steady").payload(&v),
                        Duration::from_secs(15),
                    )
                    .await
                {
                    Ok(_) => {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    Err((e, _)) => failures.push(e.to_string()),
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            failures
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_kib = proc_status_kib(pid, "VmRSS");

    // Every API and version the broker itself says it serves.
    let addr = broker.addr();
    let served = tokio::task::spawn_blocking(move || {
        let mut c = KafkaConn::connect(addr);
        match c.call(
            ApiKey::ApiVersions,
            0,
            RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ) {
            ResponseKind::ApiVersions(v) => v
                .api_keys
                .iter()
                .map(|k| (k.api_key, k.min_version, k.max_version))
                .collect::<Vec<_>>(),
            other => panic!("unexpected {other:?}"),
        }
    })
    .await
    .unwrap();
    assert!(served.len() >= 20, "{served:?}");
    let recorded = recorded_requests();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut frames = Vec::new();
    for &(key, min, max) in &served {
        let api = ApiKey::try_from(key).unwrap();
        let Some(default) = default_request(api) else {
            panic!("the broker serves {api:?}, which this test cannot build");
        };
        let mut bases = vec![default];
        bases.extend(recorded.get(&key).cloned().unwrap_or_default());
        for version in min..=max {
            let header = kafka_header(api, version);
            let flexible = api.request_header_version(version) >= 2;
            for base in &bases {
                let Some(body) = encode_body(base, version) else {
                    continue;
                };
                for m in mutations(&body, flexible, &mut rng) {
                    let mut f = header.clone();
                    f.extend_from_slice(&m);
                    frames.push((format!("{api:?}"), framed(&f)));
                }
            }
        }
    }
    let probes = frames.len();
    let started = Instant::now();
    let seen = tokio::task::spawn_blocking(move || {
        storm(frames, || Prober::new(addr, Box::new(|_| true)))
    })
    .await
    .unwrap();
    let storm_time = started.elapsed();

    stop.store(true, Ordering::SeqCst);
    let failures = steady.await.unwrap();
    let peak_kib = proc_status_kib(pid, "VmHWM");
    eprintln!(
        "{probes} probes in {storm_time:?}; broker resident memory idle {} MiB, peak {} MiB",
        idle_kib / 1024,
        peak_kib / 1024
    );
    for (api, m) in &seen {
        eprintln!("  {api:<24} {m:?}");
    }
    assert!(
        broker.is_running(),
        "the broker died:\n{}",
        broker.log_text()
    );
    assert!(
        failures.is_empty(),
        "the steady producer failed {} times during the storm: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let acked = acked.load(Ordering::SeqCst);
    assert!(
        acked > 50,
        "the steady producer got only {acked} records in"
    );
    // Every API met at least one body it refused by closing the connection (ApiVersions
    // ignores its body in the versions where it has none).
    for (api, m) in &seen {
        if api != "ApiVersions" {
            assert!(
                m.get(&Seen::Closed).copied().unwrap_or(0) > 0,
                "{api}: no malformed body was refused: {m:?}"
            );
        }
    }
    assert!(
        broker.log_text().contains("malformed Produce v3 request"),
        "refusals are logged with the API and version"
    );
    assert!(
        peak_kib.saturating_sub(idle_kib) <= MAX_GROWTH_KIB,
        "peak resident memory {peak_kib} KiB is more than 64 MiB above idle {idle_kib} KiB"
    );
    // And it still serves: ApiVersions answers on a new connection, and the records are there.
    assert!(sluice_e2e::answers_api_versions(broker.addr()));
    let b = broker.bootstrap();
    let read = tokio::task::spawn_blocking(move || count_records(&b, "steady", acked))
        .await
        .unwrap();
    assert_eq!(read, acked, "every acknowledged record reads back");
}

fn count_records(bootstrap: &str, topic: &str, want: u64) -> u64 {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "count")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while n < want && Instant::now() < deadline {
        if let Some(Ok(_)) = c.poll(Duration::from_millis(100)) {
            n += 1;
        }
    }
    n
}

// ---------------------------------------------------------------- coord

/// One sample of every request type coord serves (closeSession aside: it ends the session the
/// probers share).
fn sample_zk_requests() -> Vec<sluice_jute::Request> {
    use sluice_jute::*;
    let acl = vec![Acl {
        perms: 31,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }];
    let create = CreateRequest {
        path: "/probe/a".into(),
        data: Some(Bytes::from_static(b"data")),
        acl: acl.clone(),
        flags: 0,
    };
    let get = GetDataRequest {
        path: "/probe".into(),
        watch: true,
    };
    vec![
        Request::Create(create.clone()),
        Request::Create2(create.clone()),
        Request::CreateContainer(create.clone()),
        Request::CreateTtl(CreateTtlRequest {
            path: "/probe/t".into(),
            data: Some(Bytes::from_static(b"t")),
            acl: acl.clone(),
            flags: 5,
            ttl: 1000,
        }),
        Request::Delete(DeleteRequest {
            path: "/probe/a".into(),
            version: -1,
        }),
        Request::Exists(ExistsRequest {
            path: "/probe".into(),
            watch: true,
        }),
        Request::GetData(get.clone()),
        Request::SetData(SetDataRequest {
            path: "/probe".into(),
            data: Some(Bytes::from_static(b"x")),
            version: -1,
        }),
        Request::GetAcl(GetAclRequest {
            path: "/probe".into(),
        }),
        Request::SetAcl(SetAclRequest {
            path: "/probe".into(),
            acl: acl.clone(),
            version: -1,
        }),
        Request::GetChildren(GetChildrenRequest {
            path: "/probe".into(),
            watch: false,
        }),
        Request::GetChildren2(GetChildren2Request {
            path: "/probe".into(),
            watch: true,
        }),
        Request::GetAllChildrenNumber(GetAllChildrenNumberRequest {
            path: "/probe".into(),
        }),
        Request::GetEphemerals(GetEphemeralsRequest {
            prefix_path: "/".into(),
        }),
        Request::Sync(SyncRequest {
            path: "/probe".into(),
        }),
        Request::Multi(MultiRequest {
            ops: vec![
                MultiOp::Create(create.clone()),
                MultiOp::Check(CheckVersionRequest {
                    path: "/probe".into(),
                    version: -1,
                }),
                MultiOp::Delete(DeleteRequest {
                    path: "/probe/a".into(),
                    version: -1,
                }),
            ],
        }),
        Request::MultiRead(MultiRequest {
            ops: vec![
                MultiOp::GetData(get.clone()),
                MultiOp::GetChildren(GetChildrenRequest {
                    path: "/probe".into(),
                    watch: false,
                }),
            ],
        }),
        Request::SetWatches(SetWatches {
            relative_zxid: 0,
            data_watches: vec!["/probe".into()],
            exist_watches: vec!["/probe/a".into()],
            child_watches: vec!["/".into()],
        }),
        Request::SetWatches2(SetWatches2 {
            relative_zxid: 0,
            data_watches: vec!["/probe".into()],
            exist_watches: vec![],
            child_watches: vec!["/".into()],
            persistent_watches: vec!["/probe".into()],
            persistent_recursive_watches: vec!["/".into()],
        }),
        Request::AddWatch(AddWatchRequest {
            path: "/probe".into(),
            mode: 1,
        }),
        Request::RemoveWatches(RemoveWatchesRequest {
            path: "/probe".into(),
            watcher_type: 1,
        }),
        Request::CheckWatches(CheckWatchesRequest {
            path: "/probe".into(),
            watcher_type: 1,
        }),
        Request::Auth(AuthPacket {
            auth_type: 0,
            scheme: "digest".into(),
            auth: Bytes::from_static(b"user:pass"),
        }),
        Request::WhoAmI,
        Request::Ping,
    ]
}

/// Opens a session on a new connection, or resumes `session` (id and password).
fn zk_handshake(s: &mut TcpStream, session: &mut Option<(i64, Bytes)>) -> bool {
    use sluice_jute::{ConnectRequest, ConnectResponse, Record};
    let (id, passwd) = session.clone().unwrap_or((0, Bytes::from_static(&[0; 16])));
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        time_out: 30_000,
        session_id: id,
        passwd,
        read_only: Some(false),
    };
    let mut b = BytesMut::new();
    req.write(&mut b);
    if s.write_all(&framed(&b)).is_err() {
        return false;
    }
    let mut len = [0u8; 4];
    if s.read_exact(&mut len).is_err() {
        return false;
    }
    let mut body = vec![0u8; i32::from_be_bytes(len).clamp(0, 1 << 16) as usize];
    if s.read_exact(&mut body).is_err() {
        return false;
    }
    match ConnectResponse::from_slice(&body) {
        Ok(r) if r.session_id != 0 && r.time_out > 0 => {
            *session = Some((r.session_id, r.passwd));
            true
        }
        _ => {
            // The session is gone: the next connection opens a new one.
            *session = None;
            false
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_zookeeper_requests_close_the_connection_and_harm_no_one() {
    use zookeeper_client as zk;

    let mut coord = CoordCluster::start(1, "");
    let pid = coord.nodes[0].pid().unwrap();
    let client = zk::Client::connect(&coord.connect_string()).await.unwrap();
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    client.create("/probe", b"p", &persistent).await.unwrap();
    client.create("/steady", b"0", &persistent).await.unwrap();

    // A session opened before the storm keeps writing through it.
    let stop = Arc::new(AtomicBool::new(false));
    let steady = tokio::spawn({
        let (stop, client) = (stop.clone(), client.clone());
        async move {
            let mut written = 0u64;
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let v = written.to_string();
                match client.set_data("/steady", v.as_bytes(), None).await {
                    Ok(_) => written += 1,
                    Err(e) => failures.push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (written, failures)
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_kib = proc_status_kib(pid, "VmRSS");

    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut frames = Vec::new();
    for req in sample_zk_requests() {
        let xid = req.fixed_xid().unwrap_or(11);
        let mut b = BytesMut::new();
        req.encode(xid, &mut b);
        let (header, body) = b.split_at(8);
        for m in mutations(body, false, &mut rng) {
            let mut f = header.to_vec();
            f.extend_from_slice(&m);
            frames.push((format!("{:?}", req.op_code()), framed(&f)));
        }
    }
    let probes = frames.len();
    let addr = coord.nodes[0].client;
    let started = Instant::now();
    let seen = tokio::task::spawn_blocking(move || {
        storm(frames, || {
            let mut session = None;
            Prober::new(addr, Box::new(move |s| zk_handshake(s, &mut session)))
        })
    })
    .await
    .unwrap();
    let storm_time = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (written, failures) = steady.await.unwrap();
    let peak_kib = proc_status_kib(pid, "VmHWM");
    eprintln!(
        "{probes} probes in {storm_time:?}; coord resident memory idle {} MiB, peak {} MiB",
        idle_kib / 1024,
        peak_kib / 1024
    );
    for (op, m) in &seen {
        eprintln!("  {op:<24} {m:?}");
    }
    assert!(
        coord.nodes[0].is_running(),
        "coord died:\n{}",
        coord.nodes[0].log_text()
    );
    assert!(
        failures.is_empty(),
        "the steady session failed {} times: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        written > 50,
        "the steady session wrote only {written} times"
    );
    for (op, m) in &seen {
        assert!(
            m.get(&Seen::Closed).copied().unwrap_or(0) > 0 || op == "Ping" || op == "WhoAmI",
            "{op}: no malformed body was refused: {m:?}"
        );
    }
    assert!(
        peak_kib.saturating_sub(idle_kib) <= MAX_GROWTH_KIB,
        "peak resident memory {peak_kib} KiB is more than 64 MiB above idle {idle_kib} KiB"
    );
    let (data, _) = client.get_data("/steady").await.unwrap();
    assert_eq!(data, (written - 1).to_string().into_bytes());
}

/// Well-formed requests whose numbers would exhaust the broker are refused with Kafka's error
/// codes: a topic of 0x7FFFFFF0 partitions (the assignment alone would take hundreds of GB),
/// growing a topic to as many, and a client write into `__consumer_offsets`, whose records the
/// group coordinator trusts when it loads them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_would_exhaust_the_broker_are_refused() {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};

    let coord = CoordCluster::start(1, "");
    let broker = BrokerNode::start(coord.dir.path(), 1, &coord.connect_string(), "");
    let pid = broker.pid().unwrap();
    let idle_kib = proc_status_kib(pid, "VmRSS");
    let addr = broker.addr();
    tokio::task::spawn_blocking(move || {
        let mut c = KafkaConn::connect(addr);
        let r = c.create_topic("huge", HUGE, 5000);
        assert_eq!(r.topics[0].error_code, 37, "INVALID_PARTITIONS: {r:?}");
        let r = c.create_topic("small", 1, 5000);
        assert_eq!(r.topics[0].error_code, 0, "{r:?}");
        let mut t = CreatePartitionsTopic::default();
        t.name = TopicName(StrBytes::from_static_str("small"));
        t.count = HUGE;
        let mut req = CreatePartitionsRequest::default();
        req.topics = vec![t];
        req.timeout_ms = 5000;
        match c.call(
            ApiKey::CreatePartitions,
            3,
            RequestKind::CreatePartitions(req),
        ) {
            ResponseKind::CreatePartitions(r) => {
                assert_eq!(r.results[0].error_code, 37, "INVALID_PARTITIONS: {r:?}")
            }
            other => panic!("{other:?}"),
        }
        let mut pd = PartitionProduceData::default();
        pd.index = 0;
        pd.records = Some(sluice_e2e::kafka::idempotent_batch(
            -1,
            -1,
            -1,
            &[b"forged"],
        ));
        let mut td = TopicProduceData::default();
        td.name = TopicName(StrBytes::from_static_str("__consumer_offsets"));
        td.partition_data = vec![pd];
        let mut req = ProduceRequest::default();
        req.acks = 1;
        req.timeout_ms = 5000;
        req.topic_data = vec![td];
        match c.call(ApiKey::Produce, 9, RequestKind::Produce(req)) {
            ResponseKind::Produce(r) => assert_eq!(
                r.responses[0].partition_responses[0].error_code, 17,
                "INVALID_TOPIC_EXCEPTION: {r:?}"
            ),
            other => panic!("{other:?}"),
        }
    })
    .await
    .unwrap();
    let peak_kib = proc_status_kib(pid, "VmHWM");
    assert!(
        peak_kib.saturating_sub(idle_kib) <= MAX_GROWTH_KIB,
        "peak {peak_kib} KiB vs idle {idle_kib} KiB"
    );
}
