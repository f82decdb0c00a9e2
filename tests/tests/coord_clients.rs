//! Real ZooKeeper tools against a coord process: Debian's `zkCli.sh` (the Java client) and
//! kazoo (Python). Both come from scripts/setup.sh.

use std::io::Write;
use std::process::{Command, Stdio};

use sluice_e2e::CoordCluster;

const ZKCLI: &str = "/usr/share/zookeeper/bin/zkCli.sh";

/// Runs zkCli.sh with `commands` on stdin; returns what it printed (log lines at WARN only).
fn zkcli(server: &str, commands: &str, log_dir: &std::path::Path) -> String {
    let mut child = Command::new(ZKCLI)
        .args(["-server", server])
        .env("ZOO_LOG_DIR", log_dir)
        .env("ZOO_LOG4J_PROP", "WARN,CONSOLE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("zkCli.sh (Debian package `zookeeper`, installed by scripts/setup.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{commands}\nquit\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    // zkCli.sh prints command results on both streams.
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn zkcli_sh_works_unchanged() {
    let cluster = CoordCluster::start(1, "");
    let server = cluster.nodes[0].client.to_string();
    let out = zkcli(
        &server,
        "create /app hello\n\
         create -e -s /app/worker- w\n\
         create -s /app/job- j\n\
         ls /app\n\
         get -s /app\n\
         set -v 0 /app world\n\
         set -v 0 /app again\n\
         get /app\n\
         stat /app\n\
         create /app/tmp\n\
         delete /app/tmp\n\
         delete /app\n\
         deleteall /app\n\
         ls /",
        cluster.dir.path(),
    );
    assert!(out.contains("Created /app\n"), "{out}");
    assert!(out.contains("Created /app/worker-0000000000"), "{out}");
    assert!(out.contains("Created /app/job-0000000001"), "{out}");
    assert!(out.contains("[job-0000000001, worker-0000000000]"), "{out}");
    assert!(
        out.contains("hello\ncZxid = 0x"),
        "get -s prints the data then the stat:\n{out}"
    );
    assert!(out.contains("numChildren = 2"), "{out}");
    assert!(
        out.contains("version No is not valid : /app"),
        "set -v with a stale version:\n{out}"
    );
    assert!(out.contains("world\n"), "{out}");
    assert!(out.contains("dataVersion = 1"), "{out}");
    assert!(out.contains("Node not empty: /app"), "{out}");
    let last_ls = out.lines().rfind(|l| l.starts_with('['));
    assert_eq!(
        last_ls,
        Some("[zookeeper]"),
        "deleteall removed the subtree:\n{out}"
    );
}

#[test]
fn kazoo_works_unchanged() {
    let cluster = CoordCluster::start(3, "");
    let script = r#"
import sys, threading
from kazoo.client import KazooClient
zk = KazooClient(hosts=sys.argv[1])
zk.start(timeout=15)
print("version", ".".join(map(str, zk.server_version())))
zk.ensure_path("/kazoo/nodes")
p = zk.create("/kazoo/nodes/n-", b"x", ephemeral=True, sequence=True)
print("created", p)
seen = []
events = [threading.Event() for _ in range(3)]
@zk.DataWatch("/kazoo/data")
def watch(data, stat):
    seen.append(data)
    events[len(seen) - 1].set()
events[0].wait(10)
zk.create("/kazoo/data", b"one")
events[1].wait(10)
zk.set("/kazoo/data", b"two")
events[2].wait(10)
print("seen", seen)
t = zk.transaction()
t.create("/kazoo/a", b"1")
t.create("/kazoo/b", b"2")
print("txn", t.commit())
data, stat = zk.get("/kazoo/a")
print("get", data, stat.version)
print("children", sorted(zk.get_children("/kazoo")))
zk.stop()
"#;
    // Debian's interpreter, which sees Debian's python3-kazoo.
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(cluster.connect_string())
        .output()
        .expect("python3 with kazoo (Debian package python3-kazoo, installed by scripts/setup.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("version 3.8.4"), "{stdout}");
    assert!(
        stdout.contains("created /kazoo/nodes/n-0000000000"),
        "{stdout}"
    );
    assert!(stdout.contains("seen [None, b'one', b'two']"), "{stdout}");
    assert!(stdout.contains("txn ['/kazoo/a', '/kazoo/b']"), "{stdout}");
    assert!(stdout.contains("get b'1' 0"), "{stdout}");
    assert!(
        stdout.contains("children ['a', 'b', 'data', 'nodes']"),
        "{stdout}"
    );
}

/// A standalone Apache ZooKeeper 3.8 (Debian's package) on a free loopback port, to compare
/// behaviours with; killed on drop.
struct RealZooKeeper {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RealZooKeeper {
    fn start() -> RealZooKeeper {
        let dir = tempfile::tempdir().unwrap();
        let port = sluice_e2e::free_port();
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=*\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        // zkEnv.sh's classpath: the jar's manifest names the rest of /usr/share/java.
        let cp = [
            "/usr/share/java/zookeeper.jar",
            "/usr/share/java/zookeeper-jute.jar",
            "/usr/share/java/slf4j-api.jar",
        ]
        .join(":");
        let mut child = Command::new("java")
            .args([
                "-cp",
                &cp,
                "org.apache.zookeeper.server.ZooKeeperServerMain",
            ])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("java with Debian's zookeeper package (scripts/setup.sh)");
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        // `ruok` answers before sessions are served; `srvr` names the mode once they are.
        while !sluice_e2e::four_letter_word(addr, "srvr").contains("Mode: standalone") {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ZooKeeper did not start");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        RealZooKeeper {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for RealZooKeeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Null data stays null (ZooKeeper keeps it apart from empty: Kafka's brokers create their
/// top-level znodes with null data and parse `/latest_producer_id_block` only when it is not
/// null). The same kazoo session against coord and against ZooKeeper 3.8 prints the same lines:
/// create and set with null and empty data, and the data lengths; coord still has them after
/// every member restarted.
#[test]
fn null_data_reads_back_as_null_as_in_zookeeper() {
    let script = r#"
import sys
from kazoo.client import KazooClient
zk = KazooClient(hosts=sys.argv[1])
zk.start(timeout=15)
zk.create("/null", None)
zk.create("/empty", b"")
for p in ["/null", "/empty"]:
    data, stat = zk.get(p)
    print(p, repr(data), stat.dataLength, stat.version)
zk.set("/empty", None)
zk.set("/null", b"")
for p in ["/null", "/empty"]:
    data, stat = zk.get(p)
    print("after set", p, repr(data), stat.dataLength, stat.version)
zk.stop()
zk.close()
"#;
    let run = |hosts: &str| {
        let out = Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .arg(hosts)
            .output()
            .expect("python3 with kazoo (scripts/setup.sh)");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{hosts}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let zookeeper = RealZooKeeper::start();
    let expected = run(&format!("127.0.0.1:{}", zookeeper.port));
    assert!(expected.contains("/null None 0 0"), "{expected}");
    let cluster = CoordCluster::start(3, "");
    let got = run(&cluster.connect_string());
    assert_eq!(got, expected);
    // And after a restart of every member, from the snapshot and the log.
    let mut cluster = cluster;
    for i in 0..3 {
        cluster.restart(i);
    }
    cluster.wait_for_leader(std::time::Duration::from_secs(30));
    let reread = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(
            r#"
import sys
from kazoo.client import KazooClient
zk = KazooClient(hosts=sys.argv[1])
zk.start(timeout=15)
print(repr(zk.get("/null")[0]), repr(zk.get("/empty")[0]))
zk.stop()
"#,
        )
        .arg(cluster.connect_string())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&reread.stdout).trim(),
        "b'' None",
        "{}",
        String::from_utf8_lossy(&reread.stderr)
    );
}

/// closeSession is answered before the connection closes, pipelined requests before it
/// included: a raw client sending getData and closeSession in one write reads both replies,
/// then the end of the stream; kazoo's `stop()` goes from CONNECTED to LOST without passing
/// through SUSPENDED. Each compared with ZooKeeper 3.8, line for line.
#[test]
fn close_session_is_answered_before_the_connection_closes_as_in_zookeeper() {
    let raw = r#"
import socket, struct, sys
host, port = sys.argv[1].split(",")[0].split(":")
s = socket.create_connection((host, int(port)))
def readn(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise SystemExit("connection closed after %d of %d bytes" % (len(b), n))
        b += c
    return b
def recv():
    return readn(struct.unpack(">i", readn(4))[0])
def frame(b):
    return struct.pack(">i", len(b)) + b
s.sendall(frame(struct.pack(">iqiqi", 0, 0, 30000, 0, 16) + b"\0" * 16 + b"\0"))
recv()
get = struct.pack(">iii", 1, 4, 1) + b"/" + b"\0"
close = struct.pack(">ii", 2, -11)
s.sendall(frame(get) + frame(close))
for _ in range(2):
    xid, zxid, err = struct.unpack(">iqi", recv()[:16])
    print("reply", xid, err)
print("then", repr(s.recv(16)))
"#;
    let kazoo = r#"
import sys, time
from kazoo.client import KazooClient
zk = KazooClient(hosts=sys.argv[1])
states = []
zk.add_listener(lambda s: states.append(str(s)))
zk.start(timeout=15)
zk.stop()
zk.close()
time.sleep(0.2)
print("states", states)
"#;
    let run = |script: &str, hosts: &str| {
        let out = Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .arg(hosts)
            .output()
            .expect("python3 with kazoo (scripts/setup.sh)");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{hosts}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let zookeeper = RealZooKeeper::start();
    let zk_hosts = format!("127.0.0.1:{}", zookeeper.port);
    let (raw_expected, kazoo_expected) = (run(raw, &zk_hosts), run(kazoo, &zk_hosts));
    assert_eq!(raw_expected, "reply 1 0\nreply 2 0\nthen b''\n");
    assert_eq!(kazoo_expected, "states ['CONNECTED', 'LOST']\n");
    let cluster = CoordCluster::start(3, "");
    for _ in 0..5 {
        assert_eq!(run(raw, &cluster.connect_string()), raw_expected);
        assert_eq!(run(kazoo, &cluster.connect_string()), kazoo_expected);
    }
}

/// Requests over `jute.maxbuffer` (0xfffff by default) drop the connection, as ZooKeeper 3.8
/// drops it: the length prefix alone decides, so a create whose frame is just under the limit
/// is stored and one with 1 MiB of data is refused; the session survives (a reconnection with
/// its id and password reads the first node back). Compared with ZooKeeper 3.8 line for line;
/// then `jute.maxbuffer=2097152` in zookeeper.properties lets the 1 MiB create through.
#[test]
fn requests_over_jute_maxbuffer_drop_the_connection_as_in_zookeeper() {
    let script = r#"
import socket, struct, sys
host, port = sys.argv[1].split(",")[0].split(":")
def session(sid=0, pw=b"\0" * 16):
    s = socket.create_connection((host, int(port)))
    def readn(n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c:
                return None
            b += c
        return b
    def recv():
        h = readn(4)
        return None if h is None else readn(struct.unpack(">i", h)[0])
    s.sendall(frame(struct.pack(">iqiqi", 0, 0, 30000, sid, 16) + pw + b"\0"))
    r = recv()
    _, timeout, sid = struct.unpack(">iiq", r[:16])
    return s, recv, sid, r[20:36]
def frame(b):
    return struct.pack(">i", len(b)) + b
def create(path, n, xid):
    acl = struct.pack(">iii", 1, 31, 5) + b"world" + struct.pack(">i", 6) + b"anyone"
    return frame(struct.pack(">iii", xid, 1, len(path)) + path + struct.pack(">i", n)
                 + b"x" * n + acl + struct.pack(">i", 0))
s, recv, sid, pw = session()
for xid, (path, n) in enumerate([(b"/under", 1048500), (b"/over", 1048576)], 1):
    f = create(path, n, xid)
    s.sendall(f)
    r = recv()
    print(len(f) - 4, "dropped" if r is None else "answered err %d" % struct.unpack(">iqi", r[:16])[2])
    if r is None:
        break
s, recv, sid2, _ = session(sid, pw)
print("same session", sid2 == sid)
get = struct.pack(">iii", 9, 4, 6) + b"/under" + b"\0"
s.sendall(frame(get))
r = recv()
print("read back", struct.unpack(">iqi", r[:16])[2], struct.unpack(">i", r[16:20])[0])
"#;
    let run = |hosts: &str| {
        let out = Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(script)
            .arg(hosts)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{hosts}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let zookeeper = RealZooKeeper::start();
    let expected = run(&format!("127.0.0.1:{}", zookeeper.port));
    assert_eq!(
        expected,
        "1048553 answered err 0\n1048628 dropped\nsame session True\nread back 0 1048500\n"
    );
    let cluster = CoordCluster::start(3, "");
    assert_eq!(run(&cluster.connect_string()), expected);
    let larger = CoordCluster::start(1, "jute.maxbuffer=2097152\n");
    assert_eq!(
        run(&larger.connect_string()),
        "1048553 answered err 0\n1048628 answered err 0\nsame session True\nread back 0 1048500\n"
    );
}
