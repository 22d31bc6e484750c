//! The Elasticsearch sink: a batch of documents in, each document out as
//! delivered or dead-lettered, however many attempts that takes.
//!
//! Per attempt: encode and gzip the `create` actions, POST `_bulk`, then
//! - 2xx: per item, 2xx and 409 (already there from an earlier attempt) are
//!   delivered; 429 and 5xx are retried; other statuses are dead-lettered
//!   with Elasticsearch's error;
//! - 413: the request is split in halves (a single document that is still
//!   too large is dead-lettered);
//! - any other status, a connection failure, a timeout or an unreadable
//!   response: the whole request is retried. That includes 401/403, which
//!   need an operator: documents wait in the queue rather than being lost.
//!
//! Retries back off exponentially from `initial_backoff` to `max_backoff`
//! with jitter (half the delay fixed, half random), and reset once an
//! attempt makes progress.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::delivery::bulk::{self, ItemOutcome};
use crate::delivery::config::ElasticsearchConfig;
use crate::delivery::error::DeliveryError;
use crate::delivery::http::BulkClient;
use crate::delivery::ndjson::{DeadLetter, DeadLetterFile};
use crate::delivery::stats::{DeliveryStats, DropReason};
use crate::document::Document;

/// What one attempt did with a chunk of documents.
enum Attempt {
    /// Every item got an outcome.
    Items { retry: Vec<Document>, dead: Vec<DeadLetter> },
    /// HTTP 413: the request must be smaller.
    TooLarge(Vec<Document>),
    /// The whole request failed; all of it is retried.
    Failed(Vec<Document>, DeliveryError),
}

/// Sends batches to Elasticsearch until each document is settled.
pub(crate) struct ElasticsearchSink {
    client: BulkClient,
    gzip: bool,
    gzip_level: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    dead_letters: Option<DeadLetterFile>,
    stats: Arc<DeliveryStats>,
}

impl ElasticsearchSink {
    pub fn new(
        config: &ElasticsearchConfig,
        dead_letters: DeadLetterFile,
        stats: Arc<DeliveryStats>,
    ) -> Result<Self, DeliveryError> {
        Ok(Self {
            client: BulkClient::new(config)?,
            gzip: config.gzip,
            gzip_level: config.gzip_level,
            initial_backoff: config.initial_backoff,
            max_backoff: config.max_backoff,
            dead_letters: Some(dead_letters),
            stats,
        })
    }

    /// Delivers or dead-letters every document; returns only then (the
    /// caller bounds it with its shutdown deadline).
    pub async fn deliver(&mut self, documents: Vec<Document>) {
        let mut work = VecDeque::from([documents]);
        let mut failures = 0u32;
        while let Some(chunk) = work.pop_front() {
            if chunk.is_empty() {
                continue;
            }
            if failures > 0 {
                tokio::time::sleep(backoff(self.initial_backoff, self.max_backoff, failures)).await;
            }
            match self.attempt(chunk).await {
                Attempt::Items { retry, dead } => {
                    self.dead_letter(dead).await;
                    if retry.is_empty() {
                        failures = 0;
                    } else {
                        failures = failures.saturating_add(1);
                        self.stats.retried(retry.len() as u64);
                        tracing::warn!(documents = retry.len(), "bulk items refused for now (429/5xx); retrying");
                        work.push_front(retry);
                    }
                }
                Attempt::TooLarge(mut chunk) if chunk.len() > 1 => {
                    let second = chunk.split_off(chunk.len() / 2);
                    tracing::warn!(
                        documents = chunk.len() + second.len(),
                        "bulk request too large (HTTP 413); splitting it"
                    );
                    work.push_front(second);
                    work.push_front(chunk);
                }
                Attempt::TooLarge(chunk) => {
                    let dead = chunk
                        .into_iter()
                        .map(|document| DeadLetter {
                            document,
                            status: 413,
                            error: serde_json::json!({"type": "request_entity_too_large", "reason": "a bulk request holding only this document is larger than Elasticsearch accepts"}),
                        })
                        .collect();
                    self.dead_letter(dead).await;
                }
                Attempt::Failed(chunk, error) => {
                    failures = failures.saturating_add(1);
                    self.stats.retried(chunk.len() as u64);
                    tracing::warn!(%error, documents = chunk.len(), attempt = failures, "bulk request failed; retrying");
                    self.stats.set_last_error(error.to_string());
                    work.push_front(chunk);
                }
            }
        }
    }

