//! The two delivery tasks and what they share.
//!
//! ```text
//! try_send ──> channel (alerts) ─┐
//!          └─> channel (logs) ───┴─> writer task ──> DiskQueue ──> sink task ──> Elasticsearch | NDJSON
//!                                      append, fsync      read, ack
//! ```
//!
//! The writer drains the channels (alerts first) into the queue and wakes
//! the sink. The sink reads a batch, waits for it to fill or for
//! `flush_interval`, delivers it until every document is settled, then
//! acknowledges it. File I/O runs on blocking threads; the queue is shared
//! behind a mutex held only for one append, read or ack.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::time::Instant;

use crate::delivery::config::FsyncPolicy;
use crate::delivery::elasticsearch::{backoff, ElasticsearchSink};
use crate::delivery::error::DeliveryError;
use crate::delivery::ndjson::{NdjsonSink, PartialWrite};
use crate::delivery::queue::{Batch, BatchLimits, DiskQueue};
use crate::delivery::stats::{DeliveryStats, DropReason};
use crate::document::{Class, Document};

/// Documents taken from the channels per queue append.
const WRITER_BATCH: usize = 4_096;

pub(crate) type SharedQueue = Arc<Mutex<DiskQueue>>;

pub(crate) fn lock(queue: &SharedQueue) -> MutexGuard<'_, DiskQueue> {
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `work` on the queue on a blocking thread.
pub(crate) async fn with_queue<T: Send + 'static>(
    queue: &SharedQueue,
    work: impl FnOnce(&mut DiskQueue) -> T + Send + 'static,
) -> Result<T, DeliveryError> {
    let queue = Arc::clone(queue);
    tokio::task::spawn_blocking(move || work(&mut lock(&queue))).await.map_err(|_| DeliveryError::Stopped)
}

