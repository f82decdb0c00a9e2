//! In-process coordinator nodes on loopback port 0, for tests that drive them with real
//! ZooKeeper clients.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use sluice_config::CoordConfig;
use sluice_coord::raft::{Listeners, PeerAddrs, RaftNodeConfig};
use sluice_coord::server::{CoordServer, ServerSettings};

/// Settings as a `zookeeper.properties` with these extra lines would give (tickTime 100 ms, so
/// sessions may time out after 200 ms).
pub fn settings(node_id: u64, extra: &str) -> ServerSettings {
    let text = format!(
        "dataDir=/unused\nclientPort=2181\ntickTime=100\n4lw.commands.whitelist=*\n{extra}"
    );
    let cfg = CoordConfig::from_bytes(Path::new("test.properties"), text.as_bytes())
        .expect("test config")
        .config;
    ServerSettings::from_config(&cfg, node_id)
}

fn loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind loopback")
}

pub struct Standalone {
    pub server: CoordServer,
    pub dir: tempfile::TempDir,
}

impl Standalone {
    pub fn connect_string(&self) -> String {
        self.server.client_addr().to_string()
    }
}

pub async fn standalone(extra: &str) -> Standalone {
    let dir = tempfile::tempdir().unwrap();
    let raft = RaftNodeConfig::standalone(1, dir.path(), dir.path());
    let s = settings(1, extra);
    let server = CoordServer::start_with(s, raft, loopback(), None)
        .await
        .expect("start standalone");
    Standalone { server, dir }
}

pub struct Ensemble {
    pub nodes: Vec<Option<CoordServer>>,
    pub dirs: Vec<tempfile::TempDir>,
}

impl Ensemble {
    pub fn connect_string(&self) -> String {
        self.nodes
            .iter()
            .flatten()
            .map(|n| n.client_addr().to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn node(&self, i: usize) -> &CoordServer {
        self.nodes[i].as_ref().expect("node running")
    }

    pub fn leader(&self) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.as_ref().is_some_and(|n| n.raft().is_leader()))
    }
}

/// `n` in-process nodes forming one ensemble.
pub async fn ensemble(n: u64) -> Ensemble {
    let mut members = BTreeMap::new();
    let mut listeners = Vec::new();
    for id in 1..=n {
        let peer = loopback();
        let election = loopback();
        members.insert(
            id,
            PeerAddrs::new(
                peer.local_addr().unwrap().to_string(),
                election.local_addr().unwrap().to_string(),
            ),
        );
        listeners.push(Listeners { peer, election });
    }
    let mut nodes = Vec::new();
    let mut dirs = Vec::new();
    let starts: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let id = i as u64 + 1;
            let dir = tempfile::tempdir().unwrap();
            let mut raft = RaftNodeConfig::standalone(id, dir.path(), dir.path());
            raft.members = members.clone();
            let mut s = settings(id, "initLimit=5\nsyncLimit=5\n");
            s.standalone = false;
            dirs.push(dir);
            tokio::spawn(async move {
                CoordServer::start_with(s, raft, loopback(), Some(l))
                    .await
                    .expect("start node")
            })
        })
        .collect();
    for s in starts {
        nodes.push(Some(s.await.unwrap()));
    }
    let e = Ensemble { nodes, dirs };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while e.leader().is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no leader elected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    e
}

pub async fn connect(hosts: &str) -> zookeeper_client::Client {
    zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(4))
        .connect(hosts)
        .await
        .unwrap_or_else(|e| panic!("connect to {hosts}: {e}"))
}
