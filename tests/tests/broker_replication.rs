//! Replication and failover with real brokers: three brokers, replication factor 3,
//! `min.insync.replicas=2`, an idempotent `acks=all` producer running through the faults, and
//! a check that every acknowledged record is read back once, at its acknowledged offset, in
//! order, and that all replicas end up holding the same batches.

mod common;

use std::time::Duration;

use common::ledger::{self, Producing};
use common::replication::{assert_replicas_converged, create_topic, wait_for_leader};
use rdkafka::config::ClientConfig;
use sluice_e2e::KafkaCluster;

const REPLICATED: &str = "default.replication.factor=3\nmin.insync.replicas=2\noffsets.topic.replication.factor=3\nnum.partitions=3\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acks_all_records_survive_sigkill_of_a_leader_and_replicas_converge() {
    let mut cluster = KafkaCluster::start(1, 3, REPLICATED);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "logs", 3, 3).await;
    let leader = wait_for_leader(&cluster, 1, "logs", 0, -1, 3).await;
    let producing = Producing::start(&bootstrap, "logs", 3, Duration::from_millis(2));
    tokio::time::sleep(Duration::from_secs(3)).await;

    let killed_at = std::time::Instant::now();
    cluster.broker(leader).kill();
    let via = if leader == 1 { 2 } else { 1 };
    let new_leader = wait_for_leader(&cluster, via, "logs", 0, leader, 2).await;
    let failover = killed_at.elapsed();
    tokio::time::sleep(Duration::from_secs(4)).await;

    cluster.broker(leader).spawn();
    cluster
        .broker(leader)
        .wait_until_listening(Duration::from_secs(30));
    // Back in every ISR before the producer stops.
    for p in 0..3 {
        wait_for_leader(&cluster, via, "logs", p, -1, 3).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ledger = producing.stop().await;
    let (outage, _) = ledger.longest_outage();
    eprintln!(
        "leader {leader} killed; {new_leader} led partition 0 after {failover:?}; {} acknowledged, {} failed, longest write outage {outage:?}",
        ledger.acks.len(),
        ledger.failures.len()
    );
    assert!(
        ledger.failures.is_empty(),
        "deliveries failed: {:?}",
        &ledger.failures[..ledger.failures.len().min(5)]
    );
    let verdict = ledger::verify(&bootstrap, "logs", 3, &ledger);
    assert!(verdict.is_clean(), "{verdict:?}");
    assert_eq!(verdict.kept, ledger.acks.len());
    assert_replicas_converged(&mut cluster, "logs", 3);
}

/// An operator deletes `/controller` to move the role: another broker takes it with a newer
/// epoch, the old controller notices it no longer holds the role and writes nothing more, and
/// partition leadership keeps working (a broker killed afterwards is still failed over).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_controller_znode_moves_the_role_and_fences_the_old_controller() {
    use zookeeper_client as zk;
    let mut cluster = KafkaCluster::start(1, 3, REPLICATED);
    let zkc = zk::Client::connect(&cluster.coord.connect_string())
        .await
        .unwrap();
    // `{"version":1,"brokerid":N,"timestamp":"..."}`
    let controller_of = |data: &[u8]| -> i32 {
        let text = String::from_utf8_lossy(data);
        let after = text.split("\"brokerid\":").nth(1).expect("brokerid");
        after
            .trim_start()
            .split(|c: char| !c.is_ascii_digit() && c != '-')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (data, _) = zkc.get_data("/controller").await.unwrap();
    let old = controller_of(&data);
    let (epoch, _) = zkc.get_data("/controller_epoch").await.unwrap();
    let epoch: i32 = String::from_utf8_lossy(&epoch).trim().parse().unwrap();
    zkc.delete("/controller", None).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (new, new_epoch) = loop {
        if let Ok((data, _)) = zkc.get_data("/controller").await {
            let (e, _) = zkc.get_data("/controller_epoch").await.unwrap();
            break (
                controller_of(&data),
                String::from_utf8_lossy(&e).trim().parse::<i32>().unwrap(),
            );
        }
        assert!(std::time::Instant::now() < deadline, "no new controller");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(new_epoch > epoch, "epoch {epoch} -> {new_epoch}");
    let _ = new;
    // Whoever leads now, leadership still moves when a leader dies.
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "after", 1, 3).await;
    let leader = wait_for_leader(&cluster, 1, "after", 0, -1, 3).await;
    cluster.broker(leader).kill();
    let via = if leader == 1 { 2 } else { 1 };
    wait_for_leader(&cluster, via, "after", 0, leader, 2).await;
    // The old controller learned it was replaced (unless it won the role back).
    let (data, _) = zkc.get_data("/controller").await.unwrap();
    if controller_of(&data) != old {
        let log = cluster.broker(old).log_text();
        assert!(
            log.contains("no longer controller"),
            "broker {old} never noticed it was replaced"
        );
    }
}

