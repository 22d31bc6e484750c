//! The free space delivery's file writes may use: the file system's own
//! (production), or a bound a test sets to fill the disk.
//!
//! Why a seam: a full disk is the fault the queue and the NDJSON sink must
//! survive, and the deterministic ways to make one (a small tmpfs, a loop
//! device) need root. A [`Space`] with a bound writes what fits for real
//! and then fails with `ENOSPC` (`ErrorKind::StorageFull`), exactly as a
//! write that fills a file system does; without one, writes go straight
//! to the file.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Where writes find room. `Default` is the file system's own.
#[derive(Clone, Default)]
pub(crate) struct Space {
    /// Bytes the file system can still allocate, when a test bounds it.
    free: Option<Arc<dyn Fn() -> u64 + Send + Sync>>,
}

impl fmt::Debug for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.free.is_some() { "Space(bounded)" } else { "Space(file system)" })
    }
}

/// Whether `error` says the disk (or the user's quota on it) is full:
/// `ENOSPC` or `EDQUOT`.
pub(crate) fn is_full(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}

impl Space {
    /// A file system with `free()` bytes left (`free` is asked at each
    /// write, so a test can free space by deleting files or raising it).
    #[cfg(test)]
    pub(crate) fn bounded(free: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self { free: Some(Arc::new(free)) }
    }

    /// Writes `bytes` with `write`, or only those that fit at `offset` of
    /// `file` and then fails with `ENOSPC`, as a file system that fills
    /// does. Without a bound, all of them.
    fn write_fitting(
        &self,
        file: &File,
        bytes: &[u8],
        offset: impl FnOnce() -> io::Result<u64>,
        write: impl FnOnce(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let Some(free) = &self.free else { return write(bytes) };
        let room = file.metadata()?.len().saturating_add(free()).saturating_sub(offset()?);
        let fits = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
        write(bytes.get(..fits).unwrap_or(bytes))?;
        if fits < bytes.len() {
            return Err(io::ErrorKind::StorageFull.into());
        }
        Ok(())
    }

    /// `write_all_at`: all of `bytes` at `offset`, or an error (what fitted
    /// may be written, as on a real file system).
    pub(crate) fn write_all_at(&self, file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
        self.write_fitting(file, bytes, || Ok(offset), |fits| file.write_all_at(fits, offset))
    }

    /// `write_all` on a file opened in append mode (writes land at its end).
    pub(crate) fn append_all(&self, file: &File, bytes: &[u8]) -> io::Result<()> {
        let end = || file.metadata().map(|m| m.len());
        self.write_fitting(file, bytes, end, |fits| {
            let mut file = file;
            file.write_all(fits)
        })
    }
}
