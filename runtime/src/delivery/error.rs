//! What can go wrong in delivery, named so an operator can act on it: the
//! file, the URL, the HTTP status and Elasticsearch's error type.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// A delivery failure. At start-up it is returned; while running it is
/// logged, kept as the last error in the stats, and the attempt is retried.
#[derive(Debug)]
pub enum DeliveryError {
    /// The configuration cannot work (the message says why).
    Config(String),
    /// A file or directory operation failed.
    Io {
        /// What was being done, e.g. `create the queue directory`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Another process holds the queue directory.
    Locked {
        /// The lock file.
        path: PathBuf,
        /// How long start waited.
        waited: Duration,
    },
    /// A URL in `urls` cannot be used.
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// Why.
        reason: String,
    },
    /// The CA file cannot be read or holds no usable certificate.
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The TLS configuration cannot be built.
    Tls(String),
    /// Connecting (TCP or TLS handshake) failed.
    Connect {
        /// The base URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// An attempt took longer than `request_timeout`.
    Timeout {
        /// The base URL.
        url: String,
        /// The configured limit.
        after: Duration,
    },
    /// The HTTP exchange failed after connecting (reset, closed early).
    Http {
        /// The base URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Elasticsearch answered the whole request with an error status.
    Status {
        /// The base URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// `error.type` of the response, when there is one.
        error_type: Option<String>,
        /// `error.reason` of the response, when there is one.
        reason: Option<String>,
    },
    /// Elasticsearch answered 2xx with a body that is not a bulk response.
    BadResponse {
        /// The base URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Encoding a bulk body failed (its thread stopped).
    Encode(String),
    /// The delivery tasks are gone (already shut down or crashed).
    Stopped,
}

impl DeliveryError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io { action, path: path.into(), source }
    }

    /// Whether this is a write that found the disk (or the quota) full.
    pub(crate) fn is_disk_full(&self) -> bool {
        matches!(self, Self::Io { source, .. } if crate::delivery::space::is_full(source))
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(message) => write!(f, "invalid delivery configuration: {message}"),
            Self::Io { action, path, source } => write!(f, "cannot {action} `{}`: {source}", path.display()),
            Self::Locked { path, waited } => write!(
                f,
                "the queue directory is in use by another process (lock `{}` still held after {} ms)",
                path.display(),
                waited.as_millis()
            ),
            Self::InvalidUrl { url, reason } => write!(f, "invalid Elasticsearch URL `{url}`: {reason}"),
            Self::CaFile { path, reason } => write!(f, "cannot use CA file `{}`: {reason}", path.display()),
            Self::Tls(reason) => write!(f, "cannot set up TLS: {reason}"),
            Self::Connect { url, reason } => write!(f, "cannot connect to `{url}`: {reason}"),
            Self::Timeout { url, after } => {
                write!(f, "bulk request to `{url}` timed out after {} ms", after.as_millis())
            }
            Self::Http { url, reason } => write!(f, "bulk request to `{url}` failed: {reason}"),
            Self::Status { url, status, error_type, reason } => {
                write!(f, "bulk request to `{url}` answered HTTP {status}")?;
                if let Some(error_type) = error_type {
                    write!(f, " `{error_type}`")?;
                }
                if let Some(reason) = reason {
                    write!(f, ": {reason}")?;
                }
                Ok(())
            }
            Self::BadResponse { url, reason } => write!(f, "unreadable bulk response from `{url}`: {reason}"),
            Self::Encode(reason) => write!(f, "cannot encode a bulk request: {reason}"),
            Self::Stopped => f.write_str("delivery has stopped"),
        }
    }
}

impl std::error::Error for DeliveryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
