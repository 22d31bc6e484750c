//! The writer: sections in, artifact bytes out.
//!
//! Deterministic: the same metadata and the same sections, added in the same
//! order, give the same bytes. Sections are laid out in insertion order, each
//! at the next multiple of [`SECTION_ALIGN`]; the padding is zeros.

use std::collections::BTreeMap;

use zerocopy::IntoBytes;

use crate::error::{ArtifactError, SectionLabel};
use crate::format::{
    Header, SectionEntry, SectionFlags, SectionKind, COMPILER_VERSION_CAPACITY, FORMAT_VERSION, HEADER_SIZE,
    KERNEL_ABI_VERSION, MAGIC, POLICY_NAME_CAPACITY, SECTION_ALIGN, SECTION_ENTRY_SIZE,
};
use crate::{content_digest, sha256};

/// What the header says about the policy and its compilation.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct WriterMeta {
    /// The policy's name: at most 64 bytes of UTF-8, no NUL.
    pub policy_name: String,
    /// The compiler's version: at most 32 bytes of UTF-8, no NUL.
    pub compiler_version: String,
    /// The policy's revision.
    pub revision: u64,
    /// Seconds since the Unix epoch to record as the creation time; `None`
    /// records 0, so that builds are reproducible (pass
    /// `SOURCE_DATE_EPOCH` here when it is set).
    pub created_unix: Option<u64>,
    /// SHA-256 of the policy source bytes ([`crate::sha256`] computes it).
    pub source_digest: [u8; 32],
}

struct PendingSection {
    kind: SectionKind,
    flags: SectionFlags,
    record_size: u32,
    record_count: u32,
    bytes: Vec<u8>,
}

/// Builds an artifact: [`ArtifactWriter::new`], [`ArtifactWriter::add_section`]
/// for each section, then [`ArtifactWriter::finish`].
pub struct ArtifactWriter {
    meta: WriterMeta,
    sections: Vec<PendingSection>,
    kinds: BTreeMap<SectionKind, usize>,
}

impl ArtifactWriter {
    /// A writer with no section. The metadata is checked by `finish`.
    pub fn new(meta: WriterMeta) -> ArtifactWriter {
        ArtifactWriter { meta, sections: Vec::new(), kinds: BTreeMap::new() }
    }

    /// Adds a section after the ones already added.
    ///
    /// `record_size` 0 makes the section an opaque blob; otherwise `bytes`
    /// must be a whole number of records (fewer than 2^32 of them). The kind
    /// must not be 0 nor already added; `flags` may only hold
    /// [`SectionFlags::OPTIONAL`]. The kind need not be known to this build:
    /// a compiler may write kinds that its own reader would refuse unless
    /// they are optional.
    pub fn add_section(
        &mut self,
        kind: SectionKind,
        flags: SectionFlags,
        record_size: u32,
        bytes: Vec<u8>,
    ) -> Result<(), ArtifactError> {
        let index = self.sections.len();
        let section = SectionLabel { index, kind };
        if kind.0 == 0 {
            return Err(ArtifactError::ZeroKind { index });
        }
        if flags.unknown_bits() != 0 {
            return Err(ArtifactError::UnknownSectionFlags { section, bits: flags.unknown_bits() });
        }
        if let Some(&first) = self.kinds.get(&kind) {
            return Err(ArtifactError::DuplicateSection { section, first });
        }
        let length = u64::try_from(bytes.len()).map_err(|_| ArtifactError::TooLarge { what: "a section" })?;
        let record_count = if record_size == 0 {
            0
        } else {
            let partial = ArtifactError::PartialRecord { section, length, record_size };
            if length % u64::from(record_size) != 0 {
                return Err(partial);
            }
            u32::try_from(length / u64::from(record_size)).map_err(|_| partial)?
        };
        self.kinds.insert(kind, index);
        self.sections.push(PendingSection { kind, flags, record_size, record_count, bytes });
        Ok(())
    }

