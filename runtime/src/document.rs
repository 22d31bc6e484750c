//! The unit the pipeline hands to delivery: one ECS document, already
//! serialised, with the data stream it belongs to and its idempotent id.

/// Whether a document is an alert or a log. When the disk queue is full,
/// alerts are kept and logs are shed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Goes to `logs-cloud_defend.alerts-<namespace>`.
    Alert,
    /// Goes to `logs-cloud_defend.file-<ns>` or `logs-cloud_defend.process-<ns>`.
    Log,
}

impl Class {
    /// Both, alerts first: in the order [`Class::index`] gives.
    pub const ALL: [Class; 2] = [Class::Alert, Class::Log];

    /// Its index in per-class arrays: 0 for alerts, 1 for logs.
    pub fn index(self) -> usize {
        match self {
            Class::Alert => 0,
            Class::Log => 1,
        }
    }

    /// Its Prometheus label: `alert` or `log`.
    pub fn label(self) -> &'static str {
        match self {
            Class::Alert => "alert",
            Class::Log => "log",
        }
    }
}

/// One ECS document ready for delivery.
///
/// Invariants: `body` is one JSON object in UTF-8 with no trailing newline;
/// `id` is unique per kernel event and data stream and is the same on every
/// retry, so that a `create` repeated after a lost response is refused as a
/// conflict (HTTP 409) instead of being indexed twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The data stream, e.g. `logs-cloud_defend.alerts-default`.
    pub stream: String,
    /// The `_id` of the bulk `create` action.
    pub id: String,
    /// Alert or log: what is shed first when the queue is full.
    pub class: Class,
    /// The `_source`: one serialised JSON object.
    pub body: Vec<u8>,
}
