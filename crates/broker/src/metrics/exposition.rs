//! One scrape: every family the broker exports, written from its live state.
//!
//! Names and labels are those the JMX exporter's `kafka-2_0_0.yml` rules give Kafka's MBeans
//! (lower-cased `kafka_<domain>_<type>_<name>`; a meter's count as `..._total` without its
//! `PerSec`; a histogram's percentiles as a `quantile` label `0.50` … `0.999`; MBean keys such
//! as `topic`, `partition`, `request`, `version` as labels), and `kafka_exporter`'s for offsets
//! and lag. See docs/operations.md ("Monitoring the brokers") for the list.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use sluice_metrics::{Exposition, Kind};

use super::counters::{read, TopicCounters};
use super::lag::{self, Lag};
use super::requests::{Stage, QUANTILES};
use crate::cluster::Metadata;
use crate::replica::{Partition, PartitionView};
use crate::Broker;

/// The text `GET /metrics` answers now.
pub async fn render(broker: &Arc<Broker>) -> String {
    // The one part that may wait on other brokers (bounded), before anything is held.
    let lag = lag::gather(broker).await;
    let m = broker.cluster.metadata();
    let mut parts: Vec<(Arc<Partition>, PartitionView)> = broker
        .replicas
        .all()
        .into_iter()
        .map(|p| {
            let v = p.view(broker.id);
            (p, v)
        })
        .collect();
    parts.sort_by(|a, b| (&a.0.topic, a.0.index).cmp(&(&b.0.topic, b.0.index)));
    let mut e = Exposition::new();
    topic_metrics(&mut e, broker);
    request_metrics(&mut e, broker);
    replica_manager(&mut e, broker, &m, &parts);
    controller(&mut e, broker, &m);
    logs(&mut e, &parts);
    log_dirs(&mut e, broker);
    idle(&mut e, broker);
    exporter_topics(&mut e, broker, &m, &parts);
    exporter_groups(&mut e, &lag);
    e.finish()
}

type Pick = fn(&TopicCounters) -> &AtomicU64;

/// `kafka.server:type=BrokerTopicMetrics,name=<X>PerSec[,topic=<t>]`.
const TOPIC_FAMILIES: [(&str, &str, Pick); 8] = [
    (
        "kafka_server_brokertopicmetrics_messagesin_total",
        "Records appended as leader (MessagesInPerSec)",
        |c| &c.messages_in,
    ),
    (
        "kafka_server_brokertopicmetrics_bytesin_total",
        "Record batch bytes appended as leader (BytesInPerSec)",
        |c| &c.bytes_in,
    ),
    (
        "kafka_server_brokertopicmetrics_bytesout_total",
        "Record bytes sent to consumers (BytesOutPerSec)",
        |c| &c.bytes_out,
    ),
    (
        "kafka_server_brokertopicmetrics_bytesrejected_total",
        "Bytes of batches refused as larger than message.max.bytes (BytesRejectedPerSec)",
        |c| &c.bytes_rejected,
    ),
    (
        "kafka_server_brokertopicmetrics_failedproducerequests_total",
        "Partitions of produce requests refused for an unexpected reason (FailedProduceRequestsPerSec)",
        |c| &c.failed_produce,
    ),
    (
        "kafka_server_brokertopicmetrics_failedfetchrequests_total",
        "Partitions of fetch requests failed for an unexpected reason (FailedFetchRequestsPerSec)",
        |c| &c.failed_fetch,
    ),
    (
        "kafka_server_brokertopicmetrics_totalproducerequests_total",
        "Partitions of produce requests (TotalProduceRequestsPerSec)",
        |c| &c.total_produce,
    ),
    (
        "kafka_server_brokertopicmetrics_totalfetchrequests_total",
        "Partitions of fetch requests, consumers' and followers' (TotalFetchRequestsPerSec)",
        |c| &c.total_fetch,
    ),
];

fn topic_metrics(e: &mut Exposition, broker: &Broker) {
    let counters = &broker.replicas.counters;
    let topics = counters.topics();
    for (name, help, pick) in TOPIC_FAMILIES {
        let mut f = e.family(name, Kind::Counter, help);
        f.sample(&[], read(pick(&counters.all)) as f64);
        for (t, c) in &topics {
            f.sample(&[("topic", t)], read(pick(c)) as f64);
        }
    }
    e.counter(
        "kafka_server_brokertopicmetrics_replicationbytesin_total",
        "Record bytes appended as follower (ReplicationBytesInPerSec)",
        read(&counters.replication_bytes_in) as f64,
    );
    e.counter(
        "kafka_server_brokertopicmetrics_replicationbytesout_total",
        "Record bytes sent to followers (ReplicationBytesOutPerSec)",
        read(&counters.replication_bytes_out) as f64,
    );
}

