//! `broker --check FILE` on the seed file, as an operator runs it.

use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/seed")
        .join(name)
}

#[test]
fn check_rejects_the_seed_placeholder_host_naming_line_20() {
    let out = Command::new(env!("CARGO_BIN_EXE_broker"))
        .arg("--check")
        .arg(fixture("server.properties"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("server.properties:20: advertised.listeners:"),
        "{stderr}"
    );
    assert!(errors[0].contains("카프카서버IP"), "{stderr}");
    assert!(
        stderr.contains("server.properties:1: broker.id: ignoring the comment"),
        "{stderr}"
    );
}

#[test]
fn check_accepts_the_seed_file_once_the_host_is_filled_in() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("server.properties")).unwrap();
    let cfg = dir.path().join("server.properties");
    std::fs::write(&cfg, text.replace("카프카서버IP", "127.0.0.1")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_broker"))
        .arg("--check")
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for line in [
        "broker.id=1",
        "listeners=PLAINTEXT://:9092",
        "advertised.listeners=PLAINTEXT://127.0.0.1:9092",
        "zookeeper.connect=localhost:2181,localhost:2182,localhost:2183",
        "log.retention.ms=604800000",
        "message.max.bytes=1048588",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line} in\n{stdout}"
        );
    }
    assert!(
        stdout.contains("clients are told to connect to PLAINTEXT://127.0.0.1:9092"),
        "{stdout}"
    );
}