/// With two of three brokers down a partition has one in-sync replica: `acks=all` is refused
/// with NOT_ENOUGH_REPLICAS (nothing is written), `acks=1` still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_is_refused_below_min_insync_replicas() {
    let mut cluster = KafkaCluster::start(1, 3, REPLICATED);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "strict", 1, 3).await;
    let leader = wait_for_leader(&cluster, 1, "strict", 0, -1, 3).await;
    let others: Vec<i32> = (1..=3).filter(|b| *b != leader).collect();
    for b in &others {
        cluster.broker(*b).stop();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while cluster.leader(leader, "strict", 0).1.len() > 1 {
        assert!(std::time::Instant::now() < deadline, "ISR never shrank");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // librdkafka retries NOT_ENOUGH_REPLICAS until its message timeout; the answer itself is
    // read with a plain request.
    let addr = cluster.broker(leader).addr();
    let (all, one, appended) = tokio::task::spawn_blocking(move || {
        let produce = |acks: i16, value: &[u8]| {
            sluice_e2e::kafka::KafkaConn::connect(addr).produce("strict", acks, &[value])
        };
        // The ISR read above comes from coord; the leader applies the shrink a moment later.
        // Until it has, acks=all is appended and then answered NOT_ENOUGH_REPLICAS_AFTER_APPEND
        // (the record stays, as in Kafka): count those, they move the next offset.
        let mut appended = 0i64;
        let all = loop {
            let answer = produce(-1, b"x");
            if answer.0 != 20 || appended == 50 {
                break answer;
            }
            appended += 1;
            std::thread::sleep(Duration::from_millis(100));
        };
        (all, produce(1, b"y"), appended)
    })
    .await
    .unwrap();
    assert_eq!(all.0, 19, "NOT_ENOUGH_REPLICAS for acks=all: {all:?}");
    assert_eq!(
        one,
        (0, appended),
        "acks=1 works, and the refused record was never written"
    );
}

/// The group coordinator (the leader of the group's `__consumer_offsets` partition) is killed
/// while a client commits offsets in a loop: the group's committed offset afterwards is never
/// below the last commit that was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_consumer_rewinds_past_an_acknowledged_commit_across_coordinator_failover() {
    use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, RequestKind, ResponseKind};
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::{Offset, TopicPartitionList};

    let mut cluster = KafkaCluster::start(1, 3, REPLICATED);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "clicks", 1, 3).await;
    wait_for_leader(&cluster, 1, "clicks", 0, -1, 3).await;
    let addr = cluster.brokers[0].addr();
    let coordinator = tokio::task::spawn_blocking(move || {
        let mut c = sluice_e2e::kafka::KafkaConn::connect(addr);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut req = FindCoordinatorRequest::default();
            req.key = kafka_protocol::protocol::StrBytes::from_static_str("committer");
            if let ResponseKind::FindCoordinator(r) = c.call(
                ApiKey::FindCoordinator,
                2,
                RequestKind::FindCoordinator(req),
            ) {
                if r.error_code == 0 {
                    return r.node_id.0;
                }
            }
            assert!(std::time::Instant::now() < deadline, "no coordinator");
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();

    let committer = {
        let bootstrap = bootstrap.clone();
        std::thread::spawn(move || {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", "committer")
                .set("enable.auto.commit", "false")
                .create()
                .unwrap();
            let mut acknowledged = 0i64;
            let started = std::time::Instant::now();
            let mut offset = 1i64;
            while started.elapsed() < Duration::from_secs(8) {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset("clicks", 0, Offset::Offset(offset))
                    .unwrap();
                if c.commit(&tpl, CommitMode::Sync).is_ok() {
                    acknowledged = offset;
                }
                offset += 1;
            }
            (acknowledged, offset - 1)
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.broker(coordinator).kill();
    let (acknowledged, last_sent) = tokio::task::spawn_blocking(move || committer.join().unwrap())
        .await
        .unwrap();
    assert!(acknowledged > 0, "no commit was acknowledged");
    let b = bootstrap.clone();
    let committed = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &b)
            .set("group.id", "committer")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("clicks", 0);
        let got = c
            .committed_offsets(tpl, Duration::from_secs(20))
            .expect("committed offsets");
        match got.find_partition("clicks", 0).unwrap().offset() {
            Offset::Offset(o) => o,
            other => panic!("{other:?}"),
        }
    })
    .await
    .unwrap();
    eprintln!("coordinator {coordinator} killed; last acknowledged commit {acknowledged}, last sent {last_sent}, committed now {committed}");
    assert!(
        committed >= acknowledged && committed <= last_sent,
        "committed {committed}, acknowledged {acknowledged}, sent up to {last_sent}"
    );
}

/// SIGTERM of a partition's leader (controlled shutdown): leaderships move before it stops, so
/// the acks=all producer barely notices; then a rolling restart of every broker under load
/// loses nothing and fails no delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controlled_shutdown_and_a_rolling_restart_lose_nothing() {
    let mut cluster = KafkaCluster::start(1, 3, REPLICATED);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "rolling", 3, 3).await;
    for p in 0..3 {
        wait_for_leader(&cluster, 1, "rolling", p, -1, 3).await;
    }
    let producing = Producing::start(&bootstrap, "rolling", 3, Duration::from_millis(2));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut outages = Vec::new();
    for id in 1..=3 {
        let before = producing.sent.load(std::sync::atomic::Ordering::SeqCst);
        cluster.broker(id).stop();
        let via = if id == 1 { 2 } else { 1 };
        for p in 0..3 {
            wait_for_leader(&cluster, via, "rolling", p, id, 2).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        cluster.broker(id).spawn();
        cluster
            .broker(id)
            .wait_until_listening(Duration::from_secs(30));
        for p in 0..3 {
            wait_for_leader(&cluster, via, "rolling", p, -1, 3).await;
        }
        outages.push(before);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let ledger = producing.stop().await;
    let (outage, _) = ledger.longest_outage();
    eprintln!(
        "rolling restart: {} acknowledged, {} failed, longest write outage {outage:?}",
        ledger.acks.len(),
        ledger.failures.len()
    );
    assert!(
        ledger.failures.is_empty(),
        "deliveries failed: {:?}",
        &ledger.failures[..ledger.failures.len().min(5)]
    );
    let verdict = ledger::verify(&bootstrap, "rolling", 3, &ledger);
    assert!(verdict.is_clean(), "{verdict:?}");
    assert!(
        outage < Duration::from_secs(2),
        "a controlled shutdown stopped writes for {outage:?}"
    );
    assert_replicas_converged(&mut cluster, "rolling", 3);
}

/// A leader paused (SIGSTOP) past its coordinator session is replaced; once resumed it
/// acknowledges no acks=all write (it can no longer reach the ISR), learns it was replaced,
/// truncates what only it had and rejoins the ISR as a follower.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_leader_acknowledges_nothing_after_it_was_replaced() {
    let mut cluster = KafkaCluster::start(1, 3, REPLICATED);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "paused", 1, 3).await;
    let leader = wait_for_leader(&cluster, 1, "paused", 0, -1, 3).await;
    let producing = Producing::start(&bootstrap, "paused", 1, Duration::from_millis(2));
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.broker(leader).freeze(true);
    let via = if leader == 1 { 2 } else { 1 };
    let new_leader = wait_for_leader(&cluster, via, "paused", 0, leader, 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.broker(leader).freeze(false);
    // Straight to the old leader, before it may have caught up with the news.
    let addr = cluster.broker(leader).addr();
    let answer = tokio::task::spawn_blocking(move || {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_protocol::messages::{
            ApiKey, ProduceRequest, RequestKind, ResponseKind, TopicName,
        };
        let mut pd = PartitionProduceData::default();
        pd.index = 0;
        pd.records = Some(sluice_e2e::kafka::idempotent_batch(-1, -1, -1, &[b"stale"]));
        let mut td = TopicProduceData::default();
        td.name = TopicName(kafka_protocol::protocol::StrBytes::from_static_str(
            "paused",
        ));
        td.partition_data = vec![pd];
        let mut req = ProduceRequest::default();
        req.acks = -1;
        req.timeout_ms = 3000;
        req.topic_data = vec![td];
        let mut c = sluice_e2e::kafka::KafkaConn::connect(addr);
        match c.call(ApiKey::Produce, 9, RequestKind::Produce(req)) {
            ResponseKind::Produce(r) => r.responses[0].partition_responses[0].error_code,
            other => panic!("{other:?}"),
        }
    })
    .await
    .unwrap();
    assert_ne!(
        answer, 0,
        "a replaced leader acknowledged an acks=all write"
    );
    wait_for_leader(&cluster, via, "paused", 0, -1, 3).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ledger = producing.stop().await;
    eprintln!(
        "leader {leader} paused, {new_leader} took over; the old leader answered {answer}; {} acknowledged, {} failed",
        ledger.acks.len(),
        ledger.failures.len()
    );
    assert!(
        ledger.failures.is_empty(),
        "{:?}",
        &ledger.failures[..ledger.failures.len().min(5)]
    );
    let verdict = ledger::verify(&bootstrap, "paused", 1, &ledger);
    assert!(verdict.is_clean(), "{verdict:?}");
    assert_replicas_converged(&mut cluster, "paused", 1);
}

