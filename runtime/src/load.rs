//! Loading an artifact: read the file, check it whole, check its signature
//! when a trusted key is configured, and read its decision tables.
//!
//! The file is read into memory, not mapped: a mapping may change under
//! the checks (a writer truncating or rewriting the file in place), so the
//! digest would vouch for bytes other than those used; and the tables are
//! copied into BPF maps anyway, so a mapping would save nothing. The bytes
//! checked are the bytes loaded.
//!
//! In: a path (and optionally the public key the artifact must be signed
//! by). Out: the tables the probes are loaded with (and keep), and a
//! [`Policy`]: what the documents say about the policy. Nothing is loaded into the
//! kernel here, so a bad artifact is refused before anything changes.

use std::fmt;
use std::path::{Path, PathBuf};

use d4c_artifact::eval::Tables;
use d4c_artifact::{to_hex, Artifact, ArtifactError, VerifyingKey};

/// A verified artifact's identity (its tables go to the probes, which
/// keep the one copy).
pub struct Policy {
    /// The policy's name, as compiled.
    pub name: String,
    /// The policy's revision, as the compiler was given it: at most
    /// [`d4c_artifact::MAX_REVISION`] (an artifact with a larger one is
    /// refused, as the documents could not carry it).
    pub revision: u16,
    /// The SHA-256 of the artifact's content, hex: what `d4cc inspect`
    /// prints, and what the documents carry as the revision's digest.
    pub digest: String,
    /// The compiler that wrote it.
    pub compiler: String,
    /// Whether a trusted key's signature was checked.
    pub signed: bool,
    /// Where it was read from.
    pub path: PathBuf,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.name)
            .field("revision", &self.revision)
            .field("digest", &self.digest)
            .field("signed", &self.signed)
            .finish_non_exhaustive()
    }
}

/// Why an artifact was refused: what went wrong, and with which file.
#[derive(Debug)]
pub struct LoadError {
    /// The artifact's (or the key's) path.
    pub path: PathBuf,
    /// What went wrong.
    pub kind: LoadErrorKind,
}

/// What went wrong in a [`LoadError`].
#[derive(Debug)]
pub enum LoadErrorKind {
    /// The file could not be opened or read.
    Io(std::io::Error),
    /// The file is not a well-formed artifact, or its signature is missing
    /// or wrong.
    Artifact(ArtifactError),
    /// The tables inside are inconsistent.
    Tables(String),
    /// The trusted key file could not be read.
    Key(ArtifactError),
    /// The revision is over [`d4c_artifact::MAX_REVISION`]: the
    /// integration maps `cloud_defend.package_policy_revision` as a short.
    Revision(u64),
    /// No artifact is configured (the path is empty).
    NotConfigured,
}