/// Drains the channels into the queue until `stop` fires, then takes what
/// is left in them and returns.
pub(crate) async fn run_writer(
    mut alerts: mpsc::Receiver<Document>,
    mut logs: mpsc::Receiver<Document>,
    queue: SharedQueue,
    stats: Arc<DeliveryStats>,
    wake_sink: Arc<Notify>,
    mut stop: oneshot::Receiver<()>,
    fsync: FsyncPolicy,
) {
    let mut stopping = false;
    let mut sync_at: Option<Instant> = None;
    loop {
        let mut documents = Vec::new();
        if !stopping {
            tokio::select! {
                biased;
                _ = &mut stop => {
                    stopping = true;
                    alerts.close();
                    logs.close();
                }
                Some(document) = alerts.recv() => documents.push(document),
                Some(document) = logs.recv() => documents.push(document),
                () = sleep_until(sync_at) => {
                    sync_at = None;
                    let result = with_queue(&queue, DiskQueue::sync).await;
                    report(&stats, result.and_then(|r| r));
                    continue;
                }
            }
        }
        while documents.len() < WRITER_BATCH {
            match alerts.try_recv() {
                Ok(document) => documents.push(document),
                Err(_) => break,
            }
        }
        while documents.len() < WRITER_BATCH {
            match logs.try_recv() {
                Ok(document) => documents.push(document),
                Err(_) => break,
            }
        }
        if documents.is_empty() {
            if stopping {
                break;
            }
            continue;
        }
        let counted = Arc::clone(&stats);
        let result = with_queue(&queue, move |q| q.append(documents, &counted).and_then(|()| q.sync_if_due())).await;
        report(&stats, result.and_then(|r| r));
        wake_sink.notify_one();
        if let (FsyncPolicy::Interval(interval), None) = (fsync, sync_at) {
            sync_at = Some(Instant::now() + interval);
        }
    }
    let result = with_queue(&queue, DiskQueue::sync).await;
    report(&stats, result.and_then(|r| r));
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn report(stats: &DeliveryStats, result: Result<(), DeliveryError>) {
    if let Err(error) = result {
        tracing::error!(%error, "disk queue");
        stats.set_last_error(error.to_string());
    }
}

/// Where the sink task sends documents.
pub(crate) enum Sink {
    Elasticsearch(Box<ElasticsearchSink>),
    Ndjson(Option<NdjsonSink>),
}

impl Sink {
    /// Settles every document (delivered or dead-lettered), retrying as
    /// long as it takes.
    async fn deliver(&mut self, documents: Vec<Document>, stats: &DeliveryStats) {
        match self {
            Sink::Elasticsearch(sink) => sink.deliver(documents).await,
            Sink::Ndjson(slot) => {
                let mut documents = documents;
                let mut failures = 0;
                loop {
                    let classes: Vec<Class> = documents.iter().map(|d| d.class).collect();
                    let Some(mut sink) = slot.take() else {
                        lost(stats, &classes);
                        return;
                    };
                    let joined = tokio::task::spawn_blocking(move || {
                        let result = sink.write(&documents);
                        (sink, documents, result)
                    })
                    .await;
                    let Ok((sink, written, result)) = joined else {
                        lost(stats, &classes);
                        return;
                    };
                    *slot = Some(sink);
                    documents = written;
                    match result {
                        Ok(()) => {
                            delivered(stats, &documents);
                            return;
                        }
                        Err(PartialWrite { written, error }) => {
                            // Those written stay written: only the rest is retried.
                            let done: Vec<Document> = documents.drain(..written.min(documents.len())).collect();
                            delivered(stats, &done);
                            failures += 1;
                            tracing::warn!(%error, "NDJSON output failed; retrying");
                            stats.set_last_error(error.to_string());
                            stats.retried(documents.len() as u64);
                            let delay = backoff(Duration::from_millis(100), Duration::from_secs(10), failures);
                            tokio::time::sleep(delay).await;
                        }
                    }
                }
            }
        }
    }

    /// fsyncs the NDJSON file on shutdown.
    async fn finish(&mut self) {
        let Sink::Ndjson(slot) = self else { return };
        let Some(mut sink) = slot.take() else { return };
        let joined = tokio::task::spawn_blocking(move || {
            let result = sink.sync();
            (sink, result)
        })
        .await;
        if let Ok((sink, result)) = joined {
            if let Err(error) = result {
                tracing::warn!(%error, "NDJSON output: fsync on shutdown");
            }
            *slot = Some(sink);
        }
    }
}

/// Counts `documents` delivered.
fn delivered(stats: &DeliveryStats, documents: &[Document]) {
    for class in Class::ALL {
        stats.delivered(class, documents.iter().filter(|d| d.class == class).count() as u64);
    }
}

/// Counts documents whose NDJSON output stopped (its thread panicked).
fn lost(stats: &DeliveryStats, classes: &[Class]) {
    tracing::error!(documents = classes.len(), "the NDJSON output stopped; documents lost");
    stats.set_last_error("the NDJSON output stopped".to_owned());
    for &class in classes {
        stats.dropped(class, DropReason::Io, 1);
    }
}

/// Batch shape of the sink task.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SinkOptions {
    pub limits: BatchLimits,
    pub flush_interval: Duration,
}

