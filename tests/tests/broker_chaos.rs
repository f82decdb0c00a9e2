//! A randomized fault schedule against three brokers (replication factor 3,
//! `min.insync.replicas=2`) while an idempotent `acks=all` producer runs: each fault hits one
//! broker — SIGKILL and restart, SIGTERM and restart, SIGSTOP past or within its session, cut
//! off from the network past or within its session (fault relays in front of its listener and
//! its coordinator connection), or the machine lost (SIGKILL, log directory deleted, restart)
//! — and the cluster heals (every ISR
//! full again) before the next. Afterwards every acknowledged record is classified (kept, lost,
//! moved, duplicated, reordered), all replicas must hold the same batches, and the longest
//! write outage per fault kind is reported.
//!
//! CI runs it for `SLUICE_CHAOS_SECONDS` (default 60); `scripts/chaos.sh` runs it for longer.
//! `SLUICE_CHAOS_SEED` replays a schedule.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::ledger::{self, Producing};
use common::replication::{log_tails, relay_bootstrap, start_behind_relays};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use sluice_e2e::KafkaCluster;

const TOPIC: &str = "chaos";
const PARTITIONS: i32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    Kill,
    Stop,
    Pause,
    Cut,
    Wipe,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Waits until every partition has a leader and a full ISR, as broker `via` sees it.
async fn healed(cluster: &KafkaCluster, via: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let ok = (0..PARTITIONS).all(|p| {
            let (leader, isr) = cluster.leader(via, TOPIC, p);
            leader >= 0 && isr.len() == 3
        });
        if ok {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn randomized_faults_lose_no_acknowledged_record() {
    let seconds: u64 = std::env::var("SLUICE_CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let seed: u64 = std::env::var("SLUICE_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("chaos: {seconds} s, seed {seed} (SLUICE_CHAOS_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    // Each broker behind two fault relays: one its clients and peers reach it through (its
    // advertised listener), one it reaches its coordinator through.
    let settings = "default.replication.factor=3\nmin.insync.replicas=2\noffsets.topic.replication.factor=3\nreplica.lag.time.max.ms=5000\n";
    let (mut cluster, relays) = start_behind_relays(settings);
    let bootstrap = relay_bootstrap(&relays);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let r = admin
        .create_topics(
            [&NewTopic::new(
                TOPIC,
                PARTITIONS,
                TopicReplication::Fixed(3),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        )
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    assert!(healed(&cluster, 1, Duration::from_secs(30)).await);

    let producing = Producing::start(&bootstrap, TOPIC, PARTITIONS, Duration::from_millis(2));
    let started = Instant::now();
    let mut faults: Vec<(Fault, i32, Instant, Instant)> = Vec::new();
    tokio::time::sleep(Duration::from_secs(2)).await;
    while started.elapsed() < Duration::from_secs(seconds) {
        let victim = 1 + rng.below(3) as i32;
        let fault = [
            Fault::Kill,
            Fault::Stop,
            Fault::Pause,
            Fault::Cut,
            Fault::Wipe,
        ][rng.below(5) as usize];
        let down = Duration::from_millis(500 + rng.below(3500));
        let at = Instant::now();
        eprintln!(
            "fault {}: {fault:?} of broker {victim} for {down:?}",
            faults.len() + 1
        );
        match fault {
            Fault::Kill => {
                cluster.broker(victim).kill();
                tokio::time::sleep(down).await;
                cluster.broker(victim).spawn();
            }
            Fault::Stop => {
                cluster.broker(victim).stop();
                tokio::time::sleep(down).await;
                cluster.broker(victim).spawn();
            }
            Fault::Pause => {
                // Up to 8 s: past the 6 s session or not.
                cluster.broker(victim).freeze(true);
                tokio::time::sleep(down * 2).await;
                cluster.broker(victim).freeze(false);
            }
            Fault::Cut => {
                // Up to 8 s, like a pause, but the process runs on and sees only timeouts.
                let (zk, front) = &relays[(victim - 1) as usize];
                zk.cut();
                front.cut();
                tokio::time::sleep(down * 2).await;
                zk.heal();
                front.heal();
            }
            Fault::Wipe => {
                cluster.broker(victim).kill();
                let dir = cluster.broker(victim).log_dir.clone();
                let _ = std::fs::remove_dir_all(&dir);
                tokio::time::sleep(down).await;
                cluster.broker(victim).spawn();
            }
        }
        if !matches!(fault, Fault::Pause | Fault::Cut) {
            cluster
                .broker(victim)
                .wait_until_listening(Duration::from_secs(30));
        }
        let via = if victim == 1 { 2 } else { 1 };
        assert!(
            healed(&cluster, via, Duration::from_secs(60)).await,
            "the cluster did not heal after {fault:?} of broker {victim}:\n{}",
            log_tails(&cluster, 150)
        );
        faults.push((fault, victim, at, Instant::now()));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ledger = producing.stop().await;

    // The longest time without an acknowledgement during each kind of fault.
    let mut acks: Vec<Instant> = ledger.acks.iter().map(|a| a.at).collect();
    acks.sort();
    let mut worst: BTreeMap<Fault, Duration> = BTreeMap::new();
    for (fault, _, from, to) in &faults {
        let mut prev = *from;
        let mut longest = Duration::ZERO;
        for t in acks.iter().filter(|t| **t > *from && **t <= *to) {
            longest = longest.max(t.saturating_duration_since(prev));
            prev = *t;
        }
        longest = longest.max(to.saturating_duration_since(prev));
        let w = worst.entry(*fault).or_default();
        *w = (*w).max(longest);
    }
    let verdict = ledger::verify(&bootstrap, TOPIC, PARTITIONS, &ledger);
    eprintln!(
        "chaos: {} faults in {:?}; {} acknowledged, {} failed deliveries; kept {}, lost {}, moved {}, duplicated {}, reordered {}; longest write outage per fault: {worst:?}",
        faults.len(),
        started.elapsed(),
        ledger.acks.len(),
        ledger.failures.len(),
        verdict.kept,
        verdict.lost.len(),
        verdict.moved.len(),
        verdict.duplicated.len(),
        verdict.reordered.len()
    );
    // Where in the schedule each misplaced acknowledgement happened, for the diagnosis.
    for (seq, acked, stored) in &verdict.moved {
        let ack = ledger.acks.iter().find(|a| a.seq == *seq);
        let near = ack.and_then(|a| {
            faults
                .iter()
                .position(|(_, _, from, to)| a.at >= *from && a.at <= *to + Duration::from_secs(5))
        });
        eprintln!(
            "moved: seq {seq} (partition {:?}) acknowledged at offset {acked}, stored at {stored}; acknowledged {:?} after the start, during or just after fault {:?}",
            ack.map(|a| a.partition),
            ack.map(|a| a.at.saturating_duration_since(started)),
            near.map(|i| (i + 1, faults[i].0, faults[i].1))
        );
    }
    assert!(verdict.is_clean(), "{verdict:?}");
    assert_eq!(verdict.kept, ledger.acks.len());
    // Replicas converge.
    for b in &mut cluster.brokers {
        b.stop();
    }
    for p in 0..PARTITIONS {
        let copies: Vec<Vec<ledger::BatchId>> = cluster
            .brokers
            .iter()
            .map(|b| ledger::stored_batches(&b.log_dir.join(format!("{TOPIC}-{p}"))))
            .collect();
        assert!(
            copies.windows(2).all(|w| w[0] == w[1]),
            "{TOPIC}-{p}: replicas differ ({} / {} / {} batches)",
            copies[0].len(),
            copies[1].len(),
            copies[2].len()
        );
    }
}
