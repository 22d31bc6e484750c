//! The table reader under structure-aware mutations (issue 14, fault 1):
//! valid artifacts whose structure is mutated and whose digests are
//! recomputed, read as the runtime reads them and decided against. The
//! mutations are those of the fuzz target `tables` (`tests/structure/`).

// Test code: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;
mod structure;

use d4c_artifact::tables::kind;
use proptest::prelude::*;
use structure::{check, check_bytes, Model, Outcome, RawEdit, Resize, DIMENSIONS, SEEDS};

#[global_allocator]
static ALLOC: structure::CountingAlloc = structure::CountingAlloc;

fn seed(name: &str) -> Model {
    let (_, bytes) = SEEDS.iter().find(|(n, _)| *n == name).unwrap();
    Model::decode(bytes).unwrap()
}

fn outcome(model: &Model, what: &str) -> Outcome {
    check_bytes(&model.encode().unwrap(), what)
}

fn tables_refused(model: &Model, what: &str) -> String {
    match outcome(model, what) {
        Outcome::TablesRefused(message) => message,
        other => panic!("{what}: {other:?}, not refused by the table reader"),
    }
}

/// The seeds are valid, the model writes them back byte for byte, and
/// each kind of mutation gets to the check it aims at.
#[test]
fn structure_aware_mutations_reach_the_table_reader() {
    for (name, bytes) in SEEDS {
        let model = Model::decode(bytes).unwrap();
        assert_eq!(model.encode().unwrap(), bytes, "{name}: the model does not write the seed back");
        assert_eq!(check_bytes(bytes, name), Outcome::Read, "{name}");
        for (dimension, what) in DIMENSIONS.iter().enumerate() {
            let mut grown = model.clone();
            grown.grow(dimension, 2).unwrap();
            assert_eq!(outcome(&grown, what), Outcome::Read, "{name}: {what} grown by 2");
        }
    }

    // A short key moved to the long keys is read the same.
    let mut m = seed("every-condition");
    m.move_to_long(0).unwrap();
    assert_eq!(m.words(kind::COMPONENT_LONG_VALUES).len(), 1);
    assert_eq!(outcome(&m, "long key"), Outcome::Read);

    // The fault itself: component id 0xFFFFFFFF, digests valid.
    let mut m = seed("every-condition");
    assert!(m.set_word(kind::COMPONENT_SHORT_VALUES, 0, 0, u32::MAX));
    assert!(tables_refused(&m, "id").contains("component id 4294967295 is past the"));

    // A state's successor, an edge's component: one past the end.
    let mut m = seed("every-condition");
    let states = m.words(kind::DFA_STATES).len() as u32 / 6;
    assert!(m.set_word(kind::DFA_STATES, 0, 1, states));
    assert!(tables_refused(&m, "default_next").contains("state 0 points past the tables"));
    let mut m = seed("every-condition");
    let components = (m.words(kind::COMPONENT_SHORT_VALUES).len() + m.words(kind::COMPONENT_LONG_VALUES).len()) as u32;
    assert!(m.set_word(kind::EDGE_KEYS, 0, 1, components));
    assert!(tables_refused(&m, "edge").contains("points past the tables"));

    // A state marked settled (issue 16) that is not: a walk stopping there
    // would decide by the wrong class, so the reader refuses it.
    let mut m = seed("every-condition");
    let words = m.words(kind::DFA_STATES);
    let (index, flags) = (0..words.len() / 6)
        .map(|i| (i, words[i * 6 + 4]))
        .find(|(_, flags)| flags & d4c_artifact::tables::STATE_SETTLED == 0)
        .unwrap();
    assert!(m.set_word(kind::DFA_STATES, index, 4, flags | d4c_artifact::tables::STATE_SETTLED));
    assert!(tables_refused(&m, "settled").contains("is marked settled"));

    // Records removed from one side of a pair of sections.
    let mut m = seed("every-condition");
    let values = m.words(kind::EDGE_VALUES);
    m.set_words(kind::EDGE_VALUES, &values[..values.len() - 1]);
    assert!(tables_refused(&m, "edge values").contains("differ in number"));

    // A root past the states, the roots' count of a class past the metadata's.
    let mut m = seed("default");
    let mut roots = m.roots().unwrap();
    roots.name_classes += 1;
    m.set_roots(&roots);
    assert!(tables_refused(&m, "name classes").contains("the roots declare"));

    // A record count and length changed together in the laid-out table:
    // the section then ends before the next, which the container refuses.
    let mut m = seed("default");
    let at = m.sections.iter().position(|s| s.kind == kind::EDGE_KEYS).unwrap();
    m.raw.push(RawEdit::Count { index: at, count: u32::MAX });
    assert!(matches!(outcome(&m, "count"), Outcome::ParseRefused(_)));

    // The list operations do what they say.
    let mut v = vec![1, 2, 3];
    Resize::Duplicate(1).apply(&mut v, 0);
    Resize::Swap(0, 3).apply(&mut v, 0);
    Resize::Remove(1).apply(&mut v, 0);
    Resize::Grow(2).apply(&mut v, 0);
    assert_eq!(v, [3, 2, 1, 1, 1]);
    Resize::Truncate(0).apply(&mut v, 0);
    Resize::Grow(1).apply(&mut v, 9);
    assert_eq!(v, [9]);
}

/// Inputs the mutations decode at random reach every stage: some are
/// refused by the container checks, some by the table reader, and some
/// tables are read and decide events.
#[test]
fn random_structure_aware_mutations_reach_every_stage() {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let (mut parse, mut tables, mut read) = (0, 0, 0);
    for _ in 0..300 {
        let input: Vec<u8> = (0..24)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        match check(&input) {
            Outcome::ParseRefused(_) => parse += 1,
            Outcome::TablesRefused(_) => tables += 1,
            Outcome::Read => read += 1,
        }
    }
    assert!(parse > 0 && tables > 0 && read > 0, "parse {parse}, tables {tables}, read {read}");
}

/// The committed inputs of the fuzz target `tables` (`fuzz/corpus/tables/`:
/// one per seed and a minimized set from earlier runs), checked as the
/// target checks them, with debug assertions on.
#[test]
fn the_committed_fuzz_inputs_pass() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/tables");
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        check(&std::fs::read(&path).unwrap());
        inputs += 1;
    }
    assert!(inputs >= SEEDS.len(), "{} holds {inputs} inputs", dir.display());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever the mutations: no panic, no allocation out of proportion to
    /// the file, a refusal is an error with a message, and tables that are
    /// read decide as their rows say and write back the same.
    #[test]
    fn tables_reader_survives_structure_aware_mutations(input in proptest::collection::vec(any::<u8>(), 0..128)) {
        check(&input);
    }
}