/// `kafka.network:type=RequestMetrics,name=RequestsPerSec,request=<api>,version=<v>` and the
/// stage histograms (`name=TotalTimeMs,request=<api>`, ...), in milliseconds.
fn request_metrics(e: &mut Exposition, broker: &Broker) {
    let used: Vec<_> = broker.metrics.requests.used().collect();
    {
        let mut f = e.family(
            "kafka_network_requestmetrics_requests_total",
            Kind::Counter,
            "Requests answered, by API and version (RequestsPerSec)",
        );
        for s in &used {
            for (v, n) in s.versions() {
                f.sample(
                    &[("request", &s.name), ("version", &v.to_string())],
                    n as f64,
                );
            }
        }
    }
    let qs: Vec<f64> = QUANTILES.iter().map(|(q, _)| *q).collect();
    for stage in Stage::ALL {
        let mut f = e.family(stage.metric(), Kind::Summary, stage.help());
        for s in &used {
            let snap = s.stage(stage).snapshot(&qs);
            let labels = [("request", s.name.as_str())];
            for ((_, label), (_, v)) in QUANTILES.iter().zip(&snap.quantiles) {
                f.sample(&[("request", &s.name), ("quantile", label)], v / 1000.0);
            }
            f.suffixed("sum", &labels, snap.sum as f64 / 1000.0);
            f.suffixed("count", &labels, snap.count as f64);
        }
    }
}

/// `kafka.server:type=ReplicaManager`.
fn replica_manager(
    e: &mut Exposition,
    broker: &Broker,
    m: &Metadata,
    parts: &[(Arc<Partition>, PartitionView)],
) {
    let mut min_isr: HashMap<&str, usize> = HashMap::new();
    let (mut leaders, mut under, mut under_min, mut at_min) = (0, 0, 0, 0);
    for (p, v) in parts {
        let Some(l) = v.leading else { continue };
        leaders += 1;
        let min = *min_isr
            .entry(p.topic.as_str())
            .or_insert_with(|| broker.min_insync_replicas(&p.topic).max(1) as usize);
        under += usize::from(l.isr < l.replicas);
        under_min += usize::from(l.isr < min);
        at_min += usize::from(l.isr == min);
    }
    // Replicas assigned here that this broker cannot serve (their log could not be opened, or
    // its directory is offline).
    let held: std::collections::HashSet<(&str, i32)> = parts
        .iter()
        .map(|(p, _)| (p.topic.as_str(), p.index))
        .collect();
    let offline = m
        .topics
        .iter()
        .flat_map(|(t, tm)| tm.partitions.iter().map(move |(p, pm)| (t, p, pm)))
        .filter(|(t, p, pm)| pm.replicas.contains(&broker.id) && !held.contains(&(t.as_str(), **p)))
        .count();
    let g = |e: &mut Exposition, name: &str, help: &str, v: usize| e.gauge(name, help, v as f64);
    g(
        e,
        "kafka_server_replicamanager_partitioncount",
        "Partitions with a replica on this broker",
        parts.len(),
    );
    g(
        e,
        "kafka_server_replicamanager_leadercount",
        "Partitions this broker leads",
        leaders,
    );
    g(
        e,
        "kafka_server_replicamanager_underreplicatedpartitions",
        "Partitions led here with fewer in-sync replicas than replicas",
        under,
    );
    g(
        e,
        "kafka_server_replicamanager_underminisrpartitioncount",
        "Partitions led here with fewer in-sync replicas than min.insync.replicas",
        under_min,
    );
    g(
        e,
        "kafka_server_replicamanager_atminisrpartitioncount",
        "Partitions led here with exactly min.insync.replicas in-sync replicas",
        at_min,
    );
    g(
        e,
        "kafka_server_replicamanager_offlinereplicacount",
        "Replicas assigned to this broker that it cannot serve",
        offline,
    );
    e.counter(
        "kafka_server_replicamanager_isrshrinks_total",
        "ISR shrinks of partitions led here (IsrShrinksPerSec)",
        read(&broker.replicas.counters.isr_shrinks) as f64,
    );
    e.counter(
        "kafka_server_replicamanager_isrexpands_total",
        "ISR expansions of partitions led here (IsrExpandsPerSec)",
        read(&broker.replicas.counters.isr_expands) as f64,
    );
}

/// Partitions without a live leader, as the controller sees them.
fn offline_partitions(m: &Metadata) -> usize {
    m.topics
        .values()
        .flat_map(|t| t.partitions.values())
        .filter(|p| p.leader().is_none_or(|l| !m.brokers.contains_key(&l)))
        .count()
}

