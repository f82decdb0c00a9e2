//! The admin requests librdkafka has no call for (ElectLeaders, the reassignment APIs) go
//! straight to the controller over the project's Kafka client module: Metadata from the
//! bootstrap brokers names the controller and every broker's address.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};

use anyhow::{bail, Context, Result};
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
use sluice_kafka::Conn;

const CLIENT_ID: &str = "sluice-admin";

/// A topic's partitions and their replicas, as Metadata answers.
pub type Layout = BTreeMap<String, BTreeMap<i32, Vec<i32>>>;

/// What the cluster looks like from the bootstrap brokers.
#[derive(Debug)]
pub struct Cluster {
    pub controller: i32,
    pub brokers: BTreeMap<i32, SocketAddr>,
    pub topics: Layout,
    /// Each partition's leader (-1 when it has none) and in-sync replicas.
    pub isr: BTreeMap<(String, i32), (i32, Vec<i32>)>,
}

fn resolve(host_port: &str) -> Option<SocketAddr> {
    host_port.to_socket_addrs().ok()?.next()
}

/// Metadata (all topics) from the first bootstrap broker that answers.
pub fn cluster(bootstrap: &str) -> Result<Cluster> {
    let mut last = None;
    for server in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let Some(addr) = resolve(server) else {
            last = Some(anyhow::anyhow!("cannot resolve {server}"));
            continue;
        };
        let attempt = (|| -> Result<Cluster> {
            let mut c = Conn::connect(addr, CLIENT_ID)?;
            let mut req = MetadataRequest::default();
            req.topics = None;
            let m: MetadataResponse = c.call(ApiKey::Metadata, 9, &req)?;
            let brokers = m
                .brokers
                .iter()
                .filter_map(|b| Some((b.node_id.0, resolve(&format!("{}:{}", b.host, b.port))?)))
                .collect();
            let isr = m
                .topics
                .iter()
                .filter_map(|t| Some((t.name.as_ref()?.0.to_string(), &t.partitions)))
                .flat_map(|(name, parts)| {
                    parts.iter().map(move |p| {
                        (
                            (name.clone(), p.partition_index),
                            (p.leader_id.0, p.isr_nodes.iter().map(|b| b.0).collect()),
                        )
                    })
                })
                .collect();
            let topics = m
                .topics
                .iter()
                .filter_map(|t| {
                    let name = t.name.as_ref()?.0.to_string();
                    let parts = t
                        .partitions
                        .iter()
                        .map(|p| {
                            (
                                p.partition_index,
                                p.replica_nodes.iter().map(|b| b.0).collect(),
                            )
                        })
                        .collect();
                    Some((name, parts))
                })
                .collect();
            Ok(Cluster {
                controller: m.controller_id.0,
                brokers,
                topics,
                isr,
            })
        })();
        match attempt {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("--bootstrap-server names no broker")))
}

/// A connection to the controller.
pub fn connect(c: &Cluster) -> Result<Conn> {
    if c.controller < 0 {
        bail!("the cluster has no controller right now");
    }
    let addr = c
        .brokers
        .get(&c.controller)
        .with_context(|| format!("controller {} is not in the broker list", c.controller))?;
    Ok(Conn::connect(*addr, CLIENT_ID)?)
}
