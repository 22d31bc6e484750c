//! Fuzz target `parse`: arbitrary bytes through the artifact reader.
//!
//! Each input is read twice: as it is, and "re-sealed" (every section digest
//! and the content digest recomputed, as a writer would), because no
//! mutation gets past SHA-256 by chance: re-sealing lets the fuzzer reach
//! every structural check behind the digests.
//!
//! For any input, nothing may panic, hang or use unbounded memory, and when
//! `Artifact::parse` accepts an input:
//! - every section lies within the content, is 64-byte aligned, has the
//!   digest its entry gives, and no two non-empty sections overlap;
//! - every accessor works (records in several types, on an aligned copy);
//! - signing it works, and the signed artifact parses, verifies, keeps the
//!   same content, and re-signing it changes nothing.
#![no_main]

use d4c_artifact::{
    aligned_copy, sha256, sign, Artifact, Header, SectionEntry, SigningKey, HEADER_SIZE, SECTION_ALIGN,
    SECTION_ENTRY_SIZE,
};
use libfuzzer_sys::fuzz_target;
use zerocopy::{FromBytes, IntoBytes};

/// Recomputes the digests of `bytes` where its header and table allow.
fn reseal(bytes: &mut [u8]) {
    let Ok((mut header, _)) = Header::read_from_prefix(bytes) else { return };
    let entries = HEADER_SIZE..HEADER_SIZE.saturating_add((header.section_count as usize).saturating_mul(64));
    for at in entries.step_by(SECTION_ENTRY_SIZE) {
        let Some(raw) = bytes.get(at..at + SECTION_ENTRY_SIZE) else { break };
        let Ok(mut entry) = SectionEntry::read_from_bytes(raw) else { break };
        let (start, end) = (entry.offset as usize, entry.offset.saturating_add(entry.length) as usize);
        let Some(section) = bytes.get(start..end) else { continue };
        entry.digest = sha256(section);
        bytes[at..at + SECTION_ENTRY_SIZE].copy_from_slice(entry.as_bytes());
    }
    header.content_digest = [0; 32];
    bytes[..HEADER_SIZE].copy_from_slice(header.as_bytes());
    if let Some(content) = bytes.get(..header.content_length as usize) {
        header.content_digest = sha256(content);
        bytes[..HEADER_SIZE].copy_from_slice(header.as_bytes());
    }
}

fn check(data: &[u8]) {
    let artifact = match Artifact::parse(data) {
        Ok(a) => a,
        Err(e) => {
            std::hint::black_box(e.to_string());
            return;
        }
    };
    let header = artifact.header();
    let content = artifact.content();
    assert_eq!(content.len() as u64, header.content_length);
    assert_eq!(artifact.policy_name().len() <= 64, true);
    std::hint::black_box((artifact.compiler_version(), artifact.bytes().len()));

    let mut spans: Vec<(u64, u64)> = Vec::new();
    for s in artifact.sections() {
        let e = s.entry();
        assert_eq!(e.offset % SECTION_ALIGN as u64, 0);
        assert!(e.offset + e.length <= header.content_length);
        assert_eq!(sha256(s.bytes()), e.digest);
        assert_eq!(&content[e.offset as usize..(e.offset + e.length) as usize], s.bytes());
        assert!(artifact.section(s.kind()).is_some_and(|t| t.index() == s.index()));
        std::hint::black_box((s.name(), s.flags(), s.label().to_string()));
        if e.length > 0 {
            spans.push((e.offset, e.offset + e.length));
        }
    }
    spans.sort_unstable();
    assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "overlapping sections were accepted");

    // Records, on an aligned copy, in types of several sizes.
    let copy = aligned_copy(data);
    let aligned = Artifact::parse(&copy).expect("an aligned copy of an accepted artifact is accepted");
    for s in aligned.sections() {
        let sizes = [
            s.records::<u8>().map(|r| r.len()),
            s.records::<u64>().map(|r| r.len()),
            s.records::<[u64; 2]>().map(|r| r.len()),
            s.records::<[u8; 3]>().map(|r| r.len()),
        ];
        for n in sizes.into_iter().flatten() {
            assert_eq!(n as u64, u64::from(s.record_count()));
        }
    }

    for block in artifact.signatures() {
        std::hint::black_box(block.key_id);
    }
    let key = SigningKey::from_bytes(&[0x42; 32]);
    let _ = artifact.verify_signature(&key.verifying_key());
    let signed = sign(data, &key).expect("an accepted artifact can be signed");
    let again = Artifact::parse(&signed).expect("a signed artifact is accepted");
    assert_eq!(again.content(), content);
    again.verify_signature(&key.verifying_key()).expect("a fresh signature verifies");
    assert_eq!(sign(&signed, &key).expect("re-signing works"), signed, "re-signing is not idempotent");
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() >= HEADER_SIZE {
        let mut sealed = data.to_vec();
        reseal(&mut sealed);
        if sealed != data {
            check(&sealed);
        }
    }
});
