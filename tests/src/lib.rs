//! Test kit for end-to-end suites: real `coord` processes started from `zookeeper.properties`
//! files in a temporary directory, on free loopback ports, with the faults operators meet
//! (SIGKILL, SIGTERM, SIGSTOP/SIGCONT, restart).
//!
//! The binaries come from the same target directory as the test executable
//! (`target/<profile>/coord`), which `cargo test --workspace` / `cargo nextest run --workspace`
//! build; `SLUICE_BIN_DIR` overrides the directory.

pub mod disk;
pub mod fault;
pub mod hosts;
pub mod kafka;
pub mod prometheus;
pub mod scrape;
pub mod tls;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Directory holding the project's binaries.
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SLUICE_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace binaries first (cargo build --bins)",
        path.display()
    );
    path
}

/// The Python of the virtual environment `scripts/setup.sh` fills with PyPI clients
/// (confluent-kafka); `SLUICE_PY_VENV` moves it.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var("SLUICE_PY_VENV").unwrap_or_else(|_| "/var/tmp/sluice-py".into());
    let python = PathBuf::from(venv).join("bin/python3");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh",
        python.display()
    );
    python
}

/// Runs `script` with [`venv_python`] and `args`; returns stdout, or panics with both outputs.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let out = Command::new(venv_python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run the virtual environment's python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python script failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Where `scripts/setup.sh` installs the client families of `tests/clients` (the Java jars of
/// each line, the Go programs built); `SLUICE_CLIENTS` moves it.
pub fn clients_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("SLUICE_CLIENTS").unwrap_or_else(|_| "/var/tmp/sluice-clients".into()),
    )
}

/// The classpath of one Java line that `scripts/setup.sh` resolved into `clients_dir()/java`
/// (`client-3.9.1`, `client-4.4.0`, `tools-4.4.0`, `broker-3.9.1`); a missing line fails the
/// test with what to run.
pub fn java_classpath(line: &str) -> String {
    let dir = clients_dir().join("java").join(line);
    assert!(
        dir.join(".complete").exists(),
        "{} is missing: run scripts/setup.sh",
        dir.display()
    );
    format!("{}/*", dir.display())
}

/// The sources of the client-family checks: `tests/clients/<family>`.
pub fn clients_src(family: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("clients")
        .join(family)
}

/// A `VmRSS`, `VmHWM`, ... figure of `/proc/<pid>/status`, in KiB.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// How many file descriptors process `pid` holds open.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the process's descriptors")
        .count()
}

