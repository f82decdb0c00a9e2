//! Snapshot and restore of the replicated state with 100,000 znodes of 100 bytes: what a
//! restart or a lagging follower pays (issue target: a node with 100k znodes serves within 1 s
//! of a restart); what applying pauses for when a snapshot is taken (`freeze`, against the
//! serialisation that now runs beside applying); and what applying creates and sets costs
//! on that tree, with and without a frozen copy alive (the copy-on-write price).
//!
//! `cargo bench -p sluice-coord --bench snapshot`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
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

/// The id of the session `machine_with` created.
fn session_of(m: &Machine) -> i64 {
    m.sessions()
        .iter()
        .map(|(id, _)| id)
        .next()
        .expect("a session")
}

/// Applies `n` writes after the machine's last zxid: creates of new nodes or sets of existing
/// ones (spread over the 100 parents as `machine_with` made them).
fn apply_writes(m: &mut Machine, n: usize, create: bool) {
    let session_id = session_of(m);
    let first = m.last_zxid() + 1;
    for i in 0..n {
        let zxid = first + i as i64;
        let op = if create {
            WriteOp::Create(CreateOp::new(
                format!("/p{:03}/new-{i:07}", i % 100),
                vec![7; 100],
                CreateMode::Persistent,
            ))
        } else {
            WriteOp::SetData {
                path: format!("/p{:03}/node-{i:07}", i % 100),
                data: Some(vec![9; 100]),
                version: -1,
            }
        };
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
    }
}

fn bench(c: &mut Criterion) {
    let m = machine_with(100_000);
    let bytes = m.snapshot();
    let mut g = c.benchmark_group("state_100k_znodes");
    g.sample_size(10);
    g.bench_function("snapshot", |b| b.iter(|| m.snapshot().len()));
    g.bench_function("freeze", |b| b.iter(|| m.freeze()));
    g.bench_function("restore", |b| {
        b.iter(|| Machine::restore(&bytes).map(|r| r.last_zxid()))
    });
    let paths: Vec<String> = (0..10_000)
        .map(|i| format!("/p{:03}/node-{i:07}", i % 100))
        .collect();
    g.bench_function("get_10k", |b| {
        b.iter(|| {
            paths
                .iter()
                .filter_map(|p| m.tree().get_data(p, &[]).ok())
                .map(|(d, s)| d.map_or(0, <[u8]>::len) + s.version as usize)
                .sum::<usize>()
        })
    });
    for (name, create) in [("create_10k", true), ("set_10k", false)] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || Machine::restore(&bytes).expect("restores"),
                |mut m| {
                    apply_writes(&mut m, 10_000, create);
                    m
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_function(format!("{name}_beside_a_frozen_copy"), |b| {
            b.iter_batched(
                || {
                    let m = Machine::restore(&bytes).expect("restores");
                    let frozen = m.freeze();
                    (m, frozen)
                },
                |(mut m, frozen)| {
                    apply_writes(&mut m, 10_000, create);
                    (m, frozen)
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
