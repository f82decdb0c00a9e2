//! What an `acks=all` idempotent producer was told, and whether the cluster kept it.
//!
//! Values are `seq-<n>`, sent round robin over the partitions by one producer, so within a
//! partition they must appear in increasing order. The check classifies every acknowledged
//! record as kept (at its acknowledged offset), moved (found at another offset), or lost, and
//! finds duplicates (a value stored twice) and reordering. A consumer running meanwhile
//! ([`Consuming`]) must have been handed only records the log still holds at those offsets
//! (nothing read before it was committed and then lost), in order, and every acknowledged one.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// One acknowledgement: partition, offset, sequence number, when.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    pub partition: i32,
    pub offset: i64,
    pub seq: u64,
    pub at: Instant,
}

/// What a producer run saw.
#[derive(Debug, Default)]
pub struct Ledger {
    pub acks: Vec<Ack>,
    /// Deliveries that failed (after librdkafka's own retries), with the error.
    pub failures: Vec<(u64, String)>,
    pub started: Option<Instant>,
    pub ended: Option<Instant>,
}

impl Ledger {
    /// The longest time without an acknowledgement, and when it began.
    pub fn longest_outage(&self) -> (Duration, Option<Instant>) {
        let mut times: Vec<Instant> = self.acks.iter().map(|a| a.at).collect();
        times.sort();
        let mut longest = Duration::ZERO;
        let mut from = None;
        let mut prev = self.started;
        for t in times.iter().copied().chain(self.ended) {
            if let Some(p) = prev {
                if t.saturating_duration_since(p) > longest {
                    longest = t.saturating_duration_since(p);
                    from = Some(p);
                }
            }
            prev = Some(t);
        }
        (longest, from)
    }
}

/// librdkafka's log lines on stderr, with the time.
#[derive(Clone, Copy)]
pub struct StderrLog;

impl rdkafka::ClientContext for StderrLog {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        eprintln!(
            "rdkafka {}.{:03} {level:?} {fac}: {log_message}",
            now.as_secs(),
            now.subsec_millis()
        );
    }
}

/// A running producer; [`Producing::stop`] waits for every outstanding delivery.
pub struct Producing {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<Ledger>,
    pub sent: Arc<AtomicU64>,
}

impl Producing {
    /// Starts sending `seq-<n>` to `topic` (partition n % `partitions`), one record every
    /// `every`, idempotent with acks=all.
    pub fn start(bootstrap: &str, topic: &str, partitions: i32, every: Duration) -> Producing {
        let mut config = ClientConfig::new();
        // SLUICE_RDKAFKA_DEBUG=eos (say) prints librdkafka's own account of the idempotent
        // producer (sequence errors, epoch bumps, retries) on stderr, for a post-mortem.
        if let Ok(debug) = std::env::var("SLUICE_RDKAFKA_DEBUG") {
            config.set("debug", debug);
        }
        let producer: FutureProducer<StderrLog> = config
            .set("bootstrap.servers", bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "120000")
            .set("request.timeout.ms", "10000")
            .set("retry.backoff.ms", "50")
            .set("retry.backoff.max.ms", "200")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .set("linger.ms", "2")
            .create_with_context(StderrLog)
            .expect("producer");
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let topic = topic.to_string();
        let handle = tokio::spawn({
            let (stop, sent) = (stop.clone(), sent.clone());
            async move {
                let ledger = Arc::new(Mutex::new(Ledger {
                    started: Some(Instant::now()),
                    ..Ledger::default()
                }));
                let mut tasks = Vec::new();
                let mut n = 0u64;
                let mut tick = tokio::time::interval(every);
                while !stop.load(Ordering::SeqCst) {
                    tick.tick().await;
                    let partition = (n % partitions as u64) as i32;
                    let value = format!("seq-{n}");
                    let delivery = producer
                        .send_result(
                            FutureRecord::<(), _>::to(&topic)
                                .partition(partition)
                                .payload(&value),
                        )
                        .expect("enqueue");
                    let ledger = ledger.clone();
                    let seq = n;
                    tasks.push(tokio::spawn(async move {
                        let outcome = delivery.await;
                        let mut l = ledger.lock().unwrap();
                        match outcome {
                            Ok(Ok(d)) => l.acks.push(Ack {
                                partition: d.partition,
                                offset: d.offset,
                                seq,
                                at: Instant::now(),
                            }),
                            Ok(Err((e, _))) => l.failures.push((seq, e.to_string())),
                            Err(_) => l.failures.push((seq, "canceled".into())),
                        }
                    }));
                    n += 1;
                    sent.store(n, Ordering::SeqCst);
                }
                ledger.lock().unwrap().ended = Some(Instant::now());
                for t in tasks {
                    let _ = t.await;
                }
                drop(producer);
                Arc::try_unwrap(ledger)
                    .map(|m| m.into_inner().unwrap())
                    .unwrap_or_default()
            }
        });
        Producing { stop, handle, sent }
    }