/// A broker's machine is lost: the process killed and its log directory gone. Started again
/// with an empty disk, it copies every partition back from the leaders and rejoins the ISRs;
/// nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_with_a_wiped_disk_re_replicates_everything() {
    let mut cluster = KafkaCluster::start(1, 3, REPLICATED);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "wiped", 3, 3).await;
    for p in 0..3 {
        wait_for_leader(&cluster, 1, "wiped", p, -1, 3).await;
    }
    let producing = Producing::start(&bootstrap, "wiped", 3, Duration::from_millis(2));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let victim = 2;
    cluster.broker(victim).kill();
    let dir = cluster.broker(victim).log_dir.clone();
    std::fs::remove_dir_all(&dir).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.broker(victim).spawn();
    cluster
        .broker(victim)
        .wait_until_listening(Duration::from_secs(30));
    for p in 0..3 {
        wait_for_leader(&cluster, 1, "wiped", p, -1, 3).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ledger = producing.stop().await;
    assert!(
        ledger.failures.is_empty(),
        "{:?}",
        &ledger.failures[..ledger.failures.len().min(5)]
    );
    let verdict = ledger::verify(&bootstrap, "wiped", 3, &ledger);
    assert!(verdict.is_clean(), "{verdict:?}");
    assert_replicas_converged(&mut cluster, "wiped", 3);
}

