//! The reloader: when the artifact file holds a new version, and what a
//! failed reload is remembered as.
//!
//! Input: the configured artifact file's identity (device, inode, size,
//! modification time) and each reload's outcome. Output: whether a reload
//! is due; the outcome counted and logged.
//! Invariants: a refused version (a bad artifact, or probes the kernel
//! refuses) is not read again until the file changes (SIGHUP still
//! retries it), so it is logged and counted once; a reload that failed
//! for a reason of the node (descriptors or memory exhausted, an I/O
//! error: [`crate::load::LoadError::is_transient`]) is tried again at the
//! next check, its log rate-limited.

use crate::config::Config;
use crate::load::{self, LoadError};

use super::Counters;

/// Why a reload did not happen.
#[derive(Debug)]
pub struct ReloadError {
    /// What went wrong, for the log and the caller.
    pub message: String,
    /// Whether trying the same version again may succeed.
    pub transient: bool,
}

impl From<LoadError> for ReloadError {
    fn from(error: LoadError) -> ReloadError {
        ReloadError { transient: error.is_transient(), message: error.to_string() }
    }
}

impl From<String> for ReloadError {
    /// A failure of the probes (load, verification, attach) or of a
    /// container's rows: that version is refused.
    fn from(message: String) -> ReloadError {
        ReloadError { message, transient: false }
    }
}

/// The artifact versions refused, and the rate limit of transient
/// failures' logs.
#[derive(Debug, Default)]
pub struct Reloader {
    /// The artifact file's stamp when it was last refused (`Some(None)`:
    /// it was missing): that version is not read again until the file
    /// changes (SIGHUP still retries it).
    refused_stamp: Option<Option<load::FileStamp>>,
    /// Transient failures are retried at every check: logged at most
    /// this often.
    throttle: crate::logging::Throttle,
}

impl Reloader {
    /// Whether the artifact file changed since the policy in force (read
    /// at `current`) was loaded, into a version not already refused (see
    /// [`load::artifact_due`]).
    pub fn due(&self, config: &Config, current: Option<load::FileStamp>) -> bool {
        let Some(path) = &config.artifact else { return false };
        load::artifact_due(load::file_stamp(path), current, self.refused_stamp)
    }

    /// The artifact file's stamp now, taken before a reload reads it (as
    /// `load_configured` does: a change during the read is a new version).
    pub fn stamp(config: &Config) -> Option<load::FileStamp> {
        config.artifact.as_deref().and_then(load::file_stamp)
    }

    /// Counts a reload's `result` and logs a failure. A refused version
    /// (`stamp`, taken before the read) is remembered; a transient
    /// failure is not, so the next check tries it again.
    pub fn settle(
        &mut self,
        result: &Result<(), ReloadError>,
        stamp: Option<load::FileStamp>,
        revision_in_force: u16,
        counters: &mut Counters,
    ) {
        match result {
            Ok(()) => {
                counters.reloads += 1;
                self.refused_stamp = None;
                self.throttle.forget("reload");
            }
            Err(error) if error.transient => {
                counters.reloads_failed += 1;
                if let Some(repeated) = self.throttle.admit("reload", crate::facts::boot_ns()) {
                    tracing::warn!(error = %error.message, repeated, revision = revision_in_force,
                        "reload failed for a reason of the node; the current policy stays, and it is tried again");
                }
            }
            Err(error) => {
                self.refused_stamp = Some(stamp);
                counters.reloads_refused += 1;
                tracing::error!(error = %error.message, revision = revision_in_force,
                    "reload refused; the current policy stays");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 14, errors as strings): a reload whose read of
    /// the artifact failed with EMFILE was remembered as a refused
    /// version, so the new policy was not tried again until the file
    /// changed, though the file was good. A transient failure is now
    /// retried at the next check; a bad artifact still is not.
    #[test]
    fn a_reload_that_failed_for_want_of_descriptors_is_tried_again() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("policy.d4c");
        std::fs::write(&path, b"a new version").map_err(|e| e.to_string())?;
        let config = Config { artifact: Some(path.clone()), ..Config::default() };
        let (mut reloader, mut counters) = (Reloader::default(), Counters::default());
        let emfile = LoadError {
            path: path.clone(),
            kind: load::LoadErrorKind::Io(std::io::Error::from_raw_os_error(libc::EMFILE)),
        };
        let stamp = Reloader::stamp(&config);
        reloader.settle(&Err(emfile.into()), stamp, 1, &mut counters);
        assert!(reloader.due(&config, None), "a version that failed for want of descriptors is not retried");
        assert_eq!((counters.reloads_failed, counters.reloads_refused), (1, 0));
        let bad = LoadError { path, kind: load::LoadErrorKind::Revision(70_000) };
        reloader.settle(&Err(bad.into()), stamp, 1, &mut counters);
        assert!(!reloader.due(&config, None), "a refused version is read again");
        assert_eq!((counters.reloads_failed, counters.reloads_refused), (1, 1));
        Ok(())
    }
}