impl LoadError {
    /// Whether reading the same file again may succeed: the read failed
    /// for a reason of the node, not of the file (descriptors or memory
    /// exhausted, an I/O error, an interrupted call). A reload that fails
    /// so is tried again at the next check; any other failure refuses
    /// that version of the file until it changes.
    pub fn is_transient(&self) -> bool {
        const TRANSIENT: [i32; 7] =
            [libc::EMFILE, libc::ENFILE, libc::ENOMEM, libc::ENOBUFS, libc::EIO, libc::EINTR, libc::EAGAIN];
        match &self.kind {
            LoadErrorKind::Io(error) => error.raw_os_error().is_some_and(|errno| TRANSIENT.contains(&errno)),
            _ => false,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match &self.kind {
            LoadErrorKind::Io(error) => write!(f, "cannot read the artifact `{path}`: {error}"),
            LoadErrorKind::Artifact(error) => write!(f, "refusing the artifact `{path}`: {error}"),
            LoadErrorKind::Tables(error) => {
                write!(f, "refusing the artifact `{path}`: its decision tables are inconsistent: {error}")
            }
            LoadErrorKind::Key(error) => write!(f, "cannot read the trusted key `{path}`: {error}"),
            LoadErrorKind::Revision(revision) => write!(
                f,
                "refusing the artifact `{path}`: its revision {revision} is over {}, the largest \
                 `cloud_defend.package_policy_revision` holds (a short in the integration's mapping); \
                 compile it again with a smaller `d4cc compile --revision`",
                d4c_artifact::MAX_REVISION
            ),
            LoadErrorKind::NotConfigured => f.write_str("no artifact: pass --artifact PATH (a `d4cc compile` output)"),
        }
    }
}

impl std::error::Error for LoadError {}

/// Reads the trusted public key (PEM) the artifacts must be signed by.
pub fn trusted_key(path: &Path) -> Result<VerifyingKey, LoadError> {
    d4c_artifact::keys::read_public_key(path)
        .map_err(|e| LoadError { path: path.to_path_buf(), kind: LoadErrorKind::Key(e) })
}

/// Maps and checks the artifact at `path`.
///
/// Every structural check of [`Artifact::parse`] runs (layout, section and
/// content digests); with `key`, the artifact must carry a valid signature
/// by that key: unsigned or foreign-signed artifacts are refused.
pub fn load(path: &Path, key: Option<&VerifyingKey>) -> Result<(Policy, Tables), LoadError> {
    let fail = |kind| LoadError { path: path.to_path_buf(), kind };
    // A regular file of bounded size: a FIFO would block the main loop,
    // /dev/zero would never end.
    let bytes = d4c_artifact::input::read_regular(path, d4c_artifact::MAX_ARTIFACT_BYTES)
        .map(|bytes| d4c_artifact::aligned_copy(&bytes))
        .map_err(|e| fail(LoadErrorKind::Io(e)))?;
    let artifact = Artifact::parse(bytes.as_slice()).map_err(|e| fail(LoadErrorKind::Artifact(e)))?;
    if let Some(key) = key {
        artifact.verify_signature(key).map_err(|e| fail(LoadErrorKind::Artifact(e)))?;
    }
    let revision = artifact.header().revision;
    let revision = u16::try_from(revision)
        .ok()
        .filter(|r| u64::from(*r) <= d4c_artifact::MAX_REVISION)
        .ok_or_else(|| fail(LoadErrorKind::Revision(revision)))?;
    let tables = Tables::read(&artifact).map_err(|e| fail(LoadErrorKind::Tables(e.to_string())))?;
    let policy = Policy {
        name: artifact.policy_name().to_owned(),
        revision,
        digest: to_hex(&artifact.header().content_digest),
        compiler: artifact.compiler_version().to_owned(),
        signed: key.is_some(),
        path: path.to_path_buf(),
    };
    Ok((policy, tables))
}

/// What identifies a version of a file: device, inode, size, mtime.
pub type FileStamp = (u64, u64, u64, i64, i64);

/// The stamp of the file at `path` (following symlinks, as a ConfigMap's
/// `..data` swap changes the target).
pub fn file_stamp(path: &Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// Whether the artifact file, whose stamp is now `now`, is to be read
/// again: it differs from the version `loaded`, and from the version last
/// `refused` (`Some(stamp)`, `Some(None)` for a missing file) if any. A
/// refused version is read, logged and counted once; the next change of
/// the file (a new version, or the file coming back) is read again.
pub fn artifact_due(now: Option<FileStamp>, loaded: Option<FileStamp>, refused: Option<Option<FileStamp>>) -> bool {
    now != loaded && refused != Some(now)
}

/// Loads the configured artifact (`config.artifact`, checked against
/// `config.trusted_key` when set), with the stamp of the file read: the
/// one path from configuration to policy, for start-up, reload and
/// `--check`.
pub fn load_configured(config: &crate::config::Config) -> Result<(Policy, Tables, Option<FileStamp>), LoadError> {
    let artifact = config
        .artifact
        .as_deref()
        .ok_or_else(|| LoadError { path: PathBuf::new(), kind: LoadErrorKind::NotConfigured })?;
    let key = config.trusted_key.as_deref().map(trusted_key).transpose()?;
    // Stamped before it is read: a change during the read is seen again.
    let stamp = file_stamp(artifact);
    let (policy, tables) = load(artifact, key.as_ref())?;
    Ok((policy, tables, stamp))
}

/// Artifacts for the crate's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::{Path, PathBuf};

    /// Compiles `policy` (YAML) as `d4cc compile` does into `dir/test.d4c`.
    pub fn compile(dir: &Path, policy: &str) -> Result<PathBuf, String> {
        let (_, lint) = d4cc::lint::lint_bytes("test.yaml", policy.as_bytes().to_vec());
        let checked = lint.checked.ok_or_else(|| format!("the test policy does not lint: {:?}", lint.diagnostics))?;
        let options = d4cc::compile::CompileOptions { policy_name: "test".into(), revision: 1, created_unix: None };
        let bytes = d4cc::compile::compile(policy.as_bytes(), &checked, &options).map_err(|e| format!("{e:?}"))?;
        let path = dir.join("test.d4c");
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 14, fault 9): a refused artifact was read again,
    /// logged as an ERROR and counted in `d4c_reloads_total{outcome=
    /// "refused"}` at every check (2 s). The main loop's check, as
    /// [`crate::daemon::Daemon::artifact_changed`] makes it, offers a
    /// refused version once; a new version, or a missing file, once each.
    #[test]
    fn refused_artifact_is_logged_once() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("policy.d4c");
        std::fs::write(&path, b"not an artifact").map_err(|e| e.to_string())?;
        let loaded = Some((1, 1, 1, 1, 1));
        let mut refused = None;
        let mut refusals = 0;
        let mut check = |refused: &mut Option<Option<FileStamp>>| {
            let now = file_stamp(&path);
            if artifact_due(now, loaded, *refused) {
                // What `Daemon::reload` does with a refusal.
                assert!(load(&path, None).is_err());
                *refused = Some(now);
                refusals += 1;
            }
        };
        for _ in 0..10 {
            check(&mut refused);
        }
        std::fs::write(&path, b"still not an artifact").map_err(|e| e.to_string())?;
        for _ in 0..10 {
            check(&mut refused);
        }
        std::fs::remove_file(&path).map_err(|e| e.to_string())?;
        for _ in 0..10 {
            check(&mut refused);
        }
        assert_eq!(refusals, 3);
        Ok(())
    }

    /// Regression (issue 14, fault 6): a FIFO artifact blocked the main
    /// loop (no drain, `/healthz` 503), for good if it was then removed.
    #[test]
    fn an_artifact_that_is_a_fifo_is_refused_without_blocking() -> Result<(), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let fifo = dir.path().join("policy.d4c");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().map_err(|e| e.to_string())?;
        assert!(made.success());
        let error = load(&fifo, None).map(|_| ()).err().ok_or("the FIFO was read")?.to_string();
        assert!(error.contains("not a regular file (a FIFO)"), "{error}");
        let error = load(Path::new("/dev/zero"), None).map(|_| ()).err().ok_or("/dev/zero was read")?.to_string();
        assert!(error.contains("not a regular file (a character device)"), "{error}");
        Ok(())
    }
}