    pub async fn stop(self) -> Ledger {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.await.expect("producer task")
    }
}

/// What the cluster holds compared with the ledger.
#[derive(Debug, Default)]
pub struct Verdict {
    pub kept: usize,
    pub lost: Vec<u64>,
    pub moved: Vec<(u64, i64, i64)>,
    pub duplicated: Vec<u64>,
    pub reordered: Vec<(i32, i64)>,
    /// Where each duplicated value is stored: partition and offsets, in log order.
    pub duplicated_at: BTreeMap<u64, (i32, Vec<i64>)>,
}

impl Verdict {
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.moved.is_empty()
            && self.duplicated.is_empty()
            && self.reordered.is_empty()
    }
}

/// A consumer reading `topic` from the beginning while faults happen (partitions assigned,
/// no group), recording every `(partition, offset, seq)` it is handed.
pub struct Consuming {
    /// Set by [`Consuming::stop`]: the last acknowledged offset of each partition, to read up
    /// to before ending.
    until: Arc<Mutex<Option<HashMap<i32, i64>>>>,
    handle: std::thread::JoinHandle<Vec<(i32, i64, u64)>>,
}

impl Consuming {
    pub fn start(bootstrap: &str, topic: &str, partitions: i32) -> Consuming {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "ledger-running")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "100")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let until: Arc<Mutex<Option<HashMap<i32, i64>>>> = Arc::new(Mutex::new(None));
        let handle = std::thread::spawn({
            let until = until.clone();
            move || {
                let mut seen = Vec::new();
                let mut last: HashMap<i32, i64> = HashMap::new();
                let mut deadline = None;
                loop {
                    if let Some(want) = &*until.lock().unwrap() {
                        let d = *deadline
                            .get_or_insert_with(|| Instant::now() + Duration::from_secs(60));
                        let reached = want
                            .iter()
                            .all(|(p, o)| last.get(p).is_some_and(|l| l >= o));
                        if reached || Instant::now() > d {
                            break;
                        }
                    }
                    if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                        let v = String::from_utf8_lossy(m.payload().unwrap_or_default());
                        let seq = v
                            .strip_prefix("seq-")
                            .and_then(|s| s.parse().ok())
                            .expect("a seq- value");
                        seen.push((m.partition(), m.offset(), seq));
                        last.insert(m.partition(), m.offset());
                    }
                }
                seen
            }
        });
        Consuming { until, handle }
    }

    /// Ends once it has been handed the last acknowledged record of each partition in
    /// `ledger` (or after 60 s more), and returns what it saw.
    pub async fn stop(self, ledger: &Ledger) -> Vec<(i32, i64, u64)> {
        let mut want: HashMap<i32, i64> = HashMap::new();
        for a in &ledger.acks {
            let e = want.entry(a.partition).or_insert(a.offset);
            *e = (*e).max(a.offset);
        }
        *self.until.lock().unwrap() = Some(want);
        tokio::task::spawn_blocking(move || self.handle.join().expect("consumer thread"))
            .await
            .unwrap()
    }
}

