//! Snapshot and restore of the replicated state with 100,000 znodes of 100 bytes: what a
//! restart or a lagging follower pays (issue target: a node with 100k znodes serves within 1 s
//! of a restart).
//!
//! `cargo bench -p sluice-coord --bench snapshot`

use criterion::{criterion_group, criterion_main, Criterion};
use sluice_coord::machine::{Command, Machine, WriteOp};
use sluice_coord::tree::CreateOp;
use sluice_jute::CreateMode;

fn machine_with(nodes: usize) -> Machine {
    let mut m = Machine::new();
    let (r, _) = m.apply(
        1,
        1,
        1,
        &Command::CreateSession {
            timeout_ms: 30_000,
            password: [7; 16],
            origin_node: 1,
        },
    );
    let session_id = match r {
        sluice_coord::machine::CommandResult::SessionCreated { session_id, .. } => session_id,
        other => panic!("{other:?}"),
    };
    let parents = 100;
    let mut zxid = 1;
    let mut write = |m: &mut Machine, path: String, data: Vec<u8>| {
        zxid += 1;
        let op = WriteOp::Create(CreateOp::new(path, data, CreateMode::Persistent));
        m.apply(
            zxid,
            zxid,
            zxid as u64,
            &Command::Write {
                session_id,
                auth: Vec::new(),
                op,
            },
        );
    };
    for p in 0..parents {
        write(&mut m, format!("/p{p:03}"), Vec::new());
    }
    for i in 0..nodes - parents {
        write(
            &mut m,
            format!("/p{:03}/node-{i:07}", i % parents),
            vec![(i % 251) as u8; 100],
        );
    }
    m
}

fn bench(c: &mut Criterion) {
    let m = machine_with(100_000);
    let bytes = m.snapshot();
    let mut g = c.benchmark_group("state_100k_znodes");
    g.sample_size(10);
    g.bench_function("snapshot", |b| b.iter(|| m.snapshot().len()));
    g.bench_function("restore", |b| {
        b.iter(|| Machine::restore(&bytes).map(|r| r.last_zxid()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
