//! Delivery of ECS documents: Elasticsearch `_bulk`, or NDJSON, behind a
//! disk-backed queue.
//!
//! In: [`Document`]s handed to a [`DocumentSender`] (never blocks). Out:
//! each document delivered to the sink, or written to the dead-letter file,
//! or counted as dropped with a reason ([`DeliveryStats`]).
//!
//! Stages, one module each:
//! - [`config`]: the `delivery:` section of the configuration;
//! - `pipeline`: a bounded channel per class, then a writer task that
//!   appends to the [`queue`], and a sink task that reads batches from it;
//! - [`queue`] and [`record`]: segment files with CRC'd records and an
//!   acknowledged-position cursor, so documents survive an Elasticsearch
//!   outage and a daemon restart; alerts kept over logs when full;
//! - [`bulk`]: the `_bulk` body (gzip'd) and response;
//! - `http` and `elasticsearch`: one connection, retries with backoff,
//!   per-item outcomes, dead letters; `ndjson`: the embedded sink;
//! - [`stats`]: counters for `/metrics`.
//!
//! Guarantees: at-least-once. A document is acknowledged in the queue only
//! after the sink settled it, so a crash or restart re-sends it; its `_id`
//! makes Elasticsearch answer 409 instead of indexing it twice (within one
//! backing index: a re-send after a rollover of the data stream is indexed
//! again). The NDJSON sink may repeat lines written since the last
//! acknowledgement after a crash; in `bulk` format their `_id` keeps a
//! later load idempotent.

pub mod bulk;
pub mod config;
mod elasticsearch;
mod error;
mod http;
pub mod ndjson;
mod pipeline;
pub mod queue;
pub mod record;
mod space;
pub mod stats;

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;

pub use config::{DeliveryConfig, SinkConfig};
pub use error::DeliveryError;
pub use stats::{DeliveryStats, DeliveryStatsSnapshot, DropReason};

use crate::document::{Class, Document};
use elasticsearch::ElasticsearchSink;
use ndjson::{DeadLetterFile, NdjsonSink};
use pipeline::{Sink, SinkOptions};
use queue::{BatchLimits, DiskQueue, QueueOptions};

/// Why [`DocumentSender::try_send`] refused a document. The document is
/// already counted in the stats as dropped; the caller need not do more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The channel of its class is full (the disk cannot keep up).
    Full,
    /// The body is larger than `max_document_bytes`.
    TooLarge,
    /// Delivery is shutting down or has stopped.
    Closed,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Full => "the delivery channel is full",
            SendError::TooLarge => "the document is larger than `max_document_bytes`",
            SendError::Closed => "delivery has stopped",
        })
    }
}

impl std::error::Error for SendError {}

/// The producer's handle: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct DocumentSender {
    alerts: mpsc::Sender<Document>,
    logs: mpsc::Sender<Document>,
    stats: Arc<DeliveryStats>,
    max_document_bytes: usize,
}

impl DocumentSender {
    /// Hands one document to delivery without waiting. Ok means it is
    /// counted `accepted` and will be queued; an error means it is counted
    /// `dropped` with the matching reason.
    pub fn try_send(&self, document: Document) -> Result<(), SendError> {
        let class = document.class;
        if document.body.len() > self.max_document_bytes {
            self.stats.dropped(class, DropReason::TooLarge, 1);
            return Err(SendError::TooLarge);
        }
        let channel = match class {
            Class::Alert => &self.alerts,
            Class::Log => &self.logs,
        };
        match channel.try_send(document) {
            Ok(()) => {
                self.stats.accepted(class);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.stats.dropped(class, DropReason::ChannelFull, 1);
                Err(SendError::Full)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.stats.dropped(class, DropReason::Closed, 1);
                Err(SendError::Closed)
            }
        }
    }
}

/// What [`Delivery::shutdown`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Every queued document was settled before the deadline.
    pub drained: bool,
    /// Records left in the disk queue for the next start.
    pub left_in_queue: u64,
}

