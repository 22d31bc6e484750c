//! The d4c policy artifact (`*.d4c`): the versioned binary container of a
//! compiled policy, written by the compiler ([`ArtifactWriter`]) and read by
//! the runtime ([`Artifact::parse`]).
//!
//! In: sections of bytes (decision-table records laid out exactly as the
//! kernel's maps hold them, or opaque blobs). Out: one file whose sections
//! can be handed to the kernel as they are, without parsing. Only this crate
//! knows the container's byte layout; the layout of the records inside the
//! sections is in [`tables`].
//!
//! Invariants: the writer is deterministic (same input, same bytes; no time
//! unless given one); the reader checks everything before it returns a view
//! and never panics on any input; the content bytes never change once
//! written, so signing adds blocks after them and the content digest is
//! stable under signing.
//!
//! # Example
//!
//! ```
//! use d4c_artifact::{sha256, sign, Artifact, ArtifactWriter, SectionFlags, SectionKind, WriterMeta};
//! # fn main() -> Result<(), d4c_artifact::ArtifactError> {
//! let source = b"selectors: []\n";
//! let mut writer = ArtifactWriter::new(WriterMeta {
//!     policy_name: "web".into(),
//!     compiler_version: "d4cc 0.1.0".into(),
//!     revision: 3,
//!     created_unix: None,
//!     source_digest: sha256(source),
//! });
//! writer.add_section(SectionKind::META, SectionFlags::NONE, 0, b"postcard bytes".to_vec())?;
//! let bytes = writer.finish()?;
//!
//! let key = d4c_artifact::keys::generate()?;
//! let signed = sign(&bytes, &key)?;
//! let artifact = Artifact::parse(&signed)?;
//! artifact.verify_signature(&key.verifying_key())?;
//! assert_eq!(artifact.policy_name(), "web");
//! assert_eq!(artifact.content(), &bytes[..]);
//! # Ok(())
//! # }
//! ```
//!
//! # Format, version 1
//!
//! The same specification, with a worked example, is in
//! `docs/artifact-format.md`.
//!
//! Little-endian throughout (only little-endian hosts are supported: the
//! kernel reads the records in host order). Offsets are from the start of
//! the file.
//!
//! ```text
//! 0                 header (256 bytes)
//! 256               section table: section_count entries of 64 bytes
//! 256 + 64*count    sections, each at a multiple of 64, in table order when
//!                   written; zero padding between them
//! content_length    signature blocks of 88 bytes, zero or more, to the end
//! ```
//!
//! ## Header ([`Header`], 256 bytes)
//!
//! | offset | size | field | |
//! |---|---|---|---|
//! | 0 | 8 | `magic` | `D4CPOLCY` |
//! | 8 | 4 | `format_version` | [`FORMAT_VERSION`] (1): the container layout |
//! | 12 | 4 | `abi_version` | [`KERNEL_ABI_VERSION`] (2): the layout and meaning of the table records |
//! | 16 | 4 | `header_size` | 256 |
//! | 20 | 4 | `section_count` | entries in the section table |
//! | 24 | 4 | `flags` | 0 (none defined) |
//! | 28 | 4 | `reserved0` | 0 |
//! | 32 | 8 | `revision` | the policy's revision |
//! | 40 | 8 | `created_unix` | seconds since the epoch; 0 unless the writer was given a time |
//! | 48 | 32 | `source_digest` | SHA-256 of the policy source bytes |
//! | 80 | 32 | `content_digest` | SHA-256 of bytes `[0, content_length)` with this field zeroed |
//! | 112 | 8 | `content_length` | end of the content: of the section that ends last, or of the table |
//! | 120 | 64 | `policy_name` | UTF-8, NUL padded |
//! | 184 | 32 | `compiler_version` | UTF-8, NUL padded |
//! | 216 | 40 | `reserved` | 0 |
//!
//! ## Section table entry ([`SectionEntry`], 64 bytes)
//!
//! | offset | size | field | |
//! |---|---|---|---|
//! | 0 | 4 | `kind` | [`SectionKind`]; not 0; unique |
//! | 4 | 4 | `flags` | bit 0 [`SectionFlags::OPTIONAL`]; other bits 0 |
//! | 8 | 8 | `offset` | multiple of 64, at or after the end of the table |
//! | 16 | 8 | `length` | bytes |
//! | 24 | 4 | `record_size` | 0 for an opaque blob (e.g. postcard) |
//! | 28 | 4 | `record_count` | 0 for a blob; else `length == record_size * record_count` |
//! | 32 | 32 | `digest` | SHA-256 of the section's bytes |
//!
//! A reader refuses a section of a kind it does not know unless the section
//! is optional. Kinds and their names: [`SectionKind::META`] here, the
//! decision-table kinds in [`tables`] ([`section_name`]).
//!
//! ## Signature block ([`SignatureBlock`], 88 bytes)
//!
//! | offset | size | field | |
//! |---|---|---|---|
//! | 0 | 8 | `magic` | `D4CSIG01` |
//! | 8 | 8 | `key_id` | first 8 bytes of SHA-256 of the 32-byte Ed25519 public key; unique |
//! | 16 | 8 | `reserved` | 0 |
//! | 24 | 64 | `signature` | Ed25519 of bytes `[0, content_length)` |
//!
//! [`sign`] appends a block, or replaces the block of the same key.
//!
//! ## What the reader checks
//!
//! In this order, stopping at the first failure: the magic (on whatever
//! prefix there is), the header's size, the format version, the ABI
//! version, `header_size`, zero flags and reserved fields, the text fields
//! (UTF-8, then only NULs); the section table within the file,
//! `content_length` between the end of the table and the end of the file,
//! the bytes after it a whole number of signature blocks; for each entry in
//! table order: kind not 0, no undefined flag, kind known or the section
//! optional, kind not seen before, record layout, 64-byte alignment, start
//! at or after the table, end within the content; then no two sections
//! overlapping, `content_length` equal to where the sections end, each
//! section's digest, the content digest; last, each signature block's magic,
//! reserved bytes and key id (no two blocks of one key). Signatures
//! themselves are checked by [`Artifact::verify_signature`].
//!
//! ## Alignment in memory
//!
//! Sections are 64-byte aligned within the file. [`SectionRef::records`]
//! views a section as `&[T]` in place, which needs the section to be aligned
//! in memory too: pass `parse` a memory map (page aligned) or a buffer from
//! [`aligned_copy`]; it reports an error naming the section otherwise.
//! Everything else works on input at any address.