/// `n` different free loopback ports (all bound at once, then released), for a configuration
/// that names several: separate [`free_port`] calls can be given the same port twice.
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A free loopback port (bound and released; good enough on a quiet machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends a four-letter word and returns the whole answer ("" when nothing answers).
pub fn four_letter_word(addr: SocketAddr, word: &str) -> String {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(word.as_bytes()).is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The `Mode:` line of `srvr` (`leader`, `follower`, `standalone`), if it answers (a member
/// without a quorum answers "not currently serving requests" instead, as ZooKeeper does).
pub fn mode(addr: SocketAddr) -> Option<String> {
    four_letter_word(addr, "srvr")
        .lines()
        .find_map(|l| l.strip_prefix("Mode: ").map(str::to_string))
}

/// Starts `bin CONFIG` with stdout and stderr appended to `log`.
fn spawn_daemon(bin: &str, config: &Path, log: &Path, rust_log: &str) -> Child {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open daemon log");
    Command::new(binary(bin))
        .arg(config)
        .env("RUST_LOG", rust_log)
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log handle"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {bin}: {e}"))
}

/// SIGKILL and reap.
fn kill_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// SIGTERM, then the exit code (`None` when a signal ended it); panics after 15 s.
fn stop_child(child: &mut Option<Child>, what: &str) -> Option<i32> {
    let mut c = child.take()?;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(c.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(status)) = c.try_wait() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            let _ = c.wait();
            panic!("{what} ignored SIGTERM for 15 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One coord node of a [`CoordCluster`].
#[derive(Debug)]
pub struct CoordNode {
    pub id: u64,
    pub client: SocketAddr,
    /// The quorum (peer) and election ports of its `server.N` line.
    pub peer_port: u16,
    pub election_port: u16,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl CoordNode {
    /// A node of the ensemble in `dir`, not started: its data directory (handed to `prepare`
    /// while empty, then given its `myid`) and its `zookeeper-<id>.properties` with the
    /// `server.N` lines and extra keys in `rest`.
    fn configure(
        dir: &Path,
        id: u64,
        (client, peer, election): (u16, u16, u16),
        rest: &str,
        prepare: &dyn Fn(&Path),
    ) -> CoordNode {
        let data_dir = dir.join(format!("zk-{id}"));
        std::fs::create_dir_all(&data_dir).unwrap();
        prepare(&data_dir);
        std::fs::write(data_dir.join("myid"), format!("{id}\n")).unwrap();
        let config = dir.join(format!("zookeeper-{id}.properties"));
        std::fs::write(
            &config,
            format!(
                "dataDir={}\nclientPort={client}\nclientPortAddress=127.0.0.1\ntickTime=500\ninitLimit=10\nsyncLimit=5\nmaxClientCnxns=0\n4lw.commands.whitelist=*\n{rest}",
                data_dir.display()
            ),
        )
        .unwrap();
        CoordNode {
            id,
            client: SocketAddr::from(([127, 0, 0, 1], client)),
            peer_port: peer,
            election_port: election,
            config,
            data_dir,
            log: dir.join(format!("coord-{id}.log")),
            child: None,
        }
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(pid.to_string())
                .status();
        }
    }

    fn start(&mut self) {
        self.child = Some(spawn_daemon(
            "coord",
            &self.config,
            &self.log,
            "info,openraft=warn",
        ));
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }

    /// SIGTERM and wait for the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        stop_child(&mut self.child, &format!("coord node {}", self.id))
    }

    /// SIGSTOP: the process hangs with its sockets open.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its line for `reconfig -add`: `server.N=127.0.0.1:peer:election;127.0.0.1:client`.
    pub fn server_spec(&self) -> String {
        format!(
            "server.{}=127.0.0.1:{}:{}:participant;{}",
            self.id, self.peer_port, self.election_port, self.client
        )
    }
}

/// The classpath of the ZooKeeper 3.8 server and zkCli installed from Debian's `zookeeper`
/// package (`/usr/share/java`); a missing jar fails the test with what to install.
pub fn zookeeper_server_classpath() -> String {
    let dir = Path::new("/usr/share/java");
    let jars = [
        "zookeeper.jar",
        "zookeeper-jute.jar",
        "slf4j-api.jar",
        "slf4j-nop.jar",
        "netty-handler.jar",
        "netty-common.jar",
        "netty-buffer.jar",
        "netty-transport.jar",
        "netty-codec.jar",
        "netty-resolver.jar",
        "netty-transport-native-epoll.jar",
        "netty-transport-native-unix-common.jar",
        "metrics-core.jar",
        "commons-cli.jar",
    ];
    let paths: Vec<String> = jars
        .iter()
        .map(|j| {
            let p = dir.join(j);
            assert!(
                p.exists(),
                "{} is missing: install Debian's zookeeper package (apt-get install zookeeper)",
                p.display()
            );
            p.display().to_string()
        })
        .collect();
    paths.join(":")
}

/// The version of Debian's ZooKeeper jars (`/usr/share/java/zookeeper-3.8.0.jar` → `3.8.0`).
pub fn debian_zookeeper_version() -> String {
    std::fs::read_dir("/usr/share/java")
        .expect("/usr/share/java: install Debian's zookeeper package (apt-get install zookeeper)")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let v = name.strip_prefix("zookeeper-")?.strip_suffix(".jar")?;
            v.starts_with(|c: char| c.is_ascii_digit())
                .then(|| v.to_string())
        })
        .next()
        .expect("no /usr/share/java/zookeeper-<version>.jar: install Debian's zookeeper package")
}

/// [`zookeeper_server_classpath`] plus ZooKeeper's Prometheus metrics provider of the same
/// version and its `simpleclient` jars (which `scripts/setup.sh` resolves from Maven Central
/// into `SLUICE_ZK_PROM`, default `/var/tmp/sluice-zk-prom`), and Debian's Jetty, which the
/// provider serves `/metrics` with.
pub fn zookeeper_prometheus_classpath() -> String {
    let root = std::env::var("SLUICE_ZK_PROM").unwrap_or_else(|_| "/var/tmp/sluice-zk-prom".into());
    let dir = Path::new(&root).join(debian_zookeeper_version());
    assert!(
        dir.join(".complete").exists(),
        "{} is missing: run scripts/setup.sh",
        dir.display()
    );
    let jetty: Vec<String> = [
        "jetty9-server.jar",
        "jetty9-servlet.jar",
        "jetty9-http.jar",
        "jetty9-io.jar",
        "jetty9-util.jar",
        "jetty9-security.jar",
        "servlet-api.jar",
    ]
    .iter()
    .map(|j| {
        let p = Path::new("/usr/share/java").join(j);
        assert!(
            p.exists(),
            "{} is missing: install Debian's libjetty9-java (a dependency of its zookeeper package)",
            p.display()
        );
        p.display().to_string()
    })
    .collect();
    format!(
        "{}:{}:{}/*",
        zookeeper_server_classpath(),
        jetty.join(":"),
        dir.display()
    )
}