    /// Lays the artifact out and returns its bytes (unsigned: see
    /// [`crate::sign`]).
    pub fn finish(self) -> Result<Vec<u8>, ArtifactError> {
        let policy_name = encode_text::<POLICY_NAME_CAPACITY>("policy name", &self.meta.policy_name)?;
        let compiler_version =
            encode_text::<COMPILER_VERSION_CAPACITY>("compiler version", &self.meta.compiler_version)?;
        let too_large = ArtifactError::TooLarge { what: "the artifact" };
        let section_count = u32::try_from(self.sections.len())
            .map_err(|_| ArtifactError::TooLarge { what: "the number of sections" })?;

        // Layout: header, table, then each section at the next aligned offset.
        let table_end = self
            .sections
            .len()
            .checked_mul(SECTION_ENTRY_SIZE)
            .and_then(|t| t.checked_add(HEADER_SIZE))
            .ok_or(ArtifactError::TooLarge { what: "the number of sections" })?;
        let mut entries = Vec::with_capacity(self.sections.len());
        let mut end = table_end;
        for section in &self.sections {
            let offset = align_up(end).ok_or(ArtifactError::TooLarge { what: "the artifact" })?;
            end = offset.checked_add(section.bytes.len()).ok_or(ArtifactError::TooLarge { what: "the artifact" })?;
            entries.push(SectionEntry {
                kind: section.kind.0,
                flags: section.flags.0,
                offset: u64::try_from(offset).map_err(|_| ArtifactError::TooLarge { what: "the artifact" })?,
                length: u64::try_from(section.bytes.len())
                    .map_err(|_| ArtifactError::TooLarge { what: "the artifact" })?,
                record_size: section.record_size,
                record_count: section.record_count,
                digest: sha256(&section.bytes),
            });
        }
        let content_length = end;

        let mut header = Header {
            magic: MAGIC,
            format_version: FORMAT_VERSION,
            abi_version: KERNEL_ABI_VERSION,
            header_size: HEADER_SIZE as u32,
            section_count,
            flags: 0,
            reserved0: 0,
            revision: self.meta.revision,
            created_unix: self.meta.created_unix.unwrap_or(0),
            source_digest: self.meta.source_digest,
            content_digest: [0; 32],
            content_length: u64::try_from(content_length).map_err(|_| too_large)?,
            policy_name,
            compiler_version,
            reserved: [0; 40],
        };

        let mut out = Vec::with_capacity(content_length);
        out.extend_from_slice(header.as_bytes());
        for entry in &entries {
            out.extend_from_slice(entry.as_bytes());
        }
        for (section, entry) in self.sections.iter().zip(&entries) {
            // Offsets were computed from the same lengths: this only pads.
            let offset = usize::try_from(entry.offset).unwrap_or(out.len());
            out.resize(offset, 0);
            out.extend_from_slice(&section.bytes);
        }
        header.content_digest = content_digest(&out);
        if let Some(head) = out.get_mut(..HEADER_SIZE) {
            head.copy_from_slice(header.as_bytes());
        }
        Ok(out)
    }
}

/// `n` rounded up to a multiple of [`SECTION_ALIGN`].
fn align_up(n: usize) -> Option<usize> {
    Some(n.checked_add(SECTION_ALIGN - 1)? / SECTION_ALIGN * SECTION_ALIGN)
}

/// `text` as a NUL-padded field of `N` bytes.
fn encode_text<const N: usize>(field: &'static str, text: &str) -> Result<[u8; N], ArtifactError> {
    if text.len() > N {
        return Err(ArtifactError::TextTooLong { field, len: text.len(), capacity: N });
    }
    if text.contains('\0') {
        return Err(ArtifactError::TextHasNul { field });
    }
    let mut out = [0; N];
    for (slot, byte) in out.iter_mut().zip(text.bytes()) {
        *slot = byte;
    }
    Ok(out)
}
