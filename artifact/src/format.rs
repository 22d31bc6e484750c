//! The fixed-layout records of the container: the header, the section table
//! entries and the signature blocks, with the constants that describe them.
//!
//! Every struct here is `#[repr(C)]` with explicit padding (none is implicit:
//! `IntoBytes` would not derive otherwise) and compile-time assertions of its
//! size and of every field's offset, so the layout written in the crate
//! documentation and in `docs/artifact-format.md` is the layout compiled.

use core::mem::{offset_of, size_of};
use std::fmt;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

// The records are handed to the kernel as they are stored, and the kernel
// reads them in the host's byte order: the format is little-endian, so only
// little-endian hosts can use it.
#[cfg(not(target_endian = "little"))]
compile_error!("the d4c artifact format is little-endian; big-endian hosts are not supported");

/// The first eight bytes of every artifact.
pub const MAGIC: [u8; 8] = *b"D4CPOLCY";

/// The version of the container layout this crate writes and reads.
///
/// Any change to the header, the section table or the signature blocks bumps
/// it; a reader refuses every other version.
pub const FORMAT_VERSION: u32 = 1;

/// The version of the layout of the decision-table records (the sections
/// other than the container's own): the records the kernel programs read.
///
/// The runtime refuses an artifact whose ABI version differs from its own.
/// 3: process selectors carry user conditions (the metadata's
/// `SelectorMeta::user`), read by the runtime to fill user rows.
pub const KERNEL_ABI_VERSION: u32 = 3;

/// Every section starts at a multiple of this many bytes from the start of
/// the file, so that a memory-mapped (page-aligned) artifact gives aligned
/// record slices for any record type aligned to at most 64 bytes.
pub const SECTION_ALIGN: usize = 64;

/// The size of [`Header`] in bytes (the value of its `header_size` field).
pub const HEADER_SIZE: usize = 256;

/// The size of one [`SectionEntry`] in bytes.
pub const SECTION_ENTRY_SIZE: usize = 64;

/// The size of one [`SignatureBlock`] in bytes.
pub const SIGNATURE_BLOCK_SIZE: usize = 88;

/// The first eight bytes of every signature block.
pub const SIGNATURE_MAGIC: [u8; 8] = *b"D4CSIG01";

/// The capacity of [`Header::policy_name`] in bytes (UTF-8, NUL padded).
pub const POLICY_NAME_CAPACITY: usize = 64;

/// The capacity of [`Header::compiler_version`] in bytes (UTF-8, NUL padded).
pub const COMPILER_VERSION_CAPACITY: usize = 32;

/// The header at offset 0 of every artifact.
///
/// All integers are little-endian. `reserved*` fields and `flags` are zero in
/// format version 1; a reader refuses anything else. Text fields are UTF-8,
/// padded with NUL bytes to their capacity (a name that fills the field has
/// no NUL).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// [`KERNEL_ABI_VERSION`] of the writer: the layout of the table records.
    pub abi_version: u32,
    /// The size of this header, [`HEADER_SIZE`]; the section table follows it.
    pub header_size: u32,
    /// The number of entries in the section table.
    pub section_count: u32,
    /// Header flags. None is defined: zero.
    pub flags: u32,
    /// Zero.
    pub reserved0: u32,
    /// The policy's revision, as the compiler was given it.
    pub revision: u64,
    /// When the artifact was written, in seconds since the Unix epoch; 0
    /// unless the writer was given a time (so that builds are reproducible).
    pub created_unix: u64,
    /// SHA-256 of the policy source bytes the artifact was compiled from.
    pub source_digest: [u8; 32],
    /// SHA-256 of the content area (`[0, content_length)`), computed with
    /// this field set to zeros.
    pub content_digest: [u8; 32],
    /// The size of the content area: from byte 0 to the end of the section
    /// that ends last (or of the section table if there is no section).
    /// Signature blocks, if any, start here.
    pub content_length: u64,
    /// The policy's name: UTF-8, NUL padded.
    pub policy_name: [u8; POLICY_NAME_CAPACITY],
    /// The version of the compiler that wrote the artifact: UTF-8, NUL padded.
    pub compiler_version: [u8; COMPILER_VERSION_CAPACITY],
    /// Zero.
    pub reserved: [u8; 40],
}

/// One entry of the section table, which starts right after the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct SectionEntry {
    /// The section's kind (see [`SectionKind`]); never 0; unique in a table.
    pub kind: u32,
    /// [`SectionFlags`] bits.
    pub flags: u32,
    /// Where the section starts, from the start of the file; a multiple of
    /// [`SECTION_ALIGN`], after the section table.
    pub offset: u64,
    /// The section's size in bytes.
    pub length: u64,
    /// The size of one record, or 0 for an opaque blob (for example postcard).
    pub record_size: u32,
    /// The number of records (0 for a blob); `length == record_size *
    /// record_count` when `record_size` is not 0.
    pub record_count: u32,
    /// SHA-256 of the section's bytes.
    pub digest: [u8; 32],
}

