//! The README's first command: `deploy/local/cluster.sh up` starts three coord nodes, then three
//! brokers, from the configs in `deploy/local/`, and prints the bootstrap address; `status` and
//! `down` work; each broker serves its metrics on its port (7071–7073). Uses the fixed ports of
//! those configs (2181–2183, 9092–9094, 7071–7073).

use std::path::PathBuf;
use std::process::Command;

fn cluster_sh(state: &std::path::Path, arg: &str) -> (bool, String) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/local/cluster.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(arg)
        .env("STATE_DIR", state)
        // The binaries the test run built (a nested `cargo build` would resolve features
        // differently from the test build and recompile the world).
        .env("BIN_DIR", sluice_e2e::bin_dir())
        .env("SKIP_BUILD", "1")
        .output()
        .expect("run cluster.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = cluster_sh(&self.0, "down");
    }
}

#[test]
fn cluster_sh_starts_three_coords_then_three_brokers_and_stops_them() {
    for port in [2181, 2182, 2183, 9092, 9093, 9094, 7071, 7072, 7073] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} is already in use: stop whatever runs there (deploy/local/cluster.sh down)"
        );
    }
    let state = tempfile::tempdir().unwrap();
    let _down = Down(state.path().to_path_buf());
    let (ok, out) = cluster_sh(state.path(), "up");
    assert!(ok, "{out}");
    assert!(
        out.contains("bootstrap.servers=127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"),
        "{out}"
    );
    for i in 1..=3 {
        assert_eq!(
            std::fs::read_to_string(state.path().join(format!("zk-{i}/myid")))
                .unwrap()
                .trim(),
            i.to_string()
        );
    }
    // Every node knows the leader (retried: a status taken during an election shows `not serving`).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (ok, status) = cluster_sh(state.path(), "status");
        assert!(ok, "{status}");
        let settled = status.matches(" up").count() == 6
            && status.matches("leader").count() == 1
            && status.matches("follower").count() == 2
            && (7071..=7073).all(|p| status.contains(&format!("metrics {p} answering")));
        if settled {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let produced = Command::new("sh")
        .arg("-c")
        // A bounded delivery timeout: a cluster that cannot take the write fails the test in
        // seconds instead of kcat retrying for librdkafka's default five minutes.
        .arg("echo 'first line' | kcat -b 127.0.0.1:9092 -P -t smoke -X message.timeout.ms=30000 && kcat -b 127.0.0.1:9094 -C -t smoke -o beginning -e -q -f '%s\\n'")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&produced.stdout).trim(),
        "first line",
        "{}",
        String::from_utf8_lossy(&produced.stderr)
    );

    // Each broker's endpoint: Kafka's names, and the topic just written on its leader.
    for port in 7071..=7073 {
        let text = metrics(port);
        assert!(
            text.contains("\nkafka_server_replicamanager_partitioncount "),
            "{port}: {text}"
        );
    }
    let leaders: f64 = (7071..=7073)
        .map(|port| sample(&metrics(port), "kafka_server_replicamanager_leadercount"))
        .sum();
    assert!(leaders >= 1.0, "the smoke topic has a leader");

    let (ok, out) = cluster_sh(state.path(), "down");
    assert!(ok, "{out}");
    let (_, status) = cluster_sh(state.path(), "status");
    assert_eq!(status.matches(" down").count(), 6, "{status}");
    for port in [2181, 9092, 7071] {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still served after down"
        );
    }
}

/// The body of `GET /metrics` on 127.0.0.1:`port`.
fn metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{port}: {text}");
    text
}

/// The value of the unlabelled sample `name` in `text`.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name}"))
        .trim()
        .parse()
        .unwrap()
}
