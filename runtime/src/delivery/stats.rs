//! Delivery counters for `/metrics`: lock-free atomics behind an `Arc`,
//! read as a consistent-enough [`DeliveryStatsSnapshot`].
//!
//! Invariant: every document handed to `try_send` ends in exactly one of
//! `accepted` or `dropped` (reasons `channel_full`, `too_large`, `closed`);
//! every accepted document ends, possibly after a restart, in `delivered`,
//! `dead_lettered` or `dropped` (reasons `queue_full`, `io`, `corrupt`), or
//! is still counted in the queue depth. A document re-sent after a restart
//! is counted again by the new process: counters are per process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::document::Class;

/// Why a document was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The in-memory channel in front of the queue was full.
    ChannelFull,
    /// The disk queue was full: a new document refused, or an old log
    /// segment shed to make room.
    QueueFull,
    /// The body was larger than `max_document_bytes`.
    TooLarge,
    /// A queue record failed its CRC or was torn by a crash; one count per
    /// damaged region, which held at least one record.
    Corrupt,
    /// Writing the queue or the dead-letter file failed.
    Io,
    /// Sent after shutdown began.
    Closed,
}

impl DropReason {
    /// Every reason, in label order.
    pub const ALL: [DropReason; 6] = [
        DropReason::ChannelFull,
        DropReason::QueueFull,
        DropReason::TooLarge,
        DropReason::Corrupt,
        DropReason::Io,
        DropReason::Closed,
    ];

    /// The Prometheus label: `channel_full`, `queue_full`, ...
    pub fn label(self) -> &'static str {
        match self {
            DropReason::ChannelFull => "channel_full",
            DropReason::QueueFull => "queue_full",
            DropReason::TooLarge => "too_large",
            DropReason::Corrupt => "corrupt",
            DropReason::Io => "io",
            DropReason::Closed => "closed",
        }
    }

    fn index(self) -> usize {
        match self {
            DropReason::ChannelFull => 0,
            DropReason::QueueFull => 1,
            DropReason::TooLarge => 2,
            DropReason::Corrupt => 3,
            DropReason::Io => 4,
            DropReason::Closed => 5,
        }
    }
}

/// Upper bounds, in seconds, of the bulk latency histogram buckets (the
/// Prometheus client defaults); a last `+Inf` bucket follows.
pub const BULK_LATENCY_BOUNDS_SECONDS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

const BOUNDS_MICROS: [u64; 11] =
    [5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000];

type PerClass = [AtomicU64; 2];

/// The live counters. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    accepted: PerClass,
    delivered: PerClass,
    already_present: AtomicU64,
    retried: AtomicU64,
    dead_lettered: PerClass,
    dropped: [[AtomicU64; 6]; 2],
    queue_records: PerClass,
    queue_bytes: PerClass,
    bulk_requests: AtomicU64,
    bulk_failures: AtomicU64,
    bulk_latency_micros: AtomicU64,
    bulk_latency_buckets: [AtomicU64; 12],
    last_error: Mutex<Option<LastError>>,
}

/// The most recent delivery error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// The error's message.
    pub message: String,
}

/// A pair of counts, one per class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByClass {
    /// Alerts.
    pub alert: u64,
    /// Logs.
    pub log: u64,
}

impl ByClass {
    /// The count of one class.
    pub fn get(&self, class: Class) -> u64 {
        [self.alert, self.log].get(class.index()).copied().unwrap_or(0)
    }

    /// Both classes together.
    pub fn total(&self) -> u64 {
        self.alert + self.log
    }
}

/// Bulk request latency, ready for a Prometheus histogram.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyHistogram {
    /// `(le, cumulative count)` for each bound of
    /// [`BULK_LATENCY_BOUNDS_SECONDS`]; the `+Inf` bucket is `count`.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of all latencies, in seconds.
    pub sum_seconds: f64,
    /// Number of observations.
    pub count: u64,
}

/// A copy of the counters at one moment (each counter read atomically, the
/// set not as one transaction).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryStatsSnapshot {
    /// Documents taken by `try_send`.
    pub accepted: ByClass,
    /// Documents the sink confirmed (Elasticsearch 2xx or 409, or written
    /// and flushed to the NDJSON output).
    pub delivered: ByClass,
    /// Of `delivered`, those Elasticsearch already had (409 on `create`): a
    /// retry after a lost response or a restart.
    pub already_present: u64,
    /// Documents sent again after a failed attempt (one count per document
    /// per retry).
    pub retried: u64,
    /// Documents refused by Elasticsearch and written to the dead-letter file.
    pub dead_lettered: ByClass,
    /// Lost documents by reason.
    pub dropped: Vec<(DropReason, ByClass)>,
    /// Records in the disk queue not yet acknowledged by the sink.
    pub queue_records: ByClass,
    /// Bytes on disk of those records (with segment headers).
    pub queue_bytes: ByClass,
    /// Bulk requests sent (every attempt).
    pub bulk_requests: u64,
    /// Attempts that failed as a whole (connection, timeout, error status,
    /// unreadable response).
    pub bulk_failures: u64,
    /// Latency of bulk requests.
    pub bulk_latency: LatencyHistogram,
    /// The most recent error, if any.
    pub last_error: Option<LastError>,
}

impl DeliveryStatsSnapshot {
    /// Documents dropped for one reason.
    pub fn dropped(&self, reason: DropReason) -> ByClass {
        self.dropped.iter().find(|(r, _)| *r == reason).map(|(_, counts)| *counts).unwrap_or_default()
    }

