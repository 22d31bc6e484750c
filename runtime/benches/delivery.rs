//! Userspace throughput of delivery, in documents per second on one core:
//! a `Document` to a gzip'd `_bulk` body (the encoding path of every bulk
//! request), and a `Document` through a disk-queue append.
//!
//! `cargo bench -p d4c-runtime --bench delivery`; criterion prints each
//! figure as `thrpt` in elements (documents) per second.

// Benchmarks may panic on setup failure: a broken setup is a broken bench.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use d4c_runtime::delivery::bulk;
use d4c_runtime::delivery::config::FsyncPolicy;
use d4c_runtime::delivery::queue::{Batch, BatchLimits, DiskQueue, QueueOptions};
use d4c_runtime::delivery::stats::DeliveryStats;
use d4c_runtime::document::{Class, Document};

const BATCH: usize = 1_000;

/// A process alert of about 1.3 KB, shaped like the runtime's ECS documents.
fn document(n: usize) -> Document {
    let body = format!(
        concat!(
            r#"{{"@timestamp":"2026-01-01T00:00:{s:02}.{ms:03}Z","ecs":{{"version":"8.11.0"}},"#,
            r#""agent":{{"id":"6f1c2a8e-0d4b-4a7e-9a55-3f0c1b2d4e6f","type":"cloud-defend","version":"0.1.0"}},"#,
            r#""host":{{"name":"node-3","hostname":"node-3","os":{{"kernel":"6.12.0"}},"architecture":"x86_64"}},"#,
            r#""container":{{"id":"4b1d2c3e5f60718293a4b5c6d7e8f9012a3b4c5d6e7f8091a2b3c4d5e6f70812","name":"web","image":{{"name":"docker.io/library/nginx","tag":"1.27"}}}},"#,
            r#""orchestrator":{{"cluster":{{"id":"0d9e8f7a-6b5c-4d3e-2f1a-0b9c8d7e6f5a","name":"prod"}},"namespace":"shop","resource":{{"name":"web-7d9f8c6b5-x2k4q","type":"pod","labels":["app:web","tier:front"]}}}},"#,
            r#""process":{{"pid":{pid},"executable":"/usr/bin/curl","name":"curl","args":["curl","-s","http://10.0.0.7/{n}"],"command_line":"curl -s http://10.0.0.7/{n}","#,
            r#""entity_id":"NmYxYzJhOGUtMTIzNDUtMTcwMDAwMDAwMA","interactive":false,"parent":{{"pid":1,"executable":"/bin/sh","entity_id":"NmYxYzJhOGUtMS0xNzAwMDAwMDAw"}}}},"#,
            r#""event":{{"kind":"alert","type":["denied"],"category":["process"],"action":"exec","id":"{n}"}},"#,
            r#""cloud_defend":{{"matched_selectors":["curl"],"package_policy_id":"d4c","package_policy_revision":3}},"#,
            r#""data_stream":{{"type":"logs","dataset":"cloud_defend.alerts","namespace":"default"}}}}"#
        ),
        s = n % 60,
        ms = n % 1000,
        pid = 1000 + n,
        n = n,
    );
    Document {
        stream: "logs-cloud_defend.alerts-default".to_owned(),
        id: format!("AAECAwQFBgcICQoLDA0ODw-{n:08}"),
        class: if n.is_multiple_of(10) { Class::Alert } else { Class::Log },
        body: body.into_bytes(),
    }
}

fn encoding(c: &mut Criterion) {
    let documents: Vec<Document> = (0..BATCH).map(document).collect();
    let bytes: usize = documents.iter().map(|d| d.body.len()).sum();
    println!("document body: {} bytes on average", bytes / BATCH);
    let mut group = c.benchmark_group("bulk_body");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut body = Vec::new();
    group.bench_function("encode", |b| {
        b.iter(|| {
            body.clear();
            bulk::encode(black_box(&documents), &mut body);
            black_box(body.len())
        })
    });
    for level in [1, 6] {
        group.bench_function(format!("encode_gzip_level_{level}"), |b| {
            b.iter(|| black_box(bulk::encode_gzip(black_box(&documents), level).len()))
        });
    }
    group.finish();
    body.clear();
    bulk::encode(&documents, &mut body);
    println!("gzip level 1: {} -> {} bytes for {BATCH} documents", body.len(), bulk::encode_gzip(&documents, 1).len());
}

fn queue_append(c: &mut Criterion) {
    let documents: Vec<Document> = (0..BATCH).map(document).collect();
    let mut group = c.benchmark_group("disk_queue");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, fsync) in
        [("append_fsync_never", FsyncPolicy::Never), ("append_fsync_1s", FsyncPolicy::Interval(Duration::from_secs(1)))]
    {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let stats = DeliveryStats::default();
        let options = QueueOptions { max_bytes: 1 << 30, segment_bytes: 8 << 20, fsync };
        let mut queue = DiskQueue::open(dir.path(), options, &stats).expect("open the queue");
        let limits = BatchLimits { max_documents: usize::MAX, max_bytes: 64 << 20 };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let batch = documents.clone();
                    let started = Instant::now();
                    queue.append(batch, &stats).expect("append");
                    spent += started.elapsed();
                    if queue.disk_bytes() > 256 << 20 {
                        // Not timed: consume what was appended so the disk use stays bounded.
                        let mut read = Batch::default();
                        while queue.unacked_records() > 0 {
                            queue.read_into(&mut read, limits, &stats).expect("read");
                            if !read.has_progress() {
                                break;
                            }
                            queue.ack(&mut read, &stats).expect("ack");
                        }
                    }
                }
                spent
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encoding, queue_append);
criterion_main!(benches);