    async fn attempt(&mut self, chunk: Vec<Document>) -> Attempt {
        let (gzip, level) = (self.gzip, self.gzip_level);
        // Compressing megabytes takes milliseconds: keep it off the async workers.
        let chunk = Arc::new(chunk);
        let shared = Arc::clone(&chunk);
        let encoded = tokio::task::spawn_blocking(move || {
            Bytes::from(if gzip {
                bulk::encode_gzip(&shared, level)
            } else {
                let mut body = Vec::new();
                bulk::encode(&shared, &mut body);
                body
            })
        })
        .await;
        let chunk = Arc::try_unwrap(chunk).unwrap_or_else(|shared| shared.as_ref().clone());
        let body = match encoded {
            Ok(body) => body,
            Err(error) => return Attempt::Failed(chunk, DeliveryError::Encode(error.to_string())),
        };
        let started = Instant::now();
        let result = self.client.post(body, gzip).await;
        let url = self.client.url().to_owned();
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                self.stats.bulk_request(started.elapsed(), true);
                return Attempt::Failed(chunk, error);
            }
        };
        let status = response.status;
        if !(200..300).contains(&status) {
            self.stats.bulk_request(started.elapsed(), true);
            if status == 413 {
                return Attempt::TooLarge(chunk);
            }
            let (error_type, reason) = bulk::error_summary(&response.body);
            return Attempt::Failed(chunk, DeliveryError::Status { url, status, error_type, reason });
        }
        let outcomes = match bulk::parse_response(&response.body, chunk.len()) {
            Ok(outcomes) => outcomes,
            Err(reason) => {
                self.stats.bulk_request(started.elapsed(), true);
                return Attempt::Failed(chunk, DeliveryError::BadResponse { url, reason });
            }
        };
        self.stats.bulk_request(started.elapsed(), false);
        let mut retry = Vec::new();
        let mut dead = Vec::new();
        for (document, outcome) in chunk.into_iter().zip(outcomes) {
            match outcome {
                ItemOutcome::Created => self.stats.delivered(document.class, 1),
                ItemOutcome::AlreadyPresent => {
                    self.stats.delivered(document.class, 1);
                    self.stats.already_present(1);
                }
                ItemOutcome::Retry { .. } => retry.push(document),
                ItemOutcome::Rejected { status, error } => dead.push(DeadLetter { document, status, error }),
            }
        }
        Attempt::Items { retry, dead }
    }

    /// Writes refused documents to the dead-letter file, counting them; a
    /// failed write counts them as dropped (`io`).
    async fn dead_letter(&mut self, letters: Vec<DeadLetter>) {
        if letters.is_empty() {
            return;
        }
        for letter in &letters {
            let error_type = letter.error.get("type").and_then(|t| t.as_str()).unwrap_or("");
            tracing::warn!(id = %letter.document.id, index = %letter.document.stream, status = letter.status, error_type, "document refused by Elasticsearch; dead-lettered");
        }
        let classes: Vec<_> = letters.iter().map(|l| l.document.class).collect();
        let Some(mut file) = self.dead_letters.take() else {
            for class in classes {
                self.stats.dropped(class, DropReason::Io, 1);
            }
            return;
        };
        let joined = tokio::task::spawn_blocking(move || {
            let result = file.write(&letters);
            (file, letters, result)
        })
        .await;
        let Ok((file, letters, result)) = joined else {
            for class in classes {
                self.stats.dropped(class, DropReason::Io, 1);
            }
            return;
        };
        self.dead_letters = Some(file);
        let failed = result.as_ref().err().map(ToString::to_string);
        if let Some(error) = &failed {
            tracing::error!(%error, documents = letters.len(), "cannot write the dead-letter file; documents lost");
            self.stats.set_last_error(error.clone());
        }
        for letter in &letters {
            if failed.is_some() {
                self.stats.dropped(letter.document.class, DropReason::Io, 1);
            } else {
                self.stats.dead_lettered(letter.document.class, 1);
            }
        }
    }
}

/// The delay before retry number `failures` (from 1): exponential, capped,
/// half of it random.
pub(crate) fn backoff(initial: Duration, max: Duration, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let base = initial.saturating_mul(1 << exponent).min(max);
    let half = base / 2;
    let jitter = u64::try_from(half.as_micros()).unwrap_or(u64::MAX);
    half + Duration::from_micros(fastrand::u64(0..=jitter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let (initial, max) = (Duration::from_millis(100), Duration::from_secs(1));
        for _ in 0..100 {
            let first = backoff(initial, max, 1);
            assert!(first >= Duration::from_millis(50) && first <= initial, "{first:?}");
            let third = backoff(initial, max, 3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400), "{third:?}");
            let late = backoff(initial, max, 30);
            assert!(late >= Duration::from_millis(500) && late <= max, "{late:?}");
        }
    }
}