    /// Documents dropped for any reason.
    pub fn dropped_total(&self) -> ByClass {
        self.dropped
            .iter()
            .fold(ByClass::default(), |acc, (_, c)| ByClass { alert: acc.alert + c.alert, log: acc.log + c.log })
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn read(pair: &PerClass) -> ByClass {
    let [alert, log] = pair;
    ByClass { alert: alert.load(Ordering::Relaxed), log: log.load(Ordering::Relaxed) }
}

fn slot(pair: &PerClass, class: Class) -> &AtomicU64 {
    let [alert, log] = pair;
    match class {
        Class::Alert => alert,
        Class::Log => log,
    }
}

impl DeliveryStats {
    /// A copy of every counter.
    pub fn snapshot(&self) -> DeliveryStatsSnapshot {
        let count = self.bulk_requests.load(Ordering::Relaxed);
        let mut cumulative = 0;
        let buckets = BULK_LATENCY_BOUNDS_SECONDS
            .iter()
            .zip(&self.bulk_latency_buckets)
            .map(|(bound, n)| {
                cumulative += n.load(Ordering::Relaxed);
                (*bound, cumulative)
            })
            .collect();
        DeliveryStatsSnapshot {
            accepted: read(&self.accepted),
            delivered: read(&self.delivered),
            already_present: self.already_present.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead_lettered: read(&self.dead_lettered),
            dropped: DropReason::ALL
                .iter()
                .map(|&reason| {
                    let i = reason.index();
                    let get =
                        |c: usize| self.dropped.get(c).and_then(|r| r.get(i)).map_or(0, |a| a.load(Ordering::Relaxed));
                    (reason, ByClass { alert: get(0), log: get(1) })
                })
                .collect(),
            queue_records: read(&self.queue_records),
            queue_bytes: read(&self.queue_bytes),
            bulk_requests: count,
            bulk_failures: self.bulk_failures.load(Ordering::Relaxed),
            bulk_latency: LatencyHistogram {
                buckets,
                sum_seconds: Duration::from_micros(self.bulk_latency_micros.load(Ordering::Relaxed)).as_secs_f64(),
                count,
            },
            last_error: self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
        }
    }

    pub(crate) fn accepted(&self, class: Class) {
        add(slot(&self.accepted, class), 1);
    }

    pub(crate) fn delivered(&self, class: Class, n: u64) {
        add(slot(&self.delivered, class), n);
    }

    pub(crate) fn already_present(&self, n: u64) {
        add(&self.already_present, n);
    }

    pub(crate) fn retried(&self, n: u64) {
        add(&self.retried, n);
    }

    pub(crate) fn dead_lettered(&self, class: Class, n: u64) {
        add(slot(&self.dead_lettered, class), n);
    }

    pub(crate) fn dropped(&self, class: Class, reason: DropReason, n: u64) {
        if let Some(counter) = self.dropped.get(class.index()).and_then(|r| r.get(reason.index())) {
            add(counter, n);
        }
    }

    pub(crate) fn set_queue_depth(&self, class: Class, records: u64, bytes: u64) {
        slot(&self.queue_records, class).store(records, Ordering::Relaxed);
        slot(&self.queue_bytes, class).store(bytes, Ordering::Relaxed);
    }

    /// Records one bulk attempt and how long it took.
    pub(crate) fn bulk_request(&self, latency: Duration, failed: bool) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        add(&self.bulk_requests, 1);
        add(&self.bulk_latency_micros, micros);
        if failed {
            add(&self.bulk_failures, 1);
        }
        let bucket = BOUNDS_MICROS.iter().position(|&bound| micros <= bound).unwrap_or(BOUNDS_MICROS.len());
        if let Some(counter) = self.bulk_latency_buckets.get(bucket) {
            add(counter, 1);
        }
    }

    pub(crate) fn set_last_error(&self, message: String) {
        *self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(LastError { message });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_sums_seconds() {
        let stats = DeliveryStats::default();
        stats.bulk_request(Duration::from_millis(3), false);
        stats.bulk_request(Duration::from_millis(30), false);
        stats.bulk_request(Duration::from_secs(20), true);
        let snap = stats.snapshot();
        assert_eq!(snap.bulk_latency.count, 3);
        assert_eq!(snap.bulk_failures, 1);
        assert_eq!(snap.bulk_latency.buckets.first(), Some(&(0.005, 1)));
        assert_eq!(snap.bulk_latency.buckets.get(3), Some(&(0.05, 2)));
        assert_eq!(snap.bulk_latency.buckets.last(), Some(&(10.0, 2)));
        assert!((snap.bulk_latency.sum_seconds - 20.033).abs() < 1e-9);
    }

    #[test]
    fn drops_are_kept_by_class_and_reason() {
        let stats = DeliveryStats::default();
        stats.dropped(Class::Log, DropReason::QueueFull, 3);
        stats.dropped(Class::Alert, DropReason::Corrupt, 1);
        let snap = stats.snapshot();
        assert_eq!(snap.dropped(DropReason::QueueFull), ByClass { alert: 0, log: 3 });
        assert_eq!(snap.dropped(DropReason::Corrupt), ByClass { alert: 1, log: 0 });
        assert_eq!(snap.dropped_total(), ByClass { alert: 1, log: 3 });
    }
}