/// With unclean leader election off, a partition whose in-sync replicas are all gone stays
/// offline rather than handing leadership to a replica that lacks acknowledged records; when
/// the last in-sync replica returns it leads again with every record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_unclean_election_a_partition_waits_for_its_last_in_sync_replica() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let extra = "default.replication.factor=2\nmin.insync.replicas=1\noffsets.topic.replication.factor=2\nunclean.leader.election.enable=false\n";
    let mut cluster = KafkaCluster::start(1, 2, extra);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "clean", 1, 2).await;
    let leader = wait_for_leader(&cluster, 1, "clean", 0, -1, 2).await;
    let follower = 3 - leader;
    let send = |bootstrap: String, v: &'static str| async move {
        let p: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("acks", "all")
            .set("message.timeout.ms", "5000")
            .create()
            .unwrap();
        p.send(
            FutureRecord::<(), _>::to("clean").partition(0).payload(v),
            Duration::from_secs(6),
        )
        .await
        .map(|d| d.offset)
    };
    assert_eq!(send(bootstrap.clone(), "a").await.unwrap(), 0);
    // The follower goes; the leader alone is the ISR and takes "b".
    cluster.broker(follower).stop();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while cluster.leader(leader, "clean", 0).1 != vec![leader] {
        assert!(std::time::Instant::now() < deadline, "ISR never shrank");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let leader_addr = cluster.broker(leader).bootstrap();
    assert_eq!(send(leader_addr, "b").await.unwrap(), 1);
    // Now the leader goes too, and the follower (without "b") comes back: no leader.
    cluster.broker(leader).kill();
    cluster.broker(follower).spawn();
    cluster
        .broker(follower)
        .wait_until_listening(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        cluster.leader(follower, "clean", 0).0,
        -1,
        "an out-of-sync replica was elected"
    );
    let follower_addr = cluster.broker(follower).bootstrap();
    assert!(
        send(follower_addr, "c").await.is_err(),
        "written with no leader"
    );
    // The last in-sync replica returns: it leads, with both records.
    cluster.broker(leader).spawn();
    cluster
        .broker(leader)
        .wait_until_listening(Duration::from_secs(30));
    wait_for_leader(&cluster, follower, "clean", 0, -1, 1).await;
    let ledger_like = {
        let bootstrap = bootstrap.clone();
        tokio::task::spawn_blocking(move || {
            use rdkafka::consumer::{BaseConsumer, Consumer};
            use rdkafka::message::Message;
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", "clean-check")
                .create()
                .unwrap();
            let mut tpl = rdkafka::TopicPartitionList::new();
            tpl.add_partition_offset("clean", 0, rdkafka::Offset::Beginning)
                .unwrap();
            c.assign(&tpl).unwrap();
            let mut got = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while got.len() < 2 && std::time::Instant::now() < deadline {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                    got.push(String::from_utf8_lossy(m.payload().unwrap()).into_owned());
                }
            }
            got
        })
        .await
        .unwrap()
    };
    assert_eq!(ledger_like, ["a", "b"]);
}

