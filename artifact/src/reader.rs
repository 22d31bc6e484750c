//! The reader: artifact bytes in, a checked view of them out.
//!
//! [`Artifact::parse`] checks everything the format says before it returns:
//! after it, every section is in bounds, aligned, of a consistent record
//! layout and of the digest its entry gives, and the content is of the
//! digest the header gives. It never panics and allocates only in
//! proportion to the section count of a table that fits in the input.

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, VerifyingKey};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::error::{ArtifactError, SectionLabel, SIGNATURE_BAD_MAGIC, SIGNATURE_RESERVED};
use crate::format::{
    Header, SectionEntry, SectionFlags, SectionKind, SignatureBlock, FORMAT_VERSION, HEADER_SIZE, KERNEL_ABI_VERSION,
    MAGIC, SECTION_ALIGN, SECTION_ENTRY_SIZE, SIGNATURE_BLOCK_SIZE, SIGNATURE_MAGIC,
};
use crate::keys::key_id;
use crate::{content_digest, sha256};

/// A checked artifact, borrowing the bytes it was parsed from.
#[derive(Clone, Debug)]
pub struct Artifact<'a> {
    bytes: &'a [u8],
    header: Header,
    policy_name_len: usize,
    compiler_version_len: usize,
    sections: Vec<SectionRef<'a>>,
    signatures: &'a [SignatureBlock],
}

/// One section of a checked artifact.
#[derive(Clone, Copy, Debug)]
pub struct SectionRef<'a> {
    index: usize,
    entry: SectionEntry,
    bytes: &'a [u8],
}

