//! ControlledShutdown (v1–v3): a broker about to stop asks the controller to move its
//! leaderships away and take it out of every ISR, so producers and consumers switch to the new
//! leaders before the old one disappears (Kafka's `controlled.shutdown.enable`).
//!
//! ```text
//!  stopping broker ──ControlledShutdown──► controller: Cluster::drain(id)
//!                                           └─ the controller's next pass elects other ISR
//!                                              members and shrinks the ISRs
//!  answer: once no partition it leads has another live in-sync replica (remaining: those)
//! ```
//!
//! The stopping broker sends it from [`crate::BrokerServer::shutdown`]; when it is itself the
//! controller it drains itself the same way without a request.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::controlled_shutdown_response::RemainingPartition;
use kafka_protocol::messages::{
    ApiKey, BrokerId, ControlledShutdownRequest, ControlledShutdownResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;

/// How long the controller waits for the leaderships to move before it answers anyway.
const DRAIN_WAIT: Duration = Duration::from_secs(10);

pub async fn handle(broker: &Broker, req: ControlledShutdownRequest) -> ControlledShutdownResponse {
    let mut resp = ControlledShutdownResponse::default();
    let m = broker.cluster.metadata();
    if m.controller != Some(broker.id) {
        resp.error_code = ResponseError::NotController.code();
        return resp;
    }
    // As Kafka's controller: a broker that is not registered is not available, and a request
    // from an older registration of it (v2+ carry the epoch; -1 means unknown) is stale.
    match m.broker_epochs.get(&req.broker_id.0) {
        None => {
            resp.error_code = ResponseError::BrokerNotAvailable.code();
            return resp;
        }
        Some(&current) if req.broker_epoch != -1 && req.broker_epoch < current => {
            resp.error_code = ResponseError::StaleBrokerEpoch.code();
            return resp;
        }
        Some(_) => {}
    }
    let remaining = drain(broker, req.broker_id.0, req.broker_epoch).await;
    resp.remaining_partitions = remaining
        .into_iter()
        .map(|(t, p)| {
            let mut r = RemainingPartition::default();
            r.topic_name = TopicName(StrBytes::from_string(t));
            r.partition_index = p;
            r
        })
        .collect();
    resp
}

/// Marks `stopping` (in its registration `epoch`; below 0, the one the metadata has now) as
/// draining and waits until every partition it leads that has another live in-sync replica is
/// led elsewhere; returns the partitions it still leads.
pub async fn drain(broker: &Broker, stopping: i32, epoch: i64) -> Vec<(String, i32)> {
    tracing::info!(
        broker = stopping,
        epoch,
        "controlled shutdown: moving leaderships away"
    );
    broker.cluster.drain(stopping, epoch);
    let mut rx = broker.cluster.subscribe();
    let deadline = tokio::time::Instant::now() + DRAIN_WAIT;
    loop {
        let m = broker.cluster.metadata();
        let mut movable = 0;
        let mut remaining = Vec::new();
        for (t, tm) in &m.topics {
            for (p, pm) in &tm.partitions {
                let Some(s) = &pm.state else { continue };
                if s.leader != stopping {
                    continue;
                }
                if s.isr
                    .iter()
                    .any(|r| *r != stopping && m.brokers.contains_key(r))
                {
                    movable += 1;
                }
                remaining.push((t.clone(), *p));
            }
        }
        if movable == 0 {
            return remaining;
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            return remaining;
        }
    }
}

/// From the stopping broker: asks the controller to drain this broker (or drains itself when it
/// is the controller), a few times if the controller moves meanwhile.
pub async fn request(broker: &Broker) {
    for _ in 0..3 {
        let m = broker.cluster.metadata();
        let Some(controller) = m.controller else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if controller == broker.id {
            let left = drain(broker, broker.id, -1).await;
            tracing::info!(remaining = left.len(), "controlled shutdown done");
            return;
        }
        let Some((host, addr)) = crate::replica::fetcher::broker_address(broker, controller).await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut req = ControlledShutdownRequest::default();
        req.broker_id = BrokerId(broker.id);
        req.broker_epoch = m.broker_epochs.get(&broker.id).copied().unwrap_or(-1);
        let answer = async {
            let mut c = broker
                .connector
                .connect(
                    &host,
                    addr,
                    &format!("broker-{}-shutdown", broker.id),
                    Duration::from_secs(5),
                    1 << 20,
                )
                .await?;
            c.call::<_, ControlledShutdownResponse>(ApiKey::ControlledShutdown, 3, &req, DRAIN_WAIT)
                .await
        };
        match answer.await {
            Ok(r) if r.error_code == 0 => {
                tracing::info!(
                    remaining = r.remaining_partitions.len(),
                    "controlled shutdown done"
                );
                return;
            }
            Ok(r) => {
                tracing::info!(
                    error = r.error_code,
                    "controlled shutdown refused; retrying"
                )
            }
            Err(e) => tracing::info!(error = %e, "controlled shutdown failed; retrying"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tracing::warn!("controlled shutdown did not complete; stopping anyway");
}