/// One signature, after the content area. Zero or more follow each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct SignatureBlock {
    /// [`SIGNATURE_MAGIC`].
    pub magic: [u8; 8],
    /// The first 8 bytes of SHA-256 of the signer's 32-byte public key (see
    /// [`crate::keys::key_id`]); unique among an artifact's blocks.
    pub key_id: [u8; 8],
    /// Zero.
    pub reserved: [u8; 8],
    /// Ed25519 signature of the content area, bytes `[0, content_length)`.
    pub signature: [u8; 64],
}

const _: () = {
    assert!(size_of::<Header>() == HEADER_SIZE);
    assert!(offset_of!(Header, magic) == 0);
    assert!(offset_of!(Header, format_version) == 8);
    assert!(offset_of!(Header, abi_version) == 12);
    assert!(offset_of!(Header, header_size) == 16);
    assert!(offset_of!(Header, section_count) == 20);
    assert!(offset_of!(Header, flags) == 24);
    assert!(offset_of!(Header, reserved0) == 28);
    assert!(offset_of!(Header, revision) == 32);
    assert!(offset_of!(Header, created_unix) == 40);
    assert!(offset_of!(Header, source_digest) == 48);
    assert!(offset_of!(Header, content_digest) == 80);
    assert!(offset_of!(Header, content_length) == 112);
    assert!(offset_of!(Header, policy_name) == 120);
    assert!(offset_of!(Header, compiler_version) == 184);
    assert!(offset_of!(Header, reserved) == 216);

    assert!(size_of::<SectionEntry>() == SECTION_ENTRY_SIZE);
    assert!(offset_of!(SectionEntry, kind) == 0);
    assert!(offset_of!(SectionEntry, flags) == 4);
    assert!(offset_of!(SectionEntry, offset) == 8);
    assert!(offset_of!(SectionEntry, length) == 16);
    assert!(offset_of!(SectionEntry, record_size) == 24);
    assert!(offset_of!(SectionEntry, record_count) == 28);
    assert!(offset_of!(SectionEntry, digest) == 32);

    assert!(size_of::<SignatureBlock>() == SIGNATURE_BLOCK_SIZE);
    assert!(offset_of!(SignatureBlock, magic) == 0);
    assert!(offset_of!(SignatureBlock, key_id) == 8);
    assert!(offset_of!(SignatureBlock, reserved) == 16);
    assert!(offset_of!(SignatureBlock, signature) == 24);
    // Signature blocks hold bytes only, so they can be viewed in place
    // wherever the content ends.
    assert!(core::mem::align_of::<SignatureBlock>() == 1);

    // The section table ends on a section boundary whatever its length.
    assert!(HEADER_SIZE.is_multiple_of(SECTION_ALIGN));
    assert!(SECTION_ENTRY_SIZE.is_multiple_of(SECTION_ALIGN));
};

/// Byte range of [`Header::content_digest`], zeroed when the content digest
/// is computed.
pub(crate) const CONTENT_DIGEST_RANGE: core::ops::Range<usize> =
    offset_of!(Header, content_digest)..offset_of!(Header, content_digest) + 32;

/// What a section holds. Kinds are unique within an artifact; 0 is not a kind.
///
/// This crate defines only [`SectionKind::META`]; the decision-table kinds
/// and their names are in [`crate::tables`] (`tables::SECTION_NAMES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SectionKind(pub u32);

impl SectionKind {
    /// The policy's metadata, an opaque blob.
    pub const META: SectionKind = SectionKind(1);

    /// The kind's name, if this build knows the kind.
    pub fn name(self) -> Option<&'static str> {
        crate::section_name(self.0)
    }

    /// Whether this build knows the kind (it has a name).
    pub fn is_known(self) -> bool {
        self.name().is_some()
    }
}

impl fmt::Display for SectionKind {
    /// The kind's name in backticks, or `kind N` for a kind this build does
    /// not know.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "`{name}`"),
            None => write!(f, "kind {}", self.0),
        }
    }
}

/// The flags of a section table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SectionFlags(pub u32);

impl SectionFlags {
    /// No flag: the section is required.
    pub const NONE: SectionFlags = SectionFlags(0);
    /// Bit 0: a reader that does not know the section's kind may ignore the
    /// section. A section of an unknown kind without it makes the reader
    /// refuse the artifact.
    pub const OPTIONAL: SectionFlags = SectionFlags(1);
    /// Every bit defined in format version 1; the others must be zero.
    pub const KNOWN_BITS: u32 = 1;

    /// Whether every bit of `other` is set in `self`.
    pub fn contains(self, other: SectionFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The bits that format version 1 does not define.
    pub fn unknown_bits(self) -> u32 {
        self.0 & !Self::KNOWN_BITS
    }
}