pub mod display;
mod error;
pub mod eval;
pub mod event;
mod format;
pub mod input;
pub mod keys;
pub mod net;
pub mod normalize;
pub mod ops;
pub mod patterns;
mod reader;
mod sign;
pub mod tables;
mod writer;

pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use error::{ArtifactError, SectionLabel};
pub use format::{
    Header, SectionEntry, SectionFlags, SectionKind, SignatureBlock, COMPILER_VERSION_CAPACITY, FORMAT_VERSION,
    HEADER_SIZE, KERNEL_ABI_VERSION, MAGIC, POLICY_NAME_CAPACITY, SECTION_ALIGN, SECTION_ENTRY_SIZE,
    SIGNATURE_BLOCK_SIZE, SIGNATURE_MAGIC,
};
pub use reader::{aligned_copy, AlignedBytes, Artifact, SectionRef};
pub use sign::sign;
pub use writer::{ArtifactWriter, WriterMeta};

use sha2::{Digest, Sha256};

/// The name of a section kind, if this build knows the kind: looked up in
/// [`tables::SECTION_NAMES`]. A reader refuses a required section of a kind
/// without a name.
pub fn section_name(kind: u32) -> Option<&'static str> {
    tables::SECTION_NAMES.iter().find(|(k, _)| *k == kind).map(|(_, name)| *name)
}

/// The largest policy revision: documents carry it as
/// `cloud_defend.package_policy_revision`, which the Defend for Containers
/// integration maps as a `short` (a larger value is a malformed field).
/// `d4cc compile` refuses a larger `--revision`, and `d4c-runtime` an
/// artifact that has one.
pub const MAX_REVISION: u64 = 32_767;

/// The largest artifact a d4c tool reads: 1 GiB. The largest policy lint
/// accepts (32 MiB of source) compiles to about 111 MB; a file past this
/// bound is refused before it is read.
pub const MAX_ARTIFACT_BYTES: u64 = 1 << 30;

/// The largest key file read: a PEM Ed25519 key is about 120 bytes.
pub const MAX_KEY_BYTES: u64 = 64 * 1024;

/// SHA-256 of `bytes` (the digest used everywhere in the format; also the
/// one the compiler puts in [`WriterMeta::source_digest`]).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Lowercase hexadecimal, for digests and key ids in messages.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        for nibble in [b >> 4, b & 0xf] {
            out.push(char::from(DIGITS.get(usize::from(nibble)).copied().unwrap_or(b'0')));
        }
    }
    out
}

/// The content digest of a content area: SHA-256 of it with the header's
/// `content_digest` field taken as zeros. `content` starts at byte 0 of
/// the artifact.
fn content_digest(content: &[u8]) -> [u8; 32] {
    let range = format::CONTENT_DIGEST_RANGE;
    let mut hasher = Sha256::new();
    hasher.update(content.get(..range.start).unwrap_or_default());
    hasher.update([0u8; 32]);
    hasher.update(content.get(range.end..).unwrap_or_default());
    hasher.finalize().into()
}
