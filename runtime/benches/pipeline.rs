//! The userspace pipeline on one core, in kernel records per second: a ring
//! buffer record through the process cache, to ECS documents, to a gzip'd
//! `_bulk` body (issue 5's target: 200,000 per second). A baseline in the
//! same run: the same records to documents only, without the bulk body.
//!
//! Records: a mix shaped like a busy container, per 10 records: 3 exec
//! lifecycle records with arguments, 3 exec decisions (logged), 2 file
//! decisions (alerted), 1 fork (of the next ten records' process), 1 exit.
//!
//! `cargo bench -p d4c-runtime --bench pipeline`; criterion prints `thrpt`
//! in elements (records) per second.

// Benchmarks may panic on setup failure: a broken setup is a broken bench.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use d4c_kernel_probes::abi::{
    EventRecord, ACTION_ALERT, ACTION_LOG, ARGS_OFFSET, EV_ARGS, EV_HAS_PATH, KIND_FILE, KIND_PROCESS, LIFE_EXEC,
    LIFE_EXIT, LIFE_FORK, OP_CREATE_EXECUTABLE, OP_EXEC, RECORD_DECISION, RECORD_LIFECYCLE,
};
use d4c_kernel_probes::probes::Record;
use d4c_runtime::containers::Metadata;
use d4c_runtime::delivery::bulk;
use d4c_runtime::document::Document;
use d4c_runtime::ecs::{self, Facts, Subject};
use d4c_runtime::process::ProcessCache;
use zerocopy::FromZeros;

const RECORDS: usize = 10_000;

fn records() -> Vec<Record> {
    let mut out = Vec::with_capacity(RECORDS);
    for n in 0..RECORDS {
        let mut head = EventRecord::new_zeroed();
        let pid = 1000 + (n / 10) as u32;
        head.pid = pid;
        head.tgid = pid;
        head.ppid = 1;
        head.sid = 1;
        head.cgroup_id = 4242;
        head.ktime_ns = 1_000_000 * n as u64;
        head.comm[..4].copy_from_slice(b"curl");
        head.name[..4].copy_from_slice(b"curl");
        head.name_len = 4;
        let mut path = b"/usr/bin/curl".to_vec();
        match n % 10 {
            0..=2 => {
                head.record = RECORD_LIFECYCLE;
                head.op = LIFE_EXEC;
                head.flags = EV_ARGS | EV_HAS_PATH;
                path.resize(ARGS_OFFSET as usize, 0);
                path.extend_from_slice(format!("curl\0-s\0http://10.0.0.7/{n}\0").as_bytes());
            }
            3..=5 => {
                head.record = RECORD_DECISION;
                head.kind = KIND_PROCESS;
                head.op = OP_EXEC;
                head.actions = ACTION_LOG;
                head.flags = EV_HAS_PATH;
            }
            6 | 7 => {
                head.record = RECORD_DECISION;
                head.kind = KIND_FILE;
                head.op = OP_CREATE_EXECUTABLE;
                head.actions = ACTION_ALERT | ACTION_LOG;
                head.flags = EV_HAS_PATH;
                path = format!("/tmp/dropper-{n}.sh").into_bytes();
            }
            8 => {
                // The next ten records' process: forked by this one, as a
                // busy container's processes are by their known parents.
                head.record = RECORD_LIFECYCLE;
                head.op = LIFE_FORK;
                head.child_tgid = pid + 1;
            }
            _ => {
                head.record = RECORD_LIFECYCLE;
                head.op = LIFE_EXIT;
            }
        }
        head.path_len = path.len() as u32;
        out.push(Record { head, path });
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

/// Records to documents, as the daemon does (without the kernel's
/// selector explanation, a constant here).
fn documents(records: &[Record], facts: &Facts, container: &Metadata, out: &mut Vec<Document>) {
    let mut cache = ProcessCache::new(65_536, PathBuf::from("/nonexistent"));
    let matched = vec!["allProcesses".to_owned()];
    for record in records {
        let process = cache.observe(record);
        if record.head.record == RECORD_DECISION {
            let ancestors = cache.ancestors(process.pid);
            let subject = Subject {
                record,
                process: &process,
                ancestors: &ancestors,
                container: Some(container),
                matched: &matched,
            };
            out.extend(ecs::decision_documents(facts, &subject));
        }
    }
}

fn pipeline(c: &mut Criterion) {
    let records = records();
    let facts = facts();
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
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("records_to_documents (baseline)", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(RECORDS);
            documents(black_box(&records), &facts, &container, &mut out);
            black_box(out.len())
        });
    });
    group.bench_function("records_to_gzip_bulk_body", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(RECORDS);
            documents(black_box(&records), &facts, &container, &mut out);
            let mut body = Vec::with_capacity(out.len() * 1500);
            bulk::encode(&out, &mut body);
            black_box(bulk::gzip(&body, 1).len())
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
