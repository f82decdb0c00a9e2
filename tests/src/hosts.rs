//! Several "hosts" on one machine: a network namespace each, with its own address and host
//! name, joined by a bridge in a namespace of its own, so that a multi-host installation
//! (`deploy/hosts`) runs with the same ports on every host and names that resolve as DNS would.
//!
//! ```text
//!   sluice-1 (10.77.0.1)   sluice-2 (10.77.0.2)   sluice-3 (10.77.0.3)   client (10.77.0.100)
//!        eth0                   eth0                   eth0                   eth0
//!          └──────────────┬───────┴──────────────┬───────┴──────────────────────┘
//!                      p1 … pn  ── br0 (the switch namespace) ──
//! ```
//!
//! Everything lives in namespaces this kit creates (nothing is added to the machine's own
//! network); `/etc/netns/<namespace>/hosts` gives each one the host names, which
//! `ip netns exec` mounts over `/etc/hosts` for the commands it runs. Needs root and iproute2.
//! Dropping [`Hosts`] kills what runs in the namespaces and removes them.

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// One namespace: its host name and address.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub namespace: String,
    pub addr: Ipv4Addr,
}

/// The namespaces of one test.
#[derive(Debug)]
pub struct Hosts {
    pub hosts: Vec<Host>,
    switch: String,
}

fn run(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e} (install iproute2)"));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn require_root() {
    let out = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "network namespaces need root: run the tests as root"
    );
}

impl Hosts {
    /// Namespaces named after `names` (host names; addresses 10.77.0.1, .2, … in order), plus
    /// the host `client` at 10.77.0.100, each knowing every other's name.
    pub fn create(names: &[&str]) -> Hosts {
        require_root();
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "sl{}x{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let switch = format!("{tag}-sw");
        let mut hosts: Vec<Host> = names
            .iter()
            .enumerate()
            .map(|(i, n)| Host {
                name: n.to_string(),
                namespace: format!("{tag}-{n}"),
                addr: Ipv4Addr::new(10, 77, 0, i as u8 + 1),
            })
            .collect();
        hosts.push(Host {
            name: "client".into(),
            namespace: format!("{tag}-client"),
            addr: Ipv4Addr::new(10, 77, 0, 100),
        });
        // Built up as the namespaces are made, so that a failure half-way removes what exists.
        let mut made = Hosts {
            hosts: Vec::new(),
            switch: switch.clone(),
        };
        run(&["netns", "add", &switch]);
        run(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        run(&["-n", &switch, "link", "set", "br0", "up"]);
        let etc_hosts: String = std::iter::once("127.0.0.1 localhost\n".to_string())
            .chain(hosts.iter().map(|h| format!("{} {}\n", h.addr, h.name)))
            .collect();
        for (i, h) in hosts.iter().enumerate() {
            run(&["netns", "add", &h.namespace]);
            made.hosts.push(h.clone());
            let port = format!("p{i}");
            run(&[
                "link",
                "add",
                "eth0",
                "netns",
                &h.namespace,
                "type",
                "veth",
                "peer",
                "name",
                &port,
                "netns",
                &switch,
            ]);
            run(&["-n", &switch, "link", "set", &port, "master", "br0"]);
            run(&["-n", &switch, "link", "set", &port, "up"]);
            let cidr = format!("{}/24", h.addr);
            run(&["-n", &h.namespace, "addr", "add", &cidr, "dev", "eth0"]);
            run(&["-n", &h.namespace, "link", "set", "eth0", "up"]);
            run(&["-n", &h.namespace, "link", "set", "lo", "up"]);
            let etc = Self::etc_dir(&h.namespace);
            std::fs::create_dir_all(&etc).expect("/etc/netns");
            std::fs::write(etc.join("hosts"), &etc_hosts).expect("/etc/netns/*/hosts");
        }
        made
    }

    fn etc_dir(namespace: &str) -> PathBuf {
        PathBuf::from("/etc/netns").join(namespace)
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// `program` run on `host` (in its namespace, with its `/etc/hosts`).
    pub fn command(&self, host: &str, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.host(host).namespace])
            .arg(program)
            .stdin(Stdio::null());
        c
    }

    /// Runs `bash -c script` on `host`; its output.
    pub fn sh(&self, host: &str, script: &str) -> Output {
        self.command(host, "bash")
            .args(["-c", script])
            .output()
            .expect("bash in a namespace")
    }

    /// The answer to a ZooKeeper four-letter word from `host`'s port 2181, asked from the
    /// client host (empty if it does not answer).
    pub fn four_letter_word(&self, host: &str, word: &str) -> String {
        let out = self.sh(
            "client",
            &format!(
                "exec 3<>/dev/tcp/{host}/2181 || exit 1; printf {word} >&3; timeout 3 cat <&3"
            ),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every process running on `host`.
    pub fn pids(&self, host: &str) -> Vec<u32> {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.host(host).namespace])
            .output()
            .expect("ip netns pids");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// SIGKILLs everything on `host` (the machine lost its power).
    pub fn kill_all(&self, host: &str) {
        for pid in self.pids(host) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for h in &self.hosts {
            self.kill_all(&h.name);
        }
        for h in &self.hosts {
            let _ = Command::new("ip")
                .args(["netns", "del", &h.namespace])
                .status();
            let _ = std::fs::remove_dir_all(Self::etc_dir(&h.namespace));
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.switch])
            .status();
    }
}