/// `kafka.controller:type=KafkaController`: the active controller's view; 0 on the others, as
/// Kafka reports them.
fn controller(e: &mut Exposition, broker: &Broker, m: &Metadata) {
    let active = broker.cluster.is_active_controller();
    let on_active = |v: usize| if active { v as f64 } else { 0.0 };
    e.gauge(
        "kafka_controller_kafkacontroller_activecontrollercount",
        "1 on the active controller, 0 on the other brokers",
        on_active(1),
    );
    e.gauge(
        "kafka_controller_kafkacontroller_offlinepartitionscount",
        "Partitions without a live leader (reported by the active controller)",
        on_active(offline_partitions(m)),
    );
    e.gauge(
        "kafka_controller_kafkacontroller_globalpartitioncount",
        "Partitions in the cluster (reported by the active controller)",
        on_active(m.topics.values().map(|t| t.partitions.len()).sum()),
    );
    e.gauge(
        "kafka_controller_kafkacontroller_globaltopiccount",
        "Topics in the cluster (reported by the active controller)",
        on_active(m.topics.len()),
    );
}

/// `kafka.log:type=Log,name=<X>,topic=<t>,partition=<p>` for every log held here.
fn logs(e: &mut Exposition, parts: &[(Arc<Partition>, PartitionView)]) {
    type Value = fn(&PartitionView) -> u64;
    const FAMILIES: [(&str, &str, Value); 4] = [
        (
            "kafka_log_log_size",
            "Bytes of the partition's log segments",
            |v| v.size_bytes,
        ),
        (
            "kafka_log_log_logendoffset",
            "Offset the next record appended gets",
            |v| v.offsets.log_end,
        ),
        (
            "kafka_log_log_logstartoffset",
            "First offset that can be read",
            |v| v.offsets.log_start,
        ),
        (
            "kafka_log_log_numlogsegments",
            "Segments of the partition's log",
            |v| v.segments as u64,
        ),
    ];
    let labels: Vec<String> = parts.iter().map(|(p, _)| p.index.to_string()).collect();
    for (name, help, value) in FAMILIES {
        let mut f = e.family(name, Kind::Gauge, help);
        for ((p, v), index) in parts.iter().zip(&labels) {
            f.sample(
                &[("topic", &p.topic), ("partition", index)],
                value(v) as f64,
            );
        }
    }
}

/// Free and total bytes of the filesystem holding each of `log.dirs` (Kafka exports no such
/// figure; operators add node_exporter), for the disk-filling alert: a full log directory
/// refuses produce with KAFKA_STORAGE_ERROR. statvfs at scrape time, one call per directory.
fn log_dirs(e: &mut Exposition, broker: &Broker) {
    let dirs: Vec<(String, rustix::fs::StatVfs)> = broker
        .config
        .log_dirs
        .iter()
        .filter_map(|d| Some((d.display().to_string(), rustix::fs::statvfs(d).ok()?)))
        .collect();
    let mut f = e.family(
        "sluice_log_dir_free_bytes",
        Kind::Gauge,
        "Bytes available to the broker on the filesystem holding the log directory",
    );
    for (dir, st) in &dirs {
        f.sample(
            &[("dir", dir)],
            st.f_bavail.saturating_mul(st.f_frsize) as f64,
        );
    }
    let mut f = e.family(
        "sluice_log_dir_size_bytes",
        Kind::Gauge,
        "Size of the filesystem holding the log directory, bytes",
    );
    for (dir, st) in &dirs {
        f.sample(
            &[("dir", dir)],
            st.f_blocks.saturating_mul(st.f_frsize) as f64,
        );
    }
}

/// `NetworkProcessorAvgIdlePercent` (recent) and `RequestHandlerAvgIdlePercent` (its mean
/// rate, as the exporter's percent rule reads it) from the runtime's busy time.
fn idle(e: &mut Exposition, broker: &Broker) {
    let idle = &broker.metrics.idle;
    if let Some(v) = idle.recent() {
        e.gauge(
            "kafka_network_socketserver_networkprocessoravgidlepercent",
            "Fraction of time the broker's worker threads were idle over the last interval between scrapes (at least 1 s)",
            v,
        );
    }
    if let Some(v) = idle.since_start() {
        e.gauge(
            "kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent",
            "Fraction of time the broker's worker threads were idle since it started",
            v,
        );
    }
}

