//! In-process ensembles on loopback with a toy key-value application: replication, forwarding
//! from followers, leader failover, restart from disk, catch-up by snapshot, standalone mode.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::raft::{
    Application, Listeners, LogOptions, NodeId, PeerAddrs, ProposeError, RaftNode, RaftNodeConfig,
    RaftTiming, Role, SnapshotWriter,
};

/// `key=value` payloads; the response is the previous value. Snapshot: `key=value` lines.
#[derive(Debug, Default)]
struct Kv {
    map: Mutex<BTreeMap<String, String>>,
}

impl Kv {
    fn get(&self, k: &str) -> Option<String> {
        self.map.lock().unwrap().get(k).cloned()
    }
    fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }
    fn dump(&self) -> BTreeMap<String, String> {
        self.map.lock().unwrap().clone()
    }
}

impl Application for Kv {
    fn apply(&self, _term: u64, _index: u64, payload: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(payload);
        let (k, v) = text.split_once('=').unwrap_or((&text, ""));
        let prev = self.map.lock().unwrap().insert(k.into(), v.into());
        prev.unwrap_or_default().into_bytes()
    }
    fn snapshot(&self) -> SnapshotWriter {
        let map = self.map.lock().unwrap().clone();
        Box::new(move || {
            map.iter()
                .map(|(k, v)| format!("{k}={v}\n"))
                .collect::<String>()
                .into_bytes()
        })
    }
    fn restore(&self, data: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(data).map_err(|e| e.to_string())?;
        let mut map = self.map.lock().unwrap();
        map.clear();
        for line in text.lines() {
            let (k, v) = line.split_once('=').ok_or("bad snapshot line")?;
            map.insert(k.into(), v.into());
        }
        Ok(())
    }
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Fails the test instead of hanging it.
async fn bounded<F: Future>(secs: u64, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("test took too long")
}

async fn eventually(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Test timing: production timers, shorter waiting bounds.
fn timing() -> RaftTiming {
    RaftTiming {
        propose_timeout: Duration::from_secs(5),
        read_barrier_timeout: Duration::from_secs(5),
        install_snapshot_timeout: Duration::from_secs(5),
        ..RaftTiming::default()
    }
}

struct Cluster {
    _dir: tempfile::TempDir,
    root: PathBuf,
    members: BTreeMap<NodeId, PeerAddrs>,
    observers: BTreeMap<NodeId, PeerAddrs>,
    log: LogOptions,
    nodes: BTreeMap<NodeId, RaftNode>,
    apps: BTreeMap<NodeId, Arc<Kv>>,
}

impl Cluster {
    async fn start(n: u64, log: LogOptions) -> Cluster {
        Self::start_with_observers(n, 0, log).await
    }

    /// `voters` voting members (ids 1..) and `observers` learners (the ids after them).
    async fn start_with_observers(voters: u64, observers: u64, log: LogOptions) -> Cluster {
        init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let mut listeners = BTreeMap::new();
        let mut members = BTreeMap::new();
        let mut observer_addrs = BTreeMap::new();
        for id in 1..=voters + observers {
            let peer = TcpListener::bind("127.0.0.1:0").unwrap();
            let election = TcpListener::bind("127.0.0.1:0").unwrap();
            let addrs = PeerAddrs::new(
                peer.local_addr().unwrap().to_string(),
                election.local_addr().unwrap().to_string(),
            );
            if id <= voters {
                members.insert(id, addrs);
            } else {
                observer_addrs.insert(id, addrs);
            }
            listeners.insert(id, Listeners { peer, election });
        }
        let mut c = Cluster {
            _dir: dir,
            root,
            members,
            observers: observer_addrs,
            log,
            nodes: BTreeMap::new(),
            apps: BTreeMap::new(),
        };
        for (id, l) in listeners {
            c.start_node(id, Some(l)).await;
        }
        c
    }

    fn config(&self, id: NodeId) -> RaftNodeConfig {
        RaftNodeConfig {
            id,
            members: self.members.clone(),
            observers: self.observers.clone(),
            data_dir: self.root.join(format!("n{id}/data")),
            log_dir: self.root.join(format!("n{id}/log")),
            timing: timing(),
            log: self.log.clone(),
            min_free_bytes: 0,
        }
    }

    /// Starts (or restarts) node `id` with a fresh application on its directories.
    async fn start_node(&mut self, id: NodeId, listeners: Option<Listeners>) {
        let listeners = listeners.unwrap_or_else(|| {
            let a = self
                .members
                .get(&id)
                .unwrap_or_else(|| &self.observers[&id]);
            Listeners {
                peer: TcpListener::bind(&a.peer).unwrap(),
                election: TcpListener::bind(&a.election).unwrap(),
            }
        });
        let app = Arc::new(Kv::default());
        let node = RaftNode::start_with_listeners(self.config(id), app.clone(), Some(listeners))
            .await
            .unwrap();
        self.nodes.insert(id, node);
        self.apps.insert(id, app);
    }

    async fn stop_node(&mut self, id: NodeId) {
        if let Some(n) = self.nodes.remove(&id) {
            n.shutdown().await;
        }
    }

    async fn leader(&self) -> NodeId {
        let (_, any) = self
            .nodes
            .iter()
            .find(|(id, _)| self.members.contains_key(id))
            .expect("a running voter");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = any.wait_for_leader(Duration::from_secs(10)).await {
                if self.nodes.get(&l).is_some_and(|n| n.is_leader()) {
                    return l;
                }
            }
            assert!(Instant::now() < deadline, "no leader elected");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn shutdown(mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop_node(id).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_writes_proposed_on_a_follower() {
    bounded(30, async {
        let c = Cluster::start(3, LogOptions::default()).await;
        let leader = c.leader().await;
        let follower = *c.nodes.keys().find(|id| **id != leader).unwrap();
        let other = *c
            .nodes
            .keys()
            .find(|id| **id != leader && **id != follower)
            .unwrap();

        let out = c.nodes[&follower].propose(&b"a=1"[..]).await.unwrap();
        assert_eq!(out.response.as_ref(), b"");
        let out2 = c.nodes[&follower].propose(&b"a=2"[..]).await.unwrap();
        assert_eq!(
            out2.response.as_ref(),
            b"1",
            "the response comes from apply"
        );
        assert!(out2.index > out.index);
        c.nodes[&leader].propose(&b"b=3"[..]).await.unwrap();

        // `sync` on the other follower: afterwards its state has every committed write.
        let index = c.nodes[&other].read_barrier().await.unwrap();
        assert!(index >= out2.index);
        assert_eq!(c.apps[&other].get("a").as_deref(), Some("2"));
        assert_eq!(c.apps[&other].get("b").as_deref(), Some("3"));

        let s = c.nodes[&other].status();
        assert_eq!(s.role, Role::Follower);
        assert_eq!(s.leader, Some(leader));
        assert_eq!(s.voters, vec![1, 2, 3]);
        assert!(!c.nodes[&other].is_leader());
        assert_eq!(c.nodes[&other].leader_id(), Some(leader));
        c.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_shutdown_elects_a_new_leader_and_writes_continue() {
    bounded(30, async {
        let mut c = Cluster::start(3, LogOptions::default()).await;
        let old = c.leader().await;
        c.nodes[&old].propose(&b"before=1"[..]).await.unwrap();
        let survivor = *c.nodes.keys().find(|id| **id != old).unwrap();

        let t0 = Instant::now();
        c.stop_node(old).await;
        // Keep proposing through a survivor, as a client would.
        let mut attempts = 0;
        let out = loop {
            attempts += 1;
            match c.nodes[&survivor].propose(&b"after=1"[..]).await {
                Ok(out) => break out,
                Err(e) if e.is_retryable() && attempts < 10 => continue,
                Err(e) => panic!("write after failover failed: {e}"),
            }
        };
        let failover = t0.elapsed();
        eprintln!("writes resumed {failover:?} after the leader stopped ({attempts} attempt(s))");
        assert!(
            failover < Duration::from_secs(3),
            "failover took {failover:?}"
        );

        let new = c.leader().await;
        assert_ne!(new, old);
        assert!(out.term > 0);
        for id in c.nodes.keys() {
            let app = c.apps[id].clone();
            eventually("replication to survivors", Duration::from_secs(5), || {
                app.get("after").is_some() && app.get("before").is_some()
            })
            .await;
        }
        c.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_keeps_its_state() {
    bounded(30, async {
        let mut c = Cluster::start(3, LogOptions::default()).await;
        let leader = c.leader().await;
        for i in 0..20 {
            c.nodes[&leader]
                .propose(format!("k{i}={i}").into_bytes())
                .await
                .unwrap();
        }
        let victim = *c.nodes.keys().find(|id| **id != leader).unwrap();
        let app = c.apps[&victim].clone();
        eventually("replication", Duration::from_secs(5), || app.len() == 20).await;
        let before = app.dump();
        c.stop_node(victim).await;
        c.start_node(victim, None).await;
        let app = c.apps[&victim].clone();
        eventually("re-applied state", Duration::from_secs(10), || {
            app.dump() == before
        })
        .await;

        // And it rejoins: a new write reaches it.
        c.nodes[&victim].propose(&b"late=1"[..]).await.unwrap();
        eventually("a new write", Duration::from_secs(5), || {
            app.get("late").is_some()
        })
        .await;
        c.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_missed_compacted_entries_catches_up_by_snapshot() {
    bounded(90, async {
        let log = LogOptions {
            snapshot_every: 40,
            logs_kept_after_snapshot: 5,
            cache_bytes: 4 * 1024 * 1024,
        };
        let mut c = Cluster::start(3, log).await;
        let leader = c.leader().await;
        let lagger = *c.nodes.keys().find(|id| **id != leader).unwrap();
        c.nodes[&leader].propose(&b"first=1"[..]).await.unwrap();
        let lag_app = c.apps[&lagger].clone();
        eventually("first write", Duration::from_secs(5), || lag_app.len() == 1).await;
        let lagger_last = c.nodes[&lagger].status().last_log_index.unwrap();
        c.stop_node(lagger).await;

        // Enough writes for several snapshots, so the log the lagger needs is purged.
        let leader_node = c.nodes[&leader].clone();
        let writes: Vec<_> = (0..200)
            .map(|i| {
                let n = leader_node.clone();
                tokio::spawn(async move { n.propose(format!("w{i}={i}").into_bytes()).await })
            })
            .collect();
        for w in writes {
            w.await.unwrap().unwrap();
        }
        // A snapshot is triggered by a commit, so one whose build outlasted the burst is
        // followed by none until the next write (and the log is purged only after snapshots):
        // keep writing, one at a time, until the leader has purged past the lagger.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut more = 0;
        while leader_node
            .status()
            .purged_index
            .is_none_or(|p| p <= lagger_last + 1)
        {
            assert!(
                Instant::now() < deadline,
                "log never purged past the lagger: {:?}",
                leader_node.status()
            );
            leader_node
                .propose(format!("more{more}=1").into_bytes())
                .await
                .unwrap();
            more += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        c.start_node(lagger, None).await;
        let app = c.apps[&lagger].clone();
        let expected = c.apps[&leader].dump();
        eventually("catch-up", Duration::from_secs(30), || {
            app.dump() == expected
        })
        .await;
        let s = c.nodes[&lagger].status();
        assert!(
            s.snapshot_index.is_some_and(|i| i > lagger_last),
            "caught up through a snapshot: {s:?}"
        );
        c.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_node_commits_alone_and_restarts_from_disk() {
    bounded(30, async {
        init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let mut cfg =
            RaftNodeConfig::standalone(1, dir.path().join("data"), dir.path().join("log"));
        cfg.timing = timing();
        cfg.log.snapshot_every = 10;

        let app = Arc::new(Kv::default());
        let node = RaftNode::start(cfg.clone(), app.clone()).await.unwrap();
        assert!(node.peer_addr().is_none(), "standalone opens no peer port");
        for i in 0..25 {
            node.propose(format!("k{i}={i}").into_bytes())
                .await
                .unwrap();
        }
        node.read_barrier().await.unwrap();
        assert_eq!(app.len(), 25);
        assert_eq!(node.status().role, Role::Leader);
        node.shutdown().await;
        assert!(matches!(
            node.propose(&b"x=1"[..]).await,
            Err(ProposeError::Shutdown)
        ));

        // Restart: snapshot plus the log after it give the same state.
        let app2 = Arc::new(Kv::default());
        let node2 = RaftNode::start(cfg, app2.clone()).await.unwrap();
        node2.read_barrier().await.unwrap();
        assert_eq!(app2.dump(), app.dump());
        assert!(node2.status().snapshot_index.is_some());
        node2.propose(&b"k0=again"[..]).await.unwrap();
        assert_eq!(app2.get("k0").as_deref(), Some("again"));
        node2.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_receives_writes_and_forwards_its_own() {
    bounded(30, async {
        let c = Cluster::start_with_observers(3, 1, LogOptions::default()).await;
        let leader = c.leader().await;
        c.nodes[&leader].propose(&b"a=1"[..]).await.unwrap();
        let observer = &c.nodes[&4];
        let app = c.apps[&4].clone();
        eventually(
            "the observer is added and replicated to",
            Duration::from_secs(10),
            || app.get("a").is_some(),
        )
        .await;
        let s = observer.status();
        assert_eq!(s.role, Role::Observer);
        assert_eq!(s.voters, vec![1, 2, 3]);
        assert_eq!(s.observers, vec![4]);

        observer.propose(&b"b=2"[..]).await.unwrap();
        observer.read_barrier().await.unwrap();
        assert_eq!(app.get("b").as_deref(), Some("2"));
        c.shutdown().await;
    })
    .await;
}

#[test]
fn zookeeper_properties_map_to_a_node_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zookeeper.properties");
    std::fs::write(
        &path,
        format!(
            "tickTime=2000\ninitLimit=5\nsyncLimit=2\ndataDir={}\nclientPort=2181\n\
             server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n\
             server.3=127.0.0.1:2890:3890\nserver.4=[::1]:2891:3891:observer\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let cfg = sluice_config::CoordConfig::load(&path).unwrap().config;
    let node = RaftNodeConfig::from_coord_config(&cfg, 2);
    assert_eq!(node.id, 2);
    assert_eq!(
        node.members.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(
        node.members[&2],
        PeerAddrs::new("127.0.0.1:2889", "127.0.0.1:3889")
    );
    assert_eq!(
        node.observers[&4],
        PeerAddrs::new("[::1]:2891", "[::1]:3891")
    );
    assert_eq!(node.timing.propose_timeout, Duration::from_secs(4));
    assert_eq!(
        node.timing.install_snapshot_timeout,
        Duration::from_secs(10)
    );
    assert_eq!(node.data_dir, dir.path());
}
