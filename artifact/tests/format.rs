//! The writer and the reader: round trip, determinism, the golden artifact,
//! and every refusal of the reader and the writer.

// Test code: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use d4c_artifact::{
    aligned_copy, section_name, sha256, sign, Artifact, ArtifactError, ArtifactWriter, SectionFlags, SectionKind,
    WriterMeta, FORMAT_VERSION, HEADER_SIZE, KERNEL_ABI_VERSION, MAGIC, SECTION_ALIGN, SECTION_ENTRY_SIZE,
    SIGNATURE_BLOCK_SIZE,
};
use zerocopy::IntoBytes;

fn parse_err(bytes: &[u8]) -> ArtifactError {
    match Artifact::parse(bytes) {
        Ok(_) => panic!("parsed, but should have been refused"),
        Err(e) => e,
    }
}

#[test]
fn round_trip_every_field() {
    let bytes = sample();
    let a = Artifact::parse(&bytes).unwrap();
    let h = a.header();
    assert_eq!(h.magic, MAGIC);
    assert_eq!(h.format_version, FORMAT_VERSION);
    assert_eq!(h.abi_version, KERNEL_ABI_VERSION);
    assert_eq!(h.header_size as usize, HEADER_SIZE);
    assert_eq!(h.section_count, 4);
    assert_eq!(h.flags, 0);
    assert_eq!(h.revision, 42);
    assert_eq!(h.created_unix, 0);
    assert_eq!(h.source_digest, sha256(b"selectors: []\n"));
    assert_eq!(h.content_length as usize, bytes.len());
    assert_eq!(a.policy_name(), "nginx-hardening");
    assert_eq!(a.compiler_version(), "d4cc 0.1.0");
    assert_eq!(a.content(), &bytes[..]);
    assert_eq!(a.bytes(), &bytes[..]);
    assert!(a.signatures().is_empty());

    let sections: Vec<_> = a.sections().collect();
    let kinds: Vec<_> = sections.iter().map(|s| s.kind()).collect();
    assert_eq!(kinds, [SectionKind::META, EDGES, WORDS, EMPTY]);
    let flags: Vec<_> = sections.iter().map(|s| s.flags()).collect();
    assert_eq!(flags, [SectionFlags::NONE, SectionFlags::OPTIONAL, SectionFlags::OPTIONAL, SectionFlags::OPTIONAL]);
    for (i, s) in sections.iter().enumerate() {
        assert_eq!(s.index(), i);
        assert_eq!(s.entry().offset as usize % SECTION_ALIGN, 0);
        assert_eq!(s.entry().digest, sha256(s.bytes()));
        assert_eq!(s.entry().length as usize, s.bytes().len());
    }
    // Sections follow the table in order, each at the next aligned offset.
    let table_end = HEADER_SIZE + 4 * SECTION_ENTRY_SIZE;
    assert_eq!(sections[0].entry().offset as usize, table_end);
    assert_eq!(sections[1].entry().offset as usize, table_end + 64);

    let m = a.section(SectionKind::META).unwrap();
    assert_eq!(m.bytes(), &meta_blob()[..]);
    assert_eq!(m.name(), Some("meta"));
    assert_eq!((m.record_size(), m.record_count()), (0, 0));

    let e = a.section(EDGES).unwrap();
    assert_eq!((e.record_size(), e.record_count()), (16, 5));
    assert_eq!(e.name(), None);
    // `sample()` is a Vec: aligned in practice, and surely after a copy.
    let copy = aligned_copy(&bytes);
    let a2 = Artifact::parse(&copy).unwrap();
    assert_eq!(a2.section(EDGES).unwrap().records::<Edge>().unwrap(), &edges()[..]);
    assert_eq!(a2.section(WORDS).unwrap().records::<u64>().unwrap(), &words()[..]);
    assert_eq!(a2.section(EMPTY).unwrap().records::<u32>().unwrap(), &[] as &[u32]);
    assert!(a.section(UNKNOWN).is_none());

    // Padding between sections is zero.
    let end_meta = (m.entry().offset + m.entry().length) as usize;
    assert!(bytes[end_meta..e.entry().offset as usize].iter().all(|&b| b == 0));
}

