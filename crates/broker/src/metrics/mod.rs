//! The broker's metrics, served on `metrics.prometheus.listener` in the Prometheus text format
//! with the names dashboards for Kafka already use: Kafka's MBeans as the JMX exporter's
//! common configuration (`kafka-2_0_0.yml`) turns them into Prometheus names, and
//! `kafka_exporter`'s names for offsets and consumer lag.
//!
//! ```text
//!  produce / fetch / replica fetcher ─► counters (atomics per topic and over all)
//!  server.rs (each request's stages) ─► requests (per API: versions, stage summaries)
//!  tokio runtime busy time ──────────► idle
//!                      GET /metrics ─► exposition::render ─► reads the above, each partition's
//!                      (sluice_metrics    offsets and role, the metadata (controller), the
//!                       ::http)           groups' committed offsets (lag: ListOffsets to other
//!                                         leaders, bounded) ─► text
//! ```
//!
//! Nothing on the produce or fetch path takes a lock for the metrics; a scrape reads one entry
//! per partition, topic, group commit and API, never records or files. Which broker reports a
//! cluster-wide series is fixed so that `sum()` over brokers is right: the active controller
//! reports the controller's gauges (0 elsewhere, as Kafka does), `kafka_brokers` and
//! `kafka_topic_partitions`; a partition's leader its `kafka_topic_partition_*` series; a
//! group's coordinator its `kafka_consumergroup_*` series.

pub mod counters;
pub mod exposition;
pub mod idle;
pub mod lag;
pub mod requests;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::Broker;

/// The figures kept for the metrics besides the partitions' counters
/// ([`crate::replica::ReplicaManager::counters`]).
#[derive(Debug, Default)]
pub struct BrokerMetrics {
    pub requests: requests::RequestMetrics,
    pub idle: idle::RuntimeIdle,
}

/// Serves `GET /metrics` on `listener` until the task is aborted.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener) {
    sluice_metrics::http::serve(
        listener,
        move || {
            let broker = broker.clone();
            async move { exposition::render(&broker).await }
        },
        std::future::pending(),
    )
    .await;
}

/// Binds the metrics endpoint's address (`host:port`; port 0 takes a free one).
pub async fn bind(host: &str, port: u16) -> std::io::Result<TcpListener> {
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let sock: SocketAddr = tokio::net::lookup_host(&addr)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{addr}: no address")))?;
    TcpListener::bind(sock).await
}