impl Drop for CoordNode {
    fn drop(&mut self) {
        self.resume();
        self.kill();
    }
}

/// A three-server ZooKeeper 3.8 ensemble (Debian's jars) on free loopback ports, killed on drop.
#[derive(Debug)]
pub struct ZooKeeperEnsemble {
    pub dir: tempfile::TempDir,
    /// (client, quorum, election) ports of servers 1-3.
    pub ports: Vec<(u16, u16, u16)>,
    children: Vec<Child>,
}

impl ZooKeeperEnsemble {
    /// Servers 1-3 with `tickTime=200` and `extra` in each `zoo.cfg`, started with
    /// [`zookeeper_server_classpath`]; returns once each is leader or follower.
    pub fn start(extra: &str) -> ZooKeeperEnsemble {
        Self::start_each(extra, &zookeeper_server_classpath(), &|_, _| String::new())
    }

    /// [`ZooKeeperEnsemble::start`] on `classpath`, each server's file also given the lines
    /// `own(id, spare)` returns, `spare` a free port of its own (as [`CoordCluster::start_each`]).
    pub fn start_each(
        extra: &str,
        classpath: &str,
        own: &dyn Fn(u64, u16) -> String,
    ) -> ZooKeeperEnsemble {
        let dir = tempfile::tempdir().unwrap();
        let free = free_ports(12);
        let ports: Vec<(u16, u16, u16)> = free.chunks(4).map(|c| (c[0], c[1], c[2])).collect();
        let servers: String = ports
            .iter()
            .enumerate()
            .map(|(i, (_, q, e))| format!("server.{}=127.0.0.1:{q}:{e}\n", i + 1))
            .collect();
        let mut children = Vec::new();
        for (i, (client, _, _)) in ports.iter().enumerate() {
            let id = i as u64 + 1;
            let data = dir.path().join(format!("zk-{id}"));
            std::fs::create_dir_all(&data).unwrap();
            std::fs::write(data.join("myid"), format!("{id}\n")).unwrap();
            let cfg = dir.path().join(format!("zoo-{id}.cfg"));
            std::fs::write(
                &cfg,
                format!(
                    "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={client}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=*\n{extra}{}{servers}",
                    data.display(),
                    own(id, free[i * 4 + 3]),
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.path().join(format!("zk-{id}.log"))).unwrap();
            children.push(
                Command::new("java")
                    .arg("-cp")
                    .arg(classpath)
                    .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
                    .arg(&cfg)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .expect("run java (install a JRE)"),
            );
        }
        let zk = ZooKeeperEnsemble {
            dir,
            ports,
            children,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !(0..3).all(|i| matches!(mode(zk.client(i)).as_deref(), Some("leader" | "follower")))
        {
            assert!(
                Instant::now() < deadline,
                "ZooKeeper elected no leader within 60 s; logs in {}",
                zk.dir.path().display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        zk
    }

    /// Server `i`'s (0-based) client address.
    pub fn client(&self, i: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[i].0))
    }
}

impl Drop for ZooKeeperEnsemble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Three (or five) coord processes on one host, in the classic ZooKeeper layout.
#[derive(Debug)]
pub struct CoordCluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<CoordNode>,
}

/// With `SLUICE_KEEP_FAILED` set, a failing test leaves the cluster's directory (data, logs,
/// configurations) behind and prints where, for a post-mortem.
impl Drop for CoordCluster {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("SLUICE_KEEP_FAILED").is_some() {
            if let Ok(empty) = tempfile::tempdir() {
                let kept = std::mem::replace(&mut self.dir, empty).keep();
                eprintln!("SLUICE_KEEP_FAILED: kept {}", kept.display());
            }
        }
    }
}

