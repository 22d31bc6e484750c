//! Decision tables: compile time and artifact size, and the cost of one
//! decision.
//!
//! - `compile/*`: lowering plus writing the artifact (lint excluded), for
//!   generated policies of 64, 1,000 and 10,000 selectors and a path-heavy
//!   one of 10,000 selectors with 10 paths each (100,000 patterns written,
//!   65,536 distinct), and a deep-path one of 1,250 patterns 400
//!   directories deep (2.4 MB, 501,668 path prefixes; issue 14, fault 10).
//!   Artifact sizes are printed once.
//! - `decide/table/N`: what the kernel computes for one event (automaton
//!   walk, class arrays, the container's precomputed row) at N = 1, 64,
//!   1,024 and 4,096 selectors, next to `decide/direct/N`, the direct
//!   evaluator on the same events, which looks at every selector.
//! - `path_length/L`: the table decision for paths of L bytes.
//!
//! Run with `scripts/bench` or `cargo bench -p d4cc --bench tables`.

// Benchmarks may panic on setup failure: a broken setup is a broken bench.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use d4c_artifact::eval::Tables;
use d4c_artifact::event::{Container, Event, FileEvent, ProcessEvent, Volume};
use d4c_artifact::ops::{Actions, Kind, Operation};
use d4c_artifact::{aligned_copy, Artifact};
use d4c_testgen::{generate_deep_paths, generate_path_heavy, generate_policy};
use d4cc::compile::{compile, CompileOptions};
use d4cc::model::CheckedPolicy;
use std::time::Duration;

fn checked(text: &str) -> CheckedPolicy {
    let (_, output) = d4cc::lint::lint_bytes("bench.yaml", text.as_bytes().to_vec());
    assert!(!output.has_errors(), "generated policy has errors");
    output.checked.unwrap()
}

fn options() -> CompileOptions {
    CompileOptions { policy_name: "bench".into(), revision: 1, created_unix: None }
}

fn tables(text: &str) -> Tables {
    let bytes = compile(text.as_bytes(), &checked(text), &options()).unwrap();
    let aligned = aligned_copy(&bytes);
    Tables::read(&Artifact::parse(&aligned).unwrap()).unwrap()
}

fn bench_compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10).measurement_time(Duration::from_secs(8));
    let cases = [
        ("64", generate_policy(64, 7)),
        ("1000", generate_policy(1000, 7)),
        ("10000", generate_policy(10_000, 7)),
        ("10000x10paths", generate_path_heavy(10_000, 10, 7)),
        ("deep1250x400", generate_deep_paths(1_250, 400)),
    ];
    for (name, text) in &cases {
        let policy = checked(text);
        let size = compile(text.as_bytes(), &policy, &options()).unwrap().len();
        println!("artifact {name}: {size} bytes from {} bytes of YAML", text.len());
        group.bench_with_input(BenchmarkId::from_parameter(name), &policy, |b, policy| {
            b.iter(|| compile(text.as_bytes(), black_box(policy), &options()).unwrap().len())
        });
    }
    group.finish();
}

/// Typical events: paths of 10 to 60 bytes, the usual operations.
fn events() -> Vec<Event> {
    let paths = [
        "/usr/bin/curl",
        "/etc/passwd",
        "/usr/local/lib/python3.11/site-packages/x.py",
        "/var/lib/app/data/records.db",
        "/tmp/payload",
        "/opt/app/bin/server",
        "/home/user/.bashrc",
        "/usr/sbin/nginx",
    ];
    let mut events = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let op = Operation::of_kind(Kind::File)[i % 5];
        events.push(Event::File(FileEvent {
            operation: op,
            path: Some(path.to_string()),
            volume: Volume::RootFs,
            directory: false,
        }));
        events.push(Event::Process(ProcessEvent {
            operation: if i % 2 == 0 { Operation::Exec } else { Operation::Fork },
            executable: path.to_string(),
            name: path.rsplit('/').next().unwrap().chars().take(15).collect(),
            interactive: i % 3 == 0,
            user: d4c_artifact::event::User::root(),
        }));
    }
    events
}

/// One selector, as a policy.
const ONE_SELECTOR: &str = "file:\n  selectors:\n    - name: drift\n      operation: [createExecutable, modifyExecutable]\n      targetFilePath: [/usr/bin/**]\n  responses:\n    - match: [drift]\n      actions: [alert]\n";

/// The kernel-side decision: the dynamic class, then the row.
fn table_decision(tables: &Tables, rows: &[Vec<Actions>; 2], event: &Event) -> Actions {
    let (kind, class) = tables.dynamic_class(event);
    let row = match kind {
        Kind::File => &rows[0],
        Kind::Process => &rows[1],
        // The bench's events are file and process events.
        Kind::Network => return Actions::NONE,
    };
    row.get(class as usize).copied().unwrap_or_default()
}

fn bench_decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    group.sample_size(30).measurement_time(Duration::from_secs(3));
    let container =
        Container { image_name: Some("nginx".into()), namespace: Some("default".into()), ..Container::default() };
    let events = events();
    for n in [1usize, 64, 1024, 4096] {
        let text = if n == 1 { ONE_SELECTOR.to_string() } else { generate_policy(n, 11) };
        let policy = checked(&text);
        let tables = tables(&text);
        let rows = [Kind::File, Kind::Process].map(|k| tables.row(k, &tables.container_selectors(k, &container)));
        group.bench_with_input(BenchmarkId::new("table", n), &n, |b, _| {
            b.iter(|| {
                for event in &events {
                    black_box(table_decision(&tables, &rows, black_box(event)));
                }
            })
        });
        group.bench_with_input(BenchmarkId::new("direct", n), &n, |b, _| {
            b.iter(|| {
                for event in &events {
                    black_box(d4cc::direct::evaluate(&policy, &container, black_box(event)));
                }
            })
        });
    }
    group.finish();
    println!("(each decide iteration decides {} events)", events.len());
}

fn bench_path_length(c: &mut Criterion) {
    let mut group = c.benchmark_group("path_length");
    group.sample_size(30).measurement_time(Duration::from_secs(3));
    let text = generate_policy(1024, 11);
    let tables = tables(&text);
    let container = Container::default();
    let rows = [Kind::File, Kind::Process].map(|k| tables.row(k, &tables.container_selectors(k, &container)));
    for len in [10usize, 100, 1000, 4000] {
        // Components of 9 bytes plus their slash.
        let mut path = String::new();
        while path.len() + 10 <= len {
            path.push_str("/component");
        }
        let event = Event::File(FileEvent {
            operation: Operation::ModifyFile,
            path: Some(path),
            volume: Volume::RootFs,
            directory: false,
        });
        group.bench_with_input(BenchmarkId::from_parameter(len), &event, |b, event| {
            b.iter(|| black_box(table_decision(&tables, &rows, black_box(event))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_compile, bench_decide, bench_path_length);
criterion_main!(benches);