/// What a running consumer saw compared with the log and the ledger: records it was handed
/// that the log does not hold there (read before they were committed, then lost), records
/// handed twice or out of offset order, and acknowledged records it never saw.
#[derive(Debug, Default)]
pub struct ReadVerdict {
    pub phantom: Vec<(i32, i64, u64)>,
    pub out_of_order: Vec<(i32, i64)>,
    pub missed: Vec<u64>,
}

impl ReadVerdict {
    pub fn is_clean(&self) -> bool {
        self.phantom.is_empty() && self.out_of_order.is_empty() && self.missed.is_empty()
    }
}

/// Checks `seen` (from [`Consuming::stop`]) against what the log holds and the ledger.
pub fn check_reads(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    ledger: &Ledger,
    seen: &[(i32, i64, u64)],
) -> ReadVerdict {
    let stored: HashMap<(i32, i64), u64> = read_all(bootstrap, topic, partitions)
        .into_iter()
        .flat_map(|(p, recs)| recs.into_iter().map(move |(o, seq)| ((p, o), seq)))
        .collect();
    let mut v = ReadVerdict::default();
    let mut last: HashMap<i32, i64> = HashMap::new();
    for &(p, o, seq) in seen {
        if stored.get(&(p, o)) != Some(&seq) {
            v.phantom.push((p, o, seq));
        }
        if last.get(&p).is_some_and(|l| *l >= o) {
            v.out_of_order.push((p, o));
        }
        last.insert(p, o);
    }
    let got: std::collections::HashSet<u64> = seen.iter().map(|(_, _, s)| *s).collect();
    v.missed = ledger
        .acks
        .iter()
        .filter(|a| !got.contains(&a.seq))
        .map(|a| a.seq)
        .collect();
    v.missed.sort_unstable();
    v
}

/// Reads every partition of `topic` from the beginning and classifies the ledger's records.
pub fn verify(bootstrap: &str, topic: &str, partitions: i32, ledger: &Ledger) -> Verdict {
    let stored = read_all(bootstrap, topic, partitions);
    classify(&stored, ledger)
}