/// The running delivery: two tasks on the current tokio runtime.
///
/// Dropping it without [`Delivery::shutdown`] aborts the tasks as a crash
/// would: documents still in the channels are lost (as in a crash), queued
/// ones are re-sent by the next start.
pub struct Delivery {
    sender: DocumentSender,
    stats: Arc<DeliveryStats>,
    queue: pipeline::SharedQueue,
    stop_writer: Option<oneshot::Sender<()>>,
    drain: watch::Sender<bool>,
    writer: Option<JoinHandle<()>>,
    sink: Option<JoinHandle<()>>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery").field("stats", &self.stats.snapshot()).finish_non_exhaustive()
    }
}

impl Delivery {
    /// Opens the queue in `<state_dir>/queue` (waiting up to
    /// `queue.lock_timeout` for another process to release it), opens the
    /// sink and spawns the tasks on the current tokio runtime.
    ///
    /// Call it at start-up from within the runtime: it blocks while it
    /// opens the queue, which reads the waiting segments once to check them.
    ///
    /// Fails on an unusable configuration, URL or CA file, on a queue
    /// directory that cannot be created or is held by another process, and
    /// on an NDJSON or dead-letter file that cannot be opened.
    pub fn start(config: DeliveryConfig, state_dir: &Path) -> Result<Delivery, DeliveryError> {
        if config.batch.max_documents == 0 || config.batch.max_bytes == 0 || config.channel_capacity == 0 {
            return Err(DeliveryError::Config(
                "`batch.max_documents`, `batch.max_bytes` and `channel_capacity` must be positive".to_owned(),
            ));
        }
        let stats = Arc::new(DeliveryStats::default());
        let sink = match &config.sink {
            SinkConfig::Elasticsearch(es) => {
                let path = es.dead_letter.path.clone().unwrap_or_else(|| state_dir.join("dead-letter.ndjson"));
                let dead_letters = DeadLetterFile::open(&path, es.dead_letter.max_bytes, es.dead_letter.keep)?;
                Sink::Elasticsearch(Box::new(ElasticsearchSink::new(es, dead_letters, Arc::clone(&stats))?))
            }
            SinkConfig::Ndjson(ndjson) => Sink::Ndjson(Some(NdjsonSink::open(ndjson)?)),
        };
        let options = QueueOptions {
            max_bytes: config.queue.max_bytes,
            segment_bytes: config.queue.segment_bytes,
            fsync: config.queue.fsync,
        };
        let queue = open_queue(&state_dir.join("queue"), options, config.queue.lock_timeout, &stats)?;
        let queue = Arc::new(Mutex::new(queue));

        let (alerts_tx, alerts_rx) = mpsc::channel(config.channel_capacity);
        let (logs_tx, logs_rx) = mpsc::channel(config.channel_capacity);
        let (stop_writer, stop_rx) = oneshot::channel();
        let (drain, drain_rx) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        // Records left by the previous run are waiting.
        wake.notify_one();

        let writer = tokio::spawn(pipeline::run_writer(
            alerts_rx,
            logs_rx,
            Arc::clone(&queue),
            Arc::clone(&stats),
            Arc::clone(&wake),
            stop_rx,
            config.queue.fsync,
        ));
        let sink_options = SinkOptions {
            limits: BatchLimits { max_documents: config.batch.max_documents, max_bytes: config.batch.max_bytes },
            flush_interval: config.batch.flush_interval,
        };
        let sink = tokio::spawn(pipeline::run_sink(
            sink,
            Arc::clone(&queue),
            Arc::clone(&stats),
            wake,
            sink_options,
            drain_rx,
        ));
        let sender = DocumentSender {
            alerts: alerts_tx,
            logs: logs_tx,
            stats: Arc::clone(&stats),
            max_document_bytes: config.max_document_bytes,
        };
        Ok(Delivery {
            sender,
            stats,
            queue,
            stop_writer: Some(stop_writer),
            drain,
            writer: Some(writer),
            sink: Some(sink),
        })
    }

    /// A handle for the producer.
    pub fn sender(&self) -> DocumentSender {
        self.sender.clone()
    }