#[test]
fn layout_sizes() {
    assert_eq!(HEADER_SIZE, 256);
    assert_eq!(SECTION_ENTRY_SIZE, 64);
    assert_eq!(SIGNATURE_BLOCK_SIZE, 88);
    assert_eq!(std::mem::size_of::<d4c_artifact::Header>(), 256);
}

#[test]
fn the_same_input_gives_the_same_bytes() {
    assert_eq!(sample(), sample());
    let mut reordered = ArtifactWriter::new(meta());
    reordered.add_section(EDGES, SectionFlags::OPTIONAL, 16, edges().as_bytes().to_vec()).unwrap();
    reordered.add_section(SectionKind::META, SectionFlags::NONE, 0, meta_blob()).unwrap();
    let reordered = reordered.finish().unwrap();
    assert_ne!(reordered, sample(), "sections are laid out in insertion order");
    let a = Artifact::parse(&reordered).unwrap();
    assert_eq!(a.sections().map(|s| s.kind()).collect::<Vec<_>>(), [EDGES, SectionKind::META]);
}

#[test]
fn created_unix_is_zero_unless_given() {
    let none = ArtifactWriter::new(WriterMeta { created_unix: None, ..meta() }).finish().unwrap();
    assert_eq!(Artifact::parse(&none).unwrap().header().created_unix, 0);
    let some = ArtifactWriter::new(WriterMeta { created_unix: Some(1_700_000_000), ..meta() }).finish().unwrap();
    assert_eq!(Artifact::parse(&some).unwrap().header().created_unix, 1_700_000_000);
}

#[test]
fn an_artifact_without_sections_is_its_header() {
    let bytes = ArtifactWriter::new(WriterMeta::default()).finish().unwrap();
    assert_eq!(bytes.len(), HEADER_SIZE);
    let a = Artifact::parse(&bytes).unwrap();
    assert_eq!(a.sections().count(), 0);
    assert_eq!(a.policy_name(), "");
}

#[test]
fn text_fields_fill_their_capacity() {
    let name = "n".repeat(64);
    let version = "v".repeat(32);
    let bytes =
        ArtifactWriter::new(WriterMeta { policy_name: name.clone(), compiler_version: version.clone(), ..meta() })
            .finish()
            .unwrap();
    let a = Artifact::parse(&bytes).unwrap();
    assert_eq!(a.policy_name(), name);
    assert_eq!(a.compiler_version(), version);
    let utf8 = ArtifactWriter::new(WriterMeta { policy_name: "é".repeat(32), ..meta() }).finish().unwrap();
    assert_eq!(Artifact::parse(&utf8).unwrap().policy_name(), "é".repeat(32));
}

/// The committed golden artifact: the sample, signed by the test key. A
/// format change shows up here as a failed test; after reviewing it, run
/// `D4C_UPDATE_GOLDEN=1 cargo test -p d4c-artifact --test format` and commit
/// the new file (and copy it to `fuzz/corpus/parse/`).
#[test]
fn golden_artifact() {
    let signed = sign(&sample(), &fixture_key()).unwrap();
    let path = fixtures().join("golden.d4c");
    if std::env::var_os("D4C_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &signed).unwrap();
    }
    let golden = std::fs::read(&path).unwrap();
    assert!(golden == signed, "the format changed: see the comment of this test to update {}", path.display());
    let a = Artifact::parse(&golden).unwrap();
    a.verify_signature(&fixture_key().verifying_key()).unwrap();
}

// ---- the writer's refusals ----

#[test]
fn writer_refuses_long_or_nul_texts() {
    let long = ArtifactWriter::new(WriterMeta { policy_name: "n".repeat(65), ..meta() }).finish().unwrap_err();
    assert_eq!(long.to_string(), "the policy name is 65 bytes, but at most 64 fit in the header");
    let long = ArtifactWriter::new(WriterMeta { compiler_version: "v".repeat(33), ..meta() }).finish().unwrap_err();
    assert_eq!(long.to_string(), "the compiler version is 33 bytes, but at most 32 fit in the header");
    let nul = ArtifactWriter::new(WriterMeta { policy_name: "a\0b".into(), ..meta() }).finish().unwrap_err();
    assert_eq!(nul.to_string(), "the policy name contains a NUL byte");
}