/// A leader cut off from the coordinator and from every other broker and client (fault
/// proxies in front of its listener and its coordinator connection; its process keeps
/// running): it is replaced once its session expires, acknowledges no acks=all write meanwhile
/// (not even one sent to it directly), and after the heal it rejoins as a follower with
/// nothing acknowledged lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_cut_off_from_everyone_loses_no_acknowledged_write() {
    use common::replication::{relay_bootstrap, start_behind_relays};

    let (mut cluster, relays) = start_behind_relays(REPLICATED);
    let bootstrap = relay_bootstrap(&relays);
    create_topic(&bootstrap, "cut", 1, 3).await;
    let leader = wait_for_leader(&cluster, 1, "cut", 0, -1, 3).await;
    let producing = Producing::start(&bootstrap, "cut", 1, Duration::from_millis(2));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (zk, front) = &relays[(leader - 1) as usize];
    zk.cut();
    front.cut();
    // Straight to the cut-off leader's own port: it still believes it leads.
    let addr = cluster.broker(leader).addr();
    let direct = tokio::task::spawn_blocking(move || {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_protocol::messages::{
            ApiKey, ProduceRequest, RequestKind, ResponseKind, TopicName,
        };
        let mut pd = PartitionProduceData::default();
        pd.index = 0;
        pd.records = Some(sluice_e2e::kafka::idempotent_batch(
            -1,
            -1,
            -1,
            &[b"isolated"],
        ));
        let mut td = TopicProduceData::default();
        td.name = TopicName(kafka_protocol::protocol::StrBytes::from_static_str("cut"));
        td.partition_data = vec![pd];
        let mut req = ProduceRequest::default();
        req.acks = -1;
        req.timeout_ms = 4000;
        req.topic_data = vec![td];
        let mut c = sluice_e2e::kafka::KafkaConn::connect(addr);
        match c.call(ApiKey::Produce, 9, RequestKind::Produce(req)) {
            ResponseKind::Produce(r) => r.responses[0].partition_responses[0].error_code,
            other => panic!("{other:?}"),
        }
    })
    .await
    .unwrap();
    assert_ne!(direct, 0, "a cut-off leader acknowledged an acks=all write");
    let via = if leader == 1 { 2 } else { 1 };
    let new_leader = wait_for_leader(&cluster, via, "cut", 0, leader, 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    zk.heal();
    front.heal();
    wait_for_leader(&cluster, via, "cut", 0, -1, 3).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ledger = producing.stop().await;
    eprintln!(
        "leader {leader} cut off, {new_leader} took over; direct write answered {direct}; {} acknowledged, {} failed",
        ledger.acks.len(),
        ledger.failures.len()
    );
    let verdict = ledger::verify(&bootstrap, "cut", 1, &ledger);
    assert!(verdict.is_clean(), "{verdict:?}");
    assert_replicas_converged(&mut cluster, "cut", 1);
}