impl CoordCluster {
    /// Writes `zookeeper-N.properties` (with `extra` lines appended) and `myid` for `n` nodes
    /// and starts them all. `n == 1` is a standalone node (no `server.N` lines).
    pub fn start(n: u64, extra: &str) -> CoordCluster {
        Self::start_prepared(n, extra, &|_| {})
    }

    /// [`CoordCluster::start`], each node's file also given the lines `own(id, spare)`
    /// returns: `spare` is a free port for that node alone, drawn with the cluster's other
    /// ports so that none is handed out twice (for its metrics endpoint, say).
    pub fn start_each(n: u64, extra: &str, own: &dyn Fn(u64, u16) -> String) -> CoordCluster {
        Self::start_with(n, extra, own, &|_| {})
    }

    /// [`CoordCluster::start`], calling `prepare` on each node's (empty) data directory before
    /// anything is written there (to mount a small filesystem on it, say).
    pub fn start_prepared(n: u64, extra: &str, prepare: &dyn Fn(&Path)) -> CoordCluster {
        Self::start_with(n, extra, &|_, _| String::new(), prepare)
    }

    fn start_with(
        n: u64,
        extra: &str,
        own: &dyn Fn(u64, u16) -> String,
        prepare: &dyn Fn(&Path),
    ) -> CoordCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let free = free_ports(4 * n as usize);
        let ports: Vec<(u16, u16, u16)> = free.chunks(4).map(|c| (c[0], c[1], c[2])).collect();
        let spare: Vec<u16> = free.chunks(4).map(|c| c[3]).collect();
        let servers: String = ports
            .iter()
            .filter(|_| n > 1)
            .enumerate()
            .map(|(i, (_, peer, election))| {
                format!("server.{}=127.0.0.1:{peer}:{election}\n", i + 1)
            })
            .collect();
        let mut nodes = Vec::new();
        for (i, (client, _, _)) in ports.iter().enumerate() {
            let id = i as u64 + 1;
            let mut node = CoordNode::configure(
                dir.path(),
                id,
                (*client, ports[i].1, ports[i].2),
                &format!("{servers}{extra}{}", own(id, spare[i])),
                &prepare,
            );
            node.start();
            nodes.push(node);
        }
        let cluster = CoordCluster { dir, nodes };
        cluster.wait_for_leader(Duration::from_secs(30));
        cluster.wait_until_all_serve(Duration::from_secs(30));
        cluster.wait_until_all_may_vote(Duration::from_secs(30));
        cluster
    }

    pub fn connect_string(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.client.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Index of the node that reports `Mode: leader` (or `standalone`).
    pub fn leader(&self) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| matches!(mode(n.client).as_deref(), Some("leader" | "standalone")))
    }

    /// Waits until some node leads and every running node answers `ruok`.
    pub fn wait_for_leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader() {
                return l;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|n| format!("--- node {}:\n{}", n.id, n.log_text()))
                    .collect();
                panic!("no leader within {timeout:?}\n{}", logs.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until every node knows the leader (reports `leader`, `follower` or `standalone`).
    pub fn wait_until_all_serve(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let modes: Vec<Option<String>> = self.nodes.iter().map(|n| mode(n.client)).collect();
            if modes
                .iter()
                .all(|m| matches!(m.as_deref(), Some("leader" | "follower" | "standalone")))
            {
                return;
            }
            if Instant::now() >= deadline {
                let logs: Vec<String> = self
                    .nodes
                    .iter()
                    .zip(&modes)
                    .filter(|(_, m)| m.is_none())
                    .map(|(n, _)| format!("--- node {}:\n{}", n.id, n.log_text()))
                    .collect();
                panic!("not every node serves: {modes:?}\n{}", logs.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until every node of a new ensemble has heard enough members to take part in
    /// elections (each starts with an empty data directory and holds its votes until then; see
    /// coord's raft/floor.rs), so that a test's faults right after the start meet a formed
    /// ensemble.
    pub fn wait_until_all_may_vote(&self, timeout: Duration) {
        if self.nodes.len() < 2 {
            return;
        }
        let deadline = Instant::now() + timeout;
        for n in &self.nodes {
            loop {
                let log = n.log_text();
                if log.contains("every member answered")
                    || log.contains("a majority of a new ensemble answered")
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {} never heard the other members:\n{log}",
                    n.id
                );
                std::thread::sleep(Duration::from_millis(25));
            }
        }
    }

    /// Starts one more node, `server.<max id + 1>`, as ZooKeeper's guide adds a server: empty
    /// data directory, its `zookeeper.properties` listing the nodes of this cluster and itself
    /// (with `extra` lines appended). It is not a member until a `reconfig` adds it. Returns
    /// its index; [`CoordNode::server_spec`] is its `reconfig -add` argument.
    pub fn add_node(&mut self, extra: &str) -> usize {
        let id = self.nodes.iter().map(|n| n.id).max().unwrap_or(0) + 1;
        let p = free_ports(3);
        let (client, peer, election) = (p[0], p[1], p[2]);
        let servers: String = self
            .nodes
            .iter()
            .map(|n| {
                format!(
                    "server.{}=127.0.0.1:{}:{}\n",
                    n.id, n.peer_port, n.election_port
                )
            })
            .chain(std::iter::once(format!(
                "server.{id}=127.0.0.1:{peer}:{election}\n"
            )))
            .collect();
        let mut node = CoordNode::configure(
            self.dir.path(),
            id,
            (client, peer, election),
            &format!("{servers}{extra}"),
            &|_: &Path| {},
        );
        node.start();
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// The index of the node with id `id`.
    pub fn index_of(&self, id: u64) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn restart(&mut self, i: usize) {
        self.nodes[i].kill();
        self.nodes[i].start();
    }

    pub fn start_node(&mut self, i: usize) {
        self.nodes[i].start();
    }
}

/// One broker process started from a `server.properties` written for the test.
#[derive(Debug)]
pub struct BrokerNode {
    pub id: i32,
    pub port: u16,
    pub config: PathBuf,
    pub log_dir: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl BrokerNode {
    /// Writes `server-<id>.properties` in `dir` (listener on a free loopback port, `extra`
    /// lines appended) and starts the broker. Waits until it answers on its port.
    pub fn start(dir: &Path, id: i32, zookeeper_connect: &str, extra: &str) -> BrokerNode {
        let port = free_port();
        Self::start_with_listeners(
            dir,
            id,
            zookeeper_connect,
            port,
            &format!("PLAINTEXT://127.0.0.1:{port}"),
            extra,
        )
    }

    /// Like [`BrokerNode::start`] with `listeners` given: they must include a PLAINTEXT one on
    /// `port` (the one [`BrokerNode::addr`] names and readiness is checked on).
    pub fn start_with_listeners(
        dir: &Path,
        id: i32,
        zookeeper_connect: &str,
        port: u16,
        listeners: &str,
        extra: &str,
    ) -> BrokerNode {
        let log_dir = dir.join(format!("kafka-logs-{id}"));
        let config = dir.join(format!("server-{id}.properties"));
        std::fs::write(
            &config,
            format!(
                "broker.id={id}\nlisteners={listeners}\nlog.dirs={}\nzookeeper.connect={zookeeper_connect}\nzookeeper.session.timeout.ms=6000\ngroup.initial.rebalance.delay.ms=0\noffsets.topic.replication.factor=1\n{extra}",
                log_dir.display()
            ),
        )
        .unwrap();
        let mut node = BrokerNode {
            id,
            port,
            config,
            log_dir,
            log: dir.join(format!("broker-{id}.log")),
            child: None,
        };
        node.spawn();
        node.wait_until_listening(Duration::from_secs(30));
        node
    }

    pub fn spawn(&mut self) {
        self.child = Some(spawn_daemon(
            "broker",
            &self.config,
            &self.log,
            "info,sluice_broker=debug",
        ));
    }

    /// Waits until the broker answers an ApiVersions request (it accepts connections only once
    /// it has joined the cluster).
    pub fn wait_until_listening(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let addr = self.addr();
        while !answers_api_versions(addr) {
            if let Some(c) = &mut self.child {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!(
                        "broker {} exited with {status}:\n{}",
                        self.id,
                        self.log_text()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "broker {} not listening:\n{}",
                self.id,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The address of its metrics endpoint (`metrics.prometheus.listener` in its file).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        let text = std::fs::read_to_string(&self.config).ok()?;
        text.lines()
            .rev()
            .find_map(|l| l.strip_prefix("metrics.prometheus.listener="))
            .and_then(|v| v.trim().parse().ok())
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn bootstrap(&self) -> String {
        self.addr().to_string()
    }

    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }

    /// SIGTERM and wait for the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        stop_child(&mut self.child, &format!("broker {}", self.id))
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): the process hangs with its sockets open, e.g.
    /// until its coordinator session expires.
    pub fn freeze(&self, stopped: bool) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(if stopped { "-STOP" } else { "-CONT" })
                .arg(c.id().to_string())
                .status();
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits for the process to exit on its own and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let c = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                self.child = None;
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Sends ApiVersions v0 and reports whether an answer came back within a second.
pub fn answers_api_versions(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    // size, api key 18, version 0, correlation id 1, null client id
    let req = [0u8, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff];
    if s.write_all(&req).is_err() {
        return false;
    }
    let mut len = [0u8; 4];
    s.read_exact(&mut len).is_ok()
}

impl Drop for BrokerNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A coord ensemble and brokers on one host, as `deploy/local` runs them.
#[derive(Debug)]
pub struct KafkaCluster {
    pub coord: CoordCluster,
    pub brokers: Vec<BrokerNode>,
}

impl KafkaCluster {
    /// `coord_nodes` coord nodes, then brokers 1..=`brokers` with `extra` lines in every
    /// `server.properties`; returns once every broker lists every broker in its Metadata.
    pub fn start(coord_nodes: u64, brokers: i32, extra: &str) -> KafkaCluster {
        KafkaCluster::start_each(coord_nodes, brokers, extra, &|_| String::new())
    }

    /// As [`KafkaCluster::start`], with `own(id)` appended to broker `id`'s file.
    pub fn start_each(
        coord_nodes: u64,
        brokers: i32,
        extra: &str,
        own: &dyn Fn(i32) -> String,
    ) -> KafkaCluster {
        let coord = CoordCluster::start(coord_nodes, "");
        let nodes: Vec<BrokerNode> = (1..=brokers)
            .map(|id| {
                BrokerNode::start(
                    coord.dir.path(),
                    id,
                    &coord.connect_string(),
                    &format!("{extra}{}", own(id)),
                )
            })
            .collect();
        let cluster = KafkaCluster {
            coord,
            brokers: nodes,
        };
        cluster.wait_for_brokers(brokers as usize, Duration::from_secs(30));
        cluster
    }

    /// Every broker's address, comma-separated.
    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(BrokerNode::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The running broker with id `id`.
    pub fn broker(&mut self, id: i32) -> &mut BrokerNode {
        self.brokers
            .iter_mut()
            .find(|b| b.id == id)
            .unwrap_or_else(|| panic!("no broker {id}"))
    }

    /// Waits until each running broker's Metadata lists `n` brokers.
    pub fn wait_for_brokers(&self, n: usize, timeout: Duration) {
        use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestKind, ResponseKind};
        let deadline = Instant::now() + timeout;
        for b in &self.brokers {
            loop {
                let mut c = kafka::KafkaConn::connect(b.addr());
                let seen = match c.call(
                    ApiKey::Metadata,
                    9,
                    RequestKind::Metadata(MetadataRequest::default()),
                ) {
                    ResponseKind::Metadata(m) => m.brokers.len(),
                    _ => 0,
                };
                if seen >= n {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "broker {} sees {seen} brokers, not {n}",
                    b.id
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// The leader of `topic`/`partition` and its ISR, as broker `via` answers Metadata (-1 when
    /// there is none).
    pub fn leader(&self, via: i32, topic: &str, partition: i32) -> (i32, Vec<i32>) {
        use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
        use kafka_protocol::messages::{
            ApiKey, MetadataRequest, RequestKind, ResponseKind, TopicName,
        };
        let b = self.brokers.iter().find(|b| b.id == via).expect("broker");
        let mut req = MetadataRequest::default();
        let mut t = MetadataRequestTopic::default();
        t.name = Some(TopicName(kafka_protocol::protocol::StrBytes::from_string(
            topic.to_string(),
        )));
        req.topics = Some(vec![t]);
        req.allow_auto_topic_creation = false;
        let mut c = kafka::KafkaConn::connect(b.addr());
        match c.call(ApiKey::Metadata, 9, RequestKind::Metadata(req)) {
            ResponseKind::Metadata(m) => m
                .topics
                .first()
                .and_then(|t| t.partitions.iter().find(|p| p.partition_index == partition))
                .map(|p| {
                    (
                        p.leader_id.0,
                        p.isr_nodes.iter().map(|b| b.0).collect::<Vec<_>>(),
                    )
                })
                .unwrap_or((-1, Vec::new())),
            _ => (-1, Vec::new()),
        }
    }
}