/// `kafka_exporter`'s broker and partition families: the controller reports the cluster's,
/// each leader its partitions'.
fn exporter_topics(
    e: &mut Exposition,
    broker: &Broker,
    m: &Metadata,
    parts: &[(Arc<Partition>, PartitionView)],
) {
    if broker.cluster.is_active_controller() {
        e.gauge(
            "kafka_brokers",
            "Brokers registered in the cluster",
            m.brokers.len() as f64,
        );
        let mut f = e.family(
            "kafka_topic_partitions",
            Kind::Gauge,
            "Partitions of the topic",
        );
        for (t, tm) in &m.topics {
            f.sample(&[("topic", t)], tm.partitions.len() as f64);
        }
    }
    let led: Vec<(&Partition, &PartitionView, String)> = parts
        .iter()
        .filter(|(_, v)| v.leading.is_some())
        .map(|(p, v)| (&**p, v, p.index.to_string()))
        .collect();
    if led.is_empty() {
        return;
    }
    type Value = fn(&PartitionView, i32) -> f64;
    const FAMILIES: [(&str, &str, Value); 7] = [
        (
            "kafka_topic_partition_current_offset",
            "Latest offset of the partition (its high watermark)",
            |v, _| v.offsets.high_watermark as f64,
        ),
        (
            "kafka_topic_partition_oldest_offset",
            "Oldest offset of the partition (its log start offset)",
            |v, _| v.offsets.log_start as f64,
        ),
        (
            "kafka_topic_partition_leader",
            "Leader broker id of the partition",
            |_, id| f64::from(id),
        ),
        (
            "kafka_topic_partition_replicas",
            "Replicas of the partition",
            |v, _| v.leading.map_or(0, |l| l.replicas) as f64,
        ),
        (
            "kafka_topic_partition_in_sync_replica",
            "In-sync replicas of the partition",
            |v, _| v.leading.map_or(0, |l| l.isr) as f64,
        ),
        (
            "kafka_topic_partition_leader_is_preferred",
            "1 if the partition is led by its preferred replica",
            |v, _| f64::from(u8::from(v.leading.is_some_and(|l| l.preferred))),
        ),
        (
            "kafka_topic_partition_under_replicated_partition",
            "1 if the partition has fewer in-sync replicas than replicas",
            |v, _| f64::from(u8::from(v.leading.is_some_and(|l| l.isr < l.replicas))),
        ),
    ];
    for (name, help, value) in FAMILIES {
        let mut f = e.family(name, Kind::Gauge, help);
        for (p, v, index) in &led {
            f.sample(
                &[("topic", &p.topic), ("partition", index)],
                value(v, broker.id),
            );
        }
    }
}

/// `kafka_exporter`'s consumer group families, for the groups coordinated here.
fn exporter_groups(e: &mut Exposition, lag: &Lag) {
    if lag.groups.is_empty() {
        return;
    }
    {
        let mut f = e.family(
            "kafka_consumergroup_members",
            Kind::Gauge,
            "Members of the consumer group",
        );
        for g in &lag.groups {
            f.sample(&[("consumergroup", &g.group)], g.members as f64);
        }
    }
    let mut current = Vec::new();
    let mut lags = Vec::new();
    // Per group and topic: (committed sum, lag sum, whether any lag is known).
    let mut sums: Vec<(&str, &str, i64, i64, bool)> = Vec::new();
    for g in &lag.groups {
        for (t, p, committed) in &g.offsets {
            let index = p.to_string();
            current.push((g.group.as_str(), t.as_str(), index.clone(), *committed));
            let behind = lag.latest.get(&(t.clone(), *p)).map(|end| end - committed);
            if let Some(l) = behind {
                lags.push((g.group.as_str(), t.as_str(), index, l));
            }
            match sums.last_mut() {
                Some(s) if s.0 == g.group && s.1 == t => {
                    s.2 += committed;
                    if let Some(l) = behind {
                        s.3 += l;
                        s.4 = true;
                    }
                }
                _ => sums.push((
                    &g.group,
                    t,
                    *committed,
                    behind.unwrap_or(0),
                    behind.is_some(),
                )),
            }
        }
    }
    let partition_family =
        |e: &mut Exposition, name: &str, help: &str, rows: &[(&str, &str, String, i64)]| {
            let mut f = e.family(name, Kind::Gauge, help);
            for (g, t, p, v) in rows {
                f.sample(
                    &[("consumergroup", g), ("topic", t), ("partition", p)],
                    *v as f64,
                );
            }
        };
    partition_family(
        e,
        "kafka_consumergroup_current_offset",
        "Committed offset of the consumer group on the partition",
        &current,
    );
    partition_family(
        e,
        "kafka_consumergroup_lag",
        "Records of the partition the consumer group has not committed (latest offset minus committed)",
        &lags,
    );
    {
        let mut f = e.family(
            "kafka_consumergroup_current_offset_sum",
            Kind::Gauge,
            "Committed offsets of the consumer group on the topic, summed",
        );
        for (g, t, c, _, _) in &sums {
            f.sample(&[("consumergroup", g), ("topic", t)], *c as f64);
        }
    }
    let mut f = e.family(
        "kafka_consumergroup_lag_sum",
        Kind::Gauge,
        "Lag of the consumer group on the topic, summed over its partitions",
    );
    for (g, t, _, l, known) in &sums {
        if *known {
            f.sample(&[("consumergroup", g), ("topic", t)], *l as f64);
        }
    }
}
