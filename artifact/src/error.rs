//! Everything that can be wrong with an artifact, a writer's input or a key.
//!
//! Messages follow the house style: lowercase, no final period, what is
//! wrong and where (byte offsets, the section by its position in the table
//! and its kind's name), never a Rust type name.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::format::{SectionKind, FORMAT_VERSION, KERNEL_ABI_VERSION, MAGIC, SECTION_ALIGN, SIGNATURE_BLOCK_SIZE};
use crate::to_hex;

/// A section as messages name it: its position in the section table
/// (counted from 0) and its kind, e.g. "section 3 (`file-path-edges`)" or
/// "section 4 (kind 77)" for a kind this build does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionLabel {
    /// Position in the section table (for the writer: in insertion order).
    pub index: usize,
    /// The section's kind.
    pub kind: SectionKind,
}

impl fmt::Display for SectionLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "section {} ({})", self.index, self.kind)
    }
}

/// Why an artifact, a writer's input or a key was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum ArtifactError {
    /// The file does not start with [`MAGIC`].
    NotAnArtifact,
    /// The file ends before something it must hold.
    Truncated {
        /// What is cut: "the header", "the section table", "the content".
        what: &'static str,
        /// How many bytes from the start of the file it needs.
        needed: u64,
        /// How many bytes the file has.
        have: u64,
    },
    /// The container layout is of another version than [`FORMAT_VERSION`].
    FormatVersion {
        /// The version in the header.
        found: u32,
    },
    /// The table records are of another version than [`KERNEL_ABI_VERSION`].
    AbiVersion {
        /// The version in the header.
        found: u32,
    },
    /// `header_size` is not the size of the header of this format version.
    HeaderSize {
        /// The size in the header.
        found: u32,
    },
    /// A header field that must be zero is not.
    NonZeroField {
        /// The field's name.
        field: &'static str,
    },
    /// A text field of the header is not NUL-padded UTF-8.
    BadText {
        /// The field, as words: "policy name", "compiler version".
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// `content_length` is less than the header and section table.
    ContentTooShort {
        /// `content_length` from the header.
        content_length: u64,
        /// Where the section table ends.
        table_end: u64,
    },
    /// `content_length` is not where the sections end.
    ContentEnd {
        /// `content_length` from the header.
        content_length: u64,
        /// Where the section that ends last ends (or the section table).
        sections_end: u64,
    },
    /// The bytes after the content are not a whole number of signature blocks.
    TrailingBytes {
        /// Where the content ends.
        offset: u64,
        /// How many bytes follow it.
        count: u64,
    },
    /// A section table entry has kind 0.
    ZeroKind {
        /// Position of the entry in the table.
        index: usize,
    },
    /// A section has flag bits that format version 1 does not define.
    UnknownSectionFlags {
        /// The section.
        section: SectionLabel,
        /// The undefined bits that are set.
        bits: u32,
    },
    /// A section of a kind this build does not know is not marked optional.
    UnknownRequiredSection {
        /// The section.
        section: SectionLabel,
    },
    /// Two sections have the same kind.
    DuplicateSection {
        /// The second of the two.
        section: SectionLabel,
        /// The position of the first.
        first: usize,
    },
    /// `length != record_size * record_count`, or a blob claims records.
    RecordLayout {
        /// The section.
        section: SectionLabel,
        /// `record_size` from its entry.
        record_size: u32,
        /// `record_count` from its entry.
        record_count: u32,
        /// `length` from its entry.
        length: u64,
    },
    /// The writer was given records whose bytes are not a whole number of
    /// records, or more records than the format counts.
    PartialRecord {
        /// The section.
        section: SectionLabel,
        /// The size of the bytes given.
        length: u64,
        /// The record size given.
        record_size: u32,
    },
    /// A section does not start at a multiple of [`SECTION_ALIGN`].
    SectionMisaligned {
        /// The section.
        section: SectionLabel,
        /// Its offset.
        offset: u64,
    },
    /// A section starts inside the header or the section table.
    SectionInTable {
        /// The section.
        section: SectionLabel,
        /// Its offset.
        offset: u64,
        /// Where the section table ends.
        table_end: u64,
    },
    /// A section extends past the end of the content.
    SectionOutOfBounds {
        /// The section.
        section: SectionLabel,
        /// Its offset.
        offset: u64,
        /// Its length.
        length: u64,
        /// `content_length` from the header.
        content_length: u64,
    },
    /// Two sections share bytes.
    SectionOverlap {
        /// The section that starts later.
        section: SectionLabel,
        /// The section it overlaps.
        other: SectionLabel,
    },
    /// A section's bytes do not have the digest in its entry.
    SectionDigest {
        /// The section.
        section: SectionLabel,
    },
    /// The content area does not have the digest in the header.
    ContentDigest,
    /// A signature block is malformed.
    BadSignatureBlock {
        /// Position among the signature blocks, from 0.
        index: usize,
        /// Where it starts in the file.
        offset: u64,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Two signature blocks have the same key id.
    DuplicateSignature {
        /// The key id.
        key_id: [u8; 8],
    },
    /// No signature block has the key id of the key asked for.
    NoSignature {
        /// The key id asked for.
        key_id: [u8; 8],
    },
    /// The signature block of the key does not verify.
    BadSignature {
        /// The key id.
        key_id: [u8; 8],
    },
    /// Records were asked of a section in a type of another size, or of an
    /// opaque blob.
    RecordSize {
        /// The section.
        section: SectionLabel,
        /// `record_size` from its entry (0: a blob).
        record_size: u32,
        /// The size of the type asked for.
        type_size: usize,
    },
    /// Records were asked of a section whose bytes, in memory, are not
    /// aligned for the record type (the artifact was read into a buffer at
    /// an odd address).
    Unaligned {
        /// The section.
        section: SectionLabel,
        /// The alignment the record type needs.
        align: usize,
    },
    /// A text for the header does not fit its field.
    TextTooLong {
        /// The field, as words.
        field: &'static str,
        /// The text's size in bytes.
        len: usize,
        /// The field's capacity in bytes.
        capacity: usize,
    },
    /// A text for the header contains a NUL byte (NUL is the padding).
    TextHasNul {
        /// The field, as words.
        field: &'static str,
    },
    /// A size does not fit the format's integer fields.
    TooLarge {
        /// What is too large.
        what: &'static str,
    },
    /// A key could not be read.
    Key {
        /// Which key: "the secret key", "the public key".
        what: &'static str,
        /// The decoder's explanation.
        detail: String,
    },
    /// The operating system gave no random bytes.
    Random {
        /// Its explanation.
        detail: String,
    },
    /// A key file could not be read or written.
    Io {
        /// "read", "create", "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl fmt::Display for ArtifactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ArtifactError as E;
        match self {
            E::NotAnArtifact => {
                let magic = String::from_utf8_lossy(&MAGIC);
                write!(f, "not a d4c artifact: the file does not start with `{magic}`")
            }
            E::Truncated { what, needed, have } => {
                write!(f, "the artifact is truncated: {what} needs {needed} bytes, the file has {have}")
            }
            E::FormatVersion { found } => {
                write!(f, "artifact format version {found}, this reader supports {FORMAT_VERSION}")
            }
            E::AbiVersion { found } => {
                write!(f, "kernel ABI version {found}, this runtime supports {KERNEL_ABI_VERSION}")
            }
            E::HeaderSize { found } => write!(
                f,
                "the header says it is {found} bytes, but format version {FORMAT_VERSION} has {} bytes",
                crate::format::HEADER_SIZE
            ),
            E::NonZeroField { field } => write!(f, "the header field `{field}` is not zero"),
            E::BadText { field, problem } => write!(f, "the {field} in the header {problem}"),
            E::ContentTooShort { content_length, table_end } => write!(
                f,
                "the header says the content is {content_length} bytes, \
                 less than the header and section table ({table_end} bytes)"
            ),
            E::ContentEnd { content_length, sections_end } => write!(
                f,
                "the header says the content ends at byte {content_length}, but the sections end at byte {sections_end}"
            ),
            E::TrailingBytes { offset, count } => write!(
                f,
                "the {count} bytes after the content (from byte {offset}) are not whole \
                 {SIGNATURE_BLOCK_SIZE}-byte signature blocks: the file is truncated or has trailing garbage"
            ),
            E::ZeroKind { index } => write!(f, "section {index} has kind 0, which is not a kind"),
            E::UnknownSectionFlags { section, bits } => {
                write!(f, "{section} has flags that this format version does not define: {bits:#x}")
            }
            E::UnknownRequiredSection { section } => write!(
                f,
                "{section} is required, but this reader does not know its kind \
                 (was the artifact written by a newer compiler?)"
            ),
            E::DuplicateSection { section, first } => {
                write!(f, "{section} has the same kind as section {first}")
            }
            E::RecordLayout { section, record_size: 0, record_count, .. } => {
                write!(f, "{section} is an opaque blob (record size 0) but counts {record_count} records")
            }
            E::RecordLayout { section, record_size, record_count, length } => {
                let product = u64::from(*record_size) * u64::from(*record_count);
                write!(
                    f,
                    "{section} is {length} bytes, but {record_count} records of {record_size} bytes make {product}"
                )
            }
            E::PartialRecord { section, length, record_size } => write!(
                f,
                "{section} is {length} bytes, which is not a whole number (below 2^32) of {record_size}-byte records"
            ),
            E::SectionMisaligned { section, offset } => {
                write!(f, "{section} starts at byte {offset}, which is not a multiple of {SECTION_ALIGN}")
            }
            E::SectionInTable { section, offset, table_end } => write!(
                f,
                "{section} starts at byte {offset}, inside the header and section table (bytes 0..{table_end})"
            ),
            E::SectionOutOfBounds { section, offset, length, content_length } => write!(
                f,
                "{section} (bytes {offset}..{}) extends past the end of the content at byte {content_length}",
                u128::from(*offset) + u128::from(*length)
            ),
            E::SectionOverlap { section, other } => write!(f, "{section} overlaps {other}"),
            E::SectionDigest { section } => {
                write!(f, "{section} digest mismatch: the artifact was altered after it was written")
            }
            E::ContentDigest => {
                write!(f, "content digest mismatch: the artifact was altered after it was written")
            }
            E::BadSignatureBlock { index, offset, problem } => {
                write!(f, "signature block {index} (at byte {offset}) {problem}")
            }
            E::DuplicateSignature { key_id } => {
                write!(f, "two signature blocks are by key {}", to_hex(key_id))
            }
            E::NoSignature { key_id } => write!(f, "no signature by key {}", to_hex(key_id)),
            E::BadSignature { key_id } => write!(
                f,
                "the signature by key {} does not verify: the artifact was altered after it was signed",
                to_hex(key_id)
            ),
            E::RecordSize { section, record_size: 0, .. } => {
                write!(f, "{section} is an opaque blob, not a table of records")
            }
            E::RecordSize { section, record_size, type_size } => {
                write!(f, "{section} holds {record_size}-byte records, not {type_size}-byte ones")
            }
            E::Unaligned { section, align } => write!(
                f,
                "{section} is not aligned to {align} bytes in memory: read the artifact into a \
                 memory map or through `aligned_copy`"
            ),
            E::TextTooLong { field, len, capacity } => {
                write!(f, "the {field} is {len} bytes, but at most {capacity} fit in the header")
            }
            E::TextHasNul { field } => write!(f, "the {field} contains a NUL byte"),
            E::TooLarge { what } => write!(f, "{what} is too large for the artifact format"),
            E::Key { what, detail } => write!(f, "{what} is not a usable Ed25519 key: {detail}"),
            E::Random { detail } => {
                write!(f, "cannot get random bytes from the operating system: {detail}")
            }
            E::Io { action, path, source } => write!(f, "cannot {action} `{}`: {source}", path.display()),
        }
    }
}

impl std::error::Error for ArtifactError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ArtifactError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The messages of malformed signature blocks.
pub(crate) const SIGNATURE_BAD_MAGIC: &str = "does not start with `D4CSIG01`";
pub(crate) const SIGNATURE_RESERVED: &str = "has reserved bytes that are not zero";
