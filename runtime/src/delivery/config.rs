//! Delivery configuration: what the config file's `delivery:` section
//! deserialises into.
//!
//! Every field has a default, so an empty section is a working
//! configuration: NDJSON on standard output behind a 256 MiB disk queue.
//! Durations are written as `"250ms"`, `"5s"`, `"2m"` or a number of
//! milliseconds. Secrets never appear in `Debug` output.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::delivery::error::DeliveryError;

/// The whole delivery configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Where documents go. Default: NDJSON on standard output.
    pub sink: SinkConfig,
    /// The disk queue between the producer and the sink.
    pub queue: QueueConfig,
    /// How documents are grouped into one bulk request or one write.
    pub batch: BatchConfig,
    /// Capacity, per class, of the in-memory channel in front of the disk
    /// queue. When it is full, `try_send` refuses and counts the document.
    pub channel_capacity: usize,
    /// Documents whose body is larger than this are refused by `try_send`
    /// and counted (`too_large`); Elasticsearch's default request limit is
    /// 100 MiB.
    pub max_document_bytes: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            sink: SinkConfig::default(),
            queue: QueueConfig::default(),
            batch: BatchConfig::default(),
            channel_capacity: 4_096,
            max_document_bytes: 8 << 20,
        }
    }
}

/// The destination of documents.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    /// `_bulk` `create` actions into data streams.
    Elasticsearch(ElasticsearchConfig),
    /// The embedded default when no Elasticsearch is configured.
    Ndjson(NdjsonConfig),
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self::Ndjson(NdjsonConfig::default())
    }
}

/// The Elasticsearch sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Base URLs, `https://host:9200` or `http://host:9200/prefix`; tried in
    /// turn, moving to the next one after a connection failure.
    pub urls: Vec<String>,
    /// Credentials sent with every request.
    pub auth: Option<Auth>,
    /// A PEM file of CA certificates to trust instead of the bundled web
    /// roots (the usual case for a self-managed cluster).
    pub ca_file: Option<PathBuf>,
    /// Compress request bodies with gzip (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// gzip level, 0 (store) to 9; 1 is what Elastic Agent uses.
    pub gzip_level: u32,
    /// The limit of one attempt: connect, send and read the whole response.
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// The first retry delay; doubled after each failed attempt.
    #[serde(deserialize_with = "duration")]
    pub initial_backoff: Duration,
    /// The largest retry delay.
    #[serde(deserialize_with = "duration")]
    pub max_backoff: Duration,
    /// Where refused documents (4xx other than 409 and 429) are written.
    pub dead_letter: DeadLetterConfig,
}

impl Default for ElasticsearchConfig {
    fn default() -> Self {
        Self {
            urls: vec!["http://localhost:9200".to_owned()],
            auth: None,
            ca_file: None,
            gzip: true,
            gzip_level: 1,
            request_timeout: Duration::from_secs(30),
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            dead_letter: DeadLetterConfig::default(),
        }
    }
}

/// Credentials for Elasticsearch.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// `Authorization: ApiKey <encoded>`.
    ApiKey(ApiKey),
    /// `Authorization: Basic <base64 user:password>`.
    Basic {
        /// The user name.
        #[serde(deserialize_with = "text")]
        username: String,
        /// The password.
        #[serde(deserialize_with = "text")]
        password: String,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiKey(_) => f.write_str("ApiKey(<redacted>)"),
            Self::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
        }
    }
}

/// An API key, either as Kibana shows it (`encoded`, the base64 of
/// `id:api_key`) or as its two parts.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum ApiKey {
    /// The base64 form, sent as is.
    Encoded(#[serde(deserialize_with = "text")] String),
    /// The id and the key, encoded on start.
    Parts {
        /// The key's id.
        #[serde(deserialize_with = "text")]
        id: String,
        /// The secret.
        #[serde(deserialize_with = "text")]
        api_key: String,
    },
}

