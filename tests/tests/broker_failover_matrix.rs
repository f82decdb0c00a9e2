//! Kafka's replication test matrix: each kind of failure — a clean shutdown (SIGTERM, the
//! broker stays down a while), SIGKILL (stays down a while), a clean bounce (SIGTERM and
//! straight back), a hard bounce five times in a row (SIGKILL and straight back) — of the broker
//! that leads a partition, then of the controller, while an idempotent `acks=all` producer and
//! a consumer run against a three-partition topic with replication factor 3 and
//! `min.insync.replicas=2`. Each failure hits whichever broker holds the role at that moment,
//! and the cluster heals (every ISR full) before the next.
//!
//! Pass: every acknowledged record is stored exactly once, at its acknowledged offset, in
//! order (a copy the client itself wrote again under a new producer epoch is counted and
//! reported, not failed: librdkafka renumbers unacknowledged messages after an epoch bump, and
//! no broker can recognise them, `ledger::take_client_resends`); the consumer was handed only records the log still holds there (nothing read before
//! it was committed), in order, and every acknowledged one; after quiescence all replicas hold
//! the same batches (base offset, epoch, CRC).

mod common;

use std::time::{Duration, Instant};

use common::ledger::{self, Consuming, Producing};
use common::replication::{
    assert_replicas_converged, controller, create_topic, log_tails, take_client_resends,
};
use sluice_e2e::KafkaCluster;

const TOPIC: &str = "matrix";
const PARTITIONS: i32 = 3;
const SETTINGS: &str = "default.replication.factor=3\nmin.insync.replicas=2\noffsets.topic.replication.factor=3\nreplica.lag.time.max.ms=5000\n";

#[derive(Debug, Clone, Copy)]
enum Role {
    /// The leader of partition 0.
    Leader,
    Controller,
}

#[derive(Debug, Clone, Copy)]
enum Failure {
    CleanShutdown,
    Kill,
    CleanBounce,
    HardBounce,
}

/// Every partition has a leader and a full ISR, and there is a controller, as a running
/// broker sees it.
async fn healed(cluster: &mut KafkaCluster, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let via = cluster
            .brokers
            .iter_mut()
            .find_map(|b| b.is_running().then_some(b.id))
            .expect("a running broker");
        let ok = (0..PARTITIONS).all(|p| {
            let (leader, isr) = cluster.leader(via, TOPIC, p);
            leader >= 0 && isr.len() == 3
        }) && controller(cluster, via) >= 0;
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster did not heal: {:?}\n{}",
            (0..PARTITIONS)
                .map(|p| cluster.leader(via, TOPIC, p))
                .collect::<Vec<_>>(),
            log_tails(cluster, 40)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Which broker holds `role` now (waiting, up to 30 s, while it is being elected).
async fn holder(cluster: &mut KafkaCluster, role: Role) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let via = cluster
            .brokers
            .iter_mut()
            .find_map(|b| b.is_running().then_some(b.id))
            .expect("a running broker");
        let id = match role {
            Role::Leader => cluster.leader(via, TOPIC, 0).0,
            Role::Controller => controller(cluster, via),
        };
        if id > 0 {
            return id;
        }
        assert!(
            Instant::now() < deadline,
            "no {role:?} for 30 s\n{}",
            log_tails(cluster, 40)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn matrix(role: Role) {
    let mut cluster = KafkaCluster::start(1, 3, SETTINGS);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, TOPIC, PARTITIONS, 3).await;
    healed(&mut cluster, Duration::from_secs(30)).await;
    let producing = Producing::start(&bootstrap, TOPIC, PARTITIONS, Duration::from_millis(2));
    let consuming = Consuming::start(&bootstrap, TOPIC, PARTITIONS);
    tokio::time::sleep(Duration::from_secs(1)).await;

    for failure in [
        Failure::CleanShutdown,
        Failure::Kill,
        Failure::CleanBounce,
        Failure::HardBounce,
    ] {
        let rounds = if matches!(failure, Failure::HardBounce) {
            5
        } else {
            1
        };
        for _ in 0..rounds {
            let victim = holder(&mut cluster, role).await;
            eprintln!("{failure:?} of the {role:?} (broker {victim})");
            let b = cluster.broker(victim);
            match failure {
                Failure::CleanShutdown | Failure::CleanBounce => {
                    assert_eq!(b.stop(), Some(0), "a clean shutdown exits 0");
                }
                Failure::Kill | Failure::HardBounce => b.kill(),
            }
            if matches!(failure, Failure::CleanShutdown | Failure::Kill) {
                // Down long enough for its partitions to move and for writes to go on
                // without it.
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            let b = cluster.broker(victim);
            b.spawn();
            b.wait_until_listening(Duration::from_secs(30));
            if matches!(failure, Failure::HardBounce) {
                tokio::time::sleep(Duration::from_millis(500)).await;
            } else {
                healed(&mut cluster, Duration::from_secs(60)).await;
            }
        }
        healed(&mut cluster, Duration::from_secs(60)).await;
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let ledger = producing.stop().await;
    let seen = consuming.stop(&ledger).await;
    let mut verdict = ledger::verify(&bootstrap, TOPIC, PARTITIONS, &ledger);
    let resent = take_client_resends(&mut cluster, TOPIC, &mut verdict);
    let reads = ledger::check_reads(&bootstrap, TOPIC, PARTITIONS, &ledger, &seen);
    eprintln!(
        "{role:?}: {} acknowledged, {} failed deliveries, {} consumed; kept {}, lost {}, moved {}, duplicated {}, reordered {}, re-sent by the client {}; consumer: {} phantom, {} out of order, {} missed",
        ledger.acks.len(),
        ledger.failures.len(),
        seen.len(),
        verdict.kept,
        verdict.lost.len(),
        verdict.moved.len(),
        verdict.duplicated.len(),
        verdict.reordered.len(),
        resent.len(),
        reads.phantom.len(),
        reads.out_of_order.len(),
        reads.missed.len()
    );
    assert!(verdict.is_clean(), "{verdict:?}");
    assert_eq!(verdict.kept, ledger.acks.len());
    assert!(
        ledger.failures.is_empty(),
        "{:?}",
        &ledger.failures[..ledger.failures.len().min(5)]
    );
    assert!(reads.is_clean(), "{reads:?}");
    assert_replicas_converged(&mut cluster, TOPIC, PARTITIONS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_failure_of_a_partition_leader_loses_nothing() {
    matrix(Role::Leader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_failure_of_the_controller_loses_nothing() {
    matrix(Role::Controller).await;
}