impl<'a> Artifact<'a> {
    /// Checks `bytes` as an artifact; see the crate documentation for the
    /// list of checks. Signatures are checked for form only: see
    /// [`Artifact::verify_signature`].
    pub fn parse(bytes: &'a [u8]) -> Result<Artifact<'a>, ArtifactError> {
        let file_len = bytes.len() as u64;

        // The magic first, on whatever prefix there is, so that a short file
        // of something else is "not an artifact" rather than "truncated".
        let prefix = bytes.get(..MAGIC.len()).unwrap_or(bytes);
        if MAGIC.get(..prefix.len()) != Some(prefix) {
            return Err(ArtifactError::NotAnArtifact);
        }
        let (header, _) = Header::read_from_prefix(bytes).map_err(|_| ArtifactError::Truncated {
            what: "the header",
            needed: HEADER_SIZE as u64,
            have: file_len,
        })?;
        if header.format_version != FORMAT_VERSION {
            return Err(ArtifactError::FormatVersion { found: header.format_version });
        }
        if header.abi_version != KERNEL_ABI_VERSION {
            return Err(ArtifactError::AbiVersion { found: header.abi_version });
        }
        if header.header_size as usize != HEADER_SIZE {
            return Err(ArtifactError::HeaderSize { found: header.header_size });
        }
        for (field, zero) in [
            ("flags", header.flags == 0),
            ("reserved0", header.reserved0 == 0),
            ("reserved", header.reserved.iter().all(|&b| b == 0)),
        ] {
            if !zero {
                return Err(ArtifactError::NonZeroField { field });
            }
        }
        let policy_name_len = text_len("policy name", &header.policy_name)?;
        let compiler_version_len = text_len("compiler version", &header.compiler_version)?;

        // The section table, then the content's extent.
        let table_end = u64::from(header.section_count) * SECTION_ENTRY_SIZE as u64 + HEADER_SIZE as u64;
        if table_end > file_len {
            return Err(ArtifactError::Truncated { what: "the section table", needed: table_end, have: file_len });
        }
        let content_length = header.content_length;
        if content_length < table_end {
            return Err(ArtifactError::ContentTooShort { content_length, table_end });
        }
        if content_length > file_len {
            return Err(ArtifactError::Truncated { what: "the content", needed: content_length, have: file_len });
        }
        // Both now fit in `usize`: they are at most `bytes.len()`.
        let table_end_usize = table_end as usize;
        let content_end = content_length as usize;
        let trailing = file_len - content_length;
        if !trailing.is_multiple_of(SIGNATURE_BLOCK_SIZE as u64) {
            return Err(ArtifactError::TrailingBytes { offset: content_length, count: trailing });
        }

        let table = bytes.get(HEADER_SIZE..table_end_usize).unwrap_or_default();
        let mut sections = Vec::with_capacity(header.section_count as usize);
        let mut kinds: BTreeMap<u32, usize> = BTreeMap::new();
        for (index, raw) in table.chunks_exact(SECTION_ENTRY_SIZE).enumerate() {
            let entry = SectionEntry::read_from_bytes(raw).map_err(|_| ArtifactError::Truncated {
                what: "the section table",
                needed: table_end,
                have: file_len,
            })?;
            let kind = SectionKind(entry.kind);
            let section = SectionLabel { index, kind };
            if entry.kind == 0 {
                return Err(ArtifactError::ZeroKind { index });
            }
            let flags = SectionFlags(entry.flags);
            if flags.unknown_bits() != 0 {
                return Err(ArtifactError::UnknownSectionFlags { section, bits: flags.unknown_bits() });
            }
            if !kind.is_known() && !flags.contains(SectionFlags::OPTIONAL) {
                return Err(ArtifactError::UnknownRequiredSection { section });
            }
            if let Some(&first) = kinds.get(&entry.kind) {
                return Err(ArtifactError::DuplicateSection { section, first });
            }
            kinds.insert(entry.kind, index);
            let consistent = if entry.record_size == 0 {
                entry.record_count == 0
            } else {
                u64::from(entry.record_size) * u64::from(entry.record_count) == entry.length
            };
            if !consistent {
                return Err(ArtifactError::RecordLayout {
                    section,
                    record_size: entry.record_size,
                    record_count: entry.record_count,
                    length: entry.length,
                });
            }
            if entry.offset % SECTION_ALIGN as u64 != 0 {
                return Err(ArtifactError::SectionMisaligned { section, offset: entry.offset });
            }
            if entry.offset < table_end {
                return Err(ArtifactError::SectionInTable { section, offset: entry.offset, table_end });
            }
            let out_of_bounds = || ArtifactError::SectionOutOfBounds {
                section,
                offset: entry.offset,
                length: entry.length,
                content_length,
            };
            let end = entry.offset.checked_add(entry.length).filter(|&end| end <= content_length);
            let end = end.ok_or_else(out_of_bounds)?;
            // In bounds of the content, so within `bytes` and `usize`.
            let section_bytes = bytes.get(entry.offset as usize..end as usize).ok_or_else(out_of_bounds)?;
            sections.push(SectionRef { index, entry, bytes: section_bytes });
        }

        // Non-overlapping: sorted by offset, each non-empty section starts at
        // or after the furthest end so far. The furthest end is also where
        // the content must end.
        let mut by_offset: Vec<&SectionRef<'a>> = sections.iter().filter(|s| s.entry.length > 0).collect();
        by_offset.sort_by_key(|s| (s.entry.offset, s.index));
        let mut furthest: Option<&SectionRef<'a>> = None;
        for s in by_offset {
            if let Some(prev) = furthest {
                if s.entry.offset < prev.end() {
                    return Err(ArtifactError::SectionOverlap { section: s.label(), other: prev.label() });
                }
            }
            if furthest.is_none_or(|prev| s.end() > prev.end()) {
                furthest = Some(s);
            }
        }
        let sections_end = sections.iter().map(SectionRef::end).fold(table_end, u64::max);
        if sections_end != content_length {
            return Err(ArtifactError::ContentEnd { content_length, sections_end });
        }

        for s in &sections {
            if sha256(s.bytes) != s.entry.digest {
                return Err(ArtifactError::SectionDigest { section: s.label() });
            }
        }
        let content = bytes.get(..content_end).unwrap_or_default();
        if content_digest(content) != header.content_digest {
            return Err(ArtifactError::ContentDigest);
        }

        let tail = bytes.get(content_end..).unwrap_or_default();
        let signatures = <[SignatureBlock]>::ref_from_bytes(tail)
            .map_err(|_| ArtifactError::TrailingBytes { offset: content_length, count: trailing })?;
        let mut key_ids = BTreeMap::new();
        for (index, block) in signatures.iter().enumerate() {
            let offset = content_length + (index * SIGNATURE_BLOCK_SIZE) as u64;
            if block.magic != SIGNATURE_MAGIC {
                return Err(ArtifactError::BadSignatureBlock { index, offset, problem: SIGNATURE_BAD_MAGIC });
            }
            if block.reserved.iter().any(|&b| b != 0) {
                return Err(ArtifactError::BadSignatureBlock { index, offset, problem: SIGNATURE_RESERVED });
            }
            if key_ids.insert(block.key_id, index).is_some() {
                return Err(ArtifactError::DuplicateSignature { key_id: block.key_id });
            }
        }

        Ok(Artifact { bytes, header, policy_name_len, compiler_version_len, sections, signatures })
    }

    /// The header (a copy, so that it needs no alignment in the input).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The policy's name from the header.
    pub fn policy_name(&self) -> &str {
        checked_text(&self.header.policy_name, self.policy_name_len)
    }

    /// The compiler's version from the header.
    pub fn compiler_version(&self) -> &str {
        checked_text(&self.header.compiler_version, self.compiler_version_len)
    }

    /// The sections, in the order of the section table.
    pub fn sections(&self) -> impl ExactSizeIterator<Item = SectionRef<'a>> + '_ {
        self.sections.iter().copied()
    }

    /// The section of a kind, if there is one.
    pub fn section(&self, kind: SectionKind) -> Option<SectionRef<'a>> {
        self.sections.iter().find(|s| s.entry.kind == kind.0).copied()
    }

