//! The reloader: when the artifact file holds a new version, and what a
//! refused one is remembered as.
//!
//! Input: the configured artifact file's identity (device, inode, size,
//! modification time). Output: whether a reload is due, and after one,
//! its outcome counted and logged once.
//! Invariant: a refused version is not read again until the file changes
//! (SIGHUP still retries it), so it is logged and counted once.

use crate::config::Config;
use crate::load;

use super::Counters;

/// The artifact versions refused.
#[derive(Debug, Default)]
pub struct Reloader {
    /// The artifact file's stamp when it was last refused (`Some(None)`:
    /// it was missing): that version is not read again until the file
    /// changes (SIGHUP still retries it).
    refused_stamp: Option<Option<load::FileStamp>>,
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

    /// Counts a reload's `result`; a refused one is logged and its
    /// version (`stamp`, taken before the read) remembered.
    pub fn settle(
        &mut self,
        result: &Result<(), String>,
        stamp: Option<load::FileStamp>,
        revision_in_force: u16,
        counters: &mut Counters,
    ) {
        match result {
            Ok(()) => {
                counters.reloads += 1;
                self.refused_stamp = None;
            }
            Err(error) => {
                self.refused_stamp = Some(stamp);
                counters.reloads_refused += 1;
                tracing::error!(%error, revision = revision_in_force, "reload refused; the current policy stays");
            }
        }
    }
}
