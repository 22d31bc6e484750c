//! `d4cc compile`: a policy source to artifact bytes.
//!
//! Input: the policy's bytes, already linted without errors (its checked
//! model), and [`CompileOptions`]. Output: the artifact's bytes, the same
//! bytes for the same inputs (no time stamp unless `created_unix` is given,
//! which the CLI takes from `SOURCE_DATE_EPOCH`).

use crate::lower::{lower, LowerError};
use crate::model::CheckedPolicy;
use d4c_artifact::{ArtifactError, ArtifactWriter, WriterMeta};

/// What the header records besides the tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompileOptions {
    /// The policy's name (at most 64 bytes): the package policy id that
    /// documents carry as `cloud_defend.package_policy_id`.
    pub policy_name: String,
    /// The policy's revision (`cloud_defend.package_policy_revision`, at
    /// most [`crate::locate::MAX_REVISION`]).
    pub revision: u64,
    /// Creation time to record, in Unix seconds; `None` records 0.
    pub created_unix: Option<u64>,
}

/// Why compilation failed after a clean lint.
#[derive(Debug)]
pub enum CompileError {
    /// A capacity limit of the tables.
    Lower(LowerError),
    /// The artifact could not be written (a name too long, say).
    Artifact(ArtifactError),
    /// A revision that `cloud_defend.package_policy_revision` (a `short`)
    /// cannot hold.
    Revision(u64),
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompileError::Lower(e) => e.fmt(f),
            CompileError::Artifact(e) => e.fmt(f),
            CompileError::Revision(r) => write!(
                f,
                "revision {r} does not fit `cloud_defend.package_policy_revision`, a `short` in the integration's mappings (at most {})",
                crate::locate::MAX_REVISION
            ),
        }
    }
}

impl std::error::Error for CompileError {}

/// Whether `name` may be an artifact's policy name: not empty, not only
/// white space, and without control characters (which would reach every
/// terminal that shows the name). `Err` says what is wrong, to follow the
/// name in a message.
pub fn check_policy_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("is empty")
    } else if name.trim().is_empty() {
        Err("is only white space")
    } else if name.chars().any(d4c_artifact::display::is_control) {
        Err("holds a control character")
    } else {
        Ok(())
    }
}

/// The compiler's version as recorded in artifacts.
pub const COMPILER_VERSION: &str = concat!("d4cc ", env!("CARGO_PKG_VERSION"));

/// Compiles a checked policy whose source is `source` into artifact bytes.
pub fn compile(source: &[u8], policy: &CheckedPolicy, options: &CompileOptions) -> Result<Vec<u8>, CompileError> {
    if options.revision > crate::locate::MAX_REVISION {
        return Err(CompileError::Revision(options.revision));
    }
    let tables = lower(policy).map_err(CompileError::Lower)?;
    let mut writer = ArtifactWriter::new(WriterMeta {
        policy_name: options.policy_name.clone(),
        compiler_version: COMPILER_VERSION.to_string(),
        revision: options.revision,
        created_unix: options.created_unix,
        source_digest: d4c_artifact::sha256(source),
    });
    tables.write_into(&mut writer).map_err(|e| CompileError::Lower(LowerError::Internal(e.to_string())))?;
    writer.finish().map_err(CompileError::Artifact)
}