/// Reads, delivers and acknowledges batches until `drain` is set and the
/// queue has nothing more, or until aborted.
pub(crate) async fn run_sink(
    mut sink: Sink,
    queue: SharedQueue,
    stats: Arc<DeliveryStats>,
    wake: Arc<Notify>,
    options: SinkOptions,
    mut drain: watch::Receiver<bool>,
) {
    let mut batch = Batch::default();
    let mut due: Option<Instant> = None;
    let mut read_failures = 0;
    loop {
        let counted = Arc::clone(&stats);
        let limits = options.limits;
        let read = with_queue(&queue, move |q| {
            let result = q.read_into(&mut batch, limits, &counted);
            (batch, result)
        })
        .await;
        let Ok((read_batch, result)) = read else { return };
        batch = read_batch;
        if let Err(error) = result {
            // The documents of the batch so far are kept; the read is tried again.
            read_failures += 1;
            report(&stats, Err(error));
            tokio::time::sleep(backoff(Duration::from_millis(100), Duration::from_secs(10), read_failures)).await;
            continue;
        }
        read_failures = 0;
        let draining = *drain.borrow();
        if !batch.documents.is_empty() && due.is_none() {
            due = Some(Instant::now() + options.flush_interval);
        }
        let send_now = batch.is_full(options.limits) || draining || due.is_some_and(|due| Instant::now() >= due);
        if !batch.documents.is_empty() && send_now {
            let documents = std::mem::take(&mut batch.documents);
            sink.deliver(documents, &stats).await;
        }
        if batch.has_progress() && batch.documents.is_empty() {
            due = None;
            let counted = Arc::clone(&stats);
            let acked = with_queue(&queue, move |q| {
                let result = q.ack(&mut batch, &counted);
                (batch, result)
            })
            .await;
            let Ok((acked_batch, result)) = acked else { return };
            batch = acked_batch;
            report(&stats, result);
            continue;
        }
        if draining && batch.documents.is_empty() {
            break;
        }
        tokio::select! {
            () = wake.notified() => {}
            () = sleep_until(due) => {}
            changed = drain.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
    sink.finish().await;
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::delivery::config::{NdjsonConfig, NdjsonFormat};
    use crate::delivery::space::Space;

    /// About 1 KiB per line: `{"n":N,"pad":"xx..."}`.
    fn line(n: usize) -> Document {
        let body = format!(r#"{{"n":{n},"pad":"{}"}}"#, "x".repeat(1000)).into_bytes();
        Document { stream: "logs-x".to_owned(), id: n.to_string(), class: Class::Alert, body }
    }

    /// How many times each `n` is written in the NDJSON files in `dir`.
    fn lines_in(dir: &Path) -> Vec<usize> {
        let mut counts = vec![0; 3000];
        for entry in std::fs::read_dir(dir).unwrap() {
            for text in std::fs::read_to_string(entry.unwrap().path()).unwrap().lines() {
                let line: serde_json::Value = serde_json::from_str(text).unwrap();
                counts[line["n"].as_u64().unwrap() as usize] += 1;
            }
        }
        counts
    }

    fn assert_each_once(counts: &[usize]) {
        let twice = counts.iter().filter(|c| **c > 1).count();
        let missing = counts.iter().filter(|c| **c == 0).count();
        assert_eq!((twice, missing), (0, 0), "documents written more than once, documents missing");
    }

    /// Delivers a 3 MiB batch (several 1 MiB write chunks) to an NDJSON
    /// file rotated at `max_bytes` on a disk of `capacity` bytes, which
    /// grows once the first write failed, and checks that the write failed
    /// and that each document is then written once.
    async fn deliver_on_a_filling_disk(max_bytes: u64, capacity: u64) {
        let dir = tempfile::tempdir().unwrap();
        let path: PathBuf = dir.path().join("out.ndjson");
        let config = NdjsonConfig { path: Some(path), max_bytes, keep: 2, format: NdjsonFormat::Documents };
        let mut sink = NdjsonSink::open(&config).unwrap();
        let capacity = Arc::new(AtomicU64::new(capacity));
        let (room, files) = (Arc::clone(&capacity), dir.path().to_owned());
        sink.set_space(Space::bounded(move || {
            let used: u64 = std::fs::read_dir(&files).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
            room.load(Ordering::SeqCst).saturating_sub(used)
        }));
        let stats = Arc::new(DeliveryStats::default());
        let watched = Arc::clone(&stats);
        // Space is freed once the sink has failed (and will retry).
        let freer = tokio::spawn(async move {
            while watched.snapshot().retried == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            capacity.store(u64::MAX, Ordering::SeqCst);
        });
        let documents: Vec<Document> = (0..3000).map(line).collect();
        let mut sink = Sink::Ndjson(Some(sink));
        tokio::time::timeout(Duration::from_secs(30), sink.deliver(documents, &stats)).await.unwrap();
        freer.await.unwrap();
        assert_each_once(&lines_in(dir.path()));
        let snapshot = stats.snapshot();
        assert!(snapshot.retried > 0);
        assert_eq!(snapshot.delivered.alert, 3000);
    }

    #[tokio::test]
    async fn ndjson_disk_full_mid_batch_writes_each_document_once() {
        // The disk fills in the second 1 MiB chunk of the batch.
        deliver_on_a_filling_disk(1 << 30, 1_500_000).await;
    }

    #[tokio::test]
    async fn ndjson_disk_full_after_a_rotation_writes_each_document_once() {
        // The batch rotates the file at 2 MiB, then the disk fills.
        deliver_on_a_filling_disk(2 << 20, 2_600_000).await;
    }
}
