//! Delivery end to end: documents through the disk queue to an emulated
//! Elasticsearch (see `support/es_emulator.rs`) or to NDJSON, through every
//! fault the issue names. Each test checks the same truth: every document
//! sent is stored exactly once, dead-lettered, or counted as dropped.
//!
//! No fixed sleeps: tests wait for conditions with a generous limit, so a
//! busy machine makes them slower, not flaky.

// Test helpers may panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use d4c_runtime::delivery::config::{
    ApiKey, Auth, BatchConfig, DeliveryConfig, ElasticsearchConfig, FsyncPolicy, NdjsonConfig, NdjsonFormat, SinkConfig,
};
use d4c_runtime::delivery::stats::{ByClass, DeliveryStatsSnapshot, DropReason};
use d4c_runtime::delivery::{record, Delivery, DeliveryError, SendError};
use d4c_runtime::document::{Class, Document};
use support::es_emulator::{parse_bulk, EsEmulator, Fault};

/// Long enough for a loaded 2-core CI machine; tests normally finish in
/// milliseconds.
const PATIENCE: Duration = Duration::from_secs(30);

fn document(n: usize, class: Class) -> Document {
    let (stream, kind, prefix) = match class {
        Class::Alert => ("logs-cloud_defend.alerts-default", "alert", "alert"),
        Class::Log => ("logs-cloud_defend.process-default", "event", "log"),
    };
    let body = format!(
        r#"{{"@timestamp":"2026-01-01T00:00:00.000Z","event":{{"kind":"{kind}","action":"exec"}},"process":{{"pid":{n},"executable":"/usr/bin/curl","args":["curl","-s","http://example.invalid/{n}"]}},"data_stream":{{"type":"logs","dataset":"cloud_defend","namespace":"default"}}}}"#
    );
    Document { stream: stream.to_owned(), id: format!("{prefix}-{n}"), class, body: body.into_bytes() }
}

fn ids(prefix: &str, range: std::ops::Range<usize>) -> BTreeSet<String> {
    range.map(|n| format!("{prefix}-{n}")).collect()
}

fn es_config(url: &str) -> DeliveryConfig {
    DeliveryConfig {
        sink: SinkConfig::Elasticsearch(ElasticsearchConfig {
            urls: vec![url.to_owned()],
            request_timeout: Duration::from_secs(5),
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            ..ElasticsearchConfig::default()
        }),
        batch: BatchConfig { max_documents: 50, max_bytes: 1 << 20, flush_interval: Duration::from_millis(20) },
        queue: d4c_runtime::delivery::config::QueueConfig {
            fsync: FsyncPolicy::Never,
            lock_timeout: PATIENCE,
            ..Default::default()
        },
        ..DeliveryConfig::default()
    }
}

fn es_mut(config: &mut DeliveryConfig) -> &mut ElasticsearchConfig {
    match &mut config.sink {
        SinkConfig::Elasticsearch(es) => es,
        SinkConfig::Ndjson(_) => panic!("not an elasticsearch configuration"),
    }
}

/// An emulator that is down (its port kept for `restart`) and a new state
/// directory.
async fn offline() -> (EsEmulator, tempfile::TempDir) {
    let mut es = EsEmulator::start().await;
    es.stop().await;
    (es, tempfile::tempdir().unwrap())
}

/// Delivery to `es` with the test configuration.
fn start(es: &EsEmulator, state: &Path) -> Delivery {
    Delivery::start(es_config(&es.url()), state).unwrap()
}

/// Waits until `condition` holds for the delivery's stats.
async fn wait_for(delivery: &Delivery, what: &str, condition: impl Fn(&DeliveryStatsSnapshot) -> bool) {
    wait_until(what, || condition(&delivery.stats()), || format!("{:#?}", delivery.stats())).await;
}

async fn wait_until(what: &str, condition: impl Fn() -> bool, explain: impl Fn() -> String) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}; state: {}", explain());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future).await.unwrap_or_else(|_| panic!("timed out: {what}"))
}

fn send_all(delivery: &Delivery, documents: impl IntoIterator<Item = Document>) {
    let sender = delivery.sender();
    for document in documents {
        sender.try_send(document).expect("the channel takes the document");
    }
}

