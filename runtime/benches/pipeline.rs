//! The userspace pipeline on one core, in kernel records per second: a ring
//! buffer record decoded, through the process cache and the decisions in
//! flight, to ECS documents, to a gzip'd `_bulk` body (issue 5's target:
//! 200,000 per second). A baseline in the same run: the same records to
//! documents only, without the bulk body.
//!
//! Records: a mix shaped like a busy container, per 10 records: 3 execs,
//! each its decision (logged, with the arguments the caller passed) and
//! then its exec record (the new program's arguments), 2 file decisions
//! (alerted), 1 fork (of the next ten records' process), 1 exit (whose end
//! document follows, its start having been logged). The same records as
//! before issue 12, each exec's decision now before its exec record as the
//! probes write them, through the daemon's whole record path
//! ([`Pipeline`]), which also makes the end documents the earlier
//! benchmark left out.
//!
//! `cargo bench -p d4c-runtime --bench pipeline`; criterion prints `thrpt`
//! in elements (records) per second.

// Benchmarks may panic on setup failure: a broken setup is a broken bench.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use d4c_artifact::ops::{Actions, Operation};
use d4c_kernel_probes::probes::Record;
use d4c_runtime::containers::{Metadata, Registry};
use d4c_runtime::delivery::bulk;
use d4c_runtime::document::Document;
use d4c_runtime::ecs::Facts;
use d4c_runtime::event::{encode, Decision};
use d4c_runtime::inflight::Matched;
use d4c_runtime::pipeline::{Context, Pipeline};

const RECORDS: usize = 10_000;

fn records() -> Vec<Record> {
    let mut out = Vec::with_capacity(RECORDS);
    for n in 0..RECORDS {
        let pid = 1000 + (n / 10) as u32;
        let url = format!("http://10.0.0.7/{n}");
        let args = ["curl", "-s", url.as_str()];
        let mut record = match n % 10 {
            0 | 2 | 4 => encode::exec_decision(pid, "/usr/bin/curl", "curl", &args, Actions::LOG),
            1 | 3 | 5 => encode::exec(pid, "/usr/bin/curl", "curl", Some(&args)),
            6 | 7 => encode::decision(
                pid,
                encode::HOOK_PATH_MKNOD,
                Operation::CreateExecutable,
                &format!("/tmp/dropper-{n}.sh"),
                Actions::ALERT.union(Actions::LOG),
            ),
            // The next ten records' process: forked by this one, as a
            // busy container's processes are by their known parents.
            8 => encode::lifecycle(pid, encode::FORK, pid + 1),
            _ => encode::lifecycle(pid, encode::EXIT, 0),
        };
        record.head.cgroup_id = 4242;
        record.head.ktime_ns = 1_000_000 * n as u64;
        record.head.comm[..4].copy_from_slice(b"curl");
        // As read from the ring buffer.
        out.push(Record::parse(&record.to_bytes()).unwrap());
    }
    out
}

fn facts() -> Facts {
    Facts {
        agent_id: "6f1c2a8e0d4b4a7e9a553f0c1b2d4e6f".into(),
        agent_version: "0.1.0".into(),
        host: serde_json::json!({"name": "node-3", "hostname": "node-3", "os": {"kernel": "6.12.0"}}),
        cluster_id: Some("0d9e8f7a-6b5c-4d3e-2f1a-0b9c8d7e6f5a".into()),
        cluster_name: Some("prod".into()),
        namespace: "default".into(),
        policy_id: "drift-prevention".into(),
        policy_revision: 3,
        policy_digest: "beec91339ef110e8".into(),
        boot_epoch_ns: 1_795_000_000_000_000_000,
        boot_id: "b778cecd-72bf-411e-975b-eaf4d7c12d46".into(),
        ..Facts::default()
    }
}

/// Records to documents, as the daemon does (the kernel's selector
/// explanation a constant here, as the daemon's is once per row entry).
fn documents(records: &[Record], facts: &Facts, registry: &Registry, out: &mut Vec<Document>) {
    let mut pipeline = Pipeline::new(65_536, PathBuf::from("/nonexistent"));
    let matched: Matched = vec!["allProcesses".to_owned()].into();
    let explain = |_: &Decision| matched.clone();
    let cx = Context {
        facts,
        containers: registry,
        explain: &explain,
        audit: None,
        now_ns: 0,
        created_ns: 1_795_000_000_000_000_000,
    };
    for record in records {
        pipeline.record(record, &cx, out);
    }
}

fn pipeline(c: &mut Criterion) {
    let records = records();
    let facts = facts();
    let mut registry = Registry::default();
    let container = Metadata {
        id: "4b1d2c3e5f60718293a4b5c6d7e8f9012a3b4c5d6e7f8091a2b3c4d5e6f70812".into(),
        runtime: Some("containerd"),
        name: Some("web".into()),
        image: Some("docker.io/library/nginx:1.27".into()),
        pod_name: Some("web-7d9f8c6b5-x2k4q".into()),
        namespace: Some("shop".into()),
        pod_uid: Some("0d3c8a52-7f0b-4a1b-9f8e-2f4c9a1b2c3d".into()),
        ..Metadata::default()
    };
    registry.insert(4242, container);
    // The mix makes 8 documents per 10 records: 3 exec logs, 2 alerts and
    // 2 logs of file decisions, and the end of the process whose execs
    // were logged (which the benchmark before issue 12 did not make: it
    // called the document writer for decisions only).
    let mut check = Vec::new();
    documents(&records, &facts, &registry, &mut check);
    assert_eq!(check.len(), RECORDS / 10 * 8);
    if std::env::var_os("D4C_SIZES").is_some() {
        let mut sizes: Vec<usize> = check.iter().map(|d| d.body.len()).collect();
        sizes.sort_unstable();
        eprintln!(
            "sizes min {} median {} max {} mean {}",
            sizes[0],
            sizes[sizes.len() / 2],
            sizes[sizes.len() - 1],
            sizes.iter().sum::<usize>() / sizes.len()
        );
        eprintln!("{}", String::from_utf8_lossy(&check[0].body));
        let mut plain = Vec::new();
        bulk::encode(&check, &mut plain);
        eprintln!(
            "bulk body per {RECORDS} records: {} bytes, {} gzip'd (level 1)",
            plain.len(),
            bulk::encode_gzip(&check, 1).len()
        );
        std::process::exit(0);
    }
    // A fixed amount of work for instruction counts, which the machine's
    // load does not move (`perf stat -e instructions:u`): the whole
    // pipeline, to a gzip'd body (or, with D4C_PIPELINE_DOCUMENTS_ONLY, to
    // documents), this many times, then exit.
    if let Some(n) = std::env::var("D4C_PIPELINE_ITERATIONS").ok().and_then(|n| n.parse::<u32>().ok()) {
        for _ in 0..n {
            let mut out = Vec::with_capacity(RECORDS);
            documents(black_box(&records), &facts, &registry, &mut out);
            if std::env::var_os("D4C_PIPELINE_DOCUMENTS_ONLY").is_some() {
                black_box(out.len());
                continue;
            }
            black_box(bulk::encode_gzip(&out, 1).len());
        }
        std::process::exit(0);
    }
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("records_to_documents (baseline)", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(RECORDS);
            documents(black_box(&records), &facts, &registry, &mut out);
            black_box(out.len())
        });
    });
    group.bench_function("records_to_gzip_bulk_body", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(RECORDS);
            documents(black_box(&records), &facts, &registry, &mut out);
            black_box(bulk::encode_gzip(&out, 1).len())
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(5));
    targets = pipeline
}
criterion_main!(benches);