#[test]
fn writer_refuses_bad_sections() {
    let mut w = writer();
    let e = w.add_section(SectionKind(0), SectionFlags::NONE, 0, vec![]).unwrap_err();
    assert_eq!(e.to_string(), "section 4 has kind 0, which is not a kind");
    let e = w.add_section(EDGES, SectionFlags::OPTIONAL, 0, vec![]).unwrap_err();
    assert!(matches!(e, ArtifactError::DuplicateSection { first: 1, .. }), "{e}");
    assert_eq!(e.to_string(), "section 4 (kind 1879048193) has the same kind as section 1");
    let e = w.add_section(UNKNOWN, SectionFlags(2), 0, vec![]).unwrap_err();
    assert!(matches!(e, ArtifactError::UnknownSectionFlags { bits: 2, .. }), "{e}");
    let e = w.add_section(UNKNOWN, SectionFlags::NONE, 16, vec![0; 33]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "section 4 (kind 2147483632) is 33 bytes, which is not a whole number (below 2^32) of 16-byte records"
    );
    // Nothing was added by the refusals.
    let bytes = w.finish().unwrap();
    assert_eq!(Artifact::parse(&bytes).unwrap().sections().count(), 4);
}

// ---- the reader's refusals ----

#[test]
fn every_truncation_is_refused() {
    let bytes = sample();
    for len in 0..bytes.len() {
        let e = parse_err(&bytes[..len]);
        if len < HEADER_SIZE {
            assert!(matches!(e, ArtifactError::Truncated { what: "the header", .. }), "{len}: {e}");
        }
    }
    assert_eq!(
        parse_err(&bytes[..17]).to_string(),
        "the artifact is truncated: the header needs 256 bytes, the file has 17"
    );
    assert_eq!(
        parse_err(&bytes[..bytes.len() - 1]).to_string(),
        format!("the artifact is truncated: the content needs {} bytes, the file has {}", bytes.len(), bytes.len() - 1)
    );
}

#[test]
fn bad_magic() {
    let mut bytes = sample();
    bytes[3] = b'X';
    assert_eq!(parse_err(&bytes).to_string(), "not a d4c artifact: the file does not start with `D4CPOLCY`");
    assert!(matches!(parse_err(b"D4X"), ArtifactError::NotAnArtifact));
    assert!(matches!(parse_err(b"{\"json\": true}"), ArtifactError::NotAnArtifact));
    assert!(matches!(parse_err(b""), ArtifactError::Truncated { .. }));
}

#[test]
fn wrong_format_version() {
    let mut bytes = sample();
    edit_header(&mut bytes, |h| h.format_version = 2);
    assert_eq!(parse_err(&bytes).to_string(), "artifact format version 2, this reader supports 1");
}

#[test]
fn wrong_abi_version() {
    let mut bytes = sample();
    // Version 1 is the layout before subtree classes: its states' last
    // word was padding, which a version 2 reader would take for a class.
    edit_header(&mut bytes, |h| h.abi_version = 1);
    assert!(matches!(parse_err(&bytes), ArtifactError::AbiVersion { found: 1 }));
    assert_eq!(parse_err(&bytes).to_string(), "kernel ABI version 1, this runtime supports 3");
}

#[test]
fn wrong_header_size_flags_reserved() {
    let mut bytes = sample();
    edit_header(&mut bytes, |h| h.header_size = 320);
    assert_eq!(parse_err(&bytes).to_string(), "the header says it is 320 bytes, but format version 1 has 256 bytes");
    for (field, edit) in [
        ("flags", (|h| h.flags = 1) as fn(&mut d4c_artifact::Header)),
        ("reserved0", |h| h.reserved0 = 1),
        ("reserved", |h| h.reserved[39] = 1),
    ] {
        let mut bytes = sample();
        edit_header(&mut bytes, edit);
        assert_eq!(parse_err(&bytes).to_string(), format!("the header field `{field}` is not zero"));
    }
}

#[test]
fn bad_text_fields() {
    let mut bytes = sample();
    edit_header(&mut bytes, |h| h.policy_name[0] = 0xff);
    assert_eq!(parse_err(&bytes).to_string(), "the policy name in the header is not UTF-8");
    let mut bytes = sample();
    edit_header(&mut bytes, |h| h.compiler_version[31] = b'x');
    assert_eq!(parse_err(&bytes).to_string(), "the compiler version in the header has bytes after its NUL padding");
}