/// The coordinator's Raft leader is killed at the same moment as a partition leader, and later
/// every coord node is restarted one after another, all under load: failover still happens,
/// and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coordinator_failures_during_broker_failover_lose_nothing() {
    let mut cluster = KafkaCluster::start(3, 3, REPLICATED);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "coordfail", 2, 3).await;
    for p in 0..2 {
        wait_for_leader(&cluster, 1, "coordfail", p, -1, 3).await;
    }
    let producing = Producing::start(&bootstrap, "coordfail", 2, Duration::from_millis(2));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let leader = wait_for_leader(&cluster, 1, "coordfail", 0, -1, 3).await;
    let coord_leader = cluster.coord.wait_for_leader(Duration::from_secs(10));
    cluster.coord.nodes[coord_leader].kill();
    cluster.broker(leader).kill();
    let via = if leader == 1 { 2 } else { 1 };
    let new_leader = wait_for_leader(&cluster, via, "coordfail", 0, leader, 2).await;
    cluster.coord.start_node(coord_leader);
    cluster.broker(leader).spawn();
    cluster
        .broker(leader)
        .wait_until_listening(Duration::from_secs(30));
    for p in 0..2 {
        wait_for_leader(&cluster, via, "coordfail", p, -1, 3).await;
    }
    // Every coord node restarted in turn.
    for i in 0..3 {
        cluster.coord.restart(i);
        cluster.coord.wait_until_all_serve(Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for p in 0..2 {
        wait_for_leader(&cluster, via, "coordfail", p, -1, 3).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ledger = producing.stop().await;
    let (outage, _) = ledger.longest_outage();
    eprintln!(
        "broker {leader} and coord node {} killed together, {new_leader} took over; {} acknowledged, {} failed, longest write outage {outage:?}",
        coord_leader + 1,
        ledger.acks.len(),
        ledger.failures.len()
    );
    assert!(
        ledger.failures.is_empty(),
        "{:?}",
        &ledger.failures[..ledger.failures.len().min(5)]
    );
    let verdict = ledger::verify(&bootstrap, "coordfail", 2, &ledger);
    assert!(verdict.is_clean(), "{verdict:?}");
    assert_replicas_converged(&mut cluster, "coordfail", 2);
}

/// Sends `req` to the current controller (as Metadata names it), via broker `via`.
fn to_controller(
    cluster: &KafkaCluster,
    via: i32,
    key: kafka_protocol::messages::ApiKey,
    version: i16,
    req: kafka_protocol::messages::RequestKind,
) -> kafka_protocol::messages::ResponseKind {
    let controller = common::replication::controller(cluster, via);
    let addr = cluster
        .brokers
        .iter()
        .find(|b| b.id == controller)
        .expect("controller")
        .addr();
    sluice_e2e::kafka::KafkaConn::connect(addr).call(key, version, req)
}

/// A follower restarts, then the leader is killed; afterwards leadership moves every two
/// seconds for a minute (the replica order rotated, then a preferred election), all under an
/// acks=all producer: nothing acknowledged is lost and the replicas converge.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leadership_moving_every_two_seconds_keeps_replicas_identical() {
    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    use kafka_protocol::messages::{
        AlterPartitionReassignmentsRequest, ApiKey, BrokerId, ElectLeadersRequest, RequestKind,
        ResponseKind, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;

    let mut cluster = KafkaCluster::start(1, 3, REPLICATED);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "moving", 1, 3).await;
    let leader = wait_for_leader(&cluster, 1, "moving", 0, -1, 3).await;
    let producing = Producing::start(&bootstrap, "moving", 1, Duration::from_millis(2));
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A follower restarts; once it is back in sync, the leader is killed.
    let follower = (1..=3).find(|b| *b != leader).unwrap();
    cluster.broker(follower).kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.broker(follower).spawn();
    cluster
        .broker(follower)
        .wait_until_listening(Duration::from_secs(30));
    wait_for_leader(&cluster, 1, "moving", 0, -1, 3).await;
    cluster.broker(leader).kill();
    let via = if leader == 1 { 2 } else { 1 };
    wait_for_leader(&cluster, via, "moving", 0, leader, 2).await;
    cluster.broker(leader).spawn();
    cluster
        .broker(leader)
        .wait_until_listening(Duration::from_secs(30));
    wait_for_leader(&cluster, via, "moving", 0, -1, 3).await;

    let mut order = vec![1, 2, 3];
    let mut moves = 0;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        order.rotate_left(1);
        let want = order[0];
        let (c, target) = (&cluster, order.clone());
        let mut rp = ReassignablePartition::default();
        rp.partition_index = 0;
        rp.replicas = Some(target.iter().map(|b| BrokerId(*b)).collect());
        let mut rt = ReassignableTopic::default();
        rt.name = TopicName(StrBytes::from_static_str("moving"));
        rt.partitions = vec![rp];
        let mut req = AlterPartitionReassignmentsRequest::default();
        req.timeout_ms = 5000;
        req.topics = vec![rt];
        match to_controller(
            c,
            via,
            ApiKey::AlterPartitionReassignments,
            0,
            RequestKind::AlterPartitionReassignments(req),
        ) {
            ResponseKind::AlterPartitionReassignments(r) => assert_eq!(r.error_code, 0, "{r:?}"),
            other => panic!("{other:?}"),
        }
        // The metadata must show the new order before the election uses it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut tp = TopicPartitions::default();
            tp.topic = TopicName(StrBytes::from_static_str("moving"));
            tp.partitions = vec![0];
            let mut req = ElectLeadersRequest::default();
            req.election_type = 0;
            req.timeout_ms = 5000;
            req.topic_partitions = Some(vec![tp]);
            let code = match to_controller(
                c,
                via,
                ApiKey::ElectLeaders,
                2,
                RequestKind::ElectLeaders(req),
            ) {
                ResponseKind::ElectLeaders(r) => {
                    r.replica_election_results[0].partition_result[0].error_code
                }
                other => panic!("{other:?}"),
            };
            if cluster.leader(via, "moving", 0).0 == want {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "leadership never moved to {want} (last answer {code})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moves += 1;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    wait_for_leader(&cluster, via, "moving", 0, -1, 3).await;
    let ledger = producing.stop().await;
    eprintln!(
        "{moves} leader changes; {} acknowledged, {} failed",
        ledger.acks.len(),
        ledger.failures.len()
    );
    assert!(moves >= 20, "only {moves} leader changes");
    let verdict = ledger::verify(&bootstrap, "moving", 1, &ledger);
    assert!(verdict.is_clean(), "{verdict:?}");
    assert_replicas_converged(&mut cluster, "moving", 1);
}

/// ControlledShutdown is checked as Kafka's controller checks it: sent to a broker that is not
/// the controller it is NOT_CONTROLLER; for a broker id that is not registered,
/// BROKER_NOT_AVAILABLE; with the epoch of an older registration, STALE_BROKER_EPOCH — and none
/// of them moves a leadership.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controlled_shutdown_refuses_unknown_brokers_and_stale_epochs() {
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::{
        ApiKey, BrokerId, ControlledShutdownRequest, RequestKind, ResponseKind,
    };
    let cluster = KafkaCluster::start(1, 3, REPLICATED);
    create_topic(&cluster.bootstrap(), "steady", 3, 3).await;
    for p in 0..3 {
        wait_for_leader(&cluster, 1, "steady", p, -1, 3).await;
    }
    let before: Vec<i32> = (0..3).map(|p| cluster.leader(1, "steady", p).0).collect();
    let controller = common::replication::controller(&cluster, 1);
    let other = (1..=3).find(|id| *id != controller).unwrap();
    let ask = |to: i32, id: i32, epoch: i64| {
        let b = cluster.brokers.iter().find(|b| b.id == to).unwrap();
        let mut c = sluice_e2e::kafka::KafkaConn::connect(b.addr());
        let mut req = ControlledShutdownRequest::default();
        req.broker_id = BrokerId(id);
        req.broker_epoch = epoch;
        match c.call(
            ApiKey::ControlledShutdown,
            3,
            RequestKind::ControlledShutdown(req),
        ) {
            ResponseKind::ControlledShutdown(r) => r.error_code,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        ask(other, other, -1),
        ResponseError::NotController.code(),
        "to a broker that is not the controller"
    );
    assert_eq!(
        ask(controller, 42, -1),
        ResponseError::BrokerNotAvailable.code(),
        "for an unregistered broker"
    );
    // Registration epochs are the czxid of /brokers/ids/<id>: 1 is older than any of them.
    assert_eq!(
        ask(controller, other, 1),
        ResponseError::StaleBrokerEpoch.code(),
        "with an older registration's epoch"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Vec<i32> = (0..3).map(|p| cluster.leader(1, "steady", p).0).collect();
    assert_eq!(
        before, after,
        "a refused controlled shutdown moved leaderships"
    );
}
