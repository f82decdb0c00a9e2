//! `coord --check FILE` on the seed file and on broken files, as an operator runs it.

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/seed")
        .join(name)
}

fn coord(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coord"))
        .args(args)
        .output()
        .expect("run coord")
}

#[test]
fn check_accepts_the_seed_file_and_prints_effective_values() {
    let file = fixture("zookeeper.properties");
    let out = coord(&["--check".as_ref(), file.as_os_str()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for line in [
        "clientPort=2181",
        "tickTime=3000",
        "initLimit=5",
        "syncLimit=2",
        "maxClientCnxns=0",
        "minSessionTimeout=6000",
        "server.1=localhost:2888:3888",
        "server.2=localhost:2889:3889",
        "server.3=localhost:2890:3890",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line} in\n{stdout}"
        );
    }
    assert!(stdout.contains("ensemble of 3 servers"), "{stdout}");
    assert!(
        stderr.contains("zookeeper.properties:2: clientPort: ignoring the comment"),
        "{stderr}"
    );
    // The seed's dataDir does not exist here: a warning for --check, not an error.
    assert!(
        stderr.contains("warning: /home/user/kafka/zkdata: dataDir does not exist"),
        "{stderr}"
    );
    assert!(!stderr.contains("error"), "{stderr}");
}

#[test]
fn check_rejects_a_mismatched_myid() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("myid"), "9\n").unwrap();
    let cfg = dir.path().join("zk.properties");
    std::fs::write(
        &cfg,
        format!(
            "dataDir={}\nclientPort=2181\ninitLimit=5\nsyncLimit=2\nserver.1=localhost:2888:3888\nserver.2=localhost:2889:3889\nserver.3=localhost:2890:3890\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = coord(&["--check".as_ref(), cfg.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("id 9 has no server.9 line"), "{stderr}");
}

#[test]
fn check_reports_every_error_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zk.properties");
    std::fs::write(&cfg, "clientPort=abc\ntickTime=-1\n").unwrap();
    let out = coord(&["--check".as_ref(), cfg.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("zk.properties:1: clientPort: expected a whole number"),
        "{stderr}"
    );
    assert!(
        stderr.contains("zk.properties:2: tickTime: expected a whole number"),
        "{stderr}"
    );
    assert!(stderr.contains("dataDir: not set"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn check_on_a_missing_file_names_it() {
    let out = coord(&["--check".as_ref(), "/nonexistent/zk.properties".as_ref()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("/nonexistent/zk.properties: cannot read the file"),
        "{stderr}"
    );
}