    /// The signature blocks, in file order (not verified: see
    /// [`Artifact::verify_signature`]).
    pub fn signatures(&self) -> &'a [SignatureBlock] {
        self.signatures
    }

    /// The content area: the bytes that signatures sign.
    pub fn content(&self) -> &'a [u8] {
        self.bytes.get(..self.content_len()).unwrap_or(self.bytes)
    }

    /// The whole input, signatures included.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Checks that the block of `key` (found by its key id) is a valid
    /// Ed25519 signature of the content by `key`. Uses strict verification
    /// (no malleable or small-order signatures).
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), ArtifactError> {
        let key_id = key_id(key);
        let block = self.signatures.iter().find(|b| b.key_id == key_id).ok_or(ArtifactError::NoSignature { key_id })?;
        let signature = Signature::from_bytes(&block.signature);
        key.verify_strict(self.content(), &signature).map_err(|_| ArtifactError::BadSignature { key_id })
    }

    /// The size of the content area in bytes.
    pub(crate) fn content_len(&self) -> usize {
        // Checked against the input's length by `parse`.
        self.header.content_length as usize
    }
}

impl<'a> SectionRef<'a> {
    /// Position in the section table, from 0.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The section's kind.
    pub fn kind(&self) -> SectionKind {
        SectionKind(self.entry.kind)
    }

    /// The kind's name, if this build knows the kind.
    pub fn name(&self) -> Option<&'static str> {
        self.kind().name()
    }

    /// The section's flags.
    pub fn flags(&self) -> SectionFlags {
        SectionFlags(self.entry.flags)
    }

    /// The table entry, as stored.
    pub fn entry(&self) -> &SectionEntry {
        &self.entry
    }

    /// The size of one record, 0 for an opaque blob.
    pub fn record_size(&self) -> u32 {
        self.entry.record_size
    }

    /// The number of records, 0 for an opaque blob.
    pub fn record_count(&self) -> u32 {
        self.entry.record_count
    }

    /// The section's bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The section's records as a slice of `T`, in place.
    ///
    /// Refused when `T` is not `record_size` bytes (or the section is a
    /// blob), and when the bytes are not aligned for `T` in memory. Sections
    /// are 64-byte aligned within the file, so they are aligned in memory
    /// when the file is: read it through a memory map (page aligned), or
    /// copy it with [`aligned_copy`]. A `Vec<u8>` from `std::fs::read` is in
    /// practice aligned to 8 or 16 bytes by the allocator, but nothing
    /// guarantees it.
    pub fn records<T: FromBytes + KnownLayout + Immutable>(&self) -> Result<&'a [T], ArtifactError> {
        let type_size = core::mem::size_of::<T>();
        if self.entry.record_size == 0 || self.entry.record_size as usize != type_size {
            return Err(ArtifactError::RecordSize {
                section: self.label(),
                record_size: self.entry.record_size,
                type_size,
            });
        }
        <[T]>::ref_from_bytes(self.bytes)
            .map_err(|_| ArtifactError::Unaligned { section: self.label(), align: core::mem::align_of::<T>() })
    }

    /// How messages name this section.
    pub fn label(&self) -> SectionLabel {
        SectionLabel { index: self.index, kind: self.kind() }
    }

    fn end(&self) -> u64 {
        // Checked not to overflow by `parse`.
        self.entry.offset.saturating_add(self.entry.length)
    }
}

/// A copy of some bytes at an address aligned to [`SECTION_ALIGN`] (64), so
/// that sections of an artifact parsed from it are aligned for any record
/// type. Dereferences to `[u8]`.
#[derive(Clone, Debug, Default)]
pub struct AlignedBytes {
    chunks: Vec<Chunk>,
    len: usize,
}

#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, align(64))]
struct Chunk([u8; SECTION_ALIGN]);

const _: () = assert!(core::mem::size_of::<Chunk>() == SECTION_ALIGN);

/// Copies `bytes` into a buffer aligned to 64 bytes, for callers whose
/// input may be at any address (a slice of a larger buffer, a `Vec<u8>`).
pub fn aligned_copy(bytes: &[u8]) -> AlignedBytes {
    let mut chunks = vec![Chunk([0; SECTION_ALIGN]); bytes.len().div_ceil(SECTION_ALIGN)];
    let dest = chunks.as_mut_slice().as_mut_bytes();
    for (d, s) in dest.iter_mut().zip(bytes) {
        *d = *s;
    }
    AlignedBytes { chunks, len: bytes.len() }
}

impl AlignedBytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        let all = self.chunks.as_slice().as_bytes();
        all.get(..self.len).unwrap_or(all)
    }
}

impl core::ops::Deref for AlignedBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for AlignedBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

/// The length of the text in a NUL-padded field, checking that it is UTF-8
/// and that only NULs follow it.
fn text_len(field: &'static str, raw: &[u8]) -> Result<usize, ArtifactError> {
    let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let (text, padding) = raw.split_at_checked(len).unwrap_or((raw, &[]));
    if padding.iter().any(|&b| b != 0) {
        return Err(ArtifactError::BadText { field, problem: "has bytes after its NUL padding" });
    }
    if std::str::from_utf8(text).is_err() {
        return Err(ArtifactError::BadText { field, problem: "is not UTF-8" });
    }
    Ok(len)
}

/// The text of a field checked by [`text_len`].
fn checked_text(raw: &[u8], len: usize) -> &str {
    raw.get(..len).and_then(|t| std::str::from_utf8(t).ok()).unwrap_or_default()
}