/// Checks that Elasticsearch holds exactly `expected`, each created once,
/// that the queue empties with nothing dropped or dead-lettered, and shuts
/// down.
async fn assert_stored_once_and_shut_down(delivery: Delivery, es: &EsEmulator, expected: BTreeSet<String>) {
    assert_eq!(es.ids(), expected);
    assert_eq!(es.state().created, expected.len() as u64);
    wait_for(&delivery, "the queue to empty", |s| s.queue_records.total() == 0).await;
    let stats = delivery.stats();
    assert_eq!(stats.dropped_total(), ByClass::default(), "{stats:#?}");
    assert_eq!(stats.dead_lettered, ByClass::default(), "{stats:#?}");
    assert!(within("shutdown", delivery.shutdown(Duration::from_secs(5))).await.unwrap().drained);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_document_is_stored_once_through_partial_item_failures() {
    let es = EsEmulator::start().await;
    es.push_fault(Fault::Items { every: 3, status: 429 });
    es.push_fault(Fault::Items { every: 2, status: 500 });
    es.push_fault(Fault::Items { every: 5, status: 503 });
    let state = tempfile::tempdir().unwrap();
    let delivery = start(&es, state.path());
    send_all(&delivery, (0..100).map(|n| document(n, Class::Log)));
    send_all(&delivery, (0..100).map(|n| document(n, Class::Alert)));
    wait_for(&delivery, "200 delivered", |s| s.delivered.total() == 200).await;
    let stats = delivery.stats();
    assert_eq!(stats.accepted, ByClass { alert: 100, log: 100 });
    assert_eq!(stats.delivered, ByClass { alert: 100, log: 100 });
    assert!(stats.retried > 0, "{stats:#?}");
    assert_eq!(es.pending_faults(), 0);
    let expected = ids("log", 0..100).into_iter().chain(ids("alert", 0..100)).collect();
    assert_stored_once_and_shut_down(delivery, &es, expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_request_429_and_5xx_are_retried_with_backoff() {
    let es = EsEmulator::start().await;
    for status in [429, 503, 500, 502] {
        es.push_fault(Fault::Status(status));
    }
    let state = tempfile::tempdir().unwrap();
    let delivery = start(&es, state.path());
    send_all(&delivery, (0..60).map(|n| document(n, Class::Alert)));
    wait_for(&delivery, "60 delivered", |s| s.delivered.alert == 60).await;
    let stats = delivery.stats();
    assert!(stats.bulk_failures >= 4, "{stats:#?}");
    let last = stats.last_error.clone().expect("a last error").message;
    assert!(last.contains("answered HTTP 502 `scripted_failure`: scripted"), "{last}");
    assert_eq!(es.ids(), ids("alert", 0..60));
    assert_eq!(es.state().created, 60);
    assert!(stats.bulk_latency.count >= 5);
    delivery.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_requests_are_split() {
    let es = EsEmulator::start().await;
    es.push_fault(Fault::Status(413));
    es.push_fault(Fault::Status(413));
    let state = tempfile::tempdir().unwrap();
    let mut config = es_config(&es.url());
    // One batch of all 40 documents.
    config.batch.flush_interval = Duration::from_secs(60);
    config.batch.max_documents = 40;
    let delivery = Delivery::start(config, state.path()).unwrap();
    send_all(&delivery, (0..40).map(|n| document(n, Class::Log)));
    wait_for(&delivery, "40 delivered", |s| s.delivered.log == 40).await;
    assert_eq!(es.ids(), ids("log", 0..40));
    assert_eq!(es.state().created, 40);
    assert!(es.state().requests >= 4);
    assert_eq!(delivery.stats().dead_lettered, ByClass::default());
    delivery.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_slower_than_the_timeout_is_retried_and_answered_409() {
    let es = EsEmulator::start().await;
    es.push_fault(Fault::Slow(Duration::from_secs(3)));
    let state = tempfile::tempdir().unwrap();
    let mut config = es_config(&es.url());
    es_mut(&mut config).request_timeout = Duration::from_millis(300);
    let delivery = Delivery::start(config, state.path()).unwrap();
    send_all(&delivery, (0..20).map(|n| document(n, Class::Alert)));
    wait_for(&delivery, "20 delivered", |s| s.delivered.alert == 20).await;
    let stats = delivery.stats();
    let last = stats.last_error.clone().expect("a last error").message;
    assert!(last.contains("timed out after 300 ms"), "{last}");
    // The slow request stored its documents; the retry found them there.
    assert!(stats.already_present >= 1, "{stats:#?}");
    assert_eq!(stats.already_present, es.state().conflicts);
    assert_eq!(es.ids(), ids("alert", 0..20));
    assert_eq!(es.state().created, 20);
    delivery.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_retried_without_duplicates() {
    let es = EsEmulator::start().await;
    es.push_fault(Fault::DropBefore);
    es.push_fault(Fault::DropAfter);
    es.push_fault(Fault::DropBefore);
    let state = tempfile::tempdir().unwrap();
    let delivery = start(&es, state.path());
    send_all(&delivery, (0..60).map(|n| document(n, Class::Log)));
    wait_for(&delivery, "60 delivered", |s| s.delivered.log == 60).await;
    let stats = delivery.stats();
    assert!(stats.bulk_failures >= 3, "{stats:#?}");
    assert!(stats.already_present >= 1, "the documents of the answer lost after processing: {stats:#?}");
    assert_eq!(es.ids(), ids("log", 0..60));
    assert_eq!(es.state().created, 60);
    delivery.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_absorbed_by_the_queue_and_delivered_on_recovery() {
    let (mut es, state) = offline().await;
    let delivery = start(&es, state.path());
    send_all(&delivery, (0..100).map(|n| document(n, Class::Log)));
    send_all(&delivery, (0..10).map(|n| document(n, Class::Alert)));
    wait_for(&delivery, "the documents queued and a failed attempt", |s| {
        s.queue_records.total() == 110 && s.bulk_failures >= 2
    })
    .await;
    let last = delivery.stats().last_error.expect("a last error").message;
    assert!(last.starts_with(&format!("cannot connect to `{}`", es.url())), "{last}");
    es.restart().await;
    wait_for(&delivery, "110 delivered", |s| s.delivered.total() == 110).await;
    let expected = ids("log", 0..100).into_iter().chain(ids("alert", 0..10)).collect();
    assert_stored_once_and_shut_down(delivery, &es, expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_outage_loses_and_duplicates_nothing() {
    let mut es = EsEmulator::start().await;
    let state = tempfile::tempdir().unwrap();
    let first = start(&es, state.path());
    send_all(&first, (0..50).map(|n| document(n, Class::Log)));
    wait_for(&first, "50 delivered", |s| s.delivered.log == 50).await;
    es.stop().await;
    send_all(&first, (50..100).map(|n| document(n, Class::Log)));
    send_all(&first, (0..20).map(|n| document(n, Class::Alert)));
    wait_for(&first, "70 queued", |s| s.queue_records.total() == 70 && s.bulk_failures >= 1).await;
    // A crash: the tasks stop wherever they are, nothing is flushed.
    drop(first);

    let second = start(&es, state.path());
    assert_eq!(second.stats().queue_records, ByClass { alert: 20, log: 50 });
    es.restart().await;
    wait_for(&second, "70 delivered", |s| s.delivered.total() == 70).await;
    let expected = ids("log", 0..100).into_iter().chain(ids("alert", 0..20)).collect();
    assert_stored_once_and_shut_down(second, &es, expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_an_outage_persists_and_the_next_start_delivers() {
    let (mut es, state) = offline().await;
    let first = start(&es, state.path());
    let sender = first.sender();
    send_all(&first, (0..30).map(|n| document(n, Class::Alert)));
    let report = within("shutdown", first.shutdown(Duration::from_millis(200))).await.unwrap();
    assert!(!report.drained);
    assert_eq!(report.left_in_queue, 30);
    assert_eq!(sender.try_send(document(99, Class::Alert)), Err(SendError::Closed));

    es.restart().await;
    let second = start(&es, state.path());
    wait_for(&second, "30 delivered", |s| s.delivered.alert == 30).await;
    assert_eq!(es.ids(), ids("alert", 0..30));
    assert_eq!(es.state().created, 30);
    let report = second.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(report, d4c_runtime::delivery::ShutdownReport { drained: true, left_in_queue: 0 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_sheds_logs_before_alerts_and_counts_them() {
    let (mut es, state) = offline().await;
    let mut config = es_config(&es.url());
    config.queue.max_bytes = 64 << 10;
    config.queue.segment_bytes = 8 << 10;
    let delivery = Delivery::start(config, state.path()).unwrap();
    // About 130 KiB of logs into a 64 KiB queue.
    send_all(&delivery, (0..400).map(|n| document(n, Class::Log)));
    let settled_logs = |s: &DeliveryStatsSnapshot| s.queue_records.log + s.dropped(DropReason::QueueFull).log == 400;
    wait_for(&delivery, "the logs queued or shed", settled_logs).await;
    let shed_before_alerts = delivery.stats().dropped(DropReason::QueueFull).log;
    assert!(shed_before_alerts > 0);
    // About 35 KiB of alerts: they displace logs.
    send_all(&delivery, (0..100).map(|n| document(n, Class::Alert)));
    wait_for(&delivery, "the alerts queued", |s| s.queue_records.alert == 100 && settled_logs(s)).await;
    let stats = delivery.stats();
    assert_eq!(stats.dropped(DropReason::QueueFull).alert, 0, "{stats:#?}");
    assert!(stats.dropped(DropReason::QueueFull).log > shed_before_alerts, "{stats:#?}");
    assert!(stats.queue_bytes.total() <= 64 << 10, "{stats:#?}");
    let logs_kept = stats.queue_records.log;

    es.restart().await;
    wait_for(&delivery, "the queue delivered", |s| s.delivered.alert == 100 && s.delivered.log == logs_kept).await;
    let stored = es.ids();
    assert!(ids("alert", 0..100).is_subset(&stored));
    assert_eq!(stored.len() as u64, 100 + logs_kept);
    assert_eq!(es.state().created, 100 + logs_kept);
    let stats = delivery.stats();
    assert_eq!(stats.accepted.log, stats.delivered.log + stats.dropped(DropReason::QueueFull).log);
    delivery.shutdown(Duration::from_secs(5)).await.unwrap();
}

fn last_segment(state: &Path, class: &str) -> PathBuf {
    let dir = state.join("queue").join(class);
    let mut segments: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    segments.pop().expect("a segment")
}

/// Queues `count` alerts with Elasticsearch down and shuts down.
async fn queue_alerts_offline(es: &EsEmulator, state: &Path, count: usize) {
    let delivery = start(es, state);
    send_all(&delivery, (0..count).map(|n| document(n, Class::Alert)));
    let report = within("shutdown", delivery.shutdown(Duration::from_millis(100))).await.unwrap();
    assert_eq!(report.left_in_queue, count as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_record_after_a_crash_is_skipped_and_counted() {
    let (mut es, state) = offline().await;
    queue_alerts_offline(&es, state.path(), 10).await;
    // The crash interrupted the write of an eleventh record.
    let mut torn = Vec::new();
    assert!(record::encode(&document(10, Class::Alert), &mut torn));
    torn.truncate(torn.len() / 2);
    let segment = last_segment(state.path(), "alerts");
    let mut bytes = fs::read(&segment).unwrap();
    let intact = bytes.len();
    bytes.extend_from_slice(&torn);
    fs::write(&segment, &bytes).unwrap();

    es.restart().await;
    let delivery = start(&es, state.path());
    assert_eq!(delivery.stats().dropped(DropReason::Corrupt), ByClass { alert: 1, log: 0 });
    assert_eq!(fs::metadata(&segment).unwrap().len(), intact as u64, "the torn tail is cut off");
    wait_for(&delivery, "10 delivered", |s| s.delivered.alert == 10).await;
    assert_eq!(es.ids(), ids("alert", 0..10));
    delivery.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_is_skipped_and_counted_and_the_rest_delivered() {
    let (mut es, state) = offline().await;
    queue_alerts_offline(&es, state.path(), 10).await;
    // Flip a byte inside the fifth record's body.
    let segment = last_segment(state.path(), "alerts");
    let mut bytes = fs::read(&segment).unwrap();
    let record_len = record::encoded_len(&document(0, Class::Alert));
    let at = 8 + 4 * record_len + record_len - 10;
    bytes[at] ^= 0x20;
    fs::write(&segment, &bytes).unwrap();

    es.restart().await;
    let delivery = start(&es, state.path());
    wait_for(&delivery, "9 delivered and 1 corrupt", |s| {
        s.delivered.alert == 9 && s.dropped(DropReason::Corrupt).alert == 1
    })
    .await;
    let expected: BTreeSet<_> = ids("alert", 0..10).into_iter().filter(|id| id != "alert-4").collect();
    assert_eq!(es.ids(), expected);
    wait_for(&delivery, "the queue to empty", |s| s.queue_records.total() == 0).await;
    delivery.shutdown(Duration::from_secs(5)).await.unwrap();

    // The damage was acknowledged with the rest: a new start finds nothing.
    let again = start(&es, state.path());
    assert_eq!(again.stats().queue_records, ByClass::default());
    assert_eq!(again.stats().dropped_total(), ByClass::default());
    again.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_item_is_dead_lettered_with_its_reason() {
    let es = EsEmulator::start().await;
    es.reject_id("log-7", 400, "mapper_parsing_exception");
    let state = tempfile::tempdir().unwrap();
    let delivery = start(&es, state.path());
    send_all(&delivery, (0..20).map(|n| document(n, Class::Log)));
    wait_for(&delivery, "19 delivered and 1 dead letter", |s| s.delivered.log == 19 && s.dead_lettered.log == 1).await;
    wait_for(&delivery, "the queue to empty", |s| s.queue_records.total() == 0).await;
    let expected: BTreeSet<_> = ids("log", 0..20).into_iter().filter(|id| id != "log-7").collect();
    assert_eq!(es.ids(), expected);
    assert_eq!(delivery.stats().dropped_total(), ByClass::default());

    let text = fs::read_to_string(state.path().join("dead-letter.ndjson")).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines.len(), 1, "{text}");
    let letter = &lines[0];
    assert_eq!(letter["_id"], "log-7");
    assert_eq!(letter["index"], "logs-cloud_defend.process-default");
    assert_eq!(letter["status"], 400);
    assert_eq!(letter["error"]["type"], "mapper_parsing_exception");
    assert_eq!(letter["error"]["reason"], "failed to parse field [log-7]");
    let body: serde_json::Value = serde_json::from_slice(&document(7, Class::Log).body).unwrap();
    assert_eq!(letter["document"], body);
    delivery.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_and_gzip_reach_elasticsearch_and_a_bad_key_loses_nothing() {
    let es = EsEmulator::start().await;
    es.require_authorization("ApiKey aWQ6c2VjcmV0");
    let state = tempfile::tempdir().unwrap();
    let mut config = es_config(&es.url());
    es_mut(&mut config).auth = Some(Auth::ApiKey(ApiKey::Parts { id: "id".to_owned(), api_key: "secret".to_owned() }));
    let delivery = Delivery::start(config, state.path()).unwrap();
    send_all(&delivery, (0..5).map(|n| document(n, Class::Alert)));
    wait_for(&delivery, "5 delivered", |s| s.delivered.alert == 5).await;
    let (gzip_requests, requests) = {
        let seen = es.state();
        (seen.gzip_requests, seen.requests)
    };
    assert!(gzip_requests >= 1);
    assert_eq!(gzip_requests, requests);
    delivery.shutdown(Duration::from_secs(5)).await.unwrap();

    let state = tempfile::tempdir().unwrap();
    let mut config = es_config(&es.url());
    es_mut(&mut config).auth = Some(Auth::Basic { username: "elastic".to_owned(), password: "wrong".to_owned() });
    let delivery = Delivery::start(config, state.path()).unwrap();
    send_all(&delivery, (0..5).map(|n| document(n, Class::Log)));
    wait_for(&delivery, "a refused attempt", |s| s.bulk_failures >= 2 && s.queue_records.log == 5).await;
    let last = delivery.stats().last_error.expect("a last error").message;
    assert!(last.contains("answered HTTP 401 `security_exception`: unable to authenticate"), "{last}");
    assert_eq!(es.state().last_authorization.as_deref(), Some("Basic ZWxhc3RpYzp3cm9uZw=="));
    assert_eq!(delivery.stats().dropped_total(), ByClass::default());
    let report = delivery.shutdown(Duration::from_millis(100)).await.unwrap();
    assert_eq!(report.left_in_queue, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_state_directory_is_refused() {
    let state = tempfile::tempdir().unwrap();
    let ndjson = |name: &str| DeliveryConfig {
        sink: SinkConfig::Ndjson(NdjsonConfig { path: Some(state.path().join(name)), ..NdjsonConfig::default() }),
        ..DeliveryConfig::default()
    };
    let first = Delivery::start(ndjson("a.ndjson"), state.path()).unwrap();
    let mut config = ndjson("b.ndjson");
    config.queue.lock_timeout = Duration::from_millis(100);
    let error = Delivery::start(config, state.path()).unwrap_err();
    assert!(matches!(error, DeliveryError::Locked { .. }), "{error}");
    assert!(error.to_string().starts_with("the queue directory is in use by another process"), "{error}");
    first.shutdown(Duration::from_secs(5)).await.unwrap();
}

fn ndjson_config(path: &Path, max_bytes: u64, keep: u32, format: NdjsonFormat) -> DeliveryConfig {
    DeliveryConfig {
        sink: SinkConfig::Ndjson(NdjsonConfig { path: Some(path.to_owned()), max_bytes, keep, format }),
        batch: BatchConfig { max_documents: 50, max_bytes: 1 << 20, flush_interval: Duration::from_millis(20) },
        ..DeliveryConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_files_rotate_by_size_and_keep_n() {
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("out").join("d4c.ndjson");
    let delivery = Delivery::start(ndjson_config(&path, 8 << 10, 2, NdjsonFormat::Documents), state.path()).unwrap();
    send_all(&delivery, (0..200).map(|n| document(n, Class::Log)));
    let report = within("shutdown", delivery.shutdown(Duration::from_secs(10))).await.unwrap();
    assert!(report.drained);

    let rotated = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
    assert!(!rotated(3).exists());
    let mut pids = Vec::new();
    for file in [rotated(2), rotated(1), path.clone()] {
        let text = fs::read_to_string(&file).unwrap();
        assert!(text.len() as u64 <= 8 << 10, "{} has {} bytes", file.display(), text.len());
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            pids.push(value["process"]["pid"].as_u64().unwrap());
        }
    }
    // The three files hold the newest documents, in order, without a gap.
    let first = *pids.first().unwrap();
    assert!(first > 0, "older files were deleted");
    assert_eq!(pids, (first..200).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_bulk_format_is_a_loadable_bulk_body() {
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("bulk.ndjson");
    let delivery = Delivery::start(ndjson_config(&path, 1 << 20, 1, NdjsonFormat::Bulk), state.path()).unwrap();
    send_all(&delivery, (0..3).map(|n| document(n, Class::Alert)));
    send_all(&delivery, (0..7).map(|n| document(n, Class::Log)));
    assert!(delivery.shutdown(Duration::from_secs(10)).await.unwrap().drained);
    let pairs = parse_bulk(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(pairs.len(), 10);
    let stored: BTreeSet<_> = pairs.iter().map(|(_, id, source)| (id.clone(), source.is_some())).collect();
    let expected: BTreeSet<_> = ids("alert", 0..3).into_iter().chain(ids("log", 0..7)).map(|id| (id, true)).collect();
    assert_eq!(stored, expected);
    assert!(pairs.iter().all(|(index, id, _)| index.contains(if id.starts_with("alert") {
        ".alerts-"
    } else {
        ".process-"
    })));
}

#[test]
fn a_full_channel_and_an_oversized_document_are_refused_and_counted() {
    // A current-thread runtime: the writer cannot run while this test sends.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let state = tempfile::tempdir().unwrap();
        let mut config = ndjson_config(&state.path().join("out.ndjson"), 1 << 20, 1, NdjsonFormat::Documents);
        config.channel_capacity = 4;
        config.max_document_bytes = 1_000;
        let delivery = Delivery::start(config, state.path()).unwrap();
        let sender = delivery.sender();
        let results: Vec<_> = (0..10).map(|n| sender.try_send(document(n, Class::Log))).collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 4);
        assert!(results[4..].iter().all(|r| *r == Err(SendError::Full)));
        assert_eq!(sender.try_send(document(0, Class::Alert)), Ok(()), "alerts have their own channel");
        let mut huge = document(1, Class::Alert);
        huge.body = vec![b' '; 1_001];
        assert_eq!(sender.try_send(huge), Err(SendError::TooLarge));
        let stats = delivery.stats();
        assert_eq!(stats.accepted, ByClass { alert: 1, log: 4 });
        assert_eq!(stats.dropped(DropReason::ChannelFull), ByClass { alert: 0, log: 6 });
        assert_eq!(stats.dropped(DropReason::TooLarge), ByClass { alert: 1, log: 0 });
        assert!(delivery.shutdown(Duration::from_secs(10)).await.unwrap().drained);
        let lines = fs::read_to_string(state.path().join("out.ndjson")).unwrap().lines().count();
        assert_eq!(lines, 5);
    });
}

fn tls_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/tls").join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_custom_ca_delivers_and_an_unknown_ca_is_refused_without_loss() {
    let es = EsEmulator::start_tls(&tls_fixture("server.pem"), &tls_fixture("server.key")).await;
    assert!(es.url().starts_with("https://127.0.0.1:"));
    let state = tempfile::tempdir().unwrap();
    let mut config = es_config(&es.url());
    es_mut(&mut config).ca_file = Some(tls_fixture("ca.pem"));
    let delivery = Delivery::start(config, state.path()).unwrap();
    send_all(&delivery, (0..10).map(|n| document(n, Class::Alert)));
    wait_for(&delivery, "10 delivered", |s| s.delivered.alert == 10).await;
    assert_eq!(es.ids(), ids("alert", 0..10));
    delivery.shutdown(Duration::from_secs(5)).await.unwrap();

    // Without the CA, the web roots do not trust the test certificate.
    let state = tempfile::tempdir().unwrap();
    let delivery = start(&es, state.path());
    send_all(&delivery, (0..3).map(|n| document(n, Class::Log)));
    wait_for(&delivery, "a refused handshake", |s| s.bulk_failures >= 1 && s.queue_records.log == 3).await;
    let last = delivery.stats().last_error.expect("a last error").message;
    assert!(last.contains("TLS handshake") && last.contains("UnknownIssuer"), "{last}");
    assert_eq!(delivery.stats().dropped_total(), ByClass::default());
    assert_eq!(delivery.shutdown(Duration::from_millis(100)).await.unwrap().left_in_queue, 3);
}

#[test]
fn unusable_configurations_are_refused_with_the_culprit_named() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _entered = runtime.enter();
    let state = tempfile::tempdir().unwrap();
    let start = |config| Delivery::start(config, state.path()).map(|_| ()).unwrap_err().to_string();

    let mut config = es_config("ftp://es:9200");
    assert_eq!(
        start(config.clone()),
        "invalid Elasticsearch URL `ftp://es:9200`: the scheme must be `http` or `https`"
    );
    config = es_config("https://es:9200");
    es_mut(&mut config).ca_file = Some(state.path().join("missing.pem"));
    let error = start(config);
    assert!(
        error.starts_with(&format!("cannot use CA file `{}`", state.path().join("missing.pem").display())),
        "{error}"
    );
    config = es_config("http://es:9200");
    config.queue.segment_bytes = config.queue.max_bytes * 2;
    assert!(start(config).contains("`segment_bytes`"));
    let blocker = state.path().join("file");
    fs::write(&blocker, "").unwrap();
    let error = Delivery::start(es_config("http://es:9200"), &blocker).map(|_| ()).unwrap_err().to_string();
    assert!(error.starts_with("cannot create the") && error.contains(&format!("`{}", blocker.display())), "{error}");
}