/// The dead-letter file of the Elasticsearch sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// Default: `<state dir>/dead-letter.ndjson`.
    pub path: Option<PathBuf>,
    /// Rotate when the file would grow past this.
    pub max_bytes: u64,
    /// Rotated files kept (`path.1` .. `path.N`).
    pub keep: u32,
}

impl Default for DeadLetterConfig {
    fn default() -> Self {
        Self { path: None, max_bytes: 64 << 20, keep: 2 }
    }
}

/// The NDJSON sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NdjsonConfig {
    /// A file to write; standard output when absent.
    pub path: Option<PathBuf>,
    /// Rotate the file when it would grow past this (files only).
    pub max_bytes: u64,
    /// Rotated files kept (`path.1` .. `path.N`; 0 keeps none).
    pub keep: u32,
    /// What one document becomes.
    pub format: NdjsonFormat,
}

impl Default for NdjsonConfig {
    fn default() -> Self {
        Self { path: None, max_bytes: 100 << 20, keep: 5, format: NdjsonFormat::Documents }
    }
}

/// The line format of the NDJSON sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NdjsonFormat {
    /// One line per document: exactly the `_source` (it carries
    /// `data_stream.*`, so a shipper can route it). The `_id` is not written.
    Documents,
    /// Two lines per document, `{"create":{"_index":..,"_id":..}}` then the
    /// `_source`: a file that can be POSTed to `_bulk` as it is, idempotently.
    /// A pair is never split across rotated files.
    Bulk,
}

/// The disk queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Bytes on disk, alerts and logs together, segment headers included.
    /// When an append would pass it, logs are shed before alerts.
    pub max_bytes: u64,
    /// A segment is sealed and a new one started past this size; shedding
    /// drops whole log segments, so keep it well under `max_bytes`.
    pub segment_bytes: u64,
    /// When written records are forced to the disk.
    pub fsync: FsyncPolicy,
    /// How long `start` waits for another process to release the queue
    /// directory's lock (a terminating daemon of a rolling update).
    #[serde(deserialize_with = "duration")]
    pub lock_timeout: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_bytes: 256 << 20,
            segment_bytes: 8 << 20,
            fsync: FsyncPolicy::default(),
            lock_timeout: Duration::from_secs(30),
        }
    }
}

/// When the disk queue calls `fsync`.
///
/// Records reach the page cache as soon as they are appended, so they
/// survive a crash or restart of the daemon under every policy; the policy
/// only decides how much a power loss or kernel crash can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FsyncPolicy {
    /// After every appended batch and every cursor update.
    Always,
    /// At most this long after a write (default 1 s), on sealing a segment
    /// and on shutdown.
    Interval(#[serde(deserialize_with = "duration")] Duration),
    /// Never explicitly (the kernel writes back on its own).
    Never,
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        Self::Interval(Duration::from_secs(1))
    }
}

/// Grouping of documents into one request.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// Send when this many documents are waiting.
    pub max_documents: usize,
    /// Send when this many uncompressed body bytes are waiting.
    pub max_bytes: usize,
    /// Send what is waiting at most this long after the first document of
    /// the batch was read.
    #[serde(deserialize_with = "duration")]
    pub flush_interval: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self { max_documents: 5_000, max_bytes: 5 << 20, flush_interval: Duration::from_secs(1) }
    }
}

/// Reads a duration written as `"250ms"`, `"5s"`, `"2m"`, `"1h"` or a
/// number of milliseconds (`#[serde(deserialize_with = ...)]` for every
/// duration setting of the daemon). Anything else (`1.5`, `-1`, `true`)
/// is an error that says what a duration is.
pub fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = Duration;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration: a whole number of milliseconds, or a string such as \"250ms\", \"5s\", \"2m\"")
        }
        fn visit_u64<E: serde::de::Error>(self, ms: u64) -> Result<Duration, E> {
            Ok(Duration::from_millis(ms))
        }
        fn visit_i64<E: serde::de::Error>(self, ms: i64) -> Result<Duration, E> {
            u64::try_from(ms)
                .map(Duration::from_millis)
                .map_err(|_| E::custom(format!("invalid duration `{ms}`: negative")))
        }
        fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "invalid duration `{value}`: a number is whole milliseconds; write fractions with a unit, such as \"1500ms\""
            )))
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Duration, E> {
            parse_duration(text).map_err(E::custom)
        }
    }
    deserializer.deserialize_any(Visitor)
}