/// Every `(offset, seq)` of each partition, from the beginning to the high watermark.
fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> BTreeMap<i32, Vec<(i64, u64)>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "ledger-verify")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut ends = BTreeMap::new();
    for p in 0..partitions {
        let (_, high) = c
            .fetch_watermarks(topic, p, Duration::from_secs(20))
            .expect("watermarks");
        ends.insert(p, high);
    }
    let mut stored: BTreeMap<i32, Vec<(i64, u64)>> = BTreeMap::new();
    let done = |stored: &BTreeMap<i32, Vec<(i64, u64)>>| {
        ends.iter().all(|(p, end)| {
            stored
                .get(p)
                .and_then(|v| v.last())
                .map_or(*end == 0, |(o, _)| o + 1 >= *end)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done(&stored) {
        assert!(Instant::now() < deadline, "could not read the topic back");
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            let seq: u64 = v
                .strip_prefix("seq-")
                .and_then(|s| s.parse().ok())
                .expect("a seq- value");
            stored
                .entry(m.partition())
                .or_default()
                .push((m.offset(), seq));
        }
    }
    stored
}

fn classify(stored: &BTreeMap<i32, Vec<(i64, u64)>>, ledger: &Ledger) -> Verdict {
    let mut at: HashMap<u64, Vec<(i32, i64)>> = HashMap::new();
    let mut verdict = Verdict::default();
    for (p, recs) in stored {
        let mut last = None;
        for (o, seq) in recs {
            at.entry(*seq).or_default().push((*p, *o));
            if last.is_some_and(|l| l >= *seq) {
                verdict.reordered.push((*p, *o));
            }
            last = Some(*seq);
        }
    }
    for (seq, places) in &at {
        if places.len() > 1 {
            verdict.duplicated.push(*seq);
            let mut offsets: Vec<i64> = places.iter().map(|(_, o)| *o).collect();
            offsets.sort_unstable();
            verdict.duplicated_at.insert(*seq, (places[0].0, offsets));
        }
    }
    for a in &ledger.acks {
        match at.get(&a.seq) {
            Some(places) if places.contains(&(a.partition, a.offset)) => verdict.kept += 1,
            // librdkafka's implicit acknowledgement: a batch whose own answer was lost (a
            // connection dropped) is reported delivered, without an offset (-1001), once a later
            // batch of the same idempotent producer is acknowledged. It counts as kept when it
            // is in its partition.
            Some(places) if a.offset < 0 && places.iter().any(|(p, _)| *p == a.partition) => {
                verdict.kept += 1
            }
            Some(places) => verdict.moved.push((a.seq, a.offset, places[0].1)),
            None => verdict.lost.push(a.seq),
        }
    }
    verdict.lost.sort_unstable();
    verdict.duplicated.sort_unstable();
    verdict
}

/// Duplicates the client made, not the cluster: every later copy of the value was written with
/// a higher producer epoch than the first. librdkafka bumps its producer epoch when a request
/// is refused with OUT_OF_ORDER_SEQUENCE_NUMBER behind an earlier failed one (say
/// NOT_ENOUGH_REPLICAS while an ISR was being restored) and numbers every unacknowledged
/// message again from 0, including one an earlier attempt had already written (librdkafka
/// issues 4953 and 4972; Apache Kafka brokers store the same duplicate). No broker can tell
/// such a copy from a new record. They are taken out of the verdict, with the reordering they
/// cause, and returned; a duplicate within one producer epoch stays (the broker's failure).
/// `log_dir(p)` is a partition directory holding the converged log.
pub fn take_client_resends(
    verdict: &mut Verdict,
    log_dir: impl Fn(i32) -> std::path::PathBuf,
) -> Vec<u64> {
    let mut resent = Vec::new();
    for (seq, (partition, offsets)) in &verdict.duplicated_at {
        let headers = stored_headers(&log_dir(*partition));
        let epoch_at = |o: i64| {
            headers
                .iter()
                .find(|h| h.base_offset <= o && o <= h.last_offset())
                .map(|h| h.producer_epoch)
        };
        let epochs: Vec<Option<i16>> = offsets.iter().map(|o| epoch_at(*o)).collect();
        let first = epochs[0];
        if first.is_some() && epochs[1..].iter().all(|e| e.is_some() && *e > first) {
            resent.push(*seq);
            verdict
                .reordered
                .retain(|(p, o)| !(p == partition && offsets[1..].contains(o)));
        }
    }
    verdict.duplicated.retain(|s| !resent.contains(s));
    for s in &resent {
        verdict.duplicated_at.remove(s);
    }
    resent
}

/// Every batch header of a partition directory's segments, in log order.
fn stored_headers(dir: &Path) -> Vec<sluice_log::batch::BatchHeader> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|f| f.extension().is_some_and(|e| e == "log"));
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).unwrap_or_default();
        for b in sluice_log::batch::Batches::new(&bytes) {
            let Ok((_, h, _)) = b else { break };
            out.push(h);
        }
    }
    out
}

/// A stored batch's identity: base offset, leader epoch, CRC.
pub type BatchId = (i64, i32, u32);

/// Every batch header (base offset, epoch, CRC) of a partition directory's segments.
pub fn stored_batches(dir: &Path) -> Vec<BatchId> {
    stored_headers(dir)
        .into_iter()
        .map(|h| (h.base_offset, h.partition_leader_epoch, h.crc))
        .collect()
}
