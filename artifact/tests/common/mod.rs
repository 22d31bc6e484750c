//! Shared by the integration tests: a sample artifact, and helpers to edit
//! raw artifacts (and re-seal their digests, so that a crafted fault is the
//! only fault).
#![allow(dead_code)]

use std::path::PathBuf;

use d4c_artifact::{
    sha256, ArtifactWriter, Header, SectionEntry, SectionFlags, SectionKind, SigningKey, WriterMeta, HEADER_SIZE,
    SECTION_ENTRY_SIZE,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A record like the decision tables hold: 16 bytes, 8-byte aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct Edge {
    pub next: u64,
    pub byte: u32,
    pub flags: u32,
}

/// Kinds unknown to this build, present as optional sections.
pub const EDGES: SectionKind = SectionKind(0x7000_0001);
pub const WORDS: SectionKind = SectionKind(0x7000_0002);
pub const EMPTY: SectionKind = SectionKind(0x7000_0003);
/// A kind unknown to this build, never optional in the tests.
pub const UNKNOWN: SectionKind = SectionKind(0x7fff_fff0);

pub fn meta() -> WriterMeta {
    WriterMeta {
        policy_name: "nginx-hardening".to_string(),
        compiler_version: "d4cc 0.1.0".to_string(),
        revision: 42,
        created_unix: None,
        source_digest: sha256(b"selectors: []\n"),
    }
}

pub fn edges() -> Vec<Edge> {
    (0..5u32).map(|i| Edge { next: u64::from(i) * 1000 + 7, byte: i + u32::from(b'a'), flags: i % 2 }).collect()
}

pub fn meta_blob() -> Vec<u8> {
    b"a postcard blob of 37 bytes, unaligned".to_vec()
}

pub fn words() -> Vec<u64> {
    vec![u64::MAX, 1, 0x0102_0304_0506_0708]
}

/// Four sections: a blob of odd length (so the next one is padded), records
/// of two sizes, and an empty table.
pub fn writer() -> ArtifactWriter {
    let mut w = ArtifactWriter::new(meta());
    w.add_section(SectionKind::META, SectionFlags::NONE, 0, meta_blob()).unwrap();
    w.add_section(EDGES, SectionFlags::OPTIONAL, 16, edges().as_bytes().to_vec()).unwrap();
    w.add_section(WORDS, SectionFlags::OPTIONAL, 8, words().as_bytes().to_vec()).unwrap();
    w.add_section(EMPTY, SectionFlags::OPTIONAL, 4, Vec::new()).unwrap();
    w
}

pub fn sample() -> Vec<u8> {
    writer().finish().unwrap()
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The committed test key (made by `openssl genpkey -algorithm ed25519`).
pub fn fixture_key() -> SigningKey {
    d4c_artifact::keys::read_secret_key(&fixtures().join("test-signing-key.pem")).unwrap()
}

/// A second, fixed key.
pub fn other_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

pub fn header(bytes: &[u8]) -> Header {
    Header::read_from_prefix(bytes).unwrap().0
}

pub fn set_header(bytes: &mut [u8], header: &Header) {
    bytes[..HEADER_SIZE].copy_from_slice(header.as_bytes());
}

pub fn entry(bytes: &[u8], index: usize) -> SectionEntry {
    let at = HEADER_SIZE + index * SECTION_ENTRY_SIZE;
    SectionEntry::read_from_bytes(&bytes[at..at + SECTION_ENTRY_SIZE]).unwrap()
}

pub fn set_entry(bytes: &mut [u8], index: usize, entry: &SectionEntry) {
    let at = HEADER_SIZE + index * SECTION_ENTRY_SIZE;
    bytes[at..at + SECTION_ENTRY_SIZE].copy_from_slice(entry.as_bytes());
}

/// Edits entry `index` and re-seals.
pub fn edit_entry(bytes: &mut [u8], index: usize, edit: impl FnOnce(&mut SectionEntry)) {
    let mut e = entry(bytes, index);
    edit(&mut e);
    set_entry(bytes, index, &e);
    reseal(bytes);
}

/// Edits the header and re-seals.
pub fn edit_header(bytes: &mut [u8], edit: impl FnOnce(&mut Header)) {
    let mut h = header(bytes);
    edit(&mut h);
    set_header(bytes, &h);
    reseal(bytes);
}

/// Recomputes every in-bounds section digest, then the content digest, as a
/// writer would have: afterwards only structural faults remain.
pub fn reseal(bytes: &mut [u8]) {
    if bytes.len() < HEADER_SIZE {
        return;
    }
    let mut h = header(bytes);
    let count = h.section_count as usize;
    for i in 0..count {
        if HEADER_SIZE + (i + 1) * SECTION_ENTRY_SIZE > bytes.len() {
            break;
        }
        let mut e = entry(bytes, i);
        let (start, end) = (e.offset as usize, e.offset.saturating_add(e.length) as usize);
        if start <= end && end <= bytes.len() {
            e.digest = sha256(&bytes[start..end]);
            set_entry(bytes, i, &e);
        }
    }
    let end = h.content_length as usize;
    if end <= bytes.len() && end >= HEADER_SIZE {
        h.content_digest = [0; 32];
        set_header(bytes, &h);
        h.content_digest = sha256(&bytes[..end]);
        set_header(bytes, &h);
    }
}