/// Reads a text setting that may have come from an environment variable
/// or `--set` as a TOML number or boolean (`NODE_NAME=123`, a numeric
/// password): the scalar's text is the setting (issue 14: such values
/// were refused with an error about another key).
pub fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<String, E> {
            Ok(text.to_owned())
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<String, E> {
            Ok(n.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<String, E> {
            Ok(n.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<String, E> {
            Ok(n.to_string())
        }
        fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<String, E> {
            Ok(b.to_string())
        }
    }
    deserializer.deserialize_any(Visitor)
}

/// [`text`] for an optional setting.
pub fn optional_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    text(deserializer).map(Some)
}

impl DeliveryConfig {
    /// Adds to `out` every problem of this section that would make
    /// delivery refuse to start or fail, each naming its key below
    /// `prefix` (`delivery`). Part of [`crate::config::validate`], so that
    /// `--check` refuses what the daemon would.
    pub fn problems(&self, prefix: &str, out: &mut Vec<String>) {
        let mut problem = |key: &str, message: String| out.push(format!("`{prefix}.{key}`: {message}"));
        if self.channel_capacity == 0 {
            problem("channel_capacity", "must be at least 1".into());
        }
        if self.max_document_bytes == 0 {
            problem("max_document_bytes", "must be at least 1".into());
        }
        if self.batch.max_documents == 0 {
            problem("batch.max_documents", "must be at least 1".into());
        }
        if self.batch.max_bytes == 0 {
            problem("batch.max_bytes", "must be at least 1".into());
        }
        if self.batch.flush_interval.is_zero() {
            problem("batch.flush_interval", "must be longer than 0".into());
        }
        let header = crate::delivery::record::SEGMENT_HEADER;
        if self.queue.segment_bytes <= header {
            problem(
                "queue.segment_bytes",
                format!("{} must be over {header} (the segment header)", self.queue.segment_bytes),
            );
        }
        if self.queue.max_bytes < self.queue.segment_bytes {
            problem(
                "queue.max_bytes",
                format!(
                    "{} must be at least `queue.segment_bytes` ({})",
                    self.queue.max_bytes, self.queue.segment_bytes
                ),
            );
        }
        if let FsyncPolicy::Interval(every) = self.queue.fsync {
            if every.is_zero() {
                problem("queue.fsync.interval", "must be longer than 0".into());
            }
        }
        match &self.sink {
            SinkConfig::Elasticsearch(es) => es.problems(&mut problem),
            SinkConfig::Ndjson(ndjson) => {
                if ndjson.max_bytes == 0 {
                    problem("sink.ndjson.max_bytes", "must be at least 1".into());
                }
            }
        }
    }
}

impl ElasticsearchConfig {
    /// The problems of the Elasticsearch sink (see
    /// [`DeliveryConfig::problems`]); `problem` takes the key below
    /// `delivery`.
    fn problems(&self, problem: &mut impl FnMut(&str, String)) {
        if self.urls.is_empty() {
            problem("sink.elasticsearch.urls", "is empty: give at least one `https://host:9200`".into());
        }
        for (i, url) in self.urls.iter().enumerate() {
            match crate::delivery::http::parse_url(url) {
                Ok(_) => {}
                Err(DeliveryError::InvalidUrl { url, reason }) => {
                    problem(&format!("sink.elasticsearch.urls[{i}]"), format!("`{url}`: {reason}"))
                }
                Err(e) => problem(&format!("sink.elasticsearch.urls[{i}]"), e.to_string()),
            }
        }
        if let Some(path) = &self.ca_file {
            match crate::delivery::http::ca_roots(path) {
                Ok(_) => {}
                Err(DeliveryError::CaFile { reason, .. }) => problem(
                    "sink.elasticsearch.ca_file",
                    format!("cannot read `{}` as PEM certificates: {reason}", path.display()),
                ),
                Err(e) => problem("sink.elasticsearch.ca_file", e.to_string()),
            }
        }
        if self.gzip_level > 9 {
            problem("sink.elasticsearch.gzip_level", format!("{} is not a gzip level (0 to 9)", self.gzip_level));
        }
        for (key, value) in [("request_timeout", self.request_timeout), ("initial_backoff", self.initial_backoff)] {
            if value.is_zero() {
                problem(&format!("sink.elasticsearch.{key}"), "must be longer than 0".into());
            }
        }
        if self.max_backoff < self.initial_backoff {
            problem("sink.elasticsearch.max_backoff", "must be at least `initial_backoff`".into());
        }
        if self.dead_letter.max_bytes == 0 {
            problem("sink.elasticsearch.dead_letter.max_bytes", "must be at least 1".into());
        }
    }
}

/// Parses `"250ms"`, `"5s"`, `"2m"`, `"1h"` (a whole number and a unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 =
        number.parse().map_err(|_| format!("invalid duration `{text}`: expected a number and a unit such as `5s`"))?;
    let millis = match unit.trim() {
        "ms" | "" => Some(value),
        "s" => value.checked_mul(1_000),
        "m" => value.checked_mul(60_000),
        "h" => value.checked_mul(3_600_000),
        other => return Err(format!("invalid duration unit `{other}` in `{text}`: use `ms`, `s`, `m` or `h`")),
    };
    millis.map(Duration::from_millis).ok_or_else(|| format!("duration `{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_units_and_milliseconds() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("40"), Ok(Duration::from_millis(40)));
        assert!(parse_duration("5 fortnights").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn an_empty_section_is_the_ndjson_default() -> Result<(), serde_json::Error> {
        let config: DeliveryConfig = serde_json::from_str("{}")?;
        assert!(matches!(config.sink, SinkConfig::Ndjson(NdjsonConfig { path: None, .. })));
        assert_eq!(config.queue.fsync, FsyncPolicy::Interval(Duration::from_secs(1)));
        Ok(())
    }

    #[test]
    fn elasticsearch_section_with_api_key_and_durations() -> Result<(), serde_json::Error> {
        let config: DeliveryConfig = serde_json::from_str(
            r#"{"sink": {"elasticsearch": {"urls": ["https://es:9200"], "auth": {"api_key": "abc=="},
                "request_timeout": "5s", "ca_file": "/etc/d4c/ca.pem"}},
                "queue": {"fsync": {"interval": "200ms"}, "max_bytes": 1048576},
                "batch": {"flush_interval": 50}}"#,
        )?;
        let SinkConfig::Elasticsearch(es) = config.sink else { panic!("not elasticsearch") };
        assert_eq!(es.request_timeout, Duration::from_secs(5));
        assert!(matches!(es.auth, Some(Auth::ApiKey(ApiKey::Encoded(ref key))) if key == "abc=="));
        assert_eq!(format!("{:?}", es.auth), "Some(ApiKey(<redacted>))");
        assert_eq!(config.queue.fsync, FsyncPolicy::Interval(Duration::from_millis(200)));
        assert_eq!(config.batch.flush_interval, Duration::from_millis(50));
        Ok(())
    }

    #[test]
    fn validation_refuses_a_ca_file_the_client_refuses() -> Result<(), Box<dyn std::error::Error>> {
        // A file that looks like PEM but holds no certificate passed
        // `--check` (a text search) and then stopped the sink at start.
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")?;
        let json = serde_json::json!({"sink": {"elasticsearch": {"urls": ["https://es:9200"], "ca_file": path}}});
        let config: DeliveryConfig = serde_json::from_value(json)?;
        let mut problems = Vec::new();
        config.problems("delivery", &mut problems);
        assert!(
            problems.iter().any(|p| p.contains("`delivery.sink.elasticsearch.ca_file`: cannot read")),
            "{problems:?}"
        );
        assert!(crate::delivery::http::ca_roots(&path).is_err());
        Ok(())
    }
}