    /// A copy of the counters now (what `/metrics` renders).
    pub fn stats(&self) -> DeliveryStatsSnapshot {
        self.stats.snapshot()
    }

    /// Stops taking documents, moves what is in the channels to the disk
    /// queue, delivers what it can within `grace`, then fsyncs the queue.
    /// What is not delivered stays queued for the next start.
    pub async fn shutdown(mut self, grace: Duration) -> Result<ShutdownReport, DeliveryError> {
        let deadline = tokio::time::Instant::now() + grace;
        if let Some(stop) = self.stop_writer.take() {
            let _ = stop.send(());
        }
        if let Some(writer) = self.writer.take() {
            // The writer only moves channels to disk: let it finish even past
            // the deadline, or accepted documents would be lost.
            let _ = writer.await;
        }
        let _ = self.drain.send(true);
        let mut drained = false;
        if let Some(mut sink) = self.sink.take() {
            match tokio::time::timeout_at(deadline, &mut sink).await {
                Ok(_) => drained = true,
                Err(_) => {
                    sink.abort();
                    let _ = sink.await;
                }
            }
        }
        let left_in_queue = pipeline::with_queue(&self.queue, |q| q.sync().map(|()| q.unacked_records())).await??;
        Ok(ShutdownReport { drained: drained && left_in_queue == 0, left_in_queue })
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        for task in [self.writer.take(), self.sink.take()].into_iter().flatten() {
            task.abort();
        }
    }
}

fn open_queue(
    root: &Path,
    options: QueueOptions,
    lock_timeout: Duration,
    stats: &DeliveryStats,
) -> Result<DiskQueue, DeliveryError> {
    let started = std::time::Instant::now();
    loop {
        match DiskQueue::open(root, options, stats) {
            Err(DeliveryError::Locked { path, .. }) => {
                let waited = started.elapsed();
                if waited >= lock_timeout {
                    return Err(DeliveryError::Locked { path, waited });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// One line for the start-up report: the sink and the queue bound, e.g.
/// `elasticsearch https://es:9200 (api key, gzip), queue 256 MiB`.
pub fn describe(config: &DeliveryConfig) -> String {
    let sink = match &config.sink {
        SinkConfig::Elasticsearch(es) => {
            let auth = match es.auth {
                Some(config::Auth::ApiKey(_)) => "api key",
                Some(config::Auth::Basic { .. }) => "basic auth",
                None => "no auth",
            };
            let ca = if es.ca_file.is_some() { ", custom CA" } else { "" };
            let gzip = if es.gzip { ", gzip" } else { "" };
            format!("elasticsearch {} ({auth}{ca}{gzip})", es.urls.join(" "))
        }
        SinkConfig::Ndjson(ndjson) => {
            let format = match ndjson.format {
                config::NdjsonFormat::Documents => "documents",
                config::NdjsonFormat::Bulk => "bulk",
            };
            match &ndjson.path {
                Some(path) => format!(
                    "ndjson `{}` ({format}, rotated at {} MiB, {} kept)",
                    path.display(),
                    ndjson.max_bytes >> 20,
                    ndjson.keep
                ),
                None => format!("ndjson on standard output ({format})"),
            }
        }
    };
    format!("{sink}, queue {} MiB", config.queue.max_bytes >> 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_names_the_sink_and_the_queue_bound() {
        assert_eq!(describe(&DeliveryConfig::default()), "ndjson on standard output (documents), queue 256 MiB");
        let es = config::ElasticsearchConfig {
            urls: vec!["https://a:9200".into(), "https://b:9200".into()],
            auth: Some(config::Auth::ApiKey(config::ApiKey::Encoded("secret".into()))),
            ca_file: Some("/etc/d4c/ca.pem".into()),
            ..Default::default()
        };
        let config = DeliveryConfig { sink: SinkConfig::Elasticsearch(es), ..Default::default() };
        let text = describe(&config);
        assert_eq!(text, "elasticsearch https://a:9200 https://b:9200 (api key, custom CA, gzip), queue 256 MiB");
        assert!(!text.contains("secret"));
    }
}
