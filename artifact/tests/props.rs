//! Property tests of the reader: no input makes it panic, and no mutation of
//! a signed artifact goes unnoticed.

// Test code: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::*;
use d4c_artifact::{sign, Artifact, ArtifactWriter, SectionFlags, SectionKind, WriterMeta, MAGIC};
use proptest::prelude::*;

/// Calls everything a caller could on a parsed artifact.
fn touch(a: &Artifact<'_>) {
    let _ = (a.header(), a.policy_name(), a.compiler_version(), a.content().len());
    for s in a.sections() {
        let _ = (s.kind().name(), s.flags(), s.bytes().len(), s.label().to_string());
        let _ = s.records::<u8>();
        let _ = s.records::<u64>();
        let _ = s.records::<Edge>();
        assert!(a.section(s.kind()).is_some());
    }
    for sig in a.signatures() {
        let _ = sig.key_id;
    }
    let _ = a.verify_signature(&fixture_key().verifying_key());
}

fn parse_and_touch(bytes: &[u8]) {
    match Artifact::parse(bytes) {
        Ok(a) => touch(&a),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip {
        at: usize,
        bits: u8,
    },
    Set {
        at: usize,
        byte: u8,
    },
    Truncate {
        len: usize,
    },
    Insert {
        at: usize,
        byte: u8,
    },
    Remove {
        at: usize,
    },
    /// A little-endian integer written at a field-like offset.
    Word {
        at: usize,
        value: u64,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, bits)| Mutation::Flip { at, bits }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Remove { at }),
        (0..100usize, prop_oneof![Just(0u64), Just(u64::MAX), Just(u64::from(u32::MAX)), any::<u64>(), 0..4096u64])
            .prop_map(|(slot, value)| Mutation::Word { at: slot * 8, value }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len().max(1);
    match *m {
        Mutation::Flip { at, bits } => {
            if let Some(b) = bytes.get_mut(at % len) {
                *b ^= bits;
            }
        }
        Mutation::Set { at, byte } => {
            if let Some(b) = bytes.get_mut(at % len) {
                *b = byte;
            }
        }
        Mutation::Truncate { len: l } => bytes.truncate(l % len),
        Mutation::Insert { at, byte } => bytes.insert(at % (bytes.len() + 1), byte),
        Mutation::Remove { at } => {
            if !bytes.is_empty() {
                bytes.remove(at % len);
            }
        }
        Mutation::Word { at, value } => {
            if let Some(dest) = bytes.get_mut(at..at + 8) {
                dest.copy_from_slice(&value.to_le_bytes());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        parse_and_touch(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_the_magic_never_panic(rest in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let bytes = [&MAGIC[..], &rest].concat();
        parse_and_touch(&bytes);
    }

    /// Mutations of a valid artifact, digests re-sealed or not: the reader
    /// gets past the digests with structural faults.
    #[test]
    fn mutations_never_panic(mutations in proptest::collection::vec(mutation(), 1..6), seal in any::<bool>()) {
        let mut bytes = sign(&sample(), &fixture_key()).unwrap();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        if seal {
            reseal(&mut bytes);
        }
        parse_and_touch(&bytes);
    }

    /// Any change to one byte of a signed artifact makes it unreadable or
    /// its signature invalid.
    #[test]
    fn a_changed_byte_is_caught(at in any::<prop::sample::Index>(), bits in 1..=255u8) {
        let key = fixture_key();
        let mut bytes = sign(&sample(), &key).unwrap();
        let at = at.index(bytes.len());
        bytes[at] ^= bits;
        let caught = match Artifact::parse(&bytes) {
            Err(_) => true,
            Ok(a) => a.verify_signature(&key.verifying_key()).is_err(),
        };
        prop_assert!(caught, "byte {} ^ {:#x} went unnoticed", at, bits);
    }

    /// Whatever sections the writer is given, the reader accepts what it
    /// writes and gives every section back as it was, in order.
    #[test]
    fn what_the_writer_writes_the_reader_reads(
        sections in proptest::collection::vec((0..4u32, proptest::collection::vec(any::<u8>(), 0..200)), 0..12),
        revision in any::<u64>(),
        created in proptest::option::of(any::<u64>()),
        name in "[a-z0-9-é]{0,16}",
    ) {
        let meta = WriterMeta { policy_name: name.clone(), revision, created_unix: created, ..meta() };
        let mut w = ArtifactWriter::new(meta);
        let mut expected = Vec::new();
        for (i, (size, mut bytes)) in sections.into_iter().enumerate() {
            let record_size = [0, 1, 4, 16][size as usize];
            if record_size > 0 {
                bytes.truncate(bytes.len() / record_size as usize * record_size as usize);
            }
            let kind = SectionKind(0x7100_0000 + i as u32);
            w.add_section(kind, SectionFlags::OPTIONAL, record_size, bytes.clone()).unwrap();
            expected.push((kind, record_size, bytes));
        }
        let out = w.finish().unwrap();
        let a = Artifact::parse(&out).unwrap();
        prop_assert_eq!(a.policy_name(), name.as_str());
        prop_assert_eq!(a.header().revision, revision);
        prop_assert_eq!(a.header().created_unix, created.unwrap_or(0));
        let got: Vec<_> = a.sections().map(|s| (s.kind(), s.record_size(), s.bytes().to_vec())).collect();
        prop_assert_eq!(got, expected);
    }
}