#[test]
fn each_section_digest() {
    let bytes = sample();
    let a = Artifact::parse(&bytes).unwrap();
    let mut checked = 0;
    for s in a.sections().filter(|s| s.entry().length > 0) {
        for at in [s.entry().offset, s.entry().offset + s.entry().length - 1] {
            let mut bad = bytes.clone();
            bad[at as usize] ^= 0x20;
            let e = parse_err(&bad);
            assert!(matches!(e, ArtifactError::SectionDigest { section } if section.index == s.index()), "{e}");
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
    let mut bad = bytes.clone();
    bad[a.section(SectionKind::META).unwrap().entry().offset as usize] ^= 1;
    assert_eq!(
        parse_err(&bad).to_string(),
        "section 0 (`meta`) digest mismatch: the artifact was altered after it was written"
    );
    // The digest in the entry rather than the bytes.
    let mut bad = bytes.clone();
    bad[HEADER_SIZE + SECTION_ENTRY_SIZE + 40] ^= 1;
    assert!(matches!(parse_err(&bad), ArtifactError::SectionDigest { section } if section.index == 1));
}

#[test]
fn content_digest() {
    let bytes = sample();
    // Header bytes no other check covers, a padding byte, the digest itself.
    let padding = {
        let m = entry(&bytes, 0);
        (m.offset + m.length) as usize
    };
    for at in [33, 41, 50, 80, 111, 120, 184, padding] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x01;
        let e = parse_err(&bad);
        assert!(matches!(e, ArtifactError::ContentDigest), "byte {at}: {e}");
    }
    let mut bad = bytes.clone();
    bad[32] ^= 1; // revision
    assert_eq!(parse_err(&bad).to_string(), "content digest mismatch: the artifact was altered after it was written");
}

#[test]
fn overlapping_sections() {
    let mut bytes = sample();
    let first = entry(&bytes, 1);
    // Section 2 (8-byte records) moved onto section 1.
    edit_entry(&mut bytes, 2, |e| e.offset = first.offset);
    let e = parse_err(&bytes);
    assert!(matches!(e, ArtifactError::SectionOverlap { section, other } if section.index == 2 && other.index == 1));
    assert_eq!(e.to_string(), "section 2 (kind 1879048194) overlaps section 1 (kind 1879048193)");
    // Listed out of order in the table but disjoint: accepted.
    let mut swapped = sample();
    let (e1, e2) = (entry(&swapped, 1), entry(&swapped, 2));
    set_entry(&mut swapped, 1, &e2);
    set_entry(&mut swapped, 2, &e1);
    reseal(&mut swapped);
    let a = Artifact::parse(&swapped).unwrap();
    assert_eq!(a.sections().map(|s| s.kind()).collect::<Vec<_>>(), [SectionKind::META, WORDS, EDGES, EMPTY]);
    // An empty section overlaps nothing, at the start of another section
    // (as the writer puts it) or inside it.
    let mut w = ArtifactWriter::new(meta());
    w.add_section(EMPTY, SectionFlags::OPTIONAL, 4, Vec::new()).unwrap();
    w.add_section(EDGES, SectionFlags::OPTIONAL, 16, edges().as_bytes().to_vec()).unwrap();
    let mut empty_inside = w.finish().unwrap();
    assert_eq!(entry(&empty_inside, 0).offset, entry(&empty_inside, 1).offset);
    Artifact::parse(&empty_inside).unwrap();
    edit_entry(&mut empty_inside, 0, |e| e.offset += 64);
    Artifact::parse(&empty_inside).unwrap();
}

#[test]
fn out_of_bounds_sections() {
    let bytes = sample();
    let len = bytes.len() as u64;
    let mut bad = bytes.clone();
    edit_entry(&mut bad, 0, |e| e.length = len);
    let e = parse_err(&bad);
    assert!(matches!(e, ArtifactError::SectionOutOfBounds { section, .. } if section.index == 0), "{e}");
    assert!(e.to_string().starts_with("section 0 (`meta`) (bytes 512.."), "{e}");
    assert!(e.to_string().ends_with(&format!("extends past the end of the content at byte {len}")), "{e}");
    // An offset and a length whose sum overflows.
    let mut bad = bytes.clone();
    edit_entry(&mut bad, 0, |e| {
        e.offset = u64::MAX - 63;
        e.length = 1000;
    });
    assert!(matches!(parse_err(&bad), ArtifactError::SectionOutOfBounds { .. }));
    // Inside the section table.
    let mut bad = bytes.clone();
    edit_entry(&mut bad, 0, |e| e.offset = 256);
    assert_eq!(
        parse_err(&bad).to_string(),
        "section 0 (`meta`) starts at byte 256, inside the header and section table (bytes 0..512)"
    );
}

#[test]
fn misaligned_sections() {
    let mut bytes = sample();
    edit_entry(&mut bytes, 1, |e| e.offset += 8);
    assert_eq!(
        parse_err(&bytes).to_string(),
        format!(
            "section 1 (kind 1879048193) starts at byte {}, which is not a multiple of 64",
            entry(&bytes, 1).offset
        )
    );
}

#[test]
fn record_layout() {
    let mut bytes = sample();
    edit_entry(&mut bytes, 1, |e| e.record_count = 4);
    assert_eq!(
        parse_err(&bytes).to_string(),
        "section 1 (kind 1879048193) is 80 bytes, but 4 records of 16 bytes make 64"
    );
    let mut bytes = sample();
    edit_entry(&mut bytes, 0, |e| e.record_count = 1);
    assert_eq!(
        parse_err(&bytes).to_string(),
        "section 0 (`meta`) is an opaque blob (record size 0) but counts 1 records"
    );
}

#[test]
fn content_length_and_section_count() {
    let bytes = sample();
    let len = bytes.len() as u64;
    // Shorter than the sections: the last section ends past it.
    let mut bad = bytes.clone();
    edit_header(&mut bad, |h| h.content_length = len - 64);
    assert!(matches!(parse_err(&bad), ArtifactError::SectionOutOfBounds { .. } | ArtifactError::TrailingBytes { .. }));
    // Longer than the sections, with bytes to cover it.
    let mut bad = bytes.clone();
    bad.extend_from_slice(&[0; 88]);
    edit_header(&mut bad, |h| h.content_length = len + 88);
    assert_eq!(
        parse_err(&bad).to_string(),
        format!("the header says the content ends at byte {}, but the sections end at byte {len}", len + 88)
    );
    let mut bad = bytes.clone();
    edit_header(&mut bad, |h| h.content_length = 300);
    assert_eq!(
        parse_err(&bad).to_string(),
        "the header says the content is 300 bytes, less than the header and section table (512 bytes)"
    );
    let mut bad = bytes.clone();
    edit_header(&mut bad, |h| h.section_count = u32::MAX);
    assert_eq!(
        parse_err(&bad).to_string(),
        format!("the artifact is truncated: the section table needs 274877907136 bytes, the file has {len}")
    );
}

#[test]
fn duplicate_kinds() {
    let mut bytes = sample();
    edit_entry(&mut bytes, 2, |e| e.kind = EDGES.0);
    assert_eq!(parse_err(&bytes).to_string(), "section 2 (kind 1879048193) has the same kind as section 1");
}

#[test]
fn zero_kind_and_unknown_flags() {
    let mut bytes = sample();
    edit_entry(&mut bytes, 3, |e| e.kind = 0);
    assert_eq!(parse_err(&bytes).to_string(), "section 3 has kind 0, which is not a kind");
    let mut bytes = sample();
    edit_entry(&mut bytes, 0, |e| e.flags = 0x8000_0001);
    assert_eq!(
        parse_err(&bytes).to_string(),
        "section 0 (`meta`) has flags that this format version does not define: 0x80000000"
    );
}

#[test]
fn unknown_kinds_required_or_optional() {
    assert_eq!(section_name(UNKNOWN.0), None);
    for optional in [false, true] {
        let mut w = writer();
        let flags = if optional { SectionFlags::OPTIONAL } else { SectionFlags::NONE };
        w.add_section(UNKNOWN, flags, 0, b"from the future".to_vec()).unwrap();
        let bytes = w.finish().unwrap();
        match Artifact::parse(&bytes) {
            Ok(a) => {
                assert!(optional);
                assert_eq!(a.section(UNKNOWN).unwrap().bytes(), b"from the future");
            }
            Err(e) => {
                assert!(!optional);
                assert_eq!(
                    e.to_string(),
                    "section 4 (kind 2147483632) is required, but this reader does not know its kind \
                     (was the artifact written by a newer compiler?)"
                );
            }
        }
    }
}

#[test]
fn trailing_garbage() {
    let bytes = sample();
    for extra in [1, 7, 87, 89, 175] {
        let mut bad = bytes.clone();
        bad.extend(std::iter::repeat_n(0u8, extra));
        let e = parse_err(&bad);
        assert!(matches!(e, ArtifactError::TrailingBytes { count, .. } if count == extra as u64), "{e}");
    }
    let mut bad = bytes.clone();
    bad.push(b'x');
    assert_eq!(
        parse_err(&bad).to_string(),
        format!(
            "the 1 bytes after the content (from byte {}) are not whole 88-byte signature blocks: \
             the file is truncated or has trailing garbage",
            bytes.len()
        )
    );
    // A whole block of garbage is a malformed signature block.
    let mut bad = bytes.clone();
    bad.extend([0xabu8; 88]);
    assert_eq!(
        parse_err(&bad).to_string(),
        format!("signature block 0 (at byte {}) does not start with `D4CSIG01`", bytes.len())
    );
    let mut bad = bytes.clone();
    bad.extend(b"D4CSIG01");
    bad.extend([1u8; 80]);
    assert_eq!(
        parse_err(&bad).to_string(),
        format!("signature block 0 (at byte {}) has reserved bytes that are not zero", bytes.len())
    );
}

// ---- the records view ----

#[test]
fn records_of_the_wrong_size_or_of_a_blob() {
    let bytes = aligned_copy(&sample());
    let a = Artifact::parse(&bytes).unwrap();
    let e = a.section(EDGES).unwrap().records::<u64>().unwrap_err();
    assert_eq!(e.to_string(), "section 1 (kind 1879048193) holds 16-byte records, not 8-byte ones");
    let e = a.section(SectionKind::META).unwrap().records::<u8>().unwrap_err();
    assert_eq!(e.to_string(), "section 0 (`meta`) is an opaque blob, not a table of records");
}

#[test]
fn records_of_a_misaligned_buffer() {
    let bytes = sample();
    // The artifact one byte into a buffer: parsing works at any address...
    let shifted = aligned_copy(&[&[0u8][..], &bytes].concat());
    let a = Artifact::parse(&shifted[1..]).unwrap();
    assert_eq!(a.policy_name(), "nginx-hardening");
    // ...but records need aligned memory: the error names the section.
    let e = a.section(EDGES).unwrap().records::<Edge>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "section 1 (kind 1879048193) is not aligned to 8 bytes in memory: read the artifact into a memory map \
         or through `aligned_copy`"
    );
    // Records of alignment 1 work anywhere.
    let mut w = ArtifactWriter::new(meta());
    w.add_section(EDGES, SectionFlags::OPTIONAL, 3, vec![1, 2, 3, 4, 5, 6]).unwrap();
    let out = w.finish().unwrap();
    let shifted = aligned_copy(&[&[0u8][..], &out].concat());
    let a = Artifact::parse(&shifted[1..]).unwrap();
    assert_eq!(a.section(EDGES).unwrap().records::<[u8; 3]>().unwrap(), &[[1, 2, 3], [4, 5, 6]]);
    // And the fix the message names.
    let fixed = aligned_copy(&shifted[1..]);
    assert_eq!(fixed.as_ptr() as usize % 64, 0);
    Artifact::parse(&fixed).unwrap().section(EDGES).unwrap().records::<[u8; 3]>().unwrap();
}

#[test]
fn section_names() {
    assert_eq!(SectionKind::META.name(), Some("meta"));
    assert_eq!(section_name(1), Some("meta"));
    assert_eq!(SectionKind::META.to_string(), "`meta`");
    assert_eq!(SectionKind(77_000).to_string(), "kind 77000");
    // Every named kind is unique and not 0.
    let mut kinds: Vec<u32> = d4c_artifact::tables::SECTION_NAMES.iter().map(|(k, _)| *k).collect();
    kinds.sort_unstable();
    let before = kinds.len();
    kinds.dedup();
    assert_eq!(kinds.len(), before, "a kind is named twice in tables::SECTION_NAMES");
    assert!(!kinds.contains(&0));
}
